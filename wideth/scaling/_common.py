"""Shared pieces of the scaling-law fitters: input checks, Huber loss, bootstrap weights."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def as_positive_1d(name: str, value: Any) -> np.ndarray:
    """``value`` as a float64 1-D numpy array of finite positive numbers, else ``ValueError``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}") from err
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D of shape (n,), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; found {int(np.sum(~np.isfinite(arr)))} NaN/inf")
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be positive; found {int(np.sum(arr <= 0))} values <= 0")
    return arr


def check_lengths(num_params: int, **arrays: np.ndarray) -> int:
    """All arrays have the same length, and more points than fit parameters."""
    names = list(arrays)
    n = arrays[names[0]].shape[0]
    for name in names[1:]:
        if arrays[name].shape[0] != n:
            raise ValueError(
                f"{name} has length {arrays[name].shape[0]} but {names[0]} has length {n}; "
                "they must match"
            )
    if n <= num_params:
        raise ValueError(
            f"{names[0]} has {n} points; fitting {num_params} parameters needs more than "
            f"{num_params}"
        )
    return n


def check_options(delta: float, n_bootstrap: int, ci_level: float) -> None:
    """Reject bad hyperparameters with a message naming them."""
    if not (np.isfinite(delta) and delta > 0):
        raise ValueError(f"delta must be a positive number, got {delta}")
    if int(n_bootstrap) != n_bootstrap or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be a non-negative integer, got {n_bootstrap}")
    if not 0 < ci_level < 1:
        raise ValueError(f"ci_level must be in (0, 1), got {ci_level}")


def default_dtype(dtype: Any) -> Any:
    """``dtype`` or the default float type (float64 only when x64 is enabled)."""
    return jnp.dtype(dtype) if dtype is not None else jnp.result_type(float)


def huber(r: jax.Array, delta: float | jax.Array) -> jax.Array:
    r"""Huber loss: :math:`r^2/2` for :math:`|r|\le\delta`, else :math:`\delta(|r|-\delta/2)`."""
    a = jnp.abs(r)
    return jnp.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def bootstrap_weights(key: jax.Array, n: int, num: int, dtype: Any) -> np.ndarray:
    """``(num, n)`` resampling counts: point ``i`` drawn ``w[b, i]`` times in resample ``b``."""
    idx = np.asarray(jax.random.randint(key, (num, n), 0, n))
    counts = np.zeros((num, n), dtype)
    np.add.at(counts, (np.arange(num)[:, None], idx), 1)
    return counts


def percentile_ci(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed percentile interval of ``samples`` along axis 0 (NaN rows ignored)."""
    lo = np.nanpercentile(samples, 50 * (1 - level), axis=0)
    hi = np.nanpercentile(samples, 50 * (1 + level), axis=0)
    return lo, hi
