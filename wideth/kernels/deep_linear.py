r"""Exact zero-temperature Bayesian posterior of deep linear networks.

A deep linear network with scalar output
:math:`z(x) = W^{(L+1)} W^{(L)} \cdots W^{(1)} x = \theta^\top x`, hidden widths
:math:`n_1, \dots, n_L` (``widths``; ``()`` is the shallow model
:math:`L = 0`), input dimension :math:`n_0`, and fan-in Gaussian priors
:math:`W^{(l)}_{ij} \sim \mathcal N(0, \sigma^2 / n_{l-1})` on every layer, is
fit to :math:`P < n_0` points :math:`X\theta = Y` (rows of ``x`` are the inputs,
rank :math:`P`) by zero-noise Bayesian inference: the posterior is the prior
conditioned on interpolation, the :math:`\beta \to \infty` limit of
:math:`\exp(-\beta \|X\theta - Y\|^2 / 2)` times the prior (Hanin & Zlokapa 2023).

**Exact law (derived here; every step is an identity).** Write
:math:`v^\top = W^{(L+1)} \cdots W^{(2)}`, so :math:`\theta = W^{(1)\top} v` with
:math:`v` independent of :math:`W^{(1)}`. Given :math:`v`,
:math:`\theta \sim \mathcal N(0, s I_{n_0})` with

.. math::

    s = \frac{\sigma^2}{n_0}\|v\|^2
      = \frac{\bar\sigma^2}{n_0}\prod_{l=1}^{L} \frac{\chi^2_{n_l}}{n_l},
    \qquad \bar\sigma^2 = \sigma^{2(L+1)},

independent chi-squares (peel one layer at a time: for a fixed row vector
:math:`u`, :math:`\|u W^{(l)}\|^2 = \|u\|^2 \frac{\sigma^2}{n_{l-1}}
\chi^2_{n_{l-1}}`). So the prior of :math:`\theta` is a Gaussian scale mixture
(for :math:`L = 0`, :math:`s = \sigma^2/n_0` is fixed). Given :math:`s`,
:math:`X\theta \sim \mathcal N(0, s XX^\top)`, whose density at :math:`Y` is
:math:`(2\pi s)^{-P/2} \det(XX^\top)^{-1/2} e^{-\|\theta_\parallel\|^2 / (2s)}`
with :math:`\theta_\parallel = X^+ Y` (the minimum-norm interpolant,
:math:`Y^\top (XX^\top)^{-1} Y = \|\theta_\parallel\|^2`). Hence

.. math::

    p(s \mid X, Y) \propto p(s)\, s^{-P/2} e^{-\|\theta_\parallel\|^2/(2s)},
    \qquad \theta = \theta_\parallel + \theta_\perp, \quad
    \theta_\perp \mid s \sim \mathcal N(0, s\, \Pi_\perp),

with :math:`\Pi_\perp` the projector onto :math:`\mathrm{Col}(X^\top)^\perp`
(an isotropic Gaussian has independent components on orthogonal subspaces).
So :math:`\theta_\perp = \|\theta_\perp\| u` with :math:`u` uniform on the
unit sphere of that :math:`(n_0 - P)`-dimensional space, independent of
:math:`\|\theta_\perp\|^2 \mid s \sim s\,\chi^2_{n_0 - P}`, and the predictive
posterior at :math:`x = x_\parallel + x_\perp` is the scale mixture
:math:`z(x) \mid s \sim \mathcal N(\theta_\parallel^\top x_\parallel,
s \|x_\perp\|^2)`. Given :math:`\|\theta_\perp\|` it is
:math:`\theta_\parallel^\top x_\parallel + \|\theta_\perp\|\|x_\perp\| u_1`,
with mean and variance those of the paper's
:math:`\mathcal N(\theta_\parallel^\top x_\parallel,
\|x_\perp\|^2\|\theta_\perp\|^2/(n_0 - P))` (:func:`predictive_normal`); the
shape is Gaussian only as :math:`n_0 - P \to \infty` (:math:`u_1^2 \sim
\mathrm{Beta}(\tfrac12, \tfrac{n_0 - P - 1}2)`). The paper writes the same
law through Meijer-G functions: the density of a product of gammas is
:math:`G^{L,0}_{0,L}`. For one hidden layer (:math:`G^{1,0}_{0,1}` a gamma
density) the posterior of :math:`s` is generalised inverse Gaussian,
:math:`\propto s^{(n_1-P)/2-1}\exp(-(n_1 n_0 s/\sigma^4 + a/s)/2)`; deeper
networks are checked against the Meijer-G density evaluated as a numerical
Mellin convolution of the gamma factors (tests).

**Exact sampler.** With :math:`t = \log s = t_0 + \sum_l T_l`,
:math:`t_0 = \log(\bar\sigma^2/n_0)`, :math:`e^{T_l} \sim
\mathrm{Gamma}(n_l/2, \text{scale } 2/n_l)`, the posterior of :math:`t` is
:math:`\propto p(t)\, e^{-Pt/2 - a e^{-t}/2}`, :math:`a = \|\theta_\parallel\|^2`.
An exponential tilt :math:`e^{-ct}` of the prior keeps every factor a
log-gamma (shape :math:`n_l/2 - c`, any :math:`c < \min_l n_l/2`), so

.. math::

    p(t \mid X, Y) \propto \tilde p_c(t)\, R_c(t), \qquad
    R_c(t) = e^{(c - P/2)t - a e^{-t}/2} \le R_c(t_c), \quad
    t_c = \log\frac{a}{P - 2c},

and rejection from the tilted prior :math:`\tilde p_c` with acceptance
:math:`R_c(t)/R_c(t_c)` returns exact, independent draws for every
:math:`c < \min(P/2, \min_l n_l/2)`. The tilt only sets the acceptance rate:
:math:`c` solves :math:`c - P/2 + \tfrac a2 e^{-m(c)} = 0` (bisection), with
:math:`m(c) = t_0 + \sum_l[\psi(n_l/2 - c) + \log(2/n_l)]` the tilted mean,
which puts the maximum of :math:`R_c` on the mean of :math:`\tilde p_c`.
Measured acceptance: 0.3-0.65 for effective depths :math:`\lambda \le 8`,
lower for large :math:`\lambda` on few narrow layers (:func:`posterior_log_scale`).

**Large-width limit (Hanin & Zlokapa 2023).** The cumulants of :math:`t` under
the prior are :math:`\kappa_1 = t_0 + \sum_l[\psi(n_l/2) - \log(n_l/2)]
= t_0 - \sum_l 1/n_l + O(\sum n_l^{-2})`, :math:`\kappa_2 = \sum_l
\psi'(n_l/2) = 2\sum_l 1/n_l + O(\sum n_l^{-2})` and :math:`\kappa_j =
O(\sum_l n_l^{1-j})`. With the effective posterior depth
:math:`\lambda_{\rm post} = P\sum_l 1/n_l` (:func:`effective_depth`; the prior
one is :math:`\lambda_{\rm prior} = n_0\sum_l 1/n_l`) held fixed, the prior of
:math:`t` tends to :math:`\mathcal N(t_0 - \lambda/P, 2\lambda/P)` as
:math:`L \to \infty` (the corrections are :math:`O(\lambda^2 / (P^2 L))` for
equal widths), and the posterior depends on depth and widths only through
:math:`\lambda_{\rm post}` (:func:`large_width_posterior`, evaluated by
quadrature). The first-order (Edgeworth) correction in the neglected cumulants
is :func:`finite_width_correction`; the limit stops holding when it is not
small, i.e. for few layers (:math:`L = 1, 2`) at :math:`\lambda \gtrsim 1`,
and most where the data scale :math:`a/P` is far from the prior's
:math:`\bar\sigma^2/n_0` (then the posterior sits in the prior's large-deviation
tail, where its shape depends on :math:`L`; measured at
:math:`a/P = 4\bar\sigma^2/n_0`, :math:`P = 200`, :math:`\lambda = 2`: the
posterior mean of :math:`t` is 0.12 from the limit for one layer of width 100
and 0.002 for fifty layers of width 5000).

**Growing effective depth.** As :math:`\lambda_{\rm post} \to \infty` the prior
of :math:`t` flattens on the posterior's scale and the posterior tends to the
likelihood alone, :math:`1/s \sim \mathrm{Gamma}(P/2, \text{rate } a/2)`,
concentrated at :math:`a/P`: the data-agnostic prior (:math:`\sigma^2 = 1`) of
an infinitely deep network gives the posterior of the shallow network with the
evidence-maximising :math:`\sigma^2_* = n_0 a / P`
(:func:`shallow_evidence_max_sigma2`), up to relative :math:`O(P^{-1/2})`
fluctuations. In the Gaussian (Laplace) approximation the posterior mean of
:math:`t` is :math:`\log(a/P) + (\Delta - \lambda/P)/(1 + \lambda) + O(1/P)`,
:math:`\Delta = t_0 - \log(a/P)`: the gap closes like :math:`1/(1 + \lambda)`.

Every function is a pure function of arrays, jittable with ``widths`` and the
sample counts static; argument checks run on concrete inputs (under ``jit``
only shapes and dtypes are checked). Use float64 (``jax_enable_x64``) for
posteriors with :math:`P \gtrsim 10^3` or widths :math:`\gtrsim 10^5`.

References:
  Hanin & Zlokapa, `Bayesian interpolation with deep linear networks
  <https://arxiv.org/abs/2212.14457>`_, PNAS 120 (23), 2023.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import digamma, polygamma

from wideth import _checks

__all__ = [
    "LargeWidthPosterior",
    "effective_depth",
    "finite_width_correction",
    "interpolant",
    "large_width_posterior",
    "posterior_log_scale",
    "posterior_perp_norm",
    "posterior_theta",
    "predictive",
    "predictive_normal",
    "prior_log_scale",
    "shallow_evidence_max_sigma2",
]


# ----------------------------------------------------------------------------- validation


def _widths(widths: Any) -> tuple[int, ...]:
    if isinstance(widths, str | bytes) or _checks.is_tracer(widths):
        raise TypeError(f"widths: expected a sequence of hidden widths, got {widths!r}")
    if isinstance(widths, Sequence | np.ndarray) and len(widths) == 0:
        return ()
    return _checks.int_sequence("widths", widths, minimum=1)


def _sigma2(sigma2: Any) -> Any:
    return _checks.in_range("sigma2", sigma2, 0.0, low_open=True)


def _data(x: Any, y: Any) -> tuple[jax.Array, jax.Array]:
    x = _checks.array("x", x, ndim=2, kind="float")
    p, n0 = x.shape
    if p >= n0:
        raise ValueError(
            f"x: expected fewer points than input dimensions (P < n0: the interpolating "
            f"posterior is a point mass otherwise), got {_checks.shape_str(x)}"
        )
    y = _checks.array("y", y, kind="float")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != p:
        raise ValueError(
            f"y: expected shape ({p},) (one target per row of x), got {_checks.shape_str(y)}"
        )
    if not _checks.is_tracer(x):
        xs = np.asarray(x, np.float64)
        sv = np.linalg.svd(xs, compute_uv=False)
        if sv[-1] <= 1e-10 * sv[0]:
            raise ValueError(f"x: expected {p} linearly independent rows, got rank deficiency")
    if not _checks.is_tracer(y) and not np.any(np.asarray(y) != 0):
        raise ValueError(
            "y: expected targets that are not all zero (the posterior of the scale is "
            "improper for Y = 0 when some width n_l <= P)"
        )
    return x, y.astype(x.dtype)


def _count(name: str, value: Any) -> int:
    return _checks.positive_int(name, value)


def _posterior_args(
    key: Any, x: Any, y: Any, widths: Any, sigma2: Any, num_samples: Any
) -> tuple[jax.Array, jax.Array, jax.Array, tuple[int, ...], int]:
    """The arguments every posterior sampler shares, checked in signature order."""
    key = _checks.prng_key("key", key)
    x, y = _data(x, y)
    w = _widths(widths)
    _sigma2(sigma2)
    return key, x, y, w, _count("num_samples", num_samples)


# ----------------------------------------------------------------------------- geometry


def interpolant(x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""Minimum-norm interpolant :math:`\theta_\parallel = X^+Y` and a basis of the data span.

    Args:
      x: ``(P, n0)`` inputs of rank ``P < n0``.
      y: ``(P,)`` targets.

    Returns:
      ``theta_par`` ``(n0,)`` with :math:`X\theta_\parallel = Y` in
      :math:`\mathrm{Col}(X^\top)`, and ``q`` ``(n0, P)`` with orthonormal
      columns spanning :math:`\mathrm{Col}(X^\top)` (thin QR of :math:`X^\top`).
    """
    x, y = _data(x, y)
    return _interpolant(x, y)


