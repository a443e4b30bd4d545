"""The dependency rules of DESIGN.md, enforced: import-linter contracts and public names only."""

import ast
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [
    "wideth",
    "wideth.kernels",
    "wideth.hessian",
    "wideth.optim",
    "wideth.scaling",
    "wideth.diagnostics",
    "wideth.train",
]
# A private module's own unit test may import it.
ALLOWED_PRIVATE = {
    ("tests/test_compat.py", "wideth._compat"),
    ("tests/test_scaling.py", "wideth.scaling._lbfgs"),
}


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed")
    proc = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def _wideth_names(tree: ast.AST) -> set[str]:
    """Names a file binds to wideth objects: ``from wideth.x import y`` (as z), ``import
    wideth.x as z``, and ``wt``/``wideth`` themselves."""
    names = {"wt", "wideth"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("wideth"):
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.asname for a in node.names if a.name.startswith("wideth") and a.asname)
    return names


def _private_uses(path: Path) -> list[str]:
    rel = str(path.relative_to(ROOT))
    tree = ast.parse(path.read_text(), filename=rel)
    ours = _wideth_names(tree)
    # a private module's own unit test uses its private names
    own = {m.rsplit(".", 1)[-1] for r, m in ALLOWED_PRIVATE if r == rel}
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wideth"):
            parts = node.module.split(".")
            if any(p.startswith("_") and p != "__main__" for p in parts):
                if (rel, node.module) not in ALLOWED_PRIVATE:
                    bad.append(f"{rel}:{node.lineno} from {node.module} import ...")
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if alias.name.startswith("_") and (rel, full) not in ALLOWED_PRIVATE:
                    bad.append(f"{rel}:{node.lineno} from {node.module} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "wideth" and any(p.startswith("_") for p in parts[1:]):
                    if (rel, alias.name) not in ALLOWED_PRIVATE:
                        bad.append(f"{rel}:{node.lineno} import {alias.name}")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            base = node.value
            names = []
            while isinstance(base, ast.Attribute):
                names.append(base.attr)
                base = base.value
            if (
                isinstance(base, ast.Name)
                and base.id in ours
                and not (node.attr.startswith("__") and node.attr.endswith("__"))
                and base.id not in own
            ):
                dotted = ".".join([base.id, *reversed(names), node.attr])
                bad.append(f"{rel}:{node.lineno} {dotted}")
    return bad


@pytest.mark.parametrize("folder", ["experiments", "benchmarks", "notebooks", "tests", "examples"])
def test_outside_code_uses_public_names_only(folder):
    files = sorted((ROOT / folder).glob("*.py"))
    bad = [b for f in files for b in _private_uses(f)]
    assert not bad, bad


@pytest.mark.parametrize("name", PACKAGES)
def test_packages_list_and_export_their_public_names(name):
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    for attr in module.__all__:
        assert getattr(module, attr, None) is not None, f"{name}.{attr} is listed but missing"


def test_library_does_not_import_its_command_line():
    for path in (ROOT / "wideth").rglob("*.py"):
        if path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            assert not any(m == "wideth.__main__" for m in mods), f"{path} imports the CLI"
