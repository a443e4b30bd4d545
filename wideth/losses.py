r"""The one loss registry: ``mse``, ``xent``, ``logistic`` and the ``accuracy`` metric.

Loss normalisation (shared with :mod:`wideth.kernels.predict`):

.. math::

    \mathcal L_{\rm mse}(f) = \frac{1}{2n}\sum_{i=1}^n \|f(x_i) - y_i\|^2 .

Its Hessian with respect to the stacked outputs is :math:`I/n`, so the
Gauss--Newton matrix is :math:`J^\top J/n` with the same nonzero spectrum as
:math:`\Theta/n`, where :math:`\Theta = J J^\top` is the :math:`(nk)\times(nk)`
empirical NTK on the training batch (:math:`k` outputs). Linearised gradient
descent :math:`f \leftarrow f - \tfrac{\eta}{n}\Theta(f - y)` is therefore
stable iff

.. math::

    \eta < \frac{2}{\lambda_{\max}(\Theta/n)}

(Lee et al. 2019; Lewkowycz et al. 2020). For the output-traced kernel of
:func:`wideth.kernels.empirical.ntk`, :math:`\lambda_{\max}(\Theta)` is bounded
by that of the traced kernel; in the infinite-width limit the full NTK is
:math:`\Theta_{\rm trace}/k \otimes I_k`.

Every part of wideth that takes a loss by name (training, Hessians,
diagnostics, the command line, experiments) resolves it here with
:func:`get_loss`; the module sits at the package root so that the pure-function
packages (kernels, hessian) can use it without importing :mod:`wideth.train`,
which re-exports it.

References:
  Lee et al., `Wide Neural Networks of Any Depth Evolve as Linear Models Under
  Gradient Descent <https://arxiv.org/abs/1902.06720>`_, 2019.
  Lewkowycz et al., `The large learning rate phase of deep learning: the
  catapult mechanism <https://arxiv.org/abs/2003.02218>`_, 2020.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

import jax
import jax.numpy as jnp

from wideth import _checks

__all__ = [
    "LOSSES",
    "METRICS",
    "accuracy",
    "get_loss",
    "is_classification",
    "logistic",
    "mse",
    "xent",
]

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def mse(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    r"""Mean squared error with the :math:`\tfrac12` and per-example mean.

    .. math::

        \mathcal L = \frac{1}{2n}\sum_{i=1}^n \|f_i - y_i\|^2

    (sum over the :math:`k` outputs, mean over the :math:`n` examples; the GD
    stability threshold is :math:`\eta < 2/\lambda_{\max}(\Theta/n)`, see the
    module docstring).

    Args:
      outputs: ``(n, k)`` or ``(n,)`` network outputs.
      targets: same shape as ``outputs`` (a ``(n,)`` target with ``(n, 1)``
        outputs is accepted).

    Returns:
      Scalar loss (non-finite outputs give a non-finite loss: that is how
      training detects divergence; NaN/inf targets are an error).

    Raises:
      ValueError / TypeError: non-numeric arrays, scalar outputs, targets not
        shaped like the outputs, NaN/inf in concrete targets.

    Examples:
      >>> float(mse(jnp.array([[1.0], [3.0]]), jnp.array([[0.0], [1.0]])))
      1.25
    """
    outputs = _checks.array("outputs", outputs, min_ndim=1, kind="real", check_finite=False)
    targets = _checks.array("targets", targets, kind="real")
    if outputs.ndim == 2 and targets.ndim == 1 and outputs.shape[1] == 1:
        targets = targets[:, None]
    if outputs.shape != targets.shape:
        raise ValueError(
            f"targets: expected shape {outputs.shape} (like outputs), got {targets.shape}"
        )
    diff = (outputs - targets).reshape(outputs.shape[0], -1) if outputs.ndim else outputs - targets
    return 0.5 * jnp.mean(jnp.sum(diff**2, axis=-1))


def _integer_labels(outputs: jax.Array, labels: jax.Array) -> None:
    if labels.shape != outputs.shape[:-1]:
        raise ValueError(
            f"labels: expected integer shape {outputs.shape[:-1]} like the outputs "
            f"{outputs.shape}, got {labels.shape}"
        )
    _checks.class_labels("labels", labels, outputs.shape[-1])


def _one_hot_like(logits: jax.Array, labels: jax.Array) -> jax.Array:
    labels = _checks.array("labels", labels, kind="real")
    if labels.ndim == logits.ndim - 1 and jnp.issubdtype(labels.dtype, jnp.integer):
        _integer_labels(logits, labels)
        return jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    if labels.shape != logits.shape:
        raise ValueError(
            f"labels: expected one-hot shape {logits.shape} or integer shape "
            f"{logits.shape[:-1]}, got {labels.shape} ({labels.dtype})"
        )
    return labels


def xent(logits: jax.Array, labels: jax.Array) -> jax.Array:
    r"""Softmax cross-entropy, mean over examples.

    .. math::

        \mathcal L = -\frac1n \sum_{i=1}^n \sum_{c} y_{ic} \log \operatorname{softmax}(f_i)_c

    Args:
      logits: ``(n, C)``.
      labels: one-hot (or soft) ``(n, C)`` or integer class indices ``(n,)``
        in ``[0, C)``.

    Returns:
      Scalar loss.

    Raises:
      ValueError / TypeError: labels of the wrong shape, integer labels outside
        ``[0, C)``, NaN/inf labels, non-numeric arrays (non-finite logits give a
        non-finite loss, as in :func:`mse`).
    """
    logits = _checks.array("logits", logits, min_ndim=1, kind="real", check_finite=False)
    y = _one_hot_like(logits, labels)
    return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(logits, axis=-1), axis=-1))


def logistic(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    r"""Binary logistic loss for labels :math:`y_i\in\{-1, +1\}`, mean over examples.

    .. math::

        \mathcal L = \frac1n \sum_{i=1}^n \log\bigl(1 + e^{-y_i f_i}\bigr)

    (the loss of Soudry et al. 2018's implicit-bias theorem; computed as
    ``logaddexp(0, -y f)``, finite for any finite margin).

    Args:
      outputs: ``(n,)`` or ``(n, 1)`` scores :math:`f_i`.
      labels: ``(n,)`` with entries :math:`\pm 1` (checked when concrete).

    Returns:
      Scalar loss.

    Raises:
      ValueError / TypeError: outputs not ``(n,)``/``(n, 1)``, labels of another
        length, labels other than :math:`\pm 1`, non-numeric arrays.
    """
    outputs = _checks.array("outputs", outputs, min_ndim=1, kind="real", check_finite=False)
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        outputs = outputs[:, 0]
    elif outputs.ndim != 1:
        raise ValueError(f"outputs: expected shape (n,) or (n, 1), got {tuple(outputs.shape)}")
    labels = _checks.array("labels", labels, shape=outputs.shape, kind="real")
    if not _checks.is_tracer(labels) and not bool(jnp.all(jnp.abs(labels) == 1)):
        raise ValueError("labels: expected entries -1 or +1 for the logistic loss")
    return jnp.mean(jnp.logaddexp(0.0, -labels * outputs))


def accuracy(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of examples whose arg-max output equals the label.

    Args:
      outputs: ``(n, C)`` scores.
      labels: one-hot ``(n, C)`` or integer ``(n,)`` in ``[0, C)``.

    Returns:
      Scalar in ``[0, 1]`` (float32).

    Raises:
      ValueError / TypeError: labels of the wrong shape, dtype or range.
    """
    outputs = _checks.array("outputs", outputs, min_ndim=1, kind="real", check_finite=False)
    labels = _checks.array("labels", labels, kind="real")
    if labels.ndim == outputs.ndim - 1:
        _integer_labels(outputs, labels)
        true = labels
    elif labels.shape == outputs.shape:
        true = jnp.argmax(labels, axis=-1)
    else:
        raise ValueError(
            f"labels: expected one-hot shape {outputs.shape} or integer shape "
            f"{outputs.shape[:-1]}, got {labels.shape}"
        )
    pred = jnp.argmax(outputs, axis=-1)
    return jnp.mean((pred == true).astype(jnp.float32))


