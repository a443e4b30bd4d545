"""models.ResNet (with LayerNorm) and models.MLP with new activations vs analytic kernels.

Tolerances, as in tests/test_models.py (float32):
* forward map with neural-tangents' own parameters: rtol 1e-5 (same formula);
* Monte Carlo NNGP over 2048 inits x 4 outputs at width 128: max |K_mc - K| /
  sqrt(K_ii K_jj) < 0.05 (standard error of one entry ~ sqrt(2/8192) = 1.6%, plus
  O(1/width) finite-width bias);
* empirical NTK (mean of 3 inits) vs analytic: relative Frobenius error falls with
  width like width^(-1/2) (ratio 4 from 64 to 1024); asserted: error at 1024 < 0.1
  and error(64) / error(1024) > 2.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ntk_reference import load_nt_transformer_params

from wideth import models
from wideth.kernels import analytic

pytestmark = pytest.mark.filterwarnings("ignore:`FanIn` layers assume")


def _x(n=6, d=5, seed=1):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, d), jnp.float32)


def _set(var, value):
    var[...] = jnp.asarray(value, jnp.float32).reshape(var[...].shape)


def _dense_params(nt_params):
    """(W, b) pairs of the Dense layers of a neural-tangents parameter tree, in order."""
    leaves = jax.tree.leaves(nt_params)
    return list(zip(leaves[0::2], leaves[1::2], strict=True))


@pytest.mark.parametrize(
    "layernorm,parameterization,b_std",
    [
        (None, "ntk", 0.3),
        ("pre", "ntk", 0.3),
        pytest.param("post", "ntk", None, marks=pytest.mark.slow),
        (None, "standard", None),
    ],
)
def test_resnet_forward_equals_neural_tangents_with_its_params(layernorm, parameterization, b_std):
    x = _x()
    init_fn, apply_fn, _ = analytic.resnet(
        3, 16, "erf", 1.3, b_std, parameterization, out_dim=2, layernorm=layernorm
    )
    _, nt_params = init_fn(jax.random.PRNGKey(0), x.shape)
    net = models.ResNet(
        5,
        16,
        3,
        2,
        activation="erf",
        W_std=1.3,
        b_std=b_std,
        parameterization=parameterization,
        layernorm=layernorm,
        rngs=nnx.Rngs(0),
    )
    layers = [net.embed, *net.blocks, net.readout]
    if b_std is None:
        weights = jax.tree.leaves(nt_params)
        assert len(weights) == len(layers)
        for layer, w in zip(layers, weights, strict=True):
            _set(layer.w, w)
    else:
        for layer, (w, b) in zip(layers, _dense_params(nt_params), strict=True):
            _set(layer.w, w)
            _set(layer.b, b)
    np.testing.assert_allclose(net(x), apply_fn(nt_params, x), rtol=1e-5, atol=1e-5)


def _mc_nngp(make, x, inits=2048):
    def outputs(k):
        return make(k)(x)

    keys = jax.random.split(jax.random.PRNGKey(0), inits)
    f = jax.lax.map(jax.vmap(outputs), keys.reshape(16, inits // 16, *keys.shape[1:]))
    f = f.reshape(-1, x.shape[0], f.shape[-1])
    return jnp.einsum("mio,mjo->ij", f, f) / (f.shape[0] * f.shape[2])


def _normalised_err(k_mc, k):
    d = jnp.sqrt(jnp.diag(k))
    return float(jnp.max(jnp.abs(k_mc - k) / jnp.outer(d, d)))


@pytest.mark.parametrize(
    "layernorm",
    [
        pytest.param(None, marks=pytest.mark.slow),
        pytest.param("pre", marks=pytest.mark.slow),
        pytest.param("post", marks=pytest.mark.slow),
    ],
)
def test_resnet_init_covariance_matches_analytic_nngp(layernorm):
    x = _x(6, 5)
    kw = dict(activation="relu", W_std=2**0.5, b_std=0.2, layernorm=layernorm)
    k_mc = _mc_nngp(lambda k: models.ResNet(5, 128, 3, 4, rngs=nnx.Rngs(params=k), **kw), x)
    _, _, kernel_fn = analytic.resnet(3, 128, "relu", 2**0.5, 0.2, layernorm=layernorm)
    k = analytic.kernel(kernel_fn, x, get="nngp")
    err = _normalised_err(k_mc, k)
    assert err < 0.05, err
    # the wrong normalisation is outside the tolerance
    _, _, other = analytic.resnet(
        3, 128, "relu", 2**0.5, 0.2, layernorm=None if layernorm else "pre"
    )
    assert _normalised_err(k_mc, analytic.kernel(other, x, get="nngp")) > 0.05


@pytest.mark.slow
def test_mlp_new_activation_and_no_bias_init_covariance():
    """One hidden layer of leaky_relu(0.2), then of sin(a=1.2), b_std=None: MC vs analytic NNGP."""
    x = _x(6, 5)
    for act in [("leaky_relu", {"alpha": 0.2}), ("sin", {"a": 1.2})]:
        kwargs = dict(activation=act, W_std=1.4, b_std=None)
        k_mc = _mc_nngp(
            lambda k, kw=kwargs: models.MLP(5, 128, 1, 4, rngs=nnx.Rngs(params=k), **kw), x
        )
        _, _, kernel_fn = analytic.mlp(1, 128, act, 1.4, None)
        assert _normalised_err(k_mc, analytic.kernel(kernel_fn, x, get="nngp")) < 0.05
    _, _, wrong = analytic.mlp(1, 128, ("sin", {"a": 1.2, "b": 1.3}), 1.4, None)
    assert _normalised_err(k_mc, analytic.kernel(wrong, x, get="nngp")) > 0.05


@pytest.mark.slow
def test_resnet_layernorm_empirical_ntk_converges_to_analytic():
    empirical = pytest.importorskip("wideth.kernels.empirical")
    x = _x(6, 5)
    _, _, kernel_fn = analytic.resnet(2, 1, "relu", 2**0.5, 0.1, layernorm="pre")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = np.asarray(analytic.kernel(kernel_fn, x, get="ntk"))
    errs = {}
    for width in (64, 1024):
        e = []
        for seed in range(3):
            net = models.ResNet(5, width, 2, 1, b_std=0.1, layernorm="pre", rngs=nnx.Rngs(seed))
            theta = np.asarray(empirical.ntk(net, None, x))
            e.append(np.linalg.norm(theta - k) / np.linalg.norm(k))
        errs[width] = float(np.mean(e))
    assert errs[1024] < 0.1, errs
    assert errs[64] / errs[1024] > 2, errs


@pytest.mark.parametrize(
    "pool,padding,strides,b_std",
    [
        ("avg", "SAME", (1, 1), 0.3),
        pytest.param("sum", "SAME", (2, 2), None, marks=pytest.mark.slow),
        pytest.param("flatten", "VALID", (1, 2), 0.3, marks=pytest.mark.slow),
    ],
)
def test_cnn_options_forward_equals_neural_tangents_with_its_params(pool, padding, strides, b_std):
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 8, 8, 2))
    init_fn, apply_fn, _ = analytic.cnn(
        2, 4, "relu", 1.2, b_std, "ntk", 5, (3, 3), pool, padding=padding, strides=strides
    )
    _, nt_params = init_fn(jax.random.PRNGKey(0), x.shape)
    net = models.CNN(
        2,
        4,
        5,
        2,
        W_std=1.2,
        b_std=b_std,
        pool=pool,
        spatial=(8, 8),
        padding=padding,
        strides=strides,
        rngs=nnx.Rngs(0),
    )
    layers = [*net.convs, net.readout]
    if b_std is None:
        for layer, w in zip(layers, jax.tree.leaves(nt_params), strict=True):
            _set(layer.w, w)
    else:
        for layer, (w, b) in zip(layers, _dense_params(nt_params), strict=True):
            _set(layer.w, w)
            _set(layer.b, b)
    np.testing.assert_allclose(net(x), apply_fn(nt_params, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "layernorm,b_std,pool",
    [(None, 0.3, "global"), pytest.param("post", None, "flatten", marks=pytest.mark.slow)],
)
@pytest.mark.slow
def test_transformer_forward_equals_neural_tangents_with_its_params(layernorm, b_std, pool):
    x = jax.random.normal(jax.random.PRNGKey(2), (3, 5, 4))
    kw = dict(W_qk_std=1.3, W_value_std=0.8, layernorm=layernorm, pool=pool)
    init_fn, apply_fn, _ = analytic.transformer(2, 8, 2, "erf", 1.2, b_std, out_dim=3, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, nt_params = init_fn(jax.random.PRNGKey(0), x.shape)
    net = models.Transformer(
        4, 8, 2, 3, 2, activation="erf", W_std=1.2, b_std=b_std, tokens=5, rngs=nnx.Rngs(0), **kw
    )
    load_nt_transformer_params(net, nt_params, b_std)
    np.testing.assert_allclose(net(x), apply_fn(nt_params, x), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_transformer_init_covariance_matches_analytic_nngp():
    """2048 inits x 4 outputs, width 128, 4 heads: measured 0.025; uniform attention 0.26."""
    x = jax.random.normal(jax.random.PRNGKey(2), (4, 3, 4))
    kw = dict(W_std=1.3, b_std=0.2, W_qk_std=1.5, layernorm="post")
    k_mc = _mc_nngp(lambda k: models.Transformer(4, 128, 1, 4, 4, rngs=nnx.Rngs(params=k), **kw), x)
    errs = {}
    for qk in (1.5, 0.0):
        _, _, kernel_fn = analytic.transformer(
            1, 128, 4, "relu", 1.3, 0.2, W_qk_std=qk, layernorm="post"
        )
        errs[qk] = _normalised_err(k_mc, analytic.kernel(kernel_fn, x, get="nngp"))
    assert errs[1.5] < 0.05 and errs[0.0] > 0.05, errs
