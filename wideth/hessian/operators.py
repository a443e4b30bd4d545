r"""Curvature operators as values: Hessian, Gauss--Newton, NTK or any symmetric matvec.

An :class:`Operator` is built once and passed to :func:`~wideth.hessian.lanczos`,
:func:`~wideth.hessian.top_eigenpairs`, :func:`~wideth.hessian.sharpness`,
:func:`~wideth.hessian.spectral_density` and :func:`~wideth.hessian.trace`:

.. code-block:: python

    op = wt.hessian.hessian(loss, params, batch)          # loss(params, batch) -> scalar
    evals, evecs = wt.hessian.top_eigenpairs(op, k=5, key=key)
    op = wt.hessian.ggn(outputs_fn, loss_of_outputs, params, batch)   # J^T Q J
    op = wt.hessian.ntk(apply_fn, params, x)              # J J^T on the outputs

It is a pytree: the arrays it acts with (parameters, data) are its leaves and
the function that multiplies (the user's loss, the batching and mesh choices)
is static. So a jitted consumer compiles once per *function* and shapes: the
same ``loss`` with a new batch of the same shape reuses the compiled program,
while a fresh closure built for every call compiles again. Write the loss once
as ``loss(params, batch)`` and pass the batch as data.

Vectors are flat: the operator ravels the pytree it acts on (parameters for
the Hessian and GGN, network outputs for the NTK) in ``jax.tree.leaves``
order; :meth:`Operator.unravel` maps a flat vector back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from wideth import _checks

from .products import _hvp_closed, check_data_options, ggn_vp, hvp

__all__ = ["Operator", "hessian", "ggn", "ntk", "from_matvec"]

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Space:
    """The layout of the pytree an operator acts on (hashable: a jit cache key)."""

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[Any, ...]
    dtype: Any  # dtype of the flat vectors

    @classmethod
    def of(cls, tree: PyTree, dtype: Any = None, name: str = "params") -> Space:
        _checks.params_tree(name, tree)
        leaves, treedef = jax.tree.flatten(tree)
        shapes = tuple(tuple(np.shape(a)) for a in leaves)
        dtypes = tuple(jnp.result_type(a) for a in leaves)
        for d in dtypes:
            if not jnp.issubdtype(d, jnp.floating):
                raise TypeError(f"{name}: expected floating-point leaves, got dtype {d}")
        dtype = _checks.float_dtype("dtype", dtype, allow_none=True)
        flat = jnp.dtype(jnp.result_type(*dtypes) if dtype is None else dtype)
        return cls(treedef, shapes, dtypes, flat)

    @property
    def size(self) -> int:
        return int(sum(int(np.prod(s, dtype=np.int64)) for s in self.shapes))

    def ravel(self, tree: PyTree) -> jax.Array:
        leaves = jax.tree.leaves(tree)
        return jnp.concatenate([jnp.ravel(a).astype(self.dtype) for a in leaves])

    def unravel(self, flat: jax.Array) -> PyTree:
        sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        splits = np.cumsum(sizes)[:-1].tolist()
        parts = jnp.split(flat, splits) if splits else [flat]
        leaves = [
            p.reshape(s).astype(d) for p, s, d in zip(parts, self.shapes, self.dtypes, strict=True)
        ]
        return jax.tree.unflatten(self.treedef, leaves)


@jax.tree_util.register_pytree_node_class
class Operator:
    r"""A symmetric linear operator :math:`A` on flat vectors of length :attr:`size`.

    ``kernel(args, v_tree) -> A v_tree`` is static (compared by identity of the
    user functions it holds); ``args`` is the pytree of arrays it uses.
    """

    def __init__(self, kernel: Any, args: PyTree, space: Space):
        self.kernel, self.args, self.space = kernel, args, space

    def tree_flatten(self) -> tuple[tuple[PyTree], tuple[Any, Space]]:
        return (self.args,), (self.kernel, self.space)

    @classmethod
    def tree_unflatten(cls, aux: tuple[Any, Space], children: tuple[PyTree]) -> Operator:
        return cls(aux[0], children[0], aux[1])

    @property
    def size(self) -> int:
        """Dimension :math:`d` of the space."""
        return self.space.size

    @property
    def dtype(self) -> Any:
        """dtype of the flat vectors."""
        return self.space.dtype

    def _check_tree(self, name: str, tree: PyTree) -> None:
        layout = [
            jax.ShapeDtypeStruct(s, d)
            for s, d in zip(self.space.shapes, self.space.dtypes, strict=True)
        ]
        _checks.tree_like(name, tree, jax.tree.unflatten(self.space.treedef, layout), "the space")

    def _check_flat(self, name: str, flat: Any) -> jax.Array:
        return _checks.array(name, flat, shape=(self.size,), kind="real")

    def unravel(self, flat: jax.Array) -> PyTree:
        """Flat vector -> pytree (parameters, or outputs for the NTK).

        Raises:
          ValueError: ``flat`` not of shape ``(size,)`` or with NaN/inf (concrete values).
        """
        return self.space.unravel(self._check_flat("flat", flat))

    def ravel(self, tree: PyTree) -> jax.Array:
        """Pytree -> flat vector.

        Raises:
          ValueError / TypeError: ``tree`` not laid out like the space (structure,
            shapes, a floating dtype), or with NaN/inf.
        """
        self._check_tree("tree", tree)
        return self.space.ravel(tree)

    def apply(self, v: PyTree) -> PyTree:
        """:math:`Av` on a pytree ``v`` laid out like the space (checked as in :meth:`ravel`)."""
        self._check_tree("v", v)
        return self.kernel(self.args, v)

    def __call__(self, v: jax.Array) -> jax.Array:
        """:math:`Av` on a flat vector of shape ``(size,)`` (finite when concrete)."""
        v = self._check_flat("v", v)
        return self.space.ravel(self.kernel(self.args, self.space.unravel(v)))

    def linearized(self) -> Callable[[jax.Array], jax.Array]:
        """A flat matvec that reuses one linearisation (``jax.linearize``) when possible.

        Call it inside the traced consumer: the forward pass is then computed
        once and each product costs one tangent pass.
        """
        lin = getattr(self.kernel, "linearize", None)
        if lin is None:
            return self
        tangent = lin(self.args)
        return lambda v: self.space.ravel(tangent(self.space.unravel(v)))

    def __repr__(self) -> str:
        return f"Operator({type(self.kernel).__name__}, size={self.size}, dtype={self.dtype})"


@dataclasses.dataclass(frozen=True)
class _HessianKernel:
    loss_fn: Callable[..., jax.Array]
    with_data: bool
    batch_size: int | None
    mesh: Mesh | None
    axis_name: str | None

    def __call__(self, args: PyTree, v: PyTree) -> PyTree:
        params, data = args
        if not self.with_data:
            return _hvp_closed(self.loss_fn, params, v)
        return hvp(
            self.loss_fn,
            params,
            v,
            data,
            batch_size=self.batch_size,
            mesh=self.mesh,
            axis_name=self.axis_name,
        )

    def linearize(self, args: PyTree) -> Callable[[PyTree], PyTree]:
        params, data = args
        if self.batch_size is not None or self.mesh is not None:
            return lambda v: self(args, v)
        loss = self.loss_fn if not self.with_data else (lambda p: self.loss_fn(p, data))
        _, lin = jax.linearize(jax.grad(loss), params)
        return lin


def hessian(
    loss_fn: Callable[..., jax.Array],
    params: PyTree,
    data: PyTree | None = None,
    *,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    axis_name: str | None = None,
    dtype: Any = None,
) -> Operator:
    r"""The Hessian :math:`H = \nabla^2_\theta L(\theta)` as an operator (never formed).

    Products are forward-over-reverse (:func:`wideth.hessian.hvp`):
    :math:`Hv = \partial_\epsilon \nabla L(\theta + \epsilon v)|_{\epsilon=0}`.

    Args:
      loss_fn: ``params -> scalar``, or ``(params, batch) -> scalar`` with ``data``.
      params: parameter pytree :math:`\theta`.
      data: optional pytree of arrays with a shared leading example axis.
      batch_size, mesh, axis_name: minibatched (``lax.scan``) or data-parallel
        products, as in :func:`wideth.hessian.hvp`.
      dtype: dtype of the flat vectors (e.g. ``jnp.float64`` with x64 enabled).

    Returns:
      :class:`Operator` of size :math:`d` = number of parameters.

    Raises:
      TypeError / ValueError: ``loss_fn`` not callable, wrong arity or not
        scalar-valued (checked abstractly, before any work); bad batching options.

    References:
      Pearlmutter, `Fast exact multiplication by the Hessian
      <https://doi.org/10.1162/neco.1994.6.1.147>`_, 1994.
    """
    _checks.callable_("loss_fn", loss_fn, "a callable loss_fn(params[, batch]) -> scalar")
    batch_size = check_data_options(data, batch_size, mesh, axis_name)
    space = Space.of(params, dtype)
    if data is None:
        _checks.scalar_output("loss_fn", loss_fn, params, what="loss_fn(params)")
    else:
        sample = data if batch_size is None else _first_rows(data, batch_size)
        _checks.scalar_output("loss_fn", loss_fn, params, sample, what="loss_fn(params, batch)")
    kernel = _HessianKernel(loss_fn, data is not None, batch_size, mesh, axis_name)
    return Operator(kernel, (params, data), space)


def _first_rows(data: PyTree, n: int) -> PyTree:
    return jax.tree.map(lambda a: a[:n], data)


@dataclasses.dataclass(frozen=True)
class _GGNKernel:
    outputs_fn: Callable[..., Any]
    loss_of_outputs: Callable[..., jax.Array]
    with_data: bool
    batch_size: int | None
    mesh: Mesh | None
    axis_name: str | None

    def __call__(self, args: PyTree, v: PyTree) -> PyTree:
        params, data = args
        kw = dict(batch_size=self.batch_size, mesh=self.mesh, axis_name=self.axis_name)
        d = data if self.with_data else None
        return ggn_vp(self.outputs_fn, self.loss_of_outputs, params, v, d, **kw)

    def linearize(self, args: PyTree) -> Callable[[PyTree], PyTree]:
        params, data = args
        if self.batch_size is not None or self.mesh is not None:
            return lambda v: self(args, v)
        if self.with_data:
            f = lambda p: self.outputs_fn(p, data)
            ell = lambda o: self.loss_of_outputs(o, data)
        else:
            f, ell = self.outputs_fn, self.loss_of_outputs
        out, jvp_fn = jax.linearize(f, params)
        _, q_lin = jax.linearize(jax.grad(ell), out)
        vjp_fn = jax.linear_transpose(jvp_fn, params)
        return lambda v: vjp_fn(q_lin(jvp_fn(v)))[0]


def ggn(
    outputs_fn: Callable[..., Any],
    loss_of_outputs: Callable[..., jax.Array],
    params: PyTree,
    data: PyTree | None = None,
    *,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    axis_name: str | None = None,
    dtype: Any = None,
) -> Operator:
    r"""The generalised Gauss--Newton matrix :math:`G = J^\top Q J` as an operator.

    :math:`J = \partial f/\partial\theta`, :math:`Q = \nabla_f^2\ell`; positive
    semi-definite for a convex ``loss_of_outputs`` (:func:`wideth.hessian.ggn_vp`).

    Args:
      outputs_fn: ``params -> outputs`` (``(params, batch) -> outputs`` with ``data``).
      loss_of_outputs: ``outputs -> scalar`` (``(outputs, batch) -> scalar`` with ``data``).
      params: parameter pytree.
      data, batch_size, mesh, axis_name, dtype: as in :func:`hessian`.

    Returns:
      :class:`Operator` of size :math:`d` = number of parameters.

    References:
      Schraudolph, `Fast curvature matrix-vector products for second-order
      gradient descent <https://doi.org/10.1162/08997660260028683>`_, 2002.
    """
    _checks.callable_("outputs_fn", outputs_fn, "a callable outputs_fn(params[, batch])")
    _checks.callable_("loss_of_outputs", loss_of_outputs, "a callable loss_of_outputs(outputs)")
    batch_size = check_data_options(data, batch_size, mesh, axis_name)
    space = Space.of(params, dtype)
    if data is None:
        out = _checks.evaluate_shape("outputs_fn", outputs_fn, params, what="outputs_fn(params)")
        _checks.scalar_output(
            "loss_of_outputs", loss_of_outputs, out, what="loss_of_outputs(outputs)"
        )
    else:
        sample = data if batch_size is None else _first_rows(data, batch_size)
        out = _checks.evaluate_shape(
            "outputs_fn", outputs_fn, params, sample, what="outputs_fn(params, batch)"
        )
        _checks.scalar_output(
            "loss_of_outputs",
            loss_of_outputs,
            out,
            sample,
            what="loss_of_outputs(outputs, batch)",
        )
    kernel = _GGNKernel(outputs_fn, loss_of_outputs, data is not None, batch_size, mesh, axis_name)
    return Operator(kernel, (params, data), space)


@dataclasses.dataclass(frozen=True)
class _NTKKernel:
    apply_fn: Callable[..., Any]

    def __call__(self, args: PyTree, v: PyTree) -> PyTree:
        return self.linearize(args)(v)

    def linearize(self, args: PyTree) -> Callable[[PyTree], PyTree]:
        params, x = args
        _, f_jvp = jax.linearize(lambda p: self.apply_fn(p, x), params)
        f_vjp = jax.linear_transpose(f_jvp, params)
        return lambda v: f_jvp(f_vjp(v)[0])


def ntk(apply_fn: Any, params: PyTree, x: Any, *, dtype: Any = None) -> Operator:
    r"""The empirical NTK Gram :math:`\Theta = J J^\top` on a batch, as an operator on outputs.

    Acts on vectors of the flattened network outputs :math:`f_\theta(x)`
    (size :math:`nk`): :math:`\Theta v = J(J^\top v)`, one VJP and one JVP,
    never forming :math:`J` or :math:`\Theta`. Its eigenvalues are those of
    the full (not output-traced) NTK; :math:`\lambda_{\max}(\Theta)/n` sets
    the gradient-descent stability limit :math:`\eta < 2n/\lambda_{\max}` of
    the ``mse`` loss (:mod:`wideth.losses`).

    Args:
      apply_fn: ``apply_fn(params, x)`` or an ``nnx.Module`` (then ``params`` is ``None``).
      params: parameter pytree.
      x: inputs ``(n, ...)``.
      dtype: dtype of the flat vectors.

    Returns:
      :class:`Operator` of size :math:`nk`.

    References:
      Jacot, Gabriel & Hongler, `Neural Tangent Kernel
      <https://arxiv.org/abs/1806.07572>`_, 2018.
    """
    from wideth.functional import as_apply

    apply_fn, params = as_apply(apply_fn, params)
    x = _checks.array("x", x, min_ndim=1, min_rows=1, kind="number")
    out = _checks.evaluate_shape("apply_fn", apply_fn, params, x, what="apply_fn(params, x)")
    _checks.params_tree("params", params)
    kernel = _NTKKernel(apply_fn)
    return Operator(kernel, (params, x), Space.of(out, dtype, name="apply_fn outputs"))


@dataclasses.dataclass(frozen=True)
class _MatvecKernel:
    matvec: Callable[..., Any]

    def __call__(self, args: PyTree, v: PyTree) -> PyTree:
        return self.matvec(v, *args)


def from_matvec(
    matvec: Callable[..., PyTree], v_example: PyTree, *params: Any, dtype: Any = None
) -> Operator:
    r"""An operator from any symmetric ``matvec(v, *params) -> A v`` (matfree's convention).

    ``params`` are arguments, not closures, so they are the operator's pytree
    leaves: new values of the same shapes reuse compiled consumers.

    Args:
      matvec: ``matvec(v, *params)`` for a symmetric :math:`A`; ``v`` is laid
        out like ``v_example``.
      v_example: a vector (any pytree) of the space, e.g. the parameters.
      *params: arrays passed to ``matvec``.
      dtype: dtype of the flat vectors.

    Returns:
      :class:`Operator`.
    """
    _checks.callable_("matvec", matvec, "a callable matvec(v, *params)")
    space = Space.of(v_example, dtype, name="v_example")
    out = _checks.evaluate_shape("matvec", matvec, v_example, *params, what="matvec(v, *params)")
    if (
        jax.tree.structure(out) != space.treedef
        or tuple(tuple(a.shape) for a in jax.tree.leaves(out)) != space.shapes
    ):
        raise ValueError(
            "matvec: expected an output laid out like v_example "
            f"{space.shapes}, got {[tuple(a.shape) for a in jax.tree.leaves(out)]}"
        )
    return Operator(_MatvecKernel(matvec), tuple(params), space)
