"""The one validation layer of every public entry point.

Each check raises a :class:`ValueError` or :class:`TypeError` whose message
starts with the argument's name and says what was expected and what came, so
that a mistake is reported where the user made it, never as a deep JAX trace,
a silent NaN or a silently clipped value. Checks that need concrete values
(finiteness, ranges) are skipped for traced inputs: under ``jit``/``vmap`` the
shapes and dtypes are still checked.
"""

from __future__ import annotations

import math
import numbers
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wideth import _compat

__all__ = [
    "is_tracer",
    "array",
    "finite",
    "symmetric",
    "positive_int",
    "nonnegative_int",
    "integer",
    "int_sequence",
    "per_layer",
    "layer_sizes",
    "layer_stds",
    "boolean",
    "real",
    "scalar",
    "in_range",
    "choice",
    "float_dtype",
    "prng_key",
    "tree_like",
    "params_tree",
    "arrays_tree",
    "class_labels",
    "mesh",
    "callable_",
    "evaluate_shape",
    "scalar_output",
    "output_path",
    "output_dir",
    "shape_str",
]


def is_tracer(x: Any) -> bool:
    """Whether ``x`` (or any leaf of it) is an abstract value under a JAX transform."""
    return any(_compat.is_tracer(leaf) for leaf in jax.tree.leaves(x))