def _interpolant(x, y):
    q, r = jnp.linalg.qr(x.T)  # x^T = q r, x = r^T q^T
    coef = jax.scipy.linalg.solve_triangular(r.T, y, lower=True)  # r^T coef = y
    return q @ coef, q


def effective_depth(num_points: int, widths: Sequence[int]) -> float:
    r"""Effective depth :math:`\lambda = P\sum_{l=1}^L 1/n_l` (Hanin & Zlokapa 2023).

    With ``num_points = P`` this is :math:`\lambda_{\rm post}`, with the input
    dimension :math:`n_0` it is :math:`\lambda_{\rm prior}`. Equal widths
    :math:`n` give :math:`LP/n`: hidden layers times data points over width.
    """
    p = _checks.positive_int("num_points", num_points)
    w = _widths(widths)
    return float(p * sum(1.0 / n for n in w))


def shallow_evidence_max_sigma2(x: jax.Array, y: jax.Array) -> jax.Array:
    r"""Evidence-maximising prior variance of the shallow model.

    :math:`\sigma^2_* = n_0\|\theta_\parallel\|^2/P`.

    For :math:`L = 0`, :math:`\theta \sim \mathcal N(0, \tfrac{\sigma^2}{n_0} I)`
    and the evidence is :math:`\propto s^{-P/2} e^{-\|\theta_\parallel\|^2/(2s)}`
    in :math:`s = \sigma^2/n_0`, maximal at :math:`s = \|\theta_\parallel\|^2/P`.
    """
    x, y = _data(x, y)
    theta_par, _ = _interpolant(x, y)
    p, n0 = x.shape
    return n0 * jnp.sum(theta_par**2) / p


