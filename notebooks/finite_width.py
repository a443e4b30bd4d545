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
# # Finite-width corrections
#
# Infinite-width theory says the NNGP and NTK of a random network are deterministic and
# that the NTK does not move during training. At finite width $n$ and depth $L$ both
# statements fail by amounts controlled by $L/n$:
#
# * the NNGP diagonal $\hat K = \|\phi(h^L)\|^2/n$ fluctuates with
#   $\mathrm{Var}(\hat K)/K^2 = \prod_l(1 + 5/n_l) - 1 \approx 5L/n$ for ReLU (2 for linear);
# * the NTK $\Theta(x,x)$ fluctuates with relative variance $\approx c\,L/n$;
# * the NTK moves during training by $O(n^{-1/2})$ in NTK parameterisation, but by $O(1)$
#   in the maximal-update parameterisation (muP), where features are learned.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import finite_width as fw

QUICK = bool(os.environ.get("WIDETH_QUICK"))

# %% [markdown]
# ## NNGP diagonal fluctuations
# Thousands of random networks at once (``vmap``), every depth recorded by one scan.

# %%
nf = fw.nngp_fluctuations(
    jax.random.key(0), widths=[32, 64], depths=[1, 2, 4], num_nets=500 if QUICK else 5000
)
ratio = np.array(nf["depths"])[None, :] / np.array(nf["widths"])[:, None]
plt.figure(figsize=(5, 3.5))
for act, k in (("relu", 5), ("linear", 2)):
    d = nf[act]
    plt.errorbar(ratio.ravel(), d["measured"].ravel(), d["stderr"].ravel(), fmt="o", label=act)
    rr = np.geomspace(ratio.min(), ratio.max())
    plt.plot(rr, np.exp(k * rr) - 1, "k--", lw=0.8)
plt.xscale("log")
plt.yscale("log")
plt.xlabel("$L/n$")
plt.ylabel("Var$(\\hat K)/K^2$")
plt.legend()
plt.show()

# %% [markdown]
# ## NTK fluctuations at initialisation
# The empirical NTK (`wideth.kernels.empirical.ntk`) of many random ReLU MLPs at one input.

# %%
nt = fw.ntk_fluctuations(
    jax.random.key(1),
    widths=[64, 256] if QUICK else [64, 128, 256],
    depths=[2] if QUICK else [1, 2, 4],
    num_nets=100 if QUICK else 400,
)
print(np.round(nt["relvar"], 4))
print(f"fitted c in relvar ~ c L/n: {nt['c']:.2f} +- {nt['c_stderr']:.2f}")

# %% [markdown]
# ## Lazy vs feature learning
# The experiment module (`python -m experiments.finite_width`) trains NTK- and
# muP-parameterised networks of growing width on digits and measures
# $\|\Theta_T-\Theta_0\|_F/\|\Theta_0\|_F$. Here a two-width version.

# %%
mo = fw.ntk_movement(
    jax.random.key(2),
    widths=[64, 256],
    depth=1,
    steps=30 if QUICK else 200,
    lr={"ntk": 1.0, "mup": 0.5},
    n_train=128,
    n_probe=8,
    base_width=64,
)
for par in ("ntk", "mup"):
    print(
        f"{par}: movement {np.round(mo[par]['movement'], 3)}, "
        f"test accuracy {np.round(mo[par]['test_accuracy'], 3)}"
    )
