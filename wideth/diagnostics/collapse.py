r"""Neural collapse metrics NC1--NC4 of last-layer features (Papyan, Han & Donoho 2020).

For features :math:`h_i\in\mathbb R^d` of examples with classes
:math:`y_i\in\{1..C\}`: global mean :math:`\mu_G = \frac1N\sum_i h_i`, class
means :math:`\mu_c`, centred means :math:`m_c = \mu_c - \mu_G` (rows of
:math:`M\in\mathbb R^{C\times d}`), and

.. math::

    \Sigma_W = \frac1N\sum_i (h_i - \mu_{y_i})(h_i - \mu_{y_i})^\top, \qquad
    \Sigma_B = \frac1C\sum_c m_c m_c^\top .

As training is pushed past zero training error (the terminal phase) PHD
observe, and prove optimal for the unconstrained-features model:

* **NC1** variability collapse, :math:`\operatorname{tr}(\Sigma_W\Sigma_B^+)/C \to 0`;
* **NC2** the centred means become an equinorm, equiangular simplex frame:
  :math:`\operatorname{std}_c\|m_c\| / \operatorname{mean}_c\|m_c\| \to 0` and
  :math:`\cos(m_c, m_{c'}) \to -1/(C-1)` for :math:`c\ne c'`
  (reported as :math:`\operatorname{mean}_{c\ne c'}|\cos + 1/(C-1)|` and as the
  standard deviation of the cosines);
* **NC3** self-duality, :math:`\|W/\|W\|_F - M/\|M\|_F\|_F^2 \to 0` for the
  readout weights :math:`W\in\mathbb R^{C\times d}` (squared, as PHD Fig. 5);
* **NC4** the network classifies like the nearest class centre:
  the fraction of examples where :math:`\arg\max_c f_c(x) \ne
  \arg\min_c\|h - \mu_c\|` goes to 0.

References:
  Papyan, Han & Donoho, `Prevalence of neural collapse during the terminal
  phase of deep learning training <https://arxiv.org/abs/2008.08186>`_, PNAS 2020.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from wideth import _checks

__all__ = ["Collapse", "neural_collapse"]

_HI = lax.Precision.HIGHEST


class Collapse(NamedTuple):
    """NC1--NC4 (module docstring); ``nc3``/``nc4`` are NaN when weights/logits are not given."""

    nc1: jax.Array
    nc2_equinorm: jax.Array
    nc2_equiangular: jax.Array
    nc2_cosine_std: jax.Array
    nc3: jax.Array
    nc4: jax.Array


def neural_collapse(
    features: jax.Array,
    labels: jax.Array,
    num_classes: int,
    *,
    weights: jax.Array | None = None,
    logits: jax.Array | None = None,
) -> Collapse:
    r"""NC1--NC4 of features :math:`h_i` with classes :math:`y_i` (module docstring).

    Pure and jittable (``num_classes`` static). Every class must have at
    least one example (concrete labels are checked).

    Args:
      features: ``(N, d)`` last-layer features.
      labels: ``(N,)`` integer classes in ``[0, C)``.
      num_classes: :math:`C \ge 2`.
      weights: readout weights ``(C, d)`` (or ``(d, C)``, as a dense kernel
        stores them) for NC3.
      logits: network outputs ``(N, C)`` for NC4.

    Returns:
      :class:`Collapse` of scalars.

    Examples:
      >>> import jax.numpy as jnp
      >>> m = jnp.array([[1.0, 0.0], [-0.5, 0.866], [-0.5, -0.866]])  # a simplex
      >>> nc = neural_collapse(jnp.repeat(m, 4, axis=0), jnp.repeat(jnp.arange(3), 4), 3,
      ...                      weights=m, logits=jnp.repeat(m, 4, axis=0) @ m.T)
      >>> [round(float(v), 3) for v in nc]
      [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]

    References:
      Papyan, Han & Donoho, PNAS 2020, Sec. 3 and Figs. 4--7.
    """
    c = _checks.positive_int("num_classes", num_classes, minimum=2)
    h = _checks.array("features", features, ndim=2, min_rows=1, kind="float")
    n, d = h.shape
    y = _checks.array("labels", labels, shape=(n,), kind="int")
    _checks.class_labels("labels", y, c)
    if not _checks.is_tracer(y):
        missing = sorted(set(range(c)) - {int(v) for v in np.unique(np.asarray(y))})
        if missing:
            raise ValueError(
                f"labels: expected every class 0..{c - 1} present, classes {missing} have no "
                "examples"
            )
    if weights is not None:
        w = _checks.array("weights", weights, ndim=2, kind="float")
        if w.shape == (d, c) and w.shape != (c, d):
            w = w.T
        if w.shape != (c, d):
            raise ValueError(
                f"weights: expected shape ({c}, {d}) or ({d}, {c}), got {_checks.shape_str(w)}"
            )
    if logits is not None:
        lg = _checks.array("logits", logits, shape=(n, c), kind="float")
    return _collapse(h, y, c, None if weights is None else w, None if logits is None else lg)


@functools.partial(jax.jit, static_argnums=(2,))
def _collapse(h, y, c, w, logits) -> Collapse:
    n = h.shape[0]
    onehot = jax.nn.one_hot(y, c, dtype=h.dtype)
    counts = onehot.sum(axis=0)
    mu = jnp.dot(onehot.T, h, precision=_HI) / counts[:, None]  # (C, d)
    mu_g = h.mean(axis=0)
    m = mu - mu_g
    dev = h - mu[y]
    sw = jnp.dot(dev.T, dev, precision=_HI) / n
    sb = jnp.dot(m.T, m, precision=_HI) / c
    nc1 = jnp.trace(jnp.dot(sw, jnp.linalg.pinv(sb, hermitian=True), precision=_HI)) / c
    norms = jnp.linalg.norm(m, axis=1)
    equinorm = jnp.std(norms) / jnp.mean(norms)
    unit = m / norms[:, None]
    cos = jnp.dot(unit, unit.T, precision=_HI)
    off = ~np.eye(c, dtype=bool)
    cos_off = cos[off]
    equiangular = jnp.mean(jnp.abs(cos_off + 1.0 / (c - 1)))
    cos_std = jnp.std(cos_off)
    nan = jnp.full((), jnp.nan, h.dtype)
    if w is None:
        nc3 = nan
    else:
        diff = w / jnp.linalg.norm(w) - m / jnp.linalg.norm(m)
        nc3 = jnp.sum(diff * diff)
    if logits is None:
        nc4 = nan
    else:
        dist = jnp.sum((h[:, None, :] - mu[None]) ** 2, axis=-1)
        ncc = jnp.argmin(dist, axis=1)
        nc4 = jnp.mean(jnp.argmax(logits, axis=1) != ncc).astype(h.dtype)
    return Collapse(nc1, equinorm, equiangular, cos_std, nc3, nc4)
