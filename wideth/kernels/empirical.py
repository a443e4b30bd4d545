r"""Finite-width (empirical) neural tangent and NNGP kernels.

The empirical NTK of a network :math:`f(\theta, x) \in \mathbb{R}^k` is

.. math::

    \Theta_{kk'}(x, x') = \sum_p \frac{\partial f_k(\theta, x)}{\partial \theta_p}
                                  \frac{\partial f_{k'}(\theta, x')}{\partial \theta_p},

and :func:`ntk` returns its normalised trace over outputs, :math:`\Theta(x, x') =
\frac1k \sum_k \Theta_{kk}(x, x')` -- the *mean* over the ``k`` outputs, exactly what
neural-tangents' ``empirical_ntk_fn(f, trace_axes=(-1,))`` returns (NT divides the
trace by the size of the traced axes), so that it converges to the analytic
per-output kernel for any ``k`` -- or the full ``(n1, n2, k, k)`` array with
``full=True``.

All methods except ``"jvp"`` assume that row ``i`` of ``apply_fn(params, x)``
depends only on ``x[i]`` (no batch statistics); they differentiate one row at a
time under ``vmap``. ``"jvp"`` makes no such assumption.

Three methods compute the same kernel:

* ``"jvp"``: NTK-vector products :math:`\Theta v = J(x_1) (J(x_2)^\top v)`, a vjp
  then a jvp, vmapped over the columns of an identity (64 columns at a time); the
  Jacobian is never formed.
* ``"jacobian"``: per-row Jacobians (``jax.jacrev`` of the one-row function under
  ``vmap``), one block at a time, contracted over parameters.
* ``"structured"``: for every weight product inside the network -- a dense
  product :math:`y = a W` (an MLP layer, or a projection applied per token) or a
  convolution, whose input is then the patch :math:`a_t` at output position
  :math:`t` -- the Jacobian block is :math:`\sum_t a_t \delta_t^\top` with
  :math:`\delta = \partial f / \partial y`, so its contribution is

  .. math::

      \Theta_l(x, x') = \sum_{t, t'} \langle a_t(x), a_{t'}(x') \rangle
                        \langle \delta_t(x), \delta_{t'}(x') \rangle,

  (:math:`t` runs over positions that share the weight; one for an MLP). A bias
  added right after the product (possibly scaled) has Jacobian
  :math:`\sum_t c\,\delta_t`: it is one more input column of constant value
  :math:`c`. The network's jaxpr is traced once; every ``dot_general`` or
  ``conv_general_dilated`` whose weight operand is a parameter (optionally scaled by
  a parameter-free scalar, transposed or cast) used nowhere else is such a *site*.
  A weight with several contracted or free dimensions -- an attention projection
  :math:`K \in \mathbb R^{H \times n \times n_k}` applied per token by
  ``einsum("nti,hik->hntk")`` -- is the same product with :math:`W` flattened to
  ``(D, O) = (n, H n_k)``: :math:`D` is the product of the contracted sizes,
  :math:`O` of the weight's free sizes. A bias may reach the add through a
  ``broadcast_in_dim`` or a ``reshape`` that only inserts unit dimensions (as
  ``nnx.Linear`` adds it) over exactly the site's output feature dimensions.
  For every site :math:`a` is recorded in the forward pass and :math:`\delta` is
  the derivative with respect to a zero perturbation added to the site's output
  (after its bias), so the backward passes compute no weight gradient. Each site
  then takes the cheaper of two exact routes (``structured_report`` lists them with
  parameter paths): ``gram``, the double sum above as Gram products
  :math:`(A A'^\top) \circ (B B'^\top)` (cost :math:`n^2 T^2 (D + kO)`, best for
  dense layers), or ``jacobian``, the site's per-row Jacobian formed from the same
  factors (cost :math:`n T k D O + n^2 k D O`, best for convolutions with many
  positions). Residual paths need nothing: cotangents flow through them. All
  other parameters (shared or gated weights) go through per-row ``jax.jacrev``
  of that leaf alone, in the same backward pass as the sites' cotangents: the
  fallback is per leaf, never for the whole network. This includes LayerNorm and
  BatchNorm (eval) scales and biases, :math:`y_{tf} = \gamma_f \hat z_{tf} +
  \beta_f`: their Jacobian :math:`\partial f_k / \partial \gamma_f = \sum_t
  \hat z_{tf} \delta_{ktf}` (:math:`\sum_t \delta_{ktf}` for :math:`\beta`) is
  already the contracted Gram factor, ``F`` numbers per output, so the per-leaf
  route is their cheapest exact one (cost :math:`n T k F + n^2 k F`; a Gram route
  would pay :math:`n^2 T^2 F (1 + k)`) and they need no site of their own.
  Factors are computed in blocks of rows that fit in 512 MiB.
  This is the idea of neural-tangents' "structured derivatives"
  (implementation 3), for the products that dominate the parameter count.

References:
  Jacot et al., `Neural Tangent Kernel: Convergence and Generalization in Neural
  Networks <https://arxiv.org/abs/1806.07572>`_, 2018.
  Novak et al., `Fast Finite Width Neural Tangent Kernel
  <https://arxiv.org/abs/2206.08720>`_, 2022.
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from wideth import _checks, functional
from wideth._compat import JaxprLiteral as _Lit
from wideth._compat import bind_equation as _bind
from wideth._compat import flatten_jaxpr as _flatten_jaxpr
from wideth.functional import ModuleApply, as_apply, param_paths

__all__ = ["ntk", "nngp", "ntk_matvec", "structured_report", "METHODS"]

#: Methods accepted by :func:`ntk`.
METHODS = ("auto", "jvp", "jacobian", "structured")

#: ``"structured"`` keeps at most this many bytes of per-row factors at a time.
_FACTOR_BUDGET_BYTES = 1 << 29
#: ``auto`` uses ``"jacobian"`` when two Jacobian blocks fit in this many bytes.
_JACOBIAN_BUDGET_BYTES = 1 << 30

#: Cost, in multiply-adds, of moving one array element through a memory-bound
#: stage (writing a per-row Jacobian, reading it in a skinny ``(n, P) x (P, n)``
#: product). Calibrated on CPU: a float32 ``64 x 1.1e6 x 64`` product ran ~4.5x
#: slower than its multiply-adds at square-matmul speed, i.e. ~110 multiply-adds
#: per operand element on top of them.
_MOVE_COST = 100

#: ``"jvp"`` vmaps over this many identity columns at a time (in sequence over chunks).
_JVP_COLUMNS = 64

ApplyFn = Callable[[Any, jax.Array], jax.Array]


# --------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------


def _as_functional(apply_fn: Any, params: Any) -> tuple[ApplyFn, Any]:
    """Turn an ``nnx.Module`` into ``(apply_fn, params)`` through the one module boundary
    (:func:`wideth.functional.as_apply`); check the parameters of a function."""
    apply_fn, params = as_apply(apply_fn, params)
    if not isinstance(apply_fn, ModuleApply):
        _checks.params_tree("params", params)
    return apply_fn, params


def _check_inputs(x1: Any, x2: Any, name1: str = "x1") -> tuple[jax.Array, jax.Array | None]:
    """Inputs of rank >= 2 with at least one row, finite when concrete; ``x2`` like ``x1``."""
    x1 = _checks.array(name1, x1, min_ndim=2, min_rows=1, kind="number")
    if x2 is not None:
        x2 = _checks.array("x2", x2, min_ndim=2, min_rows=1, kind="number")
        if x2.shape[1:] != x1.shape[1:]:
            raise ValueError(
                f"x2: expected shape (n2, {', '.join(map(str, x1.shape[1:]))}) to match x1's "
                f"feature dimensions, got {x2.shape}."
            )
    return x1, x2


def _check_outputs(apply_fn: ApplyFn, params: Any, x: jax.Array, name: str = "x1") -> Any:
    """Trace ``apply_fn(params, x)`` abstractly: one row of outputs per row of ``x``."""
    out = _checks.evaluate_shape("apply_fn", apply_fn, params, x, what=f"apply_fn(params, {name})")
    if not hasattr(out, "shape") or out.ndim < 1 or out.shape[0] != x.shape[0]:
        raise ValueError(
            f"apply_fn: expected outputs with one row per row of {name} ({x.shape[0]}), got "
            f"{_checks.shape_str(out)}"
        )
    return out


def _check_batch_size(batch_size: int | None) -> None:
    if batch_size is not None:
        _checks.positive_int("batch_size", batch_size)


def _blocks(x: jax.Array, b: int) -> tuple[jax.Array, int]:
    """Pad rows to a multiple of ``b`` and reshape to ``(num_blocks, b, ...)``."""
    n = x.shape[0]
    m = -(-n // b) * b
    if m != n:
        x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (m - n, *x.shape[1:]))], axis=0)
    return x.reshape(m // b, b, *x.shape[1:]), n


def _outputs(apply_fn: ApplyFn, params: Any, x: jax.Array) -> jax.Array:
    out = apply_fn(params, x)
    return out.reshape(x.shape[0], -1)


def _trace_or_full(k4: jax.Array, full: bool) -> jax.Array:
    """(n1, n2, k, k) -> itself or its trace over the output axes."""
    return k4 if full else jnp.einsum("ijkk->ij", k4) / k4.shape[-1]


# --------------------------------------------------------------------------------------
# Method "jvp": NTK-vector products
# --------------------------------------------------------------------------------------


def _ntk_block_jvp(apply_fn, params, x1, x2, full, apply2=None):
    f1 = lambda p: _outputs(apply_fn, p, x1)
    f2 = lambda p: _outputs(apply_fn if apply2 is None else apply2, p, x2)
    out2, vjp2 = jax.vjp(f2, params)
    n2, k = out2.shape

    def column(v):  # v: (n2, k) -> J1 J2^T v: (n1, k)
        return jax.jvp(f1, (params,), vjp2(v))[1]

    eye = jnp.eye(n2 * k, dtype=out2.dtype).reshape(n2 * k, n2, k)
    # vmap over chunks of columns, chunks in sequence: bounded memory for big blocks
    cols = jax.lax.map(column, eye, batch_size=min(_JVP_COLUMNS, n2 * k))  # (n2*k, n1, k)
    k4 = cols.reshape(n2, k, -1, k).transpose(2, 0, 3, 1)  # (n1, n2, k, k')
    return _trace_or_full(k4, full)


# --------------------------------------------------------------------------------------
# Method "jacobian": per-block Jacobians contracted over parameters
# --------------------------------------------------------------------------------------


def _flat_jacobian(apply_fn, params, x):
    """Per-row Jacobians ``(n, k, P)``: a jacrev of the one-row function, vmapped."""
    single = lambda p, xi: _outputs(apply_fn, p, xi[None])[0]
    jac = jax.vmap(jax.jacrev(single), in_axes=(None, 0))(params, x)
    n, k = x.shape[0], jax.tree.leaves(jac)[0].shape[1]
    return jnp.concatenate([leaf.reshape(n, k, -1) for leaf in jax.tree.leaves(jac)], -1)


def _contract(j1, j2, full):
    if full:
        return jnp.einsum("ikp,jlp->ijkl", j1, j2)
    # one (n1, k P) x (k P, n2) product (faster on CPU than the two-axis einsum)
    m1, m2 = j1.reshape(j1.shape[0], -1), j2.reshape(j2.shape[0], -1)
    return jax.lax.dot_general(m1, m2, (((1,), (1,)), ((), ()))) / j1.shape[1]


def _ntk_block_jacobian(apply_fn, params, x1, x2, full, apply2=None):
    j1 = _flat_jacobian(apply_fn, params, x1)
    if apply2 is None:
        j2 = j1 if x2 is x1 else _flat_jacobian(apply_fn, params, x2)
    else:
        j2 = _flat_jacobian(apply2, params, x2)
    return _contract(j1, j2, full)


# --------------------------------------------------------------------------------------
# Method "structured": dense products through their factors, the rest by Jacobians
# --------------------------------------------------------------------------------------


class _Site:
    """A weight product (``dot_general`` or ``conv_general_dilated``) of a parameter leaf.

    ``out_index`` is the equation whose output is perturbed to read off the cotangent
    :math:`\\delta`: the product itself, or the ``add`` of a bias folded into the site.
    Then ``out_scalars`` are the parameter-free scalars between product and add, and
    the bias leaf ``bias_leaf`` (times ``bias_scalars``) is broadcast over every
    dimension but the output feature dimensions ``feature_dims``: its Jacobian is the
    cotangent summed over positions, one more input column of constant value.

    A dense weight may have several contracted and several free dimensions (an
    attention projection ``(heads, in, key)`` applied by ``einsum``): the contracted
    dimensions ``contract_dims`` of the activation operand are flattened into ``D``
    and the output dimensions produced by the weight's free dimensions into ``O``,
    so the product is :math:`y = a W` with :math:`W` of shape ``(D, O)``.
    """

    def __init__(self, kind, eqn_index, leaf, weight_side, scalars, contract_dims, feature_dims):
        self.kind = kind  # "dense" or "conv"
        self.eqn_index = eqn_index
        self.leaf = leaf
        self.weight_side = weight_side  # 0: W is lhs, 1: W is rhs
        self.scalars = scalars  # refs of parameter-free scalars multiplying W
        self.contract_dims = contract_dims  # dense: contracted dims of the activation operand
        self.feature_dims = feature_dims  # output feature dimensions of the product
        self.out_index = eqn_index
        self.out_scalars: list = []
        self.bias_leaf: int | None = None
        self.bias_scalars: list = []
        self.shape = (0, 0, 0)  # (T positions, D inputs incl. bias column, O outputs)


class _Graph:
    """Producer / consumer maps of a flattened jaxpr and the parameter dependence."""

    def __init__(self, eqns, in_keys, out_refs, leaf_avals, differentiable):
        self.eqns, self.leaf_avals = eqns, leaf_avals
        self.producer: dict[int, int] = {}
        self.consumers: dict[int, int] = {}
        self.consumer_eqn: dict[int, int] = {}
        for i, (_, ins, outs) in enumerate(eqns):
            for o in outs:
                self.producer[o] = i
            for r in ins:
                if not isinstance(r, _Lit):
                    self.consumers[r] = self.consumers.get(r, 0) + 1
                    self.consumer_eqn[r] = i
        for r in out_refs:
            if not isinstance(r, _Lit):
                self.consumers[r] = self.consumers.get(r, 0) + 1
        n = len(leaf_avals)
        self.leaf_of = {in_keys[i]: i for i in range(n) if differentiable[i]}
        self.param_dep = set(self.leaf_of)
        for _, ins, outs in eqns:
            if any(not isinstance(r, _Lit) and r in self.param_dep for r in ins):
                self.param_dep.update(outs)

    def single_use(self, ref) -> bool:
        return not isinstance(ref, _Lit) and self.consumers.get(ref, 0) == 1

    def scalar_factor(self, eqn, ins):
        """For a ``mul`` by a parameter-free scalar: ``(scalar ref, other operand index)``."""
        if eqn.primitive.name != "mul":
            return None
        shapes = [v.aval.shape for v in eqn.invars]
        scalar = [j for j in (0, 1) if shapes[j] == () and shapes[1 - j] != ()]
        if len(scalar) != 1:
            return None
        s = ins[scalar[0]]
        if not isinstance(s, _Lit) and s in self.param_dep:
            return None
        return s, 1 - scalar[0]

    def leaf_chain(self, ref, allow_transpose=False, bias_shape=None):
        """Follow ``ref`` back through scalar muls, casts (and transposes, or for a
        bias of shape ``bias_shape`` one ``broadcast_in_dim`` or one ``reshape`` that
        only inserts unit dimensions) to a single-use leaf.

        Returns ``(leaf, scalars, broadcast_axes)`` or None.
        """
        scalars, axis = [], None
        while self.single_use(ref):
            if ref in self.leaf_of:
                leaf = self.leaf_of[ref]
                if bias_shape is not None and tuple(self.leaf_avals[leaf].shape) != bias_shape:
                    return None
                return leaf, scalars, axis
            if ref not in self.producer:
                return None
            eqn, ins, _ = self.eqns[self.producer[ref]]
            name = eqn.primitive.name
            found = self.scalar_factor(eqn, ins)
            if name in ("convert_element_type", "copy", "copy_p") or (
                allow_transpose and name == "transpose"
            ):
                ref = ins[0]
            elif found is not None:
                scalars.append(found[0])
                ref = ins[found[1]]
            elif (
                bias_shape is not None
                and axis is None
                and name == "broadcast_in_dim"
                and tuple(eqn.invars[0].aval.shape) == bias_shape
            ):
                axis = tuple(eqn.params["broadcast_dimensions"])
                ref = ins[0]
            elif (
                bias_shape is not None
                and axis is None
                and name == "reshape"
                and tuple(eqn.invars[0].aval.shape) == bias_shape
                and eqn.params.get("dimensions") is None
            ):
                # (F1, F2) -> (1, F1, 1, F2): the non-unit pattern must be the bias shape
                axis = _unit_reshape_axes(bias_shape, tuple(eqn.outvars[0].aval.shape))
                if axis is None:
                    return None
                ref = ins[0]
            else:
                return None
        return None


def _unit_reshape_axes(shape, new_shape):
    """Axes of ``new_shape`` that hold ``shape`` when the reshape only inserts unit
    dimensions (the non-unit axes of ``new_shape``; unit axes of ``shape`` are matched
    to the first unit axes available), else None."""
    axes, j = [], 0
    for size in shape:
        while j < len(new_shape) and new_shape[j] != size and new_shape[j] == 1:
            j += 1
        if j == len(new_shape) or new_shape[j] != size:
            return None
        axes.append(j)
        j += 1
    if any(new_shape[i] != 1 for i in range(len(new_shape)) if i not in axes):
        return None
    return tuple(axes)


def _find_sites(graph):
    """Every dense / conv product whose weight operand is a (scaled) parameter leaf."""
    sites, claimed = [], set()
    for i, (eqn, ins, _) in enumerate(graph.eqns):
        name = eqn.primitive.name
        if name == "dot_general":
            (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
            if lb or rb or not lc:
                continue
            for side in (1, 0):
                w = eqn.invars[side].aval
                n_free = w.ndim - len(lc)
                if w.ndim < 2 or n_free < 1:
                    continue
                found = graph.leaf_chain(ins[side], allow_transpose=True)
                if found is None or found[0] in claimed:
                    continue
                act = eqn.invars[1 - side].aval
                act_contract = tuple((lc, rc)[1 - side])
                out_ndim = eqn.outvars[0].aval.ndim
                # dot_general output: lhs free dims, then rhs free dims
                feature = tuple(range(out_ndim - n_free, out_ndim) if side else range(n_free))
                site = _Site("dense", i, found[0], side, found[1], act_contract, feature)
                d = math.prod(act.shape[c] for c in act_contract)
                o = math.prod(w.shape) // d
                site.shape = (math.prod(act.shape) // d, d, o)
                sites.append(site)
                claimed.add(found[0])
                break
        elif name == "conv_general_dilated":
            p = eqn.params
            if p["feature_group_count"] != 1 or p["batch_group_count"] != 1:
                continue
            found = graph.leaf_chain(ins[1])
            if found is None or found[0] in claimed:
                continue
            lhs_spec, rhs_spec, out_spec = p["dimension_numbers"]
            site = _Site("conv", i, found[0], 1, found[1], None, (out_spec[1],))
            lhs, rhs, out = eqn.invars[0].aval, eqn.invars[1].aval, eqn.outvars[0].aval
            o = rhs.shape[rhs_spec[0]]
            d = lhs.shape[lhs_spec[1]] * math.prod(rhs.shape[s] for s in rhs_spec[2:])
            site.shape = (math.prod(out.shape) // o, d, o)
            sites.append(site)
            claimed.add(found[0])
    return sites, claimed


def _fold_biases(graph, sites, claimed):
    """Move a site's perturbation past ``* scalar`` and ``+ bias`` when the product
    feeds only them, and claim the bias leaf."""
    for site in sites:
        eqn0 = graph.eqns[site.eqn_index][0]
        ref, aval = graph.eqns[site.eqn_index][2][0], eqn0.outvars[0].aval
        out_scalars = []
        while graph.single_use(ref) and ref in graph.consumer_eqn:
            j = graph.consumer_eqn[ref]
            eqn, ins, outs = graph.eqns[j]
            if tuple(eqn.outvars[0].aval.shape) != tuple(aval.shape):
                break
            found = graph.scalar_factor(eqn, ins)
            if eqn.primitive.name == "convert_element_type":
                ref = outs[0]
            elif found is not None and ins[found[1]] is ref:
                out_scalars.append(found[0])
                ref = outs[0]
            elif eqn.primitive.name == "add" and (ins[0] is ref) != (ins[1] is ref):
                other = ins[1] if ins[0] is ref else ins[0]
                bias_shape = tuple(aval.shape[f] for f in site.feature_dims)
                bias = graph.leaf_chain(other, bias_shape=bias_shape)
                other_aval = eqn.invars[1 if ins[0] is ref else 0].aval
                ok = (
                    bias is not None
                    and bias[0] not in claimed
                    and bias[2] == site.feature_dims
                    and other_aval.ndim == aval.ndim
                )
                if ok:
                    site.bias_leaf, site.bias_scalars = bias[0], bias[1]
                    site.out_index, site.out_scalars = j, out_scalars
                    t, d, o = site.shape
                    site.shape = (t, d + 1, o)
                    claimed.add(bias[0])
                break
            else:
                break


def _structured_plan(apply_fn, params, feature_shape, dtype):
    leaves, treedef = jax.tree.flatten(params)
    differentiable = [jnp.issubdtype(jnp.result_type(leaf), jnp.inexact) for leaf in leaves]
    fn = lambda ls, x: apply_fn(jax.tree.unflatten(treedef, ls), x)
    specs = [jax.ShapeDtypeStruct(jnp.shape(leaf), jnp.result_type(leaf)) for leaf in leaves]
    closed = jax.make_jaxpr(fn)(specs, jax.ShapeDtypeStruct((1, *feature_shape), dtype))
    eqns, in_keys, consts, out_refs = _flatten_jaxpr(closed)
    graph = _Graph(eqns, in_keys, out_refs, specs, differentiable)
    sites, claimed = _find_sites(graph)
    _fold_biases(graph, sites, claimed)
    rest = [i for i in range(len(leaves)) if differentiable[i] and i not in claimed]
    k = math.prod(closed.out_avals[0].shape) if len(closed.out_avals) == 1 else None
    if k is None:
        k = sum(math.prod(a.shape) for a in closed.out_avals)
    return _Plan(eqns, in_keys, consts, out_refs, sites, rest, k)


class _Plan:
    """The analysed network: flattened equations, sites, Jacobian-route leaves and
    ``k`` outputs per row."""

    def __init__(self, eqns, in_keys, consts, out_refs, sites, rest, k):
        self.eqns, self.in_keys, self.consts, self.out_refs = eqns, in_keys, consts, out_refs
        self.sites, self.rest, self.k = sites, rest, k

    def __getitem__(self, i):  # (eqns, in_keys, consts, out_refs, sites, rest)
        return (self.eqns, self.in_keys, self.consts, self.out_refs, self.sites, self.rest)[i]


def _site_costs(site, k, n1, n2, full, same, move=_MOVE_COST):
    """Estimated cost (multiply-adds, plus ``move`` (:data:`_MOVE_COST`) per element of
    the large intermediates) of the two routes of one site for an ``n1 x n2`` kernel.

    ``gram``: the products :math:`\\langle a_t, a'_{t'}\\rangle` and
    :math:`\\langle \\delta_t, \\delta'_{t'}\\rangle`, :math:`n_1 n_2 T^2 (D + k O)`
    (``k^2 O`` when ``full``), giving :math:`2 n_1 n_2 T^2` elements
    (:math:`(1 + k^2) n_1 n_2 T^2` when ``full``); ``jacobian``: forming
    :math:`J = \\sum_t a_t \\delta_t^\\top` costs :math:`T k D O` per row (``r = n1``
    rows, plus ``n2`` unless ``x2 is x1``), contracting :math:`n_1 n_2 k D O`
    (``k^2 D O`` when ``full``), with :math:`(r + n_1 + n_2) k D O` elements moved
    (each Jacobian written once, read per operand) -- the memory-bound part of a
    skinny ``n x P`` product.
    """
    t, d, o = site.shape
    kk = k * k if full else k
    gram = n1 * n2 * t * t * (d + kk * o + move * (1 + kk if full else 2))
    rows = n1 if same else n1 + n2
    jac = (
        rows * t * k * d * o + n1 * n2 * kk * d * o + _jacobian_moves(k, d * o, n1, n2, same, move)
    )
    return {"gram": float(gram), "jacobian": float(jac)}


def _jacobian_moves(k, p, n1, n2, same, move=_MOVE_COST):
    """``move`` times the elements of per-row ``(k, p)`` Jacobians written
    once and read once per operand of their ``n1 x n2`` contraction."""
    rows = n1 if same else n1 + n2
    return move * (rows + n1 + n2) * k * p


def _routes(plan, n1, n2, full, same):
    """Per-site route of least estimated cost."""
    out = []
    for site in plan.sites:
        c = _site_costs(site, plan.k, n1, n2, full, same)
        out.append("gram" if c["gram"] <= c["jacobian"] else "jacobian")
    return tuple(out)


def _patches(p, lhs, rhs_shape):
    """Input patches of a convolution, ``(N, *out_spatial, taps * C)`` with the spatial
    dimensions in ``lhs_spec`` order: padded strided slices, one per filter tap,
    concatenated (``conv_general_dilated_patches``, ``(..., C * taps)``, for input
    dilation or negative padding; the order of the patch entries is immaterial to
    the kernel as long as both sides use the same)."""
    lhs_spec, rhs_spec, out_spec = p["dimension_numbers"]
    filt = [rhs_shape[s] for s in rhs_spec[2:]]
    pads = p["padding"]
    if any(d != 1 for d in p["lhs_dilation"]) or any(lo < 0 or hi < 0 for lo, hi in pads):
        a = jax.lax.conv_general_dilated_patches(
            lhs,
            filt,
            p["window_strides"],
            pads,
            lhs_dilation=p["lhs_dilation"],
            rhs_dilation=p["rhs_dilation"],
            dimension_numbers=p["dimension_numbers"],
            precision=jax.lax.Precision.HIGHEST,  # an exact copy also on GPU (no TF32)
        )
        return jnp.transpose(a, (out_spec[0], *out_spec[2:], out_spec[1]))
    x = jnp.transpose(lhs, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))
    x = jnp.pad(x, [(0, 0), *pads, (0, 0)])
    strides, dil = p["window_strides"], p["rhs_dilation"]
    out_sp = [(x.shape[1 + i] - dil[i] * (f - 1) - 1) // strides[i] + 1 for i, f in enumerate(filt)]
    taps = []
    for offset in itertools.product(*(range(f) for f in filt)):
        start = [0, *(o * d for o, d in zip(offset, dil, strict=True)), 0]
        limit = [
            x.shape[0],
            *(st + (m - 1) * s + 1 for st, m, s in zip(start[1:-1], out_sp, strides, strict=True)),
            x.shape[-1],
        ]
        taps.append(jax.lax.slice(x, start, limit, [1, *strides, 1]))
    return jnp.concatenate(taps, axis=-1)


def _site_input(site, eqn, invals, read):
    """Per-row input factor ``(T, D)`` of a site: activations (dense) or patches (conv),
    times the weight and output scalars, with a constant bias column."""
    if site.kind == "dense":
        c = site.contract_dims
        a = jnp.moveaxis(invals[1 - site.weight_side], c, range(-len(c), 0))
        a = a.reshape(-1, site.shape[1] - (site.bias_leaf is not None))
    else:
        a = _patches(eqn.params, invals[0], invals[1].shape)
        a = a.reshape(-1, a.shape[-1])
    for s in (*site.scalars, *site.out_scalars):
        a = a * read(s)
    if site.bias_leaf is not None:
        c = jnp.ones((a.shape[0], 1), a.dtype)
        for s in site.bias_scalars:
            c = c * read(s)
        a = jnp.concatenate([a, c], axis=-1)
    return jax.lax.stop_gradient(a)


def _structured_factors(apply_fn, params, x, plan, routes, full=True):
    """Per-row factors of a block ``x``: for ``gram`` sites the inputs ``a`` (n, T, D)
    and cotangents ``delta`` (n, k, T, O); for ``jacobian`` sites and the remaining
    parameters per-row Jacobian blocks (n, k, P_block), the sites' blocks formed as
    :math:`\\sum_t \\delta_t a_t^\\top` from the same factors. Without ``full``
    only the flattened ``(k, P_block)`` rows are contracted, so a site's block is
    kept in the layout its product gives, ``(D, k, O)``, reshaped to ``(k, D O)``."""
    eqns, in_keys, consts, out_refs, sites, rest = plan[:6]
    leaves = jax.tree.leaves(params)
    site_of = {s.eqn_index: j for j, s in enumerate(sites)}
    eps_of = {s.out_index: j for j, s in enumerate(sites)}

    def single(eps, rest_leaves, xi):
        env = dict(consts)
        vals = list(leaves)
        for i, leaf in zip(rest, rest_leaves, strict=True):
            vals[i] = leaf
        env.update(zip(in_keys, [*vals, xi[None]], strict=True))
        read = lambda r: r.val if isinstance(r, _Lit) else env[r]
        acts = [None] * len(sites)
        for i, (eqn, ins, outs) in enumerate(eqns):
            invals = [read(r) for r in ins]
            out = _bind(eqn, invals)
            if i in site_of:
                j = site_of[i]
                acts[j] = _site_input(sites[j], eqn, invals, read)
            if i in eps_of:
                out = [out[0] + eps[eps_of[i]]]
            env.update(zip(outs, out, strict=True))
        y = jnp.concatenate([jnp.ravel(read(r)) for r in out_refs])
        return y, acts

    eps0 = [
        jnp.zeros(a.shape, a.dtype) for a in (eqns[s.out_index][0].outvars[0].aval for s in sites)
    ]
    rest0 = [leaves[i] for i in rest]

    def per_sample(xi):
        (d_eps, d_rest), acts = jax.jacrev(single, argnums=(0, 1), has_aux=True)(eps0, rest0, xi)
        k = plan.k
        gram_a, gram_d, jac = [], [], []
        for site, route, a, d in zip(sites, routes, acts, d_eps, strict=True):
            # d: (k, *y_shape) -> (k, T, O) with the feature dim last
            if site.kind == "conv":
                _, _, out_spec = eqns[site.eqn_index][0].params["dimension_numbers"]
                d = jnp.transpose(
                    d, (0, *(1 + i for i in (out_spec[0], *out_spec[2:], out_spec[1])))
                )
            else:
                f = site.feature_dims
                d = jnp.moveaxis(d, [1 + j for j in f], range(-len(f), 0))
            d = d.reshape(k, -1, site.shape[2])
            if route == "gram":
                gram_a.append(a)
                gram_d.append(d)
            else:
                spec = "tD,ktO->kDO" if full else "tD,ktO->DkO"
                jac.append(jnp.einsum(spec, a, d).reshape(k, -1))
        jac += [j.reshape(k, -1) for j in d_rest]
        return gram_a, gram_d, jac

    return jax.vmap(per_sample)(x)


def _structured_contract(f1, f2, full):
    acts1, deltas1, jr1 = f1
    acts2, deltas2, jr2 = f2
    n1, n2 = jax.tree.leaves(f1)[0].shape[0], jax.tree.leaves(f2)[0].shape[0]
    dtype, k = jax.tree.leaves(f1)[0].dtype, (*jr1, *deltas1)[0].shape[1]
    out = jnp.zeros((n1, n2, *(2 * (k,) if full else ())), dtype)
    # one product per Jacobian block: no concatenated copy of the per-row Jacobians
    for j1, j2 in zip(jr1, jr2, strict=True):
        out = out + _contract(j1, j2, full)
    for a1, d1, a2, d2 in zip(acts1, deltas1, acts2, deltas2, strict=True):
        if a1.shape[1] == 1 and a2.shape[1] == 1:
            g = a1[:, 0] @ a2[:, 0].T
            if full:
                h = jnp.einsum("ikq,jlq->ijkl", d1[:, :, 0], d2[:, :, 0])
                out = out + g[:, :, None, None] * h
            else:
                h = d1[:, :, 0].reshape(d1.shape[0], -1) @ d2[:, :, 0].reshape(d2.shape[0], -1).T
                out = out + g * h / d1.shape[1]
        elif not full:
            # two well-shaped products: (n1 T, D) x (D, n2 T) and (n1 T, k O) x (k O, n2 T)
            n1, k, t1, q = d1.shape
            n2, t2 = d2.shape[0], d2.shape[2]
            g = a1.reshape(n1 * t1, -1) @ a2.reshape(n2 * t2, -1).T
            h1 = jnp.transpose(d1, (0, 2, 1, 3)).reshape(n1 * t1, k * q)
            h2 = jnp.transpose(d2, (0, 2, 1, 3)).reshape(n2 * t2, k * q)
            h = h1 @ h2.T
            out = out + (g * h).reshape(n1, t1, n2, t2).sum((1, 3)) / k
        else:
            g = jnp.einsum("itp,jsp->ijts", a1, a2)
            if full:
                out = out + jnp.einsum("ijts,iktq,jlsq->ijkl", g, d1, d2)
            else:
                out = out + jnp.einsum("ijts,iktq,jksq->ij", g, d1, d2) / d1.shape[1]
    return out


def structured_report(apply_fn: Any, params: Any, x: jax.Array) -> dict[str, Any]:
    """Describe how the ``"structured"`` method splits the parameters.

    Every weight product -- a ``dot_general`` (dense layer, per-token projection,
    attention projection with several free dimensions, flattened into ``outputs``)
    or a ``conv_general_dilated`` whose weight operand is a parameter leaf, possibly
    cast, transposed or scaled by a parameter-free scalar -- is a *site*; a bias
    added right after it (possibly scaled, broadcast or reshaped to the output's
    feature dimensions) is folded into it. Each site takes the route of least
    estimated cost for an ``n x n`` kernel with ``n = x.shape[0]``: ``"gram"``
    (:math:`\\sum_{t,t'} \\langle a_t, a'_{t'}\\rangle \\langle \\delta_t,
    \\delta'_{t'}\\rangle`, cost :math:`n^2 T^2 (D + kO)`) or ``"jacobian"`` (the
    site's per-row Jacobian :math:`\\sum_t \\delta_t a_t^\\top` from the same
    factors, cost :math:`n T k D O + n^2 k D O`), each plus a memory term for its
    large intermediates (``_site_costs``: ``2 n^2 T^2`` Gram entries, ``3 n k D O``
    Jacobian entries written and read, the latter dominating skinny products).
    Every other parameter leaf
    (e.g. LayerNorm / BatchNorm scales and biases, whose per-feature Jacobian
    :math:`\\sum_t \\hat z_{tf} \\delta_{ktf}` is already their Gram factor) is
    differentiated by ``jax.jacrev`` per row and listed in ``rest_paths``.

    Args:
      apply_fn: ``apply_fn(params, x) -> (n, k)`` or an ``nnx.Module``.
      params: parameter pytree (``None`` for a module).
      x: example inputs ``(n, ...)``; only shape and dtype are used.

    Returns:
      dict with ``sites`` (one dict per site: ``path`` and ``bias_path`` (parameter
      paths as :func:`wideth.functional.param_paths` writes them, e.g.
      ``"convs/1/w"``; ``bias_path`` ``None`` without bias), ``kind``
      (``"dense"``/``"conv"``), ``route``, ``positions`` T, ``inputs`` D (with the
      bias column), ``outputs`` O and the two ``flops`` estimates), ``rest_paths``
      (leaves handled by per-row Jacobians), ``dense_paths``, ``conv_paths``,
      ``bias_paths`` (folded biases), ``dense_fraction`` (share of the parameter
      count handled by site factors), ``num_leaves``, ``method_costs`` (estimated
      multiply-adds of the ``"structured"``, ``"jacobian"`` and ``"jvp"`` methods
      for the ``n x n`` kernel, arithmetic only) and ``auto`` (the method ``method="auto"`` picks
      for these inputs: the least cost with the memory term, ``jacobian`` only
      when its blocks fit in memory).
    """
    apply_fn, params = _as_functional(apply_fn, params)
    x = _checks.array("x", x, min_ndim=2, min_rows=1, kind="number")
    _check_outputs(apply_fn, params, x, "x")
    plan = _structured_plan(apply_fn, params, x.shape[1:], x.dtype)
    n = x.shape[0]
    report = _report(params, plan, n)
    report["method_costs"] = _method_costs(plan, params, n, n, False, True, move=0)
    report["auto"] = _choose_from_plan(plan, params, x, n, n, False, True)
    return report


def _report(params, plan, n=1, full=False):
    sites, rest = plan.sites, plan.rest
    paths = param_paths(params)
    sizes = [math.prod(jnp.shape(leaf)) for leaf in jax.tree.leaves(params)]
    routes = _routes(plan, n, n, full, True)
    site_rows = []
    for site, route in zip(sites, routes, strict=True):
        t, d, o = site.shape
        site_rows.append(
            {
                "path": paths[site.leaf],
                "bias_path": None if site.bias_leaf is None else paths[site.bias_leaf],
                "kind": site.kind,
                "route": route,
                "positions": t,
                "inputs": d,
                "outputs": o,
                "flops": _site_costs(site, plan.k, n, n, full, True),
            }
        )
    handled = [s.leaf for s in sites] + [s.bias_leaf for s in sites if s.bias_leaf is not None]
    total = sum(sizes[i] for i in handled) + sum(sizes[i] for i in rest)
    return {
        "sites": site_rows,
        "rest_paths": [paths[i] for i in sorted(rest)],
        "dense_paths": [paths[i] for i in sorted(s.leaf for s in sites if s.kind == "dense")],
        "conv_paths": [paths[i] for i in sorted(s.leaf for s in sites if s.kind == "conv")],
        "bias_paths": [
            paths[i] for i in sorted(s.bias_leaf for s in sites if s.bias_leaf is not None)
        ],
        "dense_fraction": sum(sizes[i] for i in handled) / max(total, 1),
        "num_leaves": len(sizes),
    }


# --------------------------------------------------------------------------------------
# Driver: batching over rows, method choice, jit
# --------------------------------------------------------------------------------------


def _num_outputs(apply_fn, params, x1):
    out = jax.eval_shape(lambda p, x: _outputs(apply_fn, p, x), params, x1[:1])
    return out.shape[1]


def _method_costs(plan, params, n1, n2, full, same, move=_MOVE_COST):
    """Estimated multiply-adds of the three methods for an ``n1 x n2`` kernel.

    With ``F`` the multiply-adds of one row's forward pass through the sites (plus
    one per other parameter), ``k`` outputs, ``P`` parameters and ``r = n1`` rows
    (``n1 + n2`` unless ``x2 is x1``): ``structured`` runs one forward and ``k``
    cotangent passes per row, ``r (k+1) F``, plus each site's cheaper route
    (:func:`_site_costs`) plus ``n1 n2 k P_rest``; ``jacobian`` also forms every
    weight gradient, ``r (2k+1) F + n1 n2 k P``; ``jvp`` runs a vjp over ``x2`` and a
    jvp over ``x1`` per column, ``n2 k (3 n2 + 2 n1) F``. (``k^2`` for ``k`` in the
    contractions when ``full``.) Both Jacobian contractions also pay for moving
    their per-row Jacobians (:func:`_jacobian_moves` of ``P_rest`` / ``P``); ``move=0``
    gives the multiply-adds only (of the routes the memory term picks).
    """
    k = plan.k
    kk = k * k if full else k
    sizes = [math.prod(jnp.shape(leaf)) for leaf in jax.tree.leaves(params)]
    handled = [s.leaf for s in plan.sites] + [s.bias_leaf for s in plan.sites]
    p_rest = sum(sizes[i] for i in plan.rest)
    p_all = p_rest + sum(sizes[i] for i in handled if i is not None)
    f = sum(math.prod(s.shape) for s in plan.sites) + p_rest
    rows = n1 if same else n1 + n2
    routes = _routes(plan, n1, n2, full, same)  # chosen with the memory term
    sites = sum(
        _site_costs(s, k, n1, n2, full, same, move)[r]
        for s, r in zip(plan.sites, routes, strict=True)
    )
    return {
        "structured": float(
            rows * (k + 1) * f
            + sites
            + n1 * n2 * kk * p_rest
            + _jacobian_moves(k, p_rest, n1, n2, same, move)
        ),
        "jacobian": float(
            rows * (2 * k + 1) * f
            + n1 * n2 * kk * p_all
            + _jacobian_moves(k, p_all, n1, n2, same, move)
        ),
        "jvp": float(n2 * k * (3 * n2 + 2 * n1) * f),
    }


def _choose(apply_fn, params, x1, b, x2=None, full=False):
    """``auto``: the method of least estimated cost (:func:`_method_costs`), where
    ``jacobian`` is eligible only if two ``(b, k, P)`` Jacobian blocks fit in 1 GiB.

    ``structured`` needs at least one site; with none it is ``jacobian`` with extra
    bookkeeping.
    """
    plan = _structured_plan(apply_fn, params, x1.shape[1:], x1.dtype)
    n2 = x1.shape[0] if x2 is None else x2.shape[0]
    return _choose_from_plan(plan, params, x1, b, n2, full, x2 is None)


def _choose_from_plan(plan, params, x1, b, n2, full, same):
    """:func:`_choose` for an already traced ``plan`` (``n2`` columns)."""
    costs = _method_costs(plan, params, x1.shape[0], n2, full, same)
    num_params = sum(math.prod(jnp.shape(leaf)) for leaf in jax.tree.leaves(params))
    nbytes = 2 * b * plan.k * num_params * jnp.dtype(x1.dtype).itemsize
    if nbytes > _JACOBIAN_BUDGET_BYTES:
        costs.pop("jacobian")
    if not plan.sites:
        costs.pop("structured")
    return min(costs, key=costs.get) if costs else "jvp"


def _factor_bytes(plan, routes, itemsize):
    """Bytes of one row's structured factors (and its site cotangents)."""
    k, total = plan.k, 0
    for site, route in zip(plan.sites, routes, strict=True):
        t, d, o = site.shape
        total += t * d + k * t * o + (0 if route == "gram" else k * d * o)
    return itemsize * total


