"""Mean-field quantities against independent quadrature, published values and Monte Carlo.

References: Poole et al. 2016; Schoenholz et al. 2017 (tanh with sigma_b^2 = 0.05
critical at sigma_w^2 = 1.7610 with q* = 0.5700).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, optimize, special

from wideth import activations
from wideth.kernels import meanfield as mf

_PHI = {
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "erf": (special.erf, lambda x: 2 / np.sqrt(np.pi) * np.exp(-(x**2))),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float)),
    "identity": (lambda x: x, lambda x: np.ones_like(x)),
}


def _e1(f, q):
    """E_z[f(sqrt(q) z)] by scipy's adaptive quadrature (split at 0 for kinks)."""
    g = lambda z: f(np.sqrt(q) * z) * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
    return sum(
        integrate.quad(g, a, b, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
        for a, b in ((-np.inf, 0.0), (0.0, np.inf))
    )


_GX, _GW = np.polynomial.hermite_e.hermegauss(120)
_GW = _GW / np.sqrt(2 * np.pi)


def _e2(f, g, q, c):
    """E[f(u1) g(u2)] by a 120x120 Gauss-Hermite rule (accurate for q <~ 1)."""
    z1, z2 = _GX[:, None], _GX[None, :]
    u1 = np.sqrt(q) * z1
    u2 = np.sqrt(q) * (c * z1 + np.sqrt(1 - c * c) * z2)
    return np.sum(_GW[:, None] * _GW[None, :] * f(u1) * g(u2))


def _ref_fixed_point(act, w, b):
    phi, dphi = _PHI[act]
    q = optimize.brentq(
        lambda q: w * _e1(lambda u: phi(u) ** 2, q) + b - q, 1e-12, 100.0, xtol=1e-15, rtol=1e-15
    )
    return q, w * _e1(lambda u: dphi(u) ** 2, q)


@pytest.mark.parametrize("act,w,b", [("tanh", 1.3, 0.05), ("tanh", 2.5, 0.3), ("erf", 1.7, 0.1)])
def test_fixed_point_vs_scipy(x64, act, w, b):
    q, chi = mf.fixed_point(act, w, b)
    q_ref, chi_ref = _ref_fixed_point(act, w, b)
    np.testing.assert_allclose([q, chi], [q_ref, chi_ref], rtol=1e-10)
    phi = _PHI[act][0]
    for qq in (0.3, 4.0, 40.0):
        v = mf.variance_map(qq, act, w, b)
        np.testing.assert_allclose(v, w * _e1(lambda u: phi(u) ** 2, qq) + b, rtol=1e-11)


def test_relu_critical_is_he_init(x64):
    assert float(mf.critical_W_var("relu", 0.0)) == 2.0
    assert float(mf.critical_W_var("identity", 0.0)) == 1.0
    # chi_1 = W_var E[step(z)^2] with the step integrated by scipy, not by the module.
    half = _e1(lambda u: (u > 0).astype(float), 1.0)
    for w in (1.0, 2.0, 3.0):
        _, chi = mf.fixed_point("relu", w, 0.0)
        np.testing.assert_allclose(chi, w * half, rtol=1e-12)
    assert float(mf.fixed_point("relu", 2.0, 0.0)[1]) == 1.0
    q, _ = mf.fixed_point("relu", 1.5, 0.1)  # q* = b / (1 - W/2)
    np.testing.assert_allclose(q, _ref_fixed_point("relu", 1.5, 0.1)[0], rtol=1e-10)
    assert np.isinf(mf.fixed_point("relu", 2.5, 0.1)[0])


def test_tanh_criticality_published_values(x64):
    """Schoenholz et al. 2017: sigma_b^2 = 0.05 -> sigma_w^2 = 1.7610, q* = 0.5700."""
    w = float(mf.critical_W_var("tanh", 0.05))
    q, chi = mf.fixed_point("tanh", w, 0.05)
    assert round(w, 4) == 1.7610, w
    assert round(float(q), 4) == 0.5700, float(q)
    np.testing.assert_allclose(chi, 1.0, atol=1e-12)
    # Independent route: scipy brentq on chi_1(W) = 1 with scipy's q*.
    w_ref = optimize.brentq(
        lambda w: _ref_fixed_point("tanh", w, 0.05)[1] - 1, 1.0, 3.0, xtol=1e-13
    )
    np.testing.assert_allclose(w, w_ref, rtol=1e-9)
    # The 4-digit values are stable under the quadrature grid (not an artefact of it).
    w_coarse = float(mf.critical_W_var("tanh", 0.05, quad=(1001, 101)))
    np.testing.assert_allclose(w_coarse, w, rtol=1e-12)


def test_correlation_map_and_c_star(x64):
    # tanh, chaotic phase: c* < 1 solves C(c*) = c*, checked with an independent 2-d rule.
    w, b = 2.5, 0.05
    q, chi1 = _ref_fixed_point("tanh", w, b)
    assert chi1 > 1
    cs = float(mf.c_star("tanh", w, b))
    assert 0 < cs < 1
    c_next = (w * _e2(np.tanh, np.tanh, q, cs) + b) / q
    np.testing.assert_allclose(c_next, cs, atol=1e-8)
    for c in (-0.5, 0.2, 0.9):
        ref = (w * _e2(np.tanh, np.tanh, q, c) + b) / q
        np.testing.assert_allclose(mf.correlation_map(c, "tanh", w, b), ref, rtol=1e-8)
    # chi_c: Price's theorem value equals the finite-difference slope of C at c*.
    h = 1e-5
    slope = mf.correlation_map(cs + h, "tanh", w, b) - mf.correlation_map(cs - h, "tanh", w, b)
    np.testing.assert_allclose(mf.chi_c("tanh", w, b), slope / (2 * h), rtol=1e-7)
    # Ordered phase: c* = 1 and chi_c = chi_1.
    assert float(mf.c_star("tanh", 1.2, 0.05)) == 1.0
    np.testing.assert_allclose(
        mf.chi_c("tanh", 1.2, 0.05), mf.fixed_point("tanh", 1.2, 0.05)[1], rtol=1e-10
    )
    # ReLU: normalised arc-cosine map, independent of W at b = 0.
    th = np.arccos(0.3)
    np.testing.assert_allclose(
        mf.correlation_map(0.3, "relu", 2.0, 0.0),
        (np.sin(th) + (np.pi - th) * 0.3) / np.pi,
        rtol=1e-12,
    )
    # erf closed form vs quadrature.
    qe, _ = _ref_fixed_point("erf", 1.7, 0.1)
    ref = (1.7 * _e2(special.erf, special.erf, qe, 0.4) + 0.1) / qe
    np.testing.assert_allclose(mf.correlation_map(0.4, "erf", 1.7, 0.1), ref, rtol=1e-9)


@pytest.mark.parametrize("w", [1.3, 2.5])
def test_depth_scales_are_decay_rates(x64, w):
    """xi_q = -1/log V'(q*) and xi_c = -1/log C'(c*), by finite differences of the maps."""
    b = 0.05
    xi_q, xi_c = mf.depth_scales("tanh", w, b)
    q, _ = mf.fixed_point("tanh", w, b)
    h = 1e-5
    dv = (mf.variance_map(q + h, "tanh", w, b) - mf.variance_map(q - h, "tanh", w, b)) / (2 * h)
    np.testing.assert_allclose(xi_q, -1 / np.log(dv), rtol=1e-6)
    cs = float(mf.c_star("tanh", w, b))
    c0 = min(cs, 1 - 2 * h)
    dc = mf.correlation_map(c0 + h, "tanh", w, b) - mf.correlation_map(c0 - h, "tanh", w, b)
    np.testing.assert_allclose(xi_c, -1 / np.log(dc / (2 * h)), rtol=1e-4)
    # xi_c diverges at the edge of chaos.
    w_c = mf.critical_W_var("tanh", b)
    assert float(mf.depth_scales("tanh", w_c * 1.001, b)[1]) > 10 * float(xi_c)


def _mc_relative_variance(widths, activation, num_samples, seed):
    """Var(K_hat)/E[K_hat]^2 of K_hat = |x^L|^2 / n_L over random networks, with its SE."""
    rng = np.random.default_rng(seed)
    d = 16
    x = np.ones((num_samples, d), np.float32)
    fan = d
    w_var = 2.0 if activation == "relu" else 1.0
    for n in widths:
        w = rng.standard_normal((num_samples, fan, n), dtype=np.float32)
        h = np.einsum("si,sij->sj", x, w) * np.float32(np.sqrt(w_var / fan))
        x = np.maximum(h, 0) if activation == "relu" else h
        fan = n
    k = np.sum(x.astype(np.float64) ** 2, axis=1) / widths[-1]
    m1, m2 = k.mean(), (k**2).mean()
    r = m2 / m1**2 - 1
    grad = np.array([-2 * m2 / m1**3, 1 / m1**2])  # delta method for r(m1, m2)
    cov = np.cov(np.stack([k, k**2])) / num_samples
    return r, float(np.sqrt(grad @ cov @ grad))


@pytest.mark.parametrize("activation", ["relu", "identity"])
@pytest.mark.parametrize("n", [32, 128])
@pytest.mark.parametrize("depth", [1, 4, 8])
def test_nngp_diag_variance_monte_carlo(activation, n, depth):
    widths = [n] * depth
    num = 6000 if n == 32 else 1500
    r, se = _mc_relative_variance(widths, activation, num, seed=depth * 1000 + n)
    theory = float(mf.nngp_diag_variance(widths, activation))
    assert abs(r - theory) < 4 * se, (r, theory, se)
    # The constant matters: kappa - 1 = 5 (ReLU) vs 2 (linear) are told apart.
    other = float(mf.nngp_diag_variance(widths, "identity" if activation == "relu" else "relu"))
    if depth > 1 or n == 32:
        assert abs(r - other) > 4 * se


def test_nngp_diag_variance_formula():
    np.testing.assert_allclose(mf.nngp_diag_variance([100, 50], "relu"), 1.05 * 1.1 - 1, rtol=1e-6)
    np.testing.assert_allclose(mf.nngp_diag_variance([10] * 3, "identity"), 1.2**3 - 1, rtol=1e-6)
    # Small 1/n: ~ 5 L / n.
    np.testing.assert_allclose(mf.nngp_diag_variance([10**6] * 4), 20e-6, rtol=1e-4)


def test_bad_input():
    with pytest.raises(ValueError, match="activation"):
        mf.fixed_point("softplus", 1.0, 0.0)
    with pytest.raises(ValueError, match="W_var"):
        mf.fixed_point("tanh", -1.0, 0.0)
    with pytest.raises(ValueError, match="b_var"):
        mf.critical_W_var("tanh", float("nan"))
    with pytest.raises(ValueError, match="activation"):
        mf.nngp_diag_variance([32], "tanh")
    with pytest.raises(ValueError, match="widths"):
        mf.nngp_diag_variance([32, 0])
    with pytest.raises(ValueError, match="widths"):
        mf.nngp_diag_variance([])


def test_jittable():
    import jax

    f = jax.jit(lambda w: mf.fixed_point("tanh", w, 0.05)[0])
    g = jax.vmap(lambda q: mf.variance_map(q, "erf", 1.5, 0.1))
    assert jnp.isfinite(f(1.5))
    assert g(jnp.array([0.5, 1.0])).shape == (2,)


@pytest.mark.parametrize("activation", mf.ACTIVATIONS)
def test_derivative_matches_the_closed_form_and_autodiff(activation):
    x = np.linspace(-3.0, 3.0, 61) + 0.01  # away from relu's kink
    got = np.asarray(mf.derivative(activation, jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(got, _PHI[activation][1](x), rtol=2e-6, atol=1e-6)
    auto = jax.vmap(jax.grad(activations.get(activation)))(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(got, auto, rtol=2e-6, atol=1e-6)


def test_derivative_rejects_an_activation_outside_the_module():
    with pytest.raises(ValueError, match="^activation"):
        mf.derivative("gelu", 1.0)
