"""Per-step time of ADLER (wideth.optim.pl_adaptive) and its variants vs SGD and Adam.

Same model, same minibatch, same run: one jitted training step (gradient +
optimizer update + apply) per optimizer, median of repeats after compilation.
ADLER adds one JVP through the network (and a forward-over-reverse product in
output space), so the target is <= 2.2x the SGD step.
"""

from __future__ import annotations

import statistics
from typing import Any

import jax
import optax

from benchmarks._common import table, timeit, write_section
from wideth import train

REPEATS = 21


def _models(batch: int) -> list[tuple[str, Any, Any, jax.Array, jax.Array]]:
    from flax import nnx

    from wideth import models

    key_x, key_y = jax.random.split(jax.random.PRNGKey(0))
    out = []
    mlp = models.MLP(
        784, 512, 3, 10, activation="relu", parameterization="standard", rngs=nnx.Rngs(0)
    )
    apply_fn, params = models.functional(mlp)
    x = jax.random.normal(key_x, (batch, 784))
    out.append((f"MLP 784-512x3-10, batch {batch}", apply_fn, params, x))
    cnn = models.CNN(1, 32, 10, parameterization="standard", rngs=nnx.Rngs(0))
    apply_fn, params = models.functional(cnn)
    x = jax.random.normal(key_x, (batch, 28, 28, 1))
    out.append((f"CNN 28x28x1, 32 channels, batch {batch}", apply_fn, params, x))
    labels = jax.nn.one_hot(jax.random.randint(key_y, (batch,), 0, 10), 10)
    return [(n, f, p, x, labels) for n, f, p, x in out]


def _step_fn(tx: optax.GradientTransformationExtraArgs, apply_fn: Any):
    """The library's training step (wideth.train.train_step), jitted."""
    step = train.train_step(apply_fn, "xent", tx, metrics=())
    return jax.jit(lambda state, x, y: step(state, (x, y)))


def _optimizers() -> dict[str, optax.GradientTransformation]:
    """SGD and Adam, faithful ADLER, the GN baseline and the research variants."""
    from wideth import optim

    c = optim.contrib
    return {
        "SGD": optax.sgd(0.01),
        "Adam": optax.adam(1e-3),
        "ADLER": optim.pl_adaptive(),
        "GN": optim.outer_product_adaptive(),
        "safeguarded": c.pl_adaptive_safeguarded(1.5, 0.9),
        "gn_momentum": c.gauss_newton_momentum(),
        "scheduled": c.pl_adaptive_scheduled(0.999, 10.0),
    }


def main() -> None:
    rows, ratio_rows = [], []
    names = list(_optimizers())
    for name, apply_fn, params, x, y in _models(batch=128):
        calls = {}
        for opt_name, tx in _optimizers().items():
            tx = optax.with_extra_args_support(tx)
            step = _step_fn(tx, apply_fn)
            args = (train.TrainState.create(params, tx), x, y)
            calls[opt_name] = lambda step=step, args=args: step(*args)
            timeit(calls[opt_name], repeats=1, warmup=2)  # compile
        # Interleaved rounds, so load from other processes hits every optimizer alike.
        samples: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(REPEATS):
            for opt_name, call in calls.items():
                samples[opt_name].append(timeit(call, repeats=1, warmup=0))
        times = {k: statistics.median(v) for k, v in samples.items()}
        rows.append([name, *(times[k] * 1e3 for k in names)])
        ratio_rows.append([name, *(times[k] / times["SGD"] for k in names[1:])])
        print(name, {k: f"{v * 1e3:.2f} ms" for k, v in times.items()})
    md = (
        "## optim: per-step time of ADLER and its variants vs SGD and Adam\n\n"
        "One jitted wideth.train.train_step (value_and_grad + optimizer update + apply) on "
        "the same model and minibatch, median of 21 interleaved rounds after compilation; "
        "mean softmax cross-entropy, standard parameterisation. Target: ADLER <= 2.2x SGD. "
        "Counted in gradient evaluations per step (the pl_adaptive experiment's compute "
        "unit): SGD, Adam and GN 1; ADLER, safeguarded and scheduled 2 (+ one JVP); "
        "gn_momentum 3 (+ two JVPs). "
        "The CPU was shared with other jobs while this ran: read the ratios, not the absolute "
        "times.\n\n"
        + table(["model", *(f"{k} ms" for k in names)], rows)
        + "\n\nTime per step / SGD's:\n\n"
        + table(["model", *(f"{k} / SGD" for k in names[1:])], ratio_rows)
    )
    write_section("optim", md)


if __name__ == "__main__":
    main()
