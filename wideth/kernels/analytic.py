r"""Infinite-width NNGP and NTK kernels: MLP, CNN, ResNet builders over neural-tangents stax.

The builders return neural-tangents' ``(init_fn, apply_fn, kernel_fn)`` triple:
``init_fn``/``apply_fn`` define a finite network and ``kernel_fn`` its
infinite-width limit. For a dense layer with :math:`n` inputs in the ``ntk``
parameterization

.. math::

    h^{l+1} = \frac{\sigma_w}{\sqrt{n}} W^{l+1} \phi(h^l) + \sigma_b b^{l+1},
    \qquad W_{ij}, b_i \sim \mathcal N(0, 1),

the NNGP kernel and the NTK obey the recursions (Lee et al. 2018; Jacot et
al. 2018)

.. math::

    K^{l+1}(x, x') &= \sigma_w^2\, \mathbb E_{(u,v) \sim \mathcal N(0, K^l)}
        [\phi(u)\phi(v)] + \sigma_b^2, \\
    \Theta^{l+1}(x, x') &= K^{l+1}(x, x') + \sigma_w^2\, \mathbb E
        [\phi'(u)\phi'(v)]\, \Theta^l(x, x'),

with :math:`K^0 = \Theta^0 = \sigma_w^2 x^\top x' / d + \sigma_b^2` after the
first layer. ``b_std=None`` drops the bias (no :math:`\sigma_b^2` term and, in
the ``standard`` parameterization, no bias contribution to the NTK; ``b_std=0``
keeps a bias parameter there, which adds 1 to the NTK of every layer).

Every layer may have its own width, :math:`\sigma_w`, :math:`\sigma_b` and
nonlinearity (a sequence with one entry per layer). Nonlinearities are names
or ``(name, kwargs)`` pairs of the :mod:`wideth.activations` registry; each maps
to the neural-tangents layer with a closed-form kernel (arc-cosine kernels of
ReLU / ABReLU / LeakyReLU / Abs, Cho & Saul 2009; erf's arcsine kernel,
Williams 1997; Gelu, Sin/Cos, Rbf, Sign, Exp, Gaussian, Gabor, Monomial,
RectifiedMonomial, Polynomial, Hermite), except ``tanh``, ``sigmoid`` and
``("numerical", {"fn": f})``, which have none: their two kernel integrals are a
two-dimensional trapezoidal rule whose point count the builder chooses (see
:func:`quadrature_points`) so that the relative error per layer stays below
:data:`QUADRATURE_RTOL` for every pre-activation variance the network can
produce on inputs with mean square feature up to ``max_input_sq``;
:func:`kernel` checks that bound on the data.

:func:`kernel` evaluates a ``kernel_fn`` on data with input validation, row and
column batching through ``nt.batch`` (any ``batch_size``, padding as needed),
optional float64, and passes keyword arguments (``diagonal_batch``,
``diagonal_spatial``, ``pattern``, ``mask_constant``, ...) to the kernel function.

References:
    Lee et al., `Deep Neural Networks as Gaussian Processes
    <https://arxiv.org/abs/1711.00165>`_, 2018.
    Jacot et al., `Neural Tangent Kernel: Convergence and Generalization in
    Neural Networks <https://arxiv.org/abs/1806.07572>`_, 2018.
    Cho & Saul, `Kernel Methods for Deep Learning
    <https://papers.nips.cc/paper/3628-kernel-methods-for-deep-learning>`_, 2009.
    Williams, `Computing with Infinite Networks
    <https://papers.nips.cc/paper/1197-computing-with-infinite-networks>`_, 1997.
    Novak et al., `Neural Tangents: Fast and Easy Infinite Neural Networks in
    Python <https://arxiv.org/abs/1912.02803>`_, 2020.
    Han et al., `Fast Neural Kernel Embeddings for General Activations
    <https://arxiv.org/abs/2209.04121>`_, 2022.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wideth import _checks, _compat, activations
from wideth.kernels import _quadrature
from wideth.kernels.blocks import _pad_rows

__all__ = [
    "ACTIVATIONS",
    "KERNEL_FIELDS",
    "QUADRATURE_RTOL",
    "cnn",
    "kernel",
    "mlp",
    "quadrature_points",
    "resnet",
    "transformer",
]

#: Activation names usable by name alone in :func:`mlp`, :func:`cnn`,
#: :func:`resnet`; the parameterised ones (``abrelu``, ``monomial``,
#: ``polynomial``, ``hermite``, ``rectified_monomial``, ``numerical``) are
#: given as ``(name, kwargs)`` pairs. See :mod:`wideth.activations`.
ACTIVATIONS = activations.PARAMETER_FREE

#: Target relative error of one quadrature layer (NNGP and derivative kernel,
#: relative to the diagonal scale :math:`\sqrt{E\phi(u)^2\, E\phi(v)^2}`).
QUADRATURE_RTOL = 2e-5

#: Fields of neural-tangents' ``Kernel`` that :func:`kernel` returns for ``get``.
KERNEL_FIELDS = (
    "nngp",
    "ntk",
    "cov1",
    "cov2",
    "x1_is_x2",
    "is_gaussian",
    "is_reversed",
    "is_input",
    "diagonal_batch",
    "diagonal_spatial",
    "shape1",
    "shape2",
    "batch_axis",
    "channel_axis",
    "mask1",
    "mask2",
)
_PAIR_FIELDS = ("nngp", "ntk")

_PARAMETERIZATIONS = ("ntk", "standard")
_POOLS = ("global", "avg", "sum", "flatten")
_PADDINGS = ("SAME", "VALID", "CIRCULAR")
_LAYERNORMS = (None, "pre", "post")
_QUADRATURE = ("tanh", "sigmoid", "numerical")
_POINT_LADDER = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
_H_MAX = 0.5

Triple = tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]


# ----------------------------------------------------------------------------- quadrature


def _gauss_pair(f, cov12, var1, var2, num: int, xp=jnp):
    r""":math:`E[f(u) f(v)]`, :math:`(u, v) \sim \mathcal N(0, [[q_1, c], [c, q_2]])`.

    Cholesky form :math:`u = \sqrt{q_1} z_1`, :math:`v = r z_1 + s z_2` and a
    ``num x num`` trapezoidal rule on a grid of spacing :math:`h` centred at 0.
    For an integrand analytic in a strip of half-width :math:`a = \pi/(2\sqrt q)`
    (tanh, poles at :math:`\pm i\pi/2`), the discretisation error is
    :math:`\sim e^{-2\pi a/h}` and the truncation error at :math:`z_{\max} =
    h(\text{num}-1)/2` is :math:`\sim e^{-z_{\max}^2/2}`; the spacing balances
    the two per entry, :math:`h^3 = 8\pi^2 / ((\text{num}-1)^2 \sqrt q)` with
    :math:`q = \max(q_1, q_2)`, capped at :math:`h \le 1/2` (own derivation).
    """
    dtype = xp.result_type(cov12, float)
    q = xp.maximum(xp.maximum(var1, var2), 1e-300)
    h = xp.minimum((8 * np.pi**2 / ((num - 1) ** 2 * xp.sqrt(q))) ** (1.0 / 3.0), _H_MAX)
    z, w = _quadrature.nodes(num, h, dtype, xp)
    return _quadrature.expect_pair(f, f, _quadrature.cholesky(cov12, var1, var2, xp), z, w)


def quadrature_points(activation: Any, max_variance: float, rtol: float = QUADRATURE_RTOL) -> int:
    r"""Smallest trapezoidal point count (per axis) accurate to ``rtol`` up to ``max_variance``.

    Walks the ladder 16, 24, 32, ..., 1024 and returns the first ``N`` whose
    two kernel integrals :math:`E[\phi(u)\phi(v)]` and :math:`E[\phi'(u)\phi'(v)]`
    change by less than ``rtol / 2`` (relative to the diagonal scale
    :math:`\sqrt{E[\cdot(u)^2] E[\cdot(v)^2]}`) when the count is doubled, at
    variances :math:`q_1 = q_2 \in \{q_{\max}, q_{\max}/4\}` and :math:`q_2 =
    q_1/4`, correlations :math:`\rho \in \{0, 0.5, 0.9, 0.99, 1\}`, in float64 NumPy. The
    error of the rule grows with :math:`q` (:func:`_gauss_pair`), so the bound
    holds below :math:`q_{\max}`.

    Args:
      activation: ``"tanh"``, ``"sigmoid"`` or ``("numerical", {"fn": f})``.
      max_variance: largest pre-activation variance :math:`q_{\max} > 0`.
      rtol: target relative error.

    Returns:
      The point count.

    Raises:
      ValueError: no count up to 1024 reaches ``rtol`` (lower the variance bound
        or pass the count explicitly).

    Examples:
      >>> quadrature_points("tanh", 2.6) <= quadrature_points("tanh", 26.0)
      True
    """
    act = activations.resolve(activation, _QUADRATURE)
    q = float(_checks.scalar("max_variance", max_variance, 0.0, low_open=True))
    rtol = float(_checks.scalar("rtol", rtol, 0.0, low_open=True))
    return _points_for(act, q, rtol)


def _numpy_fns(act: activations.Activation) -> tuple[Callable, Callable]:
    """float64 NumPy versions of :math:`\\phi, \\phi'` for sizing the rule (no compilation)."""
    if act.name == "tanh":
        return np.tanh, lambda x: 1.0 - np.tanh(x) ** 2
    if act.name == "sigmoid":
        sig = lambda x: 0.5 * (1.0 + np.tanh(0.5 * x))
        return sig, lambda x: sig(x) * (1.0 - sig(x))
    fn, df = act.fn, activations.derivative(act)

    def wrap(g):
        def h(x):
            with jax.enable_x64(True):
                return np.asarray(g(jnp.asarray(x, jnp.float64)), np.float64)

        return h

    return wrap(fn), wrap(df)


@functools.lru_cache(maxsize=128)
def _points_for(act: activations.Activation, q: float, rtol: float) -> int:
    fns = _numpy_fns(act)
    cases = []
    for q1, q2 in ((q, q), (q / 4, q / 4), (q, q / 4)):
        for rho in (0.0, 0.5, 0.9, 0.99, 1.0):
            cases.append((rho * math.sqrt(q1 * q2), q1, q2))

    def table(f, num):
        return np.array(
            [
                [_gauss_pair(f, c, v1, v2, num, np), _gauss_pair(f, v1, v1, v1, num, np)]
                + [_gauss_pair(f, v2, v2, v2, num, np)]
                for c, v1, v2 in cases
            ]
        )

    for num in _POINT_LADDER:
        ok = True
        for f in fns:
            lo, hi = table(f, num), table(f, 2 * num)
            scale = np.sqrt(np.abs(hi[:, 1] * hi[:, 2])) + 1e-300
            if not np.all(np.abs(lo[:, 0] - hi[:, 0]) <= rtol / 2 * scale):
                ok = False
                break
        if ok:
            return num
    raise ValueError(
        f"max_input_sq: the {act} quadrature needs more than {_POINT_LADDER[-1]} points per axis "
        f"for relative error {rtol} at pre-activation variance {q:.3g}; lower max_input_sq or "
        "W_std/b_std, or pass quadrature_points explicitly"
    )


def _quadrature_layer(stax: Any, act: activations.Activation, num: int) -> Any:
    r"""``stax.Elementwise`` whose :math:`E[\phi\phi]`, :math:`E[\phi'\phi']` are quadratures."""
    fn, df = act.fn, activations.derivative(act)
    return stax.Elementwise(
        fn,
        lambda c, v1, v2: _gauss_pair(fn, c, v1, v2, num),
        lambda c, v1, v2: _gauss_pair(df, c, v1, v2, num),
    )


# ----------------------------------------------------------------------------- layers


def _activation_layer(stax: Any, act: activations.Activation, num: int | None) -> Any:
    """The neural-tangents layer of a resolved activation."""
    name, kw = act.name, act.kwargs
    if name in _QUADRATURE:
        return _quadrature_layer(stax, act, int(num))
    if name == "relu":
        return stax.Relu()
    if name == "abrelu":
        return stax.ABRelu(kw["a"], kw["b"])
    if name == "leaky_relu":
        return stax.LeakyRelu(kw["alpha"])
    if name == "abs":
        return stax.Abs()
    if name == "erf":
        return stax.Erf(kw["a"], kw["b"], kw["c"])
    if name == "sigmoid_like":
        return stax.Sigmoid_like()
    if name == "gelu":
        return stax.Gelu(approximate=False)
    if name == "identity":
        return stax.Identity()
    if name in ("sin", "cos"):
        return (stax.Sin if name == "sin" else stax.Cos)(kw["a"], kw["b"], kw["c"])
    if name == "rbf":
        return stax.Rbf(kw["gamma"])
    if name == "sign":
        return stax.Sign()
    if name == "exp":
        return stax.Exp(kw["a"], kw["b"])
    if name == "gaussian":
        return stax.Gaussian(kw["a"], kw["b"])
    if name == "gabor":
        return stax.Gabor()
    if name == "monomial":
        return stax.Monomial(kw["degree"])
    if name == "rectified_monomial":
        return stax.RectifiedMonomial(kw["degree"])
    if name == "polynomial":
        return stax.Polynomial(list(kw["coef"]))
    if name == "hermite":
        return stax.Hermite(kw["degree"])
    raise AssertionError(name)  # pragma: no cover - every registry name is mapped


def _second_moment(act: activations.Activation, q: float) -> float:
    r"""A bound on :math:`E[\phi(u)^2]`, :math:`u \sim \mathcal N(0, v)`, all :math:`v \le q`."""
    name, kw = act.name, act.kwargs
    if name in ("tanh", "sigmoid", "sigmoid_like", "sign", "gabor"):
        return 1.0
    if name == "relu":
        return q / 2
    if name in ("abrelu", "leaky_relu"):
        a, b = (kw["a"], kw["b"]) if name == "abrelu" else (kw["alpha"], 1.0)
        return (a * a + b * b) / 2 * q
    if name in ("abs", "identity", "gelu"):
        return q
    if name == "erf":
        return (abs(kw["a"]) + abs(kw["c"])) ** 2
    if name in ("sin", "cos"):
        return kw["a"] ** 2
    if name == "rbf":
        return 2.0
    if name == "gaussian" and kw["b"] <= 0:
        return kw["a"] ** 2
    if name == "monomial":
        n = kw["degree"]
        return float(math.prod(range(2 * n - 1, 0, -2))) * q**n
    return math.inf


@dataclasses.dataclass(frozen=True)
class _Bound:
    """The input bound the quadrature layers of a kernel_fn were sized for."""

    max_input_sq: float
    layers: tuple[str, ...]


class _Builder:
    """Resolves activations, tracks the pre-activation variance bound, sizes quadrature layers."""

    def __init__(self, stax: Any, quadrature_points: int | None, max_input_sq: float):
        self.stax = stax
        self.points = quadrature_points
        self.max_input_sq = max_input_sq
        self.q = 0.0  # bound on the variance of the current pre-activations
        self.quadrature: list[str] = []

    def affine(self, W_std: float, b_std: float | None, fan_in_sq: float | None = None) -> None:
        m = self.max_input_sq if fan_in_sq is None else fan_in_sq
        self.q = W_std**2 * m + (b_std or 0.0) ** 2

    def act(self, act: activations.Activation) -> Any:
        num = None
        if act.name in _QUADRATURE:
            num = self.points
            if num is None:
                if not math.isfinite(self.q):
                    raise ValueError(
                        f"activation: no variance bound before the {act} layer (an unbounded "
                        "activation precedes it); pass quadrature_points explicitly"
                    )
                num = _points_for(act, max(self.q, 1e-12), QUADRATURE_RTOL)
            self.quadrature.append(f"{act}: {num} points, variance <= {self.q:.3g}")
        layer = _activation_layer(self.stax, act, num)
        self.moment = _second_moment(act, self.q)
        return layer

    def finish(self, triple: Triple) -> Triple:
        init_fn, apply_fn, kernel_fn = triple
        if self.quadrature and self.points is None:
            kernel_fn = _with_bound(kernel_fn, _Bound(self.max_input_sq, tuple(self.quadrature)))
        return init_fn, apply_fn, kernel_fn


def _with_bound(kernel_fn: Callable, bound: _Bound) -> Callable:
    @functools.wraps(kernel_fn)
    def bounded(*args, **kwargs):
        return kernel_fn(*args, **kwargs)

    bounded.wideth_input_bound = bound
    return bounded


# ----------------------------------------------------------------------------- validation


_is_single_activation = activations.is_single


def _is_scalar(v: Any) -> bool:
    return v is None or np.ndim(v) == 0 and not isinstance(v, str | bytes)


def _check_stds(
    depth: int, W_std: Any, b_std: Any, n_affine: int
) -> tuple[list[float], list[float | None]]:
    return _checks.layer_stds(W_std, b_std, n_affine)


def _check_activations(activation: Any, n: int) -> list[activations.Activation]:
    return activations.per_layer(activation, n)


_check_sizes = _checks.layer_sizes


def _builder(
    quadrature_points: Any, max_input_sq: Any, tanh_points: Any = None
) -> tuple[Any, _Builder]:
    """Check the quadrature options (``tanh_points``: deprecated alias); NT's stax and a builder."""
    if tanh_points is not None and quadrature_points is None:
        quadrature_points = tanh_points
    if quadrature_points is not None:
        quadrature_points = _checks.positive_int("quadrature_points", quadrature_points, minimum=2)
    m = float(_checks.scalar("max_input_sq", max_input_sq, 0.0, low_open=True))
    stax = _compat.neural_tangents().stax
    return stax, _Builder(stax, quadrature_points, m)


