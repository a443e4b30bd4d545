# ruff: noqa: E501 (one case per line reads as a table)
"""Bad inputs for the public entry points of wideth, one case each.

Shared by ``tests/test_bad_inputs.py`` (which asserts the error of every case)
and ``tests/measure_bad_inputs.py`` (which counts, against any checkout of
wideth on ``PYTHONPATH``, how many cases get a named error). So the cases use
only public names that existed before the validation layer did, and build
their inputs lazily and small: every case must fail before real work starts.

A case is *named* when calling it raises the expected ``ValueError`` or
``TypeError`` whose message starts with the argument's name (followed by a
character that cannot continue a name), raised from a file of the ``wideth``
package (not from JAX, NumPy or the standard library).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

nan, inf = float("nan"), float("inf")


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input: ``call()`` must raise ``exc`` with a message starting with ``name``."""

    entry: str
    what: str
    name: str
    call: Callable[[], Any]
    exc: type[Exception]

    @property
    def id(self) -> str:
        return f"{self.entry}: {self.what}"


CASES: list[Case] = []


def add(entry: str, name: str, what: str, call: Callable[[], Any], exc=ValueError) -> None:
    CASES.append(Case(entry, what, name, call, exc))


def V(entry: str, name: str, what: str, call: Callable[[], Any]) -> None:
    add(entry, name, what, call, ValueError)


def T(entry: str, name: str, what: str, call: Callable[[], Any]) -> None:
    add(entry, name, what, call, TypeError)


# --- small shared inputs (built on first use) ----------------------------------------


@functools.cache
def scratch() -> Path:
    """A folder with a file ``a_file`` in it (for path cases)."""
    d = Path(tempfile.mkdtemp(prefix="wideth-bad-inputs-"))
    (d / "a_file").write_text("x")
    return d


def missing(name: str) -> str:
    return str(scratch() / "no_such_folder" / name)


def a_file() -> str:
    return str(scratch() / "a_file")


def rbf(a, b):
    return jnp.exp(-jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, -1))


@functools.cache
def xy():
    """8 rows of 3 features, 2 regression targets."""
    x = jax.random.normal(jax.random.key(0), (8, 3))
    y = jax.random.normal(jax.random.key(1), (8, 2))
    return x, y


@functools.cache
def net():
    """A tiny tanh network ``apply(params, x) -> (n, 2)`` and its dict parameters."""
    params = {
        "w1": jax.random.normal(jax.random.key(2), (3, 4)) / 2,
        "w2": jax.random.normal(jax.random.key(3), (4, 2)) / 2,
    }
    return apply, params


def apply(p, x):
    return jnp.tanh(x @ p["w1"]) @ p["w2"]


def features(p, x):
    h = jnp.tanh(x @ p["w1"])
    return [h, h @ p["w2"]]


def loss(p):
    x, y = xy()
    return 0.5 * jnp.mean(jnp.sum((apply(p, x) - y) ** 2, -1))


def loss_batch(p, batch):
    x, y = batch
    return 0.5 * jnp.mean(jnp.sum((apply(p, x) - y) ** 2, -1))


def params():
    return net()[1]


def nan_like(p):
    return jax.tree.map(lambda a: a.at[(0,) * a.ndim].set(jnp.nan), p)


def chinchilla20():
    from wideth.scaling import datasets

    return tuple(v[:20].copy() for v in datasets.chinchilla())


def with_value(arrays, index, value):
    out = [a.copy() for a in arrays]
    out[index][3] = value
    return out


def chinchilla_fit():
    from wideth.scaling import ChinchillaFit

    h = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    return ChinchillaFit(
        **{k: np.asarray(v) for k, v in h.items()},
        loss=np.asarray(0.0),
        bootstrap=np.asarray(np.tile([h[k] for k in h], (4, 1))),
        n_points=10,
        n_excluded=0,
        delta=1e-3,
        ci_level=0.9,
        n_starts=1,
        n_converged=1,
        n_bootstrap_converged=4,
    )


def power_law_fit():
    from wideth.scaling import PowerLawFit

    return PowerLawFit(
        a=np.asarray(3.0),
        b=np.asarray(0.5),
        c=np.asarray(0.2),
        loss=np.asarray(0.0),
        bootstrap=np.zeros((0, 3)),
        stderr={},
        with_offset=True,
        n_points=10,
        delta=1e-3,
        ci_level=0.9,
        n_converged=1,
    )


def px():
    x = np.logspace(1, 4, 10)
    return x, 3.0 * x**-0.5 + 0.2


def dataset():
    from wideth import data

    x = np.asarray(jax.random.normal(jax.random.key(4), (20, 4)), np.float64)
    return data.from_arrays(x, np.arange(20) % 3, num_classes=3)


def raw():
    return np.asarray(jax.random.normal(jax.random.key(4), (20, 4)), np.float64), np.arange(20) % 3


def kernel_fn():
    from wideth.kernels import analytic

    return analytic.mlp(depth=1, width=8)[2]


def sgd():
    import optax

    return optax.sgd(0.1)


def step():
    from wideth import train

    return train.train_step(apply, "mse", sgd())


def state():
    from wideth import train

    return train.TrainState.create(params(), sgd())


def operator():
    from wideth import hessian

    return hessian.hessian(loss, params())


def one_device_mesh():
    from wideth.kernels import blocks

    return blocks.row_mesh(jax.devices()[:1])


def fake_run(cfg):
    raise AssertionError("the experiment ran although --out was bad")


def config(out):
    from experiments import _common

    return _common.Config(name="fake", quick=True, seed=0, out=Path(out), quiet=True)


def nnx_linear():
    from flax import nnx

    return nnx.Linear(3, 2, rngs=nnx.Rngs(0))


# --- wideth.kernels.meanfield --------------------------------------------------------


