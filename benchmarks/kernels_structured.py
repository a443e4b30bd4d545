"""Structured empirical NTK per architecture: wideth vs neural-tangents vs jacrev + einsum.

Four networks from :mod:`wideth.models` (float32, same parameters and inputs for
every route, one run, so the ratios are side by side on the same machine load):

* MLP 32-512x5-10 with biases (``b_std=0.1``), 512 inputs;
* CNN: 3 conv 3x3 layers of 32 channels, global average pooling, dense readout,
  64 inputs of 16x16x3;
* ConvResNet: conv embedding + 3 residual conv blocks of 32 channels, pooling,
  dense readout, 64 inputs of 16x16x3.

Routes: ``wideth structured`` / ``jacobian`` / ``auto``; neural-tangents
``empirical_ntk_fn`` implementation 2 (1 in ``--quick`` too; ``vmap_axes=0``, ``trace_axes=(-1,)``,
jitted; the best working one is the reference); ``jacrev + einsum`` (``jax.vmap``
of a one-row ``jax.jacrev``, flattened, contracted by ``jnp.einsum``). Time: median wall time
after a compiling warm-up. FLOPs: XLA's ``cost_analysis`` of the compiled call
(loops are counted once per body, so blocked routes are undercounted) and, for
wideth, our cost model's estimate (multiply-adds, ``empirical._method_costs``).

Run: ``python -m benchmarks.kernels_structured [--quick]``; writes the
"kernels_structured" section of BENCHMARKS.md (not with ``--quick``).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks._common import block, failure, network_main, nt_empirical_ntk, timeit
from wideth import models
from wideth.kernels import empirical


def _networks(quick: bool):
    r = nnx.Rngs(0)
    n_mlp, n_img, w, ch, hw = (64, 8, 64, 8, 8) if quick else (512, 64, 512, 32, 16)
    kx = jax.random.split(jax.random.PRNGKey(1), 2)
    x_mlp = jax.random.normal(kx[0], (n_mlp, 32), jnp.float32)
    x_img = jax.random.normal(kx[1], (n_img, hw, hw, 3), jnp.float32)
    return [
        (
            f"MLP 32-{w}x5-10 + biases, {n_mlp} inputs",
            models.MLP(32, w, 5, out_dim=10, b_std=0.1, rngs=r),
            x_mlp,
        ),
        (
            f"CNN 3x conv3x3({ch}) + GAP + dense(10), {n_img} x {hw}x{hw}x3",
            models.CNN(3, ch, 10, depth=3, b_std=0.1, rngs=r),
            x_img,
        ),
        (
            f"ConvResNet 3 blocks conv3x3({ch}) + GAP + dense(10), {n_img} x {hw}x{hw}x3",
            models.ConvResNet(3, ch, 10, depth=3, b_std=0.1, rngs=r),
            x_img,
        ),
    ]


def _time(fn, quick):
    t0 = time.perf_counter()
    out = np.asarray(block(fn()))
    first = time.perf_counter() - t0
    repeats = 1 if quick or first > 20.0 else 3
    return timeit(fn, repeats=repeats, warmup=0), out


def _flops(jitted, *args) -> float:
    try:
        analysis = jitted.lower(*args).compile().cost_analysis()
        analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
        return float(analysis.get("flops", float("nan")))
    except Exception:  # noqa: BLE001 -- a missing estimate is reported as nan
        return float("nan")


def _jacrev_einsum(apply_fn):
    @jax.jit
    def kernel(params, x):
        # per-row Jacobians (a whole-batch jacrev needs 44 GB on the MLP)
        single = lambda p, xi: apply_fn(p, xi[None])[0]
        jac = jax.vmap(jax.jacrev(single), in_axes=(None, 0))(params, x)
        n, k = x.shape[0], jax.tree.leaves(jac)[0].shape[1]
        flat = jnp.concatenate([j.reshape(n, k, -1) for j in jax.tree.leaves(jac)], -1)
        return jnp.einsum("ikp,jkp->ij", flat, flat) / k

    return kernel


def _bench(name, module, x, quick):
    graphdef, params = nnx.split(module, nnx.Param)
    apply_fn = lambda p, xx: nnx.merge(graphdef, p)(xx)
    n = x.shape[0]
    plan = empirical._structured_plan(apply_fn, params, x.shape[1:], x.dtype)
    model = empirical._method_costs(plan, params, n, n, False, True)
    auto = empirical._choose(apply_fn, params, x, n)
    results, failures = {}, {}
    for impl in (1, 2) if quick else (2,):  # impl 1: ~3x slower than 2 on MLPs (DESIGN.md)
        label = f"neural-tangents impl {impl}"
        try:
            fn = nt_empirical_ntk(apply_fn, impl)
            t, k = _time(lambda fn=fn: fn(x, None, params), quick)
            results[label] = (t, k, _flops(fn, x, None, params), float("nan"))
        except Exception as e:  # noqa: BLE001 -- record why a peer implementation fails
            failures[label] = failure(e, 120)
        print(f"{name}: {label} done", flush=True)
    jr = _jacrev_einsum(apply_fn)
    try:
        t, k = _time(lambda: jr(params, x), quick)
        results["jax.jacrev + einsum"] = (t, k, _flops(jr, params, x), float("nan"))
    except Exception as e:  # noqa: BLE001 -- the full Jacobian may not fit in memory
        failures["jax.jacrev + einsum"] = failure(e, 120)
    print(f"{name}: jacrev done", flush=True)
    for method in ("structured", "jacobian"):
        run = lambda m=method: empirical.ntk(apply_fn, params, x, method=m)
        try:
            t, k = _time(run, quick)
        except Exception as e:  # noqa: BLE001 -- the full Jacobian may not fit in memory
            failures[f"wideth {method}"] = failure(e, 120)
            continue
        fl = _flops(empirical._ntk_jit, apply_fn, params, x, x, method, None, False, True)
        results[f"wideth {method}"] = (t, k, fl, 2 * model[method])
        print(f"{name}: wideth {method} done", flush=True)
    peers = [k for k in results if k.startswith("neural")] or ["wideth structured"]
    nt_best = min(peers, key=lambda k: results[k][0])
    t_ref, k_ref = results[nt_best][:2]
    rows = [
        [name, label, t, t_ref / t, fl, est, float(np.max(np.abs(k - k_ref)))]
        for label, (t, k, fl, est) in results.items()
    ]
    rows += [[name, label, "fails", "-", "-", "-", err] for label, err in failures.items()]
    ours = results["wideth structured"][0]
    timed = lambda label: results[label][0] if label in results else float("inf")
    best_ours = min(("structured", "jacobian"), key=lambda m: timed(f"wideth {m}"))
    summary = (
        f"{name}: structured {ours:.3g} s is {t_ref / ours:.3g}x faster than {nt_best} and "
        f"{timed('jax.jacrev + einsum') / ours:.3g}x faster than jacrev + einsum "
        f"(inf: that one ran out of memory); `auto` picks `{auto}` (fastest measured here: "
        f"`{best_ours}`, auto/fastest time "
        f"{timed(f'wideth {auto}') / timed(f'wideth {best_ours}'):.2f}); "
        f"max |K| = {float(np.max(np.abs(k_ref))):.3g}."
    )
    return rows, summary


_HEADING = "## Structured empirical NTK per architecture (`benchmarks/kernels_structured.py`)"
_INTRO = (
    "Output-traced NTK (mean over outputs), float32, same parameters and inputs, one run "
    "(ratios side by side). Time: median wall time after a compiling warm-up, on 2 CPU "
    "cores shared with other jobs (absolute times vary with load; compare within a "
    "network). Speed-up: the best neural-tangents time / this row's time. XLA FLOPs: "
    "`cost_analysis()` of the compiled call. Model FLOPs: our cost model "
    "(2 x multiply-adds) that `auto` uses. Max abs diff: to the reference kernel."
)
_HEADER = [
    "network",
    "route",
    "time [s] (2 CPU cores)",
    "speed-up vs NT best",
    "XLA FLOPs",
    "model FLOPs",
    "max abs diff / error",
]


def main(argv: list[str] | None = None) -> str:
    return network_main(
        argv, __doc__, _networks, _bench, "kernels_structured", _HEADING, _INTRO, _HEADER
    )


if __name__ == "__main__":
    main()
