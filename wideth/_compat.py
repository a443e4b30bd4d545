"""Compatibility layer: the only module in wideth that touches JAX internals.

neural-tangents 0.6.5 (the last release, December 2023) no longer imports on
current JAX, and its declared dependencies pull in TensorFlow. This module
restores the few names NT needs, registers an empty stand-in for the
TensorFlow-only ``neural_tangents.experimental`` submodule, and then imports
NT. Everything is idempotent and a no-op where the names already exist.

What is restored (measured on JAX 0.10):

* ``jax.core.{Jaxpr, JaxprEqn, Literal, Var, Primitive, ClosedJaxpr}`` moved
  to ``jax.extend.core``;
* ``jax.util.safe_map`` / ``safe_zip`` are gone (strict ``map``/``zip``);
* ``jax.interpreters.ad.zeros_like_p`` is gone; NT only registers
  structured-derivative rules on it, so a fresh primitive satisfies it.

Use :func:`neural_tangents` to get the module; never ``import
neural_tangents`` elsewhere in the package.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

import jax

__all__ = ["is_tracer", "neural_tangents", "shim_report", "SHIMMED"]

_CORE_NAMES = ("Jaxpr", "JaxprEqn", "Literal", "Var", "Primitive", "ClosedJaxpr")

#: Names this module had to restore, filled by :func:`_install`.
SHIMMED: list[str] = []
_INSTALLED = False
_NT: Any = None


def _safe_map(f, *args):
    args = [list(a) for a in args]
    n = len(args[0])
    for a in args[1:]:
        if len(a) != n:
            raise ValueError(f"safe_map: length mismatch {[len(a) for a in args]}")
    return list(map(f, *args))


def _safe_zip(*args):
    return list(zip(*args, strict=True))


def _install() -> None:
    """Restore the names NT 0.6.5 imports. Idempotent."""
    global _INSTALLED
    if _INSTALLED:
        return
    import jax.core as core
    import jax.extend.core as ext_core
    import jax.interpreters.ad as ad

    for name in _CORE_NAMES:
        if not hasattr(core, name) and hasattr(ext_core, name):
            setattr(core, name, getattr(ext_core, name))
            SHIMMED.append(f"jax.core.{name}")

    try:
        importlib.import_module("jax.util")
    except ImportError:
        util = types.ModuleType("jax.util")
        util.safe_map = _safe_map
        util.safe_zip = _safe_zip
        sys.modules["jax.util"] = util
        jax.util = util
        SHIMMED.append("jax.util")
    else:
        util = sys.modules["jax.util"]
        for name, fn in (("safe_map", _safe_map), ("safe_zip", _safe_zip)):
            if not hasattr(util, name):
                setattr(util, name, fn)
                SHIMMED.append(f"jax.util.{name}")

    for name in ("zeros_like_p", "add_jaxvals_p"):
        if not hasattr(ad, name):
            setattr(ad, name, ext_core.Primitive(name.removesuffix("_p")))
            SHIMMED.append(f"jax.interpreters.ad.{name}")

    # ``neural_tangents.experimental`` imports TensorFlow; nothing we use needs it.
    if "neural_tangents.experimental" not in sys.modules:
        stub = types.ModuleType("neural_tangents.experimental")
        stub.__doc__ = "TensorFlow-only NT submodule, disabled by wideth._compat."
        sys.modules["neural_tangents.experimental"] = stub
        SHIMMED.append("neural_tangents.experimental (empty stand-in)")
    _INSTALLED = True


def neural_tangents() -> Any:
    """Return the ``neural_tangents`` module, importable on the installed JAX.

    Returns:
      The imported ``neural_tangents`` package (0.6.5), with ``stax``,
      ``batch``, ``predict``, ``empirical_kernel_fn`` and
      ``monte_carlo_kernel_fn`` usable.

    Raises:
      ImportError: with install instructions when neural-tangents is missing.
    """
    global _NT
    if _NT is None:
        _install()
        try:
            _NT = importlib.import_module("neural_tangents")
        except ModuleNotFoundError as e:
            if e.name != "neural_tangents":
                raise
            raise ImportError(
                "neural-tangents is not installed. Install it without TensorFlow: "
                "`pip install --no-deps neural-tangents==0.6.5 frozendict` "
                "(or `make install`)."
            ) from e
    return _NT


def shim_report() -> dict[str, Any]:
    """Describe the compatibility layer: JAX version and names restored."""
    return {"jax": jax.__version__, "active": bool(SHIMMED), "restored": list(SHIMMED)}


def is_tracer(x: Any) -> bool:
    """Whether ``x`` is a JAX tracer (the value is being traced by jit, vmap, grad...)."""
    return isinstance(x, jax.core.Tracer)