def _meanfield() -> None:
    from wideth.kernels import meanfield as mf

    e = "meanfield.variance_map"
    V(e, "activation", "unknown activation", lambda: mf.variance_map(1.0, "softplus", 1.0, 0.1))
    V(e, "activation", "activation not a string", lambda: mf.variance_map(1.0, 3, 1.0, 0.1))
    V(e, "W_var", "negative W_var", lambda: mf.variance_map(1.0, "tanh", -1.0, 0.1))
    V(e, "W_var", "NaN W_var", lambda: mf.variance_map(1.0, "tanh", nan, 0.1))
    T(e, "W_var", "string W_var", lambda: mf.variance_map(1.0, "tanh", "1.0", 0.1))
    T(e, "W_var", "bool W_var", lambda: mf.variance_map(1.0, "tanh", True, 0.1))
    V(e, "b_var", "infinite b_var", lambda: mf.variance_map(1.0, "tanh", 1.0, inf))
    V(e, "q", "negative q", lambda: mf.variance_map(-1.0, "tanh", 1.0, 0.1))
    V(e, "q", "NaN q", lambda: mf.variance_map(nan, "tanh", 1.0, 0.1))
    V(e, "q", "vector q", lambda: mf.variance_map(np.array([1.0, 2.0]), "tanh", 1.0, 0.1))
    V(
        e,
        "quad",
        "quad (3, 3) too coarse",
        lambda: mf.variance_map(1.0, "tanh", 1.0, 0.1, quad=(3, 3)),
    )
    T(e, "quad", "quad of one entry", lambda: mf.variance_map(1.0, "tanh", 1.0, 0.1, quad=(4001,)))

    e = "meanfield.fixed_point"
    V(e, "activation", "unknown activation", lambda: mf.fixed_point("softplus", 1.0, 0.0))
    V(e, "W_var", "negative W_var", lambda: mf.fixed_point("tanh", -1.0, 0.0))
    V(e, "b_var", "NaN b_var", lambda: mf.fixed_point("tanh", 1.0, nan))
    T(e, "W_var", "complex W_var", lambda: mf.fixed_point("tanh", 1 + 1j, 0.05))
    V(e, "W_var", "vector W_var", lambda: mf.fixed_point("tanh", np.array([1.0, 2.0]), 0.05))
    V(e, "quad", "quad (3, 3) too coarse", lambda: mf.fixed_point("tanh", 1.5, 0.05, quad=(3, 3)))
    T(e, "quad", "quad a string", lambda: mf.fixed_point("tanh", 1.5, 0.05, quad="big"))
    T(e, "quad", "float quad sizes", lambda: mf.fixed_point("tanh", 1.5, 0.05, quad=(4001.0, 321)))
    V(e, "num_iter", "num_iter 0", lambda: mf.fixed_point("tanh", 1.5, 0.05, num_iter=0))
    T(e, "num_iter", "float num_iter", lambda: mf.fixed_point("tanh", 1.5, 0.05, num_iter=2.5))

    e = "meanfield.correlation_map"
    V(e, "c", "c = 2 (outside [-1, 1])", lambda: mf.correlation_map(2.0, "tanh", 1.5, 0.05))
    V(e, "c", "c = -1.5", lambda: mf.correlation_map(-1.5, "tanh", 1.5, 0.05))
    V(e, "c", "NaN c", lambda: mf.correlation_map(nan, "tanh", 1.5, 0.05))
    T(e, "c", "string c", lambda: mf.correlation_map("0.5", "tanh", 1.5, 0.05))
    V(e, "c", "vector c", lambda: mf.correlation_map(np.array([0.1, 0.2]), "tanh", 1.5, 0.05))
    V(e, "q", "negative q", lambda: mf.correlation_map(0.5, "tanh", 1.5, 0.05, q=-1.0))
    V(e, "q", "NaN q", lambda: mf.correlation_map(0.5, "tanh", 1.5, 0.05, q=nan))
    V(e, "W_var", "W_var = b_var = 0 (0/0)", lambda: mf.correlation_map(0.5, "tanh", 0.0, 0.0))
    V(e, "activation", "unknown activation", lambda: mf.correlation_map(0.5, "gelu", 1.5, 0.05))
    V(
        e,
        "quad",
        "quad too coarse",
        lambda: mf.correlation_map(0.5, "tanh", 1.5, 0.05, quad=(10, 10)),
    )
    V(
        e,
        "num_iter",
        "negative num_iter",
        lambda: mf.correlation_map(0.5, "tanh", 1.5, 0.05, num_iter=-1),
    )

    e = "meanfield.c_star"
    V(e, "activation", "unknown activation", lambda: mf.c_star("gelu", 1.5, 0.05))
    V(e, "W_var", "negative W_var", lambda: mf.c_star("tanh", -2.0, 0.05))
    T(e, "b_var", "string b_var", lambda: mf.c_star("tanh", 1.5, "x"))
    V(e, "W_var", "W_var = b_var = 0 (0/0)", lambda: mf.c_star("tanh", 0.0, 0.0))
    V(e, "quad", "quad too coarse", lambda: mf.c_star("tanh", 1.5, 0.05, quad=(100, 50)))
    V(e, "num_iter", "num_iter 0", lambda: mf.c_star("tanh", 1.5, 0.05, num_iter=0))

    e = "meanfield.chi_c"
    V(e, "activation", "unknown activation", lambda: mf.chi_c("sigmoid", 1.5, 0.05))
    V(e, "W_var", "NaN W_var", lambda: mf.chi_c("tanh", nan, 0.05))
    V(e, "b_var", "negative b_var", lambda: mf.chi_c("tanh", 1.5, -0.1))
    V(e, "W_var", "W_var = b_var = 0 (0/0)", lambda: mf.chi_c("erf", 0.0, 0.0))
    V(e, "quad", "2-d quad too coarse", lambda: mf.chi_c("tanh", 1.5, 0.05, quad=(201, 3)))
    T(e, "num_iter", "string num_iter", lambda: mf.chi_c("tanh", 1.5, 0.05, num_iter="5"))

    e = "meanfield.depth_scales"
    V(e, "activation", "activation None", lambda: mf.depth_scales(None, 1.5, 0.05))
    V(e, "W_var", "infinite W_var", lambda: mf.depth_scales("tanh", inf, 0.05))
    V(e, "b_var", "negative b_var", lambda: mf.depth_scales("tanh", 1.5, -1.0))
    V(e, "W_var", "W_var = b_var = 0 (0/0)", lambda: mf.depth_scales("tanh", 0.0, 0.0))
    V(e, "quad", "quad too coarse", lambda: mf.depth_scales("tanh", 1.5, 0.05, quad=(5, 5)))
    V(e, "num_iter", "num_iter 0", lambda: mf.depth_scales("tanh", 1.5, 0.05, num_iter=0))

    e = "meanfield.critical_W_var"
    V(
        e,
        "bisect_steps",
        "bisect_steps -3",
        lambda: mf.critical_W_var("tanh", 0.05, bisect_steps=-3),
    )
    V(e, "bisect_steps", "bisect_steps 0", lambda: mf.critical_W_var("tanh", 0.05, bisect_steps=0))
    T(
        e,
        "bisect_steps",
        "float bisect_steps",
        lambda: mf.critical_W_var("tanh", 0.05, bisect_steps=2.5),
    )
    V(e, "W_var_max", "negative W_var_max", lambda: mf.critical_W_var("tanh", 0.05, W_var_max=-1.0))
    V(e, "W_var_max", "NaN W_var_max", lambda: mf.critical_W_var("tanh", 0.05, W_var_max=nan))
    V(e, "b_var", "NaN b_var", lambda: mf.critical_W_var("tanh", nan))
    V(e, "b_var", "negative b_var", lambda: mf.critical_W_var("tanh", -1.0))
    V(e, "quad", "quad too coarse", lambda: mf.critical_W_var("tanh", 0.05, quad=(3, 3)))
    V(e, "activation", "unknown activation", lambda: mf.critical_W_var("softplus", 0.05))
    V(e, "num_iter", "num_iter 0", lambda: mf.critical_W_var("tanh", 0.05, num_iter=0))

    e = "meanfield.nngp_diag_variance"
    V(e, "widths", "no widths", lambda: mf.nngp_diag_variance([]))
    V(e, "widths", "a zero width", lambda: mf.nngp_diag_variance([32, 0]))
    V(e, "widths", "a negative width", lambda: mf.nngp_diag_variance([-4]))
    T(e, "widths", "fractional width", lambda: mf.nngp_diag_variance([32.5]))
    V(e, "widths", "2-d widths", lambda: mf.nngp_diag_variance([[32]]))
    T(e, "widths", "widths a string", lambda: mf.nngp_diag_variance("32"))
    T(e, "widths", "NaN width", lambda: mf.nngp_diag_variance([nan]))
    V(
        e,
        "activation",
        "activation without a product law",
        lambda: mf.nngp_diag_variance([32], "tanh"),
    )


# --- wideth.kernels.blocks and analytic.kernel's file output ---------------------------


def _blocks() -> None:
    from wideth.kernels import analytic, blocks

    x = lambda: jnp.ones((6, 2))
    e = "blocks.blockwise"
    T(e, "block_fn", "block_fn None", lambda: blocks.blockwise(None, x(), x(), 4))
    V(e, "block_size", "block_size 0", lambda: blocks.blockwise(rbf, x(), x(), 0))
    V(e, "block_size", "negative block_size", lambda: blocks.blockwise(rbf, x(), x(), -2))
    T(e, "block_size", "float block_size", lambda: blocks.blockwise(rbf, x(), x(), 2.5))
    T(e, "block_size", "string block_size", lambda: blocks.blockwise(rbf, x(), x(), "4"))
    V(e, "out", "unknown out", lambda: blocks.blockwise(rbf, x(), x(), 4, out="disk"))
    T(e, "mesh", "mesh a string", lambda: blocks.blockwise(rbf, x(), x(), 4, mesh="rows"))
    V(e, "x1", "NaN in x1", lambda: blocks.blockwise(rbf, x().at[0, 0].set(nan), x(), 4))
    V(e, "x1", "x1 without rows", lambda: blocks.blockwise(rbf, jnp.ones((0, 2)), x(), 4))
    T(e, "x1", "x1 a string", lambda: blocks.blockwise(rbf, "abc", x(), 4))
    V(e, "x2", "inf in x2", lambda: blocks.blockwise(rbf, x(), x().at[1, 1].set(inf), 4))
    T(
        e,
        "block_fn",
        "feature shapes that block_fn cannot combine",
        lambda: blocks.blockwise(rbf, x(), jnp.ones((5, 3)), 4),
    )
    V(
        e,
        "block_fn",
        "block_fn returning one row per block",
        lambda: blocks.blockwise(lambda a, b: jnp.zeros((1, b.shape[0])), x(), x(), 4),
    )
    V(
        e,
        "block_fn",
        "block_fn returning a scalar",
        lambda: blocks.blockwise(lambda a, b: jnp.sum(a), x(), x(), 4),
    )
    V(
        e,
        "path",
        "path without out='host'",
        lambda: blocks.blockwise(rbf, x(), x(), 4, path=str(scratch() / "k.npy")),
    )
    V(
        e,
        "path",
        "path in a missing folder",
        lambda: blocks.blockwise(rbf, x(), x(), 4, out="host", path=missing("k.npy")),
    )
    V(
        e,
        "path",
        "path is a folder",
        lambda: blocks.blockwise(rbf, x(), x(), 4, out="host", path=str(scratch())),
    )
    V(
        e,
        "path",
        "path not a .npy file",
        lambda: blocks.blockwise(rbf, x(), x(), 4, out="host", path=str(scratch() / "k.txt")),
    )

    e = "blocks.current_mesh"
    T(e, "mesh", "mesh a string", lambda: blocks.current_mesh("rows"))
    T(e, "mesh", "mesh an int", lambda: blocks.current_mesh(4))
    T(e, "mesh", "mesh a list of devices", lambda: blocks.current_mesh(jax.devices()))

    e = "blocks.row_mesh"
    V(e, "devices", "no devices", lambda: blocks.row_mesh([]))
    T(e, "devices", "device names instead of devices", lambda: blocks.row_mesh(["cpu"]))
    T(e, "devices", "devices a string", lambda: blocks.row_mesh("cpu"))
    V(e, "devices", "a device twice", lambda: blocks.row_mesh(jax.devices()[:1] * 2))
    T(e, "axis", "axis an int", lambda: blocks.row_mesh(None, axis=3))
    T(e, "axis", "empty axis name", lambda: blocks.row_mesh(None, axis=""))

    e = "analytic.kernel (mesh/out/path)"
    T(e, "mesh", "mesh a string", lambda: analytic.kernel(kernel_fn(), x(), mesh="rows"))
    V(e, "out", "unknown out", lambda: analytic.kernel(kernel_fn(), x(), out="disk"))
    V(
        e,
        "path",
        "path in a missing folder",
        lambda: analytic.kernel(kernel_fn(), x(), out="host", path=missing("k.npy")),
    )
    V(
        e,
        "path",
        "path is a folder",
        lambda: analytic.kernel(kernel_fn(), x(), out="host", path=str(scratch())),
    )
    V(
        e,
        "path",
        "path not a .npy file",
        lambda: analytic.kernel(kernel_fn(), x(), out="host", path=str(scratch() / "k.bin")),
    )
    V(
        e,
        "path",
        "path without out='host'",
        lambda: analytic.kernel(kernel_fn(), x(), path=str(scratch() / "k.npy")),
    )