# ----------------------------------------------------------------------------- samplers


def _log_gamma_shift(widths: tuple[int, ...], dtype) -> jax.Array:
    return jnp.asarray([np.log(2.0 / n) for n in widths], dtype)


def prior_log_scale(
    key: jax.Array,
    widths: Sequence[int],
    input_dim: int,
    sigma2: float = 1.0,
    num_samples: int = 1000,
    dtype: Any = None,
) -> jax.Array:
    r"""Exact prior draws of :math:`\log s`.

    :math:`s = \frac{\sigma^{2(L+1)}}{n_0}\prod_l \chi^2_{n_l}/n_l`.

    :math:`\theta \mid s \sim \mathcal N(0, s I_{n_0})` is the prior of the
    end-to-end vector (module docstring).

    Returns:
      ``(num_samples,)`` draws (a constant for ``widths = ()``).
    """
    key = _checks.prng_key("key", key)
    w = _widths(widths)
    n0 = _checks.positive_int("input_dim", input_dim)
    _sigma2(sigma2)
    num = _count("num_samples", num_samples)
    dtype = jnp.result_type(float) if dtype is None else _checks.float_dtype("dtype", dtype)
    t0 = (len(w) + 1) * jnp.log(jnp.asarray(sigma2, dtype)) - np.log(n0)
    if not w:
        return jnp.full((num,), t0, dtype)
    k = jnp.asarray([n / 2.0 for n in w], dtype)
    lg = jax.random.loggamma(key, k, (num, len(w)), dtype)
    return t0 + jnp.sum(lg + _log_gamma_shift(w, dtype), axis=-1)


