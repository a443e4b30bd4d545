r"""The training loop as one ``lax.scan``: jittable, ``vmap``-able, with in-jit probes.

:func:`run` applies a step ``num_steps`` times. Step :math:`t` takes the batch
:math:`B_t` from ``data``:

* a pytree of arrays ``(x, y)``: the same full batch every step (gradient descent);
* :class:`Minibatches` (:func:`minibatches`): ``batch_size`` distinct rows
  drawn with ``jax.random.fold_in(state.key, t)`` (so a run is a deterministic
  function of the key, whatever the chunking);
* :class:`Stacked` (:func:`stacked`): batch :math:`t` of a pytree whose leaves
  have a leading axis of length ``num_steps``;
* any callable ``data(key, t) -> batch``.

Every ``every`` steps (at :math:`t = 0, k, 2k, \dots`, and at the end) the
probes ``fn(state, batch) -> pytree`` are evaluated inside the same program
and returned stacked, so a learning-rate × seed sweep with a sharpness probe
is one ``jax.vmap`` of one jitted function.

A non-finite loss at step :math:`j` stops the run: later steps leave the state
unchanged, their metrics and the later probes are NaN, ``stopped`` is true,
``bad_step`` is :math:`j` and the returned state is the last one whose loss
was finite (:math:`\theta_{j-1}`; :math:`\theta_0` if :math:`j = 0`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from wideth import _checks

from .step import TrainState

__all__ = ["Minibatches", "RunResult", "Stacked", "minibatches", "run", "stacked"]

Probe = Callable[[TrainState, Any], Any]


@struct.dataclass
class Minibatches:
    """Rows of ``(x, y)`` sampled without replacement, ``batch_size`` per step."""

    x: jax.Array
    y: jax.Array
    batch_size: int = struct.field(pytree_node=False)

    def sample(self, key: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Batch :math:`t`: ``batch_size`` rows chosen by ``fold_in(key, t)``."""
        n = self.x.shape[0]
        if self.batch_size == n:
            return self.x, self.y
        idx = jax.random.choice(jax.random.fold_in(key, t), n, (self.batch_size,), replace=False)
        return self.x[idx], self.y[idx]


@struct.dataclass
class Stacked:
    """Pre-drawn batches: leaf ``[t]`` is batch :math:`t`."""

    batches: Any

    def sample(self, key: jax.Array, t: jax.Array) -> Any:
        del key
        return jax.tree.map(lambda a: a[t], self.batches)


def minibatches(x: Any, y: Any, batch_size: int | None = None) -> Minibatches:
    """A minibatch sampler over the rows of ``(x, y)`` (``None``: every row, every step).

    Raises:
      ValueError: ``x`` and ``y`` with different row counts, NaN/inf in them,
        ``batch_size`` outside ``[1, rows]``.
    """
    x = _checks.array("x", x, min_ndim=1, min_rows=1, kind="number")
    y = _checks.array("y", y, min_ndim=1, kind="number")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"y: expected {x.shape[0]} rows like x, got shape {tuple(y.shape)}")
    n = x.shape[0]
    if batch_size is None:
        batch_size = n
    batch_size = _checks.positive_int("batch_size", batch_size)
    if batch_size > n:
        raise ValueError(f"batch_size: expected at most the {n} rows of data, got {batch_size}")
    return Minibatches(x, y, batch_size)


def stacked(batches: Any) -> Stacked:
    """Pre-drawn batches whose leaves have a common leading axis (one entry per step).

    Raises:
      ValueError / TypeError: no leaves, non-numeric or non-finite leaves, leaves
        without a shared leading axis.
    """
    _checks.arrays_tree("batches", batches)
    batches = jax.tree.map(jnp.asarray, batches)
    leaves = jax.tree.leaves(batches)
    if any(leaf.ndim == 0 for leaf in leaves) or len({leaf.shape[0] for leaf in leaves}) != 1:
        raise ValueError(
            "batches: expected a pytree of arrays with a common leading (step) axis, got "
            f"leading sizes {[getattr(leaf, 'shape', ())[:1] for leaf in leaves]}"
        )
    return Stacked(batches)


