r"""Edge of stability: full-batch GD sharpens the loss until :math:`\lambda_{\max}\approx 2/\eta`.

Gradient descent with step :math:`\eta` on a quadratic is stable only where the
Hessian's top eigenvalue (the *sharpness*) is below :math:`2/\eta`. Cohen et al.
(2021) observed that full-batch GD on neural networks first **sharpens
progressively** (:math:`\lambda_{\max}` grows during training) until it reaches
:math:`2/\eta`, and then **hovers at the edge of stability**
:math:`\lambda_{\max}\approx 2/\eta` while the loss keeps decreasing
non-monotonically over long time scales.

Setup: a tanh MLP (standard parameterisation, depth 3, width 64, weights
:math:`\mathcal N(0, 0.6^2/\text{fan-in})`, a small initialisation whose
sharpness :math:`\lambda_0` starts low) on a subset of the real sklearn digits
(500 samples in quick mode, 1,000 in full mode), MSE loss
:math:`L=\frac1{2n}\sum_i\|f(x_i)-y_i\|^2` with one-hot targets, full-batch GD
with :math:`\eta = 2/(a\lambda_0)` for several :math:`a>1`. The sharpness is
measured every few steps by Lanczos on the Hessian
(:func:`wideth.hessian.top_eigenpairs`) inside the jitted training chunk
(``lax.scan`` over steps). Checks for each :math:`\eta`: :math:`\lambda_{\max}`
starts below and rises to :math:`2/\eta` (progressive sharpening), its mean over
the last 30% of training is :math:`2/\eta` within 10%, and the loss still
decreases.

References:
  Cohen, Kaur, Li, Kolter, Talwalkar, `Gradient Descent on Neural Networks
  Typically Occurs at the Edge of Stability <https://arxiv.org/abs/2103.00065>`_,
  2021.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments._common import Config, Result, check, cli, save_figure


def sharpness(
    loss_fn: Callable[[Any], jax.Array], params: Any, key: jax.Array, num_steps: int = 20
) -> jax.Array:
    r"""Top Hessian eigenvalue :math:`\lambda_{\max}(\nabla^2 L)` by Lanczos."""
    from wideth import hessian

    evals, _ = hessian.top_eigenpairs(loss_fn, params, k=1, num_steps=num_steps, key=key)
    return evals[0]


def gd_with_sharpness(
    loss_fn: Callable[[Any], jax.Array],
    params: Any,
    eta: float,
    steps: int,
    every: int,
    key: jax.Array,
    num_lanczos: int = 20,
    quiet: bool = True,
) -> dict[str, np.ndarray]:
    r"""Full-batch GD :math:`\theta\leftarrow\theta-\eta\nabla L`, sharpness every few steps.

    One jitted function runs ``every`` GD steps as a ``lax.scan`` and then
    measures :math:`\lambda_{\max}` by Lanczos at the chunk boundary; a Python
    loop over chunks shows progress and stops at a non-finite loss.

    Args:
      loss_fn: ``params -> scalar`` full-batch loss.
      params: initial parameters (any pytree).
      eta: learning rate.
      steps: number of GD steps (rounded down to a multiple of ``every``).
      every: steps between sharpness measurements.
      key: PRNG key for the Lanczos start vectors.
      num_lanczos: Lanczos iterations per measurement.
      quiet: no progress bar.

    Returns:
      dict with ``loss`` ``(steps,)`` (loss before each step), ``sharpness``
      ``(chunks + 1,)`` at steps ``sharpness_step`` ``(chunks + 1,)``, and
      ``params`` (final).
    """
    from tqdm import tqdm

    def gd_step(p, _):
        value, grad = jax.value_and_grad(loss_fn)(p)
        return jax.tree.map(lambda a, g: a - eta * g, p, grad), value

    @jax.jit
    def chunk(p, k):
        p, losses = jax.lax.scan(gd_step, p, None, length=every)
        return p, losses, sharpness(loss_fn, p, k, num_lanczos)

    lam0 = float(jax.jit(lambda p, k: sharpness(loss_fn, p, k, num_lanczos))(params, key))
    losses, lams, at = [], [lam0], [0]
    num_chunks = steps // every
    for c in tqdm(range(num_chunks), desc=f"GD eta={eta:.3g}", disable=quiet):
        params, chunk_losses, lam = chunk(params, jax.random.fold_in(key, c + 1))
        chunk_losses = np.asarray(chunk_losses)
        losses.append(chunk_losses)
        if not np.all(np.isfinite(chunk_losses)) or not np.isfinite(float(lam)):
            break
        lams.append(float(lam))
        at.append((c + 1) * every)
    return {
        "loss": np.concatenate(losses),
        "sharpness": np.array(lams),
        "sharpness_step": np.array(at),
        "params": params,
    }


def eos_summary(run: dict[str, np.ndarray], eta: float, last: float = 0.3) -> dict[str, float]:
    """Numbers checked for one learning rate: sharpening and hovering at ``2/eta``."""
    lam, loss = run["sharpness"], run["loss"]
    tail = lam[int(np.floor((1 - last) * len(lam))) :]
    edge = 2.0 / eta
    reached = np.flatnonzero(lam >= 0.9 * edge)
    return {
        "eta": eta,
        "edge": edge,
        "lambda_0": float(lam[0]),
        "lambda_max_reached": float(lam.max()),
        "first_step_at_0.9_edge": int(run["sharpness_step"][reached[0]]) if len(reached) else -1,
        "tail_mean_over_edge": float(tail.mean() / edge),
        "tail_max_over_edge": float(tail.max() / edge),
        "tail_min_over_edge": float(tail.min() / edge),
        "loss_first": float(loss[0]),
        "loss_last": float(loss[-1]),
        "finished": bool(np.all(np.isfinite(loss))),
    }


def plot_eos(runs: list[dict[str, Any]], etas: list[float], dataset: str, n: int):
    """Figure: sharpness vs step with 2/eta lines, and training loss."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for r, eta in zip(runs, etas, strict=True):
        (line,) = axes[0].plot(r["sharpness_step"], r["sharpness"], label=f"η = {eta:.3g}")
        axes[0].axhline(2 / eta, color=line.get_color(), ls="--", lw=0.9)
        axes[1].plot(np.arange(len(r["loss"])), r["loss"], color=line.get_color(), lw=0.8)
    axes[0].set(
        xlabel="step",
        ylabel="λ_max(Hessian)",
        title=f"Sharpness (dashed: 2/η), tanh MLP, {dataset} n={n}",
    )
    axes[0].legend(fontsize=8)
    axes[1].set(yscale="log", xlabel="step", ylabel="train loss (MSE)", title="Training loss")
    fig.tight_layout()
    return fig


