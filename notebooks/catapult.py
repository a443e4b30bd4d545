# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The catapult phase of gradient descent
#
# Lewkowycz et al. (2020), *The large learning rate phase of deep learning: the catapult
# mechanism*. Gradient descent with step $\eta$ on a wide network is governed by the top
# eigenvalue $\lambda_0$ of its neural tangent kernel (normalised like the loss):
#
# * $\eta < 2/\lambda_0$ — **lazy**: the linearised model converges, the loss falls
#   monotonically and the kernel stays put;
# * $2/\lambda_0 < \eta < \eta_{\max}$ — **catapult**: the loss first explodes, the kernel's
#   top eigenvalue collapses below $2/\eta$, and training then converges in a flatter region;
# * $\eta > \eta_{\max}$ — **divergent**.
#
# The simplest model with this behaviour is the two-layer linear "uv model"
# $f = u^\top v\,x/\sqrt m$ trained on one example $(x, y) = (1, y)$. With the residual
# $r = f - y$ its dynamics close on two scalars, $r$ and the kernel
# $\lambda = (\|u\|^2 + \|v\|^2)/m$:
#
# $$r_{t+1} = r_t\Big(1 - \eta\lambda_t + \frac{\eta^2 r_t f_t}{m}\Big), \qquad
#   \lambda_{t+1} = \lambda_t + \frac{\eta r_t}{m}(\eta r_t\lambda_t - 4 f_t).$$
#
# Once the catapult has made $r^2 = O(m) \gg y^2$, $f \approx r$ and $\lambda$ shrinks only
# while $\eta\lambda < 4$: $\eta_{\max} = 4/\lambda_0$ whatever the label.

# %%
import os
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import catapult as cp
from experiments.common import Config

QUICK = bool(os.environ.get("WIDETH_QUICK"))
m = 500 if QUICK else 5000
steps = 400 if QUICK else 2000

# %% [markdown]
# ## Sweep $\eta\lambda_0$ from 0.5 to 5, for labels $y = 0$ and $y = 1$
# We train the actual model (vectors of size $m$, `wideth.train.run` vmapped over step sizes
# and seeds), measure $\lambda_0$ at initialisation and classify each run by its loss curve.

# %%
grid = np.round(np.arange(0.5, 5.01, 0.1), 6)
uv = {y: cp.uv_runs(jax.random.key(0), m, grid, y, steps, seeds=2) for y in (0.0, 1.0)}
for y, sweep in uv.items():
    for s, phase in enumerate(sweep["phase"]):
        lazy_to_cat, cat_to_div = cp.boundaries(grid, phase)
        print(
            f"y={y:g}, seed {s}: lazy -> catapult at eta*lambda0 = {lazy_to_cat:.2f} (theory 2), "
            f"catapult -> divergent at {cat_to_div:.2f} (theory 4)"
        )

# %% [markdown]
# ## Peak loss grows with width
# In the catapult the output grows until $f^2 \sim m$ before the kernel can shrink, so the
# height of the spike is proportional to the width.

# %%
peaks = cp.uv_peak_vs_width(jax.random.key(1), [1000, 10000, 100000], 3.0, 300, seeds=2)
print(f"peak loss ~ m^{peaks['slope']:.2f} (theory 1)")
fig = cp.plot_uv(uv, peaks, grid, m)
plt.show()

# %% [markdown]
# ## A deep ReLU network
# Lewkowycz et al. find that deep ReLU networks diverge only near
# $\eta_{\max} \approx 12/\lambda_0$, three times the uv model's value. Here a depth-3 ReLU
# MLP on 64 digits, $\lambda_0$ the top eigenvalue of the empirical NTK over $n$ (matrix-free
# Lanczos), $\eta_{\max}$ found by bisection per seed, and the test accuracy across phases.

# %%
cfg = Config(name="catapult", quick=True, seed=0, out=Path("."), quiet=True)
small = dict(width=256, seeds=2, steps=150, rounds=4, bisect_steps=100) if QUICK else {}
p = cp.plan(cfg, **small)
mlp = cp.mlp_experiment(p)
print("eta_max * lambda0 per seed:", mlp["bisection"]["estimate"])
acc = np.mean(mlp["test_accuracy"], axis=0)  # NaN where a seed diverged
for c, ph, a in zip(mlp["grid"], mlp["phase"][0], acc, strict=True):
    print(f"eta*lambda0 = {c:5.2f}: {ph:9s} (seed 0), mean test accuracy {a:.3f}")
fig = cp.plot_mlp(mlp, p["sz"])
plt.show()