def _check_head(parameterization: str, out_dim: int) -> None:
    _checks.choice("parameterization", parameterization, _PARAMETERIZATIONS)
    _checks.positive_int("out_dim", out_dim)


def _check_uniform(
    builder: str, activation: Any, W_std: Any, b_std: Any, parameterization: str, out_dim: int
) -> tuple[activations.Activation, float, float | None]:
    """One activation, one ``W_std`` and one ``b_std`` for every layer, and the readout."""
    if not _is_single_activation(activation):
        raise ValueError(
            f"activation: expected one name or (name, kwargs) pair, got {activation!r}"
        )
    act = activations.resolve(activation)
    if not _is_scalar(W_std) or not _is_scalar(b_std):
        raise ValueError(f"W_std: {builder} takes one W_std and one b_std for every layer")
    (w,), (b,) = _check_stds(0, W_std, b_std, 1)
    _check_head(parameterization, out_dim)
    return act, w, b


# ----------------------------------------------------------------------------- builders


def mlp(
    depth: int,
    width: int | Sequence[int],
    activation: Any = "relu",
    W_std: float | Sequence[float] = 2**0.5,
    b_std: float | None | Sequence[float | None] = 0.0,
    parameterization: str = "ntk",
    out_dim: int = 1,
    *,
    quadrature_points: int | None = None,
    max_input_sq: float = 10.0,
    tanh_points: int | None = None,
) -> Triple:
    r"""Fully connected network and its infinite-width kernels.

    ``depth`` hidden layers ``Dense(width_l) -> activation_l``, then a dense
    readout to ``out_dim`` outputs:

    .. math::

        f(x) = \frac{\sigma_{w,L+1}}{\sqrt{n_L}} W^{L+1} \phi_L(h^L) + \sigma_{b,L+1} b^{L+1},
        \quad h^{l} = \frac{\sigma_{w,l}}{\sqrt{n_{l-1}}} W^{l} \phi_{l-1}(h^{l-1})
        + \sigma_{b,l} b^{l}, \quad \phi_0(h^0) := x

    (``ntk`` parameterization; ``standard`` puts :math:`\sigma_w/\sqrt{n}` into
    the initial variance instead, which changes the NTK but not the NNGP).
    With ReLU and :math:`\sigma_w^2 = 2, \sigma_b = 0` (the defaults, He
    initialisation) the NNGP diagonal is preserved layer to layer.

    Args:
      depth: number of hidden layers :math:`L \ge 0` (0 = linear model).
      width: hidden width of the finite network (irrelevant for ``kernel_fn``),
        one int or ``depth`` of them.
      activation: a :mod:`wideth.activations` name or ``(name, kwargs)`` pair,
        or a sequence of ``depth`` of them (one per hidden layer).
      W_std: :math:`\sigma_w`, one value or ``depth + 1`` (the last is the readout's).
      b_std: :math:`\sigma_b`, likewise; ``None`` (or a ``None`` entry): no bias.
      parameterization: ``"ntk"`` or ``"standard"``.
      out_dim: number of outputs.
      quadrature_points: points per axis of the tanh / sigmoid / numerical
        layers; ``None`` chooses them with :func:`quadrature_points` for the
        variances reachable from inputs with :math:`|x|^2/d \le` ``max_input_sq``.
      max_input_sq: the largest mean squared input feature the quadrature is
        sized for (checked on the data by :func:`kernel`).
      tanh_points: deprecated alias of ``quadrature_points``.

    Returns:
      ``(init_fn, apply_fn, kernel_fn)`` as in neural-tangents ``stax.serial``;
      ``kernel_fn(x1, x2, get)`` with ``x`` of shape ``(n, d)``.

    Raises:
      ValueError: unknown ``activation`` / ``parameterization``, bad sizes,
        sequences of the wrong length.

    Examples:
      >>> import jax.numpy as jnp
      >>> _, _, kernel_fn = mlp(depth=2, width=512)
      >>> kernel(kernel_fn, jnp.ones((3, 4)), get="nngp").shape
      (3, 3)
      >>> _, _, kernel_fn = mlp(2, [256, 128], [("leaky_relu", {"alpha": 0.1}), "erf"],
      ...                       W_std=[1.5, 1.2, 1.0], b_std=None)

    References:
      Lee et al., Deep Neural Networks as Gaussian Processes, 2018.
      Jacot et al., Neural Tangent Kernel, 2018.
    """
    depth = _checks.nonnegative_int("depth", depth)
    widths = _check_sizes("width", width, depth)
    acts = _check_activations(activation, depth)
    ws, bs = _check_stds(depth, W_std, b_std, depth + 1)
    _check_head(parameterization, out_dim)
    stax, build = _builder(quadrature_points, max_input_sq, tanh_points)
    layers = []
    for l in range(depth):
        layers.append(
            stax.Dense(widths[l], W_std=ws[l], b_std=bs[l], parameterization=parameterization)
        )
        build.affine(ws[l], bs[l], None if l == 0 else build.moment)
        layers.append(build.act(acts[l]))
    layers.append(
        stax.Dense(int(out_dim), W_std=ws[-1], b_std=bs[-1], parameterization=parameterization)
    )
    return build.finish(stax.serial(*layers))


