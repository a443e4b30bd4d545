"""wideth: infinite- and finite-width theory of neural networks in JAX.

Subpackages (imported on first access, so ``import wideth`` stays cheap):

* :mod:`wideth.kernels` -- analytic (neural-tangents) and empirical NNGP/NTK,
  mean-field theory, infinite-width predictions;
* :mod:`wideth.optim` -- the PL-adaptive step size (ADLER) as an Optax transform;
* :mod:`wideth.hessian` -- Hessian/GGN products, Lanczos, spectra, traces;
* :mod:`wideth.scaling` -- power-law and Chinchilla scaling-law fits;
* :mod:`wideth.diagnostics` -- profile and conservation certificates;
* :mod:`wideth.models`, :mod:`wideth.train`, :mod:`wideth.data`;
* :mod:`wideth.losses` -- the one loss registry (``mse``, ``xent``, ``logistic``,
  ``accuracy``);
* :mod:`wideth.functional` (the NNX boundary), :mod:`wideth.activations`,
  :mod:`wideth.io` (JSON, atomic writes), :mod:`wideth.environment`
  (versions, hardware), :mod:`wideth.compat` (neural-tangents on current JAX),
  :mod:`wideth.regions` (exact linear regions of ReLU networks),
  :mod:`wideth.stacked` (an MLP whose depth is an array, for depth sweeps).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "kernels",
    "optim",
    "hessian",
    "scaling",
    "diagnostics",
    "models",
    "train",
    "losses",
    "data",
    "functional",
    "activations",
    "io",
    "environment",
    "compat",
    "regions",
    "stacked",
)

__all__ = [*_SUBMODULES, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"wideth.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'wideth' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
