r"""Unproven variants of ADLER, benchmarked beside the faithful :func:`~wideth.optim.pl_adaptive`.

Nothing here is part of the thesis algorithm; each variant changes one thing and
says which theory motivates it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from wideth import _checks

from ._averaged import state_dtype as _state_dtype
from .adler import _check_extra_args, _real_tree_dot, pl_adaptive

__all__ = [
    "GaussNewtonMomentumState",
    "gauss_newton_momentum",
    "gauss_newton_momentum_info",
    "pl_adaptive_relaxed",
    "pl_adaptive_safeguarded",
    "pl_adaptive_scheduled",
]


def pl_adaptive_relaxed(
    relaxation: float = 1.5, beta: float = 0.99, eps: float = 1e-10
) -> optax.GradientTransformationExtraArgs:
    r"""ADLER with a relaxed line-search step, :math:`\Delta\theta = -\theta\,\hat\eta_k G`.

    .. math::

        \Delta\theta = -\theta\,\hat\eta_k\, G, \qquad 0 < \theta < 2 .

    On the local quadratic model the loss change along :math:`-G` with step
    :math:`\theta \eta_k` is :math:`-\theta(2 - \theta)\,\eta_k G^\top G / 2`:
    every :math:`\theta \in (0, 2)` decreases it, :math:`\theta = 1` greedily
    most. Exact line search (:math:`\theta = 1`) zig-zags between the steep
    directions and moves slowly along flat ones; over-relaxing the Cauchy step
    breaks the zig-zag (Raydan & Svaiter 2002) while staying inside the
    stability interval :math:`\eta < 2 / \lambda` of every direction that
    :math:`G` probes. ``relaxation = 1`` is :func:`~wideth.optim.pl_adaptive`.

    Args:
        relaxation: :math:`\theta`, in ``(0, 2)``.
        beta: as in :func:`~wideth.optim.pl_adaptive`.
        eps: as in :func:`~wideth.optim.pl_adaptive`.

    Returns:
        ``optax.chain(pl_adaptive(beta, eps), optax.scale(relaxation))``; its state
        holds the ``PLAdaptiveState`` (so ``pl_adaptive_info`` works) and it needs
        the same ``outputs_fn`` / ``loss_of_outputs`` extra arguments.

    Raises:
        ValueError: ``relaxation`` outside ``(0, 2)`` (outside it the step does not
            decrease the local quadratic model), or a bad ``beta`` / ``eps``.

    References:
        Raydan & Svaiter, `Relaxed steepest descent and Cauchy-Barzilai-Borwein
        method`, Computational Optimization and Applications, 2002.
        Balboni, PhD thesis, Algorithm 1 (the unrelaxed rule).
    """
    relaxation = _checks.scalar("relaxation", relaxation, 0.0, 2.0, low_open=True, high_open=True)
    return optax.chain(pl_adaptive(beta=beta, eps=eps), optax.scale(relaxation))


def pl_adaptive_safeguarded(
    relaxation: float = 1.5, safety: float = 0.9, beta: float = 0.99, eps: float = 1e-10
) -> optax.GradientTransformationExtraArgs:
    r"""Relaxed ADLER that never steps past a fraction of the local stability limit.

    .. math::

        \Delta\theta = -\min\big(\theta\,\hat\eta_k,\; 2 s\,\eta_k\big)\, G,

    with :math:`\eta_k = G^\top G / (G^\top J^\top Q J G + \varepsilon G^\top G)`
    the current exact line-search step on the Gauss--Newton model. Along
    :math:`G` that model is a parabola whose minimum is at :math:`\eta_k` and
    which the step increases beyond :math:`2\eta_k`; the averaged
    :math:`\hat\eta_k` lags behind :math:`\eta_k` when the curvature rises
    (progressive sharpening), and :func:`pl_adaptive_relaxed` then steps past
    :math:`2\eta_k` and can diverge. Capping the step at :math:`2s\eta_k`,
    :math:`s < 1`, keeps every step a descent step of the local model (a trust
    region along :math:`G`, the bound the thesis names as future work). A
    skipped line search (``last_eta`` nan) applies the plain
    :math:`\theta\hat\eta_k`.

    Args:
        relaxation: :math:`\theta \in (0, 2)`.
        safety: :math:`s \in (0, 1]`.
        beta, eps: as in :func:`~wideth.optim.pl_adaptive`.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with the extra arguments of
        :func:`~wideth.optim.pl_adaptive`; its state is a ``PLAdaptiveState``
        (``pl_adaptive_info`` reports the unrelaxed :math:`\hat\eta_k`).

    Raises:
        ValueError: ``relaxation`` outside ``(0, 2)``, ``safety`` outside ``(0, 1]``,
            or a bad ``beta`` / ``eps``.

    References:
        Balboni, PhD thesis, Algorithm 1 and ch. 7 (trust region as future work).
        Raydan & Svaiter 2002 (relaxed steepest descent).
    """
    relaxation = _checks.scalar("relaxation", relaxation, 0.0, 2.0, low_open=True, high_open=True)
    safety = _checks.scalar("safety", safety, 0.0, 1.0, low_open=True)
    inner = pl_adaptive(beta=beta, eps=eps)

    def update_fn(updates, state, params=None, **extra):
        new, state = inner.update(updates, state, params, **extra)
        eta_hat, eta = state.eta_hat, state.last_eta
        cap = jnp.where(
            jnp.isfinite(eta) & (eta_hat > 0),
            2 * safety * eta / jnp.where(eta_hat > 0, eta_hat, 1),
            relaxation,
        )
        factor = jnp.minimum(jnp.asarray(relaxation, eta_hat.dtype), cap)
        return jax.tree.map(lambda u: factor.astype(u.dtype) * u, new), state

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)


class GaussNewtonMomentumState(NamedTuple):
    """State of :func:`gauss_newton_momentum`.

    Attributes:
        count: number of ``update`` calls.
        previous: the last applied update :math:`d_{k-1}` (zeros at the start).
        last_eta: the coefficient :math:`-a_k` of the gradient in the last update
            (``nan`` if the step was skipped).
        last_momentum: the coefficient :math:`b_k` of :math:`d_{k-1}`.
    """

    count: jax.Array
    previous: Any
    last_eta: jax.Array
    last_momentum: jax.Array


def gauss_newton_momentum(eps: float = 1e-10) -> optax.GradientTransformationExtraArgs:
    r"""Gauss--Newton-optimal momentum: the PSD model minimised over span(G, previous step).

    With :math:`G` the gradient, :math:`d` the previous update and the
    Gauss--Newton model :math:`m(s) = G^\top s + \tfrac12 s^\top(J^\top Q J + \varepsilon I_G)s`
    (:math:`\varepsilon` scaled per direction as in ADLER), the step
    :math:`s = aG + bd` solves the :math:`2\times2` system

    .. math::

        \begin{pmatrix} v_G^\top Q v_G + \varepsilon G^\top G & v_G^\top Q v_d \\
                        v_d^\top Q v_G & v_d^\top Q v_d + \varepsilon d^\top d \end{pmatrix}
        \begin{pmatrix} a \\ b \end{pmatrix}
        = -\begin{pmatrix} G^\top G \\ G^\top d \end{pmatrix},
        \qquad v_G = JG,\; v_d = Jd,

    two Jacobian-vector products through the network (one linearisation) and
    two through the loss per step; neither :math:`J` nor :math:`Q` is formed.
    On a quadratic loss of a linear model (:math:`J^\top QJ` the Hessian,
    :math:`\varepsilon = 0`) this is the conjugate-gradient method: the
    minimiser over :math:`\mathrm{span}(g_k, s_{k-1})` is the CG step (Hestenes
    & Stiefel 1952; Nocedal & Wright, Thm. 5.3), so it terminates in at most
    :math:`\dim` steps. When the system is singular (the first step, or
    :math:`d \parallel G`) the step is ADLER's line search :math:`a = -\eta_k`,
    :math:`b = 0`; a non-finite gradient or curvature gives a zero update.
    No averaging: with minibatch noise the coefficients are those of the
    current batch.

    Args:
        eps: :math:`\varepsilon \ge 0`, as in :func:`~wideth.optim.pl_adaptive`.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` needing ``params``,
        ``outputs_fn`` and ``loss_of_outputs`` (as ADLER). The updates include
        the step.

    Raises:
        ValueError: ``eps`` negative or not finite.

    References:
        Balboni, PhD thesis, ch. 7 (the PSD model in conjugate-direction methods, future work).
        Nocedal & Wright, Numerical Optimization, 2006, ch. 5.
    """
    eps = _checks.scalar("eps", eps, 0.0)

    def init_fn(params: Any) -> GaussNewtonMomentumState:
        dtype = _state_dtype(params)
        return GaussNewtonMomentumState(
            count=jnp.zeros([], jnp.int32),
            previous=jax.tree.map(jnp.zeros_like, params),
            last_eta=jnp.full([], jnp.nan, dtype),
            last_momentum=jnp.zeros([], dtype),
        )

    def update_fn(updates, state, params=None, *, outputs_fn=None, loss_of_outputs=None, **extra):
        del extra
        _check_extra_args(outputs_fn, loss_of_outputs, params)
        _checks.tree_like("updates", updates, params, check_finite=False)  # NaN: step skipped
        dtype = state.last_eta.dtype
        d = state.previous
        outputs, push = jax.linearize(outputs_fn, params)
        vg, vd = push(updates), push(d)
        dloss = jax.grad(loss_of_outputs)
        _, qg = jax.jvp(dloss, (outputs,), (vg,))
        _, qd = jax.jvp(dloss, (outputs,), (vd,))
        dot = lambda a, b: _real_tree_dot(a, b).astype(dtype)
        gg, gd, dd = dot(updates, updates), dot(updates, d), dot(d, d)
        e = jnp.asarray(eps, dtype)
        a11, a12, a22 = dot(vg, qg) + e * gg, dot(vg, qd), dot(vd, qd) + e * dd
        det = a11 * a22 - a12 * a12
        tiny = 1e3 * jnp.finfo(dtype).eps * jnp.abs(a11 * a22)
        two = (dd > 0) & (det > tiny) & (a22 > 0)
        a2 = (-gg * a22 + gd * a12) / jnp.where(two, det, 1)
        b2 = (-gd * a11 + gg * a12) / jnp.where(two, det, 1)
        ok1 = (gg > 0) & (a11 > 0)
        a1 = -gg / jnp.where(ok1, a11, 1)
        a = jnp.where(two, a2, a1)
        b = jnp.where(two, b2, 0)
        ok = (two | ok1) & jnp.isfinite(a) & jnp.isfinite(b) & jnp.isfinite(gg)
        step = jax.tree.map(
            lambda g, p: jnp.where(ok, a.astype(g.dtype) * g + b.astype(g.dtype) * p, 0),
            updates,
            d,
        )
        new_state = GaussNewtonMomentumState(
            count=optax.safe_increment(state.count),
            previous=jax.tree.map(lambda s, p: jnp.where(ok, s, p), step, d),
            last_eta=jnp.where(ok, -a, jnp.nan).astype(dtype),
            last_momentum=jnp.where(ok, b, 0).astype(dtype),
        )
        return step, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def gauss_newton_momentum_info(state: Any) -> dict[str, jax.Array]:
    """``last_eta``, ``last_momentum`` and ``count`` of a :func:`gauss_newton_momentum` state."""
    found = [
        s
        for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, GaussNewtonMomentumState))
        if isinstance(s, GaussNewtonMomentumState)
    ]
    if not found:
        raise ValueError("state: expected an optimizer state holding a GaussNewtonMomentumState")
    s = found[0]
    return {"last_eta": s.last_eta, "last_momentum": s.last_momentum, "count": s.count}


def pl_adaptive_scheduled(
    beta_max: float = 0.999, tau: float = 10.0, eps: float = 1e-10
) -> optax.GradientTransformationExtraArgs:
    r"""ADLER whose averaging memory grows with the run.

    :math:`\beta_k = \min(\beta_{\max}, k/(k+\tau))`.


    The discounted log-average of :func:`~wideth.optim.pl_adaptive` remembers
    about :math:`1/(1-\beta)` steps. A fixed :math:`\beta = 0.99` averages the
    first hundred steps, where the curvature changes fastest, into
    :math:`\hat\eta` for a long time; with :math:`\beta_k = k/(k+\tau)` the
    memory is :math:`(k+\tau)/\tau`, a fixed fraction :math:`1/\tau` of the run
    so far: early transients are forgotten quickly and the noise of
    :math:`\hat\eta` falls as the run goes on, up to the memory
    :math:`1/(1-\beta_{\max})`. This is the :math:`\beta_k \to 1` schedule the
    thesis suggests.

    Args:
        beta_max: :math:`\beta_{\max} \in [0, 1)`.
        tau: :math:`\tau > 0`.
        eps: as in :func:`~wideth.optim.pl_adaptive`.

    Returns:
        ``optax.inject_hyperparams(pl_adaptive)(beta=schedule, eps=eps)``;
        ``pl_adaptive_info`` works on its state.

    Raises:
        ValueError: ``beta_max`` outside ``[0, 1)``, ``tau <= 0`` or a bad ``eps``.

    References:
        Balboni, PhD thesis, Algorithm 1 and ch. 7 (β autotuning as future work).
    """
    beta_max = _checks.scalar("beta_max", beta_max, 0.0, 1.0, high_open=True)
    tau = _checks.scalar("tau", tau, 0.0, low_open=True)
    _checks.scalar("eps", eps, 0.0)

    def schedule(count):
        k = jnp.asarray(count, jnp.float32)
        return jnp.minimum(beta_max, k / (k + tau))

    return optax.inject_hyperparams(pl_adaptive)(beta=schedule, eps=eps)
