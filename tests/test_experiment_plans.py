"""Every experiment's full-mode configuration builds (nothing is run; full mode is for a GPU)."""

import importlib

import pytest

from experiments import EXPERIMENTS
from experiments.common import Config, Sizes

# Each experiment's own test file builds its full plan in the default run; this
# sweep over all of them (about a minute) runs with the slow tests.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_full_mode_plan_builds(name):
    module = importlib.import_module(f"experiments.{name}")
    full = module.plan(Config(name, quick=False, seed=0, out=None, quiet=True))
    quick = module.plan(Config(name, quick=True, seed=0, out=None, quiet=True))
    assert isinstance(full, dict) and set(full) == set(quick)
    if isinstance(getattr(module, "SIZES", None), Sizes):
        assert vars(full["sz"]) == module.SIZES.full
