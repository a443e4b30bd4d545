r"""Catapult phase of large-learning-rate gradient descent (Lewkowycz et al. 2020).

Gradient descent with step :math:`\eta` on a wide network has three phases set
by the initial NTK eigenvalue :math:`\lambda_0` (of the kernel normalised like
the loss, so that the linearised dynamics converge iff :math:`\eta<2/\lambda_0`):

* **lazy** :math:`\eta<2/\lambda_0`: the loss decreases monotonically and the
  kernel barely moves;
* **catapult** :math:`2/\lambda_0<\eta<\eta_{\max}`: the loss first grows
  exponentially, the kernel's top eigenvalue then drops until
  :math:`\lambda<2/\eta` and the loss converges;
* **divergent** :math:`\eta>\eta_{\max}`.

1. The two-layer linear **uv model** :math:`f = v^\top u\,x/\sqrt m` on one
   example :math:`(x, y) = (1, 0)` with :math:`L = f^2/2` has closed-form
   dynamics in :math:`(f, \lambda)`, :math:`\lambda = (\|u\|^2+\|v\|^2)/m`:

   .. math::

       f_{t+1} = f_t\Big(1-\eta\lambda_t+\frac{\eta^2 f_t^2}{m}\Big),\qquad
       \lambda_{t+1} = \lambda_t + \frac{\eta f_t^2}{m}(\eta\lambda_t-4),

   so :math:`\eta_{\max} = 4/\lambda_0`, and the peak loss of the catapult
   grows like :math:`m`. The model itself (vectors of size :math:`m`) is
   trained over a grid :math:`\eta\lambda_0\in[0.5, 5]`; checks: the two
   thresholds within a grid step, :math:`\lambda_{\rm final}<2/\eta` throughout
   the catapult phase, the peak loss at :math:`\eta=3/\lambda_0` growing with
   :math:`m\in\{10^3,10^4,10^5\}`, and agreement with the scalar recursion.
2. A wide **ReLU MLP** (NTK parameterisation) on real digits (MNIST-5k in full
   mode) with :math:`L=\frac1{2n}\sum_i\|f(x_i)-y_i\|^2`: :math:`\lambda_0` is
   the top eigenvalue of :math:`\Theta/n` (full empirical NTK over samples and
   outputs, the GGN of this loss), :math:`\eta` is swept in units of
   :math:`2/\lambda_0`; same phases, with networks that end with every hidden
   ReLU off on the training set reported as **dead**. For nonlinear networks
   :math:`\eta_{\max}` is not fixed at :math:`4/\lambda_0` (Lewkowycz et al.
   find larger values for ReLU networks); it is measured and reported.

References:
  Lewkowycz, Bahri, Dyer, Sohl-Dickstein, Gur-Ari, `The large learning rate phase
  of deep learning: the catapult mechanism <https://arxiv.org/abs/2003.02218>`_, 2020.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments._common import Config, Result, check, cli, save_figure

LAZY, CATAPULT, DIVERGENT, DEAD = "lazy", "catapult", "divergent", "dead"

# --------------------------------------------------------------------------- uv model


def uv_init(key: jax.Array, m: int) -> tuple[jax.Array, jax.Array]:
    """Standard normal :math:`u, v\\in\\mathbb R^m` (NTK parameterisation)."""
    ku, kv = jax.random.split(key)
    return jax.random.normal(ku, (m,)), jax.random.normal(kv, (m,))


def uv_ntk(u: jax.Array, v: jax.Array) -> jax.Array:
    r"""NTK of the uv model at :math:`x=1`: :math:`\lambda = (\|u\|^2+\|v\|^2)/m`."""
    return (u @ u + v @ v) / u.shape[0]


def uv_gd(u: jax.Array, v: jax.Array, eta: jax.Array, steps: int) -> dict[str, jax.Array]:
    r"""Gradient descent on :math:`L = \tfrac12 (v^\top u/\sqrt m)^2` (``lax.scan``).

    .. math::

        u \leftarrow u - \eta\, f\, v/\sqrt m,\qquad v \leftarrow v - \eta\, f\, u/\sqrt m.

    Args:
      u, v: ``(m,)`` initial weights.
      eta: scalar learning rate (traced; ``vmap`` over it for a sweep).
      steps: number of steps (static).

    Returns:
      dict of ``(steps + 1,)`` arrays ``loss`` and ``ntk`` (:math:`\lambda_t`).
    """
    sqrt_m = jnp.sqrt(jnp.asarray(u.shape[0], u.dtype))

    def step(carry, _):
        u, v = carry
        f = u @ v / sqrt_m
        out = (0.5 * f**2, uv_ntk(u, v))
        return (u - eta * f * v / sqrt_m, v - eta * f * u / sqrt_m), out

    (u, v), (loss, ntk) = jax.lax.scan(step, (u, v), None, length=steps)
    f = u @ v / sqrt_m
    return {
        "loss": jnp.append(loss, 0.5 * f**2),
        "ntk": jnp.append(ntk, uv_ntk(u, v)),
    }


def uv_recursion(
    f0: jax.Array, lam0: jax.Array, eta: jax.Array, m: float, steps: int
) -> dict[str, jax.Array]:
    r"""The closed-form scalar dynamics of the uv model (module docstring)."""

    def step(carry, _):
        f, lam = carry
        out = (0.5 * f**2, lam)
        f_new = f * (1 - eta * lam + eta**2 * f**2 / m)
        lam_new = lam + eta * f**2 / m * (eta * lam - 4)
        return (f_new, lam_new), out

    (f, lam), (loss, ntk) = jax.lax.scan(step, (f0, lam0), None, length=steps)
    return {"loss": jnp.append(loss, 0.5 * f**2), "ntk": jnp.append(ntk, lam)}


def classify(loss: np.ndarray, rtol: float = 1e-6, floor: float = 1e-6) -> str:
    """Phase of one run from its loss curve ``(steps + 1,)``.

    divergent: non-finite, or final loss not below the initial one; lazy: the
    loss never increases from one step to the next (relative tolerance ``rtol``,
    ignoring steps once it is below ``floor`` times its initial value, where
    float rounding dominates); catapult: it increases at some step, then
    converges below its initial value.
    """
    loss = np.asarray(loss, np.float64)
    if not np.all(np.isfinite(loss)) or loss[-1] >= loss[0]:
        return DIVERGENT
    prev, nxt = loss[:-1], loss[1:]
    rises = (nxt > prev * (1 + rtol)) & (prev > floor * loss[0])
    return CATAPULT if rises.any() else LAZY


def uv_sweep(
    key: jax.Array, m: int, eta_lam: np.ndarray, steps: int, num_seeds: int = 3
) -> dict[str, Any]:
    r"""Train the uv model for every :math:`\eta\lambda_0` in ``eta_lam`` and seed.

    :math:`\lambda_0` is measured per seed at initialisation, and
    :math:`\eta = (\eta\lambda_0)/\lambda_0`.

    Returns:
      dict with ``eta_lam`` ``(E,)``, ``phase`` ``(S, E)`` strings,
      ``eta_lam_final`` ``(S, E)`` (:math:`\eta\lambda_{\rm final}`),
      ``peak_loss`` ``(S, E)``, ``loss`` ``(S, E, steps+1)``, ``lam0`` ``(S,)``.
    """
    run = jax.jit(jax.vmap(uv_gd, in_axes=(None, None, 0, None)), static_argnums=3)
    phases, finals, peaks, losses, lam0s = [], [], [], [], []
    for s in range(num_seeds):
        u, v = uv_init(jax.random.fold_in(key, s), m)
        lam0 = float(uv_ntk(u, v))
        out = run(u, v, jnp.asarray(eta_lam / lam0, jnp.float32), steps)
        loss, ntk = np.asarray(out["loss"], np.float64), np.asarray(out["ntk"], np.float64)
        phases.append([classify(row) for row in loss])
        finals.append(eta_lam / lam0 * ntk[:, -1])
        peaks.append(np.nanmax(np.where(np.isfinite(loss), loss, np.nan), axis=1))
        losses.append(loss)
        lam0s.append(lam0)
    return {
        "eta_lam": np.asarray(eta_lam),
        "phase": np.array(phases),
        "eta_lam_final": np.array(finals),
        "peak_loss": np.array(peaks),
        "loss": np.array(losses),
        "lam0": np.array(lam0s),
    }


def thresholds(eta_lam: np.ndarray, phase: np.ndarray) -> tuple[float, float]:
    """Phase boundaries on a sorted grid (``phase`` ``(E,)``).

    Returns the midpoints between the last lazy point and the first point that is
    not lazy, and between the last convergent point and the first divergent one
    (``inf`` where a boundary is not crossed on the grid).
    """

    def boundary(below: np.ndarray) -> float:
        above = np.flatnonzero(~below)
        if len(above) == 0:
            return math.inf
        j = int(above[0])
        return float(eta_lam[0]) if j == 0 else float(0.5 * (eta_lam[j - 1] + eta_lam[j]))

    return boundary(phase == LAZY), boundary(phase != DIVERGENT)


def uv_peak_vs_width(
    key: jax.Array, widths: list[int], eta_lam: float, steps: int, num_seeds: int = 3
) -> dict[str, np.ndarray]:
    """Peak loss at fixed :math:`\\eta\\lambda_0` vs width, model and scalar recursion."""
    run = jax.jit(uv_gd, static_argnums=3)
    rec = jax.jit(uv_recursion, static_argnums=(3, 4))
    model, recursion = np.zeros((len(widths), num_seeds)), np.zeros((len(widths), num_seeds))
    for i, m in enumerate(widths):
        for s in range(num_seeds):
            u, v = uv_init(jax.random.fold_in(jax.random.fold_in(key, m), s), m)
            lam0 = uv_ntk(u, v)
            eta = eta_lam / lam0
            model[i, s] = float(jnp.max(run(u, v, eta, steps)["loss"]))
            f0 = u @ v / jnp.sqrt(float(m))
            recursion[i, s] = float(jnp.max(rec(f0, lam0, eta, float(m), steps)["loss"]))
    return {"widths": np.asarray(widths), "peak": model, "peak_recursion": recursion}


# --------------------------------------------------------------------------- real MLP


def top_ntk_eigenvalue(apply_fn: Callable, params: Any, x: jax.Array) -> float:
    r"""Top eigenvalue of :math:`\Theta/n`, :math:`\Theta` the full empirical NTK.

    :math:`\Theta` is the :math:`nk\times nk` kernel over samples and outputs, so
    :math:`\Theta/n` has the spectrum of the Gauss-Newton matrix of
    :math:`L=\frac1{2n}\sum_i\|f(x_i)-y_i\|^2` and GD on the linearised model is
    stable iff :math:`\eta<2/\lambda_{\max}(\Theta/n)`.
    """
    from wideth.kernels import empirical

    theta = empirical.ntk(apply_fn, params, x, full=True)  # (n, n, k, k)
    n, _, k, _ = theta.shape
    mat = np.asarray(jnp.transpose(theta, (0, 2, 1, 3)).reshape(n * k, n * k), np.float64)
    return float(np.linalg.eigvalsh(0.5 * (mat + mat.T))[-1] / n)


def mlp_setup(
    key: jax.Array, n: int, width: int, depth: int = 1, quick: bool = True
) -> tuple[Any, Callable, Any, jax.Array, jax.Array, str]:
    """Real data subset and a ReLU MLP in NTK parameterisation (10 outputs)."""
    from flax import nnx

    from wideth import data, models

    seed = int(jax.random.randint(key, (), 0, 2**30))
    ds = data.digits(seed=seed) if quick else data.mnist5k(seed=seed)
    name = "digits" if quick else "MNIST-5k"
    x = jnp.asarray(ds.x_train[:n], jnp.float32)
    y = jnp.asarray(ds.y_train[:n], jnp.float32)
    model = models.MLP(
        x.shape[1],
        width,
        depth,
        out_dim=y.shape[1],
        activation="relu",
        parameterization="ntk",
        rngs=nnx.Rngs(seed),
    )
    apply_fn, params = models.functional(model)
    return model, apply_fn, params, x, y, name


def is_dead(model: Any, params: Any, x: jax.Array) -> bool:
    """Whether every ReLU of the last hidden layer is off on every input."""
    from wideth import models

    features_fn, _ = models.functional(model, "features")
    return bool(jnp.all(features_fn(params, x)[-1] <= 0))


def gd_sweep(
    apply_fn: Callable, params: Any, x: jax.Array, y: jax.Array, etas: jax.Array, steps: int
) -> tuple[Any, jax.Array]:
    r"""Full-batch GD on :math:`L=\frac1{2n}\sum_i\|f(x_i)-y_i\|^2` for every step size at once.

    One jitted ``lax.scan`` over steps, ``vmap`` over ``etas``.

    Returns:
      ``(final_params, losses)``: params batched over ``etas``; ``losses``
      ``(len(etas), steps + 1)``, the loss before each step and of the final
      parameters (NaN/inf once a run diverges).
    """
    from wideth import train

    def loss_fn(p):
        return train.mse(apply_fn(p, x), y)

    def one(eta):
        def step(p, _):
            value, grad = jax.value_and_grad(loss_fn)(p)
            return jax.tree.map(lambda a, g: a - eta * g, p, grad), value

        p, losses = jax.lax.scan(step, params, None, length=steps)
        return p, jnp.append(losses, loss_fn(p))

    return jax.jit(jax.vmap(one))(etas)


def mlp_sweep(
    key: jax.Array,
    n: int,
    width: int,
    multiples: np.ndarray,
    steps: int,
    quick: bool = True,
    depth: int = 1,
    quiet: bool = True,
) -> dict[str, Any]:
    r"""GD on a wide ReLU MLP for :math:`\eta = c\cdot 2/\lambda_0`, :math:`c` in ``multiples``.

    Full batch, MSE :math:`\frac1{2n}\sum\|f-y\|^2` (:func:`gd_sweep`); phases as
    for the uv model (:func:`classify`), plus ``dead`` when training converged
    with every last-layer ReLU off on the training set.

    Returns:
      dict with ``multiples``, ``lam0``, ``phase`` (list of str), ``eta_lam_final``
      (:math:`\eta\lambda_{\max}(\Theta_{\rm final}/n)`), ``loss`` ``(C, steps+1)``,
      ``peak_over_initial``.
    """
    from tqdm import tqdm

    model, apply_fn, params0, x, y, name = mlp_setup(key, n, width, depth, quick)
    lam0 = top_ntk_eigenvalue(apply_fn, params0, x)
    etas = np.asarray(multiples, np.float64) * 2 / lam0
    final_params, losses = gd_sweep(apply_fn, params0, x, y, jnp.asarray(etas, x.dtype), steps)
    losses = np.asarray(losses, np.float64)
    phases, finals, peaks = [], [], []
    for i in tqdm(range(len(etas)), desc="final NTKs", disable=quiet):
        phase = classify(losses[i], rtol=1e-4)
        p_i = jax.tree.map(lambda a, i=i: a[i], final_params)
        if phase != DIVERGENT and is_dead(model, p_i, x):
            phase = DEAD
        lam_final = top_ntk_eigenvalue(apply_fn, p_i, x) if phase != DIVERGENT else np.inf
        phases.append(phase)
        finals.append(etas[i] * lam_final)
        finite = losses[i][np.isfinite(losses[i])]
        peaks.append(finite.max() / losses[i][0])
    return {
        "dataset": name,
        "n": n,
        "width": width,
        "depth": depth,
        "steps": steps,
        "multiples": np.asarray(multiples),
        "lam0": lam0,
        "phase": phases,
        "eta_lam_final": np.array(finals),
        "loss": losses,
        "peak_over_initial": np.array(peaks),
    }


def plot_mlp(res: dict[str, Any]):
    """Figure: MLP loss curves and the final kernel vs learning rate, by phase."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    c = res["multiples"]
    for i, (ci, ph) in enumerate(zip(c, res["phase"], strict=True)):
        if ph == DIVERGENT:
            continue
        curve = res["loss"][i]
        axes[0].plot(
            np.arange(1, len(curve) + 1),
            curve,
            color=_COLORS[ph],
            alpha=0.8,
            lw=1,
            label=f"{ci:.3g}×2/λ₀ ({ph})",
        )
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel="step + 1",
        ylabel="train loss",
        title=f"ReLU MLP width {res['width']}, {res['dataset']} n={res['n']}",
    )
    axes[0].legend(fontsize=6, ncol=2)
    phases = np.array(res["phase"])
    for ph, col in _COLORS.items():
        sel = phases == ph
        if sel.any():
            y = np.where(np.isfinite(res["eta_lam_final"][sel]), res["eta_lam_final"][sel], 0)
            axes[1].scatter(2 * c[sel], y, color=col, label=ph, s=18)
    axes[1].axvline(2, color="gray", ls="--", lw=0.8)
    axes[1].axhline(2, color="gray", ls=":", lw=0.8)
    axes[1].plot(2 * c, 2 * c, "k-", lw=0.5, alpha=0.4)
    axes[1].set(
        xlabel="η λ₀",
        ylabel="η λ_final (divergent at 0)",
        title="Phases of the real network",
    )
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- figures

