r"""Block-wise kernel matrices: row blocks, sharded over devices, streamed to host.

A kernel matrix :math:`K_{ij} = k(x^{(1)}_i, x^{(2)}_j)` is row-separable:
each block of rows needs only its own inputs and all of :math:`x^{(2)}`. This
module computes it in row blocks of ``block_size``

* on one device with ``lax.map`` (peak memory of one block's intermediates);
* over a :class:`jax.sharding.Mesh` (given, or set with ``jax.set_mesh``) with
  ``jax.shard_map``: rows are split over all of its devices, :math:`x^{(2)}` is
  replicated, the output stays sharded by rows (no communication at all);
* into host memory (``out="host"``): super-blocks of ``block_size x devices``
  rows are computed on the device(s) and written into a NumPy array or a
  ``numpy.memmap`` file with a progress bar, so a 50k x 50k float32 kernel
  (10 GB) never has to fit on the accelerator.

Rows are zero-padded to a whole number of blocks and the padding is dropped,
so any ``n1`` works.

Multi-host: call ``jax.distributed.initialize()`` first and build the mesh
from ``jax.devices()`` (all hosts' devices); the same code then shards rows
over every device of every host.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from wideth import _checks, io
from wideth._checks import is_tracer

__all__ = ["blockwise", "current_mesh", "row_mesh"]

BlockFn = Callable[[jax.Array, jax.Array], jax.Array]


def row_mesh(devices: list | None = None, axis: str = "rows") -> Mesh:
    """A one-axis mesh over ``devices`` (default: every device) for row sharding.

    Raises:
      TypeError / ValueError: ``devices`` is not a non-empty sequence of JAX
        devices; ``axis`` is not a non-empty string.
    """
    if not isinstance(axis, str) or not axis:
        raise TypeError(f"axis: expected a non-empty mesh axis name (str), got {axis!r}")
    if devices is None:
        devices = jax.devices()
    if isinstance(devices, jax.Device):
        devices = [devices]
    if isinstance(devices, str | bytes) or not hasattr(devices, "__len__"):
        raise TypeError(f"devices: expected a sequence of JAX devices, got {devices!r}")
    devs = list(np.asarray(devices, dtype=object).reshape(-1))
    if not devs:
        raise ValueError("devices: expected at least one device, got an empty sequence")
    for d in devs:
        if not isinstance(d, jax.Device):
            raise TypeError(f"devices: expected JAX devices (jax.devices()), got {d!r}")
    if len(set(devs)) != len(devs):
        raise ValueError(f"devices: expected distinct devices, got {devs}")
    return Mesh(np.asarray(devs, dtype=object), (axis,))


def current_mesh(mesh: Mesh | None = None, *inputs: Any) -> Mesh | None:
    """``mesh`` if given, else the mesh set with :func:`jax.set_mesh` (``None`` if unset).

    Kernel functions call this so that ``with jax.set_mesh(mesh): ...`` shards
    them without passing ``mesh=`` to each call. Inside a trace (any of
    ``inputs`` a tracer, e.g. a kernel computed inside a jitted training step)
    the ambient mesh is left to the enclosing computation and ``None`` is returned.
    """
    if mesh is not None:
        return _checks.mesh("mesh", mesh)
    if any(is_tracer(x) for x in inputs):
        return None
    try:
        ambient = jax.sharding.get_mesh()
    except ValueError:  # inside jax.jit (with inputs closed over as constants)
        return None
    return None if ambient.empty else ambient


def _pad_rows(x: jax.Array, multiple: int) -> jax.Array:
    """``x`` with rows appended up to a multiple of ``multiple`` (the one row padding
    of :mod:`wideth.kernels`). The new rows repeat the first row: a finite, valid
    input for every kernel and block function (zeros are not, e.g. for normalised
    kernels); callers slice the padded rows off the result."""
    pad = (-x.shape[0]) % multiple
    if pad == 0:
        return x
    return jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad, *x.shape[1:]))], axis=0)


def _blocks_fn(block_fn: BlockFn, block_size: int) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """(rows, x2) -> (rows, ...) computed ``block_size`` rows at a time."""

    def run(rows: jax.Array, x2: jax.Array) -> jax.Array:
        blocks = rows.reshape(-1, block_size, *rows.shape[1:])
        out = jax.lax.map(lambda b: block_fn(b, x2), blocks)
        return out.reshape(-1, *out.shape[2:])

    return run


def blockwise(
    block_fn: BlockFn,
    x1: jax.Array,
    x2: jax.Array,
    block_size: int,
    mesh: Mesh | None = None,
    out: Literal["device", "host"] = "device",
    path: str | Path | None = None,
    quiet: bool = True,
) -> jax.Array | np.ndarray:
    r"""Compute ``block_fn(x1, x2)`` row block by row block.

    Args:
      block_fn: ``(x1_block (b, ...), x2 (n2, ...)) -> (b, n2, ...)``, pure and
        jittable; row ``i`` of the result may depend only on row ``i`` of the block.
      x1: ``(n1, ...)`` row inputs.
      x2: ``(n2, ...)`` column inputs (replicated on every device).
      block_size: rows per block on one device.
      mesh: optional :class:`~jax.sharding.Mesh` (see :func:`row_mesh`); rows
        are sharded over all of its devices (every axis). Default: the mesh set
        with :func:`jax.set_mesh`, if any (see :func:`current_mesh`).
      out: ``"device"`` returns a ``jax.Array`` (row-sharded when ``mesh`` is
        given); ``"host"`` returns a NumPy array, streamed super-block by super-block.
      path: with ``out="host"``, a ``.npy`` file to memory-map the result into
        (a temporary file when ``None`` and the result exceeds 1 GiB).
      quiet: hide the progress bar of ``out="host"``.

    Returns:
      The ``(n1, n2, ...)`` kernel matrix; with ``path``, a read-write memmap
      of the ``.npy`` file, which holds exactly that array.

    Raises:
      TypeError / ValueError: ``block_fn`` not callable or failing on a block
        of ``x1`` and ``x2`` (checked abstractly, before any work), or returning
        something other than one row per input row; ``x1``/``x2`` not finite
        arrays with rows; bad ``block_size``, ``mesh``, ``out``; ``path``
        without ``out="host"``, not a ``.npy`` file or not writable (all checked
        before the first block is computed).

    The file at ``path`` is written under a temporary name in its folder and
    moved into place when complete: an error or an interrupt leaves no file at
    ``path`` (or the previous one untouched).
    """
    _checks.callable_("block_fn", block_fn, "a callable block_fn(x1_block, x2)")
    block_size = _checks.positive_int("block_size", block_size)
    _checks.choice("out", out, ("device", "host"))
    _checks.boolean("quiet", quiet)
    if path is not None:
        if out != "host":
            raise ValueError(f"path: only used with out='host', got out={out!r}")
        path = _checks.output_path("path", path, suffix=".npy")
    x1 = _checks.array("x1", x1, min_ndim=1, min_rows=1, kind="number")
    x2 = _checks.array("x2", x2, min_ndim=1, min_rows=1, kind="number")
    probe_rows = min(block_size, x1.shape[0])
    block_out = _checks.evaluate_shape(
        "block_fn",
        block_fn,
        jax.ShapeDtypeStruct((probe_rows, *x1.shape[1:]), x1.dtype),
        jax.ShapeDtypeStruct(x2.shape, x2.dtype),
        what="block_fn(x1_block, x2)",
    )
    if not hasattr(block_out, "shape") or block_out.ndim < 1 or block_out.shape[0] != probe_rows:
        raise ValueError(
            f"block_fn: expected one output row per input row, shape ({probe_rows}, ...), got "
            f"{_checks.shape_str(block_out)} for a block of {probe_rows} rows"
        )
    mesh = current_mesh(mesh, x1, x2)
    if mesh is not None:
        # Same devices with Auto axes (jax.make_mesh gives Explicit ones, under
        # which slicing the padded, row-sharded result would need out_sharding=).
        mesh = Mesh(mesh.devices, mesh.axis_names)
    x1, x2 = jnp.asarray(x1), jnp.asarray(x2)
    n1 = x1.shape[0]
    n_dev = 1 if mesh is None else mesh.devices.size
    rows_spec = None if mesh is None else P(tuple(mesh.axis_names))
    chunk = block_size * n_dev
    run = _blocks_fn(block_fn, block_size)
    if mesh is not None:
        # No collectives: each device maps its own rows. check_vma=False lets block
        # functions that bind primitives directly (the structured empirical NTK)
        # mix replicated constants with row-varying values.
        run = jax.shard_map(
            run, mesh=mesh, in_specs=(rows_spec, P()), out_specs=rows_spec, check_vma=False
        )
        x2 = jax.device_put(x2, NamedSharding(mesh, P()))
    run = jax.jit(run)

    if out == "device":
        padded = _pad_rows(x1, chunk)
        if mesh is not None:
            padded = jax.device_put(padded, NamedSharding(mesh, rows_spec))
        return run(padded, x2)[:n1]

    from tqdm import tqdm

    shape = jax.eval_shape(run, jax.ShapeDtypeStruct((chunk, *x1.shape[1:]), x1.dtype), x2)
    full_shape = (n1, *shape.shape[1:])
    dtype = np.dtype(shape.dtype)
    nbytes = math.prod(full_shape) * dtype.itemsize
    if path is None and nbytes > 2**30:
        path = Path(tempfile.mkdtemp()) / "kernel.npy"
    padded = _pad_rows(x1, chunk)
    starts = list(range(0, padded.shape[0], chunk))

    def launch(s: int) -> jax.Array:
        rows = padded[s : s + chunk]
        if mesh is not None:
            rows = jax.device_put(rows, NamedSharding(mesh, rows_spec))
        return run(rows, x2)  # asynchronous: returns before the block is computed

    def blocks():
        # Double buffering: block k + 1 is dispatched before block k is copied to
        # the host, so the device computes while the host writes.
        pending = launch(starts[0])
        for k, s in enumerate(tqdm(starts, desc="kernel blocks", disable=quiet)):
            block = pending
            if k + 1 < len(starts):
                pending = launch(starts[k + 1])
            stop = min(s + chunk, n1)
            yield s, stop, np.asarray(block)[: stop - s]

    if path is None:
        result = np.empty(full_shape, dtype=dtype)
        for s, stop, values in blocks():
            result[s:stop] = values
        return result
    # Create the .npy header and size, then append rows with plain file writes:
    # they go through the page cache, so the process holds one block at a time
    # (writing through a memmap would keep every dirty page in its resident set).
    path = Path(path)
    with io.atomic_path(path, "path") as tmp:
        header = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=full_shape)
        del header
        offset = tmp.stat().st_size - nbytes
        row_bytes = nbytes // n1
        with open(tmp, "r+b") as f:
            for s, _stop, values in blocks():
                f.seek(offset + s * row_bytes)
                np.ascontiguousarray(values, dtype=dtype).tofile(f)
    return np.load(path, mmap_mode="r+")
