"""``method="auto"`` against measured timings on the benchmark architectures.

``auto`` picks a method from a FLOP/memory cost model (``structured_report(...)["auto"]``).
Here every method is timed on the networks of ``benchmarks/kernels_structured.py``
at its ``--quick`` sizes (float32), and the chosen method must be within 20% of
the fastest. On a shared CPU, timings are taken interleaved (one call of each
method per round, so load drifts hit all methods alike) and each method's time is
its minimum over rounds; a failing comparison is re-measured with more rounds
before it counts (a wrong choice stays wrong, noise does not). The comparison can
fail: a cost model that preferred ``jvp`` (100x slower on the MLP and CNN) would.
"""

import time

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from wideth import functional, models
from wideth.kernels import empirical

#: auto's method may be at most this much slower than the fastest one.
SLACK = 1.2
ROUNDS, ATTEMPTS = 5, 3


def _network(name):
    r = nnx.Rngs(0)
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    img = jax.random.normal(keys[1], (8, 8, 8, 3), jnp.float32)
    if name == "mlp":
        return models.MLP(32, 64, 5, out_dim=10, b_std=0.1, rngs=r), jax.random.normal(
            keys[0], (64, 32), jnp.float32
        )
    if name == "cnn":
        return models.CNN(3, 8, 10, depth=3, b_std=0.1, rngs=r), img
    if name == "convresnet":
        return models.ConvResNet(3, 8, 10, depth=3, b_std=0.1, rngs=r), img
    module = models.Transformer(4, 16, 2, out_dim=3, n_heads=2, b_std=0.1, layernorm="post", rngs=r)
    return module, jax.random.normal(keys[2], (16, 6, 4), jnp.float32)


def _interleaved_minima(calls, rounds, best):
    for _ in range(rounds):
        for method, call in calls.items():
            t0 = time.perf_counter()
            jax.block_until_ready(call())
            best[method] = min(best.get(method, float("inf")), time.perf_counter() - t0)
    return best


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "cnn", "convresnet", "transformer"])
def test_auto_is_within_20_percent_of_the_fastest_method(name):
    module, x = _network(name)
    apply_fn, params = functional.functional(module)
    chosen = empirical.structured_report(apply_fn, params, x)["auto"]
    assert chosen in empirical.METHODS and chosen != "auto"
    methods = [m for m in empirical.METHODS if m != "auto"]
    calls = {m: (lambda m=m: empirical.ntk(apply_fn, params, x, method=m)) for m in methods}
    for call in calls.values():  # compile
        jax.block_until_ready(call())
    best: dict[str, float] = {}
    for _ in range(ATTEMPTS):
        best = _interleaved_minima(calls, ROUNDS, best)
        ratio = best[chosen] / min(best.values())
        if ratio <= SLACK:
            break
    assert ratio <= SLACK, (name, chosen, best)
