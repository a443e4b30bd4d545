"""Run every benchmark script in turn; each writes its section of BENCHMARKS.md."""

import importlib
import importlib.util
import sys

SCRIPTS = ("kernels", "kernels_analytic", "hessian", "optim", "scaling", "sharding", "overhead")


def main() -> int:
    for name in SCRIPTS:
        if importlib.util.find_spec(f"benchmarks.{name}") is None:
            continue
        print(f"== benchmarks.{name}", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
