"""Timing helpers shared by the benchmark scripts.

Every benchmark times ours and the peer on the same input in the same run
(median of repeats after a warm-up that includes compilation) and writes a
markdown section into BENCHMARKS.md between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->`` markers, so scripts can be re-run one at a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def block(x: Any) -> Any:
    """Wait for JAX arrays in a pytree to be computed."""
    import jax

    return jax.block_until_ready(x)


def timeit(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` calls."""
    for _ in range(warmup):
        block(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def hardware_line() -> str:
    """One line naming the hardware, for labelling absolute times."""
    import jax

    dev = jax.devices()[0]
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"JAX {jax.__version__} on {dev.platform} ({dev.device_kind})"
    )


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A markdown table; floats get 4 significant digits."""
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def write_section(name: str, markdown: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section ``name`` of BENCHMARKS.md."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = f"{start}\n{markdown.strip()}\n\n_Hardware: {hardware_line()}._\n{end}"
    text = path.read_text() if path.exists() else "# wideth benchmarks\n\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: body, text) if pattern.search(text) else text + "\n" + body + "\n"
    path.write_text(text)


def publish(name: str, markdown: str, write: bool = True) -> str:
    """Print ``markdown`` and, if ``write``, make it the section ``name`` of BENCHMARKS.md."""
    print(markdown)
    if write:
        write_section(name, markdown)
    return markdown


def failure(error: Exception, limit: int) -> str:
    """One line naming why a route failed: the exception type and its first ``limit`` chars."""
    return f"{type(error).__name__}: {str(error).splitlines()[0][:limit]}"


def nt_empirical_ntk(apply_fn: Callable, implementation: int) -> Callable:
    """neural-tangents' jitted output-traced empirical NTK, rows independent (``vmap_axes=0``)."""
    import jax

    from wideth.compat import neural_tangents

    return jax.jit(
        neural_tangents().empirical_ntk_fn(
            apply_fn, trace_axes=(-1,), vmap_axes=0, implementation=implementation
        )
    )


def network_main(
    argv: list[str] | None,
    doc: str,
    networks: Callable[[bool], list[tuple[str, Any, Any]]],
    bench: Callable[[str, Any, Any, bool], tuple[list[list[Any]], str]],
    section: str,
    heading: str,
    intro: str,
    header: list[str],
) -> str:
    """The main of a per-network benchmark.

    Parses ``--quick``, runs ``bench(name, network, x, quick)`` for every entry of
    ``networks(quick)`` and publishes one table of all rows with the summaries below
    it (written to BENCHMARKS.md unless ``--quick``).
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, do not write")
    args = parser.parse_args(argv)
    rows, summaries = [], []
    for name, network, x in networks(args.quick):
        r, s = bench(name, network, x, args.quick)
        rows += r
        summaries.append(s)
    md = f"{heading}\n\n{intro}\n\n" + table(header, rows)
    md += "\n\n" + "\n".join(f"- {s}" for s in summaries) + "\n"
    return publish(section, md, write=not args.quick)