# --- wideth.scaling ---------------------------------------------------------------


def _scaling() -> None:
    from wideth import scaling
    from wideth.scaling import datasets

    fpl = scaling.fit_power_law
    e = "scaling.fit_power_law"
    V(e, "x", "negative x", lambda: fpl(-px()[0], px()[1], n_bootstrap=0))
    V(e, "x", "NaN in x", lambda: fpl(np.r_[nan, px()[0][1:]], px()[1], n_bootstrap=0))
    V(e, "y", "zero in y", lambda: fpl(px()[0], np.r_[0.0, px()[1][1:]], n_bootstrap=0))
    V(e, "y", "y shorter than x", lambda: fpl(px()[0], px()[1][:9], n_bootstrap=0))
    V(e, "x", "2-d x", lambda: fpl(px()[0].reshape(2, 5), px()[1], n_bootstrap=0))
    T(e, "x", "x of strings", lambda: fpl(["a"] * 10, px()[1], n_bootstrap=0))
    V(
        e,
        "x",
        "all x equal (not identifiable)",
        lambda: fpl(np.full(10, 5.0), px()[1], n_bootstrap=0),
    )
    V(e, "x", "3 points for 3 parameters", lambda: fpl([1.0, 2.0, 3.0], [1.0, 0.5, 0.3]))
    V(e, "max_iter", "max_iter 0", lambda: fpl(*px(), n_bootstrap=0, max_iter=0))
    T(e, "max_iter", "float max_iter", lambda: fpl(*px(), n_bootstrap=0, max_iter=2.5))
    V(e, "delta", "delta 0", lambda: fpl(*px(), n_bootstrap=0, delta=0.0))
    V(e, "delta", "NaN delta", lambda: fpl(*px(), n_bootstrap=0, delta=nan))
    V(e, "n_bootstrap", "negative n_bootstrap", lambda: fpl(*px(), n_bootstrap=-1))
    T(e, "n_bootstrap", "fractional n_bootstrap", lambda: fpl(*px(), n_bootstrap=2.5))
    V(e, "ci_level", "ci_level 1", lambda: fpl(*px(), n_bootstrap=0, ci_level=1.0))
    V(e, "ci_level", "ci_level 0", lambda: fpl(*px(), n_bootstrap=0, ci_level=0.0))
    T(e, "key", "integer key", lambda: fpl(*px(), n_bootstrap=2, key=0))
    T(e, "dtype", "integer dtype", lambda: fpl(*px(), n_bootstrap=0, dtype="int32"))
    T(
        e,
        "with_offset",
        "with_offset a string",
        lambda: fpl(*px(), with_offset="yes", n_bootstrap=0),
    )

    fc = lambda *a, **k: scaling.fit_chinchilla(*a, **{"n_bootstrap": 0, "quiet": True, **k})
    e = "scaling.fit_chinchilla"
    V(e, "N", "negative N", lambda: fc(*with_value(chinchilla20(), 0, -1.0)))
    V(e, "D", "NaN in D", lambda: fc(*with_value(chinchilla20(), 1, nan)))
    V(e, "L", "inf in L", lambda: fc(*with_value(chinchilla20(), 2, inf)))
    V(e, "L", "L shorter than N", lambda: fc(*chinchilla20()[:2], chinchilla20()[2][:19]))
    V(e, "N", "2-d N", lambda: fc(np.ones((4, 5)), *chinchilla20()[1:]))
    V(
        e,
        "N",
        "all N and D identical (exponents not identifiable)",
        lambda: fc(np.full(20, 1e9), np.full(20, 2e10), chinchilla20()[2]),
    )
    V(
        e,
        "D",
        "all D identical",
        lambda: fc(chinchilla20()[0], np.full(20, 2e10), chinchilla20()[2]),
    )
    V(e, "init_grid", "NaN starts", lambda: fc(*chinchilla20(), init_grid=[[nan] * 5]))
    V(
        e,
        "init_grid",
        "starts of 4 columns",
        lambda: fc(*chinchilla20(), init_grid=np.zeros((3, 4))),
    )
    V(e, "init_grid", "no starts", lambda: fc(*chinchilla20(), init_grid=np.zeros((0, 5))))
    V(
        e,
        "exclude_outliers",
        "negative exclude_outliers",
        lambda: fc(*chinchilla20(), exclude_outliers=-1),
    )
    T(
        e,
        "exclude_outliers",
        "fractional exclude_outliers",
        lambda: fc(*chinchilla20(), exclude_outliers=2.5),
    )
    V(
        e,
        "exclude_outliers",
        "excluding all but 2 points",
        lambda: fc(*chinchilla20(), exclude_outliers=18),
    )
    V(e, "max_iter", "max_iter 0", lambda: fc(*chinchilla20(), max_iter=0))
    V(e, "refine_iter", "negative refine_iter", lambda: fc(*chinchilla20(), refine_iter=-1))
    T(e, "num_refine", "fractional num_refine", lambda: fc(*chinchilla20(), num_refine=1.5))
    V(e, "bootstrap_starts", "bootstrap_starts 0", lambda: fc(*chinchilla20(), bootstrap_starts=0))
    V(e, "delta", "negative delta", lambda: fc(*chinchilla20(), delta=-1.0))
    V(e, "ci_level", "ci_level 1.5", lambda: fc(*chinchilla20(), ci_level=1.5))
    T(e, "key", "integer key", lambda: fc(*chinchilla20(), n_bootstrap=2, key=3))
    T(e, "dtype", "float16 dtype", lambda: fc(*chinchilla20(), dtype="float16"))
    T(e, "n_bootstrap", "string n_bootstrap", lambda: fc(*chinchilla20(), n_bootstrap="10"))

    e = "scaling.ChinchillaFit.compute_optimal"
    V(e, "C", "negative compute", lambda: chinchilla_fit().compute_optimal(-1.0))
    V(e, "C", "zero compute", lambda: chinchilla_fit().compute_optimal(0.0))
    V(e, "C", "NaN compute", lambda: chinchilla_fit().compute_optimal(nan))
    T(e, "C", "string compute", lambda: chinchilla_fit().compute_optimal("1e20"))
    V(
        e,
        "C",
        "one negative entry",
        lambda: chinchilla_fit().compute_optimal(np.array([1e20, -1.0])),
    )
    e = "scaling.ChinchillaFit.tokens_per_parameter"
    V(e, "C", "negative compute", lambda: chinchilla_fit().tokens_per_parameter(-1.0))
    V(e, "C", "infinite compute", lambda: chinchilla_fit().tokens_per_parameter(inf))
    e = "scaling.ChinchillaFit.derived_ci"
    V(e, "C", "negative compute", lambda: chinchilla_fit().derived_ci(-1.0))
    V(e, "C", "NaN compute", lambda: chinchilla_fit().derived_ci(nan))
    e = "scaling.ChinchillaFit.predict"
    V(e, "N", "negative N", lambda: chinchilla_fit().predict(-1.0, 1e9))
    V(e, "D", "zero D", lambda: chinchilla_fit().predict(1e9, 0.0))
    V(e, "N", "NaN N", lambda: chinchilla_fit().predict(nan, 1e9))
    T(e, "N", "string N", lambda: chinchilla_fit().predict("a", 1.0))
    V(e, "D", "infinite D", lambda: chinchilla_fit().predict(1e9, inf))
    e = "scaling.PowerLawFit.predict"
    V(e, "x", "x = 0", lambda: power_law_fit().predict(0.0))
    V(e, "x", "negative x", lambda: power_law_fit().predict(-2.0))
    V(e, "x", "NaN x", lambda: power_law_fit().predict(nan))

    e = "scaling.bootstrap_weights"
    T(e, "key", "integer key", lambda: scaling.bootstrap_weights(0, 5, 3, np.float64))
    V(e, "n", "n 0", lambda: scaling.bootstrap_weights(jax.random.key(0), 0, 3, np.float64))
    V(
        e,
        "num",
        "negative num",
        lambda: scaling.bootstrap_weights(jax.random.key(0), 5, -1, np.float64),
    )
    T(
        e,
        "n",
        "fractional n",
        lambda: scaling.bootstrap_weights(jax.random.key(0), 2.5, 3, np.float64),
    )

    e = "scaling.datasets.chinchilla"
    T(e, "exclude_outliers", "a string", lambda: datasets.chinchilla("yes"))
    T(e, "exclude_outliers", "a number", lambda: datasets.chinchilla(5))


