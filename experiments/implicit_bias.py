r"""Implicit bias of gradient descent: which interpolator / direction GD picks.

1. **Diagonal linear networks** (Woodworth et al. 2020). The linear model
   :math:`f(x) = \langle u\odot u - v\odot v, x\rangle` trained by small-step
   gradient descent on :math:`L = \frac1{2n}\|Xw - y\|^2` from
   :math:`u_0 = v_0 = \alpha\mathbf 1` on an underdetermined sparse regression
   (:math:`n < d`) converges to

   .. math::

       w_\alpha = \arg\min_{Xw = y} Q_\alpha(w),\qquad
       Q_\alpha(w) = \alpha^2\sum_i q(w_i/\alpha^2),\quad
       q(z) = 2 - \sqrt{4 + z^2} + z\,\mathrm{arcsinh}(z/2),

   which tends to the minimum-:math:`\ell_1` interpolator (a linear program,
   ``scipy.optimize.linprog``) as :math:`\alpha \to 0` and to the
   minimum-:math:`\ell_2` interpolator :math:`X^+ y` as :math:`\alpha \to
   \infty`. The :math:`Q_\alpha` minimiser is computed independently from its
   convex dual (:math:`w = 2\alpha^2\sinh(X^\top\lambda)`, Newton on
   :math:`\lambda`). Checks: distance to :math:`\ell_1` small at
   :math:`\alpha = 10^{-3}`, distance to :math:`\ell_2` small at
   :math:`\alpha = 10`, GD equal to the :math:`Q_\alpha` minimiser at every
   :math:`\alpha`.
2. **Logistic regression on separable data** (Soudry et al. 2018). GD with a
   fixed step :math:`\eta < 2/\beta` on :math:`L(w) = \frac1n\sum_i
   \log(1 + e^{-y_i w^\top x_i})` diverges in norm, :math:`w(t) = \hat w\log t
   + O(1)`, with direction converging to the hard-margin SVM :math:`\hat w =
   \arg\min\{\|w\| : y_i w^\top x_i \ge 1\}` and angle
   :math:`\angle(w(t), \hat w) = O(1/\log t)`. The SVM is scikit-learn's
   ``SVC(kernel="linear", C=1e8)`` on the data set symmetrised by
   :math:`(x, y) \mapsto (-x, -y)` (so its intercept is 0 and it solves the
   homogeneous problem), cross-checked against an SLSQP solve of the primal
   QP. GD runs as a jitted ``lax.fori_loop``, vmapped over independent data
   sets, check-pointed at log-spaced :math:`t`. The rate is fitted as
   :math:`\log\angle = a - p\log\log t` on the geometric mean over data sets
   (theory :math:`p = 1`; single data sets show long pre-asymptotic
   transients, so the pooled fit is the check).
3. **Spectral bias** (Rahaman et al. 2019; Basri et al. 2020). A wide ReLU MLP
   (NTK parameterisation, centred output :math:`f_\theta - f_{\theta_0}`) on
   :math:`n` equispaced points of the unit circle fits :math:`y(\theta) =
   \sum_k \sin(k\theta)` by full-batch GD with the MSE loss
   :math:`\frac1{2n}\sum_i (f(x_i) - y_i)^2`. On the circle the analytic NTK
   is circulant, its eigenvectors are the Fourier modes and its eigenvalues
   :math:`\lambda_k` (of :math:`\Theta/n`) are the DFT of one row; kernel
   regression predicts the frequency-:math:`k` residual
   :math:`|\hat r_k(t)| = |\hat r_k(0)|(1 - \eta\lambda_k)^t`, i.e. a
   convergence time :math:`t_k = -1/\log(1 - \eta\lambda_k)`
   (:math:`\approx 1/(\eta\lambda_k)`). Checks: low frequencies converge
   first, and measured :math:`t_k` (crossing of :math:`e^{-1}`) agree with
   the prediction for the frequencies whose eigenvalue is not swamped by the
   finite-width kernel drift (those with :math:`t_k \le` ``T_RELIABLE``).

References:
  Woodworth et al., `Kernel and Rich Regimes in Overparametrized Models
  <https://arxiv.org/abs/2002.09277>`_, 2020.
  Soudry et al., `The Implicit Bias of Gradient Descent on Separable Data
  <https://arxiv.org/abs/1710.10345>`_, 2018.
  Rahaman et al., `On the Spectral Bias of Neural Networks
  <https://arxiv.org/abs/1806.08734>`_, 2019.
  Basri et al., `Frequency Bias in Neural Networks for Input of Non-Uniform
  Density <https://arxiv.org/abs/2003.04560>`_, 2020.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments._common import Config, Result, check, cli, save_figure

#: Spectral-bias frequencies whose predicted convergence time is at most this
#: many steps are compared quantitatively (slower ones have eigenvalues below
#: the finite-width kernel drift and are only required to come last).
T_RELIABLE = 100.0

# ------------------------------------------------------------------ diagonal networks


def sparse_regression(
    key: jax.Array, n: int, d: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian design ``(n, d)``, ``k``-sparse truth (entries of size 1-2), ``y = X w*``."""
    kx, ks, km = jax.random.split(key, 3)
    X = np.asarray(jax.random.normal(kx, (n, d)), np.float64)
    w = np.zeros(d)
    sign = np.asarray(jax.random.rademacher(ks, (k,)), np.float64)
    w[:k] = sign * (1.0 + np.asarray(jax.random.uniform(km, (k,)), np.float64))
    return X, X @ w, w


