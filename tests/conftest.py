"""Shared test fixtures.

Tests that compare to closed forms run in float64 through the ``x64`` fixture,
which restores the previous setting afterwards.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax
import pytest


@pytest.fixture
def x64():
    """Enable float64 for one test and restore the previous setting."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)
