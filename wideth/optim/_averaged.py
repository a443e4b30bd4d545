r"""The skeleton shared by the averaged step-size transforms (ADLER and its "GN" baseline).

Both keep a state ``(count, total, weight, last_eta, eta_hat)`` and, given a raw
step :math:`\eta_k` and whether it is valid, update the discounted running average

.. math::

    s_k = \beta s_{k-1} + h(\eta_k), \qquad c_k = \beta c_{k-1} + 1, \qquad
    \hat\eta_k = h^{-1}(s_k / c_k),

with :math:`h = \log` (ADLER, Balboni, PhD thesis, Alg. 1) or the identity (the
outer-product baseline, §7.8), leaving :math:`s, c` unchanged on an invalid step.
"""

from __future__ import annotations

from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import optax

_State = TypeVar("_State")


def state_dtype(params: Any) -> Any:
    """Real floating dtype of a step-size state: the lowest parameter precision, >= float32."""
    leaves = jax.tree.leaves(params)
    if not leaves:
        return jnp.float32
    dtype = optax.tree.dtype(params, "lowest")
    if jnp.issubdtype(dtype, jnp.complexfloating):
        dtype = jnp.finfo(dtype).dtype  # complex64 -> float32
    return (
        jnp.promote_types(dtype, jnp.float32)
        if jnp.issubdtype(dtype, jnp.floating)
        else (jnp.dtype(jnp.float32))
    )


def init_state(state_type: type[_State], params: Any) -> _State:
    """``state_type(count=0, total=0, weight=0, last_eta=nan, eta_hat=0)`` (positional fields)."""
    dtype = state_dtype(params)
    zero = jnp.zeros([], dtype)
    return state_type(jnp.zeros([], jnp.int32), zero, zero, jnp.full([], jnp.nan, dtype), zero)


def advance(state: Any, eta: jax.Array, ok: jax.Array, beta: Any, *, log_space: bool) -> Any:
    r"""The next state after raw step ``eta`` (used only where ``ok``): module docstring.

    ``state`` is a NamedTuple with the fields ``(count, total, weight, last_eta,
    eta_hat)`` in that order (names may differ); the returned state is of the
    same type, its ``eta_hat`` is :math:`\hat\eta_k` (0 before any valid step).
    """
    count, total, weight = state[0], state[1], state[2]
    dtype = total.dtype
    b = jnp.asarray(beta, dtype)
    value = jnp.where(ok, eta, 1)
    if log_space:
        value = jnp.log(value)
    total = jnp.where(ok, b * total + value, total)
    weight = jnp.where(ok, b * weight + 1, weight)
    positive = weight > 0
    mean = total / jnp.where(positive, weight, 1)
    eta_hat = jnp.where(positive, jnp.exp(mean) if log_space else mean, 0)
    return type(state)(
        optax.safe_increment(count),
        total.astype(dtype),
        weight.astype(dtype),
        jnp.where(ok, eta, jnp.nan).astype(dtype),
        eta_hat.astype(dtype),
    )


def decoupled_step(
    updates: Any, params: Any, eta_hat: jax.Array, weight_decay: Any, finite: jax.Array
) -> Any:
    r""":math:`-\hat\eta\,(G + \lambda\theta)` leaf by leaf, zero where ``finite`` is false.

    With ``params=None`` the step is :math:`-\hat\eta\,G` (no decay).
    """

    def leaf(g: jax.Array, p: jax.Array | None) -> jax.Array:
        step = g if p is None else g + jnp.asarray(weight_decay).astype(g.dtype) * p
        return jnp.where(finite, (-eta_hat).astype(g.dtype) * step, jnp.zeros_like(g))

    if params is None:
        return jax.tree.map(lambda g: leaf(g, None), updates)
    return jax.tree.map(leaf, updates, params)


def info(state: Any, state_type: type, builder: str) -> dict[str, jax.Array]:
    """``eta_hat``, ``last_eta``, ``count``, ``weight`` of the first ``state_type`` in ``state``.

    Raises:
        ValueError: ``state`` holds no ``state_type`` (message starting ``state:``).
    """
    found = [
        s
        for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, state_type))
        if isinstance(s, state_type)
    ]
    if not found:
        raise ValueError(
            f"state: expected an optimizer state that contains {state_type.__name__} (from a "
            f"transform built with wideth.optim.{builder}), got {_describe(state)}"
        )
    s = found[0]
    return {"eta_hat": s.eta_hat, "last_eta": s.last_eta, "count": s.count, "weight": s.weight}


def _describe(state: Any) -> str:
    """What a state holds, for an error: its type and the names of the states inside it."""
    if state is None or isinstance(state, str | int | float | bool):
        return repr(state)
    inner = jax.tree.leaves(state, is_leaf=lambda x: hasattr(x, "_fields"))
    names = sorted({type(x).__name__ for x in inner if hasattr(x, "_fields")})
    held = f" holding {', '.join(names)}" if names else " with no optimizer state in it"
    return f"a {type(state).__name__}{held}"
