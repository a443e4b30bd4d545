r"""ADLER: the PL-adaptive step size as an Optax transform.

Under the Polyak--Łojasiewicz (PL) condition gradient descent converges
linearly, and for a wide network the loss is, locally, a quadratic in the
parameters through the Gauss--Newton model :math:`f(\theta - \eta G) \approx
f(\theta) - \eta\,\nabla f^\top G + \tfrac{\eta^2}{2}\, G^\top J^\top Q J G`,
where :math:`J` is the Jacobian of the network outputs on the batch and
:math:`Q = \nabla^2_{\mathrm{out}}\ell` the Hessian of the loss with respect to
those outputs. ADLER (Balboni, PhD thesis, Alg. 1) takes the exact line-search
step of that model along the minibatch gradient and smooths it in log space.

References:
    Balboni, PhD thesis, Algorithm 1 (ADLER, adaptive learning rate from the
    PL/Gauss--Newton model).
    Polyak, `Gradient methods for minimizing functionals`, 1963.
    Łojasiewicz, `A topological property of real analytic subsets`, 1963.
    Liu, Zhu & Belkin, `Loss landscapes and optimization in over-parameterized
    non-linear systems and neural networks <https://arxiv.org/abs/2003.00307>`_, 2022.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["PLAdaptiveState", "pl_adaptive", "pl_adaptive_info", "gauss_newton_curvature"]

_MISSING_ARGS = (
    "pl_adaptive needs the keyword arguments `outputs_fn` (params -> network outputs on "
    "the current batch) and `loss_of_outputs` (outputs -> scalar loss), and `params`: call "
    "`tx.update(grads, state, params, outputs_fn=lambda p: apply_fn(p, xb), "
    "loss_of_outputs=lambda out: loss(out, yb))`. wideth.train.fit passes them automatically."
)


class PLAdaptiveState(NamedTuple):
    """State of :func:`pl_adaptive`.

    Attributes:
        count: number of ``update`` calls, int32 scalar.
        log_sum: discounted sum :math:`s = \\sum_j \\beta^{k-j} \\log \\eta_j` over valid steps.
        weight: discounted count :math:`c = \\sum_j \\beta^{k-j}` over valid steps.
        last_eta: the last raw line-search step :math:`\\eta_k` (``nan`` if it was invalid).
        eta_hat: the step size applied at the last update, :math:`\\exp(s/c)`.
    """

    count: jax.Array
    log_sum: jax.Array
    weight: jax.Array
    last_eta: jax.Array
    eta_hat: jax.Array


def _tree_vdot(a: Any, b: Any) -> jax.Array:
    leaves = [
        jnp.vdot(x, y).real for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    ]
    return sum(leaves[1:], leaves[0]) if leaves else jnp.zeros([])


def gauss_newton_curvature(
    outputs_fn: Callable[[Any], Any],
    loss_of_outputs: Callable[[Any], jax.Array],
    params: Any,
    direction: Any,
) -> tuple[jax.Array, Any]:
    r"""Gauss--Newton curvature :math:`v^\top Q v` along a parameter direction.

    .. math::

        v = J G = \partial_t\, \mathrm{outputs}(\theta + t G)\big|_{t=0}, \qquad
        v^\top Q v = v^\top\, \partial_t\, \nabla\ell(\mathrm{out} + t v)\big|_{t=0}
        = G^\top J^\top Q J G,

    with one forward-mode product through the network and one
    forward-over-reverse product through the loss; neither :math:`J` nor
    :math:`Q` is formed.

    Args:
        outputs_fn: ``params -> outputs`` (any pytree) on the current batch.
        loss_of_outputs: ``outputs -> scalar`` loss.
        params: the point :math:`\theta`, a pytree.
        direction: :math:`G`, a pytree with the structure of ``params``.

    Returns:
        ``(vQv, outputs)``: the scalar curvature and the outputs at ``params``.
    """
    outputs, v = jax.jvp(outputs_fn, (params,), (direction,))
    _, qv = jax.jvp(jax.grad(loss_of_outputs), (outputs,), (v,))
    return _tree_vdot(v, qv), outputs


def pl_adaptive(beta: float = 0.99, eps: float = 1e-10) -> optax.GradientTransformationExtraArgs:
    r"""PL-adaptive step size ADLER (Balboni, PhD thesis, Alg. 1).

    With :math:`G` the incoming updates (the minibatch gradient, possibly
    transformed by earlier members of an ``optax.chain``), :math:`J` the
    Jacobian of the network outputs on the batch and :math:`Q` the Hessian of
    the loss with respect to those outputs, each step computes

    .. math::

        v = J G, \qquad
        \eta_k = \frac{G^\top G}{v^\top Q v + \varepsilon\, G^\top G}, \\
        s_k = \beta s_{k-1} + \log \eta_k, \qquad c_k = \beta c_{k-1} + 1, \qquad
        \hat\eta_k = \exp(s_k / c_k), \qquad
        \Delta\theta = -\hat\eta_k\, G,

    with :math:`s_0 = c_0 = 0` (so :math:`\hat\eta_1 = \eta_1`: the running
    average in log space is bias-corrected). :math:`\eta_k` is the exact
    line-search step of the local Gauss--Newton quadratic along :math:`-G`; on
    linear least squares with full batch it is the exact line-search step of
    the loss itself. The cost is one JVP through the network (and one
    forward-over-reverse product through the loss, cheap in output space) on
    top of the gradient: about two gradient evaluations per step.

    A step whose :math:`\eta_k` is not finite and positive (zero gradient, or
    a negative curvature larger than :math:`\varepsilon G^\top G` from a
    non-convex ``loss_of_outputs``) leaves :math:`s, c` unchanged and applies
    the previous average. There is no momentum and no weight decay inside:
    chain them (``optax.add_decayed_weights`` after this transform).

    Args:
        beta: discount of the log-space running average, in ``[0, 1)``; ``0``
            applies the raw line-search step every time.
        eps: damping :math:`\varepsilon`; it caps :math:`\eta_k \le 1/\varepsilon`.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` whose
        ``update(updates, state, params, *, outputs_fn, loss_of_outputs, **extra)``
        takes ``outputs_fn(params) -> outputs`` on the current batch and
        ``loss_of_outputs(outputs) -> scalar`` (the same loss the gradient came
        from); other extra keyword arguments are ignored. The updates already
        include the step (no ``scale_by_learning_rate`` needed).

    Examples:
        >>> import jax, jax.numpy as jnp, optax
        >>> from wideth.optim import pl_adaptive
        >>> x, y = jnp.eye(3), jnp.ones(3)
        >>> f = lambda w: x @ w
        >>> loss = lambda out: 0.5 * jnp.mean((out - y) ** 2)
        >>> w = jnp.zeros(3)
        >>> tx = optax.chain(optax.clip_by_global_norm(1.0), pl_adaptive())
        >>> state = tx.init(w)
        >>> g = jax.grad(lambda w: loss(f(w)))(w)
        >>> u, state = tx.update(g, state, w, outputs_fn=f, loss_of_outputs=loss)
        >>> print(jnp.round(w + u, 4))
        [1. 1. 1.]

    References:
        Balboni, PhD thesis, Algorithm 1.
        Polyak, `Gradient methods for minimizing functionals`, 1963.
        Liu, Zhu & Belkin, `Loss landscapes and optimization in over-parameterized
        non-linear systems and neural networks <https://arxiv.org/abs/2003.00307>`_, 2022.
    """

    def init_fn(params: Any) -> PLAdaptiveState:
        dtype = optax.tree.dtype(params, "lowest") if jax.tree.leaves(params) else jnp.float32
        dtype = (
            jnp.promote_types(dtype, jnp.float32)
            if jnp.issubdtype(dtype, jnp.floating)
            else (jnp.float32)
        )
        zero = jnp.zeros([], dtype)
        return PLAdaptiveState(
            count=jnp.zeros([], jnp.int32),
            log_sum=zero,
            weight=zero,
            last_eta=jnp.full([], jnp.nan, dtype),
            eta_hat=zero,
        )

    def update_fn(
        updates: Any,
        state: PLAdaptiveState,
        params: Any = None,
        *,
        outputs_fn: Callable[[Any], Any] | None = None,
        loss_of_outputs: Callable[[Any], jax.Array] | None = None,
        **extra_args: Any,
    ) -> tuple[Any, PLAdaptiveState]:
        del extra_args
        if outputs_fn is None or loss_of_outputs is None or params is None:
            raise TypeError(_MISSING_ARGS)
        dtype = state.log_sum.dtype
        vqv, _ = gauss_newton_curvature(outputs_fn, loss_of_outputs, params, updates)
        gg = _tree_vdot(updates, updates)
        vqv, gg = vqv.astype(dtype), gg.astype(dtype)
        b = jnp.asarray(beta, dtype)
        e = jnp.asarray(eps, dtype)
        denom = vqv + e * gg
        ok = (gg > 0) & (denom > 0) & jnp.isfinite(denom)
        eta = jnp.where(ok, gg / jnp.where(ok, denom, 1), 1)
        ok = ok & jnp.isfinite(eta) & (eta > 0)
        log_sum = jnp.where(ok, b * state.log_sum + jnp.log(jnp.where(ok, eta, 1)), state.log_sum)
        weight = jnp.where(ok, b * state.weight + 1, state.weight)
        eta_hat = jnp.where(weight > 0, jnp.exp(log_sum / jnp.where(weight > 0, weight, 1)), 0)
        new_updates = jax.tree.map(lambda g: (-eta_hat).astype(g.dtype) * g, updates)
        new_state = PLAdaptiveState(
            count=optax.safe_increment(state.count),
            log_sum=log_sum.astype(dtype),
            weight=weight.astype(dtype),
            last_eta=jnp.where(ok, eta, jnp.nan).astype(dtype),
            eta_hat=eta_hat.astype(dtype),
        )
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def pl_adaptive_info(state: Any) -> dict[str, jax.Array]:
    """Current step size and last raw line-search step of a :func:`pl_adaptive` state.

    Finds the :class:`PLAdaptiveState` anywhere inside an optimizer state tree
    (``optax.chain``, ``optax.inject_hyperparams``, ``nnx.Optimizer`` states).

    Args:
        state: an optimizer state containing exactly one ``PLAdaptiveState``
            (the first one found is used if there are several).

    Returns:
        A dict with ``"eta_hat"`` (η̂ applied at the last update), ``"last_eta"``
        (the last raw η_k, nan if that step was skipped), ``"count"`` (number of
        updates) and ``"weight"`` (the bias-correction weight c), as scalar
        arrays (batched if the state was ``vmap``-ed).

    Raises:
        ValueError: if ``state`` contains no ``PLAdaptiveState``.
    """
    found = [
        s
        for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, PLAdaptiveState))
        if isinstance(s, PLAdaptiveState)
    ]
    if not found:
        raise ValueError(
            "pl_adaptive_info: `state` contains no PLAdaptiveState; pass the optimizer state "
            "returned by a transform built with wideth.optim.pl_adaptive."
        )
    s = found[0]
    return {"eta_hat": s.eta_hat, "last_eta": s.last_eta, "count": s.count, "weight": s.weight}
