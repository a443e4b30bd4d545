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
# # Order, chaos and trainability of deep random networks
#
# Poole et al. (2016) and Schoenholz et al. (2017): in a wide random network the length
# $q^l$ of the pre-activations and the correlation $c^l$ between two inputs follow
# deterministic maps. Their fixed point $q^*$ and the slope
# $\chi_1 = \sigma_w^2 E[\phi'(\sqrt{q^*}z)^2]$ split the $(\sigma_w^2,\sigma_b^2)$ plane into
# an ordered phase ($\chi_1<1$, all inputs become alike) and a chaotic one ($\chi_1>1$,
# nearby inputs decorrelate). Information survives about $\xi_c$ layers, and networks
# deeper than about $6\xi_c$ do not train.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import criticality as cr
from wideth.kernels import meanfield as mf

QUICK = bool(os.environ.get("WIDETH_QUICK"))

# %% [markdown]
# ## Measured $q^l$, $c^l$ vs the mean-field maps
# Random tanh networks in the ordered, critical and chaotic phases (dots: average over
# networks; lines: `wideth.kernels.meanfield` maps iterated from the same inputs).

# %%
configs = [("tanh", 1.3, 0.05), ("tanh", 1.76, 0.05), ("tanh", 2.5, 0.05)]
sp = cr.signal_propagation(
    jax.random.key(0), configs, depth=12, width=128 if QUICK else 1000, num_nets=4
)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
for r in sp:
    layers = np.arange(1, len(r["q_measured"]) + 1)
    (line,) = axes[0].plot(layers, r["q_measured"], "o", ms=3, label=f"$\\sigma_w^2$={r['W_var']}")
    axes[0].plot(layers, r["q_theory"], "-", color=line.get_color())
    axes[1].plot(layers, r["c_measured"], "o", ms=3, color=line.get_color())
    axes[1].plot(layers, r["c_theory"], "-", color=line.get_color())
axes[0].set_ylabel("$q^l$")
axes[1].set_ylabel("$c^l$")
for ax in axes:
    ax.set_xlabel("layer")
axes[0].legend()
plt.show()
for r in sp:
    print(
        f"sigma_w^2={r['W_var']}: q^L={r['q_measured'][-1]:.3f}, q*={r['q_star']:.3f}, "
        f"chi_1={r['chi1']:.3f}"
    )

# %% [markdown]
# ## Phase diagram
# Theory $\chi_1$ with the critical line (`critical_W_var`), next to the empirical
# $\hat\chi_1 = \sigma_w^2\,\overline{\phi'(h^L)^2}$, averaged over a few random networks per
# grid point.

# %%
pd = cr.phase_diagram(
    jax.random.key(1),
    np.linspace(0.5, 4.0, 8),
    np.linspace(0.0, 1.0, 6),
    depth=10 if QUICK else 20,
    width=64 if QUICK else 256,
    num_nets=2 if QUICK else 4,
)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
for ax, z, title in ((axes[0], pd["chi1"], "theory"), (axes[1], pd["chi1_measured"], "measured")):
    ax.contourf(pd["W_grid"], pd["b_grid"], z.T, levels=20, cmap="RdBu_r")
    ax.contour(pd["W_grid"], pd["b_grid"], z.T, levels=[1.0], colors="k")
    ax.plot(pd["critical_W"], pd["critical_b"], "y--")
    ax.set_xlabel("$\\sigma_w^2$")
    ax.set_title(f"$\\chi_1$ ({title})")
axes[0].set_ylabel("$\\sigma_b^2$")
plt.show()

# %% [markdown]
# ## Depth scale and trainability
# $6\xi_c$ from the mean-field theory (`cr.six_xi_c`); the experiment module trains a grid of
# depth-$L$ tanh networks on both sides of criticality (one vmapped `wideth.train.run`) and
# checks the balanced accuracy of the predictor "trainable iff $L < 6\xi_c$" on each side.

# %%
W = np.linspace(0.5, 4.0, 15 if QUICK else 50)
plt.figure(figsize=(5, 3.5))
plt.semilogy(W, cr.six_xi_c(W, 0.05))
plt.axvline(float(mf.critical_W_var("tanh", 0.05)), color="k", ls=":")
plt.xlabel("$\\sigma_w^2$ ($\\sigma_b^2=0.05$)")
plt.ylabel("$6\\xi_c$ [layers]")
plt.show()

# %% [markdown]
# ## ReLU: gradients at the edge of chaos
# Without biases the ReLU network has $\chi_1 = \sigma_w^2/2$: the back-propagated signal
# grows or shrinks by that factor per layer, and is preserved at $\sigma_w^2 = 2$.

# %%
L = 12
rg = cr.relu_gradients(
    jax.random.key(2), np.array([1.6, 2.0, 2.4]), depth=L, width=64 if QUICK else 256, num_nets=8
)
plt.figure(figsize=(5, 3.5))
layers = np.arange(1, L + 1)
for w, nrm, rate in zip(rg["W_vars"], rg["norms"], rg["rate_theory"], strict=True):
    (line,) = plt.semilogy(layers, nrm / nrm[-1], "o", ms=3, label=f"$\\sigma_w^2$={w}")
    plt.semilogy(layers, np.exp(rate * (L - layers)), "-", color=line.get_color())
plt.xlabel("layer $l$")
plt.ylabel("$E\\|\\partial f/\\partial h^l\\|^2$ (relative)")
plt.legend()
plt.show()
print("measured per-layer log-rates:", np.round(rg["rate_measured"], 3))
print("theory log(sigma_w^2/2)      :", np.round(rg["rate_theory"], 3))
