r"""Double descent: min-norm least squares, random features, ridge vs early stopping, NTK.

Four views of the same phenomenon: the test risk of an interpolating estimator
peaks where the number of parameters equals the number of samples, and
regularisation (explicit ridge, or implicit early stopping) removes the peak.

1. **Min-norm least squares** with isotropic Gaussian features
   :math:`x\sim\mathcal N(0, I_p)`, signal :math:`\|\beta\|^2=r^2`, noise
   :math:`\sigma^2`, :math:`n` samples, :math:`\gamma = p/n`. The estimator
   :math:`\hat\beta = X^+ y` is kernel regression with the linear kernel
   :math:`K = XX^\top` (the end point of gradient descent from zero,
   :func:`min_norm_solution` through :func:`wideth.kernels.predict.gradient_descent_mse`;
   the Monte Carlo uses an equal, faster float64 solve). Its excess risk
   :math:`\|\hat\beta-\beta\|^2` tends to

   .. math::

       R(\gamma) = \sigma^2\frac{\gamma}{1-\gamma}\ (\gamma<1),\qquad
       R(\gamma) = r^2\Big(1-\frac1\gamma\Big) + \frac{\sigma^2}{\gamma-1}\ (\gamma>1)

   (Hastie, Montanari, Rosset, Tibshirani, *Surprises in High-Dimensional
   Ridgeless Least Squares Interpolation*, 2019, Thm. 1), and at finite
   :math:`n, p` its expectation is exactly

   .. math::

       E\|\hat\beta-\beta\|^2 = \sigma^2\frac{p}{n-p-1}\ (p<n-1),\qquad
       r^2\Big(1-\frac np\Big) + \sigma^2\frac{n}{p-n-1}\ (p>n+1):

   for :math:`p<n` the error is :math:`(X^\top X)^{-1}X^\top\varepsilon` and
   :math:`E(X^\top X)^{-1} = I/(n-p-1)` (mean of the inverse Wishart
   :math:`W_p(n, I)`, Muirhead 1982, Thm. 3.2.12); for :math:`p>n`,
   :math:`\hat\beta-\beta = -P_\perp\beta + X^\top(XX^\top)^{-1}\varepsilon` with
   :math:`P_\perp` the projection onto the null space of :math:`X`, uniformly
   distributed of dimension :math:`p-n` (so :math:`E\|P_\perp\beta\|^2 =
   r^2(p-n)/p`), and :math:`E(XX^\top)^{-1} = I/(p-n-1)`. **Claim checked**: the
   Monte Carlo mean over seeds equals the exact finite-:math:`n` risk within
   :math:`k = 3` standard errors at :math:`\gamma \in \{0.5, 0.9, 2, 4\}` (the
   asymptotic curve differs from it by :math:`O(1/n)`; both are drawn).
2. **Random ReLU features** :math:`\phi(x)=\sqrt{2/N}\,\mathrm{relu}(Wx)` on real
   digits (MNIST-5k in full mode): test MSE against the number of features
   :math:`N` through the interpolation threshold :math:`N=n`, min-norm and with
   the test-optimal ridge. **Claims**: the min-norm test MSE peaks at
   :math:`N=n` (Belkin, Hsu, Ma, Mandal, *Reconciling modern machine learning
   practice and the bias-variance trade-off*, 2019, Fig. 2: the log ratio of the
   MSE at :math:`N=n` to the best MSE at :math:`N\le n/2` is positive, one-sided
   by 3 SE over feature draws); with the optimal ridge the curve has no peak
   (Nakkiran, Venkat, Kakade, Ma, *Optimal Regularization Can Mitigate Double
   Descent*, 2021, Fig. 1: no increase between consecutive :math:`N` larger
   than 3 SE of the paired per-draw increase).
3. **Ridge vs gradient flow** as spectral filters on the sample covariance
   eigenvalues :math:`s_i`: ridge keeps :math:`s_i/(s_i+\lambda)` of each OLS
   coefficient, gradient flow from zero :math:`1-e^{-s_i t}`. Ali, Kolter and
   Tibshirani (*A Continuous-Time View of Early Stopping for Least Squares
   Regression*, 2019, Thm. 1) bound the Bayes risk of flow at :math:`t=1/\lambda`
   by 1.6862 times that of ridge at :math:`\lambda`, *for every design*: per
   eigen-direction the bias ratio is :math:`(e^{-x}(1+x))^2\le1` and the
   variance ratio :math:`h(x)^2 = ((1-e^{-x})(1+x)/x)^2`, :math:`x = s_i t`,
   whose exact supremum is :math:`h(x^*)^2 = 1.685909\ldots` at
   :math:`x^* = 1.79328\ldots` (:func:`ali_kolter_tibshirani_bound`). That is a
   theorem evaluated exactly, so it is a unit test (tests/), not a check here;
   the figure draws the exact ratio on sampled designs against the bound. What
   is checked (a control of the training loop, ``kind="consistency"``) is that
   real gradient descent, :func:`wideth.train.run` on the linear model, has the
   exact Bayes risk of its discrete filter :math:`1-(1-\eta s_i)^k` (AKT 2019,
   Lemma 3, in the risk formula of :func:`filter_bayes_risk`) within 3 Monte
   Carlo SE at every probed time.
4. **Infinite-width NTK regression** (analytic kernel,
   :func:`wideth.kernels.predict.gradient_descent_mse` with ``discrete=True``)
   against trained finite-width MLPs in NTK parameterisation
   (:func:`wideth.train.run`, all seeds of a width in one ``vmap``), same
   gradient-descent steps (Jacot et al. 2018; Lee et al. 2019). **Claims**: the
   relative distance between the test predictions of width :math:`w` and the
   kernel ones decays as :math:`w^{-1/2}` (Lee et al. 2019, Thm. 2.1 and
   Sec. 2.3: the finite-width NTK fluctuates by :math:`O(w^{-1/2})`); the log-log
   slope, fitted per seed over :math:`w \ge 1024`, is :math:`-1/2` within 3 SE
   over seeds. Below 1024 the asymptotics have not set in at this precision:
   the :math:`O(w^{-1})` next order makes the slope between 256 and 1024 about
   :math:`-0.47` (reported in the check's note), so those widths are left out.
   The test MSE of width :math:`w` is
   :math:`E\|f_w-y\|^2 = \|f_\infty-y\|^2 + E\|f_w-f_\infty\|^2 +
   2\langle f_\infty - y, E f_w - f_\infty\rangle = \mathrm{MSE}_\infty + c/w +
   O(w^{-3/2})`, since :math:`f_w - f_\infty = O(w^{-1/2})` with mean
   :math:`O(1/w)`; so its :math:`1/w` extrapolation (fitted per seed over
   :math:`w\ge256`) equals the kernel's test MSE within 3 SE over seeds.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.common import Config, Result, Sizes, check, check_max_z, cli, save_figure

SIZES = Sizes(
    quick=dict(
        n_hastie=200,
        seeds_hastie=64,
        n_rf=300,
        n_rf_test=400,
        rf_seeds=8,
        n_gf=200,
        p_gf=100,
        gf_designs=4,
        gd_n=100,
        gd_p=50,
        gd_draws=256,
        n_ntk=128,
        n_ntk_test=256,
        widths=(64, 256, 1024, 4096),
        ntk_steps=300,
        ntk_seeds=8,
    ),
    full=dict(
        n_hastie=1000,
        seeds_hastie=128,
        n_rf=1000,
        n_rf_test=2000,
        rf_seeds=8,
        n_gf=1000,
        p_gf=500,
        gf_designs=4,
        gd_n=500,
        gd_p=250,
        gd_draws=1024,
        n_ntk=512,
        n_ntk_test=1000,
        widths=(64, 256, 1024, 4096, 16384, 65536),
        ntk_steps=1000,
        ntk_seeds=8,
    ),
)
R2, SIGMA2 = 1.0, 0.25  # signal strength and noise of part 1
GAMMAS = (0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.05, 1.1, 1.2, 1.5, 2.0, 3.0, 4.0, 5.0)
CHECKED_GAMMAS = (0.5, 0.9, 2.0, 4.0)
RF_FRACTIONS = (0.1, 0.2, 0.35, 0.5, 0.7, 0.85, 0.95, 1.0, 1.05, 1.15, 1.3, 1.6, 2, 3, 5)
GD_TIMES = (0.3, 1.0, 3.0, 10.0, 30.0)
GD_LR = 0.05
K_SE = 3.0  # every stochastic check: tolerance = K_SE standard errors
MIN_SLOPE_WIDTH = 1024  # widths used in the slope fit of part 4
MIN_FIT_WIDTH = 256  # widths used in the 1/width extrapolation of part 4


# --------------------------------------------------------------------------- 1. Hastie et al.


def hastie_risk(gamma: float, r2: float = R2, sigma2: float = SIGMA2) -> float:
    r"""Asymptotic excess risk of min-norm least squares (Hastie et al. 2019, Thm. 1).

    .. math::

        R(\gamma) = \sigma^2\gamma/(1-\gamma)\ (\gamma<1), \quad
        r^2(1-1/\gamma) + \sigma^2/(\gamma-1)\ (\gamma>1), \quad \infty\ (\gamma=1).

    Args:
      gamma: aspect ratio :math:`p/n > 0`.
      r2: signal strength :math:`\|\beta\|^2`.
      sigma2: noise variance.

    Returns:
      The limiting risk :math:`\lim E\|\hat\beta-\beta\|^2`.

    References:
      Hastie, Montanari, Rosset, Tibshirani, `Surprises in High-Dimensional Ridgeless
      Least Squares Interpolation <https://arxiv.org/abs/1903.08560>`_, 2019.
    """
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    if gamma < 1:
        return sigma2 * gamma / (1 - gamma)
    if gamma == 1:
        return math.inf
    return r2 * (1 - 1 / gamma) + sigma2 / (gamma - 1)


def hastie_risk_finite(n: int, p: int, r2: float = R2, sigma2: float = SIGMA2) -> float:
    r"""Exact expected risk of min-norm least squares at finite :math:`n, p`, Gaussian design.

    .. math::

        E\|\hat\beta-\beta\|^2 = \sigma^2\frac{p}{n-p-1}\ (p<n-1),\qquad
        r^2\Big(1-\frac np\Big) + \sigma^2\frac{n}{p-n-1}\ (p>n+1),

    and :math:`\infty` for :math:`|p-n|\le1` (derivation in the module docstring).
    """
    if p < n - 1:
        return sigma2 * p / (n - p - 1)
    if p > n + 1:
        return r2 * (1 - n / p) + sigma2 * n / (p - n - 1)
    return math.inf


def min_norm_solution(x: jax.Array, y: jax.Array) -> jax.Array:
    r""":math:`X^+y` as ridgeless kernel regression with the linear kernel :math:`K=XX^\top`.

    A linear model :math:`f(u) = u\cdot\beta` trained by gradient descent from
    :math:`\beta=0` to convergence is kernel regression with :math:`K(u,v)=u\cdot v`
    (:func:`wideth.kernels.predict.gradient_descent_mse` at ``t=None``, which
    inverts :math:`K` on its range); evaluated at the basis vectors
    :math:`e_j` (``k_test_train = X^T``) its predictions are the coefficients
    :math:`\hat\beta_j`. Jittable and ``vmap``-able.

    Args:
      x: ``(n, p)`` design.
      y: ``(n,)`` targets.

    Returns:
      ``(p,)`` minimum-norm least-squares coefficients.
    """
    from wideth.kernels import predict

    predict_fn = predict.gradient_descent_mse(x @ x.T, y)
    _, beta_hat = predict_fn(t=None, k_test_train=x.T)
    return beta_hat


def min_norm_risks(
    key: jax.Array,
    n: int,
    p: int,
    num_seeds: int,
    r2: float = R2,
    sigma2: float = SIGMA2,
) -> np.ndarray:
    r"""Monte Carlo excess risks :math:`\|X^+y-\beta\|^2` of min-norm least squares.

    Draws :math:`X\in\mathbb R^{n\times p}` with i.i.d. :math:`\mathcal N(0,1)`
    entries, :math:`\beta` uniform on the sphere of radius :math:`r`,
    :math:`y = X\beta+\varepsilon`, :math:`\varepsilon\sim\mathcal N(0,\sigma^2 I)`;
    the risk on a fresh isotropic test point is :math:`\|\hat\beta-\beta\|^2`.
    :math:`X^+y` is :math:`(X^\top X)^{-1}X^\top y` or :math:`X^\top(XX^\top)^{-1}y`
    by one float64 ``numpy.linalg.solve`` per draw (measured ~10x faster on CPU
    than the eigendecomposition in :func:`min_norm_solution`, which
    ``tests/test_experiments_double_descent.py`` checks it against).

    Returns:
      ``(num_seeds,)`` float64 risks.
    """
    rng = np.random.default_rng(int(jax.random.bits(key, dtype=jnp.uint32)))
    out = []
    for start in range(0, num_seeds, 8):  # chunks of seeds bound the memory
        s = min(8, num_seeds - start)
        x = rng.standard_normal((s, n, p))
        beta = rng.standard_normal((s, p))
        beta *= math.sqrt(r2) / np.linalg.norm(beta, axis=1, keepdims=True)
        y = (x @ beta[..., None])[..., 0] + math.sqrt(sigma2) * rng.standard_normal((s, n))
        out.append(np.sum((min_norm_numpy(x, y) - beta) ** 2, axis=1))
    return np.concatenate(out)


def min_norm_numpy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Batched :math:`X^+y` for ``x`` ``(s, n, p)``, ``y`` ``(s, n)`` of full rank (float64)."""
    xt = np.swapaxes(x, 1, 2)
    if x.shape[2] <= x.shape[1]:  # (X^T X)^{-1} X^T y
        return np.linalg.solve(xt @ x, xt @ y[..., None])[..., 0]
    return (xt @ np.linalg.solve(x @ xt, y[..., None]))[..., 0]  # min-norm interpolant