def _spatial_param(name: str, value: Any, n: int, nd: int, default: Any) -> list[tuple[int, ...]]:
    """One spatial tuple for all ``n`` layers, or ``n`` of them."""
    if value is None:
        value = default
    is_one = lambda v: isinstance(v, Sequence | np.ndarray) and all(np.ndim(e) == 0 for e in v)
    if is_one(value):
        out = [_checks.int_sequence(name, value)] * n
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        if len(value) != n:
            raise ValueError(f"{name}: expected one shape or {n} (one per layer), got {len(value)}")
        out = [_checks.int_sequence(name, v) for v in value]
    else:
        raise TypeError(f"{name}: expected a sequence of integers, got {value!r}")
    for v in out:
        if len(v) != nd:
            raise ValueError(f"{name}: expected {nd} spatial entries (like filter_shape), got {v}")
    return out


def cnn(
    depth: int,
    channels: int | Sequence[int],
    activation: Any = "relu",
    W_std: float | Sequence[float] = 2**0.5,
    b_std: float | None | Sequence[float | None] = 0.0,
    parameterization: str = "ntk",
    out_dim: int = 1,
    filter_shape: Sequence[int] | Sequence[Sequence[int]] = (3, 3),
    pool: str = "global",
    *,
    padding: str = "SAME",
    strides: Sequence[int] | Sequence[Sequence[int]] | None = None,
    pool_window: Sequence[int] | None = None,
    pool_strides: Sequence[int] | None = None,
    pool_padding: str = "VALID",
    quadrature_points: int | None = None,
    max_input_sq: float = 10.0,
    tanh_points: int | None = None,
) -> Triple:
    r"""Convolutional network (NHWC inputs) and its infinite-width kernels.

    ``depth`` blocks ``Conv(channels_l, filter_shape_l, strides_l, padding) ->
    activation_l``, then

    * ``pool="global"``: global average pooling, dense readout (the CNN-GAP of
      Novak et al. 2019; the kernel keeps all pixel-pixel covariances);
    * ``pool="avg"`` / ``"sum"``: average / sum pooling over ``pool_window``
      (default ``(2, 2)``) with ``pool_strides`` (default: the window, i.e. a
      2x2 downsampling) and ``pool_padding``, then flatten and dense readout;
      neural-tangents' stride-1 ``AvgPool`` is ``pool_strides=(1, 1)``;
    * ``pool="flatten"``: flatten, dense readout (the kernel then only needs
      per-pixel variances and equals that of a locally connected network).

    The conv layers follow the same recursion as :func:`mlp` with the
    expectation taken patch-wise (Novak et al. 2019, Garriga-Alonso et al. 2019).

    Args:
      depth: number of conv blocks :math:`\ge 0`.
      channels: channels of the finite network, one int or ``depth``.
      activation: name / ``(name, kwargs)`` pair or ``depth`` of them.
      W_std: :math:`\sigma_w`, one value or ``depth + 1`` (the last is the readout's).
      b_std: :math:`\sigma_b`, likewise; ``None``: no bias.
      parameterization: ``"ntk"`` or ``"standard"``.
      out_dim: number of outputs.
      filter_shape: spatial filter size, e.g. ``(3, 3)``, or ``depth`` of them.
      pool: ``"global"``, ``"avg"``, ``"sum"`` or ``"flatten"``.
      padding: ``"SAME"``, ``"VALID"`` or ``"CIRCULAR"`` (all conv layers).
      strides: conv strides, one tuple or ``depth`` of them (default 1).
      pool_window: window of ``pool="avg"/"sum"`` (default ``(2,) * nd``).
      pool_strides: strides of that pooling (default ``pool_window``).
      pool_padding: ``"SAME"`` or ``"VALID"`` for that pooling.
      quadrature_points: as in :func:`mlp`.
      max_input_sq: as in :func:`mlp`, per pixel: :math:`\max_p |x_p|^2 / C`.
      tanh_points: deprecated alias of ``quadrature_points``.

    Returns:
      ``(init_fn, apply_fn, kernel_fn)``; inputs of shape ``(n, H, W, C)``.

    Raises:
      ValueError: unknown ``activation`` / ``parameterization`` / ``pool`` /
        ``padding``, shapes of the wrong length.

    References:
      Novak et al., `Bayesian Deep Convolutional Networks with Many Channels are
      Gaussian Processes <https://arxiv.org/abs/1810.05148>`_, 2019.
      Arora et al., `On Exact Computation with an Infinitely Wide Neural Net
      <https://arxiv.org/abs/1904.11955>`_, 2019.
    """
    depth = _checks.nonnegative_int("depth", depth)
    chans = _check_sizes("channels", channels, depth)
    acts = _check_activations(activation, depth)
    ws, bs = _check_stds(depth, W_std, b_std, depth + 1)
    _check_head(parameterization, out_dim)
    _checks.choice("pool", pool, _POOLS)
    _checks.choice("padding", padding, _PADDINGS)
    _checks.choice("pool_padding", pool_padding, ("SAME", "VALID"))
    if isinstance(filter_shape, str | bytes):
        raise TypeError(f"filter_shape: expected a sequence of integers, got {filter_shape!r}")
    if isinstance(filter_shape, Sequence) and len(filter_shape) == 0:
        raise ValueError("filter_shape: expected at least 1 entries, got 0")
    first = filter_shape[0] if isinstance(filter_shape, Sequence) else None
    nd = (
        len(first)
        if isinstance(first, Sequence)
        else len(_checks.int_sequence("filter_shape", filter_shape))
    )
    filters = _spatial_param("filter_shape", filter_shape, depth, nd, None) if depth else []
    stride_list = _spatial_param("strides", strides, depth, nd, (1,) * nd) if depth else []
    window = _spatial_param("pool_window", pool_window, 1, nd, (2,) * nd)[0]
    pstrides = _spatial_param("pool_strides", pool_strides, 1, nd, window)[0]
    stax, build = _builder(quadrature_points, max_input_sq, tanh_points)
    layers = []
    for l in range(depth):
        layers.append(
            stax.Conv(
                chans[l],
                filters[l],
                strides=stride_list[l],
                padding=padding,
                W_std=ws[l],
                b_std=bs[l],
                parameterization=parameterization,
            )
        )
        # A patch average of per-pixel mean squares is at most their maximum.
        build.affine(ws[l], bs[l], None if l == 0 else build.moment)
        layers.append(build.act(acts[l]))
    if pool == "global":
        layers.append(stax.GlobalAvgPool())
    else:
        if pool in ("avg", "sum"):
            pool_layer = stax.AvgPool if pool == "avg" else stax.SumPool
            layers.append(pool_layer(window, strides=pstrides, padding=pool_padding))
        layers.append(stax.Flatten())
    layers.append(
        stax.Dense(int(out_dim), W_std=ws[-1], b_std=bs[-1], parameterization=parameterization)
    )
    return build.finish(stax.serial(*layers))


