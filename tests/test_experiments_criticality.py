"""Criticality experiment: random-network measurements against the mean-field maps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import criticality as cr
from experiments.common import Config
from wideth.kernels import meanfield as mf


def test_tanh_measured_q_star_matches_fixed_point():
    W, b = 2.0, 0.05
    x = cr.two_inputs(jax.random.key(0), 50, 1.0, 0.5)
    keys = jax.random.split(jax.random.key(1), (1, 8))
    m = cr.propagate_many(keys, x, jnp.array([W]), jnp.array([b]), 12, 512, "tanh")
    per_net = np.asarray(m["q"])[0, :, -4:].mean(1)  # q has converged after a few layers
    sem = per_net.std(ddof=1) / np.sqrt(len(per_net))
    q_star = float(mf.fixed_point("tanh", W, b)[0])
    # Monte Carlo error plus the O(1/n) finite-width bias
    assert abs(per_net.mean() - q_star) < 4 * sem + 0.01 * q_star


@pytest.mark.slow
def test_relu_backprop_rate():
    W = np.array([1.6, 2.0, 2.4])
    rg = cr.relu_gradients(jax.random.key(4), W, depth=12, width=128, num_nets=16)
    np.testing.assert_allclose(rg["rate_measured"], np.log(W / 2), atol=0.03)
    z = (rg["rate_measured"] - rg["rate_theory"]) / rg["rate_se"]
    assert np.all(np.abs(z) < cr.Z_MAX)
    # a wrong chi_1 (sigma_w^2 instead of sigma_w^2/2) fails the check
    wrong = {**rg, "rate_theory": np.log(W)}
    assert not cr.relu_checks(wrong)[0]["pass"]


def test_balanced_accuracy_of_constant_predictor_is_half():
    measured = np.array([[True, False, False], [True, True, False]])
    ba = cr.balanced_accuracy(np.ones_like(measured), measured)
    assert ba["sensitivity"] == 1.0 and ba["specificity"] == 0.0 and ba["balanced"] == 0.5
    assert cr.balanced_accuracy(measured, measured)["balanced"] == 1.0


def _synthetic_trainability(scale: float = 1.0) -> dict:
    """A trainability record whose accuracy map is exactly 'trainable iff L < scale 6 xi_c'."""
    sz = cr.SIZES(True)
    W, L = sz.train_grid["W_grid"], sz.train_grid["depths"]
    b = sz.train_run["b_var"]
    six = cr.six_xi_c(W, b)
    acc = np.where(L[None, :] < scale * six[:, None], 0.95, 0.1)
    per_seed = np.repeat(acc[..., None], 2, axis=-1)
    return {
        "W_grid": W,
        "depths": L,
        "b_var": b,
        "W_critical": float(mf.critical_W_var("tanh", b)),
        "accuracy_per_seed": per_seed,
        "accuracy": acc,
        "accuracy_sd": np.zeros_like(acc),
        "six_xi_c": six,
        "W_fine": np.geomspace(W.min(), W.max(), 20),
        "six_xi_c_fine": cr.six_xi_c(np.geomspace(W.min(), W.max(), 20), b),
        "chance": 0.1,
    }


def _claims(checks):
    return [c for c in checks if c["kind"] == "claim"]


def test_trainability_checks_pass_on_the_true_boundary_and_fail_on_wrong_ones():
    tr = _synthetic_trainability()
    checks = cr.trainability_checks(tr)
    assert all(c["pass"] for c in _claims(checks)), checks
    assert len(_claims(checks)) == 2  # ordered and chaotic side
    flat = {c["name"].split(" side")[0]: c for c in checks if "blind" in c["name"]}
    # a map that follows 6 xi_c exactly: the ordered side tells it from a flat line,
    # the chaotic side with depths <= 48 cannot (module docstring: 0.77 and 0.83)
    assert flat["ordered"]["pass"] and flat["ordered"]["measured"] == pytest.approx(0.767, abs=5e-3)
    assert not flat["chaotic"]["pass"]
    assert flat["chaotic"]["measured"] == pytest.approx(0.833, abs=5e-3)
    # a sigma_w^2-blind measured map (trainable iff L < 24 everywhere) fails both controls
    blind = {**tr, "accuracy": np.where(tr["depths"][None, :] < 24, 0.95, 0.1) + 0 * tr["accuracy"]}
    assert not any(c["pass"] for c in cr.trainability_checks(blind) if "blind" in c["name"])
    # the always-trainable predictor (xi_c -> inf) fails both sides
    assert not any(c["pass"] for c in _claims(cr.trainability_checks(tr, xi_factor=np.inf)))
    # a wrong depth scale, 2 xi_c (or xi_c / 2), fails
    assert not all(c["pass"] for c in _claims(cr.trainability_checks(tr, xi_factor=2.0)))
    assert not all(c["pass"] for c in _claims(cr.trainability_checks(tr, xi_factor=0.5)))
    # a map where everything trains (the old grid's failure mode) fails the claim
    all_train = {**tr, "accuracy": np.full_like(tr["accuracy"], 0.95)}
    assert not any(c["pass"] for c in _claims(cr.trainability_checks(all_train)))


def test_quick_grid_straddles_six_xi_c_on_both_sides():
    """Each side of criticality has predicted-trainable and predicted-untrainable cells."""
    sz = cr.SIZES(True)
    W, L = sz.train_grid["W_grid"], sz.train_grid["depths"]
    six = cr.six_xi_c(W, sz.train_run["b_var"])
    crit = float(mf.critical_W_var("tanh", sz.train_run["b_var"]))
    for side in (W < crit, W > crit):
        assert side.any()
        # every column is trainable at the shallowest depth and some column of each side
        # is predicted untrainable inside the grid
        assert np.all(L.min() < six[side]) and np.any(six[side] < L.max())


@pytest.mark.slow
def test_phase_and_signal_checks_fail_on_wrong_theory():
    pd = cr.phase_diagram(
        jax.random.key(0), np.linspace(0.5, 4.0, 5), np.array([0.05, 0.5]), 10, 64, 3
    )
    assert all(c["pass"] for c in cr.phase_checks(pd))
    wrong = {**pd, "chi1": pd["chi1"] * 1.3}
    assert not all(c["pass"] for c in cr.phase_checks(wrong))
    sp = cr.signal_propagation(jax.random.key(1), cr.CONFIGS, depth=8, width=128, num_nets=4)
    good = cr.signal_checks(sp)  # (passing at the experiment's width is the smoke test's job)
    bad_q = cr.signal_checks([{**r, "q_theory": 1.1 * r["q_theory"]} for r in sp])
    bad_c = cr.signal_checks([{**r, "c_theory": r["c_theory"] - 0.05} for r in sp])
    assert not bad_q[0]["pass"] and bad_q[0]["measured"] > good[0]["measured"]
    assert not bad_c[1]["pass"] and bad_c[1]["measured"] > good[1]["measured"]


def test_full_plan_builds():
    p = cr.plan(Config("criticality", quick=False, seed=0, out=None, quiet=True))
    tg = p["sz"].train_grid
    assert tg["depths"].max() > p["six_xi_c"].max() > p["six_xi_c"].min() > tg["depths"].min()


@pytest.mark.slow
def test_main_quick_smoke(tmp_path):
    import json

    cr.main(["--quick", "--quiet", "--out", str(tmp_path)])
    m = json.loads((tmp_path / "metrics.json").read_text())
    failed = [c["name"] for c in m["checks"] if not c["pass"]]
    assert not failed, failed
    assert (tmp_path / "trainability.png").exists()