def hastie_curve(
    key: jax.Array,
    n: int,
    gammas: Any,
    num_seeds: int,
    r2: float = R2,
    sigma2: float = SIGMA2,
) -> dict[str, np.ndarray]:
    """Mean and standard error of the min-norm risk over a grid of ``gamma = p/n``."""
    means, sems, ps = [], [], []
    for i, g in enumerate(gammas):
        p = max(1, int(round(g * n)))
        risks = min_norm_risks(jax.random.fold_in(key, i), n, p, num_seeds, r2, sigma2)
        means.append(risks.mean())
        sems.append(risks.std(ddof=1) / math.sqrt(num_seeds))
        ps.append(p)
    ps = np.array(ps)
    return {
        "n": n,
        "num_seeds": num_seeds,
        "gamma": ps / n,
        "p": ps,
        "mean": np.array(means),
        "sem": np.array(sems),
        "theory": np.array([hastie_risk(p / n, r2, sigma2) for p in ps]),
        "finite_n": np.array([hastie_risk_finite(n, int(p), r2, sigma2) for p in ps]),
    }


def hastie_checks(h: dict[str, Any], gammas: tuple[float, ...] = CHECKED_GAMMAS) -> list[dict]:
    """Monte Carlo mean vs the exact finite-n risk, tolerance ``K_SE`` standard errors."""
    out = []
    for g in gammas:
        i = int(np.argmin(np.abs(h["gamma"] - g)))
        se = float(h["sem"][i])
        out.append(
            check(
                f"min-norm risk at gamma={g} (n={h['n']}) = exact finite-n risk",
                float(h["finite_n"][i]),
                float(h["mean"][i]),
                K_SE * se,
                note=(
                    "Hastie et al. 2019 Thm. 1 at finite n (exact Gaussian-design mean, "
                    f"module docstring; asymptotic R = {h['theory'][i]:.4g}); tolerance "
                    f"{K_SE:g} SE, SE {se:.3g} from {h['num_seeds']} seeds"
                ),
            )
        )
    return out


