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
measured value, whether it holds and the margin.

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

from wideth.io import jsonable

__all__ = [
    "Bound",
    "Certificate",
    "progress",
    "taylor_change",
    "preservation",
    "count_bound",
    "distillation",
]


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
    """

    name: str
    bound: float
    measured: float
    holds: bool
    margin: float
    note: str = ""


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


def _upper(name: str, bound: float, measured: float, note: str = "") -> Bound:
    ok = bool(math.isfinite(measured) and measured <= bound)
    return Bound(name, float(bound), float(measured), ok, float(bound - measured), note)


def _lower(name: str, bound: float, measured: float, note: str = "") -> Bound:
    ok = bool(math.isfinite(measured) and measured >= bound)
    return Bound(name, float(bound), float(measured), ok, float(measured - bound), note)


def _scalar_loss(loss_fn: Callable, params: Any) -> jax.Array:
    value = loss_fn(params)
    if jnp.ndim(value) != 0:
        raise ValueError(f"loss_fn must return a scalar, got shape {jnp.shape(value)}")
    return value


def _check_same_tree(name: str, a: Any, b: Any) -> None:
    if jax.tree.structure(a) != jax.tree.structure(b):
        raise ValueError(f"{name} must have the same pytree structure as params")
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if x.shape != y.shape:
            raise ValueError(f"{name} leaf shape {y.shape} differs from params leaf {x.shape}")
        if not bool(jnp.all(jnp.isfinite(y))):
            raise ValueError(f"{name} contains NaN or inf")


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
      learning_rate: :math:`\eta` used for the step.
      key: PRNG key for Lanczos.
      lanczos_steps: Krylov dimension.

    Returns:
      Certificate with bounds ``step size <= 1/lambda_max`` and
      ``loss decrease >= delta``.
    """
    from wideth import hessian

    _check_same_tree("new_params", params, new_params)
    l0 = float(_scalar_loss(loss_fn, params))
    l1 = float(loss_fn(new_params))
    g = jax.grad(loss_fn)(params)
    g2 = float(sum(jnp.sum(x**2) for x in jax.tree.leaves(g)))
    n = sum(x.size for x in jax.tree.leaves(params))
    lam, _ = hessian.top_eigenpairs(loss_fn, params, k=1, num_steps=min(lanczos_steps, n), key=key)
    lam_max = float(lam[0])
    delta = 0.5 * learning_rate * g2
    bounds = (
        _upper("learning_rate * lambda_max", 1.0, learning_rate * lam_max, "descent lemma premise"),
        _lower("loss decrease", delta, l0 - l1, "eta ||grad||^2 / 2, valid when the premise holds"),
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
      rel_tolerance: allowed relative error of the prediction.

    Returns:
      Certificate with the prediction error bound; measurements hold the
      first- and second-order terms.
    """
    from wideth import hessian

    _check_same_tree("new_params", params, new_params)
    dw = jax.tree.map(lambda a, b: b - a, params, new_params)
    l0 = float(_scalar_loss(loss_fn, params))
    l1 = float(loss_fn(new_params))
    g = jax.grad(loss_fn)(params)
    first = float(
        sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(dw), strict=True))
    )
    hv = hessian.hvp(loss_fn, params, dw)
    second = 0.5 * float(
        sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(dw), jax.tree.leaves(hv), strict=True))
    )
    measured, predicted = l1 - l0, first + second
    err = abs(measured - predicted)
    scale = max(abs(measured), abs(predicted), 1e-12)
    bounds = (
        _upper(
            "|measured - predicted| loss change",
            rel_tolerance * scale,
            err,
            "second-order Taylor model (Optimal Brain Damage)",
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
      y: optional labels.
      eps: one tolerance for every layer, or one per layer.
      max_accuracy_drop: allowed accuracy drop.

    Returns:
      Certificate with one bound per layer (and the accuracy bound).
    """
    _check_same_tree("new_params", params, new_params)
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError("x contains NaN or inf")
    f0, f1 = list(features_fn(params, x)), list(features_fn(new_params, x))
    eps_l = [float(eps)] * len(f0) if np.isscalar(eps) else [float(e) for e in eps]
    if len(eps_l) != len(f0):
        raise ValueError(
            f"eps must be a scalar or have one entry per layer ({len(f0)}), got {len(eps_l)}"
        )
    rel = [float(jnp.linalg.norm(b - a) / jnp.linalg.norm(a)) for a, b in zip(f0, f1, strict=True)]
    bounds = [
        _upper(f"layer {i} relative change", e, r)
        for i, (e, r) in enumerate(zip(eps_l, rel, strict=True))
    ]
    pred0, pred1 = jnp.argmax(f0[-1], -1), jnp.argmax(f1[-1], -1)
    agree = float(jnp.mean(pred0 == pred1))
    m: dict[str, Any] = {"relative_change": rel, "output_agreement": agree}
    if y is not None:
        labels = jnp.argmax(y, -1) if jnp.ndim(y) == 2 else jnp.asarray(y)
        acc0, acc1 = float(jnp.mean(pred0 == labels)), float(jnp.mean(pred1 == labels))
        m.update(accuracy_before=acc0, accuracy_after=acc1)
        bounds.append(_upper("accuracy drop", max_accuracy_drop, acc0 - acc1))
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
      Certificate with ``N <= bound`` and ``every stage decreased by >= delta_k``.
    """
    l = np.asarray(losses, dtype=np.float64)
    d = np.asarray(deltas, dtype=np.float64)
    if l.ndim != 1 or d.ndim != 1 or l.size != d.size + 1:
        raise ValueError(f"losses must have len(deltas) + 1 entries, got {l.size} and {d.size}")
    if d.size == 0 or np.any(d <= 0):
        raise ValueError("deltas must be positive")
    n = d.size
    bound = (l[0] - loss_star) / d.min()
    achieved = int(np.sum(l[:-1] - l[1:] >= d))
    bounds = (
        _upper("number of stages", bound, n, "(L0 - L*) / min delta"),
        _lower("stages meeting their certified decrease", n, achieved),
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
      accuracy bound.
    """
    t, s = jnp.asarray(teacher_logits), jnp.asarray(student_logits)
    if t.shape != s.shape or t.ndim != 2:
        raise ValueError(
            f"teacher_logits and student_logits must both be (n, c), got {t.shape}, {s.shape}"
        )
    lt, ls = jax.nn.log_softmax(t, -1), jax.nn.log_softmax(s, -1)
    pt, ps = jnp.exp(lt), jnp.exp(ls)
    kl = jnp.maximum(jnp.sum(pt * (lt - ls), -1), 0.0)
    tv = 0.5 * jnp.sum(jnp.abs(pt - ps), -1)
    pinsker = jnp.sqrt(kl / 2)
    excess = float(jnp.max(tv - pinsker))
    bounds = [_upper("max over inputs of TV - sqrt(KL/2)", 1e-6, excess, "Pinsker")]
    m: dict[str, Any] = {
        "mean_kl": float(kl.mean()),
        "mean_tv": float(tv.mean()),
        "mean_pinsker": float(pinsker.mean()),
    }
    if labels is not None:
        y = jnp.argmax(labels, -1) if jnp.ndim(labels) == 2 else jnp.asarray(labels)
        idx = jnp.arange(t.shape[0])
        acc_t, acc_s = float(pt[idx, y].mean()), float(ps[idx, y].mean())
        bounds.append(
            _upper(
                "|Acc_T - Acc_S| (sampling classifiers)",
                float(tv.mean()),
                abs(acc_t - acc_s),
                "E[TV]",
            )
        )
        m.update(
            sampling_accuracy_teacher=acc_t,
            sampling_accuracy_student=acc_s,
            argmax_accuracy_teacher=float(jnp.mean(jnp.argmax(t, -1) == y)),
            argmax_accuracy_student=float(jnp.mean(jnp.argmax(s, -1) == y)),
        )
    return Certificate("distillation", tuple(bounds), m)
