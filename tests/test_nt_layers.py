"""neural-tangents layers without a wideth builder, evaluated through analytic.kernel.

Each is checked against an exact identity of the infinite-width limit:
* a CNN with a Flatten readout has the kernel of the locally connected network
  with the same filters (Novak et al. 2019, Section 5.1): ConvLocal == Conv;
* Dropout in test mode is the identity;
* Aggregate with the identity pattern (each token aggregates itself) is the identity,
  passed through ``kernel(..., pattern=...)``;
* nt.monte_carlo_kernel_fn over 256 width-256 ReLU networks with 64 outputs approaches
  the analytic NNGP (standard error ~ sqrt(2 / (256 * 64)) = 1.1% of the diagonal
  scale per entry; measured max 1.8%; tolerance 5%; W_std 1.2 instead of 1.4 is 85% off).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wideth import compat
from wideth.kernels import analytic

pytestmark = pytest.mark.filterwarnings("ignore")


def _stax():
    return compat.neural_tangents().stax


@pytest.mark.slow
def test_conv_local_flatten_equals_conv_flatten(x64):
    stax = _stax()
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 5, 2), jnp.float64)

    def net(layer):
        return stax.serial(
            layer(4, (3, 3), padding="SAME", W_std=1.3, b_std=0.2),
            stax.Relu(),
            layer(4, (3, 3), padding="SAME", W_std=1.3, b_std=0.2),
            stax.Relu(),
            stax.Flatten(),
            stax.Dense(1),
        )[2]

    k_conv = analytic.kernel(net(stax.Conv), x, get=("nngp", "ntk"))
    k_local = analytic.kernel(net(stax.ConvLocal), x, get=("nngp", "ntk"))
    for a, b in zip(k_conv, k_local, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-10)


def test_dropout_test_mode_and_identity_aggregate(x64):
    stax = _stax()
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 3), jnp.float64)
    base = [stax.Dense(8, W_std=1.3, b_std=0.1), stax.Relu()]
    ref = analytic.kernel(stax.serial(*base, stax.Dense(1))[2], x, get="ntk")
    drop = stax.serial(*base, stax.Dropout(0.7, mode="test"), stax.Dense(1))[2]
    np.testing.assert_allclose(analytic.kernel(drop, x, get="ntk"), ref, rtol=1e-12)

    seq = jax.random.normal(jax.random.PRNGKey(2), (3, 4, 2), jnp.float64)
    eye = jnp.broadcast_to(jnp.eye(4), (3, 4, 4))
    tail = [stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1)]
    plain = stax.serial(stax.Dense(8, W_std=1.2), *tail)[2]
    agg = stax.serial(stax.Dense(8, W_std=1.2), stax.Aggregate(), *tail)[2]
    want = analytic.kernel(plain, seq, get="nngp")
    got = analytic.kernel(agg, seq, get="nngp", pattern=(eye, eye))
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # a pattern that mixes tokens changes the kernel: the keyword argument reaches NT
    mix = jnp.broadcast_to(jnp.ones((4, 4)) / 4, (3, 4, 4))
    other = analytic.kernel(agg, seq, get="nngp", pattern=(mix, mix))
    assert np.abs(np.asarray(other) - np.asarray(want)).max() > 1e-3


@pytest.mark.slow
def test_nt_monte_carlo_kernel_fn_approaches_analytic():
    nt = compat.neural_tangents()
    stax = nt.stax
    init_fn, apply_fn, _ = stax.serial(
        stax.Dense(256, W_std=1.4, b_std=0.2), stax.Relu(), stax.Dense(64, W_std=1.4, b_std=0.2)
    )
    x = jax.random.normal(jax.random.PRNGKey(3), (5, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mc = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(4), 256)
        k_mc = np.asarray(mc(x, None, "nngp"))
    for w, ok in ((1.4, True), (1.2, False)):
        _, _, kernel_fn = analytic.mlp(1, 256, "relu", w, 0.2)
        k = np.asarray(analytic.kernel(kernel_fn, x, get="nngp"))
        d = np.sqrt(np.diag(k))
        assert (np.max(np.abs(k_mc - k) / np.outer(d, d)) < 0.05) == ok