# --------------------------------------------------------------------------- 2. random features


def random_relu_features(key: jax.Array, x: jax.Array, num_features: int) -> jax.Array:
    r"""Random ReLU features :math:`\phi(x) = \sqrt{2/N}\,\mathrm{relu}(W x/\sqrt d)`.

    With :math:`W_{ij}\sim\mathcal N(0,1)`, :math:`\phi(x)\cdot\phi(x')` tends to
    the degree-1 arc-cosine kernel as :math:`N\to\infty` (Cho & Saul 2009;
    Rahimi & Recht, *Random Features for Large-Scale Kernel Machines*, 2007).

    Args:
      key: PRNG key for :math:`W`.
      x: ``(n, d)`` inputs.
      num_features: :math:`N`.

    Returns:
      ``(n, N)`` features.
    """
    d = x.shape[1]
    w = jax.random.normal(key, (d, num_features), x.dtype)
    return jnp.sqrt(2.0 / num_features) * jax.nn.relu(x @ w / jnp.sqrt(d))


def ridge_path_errors(
    phi_train: np.ndarray,
    y_train: np.ndarray,
    phi_test: np.ndarray,
    y_test: np.ndarray,
    ridges: np.ndarray,
) -> np.ndarray:
    r"""Test MSE of ridge regression on features for every ridge, from one ``eigh``.

    .. math::

        \hat a_\lambda = (\Phi^\top\Phi + \lambda I)^{-1}\Phi^\top Y
                        = \Phi^\top(\Phi\Phi^\top + \lambda I)^{-1} Y,

    evaluated in the eigenbasis of the smaller Gram matrix (one decomposition
    for the whole ridge path, which a per-ridge kernel solve would repeat);
    :math:`\lambda=0` is the min-norm interpolant (pseudo-inverse, eigenvalues
    below :math:`10^{-12}` of the largest dropped). MSE is
    :math:`\frac1{n_{\rm test}}\sum_i\|\Phi_{\rm test}\hat a - y_i\|^2`.

    Returns:
      ``(len(ridges),)`` test MSE.
    """
    a = np.asarray(phi_train, np.float64)
    b = np.asarray(phi_test, np.float64)
    y = np.asarray(y_train, np.float64)
    if a.shape[1] >= a.shape[0]:  # kernel form: n x n Gram
        ev, q = np.linalg.eigh(a @ a.T)
        left = (b @ a.T) @ q  # (n_test, n)
        right = q.T @ y
    else:  # primal form: N x N Gram
        ev, q = np.linalg.eigh(a.T @ a)
        left = b @ q
        right = q.T @ (a.T @ y)
    keep = ev > ev.max() * 1e-12
    out = []
    for lam in ridges:
        filt = np.where(keep, 1 / np.where(keep, ev + lam, 1.0), 0.0)
        pred = left @ (filt[:, None] * right)
        out.append(np.mean(np.sum((pred - y_test) ** 2, axis=1)))
    return np.array(out)


def random_features_curve(
    key: jax.Array,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    num_features: np.ndarray,
    ridges: np.ndarray,
    num_seeds: int = 3,
    quiet: bool = True,
) -> dict[str, np.ndarray]:
    """Test MSE of random-ReLU-feature regression vs number of features and ridge.

    Features are nested: the first :math:`N` columns of one draw at the largest
    :math:`N`, one draw per seed.

    Returns:
      dict with ``num_features`` ``(F,)``, ``ridges`` ``(R,)``, ``errors``
      ``(num_seeds, F, R)`` test MSE (ridge 0 = min-norm), seed means
      ``min_norm`` with ``min_norm_sem`` and ``optimal`` (per seed the
      test-optimal ridge, then the mean) with ``optimal_sem``, ``(F,)``.
    """
    from tqdm import tqdm

    ridges = np.asarray(ridges, np.float64)
    errors = np.zeros((num_seeds, len(num_features), len(ridges)))
    xtr, xte = jnp.asarray(x_train, jnp.float32), jnp.asarray(x_test, jnp.float32)
    yc = np.asarray(y_train, np.float64)
    yt = np.asarray(y_test, np.float64)
    big = int(max(num_features))
    with tqdm(total=num_seeds * len(num_features), desc="random features", disable=quiet) as bar:
        for s in range(num_seeds):
            phi_all = random_relu_features(
                jax.random.fold_in(key, s), jnp.concatenate([xtr, xte]), big
            )
            phi_all = np.asarray(phi_all, np.float64) * math.sqrt(big)
            for j, nf in enumerate(num_features):
                phi = phi_all[:, : int(nf)] / math.sqrt(int(nf))
                errors[s, j] = ridge_path_errors(phi[: len(xtr)], yc, phi[len(xtr) :], yt, ridges)
                bar.update()
    i0 = int(np.argmin(np.abs(ridges)))
    best = errors.min(axis=2)  # (seeds, F): test-optimal ridge per draw
    sem = lambda a: a.std(axis=0, ddof=1) / math.sqrt(num_seeds)  # noqa: E731
    return {
        "num_features": np.asarray(num_features),
        "ridges": ridges,
        "errors": errors,
        "min_norm": errors[:, :, i0].mean(0),
        "min_norm_sem": sem(errors[:, :, i0]),
        "optimal": best.mean(0),
        "optimal_sem": sem(best),
        "optimal_per_seed": best,
        "optimal_ridge": ridges[np.argmin(errors, axis=2)],
    }