def resnet(
    depth: int,
    width: int,
    activation: Any = "relu",
    W_std: float = 2**0.5,
    b_std: float | None = 0.0,
    parameterization: str = "ntk",
    out_dim: int = 1,
    *,
    alpha: float | None = None,
    layernorm: str | None = None,
    quadrature_points: int | None = None,
    max_input_sq: float = 10.0,
) -> Triple:
    r"""Residual MLP (:class:`wideth.models.ResNet`) and its infinite-width kernels.

    A dense embedding, ``depth`` pre-activation residual blocks and a readout,

    .. math::

        h^0 = L_0(x),\quad h^{l} = h^{l-1} + \alpha\, L_l(\phi(N(h^{l-1}))),
        \quad f(x) = L_{\rm out}(\phi(N(h^D))),

    built as ``FanOut(2) -> parallel(Identity, branch) -> FanInSum``. In the
    ``ntk`` parameterization the branch's dense layer has :math:`\alpha\sigma_w`,
    :math:`\alpha\sigma_b` (the same function and NTK as :math:`\alpha L_l`); in
    ``standard`` (``b_std=None`` only) :math:`\alpha` scales the layer's input
    through ``ABRelu(alpha, alpha)``, :math:`W(\alpha\phi) = \alpha W\phi`.
    :math:`N` is the identity (``layernorm=None``) or ``stax.LayerNorm`` over
    features (``"pre"``). With ``layernorm="post"`` the blocks are :math:`h^l = N(h^{l-1} + \alpha
    L_l(\phi(h^{l-1})))` and the readout :math:`L_{\rm out}(\phi(h^D))`. In the
    limit, with :math:`N` the identity, the kernels obey
    :math:`K_l = K_{l-1} + \alpha^2 (\sigma_w^2 E[\phi\phi] + \sigma_b^2)`,
    :math:`\Theta_l = \Theta_{l-1} + \alpha^2 (\sigma_w^2 E[\phi\phi] +
    \sigma_b^2 + \sigma_w^2 E[\phi'\phi'] \Theta_{l-1})`; LayerNorm divides a
    kernel entry by :math:`\sqrt{K(x,x) K(x',x')}` (both in ``ntk``
    parameterization; own derivation from the FanInSum and LayerNorm rules of
    Novak et al. 2020, Appendix).

    Args:
      depth: number of residual blocks :math:`D \ge 0`.
      width: residual stream width of the finite network.
      activation: a name or ``(name, kwargs)`` pair (all blocks).
      W_std: :math:`\sigma_w` of every layer.
      b_std: :math:`\sigma_b` of every layer; ``None``: no biases.
      parameterization: ``"ntk"`` or ``"standard"``.
      out_dim: number of outputs.
      alpha: branch multiplier; ``None`` means :math:`1/\sqrt{\max(D, 1)}`.
      layernorm: ``None``, ``"pre"`` or ``"post"``.
      quadrature_points: as in :func:`mlp`.
      max_input_sq: as in :func:`mlp`.

    Returns:
      ``(init_fn, apply_fn, kernel_fn)``; inputs of shape ``(n, d)``.

    References:
      He et al., Identity Mappings in Deep Residual Networks, 2016.
      Hayou et al., `Stable ResNet <https://arxiv.org/abs/2010.12859>`_, 2021.
      Ba et al., `Layer Normalization <https://arxiv.org/abs/1607.06450>`_, 2016.
    """
    depth = _checks.nonnegative_int("depth", depth)
    width = _checks.positive_int("width", width)
    act, w, b = _check_uniform("resnet", activation, W_std, b_std, parameterization, out_dim)
    if layernorm not in _LAYERNORMS:
        raise ValueError(f"layernorm: expected one of {_LAYERNORMS}, got {layernorm!r}")
    alpha = (
        1.0 / math.sqrt(max(depth, 1)) if alpha is None else float(_checks.scalar("alpha", alpha))
    )
    stax, build = _builder(quadrature_points, max_input_sq)
    if parameterization == "standard" and b is not None:
        raise ValueError(
            "b_std: resnet in the standard parameterization needs b_std=None (a bias times "
            "alpha has an NTK weight alpha^2 that no stax.Dense reproduces)"
        )
    dense = functools.partial(stax.Dense, W_std=w, b_std=b, parameterization=parameterization)
    if parameterization == "ntk":  # alpha (sigma_w W phi / sqrt(n) + sigma_b b), exactly
        branch_dense = stax.Dense(width, W_std=alpha * w, b_std=None if b is None else alpha * b)
        scale = []
    else:  # W (alpha phi): the same function and the same NTK
        branch_dense = dense(width)
        scale = [stax.ABRelu(alpha, alpha)]
    norm = stax.LayerNorm(axis=-1) if layernorm else stax.Identity()
    build.affine(w, b)
    q_stream = build.q
    layers = [dense(width)]
    for _ in range(depth):
        build.q = 1.0 if layernorm == "pre" else q_stream
        branch = [stax.LayerNorm(axis=-1)] if layernorm == "pre" else []
        branch += [build.act(act), *scale, branch_dense]
        q_stream = (
            1.0
            if layernorm == "post"
            else q_stream + alpha**2 * (w**2 * build.moment + (b or 0.0) ** 2)
        )
        layers += [
            stax.FanOut(2),
            stax.parallel(stax.Identity(), stax.serial(*branch)),
            stax.FanInSum(),
        ]
        if layernorm == "post":
            layers.append(norm)
    if layernorm == "pre":
        layers.append(stax.LayerNorm(axis=-1))
    build.q = 1.0 if layernorm else q_stream
    layers += [build.act(act), dense(int(out_dim))]
    return build.finish(stax.serial(*layers))


