r"""The one registry of elementwise nonlinearities, by name.

Models (:mod:`wideth.models`), mean-field theory (:mod:`wideth.kernels.meanfield`)
and the analytic kernels (:mod:`wideth.kernels.analytic`, whose builders map the
same names to neural-tangents layers) all take these names, one per function:

=============  ====================================================================
name           :math:`\phi(z)`
=============  ====================================================================
``relu``       :math:`\max(z, 0)`
``tanh``       :math:`\tanh z`
``erf``        :math:`\operatorname{erf} z`
``gelu``       :math:`z\,\Phi(z)` (exact, as ``stax.Gelu(approximate=False)``)
``identity``   :math:`z`
``sigmoid``    :math:`1/(1 + e^{-z})`
``sin``        :math:`\sin z`
``cos``        :math:`\cos z`
``sign``       :math:`\operatorname{sign} z`
``exp``        :math:`e^{z}`
``gaussian``   :math:`e^{-z^2/2}`
=============  ====================================================================

``"linear"`` is accepted as a deprecated alias of ``"identity"``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import MappingProxyType

import jax
import jax.numpy as jnp

__all__ = ["ACTIVATIONS", "get", "canonical"]

_FUNCTIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "erf": jax.scipy.special.erf,
    "gelu": lambda z: jax.nn.gelu(z, approximate=False),
    "identity": lambda z: z,
    "sigmoid": jax.nn.sigmoid,
    "sin": jnp.sin,
    "cos": jnp.cos,
    "sign": jnp.sign,
    "exp": jnp.exp,
    "gaussian": lambda z: jnp.exp(-0.5 * z**2),
}

#: Read-only mapping ``name -> phi``.
ACTIVATIONS = MappingProxyType(_FUNCTIONS)

_ALIASES = {"linear": "identity"}


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
    options = tuple(_FUNCTIONS) if allowed is None else tuple(allowed)
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


def get(name: str) -> Callable[[jax.Array], jax.Array]:
    """The function :math:`\\phi` called ``name``.

    Examples:
      >>> float(get("relu")(jnp.asarray(-1.0)))
      0.0
    """
    return _FUNCTIONS[canonical(name)]
