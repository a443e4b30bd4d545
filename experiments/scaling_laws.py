"""Scaling laws: the Chinchilla refit with bootstrap intervals, and our own width x data sweep.

Part 1 refits L(N, D) = E + A/N^alpha + B/D^beta to the 245 Chinchilla training runs
(Hoffmann et al. 2022, Figure 4, as extracted by Epoch AI) the way Besiroglu et al.
(2024) do: log-sum-exp parameterisation, Huber loss (delta = 1e-3) on log L, L-BFGS
from a grid of 4500 initialisations, best kept; 1000 bootstrap refits give the
intervals. The main fit uses the 240 points left after dropping the 5 highest-loss
runs (Besiroglu et al.'s choice); the fit on all 245 is reported beside it. Checks:
the parameters and their bootstrap standard errors agree with Besiroglu et al.'s
Table 1 within stated tolerances, and Hoffmann et al.'s beta = 0.28 lies outside our
interval (the replication's finding). The figure shows isoFLOP profiles of the
fitted law with the data, the loss contours over (C, N) and the compute-optimal
frontier N_opt(C) (closed form with C = 6ND); tokens per parameter at Chinchilla's
compute (5.76e23 FLOP) are reported with their bootstrap interval.

Part 2 is our own sweep: one-hidden-layer ReLU MLPs (wideth.models.MLP, standard
parameterisation) of several widths trained with full-batch Adam on nested subsets
of sklearn digits (wideth.data) of several sizes; L is the test cross-entropy at the
best of the evaluation points along training (early stopping on the 449 test
images). All (size, seed) runs of one width train at once: one ``vmap``-ed
``lax.scan`` over masked full-batch losses, so a width costs one compilation. The
same fitter gives the model-size and data exponents with bootstrap intervals; a
second fit without the largest data size predicts it (extrapolation check).

References:
  Hoffmann et al., Training Compute-Optimal Large Language Models, 2022.
  Besiroglu, Erdil, Barnett, You, Chinchilla Scaling: A replication attempt, 2024.
  Kaplan et al., Scaling Laws for Neural Language Models, 2020.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments._common import Config, Result, check, cli, save_figure
from wideth.scaling import (
    BESIROGLU_2024,
    HOFFMANN_2022,
    ChinchillaFit,
    datasets,
    fit_chinchilla,
    fit_power_law,
)

CHINCHILLA_COMPUTE = 5.76e23  # FLOP of Chinchilla (70B parameters, 1.4T tokens)
NAMES = ("E", "A", "B", "alpha", "beta")
#: Bootstrap standard errors reported by Besiroglu et al. (2024), Table 1.
BESIROGLU_2024_SE = {"E": 0.03, "A": 124.58, "B": 1293.23, "alpha": 0.02, "beta": 0.02}
#: Tolerances of the checks against Besiroglu et al. (absolute; relative for A, B).
TOLERANCES = {"E": 0.03, "A": 0.10, "B": 0.10, "alpha": 0.02, "beta": 0.02}


# ----------------------------------------------------------------------------- part 1


def chinchilla_refit(
    n_bootstrap: int, key: jax.Array, quiet: bool = True
) -> tuple[ChinchillaFit, ChinchillaFit]:
    """Fits on the 240-point set (5 highest-loss runs dropped) and on all 245 points."""
    k1, k2 = jax.random.split(key)
    fit240 = fit_chinchilla(
        *datasets.chinchilla(exclude_outliers=True), n_bootstrap=n_bootstrap, key=k1, quiet=quiet
    )
    fit245 = fit_chinchilla(*datasets.chinchilla(), n_bootstrap=n_bootstrap, key=k2, quiet=quiet)
    return fit240, fit245


def chinchilla_checks(fit: ChinchillaFit) -> list[dict[str, Any]]:
    checks = []
    for k in NAMES:
        rel = k in ("A", "B")
        checks.append(
            check(
                f"chinchilla_240_{k}_vs_besiroglu",
                BESIROGLU_2024[k],
                fit.params[k],
                TOLERANCES[k],
                relative=rel,
                note="fit on the 240-point set; Besiroglu et al. 2024 Table 1",
            )
        )
    se = fit.stderr
    for k in NAMES:
        checks.append(
            check(
                f"chinchilla_240_{k}_bootstrap_se_vs_besiroglu",
                BESIROGLU_2024_SE[k],
                se[k],
                0.35,
                relative=True,
                note="bootstrap standard error, 240-point set",
            )
        )
    lo, hi = fit.ci["beta"]
    checks.append(
        check(
            "hoffmann_beta_outside_our_interval",
            f"beta_Hoffmann = {HOFFMANN_2022['beta']} outside [{lo:.3f}, {hi:.3f}]",
            HOFFMANN_2022["beta"],
            None,
            passed=not lo <= HOFFMANN_2022["beta"] <= hi,
            note=f"{int(round(100 * fit.ci_level))}% bootstrap interval, 240-point set",
        )
    )
    return checks


def figure_chinchilla(fit: ChinchillaFit, cfg: Config) -> str:
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    N, D, L = datasets.chinchilla(exclude_outliers=True)
    C = 6 * N * D
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    ax = axes[0]
    budgets = np.array([6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21])
    cmap = plt.get_cmap("viridis")
    norm = LogNorm(budgets.min(), budgets.max())
    for c in budgets:
        near = np.abs(np.log(C / c)) < 0.15
        ax.scatter(N[near], L[near], s=10, color=cmap(norm(c)))
        n_grid = np.logspace(7, 11, 200)
        ax.plot(n_grid, np.asarray(fit.predict(n_grid, c / (6 * n_grid))), color=cmap(norm(c)))
        n_opt, _ = fit.compute_optimal(c)
        ax.plot(float(n_opt), float(fit.predict(n_opt, c / (6 * n_opt))), "k*", ms=8)
    ax.set(xscale="log", xlabel="parameters N", ylabel="loss", ylim=(2.0, 5.0))
    ax.set_title("isoFLOP profiles: data (dots) and fit (lines); * = optimum")
    ax = axes[1]
    cs = np.logspace(18, 25, 200)
    ns = np.logspace(7, 12, 200)
    cc, nn = np.meshgrid(cs, ns)
    ll = np.asarray(fit.predict(nn, cc / (6 * nn)))
    cont = ax.contour(cc, nn, ll, levels=np.linspace(1.9, 3.6, 18), cmap="magma", linewidths=0.8)
    ax.clabel(cont, fontsize=6)
    n_opt, _ = fit.compute_optimal(cs)
    ax.plot(cs, np.asarray(n_opt), "b-", lw=2, label="compute-optimal N_opt(C)")
    ax.scatter(C, N, s=4, c="gray", alpha=0.5, label="Chinchilla runs")
    ax.plot(CHINCHILLA_COMPUTE, 70e9, "r*", ms=12, label="Chinchilla (70B, 1.4T tokens)")
    ax.set(xscale="log", yscale="log", xlabel="compute C = 6ND (FLOP)", ylabel="parameters N")
    ax.set_title("loss contours of the fit (240 points)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return save_figure(fig, cfg, "chinchilla_refit")


# ----------------------------------------------------------------------------- part 2


def param_count(in_dim: int, width: int, depth: int, out_dim: int) -> int:
    """Parameters of an MLP with ``depth`` hidden layers (weights and biases)."""
    dims = [in_dim] + [width] * depth + [out_dim]
    return int(sum(a * b + b for a, b in zip(dims[:-1], dims[1:], strict=True)))


def train_sweep(
    ds: Any,
    width: int,
    sizes: tuple[int, ...],
    seeds: tuple[int, ...],
    *,
    steps: int,
    lr: float,
    eval_every: int,
    depth: int = 1,
    key: jax.Array,
) -> np.ndarray:
    """Test-loss curves ``(len(sizes), len(seeds), steps // eval_every + 1)`` of one width.

    The training sets are nested: size ``n`` uses the first ``n`` rows of one random
    permutation (``key``). Every (size, seed) run is full-batch Adam on the masked
    mean cross-entropy, all in one ``vmap``-ed ``lax.scan``.
    """
    from flax import nnx

    from wideth import models, train

    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    xt, yt = jnp.asarray(ds.x_test), jnp.asarray(ds.y_test)
    n_train = x.shape[0]
    perm = np.asarray(jax.random.permutation(key, n_train))
    masks = np.zeros((len(sizes), n_train), np.float32)
    for j, n in enumerate(sizes):
        masks[j, perm[:n]] = 1.0
    apply_fn = None
    param_list = []
    for s in seeds:
        net = models.MLP(
            x.shape[1],
            width,
            depth,
            out_dim=y.shape[1],
            parameterization="standard",
            rngs=nnx.Rngs(s),
        )
        apply_fn, p = models.functional(net)
        param_list.append(p)
    # Flatten (size, seed) into one batch axis.
    params = jax.tree.map(
        lambda *a: jnp.stack([a[i] for _ in sizes for i in range(len(seeds))]), *param_list
    )
    masks_all = jnp.asarray(np.repeat(masks, len(seeds), axis=0))
    tx = optax.adam(lr)

    def loss_fn(p, m):
        logp = jax.nn.log_softmax(apply_fn(p, x), axis=-1)
        return -jnp.sum(m * jnp.sum(y * logp, axis=-1)) / jnp.sum(m)

    def one(p, m):
        def step(carry, _):
            p, s = carry
            g = jax.grad(loss_fn)(p, m)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        def chunk(carry, _):
            carry, _ = jax.lax.scan(step, carry, None, length=eval_every)
            return carry, train.xent(apply_fn(carry[0], xt), yt)

        first = train.xent(apply_fn(p, xt), yt)
        _, curve = jax.lax.scan(chunk, (p, tx.init(p)), None, length=steps // eval_every)
        return jnp.concatenate([first[None], curve])

    curves = jax.jit(jax.vmap(one))(params, masks_all)
    return np.asarray(curves).reshape(len(sizes), len(seeds), -1)


def sweep(
    widths: tuple[int, ...],
    sizes: tuple[int, ...],
    seeds: tuple[int, ...],
    *,
    steps: int,
    lr: float,
    eval_every: int,
    key: jax.Array,
    quiet: bool = True,
) -> dict[str, np.ndarray]:
    """Early-stopped test loss for every (width, size), mean over seeds."""
    from tqdm.auto import tqdm

    from wideth import data

    ds = data.digits()
    rows = []
    for w in tqdm(widths, desc="widths", disable=quiet):
        curves = train_sweep(
            ds, w, sizes, seeds, steps=steps, lr=lr, eval_every=eval_every, key=key
        )
        best = curves.min(axis=-1).mean(axis=1)  # (sizes,)
        n_params = param_count(ds.x_train.shape[1], w, 1, ds.y_train.shape[1])
        rows += [(w, n_params, n, best[j]) for j, n in enumerate(sizes)]
    arr = np.array(rows, np.float64)
    return {"width": arr[:, 0], "N": arr[:, 1], "D": arr[:, 2], "L": arr[:, 3]}


def figure_sweep(res: dict[str, np.ndarray], fit: ChinchillaFit, cfg: Config) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    cmap = plt.get_cmap("viridis")
    widths, sizes = np.unique(res["width"]), np.unique(res["D"])
    for i, w in enumerate(widths):
        sel = res["width"] == w
        col = cmap(i / max(1, len(widths) - 1))
        axes[0].scatter(res["D"][sel], res["L"][sel], color=col, s=18, label=f"width {int(w)}")
        dd = np.logspace(np.log10(sizes.min()), np.log10(sizes.max()), 100)
        axes[0].plot(dd, np.asarray(fit.predict(res["N"][sel][0], dd)), color=col)
    for j, n in enumerate(sizes):
        sel = res["D"] == n
        col = cmap(j / max(1, len(sizes) - 1))
        axes[1].scatter(res["N"][sel], res["L"][sel], color=col, s=18, label=f"D = {int(n)}")
        nn = np.logspace(np.log10(res["N"].min()), np.log10(res["N"].max()), 100)
        axes[1].plot(nn, np.asarray(fit.predict(nn, n)), color=col)
    p, ci = fit.params, fit.ci
    axes[0].set(xscale="log", yscale="log", xlabel="training examples D", ylabel="test loss")
    axes[0].set_title(f"beta = {p['beta']:.2f} [{ci['beta'][0]:.2f}, {ci['beta'][1]:.2f}]")
    axes[1].set(xscale="log", yscale="log", xlabel="parameters N", ylabel="test loss")
    axes[1].set_title(f"alpha = {p['alpha']:.2f} [{ci['alpha'][0]:.2f}, {ci['alpha'][1]:.2f}]")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle("digits MLP sweep: early-stopped test cross-entropy and the fitted L(N, D)")
    fig.tight_layout()
    return save_figure(fig, cfg, "sweep")


def sweep_fits(
    res: dict[str, np.ndarray], n_bootstrap: int, key: jax.Array, quiet: bool = True
) -> dict[str, Any]:
    """Joint L(N, D) fit, 1-D power laws, and the extrapolation to the largest D."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    N, D, L = res["N"], res["D"], res["L"]
    joint = fit_chinchilla(N, D, L, n_bootstrap=n_bootstrap, key=k1, quiet=quiet)
    d_max, n_max = D.max(), N.max()
    held = D < d_max
    extrap = fit_chinchilla(N[held], D[held], L[held], n_bootstrap=0, key=k2, quiet=quiet)
    pred = np.asarray(extrap.predict(N[~held], D[~held]))
    sel_d = N == n_max  # loss vs data at the largest width
    sel_n = D == d_max  # loss vs model size at the largest data size
    pl_d = fit_power_law(D[sel_d], L[sel_d], n_bootstrap=n_bootstrap, key=k3)
    pl_n = fit_power_law(N[sel_n], L[sel_n], n_bootstrap=n_bootstrap, key=k4)
    rel = np.abs(np.asarray(joint.predict(N, D)) / L - 1)
    return {
        "joint": joint,
        "extrapolation_rel_err": np.abs(pred / L[~held] - 1),
        "fit_rel_err": rel,
        "power_law_vs_D": pl_d,
        "power_law_vs_N": pl_n,
    }


# ----------------------------------------------------------------------------- run


def run(cfg: Config) -> Result:
    key = jax.random.key(cfg.seed)
    k_chin, k_sweep, k_fit = jax.random.split(key, 3)
    n_boot = 1000
    fit240, fit245 = chinchilla_refit(n_boot, k_chin, quiet=cfg.quiet)
    checks = chinchilla_checks(fit240)
    figures = [figure_chinchilla(fit240, cfg)]
    n_opt, d_opt = fit240.compute_optimal(CHINCHILLA_COMPUTE)
    metrics: dict[str, Any] = {
        "chinchilla_240": fit240.to_dict(),
        "chinchilla_245": fit245.to_dict(),
        "published": {"hoffmann_2022": HOFFMANN_2022, "besiroglu_2024": BESIROGLU_2024},
        "besiroglu_2024_se": BESIROGLU_2024_SE,
        "chinchilla_compute": CHINCHILLA_COMPUTE,
        "compute_optimal_240": {
            "N_opt": float(n_opt),
            "D_opt": float(d_opt),
            "tokens_per_parameter": float(fit240.tokens_per_parameter(CHINCHILLA_COMPUTE)),
            "ci": fit240.derived_ci(CHINCHILLA_COMPUTE),
            "note": "closed form with C = 6ND; fit on the 240-point set",
        },
        "compute_optimal_245_tokens_per_parameter": float(
            fit245.tokens_per_parameter(CHINCHILLA_COMPUTE)
        ),
    }

    if cfg.quick:
        widths, sizes = (8, 16, 32, 64, 128), (84, 168, 337, 674, 1348)
        seeds, steps = (0, 1, 2), 600
    else:
        widths = (8, 16, 32, 64, 128, 256, 512)
        sizes, seeds, steps = (42, 84, 168, 337, 674, 1348), (0, 1, 2), 2000
    res = sweep(
        widths, sizes, seeds, steps=steps, lr=3e-3, eval_every=20, key=k_sweep, quiet=cfg.quiet
    )
    fits = sweep_fits(res, n_boot, k_fit, quiet=cfg.quiet)
    joint = fits["joint"]
    figures.append(figure_sweep(res, joint, cfg))
    metrics["sweep"] = {
        "config": {
            "widths": widths,
            "sizes": sizes,
            "seeds": seeds,
            "steps": steps,
            "optimizer": "adam(3e-3), full batch",
            "loss": "test cross-entropy, best of evaluations every 20 steps, mean over seeds",
            "model": "MLP 64-width-10, ReLU, standard parameterisation",
        },
        "points": {k: v.tolist() for k, v in res.items()},
        "joint_fit": joint.to_dict(),
        "power_law_vs_D_at_largest_width": fits["power_law_vs_D"].to_dict(),
        "power_law_vs_N_at_largest_D": fits["power_law_vs_N"].to_dict(),
        "fit_median_rel_err": float(np.median(fits["fit_rel_err"])),
        "extrapolation_rel_err": fits["extrapolation_rel_err"].tolist(),
    }
    ci = joint.ci
    checks += [
        check(
            "sweep_exponents_positive",
            "90% CI lower bounds of alpha and beta > 0",
            {"alpha": ci["alpha"], "beta": ci["beta"]},
            None,
            passed=ci["alpha"][0] > 0 and ci["beta"][0] > 0,
            note="loss falls with both model size and data size",
        ),
        check(
            "sweep_fit_median_rel_err",
            0.0,
            float(np.median(fits["fit_rel_err"])),
            0.05,
            note="median |L_fit/L - 1| over the sweep points",
        ),
        check(
            "sweep_extrapolation_to_largest_D",
            0.0,
            float(np.median(fits["extrapolation_rel_err"])),
            0.15,
            note="fit without the largest data size, median |pred/L - 1| at that size",
        ),
    ]
    tpp = metrics["compute_optimal_240"]["tokens_per_parameter"]
    summary = (
        f"Chinchilla refit (240 points): E={fit240.params['E']:.3f}, "
        f"alpha={fit240.params['alpha']:.3f}, beta={fit240.params['beta']:.3f}; "
        f"{tpp:.1f} tokens/parameter at 5.76e23 FLOP. Sweep: alpha={joint.params['alpha']:.2f}, "
        f"beta={joint.params['beta']:.2f}."
    )
    return Result(
        metrics=metrics,
        checks=checks,
        figures=figures,
        config={"quick": cfg.quick, "n_bootstrap": n_boot, "delta": 1e-3},
        summary=summary,
    )


def main(argv=None):
    return cli(run, __doc__, argv)


if __name__ == "__main__":
    main()