def _ntk_structured(apply_fn, params, x1, x2, batch_size, full, same, apply2=None):
    """Structured kernel, blocked over rows: factors of ``x2`` are kept when they fit
    in :data:`_FACTOR_BUDGET_BYTES`, else recomputed per pair of blocks; without a
    ``batch_size`` the block holds as many rows as fit in that budget. ``apply2``
    (default ``apply_fn``) computes the outputs of ``x2`` (other keyword arguments,
    same graph)."""
    n1, n2 = x1.shape[0], x2.shape[0]
    plan = _structured_plan(apply_fn, params, x1.shape[1:], x1.dtype)
    plan2 = plan if apply2 is None else _structured_plan(apply2, params, x1.shape[1:], x1.dtype)
    routes = _routes(plan, n1, n2, full, same)
    itemsize = jnp.dtype(x1.dtype).itemsize
    rest_size = sum(math.prod(jnp.shape(jax.tree.leaves(params)[i])) for i in plan.rest)
    per_row = _factor_bytes(plan, routes, itemsize) + itemsize * plan.k * rest_size
    b = batch_size or max(1, _FACTOR_BUDGET_BYTES // max(per_row, 1))
    b1, b2 = min(b, n1), min(b, n2)
    xb1, _ = _blocks(x1, b1)
    xb2, _ = _blocks(x2, b2)
    factors = lambda xb: _structured_factors(apply_fn, params, xb, plan, routes, full)
    factors2 = factors
    if apply2 is not None:
        factors2 = lambda xb: _structured_factors(apply2, params, xb, plan2, routes, full)
    if xb2.shape[0] * b2 * per_row <= _FACTOR_BUDGET_BYTES or xb1.shape[0] == 1:
        unblock = lambda t: jax.tree.map(
            lambda a: a.reshape(a.shape[0] * a.shape[1], *a.shape[2:]), t
        )

        # one block: no lax.map (a loop of one step compiled ~8x slower on a CNN)
        def each(xb, fac):
            return fac(xb[0]) if xb.shape[0] == 1 else unblock(jax.lax.map(fac, xb))

        f2 = each(xb2, factors2)
        f1 = f2 if same and b1 == b2 else each(xb1, factors)
        nb1 = xb1.shape[0]
        if nb1 == 1:
            return _structured_contract(f1, f2, full)
        f1 = jax.tree.map(lambda a: a.reshape(nb1, b1, *a.shape[1:]), f1)
        rows = jax.lax.map(lambda f: _structured_contract(f, f2, full), f1)
        return rows.reshape(rows.shape[0] * rows.shape[1], *rows.shape[2:])

    def row(xa):  # x2 factors do not fit: recompute them for every x1 block
        fa = factors(xa)
        return jax.lax.map(lambda xb: _structured_contract(fa, factors2(xb), full), xb2)

    rows = jnp.moveaxis(jax.lax.map(row, xb1), 1, 2)  # (nb1, b1, nb2, b2, ...)
    return rows.reshape(rows.shape[0] * rows.shape[1], -1, *rows.shape[4:])


@functools.partial(
    jax.jit, static_argnames=("apply_fn", "method", "batch_size", "full", "same", "apply2")
)
def _ntk_jit(
    apply_fn, params, x1, x2, method, batch_size, full, same, kwargs=None, kwargs2=None, apply2=None
):
    """The kernel of ``apply_fn(params, x, **kwargs)``; ``x2``'s outputs use ``apply2``
    (default ``apply_fn``) with ``kwargs2`` (default ``kwargs``) when either is given."""
    n1, n2 = x1.shape[0], x2.shape[0]
    two = kwargs2 is not None or apply2 is not None
    fn2 = apply_fn if apply2 is None else apply2
    kw2 = kwargs if kwargs2 is None else kwargs2
    if kwargs:
        apply_fn = functools.partial(_call_with, apply_fn, kwargs)
    if two:
        apply2 = functools.partial(_call_with, fn2, kw2) if kw2 else fn2
        same = False
    if method == "structured":
        return _ntk_structured(apply_fn, params, x1, x2, batch_size, full, same, apply2)[:n1, :n2]
    b1, b2 = min(batch_size or n1, n1), min(batch_size or n2, n2)
    xb1, _ = _blocks(x1, b1)
    xb2, _ = _blocks(x2, b2)
    block = _ntk_block_jvp if method == "jvp" else _ntk_block_jacobian

    if xb1.shape[0] == 1 and xb2.shape[0] == 1:
        xa = xb1[0]
        rows = block(apply_fn, params, xa, xa if same else xb2[0], full, apply2)
    else:
        fn2 = apply_fn if apply2 is None else apply2

        def row(xa):
            if method == "jacobian":  # one Jacobian per x1 block, reused over x2 blocks
                ja = _flat_jacobian(apply_fn, params, xa)
                pair = lambda xb: _contract(ja, _flat_jacobian(fn2, params, xb), full)
            else:
                pair = lambda xb: block(apply_fn, params, xa, xb, full, apply2)
            return jax.lax.map(pair, xb2)

        rows = jnp.moveaxis(jax.lax.map(row, xb1), 1, 2)  # (nb1, b1, nb2, b2, ...)
        rows = rows.reshape(rows.shape[0] * rows.shape[1], -1, *rows.shape[4:])
    return rows[:n1, :n2]


# --------------------------------------------------------------------------------------
# neural-tangents' trace_axes / diagonal_axes / vmap_axes and apply_fn keyword arguments
# --------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _call_with(fn, kwargs, params, x):
    return fn(params, x, **kwargs)


class _Moved:
    """Hashable ``g(params, x, **kw)``: ``fn`` with its batch axes moved to 0 and its
    non-array keyword arguments bound,
    ``g = moveaxis(fn(params, moveaxis(x, 0, in_axis), **static, **kw), out_axis, 0)``."""

    def __init__(self, fn: Any, in_axis: int, out_axis: int, static: tuple):
        self.fn, self.in_axis, self.out_axis, self.static = fn, in_axis, out_axis, static

    def __call__(self, params: Any, x: jax.Array, **kwargs: Any) -> jax.Array:
        if self.in_axis != 0:
            x = jnp.moveaxis(x, 0, self.in_axis)
        out = self.fn(params, x, **dict(self.static), **kwargs)
        return out if self.out_axis == 0 else jnp.moveaxis(out, self.out_axis, 0)

    def _key(self) -> tuple:
        return (self.fn, self.in_axis, self.out_axis, self.static)

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Moved) and self._key() == other._key()


