r"""Class structure of the cross-entropy Gauss--Newton matrix (Papyan 2019, 2020).

For a :math:`C`-class network :math:`f_\theta(x)\in\mathbb R^C` trained on the
mean softmax cross-entropy :math:`\mathcal L = \frac1N\sum_i \ell(f(x_i), y_i)`,
the Gauss--Newton part of the Hessian is

.. math::

    G = \frac1N \sum_i J_i^\top H_i J_i, \qquad
    H_i = \operatorname{diag}(p_i) - p_i p_i^\top, \qquad
    J_i = \partial f(x_i)/\partial\theta, \quad p_i = \operatorname{softmax}(f(x_i)).

**Rank-one form.** :math:`H_i = \sum_{c'} p_{ic'}(e_{c'} - p_i)(e_{c'} - p_i)^\top`
(expand: :math:`\sum_{c'} p_{ic'} e_{c'}e_{c'}^\top - 2 p_ip_i^\top + p_ip_i^\top`).
So with the "gradient of example :math:`i` had its label been :math:`c'`"

.. math::

    \delta_{i,c'} = \sqrt{p_{ic'}}\; J_i^\top (p_i - e_{c'})
                  = \sqrt{p_{ic'}}\;\nabla_\theta\,\ell(f(x_i), c'),
    \qquad G = \frac1N \sum_i \sum_{c'} \delta_{i,c'}\delta_{i,c'}^\top .

**Three parts** (our exact form of Papyan's decomposition). Group the
examples by their true class :math:`c` (:math:`N_c` of them,
:math:`\pi_c = N_c/N`), take the :math:`C^2` class means
:math:`\delta_{c,c'} = \frac1{N_c}\sum_{i:y_i=c}\delta_{i,c'}` and split each
second moment into mean and covariance:

.. math::

    G = \underbrace{\sum_c \pi_c\,\delta_{c,c}\delta_{c,c}^\top}_{G_{\rm class}\
        (\mathrm{rank}\le C)}
      + \underbrace{\sum_{c\ne c'} \pi_c\,\delta_{c,c'}\delta_{c,c'}^\top}_{G_{\rm cross}\
        (\mathrm{rank}\le C(C-1))}
      + \underbrace{\sum_{c,c'} \frac{\pi_c}{N_c}\sum_{i:y_i=c}
        (\delta_{i,c'} - \delta_{c,c'})(\delta_{i,c'} - \delta_{c,c'})^\top}_{G_{\rm within}} .

Every part is positive semi-definite. :math:`G_{\rm class}` is built from the
(probability-weighted) mean gradient of each class, :math:`G_{\rm cross}` from
the mean gradient a class would have under another class's label. Their sum
:math:`G_B` has rank at most :math:`C^2`, so by Weyl's inequality
(:math:`G \succeq G_B` and :math:`\lambda_{k}(G) \le \lambda_k(G_B) + \lambda_1(G_{\rm within})`)

.. math::

    \#\{k : \lambda_k(G) > \lambda_1(G_{\rm within})\} \le C^2, \qquad
    \#\{k : \lambda_k(G) > e\} \ge \#\{k : \lambda_k(G_B) > e\} \ \ \forall e :

the eigenvalues of :math:`G` above the within-class bulk edge are outliers
carried by the class means. Papyan's measurement is that on trained networks
about :math:`C` of them stand out, with a second level of :math:`C(C-1)`
smaller cross-class outliers.

The non-zero eigenvalues of :math:`G_{\rm class}`, :math:`G_{\rm cross}` and
:math:`G_B` are those of the small Gram matrices of the rows
:math:`\sqrt{\pi_c}\,\delta_{c,c'}` (:func:`class_spectrum`): the outlier
subspace without a high-dimensional eigenproblem (Papyan 2019, Sec. 5).

References:
  Papyan, `Measurements of three-level hierarchical structure in the outliers
  in the spectrum of deepnet Hessians <https://arxiv.org/abs/1901.08244>`_, ICML 2019;
  Papyan, `Traces of class/cross-class structure pervade deep learning spectra
  <https://arxiv.org/abs/2008.11865>`_, JMLR 2020;
  Gur-Ari, Roberts & Dyer, `Gradient descent happens in a tiny subspace
  <https://arxiv.org/abs/1812.04754>`_, 2018.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from wideth import _checks, losses

from .operators import Operator, Space, ggn

__all__ = [
    "ClassMeans",
    "GGNDecomposition",
    "class_gradient_means",
    "ggn_decomposition",
    "class_spectrum",
    "count_above",
    "subspace_overlap",
    "subspace_similarity",
]

PyTree = Any
_HI = lax.Precision.HIGHEST


class ClassMeans(NamedTuple):
    r"""The :math:`C^2` class-mean vectors of the GGN decomposition.

    Attributes:
      means: ``(C, C, d)`` flat :math:`\delta_{c,c'}` (true class :math:`c`,
        label :math:`c'`), in the ravel order of the parameters.
      weights: ``(C,)`` class frequencies :math:`\pi_c = N_c/N`.
    """

    means: jax.Array
    weights: jax.Array


class GGNDecomposition(NamedTuple):
    """The GGN and its three parts as :class:`~wideth.hessian.Operator` s (``total = sum``)."""

    total: Operator
    class_means: Operator
    cross_class: Operator
    within: Operator
    means: ClassMeans


def _xent(logits: jax.Array, batch: tuple[jax.Array, jax.Array]) -> jax.Array:
    return losses.xent(logits, batch[1])


def _logits(apply_fn: Callable[..., Any], params: PyTree, batch: Any) -> jax.Array:
    return apply_fn(params, batch[0])


def _check_inputs(apply_fn, params, x, labels, num_classes, dtype):
    from wideth.functional import as_apply

    apply_fn, params = as_apply(apply_fn, params)
    num_classes = _checks.positive_int("num_classes", num_classes, minimum=2)
    x = _checks.array("x", x, min_ndim=1, min_rows=1, kind="number")
    labels = _checks.array("labels", labels, shape=(x.shape[0],), kind="int")
    _checks.class_labels("labels", labels, num_classes)
    out = _checks.evaluate_shape("apply_fn", apply_fn, params, x, what="apply_fn(params, x)")
    if tuple(out.shape) != (x.shape[0], num_classes):
        raise ValueError(
            f"apply_fn: expected logits of shape ({x.shape[0]}, {num_classes}) for "
            f"num_classes={num_classes}, got {tuple(out.shape)}"
        )
    space = Space.of(params, dtype)
    return apply_fn, params, x, labels, num_classes, space


def class_gradient_means(
    apply_fn: Any,
    params: PyTree,
    x: jax.Array,
    labels: jax.Array,
    num_classes: int,
    *,
    dtype: Any = None,
) -> ClassMeans:
    r"""The class means :math:`\delta_{c,c'}` and weights :math:`\pi_c` (module docstring).

    .. math::

        \delta_{c,c'} = \frac1{N_c}\sum_{i:y_i=c}\sqrt{p_{ic'}}\,J_i^\top(p_i - e_{c'}),
        \qquad \pi_c = N_c/N .

    One forward pass and :math:`C^2` vector--Jacobian products (vmapped); the
    Jacobian is never formed. A class with no examples gets zero means and
    weight 0. Jittable (``num_classes`` static).

    Args:
      apply_fn: ``apply_fn(params, x) -> (N, C)`` logits, or an ``nnx.Module``
        (then ``params`` is ``None``).
      params: parameter pytree.
      x: inputs ``(N, ...)``.
      labels: integer classes ``(N,)`` in ``[0, C)``.
      num_classes: :math:`C \ge 2`.
      dtype: dtype of the flat vectors.

    Returns:
      :class:`ClassMeans` with ``means`` ``(C, C, d)`` and ``weights`` ``(C,)``.

    References:
      Papyan, ICML 2019 (module docstring), Sec. 3.
    """
    apply_fn, params, x, labels, c, space = _check_inputs(
        apply_fn, params, x, labels, num_classes, dtype
    )
    return _means_impl(apply_fn, params, x, labels, c, space)


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def _means_impl(apply_fn, params, x, labels, c, space):
    return _means(apply_fn, params, x, labels, c, space)


def _means(apply_fn, params, x, labels, c, space) -> ClassMeans:
    logits, vjp = jax.vjp(lambda p: apply_fn(p, x), params)
    dt = space.dtype
    p = jax.nn.softmax(logits.astype(dt), axis=-1)  # (N, C)
    member = jax.nn.one_hot(labels, c, dtype=dt)  # (N, C) true class
    counts = member.sum(axis=0)
    # r[i, c'] = sqrt(p_ic') (p_i - e_c'): (N, C', C)
    r = jnp.sqrt(p)[:, :, None] * (p[:, None, :] - jnp.eye(c, dtype=dt)[None])
    scale = member / jnp.where(counts > 0, counts, 1)[None]  # (N, C) membership / N_c
    cot = jnp.einsum("ia,ibk->abik", scale, r)  # (C, C', N, C)
    cot = cot.reshape(c * c, *logits.shape).astype(logits.dtype)
    flat = jax.lax.map(lambda u: space.ravel(vjp(u)[0]), cot, batch_size=c)
    return ClassMeans(flat.reshape(c, c, -1), counts / x.shape[0])


@dataclasses.dataclass(frozen=True)
class _PartKernel:
    """``v -> sum_{(c,c') in part} pi_c delta_cc' (delta_cc' . v)`` for part in {class, cross}."""

    space: Space
    part: str

    def __call__(self, args: PyTree, v: PyTree) -> PyTree:
        means, weights = args
        c = weights.shape[0]
        eye = jnp.eye(c, dtype=means.dtype)
        mask = eye if self.part == "class" else 1 - eye
        flat = self.space.ravel(v)
        coef = jnp.einsum("abd,d->ab", means, flat, precision=_HI)
        coef = coef * mask * weights[:, None]
        return self.space.unravel(jnp.einsum("ab,abd->d", coef, means, precision=_HI))


@dataclasses.dataclass(frozen=True)
class _WithinKernel:
    r""":math:`G_{\rm within} v = \frac1N J^\top u`, centred per class (one JVP, one VJP)."""

    apply_fn: Callable[..., Any]
    space: Space

    def __call__(self, args: PyTree, v: PyTree) -> PyTree:
        return self.linearize(args)(v)

    def linearize(self, args: PyTree) -> Callable[[PyTree], PyTree]:
        params, x, labels, means = args
        logits, f_jvp = jax.linearize(lambda p: self.apply_fn(p, x), params)
        f_vjp = jax.linear_transpose(f_jvp, params)
        dt = self.space.dtype
        p = jax.nn.softmax(logits.astype(dt), axis=-1)
        sq = jnp.sqrt(p)
        n = x.shape[0]

        def apply(v):
            jv = f_jvp(v).astype(dt)  # (N, C)
            # a[i, c'] = delta_{i,c'} . v = sqrt(p_ic') (p_i . Jv_i - (Jv_i)_c')
            a = sq * (jnp.sum(p * jv, axis=-1, keepdims=True) - jv)
            mean_dot = jnp.einsum("abd,d->ab", means, self.space.ravel(v), precision=_HI)
            s = a - mean_dot[labels]  # (delta_{i,c'} - delta_{y_i,c'}) . v
            # u_i = sum_c' s_ic' sqrt(p_ic') (p_i - e_c')
            ws = s * sq
            u = p * jnp.sum(ws, axis=-1, keepdims=True) - ws
            return f_vjp((u / n).astype(logits.dtype))[0]

        return apply


def ggn_decomposition(
    apply_fn: Any,
    params: PyTree,
    x: jax.Array,
    labels: jax.Array,
    num_classes: int,
    *,
    dtype: Any = None,
) -> GGNDecomposition:
    r"""The cross-entropy GGN split into class-mean, cross-class and within-class operators.

    .. math::

        G = G_{\rm class} + G_{\rm cross} + G_{\rm within}

    exactly (derivation in the module docstring). ``total`` is
    :func:`wideth.hessian.ggn` of the mean softmax cross-entropy; the three
    parts are computed by separate routes (``class_means``/``cross_class``
    from the :math:`C^2` stored means, ``within`` from one JVP and one VJP on
    the centred per-example vectors), so ``total v`` against the sum of the
    parts is a real test of the identity. Each part is positive semi-definite.

    Args:
      apply_fn: ``apply_fn(params, x) -> (N, C)`` logits, or an ``nnx.Module``.
      params: parameter pytree.
      x: inputs ``(N, ...)``.
      labels: integer classes ``(N,)``.
      num_classes: :math:`C \ge 2`.
      dtype: dtype of the flat vectors.

    Returns:
      :class:`GGNDecomposition` (operators for :func:`~wideth.hessian.top_eigenpairs`,
      :func:`~wideth.hessian.spectral_density`, ... and the :class:`ClassMeans`).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> w = jax.random.normal(jax.random.key(0), (3, 4))
      >>> x = jax.random.normal(jax.random.key(1), (12, 3))
      >>> dec = ggn_decomposition(lambda p, x: x @ p, w, x, jnp.arange(12) % 4, 4)
      >>> v = jnp.ones(12)
      >>> parts = dec.class_means(v) + dec.cross_class(v) + dec.within(v)
      >>> bool(jnp.allclose(dec.total(v), parts, rtol=1e-5, atol=1e-6))
      True

    References:
      Papyan, ICML 2019 and JMLR 2020 (module docstring).
    """
    apply_fn, params, x, labels, c, space = _check_inputs(
        apply_fn, params, x, labels, num_classes, dtype
    )
    cm = _means_impl(apply_fn, params, x, labels, c, space)
    onehot = jax.nn.one_hot(labels, c, dtype=jnp.result_type(float))
    total = ggn(functools.partial(_logits, apply_fn), _xent, params, (x, onehot), dtype=dtype)
    klass = Operator(_PartKernel(space, "class"), (cm.means, cm.weights), space)
    cross = Operator(_PartKernel(space, "cross"), (cm.means, cm.weights), space)
    within = Operator(_WithinKernel(apply_fn, space), (params, x, labels, cm.means), space)
    return GGNDecomposition(total, klass, cross, within, cm)


def class_spectrum(means: ClassMeans) -> dict[str, jax.Array]:
    r"""Non-zero spectra of the class, cross-class and between parts by Gram matrices.

    With rows :math:`a_{cc'} = \sqrt{\pi_c}\,\delta_{c,c'}`, :math:`G_{\rm part} =
    A^\top A` and :math:`AA^\top` (at most :math:`C^2 \times C^2`) has the same
    non-zero eigenvalues (Papyan 2019, Sec. 5).

    Args:
      means: :class:`ClassMeans` from :func:`class_gradient_means`.

    Returns:
      ``{"class": (C,), "cross": (C(C-1),), "between": (C^2,)}`` eigenvalues,
      descending, clipped at 0 (rounding).
    """
    if not isinstance(means, ClassMeans):
        raise TypeError(f"means: expected a ClassMeans, got {type(means).__name__}")
    m = _checks.array("means", means.means, ndim=3, kind="float")
    w = _checks.array("means.weights", means.weights, ndim=1, kind="float")
    c = w.shape[0]
    if m.shape[:2] != (c, c):
        raise ValueError(
            f"means: expected shape ({c}, {c}, d) for {c} weights, got {_checks.shape_str(m)}"
        )
    rows = jnp.sqrt(w)[:, None, None] * m
    diag = np.eye(c, dtype=bool)

    def eig(a):
        k = jnp.dot(a, a.T, precision=_HI)
        return jnp.clip(jnp.linalg.eigvalsh(k)[::-1], 0, None)

    return {
        "class": eig(rows[diag]),
        "cross": eig(rows[~diag]),
        "between": eig(rows.reshape(c * c, -1)),
    }


def count_above(eigenvalues: jax.Array, edge: Any) -> jax.Array:
    r"""Number of eigenvalues strictly above a bulk edge: :math:`\#\{k : \lambda_k > e\}`.

    Args:
      eigenvalues: ``(..., k)`` (e.g. Lanczos Ritz values).
      edge: scalar bulk edge, e.g. :math:`\lambda_1(G_{\rm within})`.

    Returns:
      int32 count(s) ``(...)``.
    """
    ev = _checks.array("eigenvalues", eigenvalues, min_ndim=1, kind="real")
    e = _checks.array("edge", edge, ndim=0, kind="real")
    return jnp.sum(ev > e, axis=-1).astype(jnp.int32)


def subspace_overlap(vector: jax.Array, basis: jax.Array) -> jax.Array:
    r"""Fraction of a vector in the span of orthonormal rows: :math:`\|Qv\|^2/\|v\|^2`.

    Gur-Ari, Roberts & Dyer (2018) measure this for the gradient and the top-:math:`k`
    Hessian eigenvectors (:math:`k` = number of classes); a random vector gives
    :math:`k/d` on average.

    Args:
      vector: ``(..., d)`` (e.g. the flat gradient).
      basis: ``(..., k, d)`` orthonormal rows.

    Returns:
      ``(...)`` overlap in ``[0, 1]`` (0 for a zero vector).
    """
    v = _checks.array("vector", vector, min_ndim=1, kind="float")
    q = _checks.array("basis", basis, min_ndim=2, kind="float")
    if q.shape[-1] != v.shape[-1]:
        raise ValueError(
            f"basis: expected rows of length {v.shape[-1]} (the vector's), got "
            f"{_checks.shape_str(q)}"
        )
    proj = jnp.einsum("...kd,...d->...k", q, v, precision=_HI)
    nv = jnp.sum(v * v, axis=-1)
    return jnp.sum(proj * proj, axis=-1) / jnp.where(nv > 0, nv, 1)


def subspace_similarity(basis_a: jax.Array, basis_b: jax.Array) -> jax.Array:
    r"""Overlap of two :math:`k`-dim subspaces: :math:`\|Q_a Q_b^\top\|_F^2 / k \in [0, 1]`.

    1 for the same subspace, :math:`k/d` on average for random ones (Gur-Ari
    et al. 2018, Fig. 3 measure it between the top-:math:`k` Hessian
    subspaces at two times).

    Args:
      basis_a: ``(..., k, d)`` orthonormal rows.
      basis_b: ``(..., k, d)`` orthonormal rows.
    """
    a = _checks.array("basis_a", basis_a, min_ndim=2, kind="float")
    b = _checks.array("basis_b", basis_b, min_ndim=2, kind="float")
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(
            f"basis_b: expected (k, d) = {a.shape[-2:]} like basis_a, got {_checks.shape_str(b)}"
        )
    m = jnp.einsum("...kd,...ld->...kl", a, b, precision=_HI)
    return jnp.sum(m * m, axis=(-2, -1)) / a.shape[-2]