_MECHANISMS = ("softmax", "identity", "abs", "relu")


_POS_EMB_TYPES = ("none", "sum", "concat")


@dataclasses.dataclass(frozen=True)
class _PosEmb:
    """Validated positional-embedding options of neural-tangents' ``GlobalSelfAttention``."""

    kind: str = "none"
    p_norm: float = 2.0
    decay_fn: Callable[[Any], Any] | None = None
    n_chan: int | None = None
    std: float = 1.0
    values: bool = False

    def channels(self, width: int) -> int:
        """Channels of the embeddings for a ``width``-channel stream."""
        return width if self.n_chan is None else self.n_chan

    def weights(self, width: int) -> tuple[float, float]:
        r"""Weights of the input kernel and of :math:`R` in the kernel the attention sees:
        ``sum``: :math:`K + \sigma_{pe}^2 R`; ``concat``:
        :math:`(n K + n_{pe} \sigma_{pe}^2 R) / (n + n_{pe})`."""
        if self.kind == "concat":
            c = self.channels(width)
            return width / (width + c), self.std**2 * c / (width + c)
        return 1.0, self.std**2


def _pos_emb_covariance(tokens: int, p_norm: float, decay_fn: Callable | None, dtype=None):
    r""":math:`R_{ts} = \mathrm{decay}(|t - s|^p)` (``decay_fn=None``: :math:`\delta_{ts}`),
    the covariance of the embeddings over positions, ``(T, T)``."""
    if decay_fn is None:
        return jnp.eye(tokens, dtype=dtype)
    d = jnp.arange(tokens, dtype=dtype)
    return jnp.asarray(decay_fn(jnp.abs(d[:, None] - d[None, :]) ** p_norm), dtype)


def _pos_emb_spec(
    pos_emb_type: Any,
    pos_emb_p_norm: Any,
    pos_emb_decay_fn: Any,
    n_chan_pos_emb: Any,
    W_pos_emb_std: Any,
    val_pos_emb: Any,
    width: int,
) -> _PosEmb:
    """Validate the positional-embedding arguments (shared by the builder and the model)."""
    kind = _checks.choice("pos_emb_type", pos_emb_type, _POS_EMB_TYPES)
    p_norm = float(_checks.scalar("pos_emb_p_norm", pos_emb_p_norm, 0.0, low_open=True))
    if pos_emb_decay_fn is not None:
        _checks.callable_("pos_emb_decay_fn", pos_emb_decay_fn, "a function of distances")
        r0 = np.asarray(pos_emb_decay_fn(jnp.zeros((2, 2))), np.float64)
        if r0.shape != (2, 2) or not np.all(np.isfinite(r0)) or np.any(r0 <= 0):
            raise ValueError(
                "pos_emb_decay_fn: expected an elementwise function with a finite value "
                f"> 0 at distance 0 (the embedding variance), got {r0.tolist()!r} at 0"
            )
    n_chan = None if n_chan_pos_emb is None else _checks.positive_int(
        "n_chan_pos_emb", n_chan_pos_emb
    )  # fmt: skip
    std = float(_checks.scalar("W_pos_emb_std", W_pos_emb_std, 0.0))
    values = _checks.boolean("val_pos_emb", val_pos_emb)
    if kind == "sum" and n_chan not in (None, width):
        raise ValueError(
            f"n_chan_pos_emb: expected None or the stream width {width} with "
            f"pos_emb_type='sum' (embeddings are added to the tokens), got {n_chan}"
        )
    if kind == "none":
        unused = (
            ("pos_emb_decay_fn", pos_emb_decay_fn, None),
            ("n_chan_pos_emb", n_chan, None),
            ("val_pos_emb", values, False),
        )
        for name, value, default in unused:
            if value != default:
                raise ValueError(
                    f"{name}: only used with pos_emb_type 'sum' or 'concat', got "
                    f"{value!r} with pos_emb_type='none'"
                )
    return _PosEmb(kind, p_norm, pos_emb_decay_fn, n_chan, std, values)


