"""Count how many bad inputs of ``bad_input_cases.CASES`` get a named error from wideth.

Not a test (it asserts nothing): a measurement, run against whichever checkout of
wideth and experiments is first on ``PYTHONPATH``, e.g. before and after a change::

    git worktree add --detach /tmp/before <commit>
    PYTHONPATH=/tmp/before python tests/measure_bad_inputs.py --json before.json
    PYTHONPATH=$PWD python tests/measure_bad_inputs.py --json after.json

Each case is classified as

* ``named``: a ValueError/TypeError whose message starts with the argument's
  name, raised from a file of the wideth package (or experiments/ for its cases);
* ``unnamed``: a ValueError/TypeError from wideth whose message does not start
  with the name;
* ``foreign``: a ValueError/TypeError raised inside JAX, NumPy or another library
  (a deep trace);
* ``other-error``: any other exception (IndexError, AttributeError, ...);
* ``silent-nonfinite``: no error, and the result holds NaN/inf;
* ``accepted``: no error (a bad value silently accepted, clipped or coerced);
* ``timeout``: still running after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bad_input_cases as bic  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402


class _Timeout(BaseException):
    pass


def _nonfinite(result) -> bool:
    try:
        leaves = jax.tree.leaves(result)
    except Exception:  # noqa: BLE001
        return False
    for leaf in leaves:
        try:
            a = np.asarray(leaf)
        except Exception:  # noqa: BLE001
            continue
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            return True
    return False


def classify(case: bic.Case, package_dirs: list[str], timeout: float) -> tuple[str, str]:
    def alarm(signum, frame):
        raise _Timeout

    signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = case.call()
            jax.block_until_ready(jax.tree.leaves(result))
    except _Timeout:
        return "timeout", ""
    except (ValueError, TypeError) as err:
        site = str(Path(bic.raise_site(err.__traceback__)).resolve())
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if not any(site.startswith(d) for d in package_dirs):
            return "foreign", f"{type(err).__name__} from {site}: {msg}"
        if not bic.is_named(str(err), case.name):
            return "unnamed", f"{type(err).__name__}: {msg}"
        return "named", f"{type(err).__name__}: {msg}"
    except BaseException as err:  # noqa: BLE001 - classify everything
        msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return "other-error", f"{type(err).__name__}: {msg}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        shown = repr(result)[:120]
    except Exception as err:  # noqa: BLE001 - a broken object was returned
        shown = f"<{type(result).__name__} whose repr fails: {type(err).__name__}>"
    return ("silent-nonfinite" if _nonfinite(result) else "accepted"), shown


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write every case's outcome here")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    parser.add_argument("--verbose", action="store_true", help="list every case not named")
    parser.add_argument(
        "--pending", action="store_true", help="measure bad_input_cases.PENDING instead"
    )
    args = parser.parse_args(argv)

    import experiments
    import wideth

    dirs = [
        str(Path(wideth.__file__).resolve().parent),
        str(Path(experiments.__file__).resolve().parent),
    ]
    print(f"wideth from {dirs[0]}")
    outcomes, t0 = [], time.perf_counter()
    cases = bic.PENDING if args.pending else bic.CASES
    for case in cases:
        kind, detail = classify(case, dirs, args.timeout)
        outcomes.append(
            {
                "id": case.id,
                "entry": case.entry,
                "name": case.name,
                "outcome": kind,
                "detail": detail,
            }
        )
        if args.verbose and kind != "named":
            print(f"  {kind:16s} {case.id}: {detail}")
    counts = collections.Counter(o["outcome"] for o in outcomes)
    n = len(outcomes)
    print(
        f"{n} bad inputs over {len({c.entry for c in cases})} entry points, "
        f"{time.perf_counter() - t0:.0f} s"
    )
    for kind in (
        "named",
        "unnamed",
        "foreign",
        "other-error",
        "silent-nonfinite",
        "accepted",
        "timeout",
    ):
        print(f"  {kind:16s} {counts.get(kind, 0):4d}  ({100 * counts.get(kind, 0) / n:.1f}%)")
    if args.json:
        args.json.write_text(json.dumps({"counts": counts, "cases": outcomes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
