r"""Power law with offset, :math:`y = a\,x^{-b} + c`, fitted robustly on log residuals.

The model is parameterised on normalised data :math:`\tilde x = x/x_0`,
:math:`\tilde y = y/y_0` (geometric means) as

.. math::

    \log \tilde y = \operatorname{LSE}(\log\tilde a - b \log \tilde x,\ \log \tilde c),
    \qquad a = \tilde a\, y_0 x_0^{b},\quad c = \tilde c\, y_0,

(without offset: :math:`\log\tilde y = \log\tilde a - b\log\tilde x`), and the Huber
loss of the log residuals is minimised by L-BFGS from a grid of starts, all at once
under ``vmap``, the same way :func:`wideth.scaling.fit_chinchilla` fits the
Chinchilla law (Besiroglu et al. 2024).
"""

from __future__ import annotations

import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from wideth import _checks

from ._common import (
    as_positive_1d,
    bootstrap_ci,
    check_distinct,
    check_finite_fit,
    check_lengths,
    check_options,
    fit_record,
    mean_huber,
    x64_for,
)
from .chinchilla import bootstrap_refits, multistart

_CHUNK = 256

__all__ = ["PowerLawFit", "fit_power_law"]


def _log_predict(theta: jax.Array, log_x: jax.Array) -> jax.Array:
    t = theta[0] - theta[1] * log_x
    if theta.shape[0] == 2:
        return t
    m = jax.lax.stop_gradient(jnp.maximum(t, theta[2]))
    return m + jnp.log(jnp.exp(t - m) + jnp.exp(theta[2] - m))


def _objective(theta, log_x, log_y, weights, delta):
    return mean_huber(_log_predict(theta, log_x) - log_y, weights, delta)


def _starts(log_x: np.ndarray, log_y: np.ndarray, with_offset: bool) -> np.ndarray:
    """Grid of starts: exponents x offsets, amplitude by least squares given both."""
    rows = []
    y = np.exp(log_y)
    for b in (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0):
        fracs = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99) if with_offset else (0.0,)
        for frac in fracs:
            c = frac * y.min()
            log_a = np.mean(np.log(y - c) + b * log_x)
            row = [log_a, b]
            if with_offset:
                row.append(np.log(max(c, 1e-3 * y.min())))
            rows.append(row)
    return np.array(rows)


@struct.dataclass
class PowerLawFit:
    r"""Result of :func:`fit_power_law`: :math:`y = a x^{-b} + c`.

    Attributes:
      a, b, c: fitted parameters (0-d float64 arrays; ``c = 0`` without offset).
      loss: :math:`\sum_i h_\delta(\log\hat y_i - \log y_i)` at the fit.
      stderr: asymptotic standard errors ``{name: value}`` (Gauss-Newton, see
        :func:`fit_power_law`).
      bootstrap: ``(n_bootstrap, 3)`` refits on resampled points, columns ``(a, b, c)``.
      with_offset, n_points, delta, ci_level, n_converged: fit metadata.
    """

    a: jax.Array
    b: jax.Array
    c: jax.Array
    loss: jax.Array
    bootstrap: jax.Array
    stderr: dict[str, float] = struct.field(pytree_node=False)
    with_offset: bool = struct.field(pytree_node=False)
    n_points: int = struct.field(pytree_node=False)
    delta: float = struct.field(pytree_node=False)
    ci_level: float = struct.field(pytree_node=False)
    n_converged: int = struct.field(pytree_node=False)

    @property
    def names(self) -> tuple[str, ...]:
        return ("a", "b", "c") if self.with_offset else ("a", "b")

    @property
    def params(self) -> dict[str, float]:
        """Fitted parameters as Python floats."""
        return {k: float(getattr(self, k)) for k in ("a", "b", "c")}

    @property
    def ci(self) -> dict[str, tuple[float, float]]:
        """Percentile bootstrap intervals at ``ci_level``, ``{name: (low, high)}``."""
        return bootstrap_ci(self.bootstrap, self.ci_level, self.names)

    def predict(self, x: Any) -> jax.Array:
        r""":math:`a x^{-b} + c` (broadcasts; jittable; concrete ``x`` must be positive)."""
        _checks.in_range("x", _checks.array("x", x, kind="real"), 0.0, low_open=True)
        return self.a * jnp.asarray(x) ** (-self.b) + self.c

    def to_dict(self) -> dict[str, Any]:
        """Parameters, loss, errors, intervals and metadata as plain Python types."""
        return fit_record(
            self,
            "params loss stderr ci ci_level n_bootstrap with_offset n_points delta n_converged",
        )

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), **kwargs)


