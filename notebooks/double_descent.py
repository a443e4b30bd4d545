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
# # Double descent, four ways
#
# An interpolating estimator's test risk peaks where the number of parameters equals the
# number of samples — and regularisation, explicit or implicit, removes the peak.
#
# ## 1. Min-norm least squares (Hastie, Montanari, Rosset, Tibshirani 2019)
# With isotropic Gaussian features, signal $\|\beta\|^2 = r^2$ and noise $\sigma^2$, the
# excess risk of $\hat\beta = X^+ y$ at aspect ratio $\gamma = p/n$ tends to
#
# $$R(\gamma) = \sigma^2\frac{\gamma}{1-\gamma}\ (\gamma < 1), \qquad
#   R(\gamma) = r^2\Big(1 - \frac1\gamma\Big) + \frac{\sigma^2}{\gamma - 1}\ (\gamma > 1).$$

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import double_descent as dd

QUICK = bool(os.environ.get("WIDETH_QUICK"))
n = 100 if QUICK else 400
seeds = 12 if QUICK else 48

# %%
gammas = np.array([0.2, 0.4, 0.6, 0.8, 0.9, 1.1, 1.25, 1.5, 2.0, 3.0, 4.0])
with dd.one_blas_thread():
    h = dd.hastie_curve(jax.random.key(0), n, gammas, seeds)
for g, m, s, t in zip(h["gamma"], h["mean"], h["sem"], h["theory"]):
    print(f"gamma={g:.2f}: Monte Carlo {m:.3f} ± {s:.3f}   Hastie et al. {t:.3f}")
fig = dd.plot_hastie(h, n)
plt.show()

# %% [markdown]
# The risk blows up at $\gamma = 1$, where $X$ is square and its smallest singular value
# vanishes; past it the minimum-norm solution regularises itself and the risk comes back
# down (below the null risk $r^2$ for large $\gamma$ only if $\sigma^2$ is small enough).
#
# ## 2. Random ReLU features on real digits
# $\phi(x) = \sqrt{2/N}\,\mathrm{relu}(Wx/\sqrt d)$, regression on one-hot labels. The
# min-norm fit peaks at $N = n$; the ridge that is best on the test set removes the peak
# (Nakkiran et al. 2021).

# %%
from wideth import data

ds = data.digits(seed=0)
n_rf = 120 if QUICK else 400
xtr, ytr = np.asarray(ds.x_train[:n_rf]), np.asarray(ds.y_train[:n_rf])
xte, yte = np.asarray(ds.x_test[:300]), np.asarray(ds.y_test[:300])
mu = ytr.mean(0)
nfs = np.unique(
    np.round(np.array([0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.3, 2, 4]) * n_rf).astype(int)
)
ridges = np.concatenate([[0.0], np.logspace(-6, 1, 15)])
with dd.one_blas_thread():
    rf = dd.random_features_curve(jax.random.key(1), xtr, ytr - mu, xte, yte - mu, nfs, ridges, 2)
fig = dd.plot_random_features(rf, n_rf, "digits")
plt.show()

# %% [markdown]
# ## 3. Ridge vs early stopping
# Both act on the eigenvalues $s_i$ of the sample covariance as filters: ridge keeps
# $s_i/(s_i + \lambda)$ of each OLS coefficient, gradient flow from zero keeps
# $1 - e^{-s_i t}$. With $t = 1/\lambda$ they agree for $s_i \ll \lambda$ and
# $s_i \gg \lambda$, and Ali, Kolter & Tibshirani (2019) prove the Bayes risk of gradient
# flow is within a factor 1.6862 of ridge's for every design; the exact supremum of the
# per-direction ratio $((1-e^{-x})(1+x)/x)^2$ is 1.68591, at $x = s_i t = 1.793$.

# %%
lambdas = np.logspace(-3, 2, 31)
with dd.one_blas_thread():
    rg = dd.ridge_vs_gradient_flow(jax.random.key(2), 2 * n, n, lambdas, num_draws=2)
gd = dd.gradient_descent_risk_path(jax.random.key(3), n, n // 2, np.array([0.3, 1, 3, 10]), lr=0.05)
bound, x_star = dd.ali_kolter_tibshirani_bound()
print("max risk ratio flow / ridge:", rg["ratio"].max(), f"(exact bound {bound:.6f})")
fig = dd.plot_filters(rg, gd)
plt.show()

# %% [markdown]
# ## 4. Infinite-width NTK regression vs finite networks
# A wide MLP in NTK parameterisation trained by gradient descent follows kernel regression
# with its analytic NTK; as width grows the test predictions and test error converge to the
# kernel's (Jacot et al. 2018; Lee et al. 2019).

# %%
try:
    xtr4, ytr4 = np.asarray(ds.x_train[:64]), np.asarray(ds.y_train[:64])
    xte4, yte4 = np.asarray(ds.x_test[:128]), np.asarray(ds.y_test[:128])
    mu4 = ytr4.mean(0)
    nt = dd.ntk_vs_width(
        jax.random.key(4),
        xtr4,
        ytr4 - mu4,
        xte4,
        yte4 - mu4,
        widths=[64, 256, 1024],
        steps=60 if QUICK else 300,
        num_seeds=2,
    )
    ns = dd.ntk_summary(nt, min_slope_width=256, min_width=256)
    print("NTK test MSE:", nt["err_inf"], " finite widths:", nt["err_finite"])
    fig = dd.plot_ntk(nt, ns)
    plt.show()
except (ImportError, AttributeError) as err:  # models / training modules not available yet
    print("NTK part skipped:", err)
