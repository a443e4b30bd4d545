"""The training runtime: pure step, vmappable loop, in-jit probes, divergence handling."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from wideth import functional, models, optim, train


def _linear_problem(n=12, d=4, k=2, seed=0):
    kx, ky = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (n, d))
    y = jax.random.normal(ky, (n, k))
    return (lambda p, xb: xb @ p["w"] + p["b"]), {"w": jnp.zeros((d, k)), "b": jnp.zeros(k)}, (x, y)


def _manual(apply_fn, params, tx, batch_of_t, steps):
    """Plain optax loop: losses before each update and the final params."""
    loss = lambda p, b: train.mse(apply_fn(p, b[0]), b[1])
    s, losses = tx.init(params), []
    for t in range(steps):
        b = batch_of_t(t)
        value, g = jax.value_and_grad(loss)(params, b)
        u, s = tx.update(g, s, params)
        params = optax.apply_updates(params, u)
        losses.append(float(value))
    return params, np.array(losses)


def test_run_equals_a_manual_optax_loop(x64):
    apply_fn, params, data = _linear_problem()
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1, momentum=0.9))
    step = train.train_step(apply_fn, "mse", tx)
    res = jax.jit(lambda s: train.run(step, s, data, 15, every=5))(
        train.TrainState.create(params, tx)
    )
    want_p, want_losses = _manual(apply_fn, params, tx, lambda t: data, 15)
    np.testing.assert_allclose(res.metrics["loss"], want_losses, rtol=1e-12)
    for a, b in zip(jax.tree.leaves(res.state.params), jax.tree.leaves(want_p), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert int(res.state.step) == 15
    np.testing.assert_array_equal(res.probe_steps, [0, 5, 10, 15])
    assert not bool(res.stopped) and int(res.bad_step) == -1


def test_minibatches_follow_the_key_and_equal_manual_sampling(x64):
    apply_fn, params, (x, y) = _linear_problem(n=20)
    tx = optax.sgd(0.2)
    key = jax.random.key(3)
    step = train.train_step(apply_fn, "mse", tx)
    res = train.run(step, train.TrainState.create(params, tx, key), train.minibatches(x, y, 5), 8)

    def batch(t):
        idx = jax.random.choice(jax.random.fold_in(key, t), 20, (5,), replace=False)
        return x[idx], y[idx]

    _, want = _manual(apply_fn, params, tx, batch, 8)
    np.testing.assert_allclose(res.metrics["loss"], want, rtol=1e-12)
    # Stacked batches: the same draws, pre-drawn.
    stacked = train.stacked(jax.tree.map(lambda *b: jnp.stack(b), *[batch(t) for t in range(8)]))
    res2 = train.run(step, train.TrainState.create(params, tx, key), stacked, 8)
    np.testing.assert_allclose(res2.metrics["loss"], want, rtol=1e-12)


@pytest.mark.slow
def test_vmap_over_learning_rates_and_seeds_equals_separate_runs():
    net = models.MLP(4, 16, 1, out_dim=2, rngs=nnx.Rngs(0))
    apply_fn, params = functional.as_apply(net)
    x = jax.random.normal(jax.random.key(0), (32, 4))
    y = jax.random.normal(jax.random.key(1), (32, 2))
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    step = train.train_step(apply_fn, "mse", tx)
    probes = {"sharpness": train.probes.sharpness(step, num_steps=8)}
    data = train.minibatches(x, y, 8)

    def one(lr, seed):
        s = train.TrainState.create(params, tx, jax.random.key(seed))
        s = train.with_hyperparams(s, learning_rate=lr)
        return train.run(step, s, data, 12, probes=probes, every=4)

    lrs, seeds = jnp.array([0.05, 0.2, 0.5]), jnp.arange(2)
    sweep = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None)))(lrs, seeds)
    assert sweep.metrics["loss"].shape == (3, 2, 12)
    assert sweep.probes["sharpness"].shape == (3, 2, 4)
    single = jax.jit(one)
    for i, lr in enumerate(lrs):
        for j, seed in enumerate(seeds):
            r = single(lr, seed)
            np.testing.assert_allclose(sweep.metrics["loss"][i, j], r.metrics["loss"], rtol=2e-5)
            np.testing.assert_allclose(
                sweep.probes["sharpness"][i, j], r.probes["sharpness"], rtol=2e-4
            )
    # Different learning rates and seeds give different runs (the sweep is not degenerate).
    assert float(jnp.abs(sweep.metrics["loss"][0, 0] - sweep.metrics["loss"][2, 0]).max()) > 1e-3
    assert float(jnp.abs(sweep.metrics["loss"][0, 0] - sweep.metrics["loss"][0, 1]).max()) > 1e-6


def test_probes_against_closed_forms(x64):
    # mse of x @ p with X^T X / n = diag(h): Hessian diag(h), GD contracts by (1 - eta h).
    h = jnp.array([0.5, 2.0, 3.0])
    x, y = jnp.sqrt(3.0) * jnp.diag(jnp.sqrt(h)), jnp.zeros((3, 1))
    apply_fn, p0 = (lambda p, xb: xb @ p), jnp.ones((3, 1))
    eta = 0.1
    tx = optax.sgd(eta)
    step = train.train_step(apply_fn, "mse", tx)
    probes = {
        "sharpness": train.probes.sharpness(step, num_steps=3),
        "distance": train.probes.distance_from_init(p0),
        "grad_norm": train.probes.grad_norm(step),
        "ntk": train.probes.ntk_top_eigenvalue(apply_fn, num_steps=3),
    }
    res = train.run(step, train.TrainState.create(p0, tx), (x, y), 10, probes=probes, every=5)
    np.testing.assert_allclose(res.probes["sharpness"], 3.0, rtol=1e-10)
    # NTK Gram X X^T = 3 diag(h): top eigenvalue 9.
    np.testing.assert_allclose(res.probes["ntk"], 9.0, rtol=1e-10)
    t = np.array([0, 5, 10])[:, None]
    p_t = (1 - eta * np.asarray(h)) ** t  # each coordinate from 1
    np.testing.assert_allclose(res.probes["distance"], np.linalg.norm(p_t - 1, axis=1), rtol=1e-10)
    np.testing.assert_allclose(
        res.probes["grad_norm"], np.linalg.norm(np.asarray(h) * p_t, axis=1), rtol=1e-10
    )


def test_eta_hat_probe_reads_the_pl_adaptive_state(x64):
    apply_fn, params, data = _linear_problem()
    tx = optim.pl_adaptive()
    step = train.train_step(apply_fn, "mse", tx)
    res = train.run(
        step,
        train.TrainState.create(params, tx),
        data,
        6,
        probes={"eta": train.probes.eta_hat()},
        every=3,
    )
    # The last probe is taken at the final state: the same eta pl_adaptive_info reports there.
    want = optim.pl_adaptive_info(res.state.opt_state)["eta_hat"]
    np.testing.assert_allclose(res.probes["eta"][-1], want, rtol=1e-12)
    assert float(res.probes["eta"][1]) > 0


def test_divergence_stops_keeps_last_finite_state_and_marks_the_rest_nan():
    apply_fn, p0 = (lambda p, xb: xb @ p), jnp.ones((2, 1))
    x, y = jnp.array([[3.0, 0.0], [0.0, 1.0]]), jnp.zeros((2, 1))
    lr = 1.5  # curvature 9/2 along the first axis: |1 - 1.5 * 4.5| > 1 diverges
    tx = optax.sgd(lr)
    step = train.train_step(apply_fn, "mse", tx)
    probes = {"norm": train.probes.params_norm()}
    res = train.run(step, train.TrainState.create(p0, tx), (x, y), 400, probes=probes, every=100)
    assert bool(res.stopped)
    j = int(res.bad_step)
    losses = np.asarray(res.metrics["loss"])
    # the loss at the bad step is the measured non-finite value; later steps are skipped
    assert np.all(np.isfinite(losses[:j])) and not np.isfinite(losses[j])
    assert np.all(np.isnan(losses[j + 1 :]))
    assert np.isnan(np.asarray(res.probes["norm"])[-1])
    # The returned state is theta_{j-1}: replay j-1 updates by hand.
    p = p0
    for _ in range(j - 1):
        p = p - lr * jax.grad(lambda q: train.mse(apply_fn(q, x), y))(p)
    np.testing.assert_allclose(res.state.params, p, rtol=1e-5)
    assert int(res.state.step) == j - 1


def test_train_step_accepts_a_module_and_validates():
    net = models.MLP(3, 8, 1, rngs=nnx.Rngs(0))
    step = train.train_step(net, "mse", optax.sgd(0.1))
    _, params = functional.as_apply(net)
    s, m = step(
        train.TrainState.create(params, optax.sgd(0.1)), (jnp.ones((4, 3)), jnp.ones((4, 1)))
    )
    assert set(m) == {"loss", "grad_norm"} and int(s.step) == 1
    with pytest.raises(ValueError, match="^loss: expected one of"):
        train.train_step(net, "hinge", optax.sgd(0.1))
    with pytest.raises(TypeError, match="^tx: expected an optax"):
        train.train_step(net, "mse", "sgd")
    with pytest.raises(ValueError, match="^metrics: expected names"):
        train.train_step(net, "mse", optax.sgd(0.1), metrics=("f1",))
    with pytest.raises(ValueError, match="^every: expected a divisor"):
        train.run(
            step,
            train.TrainState.create(params, optax.sgd(0.1)),
            (jnp.ones((4, 3)),) * 2,
            10,
            every=3,
        )
    with pytest.raises(ValueError, match="^learning_rate: no optax.inject_hyperparams"):
        train.with_hyperparams(train.TrainState.create(params, optax.sgd(0.1)), learning_rate=1.0)
    with pytest.raises(TypeError, match="^key: expected a PRNG key, got the integer"):
        train.TrainState.create(params, optax.sgd(0.1), key=3)


def test_fit_callbacks_receive_the_state_and_probes_land_in_history():
    apply_fn, params, data = _linear_problem()
    tx = optax.sgd(0.1)
    seen = []

    def cb(state, history):
        seen.append(int(state.step))
        return {"w_norm": optax.tree.norm(state.params)}

    probes = {"norm": train.probes.params_norm()}
    res = train.fit(
        apply_fn, params, tx, data, steps=9, log_every=3, quiet=True, callbacks=[cb], probes=probes
    )
    assert seen == [0, 3, 6]
    np.testing.assert_allclose(res.history["norm"], res.history["w_norm"], rtol=1e-6)
    assert res.state is not None and int(res.state.step) == 9
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        train.fit(
            apply_fn,
            params,
            tx,
            data,
            steps=3,
            quiet=True,
            callbacks=[lambda step, p, history: None],
        )
    assert any(issubclass(x.category, DeprecationWarning) for x in w)


def test_fit_stop_at_a_chunk_boundary_returns_the_state_before():
    # The bad loss lands exactly on a chunk boundary: fit must return theta_{j-1}
    # from the previous chunk, not theta_j.
    apply_fn, p0 = (lambda p, xb: xb @ p), jnp.ones((2, 1))
    x, y = jnp.array([[3.0, 0.0], [0.0, 1.0]]), jnp.zeros((2, 1))
    tx = optax.sgd(1.5)
    probe = train.run(
        train.train_step(apply_fn, "mse", tx), train.TrainState.create(p0, tx), (x, y), 400
    )
    j = int(probe.bad_step)
    res = train.fit(apply_fn, p0, tx, (x, y), steps=400, log_every=j, quiet=True)
    assert res.stopped_early and f"step {j}" in res.message
    np.testing.assert_allclose(res.params, probe.state.params, rtol=0, atol=0)


def test_vmap_over_initial_parameters_equals_separate_runs():
    """run under vmap over an ensemble of initialisations (functional.init_params) equals
    one run per network, and the networks differ."""
    build = lambda r: models.MLP(4, 16, 1, out_dim=2, rngs=r)
    apply_fn, _ = functional.as_apply(build(nnx.Rngs(0)))
    x = jax.random.normal(jax.random.key(0), (32, 4))
    y = jax.random.normal(jax.random.key(1), (32, 2))
    tx = optax.sgd(0.1)
    step = train.train_step(apply_fn, "mse", tx)

    def one(key):
        params = functional.init_params(build, key)
        return train.run(step, train.TrainState.create(params, tx), (x, y), 10)

    keys = jax.random.split(jax.random.key(7), 3)
    sweep = jax.jit(jax.vmap(one))(keys)
    for i in range(3):
        np.testing.assert_allclose(
            sweep.metrics["loss"][i], jax.jit(one)(keys[i]).metrics["loss"], rtol=2e-5
        )
    assert float(jnp.abs(sweep.metrics["loss"][0] - sweep.metrics["loss"][1]).max()) > 1e-4
