"""Data-parallel HVP / Lanczos over a 4-device mesh equals the single-device result.

The sharded run happens in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` so that the rest of the
suite keeps one CPU device.
"""

import json
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    from jax.flatten_util import ravel_pytree
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from wideth import hessian

    assert jax.device_count() == 4, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("data",))
    ks = jax.random.split(jax.random.PRNGKey(0), 5)
    x, y = jax.random.normal(ks[0], (64, 5)), jax.random.normal(ks[1], (64, 2))
    params = {"w1": jax.random.normal(ks[2], (5, 12)) / 2,
              "w2": jax.random.normal(ks[3], (12, 2)) / 3}
    apply = lambda p, xb: jnp.tanh(xb @ p["w1"]) @ p["w2"]
    loss_b = lambda p, b: 0.5 * jnp.mean(jnp.sum((apply(p, b[0]) - b[1]) ** 2, -1))
    flat, unravel = ravel_pytree(params)
    v = unravel(jax.random.normal(ks[4], flat.shape))
    data = jax.device_put((x, y), NamedSharding(mesh, P("data")))

    one = ravel_pytree(hessian.hvp(lambda p: loss_b(p, (x, y)), params, v))[0]
    sharded = hessian.hvp(loss_b, params, v, data, mesh=mesh)
    sharded_batched = hessian.hvp(loss_b, params, v, data, mesh=mesh, batch_size=4)
    ggn_one = ravel_pytree(hessian.ggn_vp(
        lambda p: apply(p, x), lambda o: 0.5 * jnp.mean(jnp.sum((o - y) ** 2, -1)), params, v))[0]
    ggn_sharded = hessian.ggn_vp(
        lambda p, b: apply(p, b[0]), lambda o, b: 0.5 * jnp.mean(jnp.sum((o - b[1]) ** 2, -1)),
        params, v, data, mesh=mesh)
    key = jax.random.PRNGKey(1)
    ev_one, _ = hessian.top_eigenpairs(lambda p: loss_b(p, (x, y)), params, k=3, num_steps=30,
                                       key=key)
    ev_sharded, _ = hessian.top_eigenpairs(loss_b, params, k=3, num_steps=30, key=key,
                                           data=data, mesh=mesh)
    def rel(a, b):
        return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))
    print(json.dumps({
        "devices": jax.device_count(),
        "hvp": rel(ravel_pytree(sharded)[0], one),
        "hvp_batched": rel(ravel_pytree(sharded_batched)[0], one),
        "ggn": rel(ravel_pytree(ggn_sharded)[0], ggn_one),
        "eigs": rel(ev_sharded, ev_one),
        "replicated": bool(jax.tree.leaves(sharded)[0].sharding.is_fully_replicated),
    }))
    """
)


@pytest.mark.slow
def test_data_parallel_hvp_matches_single_device(run_on_devices):
    proc = run_on_devices(SCRIPT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 4
    assert out["replicated"]
    for name in ("hvp", "hvp_batched", "ggn", "eigs"):
        assert out[name] < 1e-6, (name, out)
