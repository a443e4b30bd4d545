r"""Linearised and Taylor-expanded networks, and Monte Carlo kernels of finite networks.

* :func:`linearize`: the first-order model around :math:`\theta_0`,

  .. math:: f^{\rm lin}_\theta(x) = f_{\theta_0}(x) + J_{\theta_0}(x)\,(\theta - \theta_0),

  which gradient descent trains exactly as the infinite-width theory predicts
  (Lee et al. 2019, Eq. 6); the Jacobian-vector product is taken with
  ``jax.jvp``, never forming :math:`J`.
* :func:`taylor_expand`: the degree-:math:`d` Taylor polynomial
  :math:`\sum_{j \le d} \frac{1}{j!} D^j f_{\theta_0}[\theta - \theta_0]^{\otimes j}`,
  from nested forward-mode derivatives along the line
  :math:`\theta_0 + s(\theta - \theta_0)`.
* :func:`monte_carlo_kernel_fn`: the NNGP and NTK of a finite architecture
  averaged over ``n_samples`` random initialisations,
  :math:`\hat K = \frac1S\sum_s K_{\theta_s}`, an unbiased estimate of
  :math:`E_\theta K_\theta` (the infinite-width kernel as the width grows).

These are neural-tangents' ``nt.linearize``, ``nt.taylor_expand`` and
``nt.monte_carlo_kernel_fn``, on current JAX and accepting Flax NNX modules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from wideth import _checks
from wideth.functional import as_apply, functional

__all__ = ["linearize", "taylor_expand", "monte_carlo_kernel_fn"]


def _expansion_point(apply_fn: Any, params: Any) -> tuple[Callable[..., Any], Any]:
    """``as_apply`` plus a finite floating expansion point (NaN there is NaN everywhere)."""
    fn, params0 = as_apply(apply_fn, params)
    _checks.params_tree("params", params0)
    return fn, params0


def _check_call(fn: Callable[..., Any], params0: Any, params: Any, x: Any, args, kwargs) -> None:
    """Shapes of ``params`` like the expansion point, finite ``x``, and ``fn`` evaluable on it
    (abstractly: a wrong feature dimension is one error naming ``apply_fn``, not a jvp trace)."""
    _checks.tree_like("params", params, params0, "the expansion point")
    _checks.arrays_tree("x", x)
    _checks.evaluate_shape(
        "apply_fn",
        lambda p, xx: fn(p, xx, *args, **kwargs),
        params0,
        x,
        what="apply_fn(params, x)",
    )


def linearize(apply_fn: Any, params: Any = None) -> Callable[..., Any]:
    r"""First-order Taylor model of ``apply_fn`` around ``params``.

    .. math::

        f^{\rm lin}(\theta, x) = f(\theta_0, x)
            + \partial_\theta f(\theta_0, x)\,(\theta - \theta_0)

    (Lee et al., `Wide Neural Networks of Any Depth Evolve as Linear Models
    Under Gradient Descent <https://arxiv.org/abs/1902.06720>`_, 2019, Eq. 6).

    Args:
      apply_fn: ``apply_fn(params, x, *args, **kwargs)`` or an ``nnx.Module``
        (then ``params`` is ``None`` and the module's ``nnx.Param`` state is
        :math:`\theta_0`).
      params: :math:`\theta_0`.

    Returns:
      ``f_lin(params, x, *args, **kwargs)``, pure and jittable; ``params``
      has the structure of :math:`\theta_0` (for a module: its ``nnx.Param``
      state, e.g. from :func:`wideth.functional.functional`).

    Raises:
      TypeError: ``apply_fn`` neither a callable nor a module; ``params``
        missing or given with a module; ``apply_fn`` failing on ``x`` (e.g. a
        wrong feature dimension, checked abstractly on each call).
      ValueError: NaN/inf in :math:`\theta_0` or in a concrete ``x``; ``params``
        of ``f_lin`` not shaped like :math:`\theta_0`.
    """
    fn, params0 = _expansion_point(apply_fn, params)

    def f_lin(params: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        _check_call(fn, params0, params, x, args, kwargs)
        f0, df = jax.jvp(
            lambda p: fn(p, x, *args, **kwargs), (params0,), (optax.tree.sub(params, params0),)
        )
        return optax.tree.add(f0, df)

    return f_lin


def _line_derivatives(g: Callable[[jax.Array], Any], degree: int) -> tuple[Any, ...]:
    """``(g(0), g'(0), ..., g^(degree)(0))`` of ``g: R -> pytree`` by nested ``jax.jvp``."""

    def upto(j: int) -> Callable[[jax.Array], tuple[Any, ...]]:
        if j == 0:
            return lambda s: (g(s),)
        lower = upto(j - 1)

        def h(s):
            primal, tangent = jax.jvp(lower, (s,), (jnp.ones_like(s),))
            return (*primal, tangent[-1])

        return h

    return upto(degree)(jnp.zeros(()))


def taylor_expand(apply_fn: Any, params: Any = None, degree: int = 1) -> Callable[..., Any]:
    r"""Degree-``degree`` Taylor polynomial of ``apply_fn`` in the parameters.

    .. math::

        f^{(d)}(\theta, x) = \sum_{j=0}^{d} \frac{1}{j!}\,
            \frac{d^j}{ds^j} f(\theta_0 + s(\theta - \theta_0), x)\Big|_{s=0}

    The directional derivatives along the line come from nested forward-mode
    products (``jax.jvp`` of ``jax.jvp``; :math:`2^d` primal-cost passes, so
    meant for small :math:`d`), never a Hessian or higher tensor.
    ``degree=1`` is :func:`linearize`; ``degree=0`` is the constant
    :math:`f(\theta_0, x)`.

    Args:
      apply_fn: ``apply_fn(params, x, *args, **kwargs)`` or an ``nnx.Module``.
      params: the expansion point :math:`\theta_0` (``None`` for a module).
      degree: :math:`d \ge 0`.

    Returns:
      ``f_taylor(params, x, *args, **kwargs)``, pure and jittable.

    Raises:
      TypeError / ValueError: as :func:`linearize`; ``degree`` not an integer ``>= 0``.
    """
    degree = _checks.nonnegative_int("degree", degree)
    fn, params0 = _expansion_point(apply_fn, params)

    def f_taylor(params: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        _check_call(fn, params0, params, x, args, kwargs)
        delta = optax.tree.sub(params, params0)
        dtype = jnp.result_type(*jax.tree.leaves(params0))

        def along(s):
            point = optax.tree.add_scale(params0, s.astype(dtype), delta)
            return fn(point, x, *args, **kwargs)

        terms = _line_derivatives(along, degree)
        out = terms[0]
        for j, term in enumerate(terms[1:], start=1):
            out = jax.tree.map(lambda a, b, c=math.factorial(j): a + b / c, out, term)
        return out

    return f_taylor


def monte_carlo_kernel_fn(
    init_fn: Callable[[jax.Array], Any],
    apply_fn: Any,
    key: jax.Array,
    n_samples: int,
    *,
    method: str = "auto",
) -> Callable[..., Any]:
    r"""NNGP and NTK of a finite architecture, averaged over random initialisations.

    .. math::

        \hat K(x, x') = \frac{1}{S} \sum_{s=1}^{S} K_{\theta_s}(x, x'), \qquad
        \theta_s = \texttt{init\_fn}(k_s),

    with :math:`K_\theta` the empirical NNGP (:func:`wideth.kernels.empirical.nngp`,
    the output inner product per output) and NTK
    (:func:`wideth.kernels.empirical.ntk`), :math:`k_s` the ``n_samples``
    keys split from ``key``. Its standard error is the sample standard
    deviation over :math:`s` divided by :math:`\sqrt S`; ``get`` with
    ``return_samples=True`` gives the per-sample kernels to compute it. The
    samples run under ``jax.lax.map`` (one network in memory at a time).

    Args:
      init_fn: ``init_fn(key) -> params`` for a function ``apply_fn``, or
        ``init_fn(key) -> nnx.Module`` with ``apply_fn=None`` (e.g.
        ``lambda k: MLP(3, 512, 1, rngs=nnx.Rngs(k))``).
      apply_fn: ``apply_fn(params, x)``, or ``None`` when ``init_fn`` builds modules.
      key: PRNG key.
      n_samples: :math:`S \ge 1`.
      method: empirical NTK method (:data:`wideth.kernels.empirical.METHODS`).

    Returns:
      ``kernel_fn(x1, x2=None, get=("nngp", "ntk"), return_samples=False)``
      returning one ``(n1, n2)`` array per name in ``get`` (a tuple when
      ``get`` is a tuple), or the ``(S, n1, n2)`` per-sample kernels with
      ``return_samples=True``.

    Raises:
      TypeError / ValueError: a non-callable ``init_fn``, a bad ``key``,
        ``n_samples < 1``, an ``apply_fn`` given with module-building
        ``init_fn`` (or missing without), bad ``get``.
    """
    from wideth.kernels import empirical

    _checks.callable_("init_fn", init_fn, "a function init_fn(key) -> params or nnx.Module")
    key = _checks.prng_key("key", key)
    n_samples = _checks.positive_int("n_samples", n_samples)
    if method not in empirical.METHODS:
        raise ValueError(f"method: expected one of {empirical.METHODS}, got {method!r}")
    if apply_fn is None:
        module = nnx.eval_shape(lambda: init_fn(key))
        if not isinstance(module, nnx.Module):
            raise TypeError(
                "apply_fn: required unless init_fn returns an nnx.Module, got None and an "
                f"init_fn returning {type(module).__name__}"
            )
        fn, _ = functional(module)

        def init(k):
            return nnx.state(init_fn(k), nnx.Param)

    else:
        _checks.callable_("apply_fn", apply_fn, "a function apply_fn(params, x)")
        fn, init = apply_fn, init_fn
    keys = jax.random.split(key, n_samples)

    def kernel_fn(x1, x2=None, get=("nngp", "ntk"), return_samples=False):
        get = _checks.choices("get", get, ("nngp", "ntk"))
        names = (get,) if isinstance(get, str) else get
        return_samples = _checks.boolean("return_samples", return_samples)
        x1 = _checks.array("x1", x1, min_ndim=2, kind="real")
        if x2 is not None:
            x2 = _checks.array("x2", x2, min_ndim=2, kind="real")
            if x2.shape[1:] != x1.shape[1:]:
                raise ValueError(
                    f"x2: expected the feature shape of x1 {tuple(x1.shape[1:])}, got "
                    f"{_checks.shape_str(x2)}"
                )

        def one(k):
            p = init(k)
            out = []
            for g in names:
                if g == "nngp":
                    out.append(empirical.nngp(fn, p, x1, x2))
                else:
                    out.append(empirical.ntk(fn, p, x1, x2, method=method))
            return tuple(out)

        samples = jax.lax.map(one, keys)
        result = samples if return_samples else tuple(s.mean(0) for s in samples)
        return result[0] if isinstance(get, str) else result

    return kernel_fn
