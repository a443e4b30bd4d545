"""Tests of wideth.train: losses, the scan-chunked fit loop, extras, stopping, determinism.

Tolerances: fit vs a hand-written optax loop in float64, 1e-12 relative (same
operations, different XLA fusion); digits accuracy > 90% after a short run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from wideth import models, train


def _lsq(seed=0, n=12, d=4, k=2, dtype=jnp.float32):
    kx, ky = jax.random.split(jax.random.PRNGKey(seed))
    x = jax.random.normal(kx, (n, d), dtype)
    y = jax.random.normal(ky, (n, k), dtype)
    return x, y


def _mlp_apply():
    net = models.MLP(4, 16, 1, 2, activation="tanh", rngs=nnx.Rngs(0))
    return models.functional(net)


# ----------------------------------------------------------------------------- losses


def test_logistic_loss_closed_form_and_registry():
    """mean log(1 + exp(-y f)) against numpy; (n,) and (n, 1) outputs agree; by name."""
    f = np.array([2.0, -0.5, 30.0, -40.0])
    y = np.array([1.0, 1.0, -1.0, -1.0])
    ref = np.mean(np.log1p(np.exp(-y * f)))
    from wideth import losses

    assert float(losses.logistic(jnp.asarray(f), jnp.asarray(y))) == pytest.approx(ref, rel=1e-6)
    assert float(losses.logistic(jnp.asarray(f)[:, None], jnp.asarray(y))) == pytest.approx(
        ref, rel=1e-6
    )
    assert train.get_loss("logistic") is losses.logistic
    # labels swapped give another value: the sign convention enters
    assert abs(float(losses.logistic(jnp.asarray(f), jnp.asarray(-y))) - ref) > 1.0
    # traced labels are not checked (no host sync) and give the same value under jit
    jitted = jax.jit(losses.logistic)(jnp.asarray(f), jnp.asarray(y))
    assert float(jitted) == pytest.approx(ref, rel=1e-6)


def test_mse_normalisation_and_xent_accuracy_closed_forms():
    out = jnp.array([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]])
    y = jnp.array([[0.0, 2.0], [1.0, 1.0], [3.0, 0.0]])
    # 1/(2n) sum_i ||f_i - y_i||^2 = (1 + (1 + 4) + 0.25) / 6
    assert float(train.mse(out, y)) == pytest.approx(6.25 / 6)
    assert float(train.mse(out[:, :1], y[:, 0])) == pytest.approx((1 + 1 + 0) / 6)
    logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = jnp.array([0, 2])
    manual = -(np.log(np.exp(2) / (np.exp(2) + 1 + np.exp(-1))) + np.log(1 / (2 + np.exp(1)))) / 2
    assert float(train.xent(logits, labels)) == pytest.approx(manual, rel=1e-6)
    assert float(train.xent(logits, jax.nn.one_hot(labels, 3))) == pytest.approx(manual, rel=1e-6)
    assert float(train.accuracy(logits, labels)) == 0.5
    assert float(train.accuracy(logits, jax.nn.one_hot(labels, 3))) == 0.5
    with pytest.raises(ValueError, match="targets"):
        train.mse(out, y[:, :1])
    with pytest.raises(ValueError, match="labels"):
        train.xent(logits, jnp.ones((2, 4)))


# ----------------------------------------------------------------------------- fit vs manual


def _manual(apply_fn, params, tx, x, y, steps, loss=train.mse):
    state = tx.init(params)
    losses = []

    @jax.jit
    def step(p, s):
        value, g = jax.value_and_grad(lambda q: loss(apply_fn(q, x), y))(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, value

    for _ in range(steps):
        params, state, value = step(params, state)
        losses.append(float(value))
    return params, state, np.asarray(losses)


@pytest.mark.parametrize(
    "make_tx",
    [
        lambda: optax.sgd(0.1, momentum=0.9),
        pytest.param(lambda: optax.adam(1e-2), marks=pytest.mark.slow),
    ],
)
def test_fit_equals_manual_optax_loop(x64, make_tx):
    x, y = _lsq(dtype=jnp.float64)
    apply_fn, params = _mlp_apply()
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    steps = 7
    res = train.fit(apply_fn, params, make_tx(), (x, y), steps=steps, log_every=3, quiet=True)
    ref_p, _, ref_losses = _manual(apply_fn, params, make_tx(), x, y, steps)
    for a, b in zip(jax.tree.leaves(res.params), jax.tree.leaves(ref_p), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(res.history["step"], [0, 3, 6])
    np.testing.assert_allclose(res.history["loss"], ref_losses[[0, 3, 6]], rtol=1e-6)
    assert not res.stopped_early and "completed 7 steps" in res.message
    # classification targets (2 columns) give an accuracy column
    assert res.history["accuracy"].shape == (3,)


def test_fit_passes_outputs_fn_and_loss_of_outputs_to_extra_args_transforms():
    from typing import NamedTuple

    class Seen(NamedTuple):
        loss: jax.Array

    def recorder():
        def init_fn(params):
            return Seen(jnp.zeros([]))

        def update_fn(updates, state, params=None, *, outputs_fn, loss_of_outputs, **extra):
            return updates, Seen(loss_of_outputs(outputs_fn(params)))

        return optax.GradientTransformationExtraArgs(init_fn, update_fn)

    x, y = _lsq()
    apply_fn, params = _mlp_apply()
    tx = optax.chain(optax.clip_by_global_norm(1.0), recorder(), optax.sgd(0.05))
    res = train.fit(apply_fn, params, tx, (x, y), steps=5, log_every=1, quiet=True)
    # the recorder saw the loss at the parameters of the last step (after 4 updates)
    np.testing.assert_allclose(res.opt_state[1].loss, res.history["loss"][-1], rtol=1e-6)
    assert res.history["loss"][-1] != res.history["loss"][0]


@pytest.mark.slow
def test_fit_passes_value_to_polyak_sgd(x64):
    x, y = _lsq()
    apply_fn, params = _mlp_apply()
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    tx = optax.polyak_sgd(max_learning_rate=1.0)
    res = train.fit(apply_fn, params, tx, (x, y), steps=6, log_every=3, quiet=True)
    loss = lambda p: train.mse(apply_fn(p, x), y)
    p, s = params, tx.init(params)
    for _ in range(6):
        value, g = jax.value_and_grad(loss)(p)
        u, s = tx.update(g, s, p, value=value)
        p = optax.apply_updates(p, u)
    for a, b in zip(jax.tree.leaves(res.params), jax.tree.leaves(p)):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_fit_with_pl_adaptive_matches_manual_extra_args_loop():
    optim = pytest.importorskip("wideth.optim")
    x, y = _lsq()
    apply_fn, params = _mlp_apply()
    tx = optim.pl_adaptive()
    res = train.fit(apply_fn, params, tx, (x, y), steps=6, log_every=4, quiet=True)

    @jax.jit
    def step(p, state):
        g = jax.grad(lambda q: train.mse(apply_fn(q, x), y))(p)
        u, state = tx.update(
            g,
            state,
            p,
            outputs_fn=lambda q: apply_fn(q, x),
            loss_of_outputs=lambda o: train.mse(o, y),
        )
        return optax.apply_updates(p, u), state

    state, p = tx.init(params), params
    for _ in range(6):
        p, state = step(p, state)
    for a, b in zip(jax.tree.leaves(res.params), jax.tree.leaves(p), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
    assert res.history["loss"][-1] < res.history["loss"][0]


def test_plain_gradient_transformation_is_accepted():
    base = optax.sgd(0.1)
    plain = optax.GradientTransformation(base.init, lambda u, s, p=None: base.update(u, s, p))
    x, y = _lsq()
    apply_fn, params = _mlp_apply()
    a = train.fit(apply_fn, params, plain, (x, y), steps=3, quiet=True)
    b = train.fit(apply_fn, params, base, (x, y), steps=3, quiet=True)
    for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(u, v)


# ----------------------------------------------------------------------------- stopping


def test_non_finite_loss_stops_and_keeps_last_finite_state():
    x, y = _lsq(n=16, d=8, k=1)
    apply_fn = lambda p, x: x @ p
    params = jnp.zeros((8, 1))
    lr = 1e3  # GD on a quadratic with eta * lambda_max >> 2: geometric blow-up
    res = train.fit(apply_fn, params, optax.sgd(lr), (x, y), steps=100, log_every=7, quiet=True)
    # reference: plain GD until the loss is no longer finite
    p, prev, j = params, None, None
    for t in range(100):
        value = float(train.mse(apply_fn(p, x), y))
        if not np.isfinite(value):
            j = t
            break
        prev = p
        p = p - lr * jax.grad(lambda q: train.mse(apply_fn(q, x), y))(p)
    assert j is not None and 2 < j < 100
    assert res.stopped_early
    assert f"step {j}" in res.message
    np.testing.assert_allclose(res.params, prev, rtol=1e-5)
    assert np.isfinite(float(train.mse(apply_fn(res.params, x), y)))
    assert np.all(np.isfinite(res.history["loss"]))
    assert res.history["step"][-1] < j


# ----------------------------------------------------------------------------- batches


def test_minibatches_deterministic_by_key_and_independent_of_log_every():
    x, y = _lsq(n=40)
    apply_fn, params = _mlp_apply()

    def run(key, log_every):
        return train.fit(
            apply_fn,
            params,
            optax.sgd(0.1),
            (x, y),
            steps=9,
            batch_size=8,
            key=key,
            log_every=log_every,
            quiet=True,
        ).params

    a = run(jax.random.PRNGKey(3), 3)
    b = run(jax.random.PRNGKey(3), 9)
    c = run(jax.random.PRNGKey(4), 3)
    for u, v, w in zip(*(jax.tree.leaves(t) for t in (a, b, c)), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-6)
    assert any(not np.allclose(u, w) for u, w in zip(jax.tree.leaves(a), jax.tree.leaves(c)))


# ------------------------------------------------------------------ modules, eval, callbacks


def test_fit_module_updates_in_place_and_callbacks_see_params():
    x, y = _lsq()
    net = models.MLP(4, 16, 1, 2, rngs=nnx.Rngs(0))
    apply_fn, p0 = models.functional(net)
    seen = []

    def probe(step, params, history):
        seen.append(step)
        return {"probe_loss": train.mse(apply_fn(params, x), y)}

    res = train.fit(
        net,
        None,
        optax.sgd(0.05),
        (x, y),
        steps=10,
        log_every=5,
        eval_data=(x[:4], y[:4]),
        callbacks=[probe],
        quiet=True,
    )
    assert seen == [0, 5]
    # full batch: the probe at the log point equals the logged training loss
    np.testing.assert_allclose(res.history["probe_loss"], res.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(net(x), apply_fn(res.params, x), rtol=1e-6)
    assert not np.allclose(net(x), apply_fn(p0, x))
    assert set(res.history) >= {"step", "loss", "grad_norm", "eval_loss", "eval_accuracy"}
    with pytest.raises(TypeError, match="params"):
        train.fit(net, p0, optax.sgd(0.1), (x, y), steps=1, quiet=True)


def test_bad_arguments_raise():
    x, y = _lsq()
    apply_fn, params = _mlp_apply()
    kw = dict(quiet=True)
    with pytest.raises(ValueError, match="steps"):
        train.fit(apply_fn, params, optax.sgd(0.1), (x, y), steps=-1, **kw)
    with pytest.raises(ValueError, match="batch_size"):
        train.fit(apply_fn, params, optax.sgd(0.1), (x, y), steps=1, batch_size=100, **kw)
    with pytest.raises(ValueError, match="NaN"):
        train.fit(apply_fn, params, optax.sgd(0.1), (x.at[0, 0].set(jnp.nan), y), steps=1, **kw)
    with pytest.raises(ValueError, match="rows"):
        train.fit(apply_fn, params, optax.sgd(0.1), (x, y[:3]), steps=1, **kw)
    with pytest.raises(ValueError, match="loss"):
        train.fit(apply_fn, params, optax.sgd(0.1), (x, y), loss="hinge", steps=1, **kw)


def test_digits_mlp_reaches_90_percent_quickly():
    from wideth import data

    ds = data.digits(seed=0)
    net = models.MLP(64, 128, 1, 10, parameterization="standard", rngs=nnx.Rngs(0))
    res = train.fit(
        net,
        None,
        optax.sgd(0.1, momentum=0.9),
        ds,
        loss="xent",
        steps=150,
        batch_size=128,
        key=jax.random.PRNGKey(0),
        log_every=50,
        quiet=True,
    )
    acc = float(train.accuracy(net(ds.x_test), ds.y_test))
    assert acc > 0.9, (acc, res.history)
    assert res.history["eval_accuracy"][-1] > 0.85
