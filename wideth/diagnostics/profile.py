r"""Profile certificates: is this network in the *library*, *tame* or *wild* regime?

A certificate is measured evidence, not a guess. On a probe batch it measures

1. **Conditioning** of the empirical NTK Gram :math:`\Theta` (the quantity that
   sets the linear rate under the PL condition, :math:`\mu = \lambda_{\min}(\Theta)`
   for MSE): :math:`\kappa = \lambda_{\max}/\lambda_{\min}`; library
   :math:`\kappa < 10^2`, tame :math:`10^2 \le \kappa \le 10^4`, wild beyond.
   Also reported: the negative spectral mass of the loss Hessian
   (stochastic Lanczos quadrature, Ghorbani et al. 2019).
2. **Hessian conditioning** (``hessian_conditioning``), from the extreme
   eigenvalues of the loss Hessian :math:`H` by Lanczos (:func:`hessian_summary`,
   never forming :math:`H`): :math:`\lambda_{\max}` (= the local smoothness
   :math:`L`), :math:`\lambda_2`, the gap :math:`\lambda_1 - \lambda_2`,
   :math:`\lambda_{\min}` with its sign and
   :math:`\kappa_H = \lambda_{\max}/|\lambda_{\min}|`. Graded on the relative
   negative curvature :math:`\rho = -\lambda_{\min}/\lambda_{\max}` when
   :math:`\lambda_{\min} < 0`: library :math:`\rho < 0.1`, tame up to 1, wild
   beyond. Rationale: for MSE, :math:`H = J^\top J/n + \frac1n\sum_i r_i\nabla^2 f_i`;
   the first (Gauss--Newton) term is positive semi-definite, so negative
   curvature comes from the residual term, which is :math:`O(1/\sqrt{m})` of
   the first at width :math:`m` in the kernel regime (Liu, Zhu, Belkin 2020,
   transition to linearity; measured here: :math:`\rho` = 0.23 at width 64
   and 0.12 at width 256 on digits). :math:`\rho < 0.1` keeps the quadratic
   model convex to 10%; :math:`\rho > 1` means the most negative direction
   is steeper than the most positive one, a saddle region (Dauphin et al.
   2014) where at the probe step :math:`\eta = 1/\lambda_{\max}` a
   perturbation along it grows by :math:`1 + \rho > 2` per step. When
   :math:`\lambda_{\min} \ge 0`: with fewer parameters than outputs
   (:math:`d < nk`) :math:`\kappa_H` is graded like :math:`\kappa` (GD on a
   strongly convex quadratic contracts by :math:`1 - 1/\kappa_H` per step,
   Nesterov 2004, Thm 2.1.15); with :math:`d \ge nk` the Hessian has at least
   :math:`d - nk` near-zero eigenvalues, its :math:`\kappa_H` is infinite
   without slowing training and criterion 1 grades the rate (library).
   :math:`\lambda_{\max} \le 0` or non-finite is wild.
3. **Gradient noise** (``gradient_noise``, :func:`gradient_noise`), from the
   per-example gradient covariance :math:`\Sigma` on the probe batch of
   :math:`N` examples: :math:`\operatorname{Var}[\nabla\ell] = \operatorname{tr}\Sigma`,
   :math:`\|\Sigma\|_2` (Lanczos on a matrix-free product), the effective
   rank :math:`\operatorname{tr}\Sigma/\|\Sigma\|_2` and the signal-to-noise
   ratio :math:`\|\bar g\|^2/\operatorname{tr}\Sigma`. Graded on the simple
   noise scale :math:`B_{\rm noise} = \operatorname{tr}\Sigma/\|\bar g\|^2`
   (McCandlish et al. 2018): library :math:`B_{\rm noise} < N/2`, tame up to
   :math:`N`, wild beyond. The mean of :math:`N` per-example gradients has
   signal-to-noise ratio :math:`N/B_{\rm noise}`, so beyond :math:`N` the
   probe batch's gradient is dominated by its sampling noise; below
   :math:`N/2` minibatches of half the batch are still signal-dominated. Away
   from a minimum only (at one, :math:`\bar g \to 0` and every model is
   noise-dominated). Needs :math:`N \ge 2`; otherwise left out.
4. **Gradient flow**:
   :math:`R_l = \|\nabla_{\theta_l}\mathcal L\| / \|\nabla_{\theta_L}\mathcal L\|`
   per layer (a layer is the group of leaves sharing a parent in the parameter
   pytree, in flattening order; :math:`L` is the last). :math:`\min_l R_l > 0.1`
   library, :math:`0.01`-:math:`0.1` tame, :math:`< 0.01` wild (vanishing);
   :math:`\max_l R_l > 100` is wild too (exploding).
5. **NTK drift** over a short probe run of gradient descent at step
   :math:`\eta = 1/\lambda_{\max}(\nabla^2\mathcal L)`:
   :math:`\|\Theta_T - \Theta_0\|_F / \|\Theta_0\|_F` below 0.1 library (lazy),
   up to 0.5 tame, above or non-finite wild.
6. **Loss-curve shape** of the probe run, from a least-squares fit of
   :math:`\log \mathcal L_t = a - r t`: exponential decay (:math:`r > 0`,
   :math:`R^2 \ge 0.9`, at most 10% of steps going up) is library; divergence
   (non-finite or final loss above the initial one) or oscillation (more than
   40% of steps going up) is wild; anything else (sublinear, plateaus) tame.
7. **Width scaling** (optional): the slope :math:`s` of log drift against log
   width. In the kernel regime the relative NTK change under gradient descent
   is at most of order :math:`n^{-1/2}` (Jacot et al. 2018; Lee et al. 2019)
   and of order :math:`n^{-1}` at leading order (Dyer & Gur-Ari 2019; Huang &
   Yau 2019), so :math:`s \le -1/2 + 0.2` is library; :math:`|s| \le 0.2`
   (a drift that does not shrink with width) is mean-field / feature learning
   (tame); a drift that grows with width (:math:`s > 0.2`) is wild, and so is
   a slope between the two bands.

The overall regime is the worst verdict. The certificate also carries the
architecture (:func:`architecture`: depth, widths, activation, parameter count),
so that the tuple (regime, criteria, measurements, architecture) says what
was certified. A wild certificate names the
pathology, where it sits and a remedy; a tame one suggests an adaptation.

References:
  Jacot, Gabriel, Hongler, Neural Tangent Kernel, 2018 (NTK and its drift).
  Liu, Zhu, Belkin, Loss landscapes and optimization in over-parameterized
  non-linear systems and neural networks, 2022 (PL condition and NTK conditioning).
  Schoenholz et al., Deep Information Propagation, 2017 (vanishing gradients, depth scales).
  Ghorbani, Krishnan, Xiao, An Investigation into Neural Net Optimization via
  Hessian Eigenvalue Density, 2019 (negative spectral mass).
  Chizat, Oyallon, Bach, On Lazy Training in Differentiable Programming, 2019.
  Liu, Zhu, Belkin, On the linearity of large non-linear models: when and why
  the tangent kernel is constant, 2020 (the Hessian's residual term).
  Dauphin et al., Identifying and attacking the saddle point problem in
  high-dimensional non-convex optimization, 2014.
  McCandlish, Kaplan, Amodei et al., An Empirical Model of Large-Batch Training,
  2018 (simple noise scale).
  Nesterov, Introductory Lectures on Convex Optimization, 2004.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wideth import _checks
from wideth.functional import as_apply
from wideth.io import jsonable

__all__ = [
    "ProfileCertificate",
    "architecture",
    "gradient_noise",
    "gradient_ratios",
    "hessian_summary",
    "loss_curve_shape",
    "profile",
]

REGIMES = ("library", "tame", "wild")
_RANK = {r: i for i, r in enumerate(REGIMES)}

#: Thresholds of every criterion (documented in the module docstring).
THRESHOLDS = {
    "kappa": (1e2, 1e4),
    "negative_curvature": (0.1, 1.0),
    "hessian_kappa": (1e2, 1e4),
    "noise_scale_fraction": (0.5, 1.0),
    "grad_ratio_min": (0.1, 0.01),
    "grad_ratio_max": 100.0,
    "drift": (0.1, 0.5),
    "curve_r2": 0.9,
    "curve_up_fraction": (0.1, 0.4),
    "width_slope_tolerance": 0.2,
}


@dataclasses.dataclass(frozen=True)
class ProfileCertificate:
    """Measured evidence for the regime of a network on a probe batch.

    Attributes:
      regime: ``"library"``, ``"tame"`` or ``"wild"`` (the worst criterion).
      criteria: per criterion, its verdict and the reason in words.
      measurements: every measured number (JSON-serialisable).
      pathology: for wild certificates, ``{"pathology", "location", "remedy"}``.
      adaptation: for tame certificates, the suggested adaptation.
      architecture: depth, widths, activation and parameter count
        (:func:`architecture`); with the regime, criteria and measurements it
        is the certificate tuple.
    """

    regime: str
    criteria: dict[str, dict[str, str]]
    measurements: dict[str, Any]
    pathology: dict[str, str] | None = None
    adaptation: str | None = None
    architecture: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The certificate as plain Python data."""
        return jsonable(dataclasses.asdict(self))

    def to_json(self, indent: int = 2) -> str:
        """The certificate as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_markdown(self) -> str:
        """A human-readable summary: verdict table and evidence."""
        lines = [f"# Profile certificate: **{self.regime.upper()}**", ""]
        lines += ["| criterion | verdict | reason |", "|---|---|---|"]
        for name, c in self.criteria.items():
            lines.append(f"| {name} | {c['verdict']} | {c['reason']} |")
        if self.pathology:
            p = self.pathology
            lines += ["", f"Pathology: {p['pathology']} ({p['location']}). Remedy: {p['remedy']}."]
        if self.adaptation:
            lines += ["", f"Suggested adaptation: {self.adaptation}."]
        if self.architecture:
            a = self.architecture
            parts = [f"{k} {a[k]}" for k in _ARCH_KEYS if a.get(k) is not None]
            lines += ["", f"Architecture: {', '.join(parts)}."]
        rows = [(label, self.measurements[k]) for k, label in _EVIDENCE if k in self.measurements]
        if rows:
            lines += ["", "| evidence | value |", "|---|---|"]
            lines += [f"| {label} | {_fmt(v)} |" for label, v in rows]
        return "\n".join(lines)


#: Architecture entries printed by :meth:`ProfileCertificate.to_markdown`, in order.
_ARCH_KEYS = (
    "model",
    "depth",
    "widths",
    "in_dim",
    "out_dim",
    "activation",
    "parameterization",
    "num_parameters",
)
#: Measurements printed by :meth:`ProfileCertificate.to_markdown`: (key, label).
_EVIDENCE = (
    ("ntk_condition_number", "NTK kappa = lambda_max/lambda_min"),
    ("hessian_lambda_max", "Hessian lambda_max = smoothness L"),
    ("hessian_lambda_2", "Hessian lambda_2"),
    ("hessian_spectral_gap", "Hessian spectral gap lambda_1 - lambda_2"),
    ("hessian_lambda_min", "Hessian lambda_min"),
    ("hessian_lambda_min_sign", "sign of Hessian lambda_min"),
    ("hessian_condition_number", "Hessian kappa_H = lambda_max/|lambda_min|"),
    ("hessian_negative_curvature", "negative curvature -lambda_min/lambda_max"),
    ("hessian_negative_mass", "Hessian negative spectral mass (SLQ)"),
    ("gradient_variance", "Var[grad L] = tr Sigma"),
    ("sigma_norm", "||Sigma|| (top eigenvalue)"),
    ("gradient_effective_rank", "effective rank tr Sigma/||Sigma||"),
    ("gradient_snr", "gradient SNR |g|^2/tr Sigma"),
    ("gradient_noise_scale", "noise scale B_noise = tr Sigma/|g|^2"),
)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _validate(
    apply_fn: Callable, params: Any, x: Any, y: Any, loss: str | Callable
) -> tuple[jax.Array, jax.Array, Callable]:
    """Check data, the network's output shape and the loss before any work; returns (x, y, loss)."""
    from wideth.losses import get_loss

    _checks.params_tree("params", params)
    x = _checks.array("x", x, min_ndim=1, min_rows=1, kind="number")
    y = _checks.array("y", y, ndim=(1, 2), kind="real")
    if y.ndim == 1:
        y = y[:, None]
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"y: expected the {x.shape[0]} rows of x, got {_checks.shape_str(y)}")
    out = _checks.evaluate_shape(
        "apply_fn_or_module", apply_fn, params, x[:1], what="apply_fn(params, x)"
    )
    if not hasattr(out, "shape") or tuple(out.shape[1:]) != tuple(y.shape[1:]):
        raise ValueError(
            f"y: expected rows shaped like the network's outputs (n, "
            f"{', '.join(map(str, getattr(out, 'shape', ())[1:]))}), got {_checks.shape_str(y)}"
        )
    loss_out = get_loss(loss)
    _checks.scalar_output("loss", loss_out, out, y[:1], what="loss(outputs, y)")
    return x, y, loss_out