def _check_vmap_axes(vmap_axes: Any) -> tuple[int, int, dict[str, Any], bool]:
    """``(in_axis, out_axis, kwargs_axes, rows_independent)`` with NT's conventions:
    ``None`` (no independence assumed), one int for inputs and outputs, or a triple
    ``(in_axes, out_axes, kwargs_axes)``."""
    if vmap_axes is None:
        return 0, 0, {}, False
    if isinstance(vmap_axes, tuple) and len(vmap_axes) == 3:
        in_axis, out_axis, kw_axes = vmap_axes
    else:
        in_axis, out_axis, kw_axes = vmap_axes, vmap_axes, {}
    for v in (in_axis, out_axis):
        if not _is_int(v):
            raise TypeError(
                "vmap_axes: expected None, an integer axis or a triple (in_axes: int, "
                f"out_axes: int, kwargs_axes: dict), got {vmap_axes!r}"
            )
    kw_axes = {} if kw_axes is None else kw_axes
    if not isinstance(kw_axes, Mapping) or not all(
        v is None or _is_int(v) for v in kw_axes.values()
    ):
        raise TypeError(
            f"vmap_axes: kwargs_axes must map keyword names to an axis or None, got {kw_axes!r}"
        )
    return int(in_axis), int(out_axis), dict(kw_axes), True


