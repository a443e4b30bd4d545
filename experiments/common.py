"""Shared plumbing for experiments: command line, checks, metrics.json, figures.

An experiment module defines

.. code-block:: python

    def run(cfg: Config) -> Result: ...
    def main(argv=None): return cli(run, __doc__, argv)

where ``run`` does the work at ``cfg.quick`` size, saves figures with
:func:`save_figure` into ``cfg.out`` and returns a :class:`Result`. ``cli``
parses arguments, times the run and writes ``metrics.json`` with the config,
seed, library versions, hardware, every measured number and the ``checks``
list ``{name, theory, measured, tolerance, pass}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from wideth import environment, io
from wideth.io import jsonable

KINDS = ("claim", "consistency")


@dataclasses.dataclass(frozen=True)
class Config:
    """Run configuration shared by every experiment."""

    name: str
    quick: bool
    seed: int
    out: Path
    quiet: bool
    #: ``--set KEY=VALUE`` size overrides, as given (strings), applied by :class:`Sizes`
    overrides: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Sizes:
    """An experiment's sizes in both modes: ``SIZES(cfg)`` is the namespace for ``cfg``.

    Both dicts must have the same keys, so a full-mode name cannot be missing
    (a test builds every experiment's full-mode programs).
    """

    quick: dict[str, Any]
    full: dict[str, Any]

    def __post_init__(self) -> None:
        if set(self.quick) != set(self.full):
            diff = sorted(set(self.quick) ^ set(self.full))
            raise ValueError(f"full: expected the keys of quick, the two differ in {diff}")

    def __call__(self, cfg: Config | bool) -> types.SimpleNamespace:
        quick = cfg if isinstance(cfg, bool) else cfg.quick
        sizes = dict(self.quick if quick else self.full)
        for key, text in () if isinstance(cfg, bool) else cfg.overrides:
            if key not in sizes:
                raise ValueError(
                    f"--set: expected a size of this experiment {sorted(sizes)}, got {key!r}"
                )
            sizes[key] = _parse_size(key, text, sizes[key])
        return types.SimpleNamespace(**sizes)


def _parse_size(key: str, text: str, default: Any) -> Any:
    """``text`` read as the type of ``default``: bool, int, float or str, or a tuple of
    them (comma-separated, each read as the default's first element)."""
    if isinstance(default, tuple):
        like = default[0] if default else ""
        return tuple(_parse_size(key, t.strip(), like) for t in text.split(",") if t.strip())
    if not isinstance(default, bool | int | float | str):
        raise ValueError(f"--set: {key} is a {type(default).__name__}, not settable from here")
    if isinstance(default, bool):
        if text.lower() not in ("true", "false"):
            raise ValueError(f"--set: expected {key} as true or false, got {text!r}")
        return text.lower() == "true"
    try:
        return type(default)(text)
    except ValueError:
        raise ValueError(
            f"--set: expected {key} as {type(default).__name__}, got {text!r}"
        ) from None


@dataclasses.dataclass
class Result:
    """What an experiment returns: numbers, checks against theory, figures."""

    metrics: dict[str, Any]
    checks: list[dict[str, Any]]
    figures: list[str]
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    summary: str = ""


def check(
    name: str,
    theory: Any,
    measured: Any,
    tolerance: float | None,
    *,
    relative: bool = False,
    passed: bool | None = None,
    note: str = "",
    kind: str = "claim",
) -> dict[str, Any]:
    """One claim compared to theory or to a published number.

    By default ``pass = |measured - theory| <= tolerance`` (``relative=True``:
    ``<= tolerance * |theory|``); a nan anywhere (a statistic too few samples define)
    fails the check. Give ``passed`` explicitly for claims that are
    not a distance (orderings, inequalities); then say what was compared in
    ``theory`` (a string is fine) and ``note``.

    ``kind`` is ``"claim"`` for a reproduced claim (a published or derived
    prediction that a measurement could contradict; ``note`` gives its source
    and how the tolerance follows from the standard error) or
    ``"consistency"`` for a sanity check of the set-up (a baseline, a control,
    a regime condition); REPORT.md lists the two separately.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    if passed is None:
        t, m = _number("theory", theory), _number("measured", measured)
        tol = _number("tolerance", tolerance)
        if tol < 0:  # nan (an SE that could not be estimated) is allowed: the check fails
            raise ValueError(f"tolerance: expected a number >= 0, got {tolerance!r}")
        scale = abs(t) if relative else 1.0
        passed = bool(math.isfinite(m) and abs(m - t) <= tol * scale)
    elif not isinstance(passed, bool | np.bool_):
        raise TypeError(f"passed: expected True, False or None, got {passed!r}")
    out = {
        "name": name,
        "theory": jsonable(theory),
        "measured": jsonable(measured),
        "tolerance": jsonable(tolerance),
        "relative": relative,
        "pass": bool(passed),
        "kind": kind,
    }
    if note:
        out["note"] = note
    return out


def check_max_z(
    name: str, z: Any, k: float, *, note: str = "", kind: str = "claim"
) -> dict[str, Any]:
    """A whole curve against theory: ``max |z| <= k`` over its points (``z`` in SE units)."""
    worst = float(np.max(np.abs(np.asarray(z, np.float64))))
    return check(name, f"<= {k:g}", worst, k, passed=bool(worst <= k), note=note, kind=kind)


def measured_str(c: dict[str, Any], spec: str = ".2f") -> str:
    """A check's measured value formatted with ``spec``; a non-number (``"nan"``, a list)
    as stored, so a summary never fails on an undefined statistic."""
    m = c["measured"]
    return format(m, spec) if isinstance(m, int | float) and not isinstance(m, bool) else str(m)


def _number(name: str, value: Any) -> float:
    if isinstance(value, str | bytes) or value is None:
        raise TypeError(
            f"{name}: expected a number (give passed= for claims that are not a distance), got "
            f"{value!r}"
        )
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a number, got {value!r}") from None


def save_figure(fig: Any, cfg: Config, name: str) -> str:
    """Save a matplotlib figure as ``cfg.out/name.png`` (atomically) and close it."""
    io.save_figure(fig, cfg.out / f"{name}.png", name="--out", dpi=120, bbox_inches="tight")
    return f"{name}.png"


def write_metrics(cfg: Config, result: Result, runtime_s: float, description: str) -> Path:
    """Write ``cfg.out/metrics.json`` (atomically) and return its path."""
    payload = {
        "experiment": cfg.name,
        "description": description.strip(),
        "summary": result.summary,
        "mode": "quick" if cfg.quick else "full",
        "seed": cfg.seed,
        "overrides": dict(cfg.overrides),
        "config": result.config,
        "versions": environment.versions(),
        "hardware": environment.hardware(),
        "runtime_s": round(runtime_s, 2),
        "metrics": result.metrics,
        "checks": result.checks,
        "figures": result.figures,
        "all_pass": all(c["pass"] for c in result.checks),
    }
    return io.write_json(cfg.out / "metrics.json", payload, name="--out")


class _Parser(argparse.ArgumentParser):
    """Errors are one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(name: str, description: str, argv: Sequence[str] | None = None) -> Config:
    """Parse the common experiment command line."""
    parser = _Parser(
        prog=f"python -m experiments.{name}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, minutes on a CPU")
    mode.add_argument("--full", action="store_true", help="full sizes (default), for a GPU")
    parser.add_argument("--out", type=Path, default=Path("results") / name, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one size of the chosen mode (comma-separated for a tuple); repeatable",
    )
    args = parser.parse_args(argv)
    overrides = []
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            parser.error(f"--set: expected KEY=VALUE, got {item!r}")
        overrides.append((key.strip(), value.strip()))
    return Config(
        name=name,
        quick=args.quick,
        seed=args.seed,
        out=args.out,
        quiet=args.quiet,
        overrides=tuple(overrides),
    )


def cli(
    run: Callable[[Config], Result], description: str | None, argv: Sequence[str] | None = None
) -> Result:
    """Entry point of an experiment module: parse, run, write metrics.json."""
    module = sys.modules[run.__module__]
    spec = getattr(module, "__spec__", None)  # under ``python -m`` __name__ is "__main__"
    name = (spec.name if spec is not None else module.__name__).rsplit(".", 1)[-1]
    cfg = parse_args(name, description or "", argv)
    try:
        return execute(run, cfg, description or "")
    except (Exception, KeyboardInterrupt) as err:  # one line, never a traceback
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"python -m experiments.{name}: error: {msg}", file=sys.stderr)
        raise SystemExit(2) from None


def execute(run: Callable[[Config], Result], cfg: Config, description: str = "") -> Result:
    """Run an experiment with a given config (used by ``cli`` and by tests)."""
    import matplotlib

    matplotlib.use("Agg")
    io.ensure_dir(cfg.out, "--out")
    t0 = time.perf_counter()
    result = run(cfg)
    runtime = time.perf_counter() - t0
    path = write_metrics(cfg, result, runtime, description)
    if not cfg.quiet:
        n_pass = sum(c["pass"] for c in result.checks)
        print(f"{cfg.name}: {n_pass}/{len(result.checks)} checks pass, {runtime:.1f} s -> {path}")
    return result
