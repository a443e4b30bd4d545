"""Compatibility layer: the only module in wideth that touches JAX internals.

neural-tangents 0.6.5 (the last release, December 2023) no longer imports on
current JAX, and its declared dependencies pull in TensorFlow. This module
restores the few names NT needs, registers an empty stand-in for the
TensorFlow-only ``neural_tangents.experimental`` submodule, imports NT, and
then patches a few NT module globals. Everything is idempotent, and each
step is taken only where it is measured to be needed (the entry then appears
in :data:`SHIMMED` and :func:`shim_report`).

Before importing NT (measured on JAX 0.10):

* ``jax.core.{Jaxpr, JaxprEqn, Literal, Var, Primitive, ClosedJaxpr}`` moved
  to ``jax.extend.core``;
* ``jax.util.safe_map`` / ``safe_zip`` are gone (strict ``map``/``zip``);
* ``jax.interpreters.ad.zeros_like_p`` is gone; NT only registers
  structured-derivative rules on it, so a fresh primitive satisfies it;
* ``jax.tree_map`` is gone (NT's own tests use it): restored as ``jax.tree.map``.

After importing NT, inside NT's modules only:

* ``empirical._get_flops`` (``implementation=0``, AUTO):
  ``Compiled.cost_analysis()`` returns a dict, not a one-element list;
* ``predict``: ``jax.core.eval_context()`` now evaluates everything eagerly,
  so ``gradient_descent_mse`` on a jit- or
  vmap-traced kernel raised ``UnexpectedTracerError``. NT's
  ``eval_context`` only marks its block, and the two calls it wraps there
  (``_get_fns_in_eigenbasis``, ``_get_cho_solve``) run eagerly unless an
  argument is a tracer, which is what the pre-0.4.36 trace stack did;
* ``predict``: ``scipy.linalg.eigvalsh(eigvals=...)`` (``max_learning_rate``)
  was removed in SciPy 1.14; mapped to ``subset_by_index``;
* ``empirical`` (``implementation=3``, structured derivatives):
  ``ad.linearize`` takes a ``FlatTree`` and returns ``out_zeros``; NT's call
  ``ad.linearize(f, *primals, has_aux=False)`` gets the old convention back.
  ``ad.source_info_util`` and ``ad.reducing_transposes`` are re-pointed at
  ``jax._src``; ``ad.config.jax_enable_checks`` reads ``False`` (NT's
  debug-only aval check uses the removed ``core.get_aval``/``lattice_join``);
  ``core.DShapedArray`` (dynamic shapes, removed) is a class no aval has; and
  ``Primitive.map_primitive`` (removed) reads ``False``. If a later JAX removes
  the internals this relies on, ``implementation=3`` raises
  :class:`StructuredDerivativesUnavailable` and AUTO skips it.

Use :func:`neural_tangents` to get the module; never ``import
neural_tangents`` elsewhere in the package.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import inspect
import sys
import types
from collections.abc import Sequence
from typing import Any

import jax
import jax.extend.core as _jex

__all__ = [
    "JaxprLiteral",
    "bind_equation",
    "flatten_jaxpr",
    "is_tracer",
    "neural_tangents",
    "shim_report",
    "SHIMMED",
    "StructuredDerivativesUnavailable",
]

_CORE_NAMES = ("Jaxpr", "JaxprEqn", "Literal", "Var", "Primitive", "ClosedJaxpr")

#: Names this module had to restore, filled by :func:`_install`.
SHIMMED: list[str] = []
_INSTALLED = False
_NT: Any = None


def _safe_map(f, *args):
    args = [list(a) for a in args]
    n = len(args[0])
    for a in args[1:]:
        if len(a) != n:
            raise ValueError(f"safe_map: length mismatch {[len(a) for a in args]}")
    return list(map(f, *args))


def _safe_zip(*args):
    return list(zip(*args, strict=True))


def _install() -> None:
    """Restore the names NT 0.6.5 imports. Idempotent."""
    global _INSTALLED
    if _INSTALLED:
        return
    import jax.core as core
    import jax.extend.core as ext_core
    import jax.interpreters.ad as ad

    for name in _CORE_NAMES:
        if not hasattr(core, name) and hasattr(ext_core, name):
            setattr(core, name, getattr(ext_core, name))
            SHIMMED.append(f"jax.core.{name}")

    try:
        importlib.import_module("jax.util")
    except ImportError:
        util = types.ModuleType("jax.util")
        util.safe_map = _safe_map
        util.safe_zip = _safe_zip
        sys.modules["jax.util"] = util
        jax.util = util
        SHIMMED.append("jax.util")
    else:
        util = sys.modules["jax.util"]
        for name, fn in (("safe_map", _safe_map), ("safe_zip", _safe_zip)):
            if not hasattr(util, name):
                setattr(util, name, fn)
                SHIMMED.append(f"jax.util.{name}")

    for name in ("zeros_like_p", "add_jaxvals_p"):
        if not hasattr(ad, name):
            setattr(ad, name, ext_core.Primitive(name.removesuffix("_p")))
            SHIMMED.append(f"jax.interpreters.ad.{name}")

    # NT's own tests (and older user code) call ``jax.tree_map``, removed in JAX 0.6.
    if not hasattr(jax, "tree_map"):
        jax.tree_map = jax.tree.map
        SHIMMED.append("jax.tree_map")

    # ``neural_tangents.experimental`` imports TensorFlow; nothing we use needs it.
    if "neural_tangents.experimental" not in sys.modules:
        stub = types.ModuleType("neural_tangents.experimental")
        stub.__doc__ = "TensorFlow-only NT submodule, disabled by wideth._compat."
        sys.modules["neural_tangents.experimental"] = stub
        SHIMMED.append("neural_tangents.experimental (empty stand-in)")
    _INSTALLED = True


class _ModuleProxy(types.ModuleType):
    """A module that is ``base`` except for the attributes given as overrides.

    Used to change what one NT module sees under a global name (``jax``,
    ``sp``) without changing that name for anyone else.
    """

    def __init__(self, base: types.ModuleType, **overrides: Any):
        super().__init__(base.__name__, base.__doc__)
        self.__dict__.update(overrides)
        self.__dict__["_proxy_base"] = base

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_proxy_base"], name)


def _cost_analysis_is_dict() -> bool:
    """Whether ``Compiled.cost_analysis()`` returns a dict (JAX >= 0.4.3x), not a list."""
    analysis = jax.jit(lambda x: x * 2.0).lower(1.0).compile().cost_analysis()
    return isinstance(analysis, dict)


def _get_flops(f, optimize: bool, *a, **kw) -> float:
    """NT's ``empirical._get_flops``, accepting the dict or the old one-element list."""
    try:
        lowered = jax.jit(f).lower(*a, **kw)
    except StructuredDerivativesUnavailable:
        return float("inf")  # implementation=AUTO then picks among 1 and 2
    analysis = lowered.compile().cost_analysis() if optimize else lowered.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # JAX < 0.4.3x
        analysis = analysis[0]
    return analysis["flops"]


