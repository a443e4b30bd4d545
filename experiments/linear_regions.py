r"""Linear regions of ReLU networks: breakpoints along a line grow with neurons, not depth.

A ReLU network is piecewise affine. Along a line :math:`x(t) = x_0 + t u` its
pieces end where some hidden pre-activation :math:`z^{(l)}_i(t)` changes sign.
Hanin & Rolnick (2019) showed that at initialisation the expected number of
such breakpoints per unit length is, to leading order, a constant times the
number of neurons, independent of how the neurons are arranged in depth
(not the :math:`2^L`-type counts that worst-case constructions such as
Telgarsky's sawtooth achieve: those are exact unit tests in
``tests/test_regions.py``).

**Theory value (derivation).** In the infinite-width limit each pre-activation
of layer :math:`l` is a centred Gaussian process in :math:`t` with covariance
:math:`K_l(t, t')`, the NNGP kernel of the first :math:`l` layers evaluated at
:math:`x(t), x(t')`. By the Kac--Rice formula a centred, mean-square
differentiable Gaussian process has zeros with density

.. math::

    \rho_l(t) = \frac{1}{\pi}\,
    \frac{\sqrt{K_{11}K_{22} - K_{12}^2}}{K_{11}},\quad
    K_{11} = K_l(t,t),\ K_{12} = \partial_{t'}K_l\big|_{t'=t},\
    K_{22} = \partial_t\partial_{t'}K_l\big|_{t'=t},

so the expected number of breakpoints per neuron of layer :math:`l` on
:math:`[-T, T]` is :math:`\int_{-T}^{T}\rho_l(t)\,dt`. We evaluate
:math:`K_l` with :func:`wideth.kernels.analytic.mlp` (float64) and the
derivatives by central differences (step :math:`10^{-4}`; the ReLU
arc-cosine kernel is :math:`C^2` on the diagonal, its next term being
:math:`|t - t'|^3`, so the difference error is :math:`O(10^{-4})`). For
He-initialised ReLU networks without biases, with :math:`x_0 \perp u`,
:math:`\|x_0\| = r`, :math:`\|u\| = 1`, the arc-cosine map keeps the local
correlation :math:`1 - c \approx \tfrac12\kappa\,\Delta t^2` unchanged from
layer to layer (:math:`\mathcal C(c) = c + O((1-c)^{3/2})`), so every layer has
the layer-one density :math:`\rho(t) = r/(\pi(r^2 + t^2))` and the count per
neuron is :math:`\tfrac{2}{\pi}\arctan(T/r)` at every depth: exactly the
Hanin--Rolnick statement.

Checks (reproduced claims): for networks without and with biases, the Monte
Carlo mean over independent networks of the breakpoints per neuron of every
layer agrees with :math:`\int\rho_l` within 3 standard errors (the largest
:math:`|z|` over the layers; finite width adds a downward bias growing like
:math:`l/n`, visible at the deepest layers with biases in quick mode, about
2 standard errors at width 256, which full mode shrinks fourfold with width
1024); and, without biases, the fitted
slope of the per-layer count against depth is zero within 3 standard errors.
How the count moves during training (gradient descent on a regression task)
is measured and reported, without a theory value.

References:
  Hanin & Rolnick, `Complexity of Linear Regions in Deep Networks
  <https://arxiv.org/abs/1901.09021>`_, ICML 2019.
  Kac, On the average number of real roots of a random algebraic equation, 1943;
  Rice, Mathematical analysis of random noise, 1944 (the zero-crossing formula).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.common import Config, Result, Sizes, check, check_max_z, cli, save_figure

SIZES = Sizes(
    quick=dict(
        n0=16,
        width=256,
        depth=6,
        networks=40,
        T=3.0,
        grid=201,
        train_steps=400,
        train_points=64,
        snapshots=8,
    ),
    full=dict(
        n0=32,
        width=1024,
        depth=10,
        networks=100,
        T=3.0,
        grid=401,
        train_steps=4000,
        train_points=256,
        snapshots=20,
    ),
)
R = 1.0  # distance of the line from the origin
B_STDS = (0.0, 0.5)


def line(key: jax.Array, n0: int, r: float = R) -> tuple[np.ndarray, np.ndarray]:
    """A random line at distance ``r`` from the origin: ``x0 ⊥ u``, ``|x0| = r``, ``|u| = 1``."""
    a, b = np.asarray(jax.random.normal(key, (2, n0)), np.float64)
    x0 = r * a / np.linalg.norm(a)
    u = b - (b @ x0) * x0 / r**2
    return x0, u / np.linalg.norm(u)


def kac_rice_counts(
    depth: int,
    b_std: float,
    x0: np.ndarray,
    u: np.ndarray,
    T: float,
    grid: int,
    h: float = 1e-4,
) -> np.ndarray:
    r"""Expected breakpoints per neuron of each hidden layer on :math:`[-T, T]` (module docstring).

    Returns ``(depth,)``: :math:`\int_{-T}^{T}\rho_l(t)\,dt` for :math:`l = 1..L`,
    by the composite Simpson rule on ``grid`` (odd) points.
    """
    from wideth.kernels import analytic

    t = np.linspace(-T, T, grid)
    pts = np.concatenate([x0 + (t + s)[:, None] * u for s in (-h, 0.0, h)])
    m, z, p = (slice(i * grid, (i + 1) * grid) for i in range(3))
    simpson = np.ones(grid)
    simpson[1:-1:2], simpson[2:-1:2] = 4, 2
    out = []
    for l in range(1, depth + 1):
        _, _, kf = analytic.mlp(depth=l - 1, width=1, b_std=b_std)
        k = np.asarray(analytic.kernel(kf, pts, get="nngp", dtype=jnp.float64), np.float64)
        diag = lambda a, b, k=k: np.diag(k[a, b])
        k11 = diag(z, z)
        k12 = (diag(z, p) - diag(z, m)) / (2 * h)
        k22 = (diag(p, p) - diag(p, m) - diag(m, p) + diag(m, m)) / (4 * h * h)
        rho = np.sqrt(np.maximum(k11 * k22 - k12**2, 0.0)) / (np.pi * k11)
        out.append(float(np.sum(simpson * rho) * (t[1] - t[0]) / 3))
    return np.array(out)


def monte_carlo_counts(
    sz: Any, b_std: float, key: jax.Array
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-layer breakpoints per neuron of ``sz.networks`` random networks, each on its own line.

    Returns ``(counts (networks, depth), x0 (n0,), u (n0,))``; every network
    uses the same line (the theory depends on the line only through ``r`` and
    ``u``'s angle to ``x0``, fixed here).
    """
    from flax import nnx

    from wideth import models, regions

    x0, u = line(jax.random.fold_in(key, 0), sz.n0)
    counts = []
    for i in range(sz.networks):
        net = models.MLP(sz.n0, sz.width, sz.depth, b_std=b_std, rngs=nnx.Rngs(i + 1))
        res = regions.line_regions(net, x0, u, (-sz.T, sz.T))
        counts.append(np.array(res.layer_breakpoints) / sz.width)
    return np.array(counts), x0, u