def _check_axes(name: str, axes: Any, ndim: int) -> tuple[int, ...]:
    """Axes of an ``ndim``-dimensional output as sorted non-negative ints (no repeats)."""
    if _is_int(axes):
        axes = (axes,)
    if not isinstance(axes, Sequence) or isinstance(axes, str | bytes):
        raise TypeError(f"{name}: expected an integer or a sequence of integers, got {axes!r}")
    out = []
    for a in axes:
        if not _is_int(a) or not -ndim <= int(a) < ndim:
            raise ValueError(
                f"{name}: expected axes of the {ndim}-d output f(x) in [-{ndim}, {ndim}), "
                f"got {tuple(axes)}"
            )
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: expected distinct axes, got {tuple(axes)}")
    return tuple(sorted(out))


def _split_kwargs(apply_kwargs: Any, x1: Any, x2: Any) -> tuple[dict, dict]:
    """NT's rules for ``x1`` / ``x2`` keyword arguments: ``rng`` is split (the same key
    when ``x2`` is ``None`` or equal to ``x1``, else ``fold_in(rng, 1)`` for ``x2``), a
    pair ``(v1, v2)`` gives ``v1`` to ``x1`` and ``v2`` to ``x2``, anything else goes to
    both."""
    if apply_kwargs is None:
        return {}, {}
    if not isinstance(apply_kwargs, Mapping) or not all(isinstance(k, str) for k in apply_kwargs):
        raise TypeError(
            f"apply_kwargs: expected a dict of keyword arguments of apply_fn, got {apply_kwargs!r}"
        )
    kw1, kw2 = {}, {}
    for key, v in apply_kwargs.items():
        if isinstance(v, tuple) and len(v) == 2:
            kw1[key], kw2[key] = v
        elif key == "rng" and x2 is not None and v is not None:
            equal = x2 is x1 or (
                not _checks.is_tracer(x1)
                and not _checks.is_tracer(x2)
                and x1.shape == x2.shape
                and bool(jnp.array_equal(x1, x2))
            )
            kw1[key], kw2[key] = v, v if equal else jax.random.fold_in(v, 1)
        else:
            kw1[key] = kw2[key] = v
    return kw1, kw2


