# ruff: noqa: E501 (one case per line reads as a table)
"""Bad inputs for the public entry points of wideth, one case each.

Shared by ``tests/test_bad_inputs.py`` (which asserts the error of every case)
and ``tests/measure_bad_inputs.py`` (which counts, against any checkout of
wideth on ``PYTHONPATH``, how many cases get a named error). The cases build
their inputs lazily and small: every case must fail before real work starts.
(Entry points added later, from ``_taylor`` on, do not exist in old checkouts:
there they count as ``other-error``.) ``PENDING`` holds cases whose fix belongs
to code being reworked elsewhere; the test does not run them.

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
    from experiments import common

    return common.Config(name="fake", quick=True, seed=0, out=Path(out), quiet=True)


def nnx_linear():
    from flax import nnx

    return nnx.Linear(3, 2, rngs=nnx.Rngs(0))


# --- wideth.kernels.meanfield --------------------------------------------------------


def _meanfield() -> None:
    from wideth.kernels import meanfield as mf

    e = "activations.derivative"
    from wideth import activations

    V(e, "order", "order 3", lambda: activations.derivative("tanh", 3))
    V(e, "order", "order True", lambda: activations.derivative("tanh", True))
    V(e, "activation", "unknown name", lambda: activations.derivative("softplus"))
    V(e, "activation", "a number", lambda: activations.derivative(3))
    V(e, "activation", "missing parameters", lambda: activations.derivative("abrelu"))
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

    e = "meanfield.derivative"
    V(e, "activation", "unknown activation", lambda: mf.derivative("softplus", 1.0))
    V(e, "activation", "activation not a string", lambda: mf.derivative(3, 1.0))
    T(e, "x", "x a string", lambda: mf.derivative("tanh", "x"))
    T(e, "x", "x None", lambda: mf.derivative("tanh", None))
    V(e, "x", "NaN x", lambda: mf.derivative("tanh", np.array([0.0, nan])))
    T(e, "x", "complex x", lambda: mf.derivative("erf", np.array([1j])))

    from wideth import activations as act

    e = "activations.per_layer"
    V(
        e,
        "activation",
        "two activations for three layers",
        lambda: act.per_layer(("relu", "tanh"), 3),
    )
    V(e, "activation", "unknown activation", lambda: act.per_layer("softplus", 2))
    V(e, "n", "negative n", lambda: act.per_layer("relu", -1))
    T(e, "n", "float n", lambda: act.per_layer("relu", 2.5))
    T(e, "arg", "arg not a string", lambda: act.per_layer("softplus", 2, arg=3))

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
    e = "losses.logistic"
    from wideth import losses

    pm = lambda: jnp.array([1.0, -1.0])
    V(e, "labels", "0/1 labels", lambda: losses.logistic(jnp.zeros((2, 1)), jnp.array([0.0, 1.0])))
    V(e, "labels", "labels of another length", lambda: losses.logistic(jnp.zeros(3), pm()))
    V(e, "labels", "NaN label", lambda: losses.logistic(jnp.zeros(2), pm().at[0].set(nan)))
    V(e, "outputs", "two outputs per example", lambda: losses.logistic(jnp.zeros((2, 2)), pm()))
    T(e, "outputs", "outputs of strings", lambda: losses.logistic("ab", pm()))
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
    e = "functional.init_params"
    mk = lambda r: nnx_linear()
    T(e, "build", "build not callable", lambda: fn.init_params(3, jax.random.key(0)))
    T(e, "build", "build returning a dict", lambda: fn.init_params(lambda r: {}, jax.random.key(0)))
    T(e, "key", "key an integer", lambda: fn.init_params(mk, 0))
    T(e, "key", "key None", lambda: fn.init_params(mk, None))
    V(e, "key", "a batch of keys", lambda: fn.init_params(mk, jax.random.split(jax.random.key(0))))
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


# --- experiments.common ----------------------------------------------------------


def _experiments() -> None:
    from experiments import common as c

    e = "experiments.common.check"
    T(e, "tolerance", "tolerance None", lambda: c.check("x", 1.0, 1.0, None))
    V(e, "tolerance", "negative tolerance", lambda: c.check("x", 1.0, 1.0, -1.0))
    T(e, "theory", "theory a string without passed=", lambda: c.check("x", "abc", 1.0, 0.1))
    T(e, "measured", "measured None", lambda: c.check("x", 1.0, None, 0.1))
    T(e, "passed", "passed a string", lambda: c.check("x", "a < b", 1.0, None, passed="yes"))
    e = "experiments.common.Sizes"
    V(e, "full", "quick and full with other keys", lambda: c.Sizes({"a": 1}, {"b": 2}))
    sizes = c.Sizes(
        {"n": 3, "lr": 0.1, "on": True, "names": ("a",)},
        {"n": 9, "lr": 1.0, "on": False, "names": ("b",)},
    )
    with_set = lambda *kv: dataclasses.replace(config("."), overrides=kv)
    V(e, "--set", "--set an unknown size", lambda: sizes(with_set(("m", "3"))))
    V(e, "--set", "--set an int size from a float", lambda: sizes(with_set(("n", "2.5"))))
    V(e, "--set", "--set a float size from a word", lambda: sizes(with_set(("lr", "fast"))))
    V(e, "--set", "--set a bool size from 'yes'", lambda: sizes(with_set(("on", "yes"))))
    e = "experiments.common.execute"
    V(e, "--out", "--out an existing file", lambda: c.execute(fake_run, config(a_file())))
    V(
        e,
        "--out",
        "--out below a file",
        lambda: c.execute(fake_run, config(os.path.join(a_file(), "x"))),
    )


# --- wideth.kernels.predict ---------------------------------------------------------


def spd(n: int = 4) -> jax.Array:
    """A well-conditioned symmetric positive definite ``(n, n)`` kernel."""
    a = jax.random.normal(jax.random.key(5), (n, n))
    return a @ a.T / n + jnp.eye(n)


def targets(n: int = 4) -> jax.Array:
    return jnp.arange(n, dtype=jnp.float32) - 1.5


def not_symmetric() -> jax.Array:
    return spd().at[0, 1].add(1.0)


def _predict() -> None:
    from wideth.kernels import predict

    gd = predict.gradient_descent_mse
    e = "predict.gradient_descent_mse"
    V(e, "k_train_train", "a non-symmetric kernel", lambda: gd(not_symmetric(), targets()))
    V(e, "k_train_train", "NaN in the kernel", lambda: gd(spd().at[1, 1].set(nan), targets()))
    V(e, "k_train_train", "a non-square kernel", lambda: gd(jnp.ones((4, 3)), targets()))
    V(e, "k_train_train", "a 1-d kernel", lambda: gd(jnp.ones(4), targets()))
    T(e, "k_train_train", "a string kernel", lambda: gd("K", targets()))
    V(e, "k_train_train", "an indefinite kernel (-I)", lambda: gd(-jnp.eye(4), targets()))
    V(e, "y_train", "y_train with the wrong rows", lambda: gd(spd(), jnp.ones(3)))
    V(e, "y_train", "NaN in y_train", lambda: gd(spd(), targets().at[0].set(nan)))
    V(e, "learning_rate", "negative learning_rate", lambda: gd(spd(), targets(), learning_rate=-1))
    V(e, "learning_rate", "zero learning_rate", lambda: gd(spd(), targets(), learning_rate=0.0))
    V(e, "learning_rate", "NaN learning_rate", lambda: gd(spd(), targets(), learning_rate=nan))
    T(e, "learning_rate", "string learning_rate", lambda: gd(spd(), targets(), learning_rate="1"))
    V(e, "diag_reg", "negative diag_reg", lambda: gd(spd(), targets(), diag_reg=-0.1))
    V(e, "diag_reg", "infinite diag_reg", lambda: gd(spd(), targets(), diag_reg=inf))
    V(
        e,
        "normalization",
        "unknown normalization",
        lambda: gd(spd(), targets(), normalization="max"),
    )
    T(e, "discrete", "discrete a string", lambda: gd(spd(), targets(), discrete="yes"))
    V(e, "batch_size", "batch_size 0", lambda: gd(spd(), targets(), batch_size=0))
    T(e, "batch_size", "float batch_size", lambda: gd(spd(), targets(), batch_size=2.5))

    pf = lambda **kw: gd(spd(), targets(), **kw)
    e = "predict.gradient_descent_mse predict_fn"
    V(e, "t", "negative time", lambda: pf()(t=-5))
    V(e, "t", "NaN time", lambda: pf()(t=nan))
    T(e, "t", "string time", lambda: pf()(t="10"))
    V(e, "t", "fractional steps with discrete=True", lambda: pf(discrete=True)(t=2.5))
    V(
        e,
        "k_test_train",
        "k_test_train with the wrong columns",
        lambda: pf()(k_test_train=jnp.ones((2, 3))),
    )
    V(e, "k_test_train", "NaN in k_test_train", lambda: pf()(k_test_train=jnp.full((2, 4), nan)))
    V(e, "fx_train_0", "fx_train_0 with the wrong rows", lambda: pf()(fx_train_0=jnp.ones(3)))
    V(
        e,
        "fx_test_0",
        "fx_test_0 with the wrong rows",
        lambda: pf()(k_test_train=jnp.ones((2, 4)), fx_test_0=jnp.ones(3)),
    )
    V(e, "fx_train_0", "NaN fx_train_0", lambda: pf()(fx_train_0=jnp.full(4, nan)))

    ens = predict.gradient_descent_mse_ensemble
    kt = lambda: jnp.ones((2, 4)) / 4
    ktt = lambda: jnp.eye(2)
    e = "predict.gradient_descent_mse_ensemble"
    V(
        e,
        "ntk_train_train",
        "a non-symmetric NTK",
        lambda: ens(not_symmetric(), spd(), kt(), kt(), ktt(), targets()),
    )
    V(
        e,
        "nngp_train_train",
        "NaN in the NNGP",
        lambda: ens(spd(), spd().at[0, 0].set(nan), kt(), kt(), ktt(), targets()),
    )
    V(
        e,
        "ntk_test_train",
        "ntk_test_train with the wrong columns",
        lambda: ens(spd(), spd(), jnp.ones((2, 3)), kt(), ktt(), targets()),
    )
    V(
        e,
        "nngp_test_test",
        "nngp_test_test of the wrong shape",
        lambda: ens(spd(), spd(), kt(), kt(), jnp.eye(3), targets()),
    )
    V(e, "t", "negative t", lambda: ens(spd(), spd(), kt(), kt(), ktt(), targets(), t=-1.0))
    V(
        e,
        "learning_rate",
        "negative learning_rate",
        lambda: ens(spd(), spd(), kt(), kt(), ktt(), targets(), learning_rate=-1.0),
    )
    V(
        e,
        "ntk_train_train",
        "an (n, n) NTK with trace_axes=()",
        lambda: ens(spd(), spd(), kt(), kt(), ktt(), jnp.ones((4, 2)), trace_axes=()),
    )
    V(
        e,
        "y_train",
        "1-d y_train with trace_axes=()",
        lambda: ens(spd(), spd(), kt(), kt(), ktt(), targets(), trace_axes=()),
    )
    V(
        e,
        "trace_axes",
        "trace_axes (0,)",
        lambda: ens(spd(), spd(), kt(), kt(), ktt(), targets(), trace_axes=(0,)),
    )
    V(
        e,
        "diag_reg",
        "NaN diag_reg",
        lambda: ens(spd(), spd(), kt(), kt(), ktt(), targets(), diag_reg=nan),
    )
    V(
        e,
        "y_train",
        "y_train with the wrong rows",
        lambda: ens(spd(), spd(), kt(), kt(), ktt(), jnp.ones(5)),
    )
    V(
        e,
        "normalization",
        "unknown normalization",
        lambda: ens(spd(), spd(), kt(), kt(), ktt(), targets(), normalization="none"),
    )

    gp = predict.gp_inference
    e = "predict.gp_inference"
    V(
        e,
        "k_train_train",
        "an indefinite kernel",
        lambda: gp(jnp.diag(jnp.array([1.0, -1.0, 1.0, 1.0])), targets(), kt()),
    )
    V(e, "k_train_train", "a non-symmetric kernel", lambda: gp(not_symmetric(), targets(), kt()))
    V(e, "k_train_train", "inf in the kernel", lambda: gp(spd().at[2, 2].set(inf), targets(), kt()))
    V(
        e,
        "k_test_train",
        "k_test_train with the wrong columns",
        lambda: gp(spd(), targets(), jnp.ones((2, 5))),
    )
    V(
        e,
        "k_test_test",
        "k_test_test of the wrong shape",
        lambda: gp(spd(), targets(), kt(), jnp.eye(4)),
    )
    V(
        e,
        "k_test_test",
        "NaN in k_test_test",
        lambda: gp(spd(), targets(), kt(), jnp.full((2, 2), nan)),
    )
    V(e, "diag_reg", "negative diag_reg", lambda: gp(spd(), targets(), kt(), diag_reg=-1.0))
    T(e, "diag_reg", "string diag_reg", lambda: gp(spd(), targets(), kt(), diag_reg="0.1"))
    V(e, "y_train", "NaN in y_train", lambda: gp(spd(), targets().at[1].set(nan), kt()))

    mlr = predict.max_learning_rate
    e = "predict.max_learning_rate"
    V(e, "ntk_train_train", "NaN in the NTK", lambda: mlr(spd().at[0, 0].set(nan)))
    V(e, "ntk_train_train", "a negative definite NTK (-I)", lambda: mlr(-jnp.eye(3)))
    V(e, "ntk_train_train", "a zero NTK", lambda: mlr(jnp.zeros((3, 3))))
    V(e, "ntk_train_train", "a non-symmetric NTK", lambda: mlr(not_symmetric()))
    V(e, "ntk_train_train", "a non-square NTK", lambda: mlr(jnp.ones((2, 3))))
    V(e, "momentum", "momentum 1", lambda: mlr(spd(), momentum=1.0))
    V(e, "momentum", "negative momentum", lambda: mlr(spd(), momentum=-0.5))
    T(e, "momentum", "string momentum", lambda: mlr(spd(), momentum="0.9"))
    V(e, "normalization", "unknown normalization", lambda: mlr(spd(), normalization="avg"))


# --- wideth.kernels.empirical -------------------------------------------------------


def _empirical() -> None:
    from wideth.kernels import empirical as emp

    x = lambda: xy()[0]
    e = "empirical.ntk"
    T(
        e,
        "apply_fn",
        "x with the wrong features",
        lambda: emp.ntk(apply, params(), jnp.ones((4, 5))),
    )
    V(e, "x1", "x1 without rows", lambda: emp.ntk(apply, params(), jnp.ones((0, 3))))
    V(e, "x1", "NaN in x1", lambda: emp.ntk(apply, params(), x().at[0, 0].set(nan)))
    V(e, "x1", "1-d x1", lambda: emp.ntk(apply, params(), jnp.ones(3)))
    T(e, "x1", "x1 a string", lambda: emp.ntk(apply, params(), "abc"))
    V(e, "x2", "x2 with other features", lambda: emp.ntk(apply, params(), x(), jnp.ones((2, 5))))
    V(e, "x2", "x2 without rows", lambda: emp.ntk(apply, params(), x(), jnp.ones((0, 3))))
    V(e, "method", "unknown method", lambda: emp.ntk(apply, params(), x(), method="exact"))
    V(e, "batch_size", "batch_size 0", lambda: emp.ntk(apply, params(), x(), batch_size=0))
    T(e, "batch_size", "float batch_size", lambda: emp.ntk(apply, params(), x(), batch_size=2.5))
    T(e, "full", "full a string", lambda: emp.ntk(apply, params(), x(), full="yes"))
    T(e, "params", "params None with a function", lambda: emp.ntk(apply, None, x()))
    V(e, "params", "NaN in params", lambda: emp.ntk(apply, nan_like(params()), x()))
    T(e, "apply_fn", "apply_fn not callable", lambda: emp.ntk(3, params(), x()))
    V(
        e,
        "apply_fn",
        "apply_fn returning a scalar",
        lambda: emp.ntk(lambda p, a: jnp.sum(apply(p, a)), params(), x()),
    )

    V(e, "trace_axes", "axis 2 of 2-d outputs", lambda: emp.ntk(apply, params(), x(), trace_axes=2))
    V(
        e,
        "diagonal_axes",
        "an axis traced and diagonal",
        lambda: emp.ntk(apply, params(), x(), trace_axes=1, diagonal_axes=1),
    )
    T(e, "vmap_axes", "vmap_axes a string", lambda: emp.ntk(apply, params(), x(), vmap_axes="0"))
    V(
        e,
        "method",
        "row-wise method with vmap_axes=None",
        lambda: emp.ntk(apply, params(), x(), method="jacobian", vmap_axes=None),
    )
    T(e, "apply_kwargs", "a list", lambda: emp.ntk(apply, params(), x(), apply_kwargs=[1]))

    e = "empirical.nngp"
    V(
        e,
        "trace_axes",
        "axis 3 of 2-d outputs",
        lambda: emp.nngp(apply, params(), x(), trace_axes=3),
    )
    T(
        e,
        "apply_fn",
        "x with the wrong features",
        lambda: emp.nngp(apply, params(), jnp.ones((4, 5))),
    )
    V(e, "x1", "x1 without rows", lambda: emp.nngp(apply, params(), jnp.ones((0, 3))))
    V(e, "x2", "inf in x2", lambda: emp.nngp(apply, params(), x(), x().at[1, 1].set(inf)))
    T(e, "apply_fn", "apply_fn None", lambda: emp.nngp(None, params(), x()))
    T(e, "params", "params None with a function", lambda: emp.nngp(apply, None, x()))
    V(
        e,
        "apply_fn",
        "apply_fn returning a scalar",
        lambda: emp.nngp(lambda p, a: jnp.sum(apply(p, a)), params(), x()),
    )

    e = "empirical.ntk_matvec"
    mv = lambda: emp.ntk_matvec(apply, params(), x())
    T(
        e,
        "apply_fn",
        "x with the wrong features",
        lambda: emp.ntk_matvec(apply, params(), jnp.ones((4, 5))),
    )
    V(e, "x", "x without rows", lambda: emp.ntk_matvec(apply, params(), jnp.ones((0, 3))))
    V(e, "x", "NaN in x", lambda: emp.ntk_matvec(apply, params(), x().at[2, 0].set(nan)))
    T(e, "params", "params None with a function", lambda: emp.ntk_matvec(apply, None, x()))
    T(e, "apply_fn", "apply_fn a string", lambda: emp.ntk_matvec("mlp", params(), x()))
    V(e, "v", "v of the wrong size", lambda: mv()(jnp.ones((8, 3))))
    V(e, "v", "NaN in v", lambda: mv()(jnp.full((8, 2), nan)))
    T(e, "v", "v a string", lambda: mv()("v"))

    e = "empirical.structured_report"
    sr = emp.structured_report
    T(e, "apply_fn", "x with the wrong features", lambda: sr(apply, params(), jnp.ones((4, 5))))
    V(e, "x", "1-d x", lambda: sr(apply, params(), jnp.ones(3)))
    T(e, "x", "x a string", lambda: sr(apply, params(), "abc"))
    T(e, "apply_fn", "apply_fn not callable", lambda: sr(3, params(), x()))
    T(e, "params", "params None with a function", lambda: sr(apply, None, x()))
    V(e, "params", "params without leaves", lambda: sr(apply, {}, x()))


# --- wideth.kernels.analytic builders and kernel() -----------------------------------


def _analytic() -> None:
    from wideth.kernels import analytic

    mlp, cnn = analytic.mlp, analytic.cnn
    e = "analytic.mlp"
    V(e, "depth", "negative depth", lambda: mlp(-1, 8))
    T(e, "depth", "float depth", lambda: mlp(1.5, 8))
    T(e, "depth", "bool depth", lambda: mlp(True, 8))
    V(e, "width", "width 0", lambda: mlp(1, 0))
    T(e, "width", "string width", lambda: mlp(1, "8"))
    V(e, "W_std", "negative W_std", lambda: mlp(1, 8, W_std=-1.0))
    V(e, "W_std", "NaN W_std", lambda: mlp(1, 8, W_std=nan))
    T(e, "W_std", "string W_std", lambda: mlp(1, 8, W_std="1.0"))
    V(e, "b_std", "infinite b_std", lambda: mlp(1, 8, b_std=inf))
    T(e, "b_std", "b_std a string", lambda: mlp(1, 8, b_std="0.1"))
    V(e, "activation", "unknown activation", lambda: mlp(1, 8, activation="swish"))
    V(e, "activation", "activation not a string", lambda: mlp(1, 8, activation=jnp.tanh))
    V(e, "parameterization", "unknown parameterization", lambda: mlp(1, 8, parameterization="mup"))
    V(e, "out_dim", "out_dim 0", lambda: mlp(1, 8, out_dim=0))
    T(e, "out_dim", "float out_dim", lambda: mlp(1, 8, out_dim=2.0))
    V(e, "quadrature_points", "quadrature_points 1", lambda: mlp(1, 8, "tanh", quadrature_points=1))
    V(e, "width", "widths of the wrong length", lambda: mlp(2, [8, 8, 8]))
    V(e, "activation", "monomial without degree", lambda: mlp(1, 8, ("monomial", {})))
    V(e, "max_input_sq", "max_input_sq 0", lambda: mlp(1, 8, "tanh", max_input_sq=0.0))

    e = "analytic.cnn"
    V(e, "depth", "negative depth", lambda: cnn(-2, 8))
    V(e, "channels", "channels 0", lambda: cnn(1, 0))
    T(e, "channels", "float channels", lambda: cnn(1, 4.5))
    V(e, "filter_shape", "a zero filter size", lambda: cnn(1, 8, filter_shape=(0, 3)))
    T(e, "filter_shape", "filter_shape a string", lambda: cnn(1, 8, filter_shape="3x3"))
    V(e, "filter_shape", "empty filter_shape", lambda: cnn(1, 8, filter_shape=()))
    V(e, "pool", "unknown pool", lambda: cnn(1, 8, pool="max"))
    V(e, "W_std", "negative W_std", lambda: cnn(1, 8, W_std=-0.5))
    V(e, "activation", "unknown activation", lambda: cnn(1, 8, activation="swish"))
    V(e, "padding", "unknown padding", lambda: cnn(1, 8, padding="FULL"))
    V(e, "strides", "strides of the wrong rank", lambda: cnn(1, 8, strides=(2, 2, 2)))

    e = "analytic.resnet"
    V(e, "layernorm", "unknown layernorm", lambda: analytic.resnet(1, 8, layernorm="mid"))
    V(e, "activation", "per-layer activations", lambda: analytic.resnet(2, 8, ["relu", "erf"]))
    V(e, "depth", "negative depth", lambda: analytic.resnet(-1, 8))
    V(e, "width", "width 0", lambda: analytic.resnet(1, 0))
    V(e, "W_std", "negative W_std", lambda: analytic.resnet(1, 8, W_std=-1.0))
    V(e, "alpha", "NaN alpha", lambda: analytic.resnet(1, 8, alpha=nan))
    V(e, "b_std", "a bias in standard", lambda: analytic.resnet(1, 8, parameterization="standard"))

    tr = analytic.transformer
    e = "analytic.transformer"
    V(e, "depth", "negative depth", lambda: tr(-1, 8))
    V(e, "n_heads", "n_heads 0", lambda: tr(1, 8, 0))
    V(e, "mechanism", "unknown mechanism", lambda: tr(1, 8, mechanism="sparsemax"))
    V(e, "layernorm", "pre layernorm", lambda: tr(1, 8, layernorm="pre"))
    V(e, "pool", "unknown pool", lambda: tr(1, 8, pool="max"))
    V(e, "W_qk_std", "negative W_qk_std", lambda: tr(1, 8, W_qk_std=-1.0))
    V(e, "pos_emb_type", "unknown pos_emb_type", lambda: tr(1, 8, pos_emb_type="rotary"))
    V(
        e,
        "pos_emb_p_norm",
        "zero pos_emb_p_norm",
        lambda: tr(1, 8, pos_emb_type="sum", pos_emb_p_norm=0.0),
    )
    T(
        e,
        "pos_emb_decay_fn",
        "pos_emb_decay_fn not callable",
        lambda: tr(1, 8, pos_emb_type="sum", pos_emb_decay_fn=2.0),
    )
    V(
        e,
        "pos_emb_decay_fn",
        "a decay of zero variance at distance 0",
        lambda: tr(1, 8, pos_emb_type="sum", pos_emb_decay_fn=lambda d: d),
    )
    V(
        e,
        "pos_emb_decay_fn",
        "pos_emb_decay_fn without embeddings",
        lambda: tr(1, 8, pos_emb_decay_fn=lambda d: jnp.exp(-d)),
    )
    V(
        e,
        "n_chan_pos_emb",
        "n_chan_pos_emb other than the width with pos_emb_type='sum'",
        lambda: tr(1, 8, pos_emb_type="sum", n_chan_pos_emb=3),
    )
    V(
        e,
        "n_chan_pos_emb",
        "n_chan_pos_emb 0",
        lambda: tr(1, 8, pos_emb_type="concat", n_chan_pos_emb=0),
    )
    V(
        e,
        "W_pos_emb_std",
        "negative W_pos_emb_std",
        lambda: tr(1, 8, pos_emb_type="sum", W_pos_emb_std=-1.0),
    )
    T(
        e,
        "val_pos_emb",
        "val_pos_emb a string",
        lambda: tr(1, 8, pos_emb_type="sum", val_pos_emb="yes"),
    )
    V(e, "parameterization", "unknown parameterization", lambda: cnn(1, 8, parameterization="NTK"))

    kf = lambda: analytic.mlp(depth=1, width=8)[2]
    k = analytic.kernel
    x = lambda: jnp.ones((4, 3))
    e = "analytic.kernel"
    V(e, "x1", "NaN in x1", lambda: k(kf(), x().at[0, 0].set(nan)))
    V(e, "x1", "1-d x1", lambda: k(kf(), jnp.ones(3)))
    V(e, "x1", "x1 without rows", lambda: k(kf(), jnp.ones((0, 3))))
    T(e, "x1", "x1 a string", lambda: k(kf(), "abc"))
    V(e, "x1", "images for an MLP kernel", lambda: k(kf(), jnp.ones((4, 2, 2, 3))))
    V(e, "x2", "x2 with other features", lambda: k(kf(), x(), jnp.ones((2, 5))))
    V(e, "x2", "inf in x2", lambda: k(kf(), x(), x().at[1, 1].set(inf)))
    V(e, "get", "unknown get", lambda: k(kf(), x(), get="jacobian"))
    V(e, "batch_size", "negative batch_size", lambda: k(kf(), x(), batch_size=-2))
    V(e, "dtype", "integer dtype", lambda: k(kf(), x(), dtype=jnp.int32))
    V(
        e,
        "mask_constant",
        "a fully masked row of x1",
        lambda: k(kf(), x().at[1].set(7.0), mask_constant=7.0),
    )
    T(e, "kernel_fn", "kernel_fn not callable", lambda: k(3, x()))
    T(
        e,
        "store_on_device",
        "store_on_device a string",
        lambda: k(kf(), x(), batch_size=2, store_on_device="no"),
    )


# --- wideth.optim -------------------------------------------------------------------


def quad_problem():
    """``outputs_fn``, ``loss_of_outputs``, params and gradient of a 3-parameter least squares."""
    w = jnp.array([0.5, -1.0, 2.0])
    f = lambda p: jnp.eye(3) @ p
    ell = lambda out: 0.5 * jnp.sum((out - 1.0) ** 2)
    return f, ell, w, jax.grad(lambda p: ell(f(p)))(w)


def update_with(tx, **kw):
    f, ell, w, g = quad_problem()
    args = {"outputs_fn": f, "loss_of_outputs": ell} | kw
    args = {k: v for k, v in args.items() if v is not None}
    return tx.update(g, tx.init(w), w, **args)


def _optim() -> None:
    from wideth import optim
    from wideth.optim import contrib

    pla = optim.pl_adaptive
    e = "optim.pl_adaptive"
    V(e, "beta", "beta 1.5", lambda: pla(beta=1.5))
    V(e, "beta", "beta 1 (no forgetting)", lambda: pla(beta=1.0))
    V(e, "beta", "negative beta", lambda: pla(beta=-0.5))
    V(e, "beta", "NaN beta", lambda: pla(beta=nan))
    T(e, "beta", "string beta", lambda: pla(beta="0.9"))
    V(e, "eps", "negative eps", lambda: pla(eps=-1.0))
    V(e, "eps", "NaN eps", lambda: pla(eps=nan))
    V(e, "beta", "vector beta", lambda: pla(beta=np.array([0.9, 0.5])))
    V(e, "weight_decay", "negative weight_decay", lambda: pla(weight_decay=-0.1))
    e = "optim.pl_adaptive update"
    T(e, "outputs_fn", "missing outputs_fn", lambda: update_with(pla(), outputs_fn=None))
    T(
        e,
        "loss_of_outputs",
        "missing loss_of_outputs",
        lambda: update_with(pla(), loss_of_outputs=None),
    )
    T(e, "outputs_fn", "outputs_fn not callable", lambda: update_with(pla(), outputs_fn=3))
    T(
        e,
        "loss_of_outputs",
        "loss_of_outputs not callable",
        lambda: update_with(pla(), loss_of_outputs="mse"),
    )
    V(
        e,
        "loss_of_outputs",
        "a vector loss",
        lambda: update_with(pla(), loss_of_outputs=lambda out: out**2),
    )
    T(
        e,
        "params",
        "params None",
        lambda: pla().update(
            quad_problem()[3],
            pla().init(quad_problem()[2]),
            None,
            outputs_fn=quad_problem()[0],
            loss_of_outputs=quad_problem()[1],
        ),
    )

    rel = contrib.pl_adaptive_relaxed
    e = "optim.contrib.pl_adaptive_relaxed"
    V(e, "relaxation", "negative relaxation (ascends)", lambda: rel(relaxation=-1.0))
    V(e, "relaxation", "relaxation 0", lambda: rel(relaxation=0.0))
    V(e, "relaxation", "relaxation 2", lambda: rel(relaxation=2.0))
    V(e, "relaxation", "NaN relaxation", lambda: rel(relaxation=nan))
    T(e, "relaxation", "string relaxation", lambda: rel(relaxation="1.5"))
    V(e, "beta", "beta 1.2", lambda: rel(beta=1.2))
    V(e, "eps", "negative eps", lambda: rel(eps=-1e-3))

    opa = optim.outer_product_adaptive
    e = "optim.outer_product_adaptive"
    V(e, "beta", "beta 1", lambda: opa(beta=1.0))
    V(e, "beta", "negative beta", lambda: opa(beta=-0.1))
    V(e, "beta", "NaN beta", lambda: opa(beta=nan))
    T(e, "beta", "bool beta", lambda: opa(beta=True))
    V(e, "eps", "negative eps", lambda: opa(eps=-1.0))
    V(e, "eps", "infinite eps", lambda: opa(eps=inf))

    plc = optim.pl_constant
    e = "optim.pl_constant"
    T(e, "loss_value", "string loss_value", lambda: plc("1.0", 2.0))
    V(e, "loss_value", "NaN loss_value", lambda: plc(nan, 2.0))
    V(e, "grad_norm_sq", "negative grad_norm_sq", lambda: plc(1.0, -2.0))
    V(e, "grad_norm_sq", "NaN grad_norm_sq", lambda: plc(1.0, nan))
    V(e, "loss_star", "infinite loss_star", lambda: plc(1.0, 2.0, loss_star=-inf))
    V(e, "grad_norm_sq", "shapes that do not broadcast", lambda: plc(jnp.ones(3), jnp.ones(2)))
    T(e, "loss_star", "loss_star None", lambda: plc(1.0, 2.0, loss_star=None))

    cs = optim.conservative_step
    e = "optim.conservative_step"
    V(e, "ntk_lambda_max", "negative ntk_lambda_max", lambda: cs(-1.0, 0.5))
    V(e, "ntk_lambda_max", "NaN ntk_lambda_max", lambda: cs(nan, 0.5))
    T(e, "ntk_lambda_max", "string ntk_lambda_max", lambda: cs("1", 0.5))
    V(e, "loss_hessian_norm", "negative loss_hessian_norm", lambda: cs(1.0, -0.5))
    V(e, "loss_hessian_norm", "infinite loss_hessian_norm", lambda: cs(1.0, inf))
    T(e, "loss_hessian_norm", "loss_hessian_norm None", lambda: cs(1.0, None))

    key = lambda: jax.random.key(0)
    nl = optim.ntk_lambda_max
    e = "optim.ntk_lambda_max"
    T(e, "key", "integer key", lambda: nl(apply, params(), xy()[0], key=0))
    V(e, "num_steps", "num_steps 0", lambda: nl(apply, params(), xy()[0], key=key(), num_steps=0))
    T(
        e,
        "num_steps",
        "float num_steps",
        lambda: nl(apply, params(), xy()[0], key=key(), num_steps=2.5),
    )
    T(
        e,
        "apply_fn",
        "x with the wrong features",
        lambda: nl(apply, params(), jnp.ones((4, 5)), key=key()),
    )
    V(e, "x", "NaN in x", lambda: nl(apply, params(), xy()[0].at[0, 0].set(nan), key=key()))
    T(e, "apply_fn", "apply_fn not callable", lambda: nl(3, params(), xy()[0], key=key()))
    T(e, "params", "params None", lambda: nl(apply, None, xy()[0], key=key()))

    mse_out = lambda out: 0.5 * jnp.mean((out - 1.0) ** 2)
    outs = lambda: jnp.ones((8, 2))
    lh = optim.loss_hessian_norm
    e = "optim.loss_hessian_norm"
    T(e, "key", "string key", lambda: lh(mse_out, outs(), key="k"))
    T(e, "key", "key missing (None)", lambda: lh(mse_out, outs(), key=None))
    V(e, "num_steps", "negative num_steps", lambda: lh(mse_out, outs(), key=key(), num_steps=-1))
    T(e, "loss_of_outputs", "loss_of_outputs not callable", lambda: lh(3, outs(), key=key()))
    V(e, "loss_of_outputs", "a vector loss", lambda: lh(lambda o: o**2, outs(), key=key()))
    V(e, "outputs", "NaN outputs", lambda: lh(mse_out, outs().at[0, 0].set(nan), key=key()))
    T(e, "outputs", "outputs a string", lambda: lh(mse_out, "out", key=key()))

    csb = optim.conservative_step_on_batch
    e = "optim.conservative_step_on_batch"
    T(e, "key", "integer key", lambda: csb(apply, params(), xy()[0], mse_out, key=1))
    V(
        e,
        "num_steps",
        "num_steps 0",
        lambda: csb(apply, params(), xy()[0], mse_out, key=key(), num_steps=0),
    )
    T(
        e,
        "loss_of_outputs",
        "loss_of_outputs None",
        lambda: csb(apply, params(), xy()[0], None, key=key()),
    )
    V(
        e,
        "loss_of_outputs",
        "a vector loss",
        lambda: csb(apply, params(), xy()[0], lambda o: o, key=key()),
    )
    T(
        e,
        "apply_fn",
        "x with the wrong features",
        lambda: csb(apply, params(), jnp.ones((4, 5)), mse_out, key=key()),
    )
    V(e, "x", "x without rows", lambda: csb(apply, params(), jnp.ones((0, 3)), mse_out, key=key()))
    T(
        e,
        "apply_fn",
        "apply_fn not callable",
        lambda: csb("f", params(), xy()[0], mse_out, key=key()),
    )


# --- wideth.models ------------------------------------------------------------------


def rngs():
    from flax import nnx

    return nnx.Rngs(0)


def _models() -> None:
    from wideth import models

    e = "models.MLP"
    V(e, "width", "width 0", lambda: models.MLP(3, 0, 1, rngs=rngs()))
    V(e, "width", "negative width", lambda: models.MLP(3, -4, 1, rngs=rngs()))
    T(e, "width", "bool width", lambda: models.MLP(3, True, 1, rngs=rngs()))
    T(e, "width", "float width", lambda: models.MLP(3, 4.0, 1, rngs=rngs()))
    V(e, "in_dim", "in_dim 0", lambda: models.MLP(0, 4, 1, rngs=rngs()))
    V(e, "depth", "negative depth", lambda: models.MLP(3, 4, -1, rngs=rngs()))
    V(e, "out_dim", "out_dim 0", lambda: models.MLP(3, 4, 1, 0, rngs=rngs()))
    V(
        e,
        "activation",
        "unknown activation",
        lambda: models.MLP(3, 4, 1, activation="swish", rngs=rngs()),
    )
    V(
        e,
        "parameterization",
        "unknown parameterization",
        lambda: models.MLP(3, 4, 1, parameterization="sp", rngs=rngs()),
    )
    V(e, "W_std", "negative W_std", lambda: models.MLP(3, 4, 1, W_std=-1.0, rngs=rngs()))
    T(e, "W_std", "string W_std", lambda: models.MLP(3, 4, 1, W_std="1.4", rngs=rngs()))
    V(e, "b_std", "NaN b_std", lambda: models.MLP(3, 4, 1, b_std=nan, rngs=rngs()))
    T(e, "rngs", "an integer seed instead of nnx.Rngs", lambda: models.MLP(3, 4, 1, rngs=0))
    V(e, "width", "2 widths for 3 layers", lambda: models.MLP(3, (4, 4), 3, rngs=rngs()))
    V(e, "width", "a zero among the widths", lambda: models.MLP(3, (4, 0), 2, rngs=rngs()))
    V(e, "W_std", "2 W_std for 3 layers", lambda: models.MLP(3, 4, 2, W_std=(1, 1), rngs=rngs()))
    V(
        e,
        "activation",
        "3 activations for 2 layers",
        lambda: models.MLP(3, 4, 2, activation=("relu", "erf", "tanh"), rngs=rngs()),
    )

    e = "models.MLP call"
    V(
        e,
        "x",
        "x with the wrong features",
        lambda: models.MLP(3, 4, 1, rngs=rngs())(jnp.ones((2, 5))),
    )
    T(e, "x", "x a list of strings", lambda: models.MLP(3, 4, 1, rngs=rngs())(["a"]))
    V(e, "x", "x a scalar", lambda: models.MLP(3, 4, 1, rngs=rngs())(jnp.ones(())))
    T(e, "x", "x None", lambda: models.MLP(3, 4, 1, rngs=rngs())(None))
    T(e, "x", "x a dict", lambda: models.MLP(3, 4, 1, rngs=rngs())({"x": jnp.ones((2, 3))}))
    V(
        e,
        "x",
        "NaN in x",
        lambda: models.MLP(3, 4, 1, rngs=rngs())(jnp.ones((2, 3)).at[1, 2].set(nan)),
    )
    V(e, "x", "inf in x", lambda: models.MLP(3, 4, 1, rngs=rngs())(jnp.full((2, 3), -inf)))
    T(
        e,
        "x",
        "complex x",
        lambda: models.MLP(3, 4, 1, rngs=rngs())(jnp.ones((2, 3), jnp.complex64)),
    )
    T(e, "x", "boolean x", lambda: models.MLP(3, 4, 1, rngs=rngs())(jnp.ones((2, 3), bool)))

    e = "models.ResNet call"
    V(
        e,
        "x",
        "x with the wrong features",
        lambda: models.ResNet(3, 4, 1, rngs=rngs())(jnp.ones((2, 4))),
    )
    V(
        e,
        "x",
        "NaN in x",
        lambda: models.ResNet(3, 4, 1, rngs=rngs())(jnp.ones((2, 3)).at[0, 0].set(nan)),
    )
    T(e, "x", "x None", lambda: models.ResNet(3, 4, 1, rngs=rngs())(None))
    T(
        e,
        "x",
        "complex x",
        lambda: models.ResNet(3, 4, 1, rngs=rngs())(jnp.ones((2, 3), jnp.complex64)),
    )
    V(e, "x", "a scalar x", lambda: models.ResNet(3, 4, 1, rngs=rngs())(jnp.ones(())))

    e = "models.ResNet"
    V(e, "width", "width 0", lambda: models.ResNet(3, 0, 2, rngs=rngs()))
    T(e, "width", "bool width", lambda: models.ResNet(3, False, 2, rngs=rngs()))
    V(e, "depth", "negative depth", lambda: models.ResNet(3, 4, -2, rngs=rngs()))
    V(e, "alpha", "NaN alpha", lambda: models.ResNet(3, 4, 2, alpha=nan, rngs=rngs()))
    T(e, "alpha", "string alpha", lambda: models.ResNet(3, 4, 2, alpha="0.5", rngs=rngs()))
    V(
        e,
        "activation",
        "unknown activation",
        lambda: models.ResNet(3, 4, 2, activation="swish", rngs=rngs()),
    )
    V(e, "W_std", "infinite W_std", lambda: models.ResNet(3, 4, 2, W_std=inf, rngs=rngs()))

    e = "models.CNN"
    V(e, "channels", "channels 0", lambda: models.CNN(1, 0, rngs=rngs()))
    T(e, "channels", "float channels", lambda: models.CNN(1, 4.5, rngs=rngs()))
    V(e, "in_channels", "in_channels 0", lambda: models.CNN(0, 4, rngs=rngs()))
    V(e, "pool", "unknown pool", lambda: models.CNN(1, 4, pool="max", rngs=rngs()))
    V(
        e,
        "filter_shape",
        "a zero filter size",
        lambda: models.CNN(1, 4, filter_shape=(0, 3), rngs=rngs()),
    )
    T(
        e,
        "filter_shape",
        "filter_shape a string",
        lambda: models.CNN(1, 4, filter_shape="3x3", rngs=rngs()),
    )
    V(
        e,
        "spatial",
        "spatial missing with pool='flatten'",
        lambda: models.CNN(1, 4, pool="flatten", rngs=rngs()),
    )
    V(
        e,
        "spatial",
        "a zero spatial size",
        lambda: models.CNN(1, 4, pool="flatten", spatial=(0, 8), rngs=rngs()),
    )
    V(
        e,
        "parameterization",
        "unknown parameterization",
        lambda: models.CNN(1, 4, parameterization="x", rngs=rngs()),
    )
    V(e, "x", "x of rank 2", lambda: models.CNN(1, 2, depth=0, rngs=rngs())(jnp.ones((2, 8))))
    V(
        e,
        "x",
        "x with the wrong channels",
        lambda: models.CNN(1, 4, rngs=rngs())(jnp.ones((2, 8, 8, 3))),
    )
    V(
        e,
        "x",
        "NaN in x",
        lambda: models.CNN(3, 4, rngs=rngs())(jnp.ones((1, 6, 6, 3)).at[0, 1, 1, 0].set(nan)),
    )
    T(
        e,
        "x",
        "complex x",
        lambda: models.CNN(3, 4, rngs=rngs())(jnp.ones((1, 6, 6, 3), jnp.complex64)),
    )

    e = "models.ConvResNet"
    V(e, "channels", "channels 0", lambda: models.ConvResNet(1, 0, rngs=rngs()))
    T(e, "in_channels", "bool in_channels", lambda: models.ConvResNet(True, 4, rngs=rngs()))
    V(e, "depth", "negative depth", lambda: models.ConvResNet(1, 4, depth=-1, rngs=rngs()))
    V(e, "alpha", "infinite alpha", lambda: models.ConvResNet(1, 4, alpha=inf, rngs=rngs()))
    V(
        e,
        "filter_shape",
        "a negative filter size",
        lambda: models.ConvResNet(1, 4, filter_shape=(3, -1), rngs=rngs()),
    )
    V(e, "b_std", "negative b_std", lambda: models.ConvResNet(1, 4, b_std=-0.1, rngs=rngs()))

    e = "models.ConvResNet call"
    V(e, "x", "x of rank 3", lambda: models.ConvResNet(3, 4, rngs=rngs())(jnp.ones((1, 6, 3))))
    V(
        e,
        "x",
        "x with the wrong channels",
        lambda: models.ConvResNet(3, 4, rngs=rngs())(jnp.ones((1, 6, 6, 2))),
    )
    V(e, "x", "inf in x", lambda: models.ConvResNet(3, 4, rngs=rngs())(jnp.full((1, 6, 6, 3), inf)))
    T(e, "x", "x None", lambda: models.ConvResNet(3, 4, rngs=rngs())(None))
    T(
        e,
        "x",
        "complex x",
        lambda: models.ConvResNet(3, 4, rngs=rngs())(jnp.ones((1, 6, 6, 3), jnp.complex64)),
    )


# --- wideth.regions -----------------------------------------------------------------


def relu_layers():
    w1 = np.array([[1.0, -1.0, 0.5], [0.5, 1.0, -1.0]])
    w2 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    return [(w1, np.array([0.1, -0.2, 0.3])), (w2, np.array([0.0, 0.1]))]


def tanh_mlp():
    from wideth import models

    return models.MLP(2, 3, 1, activation="tanh", rngs=rngs())


def _regions() -> None:
    from wideth import regions

    lr = regions.line_regions
    o, u = lambda: np.zeros(2), lambda: np.array([1.0, 0.0])
    e = "regions.line_regions"
    V(e, "model", "a tanh MLP", lambda: lr(tanh_mlp(), o(), u()))
    V(e, "model", "no layers", lambda: lr([], o(), u()))
    T(e, "model", "a layer not a pair", lambda: lr([np.eye(2)], o(), u()))
    V(
        e,
        "model",
        "layers that do not chain",
        lambda: lr([relu_layers()[0], relu_layers()[0]], o(), u()),
    )
    T(e, "model", "model a string", lambda: lr("mlp", o(), u()))
    V(e, "direction", "a zero direction", lambda: lr(relu_layers(), o(), np.zeros(2)))
    V(e, "direction", "NaN direction", lambda: lr(relu_layers(), o(), np.array([nan, 1.0])))
    V(e, "x0", "x0 of the wrong dimension", lambda: lr(relu_layers(), np.zeros(3), u()))
    V(e, "t_range", "reversed t_range", lambda: lr(relu_layers(), o(), u(), t_range=(1.0, -1.0)))
    V(e, "t_range", "NaN in t_range", lambda: lr(relu_layers(), o(), u(), t_range=(nan, 1.0)))
    V(e, "t_range", "t_range of one number", lambda: lr(relu_layers(), o(), u(), t_range=(1.0,)))
    T(e, "t_range", "t_range a number", lambda: lr(relu_layers(), o(), u(), t_range=1.0))

    e = "regions.line_breakpoints"
    lb = regions.line_breakpoints
    V(e, "direction", "a zero direction", lambda: lb(relu_layers(), o(), np.zeros(2)))
    V(e, "t_range", "empty t_range", lambda: lb(relu_layers(), o(), u(), t_range=(0.0, 0.0)))
    V(e, "x0", "inf in x0", lambda: lb(relu_layers(), np.array([inf, 0.0]), u()))
    V(e, "model", "a tanh MLP", lambda: lb(tanh_mlp(), o(), u()))
    T(e, "x0", "x0 a string", lambda: lb(relu_layers(), "origin", u()))

    sl = regions.slice_regions
    v = lambda: np.array([0.0, 1.0])
    e = "regions.slice_regions"
    V(e, "u", "a zero u", lambda: sl(relu_layers(), o(), np.zeros(2), v()))
    V(e, "v", "v parallel to u (a degenerate slice)", lambda: sl(relu_layers(), o(), u(), 2 * u()))
    V(e, "v", "v of the wrong dimension", lambda: sl(relu_layers(), o(), u(), np.ones(3)))
    V(
        e,
        "box",
        "box with s_lo > s_hi",
        lambda: sl(relu_layers(), o(), u(), v(), box=(1.0, -1.0, -1.0, 1.0)),
    )
    V(
        e,
        "box",
        "box of three numbers",
        lambda: sl(relu_layers(), o(), u(), v(), box=(0.0, 1.0, 0.0)),
    )
    V(e, "box", "NaN in box", lambda: sl(relu_layers(), o(), u(), v(), box=(0.0, 1.0, nan, 1.0)))
    T(e, "box", "box a number", lambda: sl(relu_layers(), o(), u(), v(), box=1.0))
    V(e, "min_area", "negative min_area", lambda: sl(relu_layers(), o(), u(), v(), min_area=-1.0))
    V(
        e,
        "min_area",
        "min_area 1 (drops every region)",
        lambda: sl(relu_layers(), o(), u(), v(), min_area=1.0),
    )
    V(e, "model", "a tanh MLP", lambda: sl(tanh_mlp(), o(), u(), v()))


# --- wideth.activations -------------------------------------------------------------


def _activations() -> None:
    from wideth import activations as act

    e = "activations.get"
    V(e, "activation", "unknown name", lambda: act.get("swish"))
    V(e, "activation", "upper-case name", lambda: act.get("RELU"))
    V(e, "activation", "empty name", lambda: act.get(""))
    V(e, "activation", "a function instead of a name", lambda: act.get(jnp.tanh))
    V(e, "activation", "None", lambda: act.get(None))
    e = "activations.canonical"
    V(e, "activation", "a name outside allowed", lambda: act.canonical("sigmoid", ("relu", "tanh")))
    V(e, "phi", "unknown name, with its argument's name", lambda: act.canonical("swish", arg="phi"))
    V(e, "activation", "an integer", lambda: act.canonical(3))
    T(e, "allowed", "allowed a string", lambda: act.canonical("relu", "relu"))
    T(e, "arg", "arg not a string", lambda: act.canonical("swish", arg=3))


# --- wideth.train.noise -------------------------------------------------------------


def lsq():
    x = np.asarray(jax.random.normal(jax.random.key(6), (12, 2)), np.float64)
    return x, x @ np.array([1.0, -0.5]) + 0.1 * np.arange(12) / 12


def _noise() -> None:
    from wideth.train import noise

    nf = noise.noise_factor
    e = "train.noise.noise_factor"
    V(e, "num_examples", "num_examples 0", lambda: nf(0, 1))
    V(e, "batch_size", "batch_size 0", lambda: nf(10, 0))
    V(e, "batch_size", "batch_size above num_examples", lambda: nf(10, 20))
    T(e, "num_examples", "float num_examples", lambda: nf(10.5, 2))
    T(e, "replace", "replace 1", lambda: nf(10, 2, replace=1))
    T(e, "batch_size", "bool batch_size", lambda: nf(10, True))

    mn = noise.minibatch_noise
    e = "train.noise.minibatch_noise"
    T(e, "objective", "objective not callable", lambda: mn(3, params(), xy(), 4))
    V(e, "params", "params without leaves", lambda: mn(loss_batch, {}, xy(), 4))
    T(e, "data", "data not a pair", lambda: mn(loss_batch, params(), xy()[0], 4))
    V(
        e,
        "data",
        "x and y with different rows",
        lambda: mn(loss_batch, params(), (xy()[0], xy()[1][:5]), 4),
    )
    V(e, "batch_size", "batch_size 0", lambda: mn(loss_batch, params(), xy(), 0))
    V(e, "batch_size", "batch_size above N", lambda: mn(loss_batch, params(), xy(), 9))
    V(e, "chunk", "chunk 0", lambda: mn(loss_batch, params(), xy(), 4, chunk=0))
    V(
        e,
        "center",
        "center with another structure",
        lambda: mn(loss_batch, params(), xy(), 4, center={"w1": jnp.zeros((3, 4))}),
    )
    V(
        e,
        "data",
        "NaN in x",
        lambda: mn(loss_batch, params(), (xy()[0].at[0, 0].set(nan), xy()[1]), 4),
    )
    V(
        e,
        "objective",
        "an objective with a vector output",
        lambda: mn(lambda p, b: apply(p, b[0]).ravel(), params(), xy(), 4),
    )

    ls = noise.least_squares_stationary
    e = "train.noise.least_squares_stationary"
    V(e, "x", "1-d x", lambda: ls(np.ones(5), np.ones(5), 0.1, 2))
    V(e, "y", "y with the wrong rows", lambda: ls(lsq()[0], lsq()[1][:5], 0.1, 2))
    V(e, "learning_rate", "learning_rate 0", lambda: ls(*lsq(), 0.0, 2))
    V(e, "learning_rate", "NaN learning_rate", lambda: ls(*lsq(), nan, 2))
    V(e, "learning_rate", "a step with no stationary law", lambda: ls(*lsq(), 50.0, 2))
    V(e, "batch_size", "batch_size above N", lambda: ls(*lsq(), 0.1, 20))
    V(e, "x", "a singular X^T X", lambda: ls(np.ones((6, 2)), np.ones(6), 0.1, 2))
    V(e, "x", "NaN in x", lambda: ls(np.full((6, 2), nan), np.ones(6), 0.1, 2))
    T(e, "replace", "replace a string", lambda: ls(*lsq(), 0.1, 2, replace="yes"))

    ta = noise.time_average
    e = "train.noise.time_average"
    V(e, "series", "a 2-d series", lambda: ta(np.ones((10, 2))))
    V(e, "num_batches", "num_batches 1", lambda: ta(np.ones(40), 1))
    V(e, "series", "a series shorter than num_batches", lambda: ta(np.ones(5), 20))
    V(e, "series", "NaN in the series", lambda: ta(np.full(40, nan), 4))
    T(e, "num_batches", "float num_batches", lambda: ta(np.ones(40), 4.0))
    T(e, "series", "series a string", lambda: ta("abc", 4))


# --- entry points added after the first table: taylor, predict, optim.contrib, -------
# --- attention models, probes, hessian structure, conditioning, CLI subcommands ------


def mc_init(k):
    return {
        "w1": jax.random.normal(k, (3, 4)) / 2,
        "w2": jax.random.normal(jax.random.fold_in(k, 1), (4, 2)) / 2,
    }


def mc_kernel_fn():
    from wideth.kernels import taylor

    return taylor.monte_carlo_kernel_fn(mc_init, apply, jax.random.key(0), 2)


def half_mse(f, y):
    return 0.5 * jnp.sum((f - y) ** 2)


def _taylor() -> None:
    from wideth.kernels import taylor

    e = "taylor.linearize"
    T(e, "apply_fn", "apply_fn a number", lambda: taylor.linearize(3, params()))
    T(e, "apply_fn", "apply_fn None", lambda: taylor.linearize(None, params()))
    T(e, "params", "params missing for a function", lambda: taylor.linearize(apply))
    T(e, "params", "params given with a module", lambda: taylor.linearize(nnx_linear(), params()))
    V(e, "params", "NaN in params", lambda: taylor.linearize(apply, nan_like(params())))
    V(
        e,
        "params",
        "f_lin called with a missing leaf",
        lambda: taylor.linearize(apply, params())({"w1": params()["w1"]}, xy()[0]),
    )
    V(
        e,
        "params",
        "f_lin called with a leaf of the wrong shape",
        lambda: taylor.linearize(apply, params())(
            {"w1": jnp.ones((3, 5)), "w2": params()["w2"]}, xy()[0]
        ),
    )
    T(
        e,
        "params",
        "f_lin called with an integer leaf",
        lambda: taylor.linearize(apply, params())(
            {"w1": jnp.ones((3, 4), jnp.int32), "w2": params()["w2"]}, xy()[0]
        ),
    )
    T(
        e,
        "apply_fn",
        "f_lin called with the wrong feature dimension",
        lambda: taylor.linearize(apply, params())(params(), jnp.ones((8, 5))),
    )
    V(
        e,
        "x",
        "f_lin called with NaN inputs",
        lambda: taylor.linearize(apply, params())(params(), xy()[0].at[0, 0].set(nan)),
    )

    e = "taylor.taylor_expand"
    V(e, "degree", "negative degree", lambda: taylor.taylor_expand(apply, params(), degree=-1))
    T(e, "degree", "float degree", lambda: taylor.taylor_expand(apply, params(), degree=1.5))
    T(e, "degree", "string degree", lambda: taylor.taylor_expand(apply, params(), degree="2"))
    T(e, "degree", "bool degree", lambda: taylor.taylor_expand(apply, params(), degree=True))
    T(e, "apply_fn", "apply_fn a string", lambda: taylor.taylor_expand("mlp", params()))
    T(e, "params", "params missing for a function", lambda: taylor.taylor_expand(apply))
    V(
        e,
        "params",
        "f_taylor called with a missing leaf",
        lambda: taylor.taylor_expand(apply, params(), 2)({"w2": params()["w2"]}, xy()[0]),
    )
    T(
        e,
        "apply_fn",
        "f_taylor called with the wrong feature dimension",
        lambda: taylor.taylor_expand(apply, params(), 2)(params(), jnp.ones((8, 2))),
    )

    mc = taylor.monte_carlo_kernel_fn
    k0 = lambda: jax.random.key(0)
    e = "taylor.monte_carlo_kernel_fn"
    T(e, "init_fn", "init_fn not callable", lambda: mc(3, apply, k0(), 2))
    T(e, "apply_fn", "apply_fn not callable", lambda: mc(mc_init, "mlp", k0(), 2))
    T(e, "apply_fn", "apply_fn None for a params init_fn", lambda: mc(mc_init, None, k0(), 2))
    T(e, "key", "integer key", lambda: mc(mc_init, apply, 0, 2))
    V(e, "n_samples", "n_samples 0", lambda: mc(mc_init, apply, k0(), 0))
    V(e, "n_samples", "negative n_samples", lambda: mc(mc_init, apply, k0(), -3))
    T(e, "n_samples", "float n_samples", lambda: mc(mc_init, apply, k0(), 2.5))
    V(e, "method", "unknown method", lambda: mc(mc_init, apply, k0(), 2, method="exact"))
    e = "taylor.monte_carlo_kernel_fn kernel_fn"
    V(e, "get", "unknown get", lambda: mc_kernel_fn()(xy()[0], get="cov"))
    V(e, "get", "empty get", lambda: mc_kernel_fn()(xy()[0], get=()))
    T(
        e,
        "return_samples",
        "return_samples a string",
        lambda: mc_kernel_fn()(xy()[0], return_samples="yes"),
    )
    V(e, "x1", "1-d x1", lambda: mc_kernel_fn()(jnp.ones(3)))
    V(e, "x1", "NaN in x1", lambda: mc_kernel_fn()(xy()[0].at[0, 0].set(nan)))
    T(e, "x1", "x1 a string", lambda: mc_kernel_fn()("x"))
    V(e, "x2", "x2 with other features", lambda: mc_kernel_fn()(xy()[0], jnp.ones((2, 5))))
    V(e, "x2", "inf in x2", lambda: mc_kernel_fn()(xy()[0], jnp.full((2, 3), inf)))
    T(e, "apply_fn", "x1 of the wrong feature dimension", lambda: mc_kernel_fn()(jnp.ones((4, 5))))
    V(e, "x1", "x1 without rows", lambda: mc_kernel_fn()(jnp.ones((0, 3))))


def _predict_more() -> None:
    from wideth.kernels import predict

    gd = predict.gradient_descent
    e = "predict.gradient_descent"
    T(e, "loss", "loss not callable", lambda: gd("mse", spd(), targets()))
    V(e, "loss", "a vector loss", lambda: gd(lambda f, y: (f - y) ** 2, spd(), targets()))
    T(e, "loss", "a one-argument loss", lambda: gd(lambda f: jnp.sum(f), spd(), targets()))
    V(
        e,
        "k_train_train",
        "a non-symmetric kernel",
        lambda: gd(half_mse, not_symmetric(), targets()),
    )
    V(
        e,
        "k_train_train",
        "NaN in the kernel",
        lambda: gd(half_mse, spd().at[0, 0].set(nan), targets()),
    )
    V(e, "k_train_train", "a non-square kernel", lambda: gd(half_mse, jnp.ones((4, 3)), targets()))
    V(
        e,
        "k_train_train",
        "an indefinite kernel (the flow ascends)",
        lambda: gd(half_mse, jnp.diag(jnp.array([1.0, 1.0, 1.0, -0.5])), targets()),
    )
    V(e, "y_train", "y_train with the wrong rows", lambda: gd(half_mse, spd(), jnp.ones(3)))
    V(e, "y_train", "inf in y_train", lambda: gd(half_mse, spd(), targets().at[1].set(inf)))
    V(e, "learning_rate", "negative learning_rate", lambda: gd(half_mse, spd(), targets(), -1.0))
    V(e, "learning_rate", "NaN learning_rate", lambda: gd(half_mse, spd(), targets(), nan))
    V(e, "momentum", "momentum 1", lambda: gd(half_mse, spd(), targets(), momentum=1.0))
    V(e, "momentum", "negative momentum", lambda: gd(half_mse, spd(), targets(), momentum=-0.5))
    V(e, "momentum", "NaN momentum", lambda: gd(half_mse, spd(), targets(), momentum=nan))
    T(e, "momentum", "string momentum", lambda: gd(half_mse, spd(), targets(), momentum="0.9"))
    V(
        e,
        "momentum",
        "vector momentum",
        lambda: gd(half_mse, spd(), targets(), momentum=np.ones(2) / 2),
    )
    V(e, "rtol", "rtol 0", lambda: gd(half_mse, spd(), targets(), rtol=0.0))
    V(e, "atol", "negative atol", lambda: gd(half_mse, spd(), targets(), atol=-1e-6))

    pf = lambda **kw: gd(half_mse, spd(), targets(), **kw)
    e = "predict.gradient_descent predict_fn"
    V(e, "t", "t None (no limit for a general loss)", lambda: pf()(None))
    V(e, "t", "negative time", lambda: pf()(-1.0))
    V(e, "t", "NaN time", lambda: pf()(nan))
    V(e, "t", "decreasing times", lambda: pf()(jnp.array([2.0, 1.0])))
    V(e, "t", "a negative time in an array", lambda: pf()(jnp.array([0.5, -1.0])))
    V(e, "t", "a 2-d array of times", lambda: pf()(jnp.ones((2, 2))))
    T(e, "t", "string time", lambda: pf()("1"))
    V(e, "t", "negative time with momentum", lambda: pf(momentum=0.5)(-2.0))
    V(e, "k_test_train", "k_test_train with the wrong columns", lambda: pf()(1.0, jnp.ones((2, 3))))
    V(e, "k_test_train", "NaN in k_test_train", lambda: pf()(1.0, jnp.full((2, 4), nan)))
    V(e, "fx_train_0", "fx_train_0 with the wrong rows", lambda: pf()(1.0, fx_train_0=jnp.ones(3)))
    V(e, "fx_train_0", "NaN fx_train_0", lambda: pf()(1.0, fx_train_0=jnp.full(4, nan)))
    V(
        e,
        "fx_test_0",
        "fx_test_0 with the wrong rows",
        lambda: pf()(1.0, jnp.ones((2, 4)) / 4, fx_test_0=jnp.ones(3)),
    )

    ens = predict.ensemble
    x, y = lambda: xy()[0][:4], lambda: targets()
    e = "predict.ensemble"
    T(e, "kernel_fn", "kernel_fn not callable", lambda: ens("ntk", x(), y()))
    V(e, "x_train", "NaN in x_train", lambda: ens(kernel_fn(), x().at[0, 0].set(nan), y()))
    V(e, "x_train", "1-d x_train", lambda: ens(kernel_fn(), jnp.ones(4), y()))
    T(e, "x_train", "x_train a string", lambda: ens(kernel_fn(), "x", y()))
    V(e, "y_train", "y_train with the wrong rows", lambda: ens(kernel_fn(), x(), jnp.ones(3)))
    V(e, "y_train", "NaN in y_train", lambda: ens(kernel_fn(), x(), y().at[0].set(nan)))
    V(
        e,
        "learning_rate",
        "zero learning_rate",
        lambda: ens(kernel_fn(), x(), y(), learning_rate=0.0),
    )
    V(
        e,
        "learning_rate",
        "inf learning_rate",
        lambda: ens(kernel_fn(), x(), y(), learning_rate=inf),
    )
    V(e, "diag_reg", "negative diag_reg", lambda: ens(kernel_fn(), x(), y(), diag_reg=-1.0))
    V(
        e,
        "normalization",
        "unknown normalization",
        lambda: ens(kernel_fn(), x(), y(), normalization="max"),
    )
    V(e, "batch_size", "negative batch_size", lambda: ens(kernel_fn(), x(), y(), batch_size=-1))
    V(e, "batch_size", "float batch_size", lambda: ens(kernel_fn(), x(), y(), batch_size=2.0))
    V(e, "trace_axes", "trace_axes (0,)", lambda: ens(kernel_fn(), x(), y(), trace_axes=(0,)))
    V(
        e,
        "batch_size",
        "batch_size 2 with trace_axes=()",
        lambda: ens(kernel_fn(), x(), jnp.ones((4, 2)), batch_size=2, trace_axes=()),
    )
    V(
        e,
        "kernel_fn",
        "(n, n) kernels with trace_axes=()",
        lambda: ens(kernel_fn(), x(), jnp.ones((4, 2)), trace_axes=()),
    )

    pe = lambda: ens(kernel_fn(), x(), y())
    e = "predict.ensemble predict_fn"
    V(e, "get", "unknown get", lambda: pe()(get="cov"))
    T(e, "compute_cov", "compute_cov a string", lambda: pe()(compute_cov="yes"))
    V(e, "t", "negative time", lambda: pe()(t=-1.0))
    V(e, "t", "NaN time", lambda: pe()(t=nan))
    V(e, "t", "a negative time in an array", lambda: pe()(t=jnp.array([1.0, -1.0])))
    V(e, "x_test", "x_test with other features", lambda: pe()(x_test=jnp.ones((2, 5))))
    V(e, "x_test", "NaN in x_test", lambda: pe()(x_test=jnp.full((2, 3), nan)))
    V(e, "t", "negative time with the covariance", lambda: pe()(t=-1.0, compute_cov=True))

    e = "predict.gradient_descent_mse predict_fn (arrays of t)"
    pm = lambda **kw: predict.gradient_descent_mse(spd(), targets(), **kw)
    V(e, "t", "a negative time in an array", lambda: pm()(t=jnp.array([1.0, -1.0])))
    V(e, "t", "NaN in an array of times", lambda: pm()(t=jnp.array([1.0, nan])))
    V(e, "t", "a 2-d array of times", lambda: pm()(t=jnp.ones((2, 2))))
    V(
        e,
        "t",
        "fractional steps in an array with discrete=True",
        lambda: pm(discrete=True)(t=jnp.array([1.0, 2.5])),
    )
    T(e, "t", "complex time", lambda: pm()(t=1j))
    V(e, "t", "infinite time in an array", lambda: pm()(t=jnp.array([1.0, inf])))


def gnm_update(**kw):
    from wideth.optim import contrib

    return update_with(contrib.gauss_newton_momentum(), **kw)


def _optim_more() -> None:
    from wideth import optim
    from wideth.optim import contrib

    sg = contrib.pl_adaptive_safeguarded
    e = "optim.contrib.pl_adaptive_safeguarded"
    V(e, "relaxation", "relaxation 0", lambda: sg(relaxation=0.0))
    V(e, "relaxation", "relaxation 2.5", lambda: sg(relaxation=2.5))
    V(e, "relaxation", "NaN relaxation", lambda: sg(relaxation=nan))
    V(e, "safety", "safety 0", lambda: sg(safety=0.0))
    V(e, "safety", "safety 1.5", lambda: sg(safety=1.5))
    T(e, "safety", "string safety", lambda: sg(safety="0.9"))
    V(e, "beta", "beta 1", lambda: sg(beta=1.0))
    V(e, "beta", "negative beta", lambda: sg(beta=-0.1))
    V(e, "eps", "negative eps", lambda: sg(eps=-1.0))
    V(e, "eps", "NaN eps", lambda: sg(eps=nan))

    sc = contrib.pl_adaptive_scheduled
    e = "optim.contrib.pl_adaptive_scheduled"
    V(e, "beta_max", "beta_max 1", lambda: sc(beta_max=1.0))
    V(e, "beta_max", "negative beta_max", lambda: sc(beta_max=-0.5))
    V(e, "beta_max", "NaN beta_max", lambda: sc(beta_max=nan))
    T(e, "beta_max", "bool beta_max", lambda: sc(beta_max=True))
    V(e, "tau", "tau 0", lambda: sc(tau=0.0))
    V(e, "tau", "negative tau", lambda: sc(tau=-10.0))
    V(e, "tau", "infinite tau", lambda: sc(tau=inf))
    V(e, "eps", "negative eps", lambda: sc(eps=-1e-3))
    T(e, "eps", "string eps", lambda: sc(eps="1e-10"))

    e = "optim.contrib.gauss_newton_momentum"
    V(e, "eps", "negative eps", lambda: contrib.gauss_newton_momentum(eps=-1.0))
    V(e, "eps", "NaN eps", lambda: contrib.gauss_newton_momentum(eps=nan))
    V(e, "eps", "infinite eps", lambda: contrib.gauss_newton_momentum(eps=inf))
    T(e, "eps", "string eps", lambda: contrib.gauss_newton_momentum(eps="0"))
    V(e, "eps", "vector eps", lambda: contrib.gauss_newton_momentum(eps=np.ones(2)))
    e = "optim.contrib.gauss_newton_momentum update"
    T(e, "outputs_fn", "missing outputs_fn", lambda: gnm_update(outputs_fn=None))
    T(
        e,
        "loss_of_outputs",
        "loss_of_outputs not callable",
        lambda: gnm_update(loss_of_outputs="mse"),
    )
    V(e, "loss_of_outputs", "a vector loss", lambda: gnm_update(loss_of_outputs=lambda o: o**2))
    T(
        e,
        "params",
        "params None",
        lambda: contrib.gauss_newton_momentum().update(
            quad_problem()[3],
            contrib.gauss_newton_momentum().init(quad_problem()[2]),
            None,
            outputs_fn=quad_problem()[0],
            loss_of_outputs=quad_problem()[1],
        ),
    )
    V(
        e,
        "updates",
        "updates of another shape than params",
        lambda: contrib.gauss_newton_momentum().update(
            jnp.ones(4),
            contrib.gauss_newton_momentum().init(quad_problem()[2]),
            quad_problem()[2],
            outputs_fn=quad_problem()[0],
            loss_of_outputs=quad_problem()[1],
        ),
    )
    e = "optim.contrib.gauss_newton_momentum_info"
    V(
        e,
        "state",
        "state of another optimizer",
        lambda: contrib.gauss_newton_momentum_info(sgd().init(jnp.ones(3))),
    )
    V(e, "state", "state None", lambda: contrib.gauss_newton_momentum_info(None))
    V(e, "state", "state a dict", lambda: contrib.gauss_newton_momentum_info({"a": 1}))

    e = "optim.pl_constant_init"
    T(e, "dtype", "integer dtype", lambda: optim.pl_constant_init(jnp.int32))
    T(e, "dtype", "dtype a string", lambda: optim.pl_constant_init("big"))
    T(e, "dtype", "float16 dtype", lambda: optim.pl_constant_init(jnp.float16))

    pcu = optim.pl_constant_update
    st = lambda: optim.pl_constant_init()
    e = "optim.pl_constant_update"
    T(e, "state", "state None", lambda: pcu(None, 1.0, 2.0))
    T(e, "state", "state of another optimizer", lambda: pcu(sgd().init(jnp.ones(3)), 1.0, 2.0))
    V(e, "loss_value", "NaN loss_value", lambda: pcu(st(), nan, 2.0))
    V(e, "grad_norm_sq", "negative grad_norm_sq", lambda: pcu(st(), 1.0, -2.0))
    T(e, "loss_value", "string loss_value", lambda: pcu(st(), "1", 2.0))
    V(e, "decay", "decay 1.5", lambda: pcu(st(), 1.0, 2.0, decay=1.5))
    V(e, "decay", "negative decay", lambda: pcu(st(), 1.0, 2.0, decay=-0.1))
    V(e, "loss_star", "NaN loss_star", lambda: pcu(st(), 1.0, 2.0, loss_star=nan))


def tokens(n=2, t=3, d=4):
    return jax.random.normal(jax.random.key(6), (n, t, d))


def _models_more() -> None:
    from wideth import models

    sa = lambda *a, **k: models.SelfAttention(*a, **{"rngs": rngs(), **k})
    e = "models.SelfAttention"
    V(e, "in_dim", "in_dim 0", lambda: sa(0, 4, 2))
    V(e, "out_dim", "negative out_dim", lambda: sa(4, -1, 2))
    V(e, "n_heads", "n_heads 0", lambda: sa(4, 4, 0))
    T(e, "n_heads", "float n_heads", lambda: sa(4, 4, 2.0))
    V(e, "key_dim", "key_dim 0", lambda: sa(4, 4, 2, key_dim=0))
    V(e, "value_dim", "negative value_dim", lambda: sa(4, 4, 2, value_dim=-2))
    V(e, "mechanism", "unknown mechanism", lambda: sa(4, 4, 2, mechanism="sparsemax"))
    V(e, "W_qk_std", "negative W_qk_std", lambda: sa(4, 4, 2, W_qk_std=-1.0))
    V(e, "W_value_std", "NaN W_value_std", lambda: sa(4, 4, 2, W_value_std=nan))
    V(e, "W_std", "infinite W_std", lambda: sa(4, 4, 2, W_std=inf))
    V(e, "b_std", "negative b_std", lambda: sa(4, 4, 2, b_std=-0.1))
    V(
        e,
        "tokens",
        "pos_emb_type='concat' without tokens",
        lambda: sa(4, 4, 2, pos_emb_type="concat"),
    )
    V(
        e,
        "W_pos_emb_std",
        "NaN W_pos_emb_std",
        lambda: sa(4, 4, 2, tokens=3, pos_emb_type="sum", W_pos_emb_std=nan),
    )
    T(e, "rngs", "rngs an int", lambda: sa(4, 4, 2, rngs=0))
    tf = lambda *a, **k: models.Transformer(*a, **{"rngs": rngs(), **k})
    e = "models.Transformer"
    V(e, "in_dim", "in_dim 0", lambda: tf(0, 8, 1))
    V(e, "width", "width 0", lambda: tf(4, 0, 1))
    V(e, "depth", "negative depth", lambda: tf(4, 8, -1))
    T(e, "depth", "float depth", lambda: tf(4, 8, 1.5))
    V(e, "out_dim", "out_dim 0", lambda: tf(4, 8, 1, 0))
    V(e, "n_heads", "n_heads 0", lambda: tf(4, 8, 1, 1, 0))
    V(e, "activation", "unknown activation", lambda: tf(4, 8, 1, activation="swish2"))
    V(e, "parameterization", "unknown parameterization", lambda: tf(4, 8, 1, parameterization="mf"))
    V(e, "mechanism", "unknown mechanism", lambda: tf(4, 8, 1, mechanism="linear"))
    V(e, "W_qk_std", "negative W_qk_std", lambda: tf(4, 8, 1, W_qk_std=-1.0))
    V(e, "W_std", "NaN W_std", lambda: tf(4, 8, 1, W_std=nan))
    V(e, "layernorm", "unknown layernorm", lambda: tf(4, 8, 1, layernorm="pre"))
    V(e, "pool", "unknown pool", lambda: tf(4, 8, 1, pool="max"))
    V(e, "tokens", "pool='flatten' without tokens", lambda: tf(4, 8, 1, pool="flatten"))
    V(e, "tokens", "tokens 0", lambda: tf(4, 8, 1, pool="flatten", tokens=0))
    V(e, "tokens", "pos_emb_type='sum' without tokens", lambda: tf(4, 8, 1, pos_emb_type="sum"))
    V(e, "pos_emb_type", "unknown pos_emb_type", lambda: tf(4, 8, 1, pos_emb_type="ABSOLUTE"))
    V(
        e,
        "n_chan_pos_emb",
        "n_chan_pos_emb other than the width with pos_emb_type='sum'",
        lambda: tf(4, 8, 1, tokens=3, pos_emb_type="sum", n_chan_pos_emb=4),
    )
    T(
        e,
        "val_pos_emb",
        "val_pos_emb an int",
        lambda: tf(4, 8, 1, tokens=3, pos_emb_type="concat", val_pos_emb=1),
    )
    T(e, "rngs", "rngs a key", lambda: tf(4, 8, 1, rngs=jax.random.key(0)))
    e = "models.Transformer call"
    V(e, "x", "2-d inputs", lambda: tf(4, 8, 1)(jnp.ones((2, 4))))
    V(e, "x", "4-d inputs", lambda: tf(4, 8, 1)(jnp.ones((2, 3, 4, 1))))
    V(e, "x", "inputs of the wrong feature dimension", lambda: tf(4, 8, 1)(tokens(d=3)))
    V(e, "x", "NaN inputs", lambda: tf(4, 8, 1)(tokens().at[0, 0, 0].set(nan)))
    T(e, "x", "inputs a list of strings", lambda: tf(4, 8, 1)(["a", "b"]))
    T(e, "x", "complex inputs", lambda: tf(4, 8, 1)(tokens().astype(jnp.complex64)))
    V(
        e,
        "x",
        "sequence length other than tokens with pool='flatten'",
        lambda: tf(4, 8, 1, pool="flatten", tokens=3)(tokens(t=5)),
    )

    V(e, "mask", "mask of another shape", lambda: tf(4, 8, 1)(tokens(), jnp.zeros((2, 4), bool)))
    V(
        e,
        "x",
        "sequence length other than tokens with positional embeddings",
        lambda: tf(4, 8, 1, tokens=4, pos_emb_type="sum")(tokens()),
    )
    T(e, "mask", "float mask", lambda: tf(4, 8, 1)(tokens(), jnp.zeros((2, 3))))
    V(
        e,
        "mask",
        "a fully masked sequence with pool='global'",
        lambda: tf(4, 8, 1)(tokens(), jnp.zeros((2, 3), bool).at[1].set(True)),
    )

    e = "models.SelfAttention call"
    V(e, "x", "2-d tokens", lambda: sa(4, 4, 2)(jnp.ones((3, 4))))
    V(e, "x", "tokens of the wrong feature dimension", lambda: sa(4, 4, 2)(tokens(d=5)))
    V(e, "x", "NaN tokens", lambda: sa(4, 4, 2)(tokens().at[0, 0, 0].set(nan)))
    T(e, "x", "tokens a string", lambda: sa(4, 4, 2)("x"))
    T(e, "x", "integer tokens", lambda: sa(4, 4, 2)(jnp.ones((2, 3, 4), jnp.int32)))
    V(e, "mask", "mask of another shape", lambda: sa(4, 4, 2)(tokens(), jnp.zeros((3, 3), bool)))

    e = "models.DenseLayer"
    dl = lambda *a, **k: models.DenseLayer(*a, **{"rngs": rngs(), **k})
    V(e, "in_dim", "in_dim 0", lambda: dl(0, 3))
    V(e, "out_dim", "negative out_dim", lambda: dl(3, -1))
    T(e, "in_dim", "float in_dim", lambda: dl(3.0, 2))
    V(e, "W_std", "negative W_std", lambda: dl(3, 2, W_std=-1.0))
    V(e, "parameterization", "unknown parameterization", lambda: dl(3, 2, parameterization="mf"))
    V(e, "role", "unknown role", lambda: dl(3, 2, role="output"))
    e = "models.DenseLayer call"
    V(e, "x", "x with the wrong features", lambda: dl(3, 2)(jnp.ones((4, 5))))
    V(e, "x", "a scalar x", lambda: dl(3, 2)(jnp.ones(())))
    V(e, "x", "NaN in x", lambda: dl(3, 2)(jnp.ones((4, 3)).at[2, 0].set(nan)))
    T(e, "x", "x None", lambda: dl(3, 2)(None))
    T(e, "x", "complex x", lambda: dl(3, 2)(jnp.ones((4, 3), jnp.complex64)))

    e = "models.ConvLayer"
    cl = lambda *a, **k: models.ConvLayer(*a, **{"rngs": rngs(), **k})
    V(e, "in_channels", "in_channels 0", lambda: cl(0, 3))
    V(e, "out_channels", "negative out_channels", lambda: cl(3, -1))
    V(e, "W_std", "NaN W_std", lambda: cl(3, 2, W_std=nan))
    V(e, "parameterization", "unknown parameterization", lambda: cl(3, 2, parameterization="x"))
    V(e, "padding", "unknown padding", lambda: cl(3, 2, padding="REFLECT"))
    e = "models.ConvLayer call"
    V(e, "x", "x of rank 2", lambda: cl(3, 2)(jnp.ones((4, 3))))
    V(e, "x", "x with the wrong channels", lambda: cl(3, 2)(jnp.ones((1, 5, 5, 4))))
    V(e, "x", "inf in x", lambda: cl(3, 2)(jnp.full((1, 5, 5, 3), inf)))
    T(e, "x", "x a string", lambda: cl(3, 2)("image"))
    T(e, "x", "complex x", lambda: cl(3, 2)(jnp.ones((1, 5, 5, 3), jnp.complex64)))

    e = "models.activation_fn"
    V(e, "name", "unknown name", lambda: models.activation_fn("swish2"))
    V(e, "name", "name None", lambda: models.activation_fn(None))
    V(e, "name", "name a number", lambda: models.activation_fn(3))
    V(
        e,
        "name",
        "unknown parameter of a pair",
        lambda: models.activation_fn(("leaky_relu", {"beta": 1})),
    )
    V(e, "name", "a pair with NaN", lambda: models.activation_fn(("leaky_relu", {"alpha": nan})))

    e = "models.mup_labels"
    T(e, "module", "module a dict", lambda: models.mup_labels(params()))
    T(e, "module", "module None", lambda: models.mup_labels(None))
    V(e, "module", "a module without wideth layers", lambda: models.mup_labels(nnx_linear()))
    T(e, "module", "module a class, not an instance", lambda: models.mup_labels(models.MLP))
    T(e, "module", "module a string", lambda: models.mup_labels("mlp"))

    mlp = lambda: models.MLP(3, 8, 1, parameterization="mup", rngs=rngs())
    e = "models.mup_multipliers"
    V(e, "optimizer", "unknown optimizer", lambda: models.mup_multipliers(mlp(), "lion"))
    V(e, "optimizer", "optimizer None", lambda: models.mup_multipliers(mlp(), None))
    V(e, "base_width", "zero base_width", lambda: models.mup_multipliers(mlp(), base_width=0))
    V(e, "base_width", "NaN base_width", lambda: models.mup_multipliers(mlp(), base_width=nan))
    V(e, "base_width", "infinite base_width", lambda: models.mup_multipliers(mlp(), base_width=inf))
    T(e, "base_width", "string base_width", lambda: models.mup_multipliers(mlp(), base_width="64"))
    V(e, "module", "a module without a width", lambda: models.mup_multipliers(nnx_linear()))
    T(e, "module", "module a dict", lambda: models.mup_multipliers({"width": 3}))

    e = "models.scale_by_multipliers"
    V(e, "multipliers", "multipliers None", lambda: models.scale_by_multipliers(None))
    T(e, "multipliers", "multipliers a string", lambda: models.scale_by_multipliers("mup"))
    V(e, "multipliers", "NaN multiplier", lambda: models.scale_by_multipliers({"w": nan}))
    V(e, "multipliers", "negative multiplier", lambda: models.scale_by_multipliers({"w": -1.0}))
    V(e, "multipliers", "infinite multiplier", lambda: models.scale_by_multipliers([1.0, inf]))
    V(
        e,
        "multipliers",
        "update with another tree than the multipliers",
        lambda: models.scale_by_multipliers({"w1": 1.0}).update(params(), optax_empty()),
    )

    e = "models.functional"
    T(e, "module", "module a class, not an instance", lambda: models.functional(models.MLP))
    T(e, "module", "module a dict", lambda: models.functional(params()))
    T(e, "module", "module None", lambda: models.functional(None))
    V(e, "method", "a method the module lacks", lambda: models.functional(nnx_linear(), "features"))
    V(e, "method", "method not a string", lambda: models.functional(nnx_linear(), 3))


def optax_empty():
    import optax

    return optax.EmptyState()


def _train_more() -> None:
    from wideth import train
    from wideth.train import probes

    e = "train.global_norm"
    T(e, "tree", "a string leaf", lambda: train.global_norm({"a": "x"}))
    T(e, "tree", "an object leaf", lambda: train.global_norm([jnp.ones(2), object()]))

    e = "train.probes.distance_from_init"
    V(e, "params0", "NaN params0", lambda: probes.distance_from_init(nan_like(params())))
    V(e, "params0", "params0 None", lambda: probes.distance_from_init(None))
    T(
        e,
        "relative",
        "relative a string",
        lambda: probes.distance_from_init(params(), relative="yes"),
    )
    T(
        e,
        "params0",
        "integer params0",
        lambda: probes.distance_from_init({"w": jnp.ones(3, jnp.int32)}),
    )
    T(e, "params0", "a string leaf", lambda: probes.distance_from_init({"w": "x"}))

    e = "train.probes.grad_norm"
    T(e, "model", "model a number", lambda: probes.grad_norm(3))
    T(e, "model", "model a string", lambda: probes.grad_norm("mse"))
    V(
        e,
        "data",
        "data with mismatched rows",
        lambda: probes.grad_norm(step(), data=(xy()[0], xy()[1][:5])),
    )
    T(e, "data", "data a string", lambda: probes.grad_norm(step(), data="train"))
    V(
        e,
        "data",
        "inf data",
        lambda: probes.grad_norm(step(), data=(xy()[0], xy()[1].at[0, 0].set(inf))),
    )

    e = "train.probes.loss"
    T(e, "model", "model None", lambda: probes.loss(None))
    V(e, "data", "NaN data", lambda: probes.loss(step(), data=(xy()[0].at[0, 0].set(nan), xy()[1])))
    V(
        e,
        "data",
        "data with mismatched rows",
        lambda: probes.loss(step(), data=(xy()[0][:3], xy()[1])),
    )
    V(e, "data", "data a number", lambda: probes.loss(step(), data=3))
    V(
        e,
        "data",
        "data without rows",
        lambda: probes.loss(step(), data=(jnp.ones((0, 3)), jnp.ones((0, 2)))),
    )

    e = "train.probes.pl_ratio"
    T(e, "model", "model a number", lambda: probes.pl_ratio(3))
    V(e, "loss_star", "NaN loss_star", lambda: probes.pl_ratio(step(), loss_star=nan))
    V(e, "loss_star", "infinite loss_star", lambda: probes.pl_ratio(step(), loss_star=-inf))
    T(e, "loss_star", "string loss_star", lambda: probes.pl_ratio(step(), loss_star="0"))
    V(
        e,
        "data",
        "NaN data",
        lambda: probes.pl_ratio(step(), data=(xy()[0], xy()[1].at[0, 0].set(nan))),
    )

    e = "train.probes.sharpness"
    V(e, "num_steps", "negative num_steps", lambda: probes.sharpness(step(), num_steps=-2))
    T(e, "num_steps", "float num_steps", lambda: probes.sharpness(step(), num_steps=2.5))
    T(e, "model", "model None", lambda: probes.sharpness(None))
    V(
        e,
        "data",
        "data with mismatched rows",
        lambda: probes.sharpness(step(), data=(xy()[0][:3], xy()[1])),
    )
    V(
        e,
        "data",
        "inf data",
        lambda: probes.sharpness(step(), data=(xy()[0].at[1, 1].set(inf), xy()[1])),
    )

    e = "train.probes.top_subspace"
    V(e, "k", "k 0", lambda: probes.top_subspace(step(), k=0))
    T(e, "k", "float k", lambda: probes.top_subspace(step(), k=1.5))
    V(e, "num_steps", "num_steps 0", lambda: probes.top_subspace(step(), k=2, num_steps=0))
    V(e, "num_steps", "num_steps below k", lambda: probes.top_subspace(step(), k=5, num_steps=3))
    T(e, "model", "model a string", lambda: probes.top_subspace("mse", k=2))

    e = "train.probes.gradient_noise"
    T(e, "model", "model a number", lambda: probes.gradient_noise(3, xy(), 2))
    V(e, "batch_size", "batch_size 0", lambda: probes.gradient_noise(step(), xy(), 0))
    T(e, "batch_size", "float batch_size", lambda: probes.gradient_noise(step(), xy(), 2.5))
    V(e, "batch_size", "batch_size above the rows", lambda: probes.gradient_noise(step(), xy(), 9))
    V(
        e,
        "data",
        "NaN data",
        lambda: probes.gradient_noise(step(), (xy()[0].at[0, 0].set(nan), xy()[1]), 2),
    )
    V(
        e,
        "data",
        "data with mismatched rows",
        lambda: probes.gradient_noise(step(), (xy()[0], xy()[1][:4]), 2),
    )
    V(
        e,
        "center",
        "center of another tree than params",
        lambda: probes.gradient_noise(step(), xy(), 2, center={"w1": params()["w1"]})(
            state(), None
        ),
    )
    V(
        e,
        "center",
        "NaN center",
        lambda: probes.gradient_noise(step(), xy(), 2, center=nan_like(params())),
    )

    e = "train.probes.metric"
    T(e, "apply_fn", "apply_fn a number", lambda: probes.metric(3, "mse", xy()))
    T(e, "fn", "fn a number", lambda: probes.metric(apply, 3, xy()))
    V(
        e,
        "data",
        "NaN data",
        lambda: probes.metric(apply, "mse", (xy()[0].at[0, 0].set(nan), xy()[1])),
    )
    V(
        e,
        "data",
        "data with mismatched rows",
        lambda: probes.metric(apply, "mse", (xy()[0][:2], xy()[1])),
    )
    T(e, "data", "data a string", lambda: probes.metric(apply, "mse", "train"))

    e = "train.probes.outputs"
    T(e, "apply_fn", "apply_fn None", lambda: probes.outputs(None, xy()[0]))
    T(e, "x", "x a string", lambda: probes.outputs(apply, "x"))
    V(e, "x", "x without rows", lambda: probes.outputs(apply, jnp.ones((0, 3))))
    V(e, "x", "0-d x", lambda: probes.outputs(apply, 1.0))
    T(e, "x", "x None", lambda: probes.outputs(apply, None))

    e = "train.probes.ntk_top_eigenvalue"
    V(e, "num_steps", "num_steps 0", lambda: probes.ntk_top_eigenvalue(apply, xy()[0], num_steps=0))
    T(
        e,
        "num_steps",
        "float num_steps",
        lambda: probes.ntk_top_eigenvalue(apply, xy()[0], num_steps=2.0),
    )
    V(e, "x", "x without rows", lambda: probes.ntk_top_eigenvalue(apply, jnp.ones((0, 3))))
    T(e, "x", "x a string", lambda: probes.ntk_top_eigenvalue(apply, "x"))
    V(e, "x", "inf in x", lambda: probes.ntk_top_eigenvalue(apply, xy()[0].at[0, 0].set(inf)))

    e = "train.probes.ntk_spectrum"
    T(e, "apply_fn", "apply_fn a number", lambda: probes.ntk_spectrum(3, xy()[0]))
    V(e, "method", "unknown method", lambda: probes.ntk_spectrum(apply, xy()[0], method="exact"))
    V(e, "num_steps", "num_steps 0", lambda: probes.ntk_spectrum(apply, xy()[0], num_steps=0))
    V(e, "x", "NaN in x", lambda: probes.ntk_spectrum(apply, xy()[0].at[0, 0].set(nan)))
    V(e, "x", "x without rows", lambda: probes.ntk_spectrum(apply, jnp.ones((0, 3))))
    T(e, "x", "x a string", lambda: probes.ntk_spectrum(apply, "x"))

    e = "train.probes.output_hessian_norm"
    T(e, "step", "step a function", lambda: probes.output_hessian_norm(apply))
    T(e, "step", "step None", lambda: probes.output_hessian_norm(None))
    V(e, "num_steps", "num_steps 0", lambda: probes.output_hessian_norm(step(), num_steps=0))
    T(
        e,
        "num_steps",
        "string num_steps",
        lambda: probes.output_hessian_norm(step(), num_steps="20"),
    )
    V(
        e,
        "data",
        "NaN data",
        lambda: probes.output_hessian_norm(step(), data=(xy()[0].at[0, 0].set(nan), xy()[1])),
    )

    e = "train.probes.neural_collapse"
    cls = lambda: (xy()[0], jnp.arange(8) % 2)
    nc = probes.neural_collapse
    T(e, "apply_fn", "apply_fn a number", lambda: nc(3, features, cls(), 2))
    T(e, "features_fn", "features_fn not callable", lambda: nc(apply, "h", cls(), 2))
    V(e, "num_classes", "num_classes 1", lambda: nc(apply, features, cls(), 1))
    T(e, "num_classes", "float num_classes", lambda: nc(apply, features, cls(), 2.0))
    V(
        e,
        "data",
        "labels outside [0, num_classes)",
        lambda: nc(apply, features, (xy()[0], jnp.arange(8)), 2),
    )
    T(e, "data", "float labels", lambda: nc(apply, features, (xy()[0], jnp.ones(8)), 2))
    V(
        e,
        "data",
        "NaN inputs",
        lambda: nc(apply, features, (xy()[0].at[0, 0].set(nan), jnp.arange(8) % 2), 2),
    )
    T(
        e,
        "weights_fn",
        "weights_fn not callable",
        lambda: nc(apply, features, cls(), 2, weights_fn=3),
    )


def _hessian_more() -> None:
    from wideth import hessian

    cls = lambda: (xy()[0], jnp.arange(8) % 2)
    for e, fn in (
        ("hessian.class_gradient_means", hessian.class_gradient_means),
        ("hessian.ggn_decomposition", hessian.ggn_decomposition),
    ):
        T(e, "apply_fn", "apply_fn a number", lambda fn=fn: fn(3, params(), *cls(), 2))
        V(e, "num_classes", "num_classes 1", lambda fn=fn: fn(apply, params(), *cls(), 1))
        T(e, "num_classes", "float num_classes", lambda fn=fn: fn(apply, params(), *cls(), 2.0))
        V(
            e,
            "x",
            "NaN in x",
            lambda fn=fn: fn(apply, params(), xy()[0].at[0, 0].set(nan), cls()[1], 2),
        )
        V(
            e,
            "x",
            "x without rows",
            lambda fn=fn: fn(apply, params(), jnp.ones((0, 3)), jnp.zeros(0, int), 2),
        )
        V(
            e,
            "labels",
            "labels with the wrong rows",
            lambda fn=fn: fn(apply, params(), xy()[0], jnp.arange(5) % 2, 2),
        )
        V(
            e,
            "labels",
            "labels outside [0, num_classes)",
            lambda fn=fn: fn(apply, params(), xy()[0], jnp.arange(8), 2),
        )
        T(e, "labels", "float labels", lambda fn=fn: fn(apply, params(), xy()[0], jnp.ones(8), 2))
        T(
            e,
            "apply_fn",
            "apply_fn with the wrong feature dimension",
            lambda fn=fn: fn(apply, params(), jnp.ones((8, 5)), cls()[1], 2),
        )
        V(e, "params", "NaN params", lambda fn=fn: fn(apply, nan_like(params()), *cls(), 2))
        T(
            e,
            "dtype",
            "integer dtype",
            lambda fn=fn: fn(apply, params(), *cls(), 2, dtype=jnp.int32),
        )

    e = "hessian.class_spectrum"
    T(e, "means", "means an array", lambda: hessian.class_spectrum(jnp.ones((2, 2, 3))))
    T(e, "means", "means None", lambda: hessian.class_spectrum(None))
    T(e, "means", "means a dict", lambda: hessian.class_spectrum({"means": jnp.ones((2, 2, 3))}))

    e = "hessian.count_above"
    V(e, "eigenvalues", "NaN eigenvalue", lambda: hessian.count_above(jnp.array([1.0, nan]), 0.5))
    V(e, "eigenvalues", "0-d eigenvalues", lambda: hessian.count_above(1.0, 0.5))
    T(e, "eigenvalues", "eigenvalues a string", lambda: hessian.count_above("ev", 0.5))
    V(e, "edge", "NaN edge", lambda: hessian.count_above(jnp.ones(3), nan))
    V(e, "edge", "vector edge", lambda: hessian.count_above(jnp.ones(3), jnp.ones(2)))
    T(e, "edge", "edge a string", lambda: hessian.count_above(jnp.ones(3), "mp"))

    e = "hessian.subspace_overlap"
    V(e, "vector", "NaN vector", lambda: hessian.subspace_overlap(jnp.full(4, nan), jnp.eye(4)[:2]))
    V(
        e,
        "basis",
        "basis rows of another length than the vector",
        lambda: hessian.subspace_overlap(jnp.ones(3), jnp.eye(4)[:2]),
    )
    V(e, "basis", "1-d basis", lambda: hessian.subspace_overlap(jnp.ones(4), jnp.ones(4)))
    T(
        e,
        "basis",
        "integer basis",
        lambda: hessian.subspace_overlap(jnp.ones(4), jnp.eye(4, dtype=jnp.int32)),
    )
    V(
        e,
        "basis",
        "inf in basis",
        lambda: hessian.subspace_overlap(jnp.ones(4), jnp.eye(4).at[0, 0].set(inf)),
    )

    e = "hessian.subspace_similarity"
    V(e, "basis_a", "1-d basis_a", lambda: hessian.subspace_similarity(jnp.ones(4), jnp.eye(4)))
    V(
        e,
        "basis_b",
        "basis_b of another dimension",
        lambda: hessian.subspace_similarity(jnp.eye(4)[:, :2], jnp.eye(3)[:, :2]),
    )
    V(
        e,
        "basis_a",
        "NaN basis_a",
        lambda: hessian.subspace_similarity(jnp.full((4, 2), nan), jnp.eye(4)[:, :2]),
    )
    T(
        e,
        "basis_b",
        "integer basis_b",
        lambda: hessian.subspace_similarity(jnp.eye(4)[:, :2], jnp.eye(4, 2, dtype=jnp.int32)),
    )
    T(e, "basis_a", "basis_a a string", lambda: hessian.subspace_similarity("a", jnp.eye(4)))

    e = "hessian.Operator"
    V(e, "v", "apply with a tree missing a key", lambda: operator().apply({"w1": params()["w1"]}))
    V(
        e,
        "v",
        "apply with a leaf of the wrong shape",
        lambda: operator().apply({"w1": jnp.ones((3, 5)), "w2": params()["w2"]}),
    )
    V(e, "flat", "unravel of the wrong length", lambda: operator().unravel(jnp.ones(5)))
    V(e, "flat", "unravel of a 2-d array", lambda: operator().unravel(jnp.ones((2, 10))))
    V(
        e,
        "tree",
        "ravel with a tree missing a key",
        lambda: operator().ravel({"w2": params()["w2"]}),
    )
    V(e, "v", "call with a flat vector of the wrong length", lambda: operator()(jnp.ones(5)))
    V(e, "v", "call with NaN", lambda: operator()(jnp.full(20, nan)))

    e = "hessian.curvature_matvec"
    T(e, "loss_fn", "loss_fn a number", lambda: hessian.curvature_matvec(3, params()))
    V(e, "params", "NaN params", lambda: hessian.curvature_matvec(loss, nan_like(params())))
    V(
        e,
        "matrix",
        "unknown matrix",
        lambda: hessian.curvature_matvec(loss, params(), matrix="fisher"),
    )
    V(e, "loss_fn", "a vector loss", lambda: hessian.curvature_matvec(lambda p: p["w1"], params()))
    T(
        e,
        "damping",
        "an unknown option",
        lambda: hessian.curvature_matvec(loss, params(), damping=1.0),
    )


def _diagnostics_more() -> None:
    from wideth import diagnostics
    from wideth.diagnostics import conditioning as cond

    h = lambda: jax.random.normal(jax.random.key(7), (8, 3))
    lab = lambda: jnp.arange(8) % 2
    nc = diagnostics.neural_collapse
    e = "diagnostics.neural_collapse"
    V(e, "num_classes", "num_classes 1", lambda: nc(h(), lab(), 1))
    T(e, "num_classes", "float num_classes", lambda: nc(h(), lab(), 2.0))
    V(e, "features", "1-d features", lambda: nc(jnp.ones(8), lab(), 2))
    V(e, "features", "NaN features", lambda: nc(h().at[0, 0].set(nan), lab(), 2))
    T(e, "features", "integer features", lambda: nc(jnp.ones((8, 3), jnp.int32), lab(), 2))
    V(e, "labels", "labels with the wrong rows", lambda: nc(h(), lab()[:5], 2))
    V(e, "labels", "negative labels", lambda: nc(h(), -lab(), 2))
    T(e, "labels", "float labels", lambda: nc(h(), jnp.ones(8), 2))
    V(e, "labels", "a class without samples", lambda: nc(h(), jnp.zeros(8, int), 2))
    V(
        e,
        "weights",
        "weights of the wrong shape",
        lambda: nc(h(), lab(), 2, weights=jnp.ones((3, 3))),
    )
    V(e, "logits", "logits of the wrong shape", lambda: nc(h(), lab(), 2, logits=jnp.ones((8, 3))))
    V(e, "weights", "NaN weights", lambda: nc(h(), lab(), 2, weights=jnp.full((2, 3), nan)))

    e = "conditioning.gershgorin_bound"
    V(e, "gram", "non-square gram", lambda: cond.gershgorin_bound(jnp.ones((3, 2))))
    V(e, "gram", "NaN gram", lambda: cond.gershgorin_bound(spd().at[0, 0].set(nan)))
    V(e, "gram", "non-symmetric gram", lambda: cond.gershgorin_bound(not_symmetric()))
    V(e, "gram", "1-d gram", lambda: cond.gershgorin_bound(jnp.ones(3)))
    T(e, "gram", "gram a string", lambda: cond.gershgorin_bound("K"))
    V(e, "gram", "empty gram", lambda: cond.gershgorin_bound(jnp.ones((0, 0))))

    e = "conditioning.condition_number"
    V(e, "gram", "non-square gram", lambda: cond.condition_number(jnp.ones((3, 2))))
    V(e, "gram", "inf in gram", lambda: cond.condition_number(spd().at[1, 1].set(inf)))
    V(e, "gram", "non-symmetric gram", lambda: cond.condition_number(not_symmetric()))
    V(e, "gram", "3-d gram", lambda: cond.condition_number(jnp.ones((2, 2, 2))))
    T(e, "gram", "complex gram", lambda: cond.condition_number(jnp.eye(2) * 1j))
    V(e, "gram", "empty gram", lambda: cond.condition_number(jnp.ones((0, 0))))

    e = "conditioning.ntk_gram"
    T(e, "apply_fn", "apply_fn a number", lambda: cond.ntk_gram(3, params(), xy()[0]))
    V(e, "x", "NaN in x", lambda: cond.ntk_gram(apply, params(), xy()[0].at[0, 0].set(nan)))
    V(e, "x", "x without rows", lambda: cond.ntk_gram(apply, params(), jnp.ones((0, 3))))
    T(
        e,
        "apply_fn",
        "x of the wrong feature dimension",
        lambda: cond.ntk_gram(apply, params(), jnp.ones((8, 5))),
    )
    V(e, "params", "NaN params", lambda: cond.ntk_gram(apply, nan_like(params()), xy()[0]))
    T(e, "x", "x a string", lambda: cond.ntk_gram(apply, params(), "x"))

    e = "conditioning.ntk_extreme_eigenvalues"
    ne = cond.ntk_extreme_eigenvalues
    V(e, "method", "unknown method", lambda: ne(apply, params(), xy()[0], method="exact"))
    V(e, "num_steps", "num_steps 0", lambda: ne(apply, params(), xy()[0], num_steps=0))
    T(e, "num_steps", "float num_steps", lambda: ne(apply, params(), xy()[0], num_steps=3.0))
    T(e, "key", "integer key", lambda: ne(apply, params(), xy()[0], key=0))
    V(e, "x", "NaN in x", lambda: ne(apply, params(), xy()[0].at[0, 0].set(nan)))
    T(e, "apply_fn", "apply_fn None", lambda: ne(None, params(), xy()[0]))
    V(e, "x", "x without rows", lambda: ne(apply, params(), jnp.ones((0, 3))))

    e = "conditioning.square_loss_constants"
    V(e, "n", "n 0", lambda: cond.square_loss_constants(0))
    V(e, "n", "negative n", lambda: cond.square_loss_constants(-5))
    T(e, "n", "float n", lambda: cond.square_loss_constants(2.5))
    T(e, "n", "n a string", lambda: cond.square_loss_constants("10"))
    T(e, "n", "n None", lambda: cond.square_loss_constants(None))

    pk = cond.pl_kernel_bounds
    e = "conditioning.pl_kernel_bounds"
    V(e, "lam_max", "lam_max below lam_min", lambda: pk(2.0, 1.0, 1.0, 1.0))
    V(e, "lam_min", "NaN lam_min", lambda: pk(nan, 2.0, 1.0, 1.0))
    V(e, "mu_ell", "zero mu_ell", lambda: pk(1.0, 2.0, 0.0, 1.0))
    V(e, "beta_ell", "negative beta_ell", lambda: pk(1.0, 2.0, 1.0, -1.0))
    T(e, "mu_ell", "string mu_ell", lambda: pk(1.0, 2.0, "1", 1.0))
    V(
        e,
        "lam_max",
        "lam_max of another shape than lam_min",
        lambda: pk(jnp.ones(2), jnp.ones(3), 1.0, 1.0),
    )

    pp = cond.pl_product_bound
    e = "conditioning.pl_product_bound"
    V(e, "mu", "0-d mu", lambda: pp(1.0, 1.0))
    V(e, "mu", "NaN mu", lambda: pp(jnp.array([1.0, nan]), 1.0))
    V(e, "mu", "negative mu", lambda: pp(jnp.array([1.0, -1.0]), 1.0))
    V(e, "smoothness", "zero smoothness", lambda: pp(jnp.ones(3), 0.0))
    V(e, "smoothness", "smoothness of another length than mu", lambda: pp(jnp.ones(3), jnp.ones(2)))
    T(e, "smoothness", "smoothness a string", lambda: pp(jnp.ones(3), "L"))
    V(e, "mu", "empty mu", lambda: pp(jnp.ones(0), 1.0))

    e = "conditioning.normalised_weight_variance"
    V(e, "activation", "unknown activation", lambda: cond.normalised_weight_variance("swish2"))
    V(e, "activation", "activation None", lambda: cond.normalised_weight_variance(None))
    V(e, "activation", "activation a number", lambda: cond.normalised_weight_variance(3))
    V(
        e,
        "activation",
        "an activation without a closed form",
        lambda: cond.normalised_weight_variance("softplus"),
    )

    dk = cond.dual_kernels
    e = "conditioning.dual_kernels"
    V(e, "corr", "corr above 1", lambda: dk(jnp.array([[1.0, 1.5], [1.5, 1.0]]), "relu", 2))
    V(e, "corr", "NaN corr", lambda: dk(jnp.array([[1.0, nan], [nan, 1.0]]), "relu", 2))
    V(e, "corr", "non-square corr", lambda: dk(jnp.ones((2, 3)) / 2, "relu", 2))
    V(e, "activation", "unknown activation", lambda: dk(jnp.eye(2), "swish2", 2))
    V(e, "depth", "negative depth", lambda: dk(jnp.eye(2), "relu", -1))
    T(e, "depth", "float depth", lambda: dk(jnp.eye(2), "relu", 1.5))
    V(e, "quad", "quad too coarse", lambda: dk(jnp.eye(2), "tanh", 2, quad=(3, 3)))
    T(e, "corr", "corr a string", lambda: dk("c", "relu", 2))


def _misc_more() -> None:
    from wideth import activations, functional, regions
    from wideth.kernels import analytic
    from wideth.kernels import meanfield as mf

    qp = analytic.quadrature_points
    e = "analytic.quadrature_points"
    V(e, "activation", "unknown activation", lambda: qp("swish2", 1.0))
    V(e, "max_variance", "zero max_variance", lambda: qp("tanh", 0.0))
    V(e, "max_variance", "negative max_variance", lambda: qp("tanh", -1.0))
    V(e, "max_variance", "NaN max_variance", lambda: qp("tanh", nan))
    T(e, "max_variance", "string max_variance", lambda: qp("tanh", "1"))
    V(e, "rtol", "zero rtol", lambda: qp("tanh", 1.0, rtol=0.0))
    V(e, "rtol", "infinite rtol", lambda: qp("tanh", 1.0, rtol=inf))

    vs = mf.variance_sequence
    e = "meanfield.variance_sequence"
    V(e, "activation", "unknown activation", lambda: vs("swish2", 1.5, 0.05, 1.0, 3))
    V(e, "W_var", "negative W_var", lambda: vs("tanh", -1.5, 0.05, 1.0, 3))
    V(e, "b_var", "NaN b_var", lambda: vs("tanh", 1.5, nan, 1.0, 3))
    V(e, "q_in", "negative q_in", lambda: vs("tanh", 1.5, 0.05, -1.0, 3))
    V(e, "depth", "depth 0", lambda: vs("tanh", 1.5, 0.05, 1.0, 0))
    T(e, "depth", "float depth", lambda: vs("tanh", 1.5, 0.05, 1.0, 2.5))
    V(e, "quad", "quad too coarse", lambda: vs("tanh", 1.5, 0.05, 1.0, 3, quad=(3, 3)))
    T(e, "W_var", "string W_var", lambda: vs("tanh", "1.5", 0.05, 1.0, 3))

    e = "activations.resolve"
    V(e, "activation", "unknown name", lambda: activations.resolve("swish2"))
    V(e, "activation", "spec None", lambda: activations.resolve(None))
    V(
        e,
        "activation",
        "a name outside allowed",
        lambda: activations.resolve("gelu", allowed=("relu", "tanh")),
    )
    V(
        e,
        "nonlin",
        "the caller's argument name",
        lambda: activations.resolve("swish2", arg="nonlin"),
    )
    V(
        e,
        "activation",
        "a pair with an unknown parameter",
        lambda: activations.resolve(("leaky_relu", {"beta": 0.1})),
    )
    V(
        e,
        "activation",
        "a pair with a NaN parameter",
        lambda: activations.resolve(("leaky_relu", {"alpha": nan})),
    )

    e = "functional.param_paths"
    V(e, "params", "params None", lambda: functional.param_paths(None))
    V(e, "params", "params without leaves", lambda: functional.param_paths({}))
    T(e, "params", "params a string", lambda: functional.param_paths("w"))

    e = "regions.affine_layers"
    T(e, "model", "model None", lambda: regions.affine_layers(None))
    T(e, "model", "model a string", lambda: regions.affine_layers("mlp"))
    V(e, "model", "an empty list of layers", lambda: regions.affine_layers([]))
    V(
        e,
        "model",
        "layers whose shapes do not chain",
        lambda: regions.affine_layers(
            [(np.ones((3, 4)), np.ones(4)), (np.ones((5, 2)), np.ones(2))]
        ),
    )
    V(
        e,
        "model",
        "NaN weights",
        lambda: regions.affine_layers([(np.full((3, 4), nan), np.ones(4))]),
    )


def cli_command(argv):
    """Parse ``wideth ARGV`` and run its command (``main`` prints its error as one line)."""
    from wideth.__main__ import build_parser

    args = build_parser().parse_args(argv)
    return args.fn(args)


def _cli() -> None:
    k = str(scratch() / "k.npy")
    for flag, argv in (
        ("--n", ["kernel", "--n", "-3", "--out", k]),
        ("--width", ["kernel", "--width", "0", "--out", k]),
        ("--W-std", ["kernel", "--W-std", "-1", "--out", k]),
        ("--W-std", ["kernel", "--W-std", "nan", "--out", k]),
        ("--b-std", ["kernel", "--b-std", "inf", "--out", k]),
        ("--W-std", ["kernel", "--kind", "empirical", "--W-std", "-1", "--out", k]),
        ("--get", ["kernel", "--kind", "empirical", "--get", "nngp", "--out", k]),
        ("--out", ["kernel", "--out", a_file() + "/k.npy"]),
        ("--num-steps", ["spectrum", "--num-steps", "0"]),
        ("--n", ["spectrum", "--n", "0"]),
        ("--depth", ["spectrum", "--depth", "-1"]),
        ("--W-std", ["spectrum", "--W-std", "nan"]),
        ("--b-std", ["spectrum", "--b-std", "-0.5"]),
        ("--out", ["spectrum", "--out", missing("s.json")]),
        ("--n", ["profile", "--n", "-1"]),
        ("--depth", ["profile", "--depth", "-2"]),
        ("--b-std", ["profile", "--b-std", "-1"]),
        ("--W-std", ["profile", "--W-std", "inf"]),
        ("--out", ["profile", "--out", str(scratch())]),
        ("--n", ["profile", "--data", "synthetic", "--n", "0"]),
    ):
        # The id must not name the scratch folder: pytest-xdist workers collect separately.
        what = " ".join(argv[1:]).replace(str(scratch()), "<tmp>")
        V(f"cli {argv[0]}", flag, what, functools.partial(cli_command, argv))


def dl_data():
    """2 points in 4 input dimensions (P < n0), targets not all zero."""
    x = jax.random.normal(jax.random.key(8), (2, 4))
    return x, jnp.array([1.0, -0.5])


def _deep_linear() -> None:
    from wideth.kernels import deep_linear as dl

    k0 = lambda: jax.random.key(0)
    x, y = lambda: dl_data()[0], lambda: dl_data()[1]
    e = "deep_linear.interpolant"
    V(
        e,
        "x",
        "more points than input dimensions",
        lambda: dl.interpolant(jnp.ones((5, 2)), jnp.ones(5)),
    )
    V(e, "x", "NaN in x", lambda: dl.interpolant(x().at[0, 0].set(nan), y()))
    V(e, "x", "1-d x", lambda: dl.interpolant(jnp.ones(4), y()))
    V(e, "x", "linearly dependent rows", lambda: dl.interpolant(jnp.ones((2, 4)), y()))
    V(e, "y", "y with the wrong rows", lambda: dl.interpolant(x(), jnp.ones(3)))
    V(e, "y", "all-zero y", lambda: dl.interpolant(x(), jnp.zeros(2)))
    T(e, "x", "integer x", lambda: dl.interpolant(jnp.ones((2, 4), jnp.int32), y()))

    e = "deep_linear.effective_depth"
    V(e, "num_points", "num_points 0", lambda: dl.effective_depth(0, [8, 8]))
    T(e, "num_points", "float num_points", lambda: dl.effective_depth(2.5, [8]))
    V(e, "widths", "a zero width", lambda: dl.effective_depth(2, [8, 0]))
    T(e, "widths", "widths a string", lambda: dl.effective_depth(2, "88"))
    T(e, "widths", "fractional widths", lambda: dl.effective_depth(2, [8.5]))

    e = "deep_linear.shallow_evidence_max_sigma2"
    V(e, "x", "NaN in x", lambda: dl.shallow_evidence_max_sigma2(x().at[1, 1].set(nan), y()))
    V(e, "y", "inf in y", lambda: dl.shallow_evidence_max_sigma2(x(), y().at[0].set(inf)))
    V(
        e,
        "x",
        "more points than input dimensions",
        lambda: dl.shallow_evidence_max_sigma2(jnp.ones((5, 2)), jnp.ones(5)),
    )
    V(e, "y", "2-d y of two columns", lambda: dl.shallow_evidence_max_sigma2(x(), jnp.ones((2, 2))))
    T(e, "x", "x a string", lambda: dl.shallow_evidence_max_sigma2("x", y()))

    e = "deep_linear.prior_log_scale"
    T(e, "key", "integer key", lambda: dl.prior_log_scale(0, [8], 4))
    V(e, "input_dim", "input_dim 0", lambda: dl.prior_log_scale(k0(), [8], 0))
    V(e, "sigma2", "negative sigma2", lambda: dl.prior_log_scale(k0(), [8], 4, sigma2=-1.0))
    V(e, "sigma2", "NaN sigma2", lambda: dl.prior_log_scale(k0(), [8], 4, sigma2=nan))
    V(e, "num_samples", "num_samples 0", lambda: dl.prior_log_scale(k0(), [8], 4, num_samples=0))
    T(e, "dtype", "integer dtype", lambda: dl.prior_log_scale(k0(), [8], 4, dtype=jnp.int32))

    for e, fn in (
        ("deep_linear.posterior_log_scale", dl.posterior_log_scale),
        ("deep_linear.posterior_theta", dl.posterior_theta),
        ("deep_linear.posterior_perp_norm", dl.posterior_perp_norm),
    ):
        T(e, "key", "integer key", lambda fn=fn: fn(0, x(), y(), [8]))
        V(e, "x", "NaN in x", lambda fn=fn: fn(k0(), x().at[0, 0].set(nan), y(), [8]))
        V(e, "y", "y with the wrong rows", lambda fn=fn: fn(k0(), x(), jnp.ones(3), [8]))
        V(e, "widths", "a negative width", lambda fn=fn: fn(k0(), x(), y(), [8, -1]))
        V(e, "sigma2", "zero sigma2", lambda fn=fn: fn(k0(), x(), y(), [8], sigma2=0.0))
        V(e, "num_samples", "num_samples 0", lambda fn=fn: fn(k0(), x(), y(), [8], num_samples=0))
    e = "deep_linear.posterior_log_scale"
    V(
        e,
        "oversample",
        "oversample 0",
        lambda: dl.posterior_log_scale(k0(), x(), y(), [8], oversample=0),
    )
    V(
        e,
        "max_rounds",
        "max_rounds 0",
        lambda: dl.posterior_log_scale(k0(), x(), y(), [8], max_rounds=0),
    )
    T(
        e,
        "return_acceptance",
        "return_acceptance a string",
        lambda: dl.posterior_log_scale(k0(), x(), y(), [8], return_acceptance="yes"),
    )

    e = "deep_linear.predictive"
    xt = lambda: jnp.ones((3, 4))
    T(e, "key", "integer key", lambda: dl.predictive(0, x(), y(), xt(), [8]))
    V(
        e,
        "x_test",
        "x_test with other features",
        lambda: dl.predictive(k0(), x(), y(), jnp.ones((3, 5)), [8]),
    )
    V(
        e,
        "x_test",
        "NaN in x_test",
        lambda: dl.predictive(k0(), x(), y(), xt().at[0, 0].set(nan), [8]),
    )
    V(e, "x_test", "1-d x_test", lambda: dl.predictive(k0(), x(), y(), jnp.ones(4), [8]))
    V(e, "sigma2", "infinite sigma2", lambda: dl.predictive(k0(), x(), y(), xt(), [8], sigma2=inf))

    e = "deep_linear.predictive_normal"
    V(
        e,
        "perp_norm",
        "negative perp_norm",
        lambda: dl.predictive_normal(x(), y(), xt(), jnp.array([-1.0])),
    )
    V(
        e,
        "perp_norm",
        "NaN perp_norm",
        lambda: dl.predictive_normal(x(), y(), xt(), jnp.array([nan])),
    )
    T(e, "perp_norm", "perp_norm a string", lambda: dl.predictive_normal(x(), y(), xt(), "r"))
    V(
        e,
        "x_test",
        "x_test with other features",
        lambda: dl.predictive_normal(x(), y(), jnp.ones((3, 2)), jnp.ones(4)),
    )
    V(e, "y", "all-zero y", lambda: dl.predictive_normal(x(), jnp.zeros(2), xt(), jnp.ones(4)))

    lwp = dl.large_width_posterior
    e = "deep_linear.large_width_posterior"
    V(e, "num_points", "num_points 0", lambda: lwp(0, 4, 1.0, 0.5))
    V(e, "input_dim", "negative input_dim", lambda: lwp(2, -4, 1.0, 0.5))
    V(e, "par_sq_norm", "zero par_sq_norm", lambda: lwp(2, 4, 0.0, 0.5))
    V(e, "par_sq_norm", "NaN par_sq_norm", lambda: lwp(2, 4, nan, 0.5))
    V(e, "lam", "negative lam", lambda: lwp(2, 4, 1.0, -0.5))
    V(e, "sigma2_total", "zero sigma2_total", lambda: lwp(2, 4, 1.0, 0.5, sigma2_total=0.0))
    V(e, "num_grid", "num_grid 10", lambda: lwp(2, 4, 1.0, 0.5, num_grid=10))

    fwc = dl.finite_width_correction
    lim = lambda: lwp(2, 4, 1.0, 0.5)
    e = "deep_linear.finite_width_correction"
    V(e, "widths", "no widths", lambda: fwc(lim(), [], 2, 4))
    V(e, "widths", "a zero width", lambda: fwc(lim(), [8, 0], 2, 4))
    V(e, "num_points", "num_points 0", lambda: fwc(lim(), [8], 0, 4))
    V(e, "input_dim", "input_dim 0", lambda: fwc(lim(), [8], 2, 0))
    V(e, "sigma2_total", "negative sigma2_total", lambda: fwc(lim(), [8], 2, 4, sigma2_total=-1.0))
    T(e, "limit", "limit not a LargeWidthPosterior", lambda: fwc({"a": 1}, [8], 2, 4))


def _optim_state_and_curvature() -> None:
    from wideth import optim

    e = "optim.pl_adaptive_info"
    V(
        e,
        "state",
        "state of another optimizer",
        lambda: optim.pl_adaptive_info(sgd().init(jnp.ones(3))),
    )
    V(e, "state", "state None", lambda: optim.pl_adaptive_info(None))
    V(e, "state", "state a number", lambda: optim.pl_adaptive_info(3))
    e = "optim.outer_product_adaptive_info"
    V(
        e,
        "state",
        "state of another optimizer",
        lambda: optim.outer_product_adaptive_info(sgd().init(jnp.ones(3))),
    )
    V(e, "state", "state None", lambda: optim.outer_product_adaptive_info(None))
    V(e, "state", "state a string", lambda: optim.outer_product_adaptive_info("state"))

    gnc = optim.gauss_newton_curvature
    f, ell, w, _ = quad_problem()
    e = "optim.gauss_newton_curvature"
    T(e, "outputs_fn", "outputs_fn not callable", lambda: gnc(3, ell, w, w))
    T(e, "loss_of_outputs", "loss_of_outputs not callable", lambda: gnc(f, "mse", w, w))
    V(e, "loss_of_outputs", "a vector loss", lambda: gnc(f, lambda o: o**2, w, w))
    V(e, "direction", "direction of another shape", lambda: gnc(f, ell, w, jnp.ones(4)))
    T(e, "direction", "integer direction", lambda: gnc(f, ell, w, jnp.ones(3, jnp.int32)))
    V(e, "direction", "NaN direction", lambda: gnc(f, ell, w, jnp.full(3, nan)))
    V(e, "params", "NaN params", lambda: gnc(f, ell, jnp.full(3, nan), w))
    T(
        e,
        "outputs_fn",
        "outputs_fn failing on params",
        lambda: gnc(lambda p: jnp.ones((2, 2)) @ p, ell, w, w),
    )


# Bad inputs whose fixes belong to code being reworked elsewhere: kept out of CASES until
# then, so that test_bad_inputs stays green; measured with ``--pending``. None at present.
PENDING: list[Case] = []


def _stacked() -> None:
    from wideth import stacked

    e = "stacked.init"
    key = lambda: jax.random.key(0)
    T(e, "key", "an integer seed", lambda: stacked.init(0, 3, 4, 2))
    V(e, "in_dim", "in_dim 0", lambda: stacked.init(key(), 0, 4, 2))
    V(e, "width", "negative width", lambda: stacked.init(key(), 3, -4, 2))
    V(e, "max_depth", "max_depth 0", lambda: stacked.init(key(), 3, 4, 0))
    T(e, "max_depth", "float max_depth", lambda: stacked.init(key(), 3, 4, 2.5))
    V(e, "out_dim", "out_dim 0", lambda: stacked.init(key(), 3, 4, 2, 0))
    V(e, "W_std", "negative W_std", lambda: stacked.init(key(), 3, 4, 2, W_std=-1.0))
    V(e, "b_std", "NaN b_std", lambda: stacked.init(key(), 3, 4, 2, b_std=nan))
    V(
        e,
        "W_std",
        "a vector W_std under jit",
        lambda: jax.jit(lambda s: stacked.init(key(), 3, 4, 2, W_std=s))(jnp.ones(2)),
    )

    e = "stacked.apply"
    p = lambda: stacked.init(key(), 3, 4, 3, 2)
    T(
        e,
        "params",
        "params of an NNX-style tree",
        lambda: stacked.apply({"w": jnp.ones(3)}, jnp.ones((2, 3)), 1),
    )
    T(e, "params", "params a list", lambda: stacked.apply([1.0], jnp.ones((2, 3)), 1))
    V(e, "x", "x with the wrong features", lambda: stacked.apply(p(), jnp.ones((2, 4)), 1))
    V(e, "x", "1-d x", lambda: stacked.apply(p(), jnp.ones(3), 1))
    V(e, "x", "NaN in x", lambda: stacked.apply(p(), jnp.ones((2, 3)).at[0, 0].set(nan), 1))
    V(e, "depth", "depth 0", lambda: stacked.apply(p(), jnp.ones((2, 3)), 0))
    V(e, "depth", "depth above max_depth", lambda: stacked.apply(p(), jnp.ones((2, 3)), 4))
    T(e, "depth", "float depth", lambda: stacked.apply(p(), jnp.ones((2, 3)), 2.0))
    V(
        e,
        "depth",
        "a vector of depths under jit",
        lambda: jax.jit(lambda L: stacked.apply(p(), jnp.ones((2, 3)), L))(jnp.ones(2, jnp.int32)),
    )
    V(
        e,
        "activation",
        "unknown activation",
        lambda: stacked.apply(p(), jnp.ones((2, 3)), 1, "swish2"),
    )


def _pending() -> None:
    n = len(CASES)
    PENDING.extend(CASES[n:])
    del CASES[n:]


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
    _predict,
    _empirical,
    _analytic,
    _optim,
    _models,
    _regions,
    _activations,
    _noise,
    _taylor,
    _predict_more,
    _optim_more,
    _models_more,
    _train_more,
    _hessian_more,
    _diagnostics_more,
    _misc_more,
    _cli,
    _deep_linear,
    _optim_state_and_curvature,
    _stacked,
    _pending,
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
