r"""Conservation certificates for a modification :math:`\theta \to \theta'`.

Fine-tuning steps, magnitude pruning, quantisation and distillation change a
trained network. Each function here measures the change and states which
guarantee it is held to, by how much it holds, or that it fails:

* :func:`progress` -- the descent lemma: one gradient step with
  :math:`\eta \le 1/\lambda_{\max}` decreases the loss by at least
  :math:`\delta = \eta\|\nabla\mathcal L\|^2/2` (for an
  :math:`\lambda_{\max}`-smooth loss; :math:`\lambda_{\max}` by Lanczos).
* :func:`taylor_change` -- for pruning / quantisation, the second-order
  prediction :math:`\Delta\mathcal L \approx g^\top\Delta w + \tfrac12\Delta w^\top H\Delta w`
  (one Hessian-vector product) against the measured change (LeCun et al. 1990,
  Optimal Brain Damage; Hassibi & Stork 1993).
* :func:`preservation` -- per-layer representation change
  :math:`\|f_l(\theta') - f_l(\theta)\|_F / \|f_l(\theta)\|_F \le \varepsilon_l`,
  output (argmax) agreement and accuracy change.
* :func:`count_bound` -- an iterative schedule whose every stage decreases the
  loss by at least :math:`\delta` can run at most
  :math:`N \le (\mathcal L(\theta_0) - \mathcal L^*)/\delta` stages.
* :func:`distillation` -- :math:`\mathrm{KL}(p_T\|p_S)` per input and Pinsker's
  inequality :math:`\mathrm{TV} \le \sqrt{\mathrm{KL}/2}`; hence for the
  (sampling) classifiers :math:`|\mathrm{Acc}_T - \mathrm{Acc}_S| \le \mathbb E[\mathrm{TV}]`.

Each returns a :class:`Certificate`: a list of bounds with the bound, the
measured value, whether it holds and the margin. A bound holds when it does up
to a relative tolerance of 64 machine epsilons of the computation's dtype
(7.6e-6 in float32, 1.4e-14 in float64, :data:`TOLERANCE_EPS`): the measured
numbers are sums and means over inputs and parameters, rounded at every step,
so a bound that holds with equality in exact arithmetic (a student equal to its
teacher up to temperature, a schedule that meets its certified decrease
exactly) must not fail by the last bit. The tolerance used is stored in each
:class:`Bound`.

References:
  Nesterov, Introductory Lectures on Convex Optimization, 2004 (descent lemma, Lemma 1.2.3).
  LeCun, Denker, Solla, Optimal Brain Damage, 1990.
  Pinsker, Information and Information Stability of Random Variables, 1964;
  Tsybakov, Introduction to Nonparametric Estimation, 2009 (Lemma 2.5).
  Hinton, Vinyals, Dean, Distilling the Knowledge in a Neural Network, 2015.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wideth import _checks
from wideth.io import jsonable

__all__ = [
    "Bound",
    "Certificate",
    "progress",
    "taylor_change",
    "preservation",
    "count_bound",
    "distillation",
    "TOLERANCE_EPS",
]

#: Bounds hold up to ``TOLERANCE_EPS * eps(dtype) * max(|bound|, |measured|)``.
TOLERANCE_EPS = 64


@dataclasses.dataclass(frozen=True)
class Bound:
    """One checked inequality ``measured <= bound`` (or ``>=`` for guarantees).

    Attributes:
      name: what is bounded.
      bound: the guaranteed / allowed value.
      measured: the measured value.
      holds: whether the inequality holds.
      margin: ``bound - measured`` for upper bounds, ``measured - bound`` for lower.
      note: what the bound assumes.
      tolerance: the rounding allowance of the comparison (module docstring).
    """

    name: str
    bound: float
    measured: float
    holds: bool
    margin: float
    note: str = ""
    tolerance: float = 0.0


@dataclasses.dataclass(frozen=True)
class Certificate:
    """A set of bounds about one modification, plus the raw measurements."""

    kind: str
    bounds: tuple[Bound, ...]
    measurements: dict[str, Any]

    @property
    def holds(self) -> bool:
        """True when every bound holds."""
        return all(b.holds for b in self.bounds)

    @property
    def failed(self) -> list[str]:
        """Names of the bounds that fail."""
        return [b.name for b in self.bounds if not b.holds]

    def to_dict(self) -> dict[str, Any]:
        """Plain Python data (JSON-serialisable)."""
        return jsonable(dataclasses.asdict(self) | {"holds": self.holds, "failed": self.failed})

    def to_json(self, indent: int = 2) -> str:
        """The certificate as JSON."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_markdown(self) -> str:
        """A table of the bounds."""
        lines = [f"# {self.kind} certificate: {'HOLDS' if self.holds else 'FAILS'}", ""]
        lines += ["| bound | guaranteed | measured | holds | margin |", "|---|---|---|---|---|"]
        for b in self.bounds:
            row = [b.name, f"{b.bound:.4g}", f"{b.measured:.4g}", str(b.holds), f"{b.margin:.3g}"]
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines)


