"""Catapult experiment: uv-model phases, thresholds and closed-form dynamics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import catapult as cp


def test_classify():
    assert cp.classify(np.array([1.0, 0.5, 0.1])) == cp.LAZY
    assert cp.classify(np.array([1.0, 5.0, 0.1])) == cp.CATAPULT
    assert cp.classify(np.array([1.0, 5.0, np.inf])) == cp.DIVERGENT
    assert cp.classify(np.array([1.0, 0.5, 2.0])) == cp.DIVERGENT


def test_uv_phase_thresholds():
    grid = np.arange(0.5, 5.01, 0.25)
    sw = cp.uv_sweep(jax.random.key(0), 300, grid, steps=400, num_seeds=2)
    for phase in sw["phase"]:
        lazy_to_cat, cat_to_div = cp.thresholds(grid, phase)
        assert abs(lazy_to_cat - 2.0) <= 0.25
        assert abs(cat_to_div - 4.0) <= 0.25
    cat = sw["phase"] == cp.CATAPULT
    assert cat.sum() >= 4
    # the catapult ends with the kernel below the stability edge: eta * lambda < 2
    assert np.all(sw["eta_lam_final"][cat] < 2)
    # lazy runs away from the edge keep their kernel: eta * lambda_final ~ eta * lambda_0
    lazy = (sw["phase"] == cp.LAZY) & (grid <= 1.5)
    np.testing.assert_allclose(
        sw["eta_lam_final"][lazy], np.broadcast_to(grid, lazy.shape)[lazy], rtol=0.02
    )


def test_uv_model_matches_closed_form_recursion(x64):
    m = 500
    u, v = cp.uv_init(jax.random.key(1), m)
    u, v = u.astype(jnp.float64), v.astype(jnp.float64)
    lam0 = cp.uv_ntk(u, v)
    f0 = u @ v / jnp.sqrt(float(m))
    for c in (1.5, 3.0):
        eta = c / lam0
        model = cp.uv_gd(u, v, eta, 60)
        rec = cp.uv_recursion(f0, lam0, eta, float(m), 60)
        # f = u.v / sqrt(m) carries ~1e-15 absolute rounding once it has converged
        np.testing.assert_allclose(model["loss"], rec["loss"], rtol=1e-7, atol=1e-20)
        np.testing.assert_allclose(model["ntk"], rec["ntk"], rtol=1e-9)


def test_uv_peak_loss_grows_with_width():
    peaks = cp.uv_peak_vs_width(jax.random.key(2), [100, 1000, 10000], 3.0, 300, num_seeds=2)
    mean = peaks["peak"].mean(1)
    assert np.all(np.diff(mean) > 0)
    slope = np.polyfit(np.log(peaks["widths"]), np.log(mean), 1)[0]
    assert slope == pytest.approx(1.0, abs=0.25)


@pytest.mark.slow
def test_main_quick_smoke(tmp_path):
    res = cp.main(["--quick", "--quiet", "--out", str(tmp_path)])
    assert (tmp_path / "metrics.json").exists()
    assert all(c["pass"] for c in res.checks), [c for c in res.checks if not c["pass"]]
