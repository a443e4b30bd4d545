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

from wideth import _checks

from . import _averaged

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


def _real_tree_dot(a: Any, b: Any) -> jax.Array:
    r"""Real pairing :math:`\operatorname{Re}\sum a \cdot b` of two pytrees (no conjugate).

    For real leaves this is the dot product. For complex leaves it is the
    pairing of a tangent with a JAX cotangent: ``jax.grad`` of a real
    :math:`\ell(z)`, :math:`z = x + iy`, returns
    :math:`\partial_x\ell - i\,\partial_y\ell`, so for a tangent
    :math:`v = c + id`

    .. math::

        \operatorname{Re}\big[(\partial_x\ell - i\partial_y\ell)(c + id)\big]
        = c\,\partial_x\ell + d\,\partial_y\ell
        = \frac{d}{dt}\,\ell(z + t v)\Big|_{t=0},

    and, with :math:`q = \partial_t\, \mathrm{grad}\,\ell(z + t v)` (a JVP of
    ``jax.grad``), :math:`\operatorname{Re}\sum v\cdot q = \frac{d^2}{dt^2}\ell(z + tv)`.
    ``jnp.vdot`` (:math:`\sum \bar a\, b`) conjugates the tangent and gets both wrong.
    """
    return jnp.real(optax.tree.vdot(optax.tree.conj(a), b))


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
    :math:`Q` is formed. For complex outputs the pairing is
    :math:`\operatorname{Re}\sum v\cdot Qv` (no
    conjugate): it is :math:`\frac{d^2}{dt^2}\ell(\mathrm{out} + tv)`, the real
    curvature of the loss along :math:`v`.

    Args:
        outputs_fn: ``params -> outputs`` (any pytree) on the current batch.
        loss_of_outputs: ``outputs -> scalar`` loss.
        params: the point :math:`\theta`, a pytree.
        direction: :math:`G`, a pytree with the structure of ``params``.

    Returns:
        ``(vQv, outputs)``: the scalar curvature and the outputs at ``params``.

    Raises:
        TypeError: a non-callable ``outputs_fn`` or ``loss_of_outputs``; a
            ``params`` or ``direction`` leaf that is not floating; an
            ``outputs_fn`` that fails with a type error on ``params``.
        ValueError: a ``direction`` whose structure or shapes differ from
            ``params``; NaN/inf in concrete ``params`` or ``direction``; a
            ``loss_of_outputs`` whose output is not a real scalar. Both
            functions are traced abstractly first (under ``jit`` at trace time,
            where the values, and so NaN, are not checked).
    """
    _checks.params_tree("params", params)
    _checks.tree_like("direction", direction, params)
    _check_functions(outputs_fn, loss_of_outputs, params)
    return _curvature(outputs_fn, loss_of_outputs, params, direction)


def _curvature(
    outputs_fn: Callable[[Any], Any],
    loss_of_outputs: Callable[[Any], jax.Array],
    params: Any,
    direction: Any,
) -> tuple[jax.Array, Any]:
    """:func:`gauss_newton_curvature` without the checks (a NaN direction gives NaN).

    ``pl_adaptive`` calls this one: a NaN gradient there is documented to skip the step.
    """
    outputs, v = jax.jvp(outputs_fn, (params,), (direction,))
    _, qv = jax.jvp(jax.grad(loss_of_outputs), (outputs,), (v,))
    return _real_tree_dot(v, qv), outputs


def pl_adaptive(
    beta: float = 0.99, eps: float = 1e-10, weight_decay: float = 0.0
) -> optax.GradientTransformationExtraArgs:
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
        \Delta\theta = -\hat\eta_k\, (G + \lambda\,\theta),

    with :math:`s_0 = c_0 = 0` (so :math:`\hat\eta_1 = \eta_1`: the running
    average in log space is bias-corrected) and :math:`\lambda` =
    ``weight_decay``. :math:`\eta_k` is the exact line-search step of the local
    Gauss--Newton quadratic along :math:`-G`; on linear least squares with full
    batch it is the exact line-search step of the loss itself. The cost is one
    JVP through the network (and one forward-over-reverse product through the
    loss, cheap in output space) on top of the gradient: about two gradient
    evaluations per step.

    A step whose :math:`\eta_k` is not finite and positive (zero gradient, or
    a negative curvature larger than :math:`\varepsilon G^\top G` from a
    non-convex ``loss_of_outputs``) leaves :math:`s, c` unchanged and applies
    the previous average. A step whose :math:`G^\top G` is not finite (a
    ``nan`` or ``inf`` gradient) returns zero updates: the parameters are left
    unchanged, ``count`` still increments and ``last_eta`` is ``nan``.

    Weight decay: ``weight_decay`` is decoupled, as in ``optax.adamw``
    (Loshchilov & Hutter 2019): the decay :math:`-\hat\eta_k\lambda\theta` uses
    the step size but not the line search, so with the same :math:`\hat\eta`
    the weights shrink by the same factor :math:`1 - \hat\eta\lambda` as with
    ``optax.adamw(learning_rate=eta_hat, weight_decay=lam)``. Do not chain
    ``optax.add_decayed_weights`` *after* this transform: the updates already
    contain :math:`-\hat\eta G`, so ``chain(pl_adaptive(), add_decayed_weights(lam))``
    gives :math:`\theta \leftarrow (1 + \lambda)\theta - \hat\eta G` and the
    weights grow. Chaining it *before* (``chain(add_decayed_weights(lam),
    pl_adaptive())``) is coupled L2 regularisation: :math:`G + \lambda\theta`
    becomes the search direction, and :math:`\eta_k` is the line-search step of
    ``loss_of_outputs`` along it without the curvature :math:`\lambda` of the
    penalty. There is no momentum inside.

    Clipping before this transform (``chain(clip_by_global_norm(c_max),
    pl_adaptive())``): :math:`G = c\,g` with :math:`c = \min(1, c_{\max}/\|g\|)`
    is then not the gradient. :math:`\eta_k` is invariant to the scale of
    :math:`G` (:math:`c^2` cancels), so the applied step :math:`-\eta_k c\, g`
    is :math:`c` times the exact line-search step along :math:`-g`: clipping
    shortens the step instead of only guarding it. On the parabola
    :math:`\|\theta\|^2` from :math:`\theta_0 = (10, 5)` (loss 125, exact step
    to 0) with ``clip_by_global_norm(1)`` one step lands at loss
    :math:`125\,(1 - 1/(2\sqrt{125}))^2 = 114.07`.

    Complex parameters: pass the conjugated gradient ``jnp.conj(jax.grad(L))``
    as ``updates`` (the optax convention; :math:`-\bar g` is the steepest
    descent direction). :math:`G^\top G = \sum |G|^2` and the curvature is
    :math:`\operatorname{Re}\sum v \cdot Qv` (see :func:`gauss_newton_curvature`).

    Args:
        beta: discount of the log-space running average, in ``[0, 1)``; ``0``
            applies the raw line-search step every time.
        eps: damping :math:`\varepsilon`; it caps :math:`\eta_k \le 1/\varepsilon`.
        weight_decay: decoupled weight decay :math:`\lambda \ge 0` (finite).

    Returns:
        An ``optax.GradientTransformationExtraArgs`` whose
        ``update(updates, state, params, *, outputs_fn, loss_of_outputs, **extra)``
        takes ``outputs_fn(params) -> outputs`` on the current batch and
        ``loss_of_outputs(outputs) -> scalar`` (the same loss the gradient came
        from); other extra keyword arguments are ignored. The updates already
        include the step (no ``scale_by_learning_rate`` needed).

    Raises:
        ValueError: if ``beta`` is not in ``[0, 1)``, or ``eps`` or ``weight_decay``
            is negative or not finite.
        TypeError: (from ``update``) a missing or non-callable ``outputs_fn`` /
            ``loss_of_outputs``, or ``params`` None; a ``loss_of_outputs`` whose
            output is not a real scalar is a ValueError. Both are traced
            abstractly (under ``jit`` once, at trace time).

    Examples:
        >>> import jax, jax.numpy as jnp, optax
        >>> from wideth.optim import pl_adaptive
        >>> x, y = jnp.eye(3), jnp.ones(3)
        >>> f = lambda w: x @ w
        >>> loss = lambda out: 0.5 * jnp.mean((out - y) ** 2)
        >>> w = jnp.zeros(3)
        >>> tx = pl_adaptive()
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
        Loshchilov & Hutter, `Decoupled weight decay regularization
        <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
    """
    beta = _checks.scalar("beta", beta, 0.0, 1.0, high_open=True)
    eps = _checks.scalar("eps", eps, 0.0)
    weight_decay = _checks.scalar("weight_decay", weight_decay, 0.0)

    def init_fn(params: Any) -> PLAdaptiveState:
        return _averaged.init_state(PLAdaptiveState, params)

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
        _check_extra_args(outputs_fn, loss_of_outputs, params)
        dtype = state.log_sum.dtype
        vqv, _ = _curvature(outputs_fn, loss_of_outputs, params, updates)
        gg = optax.tree.norm(updates, squared=True)
        vqv, gg = vqv.astype(dtype), gg.astype(dtype)
        e = jnp.asarray(eps, dtype)
        denom = vqv + e * gg
        ok = (gg > 0) & (denom > 0) & jnp.isfinite(denom)
        eta = jnp.where(ok, gg / jnp.where(ok, denom, 1), 1)
        ok = ok & jnp.isfinite(eta) & (eta > 0)
        new_state = _averaged.advance(state, eta, ok, beta, log_space=True)
        new_updates = _averaged.decoupled_step(
            updates, params, new_state.eta_hat, weight_decay, jnp.isfinite(gg)
        )
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _check_extra_args(outputs_fn: Any, loss_of_outputs: Any, params: Any) -> None:
    """The extra arguments of ``pl_adaptive``'s update: callables, and a scalar loss.

    Both functions are traced abstractly (no compute; under ``jit`` at trace time only).
    """
    for name, value in (
        ("outputs_fn", outputs_fn),
        ("loss_of_outputs", loss_of_outputs),
        ("params", params),
    ):
        if value is None:
            raise TypeError(f"{name}: missing; {_MISSING_ARGS}")
    _check_functions(outputs_fn, loss_of_outputs, params)


def _check_functions(outputs_fn: Any, loss_of_outputs: Any, params: Any) -> None:
    """Two callables, ``outputs_fn(params)`` traceable and ``loss_of_outputs`` of it a real scalar.

    Traced abstractly (``jax.eval_shape``): no compute.
    """
    _checks.callable_("outputs_fn", outputs_fn, "a callable outputs_fn(params) -> outputs")
    _checks.callable_("loss_of_outputs", loss_of_outputs, "a callable loss_of_outputs(outputs)")
    out = _checks.evaluate_shape("outputs_fn", outputs_fn, params, what="outputs_fn(params)")
    _checks.scalar_output(
        "loss_of_outputs", loss_of_outputs, out, what="loss_of_outputs(outputs_fn(params))"
    )


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
        ValueError: if ``state`` contains no ``PLAdaptiveState`` (the message
            starts with ``state:``).
    """
    return _averaged.info(state, PLAdaptiveState, "pl_adaptive")
