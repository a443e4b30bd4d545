r"""Jitted training loop over ``lax.scan`` chunks, losses and metrics.

Loss normalisation (shared with :mod:`wideth.kernels.predict`):

.. math::

    \mathcal L_{\rm mse}(f) = \frac{1}{2n}\sum_{i=1}^n \|f(x_i) - y_i\|^2 .

Its Hessian with respect to the stacked outputs is :math:`I/n`, so the
Gauss--Newton matrix is :math:`J^\top J/n` with the same nonzero spectrum as
:math:`\Theta/n`, where :math:`\Theta = J J^\top` is the :math:`(nk)\times(nk)`
empirical NTK on the training batch (:math:`k` outputs). Linearised gradient
descent :math:`f \leftarrow f - \tfrac{\eta}{n}\Theta(f - y)` is therefore
stable iff

.. math::

    \eta < \frac{2}{\lambda_{\max}(\Theta/n)} ,

(Lee et al. 2019; Lewkowycz et al. 2020). For the output-traced kernel of
:func:`wideth.kernels.empirical.ntk`, :math:`\lambda_{\max}(\Theta)` is bounded
by that of the traced kernel; in the infinite-width limit the full NTK is
:math:`\Theta_{\rm trace}/k \otimes I_k`.

:func:`fit` trains any ``apply_fn(params, x)`` (or an ``nnx.Module``) with any
Optax transform, passing ``outputs_fn``/``loss_of_outputs`` extras so that
:func:`wideth.optim.pl_adaptive` works unchanged.

References:
  Lee et al., `Wide Neural Networks of Any Depth Evolve as Linear Models Under
  Gradient Descent <https://arxiv.org/abs/1902.06720>`_, 2019.
  Lewkowycz et al., `The large learning rate phase of deep learning: the
  catapult mechanism <https://arxiv.org/abs/2003.02218>`_, 2020.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

__all__ = ["LOSSES", "FitResult", "accuracy", "fit", "mse", "xent"]


def mse(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    r"""Mean squared error with the :math:`\tfrac12` and per-example mean.

    .. math::

        \mathcal L = \frac{1}{2n}\sum_{i=1}^n \|f_i - y_i\|^2

    (sum over the :math:`k` outputs, mean over the :math:`n` examples; the GD
    stability threshold is :math:`\eta < 2/\lambda_{\max}(\Theta/n)`, see the
    module docstring).

    Args:
      outputs: ``(n, k)`` or ``(n,)`` network outputs.
      targets: same shape as ``outputs`` (a ``(n,)`` target with ``(n, 1)``
        outputs is accepted).

    Returns:
      Scalar loss.

    Examples:
      >>> float(mse(jnp.array([[1.0], [3.0]]), jnp.array([[0.0], [1.0]])))
      1.25
    """
    outputs, targets = jnp.asarray(outputs), jnp.asarray(targets)
    if outputs.ndim == 2 and targets.ndim == 1 and outputs.shape[1] == 1:
        targets = targets[:, None]
    if outputs.shape != targets.shape:
        raise ValueError(
            f"targets: expected shape {outputs.shape} (like outputs), got {targets.shape}"
        )
    diff = (outputs - targets).reshape(outputs.shape[0], -1) if outputs.ndim else outputs - targets
    return 0.5 * jnp.mean(jnp.sum(diff**2, axis=-1))


def _one_hot_like(logits: jax.Array, labels: jax.Array) -> jax.Array:
    labels = jnp.asarray(labels)
    if labels.ndim == logits.ndim - 1 and jnp.issubdtype(labels.dtype, jnp.integer):
        return jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    if labels.shape != logits.shape:
        raise ValueError(
            f"labels: expected one-hot shape {logits.shape} or integer shape "
            f"{logits.shape[:-1]}, got {labels.shape} ({labels.dtype})"
        )
    return labels


def xent(logits: jax.Array, labels: jax.Array) -> jax.Array:
    r"""Softmax cross-entropy, mean over examples.

    .. math::

        \mathcal L = -\frac1n \sum_{i=1}^n \sum_{c} y_{ic} \log \operatorname{softmax}(f_i)_c

    Args:
      logits: ``(n, C)``.
      labels: one-hot (or soft) ``(n, C)`` or integer class indices ``(n,)``.

    Returns:
      Scalar loss.
    """
    logits = jnp.asarray(logits)
    y = _one_hot_like(logits, labels)
    return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(logits, axis=-1), axis=-1))


def accuracy(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of examples whose arg-max output equals the label.

    Args:
      outputs: ``(n, C)`` scores.
      labels: one-hot ``(n, C)`` or integer ``(n,)``.

    Returns:
      Scalar in ``[0, 1]``.
    """
    outputs, labels = jnp.asarray(outputs), jnp.asarray(labels)
    pred = jnp.argmax(outputs, axis=-1)
    true = labels if labels.ndim == outputs.ndim - 1 else jnp.argmax(labels, axis=-1)
    return jnp.mean((pred == true).astype(jnp.float32))


