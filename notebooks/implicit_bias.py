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
# # Implicit bias of gradient descent
#
# When many parameter settings fit the data, *which one* gradient descent finds depends on
# the parameterisation and the initialisation. Three classic cases:
#
# 1. **Diagonal linear networks** $w = u\odot u - v\odot v$ (Woodworth et al. 2020): from
#    init scale $\alpha$, GD finds $\arg\min_{Xw=y} Q_\alpha(w)$, which interpolates between
#    the minimum-$\ell_1$ solution ($\alpha\to 0$, "rich") and the minimum-$\ell_2$ solution
#    ($\alpha\to\infty$, "kernel").
# 2. **Logistic regression on separable data** (Soudry et al. 2018): $\|w(t)\|\to\infty$ and
#    $w/\|w\|$ converges to the hard-margin SVM direction, with angle $O(1/\log t)$.
# 3. **Spectral bias**: a wide network learns low frequencies first, at the rates
#    $\exp(-\eta\lambda_k t)$ set by its NTK eigenvalues.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import implicit_bias as ib

QUICK = bool(os.environ.get("WIDETH_QUICK"))

# %% [markdown]
# ## 1. Diagonal linear networks: from $\ell_1$ to $\ell_2$
# A 3-sparse regression with $n = 20$ equations in $d = 50$ unknowns. The minimum-$\ell_1$
# interpolator (a linear program) recovers the sparse truth; the minimum-$\ell_2$ one
# (pseudo-inverse) does not. GD runs to interpolation for each $\alpha$; we also solve
# $\min Q_\alpha$ independently through its convex dual.

# %%
alphas = np.logspace(-2, 1, 4 if QUICK else 9)
sw = ib.diagonal_sweep(jax.random.key(0), n=20, d=50, k=3, alphas=alphas, max_steps=300_000)
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.loglog(alphas, sw["dist_l1"], "o-", label="to min-$\\ell_1$")
ax.loglog(alphas, sw["dist_l2"], "s-", label="to min-$\\ell_2$")
ax.loglog(alphas, sw["dist_q"], "^:", label="to $\\arg\\min Q_\\alpha$")
ax.set_xlabel("init scale $\\alpha$")
ax.set_ylabel("relative distance")
ax.legend()
plt.show()
print("GD vs Q_alpha minimiser, max relative distance:", sw["dist_q"].max())

# %% [markdown]
# ## 2. Logistic regression converges to the max-margin direction
# GD with a fixed step on separable data, several random data sets at once (``vmap``).
# The SVM direction comes from scikit-learn's `SVC` on the symmetrised data (so its
# intercept is 0), cross-checked against a QP solve.

# %%
lg = ib.logistic_sweep(
    jax.random.key(1), num_sets=4 if QUICK else 16, n=20, d=3, t_max=1e4 if QUICK else 1e5
)
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.loglog(lg["t"], lg["angles"], color="0.7", lw=0.8)
ax.loglog(lg["t"], lg["angle_gmean"], "k-", lw=2, label="geometric mean")
ax.set_xlabel("step $t$")
ax.set_ylabel("angle to SVM [rad]")
ax.legend()
plt.show()
print(f"fitted exponent p in angle ~ (log t)^-p: {lg['rate_exponent']:.2f} (theory 1)")

# %% [markdown]
# ## 3. Spectral bias
# Points on the unit circle make the NTK circulant: its eigenvectors are Fourier modes and
# its eigenvalues $\lambda_k$ come from one FFT of the analytic kernel. We fit
# $\sum_k \sin(k\theta)$ with a wide one-hidden-layer ReLU network and track the residual
# at each frequency against the kernel prediction $(1-\eta\lambda_k)^t$.

# %%
sb = ib.spectral_bias(
    jax.random.key(2),
    n=32 if QUICK else 64,
    width=2048 if QUICK else 8192,
    depth=1,
    freqs=np.array([1, 2, 4]),
    num_nets=1,
)
t = np.arange(sb["amplitudes"].shape[0])
fig, ax = plt.subplots(figsize=(5, 3.5))
for i, k in enumerate(sb["freqs"]):
    (line,) = ax.semilogy(t, sb["amplitudes"][:, i] / sb["amplitudes"][0, i], label=f"k={k}")
    ax.semilogy(t, (1 - sb["eta"] * sb["eigenvalues"][i]) ** t, "--", color=line.get_color())
ax.set_ylim(1e-3, 1.5)
ax.set_xlabel("step $t$")
ax.set_ylabel("relative residual at frequency $k$")
ax.legend()
plt.show()
print("measured convergence times:", np.round(sb["t_measured"], 1))
print("NTK prediction            :", np.round(sb["t_pred"], 1))