# --- wideth.diagnostics ------------------------------------------------------------


def _diagnostics() -> None:
    from wideth import diagnostics
    from wideth.diagnostics import conservation as cons

    p = params
    shifted = lambda: jax.tree.map(lambda a: a - 0.01, p())
    e = "conservation.progress"
    key = jax.random.key(0)
    V(
        e,
        "learning_rate",
        "negative learning rate",
        lambda: cons.progress(loss, p(), shifted(), -0.1, key),
    )
    V(
        e,
        "learning_rate",
        "zero learning rate",
        lambda: cons.progress(loss, p(), shifted(), 0.0, key),
    )
    V(
        e,
        "learning_rate",
        "NaN learning rate",
        lambda: cons.progress(loss, p(), shifted(), nan, key),
    )
    T(
        e,
        "learning_rate",
        "string learning rate",
        lambda: cons.progress(loss, p(), shifted(), "0.1", key),
    )
    T(e, "key", "integer key", lambda: cons.progress(loss, p(), shifted(), 0.1, 0))
    V(
        e,
        "lanczos_steps",
        "lanczos_steps 0",
        lambda: cons.progress(loss, p(), shifted(), 0.1, key, 0),
    )
    V(
        e,
        "new_params",
        "new_params missing a key",
        lambda: cons.progress(loss, p(), {"w1": p()["w1"]}, 0.1, key),
    )
    V(
        e,
        "new_params",
        "new_params of another shape",
        lambda: cons.progress(loss, p(), {"w1": p()["w1"], "w2": p()["w1"]}, 0.1, key),
    )
    V(
        e,
        "new_params",
        "NaN in new_params",
        lambda: cons.progress(loss, p(), nan_like(p()), 0.1, key),
    )
    V(
        e,
        "loss_fn",
        "vector loss",
        lambda: cons.progress(lambda q: q["w2"].ravel(), p(), shifted(), 0.1, key),
    )
    T(e, "loss_fn", "loss_fn not callable", lambda: cons.progress(3, p(), shifted(), 0.1, key))
    V(e, "params", "NaN in params", lambda: cons.progress(loss, nan_like(p()), shifted(), 0.1, key))

    e = "conservation.taylor_change"
    V(
        e,
        "rel_tolerance",
        "negative rel_tolerance",
        lambda: cons.taylor_change(loss, p(), shifted(), -1.0),
    )
    V(
        e,
        "rel_tolerance",
        "NaN rel_tolerance",
        lambda: cons.taylor_change(loss, p(), shifted(), nan),
    )
    T(
        e,
        "new_params",
        "integer new_params",
        lambda: cons.taylor_change(loss, p(), jax.tree.map(lambda a: a.astype(jnp.int32), p())),
    )
    T(
        e,
        "loss_fn",
        "loss_fn of two arguments",
        lambda: cons.taylor_change(lambda q, b: loss(q), p(), shifted()),
    )
    V(
        e,
        "new_params",
        "new_params a list",
        lambda: cons.taylor_change(loss, p(), [p()["w1"], p()["w2"]]),
    )

    e = "conservation.preservation"
    x, y = lambda: xy()[0], lambda: jnp.arange(8) % 2
    V(
        e,
        "x",
        "NaN in x",
        lambda: cons.preservation(features, p(), shifted(), x().at[0, 0].set(nan)),
    )
    T(
        e,
        "features_fn",
        "x with the wrong features",
        lambda: cons.preservation(features, p(), shifted(), jnp.ones((8, 5))),
    )
    V(e, "eps", "negative eps", lambda: cons.preservation(features, p(), shifted(), x(), eps=-0.1))
    V(
        e,
        "eps",
        "eps of the wrong length",
        lambda: cons.preservation(features, p(), shifted(), x(), eps=[0.1, 0.1, 0.1]),
    )
    V(
        e,
        "max_accuracy_drop",
        "max_accuracy_drop 2",
        lambda: cons.preservation(features, p(), shifted(), x(), y(), max_accuracy_drop=2.0),
    )
    V(
        e,
        "max_accuracy_drop",
        "negative max_accuracy_drop",
        lambda: cons.preservation(features, p(), shifted(), x(), y(), max_accuracy_drop=-0.1),
    )
    V(
        e,
        "y",
        "labels outside the classes",
        lambda: cons.preservation(features, p(), shifted(), x(), jnp.full(8, 5)),
    )
    V(
        e,
        "y",
        "labels for other rows",
        lambda: cons.preservation(features, p(), shifted(), x(), jnp.zeros(5, jnp.int32)),
    )
    T(
        e,
        "features_fn",
        "features_fn returning one array",
        lambda: cons.preservation(apply, p(), shifted(), x()),
    )
    V(
        e,
        "new_params",
        "new_params of another shape",
        lambda: cons.preservation(features, p(), {"w1": p()["w1"][:2], "w2": p()["w2"]}, x()),
    )
    T(
        e,
        "features_fn",
        "features_fn not callable",
        lambda: cons.preservation("f", p(), shifted(), x()),
    )

    e = "conservation.count_bound"
    V(e, "deltas", "negative deltas", lambda: cons.count_bound([1.0, 0.5, 0.2], [0.1, -0.1]))
    V(e, "losses", "losses of the wrong length", lambda: cons.count_bound([1.0, 0.5], [0.1, 0.1]))
    V(e, "losses", "NaN loss", lambda: cons.count_bound([1.0, nan, 0.2], [0.1, 0.1]))
    V(e, "deltas", "no stages", lambda: cons.count_bound([1.0], []))
    V(e, "loss_star", "NaN loss_star", lambda: cons.count_bound([1.0, 0.5, 0.2], [0.1, 0.1], nan))
    V(
        e,
        "loss_star",
        "loss_star above the losses",
        lambda: cons.count_bound([1.0, 0.5, 0.2], [0.1, 0.1], 0.5),
    )
    V(e, "losses", "2-d losses", lambda: cons.count_bound([[1.0, 0.5, 0.2]], [0.1, 0.1]))
    T(e, "losses", "losses of strings", lambda: cons.count_bound(["a", "b", "c"], [0.1, 0.1]))

    e = "conservation.distillation"
    t = lambda: jnp.eye(3)
    V(e, "student_logits", "shapes differ", lambda: cons.distillation(t(), jnp.ones((3, 2))))
    V(e, "teacher_logits", "NaN teacher", lambda: cons.distillation(t().at[0, 0].set(nan), t()))
    V(e, "student_logits", "inf student", lambda: cons.distillation(t(), t().at[1, 1].set(inf)))
    V(e, "teacher_logits", "1-d logits", lambda: cons.distillation(jnp.ones(3), jnp.ones(3)))
    V(
        e,
        "labels",
        "label outside the classes",
        lambda: cons.distillation(t(), 2 * t(), jnp.array([0, 1, 3])),
    )
    V(e, "labels", "negative label", lambda: cons.distillation(t(), 2 * t(), jnp.array([0, 1, -1])))
    V(
        e,
        "labels",
        "labels for other rows",
        lambda: cons.distillation(t(), 2 * t(), jnp.array([0, 1])),
    )
    V(
        e,
        "labels",
        "one-hot labels of other classes",
        lambda: cons.distillation(t(), 2 * t(), jnp.eye(3, 4)),
    )
    T(e, "teacher_logits", "logits of strings", lambda: cons.distillation([["a"]], [["b"]]))

    e = "diagnostics.profile"
    prof = diagnostics.profile
    V(
        e,
        "y",
        "y with the wrong number of outputs",
        lambda: prof(apply, p(), xy()[0], xy()[1][:, :1]),
    )
    V(e, "y", "y with other rows", lambda: prof(apply, p(), xy()[0], xy()[1][:5]))
    V(e, "params", "NaN in params", lambda: prof(apply, nan_like(p()), *xy()))
    V(e, "x", "inf in x", lambda: prof(apply, p(), xy()[0].at[0, 0].set(inf), xy()[1]))
    V(e, "loss", "unknown loss", lambda: prof(apply, p(), *xy(), loss="hinge"))
    T(
        e,
        "apply_fn_or_module",
        "x with the wrong features",
        lambda: prof(apply, p(), jnp.ones((8, 5)), xy()[1]),
    )
    V(e, "x", "x without rows", lambda: prof(apply, p(), jnp.ones((0, 3)), jnp.ones((0, 2))))
    V(e, "probe_steps", "probe_steps 2", lambda: prof(apply, p(), *xy(), probe_steps=2))
    V(e, "probe_size", "probe_size 0", lambda: prof(apply, p(), *xy(), probe_size=0))
    V(e, "lanczos_steps", "lanczos_steps 0", lambda: prof(apply, p(), *xy(), lanczos_steps=0))
    T(e, "key", "integer key", lambda: prof(apply, p(), *xy(), key=0))
    V(e, "make_model", "widths without make_model", lambda: prof(apply, p(), *xy(), widths=[8, 16]))
    V(
        e,
        "widths",
        "one width",
        lambda: prof(apply, p(), *xy(), widths=[16], make_model=lambda w: net()),
    )
    T(e, "apply_fn_or_module", "model not callable", lambda: prof(3, p(), *xy()))
    V(e, "loss", "vector loss", lambda: prof(apply, p(), *xy(), loss=lambda o, t: (o - t) ** 2))
    T(e, "params", "params None with a function", lambda: prof(apply, None, *xy()))

    T(e, "architecture_info", "a list", lambda: prof(apply, p(), *xy(), architecture_info=[1]))
    T(e, "architecture_info", "int keys", lambda: prof(apply, p(), *xy(), architecture_info={1: 2}))

    e = "diagnostics.hessian_summary"
    hsum = diagnostics.hessian_summary
    T(e, "loss_fn", "not callable", lambda: hsum(3, p()))
    V(e, "loss_fn", "vector loss", lambda: hsum(lambda q: q["w1"].ravel(), p()))
    V(e, "params", "NaN in params", lambda: hsum(loss, nan_like(p())))
    V(e, "params", "one parameter", lambda: hsum(lambda q: jnp.sum(q**2), jnp.ones(1)))
    V(e, "num_steps", "num_steps 1", lambda: hsum(loss, p(), num_steps=1))
    T(e, "num_steps", "float num_steps", lambda: hsum(loss, p(), num_steps=2.5))
    T(e, "key", "integer key", lambda: hsum(loss, p(), key=0))

    e = "diagnostics.gradient_noise"
    gnoise = diagnostics.gradient_noise
    T(e, "objective", "not callable", lambda: gnoise(3, p(), xy()))
    V(e, "objective", "vector objective", lambda: gnoise(lambda q, b: b[0], p(), xy()))
    T(e, "data", "not a pair", lambda: gnoise(loss_batch, p(), xy()[0]))
    V(e, "data", "one row", lambda: gnoise(loss_batch, p(), (xy()[0][:1], xy()[1][:1])))
    V(e, "data", "other rows", lambda: gnoise(loss_batch, p(), (xy()[0], xy()[1][:5])))
    V(e, "params", "NaN in params", lambda: gnoise(loss_batch, nan_like(p()), xy()))
    V(e, "num_steps", "num_steps 0", lambda: gnoise(loss_batch, p(), xy(), num_steps=0))
    V(e, "chunk", "chunk 0", lambda: gnoise(loss_batch, p(), xy(), chunk=0))
    T(e, "key", "integer key", lambda: gnoise(loss_batch, p(), xy(), key=0))

    e = "diagnostics.architecture"
    arch = diagnostics.architecture
    T(e, "apply_fn_or_module", "not callable", lambda: arch(3, p()))
    T(e, "params", "params None with a function", lambda: arch(apply, None))
    V(e, "params", "no leaves", lambda: arch(apply, {}))
    V(e, "params", "NaN in params", lambda: arch(apply, nan_like(p())))
    T(e, "params", "integer params", lambda: arch(apply, {"w": jnp.ones((2, 2), jnp.int32)}))

    e = "diagnostics.gradient_ratios"
    V(e, "grads", "no leaves", lambda: diagnostics.gradient_ratios({}))
    V(
        e,
        "grads",
        "NaN gradient",
        lambda: diagnostics.gradient_ratios({"a": {"w": jnp.array([nan, 1.0])}}),
    )
    T(
        e,
        "grads",
        "integer gradients",
        lambda: diagnostics.gradient_ratios({"a": {"w": jnp.array([1, 2])}}),
    )

    e = "diagnostics.loss_curve_shape"
    V(e, "losses", "negative losses", lambda: diagnostics.loss_curve_shape([-1.0, -2.0, -3.0]))
    V(e, "losses", "two losses", lambda: diagnostics.loss_curve_shape([1.0, 0.5]))
    V(e, "losses", "2-d losses", lambda: diagnostics.loss_curve_shape([[1.0, 0.5, 0.2]]))
    T(e, "losses", "a string", lambda: diagnostics.loss_curve_shape("abc"))
    V(e, "losses", "one negative loss", lambda: diagnostics.loss_curve_shape([1.0, -0.5, 0.2]))


