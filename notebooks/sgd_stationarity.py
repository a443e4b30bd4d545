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
# # SGD at stationarity
#
# Constant-step SGD on a loss that does not interpolate its data reaches a stationary law,
# not a point. On least squares the law is known exactly (`wideth.train.noise`); on any model,
# stationarity alone gives Yaida's fluctuation–dissipation relation
# $\langle(\theta - \theta_0)\cdot\nabla L\rangle = \tfrac\eta2 \langle E\|g_B\|^2\rangle$.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import sgd_stationarity as sgs
from wideth.train import noise

QUICK = bool(os.environ.get("WIDETH_QUICK"))

# %% [markdown]
# The minibatch covariance is $c_{N,B}\Sigma$ with $c = (N - B)/(B(N - 1))$ without
# replacement; the stationary excess loss grows with $\eta$ and falls with $B$.

# %%
x, y = sgs.regression_data(jax.random.key(0), 48, 4)
etas = np.linspace(0.02, 0.3, 8)
for b in (1, 4, 16):
    ex = [noise.least_squares_stationary(x, y, e, b)["excess_loss"] for e in etas if b > 1 or e < 0.2]
    plt.plot(etas[: len(ex)], ex, "o-", label=f"B={b}")
plt.xlabel("η")
plt.ylabel("stationary excess loss ½tr(HS)")
plt.legend()
plt.show()

# %% [markdown]
# Real SGD against the exact law, for two step sizes at $B = 4$.

# %%
import types

sz = types.SimpleNamespace(**sgs.SIZES.quick)
sz.ls_grid = ((0.1, 4), (0.3, 4))
sz.ls_steps, sz.ls_seeds = (20_000, 2) if QUICK else (200_000, 8)
for r in sgs.least_squares_part(sz, jax.random.key(0)):
    print(f"eta={r['lr']}: exact {r['theory']:.4f}, measured {r['measured']:.4f} ± {r['se']:.4f}")