def _dynamic(value: Any) -> bool:
    return isinstance(value, jax.Array | np.ndarray) or _checks.is_tracer(value)


def _static_part(kwargs: dict) -> tuple:
    static = tuple(sorted((k, v) for k, v in kwargs.items() if not _dynamic(v)))
    for k, v in static:
        try:
            hash(v)
        except TypeError:
            raise TypeError(
                f"apply_kwargs: {k!r} must be an array or a hashable value (it is bound "
                f"statically), got {type(v).__name__}"
            ) from None
    return static


class _Setup:
    """Validated inputs of a kernel call in the frame with batch axes at 0.

    ``fn`` / ``fn2`` compute the outputs of ``x1`` / ``x2`` (``fn2`` is ``None`` when
    it is ``fn`` with the same keyword arguments), ``kw1`` / ``kw2`` their array
    keyword arguments; ``out1`` / ``out2`` the output shapes in the caller's frame.
    """

    def __init__(self, apply_fn, params, x1, x2, vmap_axes, apply_kwargs):
        in_axis, out_axis, kw_axes, independent = _check_vmap_axes(vmap_axes)
        x1 = _checks.array("x1", x1, min_ndim=2, min_rows=1, kind="number")
        if x2 is not None:
            x2 = _checks.array("x2", x2, min_ndim=2, min_rows=1, kind="number")
        if not -x1.ndim <= in_axis < x1.ndim:
            raise ValueError(f"vmap_axes: input axis {in_axis} is outside x1 of shape {x1.shape}")
        in_axis %= x1.ndim
        kw1, kw2 = _split_kwargs(apply_kwargs, x1, x2)
        unknown = sorted(set(kw_axes) - set(kw1))
        if unknown:
            raise ValueError(f"vmap_axes: kwargs_axes names {unknown} not in apply_kwargs")
        self.batched = any(a is not None for a in kw_axes.values())
        self.independent = independent and not self.batched
        s1, s2 = _static_part(kw1), _static_part(kw2)
        d1 = {k: v for k, v in kw1.items() if _dynamic(v)}
        d2 = {k: v for k, v in kw2.items() if _dynamic(v)}
        shape = lambda x, kw: _checks.evaluate_shape(
            "apply_fn", lambda p, x: apply_fn(p, x, **kw), params, x, what="apply_fn(params, x)"
        )
        o1 = shape(x1, kw1)
        o2 = o1 if x2 is None else shape(x2, kw2)
        ndim = getattr(o1, "ndim", 0)
        if ndim < 1 or not -ndim <= out_axis < ndim:
            raise ValueError(
                f"vmap_axes: output axis {out_axis} is outside f(x1) of shape "
                f"{_checks.shape_str(o1)}"
            )
        out_axis %= ndim
        for x, o, nm in ((x1, o1, "x1"), (x2, o2, "x2")):
            if x is not None and o.shape[out_axis] != x.shape[in_axis]:
                raise ValueError(
                    f"apply_fn: expected f({nm}) with {x.shape[in_axis]} rows along output "
                    f"axis {out_axis} (vmap_axes), got shape {o.shape}"
                )
        move = in_axis != 0 or out_axis != 0 or s1 or s2
        self.fn = _Moved(apply_fn, in_axis, out_axis, s1) if move else apply_fn
        fn2 = _Moved(apply_fn, in_axis, out_axis, s2) if move else apply_fn
        self.x1 = jnp.moveaxis(x1, in_axis, 0)
        self.x2 = None if x2 is None else jnp.moveaxis(x2, in_axis, 0)
        if self.x2 is not None and self.x2.shape[1:] != self.x1.shape[1:]:
            raise ValueError(
                f"x2: expected the feature shape of x1 {self.x1.shape[1:]} (batch axis "
                f"{in_axis}), got {x2.shape}."
            )
        same_kwargs = s1 == s2 and d1.keys() == d2.keys() and all(d1[k] is d2[k] for k in d1)
        self.fn2 = None if same_kwargs else fn2
        self.kw1 = d1 or None
        self.kw2 = None if same_kwargs else d2
        self.out1, self.out2 = tuple(o1.shape), tuple(o2.shape)
        self.out_axis = out_axis


