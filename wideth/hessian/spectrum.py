r"""Hessian / GGN spectra: top-k eigenpairs, stochastic Lanczos quadrature, traces.

All entry points share one operator builder: the Hessian of ``loss_fn`` (or
the GGN of ``loss_of_outputs`` ∘ ``outputs_fn``) at ``params``, raveled into a
flat vector space with :func:`jax.flatten_util.ravel_pytree`. Without ``data``
the curvature operator is linearised once (``jax.linearize``), so each
Lanczos step costs one tangent pass, not a fresh forward and backward pass.
``k``, ``num_steps`` and ``num_probes`` are static; everything is jittable,
so a training loop can call :func:`top_eigenpairs` inside its jitted step.

Called outside ``jit``, each entry point compiles once per distinct
``loss_fn`` object (and sizes): reuse the same function object, e.g. one
``loss_fn(params, batch)`` with ``data=batch``, to hit the compilation cache;
a fresh closure per call recompiles (and is kept alive by the cache).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh

from .lanczos import lanczos_flat, tridiagonal_eigh
from .products import check_scalar, ggn_vp, hvp

__all__ = [
    "top_eigenpairs",
    "spectral_density",
    "density_on_grid",
    "negative_mass",
    "trace",
    "curvature_matvec",
]

PyTree = Any


def curvature_matvec(
    loss_fn: Callable[..., jax.Array] | None,
    params: PyTree,
    *,
    matrix: str = "hessian",
    outputs_fn: Callable[..., Any] | None = None,
    loss_of_outputs: Callable[..., jax.Array] | None = None,
    data: PyTree | None = None,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    axis_name: str | None = None,
    dtype: Any = None,
) -> tuple[Callable[[jax.Array], jax.Array], int, Any, Callable[[jax.Array], PyTree]]:
    r"""Flat curvature operator :math:`x \mapsto Cx` with :math:`C \in \{H, G\}`.

    Args:
      loss_fn: ``params -> scalar`` (``(params, batch) -> scalar`` with ``data``);
        unused for ``matrix="ggn"``.
      params: parameter pytree (raveled inside).
      matrix: ``"hessian"`` (:math:`H = \nabla^2 L`) or ``"ggn"``
        (:math:`G = J^\top Q J`, needs ``outputs_fn`` and ``loss_of_outputs``).
      outputs_fn, loss_of_outputs: see :func:`wideth.hessian.ggn_vp`.
      data, batch_size, mesh, axis_name: see :func:`wideth.hessian.hvp`.
      dtype: dtype of the flat vectors (default: the raveled params' dtype).

    Returns:
      ``(matvec, d, dtype, unravel)``: the flat product, the number of
      parameters, the vector dtype, and ``flat -> params pytree``.

    Raises:
      ValueError: unknown ``matrix``; ``"ggn"`` without ``outputs_fn`` /
        ``loss_of_outputs``; non-scalar loss.
    """
    flat, unravel = ravel_pytree(params)
    d = int(flat.shape[0])
    dtype = jnp.dtype(flat.dtype if dtype is None else dtype)
    if matrix not in ("hessian", "ggn"):
        raise ValueError(f"matrix must be 'hessian' or 'ggn', got {matrix!r}")
    if matrix == "ggn" and (outputs_fn is None or loss_of_outputs is None):
        raise ValueError("matrix='ggn' needs outputs_fn and loss_of_outputs")
    if matrix == "hessian" and loss_fn is None:
        raise ValueError("loss_fn must be a callable params -> scalar for matrix='hessian'")

    if data is None and mesh is None and batch_size is None:
        if matrix == "hessian":
            check_scalar(loss_fn, params, name="loss_fn")
            _, lin = jax.linearize(jax.grad(loss_fn), params)
        else:
            out, jvp_fn = jax.linearize(outputs_fn, params)
            check_scalar(loss_of_outputs, out, name="loss_of_outputs")
            _, q_lin = jax.linearize(jax.grad(loss_of_outputs), out)
            vjp_fn = jax.linear_transpose(jvp_fn, params)
            lin = lambda v: vjp_fn(q_lin(jvp_fn(v)))[0]
    else:
        kw = dict(batch_size=batch_size, mesh=mesh, axis_name=axis_name)
        if matrix == "hessian":
            lin = lambda v: hvp(loss_fn, params, v, data, **kw)
        else:
            lin = lambda v: ggn_vp(outputs_fn, loss_of_outputs, params, v, data, **kw)

    def matvec(x: jax.Array) -> jax.Array:
        return ravel_pytree(lin(unravel(x.astype(flat.dtype))))[0].astype(dtype)

    return matvec, d, dtype, unravel


def _num_params(params: PyTree) -> int:
    return sum(int(np.size(x)) for x in jax.tree.leaves(params))


def _check_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | jnp.integer) or int(value) < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


class _Spec(NamedTuple):
    """Static (hashable) description of the curvature operator, a jit cache key."""

    loss_fn: Any
    matrix: str
    outputs_fn: Any
    loss_of_outputs: Any
    batch_size: int | None
    mesh: Any
    axis_name: str | None
    dtype: Any


def _spec(loss_fn, matrix, outputs_fn, loss_of_outputs, batch_size, mesh, axis_name, dtype):
    if matrix not in ("hessian", "ggn"):
        raise ValueError(f"matrix must be 'hessian' or 'ggn', got {matrix!r}")
    if matrix == "ggn" and (outputs_fn is None or loss_of_outputs is None):
        raise ValueError("matrix='ggn' needs outputs_fn and loss_of_outputs")
    if matrix == "hessian" and not callable(loss_fn):
        raise ValueError("loss_fn must be a callable params -> scalar for matrix='hessian'")
    dtype = None if dtype is None else jnp.dtype(dtype)
    return _Spec(loss_fn, matrix, outputs_fn, loss_of_outputs, batch_size, mesh, axis_name, dtype)


def _matvec(spec: _Spec, params: PyTree, data: PyTree):
    return curvature_matvec(
        spec.loss_fn,
        params,
        matrix=spec.matrix,
        outputs_fn=spec.outputs_fn,
        loss_of_outputs=spec.loss_of_outputs,
        data=data,
        batch_size=spec.batch_size,
        mesh=spec.mesh,
        axis_name=spec.axis_name,
        dtype=spec.dtype,
    )


def top_eigenpairs(
    loss_fn: Callable[..., jax.Array] | None,
    params: PyTree,
    k: int = 5,
    num_steps: int = 40,
    key: jax.Array | None = None,
    *,
    matrix: str = "hessian",
    which: str = "largest",
    outputs_fn: Callable[..., Any] | None = None,
    loss_of_outputs: Callable[..., jax.Array] | None = None,
    data: PyTree | None = None,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    axis_name: str | None = None,
    dtype: Any = None,
) -> tuple[jax.Array, PyTree]:
    r"""Extreme eigenpairs of the Hessian (or GGN) by fully reorthogonalised Lanczos.

    Runs :math:`m` = ``num_steps`` Lanczos steps from a random start,
    diagonalises :math:`T_m = S\,\mathrm{diag}(\theta)\,S^\top` and returns the
    Ritz pairs :math:`(\theta_i, Q_m s_i)`:

    .. math::

        H \approx Q_m T_m Q_m^\top, \qquad
        \|H y_i - \theta_i y_i\| = \beta_m |e_m^\top s_i|.

    Extreme eigenvalues converge first (Kaniel-Paige theory), so ``num_steps``
    of a few times ``k`` usually suffices; raise it for clustered spectra.
    ``num_steps`` larger than the number of parameters :math:`d` is clipped to
    :math:`d` (then the result is exact up to rounding).

    Args:
      loss_fn: ``params -> scalar`` (``(params, batch) -> scalar`` with ``data``);
        may be ``None`` for ``matrix="ggn"``.
      params: parameter pytree.
      k: number of eigenpairs (static), ``1 <= k <= d``.
      num_steps: Lanczos steps / curvature-vector products (static), ``>= k``.
      key: PRNG key of the start vector (default ``PRNGKey(0)``).
      matrix: ``"hessian"`` or ``"ggn"`` (:func:`wideth.hessian.ggn_vp`).
      which: ``"largest"`` (eigenvalues descending) or ``"smallest"``
        (eigenvalues *ascending*: the most negative first).
      outputs_fn, loss_of_outputs: for ``matrix="ggn"``.
      data, batch_size, mesh, axis_name: minibatched / data-parallel products,
        as in :func:`wideth.hessian.hvp`.
      dtype: dtype of the Lanczos vectors (e.g. ``jnp.float64`` with x64 on).

    Returns:
      ``(evals, evecs)``: ``evals`` ``(k,)`` descending for ``"largest"``,
      ascending for ``"smallest"``; ``evecs`` a pytree like ``params`` with a
      leading axis ``k``, unit norm in the raveled space (sign arbitrary).

    Raises:
      ValueError: ``k`` > number of parameters, ``num_steps`` < ``k``,
        non-scalar ``loss_fn``, unknown ``matrix`` or ``which``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> loss = lambda p: 0.5 * jnp.sum(jnp.arange(1.0, 6.0) * p ** 2)
      >>> evals, _ = top_eigenpairs(loss, jnp.zeros(5), k=2, num_steps=5,
      ...                           key=jax.random.PRNGKey(0))
      >>> evals.round(4)
      Array([5., 4.], dtype=float32)

    References:
      Ghorbani, Krishnan & Xiao, `An investigation into neural net optimization
      via Hessian eigenvalue density <https://arxiv.org/abs/1901.10159>`_, 2019;
      Golub & Van Loan, Matrix Computations, 4th ed., ch. 10, 2013.
    """
    k = _check_int("k", k)
    num_steps = _check_int("num_steps", num_steps)
    if which not in ("largest", "smallest"):
        raise ValueError(f"which must be 'largest' or 'smallest', got {which!r}")
    d = _num_params(params)
    if k > d:
        raise ValueError(f"k must be at most the number of parameters {d}, got k={k}")
    if num_steps < k:
        raise ValueError(f"num_steps must be at least k={k}, got num_steps={num_steps}")
    spec = _spec(loss_fn, matrix, outputs_fn, loss_of_outputs, batch_size, mesh, axis_name, dtype)
    key = jax.random.PRNGKey(0) if key is None else key
    return _top_impl(params, data, key, spec, k, min(num_steps, d), which)


@functools.partial(jax.jit, static_argnames=("spec", "k", "m", "which"))
def _top_impl(params, data, key, spec, k, m, which):
    matvec, d, dtype, unravel = _matvec(spec, params, data)
    v0 = jax.random.normal(key, (d,), dtype)
    alphas, betas, basis = lanczos_flat(matvec, v0, m)
    theta, s = tridiagonal_eigh(alphas, betas)
    idx = jnp.arange(m - 1, m - 1 - k, -1) if which == "largest" else jnp.arange(k)
    vecs = jnp.dot(s[:, idx].T, basis, precision=lax.Precision.HIGHEST)
    return theta[idx], jax.vmap(unravel)(vecs)


def _rademacher(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    return jax.random.rademacher(key, shape, dtype=jnp.int8).astype(dtype)


def spectral_density(
    loss_fn: Callable[..., jax.Array] | None,
    params: PyTree,
    num_probes: int = 8,
    num_steps: int = 64,
    key: jax.Array | None = None,
    *,
    matrix: str = "hessian",
    outputs_fn: Callable[..., Any] | None = None,
    loss_of_outputs: Callable[..., jax.Array] | None = None,
    data: PyTree | None = None,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    axis_name: str | None = None,
    probe_batch_size: int | None = None,
    dtype: Any = None,
) -> tuple[jax.Array, jax.Array]:
    r"""Stochastic Lanczos quadrature (SLQ) of the Hessian (or GGN) spectral density.

    For each Rademacher probe :math:`v` (normalised), ``num_steps`` Lanczos
    steps from :math:`v` give :math:`T_m = S\,\mathrm{diag}(\theta)\,S^\top`;
    the Gauss quadrature nodes :math:`\theta_j` and weights
    :math:`w_j = (e_1^\top s_j)^2` (summing to 1) approximate

    .. math::

        \frac{1}{d}\operatorname{tr} f(H) \approx \frac{1}{P}\sum_{p=1}^{P}
        \sum_{j=1}^{m} w^{(p)}_j f(\theta^{(p)}_j),

    exactly for polynomials of degree :math:`\le 2m-1` per probe. In
    particular :math:`\sum_j w_j\theta_j = v^\top H v` and
    :math:`\sum_j w_j\theta_j^2 = \|Hv\|^2`, unbiased for
    :math:`\operatorname{tr}H/d` and :math:`\operatorname{tr}H^2/d`.

    Args:
      loss_fn: as in :func:`top_eigenpairs`, and so are ``params``, ``matrix``,
        ``outputs_fn``, ``loss_of_outputs``, ``data``, ``batch_size``, ``mesh``,
        ``axis_name`` and ``dtype``.
      num_probes: number of probe vectors :math:`P` (static).
      num_steps: Lanczos steps per probe :math:`m` (static; clipped to :math:`d`).
      key: PRNG key for the probes (default ``PRNGKey(0)``).
      probe_batch_size: probes run together under ``vmap``; memory holds
        ``probe_batch_size * m * d`` floats of Lanczos bases. Default: all
        probes at once on an accelerator, one at a time on the CPU, where a
        vmapped HVP costs more per probe than a loop of single ones (measured
        in BENCHMARKS.md, section hessian).

    Returns:
      ``(nodes, weights)``, each ``(num_probes, m)``; each row of ``weights``
      sums to 1. Smooth with :func:`density_on_grid`.

    Raises:
      ValueError: non-positive sizes, non-scalar loss, unknown ``matrix``.

    References:
      Ubaru, Chen & Saad, `Fast estimation of tr(f(A)) via stochastic Lanczos
      quadrature <https://doi.org/10.1137/16M1104974>`_, 2017;
      Ghorbani, Krishnan & Xiao, An investigation into neural net optimization
      via Hessian eigenvalue density, 2019.
    """
    num_probes = _check_int("num_probes", num_probes)
    num_steps = _check_int("num_steps", num_steps)
    spec = _spec(loss_fn, matrix, outputs_fn, loss_of_outputs, batch_size, mesh, axis_name, dtype)
    key = jax.random.PRNGKey(0) if key is None else key
    d = _num_params(params)
    if probe_batch_size is None:
        probe_batch_size = 1 if jax.default_backend() == "cpu" else num_probes
    probe_batch_size = min(_check_int("probe_batch_size", probe_batch_size), num_probes)
    return _slq_impl(params, data, key, spec, num_probes, min(num_steps, d), probe_batch_size)


@functools.partial(jax.jit, static_argnames=("spec", "num_probes", "m", "probe_batch_size"))
def _slq_impl(params, data, key, spec, num_probes, m, probe_batch_size):
    matvec, d, dtype, _ = _matvec(spec, params, data)
    probes = _rademacher(key, (num_probes, d), dtype)

    def one(v):
        alphas, betas, _ = lanczos_flat(matvec, v, m)
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
      weights: same shape, quadrature weights.
      grid: ``(G,)`` evaluation points.
      sigma: kernel width, > 0.

    Returns:
      ``(G,)`` density values.

    References:
      Ghorbani, Krishnan & Xiao, 2019, Eq. (5).
    """
    nodes, weights = jnp.atleast_2d(nodes), jnp.atleast_2d(weights)
    if nodes.shape != weights.shape:
        raise ValueError(
            f"nodes and weights must have the same shape, got {nodes.shape} and {weights.shape}"
        )
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    grid = jnp.asarray(grid)
    z = (grid[:, None, None] - nodes[None]) / sigma
    g = jnp.exp(-0.5 * z**2) / (jnp.sqrt(2 * jnp.pi) * sigma)
    return jnp.sum(g * weights[None], axis=(1, 2)) / nodes.shape[0]


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
    nodes, weights = jnp.atleast_2d(nodes), jnp.atleast_2d(weights)
    return jnp.sum(jnp.where(nodes < -threshold, weights, 0)) / nodes.shape[0]


def trace(
    loss_fn: Callable[..., jax.Array] | None,
    params: PyTree,
    num_probes: int = 64,
    key: jax.Array | None = None,
    *,
    matrix: str = "hessian",
    outputs_fn: Callable[..., Any] | None = None,
    loss_of_outputs: Callable[..., jax.Array] | None = None,
    data: PyTree | None = None,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    axis_name: str | None = None,
    probe_batch_size: int | None = None,
    dtype: Any = None,
) -> tuple[jax.Array, jax.Array]:
    r"""Hutchinson trace estimate of the Hessian (or GGN) with Rademacher probes.

    .. math::

        \widehat{\operatorname{tr}} H = \frac{1}{P}\sum_{p=1}^{P} z_p^\top H z_p,
        \quad z_p \in \{\pm 1\}^d, \qquad
        \mathrm{se} = \frac{s}{\sqrt{P}},

    unbiased, with variance :math:`2(\|H\|_F^2 - \sum_i H_{ii}^2)/P`; ``se`` uses
    the sample standard deviation :math:`s` of the :math:`P` terms.

    Args:
      loss_fn: as in :func:`top_eigenpairs`, and so are ``params``, ``matrix``,
        ``outputs_fn``, ``loss_of_outputs``, ``data``, ``batch_size``, ``mesh``,
        ``axis_name`` and ``dtype``.
      num_probes: number of probes :math:`P` (static, >= 2 for a standard error).
      key: PRNG key (default ``PRNGKey(0)``).
      probe_batch_size: probes per ``vmap`` batch (default: all).

    Returns:
      ``(estimate, stderr)``, scalars.

    References:
      Hutchinson, `A stochastic estimator of the trace of the influence matrix
      <https://doi.org/10.1080/03610919008812866>`_, 1990;
      Avron & Toledo, Randomized algorithms for estimating the trace of an
      implicit symmetric positive semi-definite matrix, 2011.
    """
    num_probes = _check_int("num_probes", num_probes, low=2)
    spec = _spec(loss_fn, matrix, outputs_fn, loss_of_outputs, batch_size, mesh, axis_name, dtype)
    key = jax.random.PRNGKey(0) if key is None else key
    return _trace_impl(params, data, key, spec, num_probes, probe_batch_size or num_probes)


@functools.partial(jax.jit, static_argnames=("spec", "num_probes", "probe_batch_size"))
def _trace_impl(params, data, key, spec, num_probes, probe_batch_size):
    matvec, d, dtype, _ = _matvec(spec, params, data)
    probes = _rademacher(key, (num_probes, d), dtype)
    terms = lax.map(lambda z: jnp.dot(z, matvec(z)), probes, batch_size=probe_batch_size)
    est = jnp.mean(terms)
    se = jnp.std(terms, ddof=1) / jnp.sqrt(num_probes)
    return est, se
