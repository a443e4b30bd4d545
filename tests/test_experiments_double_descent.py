"""Double-descent experiment: closed forms, Monte Carlo and filters at tiny size."""

import math

import jax
import numpy as np
import pytest

from experiments import double_descent as dd


def test_hastie_formula_published_values():
    # values quoted in the issue for r^2 = 1, sigma^2 = 0.25
    assert dd.hastie_risk(0.9) == pytest.approx(2.25)
    assert dd.hastie_risk(1.05) == pytest.approx(5.0476, abs=1e-3)
    assert dd.hastie_risk(2.0) == pytest.approx(0.75)
    assert math.isinf(dd.hastie_risk(1.0))
    with pytest.raises(ValueError, match="gamma"):
        dd.hastie_risk(0.0)


def test_finite_n_formula_tends_to_hastie():
    for g in (0.5, 2.0):
        exact = dd.hastie_risk_finite(100_000, int(g * 100_000))
        assert exact == pytest.approx(dd.hastie_risk(g), rel=1e-3)


def test_hastie_curve_three_gammas_within_mc_error():
    gammas = np.array([0.5, 2.0, 4.0])
    with dd._one_blas_thread():
        h = dd.hastie_curve(jax.random.key(3), 120, gammas, num_seeds=24)
    gap = np.abs(h["finite_n"] - h["theory"])
    assert np.all(np.abs(h["mean"] - h["theory"]) <= 3 * h["sem"] + gap), h
    # and against the exact finite-n expectation, pure Monte Carlo error
    assert np.all(np.abs(h["mean"] - h["finite_n"]) <= 3.5 * h["sem"]), h


@pytest.mark.parametrize("num_features", [15, 80])
def test_ridge_path_matches_direct_solves(num_features):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((40, num_features)), rng.standard_normal((30, num_features))
    y, yt = rng.standard_normal((40, 3)), rng.standard_normal((30, 3))
    ridges = np.array([0.0, 0.1, 3.0])
    got = dd.ridge_path_errors(a, y, b, yt, ridges)
    for lam, g in zip(ridges, got):
        if lam == 0:
            coef = np.linalg.lstsq(a, y, rcond=None)[0]  # min-norm solution
        else:
            coef = np.linalg.solve(a.T @ a + lam * np.eye(num_features), a.T @ y)
        want = np.mean(np.sum((b @ coef - yt) ** 2, axis=1))
        assert g == pytest.approx(want, rel=1e-6)


def test_random_features_peak_and_optimal_ridge():
    key = jax.random.key(0)
    kx, kb, kt = jax.random.split(key, 3)
    n, d = 60, 10
    x = np.asarray(jax.random.normal(kx, (n + 200, d)))
    w = np.asarray(jax.random.normal(kb, (d, 1)))
    y = np.tanh(x @ w) + 0.3 * np.asarray(jax.random.normal(kt, (n + 200, 1)))
    nfs = np.array([10, 20, 30, 45, 55, 60, 65, 80, 120, 240])
    ridges = np.concatenate([[0.0], np.logspace(-5, 1, 13)])
    with dd._one_blas_thread():
        rf = dd.random_features_curve(key, x[:n], y[:n], x[n:], y[n:], nfs, ridges, num_seeds=3)
    i = int(np.flatnonzero(nfs == n)[0])
    assert rf["min_norm"][i] > 3 * rf["min_norm"][nfs <= n // 2].min()
    assert rf["optimal"][i] <= 1.05 * rf["optimal"][nfs <= n // 2].min()


def test_ridge_vs_flow_within_ali_kolter_tibshirani_bound():
    lambdas = np.logspace(-3, 2, 21)
    with dd._one_blas_thread():
        rg = dd.ridge_vs_gradient_flow(jax.random.key(1), 60, 40, lambdas, num_draws=2)
    assert np.all(rg["ratio"] <= 1.6862)
    assert np.all(rg["ratio"] >= 1.0 - 1e-12) or rg["ratio"].min() > 0.5
    # ridge is Bayes-optimal under the Gaussian prior: its best risk is the smaller
    assert rg["ridge"].min() <= rg["flow"].min() * (1 + 1e-9)
    assert rg["flow"].min() / rg["ridge"].min() < 1.1


def test_filters():
    s = np.array([0.01, 1.0, 100.0])
    np.testing.assert_allclose(dd.ridge_filter(s, 1.0), s / (1 + s))
    np.testing.assert_allclose(dd.gradient_flow_filter(s, 1.0), 1 - np.exp(-s))


def test_gradient_descent_matches_flow_filter_risk():
    gd = dd.gradient_descent_risk_path(
        jax.random.key(2), 50, 25, np.array([0.5, 2.0, 10.0]), lr=0.05, num_draws=48
    )
    assert np.all(
        np.abs(gd["gd_mean"] - gd["flow_exact"]) <= 3 * gd["gd_sem"] + 0.03 * gd["flow_exact"]
    )


@pytest.mark.slow
def test_main_quick_smoke(tmp_path):
    res = dd.main(["--quick", "--quiet", "--out", str(tmp_path)])
    assert (tmp_path / "metrics.json").exists()
    assert all(c["pass"] for c in res.checks), [c for c in res.checks if not c["pass"]]