# --- wideth.data ------------------------------------------------------------------


def _data() -> None:
    from wideth import data

    fa = data.from_arrays
    e = "data.from_arrays"
    V(e, "labels", "labels >= num_classes", lambda: fa(raw()[0], raw()[1] + 1, num_classes=3))
    V(e, "labels", "label -1", lambda: fa(raw()[0], raw()[1] - 1, num_classes=3))
    T(e, "labels", "fractional labels", lambda: fa(raw()[0], raw()[1] + 0.5, num_classes=3))
    V(e, "labels", "labels of another length", lambda: fa(raw()[0], raw()[1][:10], num_classes=3))
    V(
        e,
        "x",
        "NaN in x",
        lambda: fa(np.where(np.eye(20, 4) > 0, nan, raw()[0]), raw()[1], num_classes=3),
    )
    V(e, "x", "1-d x", lambda: fa(raw()[0][:, 0], raw()[1], num_classes=3))
    V(e, "num_classes", "num_classes 0", lambda: fa(*raw(), num_classes=0))
    V(e, "test_fraction", "test_fraction 1", lambda: fa(*raw(), num_classes=3, test_fraction=1.0))
    V(
        e,
        "test_fraction",
        "a test split of every row",
        lambda: fa(*raw(), num_classes=3, test_fraction=0.99),
    )
    V(e, "n_train", "n_train 0", lambda: fa(*raw(), num_classes=3, n_train=0))
    V(e, "n_train", "n_train above the split", lambda: fa(*raw(), num_classes=3, n_train=1000))
    T(e, "n_train", "fractional n_train", lambda: fa(*raw(), num_classes=3, n_train=2.5))
    V(e, "standardize", "unknown standardize", lambda: fa(*raw(), num_classes=3, standardize="pca"))
    V(
        e,
        "image_shape",
        "image_shape that does not fit",
        lambda: fa(*raw(), num_classes=3, image=True, image_shape=(3, 3)),
    )
    T(e, "seed", "fractional seed", lambda: fa(*raw(), num_classes=3, seed=1.5))
    T(e, "one_hot", "one_hot a string", lambda: fa(*raw(), num_classes=3, one_hot="yes"))
    V(
        e,
        "x",
        "constant x, global standardisation",
        lambda: fa(np.ones((20, 4)), raw()[1], num_classes=3, standardize="global"),
    )
    T(e, "x", "x of strings", lambda: fa([["a"] * 4] * 20, raw()[1], num_classes=3))

    e = "data.digits"
    V(e, "n_train", "n_train 0", lambda: data.digits(n_train=0))
    V(e, "test_fraction", "test_fraction 0", lambda: data.digits(test_fraction=0.0))
    V(e, "standardize", "unknown standardize", lambda: data.digits(standardize="x"))
    T(e, "seed", "string seed", lambda: data.digits(seed="0"))
    e = "data.mnist5k"
    V(e, "test_fraction", "test_fraction 2", lambda: data.mnist5k(test_fraction=2.0))
    V(e, "n_train", "negative n_train", lambda: data.mnist5k(n_train=-1))

    e = "data.synthetic_regression"
    k = jax.random.key(0)
    T(e, "key", "integer key", lambda: data.synthetic_regression(0, 10, 3))
    V(e, "n", "n 0", lambda: data.synthetic_regression(k, 0, 3))
    T(e, "d", "fractional d", lambda: data.synthetic_regression(k, 10, 2.5))
    V(e, "noise", "negative noise", lambda: data.synthetic_regression(k, 10, 3, noise=-1.0))
    V(e, "noise", "NaN noise", lambda: data.synthetic_regression(k, 10, 3, noise=nan))
    V(e, "target", "unknown target", lambda: data.synthetic_regression(k, 10, 3, target="cubic"))
    V(e, "out_dim", "out_dim 0", lambda: data.synthetic_regression(k, 10, 3, out_dim=0))
    T(e, "noise", "string noise", lambda: data.synthetic_regression(k, 10, 3, noise="a"))

    e = "data.synthetic_classification"
    V(e, "num_classes", "one class", lambda: data.synthetic_classification(k, 10, 4, 1))
    V(
        e,
        "separation",
        "negative separation",
        lambda: data.synthetic_classification(k, 10, 4, 3, separation=-1.0),
    )
    T(e, "key", "key None", lambda: data.synthetic_classification(None, 10, 4, 3))
    V(e, "n", "negative n", lambda: data.synthetic_classification(k, -5, 4, 3))
    V(
        e,
        "separation",
        "infinite separation",
        lambda: data.synthetic_classification(k, 10, 4, 3, separation=inf),
    )
    T(
        e,
        "one_hot",
        "one_hot a string",
        lambda: data.synthetic_classification(k, 10, 4, 3, one_hot="no"),
    )

    e = "data.subset"
    T(e, "ds", "a tuple, not a Dataset", lambda: data.subset(tuple(xy()), 5, k))
    V(e, "n", "n 0", lambda: data.subset(dataset(), 0, k))
    V(e, "n", "n above the training rows", lambda: data.subset(dataset(), 1000, k))
    T(e, "key", "integer key", lambda: data.subset(dataset(), 5, 1))
    V(e, "n_test", "n_test 0", lambda: data.subset(dataset(), 5, k, n_test=0))
    T(e, "n_test", "fractional n_test", lambda: data.subset(dataset(), 5, k, n_test=2.5))


# --- wideth.train -------------------------------------------------------------------


