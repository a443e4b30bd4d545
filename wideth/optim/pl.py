r"""The PL constant and the conservative PL step rule.

A loss :math:`f` satisfies the Polyak--Łojasiewicz condition with constant
:math:`\mu > 0` on a set :math:`S` if

.. math::

    \tfrac12 \|\nabla f(\theta)\|^2 \ge \mu\,\big(f(\theta) - f^\star\big)
    \quad \text{for all } \theta \in S,

and then gradient descent with step :math:`\eta \le 1/L` converges linearly,
:math:`f_{t} - f^\star \le (1 - \eta\mu)^t (f_0 - f^\star)`. For a network with
outputs :math:`F(\theta)` and a loss :math:`\ell(F)`, :math:`\nabla f = J^\top
\nabla\ell` and :math:`\mu` is bounded below by :math:`\lambda_{\min}(K)` times
the PL constant of :math:`\ell` in output space, :math:`K = J J^\top` the NTK
on the batch (Liu, Zhu & Belkin 2022).

References:
    Polyak, `Gradient methods for minimizing functionals`, 1963.
    Łojasiewicz, `A topological property of real analytic subsets`, 1963.
    Liu, Zhu & Belkin, `Loss landscapes and optimization in over-parameterized
    non-linear systems and neural networks <https://arxiv.org/abs/2003.00307>`_, 2022.
    Balboni, PhD thesis (PL-adaptive step sizes, conservative step rule).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from wideth import _checks

__all__ = [
    "PLConstantState",
    "pl_constant",
    "pl_constant_init",
    "pl_constant_update",
    "conservative_step",
    "ntk_lambda_max",
    "loss_hessian_norm",
    "conservative_step_on_batch",
]


def pl_constant(
    loss_value: jax.Array | float,
    grad_norm_sq: jax.Array | float,
    loss_star: jax.Array | float = 0.0,
) -> jax.Array:
    r"""Pointwise PL ratio :math:`\mu(\theta) = \|\nabla f\|^2 / (2 (f - f^\star))`.

    .. math::

        \mu(\theta) = \frac{\|\nabla f(\theta)\|^2}{2\,(f(\theta) - f^\star)}.

    The PL constant on a set is the infimum of this ratio over the set; along a
    training trajectory :func:`pl_constant_update` keeps its running minimum.

    Args:
        loss_value: :math:`f(\theta)`, scalar (or any shape, broadcast).
        grad_norm_sq: :math:`\|\nabla f(\theta)\|^2`, same shape.
        loss_star: the minimum value :math:`f^\star` (0 for interpolating
            over-parameterised models).

    Returns:
        The ratio; ``nan`` where :math:`f - f^\star \le 0` (at a minimiser the
        ratio is undefined).

    References:
        Polyak, 1963; Łojasiewicz, 1963; Liu, Zhu & Belkin, 2022.
    """
    f = _checks.array("loss_value", loss_value, kind="real")
    g = _checks.array("grad_norm_sq", grad_norm_sq, kind="real")
    star = _checks.array("loss_star", loss_star, kind="real")
    _checks.in_range("grad_norm_sq", g, 0.0)
    try:
        jnp.broadcast_shapes(f.shape, g.shape, star.shape)
    except ValueError:
        raise ValueError(
            f"grad_norm_sq: expected a shape that broadcasts with loss_value {f.shape} and "
            f"loss_star {star.shape}, got {g.shape}"
        ) from None
    gap = f - star
    ok = gap > 0
    return jnp.where(ok, g / (2 * jnp.where(ok, gap, 1)), jnp.nan)


class PLConstantState(NamedTuple):
    """Running estimate of the PL constant along a trajectory.

    Attributes:
        count: number of valid ratios seen (int32).
        minimum: running minimum of the ratio (the PL constant on the visited
            set; ``inf`` before the first valid ratio).
        log_sum: discounted sum of log ratios.
        weight: discounted count (bias correction).
        last: last ratio (``nan`` if invalid).
    """

    count: jax.Array
    minimum: jax.Array
    log_sum: jax.Array
    weight: jax.Array
    last: jax.Array

    @property
    def mean(self) -> jax.Array:
        """Bias-corrected geometric running mean :math:`\\exp(s/c)` (nan before any ratio)."""
        w = self.weight
        return jnp.where(w > 0, jnp.exp(self.log_sum / jnp.where(w > 0, w, 1)), jnp.nan)


def pl_constant_init(dtype: Any = jnp.float32) -> PLConstantState:
    r"""Empty :class:`PLConstantState` in ``dtype`` (``float32`` or ``float64``).

    Its ``minimum`` starts at :math:`+\infty` and ``last`` at NaN: no ratio yet.
    """
    dtype = _checks.float_dtype("dtype", dtype)
    z = jnp.zeros([], dtype)
    return PLConstantState(
        jnp.zeros([], jnp.int32), jnp.full([], jnp.inf, dtype), z, z, jnp.full([], jnp.nan, dtype)
    )


def pl_constant_update(
    state: PLConstantState,
    loss_value: jax.Array | float,
    grad_norm_sq: jax.Array | float,
    loss_star: jax.Array | float = 0.0,
    decay: jax.Array | float = 0.99,
) -> PLConstantState:
    r"""Fold one PL ratio into a running estimate (jittable, scan-friendly).

    .. math::

        \mu_{\min} \leftarrow \min(\mu_{\min}, \mu_k), \qquad
        s \leftarrow \gamma s + \log\mu_k, \quad c \leftarrow \gamma c + 1, \quad
        \bar\mu = \exp(s / c),

    with :math:`\mu_k` = :func:`pl_constant` and :math:`\gamma` = ``decay``.
    Invalid ratios (:math:`f \le f^\star` or zero gradient) are skipped.

    Args:
        state: from :func:`pl_constant_init` or a previous call.
        loss_value: :math:`f(\theta_k)`.
        grad_norm_sq: :math:`\|\nabla f(\theta_k)\|^2`.
        loss_star: :math:`f^\star`.
        decay: discount :math:`\gamma \in [0, 1]` of the geometric running mean.

    Returns:
        The new state; ``state.minimum`` is the PL constant on the visited
        points, ``state.mean`` the smoothed current value.
    """
    if not isinstance(state, PLConstantState):
        raise TypeError(
            f"state: expected a PLConstantState (from pl_constant_init), got {type(state).__name__}"
        )
    decay = _checks.scalar("decay", decay, 0.0, 1.0)
    dtype = state.minimum.dtype
    mu = pl_constant(loss_value, grad_norm_sq, loss_star).astype(dtype)
    ok = jnp.isfinite(mu) & (mu > 0)
    d = jnp.asarray(decay, dtype)
    return PLConstantState(
        count=state.count + ok.astype(jnp.int32),
        minimum=jnp.where(ok, jnp.minimum(state.minimum, mu), state.minimum),
        log_sum=jnp.where(ok, d * state.log_sum + jnp.log(jnp.where(ok, mu, 1)), state.log_sum),
        weight=jnp.where(ok, d * state.weight + 1, state.weight),
        last=jnp.where(ok, mu, jnp.nan).astype(dtype),
    )


def conservative_step(
    ntk_lambda_max: jax.Array | float, loss_hessian_norm: jax.Array | float
) -> jax.Array:
    r"""Conservative PL step :math:`\eta = 1 / (2\,\lambda_{\max}(K)\,\|\nabla^2\ell\|)`.

    .. math::

        \eta = \frac{1}{2\,\lambda_{\max}(K)\,\|\nabla^2_{\mathrm{out}}\ell\|},
        \qquad K = J J^\top \text{ (NTK on the batch)}.

    Since :math:`\lambda_{\max}(J^\top Q J) \le \lambda_{\max}(K)\,\|Q\|`, this
    is half the Gauss--Newton stability limit :math:`1/L`: it keeps gradient
    descent in the linearly convergent PL regime with margin for the
    second-order term of the network map. For the mean squared error
    :math:`\ell = \frac{1}{2n}\sum_i \|F_i - y_i\|^2` one has
    :math:`\|\nabla^2\ell\| = 1/n`; for mean cross-entropy
    :math:`\|\nabla^2\ell\| \le 1/(2n)`.

    Args:
        ntk_lambda_max: :math:`\lambda_{\max}(K)`, e.g. from :func:`ntk_lambda_max`.
        loss_hessian_norm: spectral norm of the Hessian of the loss in output
            space, e.g. from :func:`loss_hessian_norm`.

    Returns:
        The step size (``inf`` if the product is not positive).

    References:
        Balboni, PhD thesis (conservative step rule);
        Liu, Zhu & Belkin, 2022.
    """
    lam = _checks.in_range("ntk_lambda_max", _nonneg("ntk_lambda_max", ntk_lambda_max), 0.0)
    q = _checks.in_range("loss_hessian_norm", _nonneg("loss_hessian_norm", loss_hessian_norm), 0.0)
    p = jnp.asarray(lam) * jnp.asarray(q)
    return jnp.where(p > 0, 1.0 / (2.0 * jnp.where(p > 0, p, 1)), jnp.inf)


def _nonneg(name: str, value: Any) -> Any:
    """A real array-like (``None``, strings and objects are type errors)."""
    return _checks.array(name, value, kind="real", check_finite=False)


def ntk_lambda_max(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    x: jax.Array,
    *,
    key: jax.Array,
    num_steps: int = 20,
) -> jax.Array:
    r"""Top eigenvalue of the empirical NTK :math:`K = J J^\top` on a batch.

    :func:`wideth.hessian.sharpness` of the operator :func:`wideth.hessian.ntk`
    (one VJP and one JVP per Lanczos step); :math:`K` (size
    :math:`nk \times nk` for ``k`` outputs) is never formed.

    Args:
        apply_fn: ``apply_fn(params, x) -> (n, k)`` outputs, or an ``nnx.Module``
            (then ``params`` is ``None``).
        params: parameter pytree.
        x: batch of inputs, ``(n, ...)``.
        key: PRNG key for the Lanczos start vector.
        num_steps: Lanczos steps (at most :math:`nk`).

    Returns:
        :math:`\lambda_{\max}(K)`, scalar.
    """
    from wideth import hessian

    key = _checks.prng_key("key", key)
    num_steps = _checks.positive_int("num_steps", num_steps)
    return hessian.sharpness(hessian.ntk(apply_fn, params, x), num_steps=num_steps, key=key)


def loss_hessian_norm(
    loss_of_outputs: Callable[[jax.Array], jax.Array],
    outputs: jax.Array,
    *,
    key: jax.Array,
    num_steps: int = 20,
) -> jax.Array:
    r"""Spectral norm of :math:`Q = \nabla^2_{\mathrm{out}}\ell` at ``outputs``.

    Lanczos on the output-space product :math:`v \mapsto Q v` (a jvp of
    ``grad(loss_of_outputs)``). For a convex loss :math:`Q \succeq 0` and the
    norm is the top eigenvalue.

    Args:
        loss_of_outputs: ``outputs -> scalar``.
        outputs: the network outputs on the batch, ``(n, k)``.
        key: PRNG key for the start vector.
        num_steps: Lanczos steps (at most ``outputs.size``).

    Returns:
        :math:`\|Q\|_2`, scalar.
    """
    from wideth import hessian

    key = _checks.prng_key("key", key)
    num_steps = _checks.positive_int("num_steps", num_steps)
    _checks.callable_("loss_of_outputs", loss_of_outputs, "a callable loss_of_outputs(outputs)")
    outputs = _checks.array("outputs", outputs, kind="number")
    _checks.scalar_output(
        "loss_of_outputs", loss_of_outputs, outputs, what="loss_of_outputs(outputs)"
    )
    grad = jax.grad(loss_of_outputs)
    op = hessian.from_matvec(lambda v, out: jax.jvp(grad, (out,), (v,))[1], outputs, outputs)
    return hessian.sharpness(op, num_steps=num_steps, key=key)


def conservative_step_on_batch(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    x: jax.Array,
    loss_of_outputs: Callable[[jax.Array], jax.Array],
    *,
    key: jax.Array,
    num_steps: int = 20,
) -> jax.Array:
    r""":func:`conservative_step` with both norms measured on a batch.

    .. math::

        \eta = \frac{1}{2\,\lambda_{\max}(K(x))\,\|\nabla^2\ell(F(x))\|}.

    Args:
        apply_fn: ``apply_fn(params, x) -> (n, k)``.
        params: parameter pytree.
        x: batch of inputs.
        loss_of_outputs: ``outputs -> scalar`` loss on this batch.
        key: PRNG key.
        num_steps: Lanczos steps for each of the two norms.

    Returns:
        The step size, scalar.
    """
    key = _checks.prng_key("key", key)
    _checks.callable_("apply_fn", apply_fn, "a callable apply_fn(params, x)")
    _checks.callable_("loss_of_outputs", loss_of_outputs, "a callable loss_of_outputs(outputs)")
    out = _checks.evaluate_shape("apply_fn", apply_fn, params, x, what="apply_fn(params, x)")
    _checks.scalar_output(  # before any Lanczos step
        "loss_of_outputs", loss_of_outputs, out, what="loss_of_outputs(apply_fn(params, x))"
    )
    k1, k2 = jax.random.split(key)
    lam = ntk_lambda_max(apply_fn, params, x, key=k1, num_steps=num_steps)
    q = loss_hessian_norm(loss_of_outputs, apply_fn(params, x), key=k2, num_steps=num_steps)
    return conservative_step(lam, q)