#: Named losses accepted by :func:`fit`.
LOSSES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {"mse": mse, "xent": xent}


class FitResult(NamedTuple):
    """Outcome of :func:`fit`.

    Attributes:
      params: final parameters (same pytree form as given; for a module, its
        ``nnx.State`` of ``nnx.Param``, already written back into the module).
      opt_state: final optimizer state.
      history: dict of numpy arrays, one entry per log point: ``"step"``,
        ``"loss"``, ``"grad_norm"``, ``"accuracy"`` (classification targets),
        ``"eval_loss"``/``"eval_accuracy"`` (with eval data) and whatever
        callbacks returned.
      stopped_early: whether a non-finite loss stopped training.
      message: human-readable summary (names the step on a non-finite loss).
    """

    params: Any
    opt_state: Any
    history: dict[str, np.ndarray]
    stopped_early: bool
    message: str


def _as_arrays(data: Any, name: str) -> tuple[jax.Array, jax.Array]:
    if hasattr(data, "x_train") and hasattr(data, "y_train"):
        x, y = data.x_train, data.y_train
    elif isinstance(data, tuple | list) and len(data) == 2:
        x, y = data
    else:
        raise TypeError(
            f"{name}: expected a wideth.data.Dataset or a tuple (x, y), got {type(data)}"
        )
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{name}: x and y need the same number of rows, got shapes {x.shape} and {y.shape}"
        )
    for arr, what in ((x, "x"), (y, "y")):
        if jnp.issubdtype(arr.dtype, jnp.inexact) and not bool(jnp.all(jnp.isfinite(arr))):
            raise ValueError(f"{name}: {what} contains NaN or inf")
    return x, y


def _is_classification(y: jax.Array, loss: Any) -> bool:
    if loss == "xent":
        return True
    if jnp.issubdtype(y.dtype, jnp.integer):
        return y.ndim == 1
    return y.ndim == 2 and y.shape[1] > 1


def _resolve_loss(loss: Any) -> Callable[[jax.Array, jax.Array], jax.Array]:
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {tuple(LOSSES)} or a callable, got {loss!r}")
        return LOSSES[loss]
    if not callable(loss):
        raise TypeError(
            f"loss: expected a name or a callable (outputs, targets) -> scalar, got {loss!r}"
        )
    return loss


class _Carry(NamedTuple):
    params: Any
    opt_state: Any
    good_params: Any  # state of the last step whose loss was finite
    good_opt_state: Any
    stopped: jax.Array  # bool
    bad_step: jax.Array  # int32, -1 while finite


def _tree_select(pred: jax.Array, a: Any, b: Any) -> Any:
    return jax.tree.map(lambda u, v: jnp.where(pred, u, v), a, b)


def _global_norm(tree: Any) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(jnp.abs(leaf))) for leaf in leaves))