def shape_str(x: Any) -> str:
    """``"shape (3, 4) float32"`` for an array, the type name otherwise."""
    shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
    if shape is None:
        return type(x).__name__
    return f"shape {tuple(shape)} {dtype}"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral | np.integer) and not isinstance(value, bool)


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (a Python or NumPy integer, not a bool or a float)."""
    if not _is_int(value):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {int(value)}")
    return int(value)


def nonnegative_int(name: str, value: Any) -> int:
    """An integer ``>= 0``."""
    return positive_int(name, value, minimum=0)


def real(name: str, value: Any, *, finite: bool = True) -> float:
    """A real Python/NumPy scalar (a 0-d concrete array is accepted)."""
    if isinstance(value, bool) or (
        not isinstance(value, numbers.Real) and not (hasattr(value, "shape") and value.shape == ())
    ):
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    if is_tracer(value):
        raise TypeError(f"{name}: expected a concrete real number, got a traced value")
    try:
        out = float(value)
    except TypeError as err:  # complex 0-d arrays
        raise TypeError(f"{name}: expected a real number, got {value!r}") from err
    if finite and not math.isfinite(out):
        raise ValueError(f"{name}: expected a finite number, got {out}")
    return out


def in_range(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    allow_traced: bool = True,
) -> Any:
    """A real number in ``[low, high]`` (``(`` / ``)`` with the ``*_open`` flags).

    A traced value (e.g. a hyperparameter under ``optax.inject_hyperparams``) is
    returned unchecked when ``allow_traced``; a concrete array of any shape is
    checked elementwise.
    """
    if is_tracer(value):
        if allow_traced:
            return value
        raise TypeError(f"{name}: expected a concrete number, got a traced value")
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    interval = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    if isinstance(value, bool) or isinstance(value, str | bytes):
        raise TypeError(f"{name}: expected a real number in {interval}, got {value!r}")
    try:
        arr = np.asarray(value)
    except Exception as err:  # noqa: BLE001 - any conversion failure is a type error here
        raise TypeError(f"{name}: expected a real number in {interval}, got {value!r}") from err
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected a real number in {interval}, got {value!r}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected a finite number in {interval}, got {value!r}")
    ok = np.ones(arr.shape, bool)
    if low is not None:
        ok &= arr > low if low_open else arr >= low
    if high is not None:
        ok &= arr < high if high_open else arr <= high
    if not np.all(ok):
        shown = value if arr.ndim == 0 else arr[~ok].ravel()[:3]
        raise ValueError(f"{name}: expected a number in {interval}, got {shown!r}")
    return value


def choice(name: str, value: Any, options: Sequence[Any]) -> Any:
    """One of ``options`` (strings are compared exactly)."""
    if not isinstance(value, str | int | type(None)) or value not in options:
        raise ValueError(f"{name}: expected one of {tuple(options)}, got {value!r}")
    return value


def choices(name: str, value: Any, options: Sequence[str]) -> str | tuple[str, ...]:
    """One of ``options``, or a non-empty list/tuple of them (returned as a tuple)."""
    msg = f"{name}: expected one of {tuple(options)} or a tuple of them, got {value!r}"
    if isinstance(value, str):
        if value not in options:
            raise ValueError(msg)
        return value
    if (
        isinstance(value, list | tuple)
        and value
        and all(isinstance(v, str) and v in options for v in value)
    ):
        return tuple(value)
    raise ValueError(msg)


def finite(name: str, x: Any) -> None:
    """No NaN or inf in a concrete inexact array (traced arrays are skipped)."""
    if is_tracer(x):
        return
    a = np.asarray(x)
    if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ValueError(f"{name}: expected finite values, got {bad} NaN/inf entries")


def symmetric(name: str, k: Any) -> None:
    r"""A concrete square matrix symmetric up to rounding (traced matrices are skipped).

    The tolerance is :math:`\sqrt{\epsilon}\,\max|K|` of its dtype (float32 at
    least): rounding in a Gram matrix, not a transposed or wrong matrix.
    """
    if is_tracer(k) or not np.size(k):
        return
    with jax.ensure_compile_time_eval():
        kf = jnp.asarray(k)
        kf = kf.astype(jnp.result_type(kf.dtype, jnp.float32))
        asym = float(jnp.max(jnp.abs(kf - kf.T)))
        tol = float(jnp.sqrt(jnp.finfo(kf.dtype).eps)) * float(jnp.max(jnp.abs(kf)))
    if asym > tol:
        raise ValueError(
            f"{name}: expected a symmetric matrix, got max |K - K^T| = {asym:.3g} "
            f"(tolerance {tol:.3g})"
        )


def array(
    name: str,
    x: Any,
    *,
    ndim: int | Sequence[int] | None = None,
    min_ndim: int | None = None,
    min_rows: int | None = None,
    shape: Sequence[int | None] | None = None,
    kind: str = "real",
    check_finite: bool = True,
    dtype: Any = None,
) -> jax.Array:
    """A JAX array of the right rank, shape and dtype kind, with finite values.

    Args:
      name: the argument's name (starts every message).
      x: array-like.
      ndim: required rank (or a set of allowed ranks).
      min_ndim: minimum rank.
      min_rows: minimum size of the leading axis.
      shape: required shape; ``None`` entries are free.
      kind: ``"real"`` (integer or floating), ``"float"``, ``"int"``,
        ``"number"`` (real or complex) or ``"any"``.
      check_finite: reject NaN/inf in concrete inputs.
      dtype: convert to this dtype after the checks.

    Returns:
      ``jnp.asarray(x)`` (cast to ``dtype`` if given).
    """
    if x is None or isinstance(x, str | bytes | dict):
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}")
    try:
        a = x if isinstance(x, jax.Array) else jnp.asarray(x)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}: {err}") from None
    k = np.dtype(a.dtype).kind
    allowed = {"real": "biuf", "float": "f", "int": "iu", "number": "biufc", "any": "biufcV"}[kind]
    if k not in allowed or (kind == "real" and k == "b"):
        raise TypeError(f"{name}: expected a {kind} array, got dtype {a.dtype}")
    if ndim is not None:
        allowed_nd = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if a.ndim not in allowed_nd:
            want = allowed_nd[0] if len(allowed_nd) == 1 else allowed_nd
            raise ValueError(f"{name}: expected an array of rank {want}, got {shape_str(a)}")
    if min_ndim is not None and a.ndim < min_ndim:
        raise ValueError(f"{name}: expected an array of rank >= {min_ndim}, got {shape_str(a)}")
    if shape is not None:
        if a.ndim != len(shape) or any(
            s is not None and s != t for s, t in zip(shape, a.shape, strict=True)
        ):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name}: expected shape {want}, got {shape_str(a)}")
    if min_rows is not None and (a.ndim == 0 or a.shape[0] < min_rows):
        raise ValueError(f"{name}: expected at least {min_rows} rows, got {shape_str(a)}")
    if check_finite:
        finite(name, a)
    return a if dtype is None else a.astype(dtype)


def prng_key(name: str, key: Any, *, allow_none: bool = False) -> jax.Array | None:
    """A JAX PRNG key: a typed key (``jax.random.key``) or a raw ``uint32[2]`` key."""
    if key is None:
        if allow_none:
            return None
        raise TypeError(f"{name}: expected a PRNG key (jax.random.key(seed)), got None")
    if isinstance(key, bool) or _is_int(key):
        raise TypeError(
            f"{name}: expected a PRNG key, got the integer {key!r}; use jax.random.key({key!r})"
        )
    dt = getattr(key, "dtype", None)
    if dt is not None and jax.dtypes.issubdtype(dt, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"{name}: expected a single PRNG key, got key array {key.shape}")
        return key
    if dt is not None and np.dtype(dt) == np.uint32 and tuple(key.shape) == (2,):
        return key
    raise TypeError(f"{name}: expected a PRNG key (jax.random.key(seed)), got {shape_str(key)}")


def same_structure(name: str, tree: Any, reference: Any, what: str) -> None:
    """``tree`` has the pytree structure of ``reference`` (``what`` names it in the message)."""
    ref_def = jax.tree.structure(reference)
    try:
        got_def = jax.tree.structure(tree)
    except Exception:  # noqa: BLE001
        got_def = None
    if got_def != ref_def:
        raise ValueError(f"{name}: expected {what} ({ref_def}), got {got_def}")


def tree_like(
    name: str,
    tree: Any,
    reference: Any,
    reference_name: str = "params",
    *,
    check_finite: bool = True,
) -> Any:
    """A pytree with the structure, shapes and an inexact dtype like ``reference``.

    ``reference`` may hold arrays or ``jax.ShapeDtypeStruct`` leaves. With
    ``check_finite=False`` NaN/inf leaves pass (where the caller documents what
    a non-finite value does, e.g. an optimizer that skips the step).
    """
    same_structure(name, tree, reference, f"a pytree with the structure of {reference_name}")
    for (path, a), b in zip(
        jax.tree_util.tree_flatten_with_path(tree)[0], jax.tree.leaves(reference), strict=True
    ):
        where = jax.tree_util.keystr(path)
        leaf = f"leaf {where}" if where else "the array"  # a bare array is its own root leaf
        want = tuple(b.shape) if hasattr(b, "shape") else tuple(np.shape(b))
        if tuple(np.shape(a)) != want:
            raise ValueError(
                f"{name}: {leaf} has shape {tuple(np.shape(a))}, expected "
                f"{want} like {reference_name}"
            )
        dtype = jnp.result_type(a)
        if not jnp.issubdtype(dtype, jnp.inexact):  # bfloat16 included
            raise TypeError(f"{name}: {leaf} has dtype {dtype}, expected a floating dtype")
        if check_finite:
            finite(f"{name} (leaf {where})" if where else name, a)
    return tree


def callable_(name: str, fn: Any, what: str = "a callable") -> Callable[..., Any]:
    """A callable (the message says which signature was expected)."""
    if not callable(fn):
        raise TypeError(f"{name}: expected {what}, got {type(fn).__name__}")
    return fn


def evaluate_shape(
    name: str, fn: Callable[..., Any], *args: Any, what: str, verb: str = "calling it as"
) -> Any:
    """``jax.eval_shape(fn, *args)``, any failure reported as one error naming ``name``.

    Runs no computation: the function is traced abstractly, so a wrong arity, a
    shape mismatch inside it or a non-array output is caught before real work.
    ``name`` is the function's argument (``verb="calling it as"``) or the data
    it was evaluated on (e.g. ``verb="evaluating"``).
    """
    try:
        return jax.eval_shape(fn, *args)
    except TypeError as err:
        shapes = ", ".join(_abstract_str(a) for a in args)
        raise TypeError(f"{name}: {verb} {what} with ({shapes}) failed: {err}") from None
    except Exception as err:  # noqa: BLE001 - JAX raises many error types on bad shapes
        shapes = ", ".join(_abstract_str(a) for a in args)
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{name}: {verb} {what} with ({shapes}) failed: {msg}") from None


def _abstract_str(a: Any) -> str:
    leaves = jax.tree.leaves(a)
    if len(leaves) == 1 and not isinstance(a, dict | list | tuple):
        return shape_str(leaves[0])
    return f"pytree of {len(leaves)} arrays"


def scalar_output(name: str, fn: Callable[..., Any], *args: Any, what: str) -> Any:
    """Check that ``fn(*args)`` returns a real scalar (abstractly)."""
    out = evaluate_shape(name, fn, *args, what=what)
    if not hasattr(out, "shape") or out.shape != () or np.dtype(out.dtype).kind not in "f":
        raise ValueError(f"{name}: expected a real scalar output, got {shape_str(out)}")
    return out


def output_path(name: str, path: Any, *, suffix: str | None = None) -> Path:
    """A file path whose parent folder exists and is writable, and that is not a folder."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{name}: expected a file path, got {type(path).__name__}")
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{name}: expected a file path, got the existing folder {str(p)!r}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"{name}: the folder {str(parent)!r} does not exist")
    if suffix is not None and p.suffix != suffix:
        raise ValueError(f"{name}: expected a {suffix} file, got {str(p)!r}")
    _probe_writable(name, parent)
    return p