def _eval_context_drops_tracers() -> bool:
    """Whether ``jax.core.eval_context()`` refuses the enclosing trace's tracers.

    Before JAX 0.4.36 ("stackless") a tracer used inside ``eval_context`` was
    still processed by its own trace; now every operation inside runs eagerly,
    so a jit/vmap tracer there raises ``UnexpectedTracerError``.
    """

    def f(x):
        with jax.core.eval_context():
            return x + 1.0

    try:
        jax.make_jaxpr(f)(1.0)
    except jax.errors.UnexpectedTracerError:
        return True
    return False


_IN_NT_EVAL_CONTEXT = contextvars.ContextVar("wideth_in_nt_eval_context", default=False)


@contextlib.contextmanager
def _deferred_eval_context():
    """NT's ``jax.core.eval_context()``: marks the block, leaves the trace alone.

    The functions wrapped by :func:`_eager_unless_traced` then choose, from
    their arguments, whether to leave the current trace.
    """
    token = _IN_NT_EVAL_CONTEXT.set(True)
    try:
        yield
    finally:
        _IN_NT_EVAL_CONTEXT.reset(token)


def _eager_unless_traced(fn):
    """Inside NT's ``eval_context``, leave the trace only when no argument is a tracer.

    This is what ``with jax.core.eval_context(): fn(k, ...)`` did before JAX
    0.4.36: concrete kernels are decomposed eagerly (so the cached result can
    be reused outside a later trace), traced kernels inside their trace.
    Outside NT's ``eval_context`` (``gp_inference``) ``fn`` runs unchanged.
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        if not _IN_NT_EVAL_CONTEXT.get() or any(
            is_tracer(leaf) for leaf in jax.tree.leaves((args, kwargs))
        ):
            return fn(*args, **kwargs)
        with jax.core.eval_context():
            return fn(*args, **kwargs)

    return wrapped


def _eigvalsh(a, b=None, *args, eigvals=None, **kwargs):
    """``scipy.linalg.eigvalsh`` accepting the ``eigvals=(lo, hi)`` removed in SciPy 1.14."""
    import scipy.linalg

    if eigvals is not None:
        kwargs["subset_by_index"] = eigvals
    return scipy.linalg.eigvalsh(a, b, *args, **kwargs)


class StructuredDerivativesUnavailable(NotImplementedError):
    """NT's ``implementation=3`` (structured derivatives) cannot run on this JAX."""


