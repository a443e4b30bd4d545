"""Class structure of the cross-entropy GGN against dense float64 references.

The dense references are built independently: the Jacobian by ``jax.jacfwd``,
:math:`G = \\frac1N\\sum_i J_i^\\top(\\operatorname{diag}p_i - p_ip_i^\\top)J_i`, and the
within-class part from explicit per-example vectors
:math:`\\delta_{i,c'} = \\sqrt{p_{ic'}}J_i^\\top(p_i - e_{c'})`.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

from wideth import functional, hessian, models

C, N, D = 4, 30, 5


@functools.cache
def _module(seed=0):
    return models.MLP(D, 6, 1, out_dim=C, activation="tanh", rngs=nnx.Rngs(seed))


def _model(x64_dtype=jnp.float64, seed=0):
    """One module for every test, so compiled products are reused across tests."""
    apply_fn, params = functional.as_apply(_module(seed))
    params = jax.tree.map(lambda a: a.astype(x64_dtype), params)
    x = jax.random.normal(jax.random.key(1), (N, D), x64_dtype)
    y = jnp.arange(N) % C
    return apply_fn, params, x, y


def _dense(op):
    return np.asarray(jax.vmap(op)(jnp.eye(op.size, dtype=op.dtype)))


def _reference(apply_fn, params, x, y):
    flat, unravel = ravel_pytree(params)
    jac = jax.jacfwd(lambda f: apply_fn(unravel(f), x))(flat)  # (N, C, d)
    p = jax.nn.softmax(apply_fn(params, x))
    h = jax.vmap(lambda q: jnp.diag(q) - jnp.outer(q, q))(p)
    g = jnp.einsum("ica,icd,idb->ab", jac, h, jac) / x.shape[0]
    resid = p[:, None, :] - jnp.eye(C)[None]  # (N, C', C)
    delta = jnp.sqrt(p)[:, :, None] * jnp.einsum("icp,ikc->ikp", jac, resid)  # (N, C', d)
    means = jnp.stack([delta[y == c].mean(0) for c in range(C)])  # (C, C', d)
    dev = delta - means[y]
    within = jnp.einsum("ikp,ikq->pq", dev, dev) / x.shape[0]
    pi = jnp.bincount(y, length=C) / x.shape[0]
    klass = sum(pi[c] * jnp.outer(means[c, c], means[c, c]) for c in range(C))
    cross = sum(
        pi[c] * jnp.outer(means[c, k], means[c, k]) for c in range(C) for k in range(C) if k != c
    )
    return np.asarray(g), np.asarray(klass), np.asarray(cross), np.asarray(within), means


@pytest.mark.slow
def test_parts_match_dense_references_and_add_up_to_the_ggn(x64):
    apply_fn, params, x, y = _model()
    dec = hessian.ggn_decomposition(apply_fn, params, x, y, C)
    g, klass, cross, within, means = _reference(apply_fn, params, x, y)
    scale = np.abs(g).max()
    for op, ref in ((dec.total, g), (dec.class_means, klass), (dec.cross_class, cross)):
        np.testing.assert_allclose(_dense(op), ref, atol=1e-12 * scale)
    np.testing.assert_allclose(_dense(dec.within), within, atol=1e-12 * scale)
    parts = _dense(dec.class_means) + _dense(dec.cross_class) + _dense(dec.within)
    np.testing.assert_allclose(parts, _dense(dec.total), atol=1e-12 * scale)
    np.testing.assert_allclose(np.asarray(dec.means.means), np.asarray(means), atol=1e-12)
    # The split is not trivial: dropping a part breaks the identity.
    assert np.abs(parts - _dense(dec.within) - g).max() > 1e-3 * scale
    for op in dec[:4]:
        assert np.linalg.eigvalsh(_dense(op)).min() > -1e-12 * scale  # PSD


@pytest.mark.slow
def test_ranks_and_gram_spectra(x64):
    apply_fn, params, x, y = _model()
    dec = hessian.ggn_decomposition(apply_fn, params, x, y, C)
    sp = hessian.class_spectrum(dec.means)
    for part, op, rank in (("class", dec.class_means, C), ("cross", dec.cross_class, C * (C - 1))):
        ev = np.linalg.eigvalsh(_dense(op))[::-1]
        assert np.linalg.matrix_rank(_dense(op)) == rank
        np.testing.assert_allclose(np.asarray(sp[part]), ev[:rank], atol=1e-12, rtol=1e-9)
        assert np.all(ev[rank:] < 1e-12)
    between = _dense(dec.class_means) + _dense(dec.cross_class)
    np.testing.assert_allclose(
        np.asarray(sp["between"]), np.linalg.eigvalsh(between)[::-1][: C * C], atol=1e-12
    )


@pytest.mark.slow
def test_outlier_count_by_lanczos_equals_dense_and_obeys_weyl(x64):
    apply_fn, params, x, y = _model()
    dec = hessian.ggn_decomposition(apply_fn, params, x, y, C)
    g, w = _dense(dec.total), _dense(dec.within)
    dense_g = np.linalg.eigvalsh(g)[::-1]
    edge_dense = np.linalg.eigvalsh(w).max()
    ev, _ = hessian.top_eigenpairs(dec.total, k=C * C, num_steps=dec.total.size)
    edge = hessian.sharpness(dec.within, num_steps=dec.total.size)
    assert float(edge) == pytest.approx(edge_dense, rel=1e-9)
    count = int(hessian.count_above(ev, edge))
    assert count == int((dense_g > edge_dense).sum())
    sp = hessian.class_spectrum(dec.means)
    # Weyl: #{G > edge} <= rank(G_B) <= C^2 and >= #{G_B > edge}.
    assert int(hessian.count_above(sp["between"], edge)) <= count <= C * C


def test_float32_matches_float64_and_under_jit():
    apply_fn, params, x, y = _model(jnp.float32)
    dec = hessian.ggn_decomposition(apply_fn, params, x, y, C)
    v = jax.random.normal(jax.random.key(3), (dec.total.size,))

    @jax.jit
    def both(d, v):
        return d.total(v), d.class_means(v) + d.cross_class(v) + d.within(v)

    a, b = both(dec, v)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_subspace_overlap_and_similarity(x64):
    q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (20, 3)))
    basis = q.T
    v = basis[0] * 2 + basis[2]
    assert float(hessian.subspace_overlap(v, basis)) == pytest.approx(1.0)
    perp = jax.random.normal(jax.random.key(1), (20,))
    perp = perp - basis.T @ (basis @ perp)
    assert float(hessian.subspace_overlap(perp, basis)) == pytest.approx(0.0, abs=1e-12)
    mix = v / jnp.linalg.norm(v) + perp / jnp.linalg.norm(perp)
    assert float(hessian.subspace_overlap(mix, basis)) == pytest.approx(0.5)
    assert float(hessian.subspace_similarity(basis, basis[::-1])) == pytest.approx(1.0)
    other = jnp.stack([basis[0], perp / jnp.linalg.norm(perp), basis[1]])
    assert float(hessian.subspace_similarity(basis, other)) == pytest.approx(2 / 3)


def test_bad_inputs_name_the_argument():
    apply_fn, params, x, y = _model(jnp.float32)
    with pytest.raises(ValueError, match="^num_classes"):
        hessian.ggn_decomposition(apply_fn, params, x, y, 1)
    with pytest.raises(ValueError, match="^labels"):
        hessian.ggn_decomposition(apply_fn, params, x, y[:-1], C)
    with pytest.raises(ValueError, match="^labels"):
        hessian.class_gradient_means(apply_fn, params, x, y + C, C)
    with pytest.raises(TypeError, match="^labels"):
        hessian.ggn_decomposition(apply_fn, params, x, y.astype(jnp.float32), C)
    with pytest.raises(ValueError, match="^apply_fn"):
        hessian.ggn_decomposition(apply_fn, params, x, y % 3, 3)
    with pytest.raises(TypeError, match="^means"):
        hessian.class_spectrum((1, 2))
    with pytest.raises(ValueError, match="^basis"):
        hessian.subspace_overlap(jnp.ones(3), jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="^basis_b"):
        hessian.subspace_similarity(jnp.ones((2, 4)), jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="^edge"):
        hessian.count_above(jnp.ones(3), jnp.ones(2))


def test_top_subspace_probe_on_a_quadratic(x64):
    import optax

    from wideth import train

    lam = jnp.array([5.0, 4.0, 1.0, 0.5, 0.25, 0.1])

    def loss(p, batch):
        return 0.5 * jnp.sum(lam * p**2)

    probe = train.probes.top_subspace(loss, jnp.zeros(1), k=2, num_steps=6)
    inside = train.TrainState.create(jnp.array([1.0, 1.0, 0, 0, 0, 0]), optax.sgd(0.1))
    outside = train.TrainState.create(jnp.array([0, 0, 1.0, 0, 0, 1.0]), optax.sgd(0.1))
    a, b = probe(inside, None), probe(outside, None)
    np.testing.assert_allclose(np.asarray(a["eigenvalues"]), [5.0, 4.0], rtol=1e-10)
    assert float(a["grad_overlap"]) == pytest.approx(1.0)
    assert float(b["grad_overlap"]) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="^num_steps"):
        train.probes.top_subspace(loss, k=3, num_steps=2)