def _layer_groups(params: Any) -> list[tuple[str, list[int]]]:
    """Group leaves by their parent path; returns (name, leaf indices) in order."""
    paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    groups: dict[str, list[int]] = {}
    for i, path in enumerate(paths):
        path = tuple(path)
        # Flax NNX variables add a trailing ``.value``: it is not a level of the model.
        while path and getattr(path[-1], "name", None) == "value":
            path = path[:-1]
        name = jax.tree_util.keystr(path[:-1]) or jax.tree_util.keystr(path)
        groups.setdefault(name, []).append(i)
    return list(groups.items())


def gradient_ratios(grads: Any) -> dict[str, float]:
    r"""Per-layer gradient norms relative to the last layer.

    .. math:: R_l = \|\nabla_{\theta_l}\mathcal L\|_2 / \|\nabla_{\theta_L}\mathcal L\|_2

    Args:
      grads: gradient pytree; a layer is the set of leaves sharing a parent.

    Returns:
      ``{layer name: R_l}`` in flattening order (the last entry is 1; every
      entry is NaN when the last layer's gradient is exactly zero, where the
      ratios are undefined).

    Raises:
      ValueError / TypeError: no leaves, non-floating or non-finite leaves.
    """
    _checks.params_tree("grads", grads)
    leaves = jax.tree.leaves(grads)
    norms = []
    groups = _layer_groups(grads)
    for _, idx in groups:
        norms.append(
            math.sqrt(sum(float(jnp.sum(leaves[i].astype(jnp.float32) ** 2)) for i in idx))
        )
    last = norms[-1] if norms[-1] > 0 else float("nan")
    return {name: n / last for (name, _), n in zip(groups, norms, strict=True)}


