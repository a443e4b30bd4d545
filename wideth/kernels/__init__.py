"""Analytic and empirical NNGP/NTK kernels, mean-field theory, predictions."""

import importlib
from typing import Any

_SUBMODULES = ("analytic", "empirical", "meanfield", "predict")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"wideth.kernels.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'wideth.kernels' has no attribute {name!r}")
