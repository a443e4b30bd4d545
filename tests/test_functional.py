"""The NNX boundary: vmapped initialisation, and the README's learning-rate x seed sweep."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from wideth import functional, models


def _build(rngs):
    return models.MLP(5, 32, 2, 3, rngs=rngs)


def test_init_params_vmapped_equals_one_init_per_key():
    """vmap over keys gives the per-key initialisations; different keys differ."""
    keys = jax.random.split(jax.random.key(3), 4)
    ens = jax.jit(jax.vmap(lambda k: functional.init_params(_build, k)))(keys)
    for i in (0, 2):
        one = functional.init_params(_build, keys[i])
        for a, b in zip(jax.tree.leaves(ens), jax.tree.leaves(one), strict=True):
            np.testing.assert_array_equal(a[i], b)
    w = [x for x in jax.tree.leaves(ens) if x.ndim == 3][0]
    assert not np.allclose(w[0], w[1])
    apply_fn, p0 = functional.functional(_build(nnx.Rngs(0)))
    assert jax.tree.structure(p0) == jax.tree.structure(functional.init_params(_build, keys[0]))
    out = jax.vmap(apply_fn, in_axes=(0, None))(ens, jnp.ones((7, 5)))
    assert out.shape == (4, 7, 3) and not np.allclose(out[0], out[1])


@pytest.mark.slow
def test_readme_sweep_runs_as_written():
    """The README's sweep block, executed on a small problem: shapes as printed, and the
    seeds are different initialisations (their losses differ at step 0)."""
    text = (Path(__file__).parents[1] / "README.md").read_text()
    block = text.split("### Training as values")[1]
    code = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    x = jax.random.normal(jax.random.key(0), (32, 64))
    y = jax.nn.one_hot(jnp.arange(32) % 10, 10)
    ns: dict = {"x": x, "y": y}
    exec(compile(code, "README.md", "exec"), ns)
    loss, sharp = ns["res"].metrics["loss"], ns["res"].probes["sharpness"]
    assert loss.shape == (8, 4, 1000) and sharp.shape == (8, 4, 21)
    assert float(jnp.std(loss[0, :, 0])) > 0  # seeds start from different networks
    assert bool(jnp.all(jnp.isfinite(sharp[:3])))
    # the smallest learning rate's sharpness is positive and below its stability edge
    assert 0 < float(sharp[0, 0, -1]) < 2 / 0.01
