"""Linear-regions experiment: the Kac-Rice theory value, the Monte Carlo check and its failure."""

import types

import jax
import numpy as np
import pytest

from experiments import linear_regions as lr
from experiments.common import Config


def test_kac_rice_without_bias_is_the_closed_form_at_every_depth():
    x0, u = lr.line(jax.random.key(0), 8)
    assert abs(np.linalg.norm(x0) - 1) < 1e-12 and abs(x0 @ u) < 1e-12
    got = lr.kac_rice_counts(4, 0.0, x0, u, 3.0, 201)
    np.testing.assert_allclose(got, 2 / np.pi * np.arctan(3.0), rtol=1e-4)  # O(h) differences
    # Biases change the answer (so a check against the no-bias value can fail).
    assert np.all(lr.kac_rice_counts(2, 0.5, x0, u, 3.0, 201) < 0.95 * 2 / np.pi * np.arctan(3.0))


def test_monte_carlo_agrees_with_theory_and_a_wrong_theory_fails():
    sz = types.SimpleNamespace(n0=8, width=128, depth=3, networks=12, T=3.0, grid=101)
    counts, x0, u = lr.monte_carlo_counts(sz, 0.0, jax.random.key(1))
    theory = lr.kac_rice_counts(sz.depth, 0.0, x0, u, sz.T, sz.grid)
    (c,), r = lr.layer_checks("no bias", counts, theory)
    assert c["pass"], c
    wrong = lr.kac_rice_counts(sz.depth, 0.5, x0, u, sz.T, sz.grid)
    (c_wrong,), _ = lr.layer_checks("no bias vs biased theory", counts, wrong)
    assert not c_wrong["pass"]


def test_depth_slope_recovers_a_known_slope():
    mean = 0.8 + 0.01 * np.arange(1, 7)
    slope, se = lr.depth_slope(mean, np.full(6, 0.005))
    assert slope == pytest.approx(0.01, rel=1e-10)
    assert se == pytest.approx(0.005 / np.sqrt(17.5), rel=1e-10)


def test_plan_builds_the_full_configuration():
    p = lr.plan(Config("linear_regions", quick=False, seed=0, out=None, quiet=True))
    assert p["sz"].width == 1024 and p["sz"].train_steps % p["sz"].snapshots == 0


@pytest.mark.slow
def test_main_quick_smoke(tmp_path):
    res = lr.main(["--quick", "--quiet", "--out", str(tmp_path)])
    assert (tmp_path / "metrics.json").exists()
    assert all(c["pass"] for c in res.checks), [c for c in res.checks if not c["pass"]]
