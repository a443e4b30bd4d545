"""wideth.scaling: power-law and Chinchilla fits, bootstrap CIs, compute-optimal allocation."""

from . import datasets as datasets
from ._common import bootstrap_weights as bootstrap_weights
from .chinchilla import ChinchillaFit as ChinchillaFit
from .chinchilla import chinchilla_grid as chinchilla_grid
from .chinchilla import fit_chinchilla as fit_chinchilla
from .power_law import PowerLawFit as PowerLawFit
from .power_law import fit_power_law as fit_power_law
from .references import BESIROGLU_2024 as BESIROGLU_2024
from .references import HOFFMANN_2022 as HOFFMANN_2022
from .references import PublishedFit as PublishedFit

__all__ = [
    "BESIROGLU_2024",
    "ChinchillaFit",
    "HOFFMANN_2022",
    "PowerLawFit",
    "PublishedFit",
    "bootstrap_weights",
    "chinchilla_grid",
    "datasets",
    "fit_chinchilla",
    "fit_power_law",
]
