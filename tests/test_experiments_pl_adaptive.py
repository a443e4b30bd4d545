"""experiments.pl_adaptive: each check can fail, the full plan builds, the runner = fit."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import pl_adaptive as exp
from experiments.common import Config

# ------------------------------------------------------------------ checks can fail


def _accs(shift: float, se: float = 0.004, seeds: int = 5, base: float = 0.95):
    """Synthetic per-seed accuracies: b, and a = b + shift with paired SE ``se``."""
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(seeds)
    noise = (noise - noise.mean()) / noise.std(ddof=1)  # sd exactly 1
    b = base + 0.01 * rng.standard_normal(seeds)
    return b + shift + se * np.sqrt(seeds) * noise, b


def _by_name(checks, fragment):
    (c,) = [c for c in checks if fragment in c["name"]]
    return c


def test_on_par_fails_when_adler_is_worse_by_5_se():
    se = 0.004
    a, b = _accs(-5 * se, se)
    checks, row = exp.accuracy_checks("t", a, b, b - 0.1, n_test=10**6, harder=True)
    assert not _by_name(checks, "on par")["pass"] and not row["on_par"]
    np.testing.assert_allclose(row["adler_minus_sgd"]["se"], se, rtol=1e-9)
    a, b = _accs(0.0, se)
    checks, row = exp.accuracy_checks("t", a, b, b - 0.1, n_test=10**6, harder=True)
    assert _by_name(checks, "on par")["pass"]
    assert not _by_name(checks, "better than best")["pass"]  # equal is not better


def test_better_than_sgd_passes_only_when_the_interval_excludes_zero():
    se = 0.004
    a, b = _accs(10 * se, se)
    checks, _ = exp.accuracy_checks("t", a, b, b, n_test=10**6, harder=True)
    assert _by_name(checks, "better than best")["pass"]
    # t_{0.975,4} = 2.78: a 2-SE lead is inside the interval
    a, b = _accs(2 * se, se)
    checks, _ = exp.accuracy_checks("t", a, b, b, n_test=10**6, harder=True)
    assert not _by_name(checks, "better than best")["pass"]
    # the easier task has no "better" check
    checks, row = exp.accuracy_checks("t", a, b, b, n_test=10**6, harder=False)
    assert not [c for c in checks if "better than best" in c["name"]] and not row["checked_better"]


def test_better_than_gn_fails_when_gn_is_as_good():
    a, b = _accs(0.0)
    checks, row = exp.accuracy_checks("t", a, a, b, n_test=10**6, harder=False)
    assert not _by_name(checks, "than GN")["pass"] and not row["better_than_gn"]
    checks, _ = exp.accuracy_checks("t", a, a, a - 0.2, n_test=10**6, harder=False)
    assert _by_name(checks, "than GN")["pass"]


def test_resolution_of_one_test_example_widens_the_interval():
    a = np.full(3, 0.90)
    b = np.full(3, 0.90 + 0.5 / 100)  # half an example worse, zero spread
    assert exp.accuracy_checks("t", a, b, b, n_test=100, harder=False)[1]["on_par"]
    b = np.full(3, 0.90 + 2.0 / 100)
    assert not exp.accuracy_checks("t", a, b, b, n_test=100, harder=False)[1]["on_par"]


def test_loss_check_fails_above_one_percent_and_on_divergence():
    sgd = np.array([0.10, 0.12, 0.11])
    assert exp.loss_check("t", sgd * 1.005, sgd, 0.1)["pass"]
    assert not exp.loss_check("t", sgd * 1.05, sgd, 0.1)["pass"]
    assert not exp.loss_check("t", np.array([0.1, np.nan, 0.1]), sgd, 0.1)["pass"]


def test_peers_check_needs_half_the_tasks():
    assert exp.peers_check(2, 3, ["dog"])["pass"]
    assert not exp.peers_check(1, 3, ["dog"])["pass"]


def test_paired_interval_matches_student_t():
    d = np.array([0.01, 0.03, 0.02])
    out = exp.paired(d, np.zeros(3))
    np.testing.assert_allclose(out["half"], 4.302652729911275 * np.std(d, ddof=1) / np.sqrt(3))
    with pytest.raises(ValueError, match="2 seeds"):
        exp.paired([1.0], [0.0])


# ------------------------------------------------------------------ plan


@pytest.mark.slow
def test_plan_builds_the_full_configuration():
    p = exp.plan(Config("pl_adaptive", quick=False, seed=0, out=None, quiet=True))
    sz = p["sz"]
    assert vars(sz) == exp.SIZES.full
    assert len(p["tasks"]) == 2 * 6 and p["keys"].shape == (sz.seeds,)
    names = [t.name for t in p["tasks"]]
    assert "mnist5k/convres_sigmoid" in names and "digits/mlp_tanh" in names
    for t in (p["tasks"][0], p["tasks"][-1]):
        x = t.data[0][:2]
        out = jax.vmap(t.apply_fn, in_axes=(0, None))(t.params, x)
        assert out.shape == (sz.seeds, 2, 10) and bool(jnp.all(jnp.isfinite(out)))
    lrs = p["lrs"]
    np.testing.assert_allclose(lrs["thesis"][[0, -1]], [1e-5, 0.3], rtol=1e-12)
    np.testing.assert_allclose(lrs["loss"][[0, -1]], [1e-3, 10.0], rtol=1e-12)


# ------------------------------------------------------------------ runner = fit


def _small_task():
    from flax import nnx

    from wideth import models

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((64, 5)), jnp.float32)
    y = jax.nn.one_hot(jnp.asarray(rng.integers(0, 3, 64)), 3)
    net = models.MLP(5, 16, 1, 3, parameterization="standard", rngs=nnx.Rngs(0))
    apply_fn, params = models.functional(net)
    return apply_fn, params, (x, y, x[:8], y[:8])


@pytest.mark.slow
def test_experiment_runner_matches_fit_and_vmaps_over_grid():
    """The experiment's runner (train.run) = wideth.train.fit on the same batches."""
    from wideth.optim import pl_adaptive
    from wideth.train import fit, probes, xent

    apply_fn, params, data = _small_task()
    x, y = data[:2]
    key = jax.random.key(3)
    for tx, eta in ((optax.sgd(0.3), None), (pl_adaptive(), probes.eta_hat())):
        one = exp.runner(apply_fn, tx, 20, 10, 16, eta)
        ours = jax.jit(one)(params, key, data)
        ref = fit(
            apply_fn,
            params,
            tx,
            (x, y),
            "xent",
            steps=20,
            batch_size=16,
            key=key,
            log_every=10,
            quiet=True,
        )
        np.testing.assert_allclose(
            ours["final"]["train_loss"], xent(apply_fn(ref.params, x), y), rtol=1e-4
        )
        np.testing.assert_allclose(ours["probes"]["train_loss"][-1], ours["final"]["train_loss"])
    # seeds x grid: entry (s, i) = the single run at (params_s, key_s, lr_i)
    sgd = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)
    one = exp.runner(apply_fn, sgd, 20, 10, 16)
    stacked = jax.tree.map(lambda a: jnp.stack([a, 1.1 * a]), params)
    keys = jnp.stack([key, jax.random.key(4)])
    for mode in ("vmap", "map"):
        grid = exp.sweep(one, stacked, keys, data, jnp.array([0.1, 0.3]), mode)
        single = exp.runner(apply_fn, optax.sgd(0.3), 20, 10, 16)(
            jax.tree.map(lambda a: a[1], stacked), keys[1], data
        )
        assert grid["loss"].shape == (2, 2, 20)
        np.testing.assert_allclose(grid["loss"][1, 1], single["loss"], rtol=1e-5)


