r"""Jittable Lanczos tridiagonalisation with full reorthogonalisation.

The Krylov basis is preallocated as a ``(num_steps, n)`` buffer and filled by a
``lax.fori_loop``; each new vector is orthogonalised twice against the whole
basis ("twice is enough", Parlett 1998), so the Ritz values carry no ghost
copies. A breakdown (:math:`\beta_j \approx 0`, an invariant Krylov subspace)
restarts the recurrence with a random vector orthogonal to the basis and sets
:math:`\beta_j = 0`, so the tridiagonal matrix becomes block diagonal, no NaN
appears, and repeated eigenvalues are found with their multiplicity.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from wideth import _checks

__all__ = ["lanczos", "tridiagonal", "tridiagonal_eigh"]

PyTree = Any
_HI = lax.Precision.HIGHEST


def _orthogonalise(basis: jax.Array, w: jax.Array) -> jax.Array:
    """Project ``w`` off the span of the rows of ``basis``, twice (rows may be zero)."""
    for _ in range(2):
        w = w - jnp.dot(jnp.dot(basis, w, precision=_HI), basis, precision=_HI)
    return w


def _lanczos_flat(
    matvec: Callable[[jax.Array], jax.Array],
    v0: jax.Array,
    num_steps: int,
    key: jax.Array | None = None,
    tol: float | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """:func:`lanczos` on flat vectors, unchecked (callers validate): ``v0`` of shape
    ``(n,)``, basis ``(num_steps, n)``."""
    n, dtype = v0.shape[0], v0.dtype
    m = int(num_steps)
    rel = float(jnp.finfo(dtype).eps) ** 0.75 if tol is None else float(tol)
    # Restart vectors: generic (non-polynomial) functions of one seed vector, so
    # no random numbers are drawn inside the loop (cheap to compile and run).
    phase = jnp.arange(n, dtype=dtype) * 0.6180339887
    seed = phase + v0 if key is None else phase + jax.random.normal(key, (n,), dtype)

    def random_unit(basis, i):
        c = jnp.asarray(i, dtype) + 2
        r = jnp.cos(seed * c * 1.3247179572 + c)
        r = _orthogonalise(basis, r)
        nr = jnp.linalg.norm(r)
        return r / jnp.where(nr > 0, nr, 1)

    basis = jnp.zeros((m, n), dtype)
    norm0 = jnp.linalg.norm(v0)
    q0 = lax.cond(
        norm0 > 0,
        lambda: v0 / jnp.where(norm0 > 0, norm0, 1),
        lambda: random_unit(basis, -1),
    )
    basis = basis.at[0].set(q0)
    zeros = jnp.zeros((m,), dtype)

    def body(i, state):
        basis, alphas, betas, beta_prev, anorm = state
        q = basis[i]
        w = matvec(q).astype(dtype)
        anorm = jnp.maximum(anorm, jnp.linalg.norm(w))
        alpha = jnp.dot(q, w, precision=_HI)
        w = w - alpha * q - beta_prev * basis[jnp.maximum(i - 1, 0)] * (i > 0)
        w = _orthogonalise(basis, w)
        beta = jnp.linalg.norm(w)
        broke = beta <= rel * anorm
        q_next = lax.cond(
            broke,
            lambda: random_unit(basis, i),
            lambda: w / jnp.where(broke, 1, beta),
        )
        beta = jnp.where(broke, 0, beta)
        basis = basis.at[i + 1].set(q_next, mode="drop")
        return basis, alphas.at[i].set(alpha), betas.at[i].set(beta), beta, anorm

    init = (basis, zeros, zeros, jnp.zeros((), dtype), jnp.zeros((), dtype))
    basis, alphas, betas, _, _ = lax.fori_loop(0, m, body, init)
    return alphas, betas, basis


def lanczos(
    matvec: Callable[..., PyTree],
    v0: PyTree,
    num_steps: int,
    *params: Any,
    key: jax.Array | None = None,
    tol: float | None = None,
) -> tuple[jax.Array, jax.Array, PyTree]:
    r"""Lanczos tridiagonalisation of a symmetric operator, fully reorthogonalised.

    Builds an orthonormal basis :math:`Q_m = [q_0,\dots,q_{m-1}]` of the Krylov
    space :math:`\mathcal{K}_m(A, v_0)` and the tridiagonal
    :math:`T_m = Q_m^\top A Q_m`:

    .. math::

        \beta_j q_{j+1} = A q_j - \alpha_j q_j - \beta_{j-1} q_{j-1},
        \qquad \alpha_j = q_j^\top A q_j,

    with every new vector reorthogonalised twice against all previous ones. If
    :math:`\beta_j \le \epsilon^{3/4}\,\|A\|_{\text{est}}` (breakdown: the
    Krylov space is invariant), :math:`\beta_j` is set to 0 and the recurrence
    restarts from a random unit vector orthogonal to the basis; :math:`T_m`
    is then block diagonal and all its eigenvalues are still eigenvalues of
    :math:`A` restricted to invariant subspaces. Never produces NaNs.

    Jittable and vmappable; ``num_steps`` is static. Cost per step: one
    ``matvec`` plus :math:`4 m n` flops of reorthogonalisation.

    Args:
      matvec: ``matvec(v, *params) -> A v`` for a symmetric :math:`A` (``v`` has
        the pytree structure of ``v0``), or an :class:`~wideth.hessian.Operator`
        (then ``v0`` is a flat vector of its size and the basis is flat).
      v0: start vector (any pytree; raveled inside). A zero ``v0`` is replaced
        by a random vector.
      num_steps: number of Lanczos steps :math:`m \le n` (= matvecs).
      *params: extra arguments passed to ``matvec``.
      key: optional PRNG key for the restart vectors after a breakdown; by
        default they are deterministic generic functions of ``v0``.
      tol: relative breakdown threshold (default :math:`\epsilon^{3/4}` of the dtype).

    Returns:
      ``(alphas, betas, basis)``: ``alphas`` ``(m,)`` the diagonal of
      :math:`T_m`; ``betas`` ``(m,)`` with ``betas[:-1]`` the off-diagonal and
      ``betas[-1]`` the norm of the final residual; ``basis`` the Lanczos
      vectors, a pytree like ``v0`` with a leading axis of size ``m``.

    Raises:
      ValueError: ``num_steps`` < 1 or larger than the dimension of ``v0``;
        NaN/inf in ``v0``.

    Examples:
      >>> import jax.numpy as jnp
      >>> a, b, q = lanczos(lambda v: jnp.array([1.0, 2.0, 3.0]) * v, jnp.ones(3), 3)
      >>> jnp.linalg.eigvalsh(tridiagonal(a, b)).round(4)
      Array([1., 2., 3.], dtype=float32)

    References:
      Lanczos, `An iteration method for the solution of the eigenvalue problem
      <https://doi.org/10.6028/jres.045.026>`_, 1950;
      Parlett, The Symmetric Eigenvalue Problem, 1998 (reorthogonalisation).
    """
    from .operators import Operator

    leaves = jax.tree.leaves(v0)
    if not leaves:
        raise ValueError("v0: expected a vector (array or pytree of arrays), got no leaves")
    for i, leaf in enumerate(leaves):
        _checks.array("v0" if len(leaves) == 1 else f"v0 (leaf {i})", leaf, kind="number")
    n = sum(int(jnp.size(x)) for x in leaves)
    num_steps = _checks.positive_int("num_steps", num_steps)
    if num_steps > n:
        raise ValueError(f"num_steps: expected at most the dimension {n} of v0, got {num_steps}")
    if tol is not None:
        tol = _checks.in_range("tol", tol, 0.0, 1.0, low_open=True)
    key = _checks.prng_key("key", key, allow_none=True)
    if isinstance(matvec, Operator):
        if params:
            raise TypeError("params: not used with an Operator (it holds its arrays)")
        if tuple(jnp.shape(v0)) != (matvec.size,):
            raise ValueError(
                f"v0: expected a flat vector of the operator's size ({matvec.size},), got "
                f"{_checks.shape_str(v0)}"
            )
        return _lanczos_op(matvec, jnp.asarray(v0, matvec.dtype), num_steps, key, tol)
    _checks.callable_("matvec", matvec, "a callable matvec(v, *params) or an Operator")
    out = _checks.evaluate_shape("matvec", matvec, v0, *params, what="matvec(v0, *params)")
    want = [tuple(jnp.shape(x)) for x in leaves]
    got = [tuple(getattr(x, "shape", ())) for x in jax.tree.leaves(out)]
    if jax.tree.structure(out) != jax.tree.structure(v0) or got != want:
        raise ValueError(f"matvec: expected an output laid out like v0 {want}, got {got}")
    return _lanczos_jit(matvec, v0, num_steps, params, key, tol)


@functools.partial(jax.jit, static_argnums=(2, 4))
def _lanczos_op(op, v0, num_steps, key, tol):
    return _lanczos_flat(op.linearized(), v0, num_steps, key, tol)


@functools.partial(jax.jit, static_argnums=(0, 2, 5))
def _lanczos_jit(matvec, v0, num_steps, params, key, tol):
    flat, unravel = ravel_pytree(v0)
    if not jnp.issubdtype(flat.dtype, jnp.floating):
        flat = flat.astype(jnp.result_type(float))

    def flat_matvec(x):
        return ravel_pytree(matvec(unravel(x), *params))[0]

    alphas, betas, basis = _lanczos_flat(flat_matvec, flat, num_steps, key, tol)
    return alphas, betas, jax.vmap(unravel)(basis)


def tridiagonal(alphas: jax.Array, betas: jax.Array) -> jax.Array:
    r"""Dense :math:`T_m` from Lanczos coefficients (``betas`` of length ``m`` or ``m-1``).

    .. math::

        T_m = \mathrm{diag}(\alpha) + \mathrm{diag}(\beta_{:m-1}, 1)
        + \mathrm{diag}(\beta_{:m-1}, -1).

    Args:
      alphas: ``(..., m)`` diagonal.
      betas: ``(..., m)`` or ``(..., m-1)``; only the first ``m-1`` are used.

    Returns:
      ``(..., m, m)`` symmetric tridiagonal matrix.

    Raises:
      ValueError / TypeError: non-finite or non-real coefficients, ``betas``
        whose last axis is not ``m`` or ``m - 1`` or whose batch shape differs.
    """
    alphas, betas = _check_tridiagonal(alphas, betas)
    m = alphas.shape[-1]
    off = betas[..., : m - 1]
    return alphas[..., :, None] * jnp.eye(m, dtype=alphas.dtype) + _band(off, m)


def _check_tridiagonal(alphas: Any, betas: Any) -> tuple[jax.Array, jax.Array]:
    alphas = _checks.array("alphas", alphas, min_ndim=1, kind="real")
    betas = _checks.array("betas", betas, min_ndim=1, kind="real")
    m = alphas.shape[-1]
    if m == 0:
        raise ValueError(
            f"alphas: expected at least one coefficient, got {_checks.shape_str(alphas)}"
        )
    if betas.shape[:-1] != alphas.shape[:-1] or betas.shape[-1] not in (m, m - 1):
        raise ValueError(
            f"betas: expected shape {(*alphas.shape[:-1], m)} or {(*alphas.shape[:-1], m - 1)} "
            f"for alphas {_checks.shape_str(alphas)}, got {_checks.shape_str(betas)}"
        )
    if not jnp.issubdtype(alphas.dtype, jnp.floating):
        alphas = alphas.astype(jnp.result_type(float))
    if not jnp.issubdtype(betas.dtype, jnp.floating):
        betas = betas.astype(alphas.dtype)
    return alphas, betas


def _band(off: jax.Array, m: int) -> jax.Array:
    pad = jnp.concatenate([off, jnp.zeros(off.shape[:-1] + (1,), off.dtype)], axis=-1)
    upper = pad[..., :, None] * jnp.eye(m, k=1, dtype=off.dtype)
    return upper + jnp.swapaxes(upper, -1, -2)


def tridiagonal_eigh(alphas: jax.Array, betas: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""Eigen-decomposition :math:`T_m = S\,\mathrm{diag}(\theta)\,S^\top` (ascending Ritz values).

    Args:
      alphas: ``(..., m)``.
      betas: ``(..., m)`` or ``(..., m-1)``.

    Returns:
      ``(theta, S)``: Ritz values ``(..., m)`` ascending and eigenvectors
      ``(..., m, m)`` in columns.
    """
    return jnp.linalg.eigh(tridiagonal(alphas, betas))
