"""Predictions over arrays of times, for general losses, with momentum, and
ensembles straight from a kernel_fn; each against an independent route:
the closed form, real gradient descent on a linear model whose tangent kernel
is exactly the kernel given, the damped-oscillator solution of heavy ball on
squared error, and the kernels computed by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from wideth.kernels import analytic, predict


def _features(n=8, m=3, p=12, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    phi = jax.random.normal(k1, (n, p)) / np.sqrt(p)
    phi_t = jax.random.normal(k2, (m, p)) / np.sqrt(p)
    y = jnp.sin(3 * phi.sum(1, keepdims=True)) + 0.1 * jax.random.normal(k3, (n, 1))
    return phi, phi_t, y


def _mse(f, y):
    return 0.5 * jnp.mean(jnp.sum((f - y) ** 2, axis=-1))


def _xent(f, y):
    return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(f), axis=-1))


def test_array_of_times_equals_each_time(x64):
    phi, phi_t, y = _features()
    k, kt = phi @ phi.T, phi_t @ phi.T
    for discrete, ts in ((False, [0.0, 0.5, 3.0, 40.0]), (True, [0, 1, 7, 30])):
        fn = predict.gradient_descent_mse(k, y, learning_rate=0.5, discrete=discrete)
        train, test = fn(t=jnp.array(ts), k_test_train=kt, fx_train_0=0.2)
        assert train.shape == (4, 8, 1) and test.shape == (4, 3, 1)
        for i, ti in enumerate(ts):
            a, b = fn(t=ti, k_test_train=kt, fx_train_0=0.2)
            np.testing.assert_allclose(train[i], a, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(test[i], b, rtol=1e-12, atol=1e-14)
    jitted = jax.jit(lambda t: fn(t=t, k_test_train=kt)[1])
    np.testing.assert_allclose(jitted(jnp.array([2.0, 5.0]))[1], fn(t=5, k_test_train=kt)[1])


def test_ensemble_array_of_times(x64):
    phi, phi_t, y = _features()
    k, kt, ktt = phi @ phi.T, phi_t @ phi.T, phi_t @ phi_t.T
    args = (k, 0.5 * k, kt, 0.5 * kt, 0.5 * ktt, y)
    both = predict.gradient_descent_mse_ensemble(*args, t=jnp.array([1.0, 9.0]))
    one = predict.gradient_descent_mse_ensemble(*args, t=9.0)
    assert both.mean.shape == (2, 3, 1) and both.covariance.shape == (2, 3, 3)
    np.testing.assert_allclose(both.mean[1], one.mean, rtol=1e-12)
    np.testing.assert_allclose(both.covariance[1], one.covariance, rtol=1e-10, atol=1e-14)


def test_general_loss_with_mse_is_the_closed_form(x64):
    """gradient_descent(mse) integrates the ODE whose solution gradient_descent_mse writes down."""
    phi, phi_t, y = _features()
    k, kt = phi @ phi.T, phi_t @ phi.T
    ts = jnp.array([0.0, 1.0, 4.0, 25.0])
    ode = predict.gradient_descent(_mse, k, y, learning_rate=2.0, rtol=1e-10, atol=1e-10)
    closed = predict.gradient_descent_mse(k, y, learning_rate=2.0)
    a = ode(ts, k_test_train=kt, fx_train_0=0.3, fx_test_0=-0.1)
    b = closed(ts, k_test_train=kt, fx_train_0=0.3, fx_test_0=-0.1)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-7, atol=1e-9)
    # a wrong kernel scale is detected at the same tolerance
    wrong = predict.gradient_descent(_mse, 1.1 * k, y, learning_rate=2.0, rtol=1e-10, atol=1e-10)
    assert not np.allclose(wrong(ts)[0], b[0], rtol=1e-7, atol=1e-9)


def _real_gd(phi, phi_t, y, loss, lr, steps, momentum=0.0):
    """Gradient descent on the parameters of f = phi @ w (tangent kernel phi phi^T)."""
    w = jnp.zeros((phi.shape[1], y.shape[1]))
    grad = jax.jit(jax.grad(lambda w: loss(phi @ w, y)))

    def step(carry, _):
        w, v = carry
        v = momentum * v - lr * grad(w)
        return (w + v, v), None

    (w, _), _ = jax.lax.scan(step, (w, jnp.zeros_like(w)), None, length=steps)
    return phi @ w, phi_t @ w


@pytest.mark.slow
def test_cross_entropy_matches_real_gradient_descent(x64):
    """Real GD on a linear model approaches the flow at rate O(eta): halving eta halves the gap."""
    phi, phi_t, _ = _features(n=10, p=16)
    y = jax.nn.one_hot(jnp.arange(10) % 3, 3)
    k, kt = phi @ phi.T, phi_t @ phi.T
    time = 6.0  # eta * steps
    gaps = []
    for lr in (0.2, 0.1, 0.05):
        steps = int(round(time / lr))
        f, ft = _real_gd(phi, phi_t, y, _xent, lr, steps)
        a, b = predict.gradient_descent(_xent, k, y, lr, rtol=1e-10, atol=1e-10)(
            steps, k_test_train=kt
        )
        gaps.append(max(float(jnp.max(jnp.abs(a - f))), float(jnp.max(jnp.abs(b - ft)))))
    ratios = np.array(gaps[:-1]) / np.array(gaps[1:])
    assert np.all((ratios > 1.7) & (ratios < 2.3)), (gaps, ratios)
    assert gaps[-1] < 0.02 * float(jnp.max(jnp.abs(f)))


def test_momentum_on_mse_is_the_damped_oscillator(x64):
    """Per eigenvalue lam of K/n: x'' + gamma x' + lam x = 0 from x(0) = r0 at rest, by expm."""
    phi, _, y = _features()
    k = phi @ phi.T
    n = k.shape[0]
    lr, beta = 0.3, 0.8
    t = jnp.array([2.0, 10.0, 50.0])
    got, _ = predict.gradient_descent(_mse, k, y, lr, momentum=beta, rtol=1e-10, atol=1e-10)(t)
    lam, vec = np.linalg.eigh(np.asarray(k) / n)
    r0 = vec.T @ (0.0 - np.asarray(y))
    gamma = (1 - beta) / np.sqrt(lr)
    for i, ti in enumerate(np.asarray(t) * np.sqrt(lr)):
        x = np.array(
            [
                (scipy.linalg.expm(np.array([[0.0, 1.0], [-li, -gamma]]) * ti) @ [1.0, 0.0])[0]
                for li in lam
            ]
        )
        want = np.asarray(y) + vec @ (x[:, None] * r0)
        np.testing.assert_allclose(got[i], want, rtol=1e-7, atol=1e-9)


