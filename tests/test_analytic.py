"""Analytic NNGP/NTK kernels against closed forms written independently in numpy.

ReLU: arc-cosine kernels (Cho & Saul 2009); erf: arcsin kernel (Williams 1997);
identity: linear recursion; tanh (numerical layer): a high-order numpy
quadrature of the same recursion and Monte Carlo over wide random networks.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wideth.kernels import analytic

# ---------------------------------------------------------------------------
# Independent numpy references of the infinite-width recursion (NTK param).
#   K^1 = W^2 x.x'/d + b^2,   Theta^1 = K^1
#   K^{l+1} = W^2 E[phi(u)phi(v)] + b^2,  Theta^{l+1} = K^{l+1} + W^2 E[phi'phi'] Theta^l
# ---------------------------------------------------------------------------


def _relu_moments(k11, k22, k12):
    norm = np.sqrt(k11 * k22)
    c = np.clip(k12 / norm, -1.0, 1.0)
    th = np.arccos(c)
    e_phi = norm * (np.sin(th) + (np.pi - th) * c) / (2 * np.pi)  # arc-cosine, degree 1
    e_dphi = (np.pi - th) / (2 * np.pi)  # arc-cosine, degree 0
    return e_phi, e_dphi


def _erf_moments(k11, k22, k12):
    a = (1 + 2 * k11) * (1 + 2 * k22)
    e_phi = 2 / np.pi * np.arcsin(2 * k12 / np.sqrt(a))
    e_dphi = 4 / np.pi / np.sqrt(a - 4 * k12**2)
    return e_phi, e_dphi


def _identity_moments(k11, k22, k12):
    return k12, np.ones_like(k12)


_Z = np.linspace(-10.0, 10.0, 801)
_ZW = np.exp(-0.5 * _Z**2)
_ZW /= _ZW.sum()


def _tanh_moments(k11, k22, k12):
    """E[tanh(u)tanh(v)], E[tanh'(u)tanh'(v)] by a 801x801 trapezoidal rule.

    The trapezoidal rule converges like exp(-pi^2 / (h sqrt(q))) for tanh
    (poles at i pi/2): below 1e-12 for variances q < 30 with h = 0.025.
    """
    z1, z2 = _Z[:, None], _Z[None, :]
    w = _ZW[:, None] * _ZW[None, :]
    e_phi = np.empty_like(k12)
    e_dphi = np.empty_like(k12)
    for idx in np.ndindex(k12.shape):
        a, b, c = k11[idx], k22[idx], k12[idx]
        s1 = np.sqrt(a)
        r = c / s1
        s2 = np.sqrt(max(b - r**2, 0.0))
        tu, tv = np.tanh(s1 * z1), np.tanh(r * z1 + s2 * z2)
        e_phi[idx] = np.sum(w * tu * tv)
        e_dphi[idx] = np.sum(w * (1 - tu**2) * (1 - tv**2))
    return e_phi, e_dphi


_MOMENTS = {
    "relu": _relu_moments,
    "erf": _erf_moments,
    "identity": _identity_moments,
    "tanh": _tanh_moments,
}


def _reference(x1, x2, depth, activation, W_std, b_std, pixel_average=False):
    """(NNGP, NTK) of `depth` hidden layers + readout; x of shape (n, d) or (n, P, d).

    With pixel_average the input is (n, P, d) and the readout averages the
    per-pixel kernels (a 1x1-conv network followed by Flatten + Dense).
    """
    w2, b2 = W_std**2, b_std**2
    x1 = np.asarray(x1, np.float64)
    x2 = np.asarray(x2, np.float64)
    if x1.ndim == 2:
        x1, x2 = x1[:, None, :], x2[:, None, :]
    d = x1.shape[-1]
    k12 = w2 * np.einsum("ipd,jpd->ijp", x1, x2) / d + b2
    k11 = w2 * np.einsum("ipd,ipd->ip", x1, x1)[:, None, :] / d + b2
    k22 = w2 * np.einsum("jpd,jpd->jp", x2, x2)[None, :, :] / d + b2
    k11, k22 = np.broadcast_to(k11, k12.shape), np.broadcast_to(k22, k12.shape)
    theta = k12.copy()
    moments = _MOMENTS[activation]
    for layer in range(depth):
        e_phi, e_dphi = moments(k11, k22, k12)
        d11, _ = moments(k11, k11, k11)
        d22, _ = moments(k22, k22, k22)
        if layer == depth - 1 and pixel_average:
            e_phi, e_dphi = e_phi.mean(-1, keepdims=True), (e_dphi * theta).mean(-1, keepdims=True)
            k12 = w2 * e_phi + b2
            theta = k12 + w2 * e_dphi
            return k12[..., 0], theta[..., 0]
        k12_new = w2 * e_phi + b2
        theta = k12_new + w2 * e_dphi * theta
        k12, k11, k22 = k12_new, w2 * d11 + b2, w2 * d22 + b2
    return k12[..., 0], theta[..., 0]


def _data(n, d, key=0, scale=1.0):
    return scale * jax.random.normal(jax.random.PRNGKey(key), (n, d), jnp.float64)


# ---------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2, 5])
@pytest.mark.parametrize("W_std,b_std", [(2**0.5, 0.0), (1.3, 0.4)])
def test_relu_arccos_nngp_ntk(x64, depth, W_std, b_std):
    x1, x2 = _data(6, 5, 0), _data(4, 5, 1)
    _, _, kernel_fn = analytic.mlp(depth, 64, "relu", W_std, b_std)
    nngp, ntk = analytic.kernel(kernel_fn, x1, x2, get=("nngp", "ntk"))
    assert nngp.dtype == jnp.float64
    ref_nngp, ref_ntk = _reference(x1, x2, depth, "relu", W_std, b_std)
    np.testing.assert_allclose(nngp, ref_nngp, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ntk, ref_ntk, rtol=1e-10, atol=1e-12)


def test_relu_symmetric_and_diagonal(x64):
    """x2=None path, including the diagonal (c = 1) where arccos is delicate."""
    x = _data(7, 3, 2)
    _, _, kernel_fn = analytic.mlp(3, 64, "relu")
    ntk = analytic.kernel(kernel_fn, x, get="ntk")
    _, ref = _reference(x, x, 3, "relu", 2**0.5, 0.0)
    np.testing.assert_allclose(ntk, ref, rtol=1e-7)
    # He init preserves the NNGP diagonal: K(x, x) = 2 |x|^2 / d at every depth.
    nngp = analytic.kernel(kernel_fn, x, get="nngp")
    np.testing.assert_allclose(np.diag(nngp), 2 * np.sum(np.asarray(x) ** 2, 1) / 3, rtol=1e-12)


@pytest.mark.parametrize("depth", [1, 3])
def test_erf_arcsin(x64, depth):
    x1, x2 = _data(5, 4, 3), _data(3, 4, 4)
    _, _, kernel_fn = analytic.mlp(depth, 64, "erf", 1.5, 0.2)
    nngp, ntk = analytic.kernel(kernel_fn, x1, x2, get=("nngp", "ntk"))
    ref_nngp, ref_ntk = _reference(x1, x2, depth, "erf", 1.5, 0.2)
    np.testing.assert_allclose(nngp, ref_nngp, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ntk, ref_ntk, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("depth", [0, 1, 4])
def test_identity_linear_network(x64, depth):
    x1, x2 = _data(5, 4, 5), _data(6, 4, 6)
    _, _, kernel_fn = analytic.mlp(depth, 64, "identity", 0.9, 0.3)
    nngp, ntk = analytic.kernel(kernel_fn, x1, x2, get=("nngp", "ntk"))
    # Closed form: K^{L+1} = W^{2(L+1)} G + b^2 sum_{l<=L} W^{2l}; Theta = sum over layers.
    w2, b2 = 0.81, 0.09
    g = np.asarray(x1) @ np.asarray(x2).T / 4
    ks = [w2 * g + b2]
    for _ in range(depth):
        ks.append(w2 * ks[-1] + b2)
    theta = sum(ks[l] * w2 ** (depth - l) for l in range(depth + 1))
    np.testing.assert_allclose(nngp, ks[-1], rtol=1e-12)
    np.testing.assert_allclose(ntk, theta, rtol=1e-12)


def test_standard_parameterization_same_nngp(x64):
    x = _data(4, 3, 7)
    _, _, k_ntk = analytic.mlp(2, 64, "relu", parameterization="ntk")
    _, _, k_std = analytic.mlp(2, 64, "relu", parameterization="standard")
    np.testing.assert_allclose(
        analytic.kernel(k_std, x, get="nngp"), analytic.kernel(k_ntk, x, get="nngp"), rtol=1e-12
    )


def test_cnn_1x1_flatten_is_pixel_averaged_mlp(x64):
    """1x1 convs + Flatten + Dense = per-pixel arc-cosine recursion averaged at the readout."""
    x1 = jax.random.normal(jax.random.PRNGKey(8), (3, 2, 2, 4), jnp.float64)
    x2 = jax.random.normal(jax.random.PRNGKey(9), (2, 2, 2, 4), jnp.float64)
    _, _, kernel_fn = analytic.cnn(2, 8, "relu", 1.4, 0.1, filter_shape=(1, 1), pool="flatten")
    nngp, ntk = analytic.kernel(kernel_fn, x1, x2, get=("nngp", "ntk"))
    ref_nngp, ref_ntk = _reference(
        x1.reshape(3, 4, 4), x2.reshape(2, 4, 4), 2, "relu", 1.4, 0.1, pixel_average=True
    )
    np.testing.assert_allclose(nngp, ref_nngp, rtol=1e-10)
    np.testing.assert_allclose(ntk, ref_ntk, rtol=1e-10)


# ---------------------------------------------------------------------------
# tanh through ElementwiseNumerical
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("depth,scale,tol", [(1, 1.0, 1e-6), (3, 2.0, 1e-4)])
def test_tanh_numerical_vs_quadrature(x64, depth, scale, tol):
    """The default quadrature (sized for max_input_sq=10) against an independent 801x801 rule.

    (1, 1.0): pre-activation variances <= ~2.6; (3, 2.0): first-layer variance ~10.
    """
    x1, x2 = _data(4, 3, 10, scale), _data(3, 3, 11, scale)
    _, _, kernel_fn = analytic.mlp(depth, 64, "tanh", 1.6, 0.3)
    nngp, ntk = analytic.kernel(kernel_fn, x1, x2, get=("nngp", "ntk"))
    ref_nngp, ref_ntk = _reference(x1, x2, depth, "tanh", 1.6, 0.3)
    err_n = np.abs(nngp - ref_nngp).max() / np.abs(ref_nngp).max()
    err_t = np.abs(ntk - ref_ntk).max() / np.abs(ref_ntk).max()
    assert err_n < tol and err_t < tol, (err_n, err_t)


@pytest.mark.slow
def test_tanh_more_points_converge(x64):
    """256 points drive the hard case below 1e-6 (the rule, not the model, errs)."""
    x1, x2 = _data(4, 3, 10, 2.0), _data(3, 3, 11, 2.0)
    _, _, kernel_fn = analytic.mlp(3, 64, "tanh", 1.6, 0.3, quadrature_points=256)
    nngp, ntk = analytic.kernel(kernel_fn, x1, x2, get=("nngp", "ntk"))
    ref_nngp, ref_ntk = _reference(x1, x2, 3, "tanh", 1.6, 0.3)
    assert np.abs(ntk - ref_ntk).max() / np.abs(ref_ntk).max() < 1e-6


def _sample_tanh_nngp(key, x, width, depth, W_std, b_std):
    """K_hat = W^2 phi(h^L) phi(h^L)^T / width + b^2 of one random tanh network."""
    h = x
    for layer in range(depth):
        key, kw, kb = jax.random.split(key, 3)
        inp = jnp.tanh(h) if layer else h
        w = jax.random.normal(kw, (inp.shape[1], width), x.dtype)
        h = W_std * inp @ w / jnp.sqrt(inp.shape[1]) + b_std * jax.random.normal(
            kb, (width,), x.dtype
        )
    phi = jnp.tanh(h)
    return W_std**2 * phi @ phi.T / width + b_std**2


def test_tanh_numerical_vs_monte_carlo(x64):
    """Monte Carlo over 16 random width-1024 tanh networks.

    Sampling error ~ 1/sqrt(16 * 1024) per entry; measured max relative error
    over 6 seeds 0.5%-2.3% (width 4096 x 4 samples, same product), tolerance 5%. The erf
    kernel with the same weights misses by 19%, so the test tells them apart.
    """
    x = _data(4, 3, 12)
    _, _, kernel_fn = analytic.mlp(2, 1024, "tanh", 1.5, 0.2)
    exact = np.asarray(analytic.kernel(kernel_fn, x, get="nngp"))
    keys = jax.random.split(jax.random.PRNGKey(0), 16)
    sample = jax.jit(jax.vmap(lambda k: _sample_tanh_nngp(k, x, 1024, 2, 1.5, 0.2)))
    mc = np.asarray(sample(keys)).mean(0)
    err = np.abs(mc - exact).max() / np.abs(exact).max()
    assert err < 0.05, err
    _, _, kernel_erf = analytic.mlp(2, 1024, "erf", 1.5, 0.2)
    wrong = np.asarray(analytic.kernel(kernel_erf, x, get="nngp"))
    assert np.abs(mc - wrong).max() / np.abs(exact).max() > 0.1


# ---------------------------------------------------------------------------
# Batching, dtype, bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [4, 5, 50])
def test_batching_non_dividing_equals_unbatched(x64, batch_size):
    x1, x2 = _data(13, 3, 13), _data(7, 3, 14)
    _, _, kernel_fn = analytic.mlp(2, 64, "erf", 1.2, 0.1)
    full = analytic.kernel(kernel_fn, x1, x2, get=("nngp", "ntk"))
    batched = analytic.kernel(kernel_fn, x1, x2, get=("nngp", "ntk"), batch_size=batch_size)
    for a, b in zip(full, batched, strict=True):
        assert b.shape == (13, 7)
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-14)
    sym = analytic.kernel(kernel_fn, x1, get="ntk", batch_size=batch_size)
    np.testing.assert_allclose(sym, analytic.kernel(kernel_fn, x1, get="ntk"), rtol=1e-13)


def test_batching_cnn(x64):
    x = jax.random.normal(jax.random.PRNGKey(15), (5, 3, 3, 2), jnp.float64)
    _, _, kernel_fn = analytic.cnn(1, 8, "gelu", pool="avg")
    np.testing.assert_allclose(
        analytic.kernel(kernel_fn, x, get="ntk", batch_size=2),
        analytic.kernel(kernel_fn, x, get="ntk"),
        rtol=1e-12,
    )


def test_float64_on_request_restores_flag():
    assert not jax.config.jax_enable_x64
    x = jax.random.normal(jax.random.PRNGKey(16), (5, 3))
    _, _, kernel_fn = analytic.mlp(3, 64, "relu")
    k64 = analytic.kernel(kernel_fn, x, get="ntk", dtype=jnp.float64, batch_size=2)
    assert k64.dtype == jnp.float64
    assert not jax.config.jax_enable_x64
    k32 = analytic.kernel(kernel_fn, x, get="ntk")
    assert k32.dtype == jnp.float32
    _, ref = _reference(x, x, 3, "relu", 2**0.5, 0.0)
    np.testing.assert_allclose(k64, ref, rtol=1e-9)
    # float32 error is dominated by arccos near c = 1 on the diagonal.
    np.testing.assert_allclose(k32, ref, rtol=1e-3)


def test_bad_input():
    x = jnp.ones((4, 3))
    _, _, kernel_fn = analytic.mlp(1, 8)
    with pytest.raises(ValueError, match="activation"):
        analytic.mlp(1, 8, activation="softplus")
    with pytest.raises(ValueError, match="parameterization"):
        analytic.mlp(1, 8, parameterization="mup")
    with pytest.raises(ValueError, match="activation"):
        analytic.cnn(1, 8, activation="swish")
    with pytest.raises(ValueError, match="pool"):
        analytic.cnn(1, 8, pool="max")
    with pytest.raises(ValueError, match="depth"):
        analytic.mlp(-1, 8)
    with pytest.raises(ValueError, match="^x2"):
        analytic.kernel(kernel_fn, x, jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="x1"):
        analytic.kernel(kernel_fn, x.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="x2"):
        analytic.kernel(kernel_fn, x, x.at[1, 2].set(jnp.inf))
    with pytest.raises(ValueError, match="get"):
        analytic.kernel(kernel_fn, x, get="jacobian")
    with pytest.raises(ValueError, match="get"):
        analytic.kernel(kernel_fn, x, get=("nngp", "ntk2"))
    with pytest.raises(ValueError, match="batch_size"):
        analytic.kernel(kernel_fn, x, batch_size=-2)
    with pytest.raises(ValueError, match="dtype"):
        analytic.kernel(kernel_fn, x, dtype=jnp.int32)
    with pytest.raises(ValueError, match="x1"):
        analytic.kernel(kernel_fn, jnp.ones(3))
