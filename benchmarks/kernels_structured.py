"""Structured empirical NTK per architecture: wideth vs neural-tangents vs jacrev + einsum.

Four networks from :mod:`wideth.models` (float32, same parameters and inputs for
every route, one run, so the ratios are side by side on the same machine load):

* MLP 32-512x5-10 with biases (``b_std=0.1``), 512 inputs;
* CNN: 3 conv 3x3 layers of 32 channels, global average pooling, dense readout,
  64 inputs of 16x16x3;
* ConvResNet: conv embedding + 3 residual conv blocks of 32 channels, pooling,
  dense readout, 64 inputs of 16x16x3;
* Transformer: dense embedding, 2 blocks of 4-head softmax self-attention and a
  dense sublayer of width 64 with post layer norm, token-mean pooling, dense
  readout, 64 sequences of 16 tokens of 16 features.

Routes: ``wideth structured`` / ``jacobian`` / ``auto``; neural-tangents
``empirical_ntk_fn`` implementations 1 (Jacobian contraction), 2 (NTK-vector
products) and 3 (structured derivatives, running on current JAX through
:mod:`wideth.compat`; 1 and 2 in ``--quick``; ``vmap_axes=0``,
``trace_axes=(-1,)``, jitted; the best working one is the reference);
``jacrev + einsum`` (``jax.vmap`` of a one-row ``jax.jacrev``, flattened,
contracted by ``jnp.einsum``). Time: median wall time
after a compiling warm-up. FLOPs: XLA's ``cost_analysis`` of the compiled call
(loops are counted once per body, so blocked routes are undercounted) and, for
wideth, our cost model's estimate (multiply-adds, ``empirical.structured_report``
with ``move=0``; ``auto`` and the routes also charge its memory term).
FLOP floor: the structured route's model FLOPs divided by the machine's
dense float32 matmul throughput, measured right before each network (median of
5 jitted 2048 x 2048 x 2048 products); "time / floor" is how far a route is from
doing the structured computation's arithmetic at matmul speed. Because the load
of a shared machine changes between the two measurements, the summary also gives
the ratio from 9 rounds that alternate one matmul and one structured call
(:func:`interleaved_floor`: best time over best-throughput floor).
Peak memory: XLA's ``memory_analysis`` of the same compiled call (arguments +
outputs + temporaries, an estimate from the compiled program; also available for
routes that then run out of memory).

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
    n_seq, tokens, d_tok, w_tok = (16, 6, 4, 16) if quick else (64, 16, 16, 64)
    kx = jax.random.split(jax.random.PRNGKey(1), 3)
    x_mlp = jax.random.normal(kx[0], (n_mlp, 32), jnp.float32)
    x_img = jax.random.normal(kx[1], (n_img, hw, hw, 3), jnp.float32)
    x_seq = jax.random.normal(kx[2], (n_seq, tokens, d_tok), jnp.float32)
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
        (
            f"Transformer 2 blocks width {w_tok} (4 heads) + post-LN + dense(10), "
            f"{n_seq} x {tokens} tokens x {d_tok}",
            models.Transformer(
                d_tok, w_tok, 2, out_dim=10, n_heads=4, b_std=0.1, layernorm="post", rngs=r
            ),
            x_seq,
        ),
    ]


def _time(fn, quick):
    t0 = time.perf_counter()
    out = np.asarray(block(fn()))
    first = time.perf_counter() - t0
    repeats = 1 if quick or first > 20.0 else 3
    return timeit(fn, repeats=repeats, warmup=0), out


def _compiled(jitted, *args) -> tuple[float, float]:
    """XLA's FLOPs and peak bytes (arguments + outputs + temporaries) of one compile."""
    flops = peak = float("nan")
    try:
        compiled = jitted.lower(*args).compile()
    except Exception:  # noqa: BLE001 -- a missing estimate is reported as nan
        return flops, peak
    try:
        analysis = compiled.cost_analysis()
        analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
        flops = float(analysis.get("flops", float("nan")))
    except Exception:  # noqa: BLE001
        pass
    try:
        mem = compiled.memory_analysis()
        peak = float(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes)
    except Exception:  # noqa: BLE001
        pass
    return flops, peak