def output_dir(name: str, path: Any) -> Path:
    """A folder that exists or can be created, and is writable."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{name}: expected a folder path, got {type(path).__name__}")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{name}: expected a folder, got the existing file {str(p)!r}")
    probe = p
    while not probe.exists():
        probe = probe.parent if str(probe.parent) != str(probe) else Path(".")
    if not probe.is_dir():
        raise ValueError(
            f"{name}: cannot create the folder {str(p)!r}: {str(probe)!r} is a file, not a folder"
        )
    _probe_writable(name, probe)
    return p


def _probe_writable(name: str, folder: Path) -> None:
    """Create and remove a file in ``folder``: the one test of writability that holds
    for every user (``os.access`` says yes to root on a read-only mount) and file system."""
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{name}: the folder {str(folder)!r} is not writable")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".wideth-write-test.", dir=folder)
    except OSError as err:
        raise ValueError(
            f"{name}: the folder {str(folder)!r} is not writable ({err.strerror})"
        ) from None
    os.close(fd)
    os.unlink(tmp)


def integer(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """A Python/NumPy integer (not a bool or a float) in ``[minimum, maximum]``."""
    lo = "-inf" if minimum is None else minimum
    hi = "inf" if maximum is None else maximum
    if not _is_int(value):
        raise TypeError(f"{name}: expected an integer in [{lo}, {hi}], got {value!r}")
    v = int(value)
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ValueError(f"{name}: expected an integer in [{lo}, {hi}], got {v}")
    return v


def int_sequence(name: str, value: Any, *, minimum: int = 1, min_len: int = 1) -> tuple[int, ...]:
    """A non-empty 1-d sequence of integers ``>= minimum`` (integer-valued arrays accepted)."""
    if isinstance(value, str | bytes) or is_tracer(value):
        raise TypeError(f"{name}: expected a sequence of integers, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - ragged or odd objects
        raise TypeError(f"{name}: expected a sequence of integers, got {value!r}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d sequence of integers, got shape {arr.shape}")
    if arr.size < min_len:
        raise ValueError(f"{name}: expected at least {min_len} entries, got {arr.size}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integers, got {value!r} (dtype {arr.dtype})")
    if np.any(arr < minimum):
        raise ValueError(f"{name}: expected integers >= {minimum}, got {arr.tolist()}")
    return tuple(int(v) for v in arr)


def per_layer(name: str, value: Any, n: int, single: Callable[[Any], bool]) -> list[Any]:
    """One value broadcast to ``n`` layers, or a sequence of exactly ``n`` entries.

    ``single(value)`` decides whether ``value`` is one entry (a number, a name)
    or a sequence of them; anything else that is not a sequence is broadcast
    and left to the entry's own check.
    """
    if single(value):
        return [value] * n
    if isinstance(value, Sequence | np.ndarray) and not isinstance(value, str | bytes):
        values = list(value)
        if len(values) != n:
            raise ValueError(
                f"{name}: expected one value or a sequence of {n} (one per layer), "
                f"got {len(values)}"
            )
        return values
    return [value] * n


def layer_sizes(name: str, value: Any, n: int) -> list[int]:
    """One positive integer for ``n`` layers, or ``n`` of them (e.g. per-layer widths)."""
    single = lambda v: not isinstance(v, Sequence | np.ndarray)
    return [positive_int(name, v) for v in per_layer(name, value, n, single)]


def _is_scalar_or_none(v: Any) -> bool:
    return v is None or np.ndim(v) == 0 and not isinstance(v, str | bytes)


def layer_stds(W_std: Any, b_std: Any, n: int) -> tuple[list[float], list[float | None]]:
    """``W_std`` and ``b_std`` of ``n`` affine layers: one value each or ``n`` of them.

    Every :math:`\\sigma_w \\ge 0`; every :math:`\\sigma_b \\ge 0` or ``None`` (no bias).
    """
    w = per_layer("W_std", W_std, n, _is_scalar_or_none)
    b = per_layer("b_std", b_std, n, _is_scalar_or_none)
    ws = [float(scalar("W_std", v, 0.0)) for v in w]
    bs = [None if v is None else float(scalar("b_std", v, 0.0)) for v in b]
    return ws, bs


def boolean(name: str, value: Any) -> bool:
    """A bool (Python or NumPy); integers and strings are not silently read as truth values."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def scalar(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Any:
    """A real 0-d number in a range, returned unchanged (a JAX scalar keeps its dtype).

    A traced value (under ``jit``/``vmap``) is checked for its shape and dtype
    only; its value is the caller's responsibility there.
    """
    if is_tracer(value):
        if np.shape(value) != () or np.dtype(value.dtype).kind not in "biuf":
            raise TypeError(f"{name}: expected a real scalar, got {shape_str(value)}")
        return value
    if isinstance(value, str | bytes | bool | np.bool_) or value is None:
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    if np.ndim(value) != 0:
        raise ValueError(f"{name}: expected a real scalar, got {shape_str(np.asarray(value))}")
    return in_range(name, value, low, high, low_open=low_open, high_open=high_open)


