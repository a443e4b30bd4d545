"""The ``wideth`` command line: info, kernel, spectrum; errors are one line, exit 2."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from wideth.__main__ import build_parser, main


def test_info(capsys):
    assert main(["info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["versions"]["jax"] == jax.__version__
    assert info["neural_tangents_importable"] is True
    assert isinstance(info["compat_layer_active"], bool)


@pytest.mark.parametrize(
    "argv",
    [
        ["kernel", "--activation", "swish", "--out", "k.npy"],
        ["kernel", "--depth", "0", "--out", "k.npy"],
        ["spectrum", "--k", "-3"],
        ["nonsense"],
    ],
)
def test_bad_arguments_one_line_exit_2(argv):
    proc = subprocess.run(
        [sys.executable, "-m", "wideth", *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "error" in lines[0], proc.stderr


def test_every_command_has_help_with_example():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert "example" in (p.epilog or ""), name


def test_kernel_matches_library(tmp_path, capsys):
    from wideth import data
    from wideth.kernels import analytic

    out = tmp_path / "K.npy"
    argv = ["kernel", "--depth", "2", "--data", "digits", "--n", "40", "--batch-size", "16"]
    assert main([*argv, "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    k = np.load(out)
    x = data.digits(seed=0).x_train[:40]
    _, _, kernel_fn = analytic.mlp(depth=2, width=512)
    # Same blocks as the CLI: the same float32 computation.
    ref = analytic.kernel(kernel_fn, x, get="ntk", batch_size=16)
    np.testing.assert_allclose(k, ref, rtol=1e-5, atol=1e-6)
    # Unblocked, the diagonal differs in float32 by up to ~3e-4 relative on some
    # CPUs (arccos near c = 1 amplifies rounding to ~sqrt(eps)); off it, 1e-5.
    direct = np.asarray(analytic.kernel(kernel_fn, x, get="ntk"))
    off = ~np.eye(40, dtype=bool)
    np.testing.assert_allclose(k[off], direct[off], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.diag(k), np.diag(direct), rtol=1e-3)
    assert summary["shape"] == [40, 40]
    assert summary["lambda_max"] == pytest.approx(np.linalg.eigvalsh(k.astype(float))[-1], rel=1e-6)


@pytest.mark.slow
def test_spectrum_matches_dense_hessian(tmp_path, capsys):
    from flax import nnx

    from wideth import data, functional, models, train

    argv = [
        "spectrum",
        "--depth",
        "1",
        "--width",
        "8",
        "--n",
        "32",
        "--k",
        "3",
        "--num-steps",
        "60",
    ]
    assert main(argv) == 0
    top = json.loads(capsys.readouterr().out)["top_eigenvalues"]
    ds = data.digits(seed=0)  # the command's defaults: digits, seed 0, relu, W_std sqrt 2
    x, y = ds.x_train[:32], ds.y_train[:32]
    net = models.MLP(
        x.shape[1],
        8,
        1,
        y.shape[1],
        activation="relu",
        W_std=2**0.5,
        b_std=0.0,
        parameterization="ntk",
        rngs=nnx.Rngs(0),
    )
    apply_fn, params = functional.as_apply(net)
    loss_fn = lambda p: train.mse(apply_fn(p, x), y)
    flat, unravel = ravel_pytree(params)
    h = jax.hessian(lambda v: loss_fn(unravel(v)))(flat)
    dense = np.sort(np.linalg.eigvalsh(np.asarray(h, np.float64)))[::-1][:3]
    np.testing.assert_allclose(top, dense, rtol=2e-3, atol=1e-5)
    assert jnp.all(jnp.isfinite(jnp.asarray(top)))