def min_l1_interpolator(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""Minimum-:math:`\ell_1` solution of :math:`Xw = y` by a linear program.

    :math:`w = p - q`, :math:`\min \mathbf 1^\top(p + q)` s.t. :math:`X(p - q) = y`,
    :math:`p, q \ge 0` (HiGHS through ``scipy.optimize.linprog``).
    """
    from scipy.optimize import linprog

    d = X.shape[1]
    res = linprog(np.ones(2 * d), A_eq=np.hstack([X, -X]), b_eq=y, bounds=(0, None), method="highs")
    if not res.success:
        raise RuntimeError(f"linprog failed: {res.message}")
    return res.x[:d] - res.x[d:]


def min_l2_interpolator(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""Minimum-:math:`\ell_2` solution :math:`X^+ y`."""
    return np.linalg.pinv(X) @ y


def q_alpha_interpolator(X: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    r"""Minimiser of :math:`Q_\alpha` on :math:`\{Xw = y\}` through its convex dual.

    Stationarity gives :math:`\mathrm{arcsinh}(w_i / 2\alpha^2) = (X^\top\lambda)_i`,
    so :math:`w = 2\alpha^2\sinh(X^\top\lambda)` with :math:`\lambda` minimising
    :math:`D(\lambda) = 2\alpha^2\sum_i\cosh(X^\top\lambda)_i - y^\top\lambda`
    (trust-region Newton, then plain Newton polish), float64.
    """
    from scipy.optimize import minimize

    s = 2.0 * alpha**2
    f = lambda lam: s * np.cosh(X.T @ lam).sum() - y @ lam
    g = lambda lam: X @ (s * np.sinh(X.T @ lam)) - y
    h = lambda lam: (X * (s * np.cosh(X.T @ lam))) @ X.T
    res = minimize(
        f, np.zeros(X.shape[0]), jac=g, hess=h, method="trust-exact", options={"gtol": 1e-10}
    )
    lam = res.x
    for _ in range(8):
        lam = lam - np.linalg.solve(h(lam), g(lam))
    return s * np.sinh(X.T @ lam)


def diagonal_net_gd(
    X: jax.Array, y: jax.Array, alphas: jax.Array, max_steps: int, tol: float = 1e-6
) -> tuple[jax.Array, jax.Array]:
    r"""Gradient descent on :math:`w = u\odot u - v\odot v` from :math:`u = v = \alpha`.

    .. math::

        g = X^\top(Xw - y)/n,\quad u \leftarrow u - 2\eta\, u\odot g,\quad
        v \leftarrow v + 2\eta\, v\odot g,

    with :math:`\eta = 0.2/(4\lambda_{\max}(X^\top X/n)(\alpha^2 + \|y\|_\infty))`, small
    against the curvature along the whole path. Runs a ``lax.while_loop`` until
    :math:`\|Xw - y\| \le` ``tol`` :math:`\|y\|` or ``max_steps``, vmapped over ``alphas``.

    Returns:
      ``(w, steps)``: ``(len(alphas), d)`` solutions and steps taken.
    """
    n = X.shape[0]
    lam = jnp.linalg.eigvalsh(X.T @ X / n)[-1]
    scale = jnp.max(jnp.abs(jnp.linalg.pinv(X) @ y))

    def one(alpha):
        eta = 0.2 / (4.0 * lam * (alpha**2 + scale))

        def cond(c):
            u, v, t = c
            r = X @ (u * u - v * v) - y
            return (t < max_steps) & (jnp.linalg.norm(r) > tol * jnp.linalg.norm(y))

        def body(c):
            u, v, t = c
            u2, v2 = u, v
            for _ in range(10):  # 10 steps per convergence test
                g = X.T @ (X @ (u2 * u2 - v2 * v2) - y) / n
                u2, v2 = u2 - 2 * eta * u2 * g, v2 + 2 * eta * v2 * g
            return u2, v2, t + 10

        u0 = alpha * jnp.ones(X.shape[1], X.dtype)
        u, v, t = jax.lax.while_loop(cond, body, (u0, u0, jnp.zeros((), jnp.int32)))
        return u * u - v * v, t

    return jax.jit(jax.vmap(one))(alphas)


def diagonal_sweep(
    key: jax.Array, n: int, d: int, k: int, alphas: np.ndarray, max_steps: int
) -> dict[str, Any]:
    """GD solutions across ``alphas`` with their distances to the l1, l2 and Q_alpha solutions."""
    X, y, w_star = sparse_regression(key, n, d, k)
    with jax.enable_x64(True):
        W, steps = diagonal_net_gd(jnp.asarray(X), jnp.asarray(y), jnp.asarray(alphas), max_steps)
        W, steps = np.asarray(W), np.asarray(steps)
    w1, w2 = min_l1_interpolator(X, y), min_l2_interpolator(X, y)
    wq = np.stack([q_alpha_interpolator(X, y, float(a)) for a in alphas])
    rel = lambda A, b: np.linalg.norm(A - b, axis=-1) / np.linalg.norm(b)
    return {
        "alphas": np.asarray(alphas),
        "dist_l1": rel(W, w1),
        "dist_l2": rel(W, w2),
        "dist_q": np.linalg.norm(W - wq, axis=-1) / np.linalg.norm(wq, axis=-1),
        "residual": np.linalg.norm(W @ X.T - y, axis=-1) / np.linalg.norm(y),
        "steps": steps,
        "l1_recovers_truth": float(np.linalg.norm(w1 - w_star) / np.linalg.norm(w_star)),
        "W": W,
        "w_l1": w1,
        "w_l2": w2,
    }


# ------------------------------------------------------------------ logistic regression


def separable_data(
    key: jax.Array, n: int, d: int, margin: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` Gaussian points labelled by a random hyperplane, at distance > ``margin`` from it."""
    kw, kx = jax.random.split(key)
    w = np.asarray(jax.random.normal(kw, (d,)), np.float64)
    X = np.asarray(jax.random.normal(kx, (16 * n, d)), np.float64)
    keep = np.abs(X @ w) / np.linalg.norm(w) > margin
    X = X[keep][:n]
    if X.shape[0] < n:
        raise RuntimeError("not enough points beyond the margin")
    return X, np.sign(X @ w)


def hard_margin_svm(X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    r"""Homogeneous hard-margin SVM :math:`\min\|w\|` s.t. :math:`y_i w^\top x_i \ge 1`.

    scikit-learn ``SVC(kernel="linear", C=1e8)`` on the symmetrised data
    :math:`\{(x_i, y_i), (-x_i, -y_i)\}` (intercept 0 by symmetry), and an
    SLSQP solve of the primal as an independent route.
    """
    from scipy.optimize import minimize
    from sklearn.svm import SVC

    svc = SVC(kernel="linear", C=1e8, tol=1e-10).fit(np.vstack([X, -X]), np.concatenate([y, -y]))
    w_svc = svc.coef_[0]
    Z = y[:, None] * X
    res = minimize(
        lambda w: 0.5 * w @ w,
        np.zeros(X.shape[1]),
        jac=lambda w: w,
        constraints=[{"type": "ineq", "fun": lambda w: Z @ w - 1, "jac": lambda w: Z}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    return {
        "w": w_svc,
        "intercept": float(svc.intercept_[0]),
        "qp_rel_diff": float(np.linalg.norm(w_svc - res.x) / np.linalg.norm(res.x)),
        "num_sv": int(len(svc.support_) // 2),
    }


def _logistic_advance(Z: jax.Array, w: jax.Array, eta: jax.Array, steps: jax.Array) -> jax.Array:
    grad = jax.grad(lambda w: jnp.mean(jnp.logaddexp(0.0, -Z @ w)))
    return jax.lax.fori_loop(0, steps, lambda _, w: w - eta * grad(w), w)


_advance = jax.jit(jax.vmap(_logistic_advance, (0, 0, 0, None)))


def logistic_gd_angles(Z: np.ndarray, w_svm: np.ndarray, checkpoints: np.ndarray) -> np.ndarray:
    r"""Angle between GD iterates and the SVM direction at ``checkpoints`` (float64).

    ``Z`` is ``(S, n, d)`` (:math:`y_i x_i` for ``S`` data sets), ``w_svm`` ``(S, d)``.
    Step :math:`\eta = 1/\beta`, :math:`\beta = \lambda_{\max}(Z^\top Z)/(4n)` the smoothness
    of the logistic loss. Returns ``(len(checkpoints), S)`` angles in radians.
    """
    n = Z.shape[1]
    beta = np.linalg.eigvalsh(np.einsum("sni,snj->sij", Z, Z))[:, -1] / (4 * n)
    u = w_svm / np.linalg.norm(w_svm, axis=1, keepdims=True)
    out = []
    with jax.enable_x64(True):
        Zj, eta = jnp.asarray(Z), jnp.asarray(1.0 / beta)
        w, t0 = jnp.zeros(Z.shape[::2]), 0
        for t in checkpoints:
            w = _advance(Zj, w, eta, jnp.asarray(int(t) - t0))
            t0 = int(t)
            wn = np.asarray(w)
            cos = np.sum(wn * u, 1) / np.linalg.norm(wn, axis=1)
            out.append(np.arccos(np.clip(cos, -1.0, 1.0)))
    return np.array(out)


def logistic_sweep(
    key: jax.Array, num_sets: int, n: int, d: int, t_max: float, per_decade: int = 4
) -> dict[str, Any]:
    """Angles vs t for ``num_sets`` separable data sets and the pooled log-rate fit."""
    Zs, Ws, qp, sv, icpt = [], [], [], [], []
    for k in jax.random.split(key, num_sets):
        X, y = separable_data(k, n, d)
        s = hard_margin_svm(X, y)
        Zs.append(y[:, None] * X)
        Ws.append(s["w"])
        qp.append(s["qp_rel_diff"])
        sv.append(s["num_sv"])
        icpt.append(abs(s["intercept"]))
    decades = int(round(np.log10(t_max)))
    ts = np.unique(np.round(np.logspace(1, decades, (decades - 1) * per_decade + 1)).astype(int))
    ang = logistic_gd_angles(np.stack(Zs), np.stack(Ws), ts)
    gmean = np.exp(np.mean(np.log(ang), axis=1))
    sel = ts >= 100
    p = -np.polyfit(np.log(np.log(ts[sel])), np.log(gmean[sel]), 1)[0]
    per_set = np.array([-np.polyfit(np.log(np.log(ts[sel])), np.log(a[sel]), 1)[0] for a in ang.T])
    return {
        "t": ts,
        "angles": ang,
        "angle_gmean": gmean,
        "rate_exponent": float(p),
        "rate_exponent_per_set": per_set,
        "svm_qp_rel_diff_max": float(np.max(qp)),
        "svm_intercept_max": float(np.max(icpt)),
        "num_support_vectors": sv,
    }


# ------------------------------------------------------------------ spectral bias


def circle(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` equispaced angles and the points ``(cos, sin)`` on the unit circle."""
    th = 2 * np.pi * np.arange(n) / n
    return th, np.stack([np.cos(th), np.sin(th)], 1)


def circulant_eigenvalues(K: np.ndarray) -> np.ndarray:
    r"""Eigenvalues of :math:`K/n` for a circulant :math:`K` by frequency (DFT of row 0)."""
    return np.real(np.fft.fft(np.asarray(K, np.float64)[0])) / K.shape[0]


def fourier_amplitudes(r: jax.Array, th: np.ndarray, freqs: np.ndarray) -> jax.Array:
    """Amplitudes of frequencies ``freqs`` in ``r`` sampled at equispaced ``th`` (``(..., n)``)."""
    n = th.shape[0]
    C = jnp.asarray(np.cos(np.outer(freqs, th)) * 2 / n, r.dtype)
    S = jnp.asarray(np.sin(np.outer(freqs, th)) * 2 / n, r.dtype)
    return jnp.sqrt((r @ C.T) ** 2 + (r @ S.T) ** 2)


def crossing_time(curve: np.ndarray, level: float = np.exp(-1)) -> float:
    """First step (log-linear interpolation) at which ``curve[t] / curve[0]`` is below ``level``."""
    rel = np.asarray(curve) / curve[0]
    below = np.nonzero(rel < level)[0]
    if len(below) == 0:
        return float("inf")
    i = int(below[0])
    a, b = np.log(rel[i - 1]), np.log(rel[i])
    return float(i - 1 + (a - np.log(level)) / (a - b))


def spectral_bias(
    key: jax.Array,
    n: int,
    width: int,
    depth: int,
    freqs: np.ndarray,
    num_nets: int,
    b_std: float = 0.1,
    steps_factor: float = 2.0,
) -> dict[str, Any]:
    """Train ``num_nets`` centred wide ReLU MLPs on a sum of sinusoids; per-frequency residuals."""
    from flax import nnx

    from wideth.kernels import analytic
    from wideth.models import MLP, functional

    th, X = circle(n)
    Xj = jnp.asarray(X, jnp.float32)
    _, _, kernel_fn = analytic.mlp(depth, width, "relu", 2**0.5, b_std)
    K = np.asarray(analytic.kernel(kernel_fn, Xj, get="ntk", dtype=jnp.float64))
    ev = circulant_eigenvalues(K)
    lam = ev[freqs]
    eta = 1.0 / float(ev.max())
    t_pred = -1.0 / np.log1p(-eta * lam)
    steps = int(np.ceil(steps_factor * t_pred.max()))
    y = jnp.asarray(np.sum(np.sin(np.outer(freqs, th)), 0), jnp.float32)

    apply_fn, _ = functional(MLP(2, width, depth, b_std=b_std, rngs=nnx.Rngs(0)))

    def init(k):
        return functional(MLP(2, width, depth, b_std=b_std, rngs=nnx.Rngs(k)))[1]

    seeds = jax.random.randint(key, (num_nets,), 0, 2**30)
    params0 = [init(int(s)) for s in np.asarray(seeds)]
    params0 = jax.tree.map(lambda *a: jnp.stack(a), *params0)

    def train(p0):
        f0 = apply_fn(p0, Xj)[:, 0]
        residual = lambda p: apply_fn(p, Xj)[:, 0] - f0 - y
        loss = lambda p: 0.5 * jnp.mean(residual(p) ** 2)

        def step(p, _):
            r, g = residual(p), jax.grad(loss)(p)
            return jax.tree.map(lambda a, b: a - eta * b, p, g), fourier_amplitudes(r, th, freqs)

        _, amps = jax.lax.scan(step, p0, None, length=steps)
        return amps

    amps = np.asarray(jax.jit(jax.vmap(train))(params0))  # (nets, steps, freqs)
    mean = amps.mean(0)
    t_meas = np.array([crossing_time(mean[:, i]) for i in range(len(freqs))])
    return {
        "freqs": np.asarray(freqs),
        "eigenvalues": lam,
        "eigenvalues_all": ev[: n // 2 + 1],
        "eta": eta,
        "t_pred": t_pred,
        "t_measured": t_meas,
        "amplitudes": mean,
        "steps": steps,
    }


# ------------------------------------------------------------------ figures


def _fig_diagonal(sw: dict[str, Any]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.loglog(
        sw["alphas"], sw["dist_l1"], "o-", label=r"$\|w_\alpha - w_{\ell_1}\|/\|w_{\ell_1}\|$"
    )
    ax.loglog(
        sw["alphas"], sw["dist_l2"], "s-", label=r"$\|w_\alpha - w_{\ell_2}\|/\|w_{\ell_2}\|$"
    )
    ax.loglog(sw["alphas"], sw["dist_q"], "^:", label=r"to the $Q_\alpha$ minimiser")
    ax.set_xlabel(r"init scale $\alpha$")
    ax.set_ylabel("relative distance")
    ax.set_title("Diagonal linear network: rich ($\\ell_1$) to kernel ($\\ell_2$)")
    ax.legend(fontsize=8)
    return fig


def _fig_logistic(lg: dict[str, Any]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.loglog(lg["t"], lg["angles"], color="0.8", lw=0.8)
    ax.loglog(lg["t"], lg["angle_gmean"], "k-", lw=2, label="geometric mean")
    sel = lg["t"] >= 100
    c = lg["angle_gmean"][sel][0] * np.log(lg["t"][sel][0])
    ax.loglog(lg["t"][sel], c / np.log(lg["t"][sel]), "r--", label=r"$\propto 1/\log t$")
    ax.set_xlabel("GD step $t$")
    ax.set_ylabel(r"angle$(w(t), \hat w_{\rm SVM})$ [rad]")
    ax.set_title(f"Logistic GD → max margin, fitted exponent {lg['rate_exponent']:.2f}")
    ax.legend(fontsize=8)
    return fig


def _fig_spectral(sb: dict[str, Any]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    t = np.arange(sb["amplitudes"].shape[0])
    for i, k in enumerate(sb["freqs"]):
        (line,) = ax.semilogy(t, sb["amplitudes"][:, i] / sb["amplitudes"][0, i], label=f"k={k}")
        ax.semilogy(t, (1 - sb["eta"] * sb["eigenvalues"][i]) ** t, "--", color=line.get_color())
    ax.set_ylim(1e-3, 1.5)
    ax.set_xlabel("GD step $t$")
    ax.set_ylabel(r"$|\hat r_k(t)| / |\hat r_k(0)|$")
    ax.set_title(r"Spectral bias: network (solid) vs NTK $(1-\eta\lambda_k)^t$ (dashed)")
    ax.legend(fontsize=8)
    return fig


# ------------------------------------------------------------------ run


def run(cfg: Config) -> Result:
    """Diagonal nets, logistic max-margin and spectral bias at ``cfg.quick`` size."""
    key = jax.random.key(cfg.seed)
    k1, k2, k3 = jax.random.split(key, 3)
    if cfg.quick:
        size = dict(n=40, d=100, k=5, num_alphas=9, max_steps=300_000)
        lsize = dict(num_sets=16, n=40, d=5, t_max=1e5)
        ssize = dict(n=64, width=8192, depth=1, num_nets=2)
    else:
        size = dict(n=100, d=400, k=10, num_alphas=17, max_steps=3_000_000)
        lsize = dict(num_sets=64, n=60, d=10, t_max=1e6)
        ssize = dict(n=128, width=65536, depth=1, num_nets=4)
    alphas = np.logspace(-3, 1, size["num_alphas"])
    freqs = np.array([1, 2, 4, 8])

    if not cfg.quiet:
        print("diagonal linear networks ...")
    dg = diagonal_sweep(k1, size["n"], size["d"], size["k"], alphas, size["max_steps"])
    if not cfg.quiet:
        print("logistic regression ...")
    lg = logistic_sweep(k2, **lsize)
    if not cfg.quiet:
        print("spectral bias ...")
    sb = spectral_bias(k3, freqs=freqs, **ssize)

    figures = [
        save_figure(_fig_diagonal(dg), cfg, "diagonal_networks"),
        save_figure(_fig_logistic(lg), cfg, "logistic_max_margin"),
        save_figure(_fig_spectral(sb), cfg, "spectral_bias"),
    ]
    at = lambda t: float(lg["angle_gmean"][np.argmin(np.abs(lg["t"] - t))])
    reliable = sb["t_pred"] <= T_RELIABLE
    rel_err = np.abs(sb["t_measured"] - sb["t_pred"]) / sb["t_pred"]
    checks = [
        check(
            "diag: dist to min-l1 at alpha=1e-3",
            0.0,
            dg["dist_l1"][0],
            0.05,
            note="relative l2 distance",
        ),
        check(
            "diag: dist to min-l2 at alpha=10",
            0.0,
            dg["dist_l2"][-1],
            0.01,
            note="relative l2 distance",
        ),
        check("diag: GD = argmin Q_alpha (max over alpha)", 0.0, dg["dist_q"].max(), 0.02),
        check(
            "diag: dist to l1 increases, to l2 decreases with alpha",
            "monotone",
            [
                bool(np.all(np.diff(dg["dist_l1"]) > -1e-3)),
                bool(np.all(np.diff(dg["dist_l2"]) < 1e-3)),
            ],
            None,
            passed=bool(
                np.all(np.diff(dg["dist_l1"]) > -1e-3) and np.all(np.diff(dg["dist_l2"]) < 1e-3)
            ),
        ),
        check("logistic: SVC = primal QP (rel diff)", 0.0, lg["svm_qp_rel_diff_max"], 1e-4),
        check(
            "logistic: angle decreases over t (geometric mean)",
            "decreasing",
            [at(t) for t in (1e2, 1e3, 1e4, 1e5)],
            None,
            passed=bool(np.all(np.diff(lg["angle_gmean"][lg["t"] >= 100]) < 0)),
        ),
        check("logistic: angle ~ (log t)^-p, p", 1.0, lg["rate_exponent"], 0.35),
        check(
            "spectral: low frequencies converge first",
            "t_1 < t_2 < t_4 < t_8",
            sb["t_measured"],
            None,
            passed=bool(np.all(np.diff(sb["t_measured"]) > 0)),
        ),
        check(
            "spectral: t_k vs NTK -1/log(1-eta lambda_k), max rel err (t_pred<=100)",
            0.0,
            float(rel_err[reliable].max()),
            0.3,
        ),
    ]
    metrics = {
        "diagonal": {k: v for k, v in dg.items() if k not in ("W",)},
        "logistic": {**lg, "angle_at": {f"1e{e}": at(10.0**e) for e in range(2, 6)}},
        "spectral": sb,
    }
    metrics["spectral"] = {k: v for k, v in sb.items() if k != "amplitudes"}
    config = {"diagonal": size, "logistic": lsize, "spectral": ssize, "freqs": freqs}
    summary = (
        f"diag: d_l1(1e-3)={dg['dist_l1'][0]:.3g}, d_l2(10)={dg['dist_l2'][-1]:.2g}; "
        f"logistic angle 1e2..1e5: {at(1e2):.3f}->{at(1e5):.3f}, p={lg['rate_exponent']:.2f}; "
        f"spectral t_meas={np.round(sb['t_measured'], 1)}, t_pred={np.round(sb['t_pred'], 1)}"
    )
    return Result(metrics, checks, figures, config, summary)


def main(argv=None):
    return cli(run, __doc__, argv)


if __name__ == "__main__":
    main()
