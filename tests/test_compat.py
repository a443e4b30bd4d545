"""The neural-tangents shim is needed-or-harmless and NT's analytic kernels run."""

import importlib
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
                needle in code
                for needle in (
                    "jax._src",
                    "jax.core.",
                    "jax.interpreters",
                    "jax.extend",
                    "get_bind_params",
                    "primitive.bind(",
                )
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


# --- NT's predict / empirical modules on current JAX (patched after import) ---------------------


def _shimmed(prefix: str) -> bool:
    return any(entry.startswith(prefix) for entry in _compat.SHIMMED)


def test_each_post_import_patch_is_still_needed():
    """Fails loudly when a JAX/SciPy release makes one of the NT patches unnecessary.

    Each assertion pairs the upstream change with its entry in ``SHIMMED``; when
    one fails, delete the corresponding branch of ``_compat._patch_nt``.
    """
    import scipy.linalg

    _compat.neural_tangents()
    assert _compat._cost_analysis_is_dict()
    assert _shimmed("neural_tangents._src.empirical._get_flops")
    assert _compat._eval_context_drops_tracers()
    assert _shimmed("neural_tangents._src.predict: jax.core.eval_context")
    with pytest.raises(TypeError):
        scipy.linalg.eigvalsh(np.eye(2), eigvals=(1, 1))
    assert _shimmed("neural_tangents._src.predict: scipy.linalg.eigvalsh")
    assert not _compat._linearize_has_old_signature()
    assert _shimmed("neural_tangents._src.empirical: ad.linearize")
    assert _shimmed("jax.extend.core.Primitive.map_primitive")
    assert "jax.tree_map" in _compat.SHIMMED and jax.tree_map is jax.tree.map
    assert set(_compat.SHIMMED) <= set(_compat.shim_report()["restored"])


def _mlp_and_params(out: int = 2):
    stax = _compat.neural_tangents().stax
    init_fn, apply_fn, _ = stax.serial(stax.Dense(16, b_std=0.1), stax.Erf(), stax.Dense(out))
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
    _, params = init_fn(jax.random.PRNGKey(1), x.shape)
    return apply_fn, params, x


def _jacobian_ntk(apply_fn, params, x) -> np.ndarray:
    """Theta[i, j, a, b] = sum_p d f_a(x_i)/d p  d f_b(x_j)/d p, from the dense Jacobian."""
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    jac = jax.jacobian(lambda p: apply_fn(unravel(p), x))(flat)  # (n, k, P)
    return np.einsum("iap,jbp->ijab", np.asarray(jac), np.asarray(jac))


@pytest.mark.slow
def test_empirical_ntk_all_implementations_match_jacobian_reference(capsys):
    import jax.flatten_util  # noqa: F401

    nt = _compat.neural_tangents()
    apply_fn, params, x = _mlp_and_params()
    ref = _jacobian_ntk(apply_fn, params, x)
    tol = dict(rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    for impl in (0, 1, 2, 3):  # AUTO, Jacobian contraction, NTK-vector products, structured
        k = nt.empirical_ntk_fn(apply_fn, trace_axes=(), implementation=impl)(x, None, params)
        np.testing.assert_allclose(np.asarray(k), ref, **tol, err_msg=f"implementation={impl}")
    # Structured derivatives also under jit, and AUTO compared all three (NT prints flops).
    k3 = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(), implementation=3))(x, None, params)
    np.testing.assert_allclose(np.asarray(k3), ref, **tol)
    assert "impl=3, flops=" in capsys.readouterr().out