def _train() -> None:
    import optax

    from wideth import train
    from wideth.train import probes

    out, y2 = lambda: jnp.ones((4, 2)), lambda: jnp.zeros((4, 2))
    e = "train.mse"
    V(e, "targets", "targets of another shape", lambda: train.mse(out(), jnp.zeros((4, 3))))
    V(e, "targets", "NaN target", lambda: train.mse(out(), y2().at[0, 0].set(nan)))
    T(e, "outputs", "outputs of strings", lambda: train.mse("abc", y2()))
    V(e, "outputs", "scalar outputs", lambda: train.mse(jnp.float32(1.0), jnp.float32(0.0)))

    logits = lambda: jnp.zeros((2, 3))
    e = "train.xent"
    V(e, "labels", "label >= classes", lambda: train.xent(logits(), jnp.array([0, 5])))
    V(e, "labels", "label -1", lambda: train.xent(logits(), jnp.array([0, -1])))
    V(e, "labels", "fractional labels", lambda: train.xent(logits(), jnp.array([0.5, 1.0])))
    V(e, "labels", "one-hot of other classes", lambda: train.xent(logits(), jnp.ones((2, 4))))
    V(
        e,
        "labels",
        "NaN in one-hot labels",
        lambda: train.xent(logits(), jnp.eye(2, 3).at[0, 0].set(nan)),
    )
    e = "train.accuracy"
    V(e, "labels", "label = classes", lambda: train.accuracy(logits(), jnp.array([0, 3])))
    V(e, "labels", "label -1", lambda: train.accuracy(logits(), jnp.array([-1, 0])))
    T(e, "labels", "fractional labels", lambda: train.accuracy(logits(), jnp.array([0.5, 1.0])))
    V(e, "labels", "labels for other rows", lambda: train.accuracy(logits(), jnp.array([0, 1, 2])))
    e = "train.get_loss"
    V(e, "loss", "unknown loss", lambda: train.get_loss("hinge"))
    T(e, "loss", "loss a number", lambda: train.get_loss(3))
    e = "train.is_classification"
    T(e, "targets", "targets a string", lambda: train.is_classification("abc"))
    T(e, "targets", "targets None", lambda: train.is_classification(None))

    e = "train.TrainState.create"
    T(e, "tx", "tx a string", lambda: train.TrainState.create(params(), "sgd"))
    T(e, "key", "integer key", lambda: train.TrainState.create(params(), sgd(), 0))
    V(e, "params", "no parameters", lambda: train.TrainState.create({}, sgd()))
    T(
        e,
        "params",
        "integer parameters",
        lambda: train.TrainState.create({"w": jnp.arange(3)}, sgd()),
    )
    e = "train.with_hyperparams"
    ihp = lambda: train.TrainState.create(
        params(), optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    )
    T(e, "state", "state a string", lambda: train.with_hyperparams("x", learning_rate=0.1))
    V(
        e,
        "momentum",
        "a hyperparameter the state does not hold",
        lambda: train.with_hyperparams(ihp(), momentum=0.9),
    )
    V(
        e,
        "learning_rate",
        "NaN learning rate",
        lambda: train.with_hyperparams(ihp(), learning_rate=nan),
    )
    T(
        e,
        "learning_rate",
        "string learning rate",
        lambda: train.with_hyperparams(ihp(), learning_rate="fast"),
    )
    e = "train.train_step"
    T(e, "apply_fn", "apply_fn not callable", lambda: train.train_step(3, "mse", sgd()))
    V(e, "loss", "unknown loss", lambda: train.train_step(apply, "hinge", sgd()))
    T(e, "tx", "tx None", lambda: train.train_step(apply, "mse", None))
    V(
        e,
        "metrics",
        "unknown metric",
        lambda: train.train_step(apply, "mse", sgd(), metrics=["bogus"]),
    )
    T(
        e,
        "metrics",
        "metrics a string",
        lambda: train.train_step(apply, "mse", sgd(), metrics="loss"),
    )

    e = "train.run"
    V(e, "num_steps", "negative num_steps", lambda: train.run(step(), state(), xy(), -1))
    V(
        e,
        "every",
        "every not dividing num_steps",
        lambda: train.run(step(), state(), xy(), 10, every=3),
    )
    V(e, "every", "every 0", lambda: train.run(step(), state(), xy(), 10, every=0))
    T(e, "state", "state a string", lambda: train.run(step(), "x", xy(), 10))
    T(
        e,
        "data",
        "data with the wrong features",
        lambda: train.run(step(), state(), (jnp.ones((8, 5)), xy()[1]), 10),
    )
    V(
        e,
        "data",
        "NaN in data",
        lambda: train.run(step(), state(), (xy()[0].at[0, 0].set(nan), xy()[1]), 10),
    )
    T(
        e,
        "probes[",
        "a probe that is not callable",
        lambda: train.run(step(), state(), xy(), 10, probes={"p": 3}),
    )
    T(e, "probes", "probes a list", lambda: train.run(step(), state(), xy(), 10, probes=[1]))
    T(e, "step", "step not callable", lambda: train.run(3, state(), xy(), 10))
    V(
        e,
        "step",
        "step without a loss metric",
        lambda: train.run(lambda s, b: (s, {}), state(), xy(), 10),
    )
    e = "train.minibatches"
    V(e, "batch_size", "batch_size 0", lambda: train.minibatches(*xy(), 0))
    V(e, "batch_size", "batch_size above the rows", lambda: train.minibatches(*xy(), 100))
    V(e, "y", "y with other rows", lambda: train.minibatches(xy()[0], xy()[1][:3], 2))
    V(e, "x", "NaN in x", lambda: train.minibatches(xy()[0].at[0, 0].set(nan), xy()[1], 2))
    T(e, "batch_size", "fractional batch_size", lambda: train.minibatches(*xy(), 2.5))
    e = "train.stacked"
    V(e, "batches", "no leaves", lambda: train.stacked({}))
    V(
        e,
        "batches",
        "leaves of different lengths",
        lambda: train.stacked((jnp.ones((3, 2)), jnp.ones((4, 2)))),
    )
    V(e, "batches", "scalar leaves", lambda: train.stacked([1.0, 2.0]))
    V(
        e,
        "batches",
        "NaN in a batch",
        lambda: train.stacked((jnp.full((3, 2), nan), jnp.ones((3, 2)))),
    )

    fit = lambda *a, **k: train.fit(*a, **{"quiet": True, **k})
    e = "train.fit"
    V(e, "steps", "negative steps", lambda: fit(apply, params(), sgd(), xy(), steps=-1))
    V(
        e,
        "batch_size",
        "batch_size above the rows",
        lambda: fit(apply, params(), sgd(), xy(), steps=1, batch_size=100),
    )
    V(
        e,
        "data",
        "NaN in data",
        lambda: fit(apply, params(), sgd(), (xy()[0].at[0, 0].set(nan), xy()[1]), steps=1),
    )
    V(
        e,
        "data",
        "x and y with other rows",
        lambda: fit(apply, params(), sgd(), (xy()[0], xy()[1][:3]), steps=1),
    )
    V(e, "loss", "unknown loss", lambda: fit(apply, params(), sgd(), xy(), loss="hinge", steps=1))
    T(
        e,
        "model_or_apply",
        "x with the wrong features",
        lambda: fit(apply, params(), sgd(), (jnp.ones((8, 5)), xy()[1]), steps=1),
    )
    V(
        e,
        "data",
        "y with the wrong number of outputs",
        lambda: fit(apply, params(), sgd(), (xy()[0], jnp.ones((8, 3))), steps=1),
    )
    V(
        e,
        "data",
        "integer labels outside the classes",
        lambda: fit(apply, params(), sgd(), (xy()[0], jnp.arange(8)), loss="xent", steps=1),
    )
    T(e, "key", "integer key", lambda: fit(apply, params(), sgd(), xy(), steps=1, key=0))
    V(
        e,
        "log_every",
        "log_every 0",
        lambda: fit(apply, params(), sgd(), xy(), steps=1, log_every=0),
    )
    V(
        e,
        "eval_data",
        "eval_data with other features",
        lambda: fit(
            apply, params(), sgd(), xy(), steps=1, eval_data=(jnp.ones((4, 5)), jnp.ones((4, 2)))
        ),
    )
    T(
        e,
        "callbacks",
        "a callback that is not callable",
        lambda: fit(apply, params(), sgd(), xy(), steps=1, callbacks=[3]),
    )
    T(
        e,
        "probes[",
        "a probe that is not callable",
        lambda: fit(apply, params(), sgd(), xy(), steps=1, probes={"a": 1}),
    )
    T(e, "mesh", "mesh a string", lambda: fit(apply, params(), sgd(), xy(), steps=1, mesh="rows"))
    V(
        e,
        "opt_state",
        "opt_state of another optimizer",
        lambda: fit(
            apply, params(), sgd(), xy(), steps=1, opt_state=optax.adam(0.1).init(params())
        ),
    )
    T(e, "tx", "tx a string", lambda: fit(apply, params(), "adam", xy(), steps=1))
    T(e, "data", "data a string", lambda: fit(apply, params(), sgd(), "abc", steps=1))
    T(e, "steps", "fractional steps", lambda: fit(apply, params(), sgd(), xy(), steps=2.5))
    V(
        e,
        "loss",
        "vector loss",
        lambda: fit(apply, params(), sgd(), xy(), loss=lambda o, t: (o - t) ** 2, steps=1),
    )
    T(e, "params", "params None with a function", lambda: fit(apply, None, sgd(), xy(), steps=1))

    e = "train.probes"
    T(e, "model", "sharpness of a number", lambda: probes.sharpness(3))
    V(e, "num_steps", "sharpness with num_steps 0", lambda: probes.sharpness(step(), num_steps=0))
    V(
        e,
        "x",
        "ntk_top_eigenvalue on NaN inputs",
        lambda: probes.ntk_top_eigenvalue(apply, xy()[0].at[0, 0].set(nan)),
    )
    T(e, "apply_fn", "ntk_top_eigenvalue of a number", lambda: probes.ntk_top_eigenvalue(3))
    V(e, "params0", "distance_from_init without parameters", lambda: probes.distance_from_init({}))
    V(e, "fn", "metric with an unknown name", lambda: probes.metric(apply, "hinge", xy()))
    T(
        e,
        "data",
        "metric on data that is not (x, y)",
        lambda: probes.metric(apply, "mse", (xy()[0],)),
    )
    V(e, "x", "outputs on NaN inputs", lambda: probes.outputs(apply, xy()[0].at[0, 0].set(nan)))
    T(e, "model", "loss of a number", lambda: probes.loss(3))
    V(
        e,
        "data",
        "grad_norm on NaN data",
        lambda: probes.grad_norm(step(), data=(xy()[0].at[0, 0].set(nan), xy()[1])),
    )


