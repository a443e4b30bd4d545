r"""Infinite-width NNGP and NTK kernels of MLPs and CNNs (neural-tangents stax).

The builders return neural-tangents' ``(init_fn, apply_fn, kernel_fn)`` triple:
``init_fn``/``apply_fn`` define a finite network and ``kernel_fn`` its
infinite-width limit. For a dense layer with :math:`n` inputs in the ``ntk``
parameterization

.. math::

    h^{l+1} = \frac{\sigma_w}{\sqrt{n}} W^{l+1} \phi(h^l) + \sigma_b b^{l+1},
    \qquad W_{ij}, b_i \sim \mathcal N(0, 1),

the NNGP kernel and the NTK obey the recursions (Lee et al. 2018; Jacot et
al. 2018)

.. math::

    K^{l+1}(x, x') &= \sigma_w^2\, \mathbb E_{(u,v) \sim \mathcal N(0, K^l)}
        [\phi(u)\phi(v)] + \sigma_b^2, \\
    \Theta^{l+1}(x, x') &= K^{l+1}(x, x') + \sigma_w^2\, \mathbb E
        [\phi'(u)\phi'(v)]\, \Theta^l(x, x'),

with :math:`K^0 = \Theta^0 = \sigma_w^2 x^\top x' / d + \sigma_b^2` after the
first layer. For ReLU these are the arc-cosine kernels (Cho & Saul 2009), for
erf the arcsin kernel (Williams 1997). tanh has no closed form and no stax
layer: it is a ``stax.Elementwise`` layer whose two kernel integrals are a
two-dimensional trapezoidal rule of :data:`TANH_POINTS` points per axis (more
accurate than neural-tangents' Gauss--Hermite ``ElementwiseNumerical`` at the
same cost; errors are listed at :data:`TANH_POINTS`).

:func:`kernel` evaluates a ``kernel_fn`` on data with input validation, row and
column batching through ``nt.batch`` (any ``batch_size``, padding as needed)
and optional float64.

References:
    Lee et al., `Deep Neural Networks as Gaussian Processes
    <https://arxiv.org/abs/1711.00165>`_, 2018.
    Jacot et al., `Neural Tangent Kernel: Convergence and Generalization in
    Neural Networks <https://arxiv.org/abs/1806.07572>`_, 2018.
    Cho & Saul, `Kernel Methods for Deep Learning
    <https://papers.nips.cc/paper/3628-kernel-methods-for-deep-learning>`_, 2009.
    Williams, `Computing with Infinite Networks
    <https://papers.nips.cc/paper/1197-computing-with-infinite-networks>`_, 1997.
    Novak et al., `Neural Tangents: Fast and Easy Infinite Neural Networks in
    Python <https://arxiv.org/abs/1912.02803>`_, 2020.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wideth import _checks, _compat, activations

__all__ = ["ACTIVATIONS", "TANH_POINTS", "cnn", "kernel", "mlp"]

#: Activation names accepted by :func:`mlp` and :func:`cnn`.
ACTIVATIONS = ("relu", "erf", "tanh", "gelu", "identity")

#: Quadrature points per axis of the tanh layer (trapezoidal rule on
#: :math:`z \in [-8, 8]`, i.e. spacing :math:`h = 0.254`). Cost:
#: ``TANH_POINTS**2`` evaluations of tanh per kernel entry and layer. Measured
#: relative error of NNGP/NTK against a 801x801-point reference
#: (``tests/test_analytic.py``): 2e-8 / 2e-7 for one hidden layer with
#: pre-activation variances up to ~2.6; 5e-4 / 1e-3 for three layers with a
#: first-layer variance of ~10 (the error grows with the variance :math:`q` like
#: :math:`e^{-\pi^2/(h\sqrt q)}`, tanh having poles at :math:`\pm i\pi/2`).
#: neural-tangents' ``ElementwiseNumerical`` (Gauss--Hermite) at the same cost
#: is 100--1000x less accurate on the same tests (2e-5 / 1e-4 and 6e-3 / 2e-2).
TANH_POINTS = 64
_TANH_ZMAX = 8.0

_PARAMETERIZATIONS = ("ntk", "standard")
_GETS = ("nngp", "ntk")
_POOLS = ("global", "avg", "flatten")

Triple = tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]


def _gauss_pair(f, cov12, var1, var2, num: int):
    """E[f(u) f(v)], (u, v) ~ N(0, [[var1, cov12], [cov12, var2]]), trapezoidal rule."""
    z = jnp.linspace(-_TANH_ZMAX, _TANH_ZMAX, num, dtype=jnp.result_type(cov12, float))
    w = jnp.exp(-0.5 * z**2)
    w = w / jnp.sum(w)
    s1 = jnp.sqrt(var1)
    r = cov12 / jnp.where(s1 > 0, s1, 1.0)
    s2 = jnp.sqrt(jnp.maximum(var2 - r**2, 0.0))
    fu = f(s1 * z)
    fv = f(r * z[:, None] + s2 * z[None, :])
    return (w * fu) @ (fv @ w)


def _tanh_layer(stax: Any, num: int) -> Any:
    r"""tanh with kernels :math:`E[\tanh u \tanh v]`, :math:`E[\tanh' u \tanh' v]`.

    Writes :math:`u = \sqrt{q_1} z_1`, :math:`v = r z_1 + s z_2` (Cholesky) and
    integrates over :math:`(z_1, z_2)` with a ``num x num`` trapezoidal rule.
    """
    sech2 = lambda x: 1.0 - jnp.tanh(x) ** 2
    return stax.Elementwise(
        jnp.tanh,
        lambda c, v1, v2: _gauss_pair(jnp.tanh, c, v1, v2, num),
        lambda c, v1, v2: _gauss_pair(sech2, c, v1, v2, num),
    )


def _activation_layer(stax: Any, activation: str, tanh_points: int) -> Any:
    if activation == "relu":
        return stax.Relu()
    if activation == "erf":
        return stax.Erf()
    if activation == "tanh":
        return _tanh_layer(stax, tanh_points)
    if activation == "gelu":
        return stax.Gelu(approximate=False)
    return stax.Identity()


def _check_common(
    depth: int, activation: str, W_std: float, b_std: float, parameterization: str, out_dim: int
) -> None:
    _checks.nonnegative_int("depth", depth)
    activations.canonical(activation, ACTIVATIONS)
    _checks.choice("parameterization", parameterization, _PARAMETERIZATIONS)
    _checks.scalar("W_std", W_std, 0.0)
    _checks.scalar("b_std", b_std, 0.0)
    _checks.positive_int("out_dim", out_dim)


def mlp(
    depth: int,
    width: int,
    activation: str = "relu",
    W_std: float = 2**0.5,
    b_std: float = 0.0,
    parameterization: str = "ntk",
    out_dim: int = 1,
    *,
    tanh_points: int = TANH_POINTS,
) -> Triple:
    r"""Fully connected network and its infinite-width kernels.

    ``depth`` hidden layers of ``width`` units, each ``Dense -> activation``,
    followed by a dense readout to ``out_dim`` outputs:

    .. math::

        f(x) = \frac{\sigma_w}{\sqrt{n_L}} W^{L+1} \phi(h^L) + \sigma_b b^{L+1},
        \quad h^{l} = \frac{\sigma_w}{\sqrt{n_{l-1}}} W^{l} \phi(h^{l-1})
        + \sigma_b b^{l}, \quad \phi(h^0) := x

    (``ntk`` parameterization; ``standard`` puts :math:`\sigma_w/\sqrt{n}` into
    the initial variance instead, which changes the NTK but not the NNGP).
    With ReLU and :math:`\sigma_w^2 = 2, \sigma_b = 0` (the defaults, He
    initialisation) the NNGP diagonal is preserved layer to layer.

    Args:
      depth: number of hidden layers :math:`L \ge 0` (0 = linear model).
      width: hidden width of the finite network (irrelevant for ``kernel_fn``).
      activation: one of ``"relu", "erf", "tanh", "gelu", "identity"``.
      W_std: weight standard deviation :math:`\sigma_w`.
      b_std: bias standard deviation :math:`\sigma_b`.
      parameterization: ``"ntk"`` or ``"standard"``.
      out_dim: number of outputs.
      tanh_points: quadrature points per axis of the tanh layer.

    Returns:
      ``(init_fn, apply_fn, kernel_fn)`` as in neural-tangents ``stax.serial``;
      ``kernel_fn(x1, x2, get)`` with ``x`` of shape ``(n, d)``.

    Raises:
      ValueError: unknown ``activation`` / ``parameterization`` or bad sizes.

    Examples:
      >>> import jax.numpy as jnp
      >>> _, _, kernel_fn = mlp(depth=2, width=512)
      >>> kernel(kernel_fn, jnp.ones((3, 4)), get="nngp").shape
      (3, 3)

    References:
      Lee et al., Deep Neural Networks as Gaussian Processes, 2018.
      Jacot et al., Neural Tangent Kernel, 2018.
    """
    _check_common(depth, activation, W_std, b_std, parameterization, out_dim)
    _checks.positive_int("width", width)
    _checks.positive_int("tanh_points", tanh_points, minimum=2)
    stax = _compat.neural_tangents().stax
    dense = functools.partial(
        stax.Dense, W_std=W_std, b_std=b_std, parameterization=parameterization
    )
    layers = []
    for _ in range(depth):
        layers += [dense(int(width)), _activation_layer(stax, activation, tanh_points)]
    layers.append(dense(int(out_dim)))
    return stax.serial(*layers)


def cnn(
    depth: int,
    channels: int,
    activation: str = "relu",
    W_std: float = 2**0.5,
    b_std: float = 0.0,
    parameterization: str = "ntk",
    out_dim: int = 1,
    filter_shape: Sequence[int] = (3, 3),
    pool: str = "global",
    *,
    tanh_points: int = TANH_POINTS,
) -> Triple:
    r"""Convolutional network (NHWC inputs) and its infinite-width kernels.

    ``depth`` blocks ``Conv(channels, filter_shape, SAME) -> activation``, then

    * ``pool="global"``: global average pooling, dense readout (the CNN-GAP of
      Novak et al. 2019; the kernel keeps all pixel-pixel covariances);
    * ``pool="avg"``: 2x2 average pooling, flatten, dense readout;
    * ``pool="flatten"``: flatten, dense readout (the kernel then only needs
      per-pixel variances and equals that of a locally connected network).

    The conv layers follow the same recursion as :func:`mlp` with the
    expectation taken patch-wise (Novak et al. 2019, Garriga-Alonso et al. 2019).

    Args:
      depth: number of conv blocks :math:`\ge 0`.
      channels: channels of the finite network.
      activation: one of ``"relu", "erf", "tanh", "gelu", "identity"``.
      W_std: weight standard deviation :math:`\sigma_w`.
      b_std: bias standard deviation :math:`\sigma_b`.
      parameterization: ``"ntk"`` or ``"standard"``.
      out_dim: number of outputs.
      filter_shape: spatial filter size, e.g. ``(3, 3)``.
      pool: ``"global"``, ``"avg"`` or ``"flatten"``.
      tanh_points: quadrature points per axis of the tanh layer.

    Returns:
      ``(init_fn, apply_fn, kernel_fn)``; inputs of shape ``(n, H, W, C)``.

    Raises:
      ValueError: unknown ``activation`` / ``parameterization`` / ``pool``.

    References:
      Novak et al., `Bayesian Deep Convolutional Networks with Many Channels are
      Gaussian Processes <https://arxiv.org/abs/1810.05148>`_, 2019.
      Arora et al., `On Exact Computation with an Infinitely Wide Neural Net
      <https://arxiv.org/abs/1904.11955>`_, 2019.
    """
    _check_common(depth, activation, W_std, b_std, parameterization, out_dim)
    _checks.positive_int("channels", channels)
    _checks.positive_int("tanh_points", tanh_points, minimum=2)
    _checks.choice("pool", pool, _POOLS)
    filter_shape = _checks.int_sequence("filter_shape", filter_shape)
    stax = _compat.neural_tangents().stax
    layers = []
    for _ in range(depth):
        layers += [
            stax.Conv(
                int(channels),
                filter_shape,
                padding="SAME",
                W_std=W_std,
                b_std=b_std,
                parameterization=parameterization,
            ),
            _activation_layer(stax, activation, tanh_points),
        ]
    if pool == "global":
        layers.append(stax.GlobalAvgPool())
    else:
        if pool == "avg":
            layers.append(stax.AvgPool((2,) * len(filter_shape), padding="SAME"))
        layers.append(stax.Flatten())
    layers.append(
        stax.Dense(int(out_dim), W_std=W_std, b_std=b_std, parameterization=parameterization)
    )
    return stax.serial(*layers)


def _check_get(get: Any) -> tuple[str, ...] | str:
    if isinstance(get, str):
        if get not in _GETS:
            raise ValueError(f"get must be 'nngp', 'ntk' or a tuple of them, got {get!r}")
        return get
    if isinstance(get, list | tuple) and get and all(g in _GETS for g in get):
        return tuple(get)
    raise ValueError(f"get must be 'nngp', 'ntk' or a tuple of them, got {get!r}")


def _check_x(x: Any, name: str) -> Any:
    """Rank >= 2, at least one row, a real dtype, finite when concrete; returned unconverted
    (a float64 NumPy input keeps its precision for ``dtype=jnp.float64``)."""
    if isinstance(x, str | bytes) or x is None:
        raise TypeError(f"{name}: expected an array (n, features...), got {type(x).__name__}")
    if not hasattr(x, "shape"):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name}: expected an array, got {type(x).__name__}: {err}") from None
    if np.dtype(x.dtype).kind not in "iuf":
        raise TypeError(f"{name}: expected a real array, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"{name}: expected shape (n, features...), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one row, got shape {tuple(x.shape)}")
    _checks.finite(name, x)
    return x


@functools.lru_cache(maxsize=256)
def _kernel_shape(kernel_fn: Callable, s1: Any, s2: Any, get: Any) -> Any:
    """Abstract output of ``kernel_fn`` on inputs of these shapes (cached: no compute)."""
    return jax.eval_shape(lambda a, b: kernel_fn(a, b, get), s1, s2)


def _check_kernel_output(kernel_fn: Callable, x1: Any, x2: Any, get: Any) -> None:
    """``kernel_fn`` maps the inputs to ``(n1, n2)`` kernels (an input of the wrong rank
    for the network, e.g. images for an MLP, gives a kernel of another shape or fails)."""
    s1 = jax.ShapeDtypeStruct(x1.shape, x1.dtype)
    s2 = None if x2 is None else jax.ShapeDtypeStruct(x2.shape, x2.dtype)
    n1, n2 = x1.shape[0], (x1 if x2 is None else x2).shape[0]
    try:
        try:
            hash(kernel_fn)
            shape_of = _kernel_shape
        except TypeError:  # an unhashable callable: evaluate without the cache
            shape_of = _kernel_shape.__wrapped__
        out = shape_of(kernel_fn, s1, s2, get)
    except Exception as err:  # noqa: BLE001 - neural-tangents raises many error types
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"x1: kernel_fn cannot evaluate inputs of shape {tuple(x1.shape)}: {msg}"
        ) from None
    for leaf in jax.tree.leaves(out):
        if tuple(leaf.shape) != (n1, n2):
            raise ValueError(
                f"x1: expected inputs that kernel_fn maps to an ({n1}, {n2}) kernel, got a "
                f"kernel of shape {tuple(leaf.shape)} for inputs of shape {tuple(x1.shape)} "
                "(inputs of the wrong rank for this network?)"
            )


@functools.lru_cache(maxsize=64)
def _batched(kernel_fn: Callable, batch_size: int, store_on_device: bool) -> Callable:
    nt = _compat.neural_tangents()
    return nt.batch(kernel_fn, batch_size=batch_size, store_on_device=store_on_device)


@functools.lru_cache(maxsize=64)
def _jitted(kernel_fn: Callable) -> Callable:
    return jax.jit(kernel_fn, static_argnames="get")


def _pad_rows(x: jax.Array, multiple: int) -> jax.Array:
    n = x.shape[0]
    pad = (-n) % multiple
    if pad == 0:
        return x
    # Repeat the first row: a finite, valid input for every kernel (zeros are not
    # for normalised kernels); the padded rows/columns are sliced off afterwards.
    return jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad,) + x.shape[1:])], axis=0)


def kernel(
    kernel_fn: Callable[..., Any],
    x1: Any,
    x2: Any = None,
    get: str | tuple[str, ...] = "ntk",
    batch_size: int = 0,
    dtype: Any = None,
    *,
    store_on_device: bool = True,
    mesh: Any = None,
    out: str = "device",
    path: Any = None,
    quiet: bool = True,
) -> jax.Array | tuple[jax.Array, ...]:
    r"""Evaluate an analytic ``kernel_fn`` on data, batched and validated.

    Computes :math:`K_{ij} = k(x^{(1)}_i, x^{(2)}_j)` (NNGP and/or NTK). With
    ``batch_size > 0`` the matrix is computed in ``batch_size x batch_size``
    blocks through ``nt.batch`` (rows additionally split over local devices),
    so peak memory is that of one block's intermediates plus the output; the
    inputs are padded (repeating their first row) to a multiple of the block
    size and the result is sliced back to ``(n1, n2)``.

    Args:
      kernel_fn: the third element of :func:`mlp` / :func:`cnn` (or any
        neural-tangents ``kernel_fn``).
      x1: inputs of shape ``(n1, features...)``.
      x2: inputs of shape ``(n2, features...)`` or ``None`` for ``x1``.
      get: ``"ntk"``, ``"nngp"`` or a tuple such as ``("nngp", "ntk")``.
      batch_size: block size; ``0`` computes everything at once.
      mesh: a :class:`jax.sharding.Mesh` (e.g.
        :func:`wideth.kernels.blocks.row_mesh`): rows are computed in blocks of
        ``batch_size`` (default 256) sharded over its devices with
        ``jax.shard_map``; the result stays row-sharded. Default: the mesh set
        with :func:`jax.set_mesh`, if any.
      out: ``"device"`` or ``"host"``: stream row blocks into host memory (a
        NumPy array, or a ``.npy`` memmap at ``path``) with a progress bar
        unless ``quiet``, so kernels larger than accelerator memory fit.
      path: ``.npy`` file for ``out="host"``, written atomically (see
        :func:`wideth.kernels.blocks.blockwise`). With a single ``get`` it holds
        the returned ``(n1, n2)`` array; with a tuple, the kernels stacked on a
        last axis, ``(n1, n2, len(get))``, of which the returned arrays are views.
      quiet: hide the progress bar of ``out="host"``.
      dtype: ``jnp.float64`` computes in double precision inside a
        ``jax.enable_x64`` context (the flag is restored afterwards; the result
        stays float64); ``jnp.float32`` forces single precision; ``None`` keeps
        the current default float type.
      store_on_device: with batching, ``False`` gathers blocks in host memory.

    Returns:
      An array of shape ``(n1, n2)`` (``n2 = n1`` if ``x2`` is None), or a
      tuple of them in the order of ``get``.

    Examples:
      Orthogonal unit inputs through one ReLU layer (arc-cosine kernel:
      :math:`K(x, x) = \tfrac12 \cdot \tfrac12`, :math:`K(x, x') = \tfrac{1}{2}
      \cdot \tfrac{1}{2\pi}` at a right angle):

      >>> import jax.numpy as jnp
      >>> _, _, kernel_fn = mlp(depth=1, width=8, W_std=1.0)
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
      >>> k = kernel(kernel_fn, x, get="nngp", batch_size=2)
      >>> [round(float(v), 4) for v in k[0]]
      [0.25, 0.0796, 0.25]

    Raises:
      ValueError: bad ``get``, negative ``batch_size``, ``x1``/``x2`` whose
        feature shapes differ, NaN/inf inputs, unsupported ``dtype``.
    """
    _checks.callable_("kernel_fn", kernel_fn, "a neural-tangents kernel_fn(x1, x2, get)")
    get = _check_get(get)
    store_on_device = _checks.boolean("store_on_device", store_on_device)
    if not isinstance(batch_size, int | np.integer) or isinstance(batch_size, bool):
        raise ValueError(f"batch_size must be a non-negative int, got {batch_size!r}")
    if batch_size < 0:
        raise ValueError(f"batch_size must be a non-negative int, got {batch_size!r}")
    if dtype is not None:
        dtype = jnp.dtype(dtype)
        if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
            raise ValueError(f"dtype must be None, float32 or float64, got {dtype}")
    x1 = _check_x(x1, "x1")
    if x2 is not None:
        x2 = _check_x(x2, "x2")
        if tuple(x1.shape[1:]) != tuple(x2.shape[1:]):
            raise ValueError(
                f"x2: expected the feature shape of x1 {tuple(x1.shape[1:])}, got x2 of "
                f"shape {tuple(x2.shape)}"
            )

    use_x64 = dtype is not None and dtype == jnp.dtype(jnp.float64)
    ctx = jax.enable_x64(True) if use_x64 else contextlib.nullcontext()
    with ctx:
        ftype = dtype if dtype is not None else jnp.result_type(float)
        x1 = jnp.asarray(x1, ftype)
        x2 = None if x2 is None else jnp.asarray(x2, ftype)
        n1 = x1.shape[0]
        n2 = n1 if x2 is None else x2.shape[0]
        _check_kernel_output(kernel_fn, x1, x2, get)
        from wideth.kernels.blocks import blockwise, current_mesh

        mesh = current_mesh(mesh, x1, x2)
        if path is not None and out != "host":
            raise ValueError(f"path: only used with out='host', got out={out!r}")
        if mesh is not None or out != "device":
            if isinstance(get, tuple):  # stacked on a last axis; the parts are views of it
                block = lambda a, b: jnp.stack(kernel_fn(a, b, get), axis=-1)
            else:  # the file at ``path`` holds exactly the (n1, n2) array returned
                block = lambda a, b: kernel_fn(a, b, get)
            result = blockwise(
                block,
                x1,
                x1 if x2 is None else x2,
                block_size=int(batch_size) or 256,
                mesh=mesh,
                out=out,
                path=path,
                quiet=quiet,
            )
            if isinstance(get, tuple):
                return tuple(result[..., i] for i in range(len(get)))
            return result
        if batch_size == 0 or (batch_size >= n1 and batch_size >= n2):
            out = _jitted(kernel_fn)(x1, x2, get=get)
        else:
            bs = int(batch_size)
            devices = jax.local_device_count()
            x1p = _pad_rows(x1, bs * devices)
            x2p = None if x2 is None else _pad_rows(x2, bs)
            out = _batched(kernel_fn, bs, bool(store_on_device))(x1p, x2p, get)
            out = jax.tree.map(lambda k: k[:n1, :n2], out)
        if isinstance(get, tuple):
            return tuple(out)
        return out
