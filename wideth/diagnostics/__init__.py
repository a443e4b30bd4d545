"""Profile certificates (library / tame / wild) and conservation certificates."""

from . import conservation as conservation
from .conservation import Bound as Bound
from .conservation import Certificate as Certificate
from .profile import ProfileCertificate as ProfileCertificate
from .profile import gradient_ratios as gradient_ratios
from .profile import loss_curve_shape as loss_curve_shape
from .profile import profile as profile

__all__ = [
    "Bound",
    "Certificate",
    "ProfileCertificate",
    "conservation",
    "gradient_ratios",
    "loss_curve_shape",
    "profile",
]