# --- wideth.hessian -----------------------------------------------------------------


def _hessian() -> None:
    from wideth import hessian

    p = params
    v = p
    w1 = lambda: p()["w1"]
    e = "hessian.hvp"
    V(e, "v", "v missing a key", lambda: hessian.hvp(loss, p(), {"w1": w1()}))
    V(e, "v", "v of another shape", lambda: hessian.hvp(loss, p(), {"w1": w1(), "w2": w1()}))
    T(
        e,
        "v",
        "integer v",
        lambda: hessian.hvp(loss, p(), jax.tree.map(lambda a: a.astype(jnp.int32), v())),
    )
    V(e, "v", "NaN in v", lambda: hessian.hvp(loss, p(), nan_like(v())))
    T(e, "loss_fn", "one-argument loss with data=", lambda: hessian.hvp(loss, p(), v(), xy()))
    V(e, "loss_fn", "vector loss", lambda: hessian.hvp(lambda q: q["w2"].ravel(), p(), v()))
    T(e, "loss_fn", "loss_fn not callable", lambda: hessian.hvp(3, p(), v()))
    V(e, "data", "batch_size without data", lambda: hessian.hvp(loss, p(), v(), batch_size=2))
    V(
        e,
        "batch_size",
        "batch_size not dividing the data",
        lambda: hessian.hvp(loss_batch, p(), v(), xy(), batch_size=3),
    )
    T(e, "mesh", "mesh a string", lambda: hessian.hvp(loss_batch, p(), v(), xy(), mesh="rows"))
    V(e, "params", "NaN in params", lambda: hessian.hvp(loss, nan_like(p()), v()))
    V(
        e,
        "axis_name",
        "axis_name not on the mesh",
        lambda: hessian.hvp(loss_batch, p(), v(), xy(), mesh=one_device_mesh(), axis_name="batch"),
    )

    out_fn = lambda q: apply(q, xy()[0])
    mse_of = lambda o: 0.5 * jnp.mean(jnp.sum((o - xy()[1]) ** 2, -1))
    e = "hessian.ggn_vp"
    T(
        e,
        "outputs_fn",
        "outputs_fn failing on params",
        lambda: hessian.ggn_vp(lambda q: q["w1"] @ q["w1"], mse_of, p(), v()),
    )
    V(
        e,
        "loss_of_outputs",
        "vector loss of outputs",
        lambda: hessian.ggn_vp(out_fn, lambda o: o.ravel(), p(), v()),
    )
    V(
        e,
        "v",
        "v of another shape",
        lambda: hessian.ggn_vp(out_fn, mse_of, p(), {"w1": w1(), "w2": w1()}),
    )
    T(
        e,
        "loss_of_outputs",
        "loss_of_outputs not callable",
        lambda: hessian.ggn_vp(out_fn, 3, p(), v()),
    )
    T(
        e,
        "outputs_fn",
        "one-argument outputs_fn with data=",
        lambda: hessian.ggn_vp(out_fn, lambda o, b: mse_of(o), p(), v(), xy()),
    )
    e = "hessian.batched_hvp"
    V(e, "batch_size", "batch_size 0", lambda: hessian.batched_hvp(loss_batch, p(), v(), xy(), 0))
    V(e, "data", "data None", lambda: hessian.batched_hvp(loss_batch, p(), v(), None, 2))
    V(
        e,
        "batch_size",
        "batch_size not dividing the data",
        lambda: hessian.batched_hvp(loss_batch, p(), v(), xy(), 3),
    )
    e = "hessian.batched_ggn_vp"
    ofb, lob = (lambda q, b: apply(q, b[0])), (lambda o, b: 0.5 * jnp.mean((o - b[1]) ** 2))
    V(
        e,
        "batch_size",
        "batch_size not dividing the data",
        lambda: hessian.batched_ggn_vp(ofb, lob, p(), v(), xy(), 3),
    )
    V(
        e,
        "v",
        "v missing a key",
        lambda: hessian.batched_ggn_vp(ofb, lob, p(), {"w1": w1()}, xy(), 2),
    )

    e = "hessian.hessian"
    T(e, "dtype", "integer dtype", lambda: hessian.hessian(loss, p(), dtype=jnp.int32))
    T(
        e,
        "params",
        "integer params",
        lambda: hessian.hessian(lambda q: jnp.sum(q["w"]) * 1.0, {"w": jnp.arange(3)}),
    )
    V(e, "params", "no parameters", lambda: hessian.hessian(lambda q: 0.0, {}))
    V(e, "loss_fn", "vector loss", lambda: hessian.hessian(lambda q: q["w2"].ravel(), p()))
    T(e, "loss_fn", "one-argument loss with data", lambda: hessian.hessian(loss, p(), xy()))
    T(e, "mesh", "mesh a string", lambda: hessian.hessian(loss_batch, p(), xy(), mesh="rows"))
    V(e, "params", "NaN in params", lambda: hessian.hessian(loss, nan_like(p())))
    V(
        e,
        "data",
        "NaN in data",
        lambda: hessian.hessian(loss_batch, p(), (xy()[0].at[0, 0].set(nan), xy()[1])),
    )
    V(
        e,
        "data",
        "data of different lengths",
        lambda: hessian.hessian(loss_batch, p(), (xy()[0], xy()[1][:3])),
    )
    e = "hessian.ggn"
    T(e, "outputs_fn", "outputs_fn not callable", lambda: hessian.ggn(3, mse_of, p()))
    V(
        e,
        "loss_of_outputs",
        "vector loss of outputs",
        lambda: hessian.ggn(out_fn, lambda o: o.ravel(), p()),
    )
    T(e, "dtype", "float16 dtype", lambda: hessian.ggn(out_fn, mse_of, p(), dtype="float16"))
    V(e, "batch_size", "batch_size 0", lambda: hessian.ggn(ofb, lob, p(), xy(), batch_size=0))
    e = "hessian.ntk"
    T(e, "apply_fn", "x with the wrong features", lambda: hessian.ntk(apply, p(), jnp.ones((4, 5))))
    V(e, "x", "NaN in x", lambda: hessian.ntk(apply, p(), xy()[0].at[0, 0].set(nan)))
    V(e, "x", "x without rows", lambda: hessian.ntk(apply, p(), jnp.ones((0, 3))))
    T(e, "params", "params None", lambda: hessian.ntk(apply, None, xy()[0]))
    T(e, "apply_fn", "apply_fn not callable", lambda: hessian.ntk(3, p(), xy()[0]))
    e = "hessian.from_matvec"
    T(e, "matvec", "matvec not callable", lambda: hessian.from_matvec(3, jnp.ones(3)))
    V(
        e,
        "matvec",
        "matvec changing the shape",
        lambda: hessian.from_matvec(lambda u: u[:2], jnp.ones(3)),
    )
    V(e, "v_example", "v_example without leaves", lambda: hessian.from_matvec(lambda u: u, {}))

    e = "hessian.lanczos"
    diag = lambda u: jnp.arange(1.0, 4.0) * u
    V(e, "v0", "NaN in v0", lambda: hessian.lanczos(diag, jnp.array([1.0, nan, 1.0]), 3))
    V(e, "num_steps", "num_steps 0", lambda: hessian.lanczos(diag, jnp.ones(3), 0))
    V(
        e,
        "num_steps",
        "num_steps above the dimension",
        lambda: hessian.lanczos(diag, jnp.ones(3), 5),
    )
    T(e, "key", "integer key", lambda: hessian.lanczos(diag, jnp.ones(3), 3, key=0))
    V(e, "tol", "negative tol", lambda: hessian.lanczos(diag, jnp.ones(3), 3, tol=-1.0))
    V(
        e,
        "matvec",
        "matvec changing the shape",
        lambda: hessian.lanczos(lambda u: jnp.ones(4), jnp.ones(3), 3),
    )
    T(e, "matvec", "matvec not callable", lambda: hessian.lanczos(3, jnp.ones(3), 3))
    V(e, "v0", "v0 not of the operator's size", lambda: hessian.lanczos(operator(), jnp.ones(3), 2))
    e = "hessian.tridiagonal"
    V(e, "betas", "betas too short", lambda: hessian.tridiagonal(jnp.ones(4), jnp.ones(2)))
    V(e, "alphas", "NaN in alphas", lambda: hessian.tridiagonal(jnp.array([1.0, nan]), jnp.ones(1)))
    V(e, "alphas", "scalar alphas", lambda: hessian.tridiagonal(jnp.float32(1.0), jnp.ones(1)))
    T(e, "alphas", "alphas of strings", lambda: hessian.tridiagonal("ab", jnp.ones(1)))
    e = "hessian.tridiagonal_eigh"
    V(e, "betas", "betas too long", lambda: hessian.tridiagonal_eigh(jnp.ones(3), jnp.ones(4)))
    V(
        e,
        "alphas",
        "inf in alphas",
        lambda: hessian.tridiagonal_eigh(jnp.array([1.0, inf]), jnp.ones(2)),
    )

    e = "hessian.top_eigenpairs"
    te = hessian.top_eigenpairs
    V(e, "k", "k 0", lambda: te(operator(), k=0))
    V(e, "k", "k above the dimension", lambda: te(operator(), k=100))
    V(e, "num_steps", "num_steps below k", lambda: te(operator(), k=5, num_steps=3))
    V(e, "which", "unknown which", lambda: te(operator(), k=1, which="middle"))
    T(e, "key", "integer key", lambda: te(operator(), k=1, key=0))
    T(e, "operator", "operator a number", lambda: te(3, p()))
    T(e, "params", "params None with a loss", lambda: te(loss, None))
    V(e, "loss_fn", "vector loss", lambda: te(lambda q: q["w2"].ravel(), p()))
    e = "hessian.sharpness"
    V(e, "num_steps", "num_steps 0", lambda: hessian.sharpness(operator(), num_steps=0))
    T(e, "key", "string key", lambda: hessian.sharpness(operator(), key="a"))
    T(e, "operator", "operator None", lambda: hessian.sharpness(None, p()))
    e = "hessian.spectral_density"
    V(e, "num_probes", "num_probes 0", lambda: hessian.spectral_density(operator(), num_probes=0))
    V(
        e,
        "num_steps",
        "negative num_steps",
        lambda: hessian.spectral_density(operator(), num_steps=-1),
    )
    V(
        e,
        "probe_batch_size",
        "probe_batch_size 0",
        lambda: hessian.spectral_density(operator(), probe_batch_size=0),
    )
    T(e, "key", "integer key", lambda: hessian.spectral_density(operator(), key=1))
    e = "hessian.density_on_grid"
    nw = lambda: (jnp.ones((2, 3)), jnp.full((2, 3), 1 / 3))
    grid = lambda: jnp.linspace(-1, 1, 5)
    V(e, "sigma", "sigma 0", lambda: hessian.density_on_grid(*nw(), grid(), 0.0))
    V(e, "sigma", "NaN sigma", lambda: hessian.density_on_grid(*nw(), grid(), nan))
    V(
        e,
        "weights",
        "negative weights",
        lambda: hessian.density_on_grid(nw()[0], -nw()[1], grid(), 0.1),
    )
    V(
        e,
        "weights",
        "weights of another shape",
        lambda: hessian.density_on_grid(nw()[0], jnp.ones((2, 2)), grid(), 0.1),
    )
    V(e, "grid", "2-d grid", lambda: hessian.density_on_grid(*nw(), jnp.ones((2, 2)), 0.1))
    V(
        e,
        "nodes",
        "NaN in nodes",
        lambda: hessian.density_on_grid(nw()[0].at[0, 0].set(nan), nw()[1], grid(), 0.1),
    )
    e = "hessian.negative_mass"
    V(e, "threshold", "negative threshold", lambda: hessian.negative_mass(*nw(), threshold=-1.0))
    V(e, "threshold", "NaN threshold", lambda: hessian.negative_mass(*nw(), threshold=nan))
    V(e, "weights", "weights of another shape", lambda: hessian.negative_mass(nw()[0], jnp.ones(3)))
    T(e, "nodes", "nodes of strings", lambda: hessian.negative_mass("abc", nw()[1]))
    e = "hessian.trace"
    V(
        e,
        "num_probes",
        "one probe (no standard error)",
        lambda: hessian.trace(operator(), num_probes=1),
    )
    V(e, "num_probes", "num_probes 0", lambda: hessian.trace(operator(), num_probes=0))
    T(e, "key", "integer key", lambda: hessian.trace(operator(), key=0))
    V(
        e,
        "probe_batch_size",
        "negative probe_batch_size",
        lambda: hessian.trace(operator(), probe_batch_size=-1),
    )


