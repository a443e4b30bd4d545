"""Catapult experiment: uv model with a label, phases, bisection, and each check failing."""

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import catapult as cp
from experiments.common import Config


def test_classify():
    assert cp.classify(np.array([1.0, 0.5, 0.1])) == cp.LAZY
    assert cp.classify(np.array([1.0, 5.0, 0.1])) == cp.CATAPULT
    assert cp.classify(np.array([1.0, 5.0, np.inf])) == cp.DIVERGENT
    assert cp.classify(np.array([1.0, 5.0, np.nan])) == cp.DIVERGENT
    assert cp.classify(np.array([1.0, 0.5, 2.0])) == cp.DIVERGENT


def test_boundaries():
    grid = [1.0, 2.0, 3.0, 4.0]
    assert cp.boundaries(grid, [cp.LAZY, cp.CATAPULT, cp.CATAPULT, cp.DIVERGENT]) == (1.5, 3.5)
    assert cp.boundaries(grid, [cp.LAZY] * 4) == (np.inf, np.inf)


@pytest.mark.parametrize("y", [0.0, 1.5])
def test_uv_model_matches_closed_form_recursion_with_label(x64, y):
    # train.run on the uv model against the (r, lambda) recursion of the docstring
    from wideth import train

    m = 400
    params = jax.tree.map(lambda a: a.astype(jnp.float64), cp.uv_init(jax.random.key(1), m))
    lam0 = cp.uv_kernel(params)
    r0 = cp.uv_apply(params, jnp.ones((1, 1)))[0, 0] - y
    data = (jnp.ones((1, 1)), jnp.full((1, 1), y))
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)
    step = train.train_step(cp.uv_apply, "mse", tx, metrics=())
    probes = {"ntk": lambda s, b: cp.uv_kernel(s.params)}
    for c in (1.5, 3.0):
        eta = c / lam0
        state = train.with_hyperparams(train.TrainState.create(params, tx), learning_rate=eta)
        res = train.run(step, state, data, 60, probes=probes, every=1)
        rec = cp.uv_recursion(r0, lam0, eta, float(m), y, 60)
        np.testing.assert_allclose(res.metrics["loss"], rec["loss"][:-1], rtol=1e-7, atol=1e-20)
        np.testing.assert_allclose(res.probes["ntk"], rec["ntk"], rtol=1e-9)
    # the label matters: the y = 0 recursion does not describe a y = 1.5 run (and vice versa)
    wrong = cp.uv_recursion(r0, lam0, 3.0 / lam0, float(m), 1.5 - y, 60)
    assert not np.allclose(rec["ntk"], wrong["ntk"], rtol=1e-6)


@pytest.mark.parametrize("y", [0.0, 1.0])
def test_uv_thresholds_with_label(y):
    grid = np.arange(0.5, 5.01, 0.25)
    sw = cp.uv_runs(jax.random.key(0), 300, grid, y, steps=600, seeds=2)
    thr = np.array([cp.boundaries(grid, ph) for ph in sw["phase"]])
    assert cp.threshold_check("lazy", 2.0, thr[:, 0], 0.125, "test")["pass"]
    assert cp.threshold_check("div", 4.0, thr[:, 1], 0.125, "test")["pass"]
    # a wrong threshold fails on the same measurement
    assert not cp.threshold_check("div", 3.0, thr[:, 1], 0.125, "test")["pass"]
    assert not cp.threshold_check("lazy", 2.5, thr[:, 0], 0.125, "test")["pass"]
    # a run that converges at a fixed eta is linearly stable there: eta * lambda_final < 2
    # (Lewkowycz et al.'s "the kernel drops until eta*lambda < 2" holds by construction for
    # the runs classified as catapults, so it is tested here, not claimed by the experiment)
    cat = sw["phase"] == cp.CATAPULT
    assert cat.any() and float(np.max(sw["eta_lam_final"][cat])) < 2
    # lazy runs away from the edge keep their kernel: eta * lambda_final ~ eta * lambda_0
    lazy = (sw["phase"] == cp.LAZY) & (grid <= 1.5)
    np.testing.assert_allclose(
        sw["eta_lam_final"][lazy], np.broadcast_to(grid, lazy.shape)[lazy], rtol=0.03
    )


def test_threshold_check_fails_wrong_theory_and_bias():
    # eta_max*lambda0 per seed as measured on the depth-3 ReLU net: 12 passes, 4 (uv) fails
    est = np.array([12.55, 12.6, 12.45])
    kw = dict(extra=cp.PUBLISHED_DIGITS)
    assert cp.threshold_check("eta_max", 12.0, est, 0.0625, "t", **kw)["pass"]
    assert not cp.threshold_check("eta_max", 4.0, est, 0.0625, "t", **kw)["pass"]
    assert not cp.threshold_check("eta_max", 12.0, est + 1.5, 0.0625, "t", **kw)["pass"]
    # seed spread widens the tolerance: 3 SE
    c = cp.threshold_check("x", 2.0, np.array([1.0, 3.0]), 0.0, "t")
    assert c["tolerance"] == pytest.approx(3.0)


def test_lazy_below_check_fails():
    grid = np.array([1.0, 1.8, 2.2, 3.0])
    good = np.array([[cp.LAZY, cp.LAZY, cp.LAZY, cp.CATAPULT]] * 2)
    assert cp.lazy_below_check(grid, good)["pass"]
    # lambda0 too small by a factor (e.g. normalised by n * outputs): spikes below "2"
    early = np.array([[cp.LAZY, cp.CATAPULT, cp.CATAPULT, cp.CATAPULT]] * 2)
    assert not cp.lazy_below_check(grid, early)["pass"]
    assert not cp.lazy_below_check(grid[2:], good[:, 2:])["pass"]  # nothing below 2