def _tolerance(dtype: Any, bound: float, measured: float) -> float:
    eps = float(np.finfo(np.dtype(dtype)).eps)
    scale = max(abs(bound), abs(measured)) if math.isfinite(measured) else abs(bound)
    return TOLERANCE_EPS * eps * scale


def _upper(name: str, bound: float, measured: float, note: str = "", dtype: Any = None) -> Bound:
    bound, measured = float(bound), float(measured)
    tol = _tolerance(np.float64 if dtype is None else dtype, bound, measured)
    ok = bool(math.isfinite(measured) and measured <= bound + tol)
    return Bound(name, bound, measured, ok, bound - measured, note, tol)


def _lower(name: str, bound: float, measured: float, note: str = "", dtype: Any = None) -> Bound:
    bound, measured = float(bound), float(measured)
    tol = _tolerance(np.float64 if dtype is None else dtype, bound, measured)
    ok = bool(math.isfinite(measured) and measured >= bound - tol)
    return Bound(name, bound, measured, ok, measured - bound, note, tol)


def _float_dtype(*trees: Any) -> Any:
    """The (lowest-precision) floating dtype the measured numbers were computed in."""
    dts = [jnp.result_type(a) for t in trees for a in jax.tree.leaves(t)]
    dts = [d for d in dts if jnp.issubdtype(d, jnp.floating)]
    return max(dts, key=lambda d: np.finfo(d).eps) if dts else jnp.result_type(float)


def _check_loss(loss_fn: Any, params: Any, new_params: Any) -> None:
    _checks.callable_("loss_fn", loss_fn, "a callable loss_fn(params) -> scalar")
    _checks.params_tree("params", params)
    _checks.tree_like("new_params", new_params, params)
    _checks.scalar_output("loss_fn", loss_fn, params, what="loss_fn(params)")


