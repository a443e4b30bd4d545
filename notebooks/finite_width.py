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
# statements fail by amounts controlled by $\beta = L/n$:
#
# * the NNGP diagonal $\hat K = \|\phi(h^L)\|^2/n$ fluctuates with, exactly,
#   $\mathrm{Var}(\hat K)/K^2 = \prod_l(1 + 5/n_l) - 1$ for ReLU (2 for linear);
# * the NTK diagonal $\Theta(x,x)$ of a depth-1 ReLU net has relative variance exactly
#   $3/n$; with depth it grows at rate $11/3$ per unit $\beta$ for small $\beta$ (the sum
#   over layers is not one product: Proposition 3's $e^{5\beta}$ is the law of $\hat K$);
# * the NTK of the centred model moves by $O(1/n)$ during gradient descent in NTK
#   parameterisation ($n^{-1/2}$ is only an upper bound).

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from experiments import finite_width as fw
from wideth import data

QUICK = bool(os.environ.get("WIDETH_QUICK"))

# %% [markdown]
# ## NNGP diagonal fluctuations
# Thousands of random networks at once, every depth recorded by one scan; the lines are
# the exact product law that the experiment checks.

# %%
nf = fw.nngp_fluctuations(
    jax.random.key(0), widths=[32, 64], depths=[1, 2, 4], num_nets=500 if QUICK else 5000
)
fw.fig_nngp(nf)
plt.show()

# %% [markdown]
# ## NTK fluctuations at initialisation
# The empirical NTK (`wideth.kernels.empirical.ntk`) of many random ReLU MLPs at one input:
# at depth 1, $n\,\mathrm{Var}\,\Theta/E[\Theta]^2 = 3$; with depth, the growth of
# $\log E[K^2]/E[K]^2$ in $\beta$ for $\hat K$ (slope $n\log(1+5/n)$) and for $\Theta$.

# %%
d1 = fw.depth1(jax.random.key(1), 32, 1000 if QUICK else 4000)
print(f"depth 1: n Var/E^2 = {d1['c1']:.2f} +- {d1['c1_se']:.2f} (exact 3)")
p3 = fw.prop3(jax.random.key(2), 32, [1, 2, 4], 2000 if QUICK else 6000)
print(
    f"slopes: K_hat {p3['nngp_slope']:.2f} +- {p3['nngp_slope_se']:.2f} "
    f"(theory {p3['nngp_theory_slope']:.2f}); Theta {p3['ntk_slope']:.2f} +- "
    f"{p3['ntk_slope_se']:.2f} (independent-layer {p3['ntk_theory_slope']:.2f})"
)
fw.fig_ntk(d1, p3)
plt.show()

# %% [markdown]
# ## Kernel movement under gradient descent
# The experiment module (`python -m experiments.finite_width`) trains several networks per
# width with `wideth.train.run` (one `vmap` over seeds) and fits the slope over the widest
# widths. Here a two-width version.

# %%
ds = data.digits(n_train=64, seed=0)
x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
keys = jax.random.split(jax.random.key(3), 2 if QUICK else 4)
for n in (64, 256):
    apply_fn, init = fw.movement_setup(n, 1, x.shape[1], y.shape[1])
    r = fw.movement_runs(apply_fn, init, (x, y), x[:8], keys, 20 if QUICK else 100, 1.0)
    print(f"n={n}: relative NTK change {np.round(r['movement'], 4)}")
