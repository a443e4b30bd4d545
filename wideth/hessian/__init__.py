"""wideth.hessian: curvature operators, jitted Lanczos, top-k eigenpairs, SLQ, traces,
class structure of the GGN.

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
from .structure import ClassMeans as ClassMeans
from .structure import GGNDecomposition as GGNDecomposition
from .structure import class_gradient_means as class_gradient_means
from .structure import class_spectrum as class_spectrum
from .structure import count_above as count_above
from .structure import ggn_decomposition as ggn_decomposition
from .structure import subspace_overlap as subspace_overlap
from .structure import subspace_similarity as subspace_similarity

__all__ = [
    "ClassMeans",
    "GGNDecomposition",
    "Operator",
    "batched_ggn_vp",
    "batched_hvp",
    "class_gradient_means",
    "class_spectrum",
    "count_above",
    "curvature_matvec",
    "density_on_grid",
    "from_matvec",
    "ggn",
    "ggn_decomposition",
    "ggn_vp",
    "hessian",
    "hvp",
    "lanczos",
    "negative_mass",
    "ntk",
    "sharpness",
    "spectral_density",
    "subspace_overlap",
    "subspace_similarity",
    "top_eigenpairs",
    "trace",
    "tridiagonal",
    "tridiagonal_eigh",
]
