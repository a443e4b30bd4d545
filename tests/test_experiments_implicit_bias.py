"""Implicit-bias experiment: diagonal nets, logistic max-margin, spectral bias; checks can fail."""

import jax
import numpy as np
import pytest

from experiments import implicit_bias as ib

# ------------------------------------------------------------------ diagonal networks


def test_diagonal_net_distance_ordering_and_checks_fail_when_gd_stops_early():
    alphas = np.array([1e-2, 3.0])
    sw = ib.diagonal_sweep(jax.random.key(0), n=20, d=50, k=3, alphas=alphas, steps=100_000)
    # the sparse truth is the min-l1 interpolator here (compressed sensing regime)
    assert sw["l1_recovers_truth"] < 1e-6
    assert np.all(sw["residual"] < 1e-3)
    small, large = 0, 1
    # rich regime: much closer to the min-l1 than to the min-l2 interpolator; kernel regime: l2
    assert sw["dist_l1"][small] < 0.25 * sw["dist_l2"][small]
    assert sw["dist_l2"][large] < 0.01 < 0.5 < sw["dist_l1"][large]
    # GD lands on the Q_alpha minimiser computed independently from the convex dual
    assert all(c["pass"] for c in ib.diagonal_checks(sw))
    early = ib.diagonal_sweep(jax.random.key(0), n=20, d=50, k=3, alphas=alphas, steps=300)
    assert not ib.diagonal_checks(early)[0]["pass"]


def test_min_l1_interpolator_is_feasible_and_minimal():
    X, y, _ = ib.sparse_regression(jax.random.key(1), 10, 30, 2)
    w1, w2 = ib.min_l1_interpolator(X, y), ib.min_l2_interpolator(X, y)
    np.testing.assert_allclose(X @ w1, y, atol=1e-8)
    np.testing.assert_allclose(X @ w2, y, atol=1e-8)
    assert np.abs(w1).sum() <= np.abs(w2).sum() + 1e-9
    assert np.linalg.norm(w2) <= np.linalg.norm(w1) + 1e-9


# ------------------------------------------------------------------ logistic regression