def setup(
    seed: int, n: int, width: int = 64, depth: int = 3, w_std: float = 0.6
) -> tuple[Callable[[Any], jax.Array], Any, str]:
    """Digits subset, tanh MLP and full-batch MSE ``loss_fn(params)``.

    Digits in both modes: on a 1k MNIST subset this network fits so fast that
    sharpening stays small (measured), while digits shows it clearly.
    """
    from flax import nnx

    from wideth import data, models, train

    ds = data.digits(seed=seed)
    name = "digits"
    x = jnp.asarray(ds.x_train[:n], jnp.float32)
    y = jnp.asarray(ds.y_train[:n], jnp.float32)
    model = models.MLP(
        x.shape[1],
        width,
        depth,
        out_dim=y.shape[1],
        activation="tanh",
        W_std=w_std,
        b_std=0.0,
        parameterization="standard",
        rngs=nnx.Rngs(seed),
    )
    apply_fn, params = models.functional(model)

    def loss_fn(p):
        return train.mse(apply_fn(p, x), y)

    return loss_fn, params, name


def run(cfg: Config) -> Result:
    """Train at several learning rates and track the sharpness; see the module docstring."""
    quick = cfg.quick
    n = 500 if quick else 1000
    steps = 1500 if quick else 6000
    every = 20
    multiples = [2.0, 3.0, 4.0] if quick else [2.0, 3.0, 4.0, 6.0]
    loss_fn, params, dname = setup(cfg.seed, n)
    key = jax.random.key(cfg.seed)
    lam0 = float(jax.jit(lambda p, k: sharpness(loss_fn, p, k, 40))(params, key))
    etas = [2.0 / (a * lam0) for a in multiples]
    runs, summaries, checks = [], [], []
    for i, eta in enumerate(etas):
        r = gd_with_sharpness(
            loss_fn, params, eta, steps, every, jax.random.fold_in(key, i), quiet=cfg.quiet
        )
        s = eos_summary(r, eta)
        runs.append(r)
        summaries.append(s)
        checks.append(
            check(
                f"eta={eta:.3g}: mean sharpness over last 30% / (2/eta)",
                1.0,
                s["tail_mean_over_edge"],
                0.1,
                note="edge of stability, Cohen et al. 2021",
            )
        )
        checks.append(
            check(
                f"eta={eta:.3g}: progressive sharpening to 2/eta",
                "lambda_0 < 0.8 * 2/eta and max lambda >= 0.9 * 2/eta",
                [s["lambda_0"], s["lambda_max_reached"], s["edge"]],
                None,
                passed=bool(
                    s["lambda_0"] < 0.8 * s["edge"] and s["lambda_max_reached"] >= 0.9 * s["edge"]
                ),
                note="measured: [lambda at step 0, max lambda, 2/eta]",
            )
        )
        checks.append(
            check(
                f"eta={eta:.3g}: loss keeps decreasing at the edge",
                "final loss < 0.5 x initial loss",
                s["loss_last"] / s["loss_first"],
                None,
                passed=bool(s["finished"] and s["loss_last"] < 0.5 * s["loss_first"]),
            )
        )
    figures = [save_figure(plot_eos(runs, etas, dname, n), cfg, "edge_of_stability")]
    metrics = {
        "lambda_0": lam0,
        "multiples": multiples,
        "runs": [
            {
                **s,
                "sharpness": r["sharpness"],
                "sharpness_step": r["sharpness_step"],
                "loss_every_10": r["loss"][::10],
            }
            for r, s in zip(runs, summaries, strict=True)
        ],
    }
    summary = "; ".join(
        f"eta={s['eta']:.3g}: sharpness {s['lambda_0']:.2f} -> last-30% mean "
        f"{s['tail_mean_over_edge']:.3f} x 2/eta"
        for s in summaries
    )
    config = {
        "dataset": dname,
        "n": n,
        "width": 64,
        "depth": 3,
        "W_std": 0.6,
        "steps": steps,
        "every": every,
        "lanczos_steps": 20,
        "eta_multiples_of_2_over_lambda0": multiples,
    }
    return Result(metrics=metrics, checks=checks, figures=figures, config=config, summary=summary)


def main(argv=None):
    """Command line entry point."""
    return cli(run, __doc__, argv)


if __name__ == "__main__":
    from experiments.edge_of_stability import main as _main  # so metrics.json names it

    _main()