@pytest.mark.slow
def test_auto_skips_structured_when_unavailable(monkeypatch, capsys):
    """If a later JAX breaks the linearize shim, impl 3 names itself and AUTO still works."""
    nt = _compat.neural_tangents()
    empirical = sys.modules["neural_tangents._src.empirical"]

    def unavailable(*a, **kw):
        raise _compat.StructuredDerivativesUnavailable("implementation=3 needs X")

    monkeypatch.setitem(empirical.ad.__dict__, "linearize", unavailable)
    apply_fn, params, x = _mlp_and_params()
    with pytest.raises(_compat.StructuredDerivativesUnavailable, match="implementation=3"):
        nt.empirical_ntk_fn(apply_fn, trace_axes=(), implementation=3)(x, None, params)
    k0 = nt.empirical_ntk_fn(apply_fn, trace_axes=(), implementation=0)(x, None, params)
    ref = _jacobian_ntk(apply_fn, params, x)
    np.testing.assert_allclose(np.asarray(k0), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    assert "impl=3, flops=inf" in capsys.readouterr().out  # never the choice


def _spd(key, n: int) -> jnp.ndarray:
    a = jax.random.normal(key, (n, 2 * n))
    return a @ a.T / (2 * n) + 0.1 * jnp.eye(n)


def _gd_closed_form(k, k_ts, y, fx0, fx0_test, lr, t):
    """f_t = y + V e^{-eta Lambda t / N} V^T (f_0 - y), N = y.size (NT's 1/(2N) MSE).

    Test points: f_test_t = f_test_0 + K_ts V diag((e^{-eta lambda t/N} - 1)/lambda) V^T (f_0 - y).
    """
    k, k_ts, y, fx0, fx0_test = map(np.asarray, (k, k_ts, y, fx0, fx0_test))
    lam, v = np.linalg.eigh(k.astype(np.float64))
    decay = np.exp(-lam * lr * t / y.size)
    r = v.T @ (fx0 - y)
    train = y + v @ (decay[:, None] * r)
    test = fx0_test + k_ts @ v @ (((decay - 1) / lam)[:, None] * r)
    return train, test


def test_gradient_descent_mse_under_jit_and_vmap_matches_closed_form():
    nt = _compat.neural_tangents()
    keys = jax.random.split(jax.random.PRNGKey(3), 5)
    n, m, lr, t = 6, 3, 2.0, 4.0
    k = _spd(keys[0], n)
    k_ts = jax.random.normal(keys[1], (m, n)) * 0.3
    y = jax.random.normal(keys[2], (n, 2))
    fx0 = 0.1 * jax.random.normal(keys[3], (n, 2))
    fx0_test = 0.1 * jax.random.normal(keys[4], (m, 2))

    def predict(k, fx0, t):
        return nt.predict.gradient_descent_mse(k, y, learning_rate=lr)(t, fx0, fx0_test, k_ts)

    want = _gd_closed_form(k, k_ts, y, fx0, fx0_test, lr, t)
    for name, got in {
        "eager": predict(k, fx0, t),
        "jit": jax.jit(predict)(k, fx0, t),
        "vmap": jax.tree.map(
            lambda a: a[1],
            jax.vmap(predict)(jnp.stack([2 * k, k]), jnp.stack([fx0, fx0]), jnp.array([t, t])),
        ),
    }.items():
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(np.asarray(g), w, rtol=1e-4, atol=1e-5, err_msg=name)

    # t=None: the infinite-time (Cholesky) branch, traced.
    k_inv_r = np.linalg.solve(np.asarray(k, np.float64), np.asarray(y - fx0))
    inf_train, inf_test = jax.jit(lambda k: predict(k, fx0, None))(k)
    np.testing.assert_allclose(np.asarray(inf_train), np.asarray(y), rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(inf_test),
        np.asarray(fx0_test) + np.asarray(k_ts) @ k_inv_r,
        rtol=1e-4,
        atol=1e-5,
    )


def test_gradient_descent_mse_concrete_kernel_cached_under_jit_reused_eagerly():
    """The case NT's eval_context exists for: decomposed first inside jit, then used outside."""
    nt = _compat.neural_tangents()
    k = _spd(jax.random.PRNGKey(5), 4)
    y = jnp.ones((4, 1))
    predict_fn = nt.predict.gradient_descent_mse(k, y, learning_rate=1.0)
    fx0 = jnp.zeros((4, 1))
    inside = jax.jit(lambda t: predict_fn(t, fx0))(3.0)
    outside = predict_fn(3.0, fx0)  # would raise UnexpectedTracerError if the jit leaked
    np.testing.assert_allclose(np.asarray(outside), np.asarray(inside), rtol=1e-6)


def test_max_learning_rate_is_two_n_over_lambda_max():
    """NT: eta_max = 2 (1 + momentum) N / lambda_max(K), N = y_train.size (default K.shape[0])."""
    nt = _compat.neural_tangents()
    k = np.asarray(_spd(jax.random.PRNGKey(7), 8))
    lam_max = np.linalg.eigvalsh(k.astype(np.float64))[-1]
    np.testing.assert_allclose(nt.predict.max_learning_rate(k), 2 * 8 / lam_max, rtol=1e-5)
    np.testing.assert_allclose(
        nt.predict.max_learning_rate(k, y_train_size=24, momentum=0.9),
        2 * 1.9 * 24 / lam_max,
        rtol=1e-5,
    )
    # It is the contraction threshold of discrete GD on NT's 1/(2N) MSE: I - eta K / N.
    eta = nt.predict.max_learning_rate(k)
    for scale, contracts in ((0.99, True), (1.01, False)):
        rho = np.abs(np.linalg.eigvalsh(np.eye(8) - scale * eta * k / 8)).max()
        assert (rho < 1) == contracts, (scale, rho)