class _OutPval:
    """Stand-in for the old ``PartialVal`` NT reads: known iff the output tangent is zero."""

    def __init__(self, known: bool):
        self._known = known

    def is_known(self) -> bool:
        return self._known


class _NoDShapedArray:
    """Dynamic shapes (``core.DShapedArray``) are gone: no aval is of this type."""


def _linearize_has_old_signature() -> bool:
    """Whether ``ad.linearize(traceable, *primals, has_aux=...)`` is the pre-0.7 form."""
    import jax.interpreters.ad as ad

    params = inspect.signature(ad.linearize).parameters.values()
    return any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)


def _linearize_old(traceable, *primals, has_aux: bool = False):
    """``ad.linearize`` with NT 0.6.5's calling convention, on the current one.

    Returns ``(primals_out, out_pvals, jaxpr, consts)`` like JAX 0.4.23: the
    linear ``jaxpr`` maps input tangents to the output tangents that are not
    symbolically zero, and ``out_pvals[i].is_known()`` says output ``i`` has a
    zero tangent (then it is not an output of ``jaxpr``).
    """
    try:
        from jax._src import source_info_util  # noqa: F401  (NT's backward pass uses it)
        from jax._src.interpreters import ad as ad_internal
        from jax._src.interpreters.ad import reducing_transposes  # noqa: F401
        from jax._src.tree_util import FlatTree
        from jax.extend import linear_util as lu
    except ImportError as e:  # pragma: no cover - depends on a future JAX
        raise StructuredDerivativesUnavailable(
            "neural-tangents empirical_ntk_fn(implementation=3) (structured derivatives) "
            "needs jax._src.interpreters.ad.linearize, FlatTree and source_info_util, "
            f"missing on JAX {jax.__version__}: {e}. Use implementation=1 or 2."
        ) from e
    if has_aux:
        raise StructuredDerivativesUnavailable("the linearize shim does not support has_aux")
    fun = traceable.call_wrapped if isinstance(traceable, lu.WrappedFun) else traceable
    out, out_zeros, jaxpr, consts = ad_internal.linearize(
        lambda *p: fun(*p), FlatTree.flatten(primals)
    )
    return list(out.unflatten()), [_OutPval(z) for z in out_zeros], jaxpr, consts


def _patch_nt() -> None:
    """Patch NT module globals that break on current JAX/SciPy, after import. Idempotent."""
    empirical = sys.modules["neural_tangents._src.empirical"]
    predict = sys.modules["neural_tangents._src.predict"]

    if _cost_analysis_is_dict() and empirical._get_flops is not _get_flops:
        empirical._get_flops = _get_flops
        SHIMMED.append("neural_tangents._src.empirical._get_flops (cost_analysis() is a dict)")

    if _eval_context_drops_tracers() and not isinstance(predict.jax, _ModuleProxy):
        # predict.py's only uses of ``jax.core.eval_context`` wrap these two calls.
        predict.jax = _ModuleProxy(
            jax, core=_ModuleProxy(jax.core, eval_context=_deferred_eval_context)
        )
        for name in ("_get_fns_in_eigenbasis", "_get_cho_solve"):
            setattr(predict, name, _eager_unless_traced(getattr(predict, name)))
        SHIMMED.append(
            "neural_tangents._src.predict: jax.core.eval_context "
            "(_get_fns_in_eigenbasis, _get_cho_solve eager unless traced)"
        )

    import scipy.linalg

    eigvalsh_params = inspect.signature(scipy.linalg.eigvalsh).parameters
    if "eigvals" not in eigvalsh_params and not isinstance(predict.sp, _ModuleProxy):
        predict.sp = _ModuleProxy(predict.sp, linalg=_ModuleProxy(scipy.linalg, eigvalsh=_eigvalsh))
        SHIMMED.append("neural_tangents._src.predict: scipy.linalg.eigvalsh(eigvals=)")

    # empirical_ntk_fn(implementation=3): NT's own backward pass over a linearized jaxpr.
    import jax._src.core as core_internal

    if not hasattr(core_internal.Primitive, "map_primitive"):
        core_internal.Primitive.map_primitive = False
        SHIMMED.append("jax.extend.core.Primitive.map_primitive (= False)")
    if _linearize_has_old_signature():
        return
    if not isinstance(empirical.ad, _ModuleProxy):
        import jax.interpreters.ad as ad

        try:
            from jax._src import source_info_util
            from jax._src.interpreters.ad import reducing_transposes
        except ImportError:  # pragma: no cover - then _linearize_old raises first
            source_info_util, reducing_transposes = None, {}
        empirical.ad = _ModuleProxy(
            ad,
            linearize=_linearize_old,
            source_info_util=source_info_util,
            reducing_transposes=reducing_transposes,
            # NT's debug-only aval check (core.get_aval / lattice_join) is skipped.
            config=types.SimpleNamespace(jax_enable_checks=False),
        )
        empirical.core = _ModuleProxy(empirical.core, DShapedArray=_NoDShapedArray)
        SHIMMED.append(
            "neural_tangents._src.empirical: ad.linearize (old signature), "
            "ad.source_info_util, ad.reducing_transposes, ad.config, core.DShapedArray"
        )