_FLOAT_DTYPES = ("float32", "float64")


def float_dtype(name: str, dtype: Any, *, allow_none: bool = False) -> Any:
    """``jnp.float32`` or ``jnp.float64`` (as a NumPy dtype), or ``None`` when allowed."""
    if dtype is None and allow_none:
        return None
    try:
        d = np.dtype(dtype)
    except TypeError:
        d = None
    if d is None or d.name not in _FLOAT_DTYPES or isinstance(dtype, bool):
        shown = "None, " if allow_none else ""
        raise TypeError(f"{name}: expected {shown}float32 or float64, got {dtype!r}")
    return d


def params_tree(name: str, tree: Any) -> Any:
    """A parameter pytree: at least one leaf, every leaf a floating array, finite when concrete."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    if not leaves:
        raise ValueError(f"{name}: expected a pytree with at least one array leaf, got none")
    for path, a in leaves:
        where = jax.tree_util.keystr(path)
        if not hasattr(a, "dtype") and not isinstance(a, numbers.Number):
            raise TypeError(
                f"{name}: leaf {where or '(root)'} is a {type(a).__name__}, not an array"
            )
        dt = jnp.result_type(a)
        if np.dtype(dt).kind not in "fc":
            raise TypeError(
                f"{name}: leaf {where or '(root)'} has dtype {dt}, expected a floating dtype"
            )
        finite(f"{name} (leaf {where})" if where else name, a)
    return tree


def arrays_tree(name: str, tree: Any, *, check_finite: bool = True) -> Any:
    """A pytree of numeric arrays (any dtype but strings/objects), finite when concrete."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    if not leaves:
        raise ValueError(f"{name}: expected a non-empty pytree of arrays, got no leaves")
    for path, a in leaves:
        where = jax.tree_util.keystr(path)
        label = f"{name} (leaf {where})" if where else name
        if is_tracer(a):
            continue
        if isinstance(a, str | bytes):
            raise TypeError(f"{label}: expected an array, got a string")
        try:
            arr = np.asarray(a)
        except Exception:  # noqa: BLE001
            raise TypeError(f"{label}: expected an array, got {type(a).__name__}") from None
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"{label}: expected a numeric array, got dtype {arr.dtype}")
        if check_finite:
            finite(label, arr)
    return tree


