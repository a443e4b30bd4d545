"""SGD noise: minibatch covariance against Monte Carlo, the exact stationary law vs real SGD."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wideth.train import noise


def _data(n=30, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x, x @ rng.normal(size=d) + 0.5 * rng.normal(size=n)


def _objective(p, batch):
    x, y = batch
    return 0.5 * jnp.mean((x @ p - y) ** 2)


@pytest.mark.parametrize("replace", [False, True])
def test_noise_factor_is_the_minibatch_covariance(replace):
    # tr Cov(g_B) of real minibatches (Monte Carlo) = c * tr Sigma.
    n, b, m = 20, 6, 40_000
    rng = np.random.default_rng(1)
    g = rng.normal(size=(n, 3)) + 2.0
    idx = np.stack([rng.choice(n, b, replace=replace) for _ in range(m)])
    gb = g[idx].mean(axis=1)
    measured = np.sum(gb.var(axis=0))
    trace_sigma = np.sum(g.var(axis=0))
    theory = noise.noise_factor(n, b, replace=replace) * trace_sigma
    assert abs(measured - theory) < 4 * theory * np.sqrt(2 / m)
    other = noise.noise_factor(n, b, replace=not replace) * trace_sigma
    assert abs(measured - other) > 8 * theory * np.sqrt(2 / m)  # the two laws are told apart


def test_minibatch_noise_matches_per_example_gradients():
    x, y = _data()
    theta = np.array([0.3, -0.2, 0.5])
    center = np.array([0.1, 0.0, 0.2])
    out = jax.jit(lambda p, c: noise.minibatch_noise(_objective, p, (x, y), 5, center=c, chunk=7))(
        jnp.asarray(theta, jnp.float32), jnp.asarray(center, jnp.float32)
    )
    gi = x * (x @ theta - y)[:, None]
    gbar = gi.mean(axis=0)
    tr = np.mean(np.sum((gi - gbar) ** 2, axis=1))
    c = (30 - 5) / (5 * 29)
    np.testing.assert_allclose(out["grad_sq"], gbar @ gbar, rtol=1e-5)
    np.testing.assert_allclose(out["trace_sigma"], tr, rtol=1e-5)
    np.testing.assert_allclose(out["trace_minibatch"], c * tr, rtol=1e-5)
    np.testing.assert_allclose(out["minibatch_grad_sq"], gbar @ gbar + c * tr, rtol=1e-5)
    np.testing.assert_allclose(out["theta_dot_grad"], (theta - center) @ gbar, rtol=1e-5)


@pytest.mark.parametrize("replace", [False, True])
def test_least_squares_stationary_law_matches_direct_sgd(replace):
    # numpy SGD with its own sampler; time average of the excess loss and of u u^T.
    x, y = _data(n=24, d=2, seed=2)
    eta, b = 0.2, 3
    st = noise.least_squares_stationary(x, y, eta, b, replace=replace)
    rng = np.random.default_rng(3)
    theta, h = st["theta_star"].copy(), x.T @ x / len(x)
    steps = 60_000
    idx = np.stack([rng.choice(len(x), b, replace=replace) for _ in range(steps)])
    us = np.empty((steps, 2))
    for t in range(steps):
        xb, yb = x[idx[t]], y[idx[t]]
        theta = theta - eta * xb.T @ (xb @ theta - yb) / b
        us[t] = theta - st["theta_star"]
    us = us[2000:]
    excess = 0.5 * np.einsum("ti,ij,tj->t", us, h, us)
    m, se = noise.time_average(excess, 30)
    assert abs(m - st["excess_loss"]) < 4 * se, (m, se, st["excess_loss"])
    np.testing.assert_allclose(us.T @ us / len(us), st["cov"], rtol=0.1, atol=1e-3)
    other = noise.least_squares_stationary(x, y, eta, b, replace=not replace)
    assert abs(m - other["excess_loss"]) > 4 * se  # the sampling scheme matters
    assert st["theta_dot_grad"] == pytest.approx(2 * st["excess_loss"])


def test_time_average_standard_error_of_an_ar1_series():
    # AR(1) with coefficient r: Var(mean) ~ (1 + r)/(1 - r) / (T (1 - r^2)) for unit noise.
    rng = np.random.default_rng(4)
    r, t, reps = 0.8, 20_000, 200
    ses, means = [], []
    for _ in range(reps):
        e = rng.normal(size=t)
        z = np.empty(t)
        z[0] = e[0] / np.sqrt(1 - r**2)
        for i in range(1, t):
            z[i] = r * z[i - 1] + e[i]
        m, se = noise.time_average(z, 20)
        means.append(m)
        ses.append(se)
    true_se = np.sqrt((1 + r) / (1 - r) / (t * (1 - r**2)))
    assert np.std(means) == pytest.approx(true_se, rel=0.15)
    assert np.mean(ses) == pytest.approx(true_se, rel=0.15)


def test_bad_inputs_are_named():
    x, y = _data()
    with pytest.raises(ValueError, match="^learning_rate: expected a step size with a stationary"):
        noise.least_squares_stationary(x, y, 5.0, 2)
    with pytest.raises(ValueError, match="^batch_size: expected at most"):
        noise.least_squares_stationary(x, y, 0.1, 31)
    with pytest.raises(ValueError, match="^learning_rate"):
        noise.least_squares_stationary(x, y, -0.1, 2)
    with pytest.raises(ValueError, match="^y: expected shape"):
        noise.least_squares_stationary(x, y[:-1], 0.1, 2)
    with pytest.raises(ValueError, match="^x: expected X"):
        noise.least_squares_stationary(np.ones((10, 2)), y[:10], 0.1, 2)
    with pytest.raises(ValueError, match="^data: expected x and y"):
        noise.minibatch_noise(_objective, jnp.zeros(3), (x, y[:-1]), 2)
    with pytest.raises(TypeError, match="^objective"):
        noise.minibatch_noise(None, jnp.zeros(3), (x, y), 2)
    with pytest.raises(ValueError, match="^series: expected at least"):
        noise.time_average(np.ones(5), 10)
    with pytest.raises(TypeError, match="^replace"):
        noise.noise_factor(10, 2, replace=1)


def test_theta_dot_grad_complex_params_is_real_pairing():
    """L = |theta|^2: the real gradient is 2 theta, so theta . grad = 2 sum |theta|^2."""
    theta = jnp.array([1.0 + 2.0j, -0.5j, 0.3])
    objective = lambda p, xy: jnp.sum(jnp.abs(p) ** 2) + 0.0 * jnp.sum(xy[0])
    x, y = jnp.ones((4, 1)), jnp.ones(4)
    out = noise.minibatch_noise(objective, theta, (x, y), 2)
    np.testing.assert_allclose(out["theta_dot_grad"], 2 * jnp.sum(jnp.abs(theta) ** 2), rtol=1e-6)
    np.testing.assert_allclose(out["grad_sq"], 4 * jnp.sum(jnp.abs(theta) ** 2), rtol=1e-6)
