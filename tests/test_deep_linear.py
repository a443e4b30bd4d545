"""Exact posterior of deep linear networks: sampler vs closed forms and independent routes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.signal import fftconvolve
from scipy.special import gammaln

from wideth.kernels import deep_linear as dl

P, N0 = 40, 80


def _data(rho=1.0, key=0, p=P, n0=N0):
    kx, kt = jax.random.split(jax.random.key(key))
    x = jax.random.normal(kx, (p, n0))
    th = jax.random.normal(kt, (n0,))
    return x, x @ (np.sqrt(rho) * th / jnp.linalg.norm(th))


def _log_factor(u, n):
    """Log density of log(chi^2_n / n) at u (closed form: a log-gamma)."""
    k, th = n / 2.0, 2.0 / n
    return k * u - np.exp(u) / th - gammaln(k) - k * np.log(th)


def _grid_posterior(widths, a, p, n0, sigma2=1.0):
    """Posterior mean/var of t = log s by FFT convolution of the closed-form factor densities."""
    h = 2e-4
    u = np.arange(-12, 4, h)
    dens = np.exp(_log_factor(u, widths[0]))
    start = u[0]
    for n in widths[1:]:
        dens = fftconvolve(dens, np.exp(_log_factor(u, n))) * h
        start += u[0]
    t = (len(widths) + 1) * np.log(sigma2) - np.log(n0) + start + h * np.arange(len(dens))
    lp = np.log(np.maximum(dens, 1e-300)) - p / 2 * t - a / 2 * np.exp(-t)
    w = np.exp(lp - lp.max())
    w /= w.sum()
    m = np.sum(w * t)
    return m, np.sum(w * (t - m) ** 2)


@pytest.mark.parametrize(
    "widths,rho,sigma2",
    [
        ((20,), 1.0, 1.0),
        pytest.param((10, 30), 4.0, 1.0, marks=pytest.mark.slow),
        pytest.param((8, 8, 8), 0.5, 1.3, marks=pytest.mark.slow),
    ],
)
@pytest.mark.slow
def test_posterior_scale_matches_closed_form_convolution(x64, widths, rho, sigma2):
    x, y = _data(rho)
    tp, _ = dl.interpolant(x, y)
    a = float(jnp.sum(tp**2))
    t = np.asarray(dl.posterior_log_scale(jax.random.key(1), x, y, widths, sigma2, 20_000))
    m, v = _grid_posterior(widths, a, P, N0, sigma2)
    se = np.sqrt(v / len(t))
    assert abs(t.mean() - m) < 4 * se
    assert abs(t.var() - v) < 4 * v * np.sqrt(2 / len(t))


def test_a_wrong_tilt_identity_would_be_caught(x64):
    """The convolution reference separates architectures: (10, 30) vs (10, 10) differ by >> SE."""
    x, y = _data(4.0)
    a = float(jnp.sum(dl.interpolant(x, y)[0] ** 2))
    m1, v1 = _grid_posterior((10, 30), a, P, N0)
    t = np.asarray(dl.posterior_log_scale(jax.random.key(1), x, y, (10, 10), 1.0, 20_000))
    assert abs(t.mean() - m1) > 10 * np.sqrt(v1 / len(t))


@pytest.mark.slow  # ~20 s: 50k products of random matrices
def test_prior_scale_matches_products_of_random_matrices(x64):
    widths, n0 = (5, 7), 6
    keys = jax.random.split(jax.random.key(0), 3)
    num = 50_000
    w1 = jax.random.normal(keys[0], (num, 5, n0)) / np.sqrt(n0)
    w2 = jax.random.normal(keys[1], (num, 7, 5)) / np.sqrt(5)
    w3 = jax.random.normal(keys[2], (num, 1, 7)) / np.sqrt(7)
    theta = (w3 @ w2 @ w1)[:, 0, :]
    sq = np.asarray(jnp.sum(theta**2, 1))  # |theta|^2 = s chi^2_{n0}
    s = np.exp(np.asarray(dl.prior_log_scale(jax.random.key(5), widths, n0, 1.0, num)))
    # E|theta|^2 = n0 E s = 1; E|theta|^4 = n0 (n0 + 2) E s^2
    assert abs(sq.mean() - n0 * s.mean()) < 4 * np.hypot(sq.std(), n0 * s.std()) / np.sqrt(num)
    m4, m4_s = (sq**2).mean(), n0 * (n0 + 2) * (s**2).mean()
    assert abs(m4 - m4_s) < 4 * np.hypot((sq**2).std(), n0 * (n0 + 2) * (s**2).std()) / np.sqrt(num)


@pytest.mark.slow  # ~13 s
def test_theta_interpolates_and_perp_part_is_isotropic(x64):
    x, y = _data()
    th = dl.posterior_theta(jax.random.key(0), x, y, (30, 30), 1.0, 4000)
    assert float(jnp.max(jnp.abs(th @ x.T - y))) < 1e-10
    tp, q = dl.interpolant(x, y)
    perp = th - tp
    assert float(jnp.max(jnp.abs(perp @ q))) < 1e-10
    # direction uniform: E[u u^T] = Pi_perp / (n0 - P); check the trace of one 2-d block
    u = perp / jnp.linalg.norm(perp, axis=1, keepdims=True)
    proj = jnp.eye(N0) - q @ q.T
    cov = np.asarray(u.T @ u / len(u))
    target = np.asarray(proj) / (N0 - P)
    assert np.max(np.abs(cov - target)) < 5 / np.sqrt(len(u)) / (N0 - P) * 3


def test_perp_norm_and_predictive_agree_with_the_scale_law(x64):
    x, y = _data()
    widths = (40, 60)
    t = np.asarray(dl.posterior_log_scale(jax.random.key(1), x, y, widths, 1.0, 20_000))
    nrm = np.asarray(dl.posterior_perp_norm(jax.random.key(2), x, y, widths, 1.0, 20_000))
    m = N0 - P
    # E|theta_perp|^2 = m E s
    se = np.hypot((nrm**2).std(), m * np.exp(t).std()) / np.sqrt(len(t))
    assert abs((nrm**2).mean() - m * np.exp(t).mean()) < 4 * se
    xt = jax.random.normal(jax.random.key(7), (3, N0))
    z = np.asarray(dl.predictive(jax.random.key(3), x, y, xt, widths, 1.0, 20_000))
    mean, var = dl.predictive_normal(x, y, xt, jnp.asarray(nrm))
    assert np.allclose(
        z.mean(0), np.asarray(mean), atol=4 * float(np.sqrt(var.mean(0).max() / 2e4))
    )
    # the variance of the mixture is E over |theta_perp| of the paper's conditional variance
    v_pred = np.asarray(var.mean(0))
    assert np.all(np.abs(z.var(0) - v_pred) < 4 * v_pred * np.sqrt(3 / 2e4) * 3)


def _gig_posterior(n1, a, p, n0, sigma2):
    """One hidden layer: the Meijer-G density G^{1,0}_{0,1} is a gamma, so the posterior of s
    is generalised inverse Gaussian (derived): s = c g with c = sigma2^2 / n0,
    g ~ Gamma(n1/2, scale 2/n1); times s^(-P/2) e^(-a/(2s)) the density is
    s^(lam - 1) exp(-(A s + B / s) / 2), lam = (n1 - P)/2, A = n1/c, B = a."""
    from scipy.stats import geninvgauss

    c = sigma2**2 / n0
    big_a, big_b = n1 / c, a
    return geninvgauss(n1 / 2 - p / 2, np.sqrt(big_a * big_b), scale=np.sqrt(big_b / big_a))


@pytest.mark.parametrize("n1,rho,sigma2", [(20, 1.0, 1.0), (60, 4.0, 1.3), (5, 0.5, 0.8)])
def test_one_hidden_layer_posterior_is_generalised_inverse_gaussian(x64, n1, rho, sigma2):
    """The whole law, not moments: KS distance of 4000 exact draws to the closed-form GIG
    below its 0.1% critical value 1.95/sqrt(n); the GIG of the wrong width is rejected."""
    x, y = _data(rho)
    a = float(jnp.sum(dl.interpolant(x, y)[0] ** 2))
    s = np.exp(np.asarray(dl.posterior_log_scale(jax.random.key(3), x, y, (n1,), sigma2, 4000)))
    crit = 1.95 / np.sqrt(len(s))
    from scipy.stats import kstest

    assert kstest(s, _gig_posterior(n1, a, P, N0, sigma2).cdf).statistic < crit
    wrong = _gig_posterior(int(1.5 * n1), a, P, N0, sigma2)
    assert kstest(s, wrong.cdf).statistic > crit


def test_shallow_model_is_a_fixed_scale(x64):
    x, y = _data()
    t = dl.posterior_log_scale(jax.random.key(0), x, y, (), 2.0, 10)
    assert np.allclose(np.asarray(t), np.log(2.0 / N0))
    s2 = float(dl.shallow_evidence_max_sigma2(x, y))
    a = float(jnp.sum(dl.interpolant(x, y)[0] ** 2))
    assert s2 == pytest.approx(N0 * a / P)


def test_large_width_limit_and_first_order_correction(x64):
    """At fixed lambda, exact posteriors approach the limit; first order predicts the gap."""
    x, y = _data(4.0)
    a = float(jnp.sum(dl.interpolant(x, y)[0] ** 2))
    lam = 1.0
    lim = dl.large_width_posterior(P, N0, a, lam)
    assert float(jnp.sum(lim.weights)) == pytest.approx(1.0)
    for widths in [(40,), (160,) * 4]:
        assert dl.effective_depth(P, widths) == pytest.approx(lam)
        m, v = _grid_posterior(widths, a, P, N0)
        dm, dv = dl.finite_width_correction(lim, widths, P, N0)
        assert abs(m - float(lim.mean + dm)) < 0.1 * abs(float(dm)) + 1e-4
        assert abs(v - float(lim.var + dv)) < 0.25 * abs(float(dv)) + 1e-5  # measured 0.18 at L=1
    with pytest.raises(ValueError, match="^widths"):
        dl.finite_width_correction(lim, (20,), P, N0)


@pytest.mark.slow  # ~14 s: compiles the whole sampler under an outer jit
def test_jittable_with_static_sizes(x64):
    x, y = _data()
    f = jax.jit(lambda k, x, y: dl.posterior_perp_norm(k, x, y, (20, 20), 1.0, 100))
    out = f(jax.random.key(0), x, y)
    assert out.shape == (100,) and bool(jnp.all(jnp.isfinite(out)))


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        (dict(x=np.ones((5, 3))), ValueError, "^x"),
        (dict(y=np.ones(3)), ValueError, "^y"),
        (dict(y=np.zeros(4)), ValueError, "^y"),
        (dict(widths=(3, 0)), ValueError, "^widths"),
        (dict(widths="3"), TypeError, "^widths"),
        (dict(sigma2=-1.0), ValueError, "^sigma2"),
        (dict(num_samples=0), ValueError, "^num_samples"),
        (dict(key=0), TypeError, "^key"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs, err, match):
    rng = np.random.default_rng(0)
    args = dict(
        key=jax.random.key(0),
        x=rng.normal(size=(4, 6)),
        y=np.ones(4),
        widths=(3,),
        sigma2=1.0,
        num_samples=10,
    )
    args.update(kwargs)
    with pytest.raises(err, match=match):
        dl.posterior_log_scale(**args)


def test_bad_inputs_other_entry_points():
    x, y = np.random.default_rng(0).normal(size=(4, 6)), np.ones(4)
    with pytest.raises(ValueError, match="^x_test"):
        dl.predictive_normal(x, y, np.ones((2, 5)), np.ones(3))
    with pytest.raises(ValueError, match="^perp_norm"):
        dl.predictive_normal(x, y, np.ones((2, 6)), -np.ones(3))
    with pytest.raises(ValueError, match="^num_points"):
        dl.effective_depth(0, (3,))
    with pytest.raises(ValueError, match="^lam"):
        dl.large_width_posterior(4, 6, 1.0, -1.0)
    with pytest.raises(ValueError, match="^par_sq_norm"):
        dl.large_width_posterior(4, 6, 0.0, 1.0)
    with pytest.raises(ValueError, match="^x"):
        dl.interpolant(np.ones((2, 6)), np.ones(2))  # rank 1
