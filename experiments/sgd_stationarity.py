r"""SGD at stationarity: the fluctuation--dissipation relation and the exact stationary law.

Constant-step SGD :math:`\theta_{t+1} = \theta_t - \eta g_{B,t}` on a loss that
does not interpolate its data does not converge: it reaches a stationary law
whose spread is set by the minibatch noise :math:`\tilde C` (covariance of
:math:`g_B`; :mod:`wideth.train.noise` gives :math:`\tilde C = c_{N,B}\Sigma`,
:math:`c_{N,B} = (N - B)/(B(N - 1))` for batches without replacement).

**A. Least squares, exactly.** For :math:`\frac1{2N}\|X\theta - y\|^2` with
label noise the stationary covariance :math:`S` of :math:`\theta - \theta^*`
solves a linear equation (derived in :mod:`wideth.train.noise`); the
stationary excess loss is :math:`\frac12\operatorname{tr}(HS)`. Check
(reproduced claim, our derivation): the time-averaged excess loss of real SGD
runs (:func:`wideth.train.run` over :func:`wideth.train.minibatches`) matches
it for every :math:`(\eta, B)` on the grid within 3 standard errors (batch
means over time, pooled over seeds). The same check with the with-replacement
factor :math:`1/B` fails (tests).

**B. Fluctuation--dissipation (Yaida 2018, FDR1)**: for any fixed
:math:`\theta_0`, stationarity of :math:`\|\theta - \theta_0\|^2` gives
:math:`\langle(\theta - \theta_0)\cdot\nabla\mathcal L\rangle = \frac\eta2\langle E\|g_B\|^2\rangle
= \frac\eta2(\langle\|\nabla\mathcal L\|^2\rangle + \langle\operatorname{tr}\tilde C\rangle)`
(Yaida states it at :math:`\theta_0 = 0`; a :math:`\theta_0` near the
stationary mean, here the starting minimum, has a 7x smaller standard
error). It follows from stationarity alone, so it is checked where nothing
else is exact: a tanh MLP on a noisy regression task, for several
:math:`(\eta, B)`, each side measured on the same stationary trajectory
(every term from :func:`wideth.train.probes.gradient_noise` on the full
training set), within 3 standard errors of their paired difference. The
lecture notes' form :math:`\frac\eta2\langle\operatorname{tr}\tilde C\rangle`
is reported beside it: the two differ by
:math:`\frac\eta2\langle\|\nabla\mathcal L\|^2\rangle`, an :math:`O(\eta)`
relative correction that the table shows.

Where it stops: the relation needs a stationary law. Without a penalty a tanh
MLP has none: :math:`\|\theta\|` diffuses outwards along its flat
directions and :math:`\langle\theta\cdot\nabla\mathcal L\rangle` falls
below the right side (measured: :math:`-0.020` against :math:`+0.010` at
:math:`\eta = 0.3`, :math:`B = 8`). The runs therefore descend
:math:`\mathcal L + \frac\lambda2\|\theta\|^2` (``optax.add_decayed_weights``;
the relation holds for it with the same minibatch noise), start from a
full-batch gradient-descent minimum of it, and are burnt in for
:math:`\gg 1/(\eta\lambda)` steps; a consistency check asserts that the
first and second halves of the measured window agree on
:math:`\langle\mathcal L\rangle` within 4 standard
errors (no drift left).

References:
  Yaida, `Fluctuation-dissipation relations for stochastic gradient descent
  <https://arxiv.org/abs/1810.00004>`_, ICLR 2019.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.common import Config, Result, Sizes, check, cli, save_figure
from wideth import train
from wideth.train import noise

SIZES = Sizes(
    quick=dict(
        ls_n=48,
        ls_d=4,
        ls_grid=((0.1, 4), (0.3, 4), (0.3, 16), (0.1, 1)),
        ls_steps=60_000,
        ls_every=10,
        ls_seeds=4,
        mlp_n=64,
        mlp_d=4,
        mlp_width=16,
        mlp_weight_decay=1e-2,
        mlp_grid=((0.1, 4), (0.3, 4), (0.3, 16)),
        mlp_gd_steps=4000,
        mlp_burn=4000,
        mlp_steps=30_000,
        mlp_every=50,
        mlp_seeds=4,
    ),
    full=dict(
        ls_n=128,
        ls_d=8,
        ls_grid=((0.05, 4), (0.1, 4), (0.2, 4), (0.2, 16), (0.3, 32), (0.1, 1)),
        ls_steps=2_000_000,
        ls_every=50,
        ls_seeds=16,
        mlp_n=512,
        mlp_d=8,
        mlp_width=128,
        mlp_weight_decay=1e-3,
        mlp_grid=((0.05, 8), (0.1, 8), (0.3, 8), (0.3, 32), (0.3, 128)),
        mlp_gd_steps=20_000,
        mlp_burn=200_000,
        mlp_steps=400_000,
        mlp_every=50,
        mlp_seeds=16,
    ),
)


def regression_data(key: jax.Array, n: int, d: int, noise_std: float = 0.5):
    """Gaussian inputs, a linear teacher plus a sine, label noise of ``noise_std``."""
    kx, kw, ke = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n, d))
    w = jax.random.normal(kw, (d,)) / jnp.sqrt(d)
    y = x @ w + jnp.sin(2 * x[:, 0]) + noise_std * jax.random.normal(ke, (n,))
    return x, y


def _linear(p: jax.Array, x: jax.Array) -> jax.Array:
    return x @ p


def _sgd(learning_rate: float, weight_decay: float) -> optax.GradientTransformation:
    """SGD on ``L + weight_decay/2 |theta|^2``."""
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(learning_rate))


@functools.partial(
    jax.jit,
    static_argnames=("apply_fn", "batch_size", "steps", "every", "weight_decay", "measure_noise"),
)
def sgd_runs(
    apply_fn,
    params,
    data,
    lrs: jax.Array,
    keys: jax.Array,
    batch_size: int,
    steps: int,
    every: int,
    weight_decay: float = 0.0,
    measure_noise: bool = True,
):
    """SGD from ``params`` for every learning rate x seed; probes every ``every`` steps.

    The probes measure the regularised objective ``L + weight_decay/2 |theta|^2``
    that SGD descends (its minibatch noise is that of ``L``: the penalty is the
    same in every batch).
    """
    tx = optax.inject_hyperparams(_sgd)(learning_rate=0.1, weight_decay=weight_decay)
    step = train.train_step(apply_fn, "mse", tx, metrics=())

    def objective(p, batch):
        return step.objective(p, batch) + weight_decay / 2 * optax.tree.norm(p, squared=True)

    probes = {"loss": train.probes.loss(step, data)}
    if measure_noise:
        # (theta - theta_0) . grad with theta_0 the start: the least-variance form of FDR1.
        probes["noise"] = train.probes.gradient_noise(objective, data, batch_size, center=params)
    sampler = train.minibatches(*data, batch_size)

    def one(lr, key):
        state = train.TrainState.create(params, tx, key)
        state = train.with_hyperparams(state, learning_rate=lr)
        return train.run(step, state, sampler, steps, probes=probes, every=every).probes

    return jax.vmap(lambda lr: jax.vmap(lambda k: one(lr, k))(keys))(lrs)


#: Batch means per series in :func:`pooled_average` (by default).
NUM_BATCHES = 20


def pooled_average(series: np.ndarray, num_batches: int = NUM_BATCHES) -> tuple[float, float]:
    """Mean over seeds of per-seed batch-means averages, with its SE (``series``: seeds x T)."""
    stats = np.array([noise.time_average(s, num_batches) for s in series])
    return float(stats[:, 0].mean()), float(np.sqrt(np.sum(stats[:, 1] ** 2)) / len(stats))


def least_squares_part(sz, key: jax.Array) -> list[dict[str, Any]]:
    """Measured stationary excess loss of SGD vs the exact law, for each (eta, B)."""
    x, y = regression_data(key, sz.ls_n, sz.ls_d)
    theory_by = {}
    rows = []
    keys = jax.random.split(jax.random.fold_in(key, 1), sz.ls_seeds)
    for b in sorted({b for _, b in sz.ls_grid}):
        lrs = [lr for lr, bb in sz.ls_grid if bb == b]
        st0 = noise.least_squares_stationary(x, y, lrs[0], b)
        theta0 = jnp.asarray(st0["theta_star"], jnp.float32)
        out = sgd_runs(
            _linear,
            theta0,
            (x, y),
            jnp.asarray(lrs),
            keys,
            b,
            sz.ls_steps,
            sz.ls_every,
            measure_noise=False,
        )
        for i, lr in enumerate(lrs):
            st = theory_by.setdefault((lr, b), noise.least_squares_stationary(x, y, lr, b))
            burn = LS_BURN // sz.ls_every
            excess = np.asarray(out["loss"][i], np.float64)[:, burn:] - st["loss_star"]
            m, se = pooled_average(excess)
            rows.append(dict(lr=lr, batch_size=b, theory=st["excess_loss"], measured=m, se=se))
    return rows


def mlp_part(sz, key: jax.Array) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """FDR terms on stationary SGD trajectories of a tanh MLP, per (eta, B)."""
    from flax import nnx

    from wideth import functional, models

    x, y = regression_data(key, sz.mlp_n, sz.mlp_d)
    net = models.MLP(sz.mlp_d, sz.mlp_width, 1, activation="tanh", rngs=nnx.Rngs(0))
    apply_fn, params = functional.as_apply(net)
    data = (x, y[:, None])
    gd_tx = _sgd(0.5, sz.mlp_weight_decay)
    gd = train.train_step(apply_fn, "mse", gd_tx, metrics=())
    params = jax.jit(lambda s: train.run(gd, s, data, sz.mlp_gd_steps).state.params)(
        train.TrainState.create(params, gd_tx)
    )
    keys = jax.random.split(jax.random.fold_in(key, 2), sz.mlp_seeds)
    rows, traces = [], {}
    for lr, b in sz.mlp_grid:
        total = sz.mlp_burn + sz.mlp_steps
        out = sgd_runs(
            apply_fn,
            params,
            data,
            jnp.asarray([lr]),
            keys,
            b,
            total,
            sz.mlp_every,
            sz.mlp_weight_decay,
        )
        cut = sz.mlp_burn // sz.mlp_every
        nz = {k: np.asarray(v[0], np.float64)[:, cut:] for k, v in out["noise"].items()}
        loss = np.asarray(out["loss"][0], np.float64)[:, cut:]
        lhs = nz["theta_dot_grad"]
        rhs = lr / 2 * nz["minibatch_grad_sq"]
        diff_m, diff_se = pooled_average(lhs - rhs)
        half = loss.shape[1] // 2
        first, first_se = pooled_average(loss[:, :half], 10)
        second, second_se = pooled_average(loss[:, half:], 10)
        rows.append(
            dict(
                lr=lr,
                batch_size=b,
                theta_dot_grad=pooled_average(lhs),
                fdr_rhs=pooled_average(rhs),
                notes_rhs=pooled_average(lr / 2 * nz["trace_minibatch"]),
                difference=(diff_m, diff_se),
                loss_halves=((first, first_se), (second, second_se)),
            )
        )
        traces[(lr, b)] = (lhs.mean(axis=0), rhs.mean(axis=0))
    return rows, traces


def checks_for(ls_rows, mlp_rows) -> list[dict[str, Any]]:
    """The claims of the module docstring (3 SE) and the stationarity controls (4 SE)."""
    out = []
    for r in ls_rows:
        out.append(
            check(
                f"least squares, eta={r['lr']}, B={r['batch_size']}: stationary excess loss",
                r["theory"],
                r["measured"],
                3 * r["se"],
                note="exact stationary law (wideth.train.noise); 3 SE, batch means pooled "
                "over seeds",
            )
        )
    for r in mlp_rows:
        tag = f"tanh MLP, eta={r['lr']}, B={r['batch_size']}"
        lhs, rhs = r["theta_dot_grad"][0], r["fdr_rhs"][0]
        out.append(
            check(
                f"{tag}: <(theta - theta_0) . grad L> - (eta/2) <E|g_B|^2>",
                0.0,
                r["difference"][0],
                3 * r["difference"][1],
                note=f"Yaida 2018 FDR1; sides {lhs:.4g} and {rhs:.4g}; notes' form "
                f"(eta/2)<tr C> = {r['notes_rhs'][0]:.4g}; 3 SE of the paired difference",
            )
        )
        (a, sa), (b, sb) = r["loss_halves"]
        out.append(
            check(
                f"{tag}: stationarity, <L> over the two halves of the window",
                a,
                b,
                4 * float(np.hypot(sa, sb)),
                note="no drift left after the burn-in (4 SE)",
                kind="consistency",
            )
        )
    return out


def plot(ls_rows, mlp_rows, traces):
    """Excess loss vs the exact law; FDR sides per (eta, B); running averages of one run."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    t = np.array([r["theory"] for r in ls_rows])
    axes[0].errorbar(
        t, [r["measured"] for r in ls_rows], yerr=[3 * r["se"] for r in ls_rows], fmt="o"
    )
    g = np.linspace(0, t.max() * 1.1, 10)
    axes[0].plot(g, g, "k-", lw=1, label="exact stationary law")
    for r in ls_rows:
        axes[0].annotate(
            f"η={r['lr']}, B={r['batch_size']}", (r["theory"], r["measured"]), fontsize=7
        )
    axes[0].set(xlabel="theory ½tr(HS)", ylabel="measured ⟨L⟩ − L*", title="least squares (±3 SE)")
    axes[0].legend(fontsize=8)
    labels = [f"η={r['lr']}\nB={r['batch_size']}" for r in mlp_rows]
    pos = np.arange(len(mlp_rows))
    for off, key, name in (
        (-0.2, "theta_dot_grad", "⟨θ·∇L⟩"),
        (0.0, "fdr_rhs", "η/2 ⟨E|g_B|²⟩"),
        (0.2, "notes_rhs", "η/2 ⟨tr C̃⟩"),
    ):
        axes[1].errorbar(
            pos + off,
            [r[key][0] for r in mlp_rows],
            yerr=[3 * r[key][1] for r in mlp_rows],
            fmt="os^"[int(off * 5 + 1)],
            capsize=2,
            label=name,
        )
    axes[1].set_xticks(pos, labels, fontsize=7)
    axes[1].set(title="tanh MLP: fluctuation–dissipation (±3 SE)")
    axes[1].legend(fontsize=8)
    (lr, b), (lhs, rhs) = next(iter(traces.items()))
    n = np.arange(1, len(lhs) + 1)
    axes[2].plot(np.cumsum(lhs) / n, label="running ⟨θ·∇L⟩")
    axes[2].plot(np.cumsum(rhs) / n, label="running η/2⟨E|g_B|²⟩")
    axes[2].set(xlabel="probe index", title=f"seed-mean, η={lr}, B={b}")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig


