r"""SGD noise: the minibatch gradient covariance, and SGD's exact stationary law on least squares.

For a loss that is a mean over :math:`N` examples,
:math:`\mathcal L = \frac1N\sum_i \ell_i`, with per-example gradients
:math:`g_i` and :math:`\bar g = \nabla\mathcal L`, the gradient of a minibatch
of :math:`B` distinct examples drawn uniformly (as
:func:`wideth.train.minibatches` draws them) is unbiased with covariance

.. math::

    \tilde C = c_{N,B}\,\Sigma,\qquad
    \Sigma = \frac1N\sum_i (g_i - \bar g)(g_i - \bar g)^\top,\qquad
    c_{N,B} = \frac{N - B}{B(N - 1)}

(sampling without replacement; with replacement :math:`c = 1/B`), so
:math:`E\|g_B\|^2 = \|\bar g\|^2 + \operatorname{tr}\tilde C`.

**Fluctuation--dissipation** (Yaida 2018, eq. FDR1). If SGD
:math:`\theta' = \theta - \eta g_B` has a stationary law, then
:math:`E\|\theta'\|^2 = E\|\theta\|^2` and :math:`E[g_B\,|\,\theta] = \nabla\mathcal L`
give, exactly,

.. math::

    \langle \theta\cdot\nabla\mathcal L\rangle
    = \tfrac{\eta}{2}\,\langle E\|g_B\|^2\rangle
    = \tfrac{\eta}{2}\,\big(\langle\|\nabla\mathcal L\|^2\rangle
      + \langle\operatorname{tr}\tilde C\rangle\big);

the lecture notes' form :math:`\frac\eta2\langle\operatorname{tr}\tilde C\rangle`
drops :math:`\langle\|\nabla\mathcal L\|^2\rangle`, which is
:math:`O(\eta)` smaller. :func:`minibatch_noise` computes every term at one
:math:`\theta` without storing per-example gradients.

**Least squares, exactly.** For :math:`\mathcal L = \frac1{2N}\|X\theta - y\|^2`
(one output), :math:`H = X^\top X/N`, minimiser :math:`\theta^*` and
:math:`u = \theta - \theta^*`, one SGD step is :math:`u' = (I - \eta M)u - \eta\xi`
with :math:`M = \frac1B\sum_{j\in\mathcal B} x_jx_j^\top` and
:math:`\xi = \frac1B\sum_{j\in\mathcal B} g^*_j` (:math:`g^*_j` the per-example
gradients at :math:`\theta^*`, mean zero), both independent of :math:`u`. The
stationary law therefore has :math:`E u = 0` and :math:`S = E[uu^\top]`
solving the linear equation

.. math::

    HS + SH - \eta\,E[MSM] = \eta\, c_{N,B}\,\Sigma^*,\qquad
    E[MSM] = a\,D(S) + b\,HSH,

with :math:`D(S) = \frac1N\sum_i x_ix_i^\top S x_ix_i^\top`,
:math:`a = \frac1B - \frac{B-1}{B(N-1)}`, :math:`b = \frac{(B-1)N}{B(N-1)}`
(pairs of distinct indices; our derivation). :func:`least_squares_stationary`
solves it; the stationary excess loss is
:math:`\langle\mathcal L\rangle - \mathcal L(\theta^*) = \frac12\operatorname{tr}(HS)`
and :math:`\langle\theta\cdot\nabla\mathcal L\rangle = \operatorname{tr}(HS)`.

References:
  Yaida, `Fluctuation-dissipation relations for stochastic gradient descent
  <https://arxiv.org/abs/1810.00004>`_, ICLR 2019.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wideth import _checks

__all__ = ["least_squares_stationary", "minibatch_noise", "noise_factor", "time_average"]


def noise_factor(num_examples: int, batch_size: int, *, replace: bool = False) -> float:
    r""":math:`c_{N,B}` of the module docstring: :math:`\tilde C = c\,\Sigma`.

    Examples:
      >>> noise_factor(100, 100), noise_factor(100, 1), noise_factor(100, 10, replace=True)
      (0.0, 1.0, 0.1)
    """
    n = _checks.positive_int("num_examples", num_examples)
    b = _checks.positive_int("batch_size", batch_size)
    replace = _checks.boolean("replace", replace)
    if b > n and not replace:
        raise ValueError(f"batch_size: expected at most num_examples={n}, got {b}")
    if replace:
        return 1.0 / b
    return 0.0 if n == 1 else (n - b) / (b * (n - 1))


def minibatch_noise(
    objective: Callable[[Any, Any], jax.Array],
    params: Any,
    data: tuple[Any, Any],
    batch_size: int,
    *,
    center: Any = None,
    chunk: int = 64,
) -> dict[str, jax.Array]:
    r"""Every term of the fluctuation--dissipation relation at one :math:`\theta`.

    Per-example gradients are computed ``chunk`` at a time (``lax.map``) and
    only their squared distances to :math:`\bar g` are kept. Jittable.

    Args:
      objective: ``objective(params, (x, y)) -> scalar``, a mean over the rows
        of the batch (e.g. ``TrainStep.objective``).
      params: parameter pytree :math:`\theta`.
      data: ``(x, y)`` with :math:`N` rows.
      batch_size: :math:`B` of the minibatches (drawn without replacement).
      center: a fixed point :math:`\theta_0` (pytree like ``params``): then
        ``theta_dot_grad`` is :math:`(\theta - \theta_0)\cdot\nabla\mathcal L`.
        The relation holds for every fixed :math:`\theta_0` (stationarity of
        :math:`\|\theta - \theta_0\|^2`); one near the stationary mean gives
        the estimate with the least variance.
      chunk: per-example gradients per ``lax.map`` step.

    Returns:
      A dict: ``grad_sq`` :math:`\|\nabla\mathcal L\|^2`, ``trace_sigma``
      :math:`\operatorname{tr}\Sigma`, ``trace_minibatch``
      :math:`\operatorname{tr}\tilde C = c\operatorname{tr}\Sigma`,
      ``minibatch_grad_sq`` :math:`E\|g_B\|^2` and ``theta_dot_grad``
      :math:`(\theta - \theta_0)\cdot\nabla\mathcal L`.

    Raises:
      TypeError / ValueError: a non-callable objective, bad data, ``batch_size``
        outside ``[1, N]``.
    """
    _checks.callable_("objective", objective, "a callable objective(params, (x, y))")
    _checks.params_tree("params", params)
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise TypeError(f"data: expected a pair (x, y), got {type(data).__name__}")
    x, y = data
    n = int(jnp.shape(x)[0]) if jnp.ndim(x) else 0
    if n < 1 or jnp.shape(y)[:1] != (n,):
        raise ValueError(
            f"data: expected x and y with the same number (>= 1) of rows, got shapes "
            f"{jnp.shape(x)} and {jnp.shape(y)}"
        )
    _checks.arrays_tree("data", (x, y))
    c = noise_factor(n, batch_size)
    chunk = _checks.positive_int("chunk", chunk)
    if center is not None:
        _checks.tree_like("center", center, params)
    _checks.scalar_output("objective", objective, params, (x, y), what="objective(params, (x, y))")
    grad = jax.grad(objective)(params, (x, y))

    def one(xy: tuple[jax.Array, jax.Array]) -> jax.Array:
        xi, yi = xy
        gi = jax.grad(objective)(params, (xi[None], yi[None]))
        return optax.tree.norm(optax.tree.sub(gi, grad), squared=True)

    trace_sigma = jnp.mean(jax.lax.map(one, (x, y), batch_size=min(chunk, n)))
    grad_sq = optax.tree.norm(grad, squared=True)
    return {
        "grad_sq": grad_sq,
        "trace_sigma": trace_sigma,
        "trace_minibatch": c * trace_sigma,
        "minibatch_grad_sq": grad_sq + c * trace_sigma,
        # Re sum(theta . grad), no conjugate (jax.grad of a real loss of complex
        # parameters is d_x L - i d_y L); the real dot product for real parameters.
        "theta_dot_grad": jnp.real(
            optax.tree.vdot(
                optax.tree.conj(params if center is None else optax.tree.sub(params, center)),
                grad,
            )
        ),
    }


def least_squares_stationary(
    x: Any, y: Any, learning_rate: float, batch_size: int, *, replace: bool = False
) -> dict[str, np.ndarray | float]:
    r"""The exact stationary law of SGD on :math:`\frac1{2N}\|X\theta - y\|^2` (module docstring).

    Solved in float64 on the host (a :math:`d^2 \times d^2` linear system, so
    for :math:`d \lesssim 40`).

    Args:
      x: ``(N, d)`` inputs with :math:`X^\top X` invertible.
      y: ``(N,)`` targets.
      learning_rate: :math:`\eta > 0` with :math:`\eta\lambda_{\max}(H) < 2`.
      batch_size: :math:`B \in [1, N]`, rows drawn without replacement.
      replace: rows drawn with replacement instead (:math:`c = 1/B`,
        :math:`a = 1/B`, :math:`b = 1 - 1/B`).

    Returns:
      ``{"theta_star", "cov" (S), "excess_loss" (tr(HS)/2),
      "theta_dot_grad" (tr(HS)), "loss_star"}``.

    Raises:
      ValueError: bad shapes, a singular :math:`X^\top X`, a step size with no
        stationary law (the linear map on :math:`S` is not contracting).
    """
    _checks.array("x", x, ndim=2, min_rows=2)
    _checks.array("y", y, ndim=1)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)  # the inputs' own precision
    n, d = x.shape
    if y.shape != (n,):
        raise ValueError(f"y: expected shape ({n},) like the rows of x, got {y.shape}")
    eta = float(_checks.scalar("learning_rate", learning_rate, 0.0, low_open=True))
    c = noise_factor(n, batch_size, replace=replace)
    b = int(batch_size)
    h = x.T @ x / n
    if np.linalg.cond(h) > 1e12:
        raise ValueError("x: expected X^T X invertible (full column rank), got a singular one")
    theta = np.linalg.solve(h, x.T @ y / n)
    r = x @ theta - y
    g = x * r[:, None]  # per-example gradients at theta*
    sigma = g.T @ g / n
    # Linear map S -> HS + SH - eta E[MSM] as a d^2 x d^2 matrix (row-major vec).
    eye = np.eye(d)
    outer = np.einsum("ni,nj->nij", x, x)
    d_op = np.einsum("nij,nkl->iljk", outer, outer).reshape(d * d, d * d) / n
    if replace:
        a_coef, b_coef = 1.0 / b, 1.0 - 1.0 / b
    else:
        a_coef, b_coef = 1.0 / b - (b - 1) / (b * (n - 1)), (b - 1) * n / (b * (n - 1))
    lin = np.kron(h, eye) + np.kron(eye, h) - eta * (a_coef * d_op + b_coef * np.kron(h, h))
    # One step maps S -> S - eta * lin(S) + noise: a stationary law needs |1 - eta*mu| < 1.
    mu = np.linalg.eigvals(lin)
    if not np.all(np.abs(1 - eta * mu) < 1):
        raise ValueError(
            f"learning_rate: expected a step size with a stationary second moment, got {eta} "
            f"(the second-moment map has spectral radius {np.max(np.abs(1 - eta * mu)):.3g})"
        )
    s = np.linalg.solve(lin, (eta * c * sigma).reshape(-1)).reshape(d, d)
    s = (s + s.T) / 2
    tr_hs = float(np.trace(h @ s))
    return {
        "theta_star": theta,
        "cov": s,
        "excess_loss": tr_hs / 2,
        "theta_dot_grad": tr_hs,
        "loss_star": float(r @ r / (2 * n)),
    }


def time_average(series: Any, num_batches: int = 20) -> tuple[float, float]:
    r"""Mean of a stationary, autocorrelated series and its standard error by batch means.

    The series is cut into ``num_batches`` contiguous blocks; when the blocks
    are longer than the autocorrelation time their means are nearly
    independent, and :math:`\mathrm{SE} = \mathrm{sd}(\text{block means})/\sqrt{b}`
    (Flegal & Jones 2010). Trailing rows that do not fill a block are dropped.

    Examples:
      >>> m, se = time_average(np.arange(40.0), 4)
      >>> float(m), round(float(se), 3)
      (19.5, 6.455)
    """
    a = np.asarray(_checks.array("series", series, ndim=1), np.float64)
    b = _checks.positive_int("num_batches", num_batches, minimum=2)
    if a.size < b:
        raise ValueError(f"series: expected at least num_batches={b} values, got {a.size}")
    blocks = a[: a.size // b * b].reshape(b, -1).mean(axis=1)
    return float(blocks.mean()), float(blocks.std(ddof=1) / np.sqrt(b))
