"""Profile certificates (library / tame / wild), conservation certificates, neural collapse,
NTK conditioning."""

from . import conditioning as conditioning
from . import conservation as conservation
from .collapse import Collapse as Collapse
from .collapse import neural_collapse as neural_collapse
from .conservation import Bound as Bound
from .conservation import Certificate as Certificate
from .profile import ProfileCertificate as ProfileCertificate
from .profile import architecture as architecture
from .profile import gradient_noise as gradient_noise
from .profile import gradient_ratios as gradient_ratios
from .profile import hessian_summary as hessian_summary
from .profile import loss_curve_shape as loss_curve_shape
from .profile import profile as profile

__all__ = [
    "Bound",
    "Certificate",
    "Collapse",
    "ProfileCertificate",
    "architecture",
    "conditioning",
    "conservation",
    "gradient_noise",
    "gradient_ratios",
    "hessian_summary",
    "loss_curve_shape",
    "neural_collapse",
    "profile",
]
