"""A small jitted L-BFGS for low-dimensional fits, built to be ``vmap``-ed over starts.

Scaling-law fits minimise a smooth function of a handful of parameters from
thousands of starting points (and again for every bootstrap resample). A line
search with its own inner ``while_loop`` makes every start under ``vmap`` pay for
the slowest one at every iteration; here each iteration costs exactly one
``value_and_grad``: the trial step :math:`\\eta` is tried, and if it fails the
Armijo test the iterate stays put and the next iteration tries :math:`\\eta/4`
(backtracking spread over iterations). The outer loop is a ``lax.while_loop``
that, under ``vmap``, ends as soon as every start has converged, so a batch of
starts costs as many iterations as its slowest member and no more.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class LBFGSState(NamedTuple):
    """State of one L-BFGS run (flat parameter vector of length ``p``)."""

    x: jax.Array  # (p,) current iterate
    f: jax.Array  # () objective at x
    g: jax.Array  # (p,) gradient at x
    s_mem: jax.Array  # (m, p) parameter differences, circular buffer
    y_mem: jax.Array  # (m, p) gradient differences
    rho: jax.Array  # (m,) 1 / <s, y>, 0 for empty slots
    count: jax.Array  # () int32, number of stored pairs so far
    eta: jax.Array  # () trial step size of the next iteration
    done: jax.Array  # () bool, converged or stalled
    it: jax.Array  # () int32, iterations (function evaluations) used


def _two_loop(g: jax.Array, state: LBFGSState) -> jax.Array:
    """Inverse-Hessian approximation times ``g`` (Nocedal & Wright, Alg. 7.4)."""
    m = state.s_mem.shape[0]
    newest = (state.count - 1) % m

    def backward(i, carry):  # newest to oldest
        q, alphas = carry
        j = (newest - i) % m
        a = state.rho[j] * jnp.vdot(state.s_mem[j], q)
        return q - a * state.y_mem[j], alphas.at[j].set(a)

    q, alphas = jax.lax.fori_loop(0, m, backward, (g, jnp.zeros_like(state.rho)))
    sy = jnp.vdot(state.s_mem[newest], state.y_mem[newest])
    yy = jnp.vdot(state.y_mem[newest], state.y_mem[newest])
    gamma = jnp.where((state.count > 0) & (yy > 0) & (sy > 0), sy / jnp.where(yy > 0, yy, 1.0), 1.0)

    def forward(i, r):  # oldest to newest
        j = (newest - (m - 1 - i)) % m
        b = state.rho[j] * jnp.vdot(state.y_mem[j], r)
        return r + state.s_mem[j] * (alphas[j] - b)

    return jax.lax.fori_loop(0, m, forward, gamma * q)


def init(x0: jax.Array, memory_size: int = 10) -> LBFGSState:
    """Fresh :class:`LBFGSState` at ``x0``; no function evaluation yet.

    ``f = +inf`` marks the state as fresh: the first iteration of :func:`run` only
    evaluates ``fun`` and its gradient at ``x0``. So a batch of fresh and partly run
    states can go through the same compiled :func:`run`.
    """
    x0 = jnp.asarray(x0)
    dtype = x0.dtype
    p = x0.shape[-1]
    return LBFGSState(
        x=x0,
        f=jnp.full((), jnp.inf, dtype),
        g=jnp.zeros((p,), dtype),
        s_mem=jnp.zeros((memory_size, p), dtype),
        y_mem=jnp.zeros((memory_size, p), dtype),
        rho=jnp.zeros((memory_size,), dtype),
        count=jnp.zeros((), jnp.int32),
        eta=jnp.ones((), dtype),
        done=jnp.zeros((), bool),
        it=jnp.zeros((), jnp.int32),
    )


def run(
    fun: Callable[[jax.Array], jax.Array],
    state: LBFGSState,
    *,
    max_iter: int | jax.Array = 200,
    gtol: float | None = None,
    ftol: float | None = None,
    xtol: float | None = None,
    min_eta: float = 1e-8,
) -> LBFGSState:
    r"""Continue L-BFGS from ``state`` until converged or ``state.it == max_iter``.

    Each iteration computes the L-BFGS direction :math:`d = H_k g_k` (two-loop
    recursion; the first step is :math:`g_0 / \max(1, \|g_0\|)`), tries
    :math:`x_k - \eta d` and accepts it if it satisfies the Armijo condition
    :math:`f(x_k - \eta d) \le f(x_k) - 10^{-4}\,\eta\, g_k^\top d`; then
    :math:`\eta \leftarrow 1`. Otherwise the iterate stays and
    :math:`\eta \leftarrow \eta / 4`. A curvature pair is stored only when
    :math:`s^\top y > 0`, so :math:`H_k` stays positive definite. A run is frozen
    when :math:`\|g\|_\infty \le` ``gtol``, when an accepted step decreases
    :math:`f` by less than ``ftol`` relative or moves :math:`x` by less than
    ``xtol`` relative, or when :math:`\eta <` ``min_eta``.

    Args:
      fun: scalar objective of a flat parameter vector of shape ``(p,)``.
      state: from :func:`init` or a previous :func:`run`.
      max_iter: iteration budget (may be traced), counted in ``state.it``, so a
        second call continues where the first stopped; one iteration is one
        ``value_and_grad``.
      gtol, ftol, xtol: tolerances; ``None`` picks defaults for the dtype
        (float32: 1e-6, 1e-7, 1e-6; float64: 1e-9, 1e-12, 1e-10).
      min_eta: smallest trial step before a run counts as stalled.

    Returns:
      The final state; ``x`` and ``f`` are the minimiser and its value.

    References:
      Nocedal & Wright, Numerical Optimization, 2nd ed., Algorithms 7.4-7.5, 2006.
    """
    value_and_grad = jax.value_and_grad(fun)
    single = state.x.dtype == jnp.float32
    gtol = (1e-6 if single else 1e-9) if gtol is None else gtol
    ftol = (1e-7 if single else 1e-12) if ftol is None else ftol
    xtol = (1e-6 if single else 1e-10) if xtol is None else xtol
    memory_size = state.s_mem.shape[0]

    def cond(state: LBFGSState) -> jax.Array:
        return ~state.done & (state.it < max_iter)

    def body(state: LBFGSState) -> LBFGSState:
        gnorm = jnp.linalg.norm(state.g)
        sd = state.g / jnp.maximum(1.0, gnorm)
        d = _two_loop(state.g, state)
        slope = jnp.vdot(state.g, d)
        bad = ~(slope > 0) | ~jnp.all(jnp.isfinite(d)) | (state.count == 0)
        d = jnp.where(bad, sd, d)  # fresh state: g = 0, so d = 0 and x_try = x0
        slope = jnp.vdot(state.g, d)
        x_try = state.x - state.eta * d
        f_try, g_try = value_and_grad(x_try)
        accept = (
            jnp.isfinite(f_try)
            & jnp.all(jnp.isfinite(g_try))
            & (f_try <= state.f - 1e-4 * state.eta * slope)
        )
        s = x_try - state.x
        y = g_try - state.g
        sy = jnp.vdot(s, y)
        store = accept & (sy > 1e-10 * jnp.linalg.norm(s) * jnp.linalg.norm(y))
        slot = state.count % memory_size
        s_mem = jnp.where(store, state.s_mem.at[slot].set(s), state.s_mem)
        y_mem = jnp.where(store, state.y_mem.at[slot].set(y), state.y_mem)
        rho = jnp.where(store, state.rho.at[slot].set(1.0 / jnp.where(store, sy, 1.0)), state.rho)
        small_g = jnp.max(jnp.abs(g_try)) <= gtol
        small_f = (state.f - f_try) <= ftol * jnp.abs(state.f)
        small_x = jnp.max(jnp.abs(s)) <= xtol * (1.0 + jnp.max(jnp.abs(state.x)))
        eta = jnp.where(accept, jnp.ones_like(state.eta), state.eta * 0.25)
        fresh = ~jnp.isfinite(state.f)  # first evaluation at x0 (see init)
        done = (accept & ~fresh & (small_g | small_f | small_x)) | (eta < min_eta)
        done = done | (fresh & ~accept)  # non-finite objective at x0
        return LBFGSState(
            x=jnp.where(accept, x_try, state.x),
            f=jnp.where(accept, f_try, state.f),
            g=jnp.where(accept, g_try, state.g),
            s_mem=s_mem,
            y_mem=y_mem,
            rho=rho,
            count=state.count + store.astype(jnp.int32),
            eta=eta,
            done=done,
            it=state.it + 1,
        )

    return jax.lax.while_loop(cond, body, state)


def minimize(
    fun: Callable[[jax.Array], jax.Array],
    x0: jax.Array,
    *,
    max_iter: int = 200,
    memory_size: int = 10,
    **tolerances: float,
) -> LBFGSState:
    """Minimise ``fun`` from ``x0``: :func:`init` then :func:`run` (see there)."""
    return run(fun, init(x0, memory_size), max_iter=max_iter, **tolerances)


@functools.partial(jax.jit, static_argnames=("objective",))
def _solve_chunk(objective, states, weights, data, delta, max_iter):
    def one(state, w):
        return run(lambda th: objective(th, *data, w, delta), state, max_iter=max_iter)

    return jax.vmap(one)(states, weights)


def init_batch(x0: Any, memory_size: int = 10) -> LBFGSState:
    """:func:`init` for a ``(S, p)`` batch of starts, as numpy arrays (no dispatch)."""
    x0 = np.asarray(x0)
    size, p = x0.shape
    dtype = x0.dtype
    return LBFGSState(
        x=x0.copy(),
        f=np.full((size,), np.inf, dtype),
        g=np.zeros((size, p), dtype),
        s_mem=np.zeros((size, memory_size, p), dtype),
        y_mem=np.zeros((size, memory_size, p), dtype),
        rho=np.zeros((size, memory_size), dtype),
        count=np.zeros((size,), np.int32),
        eta=np.ones((size,), dtype),
        done=np.zeros((size,), bool),
        it=np.zeros((size,), np.int32),
    )


def _take_chunk(states: LBFGSState, weights: np.ndarray, lo: int, chunk: int):
    """Rows ``lo:lo+chunk``, padded to ``chunk`` rows with finished copies of the first."""
    st = jax.tree.map(lambda a: np.asarray(a[lo : lo + chunk]), states)
    w = np.asarray(weights[lo : lo + chunk])
    pad = chunk - int(st.x.shape[0])
    if pad:
        fill = lambda a: np.concatenate([a, np.repeat(a[:1], pad, axis=0)])
        st = jax.tree.map(fill, st)
        done = st.done.copy()
        done[-pad:] = True
        st = st._replace(done=done)
        w = fill(w)
    return st, w, pad


def solve(
    objective: Callable[..., jax.Array],
    states: LBFGSState,
    weights: Any,
    data: tuple[jax.Array, ...],
    delta: Any,
    max_iter: int,
    *,
    chunk: int = 512,
    quiet: bool = True,
    desc: str = "L-BFGS",
) -> LBFGSState:
    """Run a batch of L-BFGS problems ``objective(theta, *data, weights[i], delta)``.

    ``states`` and ``weights`` have a leading batch axis ``S``. The batch is cut
    into chunks of ``chunk`` rows (the last one padded with finished copies), and
    every chunk goes through one compiled, ``vmap``-ed :func:`run`; ``max_iter`` is
    traced, so multi-start fits, refinements and bootstrap refits of the same data
    size share one compilation. Returns the final states as numpy arrays.
    """
    size = int(states.x.shape[0])
    chunk = max(1, int(chunk))  # fixed chunk shape: one compilation for every batch size
    states = jax.tree.map(np.asarray, states)
    weights = np.asarray(weights)
    out = []
    from tqdm.auto import tqdm

    for lo in tqdm(range(0, size, chunk), desc=desc, disable=quiet):
        st, w, pad = _take_chunk(states, weights, lo, chunk)
        res = _solve_chunk(objective, st, w, data, delta, np.int32(max_iter))
        out.append(jax.tree.map(lambda a, keep=chunk - pad: np.asarray(a)[:keep], res))
    return jax.tree.map(lambda *a: np.concatenate(a), *out)
