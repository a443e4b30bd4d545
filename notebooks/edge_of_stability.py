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
# # Gradient descent at the edge of stability
#
# Cohen, Kaur, Li, Kolter, Talwalkar (2021), *Gradient Descent on Neural Networks Typically
# Occurs at the Edge of Stability*.
#
# On a quadratic with curvature $\lambda$, gradient descent with step $\eta$ converges only if
# $\lambda < 2/\eta$. Classical optimisation theory therefore asks the step size to stay below
# $2/\lambda_{\max}$ of the Hessian (the *sharpness*). Neural networks trained with full-batch
# GD do something else:
#
# 1. **progressive sharpening** — $\lambda_{\max}$ grows during training,
# 2. until it reaches $2/\eta$, where it **stops and hovers** (the edge of stability), while the
#    loss keeps going down, non-monotonically, over long time scales.
#
# We train a small tanh MLP (MSE, one-hot targets) on a subset of digits at a few step sizes
# $\eta = 2/(a\lambda_0)$ and measure $\lambda_{\max}$ by Lanczos every few steps, inside the
# jitted training loop.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import edge_of_stability as eos
from wideth import hessian, train

QUICK = bool(os.environ.get("WIDETH_QUICK"))
n = 100 if QUICK else 500
steps = 600 if QUICK else 2000

# %%
apply_fn, params, batch = eos.setup(seed=0, n=n, width=32 if QUICK else 64)
key = jax.random.key(0)
loss = lambda p, b: train.mse(apply_fn(p, b[0]), b[1])
lam0 = float(hessian.sharpness(hessian.hessian(loss, params, batch), num_steps=30, key=key))
print(f"sharpness at initialisation: {lam0:.3f}")
multiples = [2.0, 3.0] if QUICK else [2.0, 3.0, 4.0]
etas = [2 / (a * lam0) for a in multiples]
# All step sizes in one vmapped, jitted training loop with the sharpness probed inside it.
res = eos.gd_runs(apply_fn, params, batch, etas, steps, 20, key)
eta_flow = 2 / (20 * lam0)
# The same time eta*t as the largest step: a whole number of probe intervals (rounded, not
# truncated: the ratio of step sizes is 10 up to float rounding).
flow_steps = int(round(steps * max(etas) / eta_flow / steps)) * steps
flow = eos.gd_runs(apply_fn, params, batch, [eta_flow], flow_steps, flow_steps // (steps // 20), key)

# %%
sharp, losses = np.asarray(res.probes["sharpness"]), np.asarray(res.metrics["loss"])
for i, eta in enumerate(etas):
    s = eos.summary(sharp[i], losses[i], eta)
    print(
        f"eta={eta:.3f}: 2/eta={s['edge']:.2f}, sharpness {s['lambda_0']:.2f} -> "
        f"max {s['lambda_max_reached']:.2f}; last 30% mean = {s['tail_mean_over_edge']:.3f} x 2/eta"
    )
fig = eos.plot_eos(
    {
        "n": n,
        "etas": etas,
        "probe_steps": np.asarray(res.probe_steps[0]),
        "sharpness": sharp,
        "loss": losses,
        "flow": {
            "eta": eta_flow,
            "probe_steps": np.asarray(flow.probe_steps[0]),
            "sharpness": np.asarray(flow.probes["sharpness"][0]),
            "loss": np.asarray(flow.metrics["loss"][0]),
        },
    }
)
plt.show()

# %% [markdown]
# Each sharpness curve (in units of its edge $2/\eta$) rises from $\lambda_0$ until it meets
# the dashed line and then stays on it, while gradient flow (black, a small step run for the same time $\eta t$)
# keeps sharpening past every one of them; the larger the step, the earlier sharpening stops. The loss (right) falls
# throughout, with small spikes once GD is at the edge — the regime classical step-size
# rules exclude, yet where training actually happens.
