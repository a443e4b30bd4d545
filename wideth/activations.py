r"""The one registry of elementwise nonlinearities, by name.

Models (:mod:`wideth.models`), mean-field theory (:mod:`wideth.kernels.meanfield`)
and the analytic kernels (:mod:`wideth.kernels.analytic`, whose builders map the
same names to neural-tangents layers) all take these names. An activation is
given as a name, ``"relu"``, or as a ``(name, kwargs)`` pair for the
parameterised ones, ``("abrelu", {"a": 0.1, "b": 1.0})``; :func:`resolve`
turns either into a hashable :class:`Activation`.

=======================  =====================================================  =================
name                     :math:`\phi(z)`                                        parameters
=======================  =====================================================  =================
``relu``                 :math:`\max(z, 0)`
``abrelu``               :math:`a \min(z, 0) + b \max(z, 0)`                    ``a``, ``b``
``leaky_relu``           :math:`\alpha \min(z, 0) + \max(z, 0)`                 ``alpha=0.01``
``abs``                  :math:`|z|`
``tanh``                 :math:`\tanh z`
``erf``                  :math:`a \operatorname{erf}(b z) + c`                  ``a=1, b=1, c=0``
``sigmoid``              :math:`1/(1 + e^{-z})`
``sigmoid_like``         :math:`(1 + \operatorname{erf}(z / 2.40206))/2`
``gelu``                 :math:`z\,\Phi(z)` (exact, not the tanh fit)
``identity``             :math:`z`
``sin``                  :math:`a \sin(b z + c)`                                ``a=1, b=1, c=0``
``cos``                  :math:`a \cos(b z + c)`                                ``a=1, b=1, c=0``
``rbf``                  :math:`\sqrt2 \sin(\sqrt{2\gamma} z + \pi/4)`          ``gamma=1``
``sign``                 :math:`\operatorname{sign} z`
``exp``                  :math:`a e^{b z}`                                      ``a=1, b=1``
``gaussian``             :math:`a e^{b z^2}`                                    ``a=1, b=-1/2``
``gabor``                :math:`e^{-z^2} \sin z`
``monomial``             :math:`z^n`, :math:`0 \le n \le 5`                     ``degree``
``rectified_monomial``   :math:`\mathbb 1[z \ge 0]\, z^n`                       ``degree``
``polynomial``           :math:`\sum_k c_k z^k`                                 ``coef``
``hermite``              :math:`\mathrm{He}_n(z)/\sqrt{n!}`, unit norm          ``degree``
``numerical``            any ``fn`` (kernels by quadrature)                     ``fn``, ``df=None``
=======================  =====================================================  =================

``"gaussian"`` keeps this registry's :math:`e^{-z^2/2}` by default (NT's
``stax.Gaussian`` defaults to :math:`b = -1`). ``"linear"`` is accepted as a
deprecated alias of ``"identity"``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wideth import _checks

__all__ = [
    "ACTIVATIONS",
    "NAMES",
    "PARAMETER_FREE",
    "Activation",
    "canonical",
    "derivative",
    "get",
    "is_single",
    "per_layer",
    "resolve",
]

_SIGMOID_LIKE_SCALE = 2.4020563531719796  # neural-tangents' Sigmoid_like constant

_REQUIRED = object()


def _hermite(degree: int) -> Callable[[jax.Array], jax.Array]:
    coef = np.polynomial.hermite_e.herme2poly([0] * degree + [1])
    norm = math.sqrt(math.factorial(degree))
    return lambda z: jnp.polyval(jnp.asarray(coef[::-1] / norm, jnp.result_type(z, float)), z)


def _polynomial(coef: tuple[float, ...]) -> Callable[[jax.Array], jax.Array]:
    c = np.asarray(coef, float)[::-1]
    return lambda z: jnp.polyval(jnp.asarray(c, jnp.result_type(z, float)), z)


# name -> (factory(**params) -> phi, {param: default or _REQUIRED})
_REGISTRY: dict[str, tuple[Callable[..., Callable[[jax.Array], jax.Array]], dict[str, Any]]] = {
    "relu": (lambda: jax.nn.relu, {}),
    "abrelu": (
        lambda a, b: lambda z: a * jnp.minimum(z, 0) + b * jnp.maximum(z, 0),
        {"a": _REQUIRED, "b": _REQUIRED},
    ),
    "leaky_relu": (
        lambda alpha: lambda z: alpha * jnp.minimum(z, 0) + jnp.maximum(z, 0),
        {"alpha": 0.01},
    ),
    "abs": (lambda: jnp.abs, {}),
    "tanh": (lambda: jnp.tanh, {}),
    "erf": (
        lambda a, b, c: (
            jax.scipy.special.erf
            if (a, b, c) == (1.0, 1.0, 0.0)
            else lambda z: a * jax.scipy.special.erf(b * z) + c
        ),
        {"a": 1.0, "b": 1.0, "c": 0.0},
    ),
    "sigmoid": (lambda: jax.nn.sigmoid, {}),
    "sigmoid_like": (
        lambda: lambda z: 0.5 * jax.scipy.special.erf(z / _SIGMOID_LIKE_SCALE) + 0.5,
        {},
    ),
    "gelu": (lambda: lambda z: jax.nn.gelu(z, approximate=False), {}),
    "identity": (lambda: lambda z: z, {}),
    "sin": (
        lambda a, b, c: (
            jnp.sin if (a, b, c) == (1.0, 1.0, 0.0) else lambda z: a * jnp.sin(b * z + c)
        ),
        {"a": 1.0, "b": 1.0, "c": 0.0},
    ),
    "cos": (
        lambda a, b, c: (
            jnp.cos if (a, b, c) == (1.0, 1.0, 0.0) else lambda z: a * jnp.cos(b * z + c)
        ),
        {"a": 1.0, "b": 1.0, "c": 0.0},
    ),
    "rbf": (
        lambda gamma: lambda z: math.sqrt(2) * jnp.sin(math.sqrt(2 * gamma) * z + math.pi / 4),
        {"gamma": 1.0},
    ),
    "sign": (lambda: jnp.sign, {}),
    "exp": (
        lambda a, b: jnp.exp if (a, b) == (1.0, 1.0) else lambda z: a * jnp.exp(b * z),
        {"a": 1.0, "b": 1.0},
    ),
    "gaussian": (lambda a, b: lambda z: a * jnp.exp(b * z**2), {"a": 1.0, "b": -0.5}),
    "gabor": (lambda: lambda z: jnp.exp(-(z**2)) * jnp.sin(z), {}),
    "monomial": (lambda degree: lambda z: z**degree, {"degree": _REQUIRED}),
    "rectified_monomial": (
        lambda degree: lambda z: jnp.where(z >= 0, z**degree, jnp.zeros_like(z)),
        {"degree": _REQUIRED},
    ),
    "polynomial": (_polynomial, {"coef": _REQUIRED}),
    "hermite": (_hermite, {"degree": _REQUIRED}),
    "numerical": (lambda fn, df: fn, {"fn": _REQUIRED, "df": None}),
}

#: Every registered name.
NAMES = tuple(_REGISTRY)
#: The names usable without parameters (every parameter has a default).
PARAMETER_FREE = tuple(n for n, (_, p) in _REGISTRY.items() if _REQUIRED not in p.values())

_ALIASES = {"linear": "identity"}
_MAX_DEGREE = {"monomial": 5, "rectified_monomial": 10, "hermite": 10}


def _check_param(arg: str, name: str, key: str, value: Any) -> Any:
    where = f"{arg}: {name}'s {key}"
    if key == "degree":
        if not isinstance(value, numbers.Integral | np.integer) or isinstance(value, bool):
            raise TypeError(f"{where}: expected an integer, got {value!r}")
        hi = _MAX_DEGREE[name]
        if not 0 <= int(value) <= hi:
            raise ValueError(f"{where}: expected an integer in [0, {hi}], got {int(value)}")
        return int(value)
    if key == "coef":
        if isinstance(value, str | bytes):
            raise TypeError(f"{where}: expected a sequence of real numbers, got {value!r}")
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(
                f"{where}: expected a sequence of real numbers, got {value!r}"
            ) from None
        if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
            raise ValueError(
                f"{where}: expected a non-empty 1-d sequence of finite reals, got {value!r}"
            )
        return tuple(float(c) for c in arr)
    if key in ("fn", "df"):
        if value is None and key == "df":
            return None
        if not callable(value):
            raise TypeError(f"{where}: expected a callable z -> phi(z), got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.floating | np.integer):
        raise TypeError(f"{where}: expected a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{where}: expected a finite number, got {v}")
    if key == "gamma" and v <= 0:
        raise ValueError(f"{where}: expected a positive number, got {v}")
    return v


@dataclasses.dataclass(frozen=True)
class Activation:
    """A resolved activation: registry ``name`` and its ``params`` (sorted ``(key, value)`` pairs).

    Hashable (usable as static module metadata and ``lru_cache`` keys).
    """

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        """The parameters as a dict."""
        return dict(self.params)

    @property
    def fn(self) -> Callable[[jax.Array], jax.Array]:
        """The function :math:`\\phi`."""
        return _REGISTRY[self.name][0](**self.kwargs)

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.params)})"


def resolve(
    spec: Any, allowed: tuple[str, ...] | None = None, arg: str = "activation"
) -> Activation:
    """Validate a name or ``(name, kwargs)`` pair and fill in the defaults.

    Args:
      spec: ``"relu"``, ``("leaky_relu", {"alpha": 0.2})``, or an :class:`Activation`.
      allowed: the names a caller supports (default: every registered name).
      arg: the argument's name in error messages.

    Returns:
      An :class:`Activation` with every parameter set.

    Raises:
      ValueError: unknown name, a name outside ``allowed``, unknown or missing
        parameters, parameter values out of range.
      TypeError: a spec that is neither a name nor a pair, parameters of the
        wrong type.

    Examples:
      >>> resolve(("abrelu", {"a": 0.1, "b": 1}))
      Activation(name='abrelu', params=(('a', 0.1), ('b', 1.0)))
      >>> print(resolve("gaussian"))
      gaussian(a=1.0, b=-0.5)
    """
    if isinstance(spec, Activation):
        name, kwargs = spec.name, spec.kwargs
    elif isinstance(spec, tuple | list) and len(spec) == 2 and isinstance(spec[0], str):
        name, kwargs = spec
        if not isinstance(kwargs, Mapping):
            raise TypeError(f"{arg}: expected (name, dict of parameters), got {spec!r}")
        kwargs = dict(kwargs)
    else:
        name, kwargs = spec, {}
    name = canonical(name, allowed, arg)
    defaults = _REGISTRY[name][1]
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise ValueError(
            f"{arg}: unknown parameter(s) {unknown} for {name!r}, "
            f"expected some of {tuple(defaults)}"
        )
    params = {}
    required = [k for k, v in defaults.items() if v is _REQUIRED]
    for key, default in defaults.items():
        if key in kwargs:
            params[key] = _check_param(arg, name, key, kwargs[key])
        elif default is _REQUIRED:
            raise ValueError(
                f"{arg}: {name!r} needs the parameter(s) {required}, e.g. "
                f"({name!r}, {{{', '.join(repr(k) + ': ...' for k in required)}}})"
            )
        else:
            params[key] = default
    return Activation(name, tuple(sorted(params.items())))


def is_single(spec: Any) -> bool:
    """Whether ``spec`` is one activation (a name, a ``(name, kwargs)`` pair or an
    :class:`Activation`) rather than a sequence of them."""
    return isinstance(spec, str | Activation) or (
        isinstance(spec, tuple | list)
        and len(spec) == 2
        and isinstance(spec[0], str)
        and isinstance(spec[1], Mapping)
    )


def per_layer(spec: Any, n: int, arg: str = "activation") -> list[Activation]:
    """One activation for ``n`` layers, or a sequence of ``n``, each resolved.

    Examples:
      >>> [str(a) for a in per_layer(["relu", ("leaky_relu", {"alpha": 0.1})], 2)]
      ['relu', 'leaky_relu(alpha=0.1)']
    """
    n = _checks.nonnegative_int("n", n)
    return [resolve(s, arg=arg) for s in _checks.per_layer(arg, spec, n, is_single)]


def canonical(name: object, allowed: tuple[str, ...] | None = None, arg: str = "activation") -> str:
    """The registry name for ``name`` (resolving deprecated aliases).

    Args:
      name: an activation name.
      allowed: the subset a caller supports (default: every registered name).
      arg: the argument's name in the error message.

    Raises:
      ValueError: unknown name, or one outside ``allowed``.
      TypeError: ``allowed`` not a tuple of names, ``arg`` not a string.
    """
    if not isinstance(arg, str) or not arg:
        raise TypeError(f"arg: expected the argument's name as a string, got {arg!r}")
    if allowed is not None and (
        isinstance(allowed, str | bytes)
        or not isinstance(allowed, tuple | list)
        or not all(isinstance(a, str) for a in allowed)
    ):
        raise TypeError(f"allowed: expected a tuple of activation names, got {allowed!r}")
    options = NAMES if allowed is None else tuple(allowed)
    if isinstance(name, str) and name in _ALIASES:
        warnings.warn(
            f"{arg}={name!r} is deprecated; use {_ALIASES[name]!r}",
            DeprecationWarning,
            stacklevel=3,
        )
        name = _ALIASES[name]
    if not isinstance(name, str) or name not in options:
        raise ValueError(f"{arg}: expected one of {options}, got {name!r}")
    return name


def get(spec: Any) -> Callable[[jax.Array], jax.Array]:
    """The function :math:`\\phi` of a name or ``(name, kwargs)`` pair.

    Examples:
      >>> float(get("relu")(jnp.asarray(-1.0)))
      0.0
      >>> float(get(("leaky_relu", {"alpha": 0.5}))(jnp.asarray(-2.0)))
      -1.0
    """
    return resolve(spec).fn


_SQRT_PI = math.sqrt(math.pi)


def _tanh_derivatives(order: int) -> Callable[[jax.Array], jax.Array]:
    if order == 1:
        return lambda z: 1.0 - jnp.tanh(z) ** 2
    return lambda z: -2.0 * jnp.tanh(z) * (1.0 - jnp.tanh(z) ** 2)


def _sigmoid_derivatives(order: int) -> Callable[[jax.Array], jax.Array]:
    s = jax.nn.sigmoid
    if order == 1:
        return lambda z: s(z) * (1.0 - s(z))
    return lambda z: s(z) * (1.0 - s(z)) * (1.0 - 2.0 * s(z))


def _erf_derivatives(order: int, a: float, b: float, c: float) -> Callable[[jax.Array], jax.Array]:
    del c
    if (a, b) == (1.0, 1.0):
        if order == 1:
            return lambda z: 2.0 / _SQRT_PI * jnp.exp(-(z**2))
        return lambda z: -4.0 * z / _SQRT_PI * jnp.exp(-(z**2))
    if order == 1:
        return lambda z: a * b * 2.0 / _SQRT_PI * jnp.exp(-((b * z) ** 2))
    return lambda z: -4.0 * a * b**3 * z / _SQRT_PI * jnp.exp(-((b * z) ** 2))


# name -> (order, **params) -> phi^(order), for the closed forms; others by autodiff.
_CLOSED_DERIVATIVES: dict[str, Callable[..., Callable[[jax.Array], jax.Array]]] = {
    # relu' = 1{z > 0} (0 at 0, as jax.nn.relu's gradient); relu'' is a delta at 0,
    # taken as 0 (everywhere it multiplies relu itself, phi'' phi = 0).
    "relu": lambda order: (
        (lambda z: (z > 0).astype(z.dtype)) if order == 1 else (lambda z: jnp.zeros_like(z))
    ),
    "tanh": _tanh_derivatives,
    "sigmoid": _sigmoid_derivatives,
    "erf": _erf_derivatives,
    "identity": lambda order: (
        (lambda z: jnp.ones_like(z)) if order == 1 else (lambda z: jnp.zeros_like(z))
    ),
}


def _autodiff(fn: Callable, order: int) -> Callable[[jax.Array], jax.Array]:
    d = lambda t: jnp.asarray(fn(t), t.dtype)
    for _ in range(order):
        d = jax.grad(d)
    return lambda z: jnp.vectorize(d)(z)


def derivative(spec: Any, order: int = 1) -> Callable[[jax.Array], jax.Array]:
    r"""The derivative :math:`\phi'` (``order=1``) or :math:`\phi''` (``order=2``), elementwise.

    Closed forms for ``relu`` (:math:`1\{z > 0\}`, and :math:`\phi'' = 0`:
    its delta at 0 multiplies :math:`\phi(0) = 0`), ``tanh``
    (:math:`1 - \tanh^2`, :math:`-2\tanh(1 - \tanh^2)`), ``sigmoid``
    (:math:`\sigma(1-\sigma)`, :math:`\sigma(1-\sigma)(1-2\sigma)`), ``erf``
    (:math:`\tfrac{2ab}{\sqrt\pi} e^{-b^2 z^2}`, :math:`-\tfrac{4ab^3 z}{\sqrt\pi}
    e^{-b^2z^2}`) and ``identity``; ``numerical`` uses its ``df`` for the first
    derivative when given; everything else is differentiated by ``jax.grad``
    per element. The one place wideth takes derivatives of activations
    (mean-field :math:`\chi_1`, the analytic NTK by quadrature).

    Examples:
      >>> float(derivative("tanh")(jnp.asarray(0.0))), float(derivative("relu")(jnp.asarray(-1.0)))
      (1.0, 0.0)
    """
    act = resolve(spec)
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"order: expected 1 or 2, got {order!r}")
    if act.name in _CLOSED_DERIVATIVES:
        return _CLOSED_DERIVATIVES[act.name](order, **act.kwargs)
    df = act.kwargs.get("df")
    if act.name == "numerical" and df is not None:
        return df if order == 1 else _autodiff(df, 1)
    return _autodiff(act.fn, order)


#: Read-only mapping ``name -> phi`` of the parameter-free names (defaults applied).
ACTIVATIONS = MappingProxyType({n: _REGISTRY[n][0](**_REGISTRY[n][1]) for n in PARAMETER_FREE})
