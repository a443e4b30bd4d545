r"""The outer-product ("GN") step-size baseline of ADLER.

ADLER (:func:`~wideth.optim.pl_adaptive`) takes the exact line-search step of
the local quadratic model whose curvature is the Gauss--Newton matrix
:math:`J^\top Q J`. The baseline "GN" of the thesis replaces that curvature by
the outer product of the gradient, :math:`g g^\top`, which needs no JVP and no
access to the network outputs:

.. math::

    L(\theta - \eta G) \approx L(\theta) - \eta\, g^\top G
        + \tfrac{\eta^2}{2}\, G^\top g g^\top G
    \quad\Longrightarrow\quad
    \eta = \frac{g^\top G}{(g^\top G)^2 + \varepsilon\, G^\top G}
    \;\overset{G = g}{=}\; \frac{1}{G^\top G + \varepsilon},

with the same damping :math:`\varepsilon G^\top G` as ADLER. The steps are
averaged linearly (not in log space as ADLER does).

References:
    Balboni, PhD thesis, §7.8 (baseline "GN": learning rate from the outer
    product of the gradient).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from wideth import _checks

from . import _averaged

__all__ = ["OuterProductState", "outer_product_adaptive", "outer_product_adaptive_info"]


class OuterProductState(NamedTuple):
    """State of :func:`outer_product_adaptive`.

    Attributes:
        count: number of ``update`` calls, int32 scalar.
        eta_sum: discounted sum :math:`s = \\sum_j \\beta^{k-j} \\eta_j` over valid steps.
        weight: discounted count :math:`c = \\sum_j \\beta^{k-j}` over valid steps.
        last_eta: the last raw step :math:`\\eta_k` (``nan`` if it was invalid).
        eta_hat: the step size applied at the last update, :math:`s / c`.
    """

    count: jax.Array
    eta_sum: jax.Array
    weight: jax.Array
    last_eta: jax.Array
    eta_hat: jax.Array


def outer_product_adaptive(
    beta: float = 0.99, eps: float = 1e-10
) -> optax.GradientTransformationExtraArgs:
    r"""Step size from the outer-product curvature :math:`g g^\top`, averaged linearly.

    With :math:`G` the incoming updates (the minibatch gradient), each step computes

    .. math::

        \eta_k = \frac{1}{G^\top G + \varepsilon}, \qquad
        s_k = \beta s_{k-1} + \eta_k, \qquad c_k = \beta c_{k-1} + 1, \qquad
        \hat\eta_k = s_k / c_k, \qquad \Delta\theta = -\hat\eta_k\, G,

    with :math:`s_0 = c_0 = 0` (bias correction: :math:`\hat\eta_1 = \eta_1`).
    :math:`\eta_k` is the exact line-search step along :math:`-G` of the local
    quadratic model with curvature :math:`g g^\top` (module docstring). Unlike
    ADLER's Gauss--Newton model it is not invariant to the scale of the loss:
    for a single residual, :math:`L = \frac12 r^2`, the Gauss--Newton step is
    :math:`2L / G^\top G`, so the two agree only where :math:`L = \frac12`.
    It is a baseline, not a convergent method: as the loss falls :math:`\eta_k`
    grows like :math:`1/L`, the average follows and the iterates overshoot. On
    :math:`\sum_i (w_i - t_i)^2`, :math:`t = (1, -2, 3)`, from :math:`w = 0`
    (loss 14, float32) the loss is 5.7 after 10 steps, 360 after 30 and
    :math:`10^{20}` after 60 (tests/test_optimizers_common.py).

    A zero gradient (:math:`G^\top G = 0`) leaves :math:`s, c` unchanged and
    applies the previous average (zero updates); a non-finite :math:`G^\top G`
    returns zero updates (parameters unchanged), ``count`` still increments
    and ``last_eta`` is ``nan``. Complex leaves: :math:`G^\top G = \sum |G|^2`.

    Args:
        beta: discount of the linear running average, in ``[0, 1)``; ``0``
            applies the raw step every time.
        eps: damping :math:`\varepsilon \ge 0`; it caps :math:`\eta_k \le 1/\varepsilon`.

    Returns:
        An ``optax.GradientTransformationExtraArgs``; ``update(updates, state,
        params=None, **extra)`` needs no extra arguments and ignores any
        (``outputs_fn``, ``loss_of_outputs``, ``value``, ...). The updates include
        the step.

    Raises:
        ValueError: if ``beta`` is not in ``[0, 1)`` or ``eps`` is negative or
            not finite.

    Examples:
        >>> import jax.numpy as jnp
        >>> from wideth.optim import outer_product_adaptive
        >>> tx = outer_product_adaptive(eps=0.0)
        >>> g = jnp.array([3.0, 4.0])  # G'G = 25
        >>> u, state = tx.update(g, tx.init(g))
        >>> print(u)
        [-0.12 -0.16]

    References:
        Balboni, PhD thesis, §7.8 (baseline "GN").
    """
    beta = _checks.scalar("beta", beta, 0.0, 1.0, high_open=True)
    eps = _checks.scalar("eps", eps, 0.0)

    def init_fn(params: Any) -> OuterProductState:
        return _averaged.init_state(OuterProductState, params)

    def update_fn(
        updates: Any, state: OuterProductState, params: Any = None, **extra_args: Any
    ) -> tuple[Any, OuterProductState]:
        del params, extra_args
        dtype = state.eta_sum.dtype
        gg = jnp.asarray(optax.tree.norm(updates, squared=True)).astype(dtype)
        finite = jnp.isfinite(gg)
        ok = finite & (gg > 0)
        eta = 1 / (jnp.where(ok, gg, 1) + jnp.asarray(eps, dtype))
        ok = ok & jnp.isfinite(eta)
        new_state = _averaged.advance(state, eta, ok, beta, log_space=False)
        return _averaged.decoupled_step(updates, None, new_state.eta_hat, 0.0, finite), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def outer_product_adaptive_info(state: Any) -> dict[str, jax.Array]:
    """Current step size and last raw step of an :func:`outer_product_adaptive` state.

    Finds the :class:`OuterProductState` anywhere inside an optimizer state
    tree (``optax.chain``, ``optax.inject_hyperparams``, ``nnx.Optimizer``).

    Args:
        state: an optimizer state containing an ``OuterProductState`` (the
            first one found is used).

    Returns:
        A dict with ``"eta_hat"``, ``"last_eta"`` (nan if that step was
        skipped), ``"count"`` and ``"weight"``, as scalar arrays (batched if the
        state was ``vmap``-ed).

    Raises:
        ValueError: if ``state`` contains no ``OuterProductState``.
    """
    return _averaged.info(state, OuterProductState, "outer_product_adaptive")
