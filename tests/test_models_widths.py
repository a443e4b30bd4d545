"""MLPs with per-layer widths, activations, W_std and b_std against analytic.mlp.

The network ``MLP(d, widths, depth, activation=acts, W_std=ws, b_std=bs)`` and
``analytic.mlp(depth, widths, acts, ws, bs)`` take one layer sequence:

* forward map with neural-tangents' own parameters of that sequence: rtol 1e-5
  (same formula, float32);
* Monte Carlo NNGP, widths (256, 64, 128), relu / erf / leaky_relu(0.2),
  W_std (1.5, 1.3, 1.4, 1.1), b_std (0.2, None, 0.3, 0.1), 1024 inits x 4
  outputs: max |K_mc - K| / sqrt(K_ii K_jj) < 0.1 (Monte Carlo standard error
  of that ratio <= 0.026, finite-width bias O(1/64); measured 0.043, and 0.059
  at widths (512, 128, 256) with its own draw, 0.023 with 4096 inits). The
  same samples are > 0.2 away from the kernel that ignores the per-layer
  ``W_std`` (measured 0.26), so the test sees the layer sequence;
* empirical NTK, mean relative Frobenius error over 3 inits: 0.38 at widths
  (64, 16, 32), 0.12 at 16x those (1024, 256, 512); the ratio 0.32 is near
  the width^(-1/2) rate 0.25. Asserted: < 0.2 at the large widths and a ratio
  < 0.6.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from wideth import models
from wideth.kernels import analytic, empirical

ACTS = ("relu", "erf", ("leaky_relu", {"alpha": 0.2}))
W_STD = (1.5, 1.3, 1.4, 1.1)
B_STD = (0.2, None, 0.3, 0.1)


def _x(n=6, d=5):
    return jax.random.normal(jax.random.PRNGKey(1), (n, d), jnp.float32)


def _net(widths, out_dim=1, seed=0, **kw):
    kw = dict(activation=ACTS, W_std=W_STD, b_std=B_STD) | kw
    return models.MLP(5, widths, 3, out_dim, rngs=nnx.Rngs(params=seed), **kw)


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_per_layer_mlp_forward_equals_neural_tangents(parameterization):
    x = _x()
    widths = (12, 7, 9)
    init_fn, apply_fn, _ = analytic.mlp(3, widths, ACTS, W_STD, B_STD, parameterization, 2)
    _, nt_params = init_fn(jax.random.PRNGKey(0), x.shape)
    net = _net(widths, 2, parameterization=parameterization)
    assert net.widths == widths and net.width == widths
    assert [layer.w[...].shape for layer in net.hidden] == [(5, 12), (12, 7), (7, 9)]
    dense = [p for p in nt_params if p]
    for layer, params in zip([*net.hidden, net.readout], dense, strict=True):
        layer.w[...] = jnp.asarray(params[0], jnp.float32)
        if layer.b is None:
            assert params[1] is None
        else:
            layer.b[...] = jnp.asarray(params[1], jnp.float32).reshape(layer.b[...].shape)
    np.testing.assert_allclose(net(x), apply_fn(nt_params, x), rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # 8 s on 2 shared cores
def test_init_output_covariance_matches_analytic_nngp_of_the_layer_sequence():
    x = _x()
    widths, n_init, k = (256, 64, 128), 1024, 4
    keys = jax.random.split(jax.random.PRNGKey(0), n_init)
    f = jax.lax.map(
        jax.vmap(lambda key: _net(widths, k, seed=key)(x)), keys.reshape(8, -1, *keys.shape[1:])
    )
    f = np.asarray(f, np.float64).reshape(n_init, x.shape[0], k)
    samples = np.einsum("mio,mjo->mij", f, f) / k
    k_mc = samples.mean(0)

    def rel_err(kernel_fn):
        kern = np.asarray(analytic.kernel(kernel_fn, x, get="nngp"), np.float64)
        d = np.sqrt(np.diag(kern))
        return float(np.max(np.abs(k_mc - kern) / np.outer(d, d))), np.outer(d, d)

    err, scale = rel_err(analytic.mlp(3, widths, ACTS, W_STD, B_STD)[2])
    se = float(np.max(samples.std(0, ddof=1) / np.sqrt(n_init) / scale))
    assert se < 0.03, se
    assert err < 0.1, (err, se)
    err_uniform, _ = rel_err(analytic.mlp(3, widths, ACTS, W_STD[0], B_STD)[2])
    assert err_uniform > 0.2, err_uniform


def test_empirical_ntk_of_unequal_widths_converges_to_analytic_ntk():
    x = _x()
    _, _, kernel_fn = analytic.mlp(3, (64, 16, 32), ACTS, W_STD, B_STD)
    k = np.asarray(analytic.kernel(kernel_fn, x, get="ntk"))
    errs = {}
    for scale in (1, 16):
        widths = (64 * scale, 16 * scale, 32 * scale)
        e = [
            np.linalg.norm(np.asarray(empirical.ntk(_net(widths, seed=s), None, x)) - k)
            / np.linalg.norm(k)
            for s in range(3)
        ]
        errs[scale] = float(np.mean(e))
    assert errs[16] < 0.2, errs  # measured 0.12
    assert errs[16] < 0.6 * errs[1], errs  # measured ratio 0.32 (theory 0.25)


def test_per_layer_arguments_are_validated_by_name():
    rngs = nnx.Rngs(0)
    with pytest.raises(ValueError, match=r"^width: expected one value or a sequence of 3"):
        models.MLP(5, (8, 8), 3, rngs=rngs)
    with pytest.raises(ValueError, match=r"^width: expected an integer >= 1"):
        models.MLP(5, (8, 0, 8), 3, rngs=rngs)
    with pytest.raises(TypeError, match=r"^width: expected an integer"):
        models.MLP(5, 8.5, 3, rngs=rngs)
    with pytest.raises(ValueError, match=r"^W_std: expected one value or a sequence of 4"):
        models.MLP(5, 8, 3, W_std=(1.0, 1.0, 1.0), rngs=rngs)
    with pytest.raises(ValueError, match=r"^b_std: expected"):
        models.MLP(5, 8, 3, b_std=(0.1, -0.1, 0.0, 0.0), rngs=rngs)
    with pytest.raises(ValueError, match=r"^activation: expected one value or a sequence of 3"):
        models.MLP(5, 8, 3, activation=("relu", "erf"), rngs=rngs)
    with pytest.raises(ValueError, match=r"^activation: expected one of"):
        models.MLP(5, 8, 2, activation=("relu", "nope"), rngs=rngs)
    with pytest.raises(ValueError, match=r"^module: muP multipliers need one hidden width"):
        models.mup_multipliers(models.MLP(5, (8, 4), 2, rngs=rngs))


def test_equal_widths_keep_the_single_width_model():
    a = models.MLP(5, 16, 2, 3, rngs=nnx.Rngs(0))
    b = models.MLP(5, [16, 16], 2, 3, rngs=nnx.Rngs(0))
    assert a.width == b.width == 16 and a.widths == b.widths == (16, 16)
    x = _x()
    np.testing.assert_array_equal(a(x), b(x))
    assert nnx.graphdef(a) == nnx.graphdef(b)
