r"""Published fits of the Chinchilla law :math:`L(N, D) = E + A/N^\alpha + B/D^\beta`, as printed.

Each value is stored exactly as its paper prints it, with the paper's
uncertainty where it gives one, so a comparison can say how far apart two fits
are in units of a standard error instead of against rounded numbers.

References:
  Hoffmann et al., `Training Compute-Optimal Large Language Models
  <https://arxiv.org/abs/2203.15556>`_, 2022.
  Besiroglu, Erdil, Barnett, You, `Chinchilla Scaling: A replication attempt
  <https://arxiv.org/abs/2404.10102>`_, 2024.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["BESIROGLU_2024", "HOFFMANN_2022", "PublishedFit"]

PARAM_NAMES = ("E", "A", "B", "alpha", "beta")


@dataclasses.dataclass(frozen=True)
class PublishedFit(Mapping):
    r"""One published fit of :math:`L = E + A/N^\alpha + B/D^\beta`.

    A read-only mapping ``{"E", "A", "B", "alpha", "beta"} -> value`` (so
    ``fit["beta"]`` works), plus the paper's standard errors and where the
    numbers are printed.

    Attributes:
      E, A, B, alpha, beta: the estimates as printed.
      stderr: standard error of each estimate as printed (``None``: not given).
      source: citation with table / equation and page.
      n_points: number of training runs fitted.
      notes: anything a reader of the numbers needs (rounding, what is missing).
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    stderr: Mapping[str, float] | None
    source: str
    n_points: int
    notes: str = ""

    def __getitem__(self, key: str) -> float:
        if key not in PARAM_NAMES:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(PARAM_NAMES)

    def __len__(self) -> int:
        return len(PARAM_NAMES)

    def decimals(self, key: str) -> int:
        """Decimal places printed for ``key`` (``repr`` of the stored float)."""
        text = repr(float(self[key]))
        return len(text.split(".")[1]) if "." in text and "e" not in text else 0

    def rounding(self, key: str) -> float:
        """Half a unit of the last printed digit of ``key``: the rounding error of the value."""
        return 0.5 * 10.0 ** (-self.decimals(key))

    def stderr_rounding(self, key: str) -> float:
        """Half a unit of the last printed digit of the standard error of ``key`` (NaN: none)."""
        if self.stderr is None:
            return math.nan
        text = repr(float(self.stderr[key]))
        places = len(text.split(".")[1]) if "." in text else 0
        return 0.5 * 10.0 ** (-places)

    def to_dict(self) -> dict[str, Any]:
        """Values, standard errors and source as plain Python types."""
        return {
            **{k: self[k] for k in PARAM_NAMES},
            "stderr": dict(self.stderr) if self.stderr is not None else None,
            "source": self.source,
            "n_points": self.n_points,
            "notes": self.notes,
        }


#: Besiroglu et al. (2024), Table 1: their refit of Approach 3 on the 240 points
#: extracted from Hoffmann et al.'s Figure 4 (the 5 highest-loss runs dropped),
#: Huber loss (delta = 1e-3) on log L, L-BFGS from a grid of starts; standard
#: errors from bootstrap refits.
BESIROGLU_2024 = PublishedFit(
    E=1.8172,
    A=482.01,
    B=2085.43,
    alpha=0.3478,
    beta=0.3658,
    stderr={"E": 0.03, "A": 124.58, "B": 1293.23, "alpha": 0.02, "beta": 0.02},
    source=(
        "Besiroglu, Erdil, Barnett, You 2024, arXiv:2404.10102v2, Table 1 (estimates with "
        "bootstrap standard errors in parentheses; page number not re-verified)"
    ),
    n_points=240,
    notes="standard errors of E, alpha, beta printed to one significant digit",
)

#: Hoffmann et al. (2022), Approach 3 (Section 3.3; equation and page number
#: not re-verified for this entry): E = 1.69, A = 406.4, B = 410.7,
#: alpha = 0.34, beta = 0.28, fitted on their full set of runs. No standard
#: errors are printed for these parameters (their Table 2 gives only the
#: derived exponents a = 0.46 and b = 0.54 with intervals (0.454, 0.455) and
#: (0.542, 0.543), which Besiroglu et al. show are implausibly narrow).
#: Besiroglu et al. report the unrounded TeX-source values E = 1.6934,
#: alpha = 0.3392, beta = 0.2849.
HOFFMANN_2022 = PublishedFit(
    E=1.69,
    A=406.4,
    B=410.7,
    alpha=0.34,
    beta=0.28,
    stderr=None,
    source="Hoffmann et al. 2022, arXiv:2203.15556, Section 3.3 (Approach 3), Table 2",
    n_points=0,
    notes=(
        "no standard errors published; number of runs fitted not stated exactly (over 400 "
        "models); Table 2: a = 0.46 (0.454, 0.455), b = 0.54 (0.542, 0.543)"
    ),
)
