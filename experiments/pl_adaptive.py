"""PL-adaptive step size (ADLER) vs tuned SGD/Adam grids and learning-rate-free peers.

ADLER (Balboni, PhD thesis, Alg. 1; :func:`wideth.optim.pl_adaptive`) takes, at
every minibatch, the exact line-search step of the local Gauss--Newton model,
eta_k = G'G / (G'J'QJG + eps G'G), and smooths it in log space. Under the
Polyak--Lojasiewicz condition, which wide networks satisfy near initialisation
(Liu, Zhu & Belkin 2022), that local step is the right one and no learning-rate
search is needed.

Tasks: sklearn digits and the 5,000-image MNIST subset (full mode; digits only in
quick mode) x {MLP 3 hidden layers relu, MLP tanh, small CNN}, with 3 seeds (1 in
quick mode). Each method trains the same initial parameters on the same minibatch
sequence (batch 128, sampled with replacement) for the same number of steps:

* ADLER (beta = 0.99, eps = 1e-10, faithful to Alg. 1);
* SGD and Adam on a 10-point log-spaced learning-rate grid (the whole grid runs in
  one ``vmap``-ed ``lax.scan``);
* learning-rate-free peers from Optax with their shipped defaults: ``polyak_sgd``,
  ``contrib.prodigy``, ``contrib.dog``, ``contrib.dowg``, ``contrib.mechanize``
  (around ``adam(1.0)``), ``contrib.cocob``, ``contrib.schedule_free_sgd``
  (evaluated at its averaged iterate).

Beside them, and outside the checks, the unproven variant
``wideth.optim.contrib.pl_adaptive_relaxed`` (ADLER's step times 1.5, an
over-relaxed Cauchy step after Raydan & Svaiter 2002) runs the same way.

Measured: final train loss on the whole training set, test accuracy, and compute in
gradient-evaluation equivalents (one forward+backward = 1; ADLER's extra JVP = 1,
so ADLER costs 2 per step; a grid costs the sum of its runs).

Checks (the targets of the issue):

* ADLER's final train loss is within 1% of (or below) the best SGD grid point's, per
  task, at <= 1/5 of the grid's compute;
* ADLER's final train loss is below every learning-rate-free peer's on at least half
  of the tasks.

References:
  Balboni, PhD thesis, Algorithm 1 (ADLER).
  Polyak, Gradient methods for minimizing functionals, 1963; Lojasiewicz, 1963.
  Liu, Zhu & Belkin, Loss landscapes and optimization in over-parameterized
  non-linear systems and neural networks, 2022.
  Loizou et al., Stochastic Polyak step-size, 2021; Mishchenko & Defazio, Prodigy,
  2023; Ivgi et al., DoG, 2023; Khaled et al., DoWG, 2023; Cutkosky et al.,
  Mechanic, 2023; Orabona & Tommasi, COCOB, 2017; Defazio et al., schedule-free, 2024.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from experiments._common import Config, Result, check, cli, save_figure

GRID_POINTS = 10
ADLER_COST = 2.0  # gradient + one JVP through the network, in gradient evaluations
RELAXATION = 1.5  # wideth.optim.contrib.pl_adaptive_relaxed, reported beside ADLER, not checked


class Task(NamedTuple):
    """One (dataset, model) pair with per-seed initial parameters stacked on axis 0."""

    name: str
    apply_fn: Callable[[Any, jax.Array], jax.Array]
    params: Any  # leaves (num_seeds, ...)
    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array


def peers() -> dict[str, Callable[[], optax.GradientTransformation]]:
    """Learning-rate-free Optax optimizers, with their shipped defaults."""
    c = optax.contrib
    return {
        "polyak_sgd": lambda: optax.polyak_sgd(),
        "prodigy": lambda: c.prodigy(),
        "dog": lambda: c.dog(),
        "dowg": lambda: c.dowg(),
        "mechanize": lambda: c.mechanize(optax.adam(1.0)),
        "cocob": lambda: c.cocob(),
        "schedule_free_sgd": lambda: c.schedule_free_sgd(),
    }


def train_run(
    tx: optax.GradientTransformation,
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    data: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
    key: jax.Array,
    steps: int,
    batch_size: int,
    log_every: int,
) -> dict[str, jax.Array]:
    """One minibatch training run as a single ``lax.scan`` (vmappable over everything).

    Every transform gets ``value``, ``outputs_fn`` and ``loss_of_outputs`` and ignores
    what it does not need (``optax.with_extra_args_support``).

    Returns:
        dict with ``curve`` (mean minibatch loss per window of ``log_every`` steps),
        ``eta`` (ADLER's step per window, nan for other methods), ``final_loss`` (whole
        training set), ``train_acc``, ``test_acc``.
    """
    from wideth.optim import PLAdaptiveState
    from wideth.train import accuracy, xent

    x_train, y_train, x_test, y_test = data
    tx = optax.with_extra_args_support(tx)
    n = x_train.shape[0]
    # The batches of wideth.train.fit: step t draws distinct rows with fold_in(key, t).
    ts = jnp.arange(steps // log_every * log_every).reshape(-1, log_every)
    choose = lambda t: jax.random.choice(
        jax.random.fold_in(key, t), n, (batch_size,), replace=False
    )

    def eta_of(state: Any) -> jax.Array:
        found = [
            s
            for s in jax.tree.leaves(state, is_leaf=lambda t: isinstance(t, PLAdaptiveState))
            if isinstance(s, PLAdaptiveState)
        ]
        return found[0].eta_hat.astype(jnp.float32) if found else jnp.full([], jnp.nan)

    def step(carry, t):
        p, s = carry
        i = choose(t)
        xb, yb = x_train[i], y_train[i]
        f = lambda q: apply_fn(q, xb)
        ell = lambda out: xent(out, yb)
        loss, g = jax.value_and_grad(lambda q: ell(f(q)))(p)
        u, s = tx.update(g, s, p, value=loss, outputs_fn=f, loss_of_outputs=ell)
        return (optax.apply_updates(p, u), s), (loss, eta_of(s))

    def window(carry, ids):
        carry, (loss, eta) = jax.lax.scan(step, carry, ids)
        return carry, (jnp.mean(loss), eta[-1])

    (p, s), (curve, eta) = jax.lax.scan(window, (params, tx.init(params)), ts)
    if any(
        isinstance(t, optax.contrib.ScheduleFreeState)
        for t in jax.tree.leaves(
            s, is_leaf=lambda t: isinstance(t, optax.contrib.ScheduleFreeState)
        )
    ):
        p = optax.contrib.schedule_free_eval_params(s, p)
    logits = apply_fn(p, x_train)
    return {
        "curve": curve,
        "eta": eta,
        "final_loss": xent(logits, y_train),
        "train_acc": accuracy(logits, y_train),
        "test_acc": accuracy(apply_fn(p, x_test), y_test),
    }


def _nan_to_inf(a: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(a), a, np.inf)


def run_task(
    task: Task,
    keys: jax.Array,
    lrs: dict[str, np.ndarray],
    steps: int,
    batch_size: int,
    log_every: int,
    peer_names: Sequence[str] | None = None,
    quiet: bool = True,
    grid_mode: str = "vmap",
) -> dict[str, Any]:
    """All methods on one task; seeds (and grid points) are vmapped.

    ``peer_names`` selects learning-rate-free peers (default: all of :func:`peers`).
    ``grid_mode="map"`` runs the learning-rate grid with ``lax.map`` inside one
    compiled program instead of ``vmap`` (on CPU a vmapped convolution over
    per-run weights is much slower than the same runs in sequence).
    """
    if grid_mode not in ("vmap", "map"):
        raise ValueError(f"grid_mode must be 'vmap' or 'map', got {grid_mode!r}")
    from wideth.optim import pl_adaptive
    from wideth.optim.contrib import pl_adaptive_relaxed

    data = (task.x_train, task.y_train, task.x_test, task.y_test)
    args = (task.apply_fn, steps, batch_size, log_every)
    # Data, keys and grids are jit arguments, not closure constants (XLA would fold them).

    def single(make: Callable[[], Any]) -> Callable[..., Any]:
        f = lambda p, k, d: train_run(make(), args[0], p, d, k, *args[1:])
        return jax.jit(jax.vmap(f, in_axes=(0, 0, None)))

    def gridded(factory: Callable[[Any], Any]) -> Callable[..., Any]:
        one = lambda p, k, d: lambda lr: train_run(factory(lr), args[0], p, d, k, *args[1:])
        if grid_mode == "vmap":
            f = lambda p, k, d, g: jax.vmap(one(p, k, d))(g)
        else:  # one compiled program, grid points in sequence (no batched convolutions)
            f = lambda p, k, d, g: jax.lax.map(one(p, k, d), g)
        return jax.jit(jax.vmap(f, in_axes=(0, 0, None, None)))

    out: dict[str, Any] = {}
    jobs: list[tuple[str, Callable[[], Any]]] = []
    for name, factory in (("sgd", optax.sgd), ("adam", optax.adam)):
        grid = jnp.asarray(lrs[name], jnp.float32)
        jobs.append((name, lambda fn=gridded(factory), g=grid: fn(task.params, keys, data, g)))
    variants = {"adler": pl_adaptive, "adler_relaxed": lambda: pl_adaptive_relaxed(RELAXATION)}
    all_peers = peers()
    variants.update({n: all_peers[n] for n in (all_peers if peer_names is None else peer_names)})
    for name, make in variants.items():
        jobs.append((name, lambda fn=single(make): fn(task.params, keys, data)))
    timings = {}
    for name, job in tqdm(jobs, desc=task.name, disable=quiet, leave=False):
        t0 = time.perf_counter()
        out[name] = jax.tree.map(np.asarray, job())
        timings[name] = time.perf_counter() - t0
    out["wall_s"] = timings
    return out


def _peers_in(res: dict[str, Any]) -> list[str]:
    return [n for n in peers() if n in res]


def summarise(res: dict[str, Any], steps: int) -> dict[str, Any]:
    """Per-task numbers: best grid points, ADLER, peers; means over seeds."""
    s: dict[str, Any] = {}
    for name in ("sgd", "adam"):
        fl = _nan_to_inf(res[name]["final_loss"])  # (seeds, grid)
        mean_over_seeds = np.exp(np.mean(np.log(np.maximum(fl, 1e-30)), axis=0))
        best = int(np.argmin(mean_over_seeds))
        s[name] = {
            "final_loss_grid": mean_over_seeds,
            "best_index": best,
            "final_loss": float(mean_over_seeds[best]),
            "test_acc": float(np.mean(res[name]["test_acc"][:, best])),
            "compute": float(fl.shape[1] * steps),
        }
    for name in ["adler", "adler_relaxed", *_peers_in(res)]:
        fl = _nan_to_inf(res[name]["final_loss"])
        s[name] = {
            "final_loss": float(np.exp(np.mean(np.log(np.maximum(fl, 1e-30))))),
            "final_loss_seeds": fl,
            "test_acc": float(np.mean(res[name]["test_acc"])),
            "compute": float((ADLER_COST if name.startswith("adler") else 1.0) * steps),
        }
    s["adler"]["eta_final"] = float(np.mean(res["adler"]["eta"][:, -1]))
    return s


# ----------------------------------------------------------------------------- tasks


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "datasets": ["digits"],
            "models": ["mlp_relu", "mlp_tanh", "cnn"],
            "seeds": 1,
            "steps": 200,
            "batch_size": 128,
            "log_every": 10,
            "width": 128,
            "depth": 2,
            "channels": 8,
        }
    return {
        "datasets": ["digits", "mnist5k"],
        "models": ["mlp_relu", "mlp_tanh", "cnn"],
        "seeds": 3,
        "steps": 600,
        "batch_size": 128,
        "log_every": 10,
        "width": 256,
        "channels": 32,
    }


def learning_rate_grids(num: int = GRID_POINTS) -> dict[str, np.ndarray]:
    """Log-spaced grids: SGD 1e-3..10, Adam 1e-5..1e-1 (each brackets its best point)."""
    return {"sgd": np.logspace(-3, 1, num), "adam": np.logspace(-5, -1, num)}


def build_task(dataset: str, model: str, seed: int, num_seeds: int, sz: dict[str, Any]) -> Task:
    """Data from :mod:`wideth.data`, models from :mod:`wideth.models`, one init per seed."""
    from flax import nnx

    from wideth import data, models

    ds = data.digits(seed=seed) if dataset == "digits" else data.mnist5k(seed=seed)
    x_train, x_test = jnp.asarray(ds.x_train), jnp.asarray(ds.x_test)
    y_train, y_test = jnp.asarray(ds.y_train), jnp.asarray(ds.y_test)
    in_dim = int(np.prod(x_train.shape[1:]))
    side = int(round(in_dim**0.5))
    params_list, apply_fn = [], None
    for s in range(num_seeds):
        rngs = nnx.Rngs(seed * 1000 + s)
        if model.startswith("mlp"):
            act = model.split("_", 1)[1]
            net = models.MLP(
                in_dim,
                sz["width"],
                sz["depth"],
                ds.num_classes,
                activation=act,
                parameterization="standard",
                rngs=rngs,
            )
            flat = lambda f: lambda p, x: f(p, x.reshape(x.shape[0], -1))
        else:
            net = models.CNN(
                1, sz["channels"], ds.num_classes, parameterization="standard", rngs=rngs
            )
            flat = lambda f: lambda p, x: f(p, x.reshape(x.shape[0], side, side, 1))
        fn, params = models.functional(net)
        apply_fn = flat(fn)
        params_list.append(params)
    params = jax.tree.map(lambda *a: jnp.stack(a), *params_list)
    return Task(f"{dataset}/{model}", apply_fn, params, x_train, y_train, x_test, y_test)


def _fit_consistency(task: Task, key, steps, batch_size, log_every, res) -> dict[str, float]:
    """ADLER through :func:`wideth.train.fit` vs the vmapped runner (seed 0, same batches)."""
    from wideth.optim import pl_adaptive
    from wideth.train import fit, xent

    params = jax.tree.map(lambda a: a[0], task.params)
    out = fit(
        task.apply_fn,
        params,
        pl_adaptive(),
        (task.x_train, task.y_train),
        "xent",
        steps=steps // log_every * log_every,
        batch_size=batch_size,
        key=key,
        log_every=log_every,
        quiet=True,
    )
    via_fit = float(xent(task.apply_fn(out.params, task.x_train), task.y_train))
    runner = float(res["adler"]["final_loss"][0])
    return {
        "task": task.name,
        "fit_final_loss": via_fit,
        "runner_final_loss": runner,
        "rel_diff": abs(via_fit - runner) / abs(runner),
    }


# ----------------------------------------------------------------------------- figures


def _fig_curves(results: dict[str, Any], summary: dict[str, Any], log_every: int):
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for ax, tn in zip(axes[0], names, strict=True):
        res, s = results[tn], summary[tn]
        t = np.arange(1, res["adler"]["curve"].shape[-1] + 1) * log_every
        ax.semilogy(t, res["adler"]["curve"].mean(0), "k", lw=2.2, label="ADLER")
        if "adler_relaxed" in res:
            ax.semilogy(
                t,
                res["adler_relaxed"]["curve"].mean(0),
                "k:",
                lw=1.6,
                label=f"ADLER x{RELAXATION} (contrib)",
            )
        for name, col in (("sgd", "C0"), ("adam", "C1")):
            b = s[name]["best_index"]
            ax.semilogy(t, res[name]["curve"][:, b].mean(0), col, lw=1.6, label=f"best {name}")
        for i, name in enumerate(_peers_in(res)):
            ax.semilogy(
                t,
                res[name]["curve"].mean(0),
                color=f"C{i + 2}",
                lw=0.9,
                alpha=0.8,
                ls="--",
                label=name,
            )
        ax.set_title(tn)
        ax.set_xlabel("step")
    axes[0, 0].set_ylabel("minibatch train loss")
    axes[0, -1].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    return fig


def _fig_eta(results: dict[str, Any], summary: dict[str, Any], lrs, log_every: int):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for i, tn in enumerate(results):
        eta = results[tn]["adler"]["eta"]
        t = np.arange(1, eta.shape[-1] + 1) * log_every
        ax.semilogy(t, eta.mean(0), color=f"C{i}", label=f"ADLER eta_hat, {tn}")
        best = lrs["sgd"][summary[tn]["sgd"]["best_index"]]
        ax.axhline(best, color=f"C{i}", ls=":", lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("step size")
    ax.set_title("ADLER step (solid) vs best SGD grid lr (dotted)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _fig_grid(summary: dict[str, Any], lrs):
    import matplotlib.pyplot as plt

    names = list(summary)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
    for ax, tn in zip(axes[0], names, strict=True):
        s = summary[tn]
        for name, col in (("sgd", "C0"), ("adam", "C1")):
            ax.loglog(lrs[name], s[name]["final_loss_grid"], "o-", color=col, label=name)
        ax.axhline(s["adler"]["final_loss"], color="k", lw=2, label="ADLER")
        best_peer = min(_peers_in(s), key=lambda n: s[n]["final_loss"])
        ax.axhline(
            s[best_peer]["final_loss"], color="C2", ls="--", label=f"best LR-free: {best_peer}"
        )
        ax.set_xlabel("learning rate")
        ax.set_title(tn)
    axes[0, 0].set_ylabel("final train loss")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- run


def run(cfg: Config) -> Result:
    sz = _sizes(cfg.quick)
    lrs = learning_rate_grids()
    steps, bs, log_every = sz["steps"], sz["batch_size"], sz["log_every"]
    results, summary = {}, {}
    keys = jax.random.split(jax.random.key(cfg.seed), sz["seeds"])
    tasks = [(d, m) for d in sz["datasets"] for m in sz["models"]]
    consistency = None
    for d, m in tqdm(tasks, desc="pl_adaptive", disable=cfg.quiet):
        task = build_task(d, m, cfg.seed, sz["seeds"], sz)
        mode = "map" if m == "cnn" and jax.default_backend() == "cpu" else "vmap"
        results[task.name] = run_task(
            task, keys, lrs, steps, bs, log_every, quiet=cfg.quiet, grid_mode=mode
        )
        summary[task.name] = summarise(results[task.name], steps)
        if not cfg.quiet:
            walls = ", ".join(f"{k} {v:.0f}s" for k, v in results[task.name]["wall_s"].items())
            print(f"{task.name}: {walls}", flush=True)
        if consistency is None:
            consistency = _fit_consistency(task, keys[0], steps, bs, log_every, results[task.name])

    checks, table = [], {}
    wins = 0
    for tn, s in summary.items():
        best_sgd = s["sgd"]["final_loss"]
        adler = s["adler"]["final_loss"]
        ratio = adler / best_sgd
        compute_ratio = s["adler"]["compute"] / s["sgd"]["compute"]
        best_peer = min(peers(), key=lambda n: s[n]["final_loss"])
        beats_all = all(adler < s[n]["final_loss"] for n in peers())
        wins += beats_all
        checks.append(
            check(
                f"{tn}: ADLER final train loss <= 1.01 x best-of-grid SGD, at <= 1/5 grid compute",
                "ratio <= 1.01 and compute ratio <= 0.2",
                {"loss_ratio": ratio, "compute_ratio": compute_ratio},
                0.01,
                passed=bool(ratio <= 1.01 and compute_ratio <= 0.2 + 1e-12),
                note=(
                    f"ADLER {adler:.3g} vs best SGD {best_sgd:.3g} "
                    f"(lr {lrs['sgd'][s['sgd']['best_index']]:.3g}); geometric mean over seeds"
                ),
            )
        )
        table[tn] = {
            "adler_loss": adler,
            "best_sgd_loss": best_sgd,
            "best_sgd_lr": float(lrs["sgd"][s["sgd"]["best_index"]]),
            "best_adam_loss": s["adam"]["final_loss"],
            "best_adam_lr": float(lrs["adam"][s["adam"]["best_index"]]),
            "best_peer": best_peer,
            "best_peer_loss": s[best_peer]["final_loss"],
            "adler_beats_all_peers": beats_all,
            "adler_test_acc": s["adler"]["test_acc"],
            "best_sgd_test_acc": s["sgd"]["test_acc"],
            "adler_eta_final": s["adler"]["eta_final"],
            "contrib_relaxed_loss": s["adler_relaxed"]["final_loss"],
            "contrib_relaxed_test_acc": s["adler_relaxed"]["test_acc"],
            "contrib_relaxed_beats_all_peers": all(
                s["adler_relaxed"]["final_loss"] < s[n]["final_loss"] for n in peers()
            ),
        }
    checks.append(
        check(
            "ADLER beats every learning-rate-free peer on at least half of the tasks",
            f">= {len(summary) / 2:g} of {len(summary)} tasks",
            wins,
            None,
            passed=wins >= len(summary) / 2,
            note="final train loss (geometric mean over seeds) below all 7 peers",
        )
    )

    checks.append(
        check(
            "ADLER via wideth.train.fit reproduces the vmapped runner (same batches)",
            consistency["fit_final_loss"],
            consistency["runner_final_loss"],
            0.02,
            relative=True,
            note=f"{consistency['task']}, seed 0; float32, different fusion order",
        )
    )
    figures = [
        save_figure(_fig_curves(results, summary, log_every), cfg, "loss_curves"),
        save_figure(_fig_eta(results, summary, lrs, log_every), cfg, "eta_hat"),
        save_figure(_fig_grid(summary, lrs), cfg, "final_loss_vs_lr"),
    ]
    t_axis = (np.arange(steps // log_every) + 1) * log_every
    metrics = {
        "table": table,
        "summary": summary,
        "curves": {
            tn: {
                "step": t_axis,
                **{n: r[n]["curve"].mean(0) for n in ["adler", "adler_relaxed", *peers()]},
                **{
                    f"best_{n}": r[n]["curve"][:, summary[tn][n]["best_index"]].mean(0)
                    for n in ("sgd", "adam")
                },
                "adler_eta_hat": r["adler"]["eta"].mean(0),
            }
            for tn, r in results.items()
        },
        "learning_rates": lrs,
        "fit_consistency": consistency,
        "wall_s": {tn: r["wall_s"] for tn, r in results.items()},
        "compute_units": "gradient evaluations (ADLER = 2 per step; a grid = sum of its runs)",
    }
    lines = [
        f"{tn}: ADLER {v['adler_loss']:.3g} vs best SGD {v['best_sgd_loss']:.3g}, best LR-free "
        f"{v['best_peer']} {v['best_peer_loss']:.3g}; test acc ADLER {v['adler_test_acc']:.3f} "
        f"vs SGD {v['best_sgd_test_acc']:.3f}"
        for tn, v in table.items()
    ]
    for tn, v in table.items():
        if v["adler_loss"] > 1.01 * v["best_sgd_loss"]:
            eta = np.asarray(results[tn]["adler"]["eta"]).mean(0)
            best_lr = float(lrs["sgd"][summary[tn]["sgd"]["best_index"]])
            lines.append(
                f"{tn}: ADLER loses to tuned SGD. Its step eta_hat (log-space average, beta 0.99) "
                f"was {eta[0]:.3g} at the start and {eta[-1]:.3g} at the end, against the best "
                f"grid learning rate {best_lr:.3g}: the greedy Gauss-Newton line-search step is "
                "conservative, and the long log-average lags as the cross-entropy curvature "
                "falls during training."
            )
    config = {
        **sz,
        "grid_points": GRID_POINTS,
        "learning_rates": lrs,
        "adler": {"beta": 0.99, "eps": 1e-10},
        "loss": "mean softmax cross-entropy",
        "parameterization": "standard",
        "mode_note": (
            "quick: digits only, 1 seed, 200 steps, MLP width 128, CNN 8 channels, 10-point grids"
            if cfg.quick
            else "full: digits and MNIST-5k, 3 seeds, 600 steps, MLP width 256, CNN 32 channels"
        ),
    }
    return Result(
        metrics=metrics, checks=checks, figures=figures, config=config, summary="\n".join(lines)
    )


def main(argv=None):
    return cli(run, __doc__, argv)


if __name__ == "__main__":
    main()