def transformer(
    depth: int,
    width: int,
    n_heads: int = 4,
    activation: Any = "relu",
    W_std: float = 2**0.5,
    b_std: float | None = 0.0,
    parameterization: str = "ntk",
    out_dim: int = 1,
    *,
    mechanism: str = "softmax",
    W_qk_std: float = 1.0,
    W_value_std: float = 1.0,
    layernorm: str | None = None,
    pool: str = "global",
    quadrature_points: int | None = None,
    max_input_sq: float = 10.0,
    pos_emb_type: str = "none",
    pos_emb_p_norm: float = 2.0,
    pos_emb_decay_fn: Callable[[Any], Any] | None = None,
    n_chan_pos_emb: int | None = None,
    W_pos_emb_std: float = 1.0,
    val_pos_emb: bool = False,
) -> Triple:
    r"""Attention network on token sequences ``(n, T, d)`` and its infinite-width kernels.

    A dense token embedding :math:`h^0 = L_0(x)`, ``depth`` blocks of a
    residual self-attention sublayer and a residual MLP sublayer,

    .. math::

        g^l = N(h^{l-1} + \mathrm{Attn}_l(h^{l-1})), \qquad
        h^l = N(g^l + L_l(\phi(g^l))),

    then global average pooling over tokens (``pool="global"``) or flattening
    (``"flatten"``) and a dense readout. :math:`N` is the identity or
    ``stax.LayerNorm`` over features (``layernorm="post"``). The attention is
    neural-tangents' ``GlobalSelfAttention`` with ``linear_scaling=True`` (the
    tractable limit of Hron et al. 2020: query and key weights tied, logits
    scaled by :math:`1/n_{\rm key}`), ``n_heads`` heads of ``width`` key and
    value features. In the limit the attention weights are deterministic,
    :math:`A_{ts}(x) = \mathrm{softmax}_s(\sigma_{qk}^2 K(x_t, x_s))` for the
    kernel :math:`K` of the sublayer's input, and its output kernel is
    :math:`\sigma_v^2 \sigma_w^2 \sum_{s, s'} A_{ts}(x) A_{t's'}(x') K(x_s,
    x'_{s'}) + \sigma_b^2` (Hron et al. 2020, eq. 9 and Section 3).
    The finite network with the same init and forward map is
    :class:`wideth.models.Transformer`.

    Args:
      depth: number of blocks :math:`\ge 0`.
      width: feature width (residual stream, keys, values, MLP hidden layer).
      n_heads: attention heads of the finite network.
      activation: the MLP sublayers' nonlinearity (name or ``(name, kwargs)``).
      W_std: :math:`\sigma_w` of the dense layers and the attention output.
      b_std: :math:`\sigma_b` of every layer (``None``: no biases).
      parameterization: ``"ntk"`` or ``"standard"`` (dense layers only; the
        attention layer is always in the ``ntk`` parameterization, as in NT).
      out_dim: number of outputs.
      mechanism: ``"softmax"``, ``"identity"``, ``"abs"`` or ``"relu"`` applied
        to the attention logits.
      W_qk_std: :math:`\sigma_{qk}`: the logits are :math:`\sigma_{qk}^2 q^\top k`.
      W_value_std: :math:`\sigma_v` of the value weights.
      layernorm: ``None`` or ``"post"``.
      pool: ``"global"`` or ``"flatten"``.
      quadrature_points: as in :func:`mlp`.
      max_input_sq: as in :func:`mlp`, per token (only bounds the first block).
      pos_emb_type: positional embeddings of every attention layer,
        neural-tangents' ``pos_emb_type``: ``"none"`` (default), ``"sum"``
        (added to the layer's input tokens) or ``"concat"`` (appended as
        ``n_chan_pos_emb`` extra channels). Each layer has its own trained
        embedding :math:`p \in \mathbb R^{T \times n_{pe}}`, entries
        :math:`\mathcal N(0, 1)` times :math:`\sigma_{pe}` (zero at masked
        tokens), correlated over positions as :math:`R`; in the limit the keys
        and queries see the kernel :math:`K + \sigma_{pe}^2 R` (``"sum"``) or
        :math:`(n K + n_{pe}\sigma_{pe}^2 R)/(n + n_{pe})` (``"concat"``) in place
        of :math:`K` (Hron et al. 2020, Section 3.3). With ``"concat"`` and a
        fixed ``n_chan_pos_emb`` the kernel depends on ``width`` through
        :math:`n/(n + n_{pe})` (``None`` keeps it at 1/2).
      pos_emb_p_norm: :math:`p` of the distance :math:`|t - s|^p` passed to
        ``pos_emb_decay_fn``.
      pos_emb_decay_fn: :math:`R_{ts} = \mathrm{decay}(|t-s|^p)`, an elementwise
        function of distances with a positive value at 0 (it must give a
        positive definite :math:`R`); ``None``: :math:`R = I` (independent
        embeddings per position).
      n_chan_pos_emb: :math:`n_{pe}`; ``None``: the stream width (required with
        ``"sum"``).
      W_pos_emb_std: :math:`\sigma_{pe}`.
      val_pos_emb: the values see the embeddings too (``False``: keys and
        queries only).

    Returns:
      ``(init_fn, apply_fn, kernel_fn)``; inputs of shape ``(n, T, d)``.
      Padding: fill padded tokens with a constant ``c`` and pass
      ``mask_constant=c`` to :func:`kernel` (and to ``apply_fn``). A sequence
      of padding only has no output: neural-tangents' ``kernel_fn`` gives it
      zero NNGP and NTK rows (its ``apply_fn`` flags the output as masked), and
      :func:`kernel` raises for it when the inputs are concrete.

    References:
      Hron et al., `Infinite attention: NNGP and NTK for deep attention networks
      <https://arxiv.org/abs/2006.10540>`_, 2020.
      Vaswani et al., `Attention Is All You Need <https://arxiv.org/abs/1706.03762>`_, 2017.
    """
    depth = _checks.nonnegative_int("depth", depth)
    width = _checks.positive_int("width", width)
    n_heads = _checks.positive_int("n_heads", n_heads)
    act, w, b = _check_uniform("transformer", activation, W_std, b_std, parameterization, out_dim)
    _checks.choice("mechanism", mechanism, _MECHANISMS)
    qk = float(_checks.scalar("W_qk_std", W_qk_std, 0.0))
    wv = float(_checks.scalar("W_value_std", W_value_std, 0.0))
    if layernorm not in (None, "post"):
        raise ValueError(f"layernorm: expected None or 'post', got {layernorm!r}")
    _checks.choice("pool", pool, ("global", "flatten"))
    pe = _pos_emb_spec(
        pos_emb_type, pos_emb_p_norm, pos_emb_decay_fn, n_chan_pos_emb, W_pos_emb_std,
        val_pos_emb, width,
    )  # fmt: skip
    # the values' kernel with val_pos_emb: a K + b R, R at most its value at distance 0
    pe_w = pe.weights(width) if pe.values and pe.kind != "none" else (1.0, 0.0)
    r0 = 1.0 if pe.decay_fn is None else float(np.asarray(pe.decay_fn(jnp.zeros(()))))
    stax, build = _builder(quadrature_points, max_input_sq)
    dense = functools.partial(stax.Dense, W_std=w, b_std=b, parameterization=parameterization)
    norm = [stax.LayerNorm(axis=-1)] if layernorm else []

    def residual(*branch):
        return [
            stax.FanOut(2),
            stax.parallel(stax.Identity(), stax.serial(*branch)),
            stax.FanInSum(),
        ]

    build.affine(w, b)
    layers = [dense(width)]
    q_h = build.q
    for _ in range(depth):
        # softmax weights sum to 1, so the attention output variance is at most
        # (w wv)^2 max_s K(x_s, x_s) + b^2 (Cauchy-Schwarz); other mechanisms: no bound
        q_v = pe_w[0] * q_h + pe_w[1] * r0
        q_att = (w * wv) ** 2 * q_v if mechanism == "softmax" else math.inf
        build.q = 1.0 if layernorm else q_h + q_att + (b or 0.0) ** 2
        attention = stax.GlobalSelfAttention(
            width,
            width,
            width,
            n_heads,
            linear_scaling=True,
            W_key_std=qk,
            W_query_std=qk,
            W_value_std=wv,
            W_out_std=w,
            b_std=b,
            attention_mechanism=mechanism.upper(),
            pos_emb_type=pe.kind.upper(),
            pos_emb_p_norm=pe.p_norm,
            pos_emb_decay_fn=pe.decay_fn,
            n_chan_pos_emb=pe.n_chan,
            W_pos_emb_std=pe.std,
            val_pos_emb=pe.values,
        )
        layers += residual(attention) + norm
        layers += residual(build.act(act), dense(width)) + norm
        q_h = 1.0 if layernorm else build.q + w**2 * build.moment + (b or 0.0) ** 2
    layers.append(stax.GlobalAvgPool() if pool == "global" else stax.Flatten())
    layers.append(dense(int(out_dim)))
    return build.finish(stax.serial(*layers))


