"""wideth.stacked: an MLP whose depth is an array.

References are independent of the stacked code path: ``wideth.models.MLP`` in
the standard parameterisation with the same weights (float32, rtol 1e-5), a
Python loop over depths for the vmapped call, and the exact zero gradient of
the layers a network of depth L skips.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from wideth import stacked, train
from wideth.models import MLP, functional


def _copy_into_stacked(net: MLP, max_depth: int) -> dict:
    p = stacked.init(jax.random.key(3), net.in_dim, net.widths[0], max_depth, net.out_dim)
    p["w_in"], p["b_in"] = net.hidden[0].w[...], net.hidden[0].b[...]
    for i in range(1, net.depth):
        p["w_h"] = p["w_h"].at[i - 1].set(net.hidden[i].w[...])
        p["b_h"] = p["b_h"].at[i - 1].set(net.hidden[i].b[...])
    p["w_out"], p["b_out"] = net.readout.w[...], net.readout.b[...]
    return p


@pytest.mark.parametrize("depth", [1, 3, 5])
def test_equals_models_mlp_with_the_same_weights(depth):
    d, width, max_depth = 5, 16, 5
    net = MLP(
        d, width, depth, 2, activation="tanh", b_std=0.3, parameterization="standard",
        rngs=nnx.Rngs(depth),
    )  # fmt: skip
    apply_fn, params = functional(net)
    x = jax.random.normal(jax.random.key(2), (4, d))
    p = _copy_into_stacked(net, max_depth)
    want = apply_fn(params, x)
    np.testing.assert_allclose(stacked.apply(p, x, depth, "tanh"), want, rtol=1e-5, atol=1e-6)
    # a traced depth (under jit) gives the same network
    got = jax.jit(lambda p, x, L: stacked.apply(p, x, L, "tanh"))(p, x, jnp.int32(depth))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_vmap_over_depths_and_variances_equals_a_loop():
    d, width, max_depth = 3, 8, 4
    x = jax.random.normal(jax.random.key(0), (6, d))
    keys = jax.random.split(jax.random.key(1), 4)
    W_stds = jnp.array([0.5, 1.0, 1.5, 2.0])
    depths = jnp.array([1, 2, 3, 4])

    def one(k, sw, L):
        p = stacked.init(k, d, width, max_depth, 2, W_std=sw, b_std=0.1)
        return stacked.apply(p, x, L, "relu")

    batched = jax.jit(jax.vmap(one))(keys, W_stds, depths)
    for i in range(4):
        want = one(keys[i], float(W_stds[i]), int(depths[i]))
        np.testing.assert_allclose(batched[i], want, rtol=1e-5, atol=1e-6)
    # depth matters: a different depth gives a different output
    assert not np.allclose(one(keys[3], 2.0, 2), batched[3], atol=1e-3)


def test_init_variances_are_the_standard_parameterisation():
    # entries N(0, W_std^2 / fan-in): the sample variance of m entries has
    # relative SE sqrt(2/m); 5 SE bounds below
    d, width, max_depth, sw, sb = 64, 256, 3, 1.7, 0.4
    p = stacked.init(jax.random.key(0), d, width, max_depth, 8, W_std=sw, b_std=sb)
    for name, var in [("w_in", sw**2 / d), ("w_h", sw**2 / width), ("b_h", sb**2)]:
        v = np.asarray(p[name], np.float64)
        assert abs(v.var() / var - 1) < 5 * np.sqrt(2 / v.size), name
    assert p["w_h"].shape == (max_depth - 1, width, width)


def test_skipped_layers_get_zero_gradient_and_do_not_train():
    d, width, max_depth, depth = 4, 8, 5, 2
    p0 = stacked.init(jax.random.key(0), d, width, max_depth, 3, W_std=1.0, b_std=0.05)
    apply_fn = lambda p, x: stacked.apply(p, x, depth, "tanh")
    x = jax.random.normal(jax.random.key(1), (16, d))
    y = jax.nn.one_hot(jnp.arange(16) % 3, 3)
    g = jax.grad(lambda p: train.xent(apply_fn(p, x), y))(p0)
    assert np.all(np.asarray(g["w_h"][depth - 1 :]) == 0.0)
    assert np.all(np.asarray(g["b_h"][depth - 1 :]) == 0.0)
    assert np.any(np.asarray(g["w_h"][: depth - 1]) != 0.0)
    tx = optax.sgd(1e-2, momentum=0.9)
    step = train.train_step(apply_fn, "xent", tx, metrics=())
    res = train.run(step, train.TrainState.create(p0, tx), (x, y), 20)
    out = res.state.params
    np.testing.assert_array_equal(out["w_h"][depth - 1 :], p0["w_h"][depth - 1 :])
    assert not np.allclose(out["w_h"][0], p0["w_h"][0])
    assert res.metrics["loss"][-1] < res.metrics["loss"][0]
