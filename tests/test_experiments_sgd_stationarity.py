"""SGD stationarity experiment: checks that fail on a wrong law, full-mode plan."""

import jax
import numpy as np
import pytest

from experiments import sgd_stationarity as sgs
from experiments.common import Config
from wideth.train import noise


def _ls_row(theory, measured, se, lr=0.3, b=16):
    return dict(lr=lr, batch_size=b, theory=theory, measured=measured, se=se)


def _mlp_row(diff, se, halves=((0.25, 1e-3), (0.25, 1e-3))):
    return dict(
        lr=0.3,
        batch_size=4,
        theta_dot_grad=(0.0155, se),
        fdr_rhs=(0.0155 - diff, 5e-5),
        notes_rhs=(0.0148, 4e-5),
        difference=(diff, se),
        loss_halves=halves,
    )


def test_real_sgd_passes_the_exact_law_and_fails_the_with_replacement_law():
    sz = sgs.SIZES(True)
    sz.ls_grid, sz.ls_steps, sz.ls_seeds = ((0.3, 16),), 30_000, 2
    rows = sgs.least_squares_part(sz, jax.random.key(0))
    assert all(c["pass"] for c in sgs.checks_for(rows, []))
    x, y = sgs.regression_data(jax.random.key(0), sz.ls_n, sz.ls_d)
    wrong = noise.least_squares_stationary(x, y, 0.3, 16, replace=True)["excess_loss"]
    bad = [dict(rows[0], theory=wrong)]
    assert not any(c["pass"] for c in sgs.checks_for(bad, []))


def test_fdr_check_fails_on_a_violation_and_the_drift_control_on_drift():
    ok = sgs.checks_for([], [_mlp_row(1e-4, 3e-4)])
    assert all(c["pass"] for c in ok)
    # Without weight decay (measured: -0.020 vs +0.010), the relation is violated.
    claims = sgs.checks_for([], [_mlp_row(-0.030, 1.6e-3)])
    assert not claims[0]["pass"] and claims[0]["kind"] == "claim"
    drift = sgs.checks_for([], [_mlp_row(0.0, 3e-4, ((0.049, 7e-4), (0.041, 4e-4)))])
    assert not drift[1]["pass"] and drift[1]["kind"] == "consistency"


def test_pooled_average_of_independent_seeds():
    rng = np.random.default_rng(0)
    series = rng.normal(size=(4, 4000)) + 2.0
    m, se = sgs.pooled_average(series)
    assert abs(m - 2.0) < 4 * se and se == pytest.approx(1 / np.sqrt(16000), rel=0.3)


def test_plan_builds_the_full_configuration():
    p = sgs.plan(Config("sgd_stationarity", quick=False, seed=0, out=None, quiet=True))
    assert len(p["laws"]) == len(p["sz"].ls_grid) and p["sz"].mlp_steps >= 100_000


@pytest.mark.slow
def test_main_quick_smoke(tmp_path):
    res = sgs.main(["--quick", "--quiet", "--out", str(tmp_path)])
    assert all(c["pass"] for c in res.checks), [c for c in res.checks if not c["pass"]]


def test_plan_rejects_runs_shorter_than_the_burn_in():
    cfg = Config("sgd_stationarity", True, 0, None, True, overrides=(("ls_steps", "2000"),))
    with pytest.raises(ValueError, match=r"^ls_steps: expected at least 2200"):
        sgs.plan(cfg)
