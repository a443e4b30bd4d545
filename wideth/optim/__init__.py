"""PL-adaptive optimisation: ADLER as an Optax transform, its outer-product baseline,
PL constant, conservative step.

Unproven variants live in :mod:`wideth.optim.contrib`.
"""

from . import contrib as contrib
from .adler import PLAdaptiveState as PLAdaptiveState
from .adler import gauss_newton_curvature as gauss_newton_curvature
from .adler import pl_adaptive as pl_adaptive
from .adler import pl_adaptive_info as pl_adaptive_info
from .outer_product import OuterProductState as OuterProductState
from .outer_product import outer_product_adaptive as outer_product_adaptive
from .outer_product import outer_product_adaptive_info as outer_product_adaptive_info
from .pl import PLConstantState as PLConstantState
from .pl import conservative_step as conservative_step
from .pl import conservative_step_on_batch as conservative_step_on_batch
from .pl import loss_hessian_norm as loss_hessian_norm
from .pl import ntk_lambda_max as ntk_lambda_max
from .pl import pl_constant as pl_constant
from .pl import pl_constant_init as pl_constant_init
from .pl import pl_constant_update as pl_constant_update

__all__ = [
    "OuterProductState",
    "PLAdaptiveState",
    "PLConstantState",
    "conservative_step",
    "conservative_step_on_batch",
    "contrib",
    "gauss_newton_curvature",
    "loss_hessian_norm",
    "ntk_lambda_max",
    "outer_product_adaptive",
    "outer_product_adaptive_info",
    "pl_adaptive",
    "pl_adaptive_info",
    "pl_constant",
    "pl_constant_init",
    "pl_constant_update",
]