# --- wideth.functional ------------------------------------------------------------


def _functional() -> None:
    from wideth import functional as fn

    e = "functional.functional"
    T(e, "module", "a function, not a module", lambda: fn.functional(apply))
    V(e, "method", "a method the module lacks", lambda: fn.functional(nnx_linear(), "nope"))
    e = "functional.as_apply"
    T(e, "apply_fn", "neither a module nor a function", lambda: fn.as_apply(3))
    T(e, "params", "params None with a function", lambda: fn.as_apply(apply))
    T(e, "params", "params with a module", lambda: fn.as_apply(nnx_linear(), params()))
    V(e, "params", "params without leaves", lambda: fn.as_apply(apply, {}))
    e = "functional.features"
    V(e, "module", "a module without features()", lambda: fn.features(nnx_linear()))
    T(e, "module", "a string, not a module", lambda: fn.features("mlp"))
    e = "functional.centred"
    T(e, "apply_fn", "apply_fn not callable", lambda: fn.centred(3, params()))
    T(e, "params", "params0 None with a function", lambda: fn.centred(apply))


# --- wideth.io --------------------------------------------------------------------


def _io() -> None:
    from wideth import io

    def atomic(path):
        with io.atomic_path(path):
            pass

    def figure():
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return plt.figure()

    e = "io.atomic_path"
    V(e, "path", "a missing folder", lambda: atomic(missing("f.txt")))
    V(e, "path", "an existing folder", lambda: atomic(scratch()))
    T(e, "path", "path None", lambda: atomic(None))
    e = "io.write_text"
    T(e, "text", "text a number", lambda: io.write_text(scratch() / "t.txt", 3))
    V(e, "path", "a missing folder", lambda: io.write_text(missing("t.txt"), "x"))
    e = "io.write_json"
    V(e, "indent", "negative indent", lambda: io.write_json(scratch() / "t.json", {}, indent=-1))
    V(e, "path", "an existing folder", lambda: io.write_json(scratch(), {}))
    e = "io.save_figure"
    T(e, "fig", "fig a string", lambda: io.save_figure("fig", scratch() / "f.png"))
    V(e, "path", "an unknown figure format", lambda: io.save_figure(figure(), scratch() / "f.xyz"))
    V(e, "path", "a missing folder", lambda: io.save_figure(figure(), missing("f.png")))
    e = "io.ensure_dir"
    V(e, "path", "an existing file", lambda: io.ensure_dir(a_file()))
    T(e, "path", "path None", lambda: io.ensure_dir(None))
    V(e, "path", "below a file", lambda: io.ensure_dir(os.path.join(a_file(), "sub")))


# --- experiments._common ----------------------------------------------------------


def _experiments() -> None:
    from experiments import _common as c

    e = "experiments._common.check"
    T(e, "tolerance", "tolerance None", lambda: c.check("x", 1.0, 1.0, None))
    V(e, "tolerance", "negative tolerance", lambda: c.check("x", 1.0, 1.0, -1.0))
    T(e, "theory", "theory a string without passed=", lambda: c.check("x", "abc", 1.0, 0.1))
    T(e, "measured", "measured None", lambda: c.check("x", 1.0, None, 0.1))
    T(e, "passed", "passed a string", lambda: c.check("x", "a < b", 1.0, None, passed="yes"))
    e = "experiments._common.Sizes"
    V(e, "full", "quick and full with other keys", lambda: c.Sizes({"a": 1}, {"b": 2}))
    e = "experiments._common.execute"
    V(e, "--out", "--out an existing file", lambda: c.execute(fake_run, config(a_file())))
    V(
        e,
        "--out",
        "--out below a file",
        lambda: c.execute(fake_run, config(os.path.join(a_file(), "x"))),
    )


# Build the shared arrays now, outside any trace (a cached value first built inside
# jax.eval_shape would be a tracer).
xy()
net()

for _build in (
    _meanfield,
    _blocks,
    _scaling,
    _diagnostics,
    _data,
    _train,
    _hessian,
    _functional,
    _io,
    _experiments,
):
    _build()


def is_named(message: str, name: str) -> bool:
    """The message starts with the argument's name (and the name is not a prefix of a longer one)."""
    if not message.startswith(name):
        return False
    rest = message[len(name) :]
    return not rest or not (rest[0].isalnum() or rest[0] == "_")


def raise_site(tb) -> str:
    """File of the innermost frame of a traceback."""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename
