r"""Flax NNX models with neural-tangents' parameterizations: MLP, CNN, ResNet.

Every layer is an affine map with a stored weight :math:`w`, a stored bias
:math:`\beta` and two static multipliers,

.. math::

    y = m_w\, (x \cdot w) + m_b\, \beta ,

and the ``parameterization`` decides how the scale is split between the
initial distribution and the multipliers (:math:`n` = fan-in of the layer,
for a convolution ``in_channels * prod(filter_shape)``):

* ``"ntk"``: :math:`w, \beta \sim \mathcal N(0, 1)`, :math:`m_w = \sigma_w/\sqrt n`,
  :math:`m_b = \sigma_b`;
* ``"standard"``: :math:`w \sim \mathcal N(0, \sigma_w^2/n)`,
  :math:`\beta \sim \mathcal N(0, \sigma_b^2)`, :math:`m_w = m_b = 1`;
* ``"mup"``: as ``"standard"`` except the readout, :math:`w \sim \mathcal N(0, \sigma_w^2)`
  with :math:`m_w = 1/n`.

``"ntk"`` and ``"standard"`` are exactly neural-tangents' ``stax.Dense`` /
``stax.Conv`` (same shapes, same distributions, same forward formula), so an
:class:`MLP` in ``"ntk"`` parameterization has the init distribution of
:func:`wideth.kernels.analytic.mlp` with the same ``W_std``, ``b_std``,
``activation`` and its empirical NTK converges to the analytic one as the width
grows (Jacot et al. 2018). ``"standard"`` has the same NNGP but a different
NTK/training dynamics (Sohl-Dickstein et al. 2020).

``"mup"`` is the maximal-update parameterization (Yang & Hu 2021) in the
multiplier form of the ``mup`` package: hidden and input layers are initialised
with variance :math:`\sigma_w^2/\text{fan-in}`, the readout is multiplied by
:math:`1/\text{width}` (so the output is :math:`O(n^{-1/2})` at init), and the
per-parameter learning-rate multipliers of :func:`mup_multipliers` complete it.

Theory code gets pure functions through :func:`functional` (split once, merge
inside).

References:
  Jacot, Gabriel, Hongler, `Neural Tangent Kernel
  <https://arxiv.org/abs/1806.07572>`_, 2018.
  Novak et al., `Neural Tangents <https://arxiv.org/abs/1912.02803>`_, 2020.
  Sohl-Dickstein et al., `On the infinite width limit of neural networks with a
  standard parameterization <https://arxiv.org/abs/2001.07301>`_, 2020.
  Yang & Hu, `Feature Learning in Infinite-Width Neural Networks (Tensor
  Programs IV) <https://arxiv.org/abs/2011.14522>`_, 2021.
  Yang et al., `Tuning Large Neural Networks via Zero-Shot Hyperparameter
  Transfer (Tensor Programs V) <https://arxiv.org/abs/2203.03466>`_, 2021.
  He et al., `Deep Residual Learning <https://arxiv.org/abs/1512.03385>`_, 2016.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from wideth import _checks, activations
from wideth.functional import functional
from wideth.kernels.analytic import _pos_emb_covariance, _pos_emb_spec

__all__ = [
    "ACTIVATIONS",
    "CNN",
    "MLP",
    "PARAMETERIZATIONS",
    "ConvLayer",
    "ConvResNet",
    "DenseLayer",
    "ResNet",
    "SelfAttention",
    "Transformer",
    "activation_fn",
    "functional",
    "mup_labels",
    "mup_multipliers",
    "scale_by_multipliers",
]

#: Activation names accepted by the models (the :mod:`wideth.activations` registry).
ACTIVATIONS = tuple(activations.ACTIVATIONS)
#: Parameterizations accepted by the models.
PARAMETERIZATIONS = ("ntk", "standard", "mup")


def activation_fn(name: Any) -> Callable[[jax.Array], jax.Array]:
    """The elementwise nonlinearity called ``name`` (one of :data:`ACTIVATIONS`).

    Args:
      name: a :mod:`wideth.activations` name (``"relu"``, ``"tanh"``, ``"erf"``,
        ``"gelu"`` (exact), ``"identity"``, ``"sigmoid"``, ...) or a
        ``(name, kwargs)`` pair such as ``("leaky_relu", {"alpha": 0.1})``.

    Returns:
      A function ``x -> phi(x)``.

    Raises:
      ValueError: unknown name.
    """
    return activations.resolve(name, arg="name").fn


def _activation_spec(activation: Any) -> Any:
    """A name stays a name; a ``(name, kwargs)`` pair becomes a hashable ``Activation``."""
    return activation if isinstance(activation, str) else activations.resolve(activation)


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    return _checks.positive_int(name, value, minimum)


def _check_common(
    activation: str, W_std: float, b_std: float, parameterization: str, rngs: Any = None
) -> None:
    activations.resolve(activation)
    _checks.choice("parameterization", parameterization, PARAMETERIZATIONS)
    _checks.scalar("W_std", W_std, 0.0)
    if b_std is not None:
        _checks.scalar("b_std", b_std, 0.0)
    _check_rngs(rngs)


def _check_rngs(rngs: Any) -> None:
    if rngs is not None and not isinstance(rngs, nnx.Rngs):
        raise TypeError(f"rngs: expected an nnx.Rngs (e.g. nnx.Rngs(0)), got {rngs!r}")


def _is_sequence(value: Any) -> bool:
    """A per-layer sequence (list, tuple, 1-d array), not one number or name."""
    return isinstance(value, Sequence | np.ndarray) and not isinstance(value, str | bytes)


def _check_alpha(alpha: Any, depth: int) -> float:
    if alpha is None:
        return float(1.0 / math.sqrt(max(depth, 1)))
    return float(_checks.scalar("alpha", alpha))


def _scales(
    fan_in: int, W_std: float, b_std: float | None, parameterization: str, readout: bool
) -> tuple[float, float, float, float]:
    """(w_init_std, w_mult, b_init_std, b_mult) for one layer (``b_std=None``: scales of 0)."""
    if b_std is None:
        return _scales(fan_in, W_std, 0.0, parameterization, readout)
    if parameterization == "ntk":
        return 1.0, W_std / math.sqrt(fan_in), 1.0, b_std
    if parameterization == "mup" and readout:
        return W_std, 1.0 / fan_in, b_std, 1.0
    return W_std / math.sqrt(fan_in), 1.0, b_std, 1.0


class DenseLayer(nnx.Module):
    r"""Affine layer :math:`y = m_w\, x w + m_b\, \beta` (see the module docstring).

    Args:
      in_dim: input features :math:`n` (fan-in).
      out_dim: output features.
      W_std: :math:`\sigma_w`.
      b_std: :math:`\sigma_b`.
      parameterization: ``"ntk"``, ``"standard"`` or ``"mup"``.
      readout: whether this is the last layer (matters for ``"mup"`` only).
      rngs: ``nnx.Rngs`` with a ``params`` stream.

    In ``"ntk"`` parameterization with ``b_std=0`` the stored bias is still
    :math:`\mathcal N(0,1)` but multiplied by 0, hence inert (zero gradient), as
    in neural-tangents. ``b_std=None`` stores no bias at all (``b`` is ``None``),
    neural-tangents' ``Dense(b_std=None)``: in the ``standard`` parameterization
    this removes the bias's contribution of 1 per layer to the NTK.

    Attributes:
      w: ``nnx.Param`` of shape ``(in_dim, out_dim)``.
      b: ``nnx.Param`` of shape ``(out_dim,)``.
      role: ``"input"``, ``"hidden"`` or ``"readout"`` (set by the containing model).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        W_std: float = 2**0.5,
        b_std: float | None = 0.0,
        parameterization: str = "ntk",
        readout: bool = False,
        role: str = "hidden",
        rngs: nnx.Rngs,
    ):
        _check_common("identity", W_std, b_std, parameterization, rngs)
        in_dim = _check_positive_int("in_dim", in_dim)
        out_dim = _check_positive_int("out_dim", out_dim)
        _checks.choice("role", role, ("input", "hidden", "readout"))
        w_std, self.w_mult, bs, self.b_mult = _scales(
            in_dim, W_std, b_std, parameterization, readout
        )
        k_w, k_b = jax.random.split(rngs.params())
        self.w = nnx.Param(w_std * jax.random.normal(k_w, (in_dim, out_dim), jnp.float32))
        self.b = (
            None
            if b_std is None
            else nnx.Param(bs * jax.random.normal(k_b, (out_dim,), jnp.float32))
        )
        self.in_dim, self.out_dim, self.role = in_dim, out_dim, role

    def __call__(self, x: jax.Array) -> jax.Array:
        """``(..., in_dim) -> (..., out_dim)``; ``x`` is checked as the models check it."""
        return self._forward(_check_features(x, self.in_dim, "(..., in_dim)"))

    def _forward(self, x: jax.Array) -> jax.Array:
        """The affine map without input checks (the containing model checked ``x``)."""
        out = jnp.dot(x, self.w[...])
        if self.w_mult != 1.0:
            out = self.w_mult * out
        if self.b is None:
            return out
        b = self.b[...]
        if self.b_mult != 1.0:
            b = self.b_mult * b
        return out + b


class ConvLayer(nnx.Module):
    r"""Convolution on ``(n, H, W, C)`` inputs (SAME or VALID, any strides), NT's ``stax.Conv``.

    :math:`y = m_w\, (x \star w) + m_b\, \beta` with fan-in
    ``in_channels * prod(filter_shape)``; kernel stored as ``HWIO``.

    Args:
      in_channels: input channels.
      out_channels: output channels.
      filter_shape: spatial filter shape, e.g. ``(3, 3)``.
      strides: spatial strides (default 1).
      padding: ``"SAME"`` or ``"VALID"``.
      W_std: :math:`\sigma_w`.
      b_std: :math:`\sigma_b`.
      parameterization: ``"ntk"``, ``"standard"`` or ``"mup"``.
      role: ``"input"`` or ``"hidden"``.
      rngs: ``nnx.Rngs``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        filter_shape: Sequence[int] = (3, 3),
        *,
        strides: Sequence[int] | None = None,
        padding: str = "SAME",
        W_std: float = 2**0.5,
        b_std: float | None = 0.0,
        parameterization: str = "ntk",
        role: str = "hidden",
        rngs: nnx.Rngs,
    ):
        _check_common("identity", W_std, b_std, parameterization, rngs)
        in_channels = _check_positive_int("in_channels", in_channels)
        out_channels = _check_positive_int("out_channels", out_channels)
        _checks.choice("role", role, ("input", "hidden", "readout"))
        self.filter_shape = tuple(_check_positive_int("filter_shape", f) for f in filter_shape)
        nd = len(self.filter_shape)
        self.strides = (1,) * nd if strides is None else _checks.int_sequence("strides", strides)
        if len(self.strides) != nd:
            raise ValueError(
                f"strides: expected {nd} entries like filter_shape, got {self.strides}"
            )
        self.padding = _checks.choice("padding", padding, ("SAME", "VALID"))
        fan_in = in_channels * int(np.prod(self.filter_shape))
        w_std, self.w_mult, bs, self.b_mult = _scales(fan_in, W_std, b_std, parameterization, False)
        k_w, k_b = jax.random.split(rngs.params())
        shape = (*self.filter_shape, in_channels, out_channels)
        self.w = nnx.Param(w_std * jax.random.normal(k_w, shape, jnp.float32))
        self.b = (
            None
            if b_std is None
            else nnx.Param(bs * jax.random.normal(k_b, (out_channels,), jnp.float32))
        )
        self.in_dim, self.out_dim, self.role = in_channels, out_channels, role

    def __call__(self, x: jax.Array) -> jax.Array:
        """``(n, *spatial, in_channels) -> (n, *spatial', out_channels)``; ``x`` is checked."""
        nd = len(self.filter_shape)
        x = _check_features(x, self.in_dim, "(n, *spatial, in_channels)", ndim=nd + 2)
        return self._forward(x)

    def _forward(self, x: jax.Array) -> jax.Array:
        """The convolution without input checks (the containing model checked ``x``)."""
        nd = len(self.filter_shape)
        spec = "N" + "HWD"[:nd] + "C"
        dn = jax.lax.conv_dimension_numbers(
            x.shape, self.w[...].shape, (spec, "HWD"[:nd] + "IO", spec)
        )
        out = jax.lax.conv_general_dilated(
            x, self.w[...], self.strides, self.padding, dimension_numbers=dn
        )
        if self.w_mult != 1.0:
            out = self.w_mult * out
        if self.b is None:
            return out
        b = self.b[...]
        if self.b_mult != 1.0:
            b = self.b_mult * b
        return out + b


def _layer_norm(h: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Parameter-free layer norm over the last axis, neural-tangents' ``stax.LayerNorm``."""
    mean = jnp.mean(h, axis=-1, keepdims=True)
    var = jnp.var(h, axis=-1, keepdims=True)
    return (h - mean) / jnp.sqrt(eps + var)


def _check_features(x: Any, in_dim: int, name: str, ndim: int | None = None) -> jax.Array:
    """``x`` as a real array of rank ``ndim`` (at least 1) whose last axis has
    ``in_dim`` entries, finite when concrete (under jit/vmap ``x`` is a tracer and
    only its shape and dtype are checked)."""
    x = _checks.array("x", x, kind="real", check_finite=False)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"x: expected shape {name}, got {tuple(x.shape)}")
    if x.ndim < 1 or x.shape[-1] != in_dim:
        raise ValueError(f"x: expected shape {name} with last dimension {in_dim}, got {x.shape}")
    _checks.finite("x", x)
    return x


class MLP(nnx.Module):
    r"""Fully connected network: ``depth`` hidden layers of widths :math:`n_1, \dots, n_D`.

    .. math::

        h^1 = L_1(x),\quad h^{l+1} = L_{l+1}(\phi_l(h^l)),\quad f(x) = L_{D+1}(\phi_D(h^D))

    with affine layers :math:`L_l` as in the module docstring (fan-in
    :math:`n_{l-1}`, :math:`n_0 = d`). ``width``, ``activation``, ``W_std`` and
    ``b_std`` are one value for every layer or one per layer, with exactly the
    conventions of :func:`wideth.kernels.analytic.mlp`: in ``"ntk"``
    parameterization ``MLP(d, width, depth, out_dim, activation=..., W_std=...,
    b_std=...)`` is ``analytic.mlp(depth, width, activation, W_std, b_std,
    "ntk", out_dim)`` (same init distribution and forward map as
    neural-tangents' ``stax.serial(Dense(n_1), phi_1, ..., Dense(out_dim))``),
    and its kernels converge to that builder's as every :math:`n_l \to \infty`.

    Args:
      in_dim: input dimension ``d``; inputs have shape ``(n, d)``.
      width: hidden width, one int or a sequence of ``depth`` ints
        (e.g. ``(512, 256, 128)`` with ``depth=3``).
      depth: number of hidden layers (0 = linear model).
      out_dim: number of outputs.
      activation: one of :data:`ACTIVATIONS` (or a ``(name, kwargs)`` pair), or a
        sequence of ``depth`` of them.
      W_std: weight standard deviation :math:`\sigma_w` (default :math:`\sqrt 2`,
        He), one value or ``depth + 1`` (the last is the readout's).
      b_std: bias standard deviation :math:`\sigma_b`, likewise; ``None`` (or a
        ``None`` entry): no bias.
      parameterization: ``"ntk"``, ``"standard"`` or ``"mup"``.
      rngs: ``nnx.Rngs`` (uses the ``params`` stream).

    Attributes:
      widths: the hidden widths, a tuple of ``depth`` ints.
      width: the common hidden width (an int) when ``width`` was one int or all
        entries are equal, else the tuple ``widths``.

    Raises:
      ValueError / TypeError: a size that is not a positive integer, a per-layer
        sequence of the wrong length (named in the message).

    Examples:
      >>> from flax import nnx
      >>> net = MLP(4, 32, 2, out_dim=3, rngs=nnx.Rngs(0))
      >>> net(jnp.ones((5, 4))).shape
      (5, 3)
      >>> [h.shape for h in net.features(jnp.ones((5, 4)))]
      [(5, 32), (5, 32)]
      >>> net = MLP(4, (64, 16), 2, activation=("relu", "erf"), W_std=(1.4, 1.2, 1.0),
      ...           rngs=nnx.Rngs(0))
      >>> [h.shape for h in net.features(jnp.ones((5, 4)))]
      [(5, 64), (5, 16)]

    References:
      Lee et al., Deep Neural Networks as Gaussian Processes, 2018.
      Jacot et al., Neural Tangent Kernel, 2018.
    """

    def __init__(
        self,
        in_dim: int,
        width: int | Sequence[int],
        depth: int,
        out_dim: int = 1,
        *,
        activation: Any = "relu",
        W_std: float | Sequence[float] = 2**0.5,
        b_std: float | None | Sequence[float | None] = 0.0,
        parameterization: str = "ntk",
        rngs: nnx.Rngs,
    ):
        _checks.choice("parameterization", parameterization, PARAMETERIZATIONS)
        _check_rngs(rngs)
        self.in_dim = _check_positive_int("in_dim", in_dim)
        self.depth = _check_positive_int("depth", depth, minimum=0)
        self.out_dim = _check_positive_int("out_dim", out_dim)
        self.widths = tuple(_checks.layer_sizes("width", width, self.depth))
        activations.per_layer(activation, self.depth)  # validates names, count, parameters
        ws, bs = _checks.layer_stds(W_std, b_std, self.depth + 1)
        if not _is_sequence(width):
            self.width: int | tuple[int, ...] = _check_positive_int("width", width)
        else:
            self.width = self.widths[0] if len(set(self.widths)) == 1 else self.widths
        if activations.is_single(activation):
            self.activation: Any = _activation_spec(activation)
            self._layer_activations = (self.activation,) * self.depth
        else:
            self.activation = tuple(_activation_spec(a) for a in activation)
            self._layer_activations = self.activation
        self.parameterization = parameterization
        self.W_std = tuple(ws) if _is_sequence(W_std) else ws[0]
        self.b_std = tuple(bs) if _is_sequence(b_std) else bs[0]
        dims = [self.in_dim, *self.widths]
        kw = dict(parameterization=parameterization, rngs=rngs)
        self.hidden = nnx.List(
            [
                DenseLayer(
                    dims[i],
                    dims[i + 1],
                    W_std=ws[i],
                    b_std=bs[i],
                    role="input" if i == 0 else "hidden",
                    **kw,
                )
                for i in range(self.depth)
            ]
        )
        self.readout = DenseLayer(
            dims[-1], self.out_dim, W_std=ws[-1], b_std=bs[-1], readout=True, role="readout", **kw
        )

    def features(self, x: jax.Array) -> list[jax.Array]:
        """Post-activations :math:`\\phi_l(h^l)` of the hidden layers.

        Args:
          x: inputs ``(n, in_dim)``.

        Returns:
          List of ``depth`` arrays, the ``l``-th of shape ``(n, widths[l])``.
        """
        x = _check_features(x, self.in_dim, "(n, in_dim)")
        feats = []
        h = x
        for layer, act in zip(self.hidden, self._layer_activations, strict=True):
            h = activation_fn(act)(layer._forward(h))
            feats.append(h)
        return feats

    def __call__(self, x: jax.Array) -> jax.Array:
        """Outputs ``(n, out_dim)`` for inputs ``(n, in_dim)``."""
        feats = self.features(x)
        return self.readout._forward(feats[-1] if feats else jnp.asarray(x))


class ResNet(nnx.Module):
    r"""Residual MLP: ``depth`` pre-activation blocks of one dense layer each.

    .. math::

        h^0 = L_0(x),\quad h^{l} = h^{l-1} + \alpha\, L_l(\phi(N(h^{l-1}))),
        \quad f(x) = L_{\rm out}(\phi(N(h^D))),

    with :math:`N` the identity (``layernorm=None``) or a parameter-free layer
    norm over features, :math:`N(h) = (h - \bar h)/\sqrt{\mathrm{var}(h) +
    10^{-12}}` (``"pre"``); ``"post"`` normalises after the sum instead,
    :math:`h^l = N(h^{l-1} + \alpha L_l(\phi(h^{l-1})))`, readout
    :math:`L_{\rm out}(\phi(h^D))`. In ``"ntk"``/``"standard"``
    parameterization this is exactly :func:`wideth.kernels.analytic.resnet`
    with the same arguments (neural-tangents' ``LayerNorm`` forward map).
    :math:`\alpha = 1/\sqrt{D}` by default, so the forward variance stays
    bounded in depth (:math:`\prod_l (1 + \alpha^2 c) \le e^{c}`) instead of
    relying on criticality, and gradients reach the first layer through the
    identity path. It has the same number of nonlinear hidden layers as
    ``MLP(in_dim, width, depth, ...)`` plus one linear embedding, so the two are
    the natural same-depth pair for trainability diagnostics.

    Args:
      in_dim: input dimension.
      width: residual stream width.
      depth: number of residual blocks :math:`D`.
      out_dim: number of outputs.
      activation: one of :data:`ACTIVATIONS`.
      W_std: :math:`\sigma_w` of every layer.
      b_std: :math:`\sigma_b` of every layer.
      parameterization: ``"ntk"``, ``"standard"`` or ``"mup"``.
      alpha: branch multiplier; ``None`` means :math:`1/\sqrt{\max(D, 1)}`.
      layernorm: ``None``, ``"pre"`` or ``"post"``.
      rngs: ``nnx.Rngs``.

    References:
      He et al., Deep Residual Learning for Image Recognition, 2016; Identity
      Mappings in Deep Residual Networks, 2016.
      Hayou et al., `Stable ResNet <https://arxiv.org/abs/2010.12859>`_, 2021.
    """

    def __init__(
        self,
        in_dim: int,
        width: int,
        depth: int,
        out_dim: int = 1,
        *,
        activation: str = "relu",
        W_std: float = 2**0.5,
        b_std: float | None = 0.0,
        parameterization: str = "ntk",
        alpha: float | None = None,
        layernorm: str | None = None,
        rngs: nnx.Rngs,
    ):
        if layernorm not in (None, "pre", "post"):
            raise ValueError(f"layernorm: expected one of (None, 'pre', 'post'), got {layernorm!r}")
        self.layernorm = layernorm
        _check_common(activation, W_std, b_std, parameterization, rngs)
        self.in_dim = _check_positive_int("in_dim", in_dim)
        self.width = _check_positive_int("width", width)
        self.depth = _check_positive_int("depth", depth, minimum=0)
        self.out_dim = _check_positive_int("out_dim", out_dim)
        self.activation, self.parameterization = _activation_spec(activation), parameterization
        self.alpha = _check_alpha(alpha, self.depth)
        kw = dict(W_std=W_std, b_std=b_std, parameterization=parameterization, rngs=rngs)
        self.embed = DenseLayer(self.in_dim, self.width, role="input", **kw)
        self.blocks = nnx.List(
            [DenseLayer(self.width, self.width, **kw) for _ in range(self.depth)]
        )
        self.readout = DenseLayer(self.width, self.out_dim, readout=True, role="readout", **kw)

    def features(self, x: jax.Array) -> list[jax.Array]:
        """Post-activations :math:`\\phi(h^l)`, :math:`l = 0..D`.

        Args:
          x: inputs ``(n, in_dim)``.

        Returns:
          List of ``depth + 1`` arrays ``(n, width)``.
        """
        x = _check_features(x, self.in_dim, "(n, in_dim)")
        phi = activation_fn(self.activation)
        pre = _layer_norm if self.layernorm == "pre" else (lambda z: z)
        h = self.embed._forward(x)
        feats = [phi(pre(h))]
        for block in self.blocks:
            h = h + self.alpha * block._forward(feats[-1])
            if self.layernorm == "post":
                h = _layer_norm(h)
            feats.append(phi(pre(h)))
        return feats

    def __call__(self, x: jax.Array) -> jax.Array:
        """Outputs ``(n, out_dim)`` for inputs ``(n, in_dim)``."""
        return self.readout._forward(self.features(x)[-1])


def _conv_setup(
    module, in_channels, channels, out_dim, depth, activation, W_std, b_std,
    parameterization, filter_shape, rngs,
) -> dict[str, Any]:  # fmt: skip
    """Validate and store the arguments :class:`CNN` and :class:`ConvResNet` share
    (``in_dim``, ``width``, ``out_dim``, ``depth``, ``activation``,
    ``parameterization``, ``filter_shape``); return the layers' keyword arguments."""
    _check_common(activation, W_std, b_std, parameterization, rngs)
    module.in_dim = _check_positive_int("in_channels", in_channels)
    module.width = _check_positive_int("channels", channels)
    module.out_dim = _check_positive_int("out_dim", out_dim)
    module.depth = _check_positive_int("depth", depth, minimum=0)
    module.activation, module.parameterization = _activation_spec(activation), parameterization
    module.filter_shape = _checks.int_sequence("filter_shape", filter_shape)
    return dict(W_std=W_std, b_std=b_std, parameterization=parameterization, rngs=rngs)


class CNN(nnx.Module):
    r"""Convolutional network on ``(n, H, W, C)`` images, NT's :func:`analytic.cnn` architecture.

    ``depth`` blocks ``Conv(channels, filter_shape, SAME) -> activation``, then
    global average pooling (``pool="global"``), average / sum pooling over
    ``pool_window`` with ``pool_strides`` (default: the window) and
    ``pool_padding`` then flattening (``"avg"``, ``"sum"``), or flattening
    (``"flatten"``) (these three need ``spatial=(H, W)``), then a dense
    readout. In ``"ntk"``
    parameterization it has the init distribution of
    ``wideth.kernels.analytic.cnn(depth, channels, activation, W_std, b_std, "ntk",
    out_dim, filter_shape, pool, padding=..., strides=..., pool_window=...,
    pool_strides=..., pool_padding=...)`` (``padding`` SAME or VALID).

    Args:
      in_channels: input channels ``C``.
      channels: channels of every conv layer.
      out_dim: number of outputs.
      depth: number of conv layers.
      activation: one of :data:`ACTIVATIONS`.
      W_std: :math:`\sigma_w`.
      b_std: :math:`\sigma_b`.
      parameterization: ``"ntk"``, ``"standard"`` or ``"mup"``.
      filter_shape: conv filter shape.
      pool: ``"global"``, ``"avg"``, ``"sum"`` or ``"flatten"``.
      spatial: ``(H, W)`` of the inputs, required unless ``pool="global"``.
      padding: ``"SAME"`` or ``"VALID"`` (all conv layers).
      strides: conv strides (all conv layers; default 1).
      pool_window: window of ``"avg"``/``"sum"`` (default ``(2, 2)``).
      pool_strides: its strides (default ``pool_window``).
      pool_padding: ``"SAME"`` or ``"VALID"``.
      rngs: ``nnx.Rngs``.

    Examples:
      >>> from flax import nnx
      >>> net = CNN(1, 8, 10, rngs=nnx.Rngs(0))
      >>> net(jnp.ones((2, 8, 8, 1))).shape
      (2, 10)

    References:
      Novak et al., Bayesian Deep Convolutional Networks with Many Channels are
      Gaussian Processes, 2019.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        out_dim: int = 1,
        depth: int = 2,
        *,
        activation: str = "relu",
        W_std: float = 2**0.5,
        b_std: float | None = 0.0,
        parameterization: str = "ntk",
        filter_shape: Sequence[int] = (3, 3),
        pool: str = "global",
        spatial: Sequence[int] | None = None,
        padding: str = "SAME",
        strides: Sequence[int] | None = None,
        pool_window: Sequence[int] | None = None,
        pool_strides: Sequence[int] | None = None,
        pool_padding: str = "VALID",
        rngs: nnx.Rngs,
    ):
        kw = _conv_setup(
            self, in_channels, channels, out_dim, depth, activation, W_std, b_std,
            parameterization, filter_shape, rngs,
        )  # fmt: skip
        _checks.choice("pool", pool, ("global", "avg", "sum", "flatten"))
        if pool != "global" and spatial is None:
            raise ValueError(f"spatial: (H, W) of the inputs is required with pool={pool!r}")
        self.pool = pool
        self.spatial = None if spatial is None else _checks.int_sequence("spatial", spatial)
        nd = len(self.filter_shape)
        self.padding = _checks.choice("padding", padding, ("SAME", "VALID"))
        self.pool_padding = _checks.choice("pool_padding", pool_padding, ("SAME", "VALID"))
        self.strides = (1,) * nd if strides is None else _checks.int_sequence("strides", strides)
        self.pool_window = (
            (2,) * nd if pool_window is None else _checks.int_sequence("pool_window", pool_window)
        )
        self.pool_strides = (
            self.pool_window
            if pool_strides is None
            else _checks.int_sequence("pool_strides", pool_strides)
        )
        chans = [self.in_dim] + [self.width] * self.depth
        self.convs = nnx.List(
            [
                ConvLayer(
                    chans[i],
                    chans[i + 1],
                    self.filter_shape,
                    strides=self.strides,
                    padding=self.padding,
                    role="input" if i == 0 else "hidden",
                    **kw,
                )
                for i in range(self.depth)
            ]
        )
        fan_in = chans[-1] * (1 if pool == "global" else int(np.prod(self._out_spatial())))
        self.readout = DenseLayer(fan_in, self.out_dim, readout=True, role="readout", **kw)

    def _out_spatial(self) -> tuple[int, ...]:
        """Spatial shape entering the readout (after the convs and the pooling)."""

        def window(n, k, s, padding):
            return -(-n // s) if padding == "SAME" else (n - k) // s + 1

        shape = list(self.spatial)
        for _ in range(self.depth):
            shape = [
                window(n, k, s, self.padding)
                for n, k, s in zip(shape, self.filter_shape, self.strides, strict=True)
            ]
        if self.pool in ("avg", "sum"):
            shape = [
                window(n, k, s, self.pool_padding)
                for n, k, s in zip(shape, self.pool_window, self.pool_strides, strict=True)
            ]
        return tuple(shape)

    def features(self, x: jax.Array) -> list[jax.Array]:
        """Post-activations of the conv layers, ``depth`` arrays ``(n, H', W', channels)``."""
        nd = len(self.filter_shape)
        x = _check_features(x, self.in_dim, "(n, H, W, in_channels)", ndim=nd + 2)
        if self.spatial is not None and tuple(x.shape[1:-1]) != self.spatial:
            raise ValueError(f"x: expected spatial shape {self.spatial}, got {x.shape[1:-1]}")
        phi = activation_fn(self.activation)
        feats, h = [], x
        for conv in self.convs:
            h = phi(conv._forward(h))
            feats.append(h)
        return feats

    def __call__(self, x: jax.Array) -> jax.Array:
        """Outputs ``(n, out_dim)`` for images ``(n, H, W, in_channels)``."""
        feats = self.features(x)
        h = feats[-1] if feats else jnp.asarray(x)
        if self.pool == "global":
            h = jnp.mean(h, axis=tuple(range(1, h.ndim - 1)))
        else:
            if self.pool in ("avg", "sum"):
                dims = (1, *self.pool_window, 1)
                h = jax.lax.reduce_window(
                    h, 0.0, jax.lax.add, dims, (1, *self.pool_strides, 1), self.pool_padding
                )
                if self.pool == "avg":  # NT's AvgPool(normalize_edges=False)
                    h = h / float(np.prod(self.pool_window))
            h = h.reshape(h.shape[0], -1)
        return self.readout._forward(h)


class ConvResNet(nnx.Module):
    r"""Convolutional residual network on ``(n, H, W, C)`` images.

    .. math::

        h^0 = C_0(x),\quad h^{l} = h^{l-1} + \alpha\, C_l(\phi(h^{l-1})),
        \quad f(x) = L_{\rm out}(\operatorname{GAP}(\phi(h^D))),

    with SAME-padded convolutions :math:`C_l` (NT ``stax.Conv`` scaling),
    global average pooling and a dense readout; :math:`\alpha = 1/\sqrt{D}`
    by default. The convolutional counterpart of :class:`ResNet`, to compare
    with ``CNN(in_channels, channels, out_dim, depth, ...)``.

    Args:
      in_channels: input channels.
      channels: channels of the residual stream.
      out_dim: number of outputs.
      depth: number of residual blocks :math:`D`.
      activation: one of :data:`ACTIVATIONS`.
      W_std: :math:`\sigma_w`.
      b_std: :math:`\sigma_b`.
      parameterization: ``"ntk"``, ``"standard"`` or ``"mup"``.
      filter_shape: conv filter shape.
      alpha: branch multiplier; ``None`` means :math:`1/\sqrt{\max(D, 1)}`.
      rngs: ``nnx.Rngs``.

    References:
      He et al., Identity Mappings in Deep Residual Networks, 2016.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        out_dim: int = 1,
        depth: int = 2,
        *,
        activation: str = "relu",
        W_std: float = 2**0.5,
        b_std: float | None = 0.0,
        parameterization: str = "ntk",
        filter_shape: Sequence[int] = (3, 3),
        alpha: float | None = None,
        rngs: nnx.Rngs,
    ):
        kw = _conv_setup(
            self, in_channels, channels, out_dim, depth, activation, W_std, b_std,
            parameterization, filter_shape, rngs,
        )  # fmt: skip
        self.alpha = _check_alpha(alpha, self.depth)
        self.embed = ConvLayer(self.in_dim, self.width, self.filter_shape, role="input", **kw)
        self.blocks = nnx.List(
            [ConvLayer(self.width, self.width, self.filter_shape, **kw) for _ in range(self.depth)]
        )
        self.readout = DenseLayer(self.width, self.out_dim, readout=True, role="readout", **kw)

    def features(self, x: jax.Array) -> list[jax.Array]:
        """Post-activations :math:`\\phi(h^l)`, :math:`l = 0..D`.

        Args:
          x: images ``(n, H, W, in_channels)``.

        Returns:
          List of ``depth + 1`` arrays ``(n, H, W, channels)``.
        """
        x = _check_features(
            x, self.in_dim, "(n, H, W, in_channels)", ndim=len(self.filter_shape) + 2
        )
        phi = activation_fn(self.activation)
        h = self.embed._forward(x)
        feats = [phi(h)]
        for block in self.blocks:
            h = h + self.alpha * block._forward(feats[-1])
            feats.append(phi(h))
        return feats

    def __call__(self, x: jax.Array) -> jax.Array:
        """Outputs ``(n, out_dim)`` for images ``(n, H, W, in_channels)``."""
        h = self.features(x)[-1]
        return self.readout._forward(jnp.mean(h, axis=tuple(range(1, h.ndim - 1))))


