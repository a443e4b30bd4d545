"""Second calls with the same functions and new data of the same shapes compile nothing."""

import jax
import jax.numpy as jnp
import optax
import pytest
from compiles import count_compiles
from flax import nnx

from wideth import functional, hessian, models, train
from wideth.kernels import empirical


@pytest.fixture(scope="module")
def problem():
    net = models.MLP(6, 16, 2, out_dim=3, rngs=nnx.Rngs(0))
    apply_fn, params = functional.as_apply(net)
    keys = jax.random.split(jax.random.key(1), 4)
    batches = [
        (jax.random.normal(keys[i], (32, 6)), jax.random.normal(keys[i + 2], (32, 3)))
        for i in range(2)
    ]
    return apply_fn, params, batches


def _loss(apply_fn):
    def loss(p, batch):
        return train.mse(apply_fn(p, batch[0]), batch[1])

    return loss


def test_counter_sees_a_fresh_compilation():
    with count_compiles() as seen:
        jax.jit(lambda a: a * 3.0 + 1.0)(jnp.arange(7.0)).block_until_ready()
    assert seen


def test_fit_second_call_compiles_nothing(problem):
    apply_fn, params, (b1, b2) = problem
    tx = optax.sgd(0.05)
    train.fit(apply_fn, params, tx, b1, steps=6, log_every=3, quiet=True)
    with count_compiles() as seen:
        res = train.fit(apply_fn, params, tx, b2, steps=6, log_every=3, quiet=True)
    assert res.history["loss"].shape == (2,)
    assert not seen, seen


def test_jitted_run_second_call_compiles_nothing(problem):
    apply_fn, params, (b1, b2) = problem
    tx = optax.sgd(0.05)
    step = train.train_step(apply_fn, "mse", tx)
    probes = {"sharpness": train.probes.sharpness(step, num_steps=5)}
    go = jax.jit(lambda s, b: train.run(step, s, b, 8, probes=probes, every=4))
    s0 = train.TrainState.create(params, tx)
    go(s0, b1)
    with count_compiles() as seen:
        jax.block_until_ready(go(s0, b2))
    assert not seen, seen


@pytest.mark.parametrize("routine", ["top_eigenpairs", "sharpness", "spectral_density", "trace"])
def test_spectrum_routines_second_call_compiles_nothing(problem, routine):
    apply_fn, params, (b1, b2) = problem
    loss = _loss(apply_fn)
    key = jax.random.key(0)
    call = {
        "top_eigenpairs": lambda op: hessian.top_eigenpairs(op, k=2, num_steps=6, key=key),
        "sharpness": lambda op: hessian.sharpness(op, num_steps=6, key=key),
        "spectral_density": lambda op: hessian.spectral_density(
            op, num_probes=2, num_steps=5, key=key
        ),
        "trace": lambda op: hessian.trace(op, num_probes=3, key=key),
    }[routine]
    jax.block_until_ready(call(hessian.hessian(loss, params, b1)))
    with count_compiles() as seen:
        jax.block_until_ready(call(hessian.hessian(loss, params, b2)))
    assert not seen, seen


def test_empirical_ntk_second_call_compiles_nothing(problem):
    apply_fn, params, (b1, b2) = problem
    jax.block_until_ready(empirical.ntk(apply_fn, params, b1[0]))
    with count_compiles() as seen:
        jax.block_until_ready(empirical.ntk(apply_fn, params, b2[0]))
    assert not seen, seen


def test_joint_output_ensemble_second_prediction_compiles_nothing():
    """predict.ensemble(..., trace_axes=()) evaluates the user's kernel_fn through one
    cached jit: a second prediction on new test inputs of the same shape compiles nothing."""
    from wideth.kernels import predict

    def kernel_fn(x1, x2=None, get="ntk"):
        x2 = x1 if x2 is None else x2
        k = jnp.einsum("ip,jp,ab->ijab", jnp.tanh(x1), jnp.tanh(x2), jnp.eye(2)) + 0.1
        return k if isinstance(get, str) else tuple(k for _ in get)

    x = jax.random.normal(jax.random.key(0), (9, 3))
    y = jax.random.normal(jax.random.key(1), (5, 2))
    predict_fn = predict.ensemble(kernel_fn, x[:5], y, trace_axes=())
    predict_fn(1.0, x[5:7])
    with count_compiles() as seen:
        predict_fn(1.0, x[7:9]).mean.block_until_ready()
    assert not seen, seen


def test_a_fresh_loss_closure_does_compile(problem):
    # The counterpart of the tests above: the cache is keyed on the function object.
    apply_fn, params, (b1, _) = problem
    key = jax.random.key(0)
    hessian.sharpness(hessian.hessian(_loss(apply_fn), params, b1), num_steps=6, key=key)
    with count_compiles() as seen:
        hessian.sharpness(hessian.hessian(_loss(apply_fn), params, b1), num_steps=6, key=key)
    assert seen
