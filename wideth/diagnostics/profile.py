r"""Profile certificates: is this network in the *library*, *tame* or *wild* regime?

A certificate is measured evidence, not a guess. On a probe batch it measures

1. **Conditioning** of the empirical NTK Gram :math:`\Theta` (the quantity that
   sets the linear rate under the PL condition, :math:`\mu = \lambda_{\min}(\Theta)`
   for MSE): :math:`\kappa = \lambda_{\max}/\lambda_{\min}`; library
   :math:`\kappa < 10^2`, tame :math:`10^2 \le \kappa \le 10^4`, wild beyond.
   Also reported as evidence of saddles: :math:`\lambda_{\max}` of the loss
   Hessian (Lanczos) and the negative spectral mass (stochastic Lanczos quadrature).
2. **Gradient flow**:
   :math:`R_l = \|\nabla_{\theta_l}\mathcal L\| / \|\nabla_{\theta_L}\mathcal L\|`
   per layer (a layer is the group of leaves sharing a parent in the parameter
   pytree, in flattening order; :math:`L` is the last). :math:`\min_l R_l > 0.1`
   library, :math:`0.01`-:math:`0.1` tame, :math:`< 0.01` wild (vanishing);
   :math:`\max_l R_l > 100` is wild too (exploding).
3. **NTK drift** over a short probe run of gradient descent at step
   :math:`\eta = 1/\lambda_{\max}(\nabla^2\mathcal L)`:
   :math:`\|\Theta_T - \Theta_0\|_F / \|\Theta_0\|_F` below 0.1 library (lazy),
   up to 0.5 tame, above or non-finite wild.
4. **Loss-curve shape** of the probe run, from a least-squares fit of
   :math:`\log \mathcal L_t = a - r t`: exponential decay (:math:`r > 0`,
   :math:`R^2 \ge 0.9`, at most 10% of steps going up) is library; divergence
   (non-finite or final loss above the initial one) or oscillation (more than
   40% of steps going up) is wild; anything else (sublinear, plateaus) tame.
5. **Width scaling** (optional): the slope :math:`s` of log drift against log
   width. :math:`|s + 1/2| \le 0.2` is the kernel regime (library);
   :math:`|s| \le 0.2` mean-field / feature learning (tame); otherwise wild.

The overall regime is the worst verdict. A wild certificate names the
pathology, where it sits and a remedy; a tame one suggests an adaptation.

References:
  Jacot, Gabriel, Hongler, Neural Tangent Kernel, 2018 (NTK and its drift).
  Liu, Zhu, Belkin, Loss landscapes and optimization in over-parameterized
  non-linear systems and neural networks, 2022 (PL condition and NTK conditioning).
  Schoenholz et al., Deep Information Propagation, 2017 (vanishing gradients, depth scales).
  Ghorbani, Krishnan, Xiao, An Investigation into Neural Net Optimization via
  Hessian Eigenvalue Density, 2019 (negative spectral mass).
  Chizat, Oyallon, Bach, On Lazy Training in Differentiable Programming, 2019.
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
from wideth.functional import as_apply
from wideth.io import jsonable

__all__ = ["ProfileCertificate", "profile", "gradient_ratios", "loss_curve_shape"]

REGIMES = ("library", "tame", "wild")
_RANK = {r: i for i, r in enumerate(REGIMES)}

#: Thresholds of every criterion (documented in the module docstring).
THRESHOLDS = {
    "kappa": (1e2, 1e4),
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
    """

    regime: str
    criteria: dict[str, dict[str, str]]
    measurements: dict[str, Any]
    pathology: dict[str, str] | None = None
    adaptation: str | None = None

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
        return "\n".join(lines)


def _validate(
    apply_fn: Callable, params: Any, x: Any, y: Any, loss: str | Callable
) -> tuple[jax.Array, jax.Array, Callable]:
    """Check data, the network's output shape and the loss before any work; returns (x, y, loss)."""
    from wideth.train.losses import get_loss

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


def _grade(value: float, lo: float, hi: float) -> str:
    """library below ``lo``, tame up to ``hi``, wild above or non-finite."""
    if not math.isfinite(value):
        return "wild"
    return "library" if value < lo else ("tame" if value <= hi else "wild")


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
      widths: optional widths for criterion 5; needs ``make_model``.
      make_model: ``width -> (apply_fn, params)`` building the same
        architecture at another width.

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

    apply_fn, params = as_apply(apply_fn_or_module, params, name="apply_fn_or_module")
    x, y, loss_out = _validate(apply_fn, params, x, y, loss)
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

    # 1. Conditioning.
    from wideth.kernels import empirical

    theta = np.asarray(empirical.ntk(apply_fn, params, xb), dtype=np.float64)
    ev = np.linalg.eigvalsh(theta)
    kappa = float(ev[-1] / ev[0]) if ev[0] > 0 else float("inf")
    k1, k2 = jax.random.split(key)
    n_params = sum(p.size for p in jax.tree.leaves(params))
    steps = int(min(lanczos_steps, n_params))
    top, _ = hessian.top_eigenpairs(loss_fn, params, k=1, num_steps=steps, key=k1)
    nodes, weights = hessian.spectral_density(
        loss_fn, params, num_probes=4, num_steps=steps, key=k2
    )
    lam_h = float(top[0])
    m.update(
        ntk_lambda_max=float(ev[-1]),
        ntk_lambda_min=float(ev[0]),
        ntk_condition_number=kappa,
        hessian_lambda_max=lam_h,
        hessian_negative_mass=float(hessian.negative_mass(nodes, weights)),
    )
    lo, hi = THRESHOLDS["kappa"]
    criteria["conditioning"] = {
        "verdict": _grade(kappa, lo, hi),
        "reason": f"NTK condition number {kappa:.3g} (library < {lo:g}, wild > {hi:g})",
    }

    # 2. Gradient flow.
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

    # 3-4. Probe run: drift and loss curve.
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

    # 5. Width scaling.
    if widths is not None:
        drifts = []
        for w in widths:
            fn_w, p_w = make_model(int(w))
            lf = lambda p, fn_w=fn_w: loss_out(fn_w(p, xb), yb)
            lam_w, _ = hessian.top_eigenpairs(lf, p_w, k=1, num_steps=steps, key=k1)
            lr_w = 1.0 / float(lam_w[0])
            p_t, _ = _probe_run(fn_w, loss_out, p_w, (xb, yb), lr_w, probe_steps)
            drifts.append(_drift(fn_w, p_w, p_t, xb))
        slope = float(np.polyfit(np.log(widths), np.log(drifts), 1)[0])
        tol = THRESHOLDS["width_slope_tolerance"]
        wv = "library" if abs(slope + 0.5) <= tol else ("tame" if abs(slope) <= tol else "wild")
        m.update(widths=list(widths), width_drifts=drifts, width_slope=slope)
        criteria["width_scaling"] = {
            "verdict": wv,
            "reason": f"drift ~ width^{slope:.2f} (kernel regime -0.5, mean field 0)",
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
    return ProfileCertificate(regime, criteria, jsonable(m), pathology, adaptation)


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