def class_labels(name: str, labels: Any, num_classes: int) -> None:
    """Integer class indices in ``[0, num_classes)`` (concrete values only)."""
    if is_tracer(labels):
        return
    lab = np.asarray(labels)
    if lab.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer class indices, got dtype {lab.dtype}")
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
        raise ValueError(
            f"{name}: expected integer classes in [0, {num_classes - 1}], got values in "
            f"[{int(lab.min())}, {int(lab.max())}]"
        )


def mesh(name: str, value: Any, *, allow_none: bool = True) -> Any:
    """A :class:`jax.sharding.Mesh` (or ``None`` when allowed)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, jax.sharding.Mesh):
        hint = " (build one with jax.make_mesh or wideth.kernels.blocks.row_mesh)"
        raise TypeError(
            f"{name}: expected a jax.sharding.Mesh{' or None' if allow_none else ''}, got "
            f"{type(value).__name__} {value!r}{hint}"
        )
    return value


def host_array(
    name: str,
    x: Any,
    *,
    ndim: int | Sequence[int] | None = None,
    min_rows: int | None = None,
    kind: str = "real",
    check_finite: bool = True,
    dtype: Any = None,
) -> np.ndarray:
    """Like :func:`array`, for concrete data kept on the host as NumPy (float64 stays float64).

    Used where data are fitted or indexed on the host (scaling laws, datasets),
    so that no precision is lost to the default float32 of JAX.
    """
    if x is None or isinstance(x, str | bytes | dict):
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}")
    if is_tracer(x):
        raise TypeError(f"{name}: expected a concrete array, got a traced value")
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}: {err}") from None
    allowed = {"real": "iuf", "float": "f", "int": "iu", "number": "iufc"}[kind]
    if a.dtype.kind not in allowed:
        raise TypeError(f"{name}: expected a {kind} array, got dtype {a.dtype}")
    if ndim is not None:
        allowed_nd = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if a.ndim not in allowed_nd:
            want = allowed_nd[0] if len(allowed_nd) == 1 else allowed_nd
            raise ValueError(f"{name}: expected an array of rank {want}, got {shape_str(a)}")
    if min_rows is not None and (a.ndim == 0 or a.shape[0] < min_rows):
        raise ValueError(f"{name}: expected at least {min_rows} rows, got {shape_str(a)}")
    if check_finite:
        finite(name, a)
    return a if dtype is None else a.astype(dtype)
