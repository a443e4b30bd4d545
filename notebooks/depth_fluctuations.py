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
# # Depth-to-width effects
#
# The input–output Jacobian of a He-initialised ReLU network is log-normal with variance
# $\beta = 5\sum_l 1/n_l$ (Hanin & Nica 2019): at equal $\beta$, a deep narrow network and a
# shallow wide one have the same law. Per layer the factor is exactly $(2/n)\chi^2_K$ with
# $K \sim \mathrm{Bin}(n, 1/2)$ (derivation in `experiments/depth_fluctuations.py`).

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import depth_fluctuations as dfl

QUICK = bool(os.environ.get("WIDETH_QUICK"))
num = 300 if QUICK else 3000

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.8))
for i, (width, depth) in enumerate(((128, 8), (64, 4))):
    lg = dfl.log_jacobian(32, width, depth, num, jax.random.key(i))
    mean, var = dfl.exact_log_moments(width, depth)
    ax.hist(lg, bins=40, density=True, histtype="step", label=f"n={width}, L={depth}")
    z = np.linspace(lg.min(), lg.max(), 200)
    ax.plot(z, np.exp(-((z - mean) ** 2) / (2 * var)) / np.sqrt(2 * np.pi * var), "k:", lw=1)
ax.set(xlabel="log ||J u||²", title="equal β = 0.31: the same law")
ax.legend()
plt.show()
