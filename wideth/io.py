"""Files and plain JSON: conversion for certificates and metrics, atomic writes.

Every file wideth writes (kernels streamed to disk, the command line's
``--out``, experiments' ``metrics.json``, figures and ``REPORT.md``) goes
through :func:`atomic_path`: it is written under a temporary name in the
target folder and moved into place with :func:`os.replace` only when
complete, so an error or an interrupt leaves no file at the target path, or
the previous complete one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from wideth import _checks

__all__ = [
    "atomic_path",
    "ensure_dir",
    "jsonable",
    "save_figure",
    "write_json",
    "write_text",
]


def jsonable(x: Any) -> Any:
    """``x`` with arrays as (nested) lists, paths as strings, non-finite floats as strings.

    Dicts get string keys; tuples become lists; other objects become ``str(x)``.
    """
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "tolist") and hasattr(x, "dtype"):  # numpy / jax arrays and scalars
        return jsonable(np.asarray(x).tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, bool | int | float | str) or x is None:
        return x
    return str(x)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, name: str = "path") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it to ``path`` when the block succeeds.

    On any exception (including ``KeyboardInterrupt``) the temporary file is
    removed and ``path`` is left as it was.

    Args:
      path: the target file (its folder must exist and be writable).
      name: the argument's name in error messages.

    Raises:
      ValueError / TypeError: the target is a folder, or its folder is missing
        or not writable (checked before the block runs).
    """
    target = _checks.output_path(name, path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent or "."
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text(path: str | os.PathLike, text: str, name: str = "path") -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_path`)."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    with atomic_path(path, name) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, name: str = "path", indent: int = 2) -> Path:
    """Write :func:`jsonable` ``obj`` as JSON to ``path`` atomically."""
    if indent is not None:
        _checks.nonnegative_int("indent", indent)
    return write_text(path, json.dumps(jsonable(obj), indent=indent), name)


def save_figure(fig: Any, path: str | os.PathLike, name: str = "path", **savefig: Any) -> Path:
    """Save a matplotlib figure to ``path`` atomically and close it."""
    import matplotlib.pyplot as plt

    if not callable(getattr(fig, "savefig", None)):
        raise TypeError(f"fig: expected a matplotlib Figure, got {type(fig).__name__}")
    try:
        target = _checks.output_path(name, path)
        fmt = target.suffix.lstrip(".").lower() or "png"
        if fmt not in fig.canvas.get_supported_filetypes():
            raise ValueError(
                f"{name}: expected a figure file ending in one of "
                f"{sorted(fig.canvas.get_supported_filetypes())}, got {str(target)!r}"
            )
        with atomic_path(target, name) as tmp:
            fig.savefig(tmp, format=fmt, **savefig)
    finally:
        plt.close(fig)
    return target


def ensure_dir(path: str | os.PathLike, name: str = "path") -> Path:
    """Create the folder ``path`` (and parents) after checking it can be written.

    Raises:
      ValueError / TypeError: ``path`` is an existing file, or no writable
        ancestor folder exists; checked before anything is created.
    """
    p = _checks.output_dir(name, path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{name}: cannot create the folder {str(p)!r}: {err.strerror}") from None
    return p
