"""The neural-tangents shim is needed-or-harmless and NT's analytic kernels run."""

import importlib
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np

from wideth import _compat


def test_shim_restores_only_missing_names():
    nt = _compat.neural_tangents()
    report = _compat.shim_report()
    assert report["jax"] == jax.__version__
    import jax.core as core

    for name in _compat._CORE_NAMES:
        assert hasattr(core, name), name
    # Every restored name was genuinely missing before: the stand-ins we
    # install are exactly jax.extend.core's objects (harmless aliases).
    import jax.extend.core as ext_core

    for entry in report["restored"]:
        if entry.startswith("jax.core."):
            attr = entry.removeprefix("jax.core.")
            assert getattr(core, attr) is getattr(ext_core, attr)
    assert sys.modules["jax.util"].safe_zip([1, 2], [3, 4]) == [(1, 3), (2, 4)]
    assert nt.__version__ == "0.6.5"


def test_shim_is_still_needed():
    """Fails loudly when a future JAX makes the shim unnecessary.

    When this fails, NT imports natively: shrink ``_compat._install``.
    """
    _compat.neural_tangents()  # installs the shim (tests may run in any order)
    report = _compat.shim_report()
    assert report["active"], "no JAX name had to be restored: the shim may be removable"


def test_idempotent():
    _compat.neural_tangents()
    before = list(_compat.SHIMMED)
    _compat._install()
    _compat.neural_tangents()
    assert _compat.SHIMMED == before


def test_nt_analytic_kernel_runs_and_matches_arccos():
    nt = _compat.neural_tangents()
    stax = nt.stax
    _, _, kernel_fn = stax.serial(stax.Dense(1, W_std=1.0), stax.Relu(), stax.Dense(1, W_std=1.0))
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
    k = np.asarray(kernel_fn(x, None, "nngp"))
    # Arc-cosine kernel of degree 1 (Cho & Saul 2009), NT's W_std^2/fan_in input scaling.
    g = np.asarray(x @ x.T) / 3
    n = np.sqrt(np.diag(g))
    c = np.clip(g / np.outer(n, n), -1, 1)
    th = np.arccos(c)
    ref = np.outer(n, n) * (np.sin(th) + (np.pi - th) * c) / (2 * np.pi)
    np.testing.assert_allclose(k, ref, rtol=2e-5, atol=1e-6)


def test_no_other_module_touches_jax_internals():
    """Only _compat may import neural_tangents or JAX internals."""
    from pathlib import Path

    root = Path(importlib.import_module("wideth").__file__).parent
    bad = []
    for path in root.rglob("*.py"):
        if path.name == "_compat.py":
            continue
        for line in path.read_text().splitlines():
            code = line.split("#")[0].strip()
            if re.match(r"(import neural_tangents|from neural_tangents\b)", code) or any(
                needle in code for needle in ("jax._src", "jax.core.", "jax.interpreters")
            ):
                bad.append(f"{path.relative_to(root)}: {code}")
    assert not bad, bad


def test_batch_and_jit_through_nt():
    nt = _compat.neural_tangents()
    stax = nt.stax
    _, _, kernel_fn = stax.serial(stax.Dense(8), stax.Erf(), stax.Dense(1))
    x = jax.random.normal(jax.random.PRNGKey(1), (6, 2))
    full = kernel_fn(x, None, "ntk")
    batched = nt.batch(jax.jit(kernel_fn, static_argnames="get"), batch_size=2)(x, None, "ntk")
    np.testing.assert_allclose(np.asarray(batched), np.asarray(full), rtol=1e-5)
    assert jnp.all(jnp.isfinite(full))
