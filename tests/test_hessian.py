"""Tests for wideth.hessian against dense Hessians, known spectra and exact traces.

Comparisons run in float64 (``x64`` fixture). The dense references are built with
``jax.hessian`` on a small tanh MLP (419 parameters) and diagonalised with ``eigh``.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compiles import count_compiles
from jax.flatten_util import ravel_pytree

from wideth import hessian

SIZES = (5, 16, 16, 3)


def _mlp_problem(key, sizes=SIZES, n=40):
    ks = jax.random.split(key, len(sizes) + 1)
    params = [
        {"w": jax.random.normal(k, (a, b)) / jnp.sqrt(a), "b": 0.1 * jax.random.normal(k, (b,))}
        for k, a, b in zip(ks[:-2], sizes[:-1], sizes[1:])
    ]
    x = jax.random.normal(ks[-2], (n, sizes[0]))
    y = jax.random.normal(ks[-1], (n, sizes[-1]))

    def apply(p, x):
        for layer in p[:-1]:
            x = jnp.tanh(x @ layer["w"] + layer["b"])
        return x @ p[-1]["w"] + p[-1]["b"]

    mse = lambda out, y: 0.5 * jnp.mean(jnp.sum((out - y) ** 2, -1))
    return params, apply, mse, x, y


@functools.cache
def _dense():
    """Dense float64 Hessian of the MLP loss and its eigendecomposition (cached)."""
    params, apply, mse, x, y = _mlp_problem(jax.random.PRNGKey(0))
    flat, unravel = ravel_pytree(params)
    loss = lambda p: mse(apply(p, x), y)
    h = np.asarray(jax.hessian(lambda f: loss(unravel(f)))(flat))
    ev, vecs = np.linalg.eigh(h)
    return h, ev, vecs


def _problem():
    params, apply, mse, x, y = _mlp_problem(jax.random.PRNGKey(0))
    return params, (lambda p: mse(apply(p, x), y)), apply, mse, x, y


def _flat_rows(tree):
    return np.asarray(jax.vmap(lambda t: ravel_pytree(t)[0])(tree))


def _assert_vectors_up_to_sign(got, want, atol):
    for g, w in zip(got, want):
        err = min(np.linalg.norm(g - w), np.linalg.norm(g + w))
        assert err < atol, err


@pytest.mark.slow
def test_top_and_bottom_eigenpairs_match_dense_mlp(x64):
    params, loss, *_ = _problem()
    h, ev, vecs = _dense()
    assert h.shape[0] <= 2000
    k = 5
    evals, evecs = hessian.top_eigenpairs(
        loss, params, k=k, num_steps=60, key=jax.random.PRNGKey(1)
    )
    want = ev[::-1][:k]
    np.testing.assert_allclose(evals, want, rtol=1e-6)
    assert np.all(np.diff(np.asarray(evals)) <= 0)  # descending
    _assert_vectors_up_to_sign(_flat_rows(evecs), vecs[:, ::-1][:, :k].T, 1e-4)

    low, low_vecs = hessian.top_eigenpairs(
        loss, params, k=k, num_steps=90, key=jax.random.PRNGKey(2), which="smallest"
    )
    assert ev[0] < 0  # the MLP Hessian is indefinite: the bottom end is negative
    np.testing.assert_allclose(low, ev[:k], rtol=1e-6)
    assert np.all(np.diff(np.asarray(low)) >= 0)  # ascending, most negative first
    _assert_vectors_up_to_sign(_flat_rows(low_vecs), vecs[:, :k].T, 1e-4)


def test_diagonal_known_and_repeated_spectrum(x64):
    # Distinct eigenvalues.
    d = jnp.linspace(-3.0, 10.0, 50)
    loss = lambda p: 0.5 * jnp.sum(d * p["a"] ** 2)
    params = {"a": jnp.zeros(50)}
    evals, evecs = hessian.top_eigenpairs(
        loss, params, k=3, num_steps=50, key=jax.random.PRNGKey(0)
    )
    np.testing.assert_allclose(evals, d[::-1][:3], rtol=1e-10)
    _assert_vectors_up_to_sign(np.asarray(evecs["a"]), np.eye(50)[::-1][:3], 1e-8)
    # Repeated eigenvalues: a single Krylov space sees each eigenvalue once; the
    # breakdown restart recovers the multiplicities.
    rep = jnp.array([5.0] * 4 + [2.0] * 3 + [-1.0] * 3 + [0.5] * 2)
    loss_r = lambda p: 0.5 * jnp.sum(rep * p**2)
    top, vecs = hessian.top_eigenpairs(
        loss_r, jnp.zeros(12), k=7, num_steps=12, key=jax.random.PRNGKey(3)
    )
    np.testing.assert_allclose(top, [5.0] * 4 + [2.0] * 3, rtol=1e-10)
    vecs = np.asarray(vecs)
    np.testing.assert_allclose(vecs @ vecs.T, np.eye(7), atol=1e-10)
    np.testing.assert_allclose(np.abs(vecs[:4, 4:]), 0.0, atol=1e-10)  # in the 5-eigenspace
    bottom, _ = hessian.top_eigenpairs(
        loss_r, jnp.zeros(12), k=3, num_steps=12, key=jax.random.PRNGKey(3), which="smallest"
    )
    np.testing.assert_allclose(bottom, [-1.0] * 3, rtol=1e-10)


def test_lanczos_breakdown_without_nans(x64):
    # Three distinct eigenvalues and v0 = ones: the Krylov space is invariant after 3 steps.
    diag = jnp.array([1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0])
    m = 8
    alphas, betas, basis = hessian.lanczos(lambda v: diag * v, jnp.ones(8).at[6:].set(0), m)
    assert np.all(np.isfinite(alphas)) and np.all(np.isfinite(betas))
    assert np.all(np.isfinite(basis))
    assert float(betas[2]) == 0.0  # breakdown detected and decoupled
    np.testing.assert_allclose(basis @ basis.T, np.eye(m), atol=1e-12)
    theta = np.linalg.eigvalsh(hessian.tridiagonal(alphas, betas))
    np.testing.assert_allclose(theta, np.sort(diag), atol=1e-10)
    # The zero operator and a zero start vector break down at once.
    a0, b0, q0 = hessian.lanczos(lambda v: 0.0 * v, jnp.zeros(5), 5)
    assert np.all(np.isfinite(q0)) and np.all(a0 == 0) and np.all(b0 == 0)
    np.testing.assert_allclose(q0 @ q0.T, np.eye(5), atol=1e-12)


def test_lanczos_generic_pytree_matches_eigh(x64):
    a = jax.random.normal(jax.random.PRNGKey(0), (30, 30))
    a = (a + a.T) / 2
    tree = {"x": jnp.ones((2, 5)), "y": jnp.arange(20.0)}
    flat, unravel = ravel_pytree(tree)
    mv = lambda t, s: unravel(s * (a @ ravel_pytree(t)[0]))
    alphas, betas, basis = hessian.lanczos(mv, tree, 30, 2.0)
    q = _flat_rows(basis)
    np.testing.assert_allclose(q @ q.T, np.eye(30), atol=1e-12)
    t = np.asarray(hessian.tridiagonal(alphas, betas))
    np.testing.assert_allclose(q @ (2.0 * a) @ q.T, t, atol=1e-10)
    np.testing.assert_allclose(np.linalg.eigvalsh(t), np.linalg.eigvalsh(2.0 * a), atol=1e-10)
    np.testing.assert_allclose(q[0], flat / np.linalg.norm(flat), atol=1e-14)


@pytest.mark.slow
def test_spectral_density_weights_and_moments(x64):
    params, loss, *_ = _problem()
    h, ev, _ = _dense()
    d = h.shape[0]
    num_probes = 32
    nodes, weights = hessian.spectral_density(
        loss, params, num_probes=num_probes, num_steps=24, key=jax.random.PRNGKey(4)
    )
    assert nodes.shape == weights.shape == (num_probes, 24)
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-10)
    assert np.all(weights >= 0)
    for power, exact in ((1, np.trace(h) / d), (2, np.sum(h * h) / d)):
        per_probe = np.sum(np.asarray(weights) * np.asarray(nodes) ** power, axis=1)
        se = per_probe.std(ddof=1) / np.sqrt(num_probes)
        assert abs(per_probe.mean() - exact) < 3 * se, (power, per_probe.mean(), exact, se)
    # The smoothed density integrates to 1 and its mean is the first moment.
    grid = np.linspace(ev[0] - 1, ev[-1] + 1, 4001)
    dens = np.asarray(hessian.density_on_grid(nodes, weights, grid, sigma=0.05))
    dx = grid[1] - grid[0]
    np.testing.assert_allclose(dens.sum() * dx, 1.0, atol=1e-6)
    np.testing.assert_allclose(
        (grid * dens).sum() * dx, np.mean(np.sum(weights * nodes, 1)), atol=1e-6
    )
    assert 0.0 < float(hessian.negative_mass(nodes, weights)) < 1.0  # indefinite Hessian


def test_slq_exact_on_diagonal_spectrum(x64):
    # With num_steps = d the quadrature is exact; Rademacher probes on a diagonal
    # matrix weight every eigenvalue by exactly 1/d.
    # (shifted so that no eigenvalue sits at 0, where the sign is a rounding choice)
    d = jnp.linspace(-3.0, 10.0, 40) + 0.1
    loss = lambda p: 0.5 * jnp.sum(d * p**2)
    nodes, weights = hessian.spectral_density(loss, jnp.zeros(40), 3, 40, key=jax.random.PRNGKey(9))
    for n, w in zip(np.asarray(nodes), np.asarray(weights)):
        np.testing.assert_allclose(n, d, atol=1e-10)
        np.testing.assert_allclose(w, 1 / 40, atol=1e-10)
    np.testing.assert_allclose(hessian.negative_mass(nodes, weights), np.mean(d < 0), atol=1e-10)
    np.testing.assert_allclose(
        hessian.negative_mass(nodes, weights, threshold=1.1), np.mean(d < -1.1), atol=1e-10
    )


@pytest.mark.slow
def test_slq_probe_batches_agree(x64):
    # One probe at a time, uneven groups of 3 and all 7 under vmap: the same
    # quadrature (each probe's Lanczos run is independent of the grouping).
    params, loss, *_ = _problem()
    key = jax.random.PRNGKey(11)
    runs = [
        hessian.spectral_density(loss, params, 7, 12, key=key, probe_batch_size=b)
        for b in (1, 3, 7, 100)
    ]
    for nodes, weights in runs[1:]:
        np.testing.assert_allclose(nodes, runs[0][0], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(weights, runs[0][1], rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="probe_batch_size"):
        hessian.spectral_density(loss, params, 7, 12, key=key, probe_batch_size=0)


def test_hutchinson_trace_within_three_standard_errors(x64):
    params, loss, *_ = _problem()
    h, _, _ = _dense()
    est, se = hessian.trace(loss, params, num_probes=100, key=jax.random.PRNGKey(5))
    exact = np.trace(h)
    assert se > 0
    assert abs(float(est) - exact) < 3 * float(se), (est, exact, se)
    # The standard error is the right size: the exact Rademacher variance.
    var = 2 * (np.sum(h * h) - np.sum(np.diag(h) ** 2)) / 100
    assert 0.5 < float(se) / np.sqrt(var) < 2.0


@pytest.mark.slow
def test_ggn_is_psd_and_top_eigenpairs(x64):
    params, loss, apply, mse, x, y = _problem()
    flat, unravel = ravel_pytree(params)
    outputs_fn = lambda p: apply(p, x)
    loss_of_outputs = lambda out: mse(out, y)
    # Independent route: the dense J^T Q J from the Jacobian and the output Hessian.
    jac = jax.jacobian(lambda f: outputs_fn(unravel(f)).ravel())(flat)
    q = jax.hessian(lambda o: loss_of_outputs(o.reshape(x.shape[0], -1)))(
        outputs_fn(params).ravel()
    )
    g = np.asarray(jac.T @ q @ jac)
    ev = np.linalg.eigvalsh(g)
    vs = jax.random.normal(jax.random.PRNGKey(6), (4, flat.shape[0]))
    gv = jax.vmap(
        lambda e: ravel_pytree(hessian.ggn_vp(outputs_fn, loss_of_outputs, params, unravel(e)))[0]
    )(vs)
    np.testing.assert_allclose(gv, vs @ g, rtol=1e-10, atol=1e-12)
    assert np.all(np.einsum("ij,ij->i", vs, gv) > 0)
    evals, _ = hessian.top_eigenpairs(
        None,
        params,
        k=3,
        num_steps=40,
        key=jax.random.PRNGKey(6),
        matrix="ggn",
        outputs_fn=outputs_fn,
        loss_of_outputs=loss_of_outputs,
    )
    np.testing.assert_allclose(evals, ev[::-1][:3], rtol=1e-6)
    # PSD: the GGN has rank <= n * outputs = 120 < d and no negative eigenvalues.
    assert ev[0] > -1e-10 * ev[-1]
    assert np.sum(ev > 1e-10 * ev[-1]) <= x.shape[0] * y.shape[1]


@pytest.mark.slow
def test_ggn_equals_hessian_for_linear_model_with_mse(x64):
    kx, ky, kw, kv = jax.random.split(jax.random.PRNGKey(7), 4)
    x, y = jax.random.normal(kx, (20, 6)), jax.random.normal(ky, (20, 2))
    params = {"w": jax.random.normal(kw, (6, 2)), "b": jnp.zeros(2)}
    outputs_fn = lambda p: x @ p["w"] + p["b"]
    loss_of_outputs = lambda out: 0.5 * jnp.mean(jnp.sum((out - y) ** 2, -1))
    loss = lambda p: loss_of_outputs(outputs_fn(p))
    flat, unravel = ravel_pytree(params)
    for i in range(3):
        v = unravel(jax.random.normal(jax.random.fold_in(kv, i), flat.shape))
        gv = ravel_pytree(hessian.ggn_vp(outputs_fn, loss_of_outputs, params, v))[0]
        hv = ravel_pytree(hessian.hvp(loss, params, v))[0]
        np.testing.assert_allclose(gv, hv, rtol=1e-12, atol=1e-14)
    h = jax.hessian(lambda f: loss(unravel(f)))(flat)
    np.testing.assert_allclose(
        ravel_pytree(hessian.hvp(loss, params, unravel(flat)))[0], h @ flat, rtol=1e-12
    )


def test_batched_products_match_full_batch(x64):
    params, loss, apply, mse, x, y = _problem()
    flat, unravel = ravel_pytree(params)
    v = unravel(jax.random.normal(jax.random.PRNGKey(8), flat.shape))
    loss_b = lambda p, batch: mse(apply(p, batch[0]), batch[1])
    full = ravel_pytree(hessian.hvp(loss, params, v))[0]
    batched = ravel_pytree(hessian.batched_hvp(loss_b, params, v, (x, y), batch_size=10))[0]
    np.testing.assert_allclose(batched, full, rtol=1e-10, atol=1e-12)
    g_full = ravel_pytree(hessian.ggn_vp(lambda p: apply(p, x), lambda o: mse(o, y), params, v))[0]
    g_b = hessian.batched_ggn_vp(
        lambda p, b: apply(p, b[0]), lambda o, b: mse(o, b[1]), params, v, (x, y), batch_size=8
    )
    np.testing.assert_allclose(ravel_pytree(g_b)[0], g_full, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="batch_size"):
        hessian.batched_hvp(loss_b, params, v, (x, y), batch_size=7)


def test_bad_inputs_raise_naming_the_argument():
    params = {"w": jnp.ones(4), "b": jnp.ones(2)}
    loss = lambda p: jnp.sum(p["w"] ** 2) + jnp.sum(p["b"] ** 4)
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="^k: expected at most the dimension 6"):
        hessian.top_eigenpairs(loss, params, k=7, num_steps=10, key=key)
    with pytest.raises(ValueError, match="^num_steps: expected at least k"):
        hessian.top_eigenpairs(loss, params, k=4, num_steps=3, key=key)
    with pytest.raises(ValueError, match="^loss_fn: expected a real scalar"):
        hessian.top_eigenpairs(lambda p: p["w"] ** 2, params, k=1, num_steps=3, key=key)
    with pytest.raises(ValueError, match="^loss_fn: expected a real scalar"):
        hessian.hvp(lambda p: p["w"] ** 2, params, params)
    with pytest.raises(ValueError, match="^loss_fn: expected a real scalar"):
        hessian.trace(lambda p: p["w"], params, num_probes=4, key=key)
    with pytest.raises(ValueError, match="^loss_of_outputs: expected a real scalar"):
        hessian.ggn_vp(lambda p: p["w"], lambda o: o, params, params)
    with pytest.raises(ValueError, match="^matrix"):
        hessian.top_eigenpairs(loss, params, k=1, num_steps=3, key=key, matrix="fisher")
    with pytest.raises(ValueError, match="^which"):
        hessian.top_eigenpairs(loss, params, k=1, num_steps=3, key=key, which="middle")
    with pytest.raises(ValueError, match="^outputs_fn: matrix=.ggn. needs"):
        hessian.top_eigenpairs(loss, params, k=1, num_steps=3, key=key, matrix="ggn")
    with pytest.raises(ValueError, match="^num_steps: expected at most the dimension 3"):
        hessian.lanczos(lambda v: v, jnp.ones(3), 4)
    with pytest.raises(ValueError, match="^sigma"):
        hessian.density_on_grid(jnp.ones((1, 2)), jnp.ones((1, 2)) / 2, jnp.zeros(3), sigma=0.0)


def test_jit_compatible(x64):
    params, loss, *_ = _problem()
    h, ev, _ = _dense()

    @jax.jit
    def step(p, key):
        evals, evecs = hessian.top_eigenpairs(loss, p, k=2, num_steps=30, key=key)
        tr, se = hessian.trace(loss, p, num_probes=4, key=key)
        return evals, evecs, tr

    evals, evecs, tr = step(params, jax.random.PRNGKey(0))
    assert jax.tree.structure(evecs) == jax.tree.structure(params)
    for e, p in zip(jax.tree.leaves(evecs), jax.tree.leaves(params)):
        assert e.shape == (2, *p.shape)
    np.testing.assert_allclose(evals, ev[::-1][:2], rtol=1e-6)
    # Same compiled function, new parameters and key: no retrace, still finite.
    params2 = jax.tree.map(lambda a: 1.1 * a, params)
    key2 = jax.random.PRNGKey(1)
    with count_compiles() as seen:
        evals2, _, tr2 = step(params2, key2)
    assert np.all(np.isfinite(evals2)) and np.isfinite(tr2)
    assert not seen, seen
