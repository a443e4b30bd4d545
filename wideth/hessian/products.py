r"""Curvature-vector products: Hessian (HVP) and generalised Gauss-Newton (GGN).

Every product here is a pure, jittable function of pytrees (not jitted
inside: call it from your jitted code, or build an operator with
:func:`wideth.hessian.hessian` / :func:`wideth.hessian.ggn` and hand it to a
spectrum routine); no Hessian, Jacobian or GGN matrix is ever formed.

Three ways to supply the loss:

* ``data=None``: ``loss_fn(params) -> scalar`` (data closed over);
* ``data`` and ``batch_size``: ``loss_fn(params, batch) -> scalar``; the loss is
  the mean over the equal-sized minibatches of ``data`` (a pytree whose leaves
  share a leading axis), accumulated with ``lax.scan`` so only one minibatch's
  activations are alive at a time;
* ``data`` and ``mesh``: the same loss, data-parallel over a
  :class:`jax.sharding.Mesh` (data sharded along ``axis_name``, parameters
  replicated) with ``jax.shard_map`` and a ``pmean`` over devices.

With ``loss_fn(params, batch)`` a per-batch *mean*, every variant computes the
curvature of the mean loss over all of ``data``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import Mesh, PartitionSpec

from wideth import _checks

__all__ = ["hvp", "ggn_vp", "batched_hvp", "batched_ggn_vp", "check_scalar"]

PyTree = Any


def check_scalar(fn: Callable[..., Any], *args: Any, name: str = "loss_fn") -> None:
    """Raise naming ``name`` unless ``fn(*args)`` is a real scalar (checked abstractly)."""
    what = f"{name}({', '.join(['params', 'batch'][: len(args)])})"
    _checks.scalar_output(name, fn, *args, what=what)


def check_data_options(
    data: PyTree, batch_size: Any, mesh: Any, axis_name: Any = None
) -> int | None:
    """The data and batching options shared by every product and operator."""
    if data is None and (batch_size is not None or mesh is not None):
        raise ValueError("data: batch_size and mesh need data, got data=None")
    if data is not None:
        _checks.arrays_tree("data", data)
        n = _leading_size(data)
    if batch_size is not None:
        batch_size = _checks.positive_int("batch_size", batch_size)
        if n % batch_size:
            raise ValueError(
                f"batch_size: expected a positive divisor of the {n} examples in data, got "
                f"{batch_size}"
            )
    _checks.mesh("mesh", mesh)
    if mesh is not None:
        axis = mesh.axis_names[0] if axis_name is None else axis_name
        if axis not in mesh.axis_names:
            raise ValueError(
                f"axis_name: expected one of the mesh axes {mesh.axis_names}, got {axis!r}"
            )
        if n % mesh.shape[axis]:
            raise ValueError(
                f"data: expected a leading size divisible by the {mesh.shape[axis]} devices on "
                f"mesh axis {axis!r}, got {n}"
            )
    elif axis_name is not None:
        raise ValueError(f"axis_name: only used with a mesh, got {axis_name!r} without one")
    return batch_size


def _check_call(
    name: str,
    fn: Any,
    params: PyTree,
    v: PyTree,
    data: PyTree,
    batch_size: int | None,
    mesh: Mesh | None,
    axis_name: str | None = None,
) -> None:
    _checks.callable_(name, fn, f"a callable {name}(params[, batch])")
    _checks.params_tree("params", params)
    _checks.tree_like("v", v, params)
    check_data_options(data, batch_size, mesh, axis_name)


def _leading_size(data: PyTree) -> int:
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError("data: expected a non-empty pytree of arrays with a leading batch axis")
    sizes = {int(jnp.shape(x)[0]) if jnp.ndim(x) > 0 else -1 for x in leaves}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(f"data: expected leaves with one shared leading axis, got sizes {sizes}")
    return sizes.pop()


def _split_batches(data: PyTree, batch_size: int) -> PyTree:
    n = _leading_size(data)
    if batch_size <= 0 or n % batch_size:
        raise ValueError(
            f"batch_size: expected a positive divisor of the {n} examples in data, got {batch_size}"
        )
    return jax.tree.map(lambda x: x.reshape(n // batch_size, batch_size, *x.shape[1:]), data)


def _scan_mean(product: Callable[[PyTree], PyTree], v: PyTree, batches: PyTree) -> PyTree:
    """Mean over minibatches of ``product(batch)`` (a pytree like ``v``) by ``lax.scan``."""
    num = jax.tree.leaves(batches)[0].shape[0]

    def body(acc, batch):
        return jax.tree.map(jnp.add, acc, product(batch)), None

    acc, _ = lax.scan(body, jax.tree.map(jnp.zeros_like, v), batches)
    return jax.tree.map(lambda a: a / num, acc)


def _data_parallel(
    local: Callable[[PyTree, PyTree, PyTree], PyTree],
    params: PyTree,
    v: PyTree,
    data: PyTree,
    mesh: Mesh,
    axis_name: str | None,
) -> PyTree:
    """Run ``local(params, v, data_shard)`` on every device and average the results."""
    axis = mesh.axis_names[0] if axis_name is None else axis_name
    if axis not in mesh.axis_names:
        raise ValueError(
            f"axis_name: expected one of the mesh axes {mesh.axis_names}, got {axis!r}"
        )
    n, n_dev = _leading_size(data), mesh.shape[axis]
    if n % n_dev:
        raise ValueError(
            f"data: expected a leading size divisible by the {n_dev} devices on mesh axis "
            f"{axis!r}, got {n}"
        )

    def shard_fn(p, w, d):
        return jax.tree.map(lambda x: lax.pmean(x, axis), local(p, w, d))

    # check_vma=False: each device differentiates its own shard's mean loss
    # (no implicit psum from transposing the replicated params); pmean averages.
    rep = PartitionSpec()
    fn = jax.shard_map(
        shard_fn,
        mesh=mesh,
        in_specs=(rep, rep, PartitionSpec(axis)),
        out_specs=rep,
        check_vma=False,
    )
    return fn(params, v, data)


def _hvp_closed(loss_fn: Callable[[PyTree], jax.Array], params: PyTree, v: PyTree) -> PyTree:
    return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def _ggn_closed(
    outputs_fn: Callable[[PyTree], Any],
    loss_of_outputs: Callable[[Any], jax.Array],
    params: PyTree,
    v: PyTree,
) -> PyTree:
    out, jvp_fn = jax.linearize(outputs_fn, params)
    jv = jvp_fn(v)
    qjv = jax.jvp(jax.grad(loss_of_outputs), (out,), (jv,))[1]
    (jtqjv,) = jax.linear_transpose(jvp_fn, params)(qjv)
    return jtqjv


def hvp(
    loss_fn: Callable[..., jax.Array],
    params: PyTree,
    v: PyTree,
    data: PyTree | None = None,
    *,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    axis_name: str | None = None,
) -> PyTree:
    r"""Hessian-vector product :math:`H v` by forward-over-reverse differentiation.

    .. math::

        H v = \frac{\partial}{\partial \epsilon}\,\nabla_\theta
        L(\theta + \epsilon v)\Big|_{\epsilon = 0},
        \qquad L(\theta) = \frac{1}{B}\sum_{b=1}^{B} \ell(\theta, \mathcal{D}_b),

    a ``jax.jvp`` of ``jax.grad``: one forward and one backward pass, the cost of
    about two gradients; the Hessian is never formed.

    Args:
      loss_fn: ``params -> scalar`` when ``data`` is ``None``, else
        ``(params, batch) -> scalar`` (a per-batch mean for the mean over data).
      params: parameter pytree :math:`\theta`.
      v: tangent pytree with the structure, shapes and dtypes of ``params``.
      data: optional pytree of arrays with a shared leading example axis.
      batch_size: with ``data``, split it into minibatches of this size (a
        divisor of the number of examples, per device with ``mesh``) and sum
        over them with ``lax.scan``, so that only one minibatch's activations
        are alive at a time. ``None``: one batch.
      mesh: with ``data``, a :class:`jax.sharding.Mesh`; the data is sharded
        along ``axis_name``, parameters and ``v`` are replicated, and the
        per-device products are averaged with ``lax.pmean``.
      axis_name: mesh axis of the data (default: the mesh's first axis).

    Returns:
      :math:`H v`, a pytree like ``params``.

    Raises:
      ValueError: ``loss_fn`` is not scalar-valued, or ``data`` does not split
        evenly into batches / devices.

    Examples:
      >>> import jax.numpy as jnp
      >>> hvp(lambda p: jnp.sum(p ** 3), jnp.array([1.0, 2.0]), jnp.ones(2))
      Array([ 6., 12.], dtype=float32)

    References:
      Pearlmutter, `Fast exact multiplication by the Hessian
      <https://doi.org/10.1162/neco.1994.6.1.147>`_, 1994.
    """
    _check_call("loss_fn", loss_fn, params, v, data, batch_size, mesh, axis_name)
    if data is None:
        check_scalar(loss_fn, params)
        return _hvp_closed(loss_fn, params, v)

    def local(p, w, d):
        if batch_size is None:
            check_scalar(loss_fn, p, d)
            return _hvp_closed(lambda q: loss_fn(q, d), p, w)
        batches = _split_batches(d, batch_size)
        check_scalar(loss_fn, p, jax.tree.map(lambda x: x[0], batches))
        return _scan_mean(lambda b: _hvp_closed(lambda q: loss_fn(q, b), p, w), w, batches)

    if mesh is None:
        return local(params, v, data)
    return _data_parallel(local, params, v, data, mesh, axis_name)


def ggn_vp(
    outputs_fn: Callable[..., Any],
    loss_of_outputs: Callable[..., jax.Array],
    params: PyTree,
    v: PyTree,
    data: PyTree | None = None,
    *,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    axis_name: str | None = None,
) -> PyTree:
    r"""Generalised Gauss-Newton product :math:`G v = J^\top Q J v`.

    .. math::

        G = J^\top Q J, \qquad J = \frac{\partial f(\theta)}{\partial \theta},
        \qquad Q = \nabla^2_f\, \ell(f),

    the Hessian of :math:`\ell\circ f` without the term
    :math:`\sum_i \partial_{f_i}\ell\, \nabla^2 f_i`. For a convex
    ``loss_of_outputs`` (MSE, softmax cross-entropy) :math:`Q \succeq 0`, so
    :math:`G` is positive semi-definite. One linearisation of ``outputs_fn``
    gives :math:`Jv`; its transpose gives :math:`J^\top(\cdot)`.

    Args:
      outputs_fn: ``params -> outputs`` (``(params, batch) -> outputs`` with ``data``).
      loss_of_outputs: ``outputs -> scalar`` (``(outputs, batch) -> scalar`` with ``data``).
      params: parameter pytree.
      v: tangent pytree like ``params``.
      data, batch_size, mesh, axis_name: as in :func:`hvp`.

    Returns:
      :math:`G v`, a pytree like ``params``.

    Raises:
      ValueError: ``loss_of_outputs`` is not scalar-valued; bad data split.

    References:
      Schraudolph, `Fast curvature matrix-vector products for second-order
      gradient descent <https://doi.org/10.1162/08997660260028683>`_, 2002;
      Martens, `New insights and perspectives on the natural gradient method
      <https://jmlr.org/papers/v21/17-678.html>`_, 2020.
    """
    _check_call("outputs_fn", outputs_fn, params, v, data, batch_size, mesh, axis_name)
    _checks.callable_("loss_of_outputs", loss_of_outputs, "a callable loss_of_outputs(outputs)")
    if data is None:
        out = _checks.evaluate_shape("outputs_fn", outputs_fn, params, what="outputs_fn(params)")
        check_scalar(loss_of_outputs, out, name="loss_of_outputs")
        return _ggn_closed(outputs_fn, loss_of_outputs, params, v)

    def one(p, w, b):
        return _ggn_closed(lambda q: outputs_fn(q, b), lambda o: loss_of_outputs(o, b), p, w)

    def local(p, w, d):
        if batch_size is None:
            out = _checks.evaluate_shape(
                "outputs_fn", outputs_fn, p, d, what="outputs_fn(params, batch)"
            )
            check_scalar(loss_of_outputs, out, d, name="loss_of_outputs")
            return one(p, w, d)
        batches = _split_batches(d, batch_size)
        b0 = jax.tree.map(lambda x: x[0], batches)
        out = _checks.evaluate_shape(
            "outputs_fn", outputs_fn, p, b0, what="outputs_fn(params, batch)"
        )
        check_scalar(loss_of_outputs, out, b0, name="loss_of_outputs")
        return _scan_mean(lambda b: one(p, w, b), w, batches)

    if mesh is None:
        return local(params, v, data)
    return _data_parallel(local, params, v, data, mesh, axis_name)


def batched_hvp(
    loss_fn: Callable[[PyTree, PyTree], jax.Array],
    params: PyTree,
    v: PyTree,
    data: PyTree,
    batch_size: int,
) -> PyTree:
    r"""HVP of the mean minibatch loss, summed over ``data`` with ``lax.scan``.

    .. math::

        H v = \frac{1}{B}\sum_{b=1}^{B} \nabla^2_\theta\,\ell(\theta, \mathcal{D}_b)\, v,

    holding one minibatch's activations at a time. Same as
    ``hvp(loss_fn, params, v, data, batch_size=batch_size)``.

    Args:
      loss_fn: ``(params, batch) -> scalar``.
      params: parameter pytree.
      v: tangent pytree like ``params``.
      data: pytree of arrays with a shared leading axis of size ``B * batch_size``.
      batch_size: examples per minibatch.

    Returns:
      :math:`Hv`, a pytree like ``params``.

    References:
      Pearlmutter, Fast exact multiplication by the Hessian, 1994.
    """
    return hvp(loss_fn, params, v, data, batch_size=batch_size)


def batched_ggn_vp(
    outputs_fn: Callable[[PyTree, PyTree], Any],
    loss_of_outputs: Callable[[Any, PyTree], jax.Array],
    params: PyTree,
    v: PyTree,
    data: PyTree,
    batch_size: int,
) -> PyTree:
    r"""GGN product of the mean minibatch loss, summed over ``data`` with ``lax.scan``.

    .. math::

        G v = \frac{1}{B}\sum_{b=1}^{B} J_b^\top Q_b J_b\, v.

    Same as ``ggn_vp(outputs_fn, loss_of_outputs, params, v, data, batch_size=batch_size)``.

    Args:
      outputs_fn: ``(params, batch) -> outputs``.
      loss_of_outputs: ``(outputs, batch) -> scalar``.
      params: parameter pytree.
      v: tangent pytree like ``params``.
      data: pytree of arrays with a shared leading axis of size ``B * batch_size``.
      batch_size: examples per minibatch.

    Returns:
      :math:`Gv`, a pytree like ``params``.

    References:
      Schraudolph, Fast curvature matrix-vector products, 2002.
    """
    return ggn_vp(outputs_fn, loss_of_outputs, params, v, data, batch_size=batch_size)
