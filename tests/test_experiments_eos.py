"""Edge-of-stability experiment: the GD/sharpness loop and the edge on a tiny problem."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

hessian = pytest.importorskip("wideth.hessian")
if not hasattr(hessian, "top_eigenpairs"):
    pytest.skip("wideth.hessian.top_eigenpairs not available", allow_module_level=True)

from experiments import edge_of_stability as eos  # noqa: E402


def test_gd_with_sharpness_on_a_quadratic():
    # L = 1/2 sum_i h_i w_i^2: sharpness = max h, GD contracts each coordinate by (1 - eta h_i)
    h = jnp.array([0.5, 2.0, 4.0, 1.0])
    w0 = {"a": jnp.ones(2), "b": jnp.ones(2)}

    def loss_fn(p):
        w = jnp.concatenate([p["a"], p["b"]])
        return 0.5 * jnp.sum(h * w**2)

    eta, steps = 0.3, 20
    r = eos.gd_with_sharpness(
        loss_fn, w0, eta, steps, every=10, key=jax.random.key(0), num_lanczos=4
    )
    np.testing.assert_allclose(r["sharpness"], 4.0, rtol=1e-4)
    np.testing.assert_array_equal(r["sharpness_step"], [0, 10, 20])
    t = np.arange(steps)[:, None]
    want = 0.5 * np.sum(np.asarray(h) * (1 - eta * np.asarray(h)) ** (2 * t), axis=1)
    np.testing.assert_allclose(r["loss"], want, rtol=1e-4)


def test_divergence_stops_the_loop():
    loss_fn = lambda p: 0.5 * 10.0 * jnp.sum(p**2)
    r = eos.gd_with_sharpness(
        loss_fn, jnp.ones(3), 1.0, 400, every=50, key=jax.random.key(0), num_lanczos=3
    )
    assert not np.all(np.isfinite(r["loss"]))
    assert len(r["loss"]) < 400


def test_tiny_mlp_reaches_and_hovers_at_edge():
    loss_fn, params, _ = eos.setup(seed=0, n=100, width=32, depth=3)
    key = jax.random.key(0)
    lam0 = float(eos.sharpness(loss_fn, params, key, 30))
    eta = 2 / (2 * lam0)
    r = eos.gd_with_sharpness(loss_fn, params, eta, 600, every=20, key=key, num_lanczos=15)
    s = eos.eos_summary(r, eta)
    assert s["lambda_0"] < 0.8 * s["edge"]  # starts well below 2/eta
    assert s["lambda_max_reached"] >= 0.9 * s["edge"]  # progressive sharpening
    assert s["tail_mean_over_edge"] == pytest.approx(1.0, abs=0.1)  # hovers at 2/eta
    assert s["loss_last"] < 0.5 * s["loss_first"]


@pytest.mark.slow
def test_main_quick_smoke(tmp_path):
    res = eos.main(["--quick", "--quiet", "--out", str(tmp_path)])
    assert (tmp_path / "metrics.json").exists()
    assert all(c["pass"] for c in res.checks), [c for c in res.checks if not c["pass"]]