#: Burn-in steps of the least-squares runs: they start at theta*, and the spread builds
#: up in ~1/(eta mu) steps.
LS_BURN = 2000


def plan(cfg: Config) -> dict[str, Any]:
    """Sizes, key and the stationary laws of the least-squares grid (cheap)."""
    sz = SIZES(cfg)
    least = LS_BURN + NUM_BATCHES * sz.ls_every  # one sample per batch mean after the burn-in
    if sz.ls_steps < least:
        raise ValueError(
            f"ls_steps: expected at least {least} (burn-in {LS_BURN} + {NUM_BATCHES} x ls_every), "
            f"got {sz.ls_steps}"
        )
    key = jax.random.key(cfg.seed)
    x, y = regression_data(key, sz.ls_n, sz.ls_d)
    laws = {(lr, b): noise.least_squares_stationary(x, y, lr, b) for lr, b in sz.ls_grid}
    return {"sz": sz, "key": key, "laws": laws}


def run(cfg: Config) -> Result:
    """Both parts of the module docstring."""
    p = plan(cfg)
    sz, key = p["sz"], p["key"]
    ls_rows = least_squares_part(sz, key)
    mlp_rows, traces = mlp_part(sz, jax.random.fold_in(key, 7))
    checks = checks_for(ls_rows, mlp_rows)
    figures = [save_figure(plot(ls_rows, mlp_rows, traces), cfg, "sgd_stationarity")]
    summary = (
        "least squares measured/exact excess loss: "
        + ", ".join(f"{r['measured'] / r['theory']:.3f}" for r in ls_rows)
        + "; MLP <theta.grad L> / (eta/2)<E|g_B|^2>: "
        + ", ".join(f"{r['theta_dot_grad'][0] / r['fdr_rhs'][0]:.3f}" for r in mlp_rows)
    )
    metrics = {"least_squares": ls_rows, "mlp": mlp_rows}
    config = {k: v for k, v in vars(sz).items()}
    return Result(metrics=metrics, checks=checks, figures=figures, config=config, summary=summary)


def main(argv=None):
    """Command line entry point."""
    return cli(run, __doc__, argv)


if __name__ == "__main__":
    from experiments.sgd_stationarity import main as _main  # so metrics.json names it

    _main()