# ----------------------------------------------------------------------------- kernel


def _check_fully_masked(c: Any, x1: Any, x2: Any) -> None:
    """No concrete input row whose every entry equals ``mask_constant`` ``c``.

    neural-tangents gives such a fully masked input (a sequence of padding
    tokens only) zero NNGP and NTK rows: no output exists for it, and a train
    kernel with such a row is singular. Traced inputs are not checked.
    """
    if c is None or _checks.is_tracer(c):
        return
    for name, x in (("x1", x1), ("x2", x2)):
        if x is None or _checks.is_tracer(x):
            continue
        a = np.asarray(x)
        full = np.flatnonzero(np.all(a == np.asarray(c), axis=tuple(range(1, a.ndim))))
        if full.size:
            raise ValueError(
                f"mask_constant: expected every row of {name} to keep an unmasked entry, got "
                f"fully masked rows {full.tolist()} (every entry equal to mask_constant={c!r}; "
                "neural-tangents gives them zero kernel rows)"
            )


def _check_input_bound(kernel_fn: Callable, x: Any, name: str) -> None:
    """Inputs within the mean-square bound the quadrature layers of ``kernel_fn`` were sized for."""
    bound = getattr(kernel_fn, "wideth_input_bound", None)
    if bound is None or _checks.is_tracer(x):
        return
    a = np.asarray(x, np.float64)
    worst = float(np.max(np.mean(a**2, axis=-1)))
    if worst > bound.max_input_sq * (1 + 1e-6):
        raise ValueError(
            f"{name}: expected inputs with mean squared feature |x|^2/d <= max_input_sq = "
            f"{bound.max_input_sq:g} (the quadrature of {list(bound.layers)} is sized for it), "
            f"got {worst:.4g}; rebuild with max_input_sq >= {worst:.3g} or an explicit "
            "quadrature_points"
        )


def _check_x(x: Any, name: str) -> Any:
    """Rank >= 2, at least one row, a real dtype, finite when concrete; returned unconverted
    (a float64 NumPy input keeps its precision for ``dtype=jnp.float64``)."""
    if isinstance(x, str | bytes) or x is None:
        raise TypeError(f"{name}: expected an array (n, features...), got {type(x).__name__}")
    if not hasattr(x, "shape"):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name}: expected an array, got {type(x).__name__}: {err}") from None
    if np.dtype(x.dtype).kind not in "iuf":
        raise TypeError(f"{name}: expected a real array, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"{name}: expected shape (n, features...), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one row, got shape {tuple(x.shape)}")
    _checks.finite(name, x)
    return x


@functools.lru_cache(maxsize=256)
def _kernel_shape(kernel_fn: Callable, s1: Any, s2: Any, get: Any, static: Any = ()) -> Any:
    """Abstract output of ``kernel_fn`` on inputs of these shapes (cached: no compute)."""
    return jax.eval_shape(lambda a, b: kernel_fn(a, b, get, **dict(static)), s1, s2)


def _hashable_kwargs(kwargs: dict[str, Any]) -> tuple[tuple[str, Any], ...] | None:
    """The keyword arguments as a cache key, or None when one is unhashable (an array)."""
    items = tuple(sorted(kwargs.items()))
    try:
        hash(items)
    except TypeError:
        return None
    if any(hasattr(v, "shape") for _, v in items):
        return None
    return items


def _check_kernel_output(
    kernel_fn: Callable, x1: Any, x2: Any, get: Any, kwargs: dict[str, Any] | None = None
) -> None:
    """``kernel_fn`` maps the inputs to ``(n1, n2)`` kernels (an input of the wrong rank
    for the network, e.g. images for an MLP, gives a kernel of another shape or fails)."""
    s1 = jax.ShapeDtypeStruct(x1.shape, x1.dtype)
    s2 = None if x2 is None else jax.ShapeDtypeStruct(x2.shape, x2.dtype)
    n1, n2 = x1.shape[0], (x1 if x2 is None else x2).shape[0]
    try:
        kwargs = kwargs or {}
        static = _hashable_kwargs(kwargs)
        try:
            hash(kernel_fn)
            shape_of = _kernel_shape if static is not None else None
        except TypeError:  # an unhashable callable: evaluate without the cache
            shape_of = None
        if shape_of is not None:
            out = shape_of(kernel_fn, s1, s2, get, static)
        else:
            out = jax.eval_shape(lambda a, b: kernel_fn(a, b, get, **kwargs), s1, s2)
    except Exception as err:  # noqa: BLE001 - neural-tangents raises many error types
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"x1: kernel_fn cannot evaluate inputs of shape {tuple(x1.shape)}: {msg}"
        ) from None
    fields = (get,) if isinstance(get, str) else get
    outs = (out,) if isinstance(get, str) else tuple(out)
    for field, leaf in zip(fields, outs, strict=True):
        if field not in _PAIR_FIELDS:
            continue
        if tuple(leaf.shape) != (n1, n2):
            raise ValueError(
                f"x1: expected inputs that kernel_fn maps to an ({n1}, {n2}) kernel, got a "
                f"kernel of shape {tuple(leaf.shape)} for inputs of shape {tuple(x1.shape)} "
                "(inputs of the wrong rank for this network?)"
            )


@functools.lru_cache(maxsize=64)
def _batched(kernel_fn: Callable, batch_size: int, store_on_device: bool) -> Callable:
    nt = _compat.neural_tangents()
    return nt.batch(kernel_fn, batch_size=batch_size, store_on_device=store_on_device)


@functools.lru_cache(maxsize=64)
def _jitted(kernel_fn: Callable, static: Any = ()) -> Callable:
    kw = dict(static)
    return jax.jit(lambda a, b, get: kernel_fn(a, b, get, **kw), static_argnames="get")


