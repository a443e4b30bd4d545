"""Every experiment's full-mode configuration builds (nothing is run; full mode is for a GPU)."""

import importlib

import pytest

from experiments import EXPERIMENTS
from experiments._common import Config, Sizes

# Experiments not yet split into plan(cfg) + run(cfg); this set only shrinks.
WITHOUT_PLAN = {"pl_adaptive", "finite_width"}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_full_mode_plan_builds(name):
    module = importlib.import_module(f"experiments.{name}")
    if name in WITHOUT_PLAN:
        assert not hasattr(module, "plan"), f"{name} has plan(cfg) now: drop it from WITHOUT_PLAN"
        pytest.skip(f"{name} has no plan(cfg) yet")
    full = module.plan(Config(name, quick=False, seed=0, out=None, quiet=True))
    quick = module.plan(Config(name, quick=True, seed=0, out=None, quiet=True))
    assert isinstance(full, dict) and set(full) == set(quick)
    if isinstance(getattr(module, "SIZES", None), Sizes):
        assert vars(full["sz"]) == module.SIZES.full
