r"""The one boundary between Flax NNX modules and pure functions of parameters.

Theory code (kernels, Hessians, optimisers, training loops) works with a pure
``apply_fn(params, x)`` and a parameter pytree; users often hold an
``nnx.Module``. Everything that accepts an ``apply_fn`` also accepts a module
through :func:`as_apply`:

.. code-block:: python

    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    apply_fn = lambda p, x: nnx.merge(graphdef, p, rest)(x)

The wrapper returned here is hashable and compares equal for equal graphs with
the same non-parameter state, so functions jitted on it (or on objects holding
it) are reused across calls instead of compiled again.

Also here: the centred model :math:`f_\theta - f_{\theta_0}` (:func:`centred`),
penultimate-layer features (:func:`features`) and parameter paths
(:func:`param_paths`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax
from flax import nnx

from wideth import _checks

__all__ = [
    "ModuleApply",
    "as_apply",
    "functional",
    "init_params",
    "features",
    "centred",
    "param_paths",
]

ApplyFn = Callable[..., Any]


class ModuleApply:
    """Pure ``apply_fn(params, x)`` of a split NNX module (merges a copy inside).

    Hashable: equal for equal ``graphdef`` and method and the *same* non-parameter
    state (identical leaves), so jit caches keyed on it are reused.
    """

    def __init__(self, graphdef: Any, rest: Any, method: str = "__call__"):
        self.graphdef, self.rest, self.method = graphdef, rest, method
        self._rest_leaves = tuple(jax.tree.leaves(rest))
        self._rest_def = jax.tree.structure(rest)

    def __call__(self, params: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        module = nnx.merge(self.graphdef, params, self.rest, copy=True)
        return getattr(module, self.method)(x, *args, **kwargs)

    def __hash__(self) -> int:
        return hash((self.graphdef, self.method, self._rest_def, len(self._rest_leaves)))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ModuleApply)
            and self.graphdef == other.graphdef
            and self.method == other.method
            and self._rest_def == other._rest_def
            and len(self._rest_leaves) == len(other._rest_leaves)
            and all(a is b for a, b in zip(self._rest_leaves, other._rest_leaves, strict=True))
        )

    def __repr__(self) -> str:
        return f"ModuleApply({self.graphdef.type.__name__}.{self.method})"


def functional(module: nnx.Module, method: str = "__call__") -> tuple[ModuleApply, Any]:
    """Split an NNX module into a pure ``apply_fn(params, x)`` and its parameters.

    ``params`` is the module's ``nnx.Param`` state (an ``nnx.State`` pytree);
    everything else is frozen into ``apply_fn``, which merges a fresh copy of
    the module inside, so it is pure, jittable, vmappable and differentiable in
    ``params``. ``params`` is a copy: later changes of the module do not alter
    it. Put trained parameters back with ``nnx.update(module, params)``.

    Args:
      module: an ``nnx.Module``.
      method: the method to call, ``"__call__"`` (default) or e.g. ``"features"``.

    Returns:
      ``(apply_fn, params)``.

    Raises:
      TypeError: ``module`` is not an ``nnx.Module``.
      ValueError: the module has no such method.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from wideth.models import MLP
      >>> net = MLP(3, 16, 1, rngs=nnx.Rngs(0))
      >>> apply_fn, params = functional(net)
      >>> bool(jnp.allclose(jax.jit(apply_fn)(params, jnp.ones((2, 3))), net(jnp.ones((2, 3)))))
      True
    """
    if not isinstance(module, nnx.Module):
        raise TypeError(f"module: expected an nnx.Module, got {type(module).__name__}")
    if not isinstance(method, str) or not callable(getattr(module, method, None)):
        raise ValueError(f"method: {type(module).__name__} has no method {method!r}")
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    # nnx.split shares the module's Variable objects; copy them so that later
    # in-place changes of the module (nnx.update, training) leave `params` alone.
    params, rest = jax.tree.map(lambda a: a, (params, rest))
    return ModuleApply(graphdef, rest, method), params


def init_params(build: Callable[[nnx.Rngs], nnx.Module], key: jax.Array) -> Any:
    """The parameters of ``build(nnx.Rngs(key))``, as :func:`functional` returns them.

    Traceable in ``key``: ``jax.vmap(lambda k: init_params(build, k))(keys)`` gives
    an ensemble of independent initialisations with a leading axis (one compiled
    program for a sweep over seeds), to use with the ``apply_fn`` of any one
    instance, ``functional(build(nnx.Rngs(0)))[0]``.

    Args:
      build: ``rngs -> nnx.Module``, e.g. ``lambda r: models.MLP(8, 64, 2, rngs=r)``.
      key: a PRNG key.

    Returns:
      The module's ``nnx.Param`` state.

    Raises:
      TypeError: ``build`` not callable or not returning an ``nnx.Module``; ``key``
        not a PRNG key.

    Examples:
      >>> import jax.numpy as jnp
      >>> from wideth.models import MLP
      >>> build = lambda r: MLP(3, 16, 1, rngs=r)
      >>> ens = jax.vmap(lambda k: init_params(build, k))(jax.random.split(jax.random.key(0), 4))
      >>> apply_fn = functional(build(nnx.Rngs(0)))[0]
      >>> jax.vmap(apply_fn, in_axes=(0, None))(ens, jnp.ones((2, 3))).shape
      (4, 2, 1)
    """
    _checks.callable_("build", build, "a callable rngs -> nnx.Module")
    key = _checks.prng_key("key", key)
    module = build(nnx.Rngs(key))
    if not isinstance(module, nnx.Module):
        raise TypeError(f"build: expected it to return an nnx.Module, got {type(module).__name__}")
    return nnx.split(module, nnx.Param, ...)[1]


def as_apply(
    model_or_apply: Any,
    params: Any = None,
    *,
    name: str = "apply_fn",
    method: str = "__call__",
) -> tuple[ApplyFn, Any]:
    """``(apply_fn, params)`` from an ``nnx.Module`` or from an ``apply_fn`` and its params.

    Args:
      model_or_apply: an ``nnx.Module`` (then ``params`` must be ``None``: the
        module holds them) or a callable ``apply_fn(params, x)``.
      params: parameter pytree for ``apply_fn``; ``None`` for a module.
      name: the argument's name in error messages.
      method: module method to call (module form only).

    Returns:
      ``(apply_fn, params)``.

    Raises:
      TypeError: neither a module nor a callable; ``params`` given with a
        module; ``params`` missing with an ``apply_fn``.
    """
    if isinstance(model_or_apply, nnx.Module):
        if params is not None:
            raise TypeError(
                "params: expected None when an nnx.Module is given (the module holds its "
                f"parameters), got {type(params).__name__}"
            )
        return functional(model_or_apply, method)
    if not callable(model_or_apply):
        raise TypeError(
            f"{name}: expected an nnx.Module or a callable apply_fn(params, x), "
            f"got {type(model_or_apply).__name__}"
        )
    if params is None:
        raise TypeError(f"params: required when {name} is a function (got None)")
    if not jax.tree.leaves(params):
        raise ValueError("params: expected a pytree with at least one array leaf, got none")
    if not isinstance(method, str) or method != "__call__":
        raise ValueError(f"method: only used with an nnx.Module, got {method!r} with a function")
    return model_or_apply, params


def features(module: nnx.Module) -> tuple[ModuleApply, Any]:
    """``(features_fn, params)``: the module's penultimate-layer features as a pure function.

    The module must define ``features(x)`` returning the list of hidden
    activations (as :class:`wideth.models.MLP` does) or one array; the last
    entry is used.
    """
    if not isinstance(module, nnx.Module):
        raise TypeError(f"module: expected an nnx.Module, got {type(module).__name__}")
    if not callable(getattr(module, "features", None)):
        raise ValueError(
            f"module: {type(module).__name__} has no features(x) method (the hidden "
            "activations, as wideth.models.MLP defines)"
        )
    fn, params = functional(module, "features")
    return _Last(fn), params


class _Last:
    """Hashable ``(params, x) -> features(params, x)[-1]``."""

    def __init__(self, fn: ModuleApply):
        self.fn = fn

    def __call__(self, params: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        h = self.fn(params, x, *args, **kwargs)
        return h[-1] if isinstance(h, list | tuple) else h

    def __hash__(self) -> int:
        return hash(("features", self.fn))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Last) and self.fn == other.fn


class Centred:
    r"""The centred model :math:`\tilde f_\theta(x) = f_\theta(x) - f_{\theta_0}(x)`.

    Its outputs are zero at :math:`\theta_0` and its Jacobian equals that of
    :math:`f`, so the NTK and the linearised dynamics are unchanged while the
    random initial function is removed (Chizat, Oyallon & Bach 2019, Sec. 2.2).
    :math:`f_{\theta_0}` is evaluated under ``stop_gradient``, so derivatives in
    ``params`` are those of :math:`f`.
    """

    def __init__(self, apply_fn: ApplyFn, params0: Any):
        self.apply_fn, self.params0 = apply_fn, params0

    def __call__(self, params: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        f = self.apply_fn(params, x, *args, **kwargs)
        f0 = jax.lax.stop_gradient(self.apply_fn(self.params0, x, *args, **kwargs))
        return optax.tree.sub(f, f0)


def centred(apply_fn: Any, params0: Any = None) -> tuple[Centred, Any]:
    r"""The centred model :math:`f_\theta - f_{\theta_0}` and its parameters :math:`\theta_0`.

    Args:
      apply_fn: ``apply_fn(params, x)`` or an ``nnx.Module`` (then ``params0``
        is ``None`` and the module's parameters are :math:`\theta_0`).
      params0: the parameters at which the model is centred.

    Returns:
      ``(centred_apply_fn, params0)``; ``centred_apply_fn(params0, x)`` is zero.

    References:
      Chizat, Oyallon & Bach, `On lazy training in differentiable programming
      <https://arxiv.org/abs/1812.07956>`_, 2019.
    """
    apply_fn, params0 = as_apply(apply_fn, params0)
    return Centred(apply_fn, params0), params0


def param_paths(params: Any) -> list[str]:
    """The path of every leaf of ``params``, in ``jax.tree.leaves`` order.

    Paths read like ``"layers/0/w"`` (NNX state) or ``"['w']"``-free keys of
    dicts and indices of sequences joined by ``/``.

    Examples:
      >>> param_paths({"dense": {"w": 1.0, "b": 2.0}, "out": [3.0]})
      ['dense/b', 'dense/w', 'out/0']

    Raises:
      ValueError / TypeError: no leaves, or a leaf that is not a floating array.
    """
    _checks.params_tree("params", params)
    out = []
    for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]:
        parts = []
        for k in path:
            for attr in ("key", "name", "idx"):
                if hasattr(k, attr):
                    parts.append(str(getattr(k, attr)))
                    break
            else:
                parts.append(str(k))
        if (
            len(parts) > 1
            and isinstance(path[-1], jax.tree_util.GetAttrKey)
            and parts[-1]
            in (
                "value",
                "raw_value",
            )
        ):
            parts.pop()  # nnx.Variable's payload
        out.append("/".join(parts))
    return out
