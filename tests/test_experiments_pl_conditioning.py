"""PL / conditioning experiment: every check passes on real runs and fails on a wrong parameter."""

import types

import jax.numpy as jnp
import numpy as np
import pytest

from experiments import pl_conditioning as plc
from experiments.common import Config
from wideth.diagnostics import conditioning as cd


@pytest.fixture(scope="module")
def tr():
    sz = types.SimpleNamespace(**plc.SIZES.quick)
    sz.train_n, sz.train_width, sz.train_depth, sz.train_steps = 16, 64, 1, 60
    return plc.training_part(sz, 0)


@pytest.mark.slow
def test_training_checks_pass_with_the_right_constants(tr):
    checks = (
        plc.sandwich_checks(tr, tr["mu_ell"], tr["beta_ell"])
        + plc.product_checks(tr, tr["smoothness"])
        + [plc.output_hessian_check(tr, tr["beta_ell"])]
        + plc.gershgorin_checks(tr)
    )
    assert all(c["pass"] for c in checks), [c for c in checks if not c["pass"]]
    assert tr["mu_ell"] == 1 / 16 and tr["loss"][-1] < tr["loss"][0]


def test_wrong_constants_are_caught(tr):
    # Constants of the summed loss 1/2 |F - y|^2 applied to the mean loss.
    lower, _ = plc.sandwich_checks(tr, 1.0, 1.0)
    assert not lower["pass"]
    _, upper = plc.sandwich_checks(tr, 1 / 16, 1 / 16**2)
    assert not upper["pass"]
    lemma, hypothesis = plc.product_checks(tr, tr["smoothness"] / 2)
    assert not lemma["pass"] and not hypothesis["pass"]
    assert not plc.output_hessian_check(tr, 1 / 32)["pass"]
    assert not plc.gershgorin_checks(tr, lam_max=2 * tr["lam_max"])[0]["pass"]


def test_finite_width_kappa_matches_theory_and_a_wrong_weight_variance_fails():
    w = cd.normalised_weight_variance("erf")
    x, _ = plc.sphere_digits(8, 0, w)
    u = np.asarray(x, np.float64)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    inf = plc.infinite_width(jnp.asarray(u @ u.T, jnp.float32), "erf", (1, 3))
    for w_var, ok in ((w, True), (1.0, False)):  # 1.0: erf not normalised to unit variance
        fw = plc.finite_width(x, "erf", (1, 3), 128, 4, w_var)
        row = dict(inf, finite=fw, width=128, seeds=4, analytic_error=[0.0, 0.0])
        assert plc.depth_checks([row])[1]["pass"] is ok


def _row(act, kappa_nngp, finite_nngp, kappa_ntk=(300.0, 40.0), finite_ntk=((310, 8), (42, 2))):
    return dict(
        activation=act,
        depths=[1, 6],
        kappa_ntk=list(kappa_ntk),
        kappa_nngp=list(kappa_nngp),
        finite={"ntk": list(finite_ntk), "nngp": list(finite_nngp)},
        analytic_error=[1e-6, 1e-6],
        width=512,
        seeds=6,
    )


def test_depth_claims_fail_on_the_other_activation_s_curve():
    erf = _row("erf", (567.0, 137.0), ((612, 18), (153, 18)))
    relu = _row("relu", (760.0, 892.0), ((888, 16), (1124, 93)))
    assert all(c["pass"] for c in plc.depth_checks([erf, relu]))
    # The ReLU NNGP curve labelled as a zero-mean activation: "falls" is refuted.
    swapped = dict(relu, activation="erf")
    assert not plc.falls_check(swapped, "nngp")["pass"]
    # The erf curve labelled non-centred: "does not fall" is refuted.
    assert not plc.flat_check(dict(erf, activation="relu"), "nngp")["pass"]
    bad = dict(erf, analytic_error=[0.05, 0.0])
    assert not plc.depth_checks([bad])[0]["pass"]


def test_plan_builds_the_full_configuration():
    p = plc.plan(Config("pl_conditioning", quick=False, seed=0, out=None, quiet=True))
    assert set(p["curves"]) == {"erf", "tanh", "relu"} and len(p["sz"].depths) == 5
    erf = p["curves"]["erf"]
    assert all(a > b for a, b in zip(erf, erf[1:]))  # the infinite-width prediction falls


@pytest.mark.slow
def test_main_quick_smoke(tmp_path):
    res = plc.main(["--quick", "--quiet", "--out", str(tmp_path)])
    assert all(c["pass"] for c in res.checks), [c for c in res.checks if not c["pass"]]
    assert (tmp_path / "pl_conditioning.png").exists()
