"""wideth.hessian: Hessian/GGN products, jitted Lanczos, top-k eigenpairs, SLQ, traces."""

from .lanczos import lanczos as lanczos
from .lanczos import tridiagonal as tridiagonal
from .lanczos import tridiagonal_eigh as tridiagonal_eigh
from .products import batched_ggn_vp as batched_ggn_vp
from .products import batched_hvp as batched_hvp
from .products import ggn_vp as ggn_vp
from .products import hvp as hvp
from .spectrum import curvature_matvec as curvature_matvec
from .spectrum import density_on_grid as density_on_grid
from .spectrum import negative_mass as negative_mass
from .spectrum import spectral_density as spectral_density
from .spectrum import top_eigenpairs as top_eigenpairs
from .spectrum import trace as trace
