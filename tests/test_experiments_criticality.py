"""Criticality experiment: random-network measurements against the mean-field maps."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments import criticality as cr
from wideth.kernels import meanfield as mf
from wideth.models import MLP, functional


def test_tanh_measured_q_star_matches_fixed_point():
    W, b = 2.0, 0.05
    x = cr.two_inputs(jax.random.key(0), 50, 1.0, 0.5)
    keys = jax.random.split(jax.random.key(1), (1, 8))
    m = cr._propagate_many(keys, x, jnp.array([W]), jnp.array([b]), 12, 512, "tanh")
    per_net = np.asarray(m["q"])[0, :, -4:].mean(1)  # q has converged after a few layers
    sem = per_net.std(ddof=1) / np.sqrt(len(per_net))
    q_star = float(mf.fixed_point("tanh", W, b)[0])
    # Monte Carlo error plus the O(1/n) finite-width bias
    assert abs(per_net.mean() - q_star) < 4 * sem + 0.01 * q_star


def test_stacked_network_equals_models_mlp():
    d, width, depth = 5, 16, 3
    net = MLP(
        d,
        width,
        depth,
        2,
        activation="tanh",
        b_std=0.3,
        parameterization="standard",
        rngs=nnx.Rngs(0),
    )
    apply_fn, params = functional(net)
    x = jax.random.normal(jax.random.key(2), (4, d))
    p = cr.init_stacked(jax.random.key(3), d, width, 5, 2, 1.0, 1.0)
    p["w_in"], p["b_in"] = net.hidden[0].w[...], net.hidden[0].b[...]
    for i in range(1, depth):
        p["w_h"] = p["w_h"].at[i - 1].set(net.hidden[i].w[...])
        p["b_h"] = p["b_h"].at[i - 1].set(net.hidden[i].b[...])
    p["w_out"], p["b_out"] = net.readout.w[...], net.readout.b[...]
    np.testing.assert_allclose(
        cr.stacked_apply(p, x, jnp.asarray(depth)), apply_fn(params, x), rtol=1e-5, atol=1e-6
    )


def test_relu_backprop_rate():
    W = np.array([1.6, 2.0, 2.4])
    rg = cr.relu_gradients(jax.random.key(4), W, depth=12, width=128, num_nets=16)
    np.testing.assert_allclose(rg["rate_measured"], np.log(W / 2), atol=0.03)
