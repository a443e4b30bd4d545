"""Data-parallel training over 4 simulated CPU devices equals one device."""

import textwrap

import pytest

_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import Mesh
    from flax import nnx
    jax.config.update("jax_enable_x64", True)
    from wideth import models, train, optim
    assert len(jax.devices()) == 4
    x, y = jax.random.normal(jax.random.PRNGKey(0), (64, 8)), jax.random.normal(
        jax.random.PRNGKey(1), (64, 2))
    net = models.MLP(8, 32, 2, 2, rngs=nnx.Rngs(0))
    apply_fn, params = models.functional(net)
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    for tx in (optax.sgd(0.1), optim.pl_adaptive()):
        one = train.fit(apply_fn, params, tx, (x, y), steps=20, quiet=True, log_every=5)
        dp = train.fit(apply_fn, params, tx, (x, y), steps=20, quiet=True, log_every=5, mesh=mesh)
        leaf = jax.tree.leaves(dp.params)[0]
        assert len(leaf.sharding.device_set) == 4, leaf.sharding
        for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(dp.params)):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(dp.history["loss"], one.history["loss"], rtol=1e-6)
    try:
        train.fit(apply_fn, params, optax.sgd(0.1), (x[:62], y[:62]), steps=2, quiet=True,
                  mesh=mesh)
    except ValueError as e:
        assert "mesh" in str(e)
    else:
        raise AssertionError("no error for rows not divisible by devices")
    print("OK")
    """
)


@pytest.mark.slow
def test_data_parallel_fit_equals_single_device(run_on_devices):
    proc = run_on_devices(_SCRIPT)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
