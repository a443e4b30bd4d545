r"""The Gaussian quadrature of :mod:`wideth.kernels`: a trapezoidal rule with Gaussian weights.

For :math:`z \sim \mathcal N(0, 1)` on the uniform grid :math:`z_i = h\,(i - (N-1)/2)`,
:math:`i = 0..N-1`, with normalised weights :math:`w_i \propto e^{-z_i^2/2}`,

.. math::

    E[f(\sqrt q\, z)] \approx \sum_i w_i f(\sqrt q\, z_i),\qquad
    E[f(u) g(v)] \approx \sum_{ij} w_i w_j f(s_1 z_i)\, g(r z_i + s_2 z_j)

for :math:`(u, v) \sim \mathcal N(0, [[q_1, c], [c, q_2]])` in Cholesky form
:math:`s_1 = \sqrt{q_1}`, :math:`r = c / s_1`, :math:`s_2 = \sqrt{q_2 - r^2}`.
For integrands analytic in a strip the rule converges exponentially in
:math:`1/h` (Trefethen & Weideman 2014). The callers choose the spacing:
mean-field theory a fixed range :math:`h = 2 z_{\max}/(N-1)`, the analytic
kernels a spacing that balances discretisation and truncation error per entry.
Both NumPy (``xp=np``, float64 error estimates) and JAX arrays are accepted.

References:
  Trefethen & Weideman, `The exponentially convergent trapezoidal rule
  <https://doi.org/10.1137/130932132>`_, SIAM Review 56, 2014.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

__all__ = ["nodes", "expect", "cholesky", "expect_pair"]


def nodes(num: int, spacing: Any, dtype: Any, xp: Any = jnp) -> tuple[Any, Any]:
    """Grid points ``z`` (``num``, centred at 0, spacing ``spacing``) and normalised weights."""
    z = spacing * (xp.arange(num, dtype=dtype) - (num - 1) / 2)
    w = xp.exp(-0.5 * z**2)
    return z, w / xp.sum(w)


def expect(f: Callable[[Any], Any], var: Any, z: Any, w: Any, xp: Any = jnp) -> Any:
    r""":math:`E[f(\sqrt{q} z)]` on the grid ``(z, w)``."""
    return xp.sum(w * f(xp.sqrt(var) * z))


def cholesky(cov12: Any, var1: Any, var2: Any, xp: Any = jnp) -> tuple[Any, Any, Any]:
    r"""Factors :math:`(s_1, r, s_2)` of :math:`[[q_1, c], [c, q_2]]`, :math:`s_2` clipped at 0."""
    s1 = xp.sqrt(var1)
    r = cov12 / xp.where(s1 > 0, s1, 1.0)
    return s1, r, xp.sqrt(xp.maximum(var2 - r**2, 0.0))


def expect_pair(
    f: Callable[[Any], Any],
    g: Callable[[Any], Any],
    factors: tuple[Any, Any, Any],
    z: Any,
    w: Any,
) -> Any:
    r""":math:`E[f(u) g(v)]` with :math:`u = s_1 z_1`, :math:`v = r z_1 + s_2 z_2` on ``(z, w)``."""
    s1, r, s2 = factors
    return (w * f(s1 * z)) @ (g(r * z[:, None] + s2 * z[None, :]) @ w)
