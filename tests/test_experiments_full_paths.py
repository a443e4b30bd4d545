"""Every experiment runs its full-mode code paths end to end, at small sizes.

Full mode is sized for a GPU and never runs in CI, so a crash that only its
configuration reaches (a model kind, a dataset, a size key that quick mode does
not use; ``KeyError: 'depth'`` in pl_adaptive once) would land unseen. Here each
experiment's ``run`` executes with ``quick=False`` and its full sizes, except that
the numbers that only set the amount of work (steps, networks, samples, widths)
are replaced by small ones, so the full configuration's datasets, model kinds,
peers, variants and grids are visited (pl_adaptive's exceptions are named below).
``tests/test_full_mode_memory.py`` compiles the largest programs at their real full
size.

The checks' pass/fail is not asserted (at these sizes the statistics are
meaningless); what is asserted is what ``run`` promises: ``metrics.json`` in full
mode, every check with a verdict and a kind, and every figure written.
"""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments import EXPERIMENTS
from experiments.common import KINDS, Config, Sizes, execute

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent

#: per experiment, the work-sizing entries replaced in its full sizes
SMALL = {
    "catapult": dict(
        uv_m=200,
        uv_steps=100,
        uv_seeds=2,
        uv_grid_step=0.5,
        uv_widths=(100, 1000),
        uv_peak_steps=50,
        n=16,
        width=32,
        seeds=2,
        steps=30,
        grid=(0.5, 2.2, 14.0),
        rounds=2,
        bisect_steps=20,
        traj_steps=10,
        lanczos=5,
    ),
    "edge_of_stability": dict(n=64, seeds=2, steps=100, flow_multiple=8.0, xent_steps=100),
    "double_descent": dict(
        n_hastie=50,
        seeds_hastie=4,
        n_rf=60,
        n_rf_test=60,
        rf_seeds=2,
        n_gf=40,
        p_gf=20,
        gf_designs=2,
        gd_n=20,
        gd_p=10,
        gd_draws=16,
        n_ntk=32,
        n_ntk_test=32,
        widths=(64, 256, 1024, 4096),
        ntk_steps=20,
        ntk_seeds=2,
    ),
    "implicit_bias": dict(
        diag=dict(n=20, d=40, k=3, num_alphas=3, steps=2000),
        logistic=dict(num_sets=2, n=10, d=2, margin=0.5, gap=2.0, min_kappa=0.75, decades=4),
        spectral=dict(n=16, widths=(256, 1024), num_nets=2, steps=20, every=2),
    ),
    "criticality": dict(
        signal=dict(depth=6, width=32, num_nets=2),
        phase_grid=dict(W_grid=np.linspace(0.5, 4.0, 4), b_grid=np.linspace(0.0, 1.0, 3)),
        phase_net=dict(depth=6, width=32, num_nets=2),
        train_grid=dict(
            W_grid=np.array([0.5, 1.2, 2.5, 30.0]), depths=np.array([6, 8]), width=16, seeds=1
        ),
        train_run=dict(steps=20, lr=1e-3, batch_size=16, b_var=0.05, nets_per_batch=40),
        gradients=dict(depth=6, width=32, num_nets=4),
    ),
    "finite_width": dict(
        nngp_widths=(32, 64),
        nngp_depths=(1, 2),
        nngp_networks=100,
        depth1_width=32,
        depth1_networks=100,
        prop3_width=32,
        prop3_depths=(2, 4, 8),
        prop3_networks=100,
        mv_widths=(32, 64, 128, 256, 512),
        mv_seeds=2,
        mv_steps=10,
        n_train=32,
        n_probe=8,
    ),
    # every model kind (the activation is only a parameter) and every peer and variant; on
    # digits only: one ConvResNet task on MNIST-5k probes 5,000 28x28 images per probe and
    # takes minutes here (MNIST-5k's loader is tested in test_data, its MLP full run in README)
    "pl_adaptive": dict(
        datasets=("digits",),
        models=("convres_tanh", "mlp_sigmoid"),
        seeds=2,
        steps=4,
        every=2,
        width=16,
        channels=4,
    ),
    "scaling_laws": dict(
        n_bootstrap=50, widths=(8, 16, 32, 64), sizes=(42, 84, 168, 337), seeds=(0, 1), steps=100
    ),
    "linear_regions": dict(
        n0=8, width=32, depth=3, networks=4, grid=51, train_steps=20, train_points=16, snapshots=2
    ),
    "depth_fluctuations": dict(relu_networks=40, tanh_networks=8, ntk_networks=40),
    "sgd_stationarity": dict(
        ls_steps=40_000,
        ls_seeds=2,
        mlp_n=128,
        mlp_width=16,
        mlp_gd_steps=200,
        mlp_burn=200,
        mlp_steps=4000,
        mlp_seeds=2,
    ),
    "hessian_structure": dict(
        width=64,
        steps=100,
        every=50,
        lanczos=10,
        top_k=12,
        top_steps=20,
        slq_probes=2,
        slq_steps=20,
    ),
    "pl_conditioning": dict(
        train_n=16, train_width=64, train_steps=30, depth_n=8, depth_width=64, depth_seeds=2
    ),
    "bayes_deep_linear": dict(
        tiny_draws=20_000,
        tiny_chunk=10_000,
        tiny_samples=2_000,
        tiny_is=20_000,
        pair_samples=2_000,
        sweep_samples=2_000,
    ),
}


def test_every_experiment_has_small_full_sizes():
    assert set(SMALL) == set(EXPERIMENTS)
    for name, small in SMALL.items():
        full = importlib.import_module(f"experiments.{name}").SIZES.full
        assert set(small) <= set(full), (name, sorted(set(small) - set(full)))


def run_small_full(name: str, out: str) -> None:
    """``name``'s ``run`` in full mode with :data:`SMALL` sizes, writing into ``out``."""
    module = importlib.import_module(f"experiments.{name}")
    module.SIZES = Sizes(quick=module.SIZES.quick, full={**module.SIZES.full, **SMALL[name]})
    cfg = Config(name, quick=False, seed=0, out=Path(out), quiet=True)
    execute(module.run, cfg, module.__doc__ or "")


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_full_mode_paths_run(name, tmp_path):
    # In a fresh process: these are whole experiment runs, kept out of the test worker's
    # memory and compilation caches.
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"import test_experiments_full_paths as t; t.run_small_full({name!r}, {str(tmp_path)!r})"
    )
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    payload = json.loads((tmp_path / "metrics.json").read_text())
    assert payload["mode"] == "full"
    assert payload["checks"], "no checks recorded"
    for c in payload["checks"]:
        assert isinstance(c["pass"], bool) and c["kind"] in KINDS, c
    assert payload["figures"], "no figures written"
    for fig in payload["figures"]:
        assert (tmp_path / fig).stat().st_size > 0, fig
