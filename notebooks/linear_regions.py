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
# # Linear regions of ReLU networks
#
# Hanin & Rolnick (2019), *Complexity of Linear Regions in Deep Networks*.
#
# A ReLU network is piecewise affine. `wideth.regions` finds its pieces exactly along a line
# (and on 2-D slices) by refining the partition layer by layer. Worst-case constructions give
# exponentially many pieces in depth (Telgarsky's sawtooth: $2^L$), but at initialisation the
# number of breakpoints along a line is about a constant times the number of neurons, whatever
# the depth. With the NNGP kernel $K_l$ of layer $l$ the Kac–Rice formula predicts the density
# of breakpoints of each neuron; without biases it is $r/(\pi(r^2+t^2))$ at every depth.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import linear_regions as lr
from wideth import regions

QUICK = bool(os.environ.get("WIDETH_QUICK"))

# %% [markdown]
# Telgarsky's sawtooth: depth $L$, width 2, $2^L$ pieces on $[0, 1]$.

# %%
tent = [(np.array([[1.0, 1.0]]), np.array([0.0, -0.5]))]
inner = (np.array([[2.0, 2.0], [-4.0, -4.0]]), np.array([0.0, -0.5]))
for depth in (1, 3, 6):
    res = regions.line_regions(tent + [inner] * (depth - 1), [0.0], [1.0], (0.0, 1.0))
    print(f"depth {depth}: {res.num_regions} pieces")

# %% [markdown]
# Random He-initialised networks: breakpoints per neuron of every layer on $[-3, 3]$, Monte
# Carlo over networks against the Kac–Rice value.

# %%
import types

sz = types.SimpleNamespace(n0=16, width=64 if QUICK else 256, depth=4 if QUICK else 6,
                           networks=8 if QUICK else 40, T=3.0, grid=201)
fig, ax = plt.subplots(figsize=(5.5, 3.8))
for j, b_std in enumerate((0.0, 0.5)):
    counts, x0, u = lr.monte_carlo_counts(sz, b_std, jax.random.key(j))
    theory = lr.kac_rice_counts(sz.depth, b_std, x0, u, sz.T, sz.grid)
    layers = np.arange(1, sz.depth + 1)
    se = counts.std(0, ddof=1) / np.sqrt(sz.networks)
    (line,) = ax.plot(layers, theory, label=f"Kac–Rice, σ_b = {b_std}")
    ax.errorbar(layers, counts.mean(0), yerr=se, fmt="o", color=line.get_color(), capsize=2)
ax.set(xlabel="layer", ylabel="breakpoints per neuron", title=f"width {sz.width}")
ax.legend()
plt.show()

# %% [markdown]
# Without biases the count per neuron is the same in every layer, $\frac{2}{\pi}\arctan(T/r)
# \approx 0.795$ here: the total number of pieces grows with the number of neurons, not with
# depth. Biases lower the density layer by layer, as the NNGP predicts.