_COLORS = {LAZY: "tab:blue", CATAPULT: "tab:orange", DIVERGENT: "tab:red", DEAD: "k"}


def plot_uv(sweep: dict[str, Any], peaks: dict[str, np.ndarray], m: int):
    """Figure: uv-model phase diagram, loss curves, peak loss vs width."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    x = sweep["eta_lam"]
    ax = axes[0]
    for s in range(len(sweep["phase"])):
        for ph, col in _COLORS.items():
            sel = sweep["phase"][s] == ph
            fin = np.where(np.isfinite(sweep["eta_lam_final"][s]), sweep["eta_lam_final"][s], 5)
            ax.scatter(
                x[sel],
                np.clip(fin[sel], 0, 5),
                s=10,
                color=col,
                label=ph if s == 0 and sel.any() else None,
            )
    ax.axvline(2, color="gray", ls="--", lw=0.8)
    ax.axvline(4, color="gray", ls="--", lw=0.8)
    ax.axhline(2, color="gray", ls=":", lw=0.8)
    ax.plot(x, x, "k-", lw=0.5, alpha=0.4)
    ax.set(xlabel="η λ₀", ylabel="η λ_final (divergent clipped)", title=f"uv model, m={m}: phases")
    ax.legend(fontsize=8)
    ax = axes[1]
    for c in (1.5, 2.5, 3.0, 3.5, 4.2):
        i = int(np.argmin(np.abs(x - c)))
        curve = sweep["loss"][0, i]
        ax.plot(np.arange(1, len(curve) + 1), curve, label=f"ηλ₀={x[i]:.1f}")
    ax.set(
        yscale="log",
        xscale="log",
        xlabel="step + 1",
        ylabel="loss",
        ylim=(1e-12, 1e6),
        title="Loss curves",
    )
    ax.legend(fontsize=8)
    ax = axes[2]
    w = peaks["widths"]
    ax.errorbar(w, peaks["peak"].mean(1), yerr=peaks["peak"].std(1), fmt="o-", label="uv model")
    ax.plot(w, peaks["peak_recursion"].mean(1), "k+", ms=10, label="closed-form recursion")
    ax.plot(w, peaks["peak"].mean(1)[0] * w / w[0], "k:", label="∝ m")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="width m",
        ylabel="peak loss",
        title="Catapult height at ηλ₀ = 3",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- run


def run(cfg: Config) -> Result:
    """Run the uv-model and MLP catapult experiments; see the module docstring."""
    quick = cfg.quick
    key = jax.random.key(cfg.seed)
    k1, k2, k3 = jax.random.split(key, 3)
    checks: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}
    figures: list[str] = []

    # 1. uv model
    m = 1000 if quick else 10000
    eta_lam = np.round(np.linspace(0.5, 5.0, 46), 6)
    step = float(eta_lam[1] - eta_lam[0])
    steps = 1000 if quick else 3000
    seeds = 3 if quick else 8
    sw = uv_sweep(k1, m, eta_lam, steps, seeds)
    thr = np.array([thresholds(eta_lam, ph) for ph in sw["phase"]])
    cat = sw["phase"] == CATAPULT
    worst = float(sw["eta_lam_final"][cat].max()) if cat.any() else math.inf
    peaks = uv_peak_vs_width(k2, [1000, 10000, 100000], 3.0, steps, seeds)
    mean_peak = peaks["peak"].mean(1)
    slope = float(np.polyfit(np.log(peaks["widths"]), np.log(mean_peak), 1)[0])
    rec_err = float(np.max(np.abs(peaks["peak"] / peaks["peak_recursion"] - 1)))
    metrics["uv"] = {
        "m": m,
        "steps": steps,
        "eta_lam": eta_lam,
        "phase": sw["phase"],
        "eta_lam_final": sw["eta_lam_final"],
        "peak_loss": sw["peak_loss"],
        "lam0": sw["lam0"],
        "first_non_lazy": thr[:, 0],
        "first_divergent": thr[:, 1],
        "max_eta_lam_final_catapult": worst,
        "peak_vs_width": {**peaks, "slope": slope},
    }
    checks += [
        check(
            "uv lazy -> catapult threshold (eta*lambda0)",
            2.0,
            float(thr[:, 0].max()),
            step,
            note=f"midpoint of last lazy / first non-lazy grid point, worst of {seeds} seeds; "
            f"grid step {step:g}",
        ),
        check("uv lazy -> catapult threshold, earliest seed", 2.0, float(thr[:, 0].min()), step),
        check(
            "uv catapult -> divergent threshold (eta*lambda0)",
            4.0,
            float(thr[:, 1].max()),
            step,
            note="midpoint of last convergent / first divergent grid point, worst seed",
        ),
        check(
            "uv catapult -> divergent threshold, earliest seed", 4.0, float(thr[:, 1].min()), step
        ),
        check(
            "uv catapult phase: eta*lambda_final < 2",
            "< 2",
            worst,
            None,
            passed=bool(cat.any() and worst < 2),
            note="max over every catapult run of eta * final NTK",
        ),
        check(
            "uv peak loss at eta=3/lambda0 grows with m",
            "increasing in m",
            mean_peak,
            None,
            passed=bool(np.all(np.diff(mean_peak) > 0)),
            note="m = 1e3, 1e4, 1e5",
        ),
        check("uv peak loss ∝ m: log-log slope", 1.0, slope, 0.2),
        check(
            "uv model vs closed-form (f, lambda) recursion: peak loss",
            0.0,
            rec_err,
            0.01,
            note="max relative difference, float32",
        ),
    ]
    figures.append(save_figure(plot_uv(sw, peaks, m), cfg, "uv_model"))

    # 2. real ReLU MLP
    try:
        mult = (
            np.array([0.3, 0.6, 0.8, 0.9, 0.95, 1.05, 1.1, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3, 4])
            if quick
            else np.round(np.concatenate([np.arange(0.2, 1.0, 0.1), np.arange(1.1, 10.01, 0.3)]), 4)
        )
        mlp = mlp_sweep(
            k3,
            n=64 if quick else 256,
            width=2048 if quick else 8192,
            multiples=mult,
            steps=150 if quick else 500,
            quick=quick,
            quiet=cfg.quiet,
        )
        metrics["mlp"] = mlp
        ph = np.array(mlp["phase"])
        lazy_idx = np.flatnonzero(ph == LAZY)
        non_lazy_idx = np.flatnonzero(ph != LAZY)
        last_lazy = float(mult[lazy_idx.max()]) if len(lazy_idx) else math.nan
        first_non = float(mult[non_lazy_idx.min()]) if len(non_lazy_idx) else math.nan
        mlp_cat = ph == CATAPULT
        counts = {p: int(np.sum(ph == p)) for p in (LAZY, CATAPULT, DIVERGENT, DEAD)}
        mlp["counts"] = counts
        div = np.flatnonzero(ph == DIVERGENT)
        mlp["first_divergent_eta_lam"] = float(2 * mult[div.min()]) if len(div) else math.inf
        conv = np.flatnonzero(ph != DIVERGENT)
        mlp["eta_max_lam0_interval"] = [
            float(2 * mult[conv.max()]) if len(conv) else math.nan,
            mlp["first_divergent_eta_lam"],
        ]
        checks += [
            check(
                "MLP: last lazy eta below 2/lambda0 (units of 2/lambda0)",
                "< 1",
                last_lazy,
                None,
                passed=bool(last_lazy < 1),
            ),
            check(
                "MLP: lazy -> catapult boundary at 2/lambda0 (units of 2/lambda0)",
                1.0,
                0.5 * (last_lazy + first_non),
                max(0.5 * (first_non - last_lazy), 0.1),
                note="midpoint of last lazy / first non-lazy point; tolerance = half grid step",
            ),
            check(
                "MLP: catapult phase exists and ends with eta*lambda_final < 2",
                "< 2",
                float(mlp["eta_lam_final"][mlp_cat].max()) if mlp_cat.any() else math.nan,
                None,
                passed=bool(mlp_cat.any() and np.all(mlp["eta_lam_final"][mlp_cat] < 2)),
                note=f"phase counts {counts}",
            ),
            check(
                "MLP: divergent phase above the catapult phase",
                "every divergent eta > every converging eta",
                mlp["eta_max_lam0_interval"],
                None,
                passed=bool(
                    len(div) and mlp_cat.any() and mult[div].min() > mult[ph != DIVERGENT].max()
                ),
                note="measured: eta_max * lambda0 lies in this interval (uv model: 4)",
            ),
        ]
        figures.append(save_figure(plot_mlp(mlp), cfg, "mlp_phases"))
    except (ImportError, AttributeError) as e:  # pragma: no cover - modules not yet there
        metrics["mlp"] = {"skipped": repr(e)}

    mlp_txt = ""
    if "phase" in metrics.get("mlp", {}):
        mm = metrics["mlp"]
        mlp_txt = (
            f" ReLU MLP (width {mm['width']}, {mm['dataset']} n={mm['n']}): phase counts "
            f"{mm['counts']}, eta_max*lambda0 in {mm['eta_max_lam0_interval']}."
        )
    summary = (
        f"uv model (m={m}): lazy below eta*lambda0 = {thr[:, 0].min():.2f}, divergent from "
        f"{thr[:, 1].min():.2f} (theory 2 and 4); catapult runs end at eta*lambda <= {worst:.2f}; "
        f"peak loss grows as m^{slope:.2f}." + mlp_txt
    )
    config = {"uv_m": m, "uv_steps": steps, "uv_seeds": seeds, "uv_grid": eta_lam}
    return Result(metrics=metrics, checks=checks, figures=figures, config=config, summary=summary)


def main(argv=None):
    """Command line entry point."""
    return cli(run, __doc__, argv)


if __name__ == "__main__":
    from experiments.catapult import main as _main  # so metrics.json names the experiment

    _main()