#: Differentiable losses by name, ``(outputs, targets) -> scalar``.
LOSSES: MappingProxyType[str, LossFn] = MappingProxyType(
    {"mse": mse, "xent": xent, "logistic": logistic}
)
#: Metrics by name (losses and ``accuracy``).
METRICS: MappingProxyType[str, LossFn] = MappingProxyType({**LOSSES, "accuracy": accuracy})


def get_loss(loss: str | LossFn, name: str = "loss") -> LossFn:
    """The loss function for a name in :data:`LOSSES`, or a callable passed through.

    Raises:
      ValueError: unknown name.
      TypeError: neither a name nor a callable.
    """
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"{name}: expected one of {tuple(LOSSES)} or a callable, got {loss!r}")
        return LOSSES[loss]
    if not callable(loss):
        raise TypeError(
            f"{name}: expected a name in {tuple(LOSSES)} or a callable "
            f"(outputs, targets) -> scalar, got {type(loss).__name__}"
        )
    return loss


def is_classification(targets: jax.Array, loss: str | LossFn | None = None) -> bool:
    """Whether targets are class labels: ``loss="xent"``, integer ``(n,)``, one-hot ``(n, C>1)``."""
    targets = _checks.array("targets", targets, kind="real", check_finite=False)
    if loss == "xent" or loss is xent:
        return True
    if jnp.issubdtype(targets.dtype, jnp.integer):
        return targets.ndim == 1
    return targets.ndim == 2 and targets.shape[1] > 1
