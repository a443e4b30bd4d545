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
sw = ib.diagonal_sweep(jax.random.key(0), n=20, d=50, k=3, alphas=alphas, steps=100_000)
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
# Soudry et al. (2018, Thm. 3): $w(t) = \hat w\log t + \rho(t)$ with $\rho(t)\to\tilde w$,
# where $\tilde w$ is fixed by the support vectors' dual weights (see the module docstring).
# So $\tan\angle(w(t), \hat w) = a/(\log t + b)$ with $a, b$ computed from $\tilde w$:
# no power law of $\log t$. The non-support points are moved out to margin $\ge 2$ so that
# the asymptotic regime is reached within $10^5$-$10^6$ steps.

# %%
lg = ib.logistic_sweep(
    jax.random.key(1),
    num_sets=3 if QUICK else 8,
    n=10,
    d=2,
    margin=0.5,
    gap=2.0,
    min_kappa=0.75,
    decades=5 if QUICK else 6,
)
fig, ax = plt.subplots(figsize=(5, 3.5))
L = np.log(lg["t"])
for s in lg["sets"]:
    (line,) = ax.loglog(lg["t"], np.tan(s["angle"]), lw=1)
    ok = L + s["b_pred"] > 0.5
    ax.loglog(lg["t"][ok], s["a_pred"] / (L[ok] + s["b_pred"]), "--", color=line.get_color())
ax.set_xlabel("step $t$")
ax.set_ylabel("tan angle to SVM (dashed: theory)")
plt.show()
for c in ib.logistic_checks(lg):
    print(f"{c['name']}: {c['measured']:.2e} (pass={c['pass']})")

# %% [markdown]
# ## 3. Spectral bias
# Points on the unit circle make the NTK circulant: its eigenvectors are Fourier modes and
# its eigenvalues $\lambda_k$ come from one FFT of the analytic kernel. We fit
# $\sum_k \sin(k\theta)$ with one-hidden-layer ReLU networks of several widths and compare
# the residual at each frequency with the kernel prediction $|1-\eta\lambda_k|^t$ over the
# whole run: the uniform error shrinks like $N^{-1/2}$, and the log-scale agreement holds up
# to a stop time that grows with the width (slow modes stop first).

# %%
sb = ib.spectral_sweep(
    0,
    n=32 if QUICK else 64,
    widths=(512, 2048) if QUICK else (1024, 4096, 16384),
    num_nets=2 if QUICK else 4,
    steps=200 if QUICK else 400,
    every=2,
)
t = sb["t"]
fig, ax = plt.subplots(figsize=(5, 3.5))
for i, k in enumerate(sb["freqs"]):
    (line,) = ax.semilogy(t, sb["mean"][-1][:, i], label=f"k={k}")
    ax.semilogy(t, sb["pred"][:, i], "--", color=line.get_color())
ax.set_ylim(1e-4, 1.5)
ax.set_xlabel("step $t$")
ax.set_ylabel("relative residual at frequency $k$")
ax.legend()
plt.show()
print("uniform error by width:", np.round(sb["E"], 4), f"exponent {sb['gamma']:.2f} (theory -0.5)")
print("stop times (rows: widths, columns: k):")
print(sb["T_stop"])