def fit(
    model_or_apply: nnx.Module | Callable[..., Any],
    params: Any,
    tx: optax.GradientTransformation,
    data: Any,
    loss: str | Callable[[jax.Array, jax.Array], jax.Array] = "mse",
    *,
    steps: int,
    batch_size: int | None = None,
    key: jax.Array | None = None,
    log_every: int = 10,
    eval_data: Any = None,
    callbacks: Sequence[Callable[[int, Any, dict[str, list]], Any]] = (),
    quiet: bool = False,
    opt_state: Any = None,
    mesh: jax.sharding.Mesh | None = None,
) -> FitResult:
    r"""Train ``params`` with an Optax transform; jitted steps in ``lax.scan`` chunks.

    Step :math:`t` (:math:`t = 0, \dots, T-1`) draws a batch :math:`B_t`,
    computes :math:`\ell_t = \mathcal L(f_{\theta_t}(x_{B_t}), y_{B_t})` and
    :math:`g_t = \nabla\ell_t` and applies

    .. math::

        (u_t, s_{t+1}) = \mathrm{tx.update}(g_t, s_t, \theta_t;\,
        \texttt{outputs\_fn}=\theta \mapsto f_\theta(x_{B_t}),\,
        \texttt{loss\_of\_outputs}=o \mapsto \mathcal L(o, y_{B_t})),
        \qquad \theta_{t+1} = \theta_t + u_t .

    ``log_every`` steps run inside one jitted ``lax.scan``; metrics are logged
    at :math:`t = 0, k, 2k, \dots < T` and refer to :math:`\theta_t` (before
    that step's update): ``loss`` is :math:`\ell_t` (the full training loss when
    ``batch_size`` is ``None``), ``grad_norm`` is :math:`\|g_t\|`,
    ``accuracy`` the batch accuracy (classification targets: one-hot with
    more than one column, or integer labels), ``eval_loss``/``eval_accuracy``
    on ``eval_data``. The loss of the final parameters is not in the history:
    compute it from ``result.params``.

    Batches: ``batch_size=None`` is full-batch gradient descent; otherwise step
    :math:`t` takes ``batch_size`` distinct rows drawn with
    ``jax.random.fold_in(key, t)``, so the run is a deterministic function of
    ``key`` and independent of ``log_every``.

    Non-finite loss: if :math:`\ell_j` is NaN/inf the remaining steps are
    skipped, ``stopped_early`` is ``True``, ``message`` names step :math:`j`,
    and the returned state is :math:`(\theta_{j-1}, s_{j-1})`, the last one
    whose loss was finite (:math:`\theta_0` if :math:`j = 0`).

    Extra arguments: ``tx.update`` always receives ``value`` (the batch loss,
    for ``optax.polyak_sgd``-style transforms), ``outputs_fn`` and
    ``loss_of_outputs``; a plain ``GradientTransformation`` is wrapped with
    ``optax.with_extra_args_support`` (which drops them), and
    ``GradientTransformationExtraArgs`` chains forward them to the members
    that take them (:func:`wideth.optim.pl_adaptive`) and ignore them elsewhere.

    Args:
      model_or_apply: an ``nnx.Module`` (then ``params`` must be ``None``; the
        module is split with :func:`wideth.models.functional`, and the trained
        parameters are written back into it with ``nnx.update``), or a pure
        ``apply_fn(params, x) -> outputs``.
      params: parameter pytree for ``apply_fn`` (``None`` for a module).
      tx: Optax transform.
      data: ``wideth.data.Dataset`` (train split; its test split becomes
        ``eval_data`` unless given) or ``(x, y)``.
      loss: ``"mse"`` (:func:`mse`), ``"xent"`` (:func:`xent`) or a callable
        ``(outputs, targets) -> scalar``.
      steps: number of optimisation steps :math:`T \ge 0`.
      batch_size: minibatch size, ``None`` for full batch.
      key: PRNG key for minibatches (default ``jax.random.key(0)``).
      log_every: steps per jitted chunk and between log points.
      eval_data: ``(x, y)`` or a ``Dataset`` (its test split) evaluated at log points.
      callbacks: functions ``cb(step, params, history)`` called at each log
        point after the metrics of that point are recorded (``history`` is a
        dict of lists so far). A returned dict of scalars is appended to the
        history under its keys (e.g. an NTK or Hessian probe).
      quiet: silence the tqdm progress bar.
      opt_state: optimizer state to resume from (default ``tx.init(params)``).
      mesh: data parallelism over a :class:`jax.sharding.Mesh`: the rows of
        ``data`` are sharded over the mesh's first axis, parameters and
        optimizer state are replicated, and XLA inserts the all-reduce of the
        gradients (same result as one device up to summation order). The
        number of rows must be divisible by the number of devices on that axis.

    Returns:
      :class:`FitResult` ``(params, opt_state, history, stopped_early, message)``.

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

    from wideth.models import functional

    module = None
    if isinstance(model_or_apply, nnx.Module):
        if params is not None:
            raise TypeError("params: must be None when an nnx.Module is given (it holds them)")
        module = model_or_apply
        apply_fn, params = functional(module)
    elif callable(model_or_apply):
        apply_fn = model_or_apply
        if params is None:
            raise TypeError("params: required when model_or_apply is an apply_fn")
    else:
        raise TypeError(
            "model_or_apply: expected an nnx.Module or apply_fn(params, x), "
            f"got {type(model_or_apply)}"
        )
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if isinstance(log_every, bool) or not isinstance(log_every, int | np.integer) or log_every < 1:
        raise ValueError(f"log_every must be a positive int, got {log_every!r}")
    steps, log_every = int(steps), int(log_every)
    if not isinstance(tx, optax.GradientTransformation | optax.GradientTransformationExtraArgs):
        raise TypeError(f"tx: expected an optax GradientTransformation, got {type(tx)}")
    if not isinstance(tx, optax.GradientTransformationExtraArgs):
        tx = optax.with_extra_args_support(tx)
    loss_name = loss if isinstance(loss, str) else None
    loss_fn = _resolve_loss(loss)

    x, y = _as_arrays(data, "data")
    n = x.shape[0]
    if eval_data is None and hasattr(data, "x_test") and data.x_test is not None:
        eval_data = (data.x_test, data.y_test)
    elif eval_data is not None and hasattr(eval_data, "x_test"):
        eval_data = (eval_data.x_test, eval_data.y_test)
    ex = ey = None
    if eval_data is not None:
        ex, ey = _as_arrays(eval_data, "eval_data")
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
            raise ValueError(f"batch_size must be None or a positive int, got {batch_size!r}")
        if not 1 <= batch_size <= n:
            raise ValueError(f"batch_size must be in [1, {n}] (rows of data), got {batch_size}")
        batch_size = int(batch_size)
    if key is None:
        key = jax.random.key(0)
    classification = _is_classification(y, loss_name)

    def make_step(xd: jax.Array, yd: jax.Array) -> Callable[..., Any]:
        def batch(t: jax.Array) -> tuple[jax.Array, jax.Array]:
            if batch_size is None or batch_size == n:
                return xd, yd
            idx = jax.random.choice(jax.random.fold_in(key, t), n, (batch_size,), replace=False)
            return xd[idx], yd[idx]

        def step(carry: _Carry, t: jax.Array) -> tuple[_Carry, tuple[jax.Array, ...]]:
            return _train_step(carry, t, *batch(t))

        return step

    def _train_step(carry: _Carry, t: jax.Array, xb: jax.Array, yb: jax.Array):
        def objective(p):
            out = apply_fn(p, xb)
            return loss_fn(out, yb), out

        def do(c: _Carry) -> tuple[_Carry, tuple[jax.Array, ...]]:
            (value, out), grads = jax.value_and_grad(objective, has_aux=True)(c.params)
            finite = jnp.isfinite(value)
            updates, new_opt = tx.update(
                grads,
                c.opt_state,
                c.params,
                value=value,
                outputs_fn=lambda p: apply_fn(p, xb),
                loss_of_outputs=lambda o: loss_fn(o, yb),
            )
            new_params = optax.apply_updates(c.params, updates)
            acc = accuracy(out, yb) if classification else jnp.zeros([], jnp.float32)
            mdt = jax.dtypes.canonicalize_dtype(jnp.float64)  # float64 under x64
            nxt = _Carry(
                params=_tree_select(finite, new_params, c.params),
                opt_state=_tree_select(finite, new_opt, c.opt_state),
                good_params=_tree_select(finite, c.params, c.good_params),
                good_opt_state=_tree_select(finite, c.opt_state, c.good_opt_state),
                stopped=~finite,
                bad_step=jnp.where(finite, c.bad_step, t.astype(jnp.int32)),
            )
            return nxt, (value.astype(mdt), _global_norm(grads).astype(mdt), acc)

        def skip(c: _Carry) -> tuple[_Carry, tuple[jax.Array, ...]]:
            nan = jnp.full([], jnp.nan, jax.dtypes.canonicalize_dtype(jnp.float64))
            return c, (nan, nan, jnp.full([], jnp.nan, jnp.float32))

        return jax.lax.cond(carry.stopped, skip, do, carry)

    @functools.partial(jax.jit, static_argnums=0)
    def run_chunk(length: int, carry: _Carry, t0: jax.Array, xd: jax.Array, yd: jax.Array):
        ts = t0 + jnp.arange(length, dtype=jnp.int32)
        return jax.lax.scan(make_step(xd, yd), carry, ts)

    @jax.jit
    def evaluate(p: Any, xe: jax.Array, ye: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = apply_fn(p, xe)
        acc = accuracy(out, ye) if classification else jnp.zeros([], jnp.float32)
        return loss_fn(out, ye), acc

    if opt_state is None:
        opt_state = tx.init(params)
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
        params = jax.device_put(params, replicated)
        opt_state = jax.device_put(opt_state, replicated)
    carry = _Carry(
        params, opt_state, params, opt_state, jnp.zeros([], bool), jnp.full([], -1, jnp.int32)
    )
    history: dict[str, list] = {"step": [], "loss": [], "grad_norm": []}
    if classification:
        history["accuracy"] = []
    if ex is not None:
        history["eval_loss"] = []
        if classification:
            history["eval_accuracy"] = []

    stopped, bad_step = False, -1
    num_chunks = math.ceil(steps / log_every)
    with tqdm(total=steps, desc="fit", disable=quiet, leave=False) as bar:
        for c in range(num_chunks):
            t0 = c * log_every
            length = min(log_every, steps - t0)
            start_params = carry.params
            carry, (losses, gnorms, accs) = run_chunk(
                length, carry, jnp.asarray(t0, jnp.int32), x, y
            )
            stopped = bool(carry.stopped)
            if stopped:
                bad_step = int(carry.bad_step)
                if bad_step == t0:  # the logged point itself is non-finite
                    break
            history["step"].append(t0)
            history["loss"].append(float(losses[0]))
            history["grad_norm"].append(float(gnorms[0]))
            if classification:
                history["accuracy"].append(float(accs[0]))
            if ex is not None:
                el, ea = evaluate(start_params, ex, ey)
                history["eval_loss"].append(float(el))
                if classification:
                    history["eval_accuracy"].append(float(ea))
            for cb in callbacks:
                extra = cb(t0, start_params, history)
                if isinstance(extra, dict):
                    for k, v in extra.items():
                        history.setdefault(k, [np.nan] * (len(history["step"]) - 1))
                        history[k].append(np.asarray(v).item() if np.ndim(v) == 0 else v)
            bar.update(length)
            bar.set_postfix(loss=f"{float(losses[0]):.4g}")
            if stopped:
                break

    if stopped:
        final_params, final_opt = carry.good_params, carry.good_opt_state
        last = history["loss"][-1] if history["loss"] else float("nan")
        message = (
            f"non-finite loss at step {bad_step}: stopped and returned the state after "
            f"{max(bad_step - 1, 0)} updates (last logged finite loss {last:.6g})"
        )
    else:
        final_params, final_opt = carry.params, carry.opt_state
        message = f"completed {steps} steps"
        if history["loss"]:
            message += f" (loss at step {history['step'][-1]}: {history['loss'][-1]:.6g})"
    if module is not None:
        nnx.update(module, final_params)
    hist = {k: np.asarray(v) for k, v in history.items()}
    hist["step"] = hist["step"].astype(np.int64)
    return FitResult(final_params, final_opt, hist, stopped, message)