def neural_tangents() -> Any:
    """Return the ``neural_tangents`` module, importable on the installed JAX.

    Returns:
      The imported ``neural_tangents`` package (0.6.5), with ``stax``,
      ``batch``, ``predict``, ``empirical_kernel_fn`` and
      ``monte_carlo_kernel_fn`` usable.

    Raises:
      ImportError: with install instructions when neural-tangents is missing.
    """
    global _NT
    if _NT is None:
        _install()
        try:
            nt = importlib.import_module("neural_tangents")
        except ModuleNotFoundError as e:
            if e.name != "neural_tangents":
                raise
            raise ImportError(
                "neural-tangents is not installed. Install it without TensorFlow: "
                "`pip install --no-deps neural-tangents==0.6.5 frozendict` "
                "(or `make install`)."
            ) from e
        _patch_nt()
        _NT = nt
    return _NT


def shim_report() -> dict[str, Any]:
    """Describe the compatibility layer: JAX version and names restored."""
    return {"jax": jax.__version__, "active": bool(SHIMMED), "restored": list(SHIMMED)}


# ------------------------------------------------------------------ jaxpr interpretation
# The structured empirical NTK reads a network's jaxpr; the JAX interfaces it needs
# (``jax.extend.core.Literal``, ``Primitive.get_bind_params``/``bind``) live here.


class JaxprLiteral:
    """A literal operand of a flattened equation."""

    def __init__(self, val: Any):
        self.val = val


def flatten_jaxpr(closed: Any) -> tuple[list, list, dict, list]:
    """Inline ``jit`` calls; return (eqns, input keys, const env, output refs).

    Each flattened equation is ``(eqn, in_refs, out_keys)``; a ref is an int key or a
    :class:`JaxprLiteral`. Keys are fresh per call site, so a jitted helper called twice
    gets distinct keys.
    """
    counter = iter(range(1 << 62))
    eqns: list = []
    consts: dict = {}

    def run(jaxpr, const_vals, in_refs):
        env = {}
        for v, c in zip(jaxpr.constvars, const_vals, strict=True):
            key = next(counter)
            consts[key] = c
            env[v] = key
        env.update(zip(jaxpr.invars, in_refs, strict=True))
        read = lambda v: JaxprLiteral(v.val) if isinstance(v, _jex.Literal) else env[v]
        for eqn in jaxpr.eqns:
            ins = [read(v) for v in eqn.invars]
            if eqn.primitive.name in ("jit", "pjit") and not eqn.effects:
                inner = eqn.params["jaxpr"]
                outs = run(inner.jaxpr, inner.consts, ins)
            else:
                outs = [next(counter) for _ in eqn.outvars]
                eqns.append((eqn, ins, outs))
            for v, o in zip(eqn.outvars, outs, strict=True):
                env[v] = o
        return [read(v) for v in jaxpr.outvars]

    in_keys = [next(counter) for _ in closed.jaxpr.invars]
    out_refs = run(closed.jaxpr, closed.consts, in_keys)
    return eqns, in_keys, consts, out_refs


def bind_equation(eqn: Any, invals: Sequence[Any]) -> list[Any]:
    """Evaluate one jaxpr equation on ``invals`` (``Primitive.bind`` with its bind parameters)."""
    bind_params = eqn.primitive.get_bind_params(eqn.params)
    subfuns = ()
    if isinstance(bind_params, tuple):  # older JAX: (subfuns, params)
        subfuns, bind_params = bind_params
    with eqn.ctx.manager:
        out = eqn.primitive.bind(*subfuns, *invals, **bind_params)
    return out if eqn.primitive.multiple_results else [out]


def is_tracer(x: Any) -> bool:
    """Whether ``x`` is a JAX tracer (the value is being traced by jit, vmap, grad...)."""
    return isinstance(x, jax.core.Tracer)
