"""Scaling-law data shipped with wideth.

``chinchilla()`` returns the 245 (model size, tokens, loss) points that Epoch AI
extracted from Figure 4 of Hoffmann et al. (2022), published with Besiroglu et al.
(2024). See ``wideth/scaling/data/README.md`` for the attribution and for which
points the published refit excludes.
"""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np

from wideth import _checks

__all__ = ["chinchilla", "CHINCHILLA_NUM_OUTLIERS"]

#: Number of highest-loss runs that Besiroglu et al. (2024) drop before fitting.
CHINCHILLA_NUM_OUTLIERS = 5


def _read_chinchilla() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = resources.files("wideth.scaling") / "data" / "chinchilla_svg_extracted.csv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    n = np.array([float(r["Model Size"]) for r in rows])
    flop = np.array([float(r["Training FLOP"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    return n, flop / (6.0 * n), loss


def chinchilla(exclude_outliers: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The Chinchilla training runs as ``(N, D, L)`` float64 numpy arrays.

    ``N`` is the number of parameters, ``D`` the number of training tokens,
    :math:`D = C / (6 N)` from the training compute :math:`C` in FLOP, and ``L``
    the final loss, for the 245 runs of Hoffmann et al. (2022), Figure 4, as
    extracted from the figure's SVG by Epoch AI.

    Args:
      exclude_outliers: drop the 5 runs with the highest loss, as Besiroglu et al.
        (2024) do before fitting (240 points remain). Default ``False``: all 245.

    Returns:
      ``(N, D, L)``, each of shape ``(245,)`` or ``(240,)``, in file order.

    Examples:
      >>> N, D, L = chinchilla()
      >>> N.shape
      (245,)
      >>> chinchilla(exclude_outliers=True)[0].shape
      (240,)

    References:
      Hoffmann et al., `Training Compute-Optimal Large Language Models
      <https://arxiv.org/abs/2203.15556>`_, 2022.
      Besiroglu, Erdil, Barnett, You, `Chinchilla Scaling: A replication attempt
      <https://arxiv.org/abs/2404.10102>`_, 2024.
    """
    _checks.boolean("exclude_outliers", exclude_outliers)
    n, d, loss = _read_chinchilla()
    if exclude_outliers:
        drop = np.argsort(loss, kind="stable")[::-1][:CHINCHILLA_NUM_OUTLIERS]
        keep = np.setdiff1d(np.arange(loss.size), drop)
        n, d, loss = n[keep], d[keep], loss[keep]
    return n, d, loss
