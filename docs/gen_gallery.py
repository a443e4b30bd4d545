"""Write ``docs/experiments.rst``: one section per experiment with its figures.

Figures come from ``results/NAME/`` (``make reproduce``); they are copied next to
the page so the built site is self-contained. An experiment without results
says how to produce them.
"""

import importlib
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from experiments import EXPERIMENTS  # noqa: E402


def main() -> None:
    docs = ROOT / "docs"
    figdir = docs / "_gallery"
    figdir.mkdir(exist_ok=True)
    out = ["Experiments gallery", "===================", "",
           "Each experiment runs as ``python -m experiments.NAME [--quick]`` (or ``make NAME``) "
           "and writes ``metrics.json`` and figures; ``make reproduce`` runs them all and "
           "writes ``results/REPORT.md``.", ""]
    for name in EXPERIMENTS:
        try:
            module = importlib.import_module(f"experiments.{name}")
        except ModuleNotFoundError:
            continue
        doc = (module.__doc__ or "").strip()
        out += [name, "-" * len(name), "", f"Run: ``make {name}``", "", "::", ""]
        out += ["    " + line for line in doc.splitlines()] + [""]
        metrics = ROOT / "results" / name / "metrics.json"
        if metrics.exists():
            m = json.loads(metrics.read_text())
            checks = m.get("checks", [])
            n_pass = sum(c["pass"] for c in checks)
            out += [f"Quick run: {n_pass}/{len(checks)} checks pass, {m.get('runtime_s')} s.", ""]
            for fig in m.get("figures", []):
                src = metrics.parent / fig
                if src.exists():
                    shutil.copy(src, figdir / f"{name}_{fig}")
                    out += [f".. image:: _gallery/{name}_{fig}", "   :width: 90%", ""]
        else:
            out += [f"No results yet: run ``make {name}`` to produce the figures.", ""]
    (docs / "experiments.rst").write_text("\n".join(out))


if __name__ == "__main__":
    main()