def _tilt(a, p, k, shift, mask, t0, iters: int = 64):
    """The tilt c of the module docstring (bisection in u, c = c_max - exp(u))."""
    dtype = t0.dtype
    c_max = jnp.minimum(k.min(), p / 2.0)

    def g(c):
        m = t0 + jnp.sum(mask * (digamma(k - c) + shift))
        return c - p / 2.0 + a / 2.0 * jnp.exp(-m)

    def body(_, lohi):
        lo, hi = lohi  # g(c_max - e^u) decreases in u: g(u=lo) >= 0 > g(u=hi)
        mid = 0.5 * (lo + hi)
        neg = g(c_max - jnp.exp(mid)) < 0
        return jnp.where(neg, lo, mid), jnp.where(neg, mid, hi)

    lo, hi = lax.fori_loop(0, iters, body, (jnp.asarray(-30.0, dtype), jnp.asarray(30.0, dtype)))
    return c_max - jnp.exp(hi)  # the side with g < 0: c < P/2 strictly


@functools.partial(jax.jit, static_argnames=("num", "oversample", "max_rounds"))
def _rejection(key, a, p, k, shift, mask, t0, num, oversample, max_rounds):
    """Exact rejection sampler of t = log s (k: gamma shapes n_l/2, shift: log(2/n_l)).

    Layers with ``mask = 0`` are padding (one compilation serves every depth up to the
    next power of two); their shape is large so that they do not bound the tilt.
    """
    dtype = t0.dtype
    num_layers = k.shape[0]
    c = _tilt(a, p, k, shift, mask, t0)
    t_c = jnp.log(a / (p - 2.0 * c))

    def log_r(t):
        return (c - p / 2.0) * t - a / 2.0 * jnp.exp(-t)

    log_r_max = log_r(t_c)
    batch = num * oversample

    def cond(state):
        _, filled, _, rounds, _ = state
        return (filled < num) & (rounds < max_rounds)

    def body(state):
        out, filled, key, rounds, tried = state
        key, kg, ku = jax.random.split(key, 3)
        lg = jax.random.loggamma(kg, k - c, (batch, num_layers), dtype)
        t = t0 + jnp.sum(mask * (lg + shift), -1)
        u = jax.random.uniform(ku, (batch,), dtype)
        accept = jnp.log(u) < log_r(t) - log_r_max
        pos = jnp.where(accept, filled + jnp.cumsum(accept) - 1, num)
        out = out.at[pos].set(t, mode="drop")
        return out, filled + jnp.sum(accept), key, rounds + 1, tried + batch

    init = (jnp.full((num,), jnp.nan, dtype), jnp.asarray(0), key, jnp.asarray(0), jnp.asarray(0))
    out, filled, _, _, tried = lax.while_loop(cond, body, init)
    return out, filled.astype(dtype) / jnp.maximum(tried, 1).astype(dtype)


