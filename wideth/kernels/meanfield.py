r"""Mean-field signal propagation in deep random networks.

A fully connected network with weights :math:`W^l_{ij} \sim \mathcal N(0,
\sigma_w^2/n)` and biases :math:`b^l_i \sim \mathcal N(0, \sigma_b^2)` maps the
pre-activation variance :math:`q^l` of one input and the correlation
:math:`c^l` of two inputs through (Poole et al. 2016)

.. math::

    q^{l+1} &= \mathcal V(q^l) = \sigma_w^2\, \mathbb E_z\big[\phi(\sqrt{q^l} z)^2\big]
        + \sigma_b^2, \\
    c^{l+1} &= \mathcal C(c^l) = \frac{\sigma_w^2\, \mathbb E[\phi(u_1)\phi(u_2)]
        + \sigma_b^2}{q^*}, \quad u_1 = \sqrt{q^*} z_1,\;
        u_2 = \sqrt{q^*}\big(c z_1 + \sqrt{1 - c^2} z_2\big),

with :math:`z, z_1, z_2` independent standard normals. At the fixed point
:math:`q^* = \mathcal V(q^*)` the slope of :math:`\mathcal C` at :math:`c = 1`
is

.. math::

    \chi_1 = \sigma_w^2\, \mathbb E_z\big[\phi'(\sqrt{q^*} z)^2\big],

the mean squared singular value of the input-output Jacobian per layer:
:math:`\chi_1 < 1` is the ordered phase (:math:`c^* = 1`), :math:`\chi_1 > 1`
the chaotic phase (:math:`c^* < 1`), and :math:`\chi_1 = 1` the edge of chaos.
Near the fixed points :math:`|q^l - q^*| \sim e^{-l/\xi_q}` and
:math:`|c^l - c^*| \sim e^{-l/\xi_c}` with the depth scales (Schoenholz et al.
2017)

.. math::

    \xi_q^{-1} = -\log\Big(\chi_1 + \sigma_w^2\, \mathbb E_z\big[\phi''(\sqrt{q^*} z)
        \phi(\sqrt{q^*} z)\big]\Big), \qquad
    \xi_c^{-1} = -\log \chi_c, \quad
    \chi_c = \sigma_w^2\, \mathbb E[\phi'(u_1)\phi'(u_2)]\big|_{c = c^*}.

Two-dimensional expectations use closed forms for ReLU (arc-cosine kernel,
Cho & Saul 2009), erf (arcsin kernel, Williams 1997) and linear networks, as do
the one-dimensional ones; the rest (everything for tanh, and
:math:`E[\phi''\phi]` for erf) is a trapezoidal rule on a uniform grid of
:math:`z \in [-10, 10]` (:data:`QUAD`). For integrands analytic in a strip,
the trapezoidal rule converges like :math:`e^{-2\pi d/h}` with :math:`d` the
strip half-width; for tanh :math:`d = \pi / (2\sqrt q)`, so with the default
:math:`h = 0.005` (1-d) and :math:`h = 0.0625` (2-d) the error is below
:math:`10^{-13}` for :math:`q \lesssim 10^3` (1-d) and :math:`10^{-10}` for
:math:`q \lesssim 20` (2-d; 1e-6 at :math:`q = 50`), measured against adaptive
quadrature. Gauss--Hermite quadrature of degree 100 was measured first and rejected:
its nodes are too sparse once :math:`\sqrt q` is large (relative error of
:math:`E[\tanh'(\sqrt q z)^2]` of 2e-6 at :math:`q = 2`, 6e-3 at :math:`q = 7`,
0.15 at :math:`q = 20`, against adaptive quadrature), and NumPy's
``hermegauss`` overflows beyond degree ~360.

Grids smaller than :data:`MIN_QUAD` are rejected: measured against adaptive
quadrature (``scipy.integrate.quad``) in float64, the
trapezoidal moments :math:`E[\tanh^2]`, :math:`E[\tanh'^2]` on 201 points
have relative error at most 1.3e-6 for :math:`q \le 20` (4e-10 for
:math:`q \le 10`) and :math:`E[\tanh\tanh]`, :math:`E[\tanh'\tanh']` on
101 x 101 points at most 1.3e-9 for :math:`q \le 3` (7e-5 at :math:`q = 10`),
while 41 and 21 points are wrong by 70% and 35% at :math:`q = 20` and
:math:`q = 3`, and a 3-point grid is wrong in the first digit everywhere. For
tanh :math:`q^* \le \sigma_w^2 + \sigma_b^2`, so large grids matter only for
large weight variances.

Everything is jittable and runs in the default float type: enable float64
(``jax.config.update("jax_enable_x64", True)``) for more than ~6 significant
digits. Bad arguments (unknown activations, negative or non-finite variances,
correlations outside :math:`[-1, 1]`, grids below :data:`MIN_QUAD`,
non-positive iteration budgets) raise a ``ValueError`` or ``TypeError`` naming
the argument; under ``jit``/``vmap`` only shapes and dtypes are checked.

References:
    Poole et al., `Exponential expressivity in deep neural networks through
    transient chaos <https://arxiv.org/abs/1606.05340>`_, 2016.
    Schoenholz et al., `Deep Information Propagation
    <https://arxiv.org/abs/1611.01232>`_, 2017.
    Hanin & Nica, `Products of Many Large Random Matrices and Gradients in Deep
    Neural Networks <https://arxiv.org/abs/1812.05994>`_, 2019.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from wideth import _checks, activations
from wideth.kernels import _quadrature

__all__ = [
    "ACTIVATIONS",
    "MIN_QUAD",
    "QUAD",
    "c_star",
    "chi_c",
    "correlation_map",
    "critical_W_var",
    "depth_scales",
    "derivative",
    "fixed_point",
    "nngp_diag_variance",
    "variance_map",
    "variance_sequence",
]

#: Activations understood by this module.
ACTIVATIONS = ("relu", "tanh", "erf", "identity")

#: Quadrature grid: (points for one-dimensional, points per axis for
#: two-dimensional expectations) of the trapezoidal rule on
#: :math:`z \in [-Z_{\max}, Z_{\max}]`. See the module docstring for why this
#: and not Gauss--Hermite.
QUAD = (4001, 321)

#: Smallest accepted ``quad``: below it the moments lose more than ~6 digits
#: (measured accuracy in the module docstring).
MIN_QUAD = (201, 101)

#: Half-width of the quadrature grid in standard deviations.
Z_MAX = 10.0


#: Per-layer excess kurtosis :math:`\kappa - 1 = E[\phi^4]/E[\phi^2]^2 - 1`
#: of the post-activations, for the activations whose finite-width NNGP
#: diagonal has an exact product law.
_KAPPA_MINUS_ONE = {"relu": 5.0, "identity": 2.0}


def _check_activation(activation: str) -> str:
    """The registry name (``"linear"`` is a deprecated alias of ``"identity"``)."""
    return activations.canonical(activation, ACTIVATIONS)


def _check_var(value, name: str) -> None:
    """A variance: a real scalar >= 0 (traced values: shape and dtype only)."""
    _checks.scalar(name, value, 0.0)


def _check_quad(quad) -> tuple[int, int]:
    if not isinstance(quad, tuple | list) or len(quad) != 2:
        raise TypeError(
            f"quad: expected a pair (points for 1-d, points per axis for 2-d expectations), "
            f"got {quad!r}"
        )
    return (
        _checks.positive_int("quad[0]", quad[0], minimum=MIN_QUAD[0]),
        _checks.positive_int("quad[1]", quad[1], minimum=MIN_QUAD[1]),
    )


def _check_common(activation: str, W_var, b_var, quad, num_iter: int | None = None):
    """Checks shared by every map: returns ``(activation, quad)`` in canonical form."""
    activation = _check_activation(activation)
    _check_var(W_var, "W_var")
    _check_var(b_var, "b_var")
    quad = _check_quad(quad)
    if num_iter is not None:
        _checks.positive_int("num_iter", num_iter)
    return activation, quad


def _check_defined(W_var, b_var) -> None:
    """The normalised correlation map divides by the output variance, 0 when W_var = b_var = 0."""
    if _checks.is_tracer((W_var, b_var)):
        return
    if float(W_var) == 0.0 and float(b_var) == 0.0:
        raise ValueError(
            "W_var: the correlation map is undefined at W_var = b_var = 0 (every "
            "pre-activation is 0, so correlations are 0/0); use a positive W_var or b_var"
        )


def _phi(activation: str, x):
    return activations.get(activation)(x)


def _dphi(activation: str, x):
    return activations.derivative(activation)(x)


def derivative(activation: str, x: Any) -> jax.Array:
    r"""The derivative :math:`\phi'(x)` of one of :data:`ACTIVATIONS`, elementwise.

    .. math::

        \mathrm{relu}'(x) = 1\{x > 0\},\quad \tanh'(x) = 1 - \tanh^2 x,\quad
        \mathrm{erf}'(x) = \tfrac{2}{\sqrt\pi} e^{-x^2},\quad \mathrm{identity}'(x) = 1

    (the closed forms inside :math:`\chi_1 = \sigma_w^2 E[\phi'(\sqrt{q^*} z)^2]`;
    relu's value at 0 is taken as 0, as ``jax.nn.relu``'s gradient). Traceable.

    Args:
      activation: a name in :data:`ACTIVATIONS`.
      x: pre-activations (any shape).

    Raises:
      ValueError: an activation outside :data:`ACTIVATIONS`; NaN/inf in a
        concrete ``x``.
      TypeError: ``x`` not a real array.

    Examples:
      >>> float(derivative("tanh", 0.0)), float(derivative("relu", -1.0))
      (1.0, 0.0)
    """
    name = _check_activation(activation)
    x = _checks.array("x", x, kind="real")
    return _dphi(name, x.astype(jnp.result_type(x.dtype, float)))


def _d2phi(activation: str, x):
    # ReLU's second derivative is a delta at 0 where phi vanishes: phi'' phi = 0.
    return activations.derivative(activation, 2)(x)


def _ftype(*xs):
    return jnp.result_type(float, *xs)


def _grid(num: int, dtype):
    """The uniform grid on [-Z_MAX, Z_MAX] with ``num`` points (see :mod:`._quadrature`)."""
    return _quadrature.nodes(num, 2.0 * Z_MAX / (num - 1), dtype)


def _gauss1(f, q, quad: tuple[int, int]):
    """E_z[f(sqrt(q) z)], z ~ N(0, 1)."""
    return _quadrature.expect(f, q, *_grid(quad[0], _ftype(q)))


def _gauss2(f, g, q, c, quad: tuple[int, int]):
    """E[f(u1) g(u2)] with u1 = sqrt(q) z1, u2 = sqrt(q)(c z1 + sqrt(1-c^2) z2)."""
    sq = jnp.sqrt(q)
    factors = (sq, sq * c, sq * jnp.sqrt(jnp.clip(1.0 - c**2, 0.0, None)))
    return _quadrature.expect_pair(f, g, factors, *_grid(quad[1], _ftype(q, c)))


def _second_moment(activation: str, q, quad: tuple[int, int]):
    """E[phi(sqrt(q) z)^2]."""
    if activation == "relu":
        return q / 2.0
    if activation == "erf":
        return 2.0 / jnp.pi * jnp.arcsin(2.0 * q / (1.0 + 2.0 * q))
    if activation == "identity":
        return q
    return _gauss1(lambda u: _phi(activation, u) ** 2, q, quad)


def _deriv_moment(activation: str, q, quad: tuple[int, int]):
    """E[phi'(sqrt(q) z)^2]."""
    if activation == "relu":
        return 0.5 * jnp.ones_like(q)
    if activation == "erf":
        return 4.0 / jnp.pi / jnp.sqrt(1.0 + 4.0 * q)
    if activation == "identity":
        return jnp.ones_like(q)
    return _gauss1(lambda u: _dphi(activation, u) ** 2, q, quad)


def _cross_moment(activation: str, q, c, quad: tuple[int, int]):
    """E[phi(u1) phi(u2)] for two unit-correlation-c inputs of variance q."""
    c = jnp.clip(c, -1.0, 1.0)
    if activation == "relu":
        th = jnp.arccos(c)
        return q / (2.0 * jnp.pi) * (jnp.sin(th) + (jnp.pi - th) * c)
    if activation == "erf":
        return 2.0 / jnp.pi * jnp.arcsin(2.0 * q * c / (1.0 + 2.0 * q))
    if activation == "identity":
        return q * c
    return _gauss2(jnp.tanh, jnp.tanh, q, c, quad)


def _cross_deriv_moment(activation: str, q, c, quad: tuple[int, int]):
    """E[phi'(u1) phi'(u2)] for two unit-correlation-c inputs of variance q."""
    c = jnp.clip(c, -1.0, 1.0)
    if activation == "relu":
        return (jnp.pi - jnp.arccos(c)) / (2.0 * jnp.pi)
    if activation == "erf":
        return 4.0 / jnp.pi / jnp.sqrt((1.0 + 2.0 * q) ** 2 - (2.0 * q * c) ** 2)
    if activation == "identity":
        return jnp.ones_like(q * c)
    d = lambda u: _dphi("tanh", u)
    return _gauss2(d, d, q, c, quad)


@functools.partial(jax.jit, static_argnames=("activation", "quad"))
def _variance_map(q, activation: str, W_var, b_var, quad: tuple[int, int]):
    return W_var * _second_moment(activation, q, quad) + b_var


def variance_map(q, activation: str, W_var, b_var, *, quad: tuple[int, int] = QUAD) -> jax.Array:
    r"""Length map :math:`\mathcal V(q) = \sigma_w^2 E_z[\phi(\sqrt q z)^2] + \sigma_b^2`.

    Args:
      q: pre-activation variance :math:`q^l \ge 0` (scalar).
      activation: ``"relu"``, ``"tanh"``, ``"erf"`` or ``"identity"``.
      W_var: weight variance :math:`\sigma_w^2`.
      b_var: bias variance :math:`\sigma_b^2`.
      quad: quadrature grid sizes, see :data:`QUAD`.

    Returns:
      :math:`q^{l+1}` (scalar array). For ReLU it equals
      :math:`\sigma_w^2 q / 2 + \sigma_b^2`.

    References:
      Poole et al., Exponential expressivity in deep neural networks through
      transient chaos, 2016 (eq. 3).
    """
    activation, quad = _check_common(activation, W_var, b_var, quad)
    _check_var(q, "q")
    f = _ftype(q, W_var, b_var)
    return _variance_map(jnp.asarray(q, f), activation, W_var, b_var, quad)


@functools.partial(jax.jit, static_argnames=("activation", "quad", "depth"))
def _variance_sequence(activation: str, W_var, b_var, q_in, depth: int, quad: tuple[int, int]):
    def layer(q, _):
        nxt = _variance_map(q, activation, W_var, b_var, quad)
        return nxt, q

    q1 = W_var * q_in + b_var
    _, qs = jax.lax.scan(layer, q1, None, length=depth)
    return qs


def variance_sequence(
    activation: str, W_var, b_var, q_in, depth: int, *, quad: tuple[int, int] = QUAD
) -> jax.Array:
    r"""Pre-activation variances :math:`q^{(1)}, \dots, q^{(L)}` of an infinitely wide network.

    .. math::

        q^{(1)} = \sigma_w^2\, q_{\mathrm{in}} + \sigma_b^2, \qquad
        q^{(l+1)} = \mathcal V(q^{(l)}) = \sigma_w^2 E_z[\phi(\sqrt{q^{(l)}} z)^2] + \sigma_b^2,

    with :math:`q_{\mathrm{in}} = \|x\|^2/n_0`. For tanh at :math:`\sigma_w^2 = 1,
    \sigma_b^2 = 0` (the :math:`K^* = 0` universality class)
    :math:`\mathcal V(q) = q - 2q^2 + O(q^3)`, so :math:`2l\,q^{(l)} \to 1`
    (Roberts, Yaida & Hanin 2022, Sec. 5.3).

    Args:
      activation: ``"relu"``, ``"tanh"``, ``"erf"`` or ``"identity"``.
      W_var: weight variance :math:`\sigma_w^2`.
      b_var: bias variance :math:`\sigma_b^2`.
      q_in: input second moment per coordinate :math:`\|x\|^2/n_0`.
      depth: number of layers :math:`L \ge 1`.
      quad: quadrature grid sizes, see :data:`QUAD`.

    Returns:
      ``(depth,)`` array of :math:`q^{(l)}`.

    Examples:
      >>> q = variance_sequence("relu", 2.0, 0.0, 1.0, 3)
      >>> [round(float(v), 6) for v in q]
      [2.0, 2.0, 2.0]
    """
    activation = _check_activation(activation)
    _check_var(W_var, "W_var")
    _check_var(b_var, "b_var")
    _check_var(q_in, "q_in")
    depth = _checks.positive_int("depth", depth)
    quad = _check_quad(quad)
    f = _ftype(q_in, W_var, b_var)
    return _variance_sequence(
        activation,
        jnp.asarray(W_var, f),
        jnp.asarray(b_var, f),
        jnp.asarray(q_in, f),
        int(depth),
        quad,
    )


def _q_star(activation: str, W_var, b_var, quad: tuple[int, int], num_iter: int):
    f = _ftype(W_var, b_var)
    W_var = jnp.asarray(W_var, f)
    b_var = jnp.asarray(b_var, f)
    if activation in ("relu", "identity"):
        # V(q) = a q + b with a = W_var/2 (ReLU) or W_var (linear).
        a = W_var / 2.0 if activation == "relu" else W_var
        return jnp.where(a < 1.0, b_var / jnp.where(a < 1.0, 1.0 - a, 1.0), jnp.inf)

    V = lambda q: _variance_map(q, activation, W_var, b_var, quad)
    # Bounded activations: V is increasing and concave-then-bounded, so the
    # iteration from q = 1 converges to the unique stable fixed point; a few
    # Newton steps on V(q) - q remove the geometric tail near criticality.
    q = lax.fori_loop(0, num_iter, lambda _, q: V(q), jnp.ones((), f))

    def newton(_, q):
        g, dg = jax.jvp(V, (q,), (jnp.ones_like(q),))
        step = (g - q) / jnp.where(jnp.abs(dg - 1.0) > 1e-12, dg - 1.0, -1.0)
        return jnp.maximum(q - step, 0.0)

    return lax.fori_loop(0, 8, newton, q)


@functools.partial(jax.jit, static_argnames=("activation", "quad", "num_iter"))
def _fixed_point(activation: str, W_var, b_var, quad: tuple[int, int], num_iter: int):
    q = _q_star(activation, W_var, b_var, quad, num_iter)
    qq = jnp.where(jnp.isfinite(q), q, 1.0)  # chi_1 of ReLU/linear does not depend on q
    return q, W_var * _deriv_moment(activation, qq, quad)


def fixed_point(
    activation: str, W_var, b_var, *, quad: tuple[int, int] = QUAD, num_iter: int = 200
) -> tuple[jax.Array, jax.Array]:
    r"""Fixed point :math:`q^*` of the length map and the slope :math:`\chi_1`.

    .. math::

        q^* = \sigma_w^2 E_z[\phi(\sqrt{q^*} z)^2] + \sigma_b^2, \qquad
        \chi_1 = \sigma_w^2 E_z[\phi'(\sqrt{q^*} z)^2].

    For tanh/erf :math:`q^*` is found by iterating the map from :math:`q = 1`
    (``num_iter`` steps) and polishing with Newton steps. For ReLU and linear
    networks the map is affine, :math:`q^* = \sigma_b^2 / (1 - a)` with
    :math:`a = \sigma_w^2/2` (ReLU) or :math:`\sigma_w^2` (linear) when
    :math:`a < 1` and :math:`+\infty` otherwise (at :math:`a = 1,
    \sigma_b = 0` every :math:`q` is a fixed point; ``inf`` is returned);
    :math:`\chi_1 = a` does not depend on :math:`q`.

    Args:
      activation: ``"relu"``, ``"tanh"``, ``"erf"`` or ``"identity"``.
      W_var: weight variance :math:`\sigma_w^2`.
      b_var: bias variance :math:`\sigma_b^2`.
      quad: quadrature grid sizes, see :data:`QUAD`.
      num_iter: fixed-point iterations before the Newton polish.

    Returns:
      ``(q_star, chi_1)`` scalar arrays.

    Examples:
      >>> q, chi = fixed_point("tanh", W_var=1.761, b_var=0.05)
      >>> round(float(chi), 3)
      1.0

    References:
      Poole et al., Exponential expressivity in deep neural networks through
      transient chaos, 2016. Schoenholz et al., Deep Information Propagation,
      2017 (eq. 4-5).
    """
    activation, quad = _check_common(activation, W_var, b_var, quad, num_iter)
    return _fixed_point(activation, W_var, b_var, quad, num_iter)


def _norm_q(activation: str, W_var, b_var, quad: tuple[int, int], num_iter: int):
    """(q, b) at which to evaluate the correlation map.

    For ReLU/linear with q* in {0, inf} the normalised map is the b_var -> 0
    limit evaluated at any q (positive homogeneity), here q = 1. For tanh/erf
    q* is finite; q* = 0 (b_var = 0 in the ordered phase) is handled by
    :func:`_corr` as the limit q -> 0.
    """
    q = _q_star(activation, W_var, b_var, quad, num_iter)
    if activation not in ("relu", "identity"):
        return q, jnp.asarray(b_var, q.dtype)
    ok = jnp.isfinite(q) & (q > 0)
    return jnp.where(ok, q, 1.0), jnp.where(jnp.isfinite(q), b_var, 0.0)


def _corr(activation: str, c, q, W_var, b_var, quad: tuple[int, int]):
    num = W_var * _cross_moment(activation, q, c, quad) + b_var
    den = W_var * _second_moment(activation, q, quad) + b_var
    ok = den > 0
    # den = 0 only at q = 0 with b_var = 0 (W_var = b_var = 0 is rejected by the
    # public functions): the limit q -> 0 is c for activations with phi'(0) != 0
    # and the (q-independent) normalised arc-cosine map for ReLU.
    if activation == "relu":
        limit = _cross_moment("relu", 1.0, c, quad) / _second_moment("relu", 1.0, quad)
    else:
        limit = jnp.clip(c, -1.0, 1.0)
    # |C(c)| <= 1 by Cauchy-Schwarz (b_var >= 0): clip the rounding only.
    return jnp.clip(jnp.where(ok, num / jnp.where(ok, den, 1.0), limit), -1.0, 1.0)


#: Correlations within this distance outside [-1, 1] are rounding (an iterated
#: float32 map can return 1 + 1e-7) and are clipped; farther ones are errors.
_C_ROUNDING = 1e-6


def _corr_slope(activation: str, c, q, W_var, b_var, quad: tuple[int, int]):
    # Price's theorem: d/dc E[phi(u1) phi(u2)] = q E[phi'(u1) phi'(u2)].
    den = W_var * _second_moment(activation, q, quad) + b_var
    ok = den > 0
    if activation == "relu":  # slope of the normalised arc-cosine map (see _corr)
        limit = 2.0 * _cross_deriv_moment("relu", 1.0, c, quad)
    else:
        limit = jnp.ones_like(den)
    slope = W_var * q * _cross_deriv_moment(activation, q, c, quad) / jnp.where(ok, den, 1.0)
    return jnp.where(ok, slope, limit)


@functools.partial(jax.jit, static_argnames=("activation", "quad", "num_iter"))
def _correlation_map(c, activation: str, W_var, b_var, q, quad: tuple[int, int], num_iter: int):
    if q is None:
        q, b_var = _norm_q(activation, W_var, b_var, quad, num_iter)
    return _corr(activation, c, q, W_var, b_var, quad)


def correlation_map(
    c, activation: str, W_var, b_var, q=None, *, quad: tuple[int, int] = QUAD, num_iter: int = 200
) -> jax.Array:
    r"""Correlation map :math:`c^{l+1} = \mathcal C(c^l)` at fixed input variance.

    .. math::

        \mathcal C(c) = \frac{\sigma_w^2 E[\phi(u_1)\phi(u_2)] + \sigma_b^2}
        {\sigma_w^2 E[\phi(u_1)^2] + \sigma_b^2},\quad
        u_1 = \sqrt q z_1,\; u_2 = \sqrt q (c z_1 + \sqrt{1-c^2} z_2).

    At ``q = q*`` (the default) the denominator is :math:`q^*` and this is the
    map of Poole et al. (2016, eq. 5). For ReLU/linear networks whose
    :math:`q^*` is 0 or infinite the normalised map is evaluated in its
    :math:`\sigma_b \to 0` limit, which by positive homogeneity does not
    depend on ``q`` (for ReLU it is the normalised arc-cosine kernel
    :math:`(\sin\theta + (\pi - \theta)\cos\theta)/\pi`, :math:`\theta =
    \arccos c`).

    Args:
      c: input correlation in :math:`[-1, 1]` (values within 1e-6 outside it,
        float rounding, are clipped to it; farther ones raise).
      activation: ``"relu"``, ``"tanh"``, ``"erf"`` or ``"identity"``.
      W_var: weight variance :math:`\sigma_w^2`.
      b_var: bias variance :math:`\sigma_b^2`.
      q: input variance; ``None`` for :math:`q^*`.
      quad: quadrature grid sizes, see :data:`QUAD`.
      num_iter: fixed-point iterations for :math:`q^*`.

    Returns:
      :math:`c^{l+1}` (scalar array) in :math:`[-1, 1]`, so the map can be
      iterated.

    References:
      Poole et al., Exponential expressivity in deep neural networks through
      transient chaos, 2016. Cho & Saul, Kernel Methods for Deep Learning, 2009.
    """
    activation, quad = _check_common(activation, W_var, b_var, quad, num_iter)
    _checks.scalar("c", c, -1.0 - _C_ROUNDING, 1.0 + _C_ROUNDING)
    if q is not None:
        _check_var(q, "q")
    _check_defined(W_var, b_var)
    f = _ftype(c, W_var, b_var)
    q = None if q is None else jnp.asarray(q, f)
    return _correlation_map(jnp.asarray(c, f), activation, W_var, b_var, q, quad, num_iter)


def _c_star(activation: str, W_var, b_var, quad: tuple[int, int], num_iter: int):
    q, b = _norm_q(activation, W_var, b_var, quad, num_iter)
    f = q.dtype
    if activation in ("relu", "identity"):
        return jnp.ones((), f), q, b
    chi1 = W_var * _deriv_moment(activation, q, quad)
    C = lambda c: _corr(activation, c, q, W_var, b, quad)
    c = lax.fori_loop(0, num_iter, lambda _, c: C(c), jnp.zeros((), f))

    def newton(_, c):
        slope = _corr_slope(activation, c, q, W_var, b, quad)
        step = (C(c) - c) / jnp.where(jnp.abs(slope - 1.0) > 1e-12, slope - 1.0, -1.0)
        return jnp.clip(c - step, -1.0, 1.0)

    c = lax.fori_loop(0, 8, newton, c)
    # Ordered phase (chi_1 <= 1): c* = 1 is the stable fixed point.
    return jnp.where(chi1 <= 1.0, 1.0, c), q, b


@functools.partial(jax.jit, static_argnames=("activation", "quad", "num_iter"))
def _c_star_jit(activation: str, W_var, b_var, quad: tuple[int, int], num_iter: int):
    return _c_star(activation, W_var, b_var, quad, num_iter)[0]


def c_star(
    activation: str, W_var, b_var, *, quad: tuple[int, int] = QUAD, num_iter: int = 200
) -> jax.Array:
    r"""Stable fixed point :math:`c^*` of the correlation map.

    :math:`c^* = 1` in the ordered phase (:math:`\chi_1 \le 1`) and for ReLU
    and linear networks (their normalised map has :math:`\mathcal C(c) \ge c`);
    in the chaotic phase of tanh/erf it is the solution :math:`c^* < 1` of
    :math:`\mathcal C(c^*) = c^*`, found by iterating from :math:`c = 0`
    (``num_iter`` steps) and polishing with Newton steps.

    Args:
      activation: ``"relu"``, ``"tanh"``, ``"erf"`` or ``"identity"``.
      W_var: weight variance :math:`\sigma_w^2`.
      b_var: bias variance :math:`\sigma_b^2`.
      quad: quadrature grid sizes, see :data:`QUAD`.
      num_iter: iteration budget.

    Returns:
      :math:`c^*` (scalar array).

    References:
      Poole et al., Exponential expressivity in deep neural networks through
      transient chaos, 2016. Schoenholz et al., Deep Information Propagation, 2017.
    """
    activation, quad = _check_common(activation, W_var, b_var, quad, num_iter)
    _check_defined(W_var, b_var)
    return _c_star_jit(activation, W_var, b_var, quad, num_iter)


@functools.partial(jax.jit, static_argnames=("activation", "quad", "num_iter"))
def _chi_c(activation: str, W_var, b_var, quad: tuple[int, int], num_iter: int):
    c, q, _ = _c_star(activation, W_var, b_var, quad, num_iter)
    return W_var * _cross_deriv_moment(activation, q, c, quad)


def chi_c(
    activation: str, W_var, b_var, *, quad: tuple[int, int] = QUAD, num_iter: int = 200
) -> jax.Array:
    r""":math:`\chi_c = \sigma_w^2 E[\phi'(u_1)\phi'(u_2)]` at :math:`(q^*, c^*)`.

    .. math::

        \chi_c = \sigma_w^2 \int Dz_1 Dz_2\, \phi'(u_1)\phi'(u_2),\quad
        u_1 = \sqrt{q^*} z_1,\; u_2 = \sqrt{q^*}(c^* z_1 + \sqrt{1 - c^{*2}} z_2).

    It is the slope of the correlation map at its stable fixed point; in the
    ordered phase :math:`c^* = 1` and :math:`\chi_c = \chi_1`. For ReLU it is
    :math:`\sigma_w^2/2` (:math:`c^* = 1`).

    Args:
      activation: ``"relu"``, ``"tanh"``, ``"erf"`` or ``"identity"``.
      W_var: weight variance :math:`\sigma_w^2`.
      b_var: bias variance :math:`\sigma_b^2`.
      quad: quadrature grid sizes, see :data:`QUAD`.
      num_iter: iteration budget for :math:`q^*` and :math:`c^*`.

    Returns:
      :math:`\chi_c` (scalar array).

    References:
      Schoenholz et al., Deep Information Propagation, 2017 (eq. 9).
    """
    activation, quad = _check_common(activation, W_var, b_var, quad, num_iter)
    _check_defined(W_var, b_var)
    return _chi_c(activation, W_var, b_var, quad, num_iter)


@functools.partial(jax.jit, static_argnames=("activation", "quad", "num_iter"))
def _depth_scales(activation: str, W_var, b_var, quad: tuple[int, int], num_iter: int):
    q, chi1 = _fixed_point(activation, W_var, b_var, quad, num_iter)
    qq = jnp.where(jnp.isfinite(q), q, 1.0)
    extra = W_var * _gauss1(lambda u: _d2phi(activation, u) * _phi(activation, u), qq, quad)
    slope_q = chi1 + extra
    slope_c = _chi_c(activation, W_var, b_var, quad, num_iter)

    def scale(s):
        ok = (s > 0) & (s < 1)
        return jnp.where(ok, -1.0 / jnp.log(jnp.where(ok, s, 0.5)), jnp.inf)

    return scale(slope_q), scale(slope_c)


def depth_scales(
    activation: str, W_var, b_var, *, quad: tuple[int, int] = QUAD, num_iter: int = 200
) -> tuple[jax.Array, jax.Array]:
    r"""Depth scales :math:`(\xi_q, \xi_c)` of signal propagation.

    .. math::

        \xi_q^{-1} = -\log\big(\chi_1 + \sigma_w^2 E_z[\phi''(\sqrt{q^*}z)
        \phi(\sqrt{q^*}z)]\big), \qquad \xi_c^{-1} = -\log \chi_c .

    :math:`\xi_c` diverges at the edge of chaos :math:`\chi_1 = 1`; it bounds
    the depth through which a random network can be trained (Schoenholz et al.
    2017: trainable when :math:`L \lesssim 6 \xi_c`). Where the slope is
    :math:`\ge 1` (critical, or ReLU/linear above criticality, where
    :math:`q^*` does not exist) ``inf`` is returned.

    Args:
      activation: ``"relu"``, ``"tanh"``, ``"erf"`` or ``"identity"``.
      W_var: weight variance :math:`\sigma_w^2`.
      b_var: bias variance :math:`\sigma_b^2`.
      quad: quadrature grid sizes, see :data:`QUAD`.
      num_iter: iteration budget for :math:`q^*` and :math:`c^*`.

    Returns:
      ``(xi_q, xi_c)`` scalar arrays (in layers).

    References:
      Schoenholz et al., Deep Information Propagation, 2017 (eqs. 6 and 9).
    """
    activation, quad = _check_common(activation, W_var, b_var, quad, num_iter)
    _check_defined(W_var, b_var)
    return _depth_scales(activation, W_var, b_var, quad, num_iter)


@functools.partial(jax.jit, static_argnames=("activation", "quad", "num_iter", "bisect_steps"))
def _critical(activation: str, b_var, hi, quad: tuple[int, int], num_iter: int, bisect_steps: int):
    f = _ftype(b_var)
    g = lambda w: _fixed_point(activation, w, b_var, quad, num_iter)[1] - 1.0

    def step(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        up = g(mid) > 0
        return jnp.where(up, lo, mid), jnp.where(up, mid, hi)

    lo, hi_ = lax.fori_loop(0, bisect_steps, step, (jnp.zeros((), f), jnp.asarray(hi, f)))
    w = 0.5 * (lo + hi_)
    return jnp.where(g(jnp.asarray(hi, f)) > 0, w, jnp.nan)


def critical_W_var(
    activation: str,
    b_var,
    *,
    W_var_max: float = 10.0,
    quad: tuple[int, int] = QUAD,
    num_iter: int = 200,
    bisect_steps: int = 64,
) -> jax.Array:
    r"""Weight variance on the edge of chaos, :math:`\chi_1(\sigma_w^2, \sigma_b^2) = 1`.

    .. math::

        \sigma_w^2\, E_z\big[\phi'(\sqrt{q^*} z)^2\big] = 1,\qquad
        q^* = \mathcal V(q^*;\sigma_w^2, \sigma_b^2).

    ReLU: :math:`\sigma_w^2 = 2` for every :math:`\sigma_b^2` (He et al. 2015);
    linear: 1. tanh/erf: bisection on :math:`(0, W_{\max}]` (``bisect_steps``
    halvings; :math:`\chi_1` increases with :math:`\sigma_w^2`), ``nan`` if
    :math:`\chi_1(W_{\max}) < 1`. For tanh with :math:`\sigma_b^2 = 0.05` this
    gives :math:`\sigma_w^2 \approx 1.761` (Schoenholz et al. 2017, Fig. 2).

    Args:
      activation: ``"relu"``, ``"tanh"``, ``"erf"`` or ``"identity"``.
      b_var: bias variance :math:`\sigma_b^2`.
      W_var_max: upper end of the bisection bracket.
      quad: quadrature grid sizes, see :data:`QUAD`.
      num_iter: fixed-point iterations per evaluation.
      bisect_steps: bisection halvings.

    Returns:
      Critical :math:`\sigma_w^2` (scalar array).

    Examples:
      >>> float(critical_W_var("relu", 0.0))
      2.0
      >>> round(float(critical_W_var("tanh", 0.05)), 3)
      1.761

    References:
      Schoenholz et al., Deep Information Propagation, 2017. He et al., Delving
      Deep into Rectifiers, 2015.
    """
    activation, quad = _check_common(activation, 1.0, b_var, quad, num_iter)
    _checks.scalar("W_var_max", W_var_max, 0.0, low_open=True)
    bisect_steps = _checks.positive_int("bisect_steps", bisect_steps)
    f = _ftype(b_var)
    if activation == "relu":
        return jnp.asarray(2.0, f)
    if activation == "identity":
        return jnp.asarray(1.0, f)
    return _critical(activation, jnp.asarray(b_var, f), W_var_max, quad, num_iter, bisect_steps)


def nngp_diag_variance(widths: Sequence[int], activation: str = "relu") -> jax.Array:
    r"""Relative variance of the finite-width NNGP diagonal, :math:`\mathrm{Var}(\hat K)/K^2`.

    For a network with hidden widths :math:`n_1, \dots, n_L`, Gaussian weights
    :math:`W^l_{ij} \sim \mathcal N(0, \sigma_w^2 / n_{l-1})`, no biases, and
    post-activations :math:`x^l = \phi(h^l)`, let :math:`\hat K_l = \|x^l\|^2 /
    n_l`. Given layer :math:`l-1`, the pre-activations :math:`h^l_i` are i.i.d.
    :math:`\mathcal N(0, \sigma_w^2 \hat K_{l-1})`, so for a positively
    homogeneous :math:`\phi` (ReLU, linear)

    .. math::

        \hat K_l = \sigma_w^2 \hat K_{l-1} \cdot \frac{1}{n_l}\sum_{i=1}^{n_l}
        \phi(z_i)^2, \qquad z_i \sim \mathcal N(0, 1)\ \text{i.i.d.},

    a product of independent factors with mean :math:`\sigma_w^2 E[\phi^2]`
    and relative second moment :math:`1 + (\kappa - 1)/n_l`,
    :math:`\kappa = E[\phi(z)^4]/E[\phi(z)^2]^2`. Hence, exactly (not only to
    first order in :math:`1/n`),

    .. math::

        \frac{\mathrm{Var}(\hat K_L)}{E[\hat K_L]^2}
        = \prod_{l=1}^{L}\Big(1 + \frac{\kappa - 1}{n_l}\Big) - 1
        \approx \frac{(\kappa - 1) L}{n}.

    ReLU: :math:`E[\phi^2] = 1/2`, :math:`E[\phi^4] = 3/2`, so
    :math:`\kappa = 6` and :math:`\kappa - 1 = 5`. Linear: :math:`\kappa = 3`
    (Gaussian fourth moment), :math:`\kappa - 1 = 2`. The result is independent
    of :math:`\sigma_w` and of the input.

    Args:
      widths: hidden widths :math:`(n_1, \dots, n_L)`.
      activation: ``"relu"`` or ``"identity"`` (``"linear"``: deprecated alias).

    Returns:
      :math:`\prod_l (1 + (\kappa-1)/n_l) - 1` (scalar array).

    Examples:
      >>> round(float(nngp_diag_variance([100, 100])), 4)
      0.1025
      >>> round(float(nngp_diag_variance([100, 100], "identity")), 4)
      0.0404

    Raises:
      ValueError: other activations (their law is not an exact product) or
        non-positive widths.

    References:
      Hanin & Nica, Products of Many Large Random Matrices and Gradients in
      Deep Neural Networks, 2019. Yaida, Non-Gaussian processes and neural
      networks at finite widths, 2020.
    """
    activation = activations.canonical(activation, tuple(_KAPPA_MINUS_ONE))
    if not _checks.is_tracer(widths):
        _checks.int_sequence("widths", widths, minimum=1)
    n = jnp.asarray(widths, _ftype())
    # expm1(sum log1p) avoids the cancellation of prod(...) - 1 at large widths.
    return jnp.expm1(jnp.sum(jnp.log1p(_KAPPA_MINUS_ONE[activation] / n)))
