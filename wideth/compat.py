"""neural-tangents on current JAX: the public face of the compatibility layer.

:func:`neural_tangents` returns the ``neural_tangents`` package made importable
on the installed JAX (without TensorFlow); :func:`shim_report` lists what the
layer restored. The work itself lives in the private ``wideth._compat``, the
only module of wideth that touches JAX internals or imports neural-tangents.
"""

from ._compat import neural_tangents as neural_tangents
from ._compat import shim_report as shim_report

__all__ = ["neural_tangents", "shim_report"]
