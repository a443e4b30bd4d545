"""predict.gradient_descent_mse with neural-tangents' ``trace_axes=()`` (kernels
that keep the ``(k, k)`` output axes).

* a block-diagonal kernel :math:`\\Theta \\otimes I_k` gives exactly the
  per-output predictions (float64, 1e-10);
* the empirical ``(n, n, k, k)`` NTK of a small MLP gives neural-tangents'
  ``predict.gradient_descent_mse(..., trace_axes=())`` (NT normalises the loss by
  ``y_train.size = n k``, so its rate is ``k`` times ours), float64, 1e-8;
* ``t`` may be an array of times (a leading time axis);
* ``gp_inference(..., trace_axes=())``: block-diagonal kernels give the
  per-output posterior (1e-10); the joint posterior of an empirical
  ``(n, n, k, k)`` NTK equals dense Gaussian conditioning by ``np.linalg.solve``
  and neural-tangents' mean (``diag_reg_absolute_scale=True``), 1e-8.
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wideth.compat import neural_tangents
from wideth.kernels import empirical, predict


def _problem(n=5, m=3, k=2):
    stax = neural_tangents().stax
    init_fn, apply_fn, _ = stax.serial(stax.Dense(12), stax.Erf(), stax.Dense(k, b_std=0.1))
    x = jax.random.normal(jax.random.PRNGKey(0), (n + m, 4))
    _, params = init_fn(jax.random.PRNGKey(1), x.shape)
    y = jax.random.normal(jax.random.PRNGKey(2), (n, k))
    return apply_fn, params, x[:n], x[n:], y


@pytest.mark.slow
def test_block_diagonal_kernel_gives_the_per_output_predictions(x64):
    n, m, k = 5, 3, 2
    theta = jax.random.normal(jax.random.PRNGKey(3), (n + m, 6))
    theta = theta @ theta.T
    eye = jnp.eye(k)
    block = lambda a: jnp.einsum("ij,ab->ijab", a, eye)
    y = jax.random.normal(jax.random.PRNGKey(4), (n, k))
    f0, g0 = 0.1 * y[::-1], jnp.ones((m, k))
    per = predict.gradient_descent_mse(theta[:n, :n], y, 0.7, diag_reg=0.01)
    joint = predict.gradient_descent_mse(block(theta[:n, :n]), y, 0.7, diag_reg=0.01, trace_axes=())
    for t in (None, jnp.array([0.0, 1.0, 10.0])):
        want = per(t, theta[n:, :n], f0, g0)
        got = joint(t, block(theta[n:, :n]), f0, g0)
        for a, b in zip(got, want, strict=True):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("discrete", [pytest.param(False, marks=pytest.mark.slow), True])
def test_joint_output_dynamics_match_neural_tangents(x64, discrete):
    apply_fn, params, x_train, x_test, y = _problem()
    k = y.shape[1]
    ntk_tt = empirical.ntk(apply_fn, params, x_train, trace_axes=())
    ntk_st = empirical.ntk(apply_fn, params, x_test, x_train, trace_axes=())
    assert ntk_tt.shape == (5, 5, k, k)
    f0, g0 = apply_fn(params, x_train), apply_fn(params, x_test)
    ours = predict.gradient_descent_mse(ntk_tt, y, 0.5, discrete=discrete, trace_axes=())
    nt = neural_tangents().predict.gradient_descent_mse(ntk_tt, y, 0.5 * k, trace_axes=())
    for t in (2.0, 7.0):
        want_train, want_test = nt(t, f0, g0, ntk_st) if not discrete else (None, None)
        got_train, got_test = ours(t, ntk_st, f0, g0)
        if discrete:  # NT has gradient flow only: iterate the linearised GD step instead
            ft, gt = f0, g0
            flat = lambda a: jnp.transpose(a, (0, 2, 1, 3)).reshape(a.shape[0] * k, -1)
            for _ in range(int(t)):
                r = (ft - y).reshape(-1)
                ft = ft - 0.5 / 5 * (flat(ntk_tt) @ r).reshape(ft.shape)
                gt = gt - 0.5 / 5 * (flat(ntk_st) @ r).reshape(gt.shape)
            want_train, want_test = ft, gt
        np.testing.assert_allclose(got_train, want_train, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(got_test, want_test, rtol=1e-8, atol=1e-8)


def test_bad_trace_axes_and_shapes_raise_by_name():
    y = jnp.ones((3, 2))
    with pytest.raises(ValueError, match=r"^trace_axes: expected \(-1,\)"):
        predict.gradient_descent_mse(jnp.eye(3), y, trace_axes=(0,))
    with pytest.raises(ValueError, match=r"^k_train_train: expected shape \(3, 3, 2, 2\)"):
        predict.gradient_descent_mse(jnp.ones((3, 3, 1, 1)), y, trace_axes=())
    fn = predict.gradient_descent_mse(
        jnp.einsum("ij,ab->ijab", jnp.eye(3), jnp.eye(2)), y, trace_axes=()
    )
    with pytest.raises(ValueError, match=r"^k_test_train: expected shape \(m, 3, 2, 2\)"):
        fn(1.0, jnp.ones((4, 3, 1, 1)))


# ----------------------------------------------------------------------------- gp_inference


@pytest.mark.slow
def test_gp_inference_block_diagonal_kernel_gives_the_per_output_posterior(x64):
    n, m, k = 5, 3, 2
    a = jax.random.normal(jax.random.PRNGKey(5), (n + m, 6))
    kern = a @ a.T
    block = lambda c: jnp.einsum("ij,ab->ijab", c, jnp.eye(k))
    y = jax.random.normal(jax.random.PRNGKey(6), (n, k))
    per = predict.gp_inference(kern[:n, :n], y, kern[n:, :n], kern[n:, n:], diag_reg=0.01)
    joint = predict.gp_inference(
        block(kern[:n, :n]), y, block(kern[n:, :n]), block(kern[n:, n:]), 0.01, trace_axes=()
    )
    assert joint.mean.shape == (m, k) and joint.covariance.shape == (m, m, k, k)
    np.testing.assert_allclose(joint.mean, per.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(joint.covariance, block(per.covariance), rtol=1e-10, atol=1e-12)


def test_gp_inference_joint_outputs_match_dense_conditioning_and_neural_tangents(x64):
    apply_fn, params, x_train, x_test, y = _problem()
    n, k = y.shape
    m = x_test.shape[0]
    kxx = empirical.ntk(apply_fn, params, x_train, trace_axes=())
    ktx = empirical.ntk(apply_fn, params, x_test, x_train, trace_axes=())
    ktt = empirical.ntk(apply_fn, params, x_test, trace_axes=())
    got = predict.gp_inference(kxx, y, ktx, ktt, 1e-3, trace_axes=())
    # dense Gaussian conditioning of the (i, a)-indexed joint covariance, by np.linalg.solve
    joint = lambda c: np.asarray(c).transpose(0, 2, 1, 3).reshape(c.shape[0] * k, -1)
    a = joint(kxx) + 1e-3 * np.eye(n * k)
    mean = joint(ktx) @ np.linalg.solve(a, np.asarray(y).reshape(-1))
    cov = joint(ktt) - joint(ktx) @ np.linalg.solve(a, joint(ktx).T)
    np.testing.assert_allclose(got.mean, mean.reshape(m, k), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        got.covariance, cov.reshape(m, k, m, k).transpose(0, 2, 1, 3), rtol=1e-8, atol=1e-10
    )
    # the output couplings matter: the per-output posterior of the traced kernel differs
    traced = predict.gp_inference(
        jnp.trace(kxx, axis1=2, axis2=3) / k, y, jnp.trace(ktx, axis1=2, axis2=3) / k, None, 1e-3
    )
    assert np.max(np.abs(traced.mean - got.mean)) > 1e-3
    nt = neural_tangents().predict.gp_inference(
        kxx, y, diag_reg=1e-3, diag_reg_absolute_scale=True, trace_axes=()
    )
    nt_mean = nt("ntk", ktx)
    np.testing.assert_allclose(got.mean, nt_mean, rtol=1e-8, atol=1e-10)


def test_gp_inference_trace_axes_bad_shapes_raise_by_name():
    y = jnp.ones((3, 2))
    k4 = jnp.einsum("ij,ab->ijab", jnp.eye(3), jnp.eye(2))
    with pytest.raises(ValueError, match=r"^trace_axes: expected \(-1,\)"):
        predict.gp_inference(jnp.eye(3), y, jnp.ones((1, 3)), trace_axes=(0, 1))
    with pytest.raises(ValueError, match=r"^k_train_train: expected shape \(3, 3, 2, 2\)"):
        predict.gp_inference(jnp.ones((3, 3, 1, 1)), y, jnp.ones((1, 3, 2, 2)), trace_axes=())
    with pytest.raises(ValueError, match=r"^k_test_train: expected shape \(m, 3, 2, 2\)"):
        predict.gp_inference(k4, y, jnp.ones((1, 3, 1, 1)), trace_axes=())
    with pytest.raises(ValueError, match=r"^k_test_test: expected shape \(1, 1, 2, 2\)"):
        predict.gp_inference(k4, y, jnp.ones((1, 3, 2, 2)), jnp.ones((2, 2, 2, 2)), trace_axes=())


# ----------------------------------------------------------------------------- ensembles


def _ensemble_problem(n=5, m=3, k=2, p=16):
    """A ``kernel_fn`` of ``(n1, n2, k, k)`` kernels: random-feature inner products
    :math:`K_{ab}(x, x') = \\phi_a(x) \\cdot \\phi_b(x') / P` (NNGP: tanh features, NTK:
    cos features, plus the NNGP), positive definite on the ``n k = 10`` train outputs."""
    w = jax.random.normal(jax.random.PRNGKey(9), (2, 4, k * p))

    def feats(x, i):
        z = x @ w[i]
        return (jnp.tanh(z) if i == 0 else jnp.cos(z)).reshape(x.shape[0], k, p)

    def kernel_fn(x1, x2=None, get=("nngp", "ntk")):
        x2 = x1 if x2 is None else x2
        dot = lambda i: jnp.einsum("iap,jbp->ijab", feats(x1, i), feats(x2, i)) / p
        vals = {"nngp": dot(0), "ntk": dot(0) + dot(1)}
        if isinstance(get, str):
            return vals[get]
        return collections.namedtuple("Kernel", get)(*(vals[g] for g in get))

    x = jax.random.normal(jax.random.PRNGKey(0), (n + m, 4))
    y = jax.random.normal(jax.random.PRNGKey(2), (n, k))
    return kernel_fn, x[:n], x[n:], y


def test_ensemble_joint_outputs_match_neural_tangents(x64):
    """Mean and covariance of ``ensemble(..., trace_axes=())`` = NT's
    ``gradient_descent_mse_ensemble(..., trace_axes=())`` (its rate is k times ours);
    measured 1e-14 relative."""
    kernel_fn, x_train, x_test, y = _ensemble_problem()
    k, lr = y.shape[1], 0.5
    nt_ens = neural_tangents().predict.gradient_descent_mse_ensemble
    for reg, gets in ((0.0, ("nngp", "ntk")), (1e-3, ("ntk",))):
        ours = predict.ensemble(kernel_fn, x_train, y, lr, diag_reg=reg, trace_axes=())
        nt = nt_ens(
            kernel_fn, x_train, y, lr * k, diag_reg=reg, diag_reg_absolute_scale=True,
            trace_axes=(),
        )  # fmt: skip
        for t in (None, 0.0, 3.0, 40.0):
            got = ours(t, x_test, gets, compute_cov=True)
            want = nt(t, x_test, gets, compute_cov=True)
            for g in gets:
                assert got[g].mean.shape == (3, k) and got[g].covariance.shape == (3, 3, k, k)
                np.testing.assert_allclose(
                    got[g].mean, getattr(want, g).mean, rtol=1e-8, atol=1e-10
                )
                np.testing.assert_allclose(
                    got[g].covariance, getattr(want, g).covariance, rtol=1e-8, atol=1e-10
                )
            mean_only = ours(t, x_test, "ntk")
            np.testing.assert_allclose(mean_only.mean, got["ntk"].mean, rtol=1e-10, atol=1e-12)
    # t = None is NT's t = inf; an array of times adds a leading axis
    inf = nt(jnp.inf, x_test, "ntk", compute_cov=True)
    np.testing.assert_allclose(ours(None, x_test).mean, inf.mean, rtol=1e-8, atol=1e-10)
    times = jnp.array([1.0, 5.0])
    got = ours(times, x_test, "ntk", compute_cov=True)
    want = nt(times, x_test, "ntk", compute_cov=True)
    assert got.covariance.shape == (2, 3, 3, k, k)
    np.testing.assert_allclose(got.covariance, want.covariance, rtol=1e-8, atol=1e-10)
    # the output couplings matter: the traced (per-output) kernels predict otherwise
    traced = lambda a, b, get: tuple(
        jnp.trace(c, axis1=2, axis2=3) / k for c in kernel_fn(a, b, get)
    )
    per = predict.ensemble(traced, x_train, y, lr, diag_reg=1e-3)(3.0, x_test, ("ntk",))
    assert np.max(np.abs(per["ntk"].mean - ours(3.0, x_test, "ntk").mean)) > 1e-3


def test_gradient_descent_mse_ensemble_joint_block_diagonal_is_per_output(x64):
    """Kernels :math:`K \\otimes I_k` give the per-output ensemble (1e-10)."""
    n, m, k = 5, 3, 2
    a = jax.random.normal(jax.random.PRNGKey(7), (n + m, 6))
    theta, kern = a @ a.T, jnp.tanh(a @ a.T / 6)
    block = lambda c: jnp.einsum("ij,ab->ijab", c, jnp.eye(k))
    y = jax.random.normal(jax.random.PRNGKey(8), (n, k))
    args = lambda f: (f(theta[:n, :n]), f(kern[:n, :n]), f(theta[n:, :n]), f(kern[n:, :n]))
    for t in (None, 2.0):
        per = predict.gradient_descent_mse_ensemble(*args(lambda c: c), kern[n:, n:], y, t, 0.7)
        joint = predict.gradient_descent_mse_ensemble(
            *args(block), block(kern[n:, n:]), y, t, 0.7, trace_axes=()
        )
        np.testing.assert_allclose(joint.mean, per.mean, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(joint.covariance, block(per.covariance), rtol=1e-10, atol=1e-12)


def test_ensemble_trace_axes_bad_inputs_raise_by_name():
    kernel_fn, x_train, x_test, y = _ensemble_problem()
    with pytest.raises(ValueError, match=r"^trace_axes: expected \(-1,\)"):
        predict.ensemble(kernel_fn, x_train, y, trace_axes=(0,))
    with pytest.raises(ValueError, match=r"^batch_size: expected 0 with trace_axes=\(\)"):
        predict.ensemble(kernel_fn, x_train, y, batch_size=2, trace_axes=())
    with pytest.raises(ValueError, match=r"^kernel_fn: expected kernels of shape \(5, 5, 3, 3\)"):
        predict.ensemble(kernel_fn, x_train, jnp.ones((5, 3)), trace_axes=())
    k4 = jnp.einsum("ij,ab->ijab", jnp.eye(5), jnp.eye(2))
    with pytest.raises(ValueError, match=r"^nngp_test_test: expected shape \(1, 1, 2, 2\)"):
        predict.gradient_descent_mse_ensemble(k4, k4, k4[:1], k4[:1], k4[:2, :2], y, trace_axes=())
