"""Full-mode programs fit in memory: compiled (not run) at full size on the CPU.

Full mode is sized for one GPU, where nothing runs in CI. What can be checked
here is the memory XLA plans for each large program at its full size
(``compiled.memory_analysis()``, temporaries + outputs). Ensembles of random
networks run in groups under ``vmap``; without the grouping (or, for the ReLU
gradients, the rematerialised layers) these programs planned 11 to 68 GiB on
this backend. Each must stay within ``BUDGET_GIB``, which leaves room on an
80 GB accelerator and on a 24 GB host.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import catapult, criticality, finite_width, pl_conditioning
from experiments.common import Config

BUDGET_GIB = 8.0


def _planned_gib(program, *args) -> float:
    mem = program.lower(*args).compile().memory_analysis()
    if mem is None:  # pragma: no cover - backends without the analysis
        pytest.skip("memory_analysis is not available on this backend")
    return (mem.temp_size_in_bytes + mem.output_size_in_bytes) / 2**30


def _keys(shape):
    return jax.random.split(jax.random.key(0), shape)


@pytest.mark.slow
def test_criticality_full_programs_fit():
    p = criticality.plan(Config("criticality", quick=False, seed=0, out=None, quiet=True))
    sz, progs = p["sz"], p["programs"]
    f32 = lambda n: jnp.zeros((n,), jnp.float32)

    grid, net = sz.phase_grid, sz.phase_net
    c = grid["W_grid"].size * grid["b_grid"].size
    keys = _keys((c, net["num_nets"]))
    phase = _planned_gib(progs["phase"], keys, jnp.zeros((2, 50)), f32(c), f32(c))

    sig = sz.signal
    keys = _keys((3, sig["num_nets"]))
    signal = _planned_gib(progs["signal"], keys, jnp.zeros((2, 100)), f32(3), f32(3))

    g = sz.gradients
    w = len(criticality.RELU_W_VARS)
    grads = _planned_gib(progs["relu"], _keys((w, g["num_nets"])), f32(w))

    tg = sz.train_grid
    n = tg["W_grid"].size * tg["depths"].size * tg["seeds"]
    x, y = jnp.zeros((1348, 64)), jnp.zeros((1348, 10))
    train = _planned_gib(progs["train"], _keys(n), f32(n), jnp.zeros((n,), jnp.int32), x, y)

    planned = {"phase": phase, "signal": signal, "gradients": grads, "trainability": train}
    assert max(planned.values()) < BUDGET_GIB, planned


@pytest.mark.slow
def test_finite_width_full_programs_fit():
    full = finite_width.SIZES.full
    x = jnp.zeros(finite_width.D_IN)
    prog = finite_width.nngp_program(x, max(full["nngp_widths"]), max(full["nngp_depths"]))
    nngp = _planned_gib(prog, _keys(full["nngp_networks"]))
    width, depth = full["prop3_width"], max(full["prop3_depths"])
    prog = finite_width.ntk_program(x[None], width, depth)
    ntk = _planned_gib(prog, _keys(full["prop3_networks"]))
    assert max(nngp, ntk) < BUDGET_GIB, {"nngp": nngp, "ntk": ntk}


@pytest.mark.slow
def test_finite_width_full_movement_program_fits():
    from experiments.common import Config

    p = finite_width.plan(Config("finite_width", quick=False, seed=0, out=None, quiet=True))
    sz = p["sz"]
    apply_fn, init = p["models"][max(sz.mv_widths)]
    prog = finite_width.movement_program(
        apply_fn, init, p["batch"], p["probe"], sz.mv_steps, sz.mv_lr, centred=True
    )
    planned = _planned_gib(prog, _keys(sz.mv_seeds))
    assert planned < BUDGET_GIB, planned


@pytest.mark.slow
def test_catapult_full_programs_fit():
    # 8 seeds x 19 step sizes of a 64-2048x3-10 MLP: 23 GiB when every network (and its
    # final parameters) was in flight at once
    p = catapult.plan(Config("catapult", quick=False, seed=0, out=None, quiet=True))
    sz, progs, params, key = p["sz"], p["programs"], p["params"], p["key"]
    etas = lambda e: jnp.zeros((sz.seeds, e), jnp.float32)
    planned = {
        "sweep": _planned_gib(progs["sweep"], params, etas(len(sz.grid)), key),
        "bisect": _planned_gib(progs["bisect"], params, etas(1), key),
        "trajectory": _planned_gib(progs["trajectory"], params, etas(len(sz.traj)), key),
        "lambda0": _planned_gib(progs["lambda0"], params, key),
    }
    assert max(planned.values()) < BUDGET_GIB, planned


@pytest.mark.slow
def test_pl_conditioning_full_kappa_program_fits():
    # the deepest, widest empirical NTKs of the depth part: 32 seeds of 2048 x 16 MLPs
    full = pl_conditioning.SIZES.full
    x = jnp.zeros((full["depth_n"], 64))  # digits
    prog = pl_conditioning.kappa_program(x, "relu", max(full["depths"]), full["depth_width"], 2.0)
    planned = _planned_gib(prog, _keys(full["depth_seeds"]))
    assert planned < BUDGET_GIB, planned


@pytest.mark.slow
def test_grouped_ensembles_equal_one_vmap():
    # Grouping networks (lax.map over groups of a vmap) changes memory, not values.
    keys = _keys(7)
    x = jax.random.normal(jax.random.key(1), (16,))
    grouped = finite_width.nngp_program(x, 8, 3)
    old, finite_width.NETS_PER_BATCH = finite_width.NETS_PER_BATCH, 3
    try:
        uneven = finite_width.nngp_program(x, 8, 3)(keys)
    finally:
        finite_width.NETS_PER_BATCH = old
    for a, b in zip(grouped(keys), uneven, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