def test_momentum_matches_real_heavy_ball(x64):
    """With friction gamma = (1 - beta) / sqrt(eta) fixed, heavy ball approaches the ODE
    at rate O(sqrt(eta)): eta / 4 halves the gap (a rate-1 error would quarter it)."""
    phi, phi_t, y = _features()
    k, kt = phi @ phi.T, phi_t @ phi.T
    gamma, time = 1.0, 4.0  # time = sqrt(eta) * steps
    gaps = []
    for lr in (0.04, 0.01, 0.0025):
        beta = 1.0 - gamma * np.sqrt(lr)
        steps = int(round(time / np.sqrt(lr)))
        f, ft = _real_gd(phi, phi_t, y, _mse, lr, steps, momentum=beta)
        a, b = predict.gradient_descent(_mse, k, y, lr, momentum=beta, rtol=1e-10, atol=1e-10)(
            steps, k_test_train=kt
        )
        gaps.append(max(float(jnp.max(jnp.abs(a - f))), float(jnp.max(jnp.abs(b - ft)))))
    ratios = np.array(gaps[:-1]) / np.array(gaps[1:])
    assert np.all((ratios > 1.6) & (ratios < 2.5)), (gaps, ratios)


@pytest.mark.slow
def test_ensemble_from_kernel_fn(x64):
    _, _, kernel_fn = analytic.mlp(depth=2, width=16, W_std=1.4, b_std=0.1)
    x = jax.random.normal(jax.random.PRNGKey(1), (7, 3))
    xs = jax.random.normal(jax.random.PRNGKey(2), (4, 3))
    y = jnp.cos(x[:, :1])
    fn = predict.ensemble(kernel_fn, x, y, learning_rate=1.5, batch_size=0)
    out = fn(t=jnp.array([3.0, 30.0]), x_test=xs, get=("nngp", "ntk"), compute_cov=True)
    nngp, ntk = kernel_fn(x, None, ("nngp", "ntk"))
    nngp_s, ntk_s = kernel_fn(xs, x, ("nngp", "ntk"))
    want = predict.gradient_descent_mse_ensemble(
        ntk, nngp, ntk_s, nngp_s, kernel_fn(xs, None, "nngp"), y, t=30.0, learning_rate=1.5
    )
    np.testing.assert_allclose(out["ntk"].mean[1], want.mean, rtol=1e-7)
    np.testing.assert_allclose(out["ntk"].covariance[1], want.covariance, rtol=1e-8, atol=1e-12)
    # NNGP at t = infinity: the exact GP posterior
    post = fn(x_test=xs, get="nngp", compute_cov=True)
    gp = predict.gp_inference(nngp, y, nngp_s, kernel_fn(xs, None, "nngp"))
    np.testing.assert_allclose(post.mean, gp.mean, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(post.covariance, gp.covariance, rtol=1e-6, atol=1e-9)
    on_train = fn(get="ntk")
    assert on_train.covariance is None
    np.testing.assert_allclose(on_train.mean, y, atol=1e-8)  # interpolates its train set


def test_bad_input():
    k = jnp.eye(3)
    y = jnp.ones(3)
    fn = predict.gradient_descent(_mse, k, y)
    with pytest.raises(ValueError, match="^t: .*infinity"):
        fn(None)
    with pytest.raises(ValueError, match="^t: expected non-decreasing"):
        fn(jnp.array([2.0, 1.0]))
    with pytest.raises(ValueError, match="^t: "):
        fn(jnp.array([-1.0, 1.0]))
    with pytest.raises(ValueError, match="^momentum: "):
        predict.gradient_descent(_mse, k, y, momentum=1.0)
    with pytest.raises(ValueError, match="^loss: "):
        predict.gradient_descent(lambda f, y: f - y, k, y)
    with pytest.raises(TypeError, match="^loss: "):
        predict.gradient_descent("mse", k, y)
    with pytest.raises(ValueError, match="^t: expected whole numbers"):
        predict.gradient_descent_mse(k, y, discrete=True)(t=jnp.array([1.0, 1.5]))
    _, _, kernel_fn = analytic.mlp(depth=1, width=8)
    ens = predict.ensemble(kernel_fn, jnp.ones((3, 2)), y)
    with pytest.raises(ValueError, match="^get: "):
        ens(get="nngp_ntk")
    with pytest.raises(ValueError, match="^y_train: "):
        predict.ensemble(kernel_fn, jnp.ones((3, 2)), jnp.ones(4))