def progress(
    loss_fn: Callable[[Any], jax.Array],
    params: Any,
    new_params: Any,
    learning_rate: float,
    key: jax.Array,
    lanczos_steps: int = 30,
) -> Certificate:
    r"""Descent-lemma certificate for a step :math:`\theta' = \theta - \eta\nabla\mathcal L`.

    .. math::

        \eta \le 1/\lambda_{\max} \;\Rightarrow\;
        \mathcal L(\theta) - \mathcal L(\theta')
        \ge \delta = \tfrac{\eta}{2}\|\nabla\mathcal L(\theta)\|^2 .

    :math:`\lambda_{\max}` is the top Hessian eigenvalue at :math:`\theta`
    (Lanczos), a local stand-in for the smoothness constant.

    Args:
      loss_fn: ``params -> scalar`` loss.
      params: :math:`\theta`.
      new_params: :math:`\theta'` after the step.
      learning_rate: :math:`\eta > 0` used for the step.
      key: PRNG key for Lanczos (``None``: ``jax.random.key(0)``).
      lanczos_steps: Krylov dimension.

    Returns:
      Certificate with bounds ``step size <= 1/lambda_max`` and
      ``loss decrease >= delta``.

    Raises:
      ValueError / TypeError: ``loss_fn`` not a scalar loss of ``params``,
        ``new_params`` not laid out like ``params`` or not finite,
        ``learning_rate <= 0``, bad ``key`` or ``lanczos_steps``.
    """
    from wideth import hessian

    _check_loss(loss_fn, params, new_params)
    learning_rate = float(_checks.scalar("learning_rate", learning_rate, 0.0, low_open=True))
    key = _checks.prng_key("key", key, allow_none=True)
    lanczos_steps = _checks.positive_int("lanczos_steps", lanczos_steps)
    dtype = _float_dtype(params)
    l0 = float(loss_fn(params))
    l1 = float(loss_fn(new_params))
    g = jax.grad(loss_fn)(params)
    g2 = float(optax.tree.norm(g, squared=True))  # sum |g|^2, also for complex leaves
    lam_max = float(hessian.sharpness(loss_fn, params, num_steps=lanczos_steps, key=key))
    delta = 0.5 * learning_rate * g2
    bounds = (
        _upper(
            "learning_rate * lambda_max",
            1.0,
            learning_rate * lam_max,
            "descent lemma premise",
            dtype,
        ),
        _lower(
            "loss decrease",
            delta,
            l0 - l1,
            "eta ||grad||^2 / 2, valid when the premise holds",
            dtype,
        ),
    )
    m = {
        "loss_before": l0,
        "loss_after": l1,
        "grad_norm_sq": g2,
        "lambda_max": lam_max,
        "learning_rate": learning_rate,
        "delta": delta,
    }
    return Certificate("progress", bounds, m)


def taylor_change(
    loss_fn: Callable[[Any], jax.Array],
    params: Any,
    new_params: Any,
    rel_tolerance: float = 0.25,
) -> Certificate:
    r"""Second-order prediction of the loss change of a modification (pruning, quantisation).

    .. math::

        \Delta\mathcal L_{\rm pred} = g^\top\Delta w + \tfrac12\,\Delta w^\top H\,\Delta w,
        \qquad \Delta w = \theta' - \theta,

    with one Hessian-vector product (no Hessian is formed). The bound is
    :math:`|\Delta\mathcal L - \Delta\mathcal L_{\rm pred}| \le` ``rel_tolerance``
    :math:`\cdot\max(|\Delta\mathcal L|, |\Delta\mathcal L_{\rm pred}|)`; it fails
    when the modification is too large for the quadratic model.

    Args:
      loss_fn: ``params -> scalar`` loss.
      params: :math:`\theta`.
      new_params: :math:`\theta'`.
      rel_tolerance: allowed relative error of the prediction (>= 0).

    Returns:
      Certificate with the prediction error bound; measurements hold the
      first- and second-order terms.

    Raises:
      ValueError / TypeError: as :func:`progress`; ``rel_tolerance < 0``.
    """
    from wideth import hessian

    _check_loss(loss_fn, params, new_params)
    rel_tolerance = float(_checks.scalar("rel_tolerance", rel_tolerance, 0.0))
    dtype = _float_dtype(params)
    dw = optax.tree.sub(new_params, params)
    l0 = float(loss_fn(params))
    l1 = float(loss_fn(new_params))
    g = jax.grad(loss_fn)(params)
    # Re sum(g . dw), no conjugate: jax.grad of a real loss of z = x + iy is
    # d_x L - i d_y L, so Re[(d_x L - i d_y L)(c + i d)] is the directional derivative
    # along dw = c + i d (jnp.vdot would conjugate g and get it wrong for complex params);
    # likewise Re sum(dw . Hdw) with Hdw a JVP of jax.grad is the second derivative.
    first = float(jnp.real(optax.tree.vdot(optax.tree.conj(g), dw)))
    hv = hessian.hvp(loss_fn, params, dw)
    second = 0.5 * float(jnp.real(optax.tree.vdot(optax.tree.conj(dw), hv)))
    measured, predicted = l1 - l0, first + second
    err = abs(measured - predicted)
    scale = max(abs(measured), abs(predicted), 1e-12)
    bounds = (
        _upper(
            "|measured - predicted| loss change",
            rel_tolerance * scale,
            err,
            "second-order Taylor model (Optimal Brain Damage)",
            dtype,
        ),
    )
    m = {
        "loss_before": l0,
        "loss_after": l1,
        "measured_change": measured,
        "predicted_change": predicted,
        "first_order": first,
        "second_order": second,
        "relative_error": err / scale,
    }
    return Certificate("taylor", bounds, m)