def kernel(
    kernel_fn: Callable[..., Any],
    x1: Any,
    x2: Any = None,
    get: str | tuple[str, ...] = "ntk",
    batch_size: int = 0,
    dtype: Any = None,
    *,
    store_on_device: bool = True,
    mesh: Any = None,
    out: str = "device",
    path: Any = None,
    quiet: bool = True,
    **kernel_kwargs: Any,
) -> Any:
    r"""Evaluate an analytic ``kernel_fn`` on data, batched and validated.

    Computes :math:`K_{ij} = k(x^{(1)}_i, x^{(2)}_j)` (NNGP and/or NTK, or any
    other field of neural-tangents' ``Kernel``). With
    ``batch_size > 0`` the matrix is computed in ``batch_size x batch_size``
    blocks through ``nt.batch`` (rows additionally split over local devices),
    so peak memory is that of one block's intermediates plus the output; the
    inputs are padded (repeating their first row) to a multiple of the block
    size and the result is sliced back to ``(n1, n2)``.

    Args:
      kernel_fn: the third element of :func:`mlp` / :func:`cnn` (or any
        neural-tangents ``kernel_fn``).
      x1: inputs of shape ``(n1, features...)``.
      x2: inputs of shape ``(n2, features...)`` or ``None`` for ``x1``.
      get: ``"ntk"``, ``"nngp"``, any name in :data:`KERNEL_FIELDS` (``"cov1"``,
        ``"cov2"``, ``"is_gaussian"``, ...) or a tuple such as ``("nngp", "ntk")``.
        Batching, ``mesh`` and ``out="host"`` need ``get`` within ``("nngp", "ntk")``.
      batch_size: block size; ``0`` computes everything at once.
      mesh: a :class:`jax.sharding.Mesh` (e.g.
        :func:`wideth.kernels.blocks.row_mesh`): rows are computed in blocks of
        ``batch_size`` (default 256) sharded over its devices with
        ``jax.shard_map``; the result stays row-sharded. Default: the mesh set
        with :func:`jax.set_mesh`, if any.
      out: ``"device"`` or ``"host"``: stream row blocks into host memory (a
        NumPy array, or a ``.npy`` memmap at ``path``) with a progress bar
        unless ``quiet``, so kernels larger than accelerator memory fit.
      path: ``.npy`` file for ``out="host"``, written atomically (see
        :func:`wideth.kernels.blocks.blockwise`). With a single ``get`` it holds
        the returned ``(n1, n2)`` array; with a tuple, the kernels stacked on a
        last axis, ``(n1, n2, len(get))``, of which the returned arrays are views.
      quiet: hide the progress bar of ``out="host"``.
      dtype: ``jnp.float64`` computes in double precision inside a
        ``jax.enable_x64`` context (the flag is restored afterwards; the result
        stays float64); ``jnp.float32`` forces single precision; ``None`` keeps
        the current default float type.
      store_on_device: with batching, ``False`` gathers blocks in host memory.
      **kernel_kwargs: passed to ``kernel_fn``: ``diagonal_batch``,
        ``diagonal_spatial`` (NT's kernel-shape switches), ``pattern`` (for
        ``stax.Aggregate``), ``mask_constant``, ... Array-valued ones need
        ``batch_size=0`` and the default ``out``/``mesh``. With
        ``mask_constant``, an input row all of whose entries equal it (a fully
        masked sequence) raises: neural-tangents gives it zero kernel rows.

    Returns:
      An array of shape ``(n1, n2)`` (``n2 = n1`` if ``x2`` is None), or a
      tuple of them in the order of ``get``.

    Examples:
      Orthogonal unit inputs through one ReLU layer (arc-cosine kernel:
      :math:`K(x, x) = \tfrac12 \cdot \tfrac12`, :math:`K(x, x') = \tfrac{1}{2}
      \cdot \tfrac{1}{2\pi}` at a right angle):

      >>> import jax.numpy as jnp
      >>> _, _, kernel_fn = mlp(depth=1, width=8, W_std=1.0)
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
      >>> k = kernel(kernel_fn, x, get="nngp", batch_size=2)
      >>> [round(float(v), 4) for v in k[0]]
      [0.25, 0.0796, 0.25]

    Raises:
      ValueError: bad ``get``, negative ``batch_size``, ``x1``/``x2`` whose
        feature shapes differ, NaN/inf inputs, unsupported ``dtype``, inputs
        beyond the ``max_input_sq`` a quadrature layer was sized for, a fully
        masked input row with ``mask_constant``.
    """
    _checks.callable_("kernel_fn", kernel_fn, "a neural-tangents kernel_fn(x1, x2, get)")
    get = _checks.choices("get", get, KERNEL_FIELDS)
    pair_only = all(g in _PAIR_FIELDS for g in ((get,) if isinstance(get, str) else get))
    static = _hashable_kwargs(kernel_kwargs)
    store_on_device = _checks.boolean("store_on_device", store_on_device)
    if not isinstance(batch_size, int | np.integer) or isinstance(batch_size, bool):
        raise ValueError(f"batch_size must be a non-negative int, got {batch_size!r}")
    if batch_size < 0:
        raise ValueError(f"batch_size must be a non-negative int, got {batch_size!r}")
    if dtype is not None:
        dtype = jnp.dtype(dtype)
        if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
            raise ValueError(f"dtype must be None, float32 or float64, got {dtype}")
    x1 = _check_x(x1, "x1")
    if x2 is not None:
        x2 = _check_x(x2, "x2")
        if tuple(x1.shape[1:]) != tuple(x2.shape[1:]):
            raise ValueError(
                f"x2: expected the feature shape of x1 {tuple(x1.shape[1:])}, got x2 of "
                f"shape {tuple(x2.shape)}"
            )
    _check_fully_masked(kernel_kwargs.get("mask_constant"), x1, x2)
    _check_input_bound(kernel_fn, x1, "x1")
    if x2 is not None:
        _check_input_bound(kernel_fn, x2, "x2")

    use_x64 = dtype is not None and dtype == jnp.dtype(jnp.float64)
    ctx = jax.enable_x64(True) if use_x64 else contextlib.nullcontext()
    with ctx:
        ftype = dtype if dtype is not None else jnp.result_type(float)
        x1 = jnp.asarray(x1, ftype)
        x2 = None if x2 is None else jnp.asarray(x2, ftype)
        n1 = x1.shape[0]
        n2 = n1 if x2 is None else x2.shape[0]
        _check_kernel_output(kernel_fn, x1, x2, get, kernel_kwargs)
        from wideth.kernels.blocks import blockwise, current_mesh

        mesh = current_mesh(mesh, x1, x2)
        if path is not None and out != "host":
            raise ValueError(f"path: only used with out='host', got out={out!r}")
        blocked = mesh is not None or out != "device"
        if blocked or (batch_size and (batch_size < n1 or batch_size < n2)):
            if not pair_only:
                raise ValueError(
                    "get: batching, mesh and out='host' compute only ('nngp', 'ntk'), "
                    f"got {get!r}; use batch_size=0"
                )
            if static is None:
                raise ValueError(
                    "batch_size: array-valued kernel keyword arguments "
                    f"{sorted(kernel_kwargs)} need batch_size=0 and out='device' without a mesh"
                )
        kfn = kernel_fn if not kernel_kwargs else functools.partial(kernel_fn, **kernel_kwargs)
        if blocked:
            if isinstance(get, tuple):  # stacked on a last axis; the parts are views of it
                block = lambda a, b: jnp.stack(kfn(a, b, get), axis=-1)
            else:  # the file at ``path`` holds exactly the (n1, n2) array returned
                block = lambda a, b: kfn(a, b, get)
            result = blockwise(
                block,
                x1,
                x1 if x2 is None else x2,
                block_size=int(batch_size) or 256,
                mesh=mesh,
                out=out,
                path=path,
                quiet=quiet,
            )
            if isinstance(get, tuple):
                return tuple(result[..., i] for i in range(len(get)))
            return result
        if batch_size == 0 or (batch_size >= n1 and batch_size >= n2):
            if static is None:
                out = jax.jit(lambda a, b: kfn(a, b, get))(x1, x2)
            else:
                out = _jitted(kernel_fn, static)(x1, x2, get=get)
        else:
            bs = int(batch_size)
            devices = jax.local_device_count()
            x1p = _pad_rows(x1, bs * devices)
            x2p = None if x2 is None else _pad_rows(x2, bs)
            out = _batched(kernel_fn, bs, bool(store_on_device))(x1p, x2p, get, **kernel_kwargs)
            out = jax.tree.map(lambda k: k[:n1, :n2], out)
        if isinstance(get, tuple):
            return tuple(out)
        return out
