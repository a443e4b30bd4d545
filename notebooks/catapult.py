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
# $f = v^\top u\,x/\sqrt m$ trained on one example $(x, y) = (1, 0)$. Its dynamics close on
# two scalars, the output $f$ and the kernel $\lambda = (\|u\|^2 + \|v\|^2)/m$:
#
# $$f_{t+1} = f_t\Big(1 - \eta\lambda_t + \frac{\eta^2 f_t^2}{m}\Big), \qquad
#   \lambda_{t+1} = \lambda_t + \frac{\eta f_t^2}{m}(\eta\lambda_t - 4),$$
#
# so $\lambda$ can only shrink while $\eta\lambda < 4$: $\eta_{\max} = 4/\lambda_0$.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import catapult as cp

QUICK = bool(os.environ.get("WIDETH_QUICK"))
m = 500 if QUICK else 5000
steps = 400 if QUICK else 2000

# %% [markdown]
# ## Sweep $\eta\lambda_0$ from 0.5 to 5
# We train the actual model (vectors of size $m$) for each step size, measure $\lambda_0$ at
# initialisation and classify each run by its loss curve.

# %%
grid = np.round(np.arange(0.5, 5.01, 0.1), 6)
sweep = cp.uv_sweep(jax.random.key(0), m, grid, steps, num_seeds=2)
for s, phase in enumerate(sweep["phase"]):
    lazy_to_cat, cat_to_div = cp.thresholds(grid, phase)
    print(
        f"seed {s}: lazy -> catapult at eta*lambda0 = {lazy_to_cat:.2f} (theory 2), "
        f"catapult -> divergent at {cat_to_div:.2f} (theory 4)"
    )
cat = sweep["phase"] == cp.CATAPULT
print("largest eta * lambda_final in the catapult phase:", sweep["eta_lam_final"][cat].max())

# %% [markdown]
# ## Peak loss grows with width
# In the catapult the output grows until $f^2 \sim m$ before the kernel can shrink, so the
# height of the spike is proportional to the width.

# %%
peaks = cp.uv_peak_vs_width(jax.random.key(1), [1000, 10000, 100000], 3.0, steps, num_seeds=2)
print("peak loss at eta*lambda0 = 3:", peaks["peak"].mean(1))
fig = cp.plot_uv(sweep, peaks, m)
plt.show()

# %% [markdown]
# Left: the final kernel $\eta\lambda_{\rm final}$ equals $\eta\lambda_0$ in the lazy phase and
# falls below the stability edge 2 in the catapult phase. Middle: the loss spikes before it
# converges. Right: the spike height scales like $m$, as the closed-form recursion
# (crosses) predicts.
#
# ## A real network
# The same phases appear for a wide ReLU MLP on digits, with $\lambda_0$ the top eigenvalue
# of the empirical NTK divided by $n$ (the GGN of $L = \frac{1}{2n}\sum\|f - y\|^2$).
# ReLU networks need not diverge exactly at the uv model's $4/\lambda_0$ (Lewkowycz et al. find
# larger $\eta_{\max}$ for ReLU networks), and some runs can end with every ReLU off — *dead*
# networks, which the experiment counts separately.

# %%
try:
    mlp = cp.mlp_sweep(
        jax.random.key(2),
        n=64,
        width=256,
        multiples=np.array([0.5, 0.9, 1.5, 3.0]),
        steps=100 if QUICK else 400,
        quick=True,
    )
    for c, ph, lf in zip(mlp["multiples"], mlp["phase"], mlp["eta_lam_final"]):
        print(f"eta = {c:.2f} x 2/lambda0: {ph:9s} eta*lambda_final = {lf:.2f}")
    fig = cp.plot_mlp(mlp)
    plt.show()
except (ImportError, AttributeError) as err:  # models / training modules not available yet
    print("MLP part skipped:", err)