def matmul_flops_per_second(n: int = 2048, repeats: int = 5) -> float:
    """Measured dense float32 matmul throughput (FLOP/s): ``2 n^3 / t``, median ``t``."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    mm = jax.jit(jnp.matmul)
    return 2.0 * n**3 / timeit(lambda: mm(a, b), repeats=repeats, warmup=2)


def interleaved_floor(
    fn, model_flops: float, n: int = 2048, rounds: int = 9
) -> tuple[float, float]:
    """``fn``'s time against its FLOP floor, measured interleaved with the matmul.

    Each round times one ``n x n x n`` float32 matmul and then one ``fn()``; the
    minimum of each over ``rounds`` gives the best time and the best throughput
    the machine delivered in the same window, so a load spike that slows one
    and not the other does not enter the ratio. Returns ``(min time,
    min time / (model_flops / max throughput))``.
    """
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    mm = jax.jit(jnp.matmul)
    block(mm(a, b))
    block(fn())
    t_mm, t_fn = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        block(mm(a, b))
        t_mm.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        block(fn())
        t_fn.append(time.perf_counter() - t0)
    throughput = 2.0 * n**3 / min(t_mm)
    return min(t_fn), min(t_fn) / (model_flops / throughput)


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
    report = empirical.structured_report(apply_fn, params, x)
    model, auto = report["method_costs"], report["auto"]  # multiply-adds (arithmetic only)
    floor = 2 * model["structured"] / matmul_flops_per_second(512 if quick else 2048)
    results, failures, stats = {}, {}, {}
    for impl in (1, 2) if quick else (1, 2, 3):
        label = f"neural-tangents impl {impl}"
        try:
            fn = nt_empirical_ntk(apply_fn, impl)
            stats[label] = _compiled(fn, x, None, params)
            t, k = _time(lambda fn=fn: fn(x, None, params), quick)
            results[label] = (t, k, float("nan"))
        except Exception as e:  # noqa: BLE001 -- record why a peer implementation fails
            failures[label] = failure(e, 120)
        print(f"{name}: {label} done", flush=True)
    jr = _jacrev_einsum(apply_fn)
    stats["jax.jacrev + einsum"] = _compiled(jr, params, x)
    try:
        t, k = _time(lambda: jr(params, x), quick)
        results["jax.jacrev + einsum"] = (t, k, float("nan"))
    except Exception as e:  # noqa: BLE001 -- the full Jacobian may not fit in memory
        failures["jax.jacrev + einsum"] = failure(e, 120)
    print(f"{name}: jacrev done", flush=True)
    for method in ("structured", "jacobian"):
        run = lambda m=method: empirical.ntk(apply_fn, params, x, method=m)
        jitted = jax.jit(lambda p, xx, m=method: empirical.ntk(apply_fn, p, xx, method=m))
        stats[f"wideth {method}"] = _compiled(jitted, params, x)
        try:
            t, k = _time(run, quick)
        except Exception as e:  # noqa: BLE001 -- the full Jacobian may not fit in memory
            failures[f"wideth {method}"] = failure(e, 120)
            continue
        results[f"wideth {method}"] = (t, k, 2 * model[method])
        print(f"{name}: wideth {method} done", flush=True)
    peers = [k for k in results if k.startswith("neural")] or ["wideth structured"]
    nt_best = min(peers, key=lambda k: results[k][0])
    t_ref, k_ref = results[nt_best][:2]
    nan2 = (float("nan"), float("nan"))
    gb = lambda label: stats.get(label, nan2)[1] / 1e9
    rows = [
        [name, label, t, t_ref / t, t / floor, stats.get(label, nan2)[0], est, gb(label)]
        + [float(np.max(np.abs(k - k_ref)))]
        for label, (t, k, est) in results.items()
    ]
    rows += [
        [name, label, "fails", "-", "-", "-", "-", gb(label), err]
        for label, err in failures.items()
    ]
    ours = results["wideth structured"][0]
    t_min, ratio_min = interleaved_floor(
        lambda: empirical.ntk(apply_fn, params, x, method="structured"),
        2 * model["structured"],
        512 if quick else 2048,
        3 if quick else 9,
    )
    timed = lambda label: results[label][0] if label in results else float("inf")
    best_ours = min(("structured", "jacobian"), key=lambda m: timed(f"wideth {m}"))
    jr_label = "jax.jacrev + einsum"
    nt_rows = [k for k in results if k.startswith("neural")]
    versus = [
        "neural-tangents time / structured time: "
        + ", ".join(f"{k[-6:]} {results[k][0] / ours:.3g}" for k in nt_rows)
        if nt_rows
        else "every neural-tangents implementation fails (see its rows)",
        f"{timed(jr_label) / ours:.3g}x faster than jacrev + einsum"
        if jr_label in results
        else "jacrev + einsum fails (see its row)",
    ]
    summary = (
        f"{name}: structured {ours:.3g} s = {ours / floor:.3g} x its FLOP floor "
        f"{floor:.3g} s ({gb('wideth structured'):.3g} GB peak; interleaved with the "
        f"matmul, minima of {3 if quick else 9} rounds: {t_min:.3g} s = {ratio_min:.3g} x "
        "the floor): " + "; ".join(versus) + f"; `auto` picks `{auto}` (fastest measured here: "
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
    "(2 x multiply-adds; `auto` and the routes add a memory term for large "
    "intermediates). Peak memory: `memory_analysis()` of the compiled call (arguments "
    "+ outputs + temporaries; also for routes that then fail). "
    "Max abs diff: to the reference kernel. Time / floor: the time divided by the "
    "structured computation's model FLOPs at the dense float32 matmul throughput "
    "measured in the same run just before the network."
)
_HEADER = [
    "network",
    "route",
    "time [s] (2 CPU cores)",
    "speed-up vs NT best",
    "time / FLOP floor",
    "XLA FLOPs",
    "model FLOPs",
    "peak memory [GB]",
    "max abs diff / error",
]


def main(argv: list[str] | None = None) -> str:
    return network_main(
        argv, __doc__, _networks, _bench, "kernels_structured", _HEADING, _INTRO, _HEADER
    )


if __name__ == "__main__":
    main()