def rf_summary(rf: dict[str, Any], n: int) -> dict[str, Any]:
    """The numbers the random-feature checks compare, with their standard errors.

    ``log_peak`` per draw is :math:`\\log[\\mathrm{MSE}(N{=}n)/\\min_{N\\le n/2}\\mathrm{MSE}(N)]`
    (min-norm); ``increase_z`` is, per pair of consecutive :math:`N`, the mean
    increase of the optimal-ridge MSE over draws divided by its paired SE.
    """
    nfs = np.asarray(rf["num_features"])
    errors = np.asarray(rf["errors"])
    ridges = np.asarray(rf["ridges"])
    i0 = int(np.argmin(np.abs(ridges)))
    s = errors.shape[0]
    ipk = int(np.argmin(np.abs(nfs - n)))
    below = nfs <= n // 2
    mn = errors[:, :, i0]
    log_peak = np.log(mn[:, ipk] / mn[:, below].min(axis=1))
    best = errors.min(axis=2)
    inc = np.diff(best, axis=1)  # (seeds, F-1)
    inc_se = inc.std(axis=0, ddof=1) / math.sqrt(s)
    z = inc.mean(0) / np.maximum(inc_se, 1e-12 * np.abs(best).max())
    return {
        "n": n,
        "num_seeds": s,
        "log_peak_mean": float(log_peak.mean()),
        "log_peak_se": float(log_peak.std(ddof=1) / math.sqrt(s)),
        "peak_ratio": float(np.exp(log_peak.mean())),
        "increase_mean": inc.mean(0),
        "increase_se": inc_se,
        "increase_z": z,
    }


