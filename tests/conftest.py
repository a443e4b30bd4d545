"""Shared test fixtures.

Tests that compare to closed forms run in float64 through the ``x64`` fixture,
which restores the previous setting afterwards.
"""

import os
import subprocess
import sys
from pathlib import Path

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


@pytest.fixture
def run_on_devices():
    """Run a Python script in a subprocess that sees ``n`` simulated CPU devices.

    ``XLA_FLAGS=--xla_force_host_platform_device_count=n`` must be set before JAX
    initialises, hence the subprocess (the rest of the suite keeps one device).
    """

    def run(script: str, n: int = 4) -> subprocess.CompletedProcess:
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        flag = f"--xla_force_host_platform_device_count={n}"
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flag).strip()
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        return subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
        )

    return run
