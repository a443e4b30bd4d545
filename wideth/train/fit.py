r"""The host-side training driver: chunks of :func:`wideth.train.run`, progress, logs.

:func:`fit` builds a :func:`~wideth.train.train_step` and a
:class:`~wideth.train.TrainState`, then runs ``log_every`` steps at a time in
one jitted :func:`~wideth.train.run` program (compiled once per chunk length
and reused by later calls with the same step and data shapes), records the
metrics of each log point, evaluates held-out data and calls the callbacks
between chunks.
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from wideth import _checks
from wideth.functional import as_apply
from wideth.losses import LossFn, get_loss, is_classification

from .loop import _Carry, _check_probes, _scan, _select, minibatches
from .step import TrainState, TrainStep, train_step

__all__ = ["FitResult", "fit"]


class FitResult(NamedTuple):
    """Outcome of :func:`fit`.

    Attributes:
      params: final parameters (same pytree form as given; for a module, its
        ``nnx.State`` of ``nnx.Param``, already written back into the module).
      opt_state: final optimizer state.
      history: dict of numpy arrays, one entry per log point: ``"step"``,
        ``"loss"``, ``"grad_norm"``, ``"accuracy"`` (classification targets),
        ``"eval_loss"``/``"eval_accuracy"`` (with eval data), every probe, and
        whatever callbacks returned.
      stopped_early: whether a non-finite loss stopped training.
      message: human-readable summary (names the step on a non-finite loss).
      state: the final :class:`~wideth.train.TrainState`.
    """

    params: Any
    opt_state: Any
    history: dict[str, np.ndarray]
    stopped_early: bool
    message: str
    state: TrainState | None = None


def _as_arrays(data: Any, name: str) -> tuple[jax.Array, jax.Array]:
    if hasattr(data, "x_train") and hasattr(data, "y_train"):
        x, y = data.x_train, data.y_train
    elif isinstance(data, tuple | list) and len(data) == 2:
        x, y = data
    else:
        raise TypeError(
            f"{name}: expected a wideth.data.Dataset or a tuple (x, y), got {type(data).__name__}"
        )
    x = _checks.array(f"{name}: x", x, min_ndim=1, min_rows=1, kind="number")
    y = _checks.array(f"{name}: y", y, min_ndim=1, kind="number")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{name}: x and y need the same number of rows, got shapes {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    return x, y


@functools.partial(jax.jit, static_argnames=("step", "num_steps", "probes"))
def _chunk(step: TrainStep, carry: _Carry, data: Any, num_steps: int, probes: tuple):
    carry, metrics, values = _scan(step, carry, data, num_steps, dict(probes), num_steps)
    first = jax.tree.map(lambda a: a[0], metrics)
    probe0 = jax.tree.map(lambda a: a[0], values)
    return carry, first, probe0


@functools.partial(jax.jit, static_argnames=("apply_fn", "loss_fn", "classification"))
def _evaluate(apply_fn: Any, loss_fn: LossFn, classification: bool, params: Any, x, y):
    from wideth.losses import accuracy

    out = apply_fn(params, x)
    acc = accuracy(out, y) if classification else jnp.zeros([], jnp.float32)
    return loss_fn(out, y), acc


def _check_targets(loss: Any, out: Any, y: jax.Array, name: str) -> None:
    """Targets that fit the network's outputs, for the losses of the registry."""
    if not hasattr(out, "shape"):
        return  # a pytree of outputs: the loss itself is checked abstractly
    rows = tuple(out.shape[1:])
    if jnp.issubdtype(y.dtype, jnp.integer) and y.ndim == 1 and len(rows) == 1:
        _checks.class_labels(f"{name}: y", y, rows[0])  # class indices into the outputs
        return
    if (
        isinstance(loss, str)
        and tuple(y.shape[1:]) != rows
        and not (loss == "mse" and y.ndim == 1 and rows == (1,))
    ):
        raise ValueError(
            f"{name}: y has rows of shape {tuple(y.shape[1:])}, but the model's outputs have rows "
            f"of shape {rows} (loss {loss!r})"
        )