def _axes_plan(trace_axes, diagonal_axes, out1, out2, out_axis):
    """``(trace, diagonal, legacy)``: validated axes of the outputs, and whether the
    result is the mean over every axis but the batch axis (the default route)."""
    ndim = len(out1)
    diag = _check_axes("diagonal_axes", diagonal_axes, ndim)
    if trace_axes is None:
        trace = tuple(a for a in range(ndim) if a != out_axis and a not in diag)
    else:
        trace = _check_axes("trace_axes", trace_axes, ndim)
        both = sorted(set(trace) & set(diag))
        if both:
            raise ValueError(
                f"diagonal_axes: axes {both} are also in trace_axes; an axis is traced, "
                "kept on the diagonal, or kept twice"
            )
    for name, axes in (("trace_axes", trace), ("diagonal_axes", diag)):
        for a in axes:
            if out1[a] != out2[a]:
                raise ValueError(
                    f"{name}: axis {a} has size {out1[a]} in f(x1) but {out2[a]} in f(x2)"
                )
    legacy = not diag and set(trace) == set(range(ndim)) - {out_axis}
    return trace, diag, legacy


def _letters(ndim, trace, diag):
    """einsum subscripts ``(side 1, side 2, result)`` for NT's layout: per output axis,
    nothing if traced, one axis if diagonal, else the ``x1`` and the ``x2`` axis."""
    abc = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    one, two, res = [], [], []
    for a in range(ndim):
        one.append(abc[2 * a])
        two.append(abc[2 * a] if a in trace or a in diag else abc[2 * a + 1])
        if a in diag:
            res.append(abc[2 * a])
        elif a not in trace:
            res += [abc[2 * a], abc[2 * a + 1]]
    return "".join(one), "".join(two), "".join(res)


