"""Depth-fluctuation experiment: exact one-layer law, checks that fail on wrong inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import depth_fluctuations as dfl
from experiments.common import Config
from wideth.kernels import meanfield


def test_one_relu_layer_matches_the_binomial_chi_square_law():
    # u ⊥ x: n0 G_1 = (2/n) chi^2_K, K ~ Binomial(n, 1/2); check the digamma formula itself
    # against that law sampled directly, then the network against the formula.
    n, m = 64, 4000
    rng = np.random.default_rng(0)
    k = rng.binomial(n, 0.5, size=200_000)
    direct = np.log(2 / n * rng.chisquare(np.maximum(k, 1)))
    mean, var = dfl.exact_log_moments(n, 1)
    assert abs(direct.mean() - mean) < 4 * direct.std() / np.sqrt(direct.size)
    assert abs(direct.var() - var) < 4 * var * np.sqrt(2 / direct.size)
    lg = dfl.log_jacobian(16, n, 1, m, jax.random.key(3))
    assert abs(lg.mean() - mean) < 3.5 * lg.std() / np.sqrt(m)
    assert abs(lg.var() - var) < 3.5 * var * np.sqrt(2 / m)
    # The asymptotic beta = 5/n is its leading order.
    assert abs(var - 5 / n) < 60 / n**2


@pytest.mark.slow
def test_deep_relu_network_matches_the_exact_law():
    n, depth, m = 32, 6, 3000
    lg = dfl.log_jacobian(16, n, depth, m, jax.random.key(4))
    mean, var = dfl.exact_log_moments(n, depth)
    assert abs(lg.mean() - mean) < 3.5 * lg.std() / np.sqrt(m)
    assert abs(lg.var() - var) < 3.5 * var * np.sqrt(2 / m)


def _row(width, depth, mean, var, m=4000):
    exact_mean, exact_var = dfl.exact_log_moments(width, depth)
    return dict(
        width=width,
        depth=depth,
        beta=5 * depth / width,
        mean=mean,
        mean_se=np.sqrt(var / m),
        var=var,
        var_se=var * np.sqrt(2 / m),
        exact_mean=exact_mean,
        exact_var=exact_var,
    )


def test_relu_checks_pass_on_the_law_and_fail_off_it():
    e = dfl.exact_log_moments(64, 8)
    assert all(c["pass"] for c in dfl.relu_checks([_row(64, 8, *e)]))
    # A variance constant 4/n instead of 5/n (and the matching mean) is caught.
    assert not all(c["pass"] for c in dfl.relu_checks([_row(64, 8, -0.25, 0.5)]))


@pytest.mark.slow
def test_mean_ntk_diagonal_is_two_per_weight_layer_and_a_layer_too_few_fails():
    th = dfl.ntk_diagonal(16, 48, 3, 1500, jax.random.key(5))
    row = dict(
        width=48,
        depth=3,
        networks=len(th),
        mean=float(th.mean()),
        se=float(th.std(ddof=1) / np.sqrt(len(th))),
        rel_sd=float(th.std() / th.mean()),
    )
    assert all(c["pass"] for c in dfl.ntk_checks([row]))
    # The formula with L instead of L + 1 weight layers (2L |x|^2 / n0) is caught.
    assert not dfl.ntk_checks([dict(row, depth=2)])[0]["pass"]


@pytest.mark.slow
def test_kernel_routes_match_a_direct_jvp_and_gradient_of_each_network():
    # log_jacobian and ntk_diagonal read empirical NTKs; a plain JVP of the input
    # Jacobian along u and the squared parameter-gradient norm of each member agree.
    import optax

    n0, width, depth, num, key = 8, 16, 3, 5, jax.random.key(11)
    fn, params = dfl.ensemble(n0, width, depth, num, key)
    x, u = dfl.unit_input(jax.random.fold_in(key, 1), n0)
    lg = dfl.log_jacobian(n0, width, depth, num, key)
    for i in range(num):
        p = jax.tree.map(lambda a: a[i], params)
        _, t = jax.jvp(lambda z: fn(p, z[None])[-1][0], (x,), (u,))
        direct = np.log(float(np.sum(np.asarray(t, np.float64) ** 2)) * n0 / width)
        assert lg[i] == pytest.approx(direct, abs=1e-5)
    fn, params = dfl.ensemble(n0, width, depth, num, key, method="__call__", b_std=0.0)
    x, _ = dfl.unit_input(jax.random.fold_in(key, 3), n0)
    theta = dfl.ntk_diagonal(n0, width, depth, num, key)
    for i in range(num):
        p = jax.tree.map(lambda a: a[i], params)
        g = jax.grad(lambda q: fn(q, x[None])[0, 0])(p)
        assert theta[i] == pytest.approx(float(optax.tree.norm(g, squared=True)), rel=1e-5)


def test_extrapolation_recovers_the_intercept():
    w = np.array([64.0, 128.0, 256.0])
    a, se, b = dfl.extrapolate(w, 0.05 - 0.8 / w, np.full(3, 1e-4))
    assert a == pytest.approx(0.05, abs=1e-10) and b == pytest.approx(-0.8, rel=1e-8)
    assert se > 0


def test_tanh_length_map_decays_like_one_over_2l():
    q = np.asarray(meanfield.variance_sequence("tanh", 1.0, 0.0, 1.0, 2000))
    l = np.arange(1, 2001)
    assert abs(2 * l[-1] * q[-1] - 1) < 5e-3
    assert np.all(np.diff(2 * l[100:] * q[100:]) < 0)  # approaches 1 from above
    # A critical but not K*=0 point decays differently: relu keeps q fixed.
    np.testing.assert_allclose(meanfield.variance_sequence("relu", 2.0, 0.0, 1.0, 5), 2.0)


def test_plan_builds_the_full_configuration():
    p = dfl.plan(Config("depth_fluctuations", quick=False, seed=0, out=None, quiet=True))
    assert max(5 * d / w for w, d in p["sz"].relu_grid) >= 1.0


@pytest.mark.slow
def test_main_quick_smoke(tmp_path):
    res = dfl.main(["--quick", "--quiet", "--out", str(tmp_path)])
    assert all(c["pass"] for c in res.checks), [c for c in res.checks if not c["pass"]]


def test_ensemble_map_draws_the_ensembles_networks_in_groups(monkeypatch):
    # network i of ensemble_map is network i of ensemble (same key), in any group size
    n0, width, depth, num, key = 6, 12, 3, 9, jax.random.key(4)
    fn, params = dfl.ensemble(n0, width, depth, num, key, method="__call__")
    x = jnp.ones((1, n0))
    want = np.asarray(jax.vmap(lambda p: fn(p, x)[0, 0])(params))
    monkeypatch.setattr(dfl, "NETS_PER_BATCH", 4)  # groups of 4, 4 and 1
    got = dfl.ensemble_map(lambda f, p: f(p, x)[0, 0], n0, width, depth, num, key, "__call__")
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert np.unique(np.round(got, 6)).size == num  # nine different networks
