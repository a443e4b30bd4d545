"""Call overhead: compile and run time of the first and second call of the runtime's entry points.

Each entry point is called twice with the same functions and new data of the
same shapes. The first call's time includes tracing and compilation; the
second should compile nothing (``tests/test_recompile.py`` asserts it) and
cost only the run. ``fit`` is also timed against a hand-written jitted optax
loop doing the same steps (one ``lax.scan`` of value_and_grad + update +
apply_updates over the same full batch): the target is a second-call
overhead of at most 5% of the loop's time.

Usage: ``python -m benchmarks.overhead [--quick]``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx

from benchmarks._common import block, publish, table, timeit
from wideth import functional, hessian, models, train
from wideth.kernels import empirical

#: Interleaved fit / loop rounds (the two 1000-step runs vary by ~20% from call to call here).
ROUNDS = 16


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    block(fn())
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    n, width, steps = (256, 128, 200) if quick else (1024, 256, 1000)
    net = models.MLP(64, width, 2, out_dim=10, rngs=nnx.Rngs(0))
    apply_fn, params = functional.as_apply(net)
    k = jax.random.split(jax.random.key(0), 4)
    batches = [
        (jax.random.normal(k[i], (n, 64)), jax.random.normal(k[i + 2], (n, 10))) for i in range(2)
    ]
    tx = optax.sgd(0.05)

    def loss(p, b):
        return train.mse(apply_fn(p, b[0]), b[1])

    step = train.train_step(apply_fn, "mse", tx)
    s0 = train.TrainState.create(params, tx)
    run = jax.jit(lambda s, b: train.run(step, s, b, steps))
    key = jax.random.key(1)

    calls = {
        f"fit ({steps} steps, log every 100)": lambda b: (
            train.fit(apply_fn, params, tx, b, steps=steps, log_every=100, quiet=True).params
        ),
        f"jit(run) ({steps} steps)": lambda b: run(s0, b).state.params,
        "top_eigenpairs (k=5, 20 steps)": lambda b: hessian.top_eigenpairs(
            hessian.hessian(loss, params, b), k=5, num_steps=20, key=key
        ),
        "spectral_density (4 probes x 20 steps)": lambda b: hessian.spectral_density(
            hessian.hessian(loss, params, b), num_probes=4, num_steps=20, key=key
        ),
        "trace (16 probes)": lambda b: hessian.trace(
            hessian.hessian(loss, params, b), num_probes=16, key=key
        ),
        f"empirical.ntk ({n // 4} x {n // 4})": lambda b: empirical.ntk(
            apply_fn, params, b[0][: n // 4]
        ),
    }
    rows = []
    for name, fn in calls.items():
        first = _timed(lambda fn=fn: fn(batches[0]))
        second = _timed(lambda fn=fn: fn(batches[1]))
        steady = timeit(lambda fn=fn: fn(batches[1]), repeats=3, warmup=0)
        rows.append([name, first, first - steady, second, steady, second / steady])
        print(name, first, second, steady, flush=True)

    # fit against a hand-written jitted optax loop over the same steps.
    @jax.jit
    def loop(p, b):
        def body(carry, _):
            p, s = carry
            value, g = jax.value_and_grad(loss)(p, b)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), value

        (p, _), values = jax.lax.scan(body, (p, tx.init(p)), None, length=steps)
        return p, values

    fit_call = calls[f"fit ({steps} steps, log every 100)"]
    t_fit, t_loop = [], []
    block(loop(params, batches[0]))
    for i in range(ROUNDS):  # interleaved rounds, side by side; every fit call gets other data
        b = batches[i % 2]
        t_fit.append(_timed(lambda b=b: fit_call(b)))
        t_loop.append(_timed(lambda b=b: loop(params, b)))
    med_fit, med_loop = float(np.median(t_fit)), float(np.median(t_loop))
    best_fit, best_loop = min(t_fit), min(t_loop)
    overhead = (med_fit - med_loop) / med_loop

    md = "\n".join(
        [
            "## Call overhead (`benchmarks/overhead.py`)",
            "",
            f"MLP 64-{width}x2-10 ({sum(x.size for x in jax.tree.leaves(params))} parameters), "
            f"{n} random inputs, float32. Each entry point is called with one batch, then with "
            "a new batch of the same shape (same functions): the first call traces and "
            "compiles, the second compiles nothing (`tests/test_recompile.py` asserts it). "
            "'steady' is the median of three further calls; first - steady estimates the "
            "trace and compile time.",
            "",
            table(
                [
                    "call",
                    "first (s)",
                    "compile = first - steady (s)",
                    "second (s)",
                    "steady (s)",
                    "second / steady",
                ],
                rows,
            ),
            "",
            f"`fit` ({steps} full-batch SGD steps, metrics logged every 100) against a "
            f"hand-written jitted `lax.scan` optax loop over the same steps, {ROUNDS} interleaved "
            f"rounds after both compiled, each `fit` call on the other batch than the last "
            f"(a repeated call with new data): median {med_fit:.4g} s vs {med_loop:.4g} s, "
            f"overhead {100 * overhead:.1f}% (target <= 5%); best {best_fit:.4g} s vs "
            f"{best_loop:.4g} s.",
        ]
    )
    publish("overhead", md)


if __name__ == "__main__":
    main()
