"""Block-wise kernels: equal to the direct computation, on 1 and 4 (simulated) devices."""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wideth.kernels import blocks


def _rbf(a, b):
    return jnp.exp(-0.5 * jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, -1))


def _data():
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    return jax.random.normal(k1, (37, 5)), jax.random.normal(k2, (11, 5))


def test_device_blocks_equal_direct():
    x1, x2 = _data()
    got = blocks.blockwise(_rbf, x1, x2, block_size=8)
    np.testing.assert_allclose(got, _rbf(x1, x2), rtol=1e-5, atol=1e-7)
    assert got.shape == (37, 11)


def test_host_memmap_equals_direct(tmp_path):
    x1, x2 = _data()
    path = tmp_path / "k.npy"
    got = blocks.blockwise(_rbf, x1, x2, block_size=5, out="host", path=path)
    assert isinstance(got, np.memmap)
    np.testing.assert_allclose(np.load(path), _rbf(x1, x2), rtol=1e-5, atol=1e-7)


def test_analytic_kernel_blocks():
    from wideth.kernels import analytic

    x1, x2 = _data()
    _, _, kernel_fn = analytic.mlp(depth=3, width=16)
    direct = analytic.kernel(kernel_fn, x1, x2, get="nngp")
    got = blocks.blockwise(lambda a, b: kernel_fn(a, b, "nngp"), x1, x2, block_size=6, out="host")
    np.testing.assert_allclose(got, direct, rtol=1e-5, atol=1e-7)


def test_analytic_kernel_out_host(tmp_path):
    from wideth.kernels import analytic

    x1, x2 = _data()
    _, _, kernel_fn = analytic.mlp(depth=2, width=16)
    direct = analytic.kernel(kernel_fn, x1, x2, get=("nngp", "ntk"))
    path = tmp_path / "k.npy"
    got = analytic.kernel(
        kernel_fn, x1, x2, get=("nngp", "ntk"), batch_size=8, out="host", path=path
    )
    for a, b in zip(got, direct):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert np.load(path).shape == (37, 11, 2)


def test_empirical_ntk_out_host(tmp_path):
    from wideth.kernels import analytic, empirical

    x1, x2 = _data()
    init_fn, apply_fn, _ = analytic.mlp(depth=1, width=32, out_dim=2)
    _, params = init_fn(jax.random.PRNGKey(3), x1.shape)
    direct = empirical.ntk(apply_fn, params, x1, x2)
    got = empirical.ntk(apply_fn, params, x1, x2, batch_size=8, out="host", path=tmp_path / "t.npy")
    np.testing.assert_allclose(got, direct, rtol=1e-5, atol=1e-6)


def test_kernels_inside_jit_with_constant_inputs():
    # Under jit with the inputs closed over as constants, no ambient mesh can be
    # queried; the kernels must fall back to the unsharded path.
    from wideth.kernels import analytic, empirical

    x1, x2 = _data()
    init_fn, apply_fn, kernel_fn = analytic.mlp(depth=1, width=32, out_dim=2)
    _, params = init_fn(jax.random.PRNGKey(3), x1.shape)
    direct = empirical.ntk(apply_fn, params, x1, x2)
    jitted = jax.jit(lambda p: empirical.ntk(apply_fn, p, x1, x2))(params)
    np.testing.assert_allclose(jitted, direct, rtol=1e-5, atol=1e-6)
    k = analytic.kernel(kernel_fn, x1, x2, get="nngp")
    scaled = jax.jit(lambda s: s * analytic.kernel(kernel_fn, x1, x2, get="nngp"))(2.0)
    np.testing.assert_allclose(scaled, 2 * np.asarray(k), rtol=1e-5, atol=1e-6)
    assert blocks.current_mesh() is None


def test_bad_arguments():
    x1, x2 = _data()
    with pytest.raises(ValueError, match="block_size"):
        blocks.blockwise(_rbf, x1, x2, block_size=0)
    with pytest.raises(ValueError, match="out"):
        blocks.blockwise(_rbf, x1, x2, block_size=4, out="disk")


