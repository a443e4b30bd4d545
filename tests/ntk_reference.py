"""Independent reference for empirical NTK tests: one whole-batch Jacobian, contracted.

:math:`\\Theta_{kl}(x^1_i, x^2_j) = \\sum_p J^1_{ikp} J^2_{jlp}` with ``J`` the
``jax.jacrev`` of the batch output flattened to ``(n, k, P)``. The routes of
``wideth.kernels.empirical`` are exact rewritings of the same sum, so in float64
only rounding separates them.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def dense_ntk(apply_fn, params, x1, x2):
    """``(n1, n2, k, k)`` NTK from whole-batch Jacobians of ``apply_fn(params, x)``."""

    def flat(x):
        jac = jax.jacrev(lambda p: apply_fn(p, x).reshape(x.shape[0], -1))(params)
        n, k = x.shape[0], jax.tree.leaves(jac)[0].shape[1]
        return jnp.concatenate([j.reshape(n, k, -1) for j in jax.tree.leaves(jac)], -1)

    return jnp.einsum("ikp,jlp->ijkl", flat(x1), flat(x2))


def rel_err(a, ref) -> float:
    """max |a - ref| / max |ref| (shapes must agree)."""
    a, ref = np.asarray(a), np.asarray(ref)
    assert a.shape == ref.shape, (a.shape, ref.shape)
    return float(np.max(np.abs(a - ref)) / np.max(np.abs(ref)))


def f64_functional(module):
    """``(apply_fn, params)`` of ``module`` with its floating leaves cast to float64."""
    cast = lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a
    module = jax.tree.map(cast, module)
    graphdef, params = nnx.split(module, nnx.Param)
    return (lambda p, x: nnx.merge(graphdef, p)(x)), params


def assert_close(a, ref, tol: float = 1e-10) -> None:
    """``rel_err(a, ref) < tol``."""
    err = rel_err(a, ref)
    assert err < tol, err


def load_nt_transformer_params(net, nt_params, b_std):
    """Copy a neural-tangents transformer's parameters, in order, into ``models.Transformer``."""
    leaves = iter(jax.tree.leaves(nt_params))

    def load(layer, names):
        for name in names:
            var = getattr(layer, name)
            var[...] = jnp.asarray(next(leaves), var[...].dtype).reshape(var[...].shape)

    bias = () if b_std is None else ("b",)
    load(net.embed, ("w", *bias))
    for attention, dense in zip(net.attention, net.mlp, strict=True):
        pos = () if attention.pos_emb is None else ("pos_emb",)  # NT: (..., b, pos_emb)
        load(attention, ("key", "value", "out", *bias, *pos))
        load(dense, ("w", *bias))
    load(net.readout, ("w", *bias))
    assert next(leaves, None) is None
