"""Every bad input of ``bad_input_cases.CASES`` gets a named error raised by wideth,
and no write leaves a broken file behind (interrupted, failing and unwritable outputs
of the library, the command line and the experiments)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bad_input_cases as bic  # noqa: E402

import wideth  # noqa: E402

PACKAGE = str(Path(wideth.__file__).resolve().parent)


# --- the bad-input suite ------------------------------------------------------------


def test_case_list_covers_every_entry_point_with_enough_cases():
    entries = {}
    for c in bic.CASES:
        entries[c.entry] = entries.get(c.entry, 0) + 1
    assert len(bic.CASES) >= 250
    assert len({c.id for c in bic.CASES}) == len(bic.CASES), "case ids must be unique"
    # At least 5 kinds of bad input wherever an entry point has that many arguments to get wrong.
    few = {e: n for e, n in entries.items() if n < 5}
    small_apis = {
        "blocks.current_mesh",
        "scaling.ChinchillaFit.tokens_per_parameter",
        "scaling.ChinchillaFit.derived_ci",
        "scaling.PowerLawFit.predict",
        "scaling.bootstrap_weights",
        "scaling.datasets.chinchilla",
        "diagnostics.gradient_ratios",
        "data.digits",
        "data.mnist5k",
        "train.mse",
        "train.accuracy",
        "train.get_loss",
        "train.is_classification",
        "train.TrainState.create",
        "train.with_hyperparams",
        "train.stacked",
        "hessian.batched_hvp",
        "hessian.batched_ggn_vp",
        "hessian.ggn",
        "hessian.from_matvec",
        "hessian.tridiagonal",
        "hessian.tridiagonal_eigh",
        "hessian.sharpness",
        "hessian.spectral_density",
        "hessian.negative_mass",
        "hessian.trace",
        "functional.functional",
        "functional.as_apply",
        "functional.features",
        "functional.centred",
        "io.atomic_path",
        "io.write_text",
        "io.write_json",
        "io.save_figure",
        "io.ensure_dir",
        "experiments.common.Sizes",
        "experiments.common.execute",
        "conditioning.normalised_weight_variance",
        "functional.param_paths",
        "hessian.class_spectrum",
        "optim.contrib.gauss_newton_momentum_info",
        "optim.pl_adaptive_info",
        "optim.outer_product_adaptive_info",
        "optim.pl_constant_init",
        "train.global_norm",
    }
    assert set(few) <= small_apis, few


@pytest.mark.parametrize("case", bic.CASES, ids=[c.id for c in bic.CASES])
def test_bad_input_gets_a_named_error_from_wideth(case):
    with pytest.raises((ValueError, TypeError)) as info:
        case.call()
    msg = str(info.value)
    assert type(info.value) is case.exc or isinstance(info.value, case.exc), (
        f"expected {case.exc.__name__}, got {type(info.value).__name__}: {msg}"
    )
    assert bic.is_named(msg, case.name), f"message does not start with {case.name!r}: {msg}"
    site = str(Path(bic.raise_site(info.tb)).resolve())
    here = str(Path(__file__).resolve().parent.parent / "experiments")
    assert site.startswith(PACKAGE) or site.startswith(here), f"raised from {site}: {msg}"
    assert "\n" not in msg.strip() or case.exc is TypeError, msg


# --- numbers behind the new errors ------------------------------------------------------


def test_min_quad_accuracy_as_documented(x64):
    """At MIN_QUAD the tanh moments are accurate to the documented bounds; far below, not.

    The rule (Gauss-weighted trapezoid on [-Z_MAX, Z_MAX]) is written here in NumPy; the
    public maps at MIN_QUAD must agree with it, so the numbers below are meanfield's.
    """
    from wideth.kernels import meanfield as mf

    def grid(n):
        z = np.linspace(-mf.Z_MAX, mf.Z_MAX, n)
        w = np.exp(-0.5 * z**2)
        return z, w / w.sum()

    d = lambda u: 1 - np.tanh(u) ** 2

    def one_d(n, q):  # E[tanh^2], E[tanh'^2]
        z, w = grid(n)
        return np.array(
            [
                np.sum(w * f(np.sqrt(q) * z))
                for f in (lambda u: np.tanh(u) ** 2, lambda u: d(u) ** 2)
            ]
        )

    def two_d(n, q, c):  # E[tanh tanh], E[tanh' tanh']
        z, w = grid(n)
        u, v = np.sqrt(q) * z, np.sqrt(q) * (c * z[:, None] + np.sqrt(1 - c**2) * z[None, :])
        return np.array([(w * f(u)) @ (f(v) @ w) for f in (np.tanh, d)])

    n1, n2 = mf.MIN_QUAD
    q_map = mf.variance_map(20.0, "tanh", 1.0, 0.0, quad=mf.MIN_QUAD)  # E[tanh^2] at q = 20
    np.testing.assert_allclose(float(q_map), one_d(n1, 20.0)[0], rtol=1e-12)
    c_map = mf.correlation_map(0.5, "tanh", 1.0, 0.0, q=3.0, quad=mf.MIN_QUAD)  # E[tanh tanh]/q'
    q3 = float(mf.variance_map(3.0, "tanh", 1.0, 0.0, quad=mf.MIN_QUAD))
    np.testing.assert_allclose(float(c_map) * q3, two_d(n2, 3.0, 0.5)[0], rtol=1e-12)

    fine = mf.QUAD  # converged to ~1e-13 against adaptive quadrature (module docstring)
    rel = lambda a, b: float(np.max(np.abs(a - b) / np.abs(b)))
    ref1, ref2 = one_d(fine[0], 20.0), two_d(fine[1], 3.0, 0.5)
    assert rel(one_d(n1, 20.0), ref1) <= 1.3e-6
    assert rel(two_d(n2, 3.0, 0.5), ref2) <= 1.3e-9
    assert rel(one_d(41, 20.0), ref1) > 0.5  # 70% (module docstring)
    assert rel(two_d(21, 3.0, 0.5), ref2) > 0.1  # 17% at c = 0.5 (35% at worst c)


def test_bounded_activation_at_zero_variance_is_the_limit(x64):
    """tanh/erf with b_var = 0 in the ordered phase have q* = 0: the maps are their q -> 0 limits
    (c -> c, chi_c = W_var phi'(0)^2), equal to b_var -> 0+; they used to be evaluated at q = 1."""
    from wideth.kernels import meanfield as mf

    assert float(mf.correlation_map(0.3, "tanh", 0.5, 0.0)) == pytest.approx(0.3, abs=1e-12)
    assert float(mf.chi_c("tanh", 0.5, 0.0)) == pytest.approx(0.5, rel=1e-10)
    assert float(mf.chi_c("tanh", 0.5, 0.0)) == pytest.approx(
        float(mf.chi_c("tanh", 0.5, 1e-12)), rel=1e-9
    )


def test_certificate_equality_cases_pass_and_violations_fail():
    from wideth.diagnostics import conservation

    eye = jnp.eye(3)
    cert = conservation.distillation(eye, 2 * eye, labels=jnp.array([0, 1, 2]))
    b = cert.bounds[1]
    # Exact arithmetic: |Acc_T - Acc_S| = E[TV] here (the student only sharpens the teacher).
    pt = np.exp(np.eye(3)) / np.exp(np.eye(3)).sum(1, keepdims=True)
    ps = np.exp(2 * np.eye(3)) / np.exp(2 * np.eye(3)).sum(1, keepdims=True)
    accuracy_gap = abs(np.diag(pt).mean() - np.diag(ps).mean())
    assert np.isclose(accuracy_gap, 0.5 * np.abs(pt - ps).sum(1).mean(), rtol=1e-14)
    assert cert.holds, cert.to_markdown()
    assert 0 < b.tolerance <= 64 * np.finfo(np.float32).eps * 0.25
    # A stage that misses its certified decrease by 1% still fails.
    bad = conservation.count_bound([1.0, 0.9, 0.8], [0.1, 0.101])
    assert not bad.holds and bad.failed == ["stages meeting their certified decrease"]
    exact = conservation.count_bound(np.float32([1.0, 0.9, 0.8]), np.float32([0.1, 0.1]))
    assert exact.holds, exact.to_markdown()


def test_loss_curve_shape_keeps_documented_non_finite_and_zero_cases():
    from wideth import diagnostics

    assert diagnostics.loss_curve_shape([1.0, np.nan, 2.0])["verdict"] == "wild"
    assert diagnostics.loss_curve_shape([1.0, 0.5, 0.0])["verdict"] == "library"


# --- files: atomic writes, interrupted and failing -------------------------------------


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_atomic_path_leaves_no_file_or_the_previous_one(tmp_path, error):
    from wideth import io

    target = tmp_path / "out.json"
    with pytest.raises(type(error)):
        with io.atomic_path(target) as tmp:
            tmp.write_text('{"half": ')
            raise error
    assert list(tmp_path.iterdir()) == []
    io.write_json(target, {"run": 1})
    with pytest.raises(type(error)):
        with io.atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise error
    assert json.loads(target.read_text()) == {"run": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_output_checks_try_a_real_write(tmp_path, monkeypatch):
    """os.access says yes to root on read-only mounts: the check creates a file instead."""
    import tempfile

    from wideth import io

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(ValueError, match="^path: the folder .* is not writable"):
        io.write_text(tmp_path / "a.txt", "x")
    with pytest.raises(ValueError, match="^--out: the folder .* is not writable"):
        io.ensure_dir(tmp_path / "sub", "--out")
    assert list(tmp_path.iterdir()) == []


def _kernel_inputs():
    from wideth.kernels import analytic

    x = jax.random.normal(jax.random.key(0), (10, 3))
    return analytic.mlp(depth=2, width=8)[2], x


def test_kernel_to_file_has_the_returned_shape_and_values(tmp_path):
    from wideth.kernels import analytic

    kernel_fn, x = _kernel_inputs()
    path = tmp_path / "k.npy"
    k = analytic.kernel(kernel_fn, x, get="ntk", batch_size=4, out="host", path=path)
    on_disk = np.load(path)
    assert k.shape == on_disk.shape == (10, 10)
    np.testing.assert_array_equal(np.asarray(k), on_disk)
    direct = analytic.kernel(kernel_fn, x, get="ntk")  # unblocked, on device
    np.testing.assert_allclose(on_disk, np.asarray(direct), rtol=1e-5, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["k.npy"]


class _Interrupt:
    """A tqdm stand-in whose iteration stops with ``error`` after ``after`` blocks."""

    def __init__(self, after, error):
        self.after, self.error = after, error

    def __call__(self, iterable, **kwargs):
        def gen():
            for i, item in enumerate(iterable):
                if i == self.after:
                    raise self.error
                yield item

        return gen()


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("device lost")])
def test_kernel_file_interrupted_mid_run(tmp_path, monkeypatch, error):
    """An interrupt or an error after some blocks are written: no file, or the previous one."""
    import tqdm

    from wideth.kernels import analytic

    kernel_fn, x = _kernel_inputs()
    path = tmp_path / "k.npy"
    monkeypatch.setattr(tqdm, "tqdm", _Interrupt(2, error))
    with pytest.raises(type(error)):
        analytic.kernel(kernel_fn, x, batch_size=2, out="host", path=path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    previous = np.asarray(analytic.kernel(kernel_fn, x, batch_size=2, out="host", path=path))
    monkeypatch.setattr(tqdm, "tqdm", _Interrupt(3, error))
    with pytest.raises(type(error)):
        analytic.kernel(kernel_fn, 2 * x, batch_size=2, out="host", path=path)
    np.testing.assert_array_equal(np.load(path), previous)
    assert [p.name for p in tmp_path.iterdir()] == ["k.npy"]


def test_blockwise_failing_block_leaves_no_file(tmp_path):
    """A block function that fails at run time (not at trace time) on the third block."""
    from wideth.kernels import blocks

    calls = []

    def host_check(a):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("block 3 failed")
        return a

    def block_fn(a, b):
        a = jax.pure_callback(host_check, jax.ShapeDtypeStruct(a.shape, a.dtype), a)
        return a @ b.T

    x = jnp.ones((10, 2))
    with pytest.raises(Exception, match="block 3 failed"):
        blocks.blockwise(block_fn, x, x, 2, out="host", path=tmp_path / "k.npy")
    assert list(tmp_path.iterdir()) == []


# --- the command line: bad --out, one line, exit 2, before any compute ----------------


@pytest.fixture
def no_compute(monkeypatch):
    """Loading data or building a model means compute started: fail loudly if it does."""
    from wideth import data

    def forbidden(*args, **kwargs):
        raise AssertionError("compute started before --out was validated")

    for name in ("digits", "mnist5k", "synthetic_regression"):
        monkeypatch.setattr(data, name, forbidden)


def _cli(argv, capsys):
    from wideth.__main__ import main

    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.err


_BAD_OUT = [
    (c, w)
    for c in ("kernel", "spectrum", "profile")
    for w in ("missing", "folder", "below_file", "suffix")
    if w != "suffix" or c == "kernel"  # only the kernel's --out has a required suffix
]


@pytest.mark.parametrize("command, where", _BAD_OUT)
def test_cli_bad_out_is_one_line_before_compute(command, where, tmp_path, capsys, no_compute):
    (tmp_path / "f").write_text("x")
    out = {
        "missing": tmp_path / "no_dir" / "k.npy",
        "folder": tmp_path,
        "below_file": tmp_path / "f" / "k.npy",
        "suffix": tmp_path / ("k.txt" if command == "kernel" else "k"),
    }[where]
    rc, err = _cli([command, "--n", "8", "--out", str(out)], capsys)
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith(f"wideth {command}: error: --out"), err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


@pytest.mark.parametrize(
    "argv",
    [
        ["kernel", "--n", "0", "--out", "k.npy"],
        ["kernel", "--batch-size", "-1", "--out", "k.npy"],
        ["kernel", "--depth", "-1", "--out", "k.npy"],
        ["spectrum", "--k", "0"],
        ["spectrum", "--num-probes", "-2"],
        ["profile", "--width", "0"],
    ],
)
def test_cli_bad_sizes_are_one_line_before_compute(argv, capsys, no_compute):
    rc, err = _cli(argv, capsys)
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    flag = next(a for a in argv[1:] if a.startswith("--") and a != "--out")
    assert err.startswith(f"wideth {argv[0]}: error: {flag}:"), err


def test_cli_write_failing_mid_file_keeps_the_previous_file(tmp_path, capsys, monkeypatch):
    """np.save writes half the file, then the disk is full: one line, the old file intact."""
    target = tmp_path / "k.npy"
    argv = ["kernel", "--depth", "1", "--width", "8", "--n", "8", "--out", str(target)]
    rc, err = _cli(argv, capsys)
    assert rc == 0, err
    previous = np.load(target)
    real_save = np.save

    def half_then_fail(f, arr, *args, **kwargs):
        real_save(f, arr[: len(arr) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", half_then_fail)
    rc, err = _cli(argv[:-1] + [str(target)], capsys)
    assert rc == 2 and err.count("\n") == 1 and "No space left" in err, err
    np.testing.assert_array_equal(np.load(target), previous)
    assert [p.name for p in tmp_path.iterdir()] == ["k.npy"]


# --- experiments: unwritable --out, failing metrics.json, REPORT.md --------------------


def _fake_result():
    from experiments import common

    return common.Result(metrics={"x": 1.0}, checks=[common.check("x", 1.0, 1.0, 0.1)], figures=[])


def test_experiment_with_unwritable_out_fails_before_running(tmp_path, capsys):
    from experiments import common

    (tmp_path / "f").write_text("x")
    ran = []

    def run(cfg):
        ran.append(cfg)
        return _fake_result()

    for out in (tmp_path / "f", tmp_path / "f" / "sub"):
        cfg = common.Config(name="fake", quick=True, seed=0, out=out, quiet=True)
        with pytest.raises(ValueError, match="^--out: "):
            common.execute(run, cfg)
    assert ran == []
    run.__module__ = __name__  # cli names the experiment after the run's module
    with pytest.raises(SystemExit) as info:
        common.cli(run, "fake", ["--quick", "--out", str(tmp_path / "f" / "sub")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "--out" in err, err
    assert ran == [] and sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_experiment_metrics_write_failing_keeps_the_previous_metrics(tmp_path, monkeypatch):
    from experiments import common
    from wideth import io

    cfg = common.Config(name="fake", quick=True, seed=0, out=tmp_path / "run", quiet=True)
    common.execute(lambda c: _fake_result(), cfg)
    previous = (cfg.out / "metrics.json").read_text()
    real = io.write_text

    def interrupted(path, text, name="path"):
        with io.atomic_path(path, name) as tmp:
            tmp.write_text(text[: len(text) // 2])
            raise KeyboardInterrupt

    monkeypatch.setattr(io, "write_text", interrupted)
    with pytest.raises(KeyboardInterrupt):
        common.execute(lambda c: _fake_result(), cfg)
    monkeypatch.setattr(io, "write_text", real)
    assert (cfg.out / "metrics.json").read_text() == previous
    assert sorted(p.name for p in cfg.out.iterdir()) == ["metrics.json"]


def test_report_is_atomic_and_its_command_line_one_line(tmp_path, capsys, monkeypatch):
    from experiments import report
    from wideth import io

    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "metrics.json").write_text('{"checks": [], "half": ')  # unreadable
    path = report.write_report(["fake"], tmp_path)
    text = path.read_text()
    assert "cannot be read" in text
    with monkeypatch.context() as m:

        def failing(p, t, name="path"):
            with io.atomic_path(p, name) as tmp:
                tmp.write_text(t[:10])
                raise RuntimeError("disk full")

        m.setattr(io, "write_text", failing)
        with pytest.raises(RuntimeError):
            report.write_report(["fake"], tmp_path)
    assert path.read_text() == text
    (tmp_path / "a_file").write_text("x")
    rc = report.main(["--out", str(tmp_path / "a_file"), "--only", "catapult"])
    err = capsys.readouterr().err
    assert (
        rc == 2
        and err.count("\n") == 1
        and err.startswith("python -m experiments.report: error: --out")
    ), err


def test_every_write_of_the_cli_experiments_and_blocks_is_atomic():
    """No module of these writes a file except inside a ``with io.atomic_path(...)`` block
    (or through wideth.io's writers, which use it)."""
    root = Path(__file__).resolve().parent.parent
    files = [
        root / "wideth" / "__main__.py",
        root / "wideth" / "kernels" / "blocks.py",
        root / "experiments" / "common.py",
        root / "experiments" / "report.py",
    ]
    writes = (".write_text(", ".savefig(", "open_memmap(", "np.save(", "json.dump(", "open(")
    for f in files:
        inside = None  # indentation of the enclosing ``with ... atomic_path(...)``
        for line in f.read_text().splitlines():
            indent = len(line) - len(line.lstrip())
            if inside is not None and line.strip() and indent <= inside:
                inside = None
            if line.lstrip().startswith("with ") and "atomic_path(" in line:
                inside = indent
                continue
            code = line.split("#")[0]
            for w in writes:
                if w in code and inside is None and f"io.{w.lstrip('.')}" not in code:
                    if w == "open(" and ("read" in code or "np.load" in code):
                        continue
                    raise AssertionError(f"{f.name}: a write outside atomic_path: {line.strip()}")


# --- value checks are skipped for traced inputs: jit and vmap still work ------------------


def test_validated_functions_still_trace_under_jit_and_vmap():
    """Shape/dtype checks only under a transform: results equal the eager ones."""
    from wideth import optim
    from wideth.kernels import empirical, predict

    k, y = bic.spd(), bic.targets()
    kt = jnp.ones((2, 4)) / 4

    def gd(lr, t):
        return predict.gradient_descent_mse(k, y, learning_rate=lr)(t=t, k_test_train=kt)[1]

    lrs, ts = jnp.array([0.5, 1.0]), jnp.array([1.0, 3.0])
    batched = jax.jit(jax.vmap(gd))(lrs, ts)
    eager = np.stack([gd(float(a), float(b)) for a, b in zip(lrs, ts, strict=True)])
    np.testing.assert_allclose(batched, eager, rtol=1e-5)
    gp = jax.jit(lambda a: predict.gp_inference(a, y, kt, diag_reg=1e-3).mean)(k)
    np.testing.assert_allclose(gp, predict.gp_inference(k, y, kt, diag_reg=1e-3).mean, rtol=1e-5)
    lr = jax.jit(predict.max_learning_rate)(k)
    np.testing.assert_allclose(lr, predict.max_learning_rate(k), rtol=1e-6)
    step = jax.vmap(optim.conservative_step)(jnp.array([1.0, 2.0]), jnp.array([0.5, 0.5]))
    np.testing.assert_allclose(step, [1.0, 0.5])
    mu = jax.jit(jax.vmap(optim.pl_constant))(jnp.array([1.0, 2.0]), jnp.array([4.0, 4.0]))
    np.testing.assert_allclose(mu, [2.0, 1.0])
    x = bic.xy()[0]
    ntk = jax.jit(lambda p, a: empirical.ntk(bic.apply, p, a))(bic.params(), x)
    np.testing.assert_allclose(ntk, empirical.ntk(bic.apply, bic.params(), x), rtol=1e-5)


# --- a kernel traced under jit cannot raise: documented results and a run-time warning ---


def _indefinite():
    """Symmetric, eigenvalues (2, 1, 0.5, -0.5) in a random basis."""
    q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(11), (4, 4)))
    return q, (q * jnp.array([2.0, 1.0, 0.5, -0.5])) @ q.T


def _traced_warnings(fn, *args):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = jax.block_until_ready(fn(*args))
        jax.effects_barrier()
    return out, [w for w in caught if issubclass(w.category, predict_warning())]


def predict_warning():
    from wideth.kernels import predict

    return predict.NotPSDWarning


def test_traced_indefinite_kernel_gp_is_nan_with_a_warning_and_concrete_raises():
    from wideth.kernels import predict

    _, k = _indefinite()
    y, kt = bic.targets(), jnp.ones((2, 4)) / 4
    gp = jax.jit(lambda a: predict.gp_inference(a, y, kt, kt @ kt.T + jnp.eye(2)))
    out, warned = _traced_warnings(gp, k)
    assert np.all(np.isnan(out.mean)) and np.all(np.isnan(out.covariance))
    assert len(warned) == 1 and str(warned[0].message).startswith("k_train_train: ")
    assert "diag_reg" in str(warned[0].message)
    # the same kernel closed over by the jitted function is concrete: it raises
    with pytest.raises(ValueError, match="^k_train_train: expected a positive definite"):
        jax.jit(lambda: predict.gp_inference(k, y, kt).mean)()
    # a positive definite traced kernel: no warning, the eager posterior
    ok, warned = _traced_warnings(jax.jit(lambda a: predict.gp_inference(a, y, kt).mean), bic.spd())
    assert warned == []
    np.testing.assert_allclose(ok, predict.gp_inference(bic.spd(), y, kt).mean, rtol=1e-5)


def test_traced_indefinite_kernel_max_learning_rate_is_nan_never_negative():
    from wideth.kernels import predict

    batch = jnp.stack([bic.spd(), -jnp.eye(4), _indefinite()[1]])
    lr, warned = _traced_warnings(jax.vmap(predict.max_learning_rate), batch)
    assert lr[0] == pytest.approx(float(predict.max_learning_rate(bic.spd())), rel=1e-6)
    assert np.isnan(lr[1]) and np.isnan(lr[2])  # eagerly: -2n and a step for a wrong kernel
    assert len(warned) == 2 and all(str(w.message).startswith("ntk_train_train: ") for w in warned)
    assert "-0.5" in str(warned[1].message)
    with pytest.raises(ValueError, match="^ntk_train_train: expected a positive semi-definite"):
        predict.max_learning_rate(-jnp.eye(4))


def test_traced_indefinite_kernel_gd_predicts_its_psd_part_with_a_warning():
    """Negative eigenvalues count as 0 under jit: the prediction of the kernel with the
    eigenvalue -0.5 replaced by 0, which is PSD and checked eagerly (an independent route)."""
    from wideth.kernels import predict

    q, k = _indefinite()
    clipped = (q * jnp.array([2.0, 1.0, 0.5, 0.0])) @ q.T
    y, kt = bic.targets(), jnp.ones((2, 4)) / 4

    def gd(a):
        train, test = predict.gradient_descent_mse(a, y)(t=jnp.array([1.0, 30.0]), k_test_train=kt)
        return train, test

    (train, test), warned = _traced_warnings(jax.jit(gd), k)
    ref_train, ref_test = gd(clipped)
    assert np.all(np.isfinite(train)) and np.all(np.isfinite(test))
    np.testing.assert_allclose(train, ref_train, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(test, ref_test, rtol=1e-4, atol=1e-5)
    assert len(warned) == 1 and str(warned[0].message).startswith("k_train_train: ")
    with pytest.raises(ValueError, match="^k_train_train: expected a positive semi-definite"):
        gd(k)
    # the general-loss flow checks the same eagerly (it would ascend along -0.5)
    mse = lambda f, t: 0.5 * jnp.mean(jnp.sum((f - t) ** 2))
    with pytest.raises(ValueError, match="^k_train_train: expected a positive semi-definite"):
        predict.gradient_descent(mse, k, y)


# Public functions that take no argument a user can get wrong: total predicates and
# converters (any input is valid), argument-free constructors and reports.
_TOTAL = {
    "activations.is_single",  # a predicate: any value gives True/False
    "io.jsonable",  # converts anything JSON can hold, leaves the rest as str
    "hessian.products.check_scalar",  # the validator itself (its errors are the checks)
    "compat.neural_tangents",
}


def test_every_public_function_with_arguments_has_bad_input_cases():
    import importlib
    import inspect
    import pkgutil

    entries = {c.entry.split(" ")[0] for c in bic.CASES}
    missing = []
    for info in pkgutil.walk_packages(wideth.__path__, "wideth."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        mod = importlib.import_module(info.name)
        short = info.name.removeprefix("wideth.")
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name, None)
            if not inspect.isfunction(obj) or not obj.__module__.startswith("wideth"):
                continue
            if not inspect.signature(obj).parameters or f"{short}.{name}" in _TOTAL:
                continue
            if not any(e == name or e.endswith("." + name) for e in entries):
                missing.append(f"{short}.{name}")
    assert not missing, f"public functions without bad-input cases: {sorted(set(missing))}"
