"""What a result was computed with: library versions and hardware."""

from __future__ import annotations

import os
import platform
from typing import Any

__all__ = ["PACKAGES", "hardware", "versions"]

#: Packages whose versions are recorded with every result.
PACKAGES = ("wideth", "jax", "jaxlib", "flax", "optax", "neural-tangents", "numpy", "scipy")


def versions() -> dict[str, str]:
    """Versions of Python and of :data:`PACKAGES` (``"not installed"`` where missing)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def hardware() -> dict[str, Any]:
    """The machine and the JAX devices in use."""
    import jax

    devices = jax.devices()
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in devices],
        "device_kind": devices[0].device_kind if devices else "none",
    }
