"""Shared pieces of the scaling-law fitters: input checks, Huber loss, bootstrap weights."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wideth import _checks


def as_positive_1d(name: str, value: Any) -> np.ndarray:
    """``value`` as a float64 1-D numpy array of finite positive numbers, else ``ValueError``."""
    arr = _checks.host_array(name, value, ndim=1, kind="real", dtype=np.float64)
    if np.any(arr <= 0):
        raise ValueError(
            f"{name}: expected positive values, found {int(np.sum(arr <= 0))} <= 0 "
            f"(smallest {arr.min():g})"
        )
    return arr


def check_lengths(num_params: int, **arrays: np.ndarray) -> int:
    """All arrays have the same length, and more points than fit parameters."""
    names = list(arrays)
    n = arrays[names[0]].shape[0]
    for name in names[1:]:
        if arrays[name].shape[0] != n:
            raise ValueError(
                f"{name}: expected the length {n} of {names[0]}, got {arrays[name].shape[0]}"
            )
    if n <= num_params:
        raise ValueError(
            f"{names[0]}: fitting {num_params} parameters needs more than {num_params} points, "
            f"got {n}"
        )
    return n


def check_distinct(name: str, values: np.ndarray, needed: int, what: str) -> None:
    """At least ``needed`` distinct values, else the parameters ``what`` are not identifiable."""
    k = np.unique(values).size
    if k < needed:
        raise ValueError(
            f"{name}: expected at least {needed} distinct values to identify {what}, got {k} "
            f"(values {np.unique(values)[:4].tolist()})"
        )


def check_options(delta: float, n_bootstrap: int, ci_level: float, max_iter: int) -> tuple:
    """Reject bad hyperparameters with a message naming them."""
    delta = float(_checks.scalar("delta", delta, 0.0, low_open=True))
    n_bootstrap = _checks.nonnegative_int("n_bootstrap", n_bootstrap)
    ci_level = float(_checks.scalar("ci_level", ci_level, 0.0, 1.0, low_open=True, high_open=True))
    max_iter = _checks.positive_int("max_iter", max_iter)
    return delta, n_bootstrap, ci_level, max_iter


def check_finite_fit(loss: float, name: str) -> None:
    """A fit whose best loss is not finite is no fit: say which budget to raise."""
    if not np.isfinite(loss):
        raise ValueError(
            f"{name}: no start reached a finite loss (best {loss}); check the data and the starts"
        )


def default_dtype(dtype: Any) -> Any:
    """``dtype`` or the default float type (float64 only when x64 is enabled)."""
    return jnp.dtype(dtype) if dtype is not None else jnp.result_type(float)


def huber(r: jax.Array, delta: float | jax.Array) -> jax.Array:
    r"""Huber loss: :math:`r^2/2` for :math:`|r|\le\delta`, else :math:`\delta(|r|-\delta/2)`."""
    a = jnp.abs(r)
    return jnp.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def mean_huber(r: jax.Array, weights: jax.Array, delta: float | jax.Array) -> jax.Array:
    r"""Weighted mean Huber loss over delta.

    :math:`\sum_i w_i h_\delta(r_i) / (\delta \sum_i w_i)`: the same minimiser as the
    sum, gradients of order one.
    """
    return jnp.sum(weights * huber(r, delta)) / (delta * jnp.sum(weights))


def x64_for(dtype: Any) -> contextlib.AbstractContextManager:
    """``jax.enable_x64`` on for a float64 fit, left as the caller set it otherwise."""
    return jax.enable_x64(dtype == jnp.float64 or bool(jax.config.jax_enable_x64))


def bootstrap_weights(key: jax.Array, n: int, num: int, dtype: Any) -> np.ndarray:
    """``(num, n)`` resampling counts: point ``i`` drawn ``w[b, i]`` times in resample ``b``."""
    key = _checks.prng_key("key", key)
    n = _checks.positive_int("n", n)
    num = _checks.nonnegative_int("num", num)
    idx = np.asarray(jax.random.randint(key, (num, n), 0, n))
    counts = np.zeros((num, n), dtype)
    np.add.at(counts, (np.arange(num)[:, None], idx), 1)
    return counts


def percentile_ci(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed percentile interval of ``samples`` along axis 0 (NaN rows ignored)."""
    lo = np.nanpercentile(samples, 50 * (1 - level), axis=0)
    hi = np.nanpercentile(samples, 50 * (1 + level), axis=0)
    return lo, hi


def bootstrap_ci(
    bootstrap: Any, level: float, names: Sequence[str]
) -> dict[str, tuple[float, float]]:
    """Percentile intervals ``{name: (low, high)}`` of the bootstrap columns (NaN if none)."""
    samples = np.asarray(bootstrap, np.float64)
    if samples.shape[0] == 0:
        return {k: (math.nan, math.nan) for k in names}
    lo, hi = percentile_ci(samples, level)
    return {k: (float(lo[i]), float(hi[i])) for i, k in enumerate(names)}


def fit_record(fit: Any, fields: str) -> dict[str, Any]:
    """The fields of a fit result named in ``fields`` (space-separated) as plain Python types.

    The keys come in the order of ``fields``.

    ``loss`` becomes a float, ``stderr`` a dict, ``ci`` lists, ``n_bootstrap`` the
    number of bootstrap rows; any other field is taken as it is.
    """
    computed = {
        "loss": lambda: float(fit.loss),
        "stderr": lambda: dict(fit.stderr),
        "ci": lambda: {k: list(v) for k, v in fit.ci.items()},
        "n_bootstrap": lambda: int(np.shape(fit.bootstrap)[0]),
    }
    return {k: computed[k]() if k in computed else getattr(fit, k) for k in fields.split()}