def _reduce_axes(k, out1, trace, diag):
    """``(*f(x1).shape, *f(x2).shape)`` kernel -> traces, diagonals and zipped axes,
    divided by the size of the traced axes (NT's normalisation)."""
    one, two, res = _letters(len(out1), trace, diag)
    size = math.prod(out1[a] for a in trace)
    return jnp.einsum(f"{one}{two}->{res}", k) / size


def _to_output_frame(k4, out1, out2, out_axis):
    """``(n1, n2, k, k)`` kernel of the outputs moved to batch-first and flattened ->
    ``(*f(x1).shape, *f(x2).shape)``."""
    ndim = len(out1)
    order = [out_axis] + [a for a in range(ndim) if a != out_axis]
    rest = [out1[a] for a in order[1:]]
    r = len(rest)
    k = k4.reshape(out1[out_axis], out2[out_axis], *rest, *rest)
    k = jnp.transpose(k, (0, *range(2, 2 + r), 1, *range(2 + r, 2 + 2 * r)))
    inv = [order.index(a) for a in range(ndim)]
    return jnp.transpose(k, (*inv, *(ndim + i for i in inv)))


def ntk(
    apply_fn: ApplyFn | nnx.Module,
    params: Any,
    x1: jax.Array,
    x2: jax.Array | None = None,
    method: str = "auto",
    batch_size: int | None = None,
    full: bool = False,
    *,
    trace_axes: int | Sequence[int] | None = None,
    diagonal_axes: int | Sequence[int] = (),
    vmap_axes: Any = 0,
    apply_kwargs: Mapping[str, Any] | None = None,
    mesh: Any = None,
    out: str = "device",
    path: Any = None,
    quiet: bool = True,
) -> jax.Array:
    r"""Empirical neural tangent kernel of a finite network.

    .. math::

        \Theta(x, x') = \frac{1}{k} \sum_{k} \sum_p \partial_{\theta_p} f_k(\theta, x)\,
                        \partial_{\theta_p} f_k(\theta, x')

    The trace over the ``k`` outputs is normalised (a mean), exactly as in
    neural-tangents' ``empirical_ntk_fn(f, trace_axes=(-1,))``; ``full=True`` gives
    every :math:`\Theta_{kk'}` unnormalised. Rows are assumed independent (row ``i``
    of the output depends on ``x[i]`` only) except by ``"jvp"``.

    Args:
      apply_fn: ``apply_fn(params, x) -> (n, k)`` outputs (any trailing shape is
        flattened to ``k``), or an ``nnx.Module`` (then ``params`` is ``None``; its
        ``nnx.Param`` variables are the parameters).
      params: parameter pytree, or ``None`` for a module.
      x1: inputs ``(n1, ...)``.
      x2: inputs ``(n2, ...)`` with the same feature shape; ``None`` means ``x1``.
      method: ``"jvp"``, ``"jacobian"``, ``"structured"`` or ``"auto"``. ``auto``
        takes the method of least estimated FLOPs (``"structured"`` needs at least
        one weight product; ``"jacobian"`` needs two ``(batch_size, k, P)``
        Jacobian blocks to fit in 1 GiB).
      batch_size: rows of ``x1``/``x2`` processed at a time (``None``: all). Need not
        divide ``n1``/``n2``.
      full: return the ``(n1, n2, k, k)`` kernel instead of its trace.
      trace_axes: neural-tangents' ``trace_axes``: axes of the output ``f(x)``
        (the batch axis included) over which the kernel is traced, divided by
        their total size. ``None`` (default): every axis but the batch axis and
        the ``diagonal_axes``, the default kernel above. Every output axis in
        neither ``trace_axes`` nor ``diagonal_axes`` appears twice in the result,
        the ``x1`` and the ``x2`` axis side by side (NT's zipped layout, e.g.
        ``trace_axes=()`` on ``(n, k)`` outputs gives ``(n1, n2, k, k)``).
      diagonal_axes: NT's ``diagonal_axes``: output axes on which only the
        diagonal ``x1``-axis = ``x2``-axis is kept (one axis in the result;
        the batch axis needs ``n1 == n2``).
      vmap_axes: NT's ``vmap_axes``: the batch axis of inputs and outputs, one
        int or ``(in_axes, out_axes, kwargs_axes)``; every method but ``"jvp"``
        evaluates one row at a time along it, which assumes rows do not
        interact. ``None`` assumes nothing (no batch statistics, dropout masks
        drawn for the whole batch): then only ``"jvp"`` on the whole batch
        (``method="auto"`` picks it; no ``batch_size``). Keyword arguments
        batched along an axis in ``kwargs_axes`` are handled the same way. The
        default 0 is NT's ``vmap_axes=0`` (NT's default ``None`` is slower and
        gives the same kernel for networks without interacting rows).
      apply_kwargs: keyword arguments of ``apply_fn`` (NT's
        ``**apply_fn_kwargs``, e.g. ``{"rng": key}`` for dropout): ``rng`` is the
        key for ``x1`` and, when ``x2`` is given and differs from ``x1``,
        ``jax.random.fold_in(rng, 1)`` for ``x2``; a pair ``(v1, v2)`` gives
        ``v1`` to ``x1`` and ``v2`` to ``x2``; anything else goes to both.
        Arrays are traced, other values bound statically (hashable).
      mesh: a :class:`jax.sharding.Mesh`: rows of ``x1`` are computed in
        blocks of ``batch_size`` (default 256) sharded over its devices
        (:func:`wideth.kernels.blocks.blockwise`); the result stays row-sharded.
        Default: the mesh set with :func:`jax.set_mesh`, if any.
      out: ``"device"``, or ``"host"`` to stream row blocks into host memory (a
        ``.npy`` memmap at ``path`` if given) with a progress bar unless ``quiet``.
      path: ``.npy`` file for ``out="host"``.
      quiet: hide the progress bar of ``out="host"``.

    Returns:
      ``(n1, n2)`` array, or ``(n1, n2, k, k)`` when ``full``; with
      ``trace_axes`` / ``diagonal_axes``, NT's shape (e.g. ``(n1, n2, k, k)`` for
      ``trace_axes=()``, ``(n1, n2, H, H)`` for ``(n, H, C)`` outputs and
      ``trace_axes=(-1,)``, ``(n1, n2, H)`` with also ``diagonal_axes=(1,)``).

    Raises:
      ValueError: unknown ``method``, bad ``batch_size``, mismatched feature shapes
        or non-finite inputs, axes outside the output, an axis both traced and
        diagonal, ``full`` with ``trace_axes``/``diagonal_axes``, a row-wise
        method with ``vmap_axes=None``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> f = lambda p, x: jnp.tanh(x @ p["w1"]) @ p["w2"]
      >>> p = {"w1": jnp.ones((3, 8)) / 3, "w2": jnp.ones((8, 2)) / 8}
      >>> ntk(f, p, jnp.ones((4, 3))).shape
      (4, 4)

    References:
      Jacot et al., `Neural Tangent Kernel <https://arxiv.org/abs/1806.07572>`_, 2018.
      Novak et al., `Fast Finite Width Neural Tangent Kernel
      <https://arxiv.org/abs/2206.08720>`_, 2022.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}.")
    _check_batch_size(batch_size)
    full = _checks.boolean("full", full)
    apply_fn, params = _as_functional(apply_fn, params)
    nt_axes = trace_axes is not None or diagonal_axes != ()
    if full and nt_axes:
        raise ValueError(
            "full: not combined with trace_axes/diagonal_axes (trace_axes=() keeps every "
            "output axis)"
        )
    if nt_axes or vmap_axes != 0 or apply_kwargs:
        return _ntk_nt(
            apply_fn, params, x1, x2, method, batch_size, trace_axes, diagonal_axes,
            vmap_axes, apply_kwargs, mesh, out, path, quiet,
        )  # fmt: skip
    x1, x2 = _check_inputs(x1, x2)
    _check_outputs(apply_fn, params, x1)
    same = x2 is None
    x2 = x1 if same else x2
    if method == "auto":
        b = min(batch_size or x1.shape[0], x1.shape[0])
        method = _choose(apply_fn, params, x1, b, None if same else x2, full)
    from wideth.kernels.blocks import blockwise, current_mesh

    mesh = current_mesh(mesh, x1, x2, *jax.tree.leaves(params))
    if mesh is not None or out != "device":
        block = lambda a, b: _ntk_jit(apply_fn, params, a, b, method, None, bool(full), False)
        return blockwise(
            block, x1, x2, block_size=batch_size or 256, mesh=mesh, out=out, path=path, quiet=quiet
        )
    return _ntk_jit(apply_fn, params, x1, x2, method, batch_size, bool(full), same)


def _ntk_nt(
    apply_fn, params, x1, x2, method, batch_size, trace_axes, diagonal_axes, vmap_axes,
    apply_kwargs, mesh, out, path, quiet,
):  # fmt: skip
    """:func:`ntk` with neural-tangents' axes and keyword arguments (see its docstring)."""
    st = _Setup(apply_fn, params, x1, x2, vmap_axes, apply_kwargs)
    trace, diag, legacy = _axes_plan(trace_axes, diagonal_axes, st.out1, st.out2, st.out_axis)
    if not st.independent:
        why = "vmap_axes=None" if not st.batched else "keyword arguments batched in vmap_axes"
        if method not in ("auto", "jvp"):
            raise ValueError(
                f"method: {method!r} evaluates one row at a time; with {why} only 'jvp' "
                "(on the whole batch) makes no assumption on the rows"
            )
        if batch_size is not None:
            raise ValueError(f"batch_size: must be None with {why} (rows are not separable)")
        method = "jvp"
    fn1 = st.fn if st.kw1 is None else functools.partial(_call_with, st.fn, st.kw1)
    same = st.x2 is None and st.fn2 is None and st.kw2 is None
    xa, xb = st.x1, st.x1 if st.x2 is None else st.x2
    if method == "auto":
        b = min(batch_size or xa.shape[0], xa.shape[0])
        method = _choose(fn1, params, xa, b, None if st.x2 is None else xb, not legacy)
    from wideth.kernels.blocks import blockwise, current_mesh

    mesh = current_mesh(mesh, xa, xb, *jax.tree.leaves(params))
    extra = (st.kw1, st.kw2, st.fn2)
    if mesh is not None or out != "device":
        if not legacy or not st.independent:
            raise ValueError(
                "out: blockwise kernels (mesh or out='host') take the default trace over "
                "every output axis but the batch axis, with rows independent (vmap_axes not None)"
            )
        block = lambda a, b: _ntk_jit(st.fn, params, a, b, method, None, False, False, *extra)
        return blockwise(
            block, xa, xb, block_size=batch_size or 256, mesh=mesh, out=out, path=path, quiet=quiet
        )
    k = _ntk_jit(st.fn, params, xa, xb, method, batch_size, not legacy, same, *extra)
    if legacy:
        return k
    k = _to_output_frame(k, st.out1, st.out2, st.out_axis)
    return _reduce_axes(k, st.out1, trace, diag)


