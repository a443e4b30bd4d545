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
# # Bayesian interpolation with deep linear networks
#
# A deep linear network $z = W^{(L+1)}\cdots W^{(1)}x = \theta^\top x$ with Gaussian priors,
# conditioned on interpolating $P < n_0$ points, has an exact posterior: $\theta = \theta_\parallel
# + \theta_\perp$ with $\theta_\parallel = X^+Y$ fixed by the data and $\theta_\perp \mid s \sim
# \mathcal N(0, s\,\Pi_\perp)$, where the scale $s$ has the prior
# $\frac{\sigma^{2(L+1)}}{n_0}\prod_l \chi^2_{n_l}/n_l$ reweighted by
# $s^{-P/2}e^{-\|\theta_\parallel\|^2/(2s)}$ (`wideth.kernels.deep_linear`, exact sampler).
# Hanin & Zlokapa (2023): at large width the posterior depends on the architecture only through
# $\lambda_{\rm post} = P\sum_l 1/n_l$, and as $\lambda_{\rm post}$ grows the data-agnostic prior
# $\sigma^2 = 1$ gives the posterior of the shallow model with the evidence-maximising prior.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from experiments import bayes_deep_linear as bdl
from wideth.kernels import deep_linear as dl

jax.config.update("jax_enable_x64", True)
QUICK = bool(os.environ.get("WIDETH_QUICK"))
NUM = 5_000 if QUICK else 50_000
P, N0 = 200, 400

# %% [markdown]
# ## Equal effective depth, different architectures
# Two networks with $\lambda_{\rm post} = 2$ (two layers of 200, eight of 800) and one with the
# same width but $\lambda_{\rm post} = 8$; the black curve is the $\lambda$-limit law of
# $\log s$ (`large_width_posterior`).

# %%
x, y = bdl.teacher_data(jax.random.key(0), P, N0, 1.0)
a = float(jnp.sum(dl.interpolant(x, y)[0] ** 2))
for widths in [(200, 200), (800,) * 8, (200,) * 8]:
    t = dl.posterior_log_scale(jax.random.key(1), x, y, widths, 1.0, NUM)
    lam = dl.effective_depth(P, widths)
    label = f"{len(widths)} x {widths[0]}, λ={lam:g}"
    plt.hist(np.asarray(t), 60, density=True, histtype="step", label=label)
for lam in (2.0, 8.0):
    lim = dl.large_width_posterior(P, N0, a, lam)
    plt.plot(lim.grid, lim.density, "k-", lw=0.8)
plt.xlim(-6.4, -5.6)
plt.xlabel("log s")
plt.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Predictions
# The predictive at a new input is a Gaussian scale mixture centred on $\theta_\parallel^\top x$;
# given $\|\theta_\perp\|$ its variance is $\|x_\perp\|^2\|\theta_\perp\|^2/(n_0 - P)$.

# %%
x_test = jax.random.normal(jax.random.key(5), (2, N0))
z = dl.predictive(jax.random.key(2), x, y, x_test, (800,) * 8, 1.0, NUM)
nrm = dl.posterior_perp_norm(jax.random.key(3), x, y, (800,) * 8, 1.0, NUM)
mean, var = dl.predictive_normal(x, y, x_test, nrm)
print("sample mean", np.asarray(z.mean(0)), "theory", np.asarray(mean))
print("sample var ", np.asarray(z.var(0)), "theory", np.asarray(var.mean(0)))

# %% [markdown]
# ## Growing effective depth: the data-agnostic prior becomes the evidence-maximising one
# The teacher is four times the prior's scale. The gap of $E\log\|\theta_\perp\|^2$ to the
# shallow evidence-maximising posterior closes like $1/(1 + \lambda)$.

# %%
sz = bdl.SIZES(True)
sz.sweep_samples = 2_000 if QUICK else 20_000
sweep = bdl.sweep_part(sz, jax.random.key(4))
lam = [r["lam"] for r in sweep["rows"]]
plt.loglog(lam, [abs(r["gap"]) for r in sweep["rows"]], "o", label="exact, σ² = 1")
laplace = [abs(r["laplace_gap"]) for r in sweep["rows"]]
plt.loglog(lam, laplace, "k--", label="Laplace (Δ − λ/P)/(1 + λ)")
plt.xlabel("λ_post")
plt.ylabel("|gap|")
plt.legend()
plt.show()
