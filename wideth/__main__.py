"""The ``wideth`` command line.

Examples::

    wideth info
    wideth kernel --model mlp --depth 3 --activation relu --data digits --n 512 --out K.npy
    wideth kernel --kind empirical --width 1024 --data digits --n 256 --out K_emp.npy
    wideth spectrum --depth 2 --width 64 --data digits --n 256 --k 5 --out spectrum.json
    wideth profile --depth 40 --activation tanh --W-std 0.7071 --data digits

Bad arguments print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

_DATASETS = ("digits", "mnist5k", "synthetic")


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_model_args(p: argparse.ArgumentParser, depth: int = 3, width: int = 512) -> None:
    p.add_argument("--model", choices=("mlp",), default="mlp", help="architecture (default mlp)")
    p.add_argument("--depth", type=int, default=depth, help="number of hidden layers")
    p.add_argument("--width", type=int, default=width, help="hidden width (finite networks)")
    from wideth.kernels.analytic import ACTIVATIONS  # the names both kernels and models take

    p.add_argument("--activation", choices=ACTIVATIONS, default="relu")
    p.add_argument("--W-std", dest="W_std", type=float, default=2**0.5, help="weight std")
    p.add_argument("--b-std", dest="b_std", type=float, default=0.0, help="bias std")
    p.add_argument(
        "--parameterization", choices=("ntk", "standard"), default="ntk", help="(default ntk)"
    )


def _add_data_args(p: argparse.ArgumentParser, n: int = 256) -> None:
    p.add_argument("--data", choices=_DATASETS, default="digits", help="dataset (default digits)")
    p.add_argument("--n", type=int, default=n, help="number of training points used")
    p.add_argument("--seed", type=int, default=0)


def _positive(args: argparse.Namespace, *names: str) -> None:
    from wideth import _checks

    for name in names:
        _checks.positive_int(f"--{name.replace('_', '-')}", getattr(args, name))


def _stds(args: argparse.Namespace) -> None:
    """``--W-std`` and ``--b-std``: finite and >= 0, checked before any data is loaded."""
    from wideth import _checks

    _checks.scalar("--W-std", args.W_std, 0.0)
    _checks.scalar("--b-std", args.b_std, 0.0)


def _load(args: argparse.Namespace):
    """(x, y) arrays for the chosen dataset, ``args.n`` rows."""
    import jax

    from wideth import data

    if args.data == "synthetic":
        x, y = data.synthetic_regression(jax.random.key(args.seed), args.n, 16)
        return x, y
    ds = data.digits(seed=args.seed) if args.data == "digits" else data.mnist5k(seed=args.seed)
    if args.n > ds.x_train.shape[0]:
        raise ValueError(
            f"--n: expected at most {ds.x_train.shape[0]} for {args.data}, got {args.n}"
        )
    return ds.x_train[: args.n], ds.y_train[: args.n]


def cmd_info(args: argparse.Namespace) -> dict[str, Any]:
    """Versions, devices, x64 and compat-layer status."""
    import jax

    from wideth import compat, environment

    try:
        compat.neural_tangents()
        nt_ok = True
    except ImportError:
        nt_ok = False
    report = compat.shim_report()
    return {
        "versions": environment.versions(),
        "devices": [str(d) for d in jax.devices()],
        "backend": jax.default_backend(),
        "x64": bool(jax.config.jax_enable_x64),
        "neural_tangents_importable": nt_ok,
        "compat_layer_active": report["active"],
        "compat_restored": report["restored"],
    }


def _out_path(args: argparse.Namespace, suffix: str | None = None) -> Path | None:
    """Validate ``--out`` before any compute (parent exists and is writable)."""
    if args.out is None:
        return None
    from wideth import _checks

    return _checks.output_path("--out", args.out, suffix=suffix)


def cmd_kernel(args: argparse.Namespace) -> dict[str, Any]:
    """Analytic or empirical kernel of a dataset, saved as .npy."""
    _positive(args, "depth", "width", "n")
    _stds(args)
    from wideth import _checks

    _checks.nonnegative_int("--batch-size", args.batch_size)
    if args.kind == "empirical" and args.get != "ntk":
        raise ValueError("--get: nngp is only available with --kind analytic")
    out = _out_path(args, ".npy")
    import jax
    import numpy as np

    from wideth import io
    from wideth.kernels import analytic, empirical

    if args.kind == "analytic":  # the model's arguments are checked before the data load
        _, _, kernel_fn = analytic.mlp(
            depth=args.depth,
            width=args.width,
            activation=args.activation,
            W_std=args.W_std,
            b_std=args.b_std,
            parameterization=args.parameterization,
        )
    x, _ = _load(args)
    if args.kind == "analytic":
        k = analytic.kernel(kernel_fn, x, None, get=args.get, batch_size=args.batch_size)
    else:
        from wideth import models

        net = models.MLP(
            x.shape[1],
            args.width,
            args.depth,
            1,
            activation=args.activation,
            W_std=args.W_std,
            b_std=args.b_std,
            parameterization=args.parameterization,
            rngs=__import__("flax").nnx.Rngs(args.seed),
        )
        k = empirical.ntk(net, None, x, batch_size=args.batch_size or None)
    k = np.asarray(jax.device_get(k))
    with io.atomic_path(out, "--out") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, k)
    evals = np.linalg.eigvalsh(k.astype(np.float64))
    return {
        "out": str(args.out),
        "shape": list(k.shape),
        "kind": args.kind,
        "get": args.get,
        "trace": float(np.trace(k)),
        "lambda_max": float(evals[-1]),
        "lambda_min": float(evals[0]),
    }


def _mlp(args: argparse.Namespace):
    """(module, x, y): a freshly initialised MLP and the chosen data."""
    from flax import nnx

    from wideth import models

    x, y = _load(args)
    y = y if y.ndim == 2 else y[:, None]
    net = models.MLP(
        x.shape[1],
        args.width,
        args.depth,
        y.shape[1],
        activation=args.activation,
        W_std=args.W_std,
        b_std=args.b_std,
        parameterization=args.parameterization,
        rngs=nnx.Rngs(args.seed),
    )
    return net, x, y


def _mlp_loss(args: argparse.Namespace):
    """(loss_fn, params, apply_fn, x, y) of a freshly initialised MLP on the chosen data."""
    from wideth import functional, train

    net, x, y = _mlp(args)
    apply_fn, params = functional.as_apply(net)
    loss_fn = lambda p: train.mse(apply_fn(p, x), y)
    return loss_fn, params, apply_fn, x, y


def cmd_spectrum(args: argparse.Namespace) -> dict[str, Any]:
    """Top Hessian eigenvalues (Lanczos) and an SLQ density of a fresh MLP."""
    _positive(args, "depth", "width", "n", "k", "num_steps", "num_probes")
    _stds(args)
    out_path = _out_path(args)
    import jax
    import numpy as np

    from wideth import hessian, io

    loss_fn, params, *_ = _mlp_loss(args)
    key = jax.random.key(args.seed)
    evals, _ = hessian.top_eigenpairs(loss_fn, params, k=args.k, num_steps=args.num_steps, key=key)
    out: dict[str, Any] = {"top_eigenvalues": np.asarray(evals).tolist()}
    if args.density:
        nodes, weights = hessian.spectral_density(
            loss_fn, params, num_probes=args.num_probes, num_steps=args.num_steps, key=key
        )
        out["negative_mass"] = float(hessian.negative_mass(nodes, weights))
        out["slq_nodes"] = np.asarray(nodes).tolist()
        out["slq_weights"] = np.asarray(weights).tolist()
    if out_path is not None:
        io.write_json(out_path, out, "--out")
        out = {k: v for k, v in out.items() if not k.startswith("slq_")} | {"out": str(args.out)}
    return out


def cmd_profile(args: argparse.Namespace) -> dict[str, Any]:
    """Profile certificate (library / tame / wild) of an MLP on data."""
    _positive(args, "depth", "width", "n")
    _stds(args)
    out_path = _out_path(args)
    import jax

    from wideth import diagnostics, io

    net, x, y = _mlp(args)  # the module itself, so the certificate names its architecture
    cert = diagnostics.profile(net, None, x, y, loss="mse", key=jax.random.key(args.seed))
    if out_path is not None:
        io.write_text(out_path, cert.to_json(), "--out")
    print(cert.to_markdown())
    m = cert.measurements
    keys = (
        "hessian_lambda_max",
        "hessian_lambda_min",
        "hessian_condition_number",
        "hessian_spectral_gap",
        "gradient_variance",
        "gradient_effective_rank",
    )
    return {"regime": cert.regime, **{k: m[k] for k in keys if k in m}}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``wideth`` command."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="wideth", description=__doc__, formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser(
        "info", help="versions, devices, compat layer", epilog="example: wideth info"
    )
    p.set_defaults(fn=cmd_info)

    p = sub.add_parser(
        "kernel",
        help="analytic or empirical NTK/NNGP of a dataset",
        formatter_class=fmt,
        epilog="example: wideth kernel --model mlp --depth 3 --activation relu "
        "--data digits --n 512 --out K.npy",
    )
    _add_model_args(p)
    _add_data_args(p, n=512)
    p.add_argument("--kind", choices=("analytic", "empirical"), default="analytic")
    p.add_argument("--get", choices=("ntk", "nngp"), default="ntk")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=0, help="rows per block")
    p.add_argument("--out", type=Path, required=True, help="output .npy file")
    p.set_defaults(fn=cmd_kernel)

    p = sub.add_parser(
        "spectrum",
        help="top Hessian eigenvalues and spectral density of an MLP",
        formatter_class=fmt,
        epilog="example: wideth spectrum --depth 2 --width 64 --data digits --n 256 --k 5",
    )
    _add_model_args(p, depth=2, width=64)
    _add_data_args(p)
    p.add_argument("--k", type=int, default=5, help="number of top eigenvalues")
    p.add_argument("--num-steps", dest="num_steps", type=int, default=40, help="Lanczos steps")
    p.add_argument("--density", action="store_true", help="also estimate the SLQ density")
    p.add_argument("--num-probes", dest="num_probes", type=int, default=8)
    p.add_argument("--out", type=Path, default=None, help="JSON output file")
    p.set_defaults(fn=cmd_spectrum)

    p = sub.add_parser(
        "profile",
        help="library / tame / wild profile certificate of an MLP",
        formatter_class=fmt,
        epilog="example: wideth profile --depth 40 --activation tanh --W-std 0.7071 --data digits",
    )
    _add_model_args(p, depth=3, width=128)
    _add_data_args(p, n=128)
    p.add_argument("--out", type=Path, default=None, help="JSON certificate file")
    p.set_defaults(fn=cmd_profile)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.fn(args)
    except (Exception, KeyboardInterrupt) as e:  # every failure: one line, exit status 2
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"wideth {args.command}: error: {msg}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