def test_svm_equals_primal_qp_and_the_gap_leaves_it_unchanged():
    from scipy.optimize import minimize

    X, y, draws = ib.separable_data(jax.random.key(3), 20, 2, margin=0.3, gap=None)
    s = ib.hard_margin_svm(X, y)
    Z = y[:, None] * X
    qp = minimize(
        lambda w: 0.5 * w @ w,
        np.zeros(2),
        jac=lambda w: w,
        constraints=[{"type": "ineq", "fun": lambda w: Z @ w - 1, "jac": lambda w: Z}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    np.testing.assert_allclose(s["w"], qp.x, rtol=1e-5)  # SVC on symmetrised data = QP
    assert abs(s["intercept"]) < 1e-6 and len(s["support"]) == 2 and draws >= 1
    np.testing.assert_allclose(s["margins"][s["support"]], 1.0, atol=1e-9)
    assert np.all(s["alpha"] > 0)
    np.testing.assert_allclose(Z[s["support"]].T @ s["alpha"], s["w"], atol=1e-9)
    # moving the non-support points out to margin >= 2 keeps the SVM
    Xg, yg, _ = ib.separable_data(jax.random.key(3), 20, 2, margin=0.3, gap=2.0)
    sg = ib.hard_margin_svm(Xg, yg)
    np.testing.assert_allclose(sg["w"], s["w"], rtol=1e-6)
    others = np.delete(sg["margins"], sg["support"])
    assert others.min() >= 2.0 - 1e-9


def test_logistic_gd_first_step_and_decade_chaining():
    X, y, _ = ib.separable_data(jax.random.key(4), 10, 2, gap=2.0)
    eta = ib.logistic_step(X, y)
    t, W = ib.logistic_gd(X[None], y[None], np.array([eta]), 2)
    np.testing.assert_array_equal(t[:3], [0, 1, 2])
    assert t[-1] == 100 and np.all(np.diff(t) > 0)
    Z = y[:, None] * X
    np.testing.assert_allclose(W[0, 1], eta * Z.mean(0) / 2, rtol=1e-10)  # sigma(0) = 1/2


def _synthetic(w_hat, w_tilde, t, angle=None):
    """w(t) = w^ log t + w~ exactly, or with the angle to w^ replaced by ``angle``."""
    L = np.log(t)
    W = np.outer(L, w_hat) + w_tilde
    if angle is not None:
        r = np.linalg.norm(W, axis=1)
        u = w_hat / np.linalg.norm(w_hat)
        v = np.array([-u[1], u[0]])
        W = r[:, None] * (np.cos(angle)[:, None] * u + np.sin(angle)[:, None] * v)
    return W


def _logistic_result(sets, t):
    return {"t": t, "sets": sets, "margin": np.array([0.5]), "gap": 2.0}


def test_logistic_checks_pass_on_the_asymptotic_form_and_fail_on_wrong_inputs():
    t = np.unique(np.round(np.logspace(0, 6, 200)))
    rng = np.random.default_rng(0)
    truth, wrong_slope, power_t, power_log = [], [], [], []
    for _ in range(4):
        w_hat = rng.normal(size=2) * 2
        w_tilde = rng.normal(size=2) * 3
        W = _synthetic(w_hat, w_tilde, t)
        truth.append(ib.logistic_summary(t, W, w_hat, w_tilde))
        # a log t coefficient of 1.1 w^ (a wrong constant)
        wrong_slope.append(
            ib.logistic_summary(t, _synthetic(1.1 * w_hat, w_tilde, t), w_hat, w_tilde)
        )
        # angle ~ t^(-1/2) and ~ (log t)^(-0.58), same norm
        a0 = float(truth[-1]["angle"][-1])
        ang_t = a0 * (t / t[-1]) ** -0.5
        ang_l = a0 * (np.log(np.maximum(t, 2)) / np.log(t[-1])) ** -0.58
        power_t.append(ib.logistic_summary(t, _synthetic(w_hat, w_tilde, t, ang_t), w_hat, w_tilde))
        power_log.append(
            ib.logistic_summary(t, _synthetic(w_hat, w_tilde, t, ang_l), w_hat, w_tilde)
        )
    ok = ib.logistic_checks(_logistic_result(truth, t))
    assert all(c["pass"] for c in ok), ok
    bad = ib.logistic_checks(_logistic_result(wrong_slope, t))
    assert not bad[0]["pass"] and not bad[1]["pass"]
    bad = ib.logistic_checks(_logistic_result(power_t, t))
    assert not bad[2]["pass"]  # t^-p is not a/(log t + b)
    bad = ib.logistic_checks(_logistic_result(power_log, t))
    assert not bad[3]["pass"]  # (log t)^-0.58 is not the predicted a/(log t + b)


def test_real_gd_residual_converges_to_predicted_offset():
    X, y, _ = ib.separable_data(jax.random.key(5), 10, 2, gap=2.0, min_kappa=0.75)
    eta = ib.logistic_step(X, y)
    s = ib.svm_offset(X, y, eta)
    t, W = ib.logistic_gd(X[None], y[None], np.array([eta]), 5)
    err = [
        ib.logistic_summary(
            t[: np.searchsorted(t, T) + 1], W[0, : np.searchsorted(t, T) + 1], s["w"], s["w_tilde"]
        )["rho_err"]
        for T in (1e3, 1e4, 1e5)
    ]
    assert err[2] < err[1] < err[0] and err[2] < 0.01, err


# ------------------------------------------------------------------ spectral bias


def test_circulant_eigenvalues_match_eigvalsh():
    th, _ = ib.circle(16)
    row = np.exp(np.cos(th))  # a positive-definite dot-product kernel on the circle
    K = np.array([np.roll(row, i) for i in range(16)])
    ev = ib.circulant_eigenvalues(K)
    np.testing.assert_allclose(np.sort(ev), np.linalg.eigvalsh(K / 16), atol=1e-12)


def test_crossing_time_of_exponential():
    t = np.arange(50)
    assert abs(ib.crossing_time(np.exp(-t / 7.3)) - 7.3) < 1e-9


def test_kernel_prediction_is_the_eigenmode_decay():
    setup = ib.spectral_setup(32)
    t = np.arange(0, 30, 3)
    lam = setup["eigenvalues"][setup["freqs"]]
    want = np.abs(1 - setup["eta"] * lam)[None] ** t[:, None]
    # float32 eigh: a relative eigenvalue error ~1e-7 grows as t * eta * dlam / |1 - eta lam|
    np.testing.assert_allclose(ib.kernel_prediction(setup, t), want, rtol=2e-5, atol=1e-12)


def _spectral_amps(pred, t, widths, rng, nets=6):
    """Amplitudes = prediction + an O(N^-1/2) deviation that varies over nets."""
    shape = 0.5 * np.sin(np.pi * t / t[-1])[:, None] * np.ones(pred.shape[1])
    return {
        N: pred[None]
        + (1.0 + 0.2 * rng.normal(size=(nets, 1, pred.shape[1])))
        * shape[None]
        * pred[None] ** 0.5
        * N**-0.5
        for N in widths
    }


def test_spectral_checks_pass_on_first_order_deviations_and_fail_on_a_wrong_eigenvalue():
    t = np.arange(0, 201, 2)
    rate = np.array([0.5, 0.15, 0.025, 0.004])
    pred = np.exp(-np.outer(t, rate))
    widths = (1024, 4096, 16384)
    amps = _spectral_amps(pred, t, widths, np.random.default_rng(0))

    def result(p, r):
        sm = ib.spectral_summary(amps, p, t, r)
        return {
            **sm,
            "freqs": np.array([1, 2, 4, 8]),
            "num_nets": 6,
            "pred": p,
            "t_measured": np.array([1.0, 2.0, 3.0, 4.0]),
        }

    ok = ib.spectral_checks(result(pred, rate))
    assert all(c["pass"] for c in ok), ok
    assert abs(ok[0]["measured"] + 0.5) < 0.05
    wrong = rate.copy()
    wrong[2] *= 1.3  # a wrong eigenvalue for k = 4
    bad = ib.spectral_checks(result(np.exp(-np.outer(t, wrong)), wrong))
    assert not bad[0]["pass"] and not bad[1]["pass"]


def test_spectral_gd_centred_outputs_start_at_zero_and_fit():
    setup = ib.spectral_setup(16)
    F = ib.spectral_gd(setup, 256, 2, 40, 20, seed=0)
    assert F.shape == (2, 3, 16)
    np.testing.assert_allclose(F[:, 0], 0.0, atol=1e-6)
    err = np.linalg.norm(F - setup["y"], axis=-1)
    assert np.all(err[:, -1] < 0.5 * err[:, 0])


# ------------------------------------------------------------------ plan and smoke


def test_plan_builds_the_full_configuration():
    from experiments.common import Config

    p = ib.plan(Config("implicit_bias", quick=False, seed=0, out=None, quiet=True))
    assert p["sz"].spectral["widths"][-1] == 262144 and p["sz"].logistic["decades"] == 7
    assert len(p["alphas"]) == p["sz"].diag["num_alphas"]
    assert p["spectral_setup"]["K"].shape == (64, 64)
    assert p["spectral_t"][-1] == p["sz"].spectral["steps"]


@pytest.mark.slow
def test_main_quick_smoke(tmp_path):
    res = ib.main(["--quick", "--quiet", "--out", str(tmp_path)])
    assert (tmp_path / "metrics.json").exists()
    assert all(c["pass"] for c in res.checks), [c for c in res.checks if not c["pass"]]
    assert {c["kind"] for c in res.checks} == {"claim", "consistency"}
