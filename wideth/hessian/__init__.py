"""wideth.hessian: curvature operators, jitted Lanczos, top-k eigenpairs, SLQ, traces.

Build an :class:`Operator` once (:func:`hessian`, :func:`ggn`, :func:`ntk`,
:func:`from_matvec`) and hand it to :func:`top_eigenpairs`, :func:`sharpness`,
:func:`spectral_density`, :func:`trace` or :func:`lanczos`.
"""

from .lanczos import lanczos as lanczos
from .lanczos import tridiagonal as tridiagonal
from .lanczos import tridiagonal_eigh as tridiagonal_eigh
from .operators import Operator as Operator
from .operators import from_matvec as from_matvec
from .operators import ggn as ggn
from .operators import hessian as hessian
from .operators import ntk as ntk
from .products import batched_ggn_vp as batched_ggn_vp
from .products import batched_hvp as batched_hvp
from .products import ggn_vp as ggn_vp
from .products import hvp as hvp
from .spectrum import curvature_matvec as curvature_matvec
from .spectrum import density_on_grid as density_on_grid
from .spectrum import negative_mass as negative_mass
from .spectrum import sharpness as sharpness
from .spectrum import spectral_density as spectral_density
from .spectrum import top_eigenpairs as top_eigenpairs
from .spectrum import trace as trace

__all__ = [
    "Operator",
    "batched_ggn_vp",
    "batched_hvp",
    "curvature_matvec",
    "density_on_grid",
    "from_matvec",
    "ggn",
    "ggn_vp",
    "hessian",
    "hvp",
    "lanczos",
    "negative_mass",
    "ntk",
    "sharpness",
    "spectral_density",
    "top_eigenpairs",
    "trace",
    "tridiagonal",
    "tridiagonal_eigh",
]
