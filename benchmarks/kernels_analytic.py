"""Analytic NNGP+NTK of a depth-10 ReLU MLP: time, throughput and peak memory.

Every configuration runs in its own subprocess, which reports its wall time
and its peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``,
which includes the ~0.3 GB of the Python/JAX runtime, reported separately as
the baseline). Timings are after one warm-up call on the same shapes (which
includes compilation), except for the largest size, which is timed once
including compilation. The peer is neural-tangents' own ``kernel_fn``, jitted
and unbatched, on the same inputs in the same run. Writes the section
``analytic`` of BENCHMARKS.md.

Run: ``python -m benchmarks.kernels_analytic [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

DEPTH = 10
DIM = 64
TIMEOUT_S = 300.0
HOST_DEPTH = 3  # NNGP streamed to host memory: depth-3 ReLU MLP
HOST_SAMPLE_ROWS = 4


def _host_child(n: int, batch_size: int, mode: str) -> dict:
    """One NNGP of a depth-3 ReLU MLP into host memory: ours (memmap) or NT's ``nt.batch``."""
    import shutil
    import tempfile

    import jax
    import jax.numpy as jnp
    import numpy as np

    from wideth.compat import neural_tangents
    from wideth.kernels import analytic

    nt = neural_tangents()

    x = jax.random.normal(jax.random.PRNGKey(0), (n, DIM), jnp.float32)
    _, _, kernel_fn = analytic.mlp(HOST_DEPTH, 1, "relu")
    tmp = tempfile.mkdtemp()
    try:
        t0 = time.perf_counter()
        if mode == "host":
            k = analytic.kernel(
                kernel_fn,
                x,
                get="nngp",
                batch_size=batch_size,
                out="host",
                path=os.path.join(tmp, "nngp.npy"),
            )
        elif mode == "nt_host":
            k = nt.batch(kernel_fn, batch_size, store_on_device=False)(x, None, "nngp")
            k = np.asarray(k)
        else:
            raise ValueError(f"mode must be host or nt_host, got {mode!r}")
        elapsed = time.perf_counter() - t0
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Spot check: a few random rows against kernel_fn on those rows directly.
        rows = np.random.default_rng(0).choice(n, HOST_SAMPLE_ROWS, replace=False)
        direct = np.asarray(jax.jit(lambda a: kernel_fn(a, x, "nngp"))(x[rows]))
        err = float(np.max(np.abs(np.asarray(k[rows]) - direct)) / np.max(np.abs(direct)))
        sym = float(np.max(np.abs(np.asarray(k[rows][:, rows]) - np.asarray(k[rows][:, rows]).T)))
        nbytes = int(k.nbytes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "n": n,
        "batch_size": batch_size,
        "mode": mode,
        "time_s": elapsed,
        "peak_rss_gb": rss_kb / 2**20,
        "result_gb": nbytes / 2**30,
        "sample_rel_err": err,
        "sample_asym": sym,
        "finite": bool(np.all(np.isfinite(np.asarray(k[rows])))),
    }


