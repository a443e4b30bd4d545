r"""A training step as a pure function over a :class:`TrainState` pytree.

.. math::

    \ell_t = \mathcal L(f_{\theta_t}(x_{B_t}), y_{B_t}),\quad
    (u_t, s_{t+1}) = \mathrm{tx.update}(\nabla\ell_t, s_t, \theta_t;\,
    \texttt{value}=\ell_t,\ \texttt{outputs\_fn},\ \texttt{loss\_of\_outputs}),
    \quad \theta_{t+1} = \theta_t + u_t .

``tx.update`` always receives ``value`` (the batch loss, for
``optax.polyak_sgd``-style transforms), ``outputs_fn = θ ↦ f_θ(x_B)`` and
``loss_of_outputs = o ↦ L(o, y_B)`` (for :func:`wideth.optim.pl_adaptive`);
a plain ``GradientTransformation`` is wrapped with
``optax.with_extra_args_support``, which drops them.

The step object is hashable (by the identity of ``apply_fn``, the loss and
``tx``), so ``jax.jit`` and :func:`wideth.train.fit` reuse compiled programs
when the same step is used again with data of the same shapes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from wideth import _checks
from wideth.functional import as_apply
from wideth.losses import METRICS, LossFn, accuracy, get_loss

__all__ = ["TrainState", "TrainStep", "train_step", "with_hyperparams", "global_norm"]

Batch = Any


def global_norm(tree: Any) -> jax.Array:
    r""":math:`\|g\| = (\sum_\ell \sum |g_\ell|^2)^{1/2}` over every leaf (complex-safe).

    A tree without leaves has norm 0; a NaN/inf leaf gives a NaN/inf norm (so a
    diverged gradient stays visible in the metrics instead of stopping the step).

    Raises:
      TypeError: a leaf that is not a numeric array (a string, an object).
    """
    if jax.tree.leaves(tree):
        _checks.arrays_tree("tree", tree, check_finite=False)
    return optax.tree.norm(tree)


@struct.dataclass
class TrainState:
    """Everything that changes during training, as one pytree.

    Attributes:
      params: model parameters.
      opt_state: the Optax state.
      step: number of updates applied so far (int32 scalar).
      key: PRNG key of the run; minibatch :math:`t` and every random probe at
        step :math:`t` use ``jax.random.fold_in(key, t)``, so a run is a
        deterministic function of ``key``.
    """

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array

    @classmethod
    def create(
        cls, params: Any, tx: optax.GradientTransformation, key: jax.Array | None = None
    ) -> TrainState:
        """A state at step 0 with ``tx.init(params)`` (``key`` default: ``jax.random.key(0)``)."""
        if not isinstance(tx, optax.GradientTransformation | optax.GradientTransformationExtraArgs):
            raise TypeError(
                f"tx: expected an optax GradientTransformation, got {type(tx).__name__}"
            )
        _checks.params_tree("params", params)
        key = jax.random.key(0) if key is None else _checks.prng_key("key", key)
        return cls(params, tx.init(params), jnp.zeros([], jnp.int32), key)


def with_hyperparams(state: TrainState, **values: Any) -> TrainState:
    """Set hyperparameters of ``optax.inject_hyperparams`` states inside ``state.opt_state``.

    Every ``InjectHyperparamsState`` in the tree whose ``hyperparams`` has the
    key gets the new value (cast to the stored dtype), so a sweep is a ``vmap``
    over the values:

    .. code-block:: python

        tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
        def one(lr):
            s = with_hyperparams(TrainState.create(params, tx), learning_rate=lr)
            return train.run(step, s, data, 100).metrics["loss"]
        jax.vmap(one)(jnp.logspace(-2, 0, 8))

    Raises:
      ValueError: a name that no ``inject_hyperparams`` state holds; NaN/inf values.
      TypeError: ``state`` is not a :class:`TrainState`; non-numeric values.
    """
    if not isinstance(state, TrainState):
        raise TypeError(f"state: expected a wideth.train.TrainState, got {type(state).__name__}")
    for k, v in values.items():
        _checks.array(k, v, kind="real")
    found: set[str] = set()

    def is_inject(x: Any) -> bool:
        return isinstance(x, optax.InjectHyperparamsState | optax.InjectStatefulHyperparamsState)

    def replace(x: Any) -> Any:
        if not is_inject(x):
            return x
        hp = dict(x.hyperparams)
        for k, v in values.items():
            if k in hp:
                hp[k] = jnp.asarray(v, jnp.asarray(hp[k]).dtype)
                found.add(k)
        return x._replace(hyperparams=hp)

    opt_state = jax.tree.map(replace, state.opt_state, is_leaf=is_inject)
    missing = set(values) - found
    if missing:
        raise ValueError(
            f"{sorted(missing)[0]}: no optax.inject_hyperparams state in opt_state holds this "
            "hyperparameter"
        )
    return state.replace(opt_state=opt_state)


class TrainStep:
    """``step(state, batch) -> (state, metrics)``; see :func:`train_step`."""

    def __init__(
        self,
        apply_fn: Callable[..., Any],
        loss: LossFn,
        tx: optax.GradientTransformationExtraArgs,
        metrics: tuple[str, ...],
    ):
        self.apply_fn, self.loss, self.tx, self.metrics = apply_fn, loss, tx, metrics

    def objective(self, params: Any, batch: Batch) -> jax.Array:
        """The batch loss :math:`\\mathcal L(f_\\theta(x_B), y_B)`."""
        x, y = batch
        return self.loss(self.apply_fn(params, x), y)

    def __call__(self, state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        x, y = batch

        def objective(p: Any) -> tuple[jax.Array, Any]:
            out = self.apply_fn(p, x)
            return self.loss(out, y), out

        (value, out), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = self.tx.update(
            grads,
            state.opt_state,
            state.params,
            value=value,
            outputs_fn=lambda p: self.apply_fn(p, x),
            loss_of_outputs=lambda o: self.loss(o, y),
        )
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": value}
        for name in self.metrics:
            if name == "grad_norm":
                metrics[name] = global_norm(grads).astype(jnp.result_type(value))
            elif name == "accuracy":
                metrics[name] = accuracy(out, y)
            elif name != "loss":
                metrics[name] = METRICS[name](out, y)
        new = state.replace(params=params, opt_state=opt_state, step=state.step + 1)
        return new, metrics

    def _key(self) -> tuple[Any, ...]:
        return (self.apply_fn, self.loss, self.tx, self.metrics)

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrainStep) and self._key() == other._key()

    def __repr__(self) -> str:
        return f"TrainStep(metrics={self.metrics})"


@functools.lru_cache(maxsize=256)
def _with_extra_args(
    tx: optax.GradientTransformation,
) -> optax.GradientTransformationExtraArgs:
    """One wrapper per transform, so steps built from the same ``tx`` compare equal."""
    if isinstance(tx, optax.GradientTransformationExtraArgs):
        return tx
    return optax.with_extra_args_support(tx)


def train_step(
    apply_fn: Any,
    loss: str | LossFn,
    tx: optax.GradientTransformation,
    *,
    metrics: Sequence[str] = ("grad_norm",),
    method: str = "__call__",
) -> TrainStep:
    r"""A pure training step ``step(state, batch) -> (state, metrics)``.

    One forward and backward pass on ``batch = (x, y)`` at :math:`\theta_t`,
    one ``tx.update`` with the extra arguments of the module docstring, and
    :math:`\theta_{t+1} = \theta_t + u_t`. The metrics refer to :math:`\theta_t`
    (before the update): ``"loss"`` always, plus any of ``"grad_norm"``
    (:math:`\|\nabla\ell_t\|`), ``"accuracy"`` and the names in
    :data:`wideth.train.METRICS`.

    Args:
      apply_fn: ``apply_fn(params, x) -> outputs`` or an ``nnx.Module`` (its
        graph is taken; the parameters live in the :class:`TrainState`).
      loss: a name in :data:`wideth.train.LOSSES` or ``(outputs, targets) -> scalar``.
      tx: an Optax transform.
      metrics: extra per-step metrics.
      method: module method to train (module form only).

    Returns:
      A hashable :class:`TrainStep`; ``step.objective(params, batch)`` is the
      batch loss, for probes and Hessians.

    Examples:
      >>> import optax
      >>> step = train_step(lambda p, x: x @ p, "mse", optax.sgd(0.5))
      >>> state = TrainState.create(jnp.zeros((2, 1)), optax.sgd(0.5))
      >>> state, m = step(state, (jnp.eye(2), jnp.ones((2, 1))))
      >>> float(m["loss"]), int(state.step)
      (0.5, 1)
    """
    from flax import nnx

    if isinstance(apply_fn, nnx.Module):
        apply_fn, _ = as_apply(apply_fn, method=method)
    _checks.callable_("apply_fn", apply_fn, "an nnx.Module or apply_fn(params, x)")
    loss_fn = get_loss(loss)
    if not isinstance(tx, optax.GradientTransformation | optax.GradientTransformationExtraArgs):
        raise TypeError(f"tx: expected an optax GradientTransformation, got {type(tx).__name__}")
    tx = _with_extra_args(tx)
    if isinstance(metrics, str) or not isinstance(metrics, Sequence):
        raise TypeError(
            f"metrics: expected a sequence of names such as ('grad_norm',), got {metrics!r}"
        )
    metrics = tuple(metrics)
    for m in metrics:
        if m != "grad_norm" and m not in METRICS:
            raise ValueError(f"metrics: expected names in {('grad_norm', *METRICS)}, got {m!r}")
    return TrainStep(apply_fn, loss_fn, tx, metrics)
