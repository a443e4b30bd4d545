"""Tests of wideth.models: NT-equivalence, init distribution, functional API, muP.

Tolerances (float32 unless stated):
* forward map with neural-tangents' own parameters: rtol 1e-5 (same formula);
* Monte Carlo NNGP over 2048 inits x 4 outputs at width 128 vs the analytic
  kernel: max |K_mc - K| / sqrt(K_ii K_jj) < 0.05 (MC standard error ~1.5%, finite
  width bias O(1/width); measured 0.019 relu/ntk, 0.022 erf/standard; with 1024
  inits 0.043, too close to the bound);
* empirical NTK at width 1024 vs analytic NTK: relative Frobenius error < 0.1
  (mean of 3 inits; measured 0.043), and smaller than at width 64 (0.28);
* muP coordinate check (widths 64 and 1024, 2 seeds, 4 SGD steps): feature change ratio width 1024 /
  width 64 within [0.6, 1.7] for muP, below 0.45 for ntk (theory 1 and 1/4;
  measured 0.95/0.72 and 0.26/0.33 for the two hidden layers).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from wideth import models
from wideth.kernels import analytic


def _x(n=6, d=5, seed=1):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, d), jnp.float32)


def _set(var, value):
    var[...] = jnp.asarray(value, jnp.float32).reshape(var[...].shape)


# ----------------------------------------------------------------------------- NT equivalence


@pytest.mark.parametrize("activation", ["relu", "erf", "tanh", "gelu", "identity"])
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_mlp_forward_equals_neural_tangents_with_its_params(activation, parameterization):
    x = _x()
    init_fn, apply_fn, _ = analytic.mlp(
        2, 16, activation, W_std=1.3, b_std=0.4, parameterization=parameterization, out_dim=3
    )
    _, nt_params = init_fn(jax.random.PRNGKey(0), x.shape)
    net = models.MLP(
        5,
        16,
        2,
        3,
        activation=activation,
        W_std=1.3,
        b_std=0.4,
        parameterization=parameterization,
        rngs=nnx.Rngs(0),
    )
    dense = [p for p in nt_params if p]
    for layer, (w, b) in zip([*net.hidden, net.readout], dense, strict=True):
        _set(layer.w, w)
        _set(layer.b, b)
    np.testing.assert_allclose(net(x), apply_fn(nt_params, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pool", ["global", "flatten"])
def test_cnn_forward_equals_neural_tangents_with_its_params(pool):
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 6, 6, 2))
    init_fn, apply_fn, _ = analytic.cnn(
        2, 4, "relu", W_std=1.2, b_std=0.3, out_dim=5, filter_shape=(3, 3), pool=pool
    )
    _, nt_params = init_fn(jax.random.PRNGKey(0), x.shape)
    net = models.CNN(2, 4, 5, 2, W_std=1.2, b_std=0.3, pool=pool, spatial=(6, 6), rngs=nnx.Rngs(0))
    dense = [p for p in nt_params if p]
    assert len(dense) == 3
    for layer, (w, b) in zip([*net.convs, net.readout], dense, strict=True):
        _set(layer.w, w)
        _set(layer.b, b)
    np.testing.assert_allclose(net(x), apply_fn(nt_params, x), rtol=1e-5, atol=1e-6)


def test_stored_parameter_distributions():
    ntk = models.MLP(300, 400, 1, 1, W_std=1.5, b_std=0.5, rngs=nnx.Rngs(0))
    std = models.MLP(
        300, 400, 1, 1, W_std=1.5, b_std=0.5, parameterization="standard", rngs=nnx.Rngs(0)
    )
    w_ntk, w_std = ntk.hidden[0].w[...], std.hidden[0].w[...]
    assert abs(float(jnp.std(w_ntk)) - 1.0) < 0.01
    assert abs(float(jnp.std(w_std)) - 1.5 / 300**0.5) < 0.01 * 1.5 / 300**0.5
    assert abs(float(jnp.std(std.hidden[0].b[...])) - 0.5) < 0.1
    # ntk stores N(0,1) and multiplies: the two give the same function on the same draw
    assert ntk.hidden[0].w_mult == pytest.approx(1.5 / 300**0.5)


@pytest.mark.parametrize(
    "activation,parameterization,W_std,b_std",
    [
        ("relu", "ntk", 2**0.5, 0.2),
        pytest.param("erf", "standard", 1.6, 0.3, marks=pytest.mark.slow),
    ],
)
@pytest.mark.slow
def test_init_output_covariance_matches_analytic_nngp(activation, parameterization, W_std, b_std):
    x = _x(6, 5)
    kw = dict(activation=activation, W_std=W_std, b_std=b_std, parameterization=parameterization)

    def outputs(k):
        return models.MLP(5, 128, 2, 4, rngs=nnx.Rngs(params=k), **kw)(x)

    keys = jax.random.split(jax.random.PRNGKey(0), 2048)
    f = jax.lax.map(jax.vmap(outputs), keys.reshape(16, 128, *keys.shape[1:]))
    f = f.reshape(-1, 6, 4)  # (inits, n, outputs)
    k_mc = jnp.einsum("mio,mjo->ij", f, f) / (f.shape[0] * f.shape[2])
    _, _, kernel_fn = analytic.mlp(2, 128, activation, W_std, b_std, parameterization)
    k = analytic.kernel(kernel_fn, x, get="nngp")
    d = jnp.sqrt(jnp.diag(k))
    err = float(jnp.max(jnp.abs(k_mc - k) / jnp.outer(d, d)))
    assert err < 0.05, err


def test_empirical_ntk_converges_to_analytic_ntk():
    empirical = pytest.importorskip("wideth.kernels.empirical")
    x = _x(6, 5)
    _, _, kernel_fn = analytic.mlp(2, 1, "relu", 2**0.5, 0.1)
    k = np.asarray(analytic.kernel(kernel_fn, x, get="ntk"))
    errs = {}
    for width in (64, 1024):
        e = []
        for seed in range(3):
            net = models.MLP(5, width, 2, 1, b_std=0.1, rngs=nnx.Rngs(seed))
            theta = np.asarray(empirical.ntk(net, None, x))
            e.append(np.linalg.norm(theta - k) / np.linalg.norm(k))
        errs[width] = float(np.mean(e))
    assert errs[1024] < 0.1, errs  # measured 0.043 (0.28 at width 64)
    assert errs[1024] < errs[64], errs


# ----------------------------------------------------------------------------- functional


def test_functional_roundtrip_jit_vmap_grad():
    net = models.MLP(5, 32, 2, 3, activation="tanh", rngs=nnx.Rngs(0))
    x = _x()
    apply_fn, params = models.functional(net)
    y0 = net(x)
    np.testing.assert_allclose(jax.jit(apply_fn)(params, x), y0, rtol=1e-6)
    # a changed parameter tree changes the output; nnx.update writes it back
    p2 = jax.tree.map(lambda a: 1.1 * a, params)
    y2 = apply_fn(p2, x)
    assert not np.allclose(y2, net(x))
    nnx.update(net, p2)
    np.testing.assert_allclose(net(x), y2, rtol=1e-6)
    # params is not aliased to the module: the old params still give the old outputs
    np.testing.assert_allclose(apply_fn(params, x), y0, rtol=1e-6)
    # vmap over stacked params of several inits
    nets = [models.MLP(5, 32, 2, 3, activation="tanh", rngs=nnx.Rngs(s)) for s in range(3)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *[models.functional(m)[1] for m in nets])
    out = jax.vmap(apply_fn, in_axes=(0, None))(stacked, x)
    for i, m in enumerate(nets):
        np.testing.assert_allclose(out[i], m(x), rtol=1e-5)
    # gradients are a pytree like params
    g = jax.grad(lambda p: jnp.sum(apply_fn(p, x) ** 2))(params)
    assert jax.tree.structure(g) == jax.tree.structure(params)
    # features method
    feat_fn, _ = models.functional(net, "features")
    assert [h.shape for h in feat_fn(p2, x)] == [(6, 32), (6, 32)]
    assert hash(apply_fn) == hash(models.functional(net)[0])


def test_functional_under_nnx_jit_matches():
    net = models.CNN(1, 4, 3, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 1))
    apply_fn, params = models.functional(net)
    np.testing.assert_allclose(nnx.jit(lambda m, x: m(x))(net, x), apply_fn(params, x), rtol=1e-5)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="activation"):
        models.MLP(3, 4, 1, activation="swish", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="parameterization"):
        models.MLP(3, 4, 1, parameterization="abc", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="depth"):
        models.MLP(3, 4, -1, rngs=nnx.Rngs(0))
    net = models.MLP(3, 4, 1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="last dimension 3"):
        net(jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="spatial"):
        models.CNN(1, 4, 2, pool="flatten", rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="module"):
        models.functional(lambda x: x)


# ----------------------------------------------------------------------------- ResNet


def test_resnet_forward_variance_follows_residual_recursion():
    # ReLU, W_std^2 = 2, b_std = 0: q^l = q^{l-1} (1 + alpha^2), alpha^2 = 1/D,
    # so E[h^D_i^2] = q^0 (1 + 1/D)^D and E[relu(h^D)^2] = q^D / 2.
    depth, width = 4, 256
    x = _x(4, 5)
    q0 = 2.0 * jnp.sum(x**2, axis=1) / 5

    def last(k):
        net = models.ResNet(5, width, depth, 1, rngs=nnx.Rngs(params=k))
        return jnp.mean(net.features(x)[-1] ** 2, axis=-1)

    keys = jax.random.split(jax.random.PRNGKey(0), 64).reshape(4, 16, -1)
    m = jnp.mean(jax.lax.map(jax.vmap(last), keys).reshape(64, -1), axis=0)
    expected = q0 * (1 + 1 / depth) ** depth / 2
    np.testing.assert_allclose(m, expected, rtol=0.05)
    net = models.ResNet(5, 16, depth, 2, rngs=nnx.Rngs(0))
    assert len(net.features(x)) == depth + 1 and net(x).shape == (4, 2)


def test_conv_resnet_with_1x1_filters_is_pixelwise_resnet_then_average():
    # a 1x1 convolution is a dense layer per pixel and the readout is linear, so
    # ConvResNet(x) = mean over pixels of ResNet(pixel) with the same weights
    conv = models.ConvResNet(2, 8, 3, 3, filter_shape=(1, 1), b_std=0.2, rngs=nnx.Rngs(0))
    dense = models.ResNet(2, 8, 3, 3, b_std=0.2, rngs=nnx.Rngs(1))
    for c, d in zip([conv.embed, *conv.blocks], [dense.embed, *dense.blocks], strict=True):
        _set(d.w, c.w[...].reshape(d.w[...].shape))
        _set(d.b, c.b[...])
    _set(dense.readout.w, conv.readout.w[...])
    _set(dense.readout.b, conv.readout.b[...])
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 4, 2))
    pixelwise = dense(x.reshape(-1, 2)).reshape(2, 20, 3).mean(axis=1)
    np.testing.assert_allclose(conv(x), pixelwise, rtol=1e-5, atol=1e-6)
    assert len(conv.features(x)) == 4
    assert models.mup_labels(conv) is not None


# ----------------------------------------------------------------------------- muP


def test_mup_labels_and_multipliers():
    net = models.MLP(5, 256, 2, 3, parameterization="mup", rngs=nnx.Rngs(0))
    labels = models.mup_labels(net)
    _, params = models.functional(net)
    assert jax.tree.structure(labels) == jax.tree.structure(params)
    flat = {tuple(p): v for p, v in nnx.to_flat_state(labels)}
    assert flat[("hidden", 0, "w")] == "input"
    assert flat[("hidden", 1, "w")] == "hidden"
    assert flat[("readout", "w")] == "readout"
    assert flat[("hidden", 1, "b")] == "bias" and flat[("readout", "b")] == "readout_bias"
    sgd = {tuple(p): v for p, v in nnx.to_flat_state(models.mup_multipliers(net, "sgd", 64))}
    adam = {tuple(p): v for p, v in nnx.to_flat_state(models.mup_multipliers(net, "adam", 64))}
    assert sgd[("hidden", 0, "w")] == 4.0 and sgd[("hidden", 1, "w")] == 1.0
    assert sgd[("readout", "w")] == 4.0 and sgd[("readout", "b")] == 1.0
    assert adam[("hidden", 1, "w")] == 0.25 and adam[("hidden", 0, "w")] == 1.0
    # usable with optax.multi_transform
    tx = optax.multi_transform(
        {k: optax.sgd(0.1) for k in ("input", "hidden", "readout", "bias", "readout_bias")},
        labels,
    )
    state = tx.init(params)
    updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
    assert jax.tree.structure(updates) == jax.tree.structure(params)
    with pytest.raises(ValueError, match="optimizer"):
        models.mup_multipliers(net, "rmsprop")


def test_mup_readout_output_scale_at_init_shrinks_like_inverse_sqrt_width():
    x = _x(8, 5)
    stds = []
    for width in (64, 1024):
        outs = [
            models.MLP(5, width, 2, 4, parameterization="mup", rngs=nnx.Rngs(s))(x)
            for s in range(4)
        ]
        stds.append(float(jnp.std(jnp.stack(outs))))
    assert 2.5 < stds[0] / stds[1] < 6.5  # theory: sqrt(1024 / 64) = 4


def _feature_change(parameterization, width, x, y, lr, steps=4, seeds=(0, 1), optimizer="sgd"):
    nets = [
        models.MLP(16, width, 2, 1, parameterization=parameterization, rngs=nnx.Rngs(s))
        for s in seeds
    ]
    # same graph for every seed: one compiled step serves all of them
    apply_fn, _ = models.functional(nets[0])
    feat_fn, _ = models.functional(nets[0], "features")
    tx = optax.adam(lr) if optimizer == "adam" else optax.sgd(lr)
    if parameterization == "mup":
        mult = models.mup_multipliers(nets[0], optimizer, base_width=64)
        tx = optax.chain(tx, models.scale_by_multipliers(mult))

    @jax.jit
    def train(p):
        def step(carry, _):
            p, s = carry
            g = jax.grad(lambda q: 0.5 * jnp.mean((apply_fn(q, x) - y) ** 2))(p)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (p1, _), _ = jax.lax.scan(step, (p, tx.init(p)), None, length=steps)
        h0, h1 = feat_fn(p, x), feat_fn(p1, x)
        return jnp.stack([jnp.sqrt(jnp.mean((a - b) ** 2)) for a, b in zip(h1, h0)])

    return np.mean([np.asarray(train(models.functional(n)[1])) for n in nets], axis=0)


def test_mup_coordinate_check():
    # Yang et al. 2021 (TP V) coordinate check: in muP the per-coordinate change of
    # every hidden layer's activations after a few SGD steps is Theta(1) in width;
    # in the NTK parameterization it shrinks like width^{-1/2} (lazy training).
    from wideth import data

    x, y = data.synthetic_regression(jax.random.PRNGKey(0), 64, 16, target="sin")
    ratios = {}
    for par in ("mup", "ntk"):
        d = {w: _feature_change(par, w, x, y, lr=0.5) for w in (64, 1024)}
        ratios[par] = d[1024] / d[64]
        assert np.all(d[1024] > 0)
    assert np.all((ratios["mup"] > 0.6) & (ratios["mup"] < 1.7)), ratios
    assert np.all(ratios["ntk"] < 0.45), ratios


@pytest.mark.slow
def test_mup_coordinate_check_adam():
    # Adam convention of mup_multipliers: hidden rate / width. Standard
    # parameterization with one Adam rate makes the hidden-layer change grow with
    # width (measured x3.4 from 64 to 1024); muP keeps it flat (measured 1.02, 0.77).
    from wideth import data

    x, y = data.synthetic_regression(jax.random.PRNGKey(0), 64, 16, target="sin")
    ratios = {}
    for par in ("mup", "standard"):
        d = {w: _feature_change(par, w, x, y, lr=1e-2, optimizer="adam") for w in (64, 1024)}
        ratios[par] = d[1024] / d[64]
    assert np.all((ratios["mup"] > 0.6) & (ratios["mup"] < 1.7)), ratios
    assert ratios["standard"][-1] > 2.0, ratios


def test_nan_inputs_are_rejected_by_name():
    """A NaN in a concrete input is an error naming x, not NaN outputs; traced inputs pass."""
    from wideth.models import CNN, MLP, ResNet

    x = jnp.ones((2, 3)).at[0, 1].set(jnp.nan)
    for net in (MLP(3, 8, 1, rngs=nnx.Rngs(0)), ResNet(3, 8, 2, rngs=nnx.Rngs(0))):
        with pytest.raises(ValueError, match="^x: expected finite"):
            net(x)
        assert bool(jnp.isnan(nnx.jit(lambda m, x: m(x))(net, x)).any())
    cnn = CNN(3, 4, 1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="^x: expected finite"):
        cnn(jnp.full((1, 6, 6, 3), jnp.inf))


def test_inputs_are_checked_once_at_the_model_boundary():
    """Hidden activations that overflow are the network's result, not an input error.

    With W_std = 1e30 the float32 pre-activations of the second layer are inf;
    the eager call must return what the jitted call returns (inf/NaN outputs),
    not raise 'x: expected finite' from an inner layer, and a single layer
    called directly checks its own input.
    """
    from wideth.models import MLP, ConvResNet, DenseLayer, ResNet, Transformer

    x = jnp.ones((2, 3))
    nets = [
        MLP(3, 8, 2, W_std=1e30, rngs=nnx.Rngs(0)),
        ResNet(3, 8, 2, W_std=1e30, rngs=nnx.Rngs(0)),
    ]
    for net in nets:
        eager, jitted = net(x), nnx.jit(lambda m, x: m(x))(net, x)
        assert not bool(jnp.isfinite(eager).all())
        np.testing.assert_array_equal(np.isfinite(eager), np.isfinite(jitted))
    tf = Transformer(3, 8, 2, out_dim=2, W_std=1e30, rngs=nnx.Rngs(0))
    tokens = jnp.ones((2, 4, 3))
    eager, jitted = tf(tokens), nnx.jit(lambda m, x: m(x))(tf, tokens)
    assert not bool(jnp.isfinite(eager).all())
    np.testing.assert_array_equal(np.isfinite(eager), np.isfinite(jitted))
    conv = ConvResNet(3, 4, 1, W_std=1e30, rngs=nnx.Rngs(0))
    assert not bool(jnp.isfinite(conv(jnp.ones((1, 5, 5, 3)))).all())
    layer = DenseLayer(3, 2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="^x: expected finite"):
        layer(jnp.full((1, 3), jnp.inf))
    np.testing.assert_allclose(layer(x), (2 / 3) ** 0.5 * (x @ layer.w[...]), rtol=1e-6)  # NTK par.
