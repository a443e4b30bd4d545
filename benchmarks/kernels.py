"""Empirical NTK: wideth's methods vs neural-tangents' ``empirical_ntk_fn``.

Two networks, float32, same parameters and inputs for every method, in one run:

* MLP: depth 3, width 1024, ReLU, ntk parameterisation, 256 inputs of dim 64, 1 output;
* CNN: two 3x3 SAME convolutions with 16 channels, ReLU, flatten, dense readout to
  10 outputs, 32 inputs of 8x8x3.

Each row is the median wall time over repeats after a warm-up call that includes
compilation. neural-tangents runs with ``vmap_axes=0`` (rows independent, its fastest
setting) and ``trace_axes=(-1,)``; every implementation is tried and a failing one is
reported with its error. The ratio column is (NT's best time) / (this row's time), and
the difference column is the max abs difference to NT's best implementation's kernel.

Run: ``python -m benchmarks.kernels [--quick]``; writes the "kernels" section of
BENCHMARKS.md (not with ``--quick``).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import block, failure, network_main, nt_empirical_ntk, timeit
from wideth.compat import neural_tangents
from wideth.kernels import empirical


def _networks(quick: bool):
    stax = neural_tangents().stax
    width, n_mlp, n_cnn, ch, hw = (128, 32, 8, 8, 8) if quick else (1024, 256, 32, 16, 8)
    mlp = stax.serial(
        *[layer for _ in range(3) for layer in (stax.Dense(width, W_std=2**0.5), stax.Relu())],
        stax.Dense(1),
    )
    cnn = stax.serial(
        stax.Conv(ch, (3, 3), padding="SAME", W_std=2**0.5, b_std=0.05),
        stax.Relu(),
        stax.Conv(ch, (3, 3), padding="SAME", W_std=2**0.5, b_std=0.05),
        stax.Relu(),
        stax.Flatten(),
        stax.Dense(10, b_std=0.05),
    )
    kx = jax.random.split(jax.random.PRNGKey(0), 2)
    x_mlp = jax.random.normal(kx[0], (n_mlp, 64), jnp.float32)
    x_cnn = jax.random.normal(kx[1], (n_cnn, hw, hw, 3), jnp.float32)
    return [
        (f"MLP depth 3, width {width}, {n_mlp} x 64", mlp, x_mlp),
        (f"CNN 2x conv3x3({ch}) + dense(10), {n_cnn} x {hw}x{hw}x3", cnn, x_cnn),
    ]


def _repeats(fn, quick: bool) -> float:
    """Median time; fewer repeats for calls slower than a few seconds."""
    t0 = time.perf_counter()
    block(fn())  # warm-up with compilation
    first = time.perf_counter() - t0
    repeats = 1 if quick or first > 20.0 else (3 if first > 5.0 else 10)
    return timeit(fn, repeats=repeats, warmup=0)


def _bench_network(name, triple, x, quick):
    init_fn, apply_fn, _ = triple
    _, params = init_fn(jax.random.PRNGKey(1), x.shape)
    results, failures = {}, {}
    for impl in (1, 2, 3):
        label = f"neural-tangents impl {impl}"
        try:
            fn = nt_empirical_ntk(apply_fn, impl)
            run = lambda fn=fn: fn(x, None, params)
            kern = np.asarray(block(run()))
            results[label] = (_repeats(run, quick), kern)
        except Exception as e:  # noqa: BLE001 -- record why a peer implementation fails
            failures[label] = failure(e, 160)
        print(f"{name}: {label} done", flush=True)
    for method in ("structured", "jacobian", "jvp"):
        run = lambda m=method: empirical.ntk(apply_fn, params, x, method=m)
        results[f"wideth {method}"] = (_repeats(run, quick), np.asarray(block(run())))
        print(f"{name}: wideth {method} done", flush=True)
    auto = empirical.structured_report(apply_fn, params, x)["auto"]
    nt_best = min((k for k in results if k.startswith("neural")), key=lambda k: results[k][0])
    t_ref, k_ref = results[nt_best]
    rows = [
        [name, label, t, t_ref / t, float(np.max(np.abs(k - k_ref)))]
        for label, (t, k) in results.items()
    ]
    rows += [[name, label, "fails", "-", err] for label, err in failures.items()]
    ours_best = min((k for k in results if k.startswith("wideth")), key=lambda k: results[k][0])
    summary = (
        f"{name}: our best ({ours_best}) is {t_ref / results[ours_best][0]:.3g}x faster than "
        f'NT\'s best ({nt_best}); `method="auto"` picks `{auto}`; '
        f"max |K| = {float(np.max(np.abs(k_ref))):.3g}."
    )
    return rows, summary


_HEADING = "## Empirical NTK (`benchmarks/kernels.py`)"
_INTRO = (
    "Output-traced NTK (mean over outputs, NT's `trace_axes=(-1,)` convention), float32, "
    "same parameters and inputs, one run. Time: median wall time after a compiling "
    "warm-up. Speed-up: NT's best time / this row's time. Max abs diff: to NT's best "
    "implementation's kernel. NT runs with `vmap_axes=0`."
)
_HEADER = ["network", "method", "time [s]", "speed-up vs NT best", "max abs diff / error"]


def main(argv: list[str] | None = None) -> str:
    return network_main(
        argv, __doc__, _networks, _bench_network, "kernels", _HEADING, _INTRO, _HEADER
    )


if __name__ == "__main__":
    main()
