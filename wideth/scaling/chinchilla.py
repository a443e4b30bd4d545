r"""Chinchilla scaling law :math:`L(N, D) = E + A/N^\alpha + B/D^\beta`, fitted as Besiroglu et al.

The fit follows Besiroglu, Erdil, Barnett, You (2024), "Chinchilla Scaling: A
replication attempt", who refit Approach 3 of Hoffmann et al. (2022): the
log-loss is parameterised with a log-sum-exp,

.. math::

    \log \hat L(N, D) = \operatorname{LSE}(a - \alpha \log N,\; b - \beta \log D,\; e),
    \qquad A = e^a,\ B = e^b,\ E = e^e,

and :math:`\sum_i h_\delta(\log \hat L_i - \log L_i)` is minimised (Huber loss,
:math:`\delta = 10^{-3}`) by L-BFGS from every point of the grid
:math:`\alpha, \beta \in \{0, 0.5, \dots, 2\}`, :math:`e \in \{-1, -0.5, \dots, 1\}`,
:math:`a, b \in \{0, 5, \dots, 25\}` (4500 starts); the best is kept. All starts
run at once (``vmap`` of a jitted L-BFGS), and so do the bootstrap refits.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from wideth import _checks

from . import _lbfgs
from ._common import (
    as_positive_1d,
    bootstrap_ci,
    bootstrap_weights,
    check_distinct,
    check_finite_fit,
    check_lengths,
    check_options,
    fit_record,
    mean_huber,
    percentile_ci,
    x64_for,
)

__all__ = ["ChinchillaFit", "fit_chinchilla", "chinchilla_grid"]

PARAM_NAMES = ("E", "A", "B", "alpha", "beta")

_CHUNK = 512


def chinchilla_grid() -> np.ndarray:
    r"""The 4500 initialisations of Besiroglu et al., rows :math:`(a, b, e, \alpha, \beta)`."""
    a = b = np.arange(0.0, 26.0, 5.0)
    e = np.arange(-1.0, 1.01, 0.5)
    alpha = beta = np.arange(0.0, 2.01, 0.5)
    return np.array(list(itertools.product(a, b, e, alpha, beta)))


def _log_predict(theta: jax.Array, log_n: jax.Array, log_d: jax.Array) -> jax.Array:
    """``log L`` for raw parameters ``theta = (a, b, e, alpha, beta)`` (stable log-sum-exp)."""
    t1 = theta[0] - theta[3] * log_n
    t2 = theta[1] - theta[4] * log_d
    e = theta[2]
    m = jax.lax.stop_gradient(jnp.maximum(jnp.maximum(t1, t2), e))
    return m + jnp.log(jnp.exp(t1 - m) + jnp.exp(t2 - m) + jnp.exp(e - m))


def _objective(theta, log_n, log_d, log_l, weights, delta):
    return mean_huber(_log_predict(theta, log_n, log_d) - log_l, weights, delta)


def multistart(
    objective: Any,
    starts: np.ndarray,
    weights: Any,
    data: tuple[jax.Array, ...],
    delta: Any,
    *,
    max_iter: int,
    refine_iter: int,
    num_refine: int,
    chunk: int,
    quiet: bool = True,
    desc: str = "multi-start",
) -> _lbfgs.LBFGSState:
    """L-BFGS from every row of ``starts`` (all at once, in chunks), up to ``max_iter``
    iterations; then the ``num_refine`` unconverged runs with the lowest loss
    continue up to ``refine_iter``. ``weights`` is ``(n,)`` (shared) or ``(S, n)``."""
    dtype = data[0].dtype
    starts = np.asarray(starts, dtype)
    size = starts.shape[0]
    weights = np.asarray(weights, dtype)
    if weights.ndim == 1:
        weights = np.broadcast_to(weights, (size, weights.shape[0]))
    states = _lbfgs.init_batch(starts)
    states = _lbfgs.solve(
        objective, states, weights, data, delta, max_iter, chunk=chunk, quiet=quiet, desc=desc
    )
    undone = np.flatnonzero(~states.done)
    if num_refine > 0 and refine_iter > max_iter and undone.size:
        f = np.where(np.isfinite(states.f), states.f, np.inf)
        idx = undone[np.argsort(f[undone], kind="stable")[:num_refine]]
        sub = jax.tree.map(lambda a: a[idx], states)
        sub = _lbfgs.solve(
            objective, sub, weights[idx], data, delta, refine_iter, chunk=chunk, quiet=True
        )
        states = jax.tree.map(lambda a, b: _set_rows(a, idx, b), states, sub)
    return states


def _set_rows(a: np.ndarray, idx: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a[idx] = b
    return a


def bootstrap_refits(
    objective: Any,
    starts: np.ndarray,
    key: jax.Array | None,
    n_bootstrap: int,
    data: tuple[jax.Array, ...],
    delta: Any,
    max_iter: int,
    *,
    chunk: int,
    quiet: bool = True,
    desc: str = "L-BFGS",
) -> tuple[np.ndarray, np.ndarray]:
    """Refit ``n_bootstrap`` resamples (with replacement) of the points in ``data``.

    Every resample is refitted from each row of ``starts`` (all at once) and keeps
    its lowest-loss run. ``key`` ``None`` means ``jax.random.key(0)``. Returns the
    ``(n_bootstrap, p)`` float64 solutions and whether each met the tolerances.
    """
    dtype = data[0].dtype
    key = jax.random.key(0) if key is None else key
    k = starts.shape[0]
    weights = bootstrap_weights(key, data[0].shape[0], n_bootstrap, dtype)
    state = _lbfgs.solve(
        objective,
        _lbfgs.init_batch(np.tile(starts, (n_bootstrap, 1)).astype(dtype)),
        np.repeat(weights, k, axis=0),
        data,
        delta,
        max_iter,
        chunk=chunk,
        quiet=quiet,
        desc=desc,
    )
    f = np.where(np.isfinite(state.f), state.f, np.inf).reshape(n_bootstrap, k)
    pick = np.argmin(f, axis=1)
    rows = np.arange(n_bootstrap)
    x = np.asarray(state.x, np.float64).reshape(n_bootstrap, k, -1)[rows, pick]
    return x, np.asarray(state.done).reshape(n_bootstrap, k)[rows, pick]


def _to_natural(theta: np.ndarray) -> np.ndarray:
    """Rows ``(a, b, e, alpha, beta)`` -> rows ``(E, A, B, alpha, beta)``."""
    theta = np.asarray(theta, np.float64)
    return np.stack(
        [
            np.exp(theta[..., 2]),
            np.exp(theta[..., 0]),
            np.exp(theta[..., 1]),
            theta[..., 3],
            theta[..., 4],
        ],
        axis=-1,
    )


def _optimal(params: dict[str, Any], compute: Any) -> tuple[Any, Any]:
    a, b, big_a, big_b = params["alpha"], params["beta"], params["A"], params["B"]
    g = (a * big_a / (b * big_b)) ** (1.0 / (a + b))
    n_opt = g * (compute / 6.0) ** (b / (a + b))
    return n_opt, compute / (6.0 * n_opt)


@struct.dataclass
class ChinchillaFit:
    r"""Result of :func:`fit_chinchilla`: :math:`L(N, D) = E + A/N^\alpha + B/D^\beta`.

    Attributes:
      E, A, B, alpha, beta: fitted parameters (0-d float64 arrays; pytree leaves).
      loss: :math:`\sum_i h_\delta(\log\hat L_i - \log L_i)` at the fit.
      bootstrap: ``(n_bootstrap, 5)`` refits on resampled points, columns
        ``(E, A, B, alpha, beta)`` (empty when ``n_bootstrap == 0``).
      n_points: number of points fitted (after ``exclude_outliers``).
      n_excluded: number of highest-loss points dropped before fitting.
      delta: Huber threshold on the log loss.
      ci_level: coverage of the intervals in :attr:`ci`.
      n_starts, n_converged: grid starts, and how many met the L-BFGS tolerances.
      n_bootstrap_converged: bootstrap refits that met the tolerances.
    """

    E: jax.Array
    A: jax.Array
    B: jax.Array
    alpha: jax.Array
    beta: jax.Array
    loss: jax.Array
    bootstrap: jax.Array
    n_points: int = struct.field(pytree_node=False)
    n_excluded: int = struct.field(pytree_node=False)
    delta: float = struct.field(pytree_node=False)
    ci_level: float = struct.field(pytree_node=False)
    n_starts: int = struct.field(pytree_node=False)
    n_converged: int = struct.field(pytree_node=False)
    n_bootstrap_converged: int = struct.field(pytree_node=False)

    @property
    def params(self) -> dict[str, float]:
        """``{"E", "A", "B", "alpha", "beta"}`` as Python floats."""
        return {k: float(getattr(self, k)) for k in PARAM_NAMES}

    @property
    def ci(self) -> dict[str, tuple[float, float]]:
        """Percentile bootstrap intervals at ``ci_level``, ``{name: (low, high)}``."""
        return bootstrap_ci(self.bootstrap, self.ci_level, PARAM_NAMES)

    @property
    def stderr(self) -> dict[str, float]:
        """Bootstrap standard deviation of each parameter."""
        samples = np.asarray(self.bootstrap, np.float64)
        if samples.shape[0] < 2:
            return {k: math.nan for k in PARAM_NAMES}
        sd = np.nanstd(samples, axis=0, ddof=1)
        return {k: float(sd[i]) for i, k in enumerate(PARAM_NAMES)}

    def predict(self, N: Any, D: Any) -> jax.Array:
        r"""Loss :math:`E + A N^{-\alpha} + B D^{-\beta}` (broadcasts; jittable).

        Concrete ``N`` and ``D`` must be positive and finite.
        """
        N = _checks.in_range("N", _checks.array("N", N, kind="real"), 0.0, low_open=True)
        D = _checks.in_range("D", _checks.array("D", D, kind="real"), 0.0, low_open=True)
        N, D = jnp.asarray(N), jnp.asarray(D)
        return self.E + self.A * N ** (-self.alpha) + self.B * D ** (-self.beta)

    def compute_optimal(self, C: Any) -> tuple[jax.Array, jax.Array]:
        r"""Loss-minimising :math:`(N, D)` at compute :math:`C = 6ND` FLOP.

        .. math::

            N_{\rm opt} = G \left(\frac{C}{6}\right)^{\beta/(\alpha+\beta)},\quad
            G = \left(\frac{\alpha A}{\beta B}\right)^{1/(\alpha+\beta)},\quad
            D_{\rm opt} = \frac{C}{6 N_{\rm opt}}.

        (Hoffmann et al. 2022, Eq. 4 and Appendix D.2.)

        Raises:
          ValueError / TypeError: concrete ``C`` not positive and finite.
        """
        C = _checks.in_range("C", _checks.array("C", C, kind="real"), 0.0, low_open=True)
        C = jnp.asarray(C)
        return _optimal({k: getattr(self, k) for k in PARAM_NAMES}, C)

    def tokens_per_parameter(self, C: Any) -> jax.Array:
        r"""Compute-optimal :math:`D_{\rm opt}/N_{\rm opt}` at compute ``C``."""
        n_opt, d_opt = self.compute_optimal(C)
        return d_opt / n_opt

    def derived_ci(self, C: float) -> dict[str, tuple[float, float]]:
        """Bootstrap intervals of ``N_opt``, ``D_opt`` and tokens per parameter at ``C``."""
        C = float(_checks.scalar("C", C, 0.0, low_open=True))
        samples = np.asarray(self.bootstrap, np.float64)
        if samples.shape[0] == 0:
            return {k: (math.nan, math.nan) for k in ("N_opt", "D_opt", "tokens_per_parameter")}
        cols = {k: samples[:, i] for i, k in enumerate(PARAM_NAMES)}
        n_opt, d_opt = _optimal(cols, float(C))
        out = {}
        for name, v in (
            ("N_opt", n_opt),
            ("D_opt", d_opt),
            ("tokens_per_parameter", d_opt / n_opt),
        ):
            lo, hi = percentile_ci(v[:, None], self.ci_level)
            out[name] = (float(lo[0]), float(hi[0]))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Parameters, loss, intervals and fit metadata as plain Python types."""
        return fit_record(
            self,
            "params loss ci ci_level stderr n_bootstrap n_bootstrap_converged "
            "n_points n_excluded delta n_starts n_converged",
        )

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string (NaN written as ``NaN``)."""
        return json.dumps(self.to_dict(), **kwargs)


def fit_chinchilla(
    N: Any,
    D: Any,
    L: Any,
    *,
    delta: float = 1e-3,
    n_bootstrap: int = 1000,
    key: jax.Array | None = None,
    exclude_outliers: int | bool = 0,
    ci_level: float = 0.9,
    init_grid: Any | None = None,
    max_iter: int = 100,
    refine_iter: int = 1000,
    num_refine: int = 256,
    bootstrap_starts: int = 1,
    dtype: Any = np.float64,
    quiet: bool = False,
) -> ChinchillaFit:
    r"""Fit :math:`L(N, D) = E + A/N^\alpha + B/D^\beta` the way Besiroglu et al. (2024) do.

    .. math::

        \min_{a, b, e, \alpha, \beta} \sum_i h_\delta\Big(
        \operatorname{LSE}(a - \alpha \log N_i,\ b - \beta \log D_i,\ e) - \log L_i\Big),
        \qquad E = e^e,\ A = e^a,\ B = e^b,

    with the Huber loss :math:`h_\delta`. L-BFGS starts from every point of the grid
    (:func:`chinchilla_grid`, 4500 starts) at once; each runs up to ``max_iter``
    iterations, then the ``num_refine`` lowest-loss runs that have not converged
    continue up to ``refine_iter``; the lowest loss is kept. Bootstrap: ``n_bootstrap``
    resamples of the points with replacement, each refitted (all at once) from the
    ``bootstrap_starts`` best distinct grid solutions of the full fit. All of it runs
    through one compiled, ``vmap``-ed L-BFGS in chunks of 512 problems.

    Args:
      N: model sizes (parameters), shape ``(n,)``, positive and finite.
      D: training tokens, shape ``(n,)``, positive and finite.
      L: final losses, shape ``(n,)``, positive and finite.
      delta: Huber threshold on the log-loss residual (1e-3 as in the paper).
      n_bootstrap: number of bootstrap refits (0: none, ``ci`` is NaN).
      key: PRNG key for the resampling; ``None`` uses ``jax.random.key(0)``.
      exclude_outliers: number of highest-loss points dropped before fitting;
        ``True`` means 5, the choice of Besiroglu et al. on the Chinchilla data.
      ci_level: coverage of the percentile bootstrap intervals (default 90%).
      init_grid: ``(k, 5)`` starts, rows ``(a, b, e, alpha, beta)``; default the paper's grid.
      max_iter, refine_iter, num_refine: L-BFGS budgets (see above).
      bootstrap_starts: number of starting points per bootstrap refit.
      dtype: float dtype of the fit. Default float64, run inside ``jax.enable_x64``
        whatever the global setting: in float32 the relative resolution of the
        objective (~1e-7) stops L-BFGS early in the flat valley of this fit, and
        bootstrap intervals come out about ten times too narrow.
      quiet: no progress bars (over chunks of 512 starts and of bootstrap refits).

    Returns:
      A :class:`ChinchillaFit`.

    Raises:
      ValueError / TypeError: if ``N``, ``D`` or ``L`` are not positive and finite,
        lengths differ, there are not more points than the 5 parameters, ``N`` or
        ``D`` take fewer than 3 distinct values (with one or two the exponents are
        not identifiable: :math:`E` absorbs :math:`A/N^\alpha`), ``init_grid`` is
        not a finite ``(k, 5)`` array, or an option is out of range.

    Examples:
      >>> from wideth.scaling import datasets, fit_chinchilla
      >>> N, D, L = datasets.chinchilla(exclude_outliers=True)  # 240 points
      >>> fit = fit_chinchilla(N, D, L)  # doctest: +SKIP
      >>> round(fit.params["alpha"], 3), round(fit.params["beta"], 3)  # doctest: +SKIP
      (0.347, 0.367)
      >>> fit.ci["beta"]  # 90% bootstrap interval  # doctest: +SKIP
      (0.339..., 0.406...)
      >>> n_opt, d_opt = fit.compute_optimal(5.76e23)  # doctest: +SKIP

    References:
      Hoffmann et al., `Training Compute-Optimal Large Language Models
      <https://arxiv.org/abs/2203.15556>`_, 2022.
      Besiroglu, Erdil, Barnett, You, `Chinchilla Scaling: A replication attempt
      <https://arxiv.org/abs/2404.10102>`_, 2024.
    """
    N = as_positive_1d("N", N)
    D = as_positive_1d("D", D)
    L = as_positive_1d("L", L)
    check_lengths(5, N=N, D=D, L=L)
    delta, n_bootstrap, ci_level, max_iter = check_options(delta, n_bootstrap, ci_level, max_iter)
    if isinstance(exclude_outliers, bool | np.bool_):
        n_excluded = 5 if exclude_outliers else 0
    else:
        n_excluded = _checks.nonnegative_int("exclude_outliers", exclude_outliers)
    refine_iter = _checks.positive_int("refine_iter", refine_iter)
    num_refine = _checks.nonnegative_int("num_refine", num_refine)
    bootstrap_starts = _checks.positive_int("bootstrap_starts", bootstrap_starts)
    key = _checks.prng_key("key", key, allow_none=True)
    quiet = _checks.boolean("quiet", quiet)
    if init_grid is not None:
        init_grid = _checks.host_array("init_grid", init_grid, ndim=2, dtype=np.float64)
        if init_grid.shape[1] != 5 or init_grid.shape[0] == 0:
            raise ValueError(
                f"init_grid: expected shape (k, 5) with k >= 1, rows (a, b, e, alpha, beta), got "
                f"{init_grid.shape}"
            )
    if n_excluded:
        drop = np.argsort(L, kind="stable")[::-1][:n_excluded]
        keep = np.setdiff1d(np.arange(L.size), drop)
        N, D, L = N[keep], D[keep], L[keep]
        if N.size <= 5:
            raise ValueError(
                f"exclude_outliers: dropping {n_excluded} of {N.size + n_excluded} points leaves "
                f"{N.size}, but fitting 5 parameters needs more than 5"
            )
    check_distinct("N", N, 3, "A and alpha")
    check_distinct("D", D, 3, "B and beta")
    dtype = jnp.dtype(_checks.float_dtype("dtype", dtype))
    with x64_for(dtype):
        n = L.size
        data = tuple(np.log(v).astype(dtype) for v in (N, D, L))
        starts = chinchilla_grid() if init_grid is None else init_grid
        delta_arr = np.asarray(delta, dtype)
        state = multistart(
            _objective,
            starts,
            np.ones((n,), dtype),
            data,
            delta_arr,
            max_iter=max_iter,
            refine_iter=refine_iter,
            num_refine=num_refine,
            chunk=_CHUNK,
            quiet=quiet,
        )
        f = np.where(np.isfinite(state.f), state.f, np.inf).astype(np.float64)
        order = np.argsort(f, kind="stable")
        theta = np.asarray(state.x, np.float64)
        best = theta[order[0]]
        best_loss = f[order[0]] * delta * n
        check_finite_fit(best_loss, "init_grid")

        boot = np.zeros((0, 5))
        n_boot_conv = 0
        if n_bootstrap > 0:
            # Distinct starting points: the best grid solutions, skipping near-duplicates.
            picks = [best]
            for i in order[1:]:
                if len(picks) >= bootstrap_starts or not np.isfinite(f[i]):
                    break
                if all(np.max(np.abs(theta[i] - p)) > 1e-2 for p in picks):
                    picks.append(theta[i])
            x, done = bootstrap_refits(
                _objective,
                np.stack(picks),
                key,
                n_bootstrap,
                data,
                delta_arr,
                refine_iter,
                chunk=_CHUNK,
                quiet=quiet,
                desc="bootstrap",
            )
            boot, n_boot_conv = _to_natural(x), int(np.sum(done))

        nat = _to_natural(best)
        # Results are float64 numpy values: valid whatever the x64 setting of the caller.
        return ChinchillaFit(
            E=np.asarray(nat[0]),
            A=np.asarray(nat[1]),
            B=np.asarray(nat[2]),
            alpha=np.asarray(nat[3]),
            beta=np.asarray(nat[4]),
            loss=np.asarray(best_loss),
            bootstrap=np.asarray(boot),
            n_points=int(n),
            n_excluded=n_excluded,
            delta=float(delta),
            ci_level=float(ci_level),
            n_starts=int(starts.shape[0]),
            n_converged=int(np.sum(np.asarray(state.done))),
            n_bootstrap_converged=n_boot_conv,
        )