def preservation(
    features_fn: Callable[[Any, jax.Array], Sequence[jax.Array]],
    params: Any,
    new_params: Any,
    x: jax.Array,
    y: jax.Array | None = None,
    eps: float | Sequence[float] = 0.1,
    max_accuracy_drop: float = 0.02,
) -> Certificate:
    r"""Representation-preservation certificate.

    For each layer :math:`l` (``features_fn(params, x)`` returns the list of
    per-layer representations, the last being the outputs)

    .. math:: \rho_l = \|f_l(\theta') - f_l(\theta)\|_F / \|f_l(\theta)\|_F \le \varepsilon_l ,

    plus the fraction of inputs whose argmax output is unchanged and, with
    labels ``y`` (one-hot or integer), the accuracy drop
    :math:`\le` ``max_accuracy_drop``.

    Args:
      features_fn: ``(params, x) -> [f_1, ..., f_L]``.
      params: :math:`\theta`.
      new_params: :math:`\theta'`.
      x: inputs.
      y: optional labels: one-hot ``(n, c)`` or integers ``(n,)`` in ``[0, c)``.
      eps: one tolerance for every layer, or one per layer (>= 0).
      max_accuracy_drop: allowed accuracy drop, in ``[0, 1]``.

    Returns:
      Certificate with one bound per layer (and the accuracy bound). A layer
      whose representation is exactly zero at :math:`\theta` has relative
      change 0 if it stays zero and ``inf`` otherwise.

    Raises:
      ValueError / TypeError: ``features_fn`` failing on ``(params, x)`` or not
        returning a list of arrays (checked abstractly first), ``new_params``
        not like ``params``, NaN/inf in ``x``, labels of the wrong shape or
        range, negative tolerances.
    """
    _checks.callable_("features_fn", features_fn, "a callable features_fn(params, x) -> [f_1..f_L]")
    _checks.params_tree("params", params)
    _checks.tree_like("new_params", new_params, params)
    x = _checks.array("x", x, min_ndim=1, min_rows=1, kind="number")
    shapes = _checks.evaluate_shape(
        "features_fn", features_fn, params, x, what="features_fn(params, x)"
    )
    if not isinstance(shapes, list | tuple) or not shapes:
        raise TypeError(
            "features_fn: expected a non-empty list of per-layer arrays [f_1, ..., f_L], got "
            f"{type(shapes).__name__}"
        )
    if np.ndim(eps) == 0:
        eps_l = [float(_checks.scalar("eps", eps, 0.0))] * len(shapes)
    else:
        eps_a = _checks.host_array("eps", eps, ndim=1, kind="real")
        if eps_a.shape[0] != len(shapes):
            raise ValueError(
                f"eps: expected a scalar or one entry per layer ({len(shapes)}), got "
                f"{eps_a.shape[0]}"
            )
        _checks.in_range("eps", eps_a, 0.0)
        eps_l = [float(e) for e in eps_a]
    max_accuracy_drop = float(_checks.scalar("max_accuracy_drop", max_accuracy_drop, 0.0, 1.0))
    out_shape = shapes[-1].shape
    if y is not None:
        labels = _labels("y", y, x.shape[0], out_shape[-1] if len(out_shape) > 1 else 1)
    dtype = _float_dtype(params)
    f0, f1 = list(features_fn(params, x)), list(features_fn(new_params, x))
    rel = [_relative_change(a, b) for a, b in zip(f0, f1, strict=True)]
    bounds = [
        _upper(f"layer {i} relative change", e, r, dtype=dtype)
        for i, (e, r) in enumerate(zip(eps_l, rel, strict=True))
    ]
    pred0, pred1 = jnp.argmax(f0[-1], -1), jnp.argmax(f1[-1], -1)
    agree = float(jnp.mean(pred0 == pred1))
    m: dict[str, Any] = {"relative_change": rel, "output_agreement": agree}
    if y is not None:
        acc0, acc1 = float(jnp.mean(pred0 == labels)), float(jnp.mean(pred1 == labels))
        m.update(accuracy_before=acc0, accuracy_after=acc1)
        bounds.append(_upper("accuracy drop", max_accuracy_drop, acc0 - acc1, dtype=dtype))
    return Certificate("preservation", tuple(bounds), m)