def fit_power_law(
    x: Any,
    y: Any,
    with_offset: bool = True,
    *,
    delta: float = 1e-3,
    n_bootstrap: int = 1000,
    key: jax.Array | None = None,
    ci_level: float = 0.9,
    max_iter: int = 500,
    dtype: Any = np.float64,
) -> PowerLawFit:
    r"""Fit :math:`y = a\,x^{-b} + c` (or :math:`y = a\,x^{-b}`) by Huber loss on log residuals.

    .. math::

        \min_{a, b, c} \sum_i h_\delta\big(\log(a x_i^{-b} + c) - \log y_i\big),

    with the Huber loss :math:`h_\delta`, from a grid of starts (exponents
    :math:`b \in \{0.1, \dots, 3\}` times offsets :math:`c/\min y \in \{0, \dots, 0.99\}`)
    refined by L-BFGS all at once. Standard errors are the asymptotic least-squares
    ones, :math:`\hat\sigma^2 (J^\top J)^{-1}` with :math:`J = \partial\log\hat y/\partial(a,
    b, c)` and :math:`\hat\sigma^2 = \sum_i r_i^2/(n - p)`; the percentile bootstrap
    (``n_bootstrap`` resamples refitted at once) does not assume small Gaussian residuals.

    Args:
      x: positive, finite abscissae (model size, data size, compute), shape ``(n,)``.
      y: positive, finite values (losses), shape ``(n,)``.
      with_offset: fit the irreducible term ``c`` (3 parameters) or not (2).
      delta: Huber threshold on the log residual.
      n_bootstrap: number of bootstrap refits (0: none).
      key: PRNG key for resampling; ``None`` uses ``jax.random.key(0)``.
      ci_level: coverage of the bootstrap intervals.
      max_iter: L-BFGS iterations per start.
      dtype: float dtype of the fit (default float64, run inside ``jax.enable_x64``).

    Returns:
      A :class:`PowerLawFit`.

    Raises:
      ValueError / TypeError: if ``x`` or ``y`` are not positive and finite, lengths
        differ, there are not more points than parameters, or fewer distinct ``x``
        than parameters (the law is then not identifiable); bad options.

    Examples:
      >>> import numpy as np
      >>> x = np.logspace(1, 4, 20)
      >>> fit = fit_power_law(x, 3.0 * x**-0.5 + 0.2, n_bootstrap=0)
      >>> round(float(fit.b), 3), round(float(fit.c), 3)
      (0.5, 0.2)

    References:
      Hoffmann et al., `Training Compute-Optimal Large Language Models
      <https://arxiv.org/abs/2203.15556>`_, 2022.
      Besiroglu, Erdil, Barnett, You, `Chinchilla Scaling: A replication attempt
      <https://arxiv.org/abs/2404.10102>`_, 2024.
    """
    x = as_positive_1d("x", x)
    y = as_positive_1d("y", y)
    with_offset = _checks.boolean("with_offset", with_offset)
    p = 3 if with_offset else 2
    n = check_lengths(p, x=x, y=y)
    check_distinct("x", x, p, "a, b" + (" and c" if with_offset else ""))
    delta, n_bootstrap, ci_level, max_iter = check_options(delta, n_bootstrap, ci_level, max_iter)
    key = _checks.prng_key("key", key, allow_none=True)
    dtype = jnp.dtype(_checks.float_dtype("dtype", dtype))
    with x64_for(dtype):
        lx = np.log(x)
        ly = np.log(y)
        x0, y0 = np.mean(lx), np.mean(ly)
        lxn, lyn = lx - x0, ly - y0
        starts = _starts(lxn, lyn, with_offset).astype(dtype)
        log_x, log_y = lxn.astype(dtype), lyn.astype(dtype)
        delta_arr = np.asarray(delta, dtype)
        data = (log_x, log_y)
        state = multistart(
            _objective,
            starts,
            np.ones((n,), dtype),
            data,
            delta_arr,
            max_iter=max_iter,
            refine_iter=max_iter,
            num_refine=0,
            chunk=_CHUNK,
        )
        f = np.where(np.isfinite(state.f), state.f, np.inf)
        i = int(np.argmin(f))
        theta = np.asarray(state.x[i], np.float64)
        loss = float(f[i]) * delta * n
        check_finite_fit(loss, "max_iter")
        n_conv = int(np.sum(state.done))

        def natural(th: np.ndarray) -> np.ndarray:
            th = np.atleast_2d(th)
            a = np.exp(th[:, 0] + y0 + th[:, 1] * x0)
            c = np.exp(th[:, 2] + y0) if with_offset else np.zeros_like(a)
            cols = [a, th[:, 1], c] if with_offset else [a, th[:, 1]]
            return np.stack(cols, axis=1)

        nat = natural(theta)[0]
        # Asymptotic standard errors from the Jacobian of log y-hat in natural parameters.
        xb = np.exp(-nat[1] * lx)
        yhat = nat[0] * xb + (nat[2] if with_offset else 0.0)
        resid = np.log(yhat) - ly
        cols = [xb / yhat, -nat[0] * xb * lx / yhat] + ([1.0 / yhat] if with_offset else [])
        jac = np.stack(cols, axis=1)
        sigma2 = float(np.sum(resid**2) / (n - p))
        try:
            cov = sigma2 * np.linalg.inv(jac.T @ jac)
            se = np.sqrt(np.maximum(np.diag(cov), 0.0))
        except np.linalg.LinAlgError:
            se = np.full(p, np.nan)
        names = ("a", "b", "c")[:p]
        stderr = {k: float(se[i]) for i, k in enumerate(names)}
        if not with_offset:
            stderr["c"] = 0.0

        boot = np.zeros((0, p))
        if n_bootstrap > 0:
            x, _ = bootstrap_refits(
                _objective, theta[None], key, n_bootstrap, data, delta_arr, max_iter, chunk=_CHUNK
            )
            boot = natural(x)

    return PowerLawFit(
        a=np.asarray(nat[0]),
        b=np.asarray(nat[1]),
        c=np.asarray(nat[2] if with_offset else 0.0),
        loss=np.asarray(loss),
        bootstrap=np.asarray(boot),
        stderr=stderr,
        with_offset=bool(with_offset),
        n_points=int(n),
        delta=float(delta),
        ci_level=float(ci_level),
        n_converged=n_conv,
    )
