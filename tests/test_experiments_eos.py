"""Edge-of-stability experiment: the GD/sharpness sweep and its checks on small problems."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import edge_of_stability as eos


def _quadratic(h):
    # mse of the linear model x @ p with X^T X / n = diag(h): the Hessian is diag(h)
    n = len(h)
    x = jnp.sqrt(n) * jnp.diag(jnp.sqrt(h))
    return (lambda p, xb: xb @ p), (x, jnp.zeros((n, 1)))


def test_gd_runs_on_a_quadratic_match_the_closed_form():
    h = jnp.array([0.5, 2.0, 4.0, 1.0])
    apply_fn, batch = _quadratic(h)
    etas, steps = [0.1, 0.3], 20
    res = eos.gd_runs(
        apply_fn, jnp.ones((4, 1)), batch, etas, steps, 10, jax.random.key(0), num_lanczos=4
    )
    np.testing.assert_allclose(res.probes["sharpness"], 4.0, rtol=1e-4)
    np.testing.assert_array_equal(res.probe_steps[0], [0, 10, 20])
    t = np.arange(steps)[:, None]
    for i, eta in enumerate(etas):
        want = 0.5 * np.sum(np.asarray(h) * (1 - eta * np.asarray(h)) ** (2 * t), axis=1)
        np.testing.assert_allclose(res.metrics["loss"][i], want, rtol=1e-4)


def test_divergent_step_stops_and_marks_later_probes_nan():
    h = jnp.array([10.0, 1.0, 1.0])
    apply_fn, batch = _quadratic(h)
    res = eos.gd_runs(
        apply_fn, jnp.ones((3, 1)), batch, [0.05, 1.0], 400, 50, jax.random.key(0), num_lanczos=3
    )
    assert not bool(res.stopped[0]) and bool(res.stopped[1])
    assert 0 < int(res.bad_step[1]) < 400
    assert np.isnan(np.asarray(res.probes["sharpness"][1, -1]))
    assert np.all(np.isfinite(np.asarray(res.probes["sharpness"][0])))


@pytest.mark.slow
def test_tiny_mlp_reaches_and_hovers_at_edge_and_checks_can_fail():
    apply_fn, params, batch = eos.setup(seed=0, n=100, width=32)
    from wideth import hessian, train

    loss = lambda p, b: train.mse(apply_fn(p, b[0]), b[1])
    key = jax.random.key(0)
    lam0 = float(hessian.sharpness(hessian.hessian(loss, params, batch), num_steps=30, key=key))
    eta = 2 / (2 * lam0)
    res = eos.gd_runs(apply_fn, params, batch, [eta], 600, 20, key, num_lanczos=15)
    sharp, losses = res.probes["sharpness"][0], res.metrics["loss"][0]
    s = eos.summary(sharp, losses, eta)
    checks = eos.eos_checks(s, 2.0)
    assert all(c["pass"] for c in checks), checks
    assert s["tail_se_over_edge"] < 0.05
    # The same run claimed for a step twice as large (edge 1/eta) fails the hover check,
    # and claiming a 4x sharpening when it grew ~2x fails the sharpening check.
    wrong = eos.eos_checks(eos.summary(sharp, losses, 2 * eta), 4.0)
    assert not wrong[0]["pass"] and not wrong[1]["pass"]


def test_cross_entropy_checks_pass_on_hovering_and_fail_without_it():
    eta = 0.5
    t = np.arange(60)
    edge = 2 / eta
    # Sharpens to the edge and hovers there with a few spikes: every check passes.
    hover = edge * np.minimum(0.3 + t / 10, 1.0) * np.where(t % 9 == 0, 3.0, 1.0)
    loss = np.linspace(2.3, 0.1, 2000)
    s = eos.xent_summary(hover, loss, eta)
    assert all(c["pass"] for c in eos.xent_checks(s, 3.0))
    # Overshooting to 1.6 x 2/eta and staying there fails the hovering band (2 SE = 0.16).
    over = eos.xent_checks(eos.xent_summary(1.6 * hover, loss, eta), 3.0)
    assert over[0]["pass"] and not over[1]["pass"]
    # Sharpness collapsing from the start (the MSE network's cross-entropy run) fails both.
    collapse = eos.xent_checks(eos.xent_summary(edge * 0.5 * np.exp(-t / 5), loss, eta), 3.0)
    assert not collapse[0]["pass"] and not collapse[1]["pass"]


def test_cross_entropy_networks_combine_with_the_spread_across_them():
    eta, t = 0.5, np.arange(60)
    edge = 2 / eta
    loss = np.linspace(2.3, 0.1, 2000)
    ramp = np.minimum(0.3 + t / 10, 1.0)
    nets = [eos.xent_summary(edge * ramp * h, loss, eta) for h in (0.95, 1.0, 1.1)]
    c = eos.xent_combine(nets)
    hov = np.array([n["hover_median_over_edge"] for n in nets])
    assert c["seeds"] == 3 and c["hover_median_over_edge"] == pytest.approx(hov.mean())
    assert c["hover_se_over_edge"] == pytest.approx(hov.std(ddof=1) / np.sqrt(3))
    assert all(x["pass"] for x in eos.xent_checks(c, 3.0))
    # one network that never reaches the edge fails "reaches" for all of them
    flat = eos.xent_summary(edge * 0.5 * np.ones(60), loss, eta)
    assert not eos.xent_checks(eos.xent_combine([*nets, flat]), 3.0)[0]["pass"]
    # one network whose loss does not fall fails "loss keeps decreasing"
    stuck = eos.xent_summary(edge * ramp, np.full(2000, 2.3), eta)
    assert not eos.xent_checks(eos.xent_combine([*nets, stuck]), 3.0)[2]["pass"]
    # one network: its own series' SE
    assert eos.xent_combine(nets[:1])["hover_se_over_edge"] == nets[0]["hover_se_over_edge"]


def test_cross_entropy_runs_cover_the_same_time_eta_t():
    steps = eos.xent_steps(2000, (3.0, 6.0, 12.0), 50)
    assert steps == [2000, 4000, 8000]  # eta_i * steps_i is the same for eta = 2/(a lambda_0)
    with pytest.raises(ValueError, match=r"^xent_steps: expected steps x a/min\(a\)"):
        eos.xent_steps(2000, (3.0, 4.0), 50)  # 2666.7 steps


def test_median_se_by_batch_medians():
    rng = np.random.default_rng(0)
    # Independent draws: the batch-median SE estimates the median's SE
    # (sqrt(pi/2) sigma / sqrt(n) for a normal sample) within its own scatter.
    draws = rng.normal(size=(400, 200))
    se = np.array([eos.median_se(d) for d in draws])
    true = np.median(draws, axis=1).std()
    assert abs(np.mean(se) / true - 1) < 0.15
    assert eos.median_se(np.ones(50)) == 0.0 and eos.median_se(np.arange(6.0)) == 0.0
    # A noisy hover just above the band passes only through its SE; a quiet one fails.
    eta, t = 0.5, np.arange(200)
    loss = np.linspace(2.3, 0.1, 2000)
    noisy = 4 * np.where(t < 5, 0.5, 1.12 + 0.3 * np.sin(t / 40.0))  # median 1.33, SE 0.046
    quiet = 4 * np.where(t < 5, 0.5, 1.33 + 0.001 * np.sin(t / 4.0))
    assert eos.xent_checks(eos.xent_summary(noisy, loss, eta), 3.0)[1]["pass"]
    assert not eos.xent_checks(eos.xent_summary(quiet, loss, eta), 3.0)[1]["pass"]


def test_label_noise_resamples_the_stated_fraction():
    _, _, (x, y) = eos.setup(seed=0, n=1000, label_noise=0.3)
    _, _, (_, y0) = eos.setup(seed=0, n=1000)
    changed = float(np.mean(np.argmax(y, 1) != np.argmax(y0, 1)))
    assert abs(changed - 0.3 * 0.9) < 0.05  # a resampled label keeps its class 1 time in 10


@pytest.mark.slow
def test_plan_builds_the_full_configuration():
    from experiments.common import Config

    p = eos.plan(Config("edge_of_stability", quick=False, seed=0, out=None, quiet=True))
    assert p["sz"].n == 1000 and len(p["etas"]) == 4
    assert p["flow_steps"] % p["sz"].every == 0 and p["eta_flow"] < min(p["etas"])
    assert len(p["xent"]["etas"]) == 3 and p["sz"].xent_steps % eos.XENT["every"] == 0


@pytest.mark.slow
def test_main_quick_smoke(tmp_path):
    res = eos.main(["--quick", "--quiet", "--out", str(tmp_path)])
    assert (tmp_path / "metrics.json").exists()
    assert all(c["pass"] for c in res.checks), [c for c in res.checks if not c["pass"]]


def test_late_decline_check_passes_on_a_decline_and_fails_without_it():
    eta, t = 0.5, np.arange(180)
    loss = np.linspace(2.3, 0.01, 9000)
    ramp = np.minimum(0.3 + t / 10, 1.0)
    wiggle = 1 + 0.05 * np.sin(t)
    declining = 4 * ramp * wiggle * np.where(t > 140, 0.6, 1.0)
    flat = 4 * ramp * wiggle
    ok = eos.xent_checks(eos.xent_summary(declining, loss, eta), 3.0, late=True)
    assert len(ok) == 4 and all(c["pass"] for c in ok), ok
    bad = eos.xent_checks(eos.xent_summary(flat, loss, eta), 3.0, late=True)
    assert not bad[3]["pass"] and all(c["pass"] for c in bad[:3])
    assert len(eos.xent_checks(eos.xent_summary(flat, loss, eta), 3.0)) == 3  # quick mode


def test_flow_check_needs_sharpening_past_the_highest_edge():
    """Gradient flow must pass 1.2 x 2/min(eta); a capped or diverged series fails."""
    etas = [0.5, 1.0]  # highest GD edge 2 / 0.5 = 4
    rising = np.linspace(1.0, 6.0, 50)
    assert eos.flow_check(rising, etas)["pass"]
    assert eos.flow_check(rising, etas)["measured"] == pytest.approx(1.5)
    assert not eos.flow_check(np.linspace(1.0, 4.4, 50), etas)["pass"]  # 1.1 x edge
    assert not eos.flow_check(np.full(50, np.nan), etas)["pass"]


def test_combine_over_networks_mean_se_and_worst_case():
    """The hover statistic is the mean over networks with the SE across them; sharpening
    and loss progress must hold on every network, so one bad network fails them."""
    base = {"tail_se_over_edge": 0.01, "finished": True, "loss_first": 1.0}
    per = [
        {**base, "tail_mean_over_edge": t, "growth": g, "loss_last": ll}
        for t, g, ll in ((1.0, 2.5, 0.1), (1.04, 2.2, 0.2), (1.02, 2.4, 0.05))
    ]
    c = eos.combine(per)
    assert c["tail_mean_over_edge"] == pytest.approx(1.02)
    assert c["tail_se_over_edge"] == pytest.approx(np.std([1.0, 1.04, 1.02], ddof=1) / 3**0.5)
    assert c["growth"] == 2.2 and c["loss_last"] == 0.2 and c["seeds"] == 3
    assert all(ch["pass"] for ch in eos.eos_checks(c, 2.0))
    # one network that did not sharpen enough (growth 1.5 < 0.9 x 2) fails that check
    bad = eos.combine([*per[:2], {**per[2], "growth": 1.5}])
    assert not eos.eos_checks(bad, 2.0)[1]["pass"]
    # one network whose loss did not halve fails the progress check
    stuck = eos.combine([*per[:2], {**per[2], "loss_last": 0.7}])
    assert not eos.eos_checks(stuck, 2.0)[2]["pass"]
    # a single network keeps its own (time-block) SE
    assert eos.combine(per[:1])["tail_se_over_edge"] == 0.01