def count_bound(
    losses: Sequence[float], deltas: Sequence[float], loss_star: float = 0.0
) -> Certificate:
    r"""Bound on the number of stages of an iterative schedule.

    If every stage :math:`k` is certified to decrease the loss by at least
    :math:`\delta_k \ge \delta = \min_k \delta_k > 0`, then

    .. math:: N \le (\mathcal L(\theta_0) - \mathcal L^*) / \delta .

    Args:
      losses: loss before the first stage and after each stage (length N + 1).
      deltas: certified decrease of each stage (length N).
      loss_star: lower bound on the loss (0 for MSE / cross-entropy).

    Returns:
      Certificate with ``N <= bound`` and ``every stage decreased by >= delta_k``
      (each stage up to the rounding tolerance of the inputs' dtype).

    Raises:
      ValueError / TypeError: non-finite or mis-sized ``losses``/``deltas``,
        non-positive ``deltas``, ``loss_star`` above a measured loss.
    """
    l_in = _checks.host_array("losses", losses, ndim=1, kind="real")
    d_in = _checks.host_array("deltas", deltas, ndim=1, kind="real")
    # Rounding of the inputs' own dtype (Python floats are float64).
    dtype = max(
        (np.result_type(a.dtype, np.float32) for a in (l_in, d_in)),
        key=lambda t: np.finfo(t).eps,
    )
    l, d = l_in.astype(np.float64), d_in.astype(np.float64)
    if d.size == 0:
        raise ValueError("deltas: expected at least one stage, got an empty sequence")
    if l.size != d.size + 1:
        raise ValueError(f"losses: expected len(deltas) + 1 = {d.size + 1} entries, got {l.size}")
    if np.any(d <= 0):
        raise ValueError(f"deltas: expected positive certified decreases, got min {d.min():g}")
    loss_star = float(_checks.scalar("loss_star", loss_star))
    if loss_star > l.min():
        raise ValueError(
            f"loss_star: expected a lower bound on the loss, got {loss_star:g} above the "
            f"smallest loss {l.min():g}"
        )
    n = d.size
    bound = (l[0] - loss_star) / d.min()
    tol = TOLERANCE_EPS * float(np.finfo(dtype).eps) * np.maximum(np.abs(l[:-1]), d)
    achieved = int(np.sum(l[:-1] - l[1:] >= d - tol))
    bounds = (
        _upper("number of stages", bound, n, "(L0 - L*) / min delta", dtype),
        _lower("stages meeting their certified decrease", n, achieved, dtype=dtype),
    )
    return Certificate("count", bounds, {"stages": n, "bound": bound, "min_delta": float(d.min())})