class RunResult(NamedTuple):
    """What :func:`run` returns (a pytree: ``vmap`` stacks every field).

    Attributes:
      state: the final :class:`TrainState` (the last finite one after a stop).
      metrics: dict of ``(num_steps,)`` arrays, entry :math:`t` measured at
        :math:`\\theta_t` before update :math:`t`.
      probes: dict of arrays with a leading axis of ``num_steps // every + 1``
        points, at the steps in ``probe_steps``.
      probe_steps: ``(num_steps // every + 1,)`` int32: ``0, every, …, num_steps``.
      stopped: bool scalar, a non-finite loss stopped the run.
      bad_step: int32 scalar, the step whose loss was non-finite (-1 if none).
    """

    state: TrainState
    metrics: dict[str, jax.Array]
    probes: dict[str, jax.Array]
    probe_steps: jax.Array
    stopped: jax.Array
    bad_step: jax.Array


class _Carry(NamedTuple):
    state: TrainState
    good: TrainState  # the last state whose loss was finite
    stopped: jax.Array
    bad_step: jax.Array


def _batch(data: Any, state: TrainState, t: jax.Array) -> Any:
    if hasattr(data, "sample"):
        return data.sample(state.key, t)
    if callable(data):
        return data(jax.random.fold_in(state.key, t), t)
    return data


def _nan_like(tree: Any) -> Any:
    return jax.tree.map(
        lambda a: jnp.full_like(a, jnp.nan) if jnp.issubdtype(a.dtype, jnp.inexact) else a, tree
    )


def _select(pred: jax.Array, a: Any, b: Any) -> Any:
    return jax.tree.map(lambda u, v: jnp.where(pred, u, v), a, b)


def run(
    step: Callable[[TrainState, Any], tuple[TrainState, dict[str, jax.Array]]],
    state: TrainState,
    data: Any,
    num_steps: int,
    *,
    probes: Mapping[str, Probe] | None = None,
    every: int | None = None,
) -> RunResult:
    r"""Run ``num_steps`` training steps in one ``lax.scan``, probing every ``every`` steps.

    Pure and jittable (``num_steps``, ``every`` and the probes are static);
    ``jax.vmap`` over ``state`` (seeds, initial parameters, hyperparameters set
    with :func:`wideth.train.with_hyperparams`) runs a whole sweep as one
    program.

    Args:
      step: ``step(state, batch) -> (state, metrics)`` with a ``"loss"``
        metric, e.g. :func:`wideth.train.train_step`.
      state: the initial :class:`TrainState`.
      data: full batch, :func:`minibatches`, :func:`stacked` or ``data(key, t)``
        (module docstring).
      num_steps: number of steps :math:`T \ge 0`.
      probes: ``{name: fn(state, batch) -> pytree}``, evaluated at steps
        :math:`0, k, 2k, \dots, T` on the batch of that step (for the full-batch
        form, the training set); see :mod:`wideth.train.probes`.
      every: probe interval :math:`k` (default :math:`T`: at the start and
        the end); must divide ``num_steps``.

    Returns:
      :class:`RunResult`.

    Examples:
      >>> import optax
      >>> from wideth import train
      >>> step = train.train_step(lambda p, x: x @ p, "mse", optax.sgd(1.0))
      >>> s0 = train.TrainState.create(jnp.zeros((3, 1)), optax.sgd(1.0))
      >>> data = (jnp.eye(3), jnp.ones((3, 1)))
      >>> res = jax.jit(lambda s: train.run(step, s, data, 40))(s0)
      >>> round(float(res.metrics["loss"][-1]), 6), res.metrics["loss"].shape
      (0.0, (40,))
    """
    num_steps = _checks.nonnegative_int("num_steps", num_steps)
    every = num_steps if every is None else _checks.positive_int("every", every)
    if num_steps and num_steps % every:
        raise ValueError(f"every: expected a divisor of num_steps={num_steps}, got {every}")
    if not isinstance(state, TrainState):
        raise TypeError(f"state: expected a wideth.train.TrainState, got {type(state).__name__}")
    _checks.callable_("step", step, "a callable step(state, batch) -> (state, metrics)")
    probes = _check_probes(probes)
    _check_step(step, state, data)
    carry = _Carry(state, state, jnp.zeros([], bool), jnp.full([], -1, jnp.int32))
    carry, metrics, values = _scan(step, carry, data, num_steps, probes, every)
    final = _select(carry.stopped, carry.good, carry.state)
    chunks = num_steps // every if num_steps else 0
    steps = state.step + jnp.arange(chunks + 1, dtype=jnp.int32) * every
    return RunResult(final, metrics, values, steps, carry.stopped, carry.bad_step)