def _check_mask(mask: Any, shape: tuple[int, ...]) -> jax.Array | None:
    """A boolean ``(n, T)`` token mask for inputs of shape ``(n, T, d)``, or ``None``."""
    if mask is None:
        return None
    mask = _checks.array("mask", mask, shape=shape[:2], kind="any", check_finite=False)
    if mask.dtype != jnp.bool_:
        raise TypeError(f"mask: expected a boolean array, got dtype {mask.dtype}")
    return mask


class SelfAttention(nnx.Module):
    r"""Multi-head self-attention with tied queries and keys, NT's ``GlobalSelfAttention``.

    For tokens :math:`x \in \mathbb R^{T \times n}`, head :math:`h`:
    :math:`k^h = x K^h`, queries = keys, logits :math:`\sigma_{qk}^2 k^h (k^h)^\top
    / (n\, n_k)`, weights :math:`A^h = \mathrm{mechanism}(\text{logits})`, output
    :math:`\sigma_w \sigma_v\, [A^1 x V^1, \dots, A^H x V^H] W_O /
    \sqrt{n_v H n} + \sigma_b b` with :math:`K, V, W_O, b \sim \mathcal N(0, 1)`
    (always the ``ntk`` parameterization, ``linear_scaling=True`` in NT; the
    head outputs are concatenated value-major, as NT reshapes them).

    Args:
      in_dim: token features :math:`n`.
      out_dim: output features.
      n_heads: heads :math:`H`.
      key_dim: :math:`n_k`; value_dim: :math:`n_v` (default ``out_dim``).
      W_std: :math:`\sigma_w` (output weights); W_value_std: :math:`\sigma_v`;
      W_qk_std: :math:`\sigma_{qk}`; b_std: :math:`\sigma_b` or ``None``.
      mechanism: ``"softmax"``, ``"identity"``, ``"abs"`` or ``"relu"``.
      tokens: sequence length :math:`T` (needed by positional embeddings).
      pos_emb_type: neural-tangents' positional embeddings, with
        ``pos_emb_p_norm``, ``pos_emb_decay_fn``, ``n_chan_pos_emb``,
        ``W_pos_emb_std`` and ``val_pos_emb`` as
        in :func:`wideth.kernels.analytic.transformer`: a trained parameter
        :math:`p \in \mathbb R^{T \times n_{pe}}`, :math:`\mathcal N(0, 1)` at
        init, used as :math:`\sigma_{pe} L p` (:math:`L L^\top = R`, the
        Cholesky factor of the position covariance; :math:`L = I` without a
        decay), zero at masked tokens, added to the tokens (``"sum"``) or
        appended to their channels (``"concat"``) for the keys and queries, and
        for the values when ``val_pos_emb``. The fan-ins in the logit and
        output scales are those of the inputs actually used (with the
        embedding channels for ``"concat"``), as in NT.
      rngs: ``nnx.Rngs``.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        n_heads: int,
        *,
        key_dim: int | None = None,
        value_dim: int | None = None,
        W_std: float = 1.0,
        W_value_std: float = 1.0,
        W_qk_std: float = 1.0,
        b_std: float | None = None,
        mechanism: str = "softmax",
        tokens: int | None = None,
        pos_emb_type: str = "none",
        pos_emb_p_norm: float = 2.0,
        pos_emb_decay_fn: Callable[[Any], Any] | None = None,
        n_chan_pos_emb: int | None = None,
        W_pos_emb_std: float = 1.0,
        val_pos_emb: bool = False,
        rngs: nnx.Rngs,
    ):
        self.in_dim = _check_positive_int("in_dim", in_dim)
        self.out_dim = _check_positive_int("out_dim", out_dim)
        self.n_heads = _check_positive_int("n_heads", n_heads)
        self.key_dim = self.out_dim if key_dim is None else _check_positive_int("key_dim", key_dim)
        self.value_dim = (
            self.out_dim if value_dim is None else _check_positive_int("value_dim", value_dim)
        )
        self.mechanism = _checks.choice(
            "mechanism", mechanism, ("softmax", "identity", "abs", "relu")
        )
        self.qk = float(_checks.scalar("W_qk_std", W_qk_std, 0.0)) ** 2
        self.ov = float(_checks.scalar("W_std", W_std, 0.0)) * float(
            _checks.scalar("W_value_std", W_value_std, 0.0)
        )
        self.b_std = None if b_std is None else float(_checks.scalar("b_std", b_std, 0.0))
        self.pe = _pos_emb_spec(
            pos_emb_type, pos_emb_p_norm, pos_emb_decay_fn, n_chan_pos_emb, W_pos_emb_std,
            val_pos_emb, self.in_dim,
        )  # fmt: skip
        self.tokens = None if tokens is None else _check_positive_int("tokens", tokens)
        if self.pe.kind != "none" and self.tokens is None:
            raise ValueError(
                f"tokens: the sequence length is required with pos_emb_type={self.pe.kind!r}"
            )
        _check_common("identity", 1.0, None, "ntk", rngs)
        k_k, k_v, k_o, k_b = jax.random.split(rngs.params(), 4)
        normal = lambda k, s: nnx.Param(jax.random.normal(k, s, jnp.float32))
        n_pe = self.pe.channels(self.in_dim) if self.pe.kind == "concat" else 0
        keys_in, values_in = self.in_dim + n_pe, self.in_dim + (n_pe if self.pe.values else 0)
        self.key = normal(k_k, (self.n_heads, keys_in, self.key_dim))
        self.value = normal(k_v, (self.n_heads, values_in, self.value_dim))
        self.out = normal(k_o, (self.value_dim * self.n_heads, self.out_dim))
        self.b = None if b_std is None else normal(k_b, (self.out_dim,))
        self.pos_emb = None
        if self.pe.kind != "none":
            shape = (1, self.tokens, self.pe.channels(self.in_dim))
            self.pos_emb = nnx.data(normal(rngs.params(), shape))
        self.role = "hidden"

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """``(n, T, in_dim) -> (n, T, out_dim)``.

        ``mask``: optional boolean ``(n, T)``, ``True`` for tokens to ignore
        (padding), neural-tangents' masking: masked inputs are zeroed and masked
        tokens are never attended to (softmax logits :math:`-10^{20}`, other
        mechanisms: weight 0). Their own outputs are not zeroed (a following
        layer does that, as in ``stax``).
        """
        x = _checks.array("x", x, ndim=3, kind="float")
        if x.shape[-1] != self.in_dim:
            raise ValueError(
                f"x: expected shape (n, T, in_dim) with last dimension {self.in_dim}, "
                f"got {tuple(x.shape)}"
            )
        return self._forward(x, _check_mask(mask, x.shape))

    def _forward(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        """The attention layer without input checks (the containing model checked them)."""
        if mask is not None:
            x = jnp.where(mask[..., None], jnp.zeros((), x.dtype), x)
        x_keys, x_values = self._with_positions(x, mask)
        keys = jnp.einsum("nti,hik->hntk", x_keys, self.key[...])
        values = jnp.einsum("nti,hiv->hntv", x_values, self.value[...])
        scale_qk = self.qk / (x_keys.shape[-1] * self.key_dim)
        logits = keys @ jnp.swapaxes(keys, -1, -2) * scale_qk
        if mask is not None:  # mask the keys: (n, T) -> (1, n, 1, T)
            fill = -1e20 if self.mechanism == "softmax" else 0.0
            logits = jnp.where(mask[None, :, None, :], jnp.asarray(fill, logits.dtype), logits)
        weights = {
            "softmax": lambda g: jax.nn.softmax(g, axis=-1),
            "identity": lambda g: g,
            "abs": jnp.abs,
            "relu": jax.nn.relu,
        }[self.mechanism](logits)
        heads = jnp.moveaxis(weights @ values, 0, -1)  # (n, T, value_dim, H)
        heads = heads.reshape(heads.shape[:-2] + (self.value_dim * self.n_heads,))
        scale = self.ov / math.sqrt(self.value_dim * self.n_heads * x_values.shape[-1])
        out = scale * (heads @ self.out[...])
        return out if self.b is None else out + self.b_std * self.b[...]

    def _with_positions(self, x: jax.Array, mask: jax.Array | None) -> tuple[jax.Array, jax.Array]:
        """The inputs of the keys/queries and of the values, with the embeddings."""
        if self.pos_emb is None:
            return x, x
        if x.shape[1] != self.tokens:
            raise ValueError(
                f"x: expected sequences of length tokens={self.tokens} with positional "
                f"embeddings, got shape {tuple(x.shape)}"
            )
        p = self.pos_emb[...].astype(x.dtype)
        if self.pe.decay_fn is not None:  # correlate over positions: L L^T = R
            r = _pos_emb_covariance(self.tokens, self.pe.p_norm, self.pe.decay_fn, x.dtype)
            p = jnp.einsum("ts,bsc->btc", jnp.linalg.cholesky(r), p)
        p = jnp.broadcast_to(p, (x.shape[0], *p.shape[1:]))
        if mask is not None:
            p = jnp.where(mask[..., None], jnp.zeros((), p.dtype), p)
        p = self.pe.std * p
        with_p = x + p if self.pe.kind == "sum" else jnp.concatenate([x, p], axis=-1)
        return with_p, (with_p if self.pe.values else x)


class Transformer(nnx.Module):
    r"""Attention network on token sequences ``(n, T, d)``: :func:`analytic.transformer`'s model.

    .. math::

        h^0 = L_0(x),\quad g^l = N(h^{l-1} + \mathrm{Attn}_l(h^{l-1})),\quad
        h^l = N(g^l + L_l(\phi(g^l))),\quad f = L_{\rm out}(\mathrm{pool}(h^D)),

    with :class:`SelfAttention` (``width`` key/value features per head),
    :math:`N` the identity or a parameter-free layer norm (``layernorm="post"``)
    and token-mean (``pool="global"``) or flatten (``"flatten"``, needs
    ``tokens``) pooling. With the same arguments it has exactly the init
    distribution and forward map of ``wideth.kernels.analytic.transformer``.
    (:func:`mup_labels` does not label attention parameters.)

    Args:
      in_dim: token features ``d``.
      width: stream width, keys and values per head.
      depth: blocks.
      out_dim: outputs.
      n_heads: attention heads.
      activation: MLP sublayer nonlinearity.
      W_std, b_std, parameterization: of the dense layers (attention: ``ntk``).
      mechanism, W_qk_std, W_value_std: of the attention (see :class:`SelfAttention`).
      layernorm: ``None`` or ``"post"``.
      pool: ``"global"`` or ``"flatten"``.
      tokens: sequence length ``T`` (``pool="flatten"`` and positional embeddings).
      pos_emb_type: positional embeddings of every attention layer, with
        ``pos_emb_p_norm``, ``pos_emb_decay_fn``, ``n_chan_pos_emb``,
        ``W_pos_emb_std`` and ``val_pos_emb`` (see :class:`SelfAttention`;
        default ``"none"``), as in :func:`wideth.kernels.analytic.transformer`.
      rngs: ``nnx.Rngs``.

    References:
      Hron et al., Infinite attention: NNGP and NTK for deep attention networks, 2020.
    """

    def __init__(
        self,
        in_dim: int,
        width: int,
        depth: int,
        out_dim: int = 1,
        n_heads: int = 4,
        *,
        activation: str = "relu",
        W_std: float = 2**0.5,
        b_std: float | None = 0.0,
        parameterization: str = "ntk",
        mechanism: str = "softmax",
        W_qk_std: float = 1.0,
        W_value_std: float = 1.0,
        layernorm: str | None = None,
        pool: str = "global",
        tokens: int | None = None,
        pos_emb_type: str = "none",
        pos_emb_p_norm: float = 2.0,
        pos_emb_decay_fn: Callable[[Any], Any] | None = None,
        n_chan_pos_emb: int | None = None,
        W_pos_emb_std: float = 1.0,
        val_pos_emb: bool = False,
        rngs: nnx.Rngs,
    ):
        _check_common(activation, W_std, b_std, parameterization, rngs)
        self.in_dim = _check_positive_int("in_dim", in_dim)
        self.width = _check_positive_int("width", width)
        self.depth = _check_positive_int("depth", depth, minimum=0)
        self.out_dim = _check_positive_int("out_dim", out_dim)
        if layernorm not in (None, "post"):
            raise ValueError(f"layernorm: expected None or 'post', got {layernorm!r}")
        self.layernorm = layernorm
        self.pool = _checks.choice("pool", pool, ("global", "flatten"))
        if pool == "flatten" and tokens is None:
            raise ValueError("tokens: the sequence length is required with pool='flatten'")
        pe = dict(
            pos_emb_type=pos_emb_type, pos_emb_p_norm=pos_emb_p_norm,
            pos_emb_decay_fn=pos_emb_decay_fn, n_chan_pos_emb=n_chan_pos_emb,
            W_pos_emb_std=W_pos_emb_std, val_pos_emb=val_pos_emb,
        )  # fmt: skip
        spec = _pos_emb_spec(*pe.values(), self.width)
        if spec.kind != "none" and tokens is None:
            raise ValueError(
                f"tokens: the sequence length is required with pos_emb_type={spec.kind!r}"
            )
        self.tokens = None if tokens is None else _check_positive_int("tokens", tokens)
        self.activation, self.parameterization = _activation_spec(activation), parameterization
        kw = dict(W_std=W_std, b_std=b_std, parameterization=parameterization, rngs=rngs)
        self.embed = DenseLayer(self.in_dim, self.width, role="input", **kw)
        self.attention = nnx.List(
            [
                SelfAttention(
                    self.width,
                    self.width,
                    n_heads,
                    W_std=W_std,
                    W_value_std=W_value_std,
                    W_qk_std=W_qk_std,
                    b_std=b_std,
                    mechanism=mechanism,
                    tokens=self.tokens,
                    **pe,
                    rngs=rngs,
                )
                for _ in range(self.depth)
            ]
        )
        self.mlp = nnx.List([DenseLayer(self.width, self.width, **kw) for _ in range(self.depth)])
        fan_in = self.width * (1 if pool == "global" else self.tokens)
        self.readout = DenseLayer(fan_in, self.out_dim, readout=True, role="readout", **kw)

    def features(self, x: jax.Array, mask: jax.Array | None = None) -> list[jax.Array]:
        """The residual stream after the embedding and after each block, ``(n, T, width)``.

        With a ``mask`` (boolean ``(n, T)``, ``True`` = padding) every layer sees
        zeros at masked tokens and attention ignores them (neural-tangents'
        ``mask_constant`` semantics); the returned features are zero there.
        """
        x = _check_features(x, self.in_dim, "(n, T, in_dim)", ndim=3)
        return self._features(x, _check_mask(mask, x.shape))

    def _features(self, x: jax.Array, mask: jax.Array | None) -> list[jax.Array]:
        """:meth:`features` of checked inputs."""
        if mask is None:
            zero = lambda z: z
        else:
            zero = lambda z: jnp.where(mask[..., None], jnp.zeros((), z.dtype), z)
        phi = activation_fn(self.activation)
        norm = _layer_norm if self.layernorm else (lambda z: z)
        h = zero(self.embed._forward(zero(x)))
        feats = [h]
        for attention, dense in zip(self.attention, self.mlp, strict=True):
            g = zero(norm(h + zero(attention._forward(h, mask))))
            h = zero(norm(g + zero(dense._forward(zero(phi(g))))))
            feats.append(h)
        return feats

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        r"""Outputs ``(n, out_dim)`` for sequences ``(n, T, in_dim)``.

        ``mask``: optional boolean ``(n, T)``, ``True`` for padding tokens, as
        neural-tangents' ``apply_fn(..., mask_constant=c)`` and
        ``kernel_fn(..., mask_constant=c)`` with the masked tokens filled with
        ``c``: they are zeroed before every layer, never attended to, and
        ``pool="global"`` averages over the unmasked tokens only.

        Raises:
          ValueError: with ``pool="global"``, a concrete ``mask`` that masks
            every token of a sequence (the mean over no tokens is undefined).

        Note:
          A traced ``mask`` (under ``jit``/``vmap``) cannot be checked: a fully
          masked sequence then pools to zero features, so its output is the
          readout bias :math:`\sigma_b b` (0 without biases), finite, as the
          ``masked_value`` neural-tangents' ``apply_fn`` returns for it (NT
          flags that output as masked; its ``kernel_fn`` gives it zero kernel
          rows). With ``pool="flatten"`` such a sequence is allowed and gives
          the same output.
        """
        x = _check_features(x, self.in_dim, "(n, T, in_dim)", ndim=3)
        if self.pool == "flatten" and x.shape[1] != self.tokens:
            raise ValueError(
                f"x: expected sequences of length tokens={self.tokens} with "
                f"pool='flatten', got shape {tuple(x.shape)}"
            )
        mask = _check_mask(mask, x.shape)
        if self.pool == "global" and mask is not None and not _checks.is_tracer(mask):
            empty = np.flatnonzero(np.all(np.asarray(mask), axis=1))
            if empty.size:
                raise ValueError(
                    "mask: expected at least one unmasked token per sequence with "
                    f"pool='global', got fully masked sequences {empty.tolist()}"
                )
        h = self._features(x, mask)[-1]
        if self.pool == "flatten":
            h = h.reshape(h.shape[0], -1)
        elif mask is None:
            h = jnp.mean(h, axis=1)
        else:  # masked tokens are zero in h; a fully masked (traced) sequence pools to 0
            count = jnp.sum(~mask, axis=1, keepdims=True).astype(h.dtype)
            h = jnp.sum(h, axis=1) / jnp.maximum(count, 1.0)
        return self.readout._forward(h)


# ----------------------------------------------------------------------------- functional


# ``functional`` is wideth.functional.functional, re-exported: one NNX boundary.


# ----------------------------------------------------------------------------- muP

# Learning-rate multipliers of muP relative to the base learning rate, as powers
# of width_mult = width / base_width, for the multiplier form used here
# (hidden init 1/fan_in, readout forward multiplier 1/width). Tensor Programs V,
# Table 3 (SGD and Adam columns), translated through the readout multiplier.
_MUP_POWERS = {
    "sgd": {"input": 1.0, "bias": 1.0, "hidden": 0.0, "readout": 1.0, "readout_bias": 0.0},
    "adam": {"input": 0.0, "bias": 0.0, "hidden": -1.0, "readout": 0.0, "readout_bias": 0.0},
}


def mup_labels(module: nnx.Module) -> Any:
    """Role label of every parameter: a pytree like ``functional(module)[1]`` of strings.

    Labels: ``"input"`` (first-layer weights), ``"hidden"`` (width x width
    weights, incl. residual blocks), ``"readout"`` (last-layer weights),
    ``"bias"`` (input/hidden biases), ``"readout_bias"``. Usable directly with
    ``optax.multi_transform(transforms, mup_labels(module))``.

    Args:
      module: an :class:`MLP`, :class:`ResNet` or :class:`CNN` (any module whose
        parameters live in :class:`DenseLayer` / :class:`ConvLayer`).

    Returns:
      ``nnx.State`` of strings with the structure of the parameters.
    """
    if not isinstance(module, nnx.Module):
        raise TypeError(f"module: expected an nnx.Module, got {type(module)}")
    roles = {
        path: m.role for path, m in nnx.iter_graph(module) if isinstance(m, DenseLayer | ConvLayer)
    }
    if not roles:
        raise ValueError("module: has no DenseLayer/ConvLayer parameters to label")
    _, params = nnx.split(module, nnx.Param)
    labels = []
    for path, _ in nnx.to_flat_state(params):
        role = roles.get(tuple(path[:-1]))
        if role is None or path[-1] not in ("w", "b"):
            raise ValueError(f"module: parameter {path} is outside DenseLayer/ConvLayer")
        if path[-1] == "b":
            role = "readout_bias" if role == "readout" else "bias"
        labels.append(role)
    return jax.tree.unflatten(jax.tree.structure(params), labels)


def mup_multipliers(
    module: nnx.Module, optimizer: str = "sgd", base_width: float | None = None
) -> Any:
    r"""Per-parameter muP learning-rate multipliers, a pytree like the parameters.

    For a model built with ``parameterization="mup"`` (hidden/input init
    variance :math:`\sigma_w^2/\text{fan-in}`, readout forward multiplier
    :math:`1/n`), the update of parameter :math:`p` with role :math:`r` uses the
    learning rate :math:`\eta\, m_r` with :math:`m_r = (n/n_0)^{e_r}`,
    :math:`n` = ``module.width``, :math:`n_0` = ``base_width``:

    ===============  ==============  ===============
    role             SGD :math:`e`   Adam :math:`e`
    ===============  ==============  ===============
    input weights    1               0
    biases           1               0
    hidden weights   0               -1
    readout weights  1               0
    readout bias     0               0
    ===============  ==============  ===============

    (Tensor Programs V, Table 3, with the output layer rewritten in the
    multiplier form: init :math:`\mathcal N(0,\sigma_w^2)` times :math:`1/n` has
    the effective :math:`1/n^2` variance, and its SGD rate gains a factor
    :math:`n^2` from the multiplier, hence :math:`n \cdot n^{-1}\cdot n`.) With
    these, a base rate :math:`\eta` tuned at width :math:`n_0` transfers across
    widths and every layer's features move by :math:`\Theta(1)` per step.

    Convention: SGD, ``optax.chain(optax.sgd(lr), scale_by_multipliers(m))``;
    Adam, ``optax.chain(optax.adam(lr), scale_by_multipliers(m))``
    (the Adam update is linear in the learning rate, so scaling the update is
    scaling the rate). The labels of :func:`mup_labels` give the same with
    ``optax.multi_transform``.

    Args:
      module: a model from this module (``width`` attribute; the role of each
        layer is known).
      optimizer: ``"sgd"`` or ``"adam"``.
      base_width: width :math:`n_0` at which all multipliers are 1; ``None``
        means 1 (absolute powers of the width).

    Returns:
      ``nnx.State`` of Python floats with the structure of ``functional(module)[1]``.

    References:
      Yang et al., Tensor Programs V, 2021 (Table 3 and Appendix B).
    """
    if not isinstance(module, nnx.Module):
        raise TypeError(f"module: expected an nnx.Module, got {type(module).__name__}")
    if optimizer not in _MUP_POWERS:
        raise ValueError(f"optimizer must be one of {tuple(_MUP_POWERS)}, got {optimizer!r}")
    width = getattr(module, "width", None)
    if width is None:
        raise ValueError("module: needs a `width` attribute (MLP, ResNet or CNN)")
    if not isinstance(width, int):
        raise ValueError(
            f"module: muP multipliers need one hidden width, got per-layer widths {width}"
        )
    base = (
        1.0
        if base_width is None
        else float(_checks.scalar("base_width", base_width, 0.0, low_open=True))
    )
    ratio = width / base
    powers = _MUP_POWERS[optimizer]
    return jax.tree.map(lambda r: float(ratio ** powers[r]), mup_labels(module))


def scale_by_multipliers(multipliers: Any) -> optax.GradientTransformation:
    r"""Multiply each update leaf by a fixed scalar: :math:`u_p \leftarrow m_p u_p`.

    Args:
      multipliers: pytree of floats with the structure of the parameters, e.g.
        :func:`mup_multipliers`.

    Returns:
      A stateless ``optax.GradientTransformation``.

    Raises:
      TypeError / ValueError: ``multipliers`` without leaves, with non-numeric,
        non-finite or negative leaves (a negative rate would ascend); the
        update raises ``ValueError`` for updates whose tree differs from it.
    """
    _checks.arrays_tree("multipliers", multipliers)
    for leaf in jax.tree.leaves(multipliers):
        _checks.in_range("multipliers", leaf, 0.0)

    def init_fn(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params
        _checks.same_structure(
            "multipliers", updates, multipliers, "updates with the structure of the multipliers"
        )
        return jax.tree.map(lambda m, u: jnp.asarray(m, u.dtype) * u, multipliers, updates), state

    return optax.GradientTransformation(init_fn, update_fn)