def test_catapult_present_check_fails():
    phase = np.array([[cp.LAZY, cp.CATAPULT, cp.DIVERGENT], [cp.LAZY, cp.CATAPULT, cp.CATAPULT]])
    assert cp.catapult_present_check(phase, np.array([1.5, 1.5]))["pass"]
    phase[1] = [cp.LAZY, cp.LAZY, cp.DIVERGENT]  # seed 1 never lands a catapult
    assert not cp.catapult_present_check(phase, np.array([1.5, 1.5]))["pass"]


def test_generalisation_check_fails():
    grid = np.array([1.0, 3.0, 6.0])
    phase = np.array([[cp.LAZY, cp.CATAPULT, cp.CATAPULT]] * 3)
    better = np.array([[0.3, 0.5, 0.6], [0.32, 0.5, 0.62], [0.31, 0.52, 0.58]])
    assert cp.generalisation_check(grid, phase, better)["pass"]
    worse = better[:, ::-1]
    assert not cp.generalisation_check(grid, phase, worse)["pass"]
    noisy = np.array([[0.3, 0.35, 0.2], [0.32, 0.25, 0.2], [0.31, 0.4, 0.2]])
    assert not cp.generalisation_check(grid, phase, noisy)["pass"]  # within 3 SE
    assert not cp.generalisation_check(grid, np.full((3, 3), cp.CATAPULT), better)["pass"]


def test_bisect_finds_a_known_boundary():
    true = np.array([3.3, 5.1, 7.77])
    out = cp.bisect(lambda c: c < true, 2.0, 10.0, 8, 3)
    assert out["bracket_ok"].all()
    assert np.all(np.abs(out["estimate"] - true) <= out["resolution"])
    assert out["resolution"] == pytest.approx(8 / 2**9)
    assert not cp.bisect(lambda c: c < true, 4.0, 10.0, 2, 3)["bracket_ok"][0]


def test_uv_peak_slope_check_fails_for_m_squared():
    peaks = cp.uv_peak_vs_width(jax.random.key(2), [100, 1000, 10000], 3.0, 300, seeds=3)
    assert abs(peaks["slope"] - 1.0) <= max(3 * peaks["slope_se"], 0.1)
    assert abs(peaks["slope"] - 2.0) > 3 * peaks["slope_se"]


def test_seeds_in_groups_equal_seeds_at_once(monkeypatch):
    # mlp_program maps over groups of SEEDS_PER_BATCH seeds: memory changes, values do not
    setup = cp.mlp_setup(0, 3, 16, 32, 2)
    etas = jnp.array([[0.5, 2.0], [1.0, 4.0], [0.2, 3.0]], jnp.float32)
    runs = []
    for group in (1, 3):
        monkeypatch.setattr(cp, "SEEDS_PER_BATCH", group)
        prog = cp.mlp_program(setup["apply_fn"], setup["train"], 20, {}, None)
        runs.append(prog(setup["params"], etas, jax.random.key(0)))
    assert runs[0].state is None
    loss = np.asarray(runs[0].metrics["loss"])[..., -1]
    assert np.unique(loss.round(6)).size == loss.size  # every (seed, eta) its own run
    for a, b in zip(jax.tree.leaves(runs[0]), jax.tree.leaves(runs[1]), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_plan_full_mode_builds(tmp_path):
    cfg = Config(name="catapult", quick=False, seed=0, out=tmp_path, quiet=True)
    p = cp.plan(cfg)
    sz = p["sz"]
    assert (sz.depth, sz.width, sz.seeds) == (3, 2048, 8)
    leaves = jax.tree.leaves(p["params"])
    assert all(a.shape[0] == sz.seeds for a in leaves)
    etas = jnp.ones((sz.seeds, len(sz.grid)), jnp.float32)
    out = jax.eval_shape(p["programs"]["sweep"], p["params"], etas, p["key"])
    assert out.metrics["loss"].shape == (sz.seeds, len(sz.grid), sz.steps)
    assert out.probes["test_accuracy"].shape == (sz.seeds, len(sz.grid), 2)
    tr = jax.eval_shape(p["programs"]["trajectory"], p["params"], etas[:, :3], p["key"])
    assert tr.probes["ntk"].shape[-1] == sz.traj_steps // sz.traj_every + 1
    with pytest.raises(ValueError, match="unknown sizes"):
        cp.plan(dataclasses.replace(cfg, quick=True), nope=1)


@pytest.mark.slow
def test_main_quick_smoke(tmp_path):
    res = cp.main(["--quick", "--quiet", "--out", str(tmp_path)])
    assert (tmp_path / "metrics.json").exists()
    assert all(c["pass"] for c in res.checks), [c for c in res.checks if not c["pass"]]
    assert {Path(f).name for f in res.figures} == {"uv_model.png", "mlp_phases.png"}
    mlp = res.metrics["mlp"]
    # the uv model's eta_max = 4/lambda0 fails for the deep ReLU net
    wrong = cp.threshold_check(
        "eta_max",
        4.0,
        mlp["eta_max_lam0"],
        mlp["bisection_resolution"],
        "t",
        extra=cp.PUBLISHED_DIGITS,
    )
    assert not wrong["pass"]
    # and the uv thresholds do not pass at a shifted theory
    uv = res.metrics["uv"]["y=1"]
    assert not cp.threshold_check("u", 3.5, uv["catapult_to_divergent"], 0.05, "t")["pass"]