def _check_probes(probes: Any) -> dict[str, Probe]:
    if probes is not None and not isinstance(probes, Mapping):
        raise TypeError(
            f"probes: expected a dict {{name: fn(state, batch)}}, got {type(probes).__name__}"
        )
    probes = dict(probes or {})
    for name, fn in probes.items():
        _checks.callable_(f"probes[{name!r}]", fn, "a callable fn(state, batch)")
    return probes


def _check_step(step: Callable[..., Any], state: TrainState, data: Any) -> None:
    """Trace one step abstractly on the first batch: bad data or a bad step fail here, named."""
    from .step import TrainStep

    if not (hasattr(data, "sample") or callable(data)):
        _checks.arrays_tree("data", data)
    batch = _checks.evaluate_shape(
        "data",
        lambda s: _batch(data, s, s.step),
        state,
        what="a batch (data, data.sample(key, t) or data(key, t))",
        verb="drawing",
    )
    # A wideth TrainStep fails on data that does not fit its model; any other step may be at fault.
    name = "data" if isinstance(step, TrainStep) else "step"
    out = _checks.evaluate_shape(
        name,
        lambda s, b: step(s, b),
        state,
        batch,
        what="step(state, batch)",
        verb="evaluating" if name == "data" else "calling it as",
    )
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping)):
        raise TypeError(f"step: expected (state, metrics) from step(state, batch), got {out!r}")
    if "loss" not in out[1]:
        raise ValueError(
            f"step: expected a metrics dict with a 'loss' entry, got keys {sorted(out[1])}"
        )


def _scan(
    step: Callable[..., Any],
    carry: _Carry,
    data: Any,
    num_steps: int,
    probes: Mapping[str, Probe],
    every: int,
) -> tuple[_Carry, dict[str, jax.Array], dict[str, Any]]:
    """The loop over a :class:`_Carry` (also used by :func:`wideth.train.fit` between chunks)."""
    chunks = num_steps // every if num_steps else 0

    def probe_all(carry: _Carry) -> dict[str, Any]:
        batch = _batch(data, carry.state, carry.state.step)
        values = {name: fn(carry.state, batch) for name, fn in probes.items()}
        return jax.lax.cond(carry.stopped, _nan_like, lambda v: v, values)

    def one(carry: _Carry, _: None) -> tuple[_Carry, dict[str, jax.Array]]:
        s = carry.state
        new, metrics = step(s, _batch(data, s, s.step))
        if "loss" not in metrics:
            raise ValueError("step: expected a metrics dict with a 'loss' entry")
        ok = jnp.isfinite(metrics["loss"]) & ~carry.stopped
        stopped = ~ok
        nxt = _Carry(
            state=_select(ok, new, s),
            good=_select(ok, s, carry.good),
            stopped=stopped,
            bad_step=jnp.where(stopped & ~carry.stopped, s.step, carry.bad_step),
        )
        metrics = jax.lax.cond(carry.stopped, _nan_like, lambda m: m, metrics)
        return nxt, metrics

    def chunk(carry: _Carry, _: None) -> tuple[_Carry, tuple[dict, dict]]:
        values = probe_all(carry)
        carry, metrics = jax.lax.scan(one, carry, None, length=every)
        return carry, (values, metrics)

    if chunks:
        carry, (values, metrics) = jax.lax.scan(chunk, carry, None, length=chunks)
        metrics = jax.tree.map(lambda a: a.reshape(num_steps, *a.shape[2:]), metrics)
    else:
        _, shapes = jax.eval_shape(step, carry.state, _batch(data, carry.state, carry.state.step))
        metrics = jax.tree.map(lambda a: jnp.zeros((0, *a.shape), a.dtype), shapes)
        values = jax.tree.map(lambda a: a[None][:0], probe_all(carry))
    last = jax.tree.map(lambda a: a[None], probe_all(carry))
    values = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), values, last)
    return carry, metrics, values
