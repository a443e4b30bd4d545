r"""Probes: measurements of a :class:`~wideth.train.TrainState` inside the jitted loop.

Each constructor returns ``fn(state, batch) -> value`` for the ``probes=``
argument of :func:`wideth.train.run` and :func:`wideth.train.fit`. ``batch``
is the batch of the step being probed (the whole training set for full-batch
runs); pass ``data=(x, y)`` to measure on fixed data instead. Random probes
(Lanczos start vectors) draw from ``fold_in(state.key, state.step)``, so they
are reproducible and differ between steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import optax

from wideth import _checks, hessian
from wideth.functional import as_apply
from wideth.losses import LossFn, get_loss

from .step import TrainState, TrainStep, global_norm

__all__ = [
    "loss",
    "grad_norm",
    "sharpness",
    "ntk_top_eigenvalue",
    "eta_hat",
    "distance_from_init",
    "params_norm",
    "gradient_noise",
]

Probe = Callable[[TrainState, Any], Any]
_SALT = 0x5EED  # separates probe randomness from minibatch sampling


def _objective(model: Any) -> Callable[[Any, Any], jax.Array]:
    if isinstance(model, TrainStep):
        return model.objective
    if callable(model):
        return model
    raise TypeError(
        f"model: expected a wideth.train.TrainStep or loss_fn(params, batch), got "
        f"{type(model).__name__}"
    )


def _check_data(data: Any) -> Any:
    """A fixed batch: numeric, finite, and its arrays (0-d leaves aside) with the same rows >= 1."""
    if data is not None:
        _checks.arrays_tree("data", data)
        shapes = [tuple(jax.numpy.shape(a)) for a in jax.tree.leaves(data)]
        rows = {s[0] for s in shapes if s}
        if len(rows) != 1 or rows == {0}:
            raise ValueError(
                f"data: expected arrays with the same number (>= 1) of rows, got shapes {shapes}"
            )
    return data


def _apply(apply_fn: Any) -> Callable[..., Any]:
    if isinstance(apply_fn, TrainStep):
        return apply_fn.apply_fn
    from flax import nnx

    if isinstance(apply_fn, nnx.Module):
        return as_apply(apply_fn)[0]
    return _checks.callable_(
        "apply_fn", apply_fn, "apply_fn(params, x), an nnx.Module or a TrainStep"
    )


def _probe_key(state: TrainState) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(state.key, _SALT), state.step)


def loss(model: TrainStep | Callable[[Any, Any], jax.Array], data: Any = None) -> Probe:
    """The loss :math:`\\mathcal L(\\theta_t)` on the probed batch or on ``data``.

    Args:
      model: a :class:`~wideth.train.TrainStep` or ``loss_fn(params, batch)``.
      data: fixed ``(x, y)`` (e.g. the full training or test set).
    """
    fn = _objective(model)
    data = _check_data(data)
    return lambda state, batch: fn(state.params, batch if data is None else data)


def grad_norm(model: TrainStep | Callable[[Any, Any], jax.Array], data: Any = None) -> Probe:
    r""":math:`\|\nabla\mathcal L(\theta_t)\|` on the probed batch or on ``data``."""
    fn = _objective(model)
    data = _check_data(data)
    return lambda state, batch: global_norm(
        jax.grad(fn)(state.params, batch if data is None else data)
    )


def sharpness(
    model: TrainStep | Callable[[Any, Any], jax.Array],
    data: Any = None,
    *,
    num_steps: int = 20,
) -> Probe:
    r"""Sharpness :math:`\lambda_{\max}(\nabla^2\mathcal L(\theta_t))` by Lanczos.

    Uses :func:`wideth.hessian.sharpness` (``num_steps`` Hessian-vector
    products from a random start).
    """
    fn = _objective(model)
    data = _check_data(data)
    num_steps = _checks.positive_int("num_steps", num_steps)

    def probe(state: TrainState, batch: Any) -> jax.Array:
        b = batch if data is None else data
        op = hessian.hessian(fn, state.params, b)
        return hessian.sharpness(op, num_steps=num_steps, key=_probe_key(state))

    return probe


def ntk_top_eigenvalue(
    apply_fn: Any,
    x: Any = None,
    *,
    num_steps: int = 20,
) -> Probe:
    r""":math:`\lambda_{\max}(\Theta_t)` of the empirical NTK :math:`\Theta = JJ^\top` on a batch.

    Args:
      apply_fn: ``apply_fn(params, x)``, an ``nnx.Module`` or a
        :class:`~wideth.train.TrainStep`.
      x: fixed inputs (default: the probed batch's inputs).
      num_steps: Lanczos steps on the NTK-vector product (never forms :math:`\Theta`).
    """
    apply_fn = _apply(apply_fn)
    num_steps = _checks.positive_int("num_steps", num_steps)
    if x is not None:
        x = _checks.array("x", x, min_ndim=1, min_rows=1, kind="number")

    def probe(state: TrainState, batch: Any) -> jax.Array:
        xs = batch[0] if x is None else x
        op = hessian.ntk(apply_fn, state.params, xs)
        return hessian.sharpness(op, num_steps=num_steps, key=_probe_key(state))

    return probe


def eta_hat() -> Probe:
    r"""The current PL-adaptive step :math:`\hat\eta_t` of :func:`wideth.optim.pl_adaptive`."""
    from wideth.optim import pl_adaptive_info

    return lambda state, batch: pl_adaptive_info(state.opt_state)["eta_hat"]


def distance_from_init(params0: Any, *, relative: bool = False) -> Probe:
    r""":math:`\|\theta_t - \theta_0\|` (divided by :math:`\|\theta_0\|` with ``relative``)."""
    _checks.params_tree("params0", params0)
    relative = _checks.boolean("relative", relative)
    norm0 = optax.tree.norm(params0)

    def probe(state: TrainState, batch: Any) -> jax.Array:
        d = optax.tree.norm(optax.tree.sub(state.params, params0))
        return d / norm0 if relative else d

    return probe


def params_norm() -> Probe:
    r""":math:`\|\theta_t\|`."""
    return lambda state, batch: optax.tree.norm(state.params)


def outputs(apply_fn: Any, x: Any) -> Probe:
    """Network outputs :math:`f_{\\theta_t}(x)` on fixed inputs."""
    apply_fn = _apply(apply_fn)
    x = _checks.array("x", x, min_ndim=1, min_rows=1, kind="number")
    return lambda state, batch: apply_fn(state.params, x)


def metric(apply_fn: Any, fn: str | LossFn, data: Any) -> Probe:
    """Any ``(outputs, targets)`` metric on fixed ``data = (x, y)`` (e.g. test accuracy)."""
    from wideth.losses import METRICS

    apply_fn = _apply(apply_fn)
    f = METRICS[fn] if isinstance(fn, str) and fn in METRICS else get_loss(fn, "fn")
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise TypeError(f"data: expected a pair (x, y), got {type(data).__name__}")
    _check_data(data)
    x, y = data
    return lambda state, batch: f(apply_fn(state.params, x), y)


__all__ += ["outputs", "metric"]


def gradient_noise(
    model: TrainStep | Callable[[Any, Any], jax.Array],
    data: Any,
    batch_size: int,
    *,
    center: Any = None,
) -> Probe:
    r"""Every term of SGD's fluctuation--dissipation relation on fixed ``data = (x, y)``.

    :math:`\|\nabla\mathcal L\|^2`, :math:`\operatorname{tr}\Sigma`,
    :math:`\operatorname{tr}\tilde C`, :math:`E\|g_B\|^2` and
    :math:`\theta\cdot\nabla\mathcal L` for minibatches of ``batch_size``
    rows (:func:`wideth.train.noise.minibatch_noise`).
    """
    from .noise import minibatch_noise, noise_factor

    fn = _objective(model)
    _check_data(data)
    noise_factor(int(jax.numpy.shape(data[0])[0]), batch_size)  # validates batch_size
    if center is not None:  # its layout is checked against the parameters when probed
        _checks.params_tree("center", center)
    return lambda state, batch: minibatch_noise(fn, state.params, data, batch_size, center=center)


__all__ += ["top_subspace", "neural_collapse"]


def top_subspace(
    model: TrainStep | Callable[[Any, Any], jax.Array],
    data: Any = None,
    *,
    k: int,
    num_steps: int = 40,
) -> Probe:
    r"""Top-:math:`k` Hessian eigenpairs and the gradient's share of their span.

    Returns ``{"eigenvalues": (k,), "basis": (k, d), "grad_overlap": ()}``:
    the Lanczos top-:math:`k` eigenvalues of :math:`\nabla^2\mathcal L(\theta_t)`,
    their eigenvectors as flat orthonormal rows (the parameters' ravel order),
    and :math:`\|P_k\nabla\mathcal L\|^2/\|\nabla\mathcal L\|^2`
    (:func:`wideth.hessian.subspace_overlap`). Gur-Ari, Roberts & Dyer (2018)
    find this overlap large for :math:`k` = number of classes after a short
    initial phase, against :math:`k/d` for a random direction; compare the
    ``basis`` of two probe times with :func:`wideth.hessian.subspace_similarity`.

    Args:
      model: a :class:`~wideth.train.TrainStep` or ``loss_fn(params, batch)``.
      data: fixed data (default: the probed batch).
      k: number of eigenpairs.
      num_steps: Lanczos steps (``>= k``).

    References:
      Gur-Ari, Roberts & Dyer, `Gradient descent happens in a tiny subspace
      <https://arxiv.org/abs/1812.04754>`_, 2018.
    """
    fn = _objective(model)
    data = _check_data(data)
    k = _checks.positive_int("k", k)
    num_steps = _checks.positive_int("num_steps", num_steps)
    if num_steps < k:
        raise ValueError(f"num_steps: expected at least k={k}, got {num_steps}")

    def probe(state: TrainState, batch: Any) -> dict[str, jax.Array]:
        b = batch if data is None else data
        op = hessian.hessian(fn, state.params, b)
        evals, evecs = hessian.top_eigenpairs(op, k=k, num_steps=num_steps, key=_probe_key(state))
        basis = jax.vmap(op.space.ravel)(evecs)
        g = op.space.ravel(jax.grad(fn)(state.params, b))
        return {
            "eigenvalues": evals,
            "basis": basis,
            "grad_overlap": hessian.subspace_overlap(g, basis),
        }

    return probe


def neural_collapse(
    apply_fn: Any,
    features_fn: Callable[[Any, Any], jax.Array],
    data: Any,
    num_classes: int,
    *,
    weights_fn: Callable[[Any], jax.Array] | None = None,
) -> Probe:
    r"""NC1--NC4 (:func:`wideth.diagnostics.neural_collapse`) of the features on fixed data.

    Args:
      apply_fn: ``apply_fn(params, x)`` logits (or a module / TrainStep).
      features_fn: ``features_fn(params, x) -> (N, d)`` last-layer features
        (e.g. from :func:`wideth.functional.features`).
      data: ``(x, labels)`` with integer labels ``(N,)``.
      num_classes: :math:`C`.
      weights_fn: ``params -> (C, d)`` or ``(d, C)`` readout weights, for NC3.

    Returns:
      A probe whose value is a :class:`wideth.diagnostics.Collapse`.
    """
    from wideth.diagnostics.collapse import neural_collapse as _nc

    apply_fn = _apply(apply_fn)
    _checks.callable_("features_fn", features_fn, "a callable features_fn(params, x)")
    if weights_fn is not None:
        _checks.callable_("weights_fn", weights_fn, "a callable weights_fn(params)")
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise TypeError(f"data: expected a pair (x, labels), got {type(data).__name__}")
    _checks.arrays_tree("data", data)
    x, labels = data
    c = _checks.positive_int("num_classes", num_classes, minimum=2)
    _checks.class_labels("data (labels)", labels, c)

    def probe(state: TrainState, batch: Any) -> Any:
        p = state.params
        w = None if weights_fn is None else weights_fn(p)
        return _nc(features_fn(p, x), labels, c, weights=w, logits=apply_fn(p, x))

    return probe


def pl_ratio(
    model: TrainStep | Callable[[Any, Any], jax.Array],
    data: Any = None,
    *,
    loss_star: float = 0.0,
) -> Probe:
    r"""Local PL ratio :math:`\mu(\theta) = \|\nabla\mathcal L\|^2 / 2(\mathcal L - \mathcal L^*)`.

    :func:`wideth.optim.pl_constant` of the loss and squared gradient norm on
    the probed batch or on ``data`` (``nan`` where :math:`\mathcal L \le
    \mathcal L^\star`). See :mod:`wideth.diagnostics.conditioning` for the
    bounds it obeys.

    Args:
      model: a :class:`~wideth.train.TrainStep` or ``loss_fn(params, batch)``.
      data: fixed ``(x, y)``.
      loss_star: :math:`\mathcal L^\star` (0 for the square loss, the output-space
        infimum).
    """
    from wideth.optim import pl_constant

    fn = _objective(model)
    data = _check_data(data)
    loss_star = _checks.real("loss_star", loss_star)

    def probe(state: TrainState, batch: Any) -> jax.Array:
        value, g = jax.value_and_grad(fn)(state.params, batch if data is None else data)
        return pl_constant(value, optax.tree.norm(g, squared=True), loss_star)

    return probe


def ntk_spectrum(
    apply_fn: Any,
    x: Any = None,
    *,
    method: str = "auto",
    num_steps: int = 64,
) -> Probe:
    r"""Extremes and Gershgorin bound of the empirical NTK Gram :math:`K_t = J_tJ_t^\top`.

    Returns ``{"lam_min", "lam_max", "gershgorin"}``. The eigenvalues come from
    :func:`wideth.diagnostics.conditioning.ntk_extreme_eigenvalues`: dense
    ``eigh`` of the ``(nk, nk)`` Gram when ``nk`` is at most
    :data:`~wideth.diagnostics.conditioning.DENSE_MAX` (``method="auto"``), else
    ``num_steps`` matrix-free Lanczos steps (whose smallest Ritz value is an
    upper bound on :math:`\lambda_{\min}`). The Gershgorin bound
    :math:`\max_i\sum_j|K_{ij}|` needs the entries, so it is computed from the
    dense Gram when the method is dense and is ``nan`` otherwise.

    Args:
      apply_fn: ``apply_fn(params, x)``, an ``nnx.Module`` or a
        :class:`~wideth.train.TrainStep`.
      x: fixed inputs (default: the probed batch's inputs).
      method: ``"auto"``, ``"dense"`` or ``"lanczos"``.
      num_steps: Lanczos steps.
    """
    import jax.numpy as jnp

    from wideth.diagnostics import conditioning

    apply_fn = _apply(apply_fn)
    _checks.choice("method", method, ("auto", "dense", "lanczos"))
    num_steps = _checks.positive_int("num_steps", num_steps)
    if x is not None:
        x = _checks.array("x", x, min_ndim=1, min_rows=1, kind="number")

    def probe(state: TrainState, batch: Any) -> dict[str, jax.Array]:
        xs = batch[0] if x is None else x
        shapes = jax.tree.leaves(jax.eval_shape(apply_fn, state.params, xs))
        size = sum(int(math.prod(s.shape)) for s in shapes)
        dense = method == "dense" or (method == "auto" and size <= conditioning.DENSE_MAX)
        if dense:
            gram = conditioning.ntk_gram(apply_fn, state.params, xs)
            ev = jnp.linalg.eigvalsh(gram)
            return {
                "lam_min": ev[0],
                "lam_max": ev[-1],
                "gershgorin": conditioning.gershgorin_bound(gram),
            }
        lo, hi = conditioning.ntk_extreme_eigenvalues(
            apply_fn,
            state.params,
            xs,
            method="lanczos",
            num_steps=num_steps,
            key=_probe_key(state),
        )
        return {"lam_min": lo, "lam_max": hi, "gershgorin": jnp.full_like(hi, jnp.nan)}

    return probe


def output_hessian_norm(step: TrainStep, data: Any = None, *, num_steps: int = 20) -> Probe:
    r""":math:`\|\nabla^2_F\ell(F(\theta_t))\|_2`, the output-space Hessian norm of the loss.

    :func:`wideth.optim.loss_hessian_norm` (Lanczos on :math:`v \mapsto
    \nabla^2_F\ell\,v`) at the network outputs on the probed batch or on
    ``data``; :math:`1/n` for ``"mse"``.

    Args:
      step: a :class:`~wideth.train.TrainStep` (it holds ``apply_fn`` and the loss).
      data: fixed ``(x, y)``.
      num_steps: Lanczos steps.
    """
    from wideth.optim import loss_hessian_norm

    if not isinstance(step, TrainStep):
        raise TypeError(f"step: expected a wideth.train.TrainStep, got {type(step).__name__}")
    data = _check_data(data)
    num_steps = _checks.positive_int("num_steps", num_steps)

    def probe(state: TrainState, batch: Any) -> jax.Array:
        x, y = batch if data is None else data
        out = step.apply_fn(state.params, x)
        return loss_hessian_norm(
            lambda o: step.loss(o, y), out, key=_probe_key(state), num_steps=num_steps
        )

    return probe


__all__ += ["pl_ratio", "ntk_spectrum", "output_hessian_norm"]
