r"""Spectra of curvature operators: top-k eigenpairs, sharpness, SLQ densities, traces.

Every routine takes an :class:`~wideth.hessian.Operator` (built by
:func:`~wideth.hessian.hessian`, :func:`~wideth.hessian.ggn`,
:func:`~wideth.hessian.ntk` or :func:`~wideth.hessian.from_matvec`) and is
jitted at this boundary with the operator as an argument: its arrays are
traced, its functions are static. A second call with the same loss function
and new data of the same shapes compiles nothing; a fresh closure per call
compiles again, so write the loss once as ``loss(params, batch)``:

.. code-block:: python

    def loss(params, batch):
        x, y = batch
        return wt.train.mse(apply_fn(params, x), y)

    for batch in batches:                       # compiles on the first batch only
        lam = wt.hessian.sharpness(wt.hessian.hessian(loss, params, batch), key=key)

Inside your own ``jax.jit`` these routines inline like any jittable function.
The short form ``top_eigenpairs(loss_fn, params, ...)`` builds the Hessian
operator of ``loss_fn(params)`` for you.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from wideth import _checks

from .lanczos import _lanczos_flat, tridiagonal_eigh
from .operators import Operator, ggn, hessian

__all__ = [
    "top_eigenpairs",
    "sharpness",
    "spectral_density",
    "density_on_grid",
    "negative_mass",
    "trace",
    "curvature_matvec",
]

PyTree = Any
_LEGACY = (
    "matrix",
    "outputs_fn",
    "loss_of_outputs",
    "data",
    "batch_size",
    "mesh",
    "axis_name",
    "dtype",
)


def _operator(fn_name: str, operator: Any, params: Any, legacy: dict[str, Any]) -> Operator:
    """The operator given, or the one built from ``(loss_fn, params)`` and older options."""
    unknown = sorted(set(legacy) - set(_LEGACY))
    if unknown:
        raise TypeError(f"{unknown[0]}: unexpected keyword argument of {fn_name}")
    if isinstance(operator, Operator):
        if params is not None:
            raise TypeError(
                "params: expected None when an Operator is given (it holds its arrays); "
                "pass k, num_steps and key by keyword"
            )
        if legacy:
            raise TypeError(
                f"{next(iter(legacy))}: not used with an Operator (build the operator with "
                "wideth.hessian.hessian(...) or wideth.hessian.ggn(...) instead)"
            )
        return operator
    if legacy:
        warnings.warn(
            f"{fn_name}(loss_fn, params, {', '.join(sorted(legacy))}=...) is deprecated: build "
            "the operator once with wideth.hessian.hessian(loss_fn, params, data, ...) or "
            "wideth.hessian.ggn(outputs_fn, loss_of_outputs, params, data, ...) and pass it",
            DeprecationWarning,
            stacklevel=3,
        )
    matrix = _checks.choice("matrix", legacy.pop("matrix", "hessian"), ("hessian", "ggn"))
    data = legacy.pop("data", None)
    if matrix == "ggn":
        outputs_fn = legacy.pop("outputs_fn", None)
        loss_of_outputs = legacy.pop("loss_of_outputs", None)
        if outputs_fn is None or loss_of_outputs is None:
            raise ValueError("outputs_fn: matrix='ggn' needs outputs_fn and loss_of_outputs")
        return ggn(outputs_fn, loss_of_outputs, params, data, **legacy)
    for name in ("outputs_fn", "loss_of_outputs"):
        if legacy.pop(name, None) is not None:
            raise TypeError(f"{name}: only used with matrix='ggn'")
    if operator is None or not callable(operator):
        raise TypeError(
            "operator: expected a wideth.hessian.Operator or a loss_fn(params) -> scalar, got "
            f"{type(operator).__name__}"
        )
    if params is None:
        raise TypeError("params: required when a loss function is given (got None)")
    return hessian(operator, params, data, **legacy)


def _key(key: Any) -> jax.Array:
    return jax.random.key(0) if key is None else _checks.prng_key("key", key)


def top_eigenpairs(
    operator: Operator | Callable[..., jax.Array],
    params: PyTree = None,
    k: int = 5,
    num_steps: int = 40,
    key: jax.Array | None = None,
    *,
    which: str = "largest",
    **deprecated: Any,
) -> tuple[jax.Array, PyTree]:
    r"""Extreme eigenpairs of a curvature operator by fully reorthogonalised Lanczos.

    Runs :math:`m` = ``num_steps`` Lanczos steps from a random start,
    diagonalises :math:`T_m = S\,\mathrm{diag}(\theta)\,S^\top` and returns the
    Ritz pairs :math:`(\theta_i, Q_m s_i)`:

    .. math::

        A \approx Q_m T_m Q_m^\top, \qquad
        \|A y_i - \theta_i y_i\| = \beta_m |e_m^\top s_i|.

    Extreme eigenvalues converge first (Kaniel-Paige theory), so ``num_steps``
    of a few times ``k`` usually suffices; raise it for clustered spectra.
    ``num_steps`` larger than the dimension :math:`d` is clipped to :math:`d`
    (then the result is exact up to rounding).

    Args:
      operator: an :class:`~wideth.hessian.Operator`, or ``loss_fn(params) ->
        scalar`` for its Hessian.
      params: the parameters, with a ``loss_fn`` only.
      k: number of eigenpairs (static), ``1 <= k <= d``.
      num_steps: Lanczos steps = operator products (static), ``>= k``.
      key: PRNG key of the start vector (default ``jax.random.key(0)``).
      which: ``"largest"`` (eigenvalues descending) or ``"smallest"``
        (eigenvalues *ascending*: the most negative first).
      **deprecated: ``matrix``, ``outputs_fn``, ``loss_of_outputs``, ``data``,
        ``batch_size``, ``mesh``, ``axis_name``, ``dtype`` of the older form
        (warns): pass an operator instead.

    Returns:
      ``(evals, evecs)``: ``evals`` ``(k,)`` descending for ``"largest"``,
      ascending for ``"smallest"``; ``evecs`` a pytree laid out like the
      operator's space (the parameters) with a leading axis ``k``, unit norm in
      the flat space (sign arbitrary).

    Raises:
      ValueError: ``k`` > dimension, ``num_steps`` < ``k``, unknown ``which``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> loss = lambda p: 0.5 * jnp.sum(jnp.arange(1.0, 6.0) * p ** 2)
      >>> evals, _ = top_eigenpairs(loss, jnp.zeros(5), k=2, num_steps=5)
      >>> evals.round(4)
      Array([5., 4.], dtype=float32)

    References:
      Ghorbani, Krishnan & Xiao, `An investigation into neural net optimization
      via Hessian eigenvalue density <https://arxiv.org/abs/1901.10159>`_, 2019;
      Golub & Van Loan, Matrix Computations, 4th ed., ch. 10, 2013.
    """
    op = _operator("top_eigenpairs", operator, params, deprecated)
    k = _checks.positive_int("k", k)
    num_steps = _checks.positive_int("num_steps", num_steps)
    _checks.choice("which", which, ("largest", "smallest"))
    if k > op.size:
        raise ValueError(f"k: expected at most the dimension {op.size}, got {k}")
    if num_steps < k:
        raise ValueError(f"num_steps: expected at least k={k}, got {num_steps}")
    return _top_impl(op, _key(key), k, min(num_steps, op.size), which)


@functools.partial(jax.jit, static_argnames=("k", "m", "which"))
def _top_impl(op: Operator, key: jax.Array, k: int, m: int, which: str):
    v0 = jax.random.normal(key, (op.size,), op.dtype)
    alphas, betas, basis = _lanczos_flat(op.linearized(), v0, m)
    theta, s = tridiagonal_eigh(alphas, betas)
    idx = jnp.arange(m - 1, m - 1 - k, -1) if which == "largest" else jnp.arange(k)
    vecs = jnp.dot(s[:, idx].T, basis, precision=lax.Precision.HIGHEST)
    return theta[idx], jax.vmap(op.unravel)(vecs)


def sharpness(
    operator: Operator | Callable[..., jax.Array],
    params: PyTree = None,
    *,
    num_steps: int = 20,
    key: jax.Array | None = None,
) -> jax.Array:
    r"""The largest eigenvalue :math:`\lambda_{\max}(A)` (the *sharpness* of a Hessian).

    ``num_steps`` Lanczos steps from a random start; the largest Ritz value is
    a lower bound that converges to :math:`\lambda_{\max}` from below (Kaniel-Paige).
    Used by the edge-of-stability experiment, the training probes
    (:func:`wideth.train.probes.sharpness`) and the certificates.

    Args:
      operator: an :class:`~wideth.hessian.Operator` or ``loss_fn(params)``.
      params: the parameters, with a ``loss_fn`` only.
      num_steps: Lanczos steps (clipped to the dimension).
      key: PRNG key of the start vector (default ``jax.random.key(0)``).

    Returns:
      Scalar :math:`\lambda_{\max}`.

    References:
      Cohen et al., `Gradient Descent on Neural Networks Typically Occurs at the
      Edge of Stability <https://arxiv.org/abs/2103.00065>`_, 2021.
    """
    op = _operator("sharpness", operator, params, {})
    num_steps = _checks.positive_int("num_steps", num_steps)
    return _sharpness_impl(op, _key(key), min(num_steps, op.size))


@functools.partial(jax.jit, static_argnames=("m",))
def _sharpness_impl(op: Operator, key: jax.Array, m: int) -> jax.Array:
    v0 = jax.random.normal(key, (op.size,), op.dtype)
    alphas, betas, _ = _lanczos_flat(op.linearized(), v0, m)
    return tridiagonal_eigh(alphas, betas)[0][-1]


def _rademacher(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    return jax.random.rademacher(key, shape, dtype=jnp.int8).astype(dtype)


def spectral_density(
    operator: Operator | Callable[..., jax.Array],
    params: PyTree = None,
    num_probes: int = 8,
    num_steps: int = 64,
    key: jax.Array | None = None,
    *,
    probe_batch_size: int | None = None,
    **deprecated: Any,
) -> tuple[jax.Array, jax.Array]:
    r"""Stochastic Lanczos quadrature (SLQ) of a curvature operator's spectral density.

    For each Rademacher probe :math:`v` (normalised), ``num_steps`` Lanczos
    steps from :math:`v` give :math:`T_m = S\,\mathrm{diag}(\theta)\,S^\top`;
    the Gauss quadrature nodes :math:`\theta_j` and weights
    :math:`w_j = (e_1^\top s_j)^2` (summing to 1) approximate

    .. math::

        \frac{1}{d}\operatorname{tr} f(A) \approx \frac{1}{P}\sum_{p=1}^{P}
        \sum_{j=1}^{m} w^{(p)}_j f(\theta^{(p)}_j),

    exactly for polynomials of degree :math:`\le 2m-1` per probe. In
    particular :math:`\sum_j w_j\theta_j = v^\top A v` and
    :math:`\sum_j w_j\theta_j^2 = \|Av\|^2`, unbiased for
    :math:`\operatorname{tr}A/d` and :math:`\operatorname{tr}A^2/d`.

    Args:
      operator: an :class:`~wideth.hessian.Operator` or ``loss_fn(params)``.
      params: the parameters, with a ``loss_fn`` only.
      num_probes: number of probe vectors :math:`P` (static).
      num_steps: Lanczos steps per probe :math:`m` (static; clipped to :math:`d`).
      key: PRNG key for the probes (default ``jax.random.key(0)``).
      probe_batch_size: probes run together under ``vmap``; memory holds
        ``probe_batch_size * m * d`` floats of Lanczos bases. Default: all
        probes at once on an accelerator, one at a time on the CPU, where a
        vmapped HVP costs more per probe than a loop of single ones (measured
        in BENCHMARKS.md, section hessian).
      **deprecated: curvature options of the older form (see :func:`top_eigenpairs`).

    Returns:
      ``(nodes, weights)``, each ``(num_probes, m)``; each row of ``weights``
      sums to 1. Smooth with :func:`density_on_grid`.

    Raises:
      ValueError / TypeError: non-positive sizes, a bad operator.

    References:
      Ubaru, Chen & Saad, `Fast estimation of tr(f(A)) via stochastic Lanczos
      quadrature <https://doi.org/10.1137/16M1104974>`_, 2017;
      Ghorbani, Krishnan & Xiao, An investigation into neural net optimization
      via Hessian eigenvalue density, 2019.
    """
    op = _operator("spectral_density", operator, params, deprecated)
    num_probes = _checks.positive_int("num_probes", num_probes)
    num_steps = _checks.positive_int("num_steps", num_steps)
    if probe_batch_size is None:
        probe_batch_size = 1 if jax.default_backend() == "cpu" else num_probes
    probe_batch_size = min(_checks.positive_int("probe_batch_size", probe_batch_size), num_probes)
    m = min(num_steps, op.size)
    return _slq_impl(op, _key(key), num_probes, m, probe_batch_size)


@functools.partial(jax.jit, static_argnames=("num_probes", "m", "probe_batch_size"))
def _slq_impl(op: Operator, key: jax.Array, num_probes: int, m: int, probe_batch_size: int):
    matvec = op.linearized()
    probes = _rademacher(key, (num_probes, op.size), op.dtype)

    def one(v):
        alphas, betas, _ = _lanczos_flat(matvec, v, m)
        theta, s = tridiagonal_eigh(alphas, betas)
        return theta, s[0, :] ** 2

    return lax.map(one, probes, batch_size=probe_batch_size)


def density_on_grid(
    nodes: jax.Array, weights: jax.Array, grid: jax.Array, sigma: float
) -> jax.Array:
    r"""Gaussian-smoothed spectral density from SLQ nodes and weights.

    .. math::

        \phi_\sigma(t) = \frac{1}{P}\sum_{p=1}^{P}\sum_{j=1}^{m} w^{(p)}_j\,
        \frac{1}{\sqrt{2\pi}\sigma}\exp\!\Big(-\frac{(t-\theta^{(p)}_j)^2}{2\sigma^2}\Big),

    a probability density in :math:`t` (integrates to 1 over the real line).

    Args:
      nodes: ``(num_probes, m)`` (or ``(m,)``) quadrature nodes.
      weights: same shape, quadrature weights (non-negative).
      grid: ``(G,)`` evaluation points.
      sigma: kernel width, > 0.

    Returns:
      ``(G,)`` density values.

    References:
      Ghorbani, Krishnan & Xiao, 2019, Eq. (5).
    """
    nodes, weights = _nodes_weights(nodes, weights)
    sigma = _checks.in_range("sigma", sigma, 0.0, low_open=True)
    grid = _checks.array("grid", grid, ndim=1, kind="real")
    z = (grid[:, None, None] - nodes[None]) / sigma
    g = jnp.exp(-0.5 * z**2) / (jnp.sqrt(2 * jnp.pi) * sigma)
    return jnp.sum(g * weights[None], axis=(1, 2)) / nodes.shape[0]


def _nodes_weights(nodes: Any, weights: Any) -> tuple[jax.Array, jax.Array]:
    nodes = jnp.atleast_2d(_checks.array("nodes", nodes, ndim=(1, 2), kind="real"))
    weights = jnp.atleast_2d(_checks.array("weights", weights, ndim=(1, 2), kind="real"))
    if nodes.shape != weights.shape:
        raise ValueError(
            f"weights: expected the shape of nodes {tuple(nodes.shape)}, got {tuple(weights.shape)}"
        )
    if not _checks.is_tracer(weights) and bool(jnp.any(weights < 0)):
        raise ValueError("weights: expected non-negative quadrature weights, got negative entries")
    return nodes, weights


def negative_mass(nodes: jax.Array, weights: jax.Array, threshold: float = 0.0) -> jax.Array:
    r"""Fraction of spectral mass below :math:`-\text{threshold}` from SLQ output.

    .. math::

        \mu_- = \frac{1}{P}\sum_{p}\sum_{j} w^{(p)}_j\,[\theta^{(p)}_j < -\tau].

    Args:
      nodes: ``(num_probes, m)`` quadrature nodes.
      weights: same shape, quadrature weights.
      threshold: :math:`\tau \ge 0`, ignores tiny negative nodes from rounding.

    Returns:
      Scalar in :math:`[0, 1]`.

    References:
      Ghorbani, Krishnan & Xiao, 2019 (negative eigenvalue density).
    """
    nodes, weights = _nodes_weights(nodes, weights)
    threshold = _checks.in_range("threshold", threshold, 0.0)
    return jnp.sum(jnp.where(nodes < -threshold, weights, 0)) / nodes.shape[0]


def trace(
    operator: Operator | Callable[..., jax.Array],
    params: PyTree = None,
    num_probes: int = 64,
    key: jax.Array | None = None,
    *,
    probe_batch_size: int | None = None,
    **deprecated: Any,
) -> tuple[jax.Array, jax.Array]:
    r"""Hutchinson trace estimate of a curvature operator with Rademacher probes.

    .. math::

        \widehat{\operatorname{tr}} A = \frac{1}{P}\sum_{p=1}^{P} z_p^\top A z_p,
        \quad z_p \in \{\pm 1\}^d, \qquad
        \mathrm{se} = \frac{s}{\sqrt{P}},

    unbiased, with variance :math:`2(\|A\|_F^2 - \sum_i A_{ii}^2)/P`; ``se`` uses
    the sample standard deviation :math:`s` of the :math:`P` terms.

    Args:
      operator: an :class:`~wideth.hessian.Operator` or ``loss_fn(params)``.
      params: the parameters, with a ``loss_fn`` only.
      num_probes: number of probes :math:`P` (static, >= 2 for a standard error).
      key: PRNG key (default ``jax.random.key(0)``).
      probe_batch_size: probes per ``vmap`` batch (default: all).
      **deprecated: curvature options of the older form (see :func:`top_eigenpairs`).

    Returns:
      ``(estimate, stderr)``, scalars.

    References:
      Hutchinson, `A stochastic estimator of the trace of the influence matrix
      <https://doi.org/10.1080/03610919008812866>`_, 1990;
      Avron & Toledo, Randomized algorithms for estimating the trace of an
      implicit symmetric positive semi-definite matrix, 2011.
    """
    op = _operator("trace", operator, params, deprecated)
    num_probes = _checks.positive_int("num_probes", num_probes, minimum=2)
    if probe_batch_size is None:
        probe_batch_size = num_probes
    probe_batch_size = min(_checks.positive_int("probe_batch_size", probe_batch_size), num_probes)
    return _trace_impl(op, _key(key), num_probes, probe_batch_size)


@functools.partial(jax.jit, static_argnames=("num_probes", "probe_batch_size"))
def _trace_impl(op: Operator, key: jax.Array, num_probes: int, probe_batch_size: int):
    matvec = op.linearized()
    probes = _rademacher(key, (num_probes, op.size), op.dtype)
    terms = lax.map(lambda z: jnp.dot(z, matvec(z)), probes, batch_size=probe_batch_size)
    est = jnp.mean(terms)
    se = jnp.std(terms, ddof=1) / jnp.sqrt(num_probes)
    return est, se


def curvature_matvec(
    loss_fn: Callable[..., jax.Array] | None,
    params: PyTree,
    **options: Any,
) -> tuple[Callable[[jax.Array], jax.Array], int, Any, Callable[[jax.Array], PyTree]]:
    """Deprecated: ``(matvec, d, dtype, unravel)`` of a flat curvature operator.

    Build an :class:`~wideth.hessian.Operator` with :func:`wideth.hessian.hessian`
    or :func:`wideth.hessian.ggn` instead (``op``, ``op.size``, ``op.dtype``,
    ``op.unravel``).
    """
    warnings.warn(
        "curvature_matvec is deprecated: use wideth.hessian.hessian(...) or "
        "wideth.hessian.ggn(...), which return an Operator",
        DeprecationWarning,
        stacklevel=2,
    )
    if loss_fn is not None and not isinstance(loss_fn, Operator):
        _checks.callable_("loss_fn", loss_fn, "a loss_fn(params) -> scalar or an Operator")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        op = _operator("curvature_matvec", loss_fn, params, dict(options))
    return op, op.size, op.dtype, op.unravel
