"""Infinite-width predictions vs ridgeless regression, explicit GD steps,
neural-tangents, and ensembles of trained wide networks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wideth.compat import neural_tangents
from wideth.kernels import predict


def _net(width=2048, w_std=1.5, b_std=0.1):
    stax = neural_tangents().stax
    return stax.serial(
        stax.Dense(width, W_std=w_std, b_std=b_std),
        stax.Relu(),
        stax.Dense(1, W_std=w_std, b_std=b_std),
    )


def _data(n_train=6, n_test=3, d=4, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    x_train = jax.random.normal(k1, (n_train, d))
    x_test = jax.random.normal(k2, (n_test, d))
    y_train = jnp.sin(x_train.sum(1, keepdims=True)) + 0.1 * jax.random.normal(k3, (n_train, 1))
    return x_train, x_test, y_train


def _kernels(x_train, x_test):
    _, _, kernel_fn = _net()
    ktt = kernel_fn(x_train, None, ("nngp", "ntk"))
    kst = kernel_fn(x_test, x_train, ("nngp", "ntk"))
    kss = kernel_fn(x_test, None, "nngp")
    return ktt, kst, kss


@pytest.mark.slow
def test_infinite_time_is_ridgeless_regression(x64):
    x_train, x_test, y = _data()
    (_, ntk), (_, ntk_st), _ = _kernels(x_train, x_test)
    train, test = predict.gradient_descent_mse(ntk, y)(t=None, k_test_train=ntk_st)
    np.testing.assert_allclose(train, y, atol=1e-9)
    np.testing.assert_allclose(test, ntk_st @ jnp.linalg.solve(ntk, y), rtol=1e-8)


@pytest.mark.slow
def test_discrete_matches_explicit_gd_steps(x64):
    x_train, x_test, y = _data()
    (_, ntk), (_, ntk_st), _ = _kernels(x_train, x_test)
    n = ntk.shape[0]
    lr = 0.7 * float(predict.max_learning_rate(ntk))
    f_train = jnp.full_like(y, 0.3)
    f_test = jnp.full((x_test.shape[0], 1), -0.2)
    for _ in range(25):
        resid = f_train - y
        f_train, f_test = f_train - lr / n * ntk @ resid, f_test - lr / n * ntk_st @ resid
    fn = predict.gradient_descent_mse(ntk, y, learning_rate=lr, discrete=True)
    train, test = fn(t=25, k_test_train=ntk_st, fx_train_0=0.3, fx_test_0=-0.2)
    np.testing.assert_allclose(train, f_train, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(test, f_test, rtol=1e-9, atol=1e-12)


def test_flow_matches_fine_euler_steps(x64):
    x_train, x_test, y = _data()
    (_, ntk), (_, ntk_st), _ = _kernels(x_train, x_test)
    n, t, dt = ntk.shape[0], 3.0, 1e-3
    f_train, f_test = jnp.zeros_like(y), jnp.zeros((x_test.shape[0], 1))

    def euler(carry, _):
        ftr, fte = carry
        resid = ftr - y
        return (ftr - dt / n * ntk @ resid, fte - dt / n * ntk_st @ resid), None

    (f_train, f_test), _ = jax.lax.scan(euler, (f_train, f_test), None, length=int(t / dt))
    train, test = predict.gradient_descent_mse(ntk, y)(t=t, k_test_train=ntk_st)
    # Euler's global error is O(dt * t * lambda^2 / n^2): ~1e-3 relative here.
    np.testing.assert_allclose(train, f_train, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(test, f_test, rtol=2e-3, atol=1e-4)


def test_matches_neural_tangents_predict(x64):
    nt = neural_tangents()
    x_train, x_test, y = _data()
    (_, ntk), (_, ntk_st), _ = _kernels(x_train, x_test)
    ours = predict.gradient_descent_mse(ntk, y, learning_rate=0.5)
    theirs = nt.predict.gradient_descent_mse(ntk, y, learning_rate=0.5)
    for t in (0.0, 2.0, 40.0):
        a = ours(t=t, k_test_train=ntk_st, fx_train_0=0.0, fx_test_0=0.0)
        b = theirs(t, 0.0, 0.0, ntk_st)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-8, atol=1e-10)


def test_gp_inference_matches_nt_and_regression(x64):
    nt = neural_tangents()
    x_train, x_test, y = _data()
    (nngp, _), (nngp_st, _), nngp_ss = _kernels(x_train, x_test)
    ours = predict.gp_inference(nngp, y, nngp_st, nngp_ss, diag_reg=1e-2)
    reg = nngp + 1e-2 * jnp.eye(nngp.shape[0])
    np.testing.assert_allclose(ours.mean, nngp_st @ jnp.linalg.solve(reg, y), rtol=1e-8)
    assert jnp.all(jnp.linalg.eigvalsh(ours.covariance) > -1e-10)
    _, _, kernel_fn = _net()
    theirs = nt.predict.gp_inference(nngp, y, diag_reg=1e-2, diag_reg_absolute_scale=True)(
        "nngp", nngp_st, nngp_ss
    )
    np.testing.assert_allclose(ours.mean, theirs.mean, rtol=1e-7)
    np.testing.assert_allclose(ours.covariance, theirs.covariance, rtol=1e-6, atol=1e-9)


def test_ensemble_matches_neural_tangents(x64):
    nt = neural_tangents()
    x_train, x_test, y = _data()
    (nngp, ntk), (nngp_st, ntk_st), nngp_ss = _kernels(x_train, x_test)
    _, _, kernel_fn = _net()
    for t in (1.0, None):
        ours = predict.gradient_descent_mse_ensemble(ntk, nngp, ntk_st, nngp_st, nngp_ss, y, t=t)
        fn = nt.predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y)
        theirs = fn(t, x_test, "ntk", compute_cov=True)
        np.testing.assert_allclose(ours.mean, theirs.mean, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(ours.covariance, theirs.covariance, rtol=1e-5, atol=1e-8)


def _train_ensemble(x_train, x_test, y, lr, steps, n_nets, width=2048, seed=1):
    init_fn, apply_fn, _ = _net(width)
    keys = jax.random.split(jax.random.PRNGKey(seed), n_nets)
    n = x_train.shape[0]

    def one(key):
        _, params = init_fn(key, x_train.shape)
        loss = lambda p: 0.5 * jnp.mean(jnp.sum((apply_fn(p, x_train) - y) ** 2, -1))

        def step(p, _):
            p = jax.tree.map(lambda a, g: a - lr * g, p, jax.grad(loss)(p))
            return p, loss(p)

        params, losses = jax.lax.scan(step, params, None, length=steps)
        return apply_fn(params, x_test)[:, 0], losses

    del n
    return jax.jit(jax.vmap(one))(keys)


@pytest.mark.parametrize(
    "width,n_nets,cov_tol",
    [
        (1024, 48, 0.6),
        pytest.param(2048, 128, 0.35, marks=pytest.mark.slow),
    ],
)
@pytest.mark.slow
def test_trained_wide_ensemble_matches_prediction(width, n_nets, cov_tol):
    """Wide ReLU nets (NTK parameterisation) trained to convergence vs the prediction."""
    x_train, x_test, y = _data()
    (nngp, ntk), (nngp_st, ntk_st), nngp_ss = _kernels(x_train, x_test)
    pred = predict.gradient_descent_mse_ensemble(ntk, nngp, ntk_st, nngp_st, nngp_ss, y, t=None)
    lr = 0.9 * float(predict.max_learning_rate(ntk))
    outs, losses = _train_ensemble(x_train, x_test, y, lr, steps=200, n_nets=n_nets, width=width)
    assert float(jnp.max(losses[:, -1])) < 1e-5
    mean, sem = outs.mean(0), outs.std(0, ddof=1) / np.sqrt(outs.shape[0])
    # Mean within 4 standard errors (plus the O(1/width) finite-width bias).
    assert np.all(np.abs(mean - pred.mean[:, 0]) < 4 * sem + 0.02), (mean, pred.mean, sem)
    # Covariance: relative Frobenius error; the sampling error of an N-sample
    # covariance is ~ sqrt(2/N) (0.2 for N=48, 0.125 for N=128): ~3 sigma bounds.
    cov = np.cov(np.asarray(outs).T)
    err = np.linalg.norm(cov - pred.covariance) / np.linalg.norm(pred.covariance)
    assert err < cov_tol, err


@pytest.mark.slow
def test_max_learning_rate_separates_convergence_from_blow_up():
    x_train, x_test, y = _data()
    (_, ntk), _, _ = _kernels(x_train, x_test)
    eta = float(predict.max_learning_rate(ntk))
    _, ok = _train_ensemble(x_train, x_test, y, 0.9 * eta, steps=200, n_nets=4)
    _, bad = _train_ensemble(x_train, x_test, y, 2.5 * eta, steps=200, n_nets=4)
    assert np.all(np.asarray(ok[:, -1]) < 1e-2 * np.asarray(ok[:, 0]))
    assert np.all(~np.isfinite(np.asarray(bad[:, -1])) | (np.asarray(bad[:, -1]) > 1e6))


def test_max_learning_rate_closed_form(x64):
    k = jnp.diag(jnp.array([4.0, 1.0, 0.5]))
    assert float(predict.max_learning_rate(k)) == pytest.approx(2 * 3 / 4.0)
    assert float(predict.max_learning_rate(k, normalization="sum")) == pytest.approx(0.5)
    assert float(predict.max_learning_rate(k, momentum=0.5)) == pytest.approx(3 * 3 / 4.0)


def test_batched_test_rows_equal_unbatched(x64):
    x_train, x_test, y = _data(n_test=7)
    (_, ntk), (_, ntk_st), _ = _kernels(x_train, x_test)
    full = predict.gradient_descent_mse(ntk, y)(t=2.0, k_test_train=ntk_st)[1]
    batched = predict.gradient_descent_mse(ntk, y, batch_size=3)(t=2.0, k_test_train=ntk_st)[1]
    np.testing.assert_allclose(batched, full, rtol=1e-12)


def test_bad_input():
    k = jnp.eye(3)
    with pytest.raises(ValueError, match="y_train"):
        predict.gradient_descent_mse(k, jnp.ones(4))
    with pytest.raises(ValueError, match="k_train_train"):
        predict.gradient_descent_mse(jnp.ones((3, 2)), jnp.ones(3))
    with pytest.raises(ValueError, match="normalization"):
        predict.max_learning_rate(k, normalization="avg")
    with pytest.raises(ValueError, match="k_test_train"):
        predict.gradient_descent_mse(k, jnp.ones(3))(t=1.0, k_test_train=jnp.ones((2, 4)))
