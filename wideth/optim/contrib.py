r"""Unproven variants of ADLER, benchmarked beside the faithful :func:`~wideth.optim.pl_adaptive`.

Nothing here is part of the thesis algorithm; each variant changes one thing and
says which theory motivates it.
"""

from __future__ import annotations

import optax

from wideth import _checks

from .adler import pl_adaptive

__all__ = ["pl_adaptive_relaxed"]


def pl_adaptive_relaxed(
    relaxation: float = 1.5, beta: float = 0.99, eps: float = 1e-10
) -> optax.GradientTransformationExtraArgs:
    r"""ADLER with a relaxed line-search step, :math:`\Delta\theta = -\theta\,\hat\eta_k G`.

    .. math::

        \Delta\theta = -\theta\,\hat\eta_k\, G, \qquad 0 < \theta < 2 .

    On the local quadratic model the loss change along :math:`-G` with step
    :math:`\theta \eta_k` is :math:`-\theta(2 - \theta)\,\eta_k G^\top G / 2`:
    every :math:`\theta \in (0, 2)` decreases it, :math:`\theta = 1` greedily
    most. Exact line search (:math:`\theta = 1`) zig-zags between the steep
    directions and moves slowly along flat ones; over-relaxing the Cauchy step
    breaks the zig-zag (Raydan & Svaiter 2002) while staying inside the
    stability interval :math:`\eta < 2 / \lambda` of every direction that
    :math:`G` probes. ``relaxation = 1`` is :func:`~wideth.optim.pl_adaptive`.

    Args:
        relaxation: :math:`\theta`, in ``(0, 2)``.
        beta: as in :func:`~wideth.optim.pl_adaptive`.
        eps: as in :func:`~wideth.optim.pl_adaptive`.

    Returns:
        ``optax.chain(pl_adaptive(beta, eps), optax.scale(relaxation))``; its state
        holds the ``PLAdaptiveState`` (so ``pl_adaptive_info`` works) and it needs
        the same ``outputs_fn`` / ``loss_of_outputs`` extra arguments.

    Raises:
        ValueError: ``relaxation`` outside ``(0, 2)`` (outside it the step does not
            decrease the local quadratic model), or a bad ``beta`` / ``eps``.

    References:
        Raydan & Svaiter, `Relaxed steepest descent and Cauchy-Barzilai-Borwein
        method`, Computational Optimization and Applications, 2002.
        Balboni, PhD thesis, Algorithm 1 (the unrelaxed rule).
    """
    relaxation = _checks.scalar("relaxation", relaxation, 0.0, 2.0, low_open=True, high_open=True)
    return optax.chain(pl_adaptive(beta=beta, eps=eps), optax.scale(relaxation))
