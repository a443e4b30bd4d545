"""Timing helpers shared by the benchmark scripts.

Every benchmark times ours and the peer on the same input in the same run
(median of repeats after a warm-up that includes compilation) and writes a
markdown section into BENCHMARKS.md between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->`` markers, so scripts can be re-run one at a time.
"""

from __future__ import annotations

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