def rf_checks(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Peak of the min-norm curve at N = n; no peak with the optimal ridge (module docstring)."""
    lower = s["log_peak_mean"] - K_SE * s["log_peak_se"]
    j = int(np.argmax(s["increase_z"]))
    return [
        check(
            "RF min-norm: test MSE peaks at N = n, log[MSE(N=n) / min MSE(N<=n/2)] > 0",
            f"> 0 by {K_SE:g} SE",
            s["log_peak_mean"],
            None,
            passed=bool(lower > 0),
            note=(
                f"Belkin et al. 2019, Fig. 2; one-sided {K_SE:g} SE, SE {s['log_peak_se']:.3g} "
                f"from {s['num_seeds']} feature draws (ratio {s['peak_ratio']:.3g})"
            ),
        ),
        check(
            "RF optimal ridge: no peak, max_N (increase of MSE to the next N) / SE",
            f"<= {K_SE:g}",
            float(s["increase_z"][j]),
            K_SE,
            passed=bool(s["increase_z"][j] <= K_SE),
            note=(
                f"Nakkiran et al. 2021, Fig. 1; test-optimal ridge per draw, paired SE over "
                f"{s['num_seeds']} draws (largest: {s['increase_mean'][j]:.3g} +- "
                f"{s['increase_se'][j]:.2g})"
            ),
        ),
    ]


# --------------------------------------------------------------------------- 3. ridge vs GF


def ridge_filter(s: np.ndarray, lam: float) -> np.ndarray:
    r"""Fraction of the OLS coefficient kept by ridge, :math:`s_i/(s_i+\lambda)`."""
    return s / (s + lam)


def gradient_flow_filter(s: np.ndarray, t: float) -> np.ndarray:
    r"""Fraction kept by gradient flow from zero at time :math:`t`, :math:`1-e^{-s_i t}`."""
    return -np.expm1(-s * t)


def gradient_descent_filter(s: np.ndarray, lr: float, steps: int) -> np.ndarray:
    r"""Fraction kept by ``steps`` GD steps of size :math:`\eta` from zero: :math:`1-(1-\eta s)^k`.

    (Ali, Kolter, Tibshirani 2019, Lemma 3: GD on :math:`\frac1{2n}\|y-X\beta\|^2`
    is this filter on the eigenvalues :math:`s_i` of :math:`X^\top X/n`.)
    """
    return 1.0 - (1.0 - lr * s) ** steps


def ali_kolter_tibshirani_bound() -> tuple[float, float]:
    r"""Exact :math:`\sup_{x>0} h(x)^2`, :math:`h(x) = (1-e^{-x})(1+x)/x`, and its maximiser.

    The variance part of the flow/ridge risk ratio in one eigen-direction at
    :math:`t = 1/\lambda`, :math:`x = s_i t`; the bias part
    :math:`(e^{-x}(1+x))^2` is at most 1, so the Bayes-risk ratio is at most
    this supremum for every design (Ali, Kolter, Tibshirani 2019, Thm. 1, who
    state 1.6862). The maximiser solves
    :math:`\frac{d}{dx}\log h = \frac{1}{e^x-1} + \frac1{1+x} - \frac1x = 0`.

    Returns:
      ``(sup, x_star)`` = ``(1.685909..., 1.793282...)``.
    """
    from scipy.optimize import brentq

    dlog = lambda x: 1.0 / math.expm1(x) + 1.0 / (1.0 + x) - 1.0 / x  # noqa: E731
    x = brentq(dlog, 0.5, 5.0, xtol=1e-14)
    return float(((1 - math.exp(-x)) * (1 + x) / x) ** 2), float(x)


def filter_bayes_risk(
    sq_singular: np.ndarray, n: int, p: int, kept: np.ndarray, r2: float, sigma2: float
) -> float:
    r"""Bayes estimation risk of a spectral-filter estimator, exact given :math:`X`.

    With :math:`X = U\,\mathrm{diag}(\sqrt{n s_i})V^\top`, prior
    :math:`\beta\sim\mathcal N(0, (r^2/p) I)` and estimator
    :math:`V^\top\hat\beta = g(s)\odot V^\top\hat\beta_{\rm OLS}`,

    .. math::

        E\|\hat\beta-\beta\|^2 = \sum_i\Big[(1-g_i)^2\frac{r^2}{p}
        + \sigma^2\frac{g_i^2}{n s_i}\Big] + (p-\mathrm{rank}\,X)\frac{r^2}{p}.

    Args:
      sq_singular: eigenvalues :math:`s_i>0` of :math:`X^\top X/n`.
      n, p: samples and dimension.
      kept: filter values :math:`g_i`, same shape as ``sq_singular``.
      r2, sigma2: prior signal strength and noise variance.
    """
    bias = np.sum((1 - kept) ** 2) * r2 / p + (p - len(sq_singular)) * r2 / p
    var = sigma2 * np.sum(kept**2 / (n * sq_singular))
    return float(bias + var)


def ridge_vs_gradient_flow(
    key: jax.Array,
    n: int,
    p: int,
    lambdas: np.ndarray,
    num_draws: int = 4,
    r2: float = 1.0,
    sigma2: float = 1.0,
    decay: float = 1.0,
) -> dict[str, np.ndarray]:
    r"""Exact Bayes risk of ridge(:math:`\lambda`) and gradient flow(:math:`t=1/\lambda`).

    Rows of :math:`X` are :math:`\mathcal N(0,\Sigma)` with
    :math:`\Sigma_{jj}\propto j^{-\mathrm{decay}}` (trace :math:`p`), so the sample
    spectrum is spread over decades. ``ratio`` is, per :math:`\lambda`, the
    largest flow/ridge ratio over the ``num_draws`` designs (at most
    :func:`ali_kolter_tibshirani_bound` for every design); ``ridge``, ``flow``
    are the design means.
    """
    ridge = np.zeros((num_draws, len(lambdas)))
    flow = np.zeros_like(ridge)
    diag = np.arange(1, p + 1, dtype=np.float64) ** (-decay)
    diag *= p / diag.sum()
    spectra = []
    for d in range(num_draws):
        z = np.asarray(jax.random.normal(jax.random.fold_in(key, d), (n, p)), np.float64)
        x = z * np.sqrt(diag)
        s = np.linalg.svd(x, compute_uv=False) ** 2 / n
        s = s[s > s[0] * 1e-12]
        spectra.append(s)
        for i, lam in enumerate(lambdas):
            ridge[d, i] = filter_bayes_risk(s, n, p, ridge_filter(s, lam), r2, sigma2)
            flow[d, i] = filter_bayes_risk(s, n, p, gradient_flow_filter(s, 1 / lam), r2, sigma2)
    return {
        "lambdas": np.asarray(lambdas),
        "ridge": ridge.mean(0),
        "flow": flow.mean(0),
        "ratio": (flow / ridge).max(0),
        "optimal_ratio": float((flow.min(1) / ridge.min(1)).max()),
        "spectrum": spectra[0],
    }


def gradient_descent_risk_path(
    key: jax.Array,
    n: int,
    p: int,
    times: Any,
    lr: float,
    r2: float = 1.0,
    sigma2: float = 1.0,
    num_draws: int = 64,
) -> dict[str, np.ndarray]:
    r"""Monte Carlo risk of real gradient descent from zero vs its exact filter risk.

    One isotropic design :math:`X`; ``num_draws`` draws of
    :math:`\beta\sim\mathcal N(0,r^2/p\,I)` and noise, each trained by
    :func:`wideth.train.run` (full-batch SGD on the linear model
    :math:`f(x) = x\cdot\beta`, loss :func:`wideth.train.mse`, one ``vmap``
    over draws) with :math:`\|\beta_k-\beta\|^2` probed in the loop. At
    :math:`k=t/\eta` the Monte Carlo mean (with its standard error) is returned
    beside the exact Bayes risk of the discrete filter
    (:func:`gradient_descent_filter`) and of gradient flow at the same :math:`t`.
    """
    import optax

    from wideth import train

    kx, kb, ke = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n, p), jnp.float32)
    betas = jax.random.normal(kb, (num_draws, p, 1)) * math.sqrt(r2 / p)
    ys = x @ betas + math.sqrt(sigma2) * jax.random.normal(ke, (num_draws, n, 1))
    steps = np.round(np.asarray(times) / lr).astype(int)
    every = int(np.gcd.reduce(steps))
    tx = optax.sgd(lr)
    step = train.train_step(lambda b, u: u @ b, "mse", tx, metrics=())

    def one(beta, y):
        probes = {"risk": lambda state, batch: jnp.sum((state.params - beta) ** 2)}
        state = train.TrainState.create(jnp.zeros((p, 1)), tx)
        return train.run(step, state, (x, y), int(steps.max()), probes=probes, every=every)

    res = jax.jit(jax.vmap(one))(betas, ys)
    risks = np.asarray(res.probes["risk"], np.float64)  # (draws, steps/every + 1)
    at = risks[:, steps // every]
    s = np.linalg.svd(np.asarray(x, np.float64), compute_uv=False) ** 2 / n
    s = s[s > s[0] * 1e-12]
    exact = [
        filter_bayes_risk(s, n, p, gradient_descent_filter(s, lr, k), r2, sigma2) for k in steps
    ]
    flow = [filter_bayes_risk(s, n, p, gradient_flow_filter(s, t), r2, sigma2) for t in times]
    return {
        "times": np.asarray(times, np.float64),
        "steps": steps,
        "num_draws": num_draws,
        "gd_mean": at.mean(0),
        "gd_sem": at.std(0, ddof=1) / math.sqrt(num_draws),
        "gd_exact": np.asarray(exact),
        "flow_exact": np.asarray(flow),
    }


def gd_checks(gd: dict[str, Any]) -> list[dict[str, Any]]:
    """Trained GD vs the exact risk of its filter: max over t of |MC - exact| / SE <= K_SE."""
    z = (gd["gd_mean"] - gd["gd_exact"]) / gd["gd_sem"]
    return [
        check_max_z(
            "discrete GD (wideth.train.run) risk = exact discrete-filter Bayes risk, max_t |z|",
            z,
            K_SE,
            kind="consistency",
            note=(
                f"AKT 2019 Lemma 3 filter 1-(1-eta s)^k in the exact risk; SE from "
                f"{gd['num_draws']} draws of (beta, noise) on one design, t = "
                f"{', '.join(f'{t:g}' for t in gd['times'])}"
            ),
        )
    ]


# --------------------------------------------------------------------------- 4. NTK vs width


def kernel_predictions(
    x_train: Any, y_train: Any, x_test: Any, depth: int, steps: int, lr_fraction: float
) -> dict[str, Any]:
    r"""Infinite-width predictions of ``steps`` GD steps, and the step size :math:`\eta`.

    :math:`f_T(x) = \Theta(x, X)\,V\frac{I - (I - \eta\Lambda/n)^T}{\Lambda}V^\top Y`
    (Lee et al. 2019, Eq. 16, discrete time; :math:`f_0 \equiv 0` for the centred
    network) from :func:`wideth.kernels.predict.gradient_descent_mse` with the
    analytic NTK in float64; :math:`\eta` is ``lr_fraction`` times
    :func:`wideth.kernels.predict.max_learning_rate`.
    """
    from wideth.kernels import analytic, predict

    xtr, xte = jnp.asarray(x_train, jnp.float32), jnp.asarray(x_test, jnp.float32)
    n = xtr.shape[0]
    _, _, kernel_fn = analytic.mlp(depth=depth, width=1, activation="relu")
    k_all = np.asarray(analytic.kernel(kernel_fn, jnp.concatenate([xtr, xte]), get="ntk"))
    with jax.enable_x64(True):
        k_all = jnp.asarray(k_all, jnp.float64)
        k_tt, k_st = k_all[:n, :n], k_all[n:, :n]
        lr = lr_fraction * float(predict.max_learning_rate(k_tt))
        fn = predict.gradient_descent_mse(
            k_tt, jnp.asarray(y_train, jnp.float64), learning_rate=lr, discrete=True
        )
        _, f_test = fn(t=steps, k_test_train=k_st)
        f_test = np.asarray(f_test, np.float64)
    return {"lr": lr, "f_test": f_test}


def train_width(
    width: int,
    seeds: Any,
    x_train: Any,
    y_train: Any,
    x_test: Any,
    depth: int,
    steps: int,
    lr: float,
) -> np.ndarray:
    r"""Centred test outputs :math:`f_T(x)-f_0(x)` of MLPs of one width, all seeds in one ``vmap``.

    NTK-parameterised ReLU MLPs (:class:`wideth.models.MLP`), full-batch GD with
    step ``lr`` on :func:`wideth.train.mse` through :func:`wideth.train.run`.
    Training the centred model :math:`f_\theta - f_{\theta_0}` on :math:`Y` is
    training :math:`f_\theta` on :math:`Y + f_{\theta_0}(X)` (same gradients, same
    loss), which keeps :math:`\theta_0` out of the ``apply_fn``, so seeds ``vmap``.

    Returns:
      ``(len(seeds), n_test, k)`` float64 centred test predictions.
    """
    import optax
    from flax import nnx

    from wideth import models, train

    xtr, xte = jnp.asarray(x_train, jnp.float32), jnp.asarray(x_test, jnp.float32)
    ytr = jnp.asarray(y_train, jnp.float32)
    apply_fn, plist = None, []
    for s in seeds:
        model = models.MLP(
            xtr.shape[1], width, depth, out_dim=ytr.shape[1], activation="relu", rngs=nnx.Rngs(s)
        )
        apply_fn, p0 = models.functional(model)
        plist.append(p0)
    params0 = jax.tree.map(lambda *a: jnp.stack(a), *plist)
    tx = optax.sgd(lr)
    step = train.train_step(apply_fn, "mse", tx, metrics=())

    def one(p0):
        data = (xtr, ytr + apply_fn(p0, xtr))
        res = train.run(step, train.TrainState.create(p0, tx), data, steps)
        return apply_fn(res.state.params, xte) - apply_fn(p0, xte)

    return np.asarray(jax.jit(jax.vmap(one))(params0), np.float64)


def ntk_vs_width(
    key: jax.Array,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    widths: Any,
    depth: int = 1,
    steps: int = 300,
    lr_fraction: float = 0.5,
    num_seeds: int = 8,
    quiet: bool = True,
) -> dict[str, Any]:
    r"""Kernel (infinite-width) GD predictions vs trained finite MLPs of growing width.

    Returns per width and seed the relative test-prediction distance
    :math:`\|f_w - f_\infty\|/\|f_\infty\|` (``dist``) and the test MSE
    (``errs``), both ``(len(widths), num_seeds)``, and the kernel's test MSE
    ``err_inf``.
    """
    from tqdm import tqdm

    yte = np.asarray(y_test, np.float64)
    ker = kernel_predictions(x_train, y_train, x_test, depth, steps, lr_fraction)
    pred_inf = ker["f_test"]
    err_inf = float(np.mean(np.sum((pred_inf - yte) ** 2, axis=1)))
    dist = np.zeros((len(widths), num_seeds))
    errs = np.zeros_like(dist)
    for i, w in enumerate(tqdm(widths, desc="finite widths", disable=quiet)):
        seeds = [
            int(jax.random.randint(jax.random.fold_in(key, 1000 * i + s), (), 0, 2**30))
            for s in range(num_seeds)
        ]
        pred = train_width(w, seeds, x_train, y_train, x_test, depth, steps, ker["lr"])
        dist[i] = np.linalg.norm(pred - pred_inf, axis=(1, 2)) / np.linalg.norm(pred_inf)
        errs[i] = np.mean(np.sum((pred - yte) ** 2, axis=2), axis=1)
    return {
        "widths": np.asarray(widths),
        "lr": ker["lr"],
        "steps": steps,
        "num_seeds": num_seeds,
        "err_inf": err_inf,
        "dist": dist,
        "errs": errs,
        "err_finite": errs.mean(1),
        "err_finite_sem": errs.std(1, ddof=1) / math.sqrt(num_seeds),
        "rel_dist": dist.mean(1),
        "rel_dist_sem": dist.std(1, ddof=1) / math.sqrt(num_seeds),
    }


def ntk_summary(
    nt: dict[str, Any], min_slope_width: int = MIN_SLOPE_WIDTH, min_width: int = MIN_FIT_WIDTH
) -> dict[str, Any]:
    r"""Per-seed fits: the log-log slope of the distance over widths :math:`\ge`
    ``min_slope_width``, and the :math:`1/w` extrapolation :math:`\mathrm{MSE}(w) = a + c/w`
    of the test MSE over widths :math:`\ge` ``min_width``.

    Seeds are independent draws, so the standard errors are the spread of the
    per-seed fits over :math:`\sqrt{S}`.
    """
    w = np.asarray(nt["widths"], np.float64)
    dist, errs = np.asarray(nt["dist"]), np.asarray(nt["errs"])
    s = dist.shape[1]
    ss = w >= min_slope_width
    slopes = np.array([np.polyfit(np.log(w[ss]), np.log(dist[ss, j]), 1)[0] for j in range(s)])
    sel = w >= min_width
    design = np.stack([np.ones(sel.sum()), 1 / w[sel]], axis=1)
    coef = np.linalg.lstsq(design, errs[sel], rcond=None)[0]  # (2, seeds)
    local = np.diff(np.log(dist.mean(1))) / np.diff(np.log(w))
    return {
        "slope_widths": w[ss],
        "fit_widths": w[sel],
        "local_slopes": local,
        "slope": float(slopes.mean()),
        "slope_se": float(slopes.std(ddof=1) / math.sqrt(s)),
        "intercept": float(coef[0].mean()),
        "intercept_se": float(coef[0].std(ddof=1) / math.sqrt(s)),
        "one_over_w": float(coef[1].mean()),
        "err_inf": float(nt["err_inf"]),
        "num_seeds": s,
    }


def ntk_checks(s: dict[str, Any]) -> list[dict[str, Any]]:
    """The two NTK claims of the module docstring, each with tolerance ``K_SE`` SE."""
    ws = ", ".join(str(int(w)) for w in s["slope_widths"])
    wf = ", ".join(str(int(w)) for w in s["fit_widths"])
    local = ", ".join(f"{v:.3f}" for v in s["local_slopes"])
    return [
        check(
            "finite-width test predictions -> NTK: log-log slope of the relative distance",
            -0.5,
            s["slope"],
            K_SE * s["slope_se"],
            note=(
                f"Lee et al. 2019 Thm. 2.1 (O(w^-1/2)); per-seed fit over widths {ws} "
                f"(slopes between successive widths {local}: the w^-1 term still shows below "
                f"that); tolerance {K_SE:g} SE, SE {s['slope_se']:.3g} from {s['num_seeds']} seeds"
            ),
        ),
        check(
            "test MSE extrapolated in 1/width = infinite-width NTK test MSE",
            s["err_inf"],
            s["intercept"],
            K_SE * s["intercept_se"],
            note=(
                f"MSE(w) = MSE_inf + c/w (module docstring), per-seed fit over widths {wf}; "
                f"tolerance {K_SE:g} SE, SE {s['intercept_se']:.3g} from {s['num_seeds']} seeds"
            ),
        ),
    ]


# --------------------------------------------------------------------------- figures


def _se_bars(ax, x, mean, sem, label: str, fmt: str = "o", se: bool = True, **kw: Any):
    """Error bars of ``K_SE`` standard errors; ``se`` appends "(±K_SE SE)" to ``label``."""
    label = f"{label} (±{K_SE:g} SE)" if se else label
    ax.errorbar(x, mean, yerr=K_SE * np.asarray(sem), fmt=fmt, capsize=2, label=label, **kw)


def plot_hastie(h: dict[str, Any], n: int, r2: float = R2, sigma2: float = SIGMA2):
    """Figure: Monte Carlo min-norm risk (error bars = the check's 3 SE) vs exact and limit."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.8, 3.9))
    ps = np.arange(1, 5 * n + 1)
    ps = ps[np.abs(ps - n) > max(2, n // 50)]
    g = ps / n
    fin = np.array([hastie_risk_finite(n, int(p), r2, sigma2) for p in ps])
    asym = np.array([hastie_risk(x, r2, sigma2) for x in g])
    for side in (g < 1, g > 1):
        ax.plot(g[side], fin[side], "k-", lw=1.3, label=f"exact, n = {n}" if side[0] else None)
        ax.plot(g[side], asym[side], "k:", lw=1.0, label="Hastie et al. limit" if side[0] else None)
    _se_bars(ax, h["gamma"], h["mean"], h["sem"], f"min-norm LS, {h['num_seeds']} seeds", ms=4)
    chk = [int(np.argmin(np.abs(h["gamma"] - c))) for c in CHECKED_GAMMAS]
    ax.plot(h["gamma"][chk], h["mean"][chk], "rs", mfc="none", ms=9, label="checked")
    ax.axhline(r2, color="gray", ls="--", lw=0.8, label="null risk r²")
    ax.set(xlabel="γ = p / n", ylabel="excess risk", ylim=(0, 6), title="Min-norm least squares")
    ax.legend(fontsize=7)
    return fig


def plot_random_features(rf: dict[str, Any], n: int, dataset: str):
    """Figure: random-feature test MSE vs #features, min-norm and optimal ridge (±3 SE)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.8, 3.9))
    nf = rf["num_features"]
    label = f"min-norm (ridge → 0), ±{K_SE:g} SE"
    _se_bars(ax, nf, rf["min_norm"], rf["min_norm_sem"], label, "o-", se=False, ms=3)
    mean = np.asarray(rf["errors"]).mean(0)
    for lam_i in range(1, len(rf["ridges"]), max(1, len(rf["ridges"]) // 4)):
        ax.plot(
            nf, mean[:, lam_i], "-", lw=0.8, alpha=0.6, label=f"ridge {rf['ridges'][lam_i]:.0e}"
        )
    _se_bars(ax, nf, rf["optimal"], rf["optimal_sem"], "test-optimal ridge", "k^-", ms=4, se=False)
    ax.axvline(n, color="gray", ls="--", lw=0.8, label="N = n (interpolation)")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="number of random features N",
        ylabel="test MSE",
        title=f"Random ReLU features on {dataset}, n={n}",
    )
    ax.legend(fontsize=7)
    return fig


def plot_filters(rg: dict[str, Any], gd: dict[str, Any]):
    """Figure: filters; exact flow/ridge risk ratio vs its bound; trained GD vs its exact risk."""
    import matplotlib.pyplot as plt

    bound, _ = ali_kolter_tibshirani_bound()
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.7))
    z = np.logspace(-2, 2, 200)  # s / lambda
    axes[0].plot(z, 1 / (1 + z), label="ridge λ/(λ+s)")
    axes[0].plot(z, np.exp(-z), label="flow exp(−s t), t=1/λ")
    axes[0].set(
        xscale="log",
        xlabel="s / λ",
        ylabel="shrinkage of OLS coefficient",
        title="Spectral filters",
    )
    axes[0].legend(fontsize=8)
    lam = rg["lambdas"]
    axes[1].plot(lam, rg["ratio"], "b-", label="risk(flow, t=1/λ) / risk(ridge, λ), exact")
    axes[1].axhline(bound, color="r", ls="--", label=f"sup bound {bound:.5f} (AKT Thm. 1)")
    axes[1].axhline(1.0, color="gray", lw=0.6)
    axes[1].set(
        xscale="log",
        xlabel="λ (= 1/t)",
        ylabel="Bayes-risk ratio",
        ylim=(0.9, 1.8),
        title="Early stopping vs ridge",
    )
    axes[1].legend(fontsize=7)
    t = gd["times"]
    axes[2].plot(t, gd["gd_exact"], "k-", label="discrete-GD filter (exact)")
    axes[2].plot(t, gd["flow_exact"], "k:", label="gradient-flow filter (exact)")
    _se_bars(axes[2], t, gd["gd_mean"], gd["gd_sem"], f"trained GD, {gd['num_draws']} draws", ms=3)
    axes[2].set(xscale="log", xlabel="t = steps × η", ylabel="Bayes risk", title="GD vs filter")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_ntk(nt: dict[str, Any], s: dict[str, Any]):
    """Figure: test MSE vs 1/width with the fitted extrapolation; distance vs width with slope."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.7))
    w = np.asarray(nt["widths"], np.float64)
    _se_bars(
        axes[0],
        1 / w,
        nt["err_finite"],
        nt["err_finite_sem"],
        f"trained MLP, {nt['num_seeds']} seeds",
    )
    u = np.linspace(0, 1 / s["fit_widths"].min(), 50)
    axes[0].plot(
        u,
        s["intercept"] + s["one_over_w"] * u,
        "b-",
        lw=1,
        label=f"fit a + c/w, w ≥ {int(s['fit_widths'].min())}",
    )
    axes[0].errorbar([0], [s["intercept"]], yerr=[K_SE * s["intercept_se"]], fmt="bs", capsize=3)
    axes[0].plot([0], [nt["err_inf"]], "r*", ms=11, label="infinite-width NTK (checked)")
    axes[0].set(xlabel="1 / width", ylabel="test MSE", title="Test error vs 1/width")
    axes[0].legend(fontsize=7)
    _se_bars(axes[1], w, nt["rel_dist"], nt["rel_dist_sem"], "measured", se=False)
    ref = s["slope_widths"]
    i0 = int(np.flatnonzero(w == ref[0])[0])
    axes[1].plot(ref, nt["rel_dist"][i0] * (ref / ref[0]) ** -0.5, "r--", label="∝ width^(−1/2)")
    axes[1].plot(
        ref,
        nt["rel_dist"][i0] * (ref / ref[0]) ** s["slope"],
        "b-",
        lw=0.8,
        label=f"fitted slope {s['slope']:.3f}",
    )
    axes[1].set(
        xscale="log",
        yscale="log",
        xlabel="width",
        ylabel="‖f_w − f_∞‖ / ‖f_∞‖ (test)",
        title="Distance to kernel predictions",
    )
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- run


def _load_data(quick: bool, seed: int, n_train: int, n_test: int):
    """Real data: digits (quick) or MNIST-5k (full); centred one-hot targets."""
    from wideth import data

    ds = data.digits(seed=seed) if quick else data.mnist5k(seed=seed)
    name = "digits" if quick else "MNIST-5k"
    xtr, ytr = np.asarray(ds.x_train)[:n_train], np.asarray(ds.y_train)[:n_train]
    xte, yte = np.asarray(ds.x_test)[:n_test], np.asarray(ds.y_test)[:n_test]
    mean = ytr.mean(0, keepdims=True)
    return xtr, ytr - mean, xte, yte - mean, name


def one_blas_thread():
    """Single-threaded OpenBLAS for the small float64 solves here (on <= 4 cores).

    On a shared 2-core machine, multi-threaded OpenBLAS ``eigh``/``solve`` of a
    few-hundred-sized matrix was measured ~100x slower than single-threaded.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    if (os.cpu_count() or 1) > 4:  # a larger machine: let BLAS use its cores
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def plan(cfg: Config) -> dict[str, Any]:
    """Everything :func:`run` builds before computing: sizes, keys, data, grids."""
    sz = SIZES(cfg)
    for least, name in ((MIN_SLOPE_WIDTH, "slope"), (MIN_FIT_WIDTH, "1/width")):
        if sum(w >= least for w in sz.widths) < 2:
            raise ValueError(
                f"widths: expected at least two widths >= {least} (the {name} fit), got "
                f"{tuple(sz.widths)}"
            )
    keys = dict(
        zip(
            ("hastie", "rf", "ridge", "gd", "ntk"),
            jax.random.split(jax.random.key(cfg.seed), 5),
            strict=True,
        )
    )
    rf_data = _load_data(cfg.quick, cfg.seed, sz.n_rf, sz.n_rf_test)
    n_rf = len(rf_data[0])
    ntk_data = _load_data(cfg.quick, cfg.seed + 1, sz.n_ntk, sz.n_ntk_test)
    return dict(
        sz=sz,
        keys=keys,
        rf_data=rf_data,
        n_rf=n_rf,
        num_features=np.unique(np.round(np.array(RF_FRACTIONS) * n_rf).astype(int)),
        ridges=np.concatenate([[0.0], np.logspace(-6, 1, 15)]),
        lambdas=np.logspace(-3, 2, 41),
        ntk_data=ntk_data,
    )


def run(cfg: Config) -> Result:
    """Run all four parts at ``cfg.quick`` size; see the module docstring."""
    with one_blas_thread():
        return _run(cfg)


def _run(cfg: Config) -> Result:
    p = plan(cfg)
    sz, keys = p["sz"], p["keys"]
    checks, metrics, figures = [], {}, []

    # 1. Hastie et al.
    h = hastie_curve(keys["hastie"], sz.n_hastie, GAMMAS, sz.seeds_hastie)
    metrics["hastie"] = h
    checks += hastie_checks(h)
    figures.append(save_figure(plot_hastie(h, sz.n_hastie), cfg, "hastie_min_norm"))

    # 2. random features on real data
    xtr, ytr, xte, yte, dname = p["rf_data"]
    n_rf = p["n_rf"]
    rf = random_features_curve(
        keys["rf"], xtr, ytr, xte, yte, p["num_features"], p["ridges"], sz.rf_seeds, cfg.quiet
    )
    rs = rf_summary(rf, n_rf)
    metrics["random_features"] = {"dataset": dname, "n_train": n_rf, **rf, "summary": rs}
    checks += rf_checks(rs)
    figures.append(save_figure(plot_random_features(rf, n_rf, dname), cfg, "random_features"))

    # 3. ridge vs gradient flow (exact, no check: the bound is a unit test) and trained GD
    rg = ridge_vs_gradient_flow(keys["ridge"], sz.n_gf, sz.p_gf, p["lambdas"], sz.gf_designs)
    gd = gradient_descent_risk_path(
        keys["gd"], sz.gd_n, sz.gd_p, GD_TIMES, GD_LR, num_draws=sz.gd_draws
    )
    bound, x_star = ali_kolter_tibshirani_bound()
    metrics["ridge_vs_flow"] = {**rg, "bound": bound, "bound_argmax": x_star, "gd": gd}
    checks += gd_checks(gd)
    figures.append(save_figure(plot_filters(rg, gd), cfg, "ridge_vs_early_stopping"))

    # 4. NTK vs finite widths
    xtr4, ytr4, xte4, yte4, _ = p["ntk_data"]
    nt = ntk_vs_width(
        keys["ntk"],
        xtr4,
        ytr4,
        xte4,
        yte4,
        sz.widths,
        depth=1,
        steps=sz.ntk_steps,
        num_seeds=sz.ntk_seeds,
        quiet=cfg.quiet,
    )
    ns = ntk_summary(nt)
    metrics["ntk_vs_width"] = {**nt, "summary": ns}
    checks += ntk_checks(ns)
    figures.append(save_figure(plot_ntk(nt, ns), cfg, "ntk_vs_width"))

    summary = (
        f"Min-norm risk matches the exact finite-n curve (n={sz.n_hastie}, {sz.seeds_hastie} "
        f"seeds); random-feature min-norm MSE peaks {rs['peak_ratio']:.1f}x at N=n on {dname}, "
        f"the optimal ridge removes it; flow/ridge risk ratio at most {rg['ratio'].max():.3f} "
        f"(bound {bound:.5f}); NTK slope {ns['slope']:.3f} +- {ns['slope_se']:.3f}, 1/w "
        f"extrapolated test MSE {ns['intercept']:.4f} +- {ns['intercept_se']:.4f} vs kernel "
        f"{ns['err_inf']:.4f}."
    )
    config = {
        **{k: v for k, v in vars(sz).items()},
        "r2": R2,
        "sigma2": SIGMA2,
        "gammas": GAMMAS,
        "num_features": p["num_features"],
        "ridges": p["ridges"],
        "gd_lr": GD_LR,
        "gd_times": GD_TIMES,
        "k_se": K_SE,
    }
    return Result(metrics=metrics, checks=checks, figures=figures, config=config, summary=summary)


def main(argv=None):
    """Command line entry point."""
    return cli(run, __doc__, argv)


if __name__ == "__main__":
    from experiments.double_descent import main as _main  # so metrics.json names the experiment

    _main()