def loss_curve_shape(losses: Sequence[float]) -> dict[str, Any]:
    r"""Classify a loss curve by fitting :math:`\log\mathcal L_t = a - r t`.

    Args:
      losses: the loss at each step of a run.

    Returns:
      dict with ``rate`` (:math:`r`), ``r2`` of the fit, ``up_fraction``
      (fraction of steps where the loss went up), ``ratio`` (final / initial)
      and ``verdict`` in {library, tame, wild} (thresholds in the module docstring).
      A curve with a NaN/inf entry is a divergence (``"wild"``); one that
      reaches exactly zero has converged (``"library"``).

    Raises:
      ValueError / TypeError: not a 1-d sequence of at least 3 real numbers, or
        a negative loss (the fit is on :math:`\log\mathcal L`, and the
        thresholds assume a loss bounded below by 0).
    """
    l = _checks.host_array("losses", losses, ndim=1, kind="real", check_finite=False)
    l = l.astype(np.float64)
    if l.size < 3:
        raise ValueError(f"losses: expected at least 3 entries, got {l.size}")
    if np.any(l[np.isfinite(l)] < 0):
        raise ValueError(
            f"losses: expected non-negative losses (the fit is on log L), got min "
            f"{np.nanmin(l[np.isfinite(l)]):g}"
        )
    if not np.all(np.isfinite(l)) or np.any(l <= 0):
        finite = bool(np.all(np.isfinite(l)))
        verdict = "wild" if not finite else "library"  # zero loss: converged exactly
        return {
            "rate": float("nan"),
            "r2": float("nan"),
            "up_fraction": float("nan"),
            "ratio": float("nan") if not finite else 0.0,
            "verdict": verdict,
        }
    t = np.arange(l.size, dtype=np.float64)
    logl = np.log(l)
    slope, intercept = np.polyfit(t, logl, 1)
    resid = logl - (slope * t + intercept)
    ss_tot = float(np.sum((logl - logl.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else 0.0
    up = float(np.mean(np.diff(l) > 0))
    ratio = float(l[-1] / l[0])
    lo_up, hi_up = THRESHOLDS["curve_up_fraction"]
    if ratio > 1.0 or up > hi_up:
        verdict = "wild"
    elif -slope > 0 and r2 >= THRESHOLDS["curve_r2"] and up <= lo_up:
        verdict = "library"
    else:
        verdict = "tame"
    return {"rate": float(-slope), "r2": r2, "up_fraction": up, "ratio": ratio, "verdict": verdict}


def hessian_summary(
    loss_fn: Callable[[Any], jax.Array],
    params: Any,
    *,
    num_steps: int = 20,
    key: jax.Array | None = None,
) -> dict[str, float]:
    r"""Extreme eigenvalues of the loss Hessian by Lanczos, never forming :math:`H`.

    Runs :func:`wideth.hessian.top_eigenpairs` on the operator
    :func:`wideth.hessian.hessian` (Hessian-vector products, forward over
    reverse) for both ends of the spectrum and reports

    .. math::

        \kappa_H = \frac{\lambda_{\max}}{|\lambda_{\min}|},\qquad
        \operatorname{sign}\lambda_{\min},\qquad
        \rho = \frac{\max(0, -\lambda_{\min})}{\lambda_{\max}},\qquad
        \lambda_1 - \lambda_2,\qquad L = \lambda_{\max},\qquad
        \|H\|_2 = \max(|\lambda_{\max}|, |\lambda_{\min}|).

    :math:`L = \lambda_{\max}` is the local (one-sided) smoothness constant of
    the descent lemma :math:`\mathcal L(\theta - \eta g) \le \mathcal L(\theta)
    - \eta(1 - \eta L/2)\|g\|^2` near :math:`\theta`; :math:`\|H\|_2` the local
    Lipschitz constant of :math:`\nabla\mathcal L`. Ritz values are inside the
    spectrum, so with few steps :math:`\lambda_{\max}` is under- and
    :math:`\lambda_{\min}` over-estimated (both converge first, Kaniel--Paige);
    ``num_steps`` at least the dimension gives them to rounding.

    Args:
      loss_fn: ``loss_fn(params) -> scalar``.
      params: parameter pytree with at least 2 entries.
      num_steps: Lanczos steps per end (``>= 2``; clipped to the dimension).
      key: PRNG key of the Lanczos start vector (default ``jax.random.key(0)``).

    Returns:
      dict with ``lambda_max``, ``lambda_2``, ``lambda_min``, ``lambda_min_sign``
      (-1, 0 or 1), ``spectral_gap`` (:math:`\lambda_1 - \lambda_2`),
      ``condition_number`` (:math:`\kappa_H`, ``inf`` when :math:`\lambda_{\min} = 0`),
      ``negative_curvature`` (:math:`\rho`, ``inf`` when :math:`\lambda_{\max} \le 0`
      and :math:`\lambda_{\min} < 0`), ``smoothness`` (:math:`L`) and ``hessian_norm``.

    Raises:
      ValueError / TypeError: a ``loss_fn`` that is not callable or not scalar,
        bad ``params`` (fewer than 2 entries, non-floating, NaN/inf), bad
        ``num_steps`` or ``key``.

    Examples:
      >>> import jax.numpy as jnp
      >>> s = hessian_summary(lambda p: 0.5 * jnp.sum(jnp.array([4.0, 1.0, -2.0]) * p**2),
      ...                     jnp.zeros(3), num_steps=3)
      >>> round(s["lambda_max"], 4), round(s["lambda_min"], 4), round(s["spectral_gap"], 4)
      (4.0, -2.0, 3.0)
    """
    from wideth import hessian

    _checks.callable_("loss_fn", loss_fn, "a callable loss_fn(params) -> scalar")
    num_steps = _checks.positive_int("num_steps", num_steps, minimum=2)
    key = jax.random.key(0) if key is None else _checks.prng_key("key", key)
    op = hessian.hessian(loss_fn, params)
    if op.size < 2:
        raise ValueError(f"params: expected at least 2 parameters, got {op.size}")
    m = min(num_steps, op.size)
    top, _ = hessian.top_eigenpairs(op, k=2, num_steps=m, key=key)
    bottom, _ = hessian.top_eigenpairs(op, k=1, num_steps=m, key=key, which="smallest")
    lam1, lam2, lam_min = float(top[0]), float(top[1]), float(bottom[0])
    lam_min = min(lam_min, lam2)  # one Krylov space: the smallest Ritz value is <= lambda_2
    if lam_min < 0:
        rho = -lam_min / lam1 if lam1 > 0 else float("inf")
    else:
        rho = 0.0
    return {
        "lambda_max": lam1,
        "lambda_2": lam2,
        "lambda_min": lam_min,
        "lambda_min_sign": float(np.sign(lam_min)),
        "spectral_gap": lam1 - lam2,
        "condition_number": lam1 / abs(lam_min) if lam_min != 0 else float("inf"),
        "negative_curvature": rho,
        "smoothness": lam1,
        "hessian_norm": max(abs(lam1), abs(lam_min)),
    }


def _per_example_losses(objective: Callable, params: Any, x: jax.Array, y: jax.Array):
    """``(N,)`` losses :math:`\\ell_i(\\theta)` = ``objective`` on each row alone."""
    return jax.vmap(lambda xi, yi: objective(params, (xi[None], yi[None])))(x, y)


def gradient_noise(
    objective: Callable[[Any, Any], jax.Array],
    params: Any,
    data: tuple[Any, Any],
    *,
    num_steps: int = 20,
    key: jax.Array | None = None,
    chunk: int = 64,
) -> dict[str, float]:
    r"""The per-example gradient covariance :math:`\Sigma`: trace, norm, effective rank, SNR.

    With :math:`\mathcal L = \frac1N\sum_i\ell_i`, :math:`g_i = \nabla\ell_i`,
    :math:`\bar g = \nabla\mathcal L` and
    :math:`\Sigma = \frac1N\sum_i (g_i - \bar g)(g_i - \bar g)^\top`:

    * :math:`\operatorname{Var}[\nabla\ell] = \operatorname{tr}\Sigma =
      \frac1N\sum_i\|g_i - \bar g\|^2` from
      :func:`wideth.train.noise.minibatch_noise` (per-example gradients in
      chunks, only their squared distances kept);
    * :math:`\|\Sigma\|_2` by Lanczos (:func:`wideth.hessian.from_matvec`) on
      the matrix-free product. With :math:`J` the Jacobian of the per-example
      losses :math:`(\ell_1, \dots, \ell_N)` (rows :math:`g_i^\top`) and
      :math:`c = Jv - \overline{Jv}\,\mathbf 1`,

      .. math::

          \Sigma v = \frac1N\sum_i (g_i - \bar g)\,(g_i - \bar g)^\top v
                   = \frac1N J^\top c

      (:math:`\sum_i c_i = 0` removes the :math:`\bar g` term): one JVP and one
      VJP of the vector of per-example losses, no per-example gradient stored;
    * the effective rank :math:`r = \operatorname{tr}\Sigma/\|\Sigma\|_2`, between 1
      and :math:`\operatorname{rank}\Sigma`;
    * the signal-to-noise ratio :math:`\|\bar g\|^2/\operatorname{tr}\Sigma` and
      its inverse, the *simple noise scale*
      :math:`B_{\rm noise} = \operatorname{tr}\Sigma/\|\bar g\|^2` (McCandlish
      et al. 2018, eq. 2.8): the batch size at which a minibatch gradient's
      noise :math:`\operatorname{tr}\Sigma/B` equals its signal :math:`\|\bar g\|^2`.

    Args:
      objective: ``objective(params, (x, y)) -> scalar``, a mean over the rows of
        the batch (so that on one row it is :math:`\ell_i`).
      params: parameter pytree.
      data: ``(x, y)`` with :math:`N \ge 2` rows.
      num_steps: Lanczos steps for :math:`\|\Sigma\|_2` (``>= 1``; clipped to the dimension).
      key: PRNG key of the Lanczos start vector (default ``jax.random.key(0)``).
      chunk: per-example gradients per step of the trace computation.

    Returns:
      dict with ``trace_sigma`` (= ``gradient_variance``), ``sigma_norm``,
      ``effective_rank`` (NaN when :math:`\Sigma = 0`), ``grad_sq``
      (:math:`\|\bar g\|^2`), ``snr`` and ``noise_scale`` (``inf`` for a zero
      mean gradient with noise, 0 without noise).

    Raises:
      ValueError / TypeError: a non-callable or non-scalar objective, bad
        ``params``, ``data`` that is not a pair of arrays with the same
        number (>= 2) of rows, bad ``num_steps``, ``key`` or ``chunk``.

    References:
      McCandlish, Kaplan, Amodei et al., `An Empirical Model of Large-Batch
      Training <https://arxiv.org/abs/1812.06162>`_, 2018.
    """
    from wideth import hessian
    from wideth.train.noise import minibatch_noise

    _checks.callable_("objective", objective, "a callable objective(params, (x, y))")
    _checks.params_tree("params", params)
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise TypeError(f"data: expected a pair (x, y), got {type(data).__name__}")
    x = _checks.array("data", data[0], min_ndim=1, kind="number")
    y = _checks.array("data", data[1], min_ndim=1, kind="number")
    if x.shape[0] < 2 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"data: expected x and y with the same number (>= 2) of rows, got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    _checks.scalar_output("objective", objective, params, (x, y), what="objective(params, (x, y))")
    num_steps = _checks.positive_int("num_steps", num_steps)
    key = jax.random.key(0) if key is None else _checks.prng_key("key", key)
    chunk = _checks.positive_int("chunk", chunk)
    n = x.shape[0]

    def sigma_matvec(v: Any, p: Any, xs: jax.Array, ys: jax.Array) -> Any:
        f = lambda q: _per_example_losses(objective, q, xs, ys)
        _, f_jvp = jax.linearize(f, p)
        jv = f_jvp(v)
        (out,) = jax.linear_transpose(f_jvp, p)((jv - jnp.mean(jv)) / n)
        return out

    op = hessian.from_matvec(sigma_matvec, params, params, x, y)
    top = hessian.sharpness(op, num_steps=num_steps, key=key)  # clipped to the dimension
    noise = minibatch_noise(objective, params, (x, y), 1, chunk=chunk)
    tr, g2, norm = float(noise["trace_sigma"]), float(noise["grad_sq"]), float(top)
    if tr == 0:
        scale = 0.0
    else:
        scale = tr / g2 if g2 > 0 else float("inf")
    return {
        "trace_sigma": tr,
        "gradient_variance": tr,
        "sigma_norm": norm,
        "effective_rank": tr / norm if norm > 0 else float("nan"),
        "grad_sq": g2,
        "snr": g2 / tr if tr > 0 else float("inf"),
        "noise_scale": scale,
    }


def architecture(apply_fn_or_module: Any, params: Any = None) -> dict[str, Any]:
    """The architecture of a network: depth, widths, activation, parameter count.

    From an ``nnx.Module``, its attributes (``depth``, ``width``,
    ``activation``, ``parameterization``, ``W_std``, ``b_std``, ``in_dim``,
    ``out_dim`` where it has them) and its parameters; from an ``apply_fn``,
    what the parameter tree shows: one layer per group of leaves sharing a
    parent (as in :func:`gradient_ratios`) that holds a weight (a leaf with
    ``ndim >= 2``), its width the weight's last axis; ``depth`` is the number
    of such layers less the readout, and ``activation`` is unknown (``None``).

    Args:
      apply_fn_or_module: an ``nnx.Module`` or ``apply_fn(params, x)``.
      params: parameter pytree (``None`` for a module).

    Returns:
      dict with ``source`` (``"module"`` or ``"params"``), ``model`` (class
      name or ``None``), ``depth``, ``widths`` (hidden widths), ``in_dim``,
      ``out_dim``, ``activation``, ``num_parameters``, ``layers`` (name,
      weight shape) and, from a module, ``parameterization``, ``W_std`` and
      ``b_std`` when present.

    Raises:
      ValueError / TypeError: neither a module nor a callable, ``params`` given
        with a module or missing with a function, a tree without leaves.

    Examples:
      >>> import jax.numpy as jnp
      >>> p = {"l1": {"w": jnp.ones((3, 8)), "b": jnp.ones(8)}, "out": {"w": jnp.ones((8, 2))}}
      >>> a = architecture(lambda p, x: x, p)
      >>> a["depth"], a["widths"], a["in_dim"], a["out_dim"], a["num_parameters"]
      (1, [8], 3, 2, 48)
    """
    from flax import nnx

    module = apply_fn_or_module if isinstance(apply_fn_or_module, nnx.Module) else None
    _, params = as_apply(apply_fn_or_module, params, name="apply_fn_or_module")
    _checks.params_tree("params", params)
    leaves = jax.tree.leaves(params)
    layers = []
    for name, idx in _layer_groups(params):
        shapes = [tuple(np.shape(leaves[i])) for i in idx]
        weights = [s for s in shapes if len(s) >= 2]
        if weights:
            layers.append((name, max(weights, key=len)))
    widths = [int(s[-1]) for _, s in layers]
    info: dict[str, Any] = {
        "source": "params" if module is None else "module",
        "model": None if module is None else type(module).__name__,
        "depth": max(len(layers) - 1, 0),
        "widths": widths[:-1],
        "in_dim": int(np.prod(layers[0][1][:-1])) if layers else None,
        "out_dim": widths[-1] if widths else None,
        "activation": None,
        "num_parameters": int(sum(np.size(a) for a in leaves)),
        "layers": [[name, list(shape)] for name, shape in layers],
    }
    if module is not None:
        for attr in ("depth", "in_dim", "out_dim", "activation"):
            value = getattr(module, attr, None)
            if isinstance(value, int | str) and not isinstance(value, bool):
                info[attr] = value
        width = getattr(module, "width", None)
        if isinstance(width, int) and isinstance(info["depth"], int):
            info["widths"] = [width] * info["depth"]
        for attr in ("parameterization", "W_std", "b_std"):
            value = getattr(module, attr, None)
            if isinstance(value, int | float | str) and not isinstance(value, bool):
                info[attr] = value
    return info


def _grade(value: float, lo: float, hi: float) -> str:
    """library below ``lo``, tame up to ``hi``, wild above or non-finite."""
    if not math.isfinite(value):
        return "wild"
    return "library" if value < lo else ("tame" if value <= hi else "wild")


def _hessian_criterion(hs: dict[str, float], n_params: int, n_outputs: int) -> dict[str, str]:
    """Verdict on the Hessian's extreme eigenvalues (module docstring, criterion 2)."""
    lam1, lam_min, rho = hs["lambda_max"], hs["lambda_min"], hs["negative_curvature"]
    kappa_h = hs["condition_number"]
    lo, hi = THRESHOLDS["negative_curvature"]
    if not (math.isfinite(lam1) and math.isfinite(lam_min)) or lam1 <= 0:
        return {
            "verdict": "wild",
            "reason": f"Hessian lambda_max = {lam1:.3g}: no positive curvature to descend along",
        }
    if lam_min < 0:
        return {
            "verdict": _grade(rho, lo, hi),
            "reason": f"Hessian lambda_min = {lam_min:.3g} < 0: negative curvature "
            f"-lambda_min/lambda_max = {rho:.3g}, kappa_H = {kappa_h:.3g} "
            f"(library < {lo:g}, wild > {hi:g})",
        }
    if n_params < n_outputs:
        klo, khi = THRESHOLDS["hessian_kappa"]
        return {
            "verdict": _grade(kappa_h, klo, khi),
            "reason": f"Hessian positive definite, kappa_H = {kappa_h:.3g} with d = {n_params} "
            f"< nk = {n_outputs} (library < {klo:g}, wild > {khi:g})",
        }
    return {
        "verdict": "library",
        "reason": f"Hessian positive semi-definite (lambda_min = {lam_min:.3g} >= 0); "
        f"kappa_H = {kappa_h:.3g} from the flat directions of d = {n_params} >= nk = "
        f"{n_outputs} parameters is not graded (the NTK conditioning sets the rate)",
    }


def _noise_criterion(gn: dict[str, float], n: int) -> dict[str, str]:
    """Verdict on the simple noise scale relative to the probe batch (criterion 3)."""
    b = gn["noise_scale"]
    lo, hi = THRESHOLDS["noise_scale_fraction"]
    frac = b / n
    return {
        "verdict": _grade(frac, lo, hi),
        "reason": f"noise scale B_noise = tr Sigma/|g|^2 = {b:.3g} = {frac:.3g} x probe batch "
        f"(SNR {gn['snr']:.3g}, effective rank {gn['effective_rank']:.3g}; "
        f"library < {lo:g}, wild > {hi:g})",
    }


def _probe_run(
    apply_fn: Callable, loss_out: Callable, params: Any, data: tuple, lr: float, steps: int
) -> tuple[Any, np.ndarray]:
    """Plain full-batch GD for ``steps`` steps (:func:`wideth.train.run`): (params, losses).

    A run that diverges returns non-finite parameters (the last finite state
    would hide the divergence from the drift criterion).
    """
    from wideth import train

    tx = optax.sgd(lr)
    step = train.train_step(apply_fn, loss_out, tx, metrics=())
    res = jax.jit(lambda s: train.run(step, s, data, steps))(train.TrainState.create(params, tx))
    final = res.state.params
    if bool(res.stopped):
        final = jax.tree.map(lambda a: jnp.full_like(a, jnp.nan), final)
    return final, np.asarray(res.metrics["loss"], dtype=np.float64)


def _drift(apply_fn: Callable, p0: Any, p1: Any, x: jax.Array) -> float:
    from wideth.kernels import empirical

    k0 = np.asarray(empirical.ntk(apply_fn, p0, x), dtype=np.float64)
    k1 = np.asarray(empirical.ntk(apply_fn, p1, x), dtype=np.float64)
    return float(np.linalg.norm(k1 - k0) / np.linalg.norm(k0))


def profile(
    apply_fn_or_module: Any,
    params: Any,
    x: jax.Array,
    y: jax.Array,
    loss: str | Callable = "mse",
    key: jax.Array | None = None,
    probe_steps: int = 50,
    probe_size: int = 64,
    lanczos_steps: int = 20,
    widths: Sequence[int] | None = None,
    make_model: Callable[[int], tuple[Callable, Any]] | None = None,
    architecture_info: Mapping[str, Any] | None = None,
) -> ProfileCertificate:
    r"""Measure the regime of a network on a probe batch (see the module docstring).

    Args:
      apply_fn_or_module: ``apply_fn(params, x) -> (n, k)`` or a Flax NNX module.
      params: parameter pytree (``None`` for a module).
      x: ``(n, ...)`` inputs; the first ``probe_size`` rows are the probe batch.
      y: ``(n, k)`` targets (one-hot for ``"xent"``).
      loss: ``"mse"`` (:math:`\frac{1}{2n}\sum\|f-y\|^2`), ``"xent"`` or
        ``loss(outputs, y) -> scalar``.
      key: PRNG key for Lanczos / SLQ probes.
      probe_steps: length of the probe gradient-descent run.
      probe_size: number of inputs in the probe batch.
      lanczos_steps: Krylov dimension for the Hessian estimates.
      widths: optional widths for criterion 7; needs ``make_model``.
      make_model: ``width -> (apply_fn, params)`` building the same
        architecture at another width.
      architecture_info: entries added to (or replacing) the certificate's
        architecture (:func:`architecture`), e.g. ``{"activation": "tanh"}``
        for an ``apply_fn``, whose activation the parameters do not show.

    Returns:
      A :class:`ProfileCertificate`.

    Raises:
      ValueError / TypeError: a bad model or parameters (NaN/inf included),
        ``x``/``y`` with NaN/inf, different row counts or ``y`` not shaped like
        the outputs (``apply_fn`` is evaluated abstractly on one row first), a
        loss that is not a name or a scalar ``loss(outputs, y)``, bad sizes or
        key, ``widths`` without ``make_model``. All before any computation.

    Examples:
      >>> # cert = profile(apply_fn, params, x, y, key=jax.random.PRNGKey(0))
      >>> # cert.regime, cert.to_json()
    """
    from wideth import hessian

    given_params = params
    apply_fn, params = as_apply(apply_fn_or_module, params, name="apply_fn_or_module")
    x, y, loss_out = _validate(apply_fn, params, x, y, loss)
    if architecture_info is not None:
        if not isinstance(architecture_info, Mapping) or not all(
            isinstance(k, str) for k in architecture_info
        ):
            raise TypeError(
                "architecture_info: expected a dict with string keys, got "
                f"{type(architecture_info).__name__}"
            )
        try:
            json.dumps(jsonable(dict(architecture_info)))
        except (TypeError, ValueError) as e:
            raise TypeError(f"architecture_info: expected JSON-serialisable values ({e})") from e
    arch = architecture(apply_fn_or_module, given_params)
    arch.update(dict(architecture_info or {}))
    probe_steps = _checks.positive_int("probe_steps", probe_steps, minimum=3)
    probe_size = _checks.positive_int("probe_size", probe_size)
    lanczos_steps = _checks.positive_int("lanczos_steps", lanczos_steps)
    if widths is not None:
        widths = _checks.int_sequence("widths", widths, minimum=1, min_len=2)
        if make_model is None:
            raise ValueError("make_model: widths needs make_model: width -> (apply_fn, params)")
        _checks.callable_("make_model", make_model, "a callable width -> (apply_fn, params)")
    key = jax.random.PRNGKey(0) if key is None else _checks.prng_key("key", key)
    xb, yb = x[:probe_size], y[:probe_size]
    loss_fn = lambda p: loss_out(apply_fn(p, xb), yb)
    criteria: dict[str, dict[str, str]] = {}
    m: dict[str, Any] = {"probe_size": int(xb.shape[0]), "probe_steps": probe_steps}

    # 1-2. Conditioning: the NTK Gram and the loss Hessian.
    from wideth.kernels import empirical

    theta = np.asarray(empirical.ntk(apply_fn, params, xb), dtype=np.float64)
    ev = np.linalg.eigvalsh(theta)
    kappa = float(ev[-1] / ev[0]) if ev[0] > 0 else float("inf")
    k1, k2 = jax.random.split(key)
    n_params = sum(p.size for p in jax.tree.leaves(params))
    steps = int(min(lanczos_steps, n_params))
    hs = hessian_summary(loss_fn, params, num_steps=max(steps, 2), key=k1)
    nodes, weights = hessian.spectral_density(
        loss_fn, params, num_probes=4, num_steps=steps, key=k2
    )
    lam_h = hs["lambda_max"]
    m.update(
        ntk_lambda_max=float(ev[-1]),
        ntk_lambda_min=float(ev[0]),
        ntk_condition_number=kappa,
        hessian_lambda_max=lam_h,
        hessian_lambda_2=hs["lambda_2"],
        hessian_spectral_gap=hs["spectral_gap"],
        hessian_lambda_min=hs["lambda_min"],
        hessian_lambda_min_sign=hs["lambda_min_sign"],
        hessian_condition_number=hs["condition_number"],
        hessian_negative_curvature=hs["negative_curvature"],
        hessian_norm=hs["hessian_norm"],
        smoothness=hs["smoothness"],
        hessian_negative_mass=float(hessian.negative_mass(nodes, weights)),
        num_parameters=int(n_params),
        num_outputs=int(yb.size),
    )
    lo, hi = THRESHOLDS["kappa"]
    criteria["conditioning"] = {
        "verdict": _grade(kappa, lo, hi),
        "reason": f"NTK condition number {kappa:.3g} (library < {lo:g}, wild > {hi:g})",
    }
    criteria["hessian_conditioning"] = _hessian_criterion(hs, int(n_params), int(yb.size))

    # 3. Gradient noise: the per-example gradient covariance on the probe batch.
    if xb.shape[0] >= 2:
        objective = lambda p, batch: loss_out(apply_fn(p, batch[0]), batch[1])
        gn = gradient_noise(
            objective, params, (xb, yb), num_steps=steps, key=jax.random.fold_in(key, 2)
        )
        m.update(
            gradient_variance=gn["gradient_variance"],
            sigma_norm=gn["sigma_norm"],
            gradient_effective_rank=gn["effective_rank"],
            gradient_snr=gn["snr"],
            gradient_noise_scale=gn["noise_scale"],
        )
        criteria["gradient_noise"] = _noise_criterion(gn, int(xb.shape[0]))

    # 4. Gradient flow.
    ratios = gradient_ratios(jax.grad(loss_fn)(params))
    names = list(ratios)
    vals = np.array([ratios[n] for n in names])
    worst = names[int(np.nanargmin(vals))] if np.any(np.isfinite(vals)) else names[0]
    r_min, r_max = float(np.nanmin(vals)), float(np.nanmax(vals))
    m.update(gradient_ratios=ratios, gradient_ratio_min=r_min, worst_layer=worst)
    hi_r, lo_r = THRESHOLDS["grad_ratio_min"]
    if not math.isfinite(r_min) or r_min < lo_r:
        gv = "wild"
    elif r_max > THRESHOLDS["grad_ratio_max"]:
        gv = "wild"
    else:
        gv = "library" if r_min > hi_r else "tame"
    small = [n for n, r in zip(names, vals, strict=True) if not r > lo_r]
    m["vanishing_layers"] = small
    criteria["gradient_flow"] = {
        "verdict": gv,
        "reason": f"min R_l = {r_min:.3g} at {worst}, max R_l = {r_max:.3g} "
        f"(library > {hi_r:g}, wild < {lo_r:g} or > {THRESHOLDS['grad_ratio_max']:g})",
    }

    # 5-6. Probe run: drift and loss curve.
    lr = 1.0 / lam_h if lam_h > 0 and math.isfinite(lam_h) else 1e-2
    final, losses = _probe_run(apply_fn, loss_out, params, (xb, yb), lr, probe_steps)
    m.update(probe_lr=lr, probe_losses=losses.tolist())
    finite_final = all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(final))
    drift = _drift(apply_fn, params, final, xb) if finite_final else float("inf")
    m["ntk_drift"] = drift
    lo, hi = THRESHOLDS["drift"]
    criteria["ntk_drift"] = {
        "verdict": _grade(drift, lo, hi),
        "reason": f"relative NTK change {drift:.3g} over {probe_steps} GD steps at lr {lr:.3g}",
    }
    shape = loss_curve_shape(losses)
    m["loss_curve"] = shape
    criteria["loss_curve"] = {
        "verdict": shape["verdict"],
        "reason": f"log-linear fit rate {shape['rate']:.3g}, R^2 {shape['r2']:.3g}, "
        f"{100 * shape['up_fraction']:.0f}% of steps up, final/initial {shape['ratio']:.3g}",
    }

    # 7. Width scaling.
    if widths is not None:
        drifts = []
        for w in widths:
            fn_w, p_w = make_model(int(w))
            lf = lambda p, fn_w=fn_w: loss_out(fn_w(p, xb), yb)
            lr_w = 1.0 / float(hessian.sharpness(lf, p_w, num_steps=steps, key=k1))
            p_t, _ = _probe_run(fn_w, loss_out, p_w, (xb, yb), lr_w, probe_steps)
            drifts.append(_drift(fn_w, p_w, p_t, xb))
        slope = float(np.polyfit(np.log(widths), np.log(drifts), 1)[0])
        tol = THRESHOLDS["width_slope_tolerance"]
        wv = "library" if slope <= -0.5 + tol else ("tame" if abs(slope) <= tol else "wild")
        m.update(widths=list(widths), width_drifts=drifts, width_slope=slope)
        criteria["width_scaling"] = {
            "verdict": wv,
            "reason": f"drift ~ width^{slope:.2f} (kernel regime -1 to -0.5, mean field 0)",
        }

    regime = max((c["verdict"] for c in criteria.values()), key=_RANK.__getitem__)
    pathology = adaptation = None
    if regime == "wild":
        pathology = _diagnose(criteria, m)
    elif regime == "tame":
        adaptation = (
            f"use the PL-adaptive step size (wideth.optim.pl_adaptive) or a learning rate "
            f"below 2/lambda_max = {2 / lam_h:.3g}"
            if lam_h > 0
            else "use the PL-adaptive step size (wideth.optim.pl_adaptive)"
        )
        if criteria["hessian_conditioning"]["verdict"] == "tame" and hs["lambda_min"] < 0:
            adaptation += (
                f"; negative curvature (lambda_min = {hs['lambda_min']:.3g}) is escaped "
                "fastest by full steps near 1/lambda_max with some noise (SGD)"
            )
        if criteria.get("gradient_noise", {}).get("verdict") == "tame":
            adaptation += (
                f"; use minibatches of at least B_noise = {m['gradient_noise_scale']:.3g} "
                "examples (below it scale the learning rate with the batch size)"
            )
    return ProfileCertificate(regime, criteria, jsonable(m), pathology, adaptation, jsonable(arch))


def _diagnose(criteria: dict[str, dict[str, str]], m: dict[str, Any]) -> dict[str, str]:
    """(pathology, location, remedy) for the first wild criterion."""
    if criteria["gradient_flow"]["verdict"] == "wild":
        layers = m["vanishing_layers"]
        if layers:
            where = f"layers {layers[0]}..{layers[-1]}" if len(layers) > 1 else f"layer {layers[0]}"
            return {
                "pathology": "vanishing gradients",
                "location": f"{where} ({len(layers)} of {len(m['gradient_ratios'])} layers)",
                "remedy": "use critical initialisation (chi_1 = 1, see "
                "wideth.kernels.meanfield.critical_W_var), residual connections or normalisation",
            }
        ratios = m["gradient_ratios"]
        return {
            "pathology": "exploding gradients",
            "location": f"largest ratio at {max(ratios, key=ratios.get)}",
            "remedy": "lower the weight variance towards criticality or add normalisation",
        }
    if criteria["conditioning"]["verdict"] == "wild":
        return {
            "pathology": "ill-conditioned NTK",
            "location": f"kappa = {m['ntk_condition_number']:.3g} on the probe batch",
            "remedy": "standardise inputs, remove duplicate or near-duplicate points, "
            "or regularise (weight decay / ridge)",
        }
    if criteria["hessian_conditioning"]["verdict"] == "wild":
        if m["hessian_lambda_min"] < 0 and m["hessian_lambda_max"] > 0:
            return {
                "pathology": "strong negative curvature (saddle region)",
                "location": f"Hessian lambda_min = {m['hessian_lambda_min']:.3g}, "
                f"-lambda_min/lambda_max = {m['hessian_negative_curvature']:.3g}",
                "remedy": "perturb the parameters off the saddle (random restarts or noise), "
                "widen the network (the residual Hessian term shrinks with width) or "
                "initialise nearer the lazy regime",
            }
        return {
            "pathology": "ill-conditioned or non-positive Hessian",
            "location": f"lambda_max = {m['hessian_lambda_max']:.3g}, "
            f"kappa_H = {m['hessian_condition_number']:.3g}",
            "remedy": "regularise (weight decay) or precondition (adaptive optimiser)",
        }
    noise = criteria.get("gradient_noise")
    if noise is not None and noise["verdict"] == "wild":
        return {
            "pathology": "noise-dominated gradients",
            "location": f"noise scale B_noise = {m['gradient_noise_scale']:.3g} above the "
            f"probe batch of {m['probe_size']}",
            "remedy": "use batches of at least B_noise, average more examples per step, "
            "or lower the learning rate",
        }
    if criteria["loss_curve"]["verdict"] == "wild":
        return {
            "pathology": "oscillating or divergent training",
            "location": f"probe run at lr {m['probe_lr']:.3g}",
            "remedy": "lower the learning rate below 2/lambda_max or use wideth.optim.pl_adaptive",
        }
    return {
        "pathology": "large kernel drift (far from the lazy regime)",
        "location": f"relative NTK change {m['ntk_drift']:.3g}",
        "remedy": "widen the network or use NTK parameterisation for kernel-regime guarantees",
    }