def _child(n: int, batch_size: int, mode: str, repeats: int) -> dict:
    if mode in ("host", "nt_host"):
        return _host_child(n, batch_size, mode)
    import jax
    import jax.numpy as jnp

    from wideth.kernels import analytic

    x = jax.random.normal(jax.random.PRNGKey(0), (n, DIM), jnp.float32)
    _, _, kernel_fn = analytic.mlp(DEPTH, 1, "relu")
    if mode == "baseline":
        fn = lambda: analytic.kernel(kernel_fn, x[:8], get=("nngp", "ntk"))
    elif mode == "ours":
        fn = lambda: analytic.kernel(kernel_fn, x, get=("nngp", "ntk"), batch_size=batch_size)
    elif mode == "nt":
        jitted = jax.jit(kernel_fn, static_argnames="get")
        fn = lambda: jitted(x, None, get=("nngp", "ntk"))
    else:
        raise ValueError(f"mode must be baseline, ours or nt, got {mode!r}")
    times = []
    out = None
    for i in range(repeats + (1 if repeats > 0 else 0)):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        if i > 0 or repeats == 0:
            times.append(time.perf_counter() - t0)
    if repeats == 0:
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        times = [time.perf_counter() - t0]
    finite = bool(all(bool(jnp.all(jnp.isfinite(o))) for o in out))
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times.sort()
    return {
        "n": n,
        "batch_size": batch_size,
        "mode": mode,
        "time_s": times[len(times) // 2],
        "peak_rss_gb": rss_kb / 2**20,
        "finite": finite,
    }


def _run(n: int, batch_size: int, mode: str, repeats: int = 1, timeout: float = TIMEOUT_S):
    cmd = [sys.executable, "-m", "benchmarks.kernels_analytic", "--child"]
    cmd += [str(n), str(batch_size), mode, str(repeats)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=root)
    except subprocess.TimeoutExpired:
        print(f"  n={n} batch={batch_size} {mode}: timed out after {timeout:.0f} s", flush=True)
        return None
    if res.returncode != 0:
        print(f"  n={n} batch={batch_size} {mode}: failed\n{res.stderr[-2000:]}", flush=True)
        return None
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t0
    print(f"  {out}", flush=True)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes only")
    p.add_argument("--child", nargs=4, metavar=("N", "BATCH", "MODE", "REPEATS"))
    args = p.parse_args(argv)
    if args.child:
        n, bs, mode, rep = args.child
        print(json.dumps(_child(int(n), int(bs), mode, int(rep))))
        return

    from benchmarks._common import table, write_section

    block = 500
    sizes = [500, 1000, 2000] if args.quick else [500, 1000, 2000, 4000]
    base = _run(8, 0, "baseline", 1)
    rows = []
    for n in sizes:
        ours = _run(n, block, "ours", 3 if n <= 2000 else 1)
        nt = _run(n, 0, "nt", 3 if n <= 2000 else 1)
        if ours is None or nt is None:
            continue
        rows.append(
            [
                n,
                block,
                ours["time_s"],
                n * n / ours["time_s"],
                nt["time_s"],
                n * n / nt["time_s"],
                ours["time_s"] / nt["time_s"],
                ours["peak_rss_gb"],
                nt["peak_rss_gb"],
                ours["peak_rss_gb"] / nt["peak_rss_gb"],
            ]
        )
    header = [
        "n",
        "block",
        "ours blocked s",
        "ours entries/s",
        "NT unblocked s",
        "NT entries/s",
        "time ratio ours/NT",
        "ours peak RSS GB",
        "NT peak RSS GB",
        "memory ratio ours/NT",
    ]
    # The large run: 10k if it finishes in 5 minutes, else the largest that does.
    big = None
    candidates = [3000] if args.quick else [10000, 7000, 5000]
    for n in candidates:
        big = _run(n, 1000, "ours", 0, timeout=TIMEOUT_S)
        if big is not None:
            break
    lines = [
        f"Depth-{DEPTH} ReLU MLP (W_std^2 = 2, b_std = 0), NNGP and NTK together "
        f"(`get=('nngp', 'ntk')`), float32, inputs of dimension {DIM}, x2 = x1. "
        "Each row runs in its own subprocess; peak RSS includes the Python/JAX runtime "
        f"(baseline {base['peak_rss_gb']:.2f} GB for an 8-point kernel)."
        if base
        else "",
        "",
        "Blocked (`wideth.kernels.analytic.kernel(..., batch_size)`, i.e. `nt.batch`) vs "
        "neural-tangents' `kernel_fn` jitted on the whole matrix; median of 3 timed calls "
        "after a warm-up (1 for n = 4000):",
        "",
        table(header, rows),
        "",
    ]
    if big is not None:
        lines.append(
            f"Largest run: n = {big['n']} ({big['n']}x{big['n']} NNGP + NTK), batch_size = 1000, "
            f"one call including compilation: {big['time_s']:.1f} s, "
            f"{big['n'] ** 2 / big['time_s']:.3g} entries/s, peak RSS {big['peak_rss_gb']:.2f} GB, "
            f"all entries finite: {big['finite']}."
        )
    else:
        lines.append(f"No size in {candidates} finished within {TIMEOUT_S:.0f} s.")
    if not args.quick and big is not None and big["n"] != 10000:
        lines.append(
            "n = 10000 did not finish within 5 minutes on this shared machine; the size above "
            "is the largest tried that did (no extrapolation)."
        )
    lines += ["", _host_section(args.quick), ""]
    lines.append(
        "Absolute times depend on what else the machine runs (an earlier run on a loaded "
        "machine was 3-5x slower); the ratios, measured side by side, are the robust numbers."
    )
    write_section("analytic", "\n".join(lines))


def _host_section(quick: bool) -> str:
    """Kernels larger than device memory: streamed to a host memmap vs NT's host gathering."""
    from benchmarks._common import table

    block = 500  # nt.batch needs it to divide n
    rows = []
    pairs = [(4000, True)] if quick else [(20000, True), (50000, False)]
    for n, with_peer in pairs:
        for mode in ("host", "nt_host") if with_peer else ("host",):
            r = _run(n, block, mode, 0, timeout=2 * TIMEOUT_S)
            if r is None:
                continue
            rows.append(
                [
                    n,
                    'wideth `out="host"` (.npy memmap)'
                    if mode == "host"
                    else "NT `nt.batch(store_on_device=False)`",
                    r["time_s"],
                    n * n / r["time_s"],
                    r["result_gb"],
                    r["peak_rss_gb"],
                    r["sample_rel_err"],
                ]
            )
    header = [
        "n",
        "method",
        "time s (incl. compile)",
        "entries/s",
        "result GB",
        "peak RSS GB",
        f"max rel. err, {HOST_SAMPLE_ROWS} rows",
    ]
    return "\n".join(
        [
            f"### Kernels larger than memory: NNGP of a depth-{HOST_DEPTH} ReLU MLP streamed "
            "to host",
            "",
            f"float32, inputs of dimension {DIM}, x2 = x1, row blocks of {block}, one call "
            "each including compilation, each in its own subprocess. Ours writes each block "
            "into a `.npy` file with plain file writes while the next block computes, so the "
            "process holds about one block; NT's `nt.batch` with `store_on_device=False` "
            "gathers the blocks in host memory. The error column compares random rows to "
            "`kernel_fn` evaluated on those rows directly. NT is not run at n = 50000: its "
            "result alone (9.3 GB) plus the concatenation copy would not fit beside the "
            "rest of this 24 GB machine's load.",
            "",
            table(header, rows),
        ]
    )


if __name__ == "__main__":
    main()
