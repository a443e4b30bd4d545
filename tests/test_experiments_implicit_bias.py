"""Implicit-bias experiment: diagonal networks, logistic max-margin, circulant NTK spectra."""

import jax
import numpy as np

from experiments import implicit_bias as ib


def test_diagonal_net_distance_ordering():
    alphas = np.array([1e-2, 3.0])
    sw = ib.diagonal_sweep(jax.random.key(0), n=20, d=50, k=3, alphas=alphas, max_steps=300_000)
    # the sparse truth is the min-l1 interpolator here (compressed sensing regime)
    assert sw["l1_recovers_truth"] < 1e-6
    assert np.all(sw["residual"] < 1e-3)
    small, large = 0, 1
    # rich regime: much closer to the min-l1 than to the min-l2 interpolator; kernel regime: l2
    assert sw["dist_l1"][small] < 0.25 * sw["dist_l2"][small]
    assert sw["dist_l2"][large] < 0.01 < 0.5 < sw["dist_l1"][large]
    assert sw["dist_l1"][small] < sw["dist_l1"][large]
    # GD lands on the Q_alpha minimiser computed independently from the convex dual
    np.testing.assert_array_less(sw["dist_q"], 0.02)


def test_min_l1_interpolator_is_feasible_and_minimal():
    X, y, _ = ib.sparse_regression(jax.random.key(1), 10, 30, 2)
    w1, w2 = ib.min_l1_interpolator(X, y), ib.min_l2_interpolator(X, y)
    np.testing.assert_allclose(X @ w1, y, atol=1e-8)
    np.testing.assert_allclose(X @ w2, y, atol=1e-8)
    assert np.abs(w1).sum() <= np.abs(w2).sum() + 1e-9
    assert np.linalg.norm(w2) <= np.linalg.norm(w1) + 1e-9


def test_svm_angle_decreases_over_t():
    lg = ib.logistic_sweep(jax.random.key(2), num_sets=4, n=20, d=3, t_max=1e4, per_decade=2)
    assert lg["svm_qp_rel_diff_max"] < 1e-4  # SVC on symmetrised data = homogeneous QP
    assert lg["svm_intercept_max"] < 1e-6
    g = lg["angle_gmean"][lg["t"] >= 100]
    assert np.all(np.diff(g) < 0)
    assert g[-1] < 0.8 * g[0]


def test_circulant_eigenvalues_match_eigvalsh():
    th, _ = ib.circle(16)
    row = np.exp(np.cos(th))  # a positive-definite dot-product kernel on the circle
    K = np.array([np.roll(row, i) for i in range(16)])
    ev = ib.circulant_eigenvalues(K)
    np.testing.assert_allclose(np.sort(ev), np.linalg.eigvalsh(K / 16), atol=1e-12)


def test_crossing_time_of_exponential():
    t = np.arange(50)
    assert abs(ib.crossing_time(np.exp(-t / 7.3)) - 7.3) < 1e-9