def _posterior_log_scale(key, a, p, widths, t0, num, oversample, max_rounds):
    """Exact posterior draws of t = log s given a = |theta_par|^2 (jittable)."""
    dtype = t0.dtype
    if not widths:
        return jnp.full((num,), t0, dtype), jnp.asarray(1.0, dtype)
    size = 1 << (len(widths) - 1).bit_length()  # depth bucket: a power of two
    pad = size - len(widths)
    k = jnp.asarray([n / 2.0 for n in widths] + [1e6] * pad, dtype)
    shift = jnp.concatenate([_log_gamma_shift(widths, dtype), jnp.zeros((pad,), dtype)])
    mask = jnp.asarray([1.0] * len(widths) + [0.0] * pad, dtype)
    return _rejection(
        key,
        a,
        jnp.asarray(p, dtype),
        k,
        shift,
        mask,
        t0,
        num,
        oversample,
        max_rounds,
    )


def _setup(x, y, widths, sigma2):
    theta_par, q = _interpolant(x, y)
    a = jnp.sum(theta_par**2)
    p, n0 = x.shape
    t0 = (len(widths) + 1) * jnp.log(jnp.asarray(sigma2, x.dtype)) - np.log(n0)
    return theta_par, q, a, p, t0


def posterior_log_scale(
    key: jax.Array,
    x: jax.Array,
    y: jax.Array,
    widths: Sequence[int],
    sigma2: float = 1.0,
    num_samples: int = 1000,
    *,
    oversample: int = 4,
    max_rounds: int = 1000,
    return_acceptance: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    r"""Exact independent posterior draws of :math:`t = \log s` given :math:`X\theta = Y`.

    :math:`p(t \mid X, Y) \propto p(t)\, e^{-Pt/2 - \|\theta_\parallel\|^2 e^{-t}/2}`,
    sampled by rejection from an exponentially tilted prior (module docstring).
    Each round draws ``oversample * num_samples`` proposals; slots still empty
    after ``max_rounds`` rounds are NaN (a concrete call raises instead).

    Args:
      key: PRNG key.
      x: ``(P, n0)`` training inputs, rank ``P < n0``.
      y: ``(P,)`` targets, not all zero.
      widths: hidden widths ``(n_1, ..., n_L)``; ``()`` for the shallow model.
      sigma2: prior variance :math:`\sigma^2` of every layer (fan-in scaling).
      num_samples: number of draws.
      oversample: proposals per requested draw and round.
      max_rounds: bound on the rounds of the rejection loop.
      return_acceptance: also return the measured acceptance rate.

    Returns:
      ``(num_samples,)`` draws of :math:`\log s` (and the acceptance rate).
    """
    key, x, y, w, num = _posterior_args(key, x, y, widths, sigma2, num_samples)
    over = _count("oversample", oversample)
    rounds = _count("max_rounds", max_rounds)
    _checks.boolean("return_acceptance", return_acceptance)
    _, _, a, p, t0 = _setup(x, y, w, sigma2)
    t, acc = _posterior_log_scale(key, a, p, w, t0, num, over, rounds)
    if not _checks.is_tracer(t) and bool(jnp.any(jnp.isnan(t))):
        raise RuntimeError(
            f"max_rounds: {rounds} rounds of rejection filled only "
            f"{int(jnp.sum(~jnp.isnan(t)))} of {num} draws; raise max_rounds or oversample"
        )
    return (t, acc) if return_acceptance else t


def posterior_theta(
    key: jax.Array,
    x: jax.Array,
    y: jax.Array,
    widths: Sequence[int],
    sigma2: float = 1.0,
    num_samples: int = 1000,
) -> jax.Array:
    r"""Exact posterior draws of the end-to-end vector.

    :math:`\theta = \theta_\parallel + \sqrt s\,\Pi_\perp\xi`,

    :math:`s` from :func:`posterior_log_scale`, :math:`\xi \sim \mathcal N(0, I_{n_0})`.

    Returns:
      ``(num_samples, n0)``; every row interpolates, :math:`X\theta = Y`.
    """
    key, x, y, w, num = _posterior_args(key, x, y, widths, sigma2, num_samples)
    k_s, k_xi = jax.random.split(key)
    t = posterior_log_scale(k_s, x, y, w, sigma2, num)
    theta_par, q, *_ = _setup(x, y, w, sigma2)
    xi = jax.random.normal(k_xi, (num, x.shape[1]), x.dtype)
    perp = xi - (xi @ q) @ q.T
    return theta_par + jnp.exp(t / 2)[:, None] * perp


def posterior_perp_norm(
    key: jax.Array,
    x: jax.Array,
    y: jax.Array,
    widths: Sequence[int],
    sigma2: float = 1.0,
    num_samples: int = 1000,
) -> jax.Array:
    r"""Exact posterior draws of :math:`\|\theta_\perp\|`.

    :math:`\|\theta_\perp\|^2 = s\,\chi^2_{n_0 - P}`.

    Returns:
      ``(num_samples,)`` draws.
    """
    key, x, y, w, num = _posterior_args(key, x, y, widths, sigma2, num_samples)
    k_s, k_c = jax.random.split(key)
    t = posterior_log_scale(k_s, x, y, w, sigma2, num)
    m = x.shape[1] - x.shape[0]
    chi2 = 2.0 * jax.random.gamma(k_c, m / 2.0, (num,), x.dtype)
    return jnp.exp(t / 2) * jnp.sqrt(chi2)


def _split_test(x, y, x_test):
    x_test = _checks.array("x_test", x_test, ndim=2, kind="float")
    if x_test.shape[1] != x.shape[1]:
        raise ValueError(
            f"x_test: expected shape (*, {x.shape[1]}) (the input dimension of x), got "
            f"{_checks.shape_str(x_test)}"
        )
    theta_par, q = _interpolant(x, y)
    x_test = x_test.astype(x.dtype)
    par = (x_test @ q) @ q.T
    return theta_par, x_test @ theta_par, jnp.sum((x_test - par) ** 2, axis=1)


def predictive(
    key: jax.Array,
    x: jax.Array,
    y: jax.Array,
    x_test: jax.Array,
    widths: Sequence[int],
    sigma2: float = 1.0,
    num_samples: int = 1000,
) -> jax.Array:
    r"""Exact joint predictive draws :math:`z(x_\star) = \theta^\top x_\star`.

    ``x_test`` has shape ``(m, n0)``.

    Marginally :math:`z(x_\star) \mid s \sim \mathcal N(\theta_\parallel^\top
    x_{\star\parallel}, s\|x_{\star\perp}\|^2)`; the draws are joint over test
    points (one :math:`\theta` per row).

    Returns:
      ``(num_samples, m)``.
    """
    x, y = _data(x, y)
    _split_test(x, y, x_test)
    theta = posterior_theta(key, x, y, widths, sigma2, num_samples)
    return theta @ jnp.asarray(x_test, x.dtype).T


def predictive_normal(
    x: jax.Array, y: jax.Array, x_test: jax.Array, perp_norm: jax.Array
) -> tuple[jax.Array, jax.Array]:
    r"""The paper's predictive given :math:`\|\theta_\perp\|`.

    :math:`\mathcal N(\theta_\parallel^\top x_\parallel,
    \|x_\perp\|^2\|\theta_\perp\|^2/(n_0 - P))`.

    Exact mean and variance of :math:`z(x_\star)` given :math:`\|\theta_\perp\|`;
    Gaussian in shape only as :math:`n_0 - P \to \infty` (module docstring).

    Args:
      x, y: training data.
      x_test: ``(m, n0)`` test inputs.
      perp_norm: draws or values of :math:`\|\theta_\perp\|`, any shape ``S``.

    Returns:
      ``mean`` ``(m,)`` and ``variance`` of shape ``S + (m,)``.
    """
    x, y = _data(x, y)
    perp_norm = _checks.array("perp_norm", perp_norm, kind="real")
    if not _checks.is_tracer(perp_norm) and bool(jnp.any(perp_norm < 0)):
        raise ValueError("perp_norm: expected norms >= 0, got negative entries")
    _, mean, x_perp_sq = _split_test(x, y, x_test)
    m = x.shape[1] - x.shape[0]
    return mean, x_perp_sq * (perp_norm[..., None] ** 2) / m


# ----------------------------------------------------------------------------- large width


class LargeWidthPosterior(NamedTuple):
    r"""Posterior of :math:`t = \log s` in the large-width limit, on a grid.

    ``grid`` and normalised ``density`` (trapezoid weights ``weights`` sum to
    one), ``mean`` and ``var`` of :math:`t`, and the limiting prior's ``prior_mean``
    :math:`t_0 - \lambda/P` and ``prior_var`` :math:`2\lambda/P`.
    """

    grid: jax.Array
    density: jax.Array
    weights: jax.Array
    mean: jax.Array
    var: jax.Array
    prior_mean: jax.Array
    prior_var: jax.Array


def large_width_posterior(
    num_points: int,
    input_dim: int,
    par_sq_norm: Any,
    lam: float,
    sigma2_total: float = 1.0,
    num_grid: int = 4001,
) -> LargeWidthPosterior:
    r"""Posterior of :math:`\log s` for the prior :math:`\mathcal N(t_0 - \lambda/P, 2\lambda/P)`.

    .. math::

        p_\infty(t) \propto \exp\Big(-\frac{(t - t_0 + \lambda/P)^2}{4\lambda/P}
            - \frac P2 t - \frac a2 e^{-t}\Big), \qquad t_0 = \log\frac{\bar\sigma^2}{n_0},

    the :math:`L \to \infty` limit at fixed :math:`\lambda = P\sum_l 1/n_l`, in
    which the posterior depends on the architecture only through
    :math:`\lambda` (Hanin & Zlokapa 2023; the Gaussian form of the limit is
    derived in the module docstring). ``lam = 0`` is the point prior of the
    shallow model and returns a one-point grid. Trapezoid rule on ``num_grid``
    points over the mode :math:`\pm 14` Laplace standard deviations (the
    density is log-concave; the cut-off mass is below :math:`10^{-40}`).

    Args:
      num_points: :math:`P`.
      input_dim: :math:`n_0`.
      par_sq_norm: :math:`a = \|\theta_\parallel\|^2 > 0`.
      lam: effective posterior depth :math:`\lambda_{\rm post} \ge 0`.
      sigma2_total: :math:`\bar\sigma^2 = \prod_l \sigma_l^2` (``sigma2 ** (L + 1)``).
      num_grid: grid points (odd, >= 101).
    """
    p = _checks.positive_int("num_points", num_points)
    n0 = _checks.positive_int("input_dim", input_dim)
    _checks.in_range("par_sq_norm", par_sq_norm, 0.0, low_open=True)
    _checks.in_range("lam", lam, 0.0)
    _checks.in_range("sigma2_total", sigma2_total, 0.0, low_open=True)
    num = _checks.positive_int("num_grid", num_grid, minimum=101)
    dtype = jnp.result_type(float)
    a = jnp.asarray(par_sq_norm, dtype)
    t0 = jnp.log(jnp.asarray(sigma2_total, dtype)) - np.log(n0)
    mu, v = t0 - lam / p, jnp.asarray(2.0 * lam / p, dtype)
    if lam == 0:
        one = jnp.ones((1,), dtype)
        return LargeWidthPosterior(t0[None], one, one, t0, jnp.zeros((), dtype), t0, v)

    def dlog(t):
        return -(t - mu) / v - p / 2.0 + a / 2.0 * jnp.exp(-t)

    def d2log(t):
        return -1.0 / v - a / 2.0 * jnp.exp(-t)

    mode = lax.fori_loop(0, 60, lambda _, t: t - dlog(t) / d2log(t), jnp.log(a / p))
    sd = 1.0 / jnp.sqrt(-d2log(mode))
    grid = mode + sd * jnp.linspace(-14.0, 14.0, num, dtype=dtype)
    logd = -((grid - mu) ** 2) / (2 * v) - p / 2.0 * grid - a / 2.0 * jnp.exp(-grid)
    w = jnp.exp(logd - jnp.max(logd))
    w = w.at[0].multiply(0.5).at[-1].multiply(0.5)
    h = grid[1] - grid[0]
    z = jnp.sum(w)
    weights = w / z
    mean = jnp.sum(weights * grid)
    var = jnp.sum(weights * (grid - mean) ** 2)
    return LargeWidthPosterior(grid, w / (z * h), weights, mean, var, mu, v)


def finite_width_correction(
    limit: LargeWidthPosterior,
    widths: Sequence[int],
    num_points: int,
    input_dim: int,
    sigma2_total: float = 1.0,
) -> tuple[jax.Array, jax.Array]:
    r"""First-order finite-width corrections to the posterior mean and variance of log s.

    The prior of :math:`t` for the given widths differs from the limit
    :math:`\mathcal N(\mu, v)` of :func:`large_width_posterior` in its cumulants:
    :math:`\delta\kappa_1 = t_0 + \sum_l[\psi(n_l/2) - \log(n_l/2)] - \mu`,
    :math:`\delta\kappa_2 = \sum_l \psi'(n_l/2) - v`, :math:`\kappa_3 = \sum_l
    \psi''(n_l/2)` (all :math:`O(\lambda^2/(P^2 L))` for equal widths). To
    first order (Edgeworth) the prior density is multiplied by :math:`1 + h`,

    .. math::

        h(t) = \frac{\delta\kappa_1}{\sqrt v} He_1(z) + \frac{\delta\kappa_2}{2v} He_2(z)
            + \frac{\kappa_3}{6 v^{3/2}} He_3(z), \qquad z = \frac{t - \mu}{\sqrt v},

    and a posterior expectation :math:`E[f]` moves by
    :math:`\mathrm{Cov}_\infty(f, h)`. Returned: that shift for
    :math:`f = t` (mean) and for the variance,
    :math:`\mathrm{Cov}_\infty((t - \bar t)^2, h)`. The neglected terms are of
    second order (:math:`\kappa_3^2`, :math:`\kappa_4`, products of the
    :math:`\delta\kappa`), so the correction is reliable while it is small
    against the posterior standard deviation. Measured (:math:`P = 200`,
    :math:`n_0 = 400`): it predicts the exact mean to within 3e-4 for
    :math:`\lambda = 2` at every depth and to 2e-3 for one layer with
    :math:`a/P = 4/n_0`, where the correction itself is 0.12.

    Raises:
        TypeError: ``limit`` is not a :class:`LargeWidthPosterior`.
        ValueError: no widths, a width, ``num_points`` or ``input_dim`` below 1,
            ``sigma2_total`` not positive, or widths whose effective depth is
            not the limit's.
    """
    if not isinstance(limit, LargeWidthPosterior):
        raise TypeError(
            f"limit: expected a LargeWidthPosterior (from large_width_posterior), got "
            f"{type(limit).__name__}"
        )
    w = _widths(widths)
    if not w:
        raise ValueError("widths: expected at least one hidden layer, got ()")
    p = _checks.positive_int("num_points", num_points)
    n0 = _checks.positive_int("input_dim", input_dim)
    _checks.in_range("sigma2_total", sigma2_total, 0.0, low_open=True)
    dtype = limit.grid.dtype
    n = jnp.asarray(w, dtype)
    t0 = jnp.log(jnp.asarray(sigma2_total, dtype)) - np.log(n0)
    mu, v = limit.prior_mean, limit.prior_var
    lam = v * p / 2.0
    if not np.isclose(float(lam), effective_depth(p, w), rtol=1e-6):
        raise ValueError(
            f"widths: expected widths with the limit's effective depth {float(lam):.6g}, got "
            f"{effective_depth(p, w):.6g}"
        )
    d1 = t0 + jnp.sum(digamma(n / 2) - jnp.log(n / 2)) - mu
    d2 = jnp.sum(polygamma(1, n / 2)) - v
    k3 = jnp.sum(polygamma(2, n / 2))
    z = (limit.grid - mu) / jnp.sqrt(v)
    h = d1 * z / jnp.sqrt(v) + d2 / (2 * v) * (z**2 - 1) + k3 / (6 * v**1.5) * (z**3 - 3 * z)
    wts = limit.weights
    t = limit.grid - limit.mean
    h = h - jnp.sum(wts * h)
    d_mean = jnp.sum(wts * t * h)
    d_var = jnp.sum(wts * (t**2 - limit.var) * h)
    return d_mean, d_var
