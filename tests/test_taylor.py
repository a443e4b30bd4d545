"""linearize / taylor_expand against explicit Jacobians and Hessians and their
error orders; the Monte Carlo kernel against the analytic one (unbiased at one
hidden layer for every width) within its standard error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from wideth.functional import functional
from wideth.kernels import analytic, empirical, taylor
from wideth.models import MLP


def _net(activation="tanh"):
    return MLP(3, 16, 2, out_dim=2, activation=activation, rngs=nnx.Rngs(0))


def _f64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _x():
    return jax.random.normal(jax.random.PRNGKey(3), (4, 3))


def _direction(params, seed=7):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree.unflatten(
        treedef, [jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves, strict=True)]
    )


def _shift(params, delta, eps):
    return jax.tree.map(lambda a, d: a + eps * d, params, delta)


@pytest.mark.slow
def test_linearize_is_the_jacobian_product(x64):
    fn, p0 = functional(_net())
    p0 = _f64(p0)
    x = _x()
    delta = _direction(p0)
    flat0, unravel = jax.flatten_util.ravel_pytree(p0)
    jac = jax.jacobian(lambda v: fn(unravel(v), x))(flat0)  # (4, 2, P), small
    dflat = jax.flatten_util.ravel_pytree(delta)[0]
    want = fn(p0, x) + jac @ dflat
    f_lin = taylor.linearize(fn, p0)
    np.testing.assert_allclose(f_lin(_shift(p0, delta, 1.0), x), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(f_lin(p0, x), fn(p0, x), rtol=0, atol=0)
    assert jax.jit(f_lin)(p0, x).shape == (4, 2)


@pytest.mark.slow
def test_degree_two_is_the_hessian_quadratic(x64):
    fn, p0 = functional(_net())
    p0 = _f64(p0)
    x = _x()
    delta = _direction(p0)
    flat0, unravel = jax.flatten_util.ravel_pytree(p0)
    d = jax.flatten_util.ravel_pytree(delta)[0]
    g = lambda v: fn(unravel(v), x)
    hess = jax.hessian(g)(flat0)  # (4, 2, P, P)
    want = g(flat0) + jax.jacobian(g)(flat0) @ d + 0.5 * jnp.einsum("abpq,p,q->ab", hess, d, d)
    got = taylor.taylor_expand(fn, p0, 2)(_shift(p0, delta, 1.0), x)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    lin = taylor.linearize(fn, p0)(_shift(p0, delta, 0.3), x)
    np.testing.assert_allclose(
        taylor.taylor_expand(fn, p0, 1)(_shift(p0, delta, 0.3), x), lin, rtol=1e-12
    )
    np.testing.assert_allclose(taylor.taylor_expand(fn, p0, 0)(_shift(p0, delta, 0.3), x), g(flat0))


@pytest.mark.slow
@pytest.mark.parametrize("degree", [1, 2, 3])
def test_remainder_order(x64, degree):
    """|f - f^(d)| at theta0 + eps delta is O(eps^(d+1)): halving eps divides it by 2^(d+1)."""
    fn, p0 = functional(_net())
    p0 = _f64(p0)
    x = _x()
    delta = _direction(p0)
    expand = taylor.taylor_expand(fn, p0, degree)
    gaps = []
    for eps in (0.04, 0.02, 0.01):
        p = _shift(p0, delta, eps)
        gaps.append(float(jnp.max(jnp.abs(fn(p, x) - expand(p, x)))))
    ratios = np.array(gaps[:-1]) / np.array(gaps[1:])
    want = 2.0 ** (degree + 1)
    assert np.all(np.abs(ratios / want - 1) < 0.15), (gaps, ratios)


def test_polynomial_is_reproduced_exactly(x64):
    f = lambda p, x: (x @ p["w"]) ** 3 + p["b"]
    p0 = {"w": jnp.array([0.5, -1.0, 0.2]), "b": jnp.array(0.1)}
    p1 = {"w": jnp.array([1.5, 0.3, -0.7]), "b": jnp.array(-2.0)}
    x = _x()
    np.testing.assert_allclose(taylor.taylor_expand(f, p0, 3)(p1, x), f(p1, x), rtol=1e-12)
    assert not np.allclose(taylor.taylor_expand(f, p0, 2)(p1, x), f(p1, x), rtol=1e-3)


@pytest.mark.slow
def test_monte_carlo_kernel_is_unbiased_at_one_hidden_layer(x64):
    """E over init of the empirical NNGP and NTK equals the analytic kernel exactly at depth 1.

    Entry-wise z = (mean - analytic) / (sd / sqrt(S)) with S = 256 networks; max |z| over
    the 10 distinct entries of each 4x4 kernel stays below 3.5 (two-sided, 10 entries:
    P(max |z| > 3.5) ~ 0.5%). A wrong W_std in the analytic kernel (1.3 for 1.5) fails.
    """
    x = _x()
    make = lambda k: MLP(3, 64, 1, W_std=1.5, b_std=0.2, rngs=nnx.Rngs(k))
    kfn = taylor.monte_carlo_kernel_fn(make, None, jax.random.PRNGKey(0), 256)
    s_nngp, s_ntk = kfn(x, get=("nngp", "ntk"), return_samples=True)
    iu = np.triu_indices(4)

    def max_z(samples, ref):
        mean = samples.mean(0)
        se = samples.std(0, ddof=1) / np.sqrt(samples.shape[0])
        return float(np.max(np.abs(((mean - ref) / se)[iu])))

    for w_std, ok in ((1.5, True), (1.3, False)):
        _, _, kernel_fn = analytic.mlp(depth=1, width=64, W_std=w_std, b_std=0.2)
        ref_nngp, ref_ntk = kernel_fn(x, None, ("nngp", "ntk"))
        z = max(max_z(np.asarray(s_nngp), ref_nngp), max_z(np.asarray(s_ntk), ref_ntk))
        assert (z < 3.5) == ok, (w_std, z)
    # the mean is the mean of the per-network kernels
    nngp, ntk = kfn(x)
    np.testing.assert_allclose(ntk, s_ntk.mean(0), rtol=1e-12)
    np.testing.assert_allclose(nngp, s_nngp.mean(0), rtol=1e-12)


def test_monte_carlo_with_functions(x64):
    f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"] / np.sqrt(8)
    init = lambda k: {
        "w": jax.random.normal(k, (3, 8)),
        "v": jax.random.normal(jax.random.fold_in(k, 1), (8, 1)),
    }
    x = _x()
    key = jax.random.PRNGKey(5)
    kfn = taylor.monte_carlo_kernel_fn(init, f, key, 3)
    keys = jax.random.split(key, 3)
    want = np.mean([empirical.ntk(f, init(k), x) for k in keys], axis=0)
    np.testing.assert_allclose(kfn(x, get="ntk"), want, rtol=1e-10)


def test_bad_input():
    net = _net()
    fn, p0 = functional(net)
    with pytest.raises(TypeError, match="^apply_fn: "):
        taylor.linearize("net")
    with pytest.raises(TypeError, match="^params: "):
        taylor.linearize(net, p0)
    with pytest.raises(ValueError, match="^degree: "):
        taylor.taylor_expand(net, None, -1)
    with pytest.raises(ValueError, match="^params: "):
        taylor.linearize(net)({"w": jnp.ones(3)}, _x())
    init = lambda k: MLP(3, 8, 1, rngs=nnx.Rngs(k))
    with pytest.raises(ValueError, match="^n_samples: "):
        taylor.monte_carlo_kernel_fn(init, None, jax.random.PRNGKey(0), 0)
    with pytest.raises(TypeError, match="^apply_fn: "):
        taylor.monte_carlo_kernel_fn(lambda k: {"w": jnp.ones(3)}, None, jax.random.PRNGKey(0), 2)
    kfn = taylor.monte_carlo_kernel_fn(init, None, jax.random.PRNGKey(0), 2)
    with pytest.raises(ValueError, match="^get: "):
        kfn(_x(), get="ntk_nngp")
    with pytest.raises(ValueError, match="^x2: "):
        kfn(_x(), jnp.ones((2, 5)))