def ntk_matvec(
    apply_fn: ApplyFn | nnx.Module, params: Any, x: jax.Array
) -> Callable[[jax.Array], jax.Array]:
    r"""NTK-vector product on the inputs ``x``, without building the kernel.

    .. math::

        v \mapsto \Theta v = J (J^\top v), \qquad J = \partial f(\theta, x)/\partial\theta

    Args:
      apply_fn: ``apply_fn(params, x) -> (n, k)`` or an ``nnx.Module``.
      params: parameter pytree, or ``None`` for a module.
      x: inputs ``(n, ...)``.

    Returns:
      A function ``v (n, k) -> (n, k)`` (a jitted vjp then jvp); ``v`` of shape
      ``(n,)`` is accepted when ``k == 1``.

    References:
      Novak et al., `Fast Finite Width Neural Tangent Kernel
      <https://arxiv.org/abs/2206.08720>`_, 2022.
    """
    apply_fn, params = _as_functional(apply_fn, params)
    x, _ = _check_inputs(x, None, "x")
    _check_outputs(apply_fn, params, x, "x")
    f = lambda p: _outputs(apply_fn, p, x)
    out, f_vjp = jax.vjp(f, params)

    @jax.jit
    def product(v):
        return jax.jvp(f, (params,), f_vjp(v.reshape(out.shape)))[1].reshape(v.shape)

    def matvec(v):
        v = _checks.array("v", v, kind="number")
        if v.size != out.size:
            raise ValueError(
                f"v: expected shape {out.shape} (or ({out.shape[0]},) if k == 1), got "
                f"{_checks.shape_str(v)}"
            )
        return product(v.astype(out.dtype))

    return matvec


def nngp(
    apply_fn: ApplyFn | nnx.Module,
    params: Any,
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    trace_axes: int | Sequence[int] | None = None,
    diagonal_axes: int | Sequence[int] = (),
    apply_kwargs: Mapping[str, Any] | None = None,
) -> jax.Array:
    r"""Empirical NNGP kernel: inner product of outputs or of last-layer features.

    For a function ``apply_fn`` with ``k`` outputs:

    .. math::

        K(x, x') = \frac{1}{k} \sum_{i=1}^k f_i(\theta, x) f_i(\theta, x'),

    a one-sample (per output) estimate of the NNGP kernel of the output layer. For
    an ``nnx.Module`` with a ``features(x)`` method returning the per-layer
    post-activations, the last entry :math:`\phi(x) \in \mathbb{R}^n` is used:

    .. math::

        K(x, x') = \frac{1}{n} \phi(x) \cdot \phi(x'),

    which converges to the post-activation kernel of the last hidden layer, i.e. the
    output NNGP of the same network with readout ``W_std = 1, b_std = 0``.

    Args:
      apply_fn: ``apply_fn(params, x) -> (n, k)`` or an ``nnx.Module``.
      params: parameter pytree, or ``None`` for a module.
      x1: inputs ``(n1, ...)``.
      x2: inputs ``(n2, ...)``; ``None`` means ``x1``.
      trace_axes: neural-tangents' ``trace_axes`` of ``empirical_nngp_fn``, axes
        of the array the kernel is built from (the outputs, or a module's last
        features) traced and divided by their size; ``None`` (default): every
        axis but the batch axis 0 and the ``diagonal_axes``, the mean above.
        Other axes appear twice, zipped, as in :func:`ntk`.
      diagonal_axes: NT's ``diagonal_axes`` (see :func:`ntk`).
      apply_kwargs: keyword arguments of ``apply_fn`` (or of ``features``), split
        between ``x1`` and ``x2`` as in :func:`ntk`.

    Returns:
      ``(n1, n2)`` array, or NT's shape with ``trace_axes``/``diagonal_axes``.

    References:
      Lee et al., `Deep Neural Networks as Gaussian Processes
      <https://arxiv.org/abs/1711.00165>`_, 2018.
    """
    x1, x2 = _check_inputs(x1, x2)
    nt_axes = trace_axes is not None or diagonal_axes != () or bool(apply_kwargs)
    kw1, kw2 = _split_kwargs(apply_kwargs, x1, x2)
    same = x2 is None and all(kw2[k] is kw1[k] for k in kw1)
    x2 = x1 if x2 is None else x2
    if isinstance(apply_fn, nnx.Module) and callable(getattr(apply_fn, "features", None)):
        if params is not None:
            raise TypeError("params: must be None when an nnx.Module is given (it holds them).")
        apply_fn, params = functional.features(apply_fn)
    else:
        apply_fn, params = _as_functional(apply_fn, params)
    if not nt_axes:
        _check_outputs(apply_fn, params, x1)
        return _nngp_outputs(apply_fn, params, x1, x2)
    _checks.evaluate_shape(
        "apply_fn", lambda p, x: apply_fn(p, x, **kw1), params, x1, what="apply_fn(params, x1)"
    )
    f1 = apply_fn(params, x1, **kw1)
    f2 = f1 if same else apply_fn(params, x2, **kw2)
    shape1, shape2 = tuple(f1.shape), tuple(f2.shape)
    if len(shape1) < 1 or shape1[0] != x1.shape[0]:
        raise ValueError(
            f"apply_fn: expected outputs with one row per row of x1 ({x1.shape[0]}), got {shape1}"
        )
    trace, diag, _ = _axes_plan(trace_axes, diagonal_axes, shape1, shape2, 0)
    one, two, res = _letters(len(shape1), trace, diag)
    return jnp.einsum(f"{one},{two}->{res}", f1, f2) / math.prod(shape1[a] for a in trace)


@functools.partial(jax.jit, static_argnames=("apply_fn",))
def _nngp_outputs(apply_fn, params, x1, x2):
    f1, f2 = _outputs(apply_fn, params, x1), _outputs(apply_fn, params, x2)
    return f1 @ f2.T / f1.shape[1]