def depth_slope(mean: np.ndarray, se: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares slope of the per-layer counts against depth, and its SE."""
    l = np.arange(1, len(mean) + 1, dtype=np.float64)
    w = 1.0 / se**2
    lbar = np.sum(w * l) / np.sum(w)
    slope = np.sum(w * (l - lbar) * mean) / np.sum(w * (l - lbar) ** 2)
    return float(slope), float(1.0 / np.sqrt(np.sum(w * (l - lbar) ** 2)))


def layer_checks(name: str, counts: np.ndarray, theory: np.ndarray) -> tuple[list, dict]:
    """The per-layer agreement check (largest |z| over layers <= 3)."""
    mean = counts.mean(axis=0)
    se = counts.std(axis=0, ddof=1) / np.sqrt(counts.shape[0])
    z = (mean - theory) / se
    worst = int(np.argmax(np.abs(z)))
    c = check_max_z(
        f"{name}: breakpoints per neuron, every layer vs Kac-Rice on the NNGP (max |z|)",
        z,
        3.0,
        note=(
            f"worst layer {worst + 1}: {mean[worst]:.4f} +- {se[worst]:.4f} vs "
            f"{theory[worst]:.4f}; Hanin & Rolnick 2019 + Kac-Rice (module docstring)"
        ),
    )
    return [c], {"mean": mean, "se": se, "theory": theory, "z": z}


def training_counts(sz: Any, key: jax.Array) -> dict[str, Any]:
    """Breakpoints per neuron on a fixed line while GD fits a random regression task."""
    from flax import nnx

    from wideth import data, functional, models, regions, train

    x, y = data.synthetic_regression(key, sz.train_points, sz.n0)
    net = models.MLP(sz.n0, sz.width, sz.depth, b_std=0.5, rngs=nnx.Rngs(0))
    apply_fn, params = functional.as_apply(net)
    tx = optax.adam(1e-3)
    step = train.train_step(apply_fn, "mse", tx)
    every = sz.train_steps // sz.snapshots
    probes = {"params": lambda state, batch: state.params}
    res = jax.jit(lambda s: train.run(step, s, (x, y), sz.train_steps, probes=probes, every=every))(
        train.TrainState.create(params, tx, key)
    )
    # The line through two training points, parameterised so both lie inside [-T, T].
    x0 = np.asarray((x[0] + x[1]) / 2, np.float64)
    u = np.asarray(x[1] - x[0], np.float64) / 2
    per = []
    for i in range(sz.snapshots + 1):
        nnx.update(net, jax.tree.map(lambda a, i=i: a[i], res.probes["params"]))
        counts = regions.line_regions(net, x0, u, (-sz.T, sz.T)).layer_breakpoints
        per.append(np.array(counts) / sz.width)
    return {
        "steps": np.asarray(res.probe_steps),
        "per_layer": np.array(per),
        "loss": np.asarray(res.metrics["loss"]),
    }


def plot(results: dict[float, dict], trained: dict[str, Any]):
    """Per-layer breakpoint densities with 1-SE bars against theory; counts during training."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for b_std, r in results.items():
        l = np.arange(1, len(r["mean"]) + 1)
        (line_,) = axes[0].plot(l, r["theory"], "-", lw=1.2, label=f"Kac–Rice, σ_b = {b_std:g}")
        axes[0].errorbar(
            l,
            r["mean"],
            yerr=r["se"],
            fmt="o",
            color=line_.get_color(),
            ms=4,
            capsize=2,
            label=f"Monte Carlo, σ_b = {b_std:g}",
        )
    axes[0].set(
        xlabel="layer l",
        ylabel="breakpoints per neuron on [-T, T]",
        title="ReLU MLP at initialisation",
    )
    axes[0].legend(fontsize=8)
    per = trained["per_layer"]
    for l in range(per.shape[1]):
        axes[1].plot(trained["steps"], per[:, l], marker=".", label=f"layer {l + 1}")
    axes[1].plot(trained["steps"], per.mean(axis=1), "k", lw=2, label="mean")
    axes[1].set(
        xlabel="training step (Adam, MSE)",
        ylabel="breakpoints per neuron",
        title="During training (line through two training points)",
    )
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plan(cfg: Config) -> dict[str, Any]:
    """Sizes and keys of the run (nothing expensive)."""
    return {"sz": SIZES(cfg), "key": jax.random.key(cfg.seed)}


def run(cfg: Config) -> Result:
    """Monte Carlo breakpoint counts vs Kac-Rice theory, and counts during training."""
    p = plan(cfg)
    sz, key = p["sz"], p["key"]
    checks, results = [], {}
    for j, b_std in enumerate(B_STDS):
        counts, x0, u = monte_carlo_counts(sz, b_std, jax.random.fold_in(key, j))
        theory = kac_rice_counts(sz.depth, b_std, x0, u, sz.T, sz.grid)
        c, r = layer_checks(f"sigma_b = {b_std:g}", counts, theory)
        checks += c
        results[b_std] = r
    slope, slope_se = depth_slope(results[0.0]["mean"], results[0.0]["se"])
    checks.append(
        check(
            "sigma_b = 0: slope of breakpoints per neuron against depth (depth independence)",
            0.0,
            slope,
            3 * slope_se,
            note=f"weighted LS slope {slope:.4f} +- {slope_se:.4f} per layer; theory 0 exactly",
        )
    )
    trained = training_counts(sz, jax.random.fold_in(key, 99))
    figures = [save_figure(plot(results, trained), cfg, "linear_regions")]
    closed = 2 / np.pi * np.arctan(sz.T / R)
    metrics = {
        "closed_form_no_bias": closed,
        "per_layer": {str(b): r for b, r in results.items()},
        "training": trained,
        "training_mean_change": float(
            trained["per_layer"][-1].mean() / trained["per_layer"][0].mean()
        ),
    }
    summary = (
        f"breakpoints per neuron {results[0.0]['mean'].mean():.3f} (theory {closed:.3f}, "
        f"every layer); with sigma_b = 0.5 max |z| {np.abs(results[0.5]['z']).max():.2f}; "
        f"after training x{metrics['training_mean_change']:.2f}"
    )
    config = {**vars(sz), "r": R, "b_stds": list(B_STDS), "W_std": 2**0.5}
    return Result(metrics=metrics, checks=checks, figures=figures, config=config, summary=summary)


def main(argv=None):
    """Command line entry point."""
    return cli(run, __doc__, argv)


if __name__ == "__main__":
    from experiments.linear_regions import main as _main  # so metrics.json names it

    _main()