def _callback_style(cb: Callable[..., Any]) -> str:
    try:
        sig = inspect.signature(cb)
    except (TypeError, ValueError):
        return "state"
    positional = [
        p
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return "legacy" if len(positional) == 3 else "state"


def fit(
    model_or_apply: nnx.Module | Callable[..., Any],
    params: Any,
    tx: optax.GradientTransformation,
    data: Any,
    loss: str | LossFn = "mse",
    *,
    steps: int,
    batch_size: int | None = None,
    key: jax.Array | None = None,
    log_every: int = 10,
    eval_data: Any = None,
    callbacks: Sequence[Callable[..., Any]] = (),
    probes: Mapping[str, Callable[[TrainState, Any], Any]] | None = None,
    quiet: bool = False,
    opt_state: Any = None,
    mesh: jax.sharding.Mesh | None = None,
) -> FitResult:
    r"""Train ``params`` with an Optax transform; jitted :func:`~wideth.train.run` chunks.

    Step :math:`t` (:math:`t = 0, \dots, T-1`) is :func:`~wideth.train.train_step`
    on batch :math:`B_t`. ``log_every`` steps run inside one jitted program;
    metrics are logged at :math:`t = 0, k, 2k, \dots < T` and refer to
    :math:`\theta_t` (before that step's update): ``loss`` is :math:`\ell_t`
    (the full training loss when ``batch_size`` is ``None``), ``grad_norm`` is
    :math:`\|g_t\|`, ``accuracy`` the batch accuracy (classification targets:
    one-hot with more than one column, or integer labels),
    ``eval_loss``/``eval_accuracy`` on ``eval_data``, and each probe
    ``fn(state, batch)`` evaluated in the same program. The loss of the final
    parameters is not in the history: compute it from ``result.params``.

    Batches: ``batch_size=None`` is full-batch gradient descent; otherwise step
    :math:`t` takes ``batch_size`` distinct rows drawn with
    ``jax.random.fold_in(key, t)``, so the run is a deterministic function of
    ``key`` and independent of ``log_every``.

    Non-finite loss: if :math:`\ell_j` is NaN/inf the remaining steps are
    skipped, ``stopped_early`` is ``True``, ``message`` names step :math:`j`,
    and the returned state is :math:`(\theta_{j-1}, s_{j-1})`, the last one
    whose loss was finite (:math:`\theta_0` if :math:`j = 0`).

    Compilation: a second call with the same ``model_or_apply``, ``tx`` and
    ``loss`` objects and data of the same shapes compiles nothing (reuse the
    ``tx`` object: ``optax.sgd(0.1)`` built again is a new function).

    Args:
      model_or_apply: an ``nnx.Module`` (then ``params`` must be ``None``; the
        trained parameters are written back into it with ``nnx.update``), or a
        pure ``apply_fn(params, x) -> outputs``.
      params: parameter pytree for ``apply_fn`` (``None`` for a module).
      tx: Optax transform.
      data: ``wideth.data.Dataset`` (train split; its test split becomes
        ``eval_data`` unless given) or ``(x, y)``.
      loss: a name in :data:`wideth.train.LOSSES` or ``(outputs, targets) -> scalar``.
      steps: number of optimisation steps :math:`T \ge 0`.
      batch_size: minibatch size, ``None`` for full batch.
      key: PRNG key for minibatches and probes (default ``jax.random.key(0)``).
      log_every: steps per jitted chunk and between log points.
      eval_data: ``(x, y)`` or a ``Dataset`` (its test split) evaluated at log points.
      callbacks: functions ``cb(state, history)`` called at each log point with
        the :class:`~wideth.train.TrainState` of that point, after its metrics
        are recorded (``history`` is a dict of lists so far). A returned dict
        of scalars is appended to the history under its keys. The older form
        ``cb(step, params, history)`` still works and warns.
      probes: ``{name: fn(state, batch)}`` measured inside the jitted chunk at
        each log point (:mod:`wideth.train.probes`).
      quiet: silence the tqdm progress bar.
      opt_state: optimizer state to resume from (default ``tx.init(params)``).
      mesh: data parallelism over a :class:`jax.sharding.Mesh`: the rows of
        ``data`` are sharded over the mesh's first axis, parameters and
        optimizer state are replicated, and XLA inserts the all-reduce of the
        gradients (same result as one device up to summation order). The
        number of rows must be divisible by the number of devices on that axis.

    Returns:
      :class:`FitResult` ``(params, opt_state, history, stopped_early, message, state)``.

    Raises:
      TypeError / ValueError: bad model, data shapes, NaN in data, bad sizes.

    Examples:
      >>> import optax
      >>> apply_fn = lambda p, x: x @ p
      >>> x = jnp.eye(3); y = jnp.ones((3, 1))
      >>> res = fit(apply_fn, jnp.zeros((3, 1)), optax.sgd(1.0), (x, y), steps=50, quiet=True)
      >>> bool(jnp.allclose(res.params, 1.0, atol=1e-3))
      True
    """
    from tqdm.auto import tqdm

    module = model_or_apply if isinstance(model_or_apply, nnx.Module) else None
    apply_fn, params = as_apply(model_or_apply, params, name="model_or_apply")
    steps = _checks.nonnegative_int("steps", steps)
    log_every = _checks.positive_int("log_every", log_every)
    loss_fn = get_loss(loss)
    x, y = _as_arrays(data, "data")
    n = x.shape[0]
    if eval_data is None and hasattr(data, "x_test") and data.x_test is not None:
        eval_data = (data.x_test, data.y_test)
    elif eval_data is not None and hasattr(eval_data, "x_test"):
        eval_data = (eval_data.x_test, eval_data.y_test)
    ex = ey = None
    if eval_data is not None:
        ex, ey = _as_arrays(eval_data, "eval_data")
        if ex.shape[1:] != x.shape[1:] or ey.shape[1:] != y.shape[1:]:
            raise ValueError(
                f"eval_data: expected rows shaped like data's {tuple(x.shape[1:])} / "
                f"{tuple(y.shape[1:])}, got {tuple(ex.shape[1:])} / {tuple(ey.shape[1:])}"
            )
    if batch_size is not None:
        batch_size = _checks.positive_int("batch_size", batch_size)
        if batch_size > n:
            raise ValueError(f"batch_size: expected at most the {n} rows of data, got {batch_size}")
    key = jax.random.key(0) if key is None else _checks.prng_key("key", key)
    quiet = _checks.boolean("quiet", quiet)
    mesh = _checks.mesh("mesh", mesh)
    _checks.params_tree("params", params)
    if isinstance(callbacks, str) or not isinstance(callbacks, Sequence):
        raise TypeError(f"callbacks: expected a sequence of callables, got {callbacks!r}")
    for i, cb in enumerate(callbacks):
        _checks.callable_(f"callbacks[{i}]", cb, "a callable cb(state, history)")
    classification = is_classification(y, loss if isinstance(loss, str) else None)
    out_shape = _checks.evaluate_shape(
        "model_or_apply", apply_fn, params, x[:1], what="apply_fn(params, x)"
    )
    _check_targets(loss, out_shape, y, "data")
    if ex is not None:
        _check_targets(loss, out_shape, ey, "eval_data")
    metrics = ("grad_norm", "accuracy") if classification else ("grad_norm",)
    step_fn = train_step(apply_fn, loss_fn, tx, metrics=metrics)
    _checks.scalar_output("loss", loss_fn, out_shape, y[:1], what="loss(outputs, y)")
    _checks.evaluate_shape(
        "model_or_apply",
        step_fn.objective,
        params,
        (x[:1], y[:1]),
        what="loss(apply_fn(params, x), y)",
    )
    probes = _check_probes(probes)
    probe_items = tuple(sorted(probes.items()))

    if opt_state is None:
        opt_state = step_fn.tx.init(params)
    else:
        expected = jax.tree.structure(jax.eval_shape(step_fn.tx.init, params))
        if jax.tree.structure(opt_state) != expected:
            raise ValueError(
                "opt_state: expected the structure of tx.init(params) "
                f"({expected}), got {jax.tree.structure(opt_state)}"
            )
    state = TrainState(params, opt_state, jnp.zeros([], jnp.int32), key)
    if mesh is not None:
        from jax.sharding import NamedSharding
        from jax.sharding import PartitionSpec as P

        axis = mesh.axis_names[0]
        n_dev = mesh.shape[axis]
        if n % n_dev:
            raise ValueError(
                f"mesh: the {n} rows of data must be divisible by the {n_dev} devices of "
                f"mesh axis {axis!r}"
            )
        rows, replicated = NamedSharding(mesh, P(axis)), NamedSharding(mesh, P())
        x, y = jax.device_put(x, rows), jax.device_put(y, rows)
        state = jax.device_put(state, replicated)
    source = (x, y) if batch_size is None or batch_size == n else minibatches(x, y, batch_size)

    history: dict[str, list] = {"step": [], "loss": [], "grad_norm": []}
    if classification:
        history["accuracy"] = []
    if ex is not None:
        history["eval_loss"] = []
        if classification:
            history["eval_accuracy"] = []
    styles = [_callback_style(cb) for cb in callbacks]
    if "legacy" in styles:
        warnings.warn(
            "callbacks: cb(step, params, history) is deprecated; callbacks now receive "
            "cb(state, history) with the whole TrainState",
            DeprecationWarning,
            stacklevel=2,
        )

    stopped, bad_step = False, -1
    num_chunks = math.ceil(steps / log_every)
    carry = _Carry(state, state, jnp.zeros([], bool), jnp.full([], -1, jnp.int32))
    with tqdm(total=steps, desc="fit", disable=quiet, leave=False) as bar:
        for c in range(num_chunks):
            t0 = c * log_every
            length = min(log_every, steps - t0)
            start = carry.state
            carry, first, probe0 = _chunk(step_fn, carry, source, length, probe_items)
            stopped = bool(carry.stopped)
            if stopped:
                bad_step = int(carry.bad_step)
                if bad_step == t0:  # the logged point itself is non-finite
                    break
            history["step"].append(t0)
            for k in ("loss", "grad_norm", "accuracy"):
                if k in history:
                    history[k].append(float(first[k]))
            for k, v in probe0.items():
                history.setdefault(k, [])
                history[k].append(np.asarray(v).item() if np.ndim(v) == 0 else np.asarray(v))
            if ex is not None:
                el, ea = _evaluate(apply_fn, loss_fn, classification, start.params, ex, ey)
                history["eval_loss"].append(float(el))
                if classification:
                    history["eval_accuracy"].append(float(ea))
            for cb, style in zip(callbacks, styles, strict=True):
                extra = cb(t0, start.params, history) if style == "legacy" else cb(start, history)
                if isinstance(extra, dict):
                    for k, v in extra.items():
                        history.setdefault(k, [np.nan] * (len(history["step"]) - 1))
                        history[k].append(np.asarray(v).item() if np.ndim(v) == 0 else v)
            bar.update(length)
            bar.set_postfix(loss=f"{float(first['loss']):.4g}")
            if stopped:
                break

    if stopped:
        last = history["loss"][-1] if history["loss"] else float("nan")
        message = (
            f"non-finite loss at step {bad_step}: stopped and returned the state after "
            f"{max(bad_step - 1, 0)} updates (last logged finite loss {last:.6g})"
        )
    else:
        message = f"completed {steps} steps"
        if history["loss"]:
            message += f" (loss at step {history['step'][-1]}: {history['loss'][-1]:.6g})"
    state = _select(carry.stopped, carry.good, carry.state)
    if module is not None:
        nnx.update(module, state.params)
    hist = {k: np.asarray(v) for k, v in history.items()}
    hist["step"] = hist["step"].astype(np.int64)
    return FitResult(state.params, state.opt_state, hist, stopped, message, state)
