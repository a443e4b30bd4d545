r"""An MLP whose depth is an array: one program for a whole grid of depths.

Trainability and signal-propagation sweeps (Schoenholz et al. 2017) train
networks of many depths :math:`L` and weight variances :math:`\sigma_w^2`. With
an NNX module per depth every depth is a new program; here the hidden layers
are stored stacked, ``w_h`` of shape ``(max_depth - 1, n, n)``, and applied by
one ``lax.scan`` in which hidden layer :math:`l` (1-based past the input layer)
acts iff :math:`l < L`:

.. math::

    a^0 = \phi(x W_{\rm in} + b_{\rm in}), \qquad
    a^{l} = \begin{cases} \phi(a^{l-1} W_l + b_l) & l < L \\ a^{l-1} & l \ge L\end{cases},
    \qquad f(x) = a^{\max L - 1} W_{\rm out} + b_{\rm out}.

So ``depth`` may be traced: ``jax.vmap`` over depths (and over
:math:`\sigma_w^2`, which :func:`init` also takes as an array) trains every
network of the grid in one compiled program. The skipped layers' parameters get
exactly zero gradient, so an optimiser without weight decay leaves them at
their initial values.

Standard parameterisation (the one of Schoenholz et al. and Poole et al.):
:math:`W_{ij} \sim \mathcal N(0, \sigma_w^2/\text{fan-in})`,
:math:`b_i \sim \mathcal N(0, \sigma_b^2)`. With the same weights, :func:`apply`
at ``depth = L`` equals ``wideth.models.MLP(in_dim, width, L, out_dim,
parameterization="standard")``.

References:
  Schoenholz, Gilmer, Ganguli & Sohl-Dickstein, Deep Information Propagation, ICLR 2017.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from wideth import _checks, activations

__all__ = ["apply", "init"]


def _std(name: str, value: Any) -> jax.Array:
    """A non-negative scalar standard deviation; traced values pass unchecked."""
    if _checks.is_tracer(value):
        if jnp.ndim(value) != 0:
            raise ValueError(f"{name}: expected a scalar, got shape {jnp.shape(value)}")
        return value
    return jnp.asarray(_checks.scalar(name, value, 0.0), jnp.float32)


def init(
    key: jax.Array,
    in_dim: int,
    width: int,
    max_depth: int,
    out_dim: int = 1,
    *,
    W_std: float | jax.Array = 2**0.5,
    b_std: float | jax.Array = 0.0,
) -> dict[str, jax.Array]:
    r"""Stacked standard-parameterisation weights for depths ``1 .. max_depth``.

    Args:
      key: PRNG key.
      in_dim, width, out_dim: input features, hidden width :math:`n`, outputs.
      max_depth: the deepest network (number of hidden layers) :func:`apply` can run.
      W_std: :math:`\sigma_w`, a scalar that may be traced (vmap over a grid).
      b_std: :math:`\sigma_b`, likewise.

    Returns:
      a dict of arrays: ``w_in`` ``(in_dim, n)``, ``b_in`` ``(n,)``, ``w_h``
      ``(max_depth - 1, n, n)``, ``b_h`` ``(max_depth - 1, n)``, ``w_out``
      ``(n, out_dim)``, ``b_out`` ``(out_dim,)``, with
      :math:`W \sim \mathcal N(0, \sigma_w^2/\text{fan-in})`,
      :math:`b \sim \mathcal N(0, \sigma_b^2)`.

    Raises:
      ValueError / TypeError: a bad key, size or standard deviation.
    """
    key = _checks.prng_key("key", key)
    in_dim = _checks.positive_int("in_dim", in_dim)
    width = _checks.positive_int("width", width)
    max_depth = _checks.positive_int("max_depth", max_depth)
    out_dim = _checks.positive_int("out_dim", out_dim)
    sw, sb = _std("W_std", W_std), _std("b_std", b_std)
    ks = jax.random.split(key, 6)
    normal = jax.random.normal
    return {
        "w_in": sw / jnp.sqrt(in_dim) * normal(ks[0], (in_dim, width)),
        "b_in": sb * normal(ks[1], (width,)),
        "w_h": sw / jnp.sqrt(width) * normal(ks[2], (max_depth - 1, width, width)),
        "b_h": sb * normal(ks[3], (max_depth - 1, width)),
        "w_out": sw / jnp.sqrt(width) * normal(ks[4], (width, out_dim)),
        "b_out": sb * normal(ks[5], (out_dim,)),
    }


_KEYS = ("w_in", "b_in", "w_h", "b_h", "w_out", "b_out")


def apply(
    params: dict[str, jax.Array], x: jax.Array, depth: int | jax.Array, activation: Any = "relu"
) -> jax.Array:
    r"""Outputs ``(n_inputs, out_dim)`` of the depth-``depth`` network (see the module docstring).

    Args:
      params: from :func:`init`.
      x: ``(n_inputs, in_dim)`` inputs (finite when concrete).
      depth: number of hidden layers, ``1 <= depth <= max_depth``; may be traced
        (then it is not range-checked: a larger value runs ``max_depth`` layers).
      activation: a :mod:`wideth.activations` name or ``(name, kwargs)`` pair.

    Raises:
      ValueError / TypeError: ``params`` not from :func:`init`, ``x`` of the
        wrong shape or non-finite, ``depth`` out of range.
    """
    if not isinstance(params, dict) or set(params) != set(_KEYS):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise TypeError(f"params: expected the dict of wideth.stacked.init {_KEYS}, got {got}")
    w_h = params["w_h"]
    in_dim, max_depth = params["w_in"].shape[0], w_h.shape[0] + 1
    x = _checks.array("x", x, ndim=2, kind="real")
    if x.shape[1] != in_dim:
        raise ValueError(f"x: expected shape (n, {in_dim}), got {tuple(x.shape)}")
    if not _checks.is_tracer(depth):
        if isinstance(depth, jax.Array) and depth.ndim == 0 and depth.dtype.kind in "iu":
            depth = int(depth)  # a concrete integer array, e.g. one row of a depth grid
        depth = _checks.integer("depth", depth, minimum=1, maximum=max_depth)
    elif jnp.ndim(depth) != 0:
        raise ValueError(f"depth: expected a scalar, got shape {jnp.shape(depth)}")
    phi = activations.resolve(activation, arg="activation").fn
    a = phi(x @ params["w_in"] + params["b_in"])

    def layer(a, lwb):
        l, w, b = lwb
        return jnp.where(l + 1 < depth, phi(a @ w + b), a), None

    a, _ = jax.lax.scan(layer, a, (jnp.arange(max_depth - 1), w_h, params["b_h"]))
    return a @ params["w_out"] + params["b_out"]
