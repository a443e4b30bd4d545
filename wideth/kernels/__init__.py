"""Analytic and empirical NNGP/NTK kernels, mean-field theory, predictions, row blocks.

Submodules are imported on first access (``wideth.kernels.analytic`` imports
neural-tangents, which takes a moment).
"""

import importlib
from typing import Any

_SUBMODULES = ("analytic", "blocks", "deep_linear", "empirical", "meanfield", "predict", "taylor")

__all__ = list(_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"wideth.kernels.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'wideth.kernels' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