_SHARDED = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from wideth.kernels import blocks, analytic
    assert len(jax.devices()) == 4
    x1 = jax.random.normal(jax.random.PRNGKey(0), (37, 5))
    x2 = jax.random.normal(jax.random.PRNGKey(1), (11, 5))
    _, _, kernel_fn = analytic.mlp(depth=2, width=16)
    fn = lambda a, b: kernel_fn(a, b, "ntk")
    single = np.asarray(blocks.blockwise(fn, x1, x2, block_size=4))
    mesh = blocks.row_mesh()
    sharded = blocks.blockwise(fn, x1, x2, block_size=4, mesh=mesh)
    assert len(sharded.sharding.device_set) == 4, sharded.sharding
    np.testing.assert_allclose(np.asarray(sharded), single, rtol=1e-6, atol=1e-7)
    host = blocks.blockwise(fn, x1, x2, block_size=4, mesh=mesh, out="host")
    np.testing.assert_allclose(host, single, rtol=1e-6, atol=1e-7)
    nngp, ntk = analytic.kernel(kernel_fn, x1, x2, get=("nngp", "ntk"), batch_size=4, mesh=mesh)
    np.testing.assert_allclose(np.asarray(ntk), single, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(nngp), analytic.kernel(kernel_fn, x1, x2, get="nngp"),
                               rtol=1e-6, atol=1e-7)
    from wideth.kernels import empirical
    init_fn, apply_fn, _ = analytic.mlp(depth=2, width=32, out_dim=3)
    _, params = init_fn(jax.random.PRNGKey(2), x1.shape)
    ref = np.asarray(empirical.ntk(apply_fn, params, x1, x2))
    emp = empirical.ntk(apply_fn, params, x1, x2, batch_size=4, mesh=mesh)
    assert len(emp.sharding.device_set) == 4
    np.testing.assert_allclose(np.asarray(emp), ref, rtol=1e-5, atol=1e-6)
    # A 2 x 2 mesh shards rows over all four devices (every axis).
    mesh2 = jax.make_mesh((2, 2), ("a", "b"))
    k2 = analytic.kernel(kernel_fn, x1, x2, get="ntk", batch_size=4, mesh=mesh2)
    assert len(k2.sharding.device_set) == 4, k2.sharding
    np.testing.assert_allclose(np.asarray(k2), single, rtol=1e-6, atol=1e-7)
    # The mesh set with jax.set_mesh is picked up without mesh=.
    with jax.set_mesh(mesh):
        amb = analytic.kernel(kernel_fn, x1, x2, get="ntk", batch_size=4)
        emp_amb = empirical.ntk(apply_fn, params, x1, x2, batch_size=4)
        # ...but not inside a trace, where the enclosing computation owns sharding.
        traced = jax.jit(lambda a: empirical.ntk(apply_fn, params, a, x2))(x1)
        # (also when only the parameters are traced and the inputs are constants)
        traced_p = jax.jit(lambda p: empirical.ntk(apply_fn, p, x1, x2))(params)
        traced_v = jax.vmap(lambda p: empirical.ntk(apply_fn, p, x1, x2))(
            jax.tree.map(lambda a: a[None], params))[0]
    assert len(amb.sharding.device_set) == 4, amb.sharding
    np.testing.assert_allclose(np.asarray(amb), single, rtol=1e-6, atol=1e-7)
    assert len(emp_amb.sharding.device_set) == 4
    np.testing.assert_allclose(np.asarray(emp_amb), ref, rtol=1e-5, atol=1e-6)
    for t in (traced, traced_p, traced_v):
        np.testing.assert_allclose(np.asarray(t), ref, rtol=1e-5, atol=1e-6)
    assert blocks.current_mesh() is None and blocks.current_mesh(mesh) is mesh
    print("OK")
    """
)


@pytest.mark.slow
def test_sharded_over_four_simulated_devices_equals_one_device(run_on_devices):
    proc = run_on_devices(_SHARDED)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