def distillation(
    teacher_logits: jax.Array, student_logits: jax.Array, labels: jax.Array | None = None
) -> Certificate:
    r"""KL / Pinsker certificate for distilling a teacher into a student.

    Per input, with :math:`p_T, p_S` the softmax outputs,

    .. math::

        \mathrm{TV}(p_T, p_S) = \tfrac12\|p_T - p_S\|_1 \le \sqrt{\mathrm{KL}(p_T\|p_S)/2}
        \quad\text{(Pinsker)},

    and for the sampling classifiers (accuracy :math:`\mathbb E_x[p(y_x\mid x)]`)
    :math:`|\mathrm{Acc}_T - \mathrm{Acc}_S| \le \mathbb E_x[\mathrm{TV}] \le
    \mathbb E_x\sqrt{\mathrm{KL}/2}`. The argmax accuracies are reported too
    (no guarantee covers them).

    Args:
      teacher_logits: ``(n, c)``.
      student_logits: ``(n, c)``.
      labels: optional one-hot ``(n, c)`` or integer ``(n,)`` labels.

    Returns:
      Certificate with Pinsker's bound (worst input) and, with labels, the
      accuracy bound (which holds with equality when the student only sharpens
      or flattens the teacher's one-hot-aligned outputs; the dtype-aware
      tolerance of the module docstring lets it pass).

    Raises:
      ValueError / TypeError: logits not finite real ``(n, c)`` arrays of one
        shape; labels of the wrong shape or outside ``[0, c)``.
    """
    t = _checks.array("teacher_logits", teacher_logits, ndim=2, min_rows=1, kind="real")
    s = _checks.array("student_logits", student_logits, ndim=2, kind="real")
    if t.shape != s.shape:
        raise ValueError(
            f"student_logits: expected the shape of teacher_logits {tuple(t.shape)}, got "
            f"{tuple(s.shape)}"
        )
    if labels is not None:
        y = _labels("labels", labels, t.shape[0], t.shape[1])
    dtype = _float_dtype(t, s)
    lt, ls = jax.nn.log_softmax(t, -1), jax.nn.log_softmax(s, -1)
    pt, ps = jnp.exp(lt), jnp.exp(ls)
    kl = jnp.maximum(jnp.sum(pt * (lt - ls), -1), 0.0)
    tv = 0.5 * jnp.sum(jnp.abs(pt - ps), -1)
    pinsker = jnp.sqrt(kl / 2)
    excess = float(jnp.max(tv - pinsker))
    bounds = [_upper("max over inputs of TV - sqrt(KL/2)", 1e-6, excess, "Pinsker", dtype)]
    m: dict[str, Any] = {
        "mean_kl": float(kl.mean()),
        "mean_tv": float(tv.mean()),
        "mean_pinsker": float(pinsker.mean()),
    }
    if labels is not None:
        idx = jnp.arange(t.shape[0])
        acc_t, acc_s = float(pt[idx, y].mean()), float(ps[idx, y].mean())
        bounds.append(
            _upper(
                "|Acc_T - Acc_S| (sampling classifiers)",
                float(tv.mean()),
                abs(acc_t - acc_s),
                "E[TV]",
                dtype,
            )
        )
        m.update(
            sampling_accuracy_teacher=acc_t,
            sampling_accuracy_student=acc_s,
            argmax_accuracy_teacher=float(jnp.mean(jnp.argmax(t, -1) == y)),
            argmax_accuracy_student=float(jnp.mean(jnp.argmax(s, -1) == y)),
        )
    return Certificate("distillation", tuple(bounds), m)


def _labels(name: str, labels: Any, n: int, c: int) -> jax.Array:
    """Integer class indices ``(n,)`` from integer labels or one-hot ``(n, c)`` rows."""
    lab = _checks.array(name, labels, ndim=(1, 2), kind="real")
    if lab.shape[0] != n:
        raise ValueError(
            f"{name}: expected {n} rows like the outputs, got {_checks.shape_str(lab)}"
        )
    if lab.ndim == 2:
        if lab.shape[1] != c:
            raise ValueError(
                f"{name}: expected one-hot rows of {c} classes, got {_checks.shape_str(lab)}"
            )
        return jnp.argmax(lab, -1)
    _checks.class_labels(name, lab, c)
    return lab


def _relative_change(a: jax.Array, b: jax.Array) -> float:
    na, nd = float(jnp.linalg.norm(a)), float(jnp.linalg.norm(b - a))
    if na == 0.0:
        return 0.0 if nd == 0.0 else math.inf
    return nd / na
