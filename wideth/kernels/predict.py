r"""Infinite-width predictions: gradient descent on MSE, ensembles, GP inference.

Conventions (shared with :func:`wideth.train.mse`): the training loss is

.. math::

    \mathcal L(f) = \frac{1}{2n}\sum_{i=1}^n \|f(x_i) - y_i\|^2 ,

so gradient descent with step :math:`\eta` moves the train outputs by
:math:`f \leftarrow f - \tfrac{\eta}{n}\,\Theta\,(f - y)` in the linearised
(infinite-width) regime, and gradient flow solves
:math:`f_t - y = e^{-\eta\Theta t/n}(f_0 - y)`. ``normalization="sum"`` drops the
:math:`1/n`. Kernels are *per output*: an infinite-width kernel from
:mod:`wideth.kernels.analytic`, or an empirical NTK from
:mod:`wideth.kernels.empirical` (its output trace is a mean over outputs).
For one output this matches neural-tangents' ``predict.gradient_descent_mse``
(which normalises by ``y_train.size``).

Squared error is eigendecomposition based (one ``eigh`` of the train kernel),
float64-safe (pass float64 kernels with x64 enabled), jittable, and batched
over test points (``batch_size``) so large test sets fit in memory. Any
other loss, with or without momentum, goes through :func:`gradient_descent`
(an ODE solve); :func:`ensemble` starts from an analytic ``kernel_fn``.
Every ``predict_fn`` also takes a 1-D array of times (a leading time axis).

References:
  Jacot, Gabriel, Hongler, `Neural Tangent Kernel: Convergence and Generalization
  in Neural Networks <https://arxiv.org/abs/1806.07572>`_, 2018.
  Lee et al., `Wide Neural Networks of Any Depth Evolve as Linear Models Under
  Gradient Descent <https://arxiv.org/abs/1902.06720>`_, 2019 (Eqs. 15-16).
  Rasmussen & Williams, Gaussian Processes for Machine Learning, 2006 (Alg. 2.1).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wideth import _checks
from wideth.kernels.blocks import _pad_rows

__all__ = [
    "Gaussian",
    "ensemble",
    "gradient_descent",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
    "gp_inference",
    "max_learning_rate",
    "NotPSDWarning",
]

Normalization = Literal["mean", "sum"]


class Gaussian(NamedTuple):
    """Mean ``(n_test, k)`` and covariance ``(n_test, n_test)`` of predictions."""

    mean: jax.Array
    covariance: jax.Array


def _check_kernel(
    name: str,
    k: Any,
    shape: tuple[int | None, int | None],
    *,
    symmetric: bool = False,
) -> jax.Array:
    """A finite 2-D kernel of ``shape`` (``None`` = any), symmetric when asked.

    Values are checked on the device (two scalar reductions) and only for
    concrete kernels: under ``jit``/``vmap`` only the shape and dtype are checked.
    """
    k = _checks.array(name, k, ndim=2, kind="real", check_finite=False)
    for axis, want in enumerate(shape):
        if want is not None and k.shape[axis] != want:
            want_s = "(" + ", ".join("*" if w is None else str(w) for w in shape) + ")"
            raise ValueError(f"{name}: expected shape {want_s}, got {_checks.shape_str(k)}")
    if symmetric and k.shape[0] != k.shape[1]:
        raise ValueError(f"{name}: expected a square kernel, got {_checks.shape_str(k)}")
    if _checks.is_tracer(k):
        return k
    with jax.ensure_compile_time_eval():  # a concrete kernel closed over by a jitted caller
        _check_kernel_values(name, k, symmetric)
    return k


def _check_kernel_values(name: str, k: jax.Array, symmetric: bool) -> None:
    if not bool(jnp.all(jnp.isfinite(k))):
        bad = int(jnp.size(k) - jnp.count_nonzero(jnp.isfinite(k)))
        raise ValueError(f"{name}: expected finite values, got {bad} NaN/inf entries")
    if symmetric:
        _checks.symmetric(name, k)


def _eager_if_concrete(*arrays: Any) -> Any:
    """Run the factorisation of concrete inputs eagerly even inside a ``jit`` trace.

    A kernel closed over by a jitted function is a constant: its eigenvalues or
    Cholesky factor are then concrete, so an indefinite kernel raises there too.
    """
    if _checks.is_tracer(arrays):
        return contextlib.nullcontext()
    return jax.ensure_compile_time_eval()


def _psd_tolerance(evals: jax.Array) -> jax.Array:
    r""":math:`100\,n\,\epsilon\,\max|\lambda|`: how negative rounding leaves a Gram matrix."""
    return 100 * evals.shape[0] * jnp.finfo(evals.dtype).eps * jnp.max(jnp.abs(evals))


def _check_psd(name: str, evals: jax.Array) -> jax.Array | bool:
    r"""Reject a kernel with an eigenvalue below :math:`-100\,n\,\epsilon\,\max|\lambda|`.

    A kernel (Gram matrix) is positive semi-definite; rounding leaves negative
    eigenvalues of order :math:`n\epsilon\|K\|`, a sign error or a wrong matrix
    far larger ones.

    A traced kernel (under ``jit``/``vmap``) cannot raise: the test runs on the
    device and returns the traced ``ok`` flag, and a kernel that fails it emits
    a :class:`RuntimeWarning` from the host at run time (``jax.debug.callback``)
    naming the argument, so that the result that follows (documented by each
    caller) never comes without an explanation. Returns ``True`` when concrete.
    """
    if evals.size == 0:
        return True
    if _checks.is_tracer(evals):
        ok = evals[0] >= -_psd_tolerance(evals)
        warn = functools.partial(_warn_not_psd, name)
        jax.debug.callback(warn, ok, evals[0], jnp.max(jnp.abs(evals)))
        return ok
    host = np.asarray(evals)  # concrete (also inside a trace): checked on the host
    lo, top = float(host[0]), float(np.max(np.abs(host)))
    tol = 100 * host.shape[0] * float(np.finfo(host.dtype).eps) * top
    if lo < -tol:
        raise ValueError(
            f"{name}: expected a positive semi-definite kernel, got the eigenvalue {lo:.3g} "
            f"(largest |eigenvalue| {top:.3g})"
        )
    return True


def _warn_not_pd(ok: Any) -> None:
    ok = np.asarray(ok)
    if np.all(ok):
        return
    warnings.warn(
        "k_train_train: expected a positive definite kernel (K + diag_reg I), but its Cholesky "
        f"factorisation failed in {int(np.size(ok) - np.count_nonzero(ok))} of {np.size(ok)} "
        "traced kernel(s), so the posterior is NaN; pass diag_reg > 0 (under jit/vmap this "
        "cannot raise, see the note on jit in gp_inference)",
        NotPSDWarning,
        stacklevel=2,
    )


class NotPSDWarning(RuntimeWarning):
    """A kernel traced under ``jit``/``vmap`` turned out not positive semi-definite at run time."""


def _warn_not_psd(name: str, ok: Any, lo: Any, top: Any) -> None:
    ok, lo, top = np.asarray(ok), np.asarray(lo), np.asarray(top)
    if np.all(ok):
        return
    worst = int(np.argmin(np.where(ok, np.inf, lo)))
    warnings.warn(
        f"{name}: expected a positive semi-definite kernel, got the eigenvalue "
        f"{lo.ravel()[worst]:.3g} (largest |eigenvalue| {top.ravel()[worst]:.3g}) in "
        f"{int(np.size(ok) - np.count_nonzero(ok))} of {np.size(ok)} traced kernel(s); "
        "under jit/vmap this cannot raise, see the function's note on jit",
        NotPSDWarning,
        stacklevel=2,
    )


def _check_targets(y_train: Any, n: int) -> tuple[jax.Array, bool]:
    y = _checks.array("y_train", y_train, ndim=(1, 2), kind="real")
    squeeze = y.ndim == 1
    y = y[:, None] if squeeze else y
    if y.shape[0] != n:
        raise ValueError(
            f"y_train: expected shape ({n},) or ({n}, k) like the kernel, got "
            f"{_checks.shape_str(y_train)}"
        )
    return y, squeeze


def _time_scale(n: int, normalization: Normalization) -> float:
    _checks.choice("normalization", normalization, ("mean", "sum"))
    return float(n) if normalization == "mean" else 1.0


def _check_time(t: Any, discrete: bool) -> Any:
    """``None`` (infinity), a time ``>= 0`` or a 1-D array of them; whole steps when ``discrete``.

    An array of times is returned as a float array; predictions for it get a
    leading time axis (as in neural-tangents).
    """
    if t is None:
        return None
    if np.ndim(t) == 1 or (isinstance(t, list | tuple) and not _checks.is_tracer(t)):
        t = _checks.array("t", t, ndim=1, kind="real")
        if not _checks.is_tracer(t):
            _checks.in_range("t", np.asarray(t), 0.0)
            if discrete and not np.all(np.asarray(t) == np.round(np.asarray(t))):
                raise ValueError(
                    f"t: expected whole numbers of steps with discrete=True, got {np.asarray(t)!r}"
                )
        return t.astype(jnp.result_type(float)) if t.dtype.kind in "iu" else t
    t = _checks.scalar("t", t, 0.0)
    if discrete and not _checks.is_tracer(t) and float(t) != int(float(t)):
        raise ValueError(f"t: expected a whole number of steps with discrete=True, got {t!r}")
    return t


def _over_times(fn: Callable[[Any], Any], t: Any) -> Any:
    """``fn(t)``, or ``fn`` mapped over a 1-D array of times (leading time axis)."""
    if t is not None and jnp.ndim(t) == 1:
        return jax.vmap(fn)(t)
    return fn(t)


def _outputs_like(name: str, f0: Any, rows: int, k: int, dtype: Any) -> jax.Array:
    """Initial outputs: a scalar, ``(rows,)`` (one output) or ``(rows, k)``, as ``(rows, k)``."""
    f = _checks.array(name, f0, ndim=(0, 1, 2), kind="real")
    if f.ndim == 0:
        return jnp.broadcast_to(f.astype(dtype), (rows, k))
    if f.ndim == 1:
        f = f[:, None]
    if f.shape[0] != rows or f.shape[1] not in (1, k):
        raise ValueError(
            f"{name}: expected a scalar, shape ({rows},) or ({rows}, {k}), got "
            f"{_checks.shape_str(f0)}"
        )
    return jnp.broadcast_to(f.astype(dtype), (rows, k))


def _squeeze(f: jax.Array, squeeze: bool) -> jax.Array:
    return f[..., 0] if squeeze else f


def _filter(
    evals: jax.Array,
    learning_rate: float,
    t: jax.Array | float | None,
    scale: float,
    discrete: bool,
) -> jax.Array:
    r"""Spectral filter :math:`g(\lambda) = (1 - e^{-\eta\lambda t/s})/\lambda`.

    ``t=None`` is :math:`t=\infty` (:math:`1/\lambda`); ``discrete`` uses
    :math:`(1 - (1-\eta\lambda/s)^t)/\lambda`. Zero eigenvalues take the limit
    :math:`\eta t/s`, so the filter is finite on singular kernels.
    """
    lam = jnp.maximum(evals, 0.0)
    tiny = jnp.finfo(evals.dtype).eps * jnp.max(jnp.abs(evals)) * evals.shape[0]
    safe = jnp.where(lam > tiny, lam, 1.0)
    if t is None:
        return jnp.where(lam > tiny, 1.0 / safe, 0.0)
    rate = learning_rate / scale
    if discrete:
        decay = jnp.power(1.0 - rate * lam, t)
        limit = rate * t
        return jnp.where(lam > tiny, (1.0 - decay) / safe, limit)
    return jnp.where(lam > tiny, -jnp.expm1(-rate * lam * t) / safe, rate * t)


def _batched_rows(fn: Callable[[jax.Array], jax.Array], k_test: jax.Array, batch_size: int | None):
    """Apply ``fn`` to row blocks of ``k_test`` (pads the last block)."""
    n = k_test.shape[0]
    if not batch_size or batch_size >= n:
        return fn(k_test)
    blocks = _pad_rows(k_test, batch_size).reshape(-1, batch_size, k_test.shape[1])
    out = jax.lax.map(fn, blocks)
    return out.reshape(-1, *out.shape[2:])[:n]


def _per_output(trace_axes: Any) -> bool:
    """``trace_axes`` of :func:`gradient_descent_mse`: ``(-1,)``/``(1,)`` per-output
    kernels (``True``) or ``()`` kernels with the output axes (``False``)."""
    axes = (trace_axes,) if isinstance(trace_axes, int) else trace_axes
    if not isinstance(axes, tuple | list) or tuple(axes) not in ((), (-1,), (1,)):
        raise ValueError(
            "trace_axes: expected (-1,) (per-output kernels) or () (kernels with the "
            f"(k, k) output axes), got {trace_axes!r}"
        )
    return bool(axes)


def _joint_outputs_mse(k_train_train, y_train, learning_rate, diag_reg, normalization, discrete, b):
    """:func:`gradient_descent_mse` with ``trace_axes=()``: the ``(n, n, k, k)`` kernel
    flattened to ``(nk, nk)`` (row ``(i, a)`` at ``i k + a``), one output column."""
    y = _checks.array("y_train", y_train, ndim=2, kind="real")
    n, k = y.shape
    flat_train = _flat_outputs("k_train_train", k_train_train, n, n, y.shape)
    lr = _checks.scalar("learning_rate", learning_rate, 0.0, low_open=True)
    # the flat problem has n k rows: rescale the rate so that eta / s keeps s = n
    lr = lr * k if normalization == "mean" else lr
    inner = gradient_descent_mse(
        flat_train, y.reshape(n * k, 1), lr, diag_reg, normalization, discrete,
        None if b is None else b * k,
    )  # fmt: skip

    def predict_fn(t=None, k_test_train=None, fx_train_0=0.0, fx_test_0=0.0):
        f0 = _outputs_like("fx_train_0", fx_train_0, n, k, y.dtype).reshape(n * k, 1)
        kt = g0 = None
        if k_test_train is not None:
            kt = _flat_outputs("k_test_train", k_test_train, None, n, y.shape)
            g0 = _outputs_like("fx_test_0", fx_test_0, kt.shape[0] // k, k, y.dtype)
            g0 = g0.reshape(-1, 1)
        train, test = inner(t, kt, f0, 0.0 if g0 is None else g0)
        unflat = lambda f: f.reshape(*f.shape[:-2], -1, k)
        return unflat(train), None if test is None else unflat(test)

    return predict_fn


def gradient_descent_mse(
    k_train_train: jax.Array,
    y_train: jax.Array,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    normalization: Normalization = "mean",
    discrete: bool = False,
    batch_size: int | None = None,
    *,
    trace_axes: int | tuple[int, ...] = (-1,),
) -> Callable[..., tuple[jax.Array, jax.Array | None]]:
    r"""Outputs of a linearised (infinite-width) network trained by GD on MSE.

    With :math:`\Theta = V\Lambda V^\top` the train kernel and :math:`s = n`
    (``normalization="mean"``) or :math:`1`,

    .. math::

        f_t(X) &= y + V e^{-\eta\Lambda t/s} V^\top (f_0(X) - y), \\
        f_t(x_*) &= f_0(x_*) - \Theta_{*X}\, V\,
            \frac{I - e^{-\eta\Lambda t/s}}{\Lambda}\, V^\top (f_0(X) - y),

    for gradient flow (``discrete=False``; :math:`t` in steps of size
    :math:`\eta`), or with :math:`e^{-\eta\lambda t/s}` replaced by
    :math:`(1-\eta\lambda/s)^t` for ``t`` discrete GD steps. ``t=None`` is the
    end of training: kernel (ridgeless, or ``diag_reg``) regression.

    Args:
      k_train_train: ``(n, n)`` per-output NTK on the training inputs.
      y_train: ``(n,)`` or ``(n, k)`` targets.
      learning_rate: step size :math:`\eta`.
      diag_reg: added to the diagonal of ``k_train_train``.
      normalization: ``"mean"`` (loss :math:`\frac{1}{2n}\sum\|f-y\|^2`) or ``"sum"``.
      discrete: predict discrete GD steps instead of gradient flow.
      batch_size: test rows processed at a time (``None``: all).
      trace_axes: neural-tangents' ``trace_axes``: ``(-1,)`` (default) means the
        kernels are per output (traced over the output axis, i.e. :math:`\Theta
        \otimes I_k`); ``()`` means they keep the output axes, ``k_train_train``
        of shape ``(n, n, k, k)`` and ``k_test_train`` ``(m, n, k, k)`` as
        :func:`wideth.kernels.empirical.ntk` returns them with ``trace_axes=()``
        (or ``full=True``), and the outputs evolve jointly under
        :math:`\Theta_{(ia),(jb)}`, the exact linearised dynamics of a finite
        network.

    Returns:
      ``predict_fn(t=None, k_test_train=None, fx_train_0=0., fx_test_0=0.)``
      returning ``(fx_train_t, fx_test_t)``; ``fx_test_t`` is ``None`` when
      ``k_test_train`` is not given. Shapes follow ``y_train``. ``t`` is a
      time ``>= 0`` (a whole number of steps with ``discrete=True``) or a 1-D
      array of them, which adds a leading time axis to both outputs.

    Raises:
      ValueError: a non-finite, non-square, non-symmetric or indefinite kernel,
        ``learning_rate <= 0``, ``diag_reg < 0``, targets of the wrong shape.

    Note:
      Under jit/vmap, a traced kernel cannot be checked before use: eigenvalues of
      ``k_train_train + diag_reg I`` below 0 are treated as 0 (the prediction of
      the kernel's positive semi-definite part, finite, as for rounding-level
      negative eigenvalues), and an indefinite kernel beyond rounding emits a
      :class:`NotPSDWarning` from the host at run time.

    Examples:
      >>> import jax.numpy as jnp
      >>> k = jnp.array([[2.0, 0.5], [0.5, 1.0]])
      >>> predict = gradient_descent_mse(k, jnp.array([1.0, -1.0]))
      >>> train, _ = predict(t=None)
      >>> [round(float(v), 4) for v in train]
      [1.0, -1.0]
    """
    if not _per_output(trace_axes):
        return _joint_outputs_mse(
            k_train_train, y_train, learning_rate, diag_reg, normalization, discrete, batch_size
        )
    k = _check_kernel("k_train_train", k_train_train, (None, None), symmetric=True)
    n = k.shape[0]
    y, squeeze = _check_targets(y_train, n)
    learning_rate = _checks.scalar("learning_rate", learning_rate, 0.0, low_open=True)
    diag_reg = _checks.scalar("diag_reg", diag_reg, 0.0)
    scale = _time_scale(n, normalization)
    discrete = _checks.boolean("discrete", discrete)
    if batch_size is not None:
        batch_size = _checks.positive_int("batch_size", batch_size)
    with _eager_if_concrete(k, diag_reg):
        k = k + diag_reg * jnp.eye(n, dtype=k.dtype)
        evals, evecs = jnp.linalg.eigh(k)
    _check_psd("k_train_train", evals)
    y = y.astype(evals.dtype)

    def predict_fn(t=None, k_test_train=None, fx_train_0=0.0, fx_test_0=0.0):
        t = _check_time(t, discrete)
        r0 = _outputs_like("fx_train_0", fx_train_0, n, y.shape[1], evals.dtype) - y
        coef = evecs.T @ r0
        kt = f0 = None
        if k_test_train is not None:
            kt = _check_kernel("k_test_train", k_test_train, (None, n)).astype(evals.dtype)
            f0 = _outputs_like("fx_test_0", fx_test_0, kt.shape[0], y.shape[1], evals.dtype)

        def at(time):
            g = _filter(evals, learning_rate, time, scale, discrete)
            lam = jnp.maximum(evals, 0.0)[:, None]  # as in _filter: the PSD part under jit
            train = y + evecs @ ((1.0 - lam * g[:, None]) * coef)
            if kt is None:
                return _squeeze(train, squeeze), None
            alpha = evecs @ (g[:, None] * coef)
            delta = _batched_rows(lambda rows: rows @ alpha, kt, batch_size)
            return _squeeze(train, squeeze), _squeeze(f0 - delta, squeeze)

        return _over_times(at, t)

    return predict_fn


def _joint_outputs_ensemble(kernels, y_train, t, learning_rate, diag_reg, normalization):
    """:func:`gradient_descent_mse_ensemble` with ``trace_axes=()``: the ``(., ., k, k)``
    kernels flattened as in :func:`_joint_outputs_mse` (rate rescaled to keep ``s = n``)."""
    y = _checks.array("y_train", y_train, ndim=2, kind="real")
    n, k = y.shape
    ntk_xx, nngp_xx, ntk_tx, nngp_tx, nngp_tt = kernels
    flat = [
        _flat_outputs("ntk_train_train", ntk_xx, n, n, y.shape),
        _flat_outputs("nngp_train_train", nngp_xx, n, n, y.shape),
        _flat_outputs("ntk_test_train", ntk_tx, None, n, y.shape),
    ]
    m = flat[2].shape[0] // k
    flat.append(_flat_outputs("nngp_test_train", nngp_tx, m, n, y.shape))
    flat.append(_flat_outputs("nngp_test_test", nngp_tt, m, m, y.shape))
    lr = _checks.scalar("learning_rate", learning_rate, 0.0, low_open=True)
    _time_scale(n, normalization)  # validates normalization
    lr = lr * k if normalization == "mean" else lr  # the flat problem has n k rows
    g = gradient_descent_mse_ensemble(*flat, y.reshape(n * k), t, lr, diag_reg, normalization)
    mean = g.mean.reshape(*g.mean.shape[:-1], m, k)
    return Gaussian(mean, _unflat_covariance(g.covariance, m, k))


def gradient_descent_mse_ensemble(
    ntk_train_train: jax.Array,
    nngp_train_train: jax.Array,
    ntk_test_train: jax.Array,
    nngp_test_train: jax.Array,
    nngp_test_test: jax.Array,
    y_train: jax.Array,
    t: float | None = None,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    normalization: Normalization = "mean",
    *,
    trace_axes: int | tuple[int, ...] = (-1,),
) -> Gaussian:
    r"""Mean and covariance over random inits of infinite-width nets after GD.

    With the NTK :math:`\Theta`, the NNGP :math:`K` (the prior of the outputs
    at initialisation) and
    :math:`M = \Theta_{*X}\,V\,\frac{I-e^{-\eta\Lambda t/s}}{\Lambda}\,V^\top`
    (:math:`\Theta_{XX} = V\Lambda V^\top`), Lee et al. (2019, Eqs. 15-16) give

    .. math::

        \mu_t(x_*) = M y, \qquad
        \Sigma_t = K_{**} + M K_{XX} M^\top - M K_{X*} - K_{*X} M^\top .

    ``t=None`` is :math:`t\to\infty` (:math:`M = \Theta_{*X}\Theta_{XX}^{-1}`).

    Args:
      ntk_train_train: ``(n, n)`` NTK on train inputs.
      nngp_train_train: ``(n, n)`` NNGP on train inputs.
      ntk_test_train: ``(m, n)`` NTK between test and train inputs.
      nngp_test_train: ``(m, n)`` NNGP between test and train inputs.
      nngp_test_test: ``(m, m)`` NNGP on test inputs.
      y_train: ``(n,)`` or ``(n, k)`` targets.
      t: training time in units of ``learning_rate`` (``None``: infinity), or
        a 1-D array of times (mean and covariance get a leading time axis).
      learning_rate: step size :math:`\eta`.
      diag_reg: added to the diagonal of the train NTK.
      normalization: ``"mean"`` or ``"sum"``, as in :func:`gradient_descent_mse`.
      trace_axes: neural-tangents' ``trace_axes``: ``(-1,)`` (default),
        per-output kernels as above; ``()``, kernels with the output axes
        (``(n, n, k, k)``, ``(m, n, k, k)`` and ``(m, m, k, k)``; ``y_train``
        ``(n, k)``): the same formulas on the ``(n k, n k)`` matrices of all
        outputs (row ``(i, a)`` at ``i k + a``, ``diag_reg`` on their diagonal,
        time still in units of :math:`\eta/n`), as in
        :func:`gradient_descent_mse`. Then ``mean`` is ``(m, k)`` and
        ``covariance`` ``(m, m, k, k)``.

    Returns:
      :class:`Gaussian` with mean shaped like the test outputs and the
      ``(m, m)`` covariance (identical for every output dimension), or
      ``(m, m, k, k)`` with ``trace_axes=()``.

    Note:
      Under jit/vmap, as in :func:`gradient_descent_mse`: for a traced NTK,
      eigenvalues below 0 are treated as 0 and an indefinite one emits a
      :class:`NotPSDWarning`.
    """
    if not _per_output(trace_axes):
        return _joint_outputs_ensemble(
            (ntk_train_train, nngp_train_train, ntk_test_train, nngp_test_train, nngp_test_test),
            y_train, t, learning_rate, diag_reg, normalization,
        )  # fmt: skip
    theta = _check_kernel("ntk_train_train", ntk_train_train, (None, None), symmetric=True)
    n = theta.shape[0]
    kxx = _check_kernel("nngp_train_train", nngp_train_train, (n, n), symmetric=True)
    theta_t = _check_kernel("ntk_test_train", ntk_test_train, (None, n))
    m = theta_t.shape[0]
    k_t = _check_kernel("nngp_test_train", nngp_test_train, (m, n))
    ktt = _check_kernel("nngp_test_test", nngp_test_test, (m, m), symmetric=True)
    y, squeeze = _check_targets(y_train, n)
    t = _check_time(t, False)
    learning_rate = _checks.scalar("learning_rate", learning_rate, 0.0, low_open=True)
    diag_reg = _checks.scalar("diag_reg", diag_reg, 0.0)
    scale = _time_scale(n, normalization)
    with _eager_if_concrete(theta, diag_reg):
        evals, evecs = jnp.linalg.eigh(theta + diag_reg * jnp.eye(n, dtype=theta.dtype))
    _check_psd("ntk_train_train", evals)
    y = y.astype(evals.dtype)

    def at(time):
        g = _filter(evals, learning_rate, time, scale, discrete=False)
        mmat = ((theta_t @ evecs) * g) @ evecs.T
        cross = mmat @ k_t.T
        cov = ktt + mmat @ kxx @ mmat.T - cross - cross.T
        return Gaussian(_squeeze(mmat @ y, squeeze), 0.5 * (cov + cov.T))

    return _over_times(at, t)


def _flat_outputs(name: str, a: Any, rows: int | None, cols: int, y_shape: tuple) -> jax.Array:
    """A ``(rows, cols, k, k)`` kernel of ``trace_axes=()`` (``rows=None``: any) as the
    ``(rows k, cols k)`` matrix of all outputs (row ``(i, a)`` at ``i k + a``)."""
    k = y_shape[1]
    a = _checks.array(name, a, ndim=4, kind="real")
    if a.shape[1:] != (cols, k, k) or (rows is not None and a.shape[0] != rows):
        want = f"({'m' if rows is None else rows}, {cols}, {k}, {k})"
        raise ValueError(
            f"{name}: expected shape {want} with trace_axes=() and y_train {tuple(y_shape)}, "
            f"got {a.shape}"
        )
    return jnp.transpose(a, (0, 2, 1, 3)).reshape(a.shape[0] * k, a.shape[1] * k)


def _unflat_covariance(cov: jax.Array, m: int, k: int) -> jax.Array:
    """``(..., m k, m k)`` -> ``(..., m, m, k, k)`` (NT's zipped output axes)."""
    cov = cov.reshape(*cov.shape[:-2], m, k, m, k)
    return jnp.swapaxes(cov, -3, -2)


def _joint_outputs_gp(k_train_train, y_train, k_test_train, k_test_test, diag_reg) -> Gaussian:
    """:func:`gp_inference` with ``trace_axes=()``: ``(n, n, k, k)`` kernels flattened
    to ``(n k, n k)`` (row ``(i, a)`` at ``i k + a``)."""
    y = _checks.array("y_train", y_train, ndim=2, kind="real")
    n, k = y.shape
    kxx = _flat_outputs("k_train_train", k_train_train, n, n, y.shape)
    kt4 = _flat_outputs("k_test_train", k_test_train, None, n, y.shape)
    m = kt4.shape[0] // k
    ktt = None
    if k_test_test is not None:
        ktt = _flat_outputs("k_test_test", k_test_test, m, m, y.shape)
    g = gp_inference(kxx, y.reshape(n * k), kt4, ktt, diag_reg)
    cov = None if g.covariance is None else _unflat_covariance(g.covariance, m, k)
    return Gaussian(g.mean.reshape(m, k), cov)


def gp_inference(
    k_train_train: jax.Array,
    y_train: jax.Array,
    k_test_train: jax.Array,
    k_test_test: jax.Array | None = None,
    diag_reg: float = 0.0,
    *,
    trace_axes: int | tuple[int, ...] = (-1,),
) -> Gaussian:
    r"""Exact Gaussian-process posterior (NNGP or NTK kernel).

    .. math::

        \mu = K_{*X}(K_{XX} + \sigma^2 I)^{-1} y, \qquad
        \Sigma = K_{**} - K_{*X}(K_{XX} + \sigma^2 I)^{-1} K_{X*},

    computed by a Cholesky factorisation (Rasmussen & Williams 2006, Alg. 2.1),
    :math:`\sigma^2` = ``diag_reg``. With the NTK this is the *NTK-GP*
    posterior; its mean equals :func:`gradient_descent_mse` at ``t=None``.

    Args:
      k_train_train: ``(n, n)`` kernel on train inputs.
      y_train: ``(n,)`` or ``(n, k)`` targets.
      k_test_train: ``(m, n)`` kernel between test and train inputs.
      k_test_test: ``(m, m)`` kernel on test inputs; ``None`` skips the covariance.
      diag_reg: observation noise variance :math:`\sigma^2`.
      trace_axes: neural-tangents' ``trace_axes``: ``(-1,)`` (default), one
        kernel shared by the outputs, as above; ``()``, kernels with the output
        axes, ``k_train_train`` ``(n, n, k, k)``, ``k_test_train`` ``(m, n, k,
        k)``, ``k_test_test`` ``(m, m, k, k)`` and ``y_train`` ``(n, k)``: the
        same formulas on the ``(n k, n k)`` joint covariance of all outputs
        (row ``(i, a)`` at ``i k + a``; ``diag_reg`` on its diagonal). Then
        ``mean`` is ``(m, k)`` and ``covariance`` ``(m, m, k, k)``.

    Returns:
      :class:`Gaussian`; ``covariance`` is ``None`` without ``k_test_test``.

    Raises:
      ValueError: non-finite or mis-shaped kernels or targets, a non-symmetric
        kernel, ``diag_reg < 0``, or a ``K + diag_reg I`` that is not positive
        definite (its Cholesky factorisation fails: pass ``diag_reg > 0``).

    Note:
      Under jit/vmap, a traced ``k_train_train`` or ``diag_reg`` cannot be
      checked before the factorisation: a ``K + diag_reg I``
      that is not positive definite gives a NaN ``mean`` and ``covariance``
      (the posterior does not exist), and a :class:`NotPSDWarning` from the
      host at run time says so. A concrete kernel closed over by a jitted
      function is still checked and raises.
    """
    if not _per_output(trace_axes):
        return _joint_outputs_gp(k_train_train, y_train, k_test_train, k_test_test, diag_reg)
    k = _check_kernel("k_train_train", k_train_train, (None, None), symmetric=True)
    n = k.shape[0]
    kt = _check_kernel("k_test_train", k_test_train, (None, n))
    y, squeeze = _check_targets(y_train, n)
    diag_reg = _checks.scalar("diag_reg", diag_reg, 0.0)
    ktt = None
    if k_test_test is not None:
        ktt = _check_kernel("k_test_test", k_test_test, (kt.shape[0], kt.shape[0]), symmetric=True)
    with _eager_if_concrete(k, diag_reg):
        chol = jax.scipy.linalg.cho_factor(k + diag_reg * jnp.eye(n, dtype=k.dtype), lower=True)
    if _checks.is_tracer(chol[0]):
        jax.debug.callback(_warn_not_pd, jnp.all(jnp.isfinite(chol[0])))
    elif not np.all(np.isfinite(np.asarray(chol[0]))):
        raise ValueError(
            f"k_train_train: expected a positive definite kernel (K + diag_reg I), but its "
            f"Cholesky factorisation failed with diag_reg={diag_reg!r}: the kernel is "
            f"indefinite or singular; pass diag_reg > 0 (e.g. 1e-6 * trace(K) / n)"
        )
    mean = kt @ jax.scipy.linalg.cho_solve(chol, y.astype(k.dtype))
    cov = None
    if ktt is not None:
        cov = ktt - kt @ jax.scipy.linalg.cho_solve(chol, kt.T)
        cov = 0.5 * (cov + cov.T)
    return Gaussian(mean[:, 0] if squeeze else mean, cov)


def max_learning_rate(
    ntk_train_train: jax.Array, normalization: Normalization = "mean", momentum: float = 0.0
) -> jax.Array:
    r"""Largest stable GD step for a linearised network on MSE.

    For the loss :math:`\frac{1}{2n}\sum_i\|f_i-y_i\|^2` (``"mean"``) GD
    contracts iff :math:`\eta\lambda_{\max}(\Theta)/n < 2`, so

    .. math:: \eta_{\max} = \frac{2(1+\mu)\,n}{\lambda_{\max}(\Theta)}

    (:math:`n \to 1` for ``"sum"``; heavy-ball momentum :math:`\mu`, Goh 2017).
    Above :math:`\eta_{\max}` the linearised dynamics diverge; a finite network
    may still converge up to about :math:`2\eta_{\max}` through the catapult
    mechanism (Lewkowycz et al. 2020). Computed with ``jnp.linalg.eigvalsh``
    (neural-tangents' version calls a SciPy argument that no longer exists).

    Args:
      ntk_train_train: ``(n, n)`` per-output NTK on the training batch.
      normalization: ``"mean"`` or ``"sum"``.
      momentum: heavy-ball momentum :math:`\mu \in [0, 1)`.

    Returns:
      Scalar :math:`\eta_{\max}`.

    Raises:
      ValueError: a non-finite, non-symmetric or indefinite kernel, one whose top
        eigenvalue is not positive, or ``momentum`` outside ``[0, 1)``.

    Note:
      Under jit/vmap, for a traced kernel these checks cannot raise: an
      indefinite kernel or one whose top eigenvalue is not positive gives NaN
      (never a negative or infinite step), and an indefinite one also a :class:`NotPSDWarning` at
      run time.
    """
    k = _check_kernel("ntk_train_train", ntk_train_train, (None, None), symmetric=True)
    scale = _time_scale(k.shape[0], normalization)
    momentum = _checks.scalar("momentum", momentum, 0.0, 1.0, high_open=True)
    with _eager_if_concrete(k):
        evals = jnp.linalg.eigvalsh(k)
    ok = _check_psd("ntk_train_train", evals)
    if _checks.is_tracer(evals):  # no error possible: NaN, never a negative or infinite step
        lam = evals[-1]
        valid = ok & (lam > 0)
        return jnp.where(valid, 2.0 * (1.0 + momentum) * scale / jnp.where(valid, lam, 1), jnp.nan)
    top = float(np.asarray(evals)[-1])
    if not top > 0:
        raise ValueError(
            f"ntk_train_train: expected a kernel with a positive top eigenvalue, got {top!r}"
        )
    return 2.0 * (1.0 + momentum) * scale / evals[-1]


def gradient_descent(
    loss: Callable[[jax.Array, jax.Array], jax.Array],
    k_train_train: jax.Array,
    y_train: jax.Array,
    learning_rate: float = 1.0,
    momentum: float | None = None,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-6,
) -> Callable[..., tuple[jax.Array, jax.Array | None]]:
    r"""Outputs of a linearised network trained by gradient descent on any loss.

    In the linearised (infinite-width) regime the outputs move by the kernel
    applied to the loss gradient in function space (Lee et al. 2019, Eq. 7):

    .. math::

        \frac{d f_t(X)}{dt} = -\eta\,\Theta_{XX}\,\nabla_f \mathcal L(f_t(X), y), \qquad
        \frac{d f_t(x_*)}{dt} = -\eta\,\Theta_{*X}\,\nabla_f \mathcal L(f_t(X), y),

    with :math:`t` counted in steps of size :math:`\eta`. The loss carries its
    own normalisation: :func:`wideth.train.mse`'s
    :math:`\frac{1}{2n}\sum\|f - y\|^2` reproduces
    :func:`gradient_descent_mse` (``normalization="mean"``). There is no closed
    form, so the system is integrated with an adaptive Dormand--Prince solver
    (``jax.experimental.ode.odeint``, tolerances ``rtol``/``atol``).

    With heavy-ball ``momentum`` :math:`\beta \in [0, 1)`, the iteration
    :math:`f_{k+1} = f_k - \eta\Theta\nabla\mathcal L(f_k) + \beta(f_k - f_{k-1})`
    has, in the time :math:`s = t\sqrt\eta` with velocity
    :math:`v = (f_k - f_{k-1})/\sqrt\eta`, the continuous limit

    .. math::

        \frac{df}{ds} = v, \qquad
        \frac{dv}{ds} = -\frac{1-\beta}{\sqrt\eta}\,v - \Theta\,\nabla_f\mathcal L(f),

    started at rest (:math:`v_0 = 0`); this is what is integrated (the
    convention of neural-tangents' ``predict.gradient_descent``). It is the
    limit :math:`\eta \to 0` with friction :math:`\gamma = (1-\beta)/\sqrt\eta`
    held fixed: Taylor expansion of the iteration gives
    :math:`\frac{1+\beta}{2} f'' + \gamma f' = -\Theta\nabla\mathcal L`, so the
    discrete iterates differ from the ODE by :math:`O(\sqrt\eta)` there. At a
    fixed :math:`\beta` both become gradient flow with step
    :math:`\eta/(1-\beta)` as :math:`\eta \to 0`.

    Args:
      loss: ``loss(fx_train, y_train) -> scalar``, with ``fx_train`` shaped
        like ``y_train``.
      k_train_train: ``(n, n)`` per-output NTK on the training inputs.
      y_train: ``(n,)`` or ``(n, k)`` targets.
      learning_rate: step size :math:`\eta > 0`.
      momentum: ``None`` (plain GD) or :math:`\beta \in [0, 1)`.
      rtol, atol: tolerances of the ODE solver.

    Returns:
      ``predict_fn(t, k_test_train=None, fx_train_0=0., fx_test_0=0.)``
      returning ``(fx_train_t, fx_test_t)``, shaped like
      :func:`gradient_descent_mse`'s; ``t`` is a time ``>= 0`` or a 1-D array
      of non-decreasing times (a leading time axis). ``predict_fn`` is
      jittable.

    Raises:
      ValueError: a non-finite, non-square, non-symmetric or indefinite kernel
        (a negative eigenvalue makes the flow ascend the loss), a loss that
        does not return a scalar, ``learning_rate <= 0``, ``momentum`` outside
        ``[0, 1)``, ``t=None`` (no limit exists for a general loss), decreasing
        times.

    Note:
      Under jit/vmap, a traced indefinite kernel cannot raise: the flow is
      integrated as given (growing along negative eigendirections, possibly to
      inf/NaN), and a
      :class:`NotPSDWarning` from the host at run time says why.

    Examples:
      Mean squared error gives back the closed form:

      >>> import jax.numpy as jnp
      >>> k = jnp.array([[2.0, 0.5], [0.5, 1.0]])
      >>> y = jnp.array([1.0, -1.0])
      >>> mse = lambda f, y: 0.25 * jnp.sum((f - y) ** 2)
      >>> train, _ = gradient_descent(mse, k, y)(t=3.0)
      >>> closed, _ = gradient_descent_mse(k, y)(t=3.0)
      >>> bool(jnp.allclose(train, closed, atol=1e-5))
      True
    """
    from jax.experimental.ode import odeint

    _checks.callable_("loss", loss, "a function loss(fx_train, y_train) -> scalar")
    k = _check_kernel("k_train_train", k_train_train, (None, None), symmetric=True)
    with _eager_if_concrete(k):
        _check_psd("k_train_train", jnp.linalg.eigvalsh(k))
    n = k.shape[0]
    y, squeeze = _check_targets(y_train, n)
    learning_rate = _checks.scalar("learning_rate", learning_rate, 0.0, low_open=True)
    if momentum is not None:
        momentum = _checks.scalar("momentum", momentum, 0.0, 1.0, high_open=True)
    rtol = _checks.scalar("rtol", rtol, 0.0, low_open=True)
    atol = _checks.scalar("atol", atol, 0.0, low_open=True)
    dtype = jnp.result_type(k.dtype, jnp.float32)
    k = k.astype(dtype)
    y = y.astype(dtype)
    shaped = (lambda f: f[:, 0]) if squeeze else (lambda f: f)
    _checks.scalar_output("loss", loss, shaped(y), shaped(y), what="loss(fx_train, y_train)")
    grad = jax.grad(lambda f: loss(shaped(f), shaped(y)))

    def predict_fn(t, k_test_train=None, fx_train_0=0.0, fx_test_0=0.0):
        if t is None:
            raise ValueError(
                "t: expected a time >= 0 or a 1-D array of times; a general loss has no "
                "closed form at t = infinity (use gradient_descent_mse for MSE)"
            )
        t = _check_time(t, False)
        times = jnp.atleast_1d(jnp.asarray(t, dtype))
        if not _checks.is_tracer(times) and bool(jnp.any(jnp.diff(times) < 0)):
            raise ValueError(f"t: expected non-decreasing times, got {np.asarray(t)!r}")
        f_train = _outputs_like("fx_train_0", fx_train_0, n, y.shape[1], dtype)
        kt = jnp.zeros((0, n), dtype)
        if k_test_train is not None:
            kt = _check_kernel("k_test_train", k_test_train, (None, n)).astype(dtype)
        f_test = _outputs_like("fx_test_0", fx_test_0, kt.shape[0], y.shape[1], dtype)
        grid = jnp.concatenate([jnp.zeros((1,), dtype), times])
        if momentum is None:

            def flow(state, _time):
                g = grad(state[0])
                return -learning_rate * (k @ g), -learning_rate * (kt @ g)

            start = (f_train, f_test)
        else:
            root = jnp.sqrt(learning_rate)
            friction = (1.0 - momentum) / root
            grid = grid * root

            def flow(state, _time):
                f1, f2, v1, v2 = state
                g = grad(f1)
                return v1, v2, -friction * v1 - k @ g, -friction * v2 - kt @ g

            start = (f_train, f_test, jnp.zeros_like(f_train), jnp.zeros_like(f_test))
        path = odeint(flow, start, grid, rtol=rtol, atol=atol)
        # the solver's first step size is NaN on an empty first interval: t = 0 is the start
        at_zero = (times == 0)[:, None, None]
        train = jnp.where(at_zero, f_train, path[0][1:])
        test = jnp.where(at_zero, f_test, path[1][1:])
        if jnp.ndim(t) == 0:
            train, test = train[0], test[0]
        return _squeeze(train, squeeze), (None if k_test_train is None else _squeeze(test, squeeze))

    return predict_fn


def ensemble(
    kernel_fn: Callable[..., Any],
    x_train: jax.Array,
    y_train: jax.Array,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    normalization: Normalization = "mean",
    batch_size: int = 0,
    *,
    trace_axes: int | tuple[int, ...] = (-1,),
) -> Callable[..., Gaussian]:
    r"""Infinite ensemble of trained networks straight from an analytic ``kernel_fn``.

    The kernels are computed with :func:`wideth.kernels.analytic.kernel`
    (blocks of ``batch_size``) and passed to
    :func:`gradient_descent_mse_ensemble`: for ``get="ntk"`` the mean and
    covariance over random initialisations of all-layers-trained networks
    (Lee et al. 2019, Eqs. 15-16); for ``get="nngp"`` the same with the NNGP in
    place of the NTK, i.e. training only the readout layer, whose
    :math:`t\to\infty` limit is the exact NNGP posterior (:func:`gp_inference`).
    This is neural-tangents' ``predict.gradient_descent_mse_ensemble``.

    Args:
      kernel_fn: an analytic ``kernel_fn`` (:func:`wideth.kernels.analytic.mlp`, ...).
      x_train: ``(n, features...)`` training inputs.
      y_train: ``(n,)`` or ``(n, k)`` targets.
      learning_rate, diag_reg, normalization: as in :func:`gradient_descent_mse`.
      batch_size: kernel block size (``0``: all at once).
      trace_axes: neural-tangents' ``trace_axes``: ``(-1,)`` (default), an
        analytic ``kernel_fn`` of per-output ``(n1, n2)`` kernels; ``()``, a
        ``kernel_fn`` whose kernels keep the output axes, ``(n1, n2, k, k)``
        (e.g. neural-tangents' ``empirical_kernel_fn(apply_fn,
        trace_axes=())`` with its ``params`` bound), evaluated as one call
        (``batch_size=0``) and passed on with ``trace_axes=()``: the outputs
        are predicted jointly, ``mean`` ``(m, k)`` and ``covariance``
        ``(m, m, k, k)``.

    Returns:
      ``predict_fn(t=None, x_test=None, get="ntk", compute_cov=False)``
      returning a :class:`Gaussian` (``covariance`` ``None`` unless
      ``compute_cov``) on ``x_test`` (the training inputs when ``None``), or a
      dict of them when ``get`` is a tuple. ``t`` may be a 1-D array of times.

    Raises:
      ValueError: bad kernels, targets or hyperparameters (as the functions it
        calls), ``get`` not ``"nngp"``, ``"ntk"`` or a tuple of them, or with
        ``trace_axes=()`` a ``batch_size > 0`` or a ``kernel_fn`` whose kernels
        are not ``(n1, n2, k, k)``.

    Note:
      neural-tangents normalises the loss by ``y_train.size`` (:math:`nk`): its
      ``learning_rate`` is ``k`` times this one for the same dynamics, with
      either ``trace_axes``; its ``diag_reg`` is relative to the mean trace
      unless ``diag_reg_absolute_scale=True`` (here it is always absolute).
      With ``get="nngp"`` and ``diag_reg > 0`` the covariances differ: here
      ``diag_reg`` enters the dynamics only (the prior of the train outputs
      stays :math:`K_{XX}`), NT also adds it to that prior (at
      :math:`t=\infty` its covariance is the posterior with noise ``diag_reg``,
      :func:`gp_inference`). Means, and everything with ``get="ntk"``, agree.
    """
    from wideth.kernels import analytic

    _checks.callable_("kernel_fn", kernel_fn, "a neural-tangents kernel_fn(x1, x2, get)")
    learning_rate = _checks.scalar("learning_rate", learning_rate, 0.0, low_open=True)
    diag_reg = _checks.scalar("diag_reg", diag_reg, 0.0)
    _time_scale(1, normalization)
    x_train = _checks.array("x_train", x_train, min_ndim=2, min_rows=1, kind="real")
    per_output = _per_output(trace_axes)
    if not per_output:
        y = _checks.array("y_train", y_train, ndim=2, kind="real")
        if batch_size != 0:
            raise ValueError(
                "batch_size: expected 0 with trace_axes=() (one kernel_fn call), "
                f"got {batch_size!r}"
            )

    def kernels(x1, x2, get):
        if per_output:
            return analytic.kernel(kernel_fn, x1, x2, get, batch_size=batch_size)
        out = analytic._jitted(kernel_fn)(x1, x2, get)  # compiled once per shape and get
        outs = (out,) if isinstance(get, str) else tuple(out)
        want = (x1.shape[0], (x1 if x2 is None else x2).shape[0], y.shape[1], y.shape[1])
        for o in outs:
            if tuple(jnp.shape(o)) != want:
                raise ValueError(
                    f"kernel_fn: expected kernels of shape {want} with trace_axes=() and "
                    f"y_train {tuple(y.shape)}, got {tuple(jnp.shape(o))}"
                )
        return outs[0] if isinstance(get, str) else outs

    train = dict(zip(("nngp", "ntk"), kernels(x_train, None, ("nngp", "ntk")), strict=True))
    _check_targets(y_train, train["ntk"].shape[0])

    @functools.cache
    def mean_fn(g: str) -> Callable[..., Any]:  # one eigh per kernel, on first use
        return gradient_descent_mse(
            train[g], y_train, learning_rate, diag_reg, normalization, trace_axes=trace_axes
        )

    def predict_fn(t=None, x_test=None, get="ntk", compute_cov=False):
        get = _checks.choices("get", get, ("nngp", "ntk"))
        names = (get,) if isinstance(get, str) else get
        compute_cov = _checks.boolean("compute_cov", compute_cov)
        if x_test is None:
            cross, test = train, (train["nngp"] if compute_cov else None)
        else:
            x_test = _checks.array("x_test", x_test, min_ndim=2, min_rows=1, kind="real")
            if x_test.shape[1:] != x_train.shape[1:]:
                raise ValueError(
                    f"x_test: expected the feature shape of x_train {tuple(x_train.shape[1:])}, "
                    f"got {_checks.shape_str(x_test)}"
                )
            cross = dict(
                zip(("nngp", "ntk"), kernels(x_test, x_train, ("nngp", "ntk")), strict=True)
            )
            test = kernels(x_test, None, "nngp") if compute_cov else None
        out = {}
        for g in names:
            args = (train[g], train["nngp"], cross[g], cross["nngp"])
            if compute_cov:
                out[g] = gradient_descent_mse_ensemble(
                    *args, test, y_train, t, learning_rate, diag_reg, normalization,
                    trace_axes=trace_axes,
                )  # fmt: skip
            else:
                out[g] = Gaussian(mean_fn(g)(t, k_test_train=cross[g])[1], None)
        return out[get] if isinstance(get, str) else out

    return predict_fn