# ------------------------------------------------------------------ smoke


@pytest.mark.slow
def test_main_quick_smoke(tmp_path):
    """Quick run at seed 0. The thesis's "on par with the best of the thesis SGD grid"
    statements must pass. "Better than GN" must hold in direction (mean paired
    difference > 0) on every task; its significance at 3 seeds (t_0.975,2 = 4.30) is
    marginal on some machines (digits/mlp_tanh measured 0.096 against a half-width of
    0.118 on one, above it on another), so its pass is reported, not asserted. The project's
    train-loss target (<= 1.01 x best SGD on 1e-3..10) and the peers claim are honest
    FAILs of the method in quick mode (ADLER's conservative, lagging step), so they are
    not asserted to pass; what is asserted for them is that the failure is not a fault
    of the set-up: ADLER trained (finite final loss, >= 10x below the initial loss) and
    reached a finite loss ratio against the tuned SGD."""
    import json

    res = exp.main(["--quick", "--quiet", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert len(saved["checks"]) == len(res.checks)
    assert {c["kind"] for c in res.checks} == {"claim"}
    assert all("SE" in c["note"] for c in res.checks if "Table 7.1" in c.get("note", ""))
    thesis = [c for c in res.checks if "test accuracy" in c["name"]]
    assert len(thesis) == 2 * 3  # on par + better than GN, 3 tasks (no harder task)
    on_par = [c for c in thesis if "on par" in c["name"]]
    better_gn = [c for c in thesis if "better than GN" in c["name"]]
    assert len(on_par) == len(better_gn) == 3
    assert all(c["pass"] for c in on_par), [c for c in on_par if not c["pass"]]
    assert all(c["measured"] > 0 for c in better_gn), better_gn
    for c in better_gn:  # the pass is exactly the stated significance rule
        assert c["pass"] == bool(c["measured"] > c["tolerance"]), c
    table = res.metrics["table_7_1"]
    for tn, row in table.items():
        traces = res.metrics["traces"][tn]["adler_train_loss"]
        assert np.all(np.isfinite(traces)), tn
        assert np.all(traces[:, -1] < 0.1 * traces[:, 0]), tn
    for tn, tr in res.metrics["traces"].items():  # the variants' applied steps are kept
        for v in exp.VARIANT_NAMES:
            step = np.asarray(tr[f"{v}_step"])
            assert step.shape == np.asarray(tr["adler_eta_hat"]).shape, (tn, v)
            later = step[:, 1:]  # probe 0 is before the first step (0 or NaN)
            assert np.all(later[np.isfinite(later)] > 0), (tn, v)
    for c in res.checks:
        if "final train loss <=" in c["name"]:
            assert np.isfinite(c["measured"]) and c["measured"] > 0
    assert {f for f in res.figures} == {"loss_curves.png", "grids_and_accuracy.png", "eta_hat.png"}


def test_promotion_rule_fails_on_loss_accuracy_and_compute():
    """A variant is promoted only if every criterion holds: 1.3x the best SGD loss on one
    task, 0.6 points of accuracy lost, or 3 gradients per step (0.3 of the grid) each fail."""
    from types import SimpleNamespace

    tasks = [SimpleNamespace(name="a"), SimpleNamespace(name="b")]

    def summary(ratio_b=1.1, acc_b=0.900):
        best = {"best_final_loss_seeds": np.full(3, 0.1), "best_test_acc_seeds": np.full(3, 0.9)}
        out = {}
        for tn, ratio, acc in (("a", 1.0, 0.9), ("b", ratio_b, acc_b)):
            out[tn] = {
                "loss_grid": best,
                "safeguarded": {"final_loss_geo": 0.1 * ratio, "test_acc_seeds": np.full(3, acc)},
                "gn_momentum": {"final_loss_geo": 0.1 * ratio, "test_acc_seeds": np.full(3, acc)},
                "prodigy": {"final_loss_geo": 1.0},
            }
        return out

    assert exp.promotion_report("safeguarded", summary(), tasks, ("prodigy",))["promote"]
    assert not exp.promotion_report("safeguarded", summary(1.3), tasks, ("prodigy",))["promote"]
    rep = exp.promotion_report("safeguarded", summary(acc_b=0.894), tasks, ("prodigy",))
    assert not rep["promote"] and rep["tasks"]["b"]["acc_diff_points"] == pytest.approx(-0.6)
    gnm = exp.promotion_report("gn_momentum", summary(), tasks, ("prodigy",))
    assert gnm["compute_fraction"] == pytest.approx(0.3) and not gnm["promote"]
    assert gnm["rosenbrock_converged"]
