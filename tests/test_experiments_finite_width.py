"""Finite-width experiment: exact laws against Monte Carlo, and every check can fail."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import finite_width as fw
from experiments.common import Config
from wideth.kernels import meanfield as mf


def test_nngp_diag_variance_matches_monte_carlo_and_the_check_fails_off_it():
    n, L = 32, 3
    x = jax.random.normal(jax.random.key(3), (fw.D_IN,))
    kr, kl = fw.nngp_program(x, n, L)(jax.random.split(jax.random.key(0), 4000))
    for K, act in ((np.asarray(kr)[:, -1], "relu"), (np.asarray(kl)[:, -1], "identity")):
        rv, se = fw.bootstrap_relvar(K, 0)
        theory = float(mf.nngp_diag_variance([n] * L, act))
        assert abs(rv - theory) < 4 * se, (act, rv, theory, se)
    nf = fw.nngp_fluctuations(jax.random.key(1), [32], [1, 2], 2000)
    assert all(c["pass"] for c in fw.nngp_checks(nf))
    # a per-layer constant 4 instead of 5 (ReLU) is far outside the bound
    wrong = {**nf, "relu": {**nf["relu"], "theory": (1 + 4 / 32) ** np.array([[1, 2]]) - 1}}
    assert not fw.nngp_checks(wrong)[0]["pass"]


@pytest.mark.slow
@pytest.mark.parametrize("W_std", [1.0, 2.0])
def test_depth1_ntk_relvar_is_exactly_3_over_n_for_any_sigma(W_std):
    # Large Monte Carlo: 3/n within 3 SE, and a 4/n law rejected, at two sigma.
    n = 16
    theta, _ = fw.ntk_samples(jax.random.key(7), n, 1, 20000, W_std=W_std)
    rv, se = fw.relvar(theta)
    assert abs(rv - fw.depth1_relvar(n)) < 3 * se, (rv, se)
    assert abs(rv - 4 / n) > 3 * se
    # E[Theta] = sigma^4 |x|^2/d (1/n) sum E[xi (v^2 + z^2)] = sigma^4 (docstring 2a)
    assert abs(theta.mean() - W_std**4) < 4 * theta.std() / np.sqrt(len(theta))


def test_depth1_check_passes_at_3_and_fails_at_4():
    d1 = {"width": 64, "num_nets": 4000, "c1": 3.02, "c1_se": 0.07}
    assert fw.depth1_check(d1)["pass"]
    assert not fw.depth1_check(d1, theory=4.0)["pass"]
    # measured data from a c = 4 law fail against the exact 3
    assert not fw.depth1_check({**d1, "c1": 4.0})["pass"]


def test_moment_ratio_laws():
    n = 64
    for L in (1, 3, 10):
        assert fw.nngp_moment_ratio(n, L) == pytest.approx((1 + 5 / n) ** L, rel=1e-12)
        assert fw.nngp_moment_ratio(n, L, 2, "identity") == pytest.approx((1 + 2 / n) ** L)
    assert fw.ntk_moment_ratio(n, 1) == pytest.approx(1 + fw.depth1_relvar(n), rel=1e-12)
    # the tail criterion: relative SE of the E[K^2] estimate ~ sqrt((e^{20 beta} - 1)/N)
    big_n, L = 4096, 1024
    expected = np.sqrt((np.exp(20 * L / big_n) - 1) / 1000)
    assert fw.estimator_rel_se(big_n, L, 1000) == pytest.approx(expected, rel=0.02)
    # first-order expansion of the independent-layer law
    big = 10**6
    for L in (1, 2, 8, 32):
        first = fw.ntk_relvar_first_order(big, L)
        assert fw.ntk_moment_ratio(big, L) - 1 == pytest.approx(first, rel=1e-3)
    assert fw.ntk_relvar_first_order(big, 10**4) * big / 10**4 == pytest.approx(11 / 3, rel=1e-3)
    # the NTK sum grows more slowly than one product of layers (5 per layer)
    assert np.log(fw.ntk_moment_ratio(n, 32)) < np.log(fw.nngp_moment_ratio(n, 32))


@pytest.mark.slow
def test_ntk_mean_matches_analytic_kernel():
    from wideth.kernels import analytic

    width, depth = 128, 2
    theta, _ = fw.ntk_samples(jax.random.key(1), width, depth, 300)
    x = jax.random.normal(jax.random.fold_in(jax.random.key(1), 5), (1, fw.D_IN))
    x = x / jnp.linalg.norm(x) * jnp.sqrt(fw.D_IN)
    _, _, kfn = analytic.mlp(depth, width)
    expected = float(analytic.kernel(kfn, x, get="ntk")[0, 0])
    assert abs(theta.mean() - expected) < 4 * theta.std() / np.sqrt(len(theta))


def _synthetic_prop3(nngp_law, ntk_law, n=64, depths=(4, 6, 8, 12), rel_se=0.02):
    rng = np.random.default_rng(0)
    beta = np.array(depths) / n
    p = {
        "width": n,
        "depths": list(depths),
        "num_nets": 6000,
        "beta": beta,
        "nngp_theory": np.array([np.log(fw.nngp_moment_ratio(n, L)) for L in depths]),
        "ntk_theory": np.array([np.log(fw.ntk_moment_ratio(n, L)) for L in depths]),
        "fitted": np.array([True, True, True, False]),
    }
    for name, law in (("nngp", nngp_law), ("ntk", ntk_law)):
        v = np.array([law(n, L) for L in depths])
        p[f"{name}_se"] = rel_se * v
        p[name] = v + p[f"{name}_se"] * rng.standard_normal(len(v))
    return {**p, **fw.prop3_fit(p)}


def test_prop3_checks_pass_on_the_laws_and_fail_off_them():
    nngp = lambda n, L: np.log(fw.nngp_moment_ratio(n, L))
    ntk = lambda n, L: np.log(fw.ntk_moment_ratio(n, L))
    assert all(c["pass"] for c in fw.prop3_checks(_synthetic_prop3(nngp, ntk)))
    # an O(beta^2) excess over the independent-layer law leaves the first-order rate alone
    curved = lambda n, L: ntk(n, L) + 1.0 * (L / n) ** 2
    assert fw.prop3_checks(_synthetic_prop3(nngp, curved))[1]["pass"]
    # K-hat growing at 4 per unit beta fails; the NTK diagonal growing at 5 (Prop. 3 read
    # literally) fails against the independent-layer law
    bad = fw.prop3_checks(_synthetic_prop3(lambda n, L: 4 * L / n, lambda n, L: 5 * L / n))
    assert not bad[0]["pass"] and not bad[1]["pass"]


def _movement(law, widths=(128, 256, 512, 1024), seeds=8):
    rng = np.random.default_rng(1)
    w = np.array(widths, float)
    return law(w)[:, None] * np.exp(0.25 * rng.standard_normal((len(w), seeds)))


def test_movement_check_passes_on_1_over_n_and_fails_on_1_over_sqrt_n():
    widths = (128, 256, 512, 1024)
    fit = fw.movement_fit(widths, _movement(lambda w: 5 / w), 3)
    assert fit["window"] == [256, 512, 1024]
    assert fw.movement_check(fit, 8)["pass"]
    half = fw.movement_fit(widths, _movement(lambda w: 0.5 / np.sqrt(w)), 3)
    assert not fw.movement_check(half, 8)["pass"]


def test_weighted_slopes_recover_known_lines():
    x = np.array([1.0, 2.0, 4.0])
    s, se = fw.weighted_slope(x, 3 - 2 * x, np.ones(3))
    assert s == pytest.approx(-2) and se > 0
    s0, _ = fw.slope_through_origin(x, 5 * x, np.array([1.0, 2.0, 3.0]))
    assert s0 == pytest.approx(5)
    a, _, b, _ = fw.quadratic_through_origin(x, 2 * x - 0.5 * x**2, np.ones(3))
    assert (a, b) == (pytest.approx(2), pytest.approx(-0.5))
    # too few fitted depths (an unlucky tail): nan, so the checks fail instead of a crash
    assert all(np.isnan(fw.quadratic_through_origin(x[:1], x[:1], np.ones(1))))
    assert all(np.isnan(fw.slope_through_origin(x[:0], x[:0], np.ones(0))))


@pytest.mark.slow
def test_movement_runs_no_step_no_movement_and_training_moves_the_kernel():
    from wideth import data

    ds = data.digits(n_train=32, seed=0)
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    apply_fn, init = fw.movement_setup(16, 1, x.shape[1], y.shape[1])
    keys = jax.random.split(jax.random.key(0), 2)
    still = fw.movement_runs(apply_fn, init, (x, y), x[:4], keys, 4, 0.0)
    np.testing.assert_allclose(still["movement"], 0.0, atol=1e-7)
    np.testing.assert_allclose(still["lossT"], still["loss0"], rtol=1e-6)
    moved = fw.movement_runs(apply_fn, init, (x, y), x[:4], keys, 20, 1.0)
    assert np.all(moved["movement"] > 1e-3) and np.all(moved["lossT"] < moved["loss0"])
    # the centred model starts at f = 0: initial loss is the targets' |y|^2 / 2
    assert moved["loss0"] == pytest.approx(float(jnp.sum(y**2) / (2 * len(y))), rel=1e-5)


@pytest.mark.slow
def test_plan_builds_the_full_configuration():
    p = fw.plan(Config("finite_width", quick=False, seed=0, out=None, quiet=True))
    sz = p["sz"]
    assert set(p["models"]) == set(sz.mv_widths) and max(sz.mv_widths) == 4096
    assert p["batch"][0].shape == (sz.n_train, 64) and p["probe"].shape[0] == sz.n_probe
    assert sz.mv_window <= len(sz.mv_widths) and sz.uncentred
    # full-mode Prop. 3: the exact tail criterion admits depths up to beta ~ 0.3
    tail = [fw.estimator_rel_se(sz.prop3_width, L, sz.prop3_networks) for L in sz.prop3_depths]
    fitted = np.array(sz.prop3_depths)[np.array(tail) <= fw.TAIL_SE]
    assert len(fitted) >= 4 and fitted.max() / sz.prop3_width >= 0.3


@pytest.mark.slow
def test_main_quick_smoke(tmp_path):
    res = fw.main(["--quick", "--quiet", "--out", str(tmp_path)])
    assert (tmp_path / "metrics.json").exists()
    assert all(c["pass"] for c in res.checks), [c for c in res.checks if not c["pass"]]
