r"""Signal propagation, order/chaos and trainability of deep random networks.

A fully connected network with weights :math:`W^l_{ij}\sim\mathcal N(0,\sigma_w^2/n)`,
biases :math:`b^l_i\sim\mathcal N(0,\sigma_b^2)` and pre-activations
:math:`h^{l+1} = W^{l+1}\phi(h^l) + b^{l+1}` propagates the length
:math:`q^l = \frac1n\|h^l\|^2` and the correlation :math:`c^l` of two inputs
through the mean-field maps of :mod:`wideth.kernels.meanfield` (Poole et al.
2016),

.. math::

    q^{l+1} = \sigma_w^2\,\mathbb E_z[\phi(\sqrt{q^l}z)^2] + \sigma_b^2,\qquad
    c^{l+1} = \mathcal C(c^l; q^l),\qquad
    \chi_1 = \sigma_w^2\,\mathbb E_z[\phi'(\sqrt{q^*}z)^2].

1. **Signal propagation**: measured :math:`q^l, c^l` of random tanh and ReLU
   networks (averaged over networks, ``vmap``) against the iterated maps, and
   the measured deep-layer :math:`q` against the fixed point :math:`q^*`.
2. **Phase diagram** over :math:`(\sigma_w^2, \sigma_b^2)` for tanh: theory
   :math:`\chi_1` with the critical line :math:`\chi_1 = 1`
   (``critical_W_var``), and the empirical :math:`\hat\chi_1 = \sigma_w^2
   \frac1n\sum_i\phi'(h^L_i)^2` of one random network per grid point; the
   phases must agree away from the line.
3. **Trainability** (Schoenholz et al. 2017): depth-:math:`L` tanh networks
   (:math:`\sigma_b^2 = 0.05`) trained briefly with SGD on the digits data over
   a grid of :math:`\sigma_w^2` and :math:`L`; the trainable region is
   compared with :math:`L < 6\xi_c`. The networks are trained as one vmapped
   program: hidden layers are stacked and applied by ``lax.scan`` with a depth
   mask, so one compilation serves every depth (tested to equal
   :class:`wideth.models.MLP` in standard parameterisation).
4. **ReLU gradients**: the back-propagated signal :math:`\delta^l =
   \partial f/\partial h^l` of a depth-:math:`L` ReLU network (no biases)
   obeys :math:`\mathbb E\|\delta^l\|^2 = (\sigma_w^2/2)^{L-l}\,\mathbb
   E\|\delta^L\|^2`: constant at the critical :math:`\sigma_w^2 = 2` (He
   initialisation), geometric explosion/vanishing otherwise. The fitted
   per-layer log-rate is compared with :math:`\log(\sigma_w^2/2)`.

References:
  Poole et al., `Exponential expressivity in deep neural networks through
  transient chaos <https://arxiv.org/abs/1606.05340>`_, 2016.
  Schoenholz et al., `Deep Information Propagation
  <https://arxiv.org/abs/1611.01232>`_, 2017.
  He et al., `Delving Deep into Rectifiers <https://arxiv.org/abs/1502.01852>`_, 2015.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments._common import Config, Result, check, cli, save_figure
from wideth.kernels import meanfield as mf

_PHI = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def _phi_prime(activation: str, h: jax.Array) -> jax.Array:
    if activation == "tanh":
        return 1.0 - jnp.tanh(h) ** 2
    return (h > 0).astype(h.dtype)


# ------------------------------------------------------------------ signal propagation


def propagate(
    key: jax.Array,
    x: jax.Array,
    W_var: jax.Array,
    b_var: jax.Array,
    depth: int,
    width: int,
    activation: str,
) -> dict[str, jax.Array]:
    r"""Per-layer :math:`q^l`, :math:`c^l` and :math:`\hat\chi_1^l` of one random network.

    ``x`` is ``(2, d)``; layer weights are drawn inside a ``lax.scan`` (never
    stored). :math:`q^l` is the mean of the two inputs' :math:`\|h^l\|^2/n`,
    :math:`c^l = h^l_a\cdot h^l_b/(\|h^l_a\|\|h^l_b\|)`, :math:`\hat\chi_1^l =
    \sigma_w^2\frac1n\sum_i\phi'(h^l_{a,i})^2`.

    Returns:
      dict of ``(depth,)`` arrays ``q``, ``c``, ``chi1``.
    """
    d = x.shape[1]
    k0, key = jax.random.split(key)
    kw, kb = jax.random.split(k0)
    h = jnp.sqrt(W_var / d) * x @ jax.random.normal(kw, (d, width)) + jnp.sqrt(
        b_var
    ) * jax.random.normal(kb, (width,))
    phi = _PHI[activation]

    def stats(h):
        n2 = jnp.sum(h * h, axis=1)
        q = jnp.mean(n2) / width
        c = jnp.sum(h[0] * h[1]) / jnp.sqrt(n2[0] * n2[1])
        chi = W_var * jnp.mean(_phi_prime(activation, h[0]) ** 2)
        return q, c, chi

    def layer(h, k):
        kw, kb = jax.random.split(k)
        W = jax.random.normal(kw, (width, width))
        b = jax.random.normal(kb, (width,))
        h2 = jnp.sqrt(W_var / width) * phi(h) @ W + jnp.sqrt(b_var) * b
        return h2, stats(h2)

    _, (q, c, chi) = jax.lax.scan(layer, h, jax.random.split(key, depth - 1))
    q0, c0, chi0 = stats(h)
    cat = lambda a, b: jnp.concatenate([a[None], b])
    return {"q": cat(q0, q), "c": cat(c0, c), "chi1": cat(chi0, chi)}


def theory_maps(
    activation: str, W_var: float, b_var: float, q_x: float, c_x: float, depth: int
) -> dict[str, np.ndarray]:
    r"""Iterated mean-field maps from inputs of length ``q_x`` and correlation ``c_x``.

    :math:`q^1 = \sigma_w^2 q_x + \sigma_b^2`, :math:`c^1 = (\sigma_w^2 c_x q_x +
    \sigma_b^2)/q^1` (the input layer is linear), then :func:`meanfield.variance_map`
    and :func:`meanfield.correlation_map` at the current :math:`q^l`.
    """
    q = [W_var * q_x + b_var]
    c = [(W_var * c_x * q_x + b_var) / q[0]]
    for _ in range(depth - 1):
        c.append(float(mf.correlation_map(c[-1], activation, W_var, b_var, q=q[-1])))
        q.append(float(mf.variance_map(q[-1], activation, W_var, b_var)))
    return {"q": np.array(q), "c": np.array(c)}


def two_inputs(key: jax.Array, d: int, q_x: float, c_x: float) -> jax.Array:
    """Two ``d``-dim inputs with ``|x|^2/d = q_x`` and cosine similarity ``c_x``."""
    a, b = jax.random.normal(key, (2, d))
    a = a / jnp.linalg.norm(a)
    b = b - (b @ a) * a
    b = b / jnp.linalg.norm(b)
    s = jnp.sqrt(q_x * d)
    return jnp.stack([a * s, (c_x * a + jnp.sqrt(1 - c_x**2) * b) * s])


#: Configurations propagated together under ``vmap`` (larger grids run in groups).
CONFIGS_PER_BATCH = 192


def _propagate_many(
    keys: jax.Array, x: jax.Array, W: jax.Array, b: jax.Array, depth: int, width: int, act: str
) -> dict[str, jax.Array]:
    """:func:`propagate` vmapped over configs ``(C,)`` and networks ``keys (C, N)``."""
    return propagate_program(depth, width, act)(keys, x, W, b)


@functools.cache
def propagate_program(depth: int, width: int, act: str) -> Callable:
    """Jitted ``(keys (C, N), x, W (C,), b (C,)) -> stats``: configs in groups under ``vmap``.

    ``CONFIGS_PER_BATCH`` configs at a time bound memory (the full phase diagram,
    756 networks of width 1000 at once, would need 11 GiB).
    """
    per_net = jax.vmap(propagate, (0, None, None, None, None, None, None))

    @jax.jit
    def run(keys, x, W, b):
        one = lambda a: per_net(a[0], x, a[1], a[2], depth, width, act)
        return jax.lax.map(one, (keys, W, b), batch_size=CONFIGS_PER_BATCH)

    return run


def signal_propagation(
    key: jax.Array,
    configs: list[tuple[str, float, float]],
    depth: int,
    width: int,
    num_nets: int,
    d: int = 100,
    q_x: float = 2.0,
    c_x: float = 0.5,
) -> list[dict[str, Any]]:
    """Measured (mean over ``num_nets``) vs theory ``q^l``, ``c^l`` for each config.

    One vmapped program per activation (over configs and networks).
    """
    kx, key = jax.random.split(key)
    x = two_inputs(kx, d, q_x, c_x)
    keys = jax.random.split(key, (len(configs), num_nets))
    out: list[dict[str, Any] | None] = [None] * len(configs)
    for act in sorted({c[0] for c in configs}):
        idx = [i for i, c in enumerate(configs) if c[0] == act]
        W = jnp.asarray([configs[i][1] for i in idx], jnp.float32)
        b = jnp.asarray([configs[i][2] for i in idx], jnp.float32)
        m = _propagate_many(keys[np.array(idx)], x, W, b, depth, width, act)
        m = jax.tree.map(lambda a: np.asarray(a, np.float64), m)
        for j, i in enumerate(idx):
            _, Wv, bv = configs[i]
            th = theory_maps(act, Wv, bv, q_x, c_x, depth)
            q_star, chi1 = mf.fixed_point(act, Wv, bv)
            out[i] = {
                "activation": act,
                "W_var": Wv,
                "b_var": bv,
                "q_measured": m["q"][j].mean(0),
                "q_sem": m["q"][j].std(0, ddof=1) / np.sqrt(num_nets),
                "c_measured": m["c"][j].mean(0),
                "c_sem": m["c"][j].std(0, ddof=1) / np.sqrt(num_nets),
                "q_theory": th["q"],
                "c_theory": th["c"],
                "q_star": float(q_star),
                "chi1": float(chi1),
                "c_star": float(mf.c_star(act, Wv, bv)),
            }
    return out  # type: ignore[return-value]


# ------------------------------------------------------------------ phase diagram


def phase_diagram(
    key: jax.Array, W_grid: np.ndarray, b_grid: np.ndarray, depth: int, width: int
) -> dict[str, Any]:
    r"""Theory :math:`\chi_1` and one network's :math:`\hat\chi_1` at depth ``depth`` per point."""
    Wm, Bm = np.meshgrid(W_grid, b_grid, indexing="ij")
    chi = jax.vmap(lambda w, b: mf.fixed_point("tanh", w, b)[1])(
        jnp.asarray(Wm.ravel(), jnp.float32), jnp.asarray(Bm.ravel(), jnp.float32)
    )
    x = two_inputs(jax.random.fold_in(key, 1), 50, 1.0, 0.5)
    keys = jax.random.split(key, (Wm.size, 1))
    W = jnp.asarray(Wm.ravel(), jnp.float32)
    chi_hat = _propagate_many(
        keys, x, W, jnp.asarray(Bm.ravel(), jnp.float32), depth, width, "tanh"
    )
    chi_hat = chi_hat["chi1"][:, 0, -4:].mean(-1)
    b_line = np.linspace(b_grid.min(), b_grid.max(), 21)
    W_line = np.array([float(mf.critical_W_var("tanh", float(b))) for b in b_line])
    return {
        "W_grid": W_grid,
        "b_grid": b_grid,
        "chi1": np.asarray(chi).reshape(Wm.shape),
        "chi1_measured": np.asarray(chi_hat).reshape(Wm.shape),
        "critical_b": b_line,
        "critical_W": W_line,
    }


# ------------------------------------------------------------------ trainability


def init_stacked(
    key: jax.Array, d: int, width: int, max_depth: int, out_dim: int, W_var, b_var
) -> dict[str, jax.Array]:
    r"""Standard-parameterisation weights with stacked hidden layers.

    ``w_in (d, n)``, ``w_h (max_depth-1, n, n)``, ``w_out (n, k)`` with entries
    :math:`\mathcal N(0, \sigma_w^2/\text{fan-in})`; biases :math:`\mathcal N(0, \sigma_b^2)`.
    """
    ks = jax.random.split(key, 6)
    sw = jnp.sqrt(W_var)
    sb = jnp.sqrt(b_var)
    return {
        "w_in": sw / jnp.sqrt(d) * jax.random.normal(ks[0], (d, width)),
        "b_in": sb * jax.random.normal(ks[1], (width,)),
        "w_h": sw / jnp.sqrt(width) * jax.random.normal(ks[2], (max_depth - 1, width, width)),
        "b_h": sb * jax.random.normal(ks[3], (max_depth - 1, width)),
        "w_out": sw / jnp.sqrt(width) * jax.random.normal(ks[4], (width, out_dim)),
        "b_out": sb * jax.random.normal(ks[5], (out_dim,)),
    }


def stacked_apply(
    params: dict[str, jax.Array], x: jax.Array, depth: jax.Array, activation: str = "tanh"
) -> jax.Array:
    r"""Depth-``depth`` MLP (``depth`` hidden layers) from stacked weights, ``lax.scan`` + mask.

    Hidden layer :math:`l \ge 1` (0-based) is applied iff :math:`l < \text{depth}`, so
    ``depth`` may be traced and vmapped. Equals ``wideth.models.MLP(...,
    parameterization="standard")`` with the same weights.
    """
    phi = _PHI[activation]
    a = phi(x @ params["w_in"] + params["b_in"])

    def layer(a, lwb):
        l, w, b = lwb
        return jnp.where(l + 1 < depth, phi(a @ w + b), a), None

    L = params["w_h"].shape[0]
    a, _ = jax.lax.scan(layer, a, (jnp.arange(L), params["w_h"], params["b_h"]))
    return a @ params["w_out"] + params["b_out"]


def trainability(
    key: jax.Array,
    W_grid: np.ndarray,
    depths: np.ndarray,
    width: int,
    steps: int,
    lr: float,
    b_var: float = 0.05,
    batch_size: int = 64,
    nets_per_batch: int = 36,
) -> dict[str, Any]:
    """Train accuracy after ``steps`` of SGD+momentum for every (W_var, depth), vmapped.

    The grid's networks train ``nets_per_batch`` at a time under ``vmap``
    (``lax.map`` over groups), which bounds memory: at full size (144 networks
    of 127 stacked 256 x 256 layers) all at once would need 22 GiB.
    """
    from wideth.data import digits

    ds = digits()
    X, Y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    Wm, Lm = np.meshgrid(W_grid, depths, indexing="ij")
    run = train_grid_program(width, int(depths.max()), steps, lr, b_var, batch_size, nets_per_batch)
    acc, loss = run(
        jax.random.split(key, Wm.size),
        jnp.asarray(Wm.ravel(), jnp.float32),
        jnp.asarray(Lm.ravel(), jnp.int32),
        X,
        Y,
    )
    xi_c = np.array([float(mf.depth_scales("tanh", float(w), b_var)[1]) for w in W_grid])
    W_fine = np.linspace(W_grid.min(), W_grid.max(), 200)
    xi_fine = np.array([float(mf.depth_scales("tanh", float(w), b_var)[1]) for w in W_fine])
    return {
        "W_grid": W_grid,
        "depths": depths,
        "b_var": b_var,
        "train_accuracy": np.asarray(acc).reshape(Wm.shape),
        "final_loss": np.asarray(loss).reshape(Wm.shape),
        "xi_c": xi_c,
        "W_fine": W_fine,
        "xi_c_fine": xi_fine,
    }


def train_grid_program(
    width: int,
    max_depth: int,
    steps: int,
    lr: float,
    b_var: float,
    batch_size: int,
    nets_per_batch: int,
) -> Callable:
    """The jitted program of :func:`trainability`: ``(keys, W_vars, depths, X, Y) -> (acc, loss)``.

    Networks train ``nets_per_batch`` at a time under ``vmap``.
    """
    from wideth.train import accuracy, xent

    tx = optax.sgd(lr, momentum=0.9)

    def train(k, W_var, depth, X, Y):
        k_init, k_data = jax.random.split(k)
        p = init_stacked(k_init, X.shape[1], width, max_depth, Y.shape[1], W_var, b_var)
        s = tx.init(p)

        def step(carry, kb):
            p, s = carry
            idx = jax.random.choice(kb, X.shape[0], (batch_size,), replace=False)
            loss, g = jax.value_and_grad(lambda p: xent(stacked_apply(p, X[idx], depth), Y[idx]))(p)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), loss

        (p, _), losses = jax.lax.scan(step, (p, s), jax.random.split(k_data, steps))
        out = stacked_apply(p, X, depth)
        return accuracy(out, Y), losses[-10:].mean()

    @jax.jit
    def train_grid(keys, W_vars, depths, X, Y):
        return jax.lax.map(
            lambda a: train(*a, X, Y), (keys, W_vars, depths), batch_size=nets_per_batch
        )

    return train_grid


# ------------------------------------------------------------------ ReLU gradients


def relu_backprop_norms(
    key: jax.Array, W_vars: np.ndarray, depth: int, width: int, num_nets: int, d: int = 100
) -> np.ndarray:
    r""":math:`\mathbb E\|\partial f/\partial h^l\|^2`, :math:`l = 1..L`, mean over networks.

    Depth-``depth`` ReLU networks without biases, weights drawn inside ``lax.scan``;
    :math:`\delta^l` is the gradient with respect to an additive perturbation of
    :math:`h^l` (zero), readout :math:`f = \sqrt{\sigma_w^2/n}\,v^\top\phi(h^L)`.
    One program vmapped over ``W_vars`` and ``num_nets`` independent networks each.

    Returns:
      ``(len(W_vars), depth)`` mean squared norms.
    """
    x = jax.random.normal(jax.random.fold_in(key, 7), (d,))
    keys = jax.random.split(key, (len(W_vars), num_nets))
    out = relu_norms_program(x, depth, width)(keys, jnp.asarray(W_vars, jnp.float32))
    return np.asarray(out, np.float64).mean(1)


def relu_norms_program(x: jax.Array, depth: int, width: int) -> Callable:
    """The jitted program of :func:`relu_backprop_norms`: ``(keys (W, N), W_vars (W,))``."""
    d = x.shape[0]

    def f(eps, k, W_var):
        k0, kv, k = jax.random.split(k, 3)
        h = jnp.sqrt(W_var / d) * x @ jax.random.normal(k0, (d, width)) + eps[0]

        # Rematerialised: the backward pass redraws W from its key instead of
        # storing depth x width^2 floats per network (67 GiB at full size).
        @jax.checkpoint
        def layer(h, ke):
            kl, e = ke
            W = jax.random.normal(kl, (width, width))
            return jnp.sqrt(W_var / width) * jax.nn.relu(h) @ W + e, None

        h, _ = jax.lax.scan(layer, h, (jax.random.split(k, depth - 1), eps[1:]))
        v = jax.random.normal(kv, (width,))
        return jnp.sqrt(W_var / width) * jax.nn.relu(h) @ v

    def norms(k, W_var):
        g = jax.grad(f)(jnp.zeros((depth, width)), k, W_var)
        return jnp.sum(g * g, axis=1)

    per_w = jax.vmap(norms, (0, None))
    return jax.jit(jax.vmap(per_w))


def relu_gradients(
    key: jax.Array, W_vars: np.ndarray, depth: int, width: int, num_nets: int
) -> dict[str, Any]:
    """Back-propagated norms per layer and fitted per-layer log-rates for each ``W_var``."""
    norms = relu_backprop_norms(key, W_vars, depth, width, num_nets)
    layers = np.arange(1, depth + 1)
    # E|delta^l|^2 ~ chi^(L-l): slope of log-norm against (L - l)
    rates = np.array([np.polyfit(depth - layers, np.log(n), 1)[0] for n in norms])
    return {
        "W_vars": np.asarray(W_vars),
        "norms": norms,
        "rate_measured": rates,
        "rate_theory": np.log(np.asarray(W_vars) / 2.0),
        "depth": depth,
    }


# ------------------------------------------------------------------ figures


def _fig_propagation(sp: list[dict[str, Any]]):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for r in sp:
        lab = f"{r['activation']} $\\sigma_w^2$={r['W_var']}, $\\sigma_b^2$={r['b_var']}"
        l = np.arange(1, len(r["q_measured"]) + 1)
        (line,) = axes[0].plot(l, r["q_measured"], "o", ms=3, label=lab)
        axes[0].plot(l, r["q_theory"], "-", color=line.get_color())
        axes[1].plot(l, r["c_measured"], "o", ms=3, color=line.get_color())
        axes[1].plot(l, r["c_theory"], "-", color=line.get_color())
    axes[0].set_yscale("log")
    axes[0].set_xlabel("layer $l$")
    axes[0].set_ylabel("$q^l$")
    axes[1].set_xlabel("layer $l$")
    axes[1].set_ylabel("$c^l$")
    axes[0].legend(fontsize=7)
    fig.suptitle("Signal propagation: random networks (dots) vs mean-field maps (lines)")
    return fig


def _fig_phase(pd: dict[str, Any]):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    ext = [pd["W_grid"][0], pd["W_grid"][-1], pd["b_grid"][0], pd["b_grid"][-1]]
    panels = (("theory $\\chi_1$", pd["chi1"]), ("measured $\\hat\\chi_1$", pd["chi1_measured"]))
    for ax, (t, z) in zip(axes, panels, strict=True):
        im = ax.imshow(
            z.T, origin="lower", extent=ext, aspect="auto", cmap="RdBu_r", vmin=0.4, vmax=1.6
        )
        ax.contour(pd["W_grid"], pd["b_grid"], z.T, levels=[1.0], colors="k")
        ax.plot(pd["critical_W"], pd["critical_b"], "y--", label="critical_W_var")
        ax.set_xlabel("$\\sigma_w^2$")
        ax.set_title(t + " (ordered < 1 < chaotic)")
    axes[0].set_ylabel("$\\sigma_b^2$")
    axes[0].legend(fontsize=8)
    fig.colorbar(im, ax=axes)
    return fig


def _fig_trainability(tr: dict[str, Any]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    W, L = tr["W_grid"], tr["depths"]
    im = ax.pcolormesh(W, L, tr["train_accuracy"].T, shading="nearest", cmap="viridis")
    ax.plot(tr["W_fine"], 6 * tr["xi_c_fine"], "r-", lw=2, label=r"$6\xi_c$")
    ax.set_ylim(L.min() - 2, L.max() + 2)
    ax.set_xlabel(rf"$\sigma_w^2$ ($\sigma_b^2$ = {tr['b_var']:g})")
    ax.set_ylabel("depth $L$")
    ax.set_title("tanh trainability (train accuracy after a short run)")
    ax.legend()
    fig.colorbar(im, ax=ax)
    return fig


def _fig_gradients(rg: dict[str, Any]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    L = rg["depth"]
    layers = np.arange(1, L + 1)
    for w, nrm, rate in zip(rg["W_vars"], rg["norms"], rg["rate_theory"], strict=True):
        (line,) = ax.semilogy(layers, nrm / nrm[-1], "o", ms=3, label=f"$\\sigma_w^2$={w:g}")
        ax.semilogy(layers, np.exp(rate * (L - layers)), "-", color=line.get_color())
    ax.set_xlabel("layer $l$")
    ax.set_ylabel(r"$E\|\partial f/\partial h^l\|^2 / E\|\partial f/\partial h^L\|^2$")
    ax.set_title(r"ReLU back-propagation vs $(\sigma_w^2/2)^{L-l}$")
    ax.legend(fontsize=8)
    return fig


# ------------------------------------------------------------------ run


#: Sizes of the four parts per mode: signal propagation, phase diagram (grid and
#: network), trainability (grid and training) and ReLU gradients.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "signal": dict(depth=20, width=512, num_nets=8),
        "phase_grid": dict(W_grid=np.linspace(0.5, 4.0, 12), b_grid=np.linspace(0.0, 1.0, 9)),
        "phase_net": dict(depth=20, width=256),
        "train_grid": dict(
            W_grid=np.linspace(0.25, 4.0, 8), depths=np.array([4, 8, 16, 32]), width=64
        ),
        "train_run": dict(steps=200, lr=0.01),
        "gradients": dict(depth=30, width=256, num_nets=32),
    },
    "full": {
        "signal": dict(depth=40, width=2000, num_nets=16),
        "phase_grid": dict(W_grid=np.linspace(0.5, 4.0, 36), b_grid=np.linspace(0.0, 1.0, 21)),
        "phase_net": dict(depth=40, width=1000),
        "train_grid": dict(
            W_grid=np.linspace(0.25, 4.0, 16),
            depths=np.array([4, 8, 16, 24, 32, 48, 64, 96, 128]),
            width=256,
        ),
        "train_run": dict(steps=1000, lr=0.01),
        "gradients": dict(depth=50, width=1024, num_nets=64),
    },
}
#: Weight variances of the ReLU gradient part.
RELU_W_VARS = np.array([1.6, 1.8, 2.0, 2.2, 2.4])


def run(cfg: Config) -> Result:
    """Signal propagation, phase diagram, trainability and ReLU gradients."""
    key = jax.random.key(cfg.seed)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    configs = [
        ("tanh", 1.3, 0.05),
        ("tanh", 1.76, 0.05),
        ("tanh", 2.5, 0.05),
        ("relu", 1.5, 0.1),
        ("relu", 2.0, 0.0),
    ]
    sp_size, pd_size, pd_net, tr_size, tr_run, rg_size = SIZES[
        "quick" if cfg.quick else "full"
    ].values()
    say = (lambda s: None) if cfg.quiet else print
    say("signal propagation ...")
    sp = signal_propagation(k1, configs, **sp_size)
    say("phase diagram ...")
    pd = phase_diagram(k2, pd_size["W_grid"], pd_size["b_grid"], **pd_net)
    say("trainability ...")
    tr = trainability(k3, tr_size["W_grid"], tr_size["depths"], tr_size["width"], **tr_run)
    say("ReLU gradients ...")
    rg = relu_gradients(k4, RELU_W_VARS, **rg_size)

    figures = [
        save_figure(_fig_propagation(sp), cfg, "signal_propagation"),
        save_figure(_fig_phase(pd), cfg, "phase_diagram"),
        save_figure(_fig_trainability(tr), cfg, "trainability"),
        save_figure(_fig_gradients(rg), cfg, "relu_gradients"),
    ]

    q_err = max(float(np.max(np.abs(r["q_measured"] / r["q_theory"] - 1))) for r in sp)
    c_err = max(float(np.max(np.abs(r["c_measured"] - r["c_theory"]))) for r in sp)
    # Monte Carlo z-scores (finite-width fluctuations are O(sqrt(L/n)) per network)
    q_z = max(
        float(np.max(np.abs(r["q_measured"] - r["q_theory"]) / (r["q_sem"] + 1e-3 * r["q_theory"])))
        for r in sp
    )
    c_z = max(
        float(np.max(np.abs(r["c_measured"] - r["c_theory"]) / (r["c_sem"] + 1e-3))) for r in sp
    )
    tanh_crit = sp[1]
    qstar_err = abs(tanh_crit["q_measured"][-1] / tanh_crit["q_star"] - 1)
    chaotic = sp[2]
    away = np.abs(pd["chi1"] - 1) > 0.1
    agree = float(np.mean((pd["chi1"][away] > 1) == (pd["chi1_measured"][away] > 1)))
    chi_err = float(np.mean(np.abs(pd["chi1_measured"] - pd["chi1"])))
    trainable = tr["train_accuracy"] > 0.5
    predicted = tr["depths"][None, :] < 6 * tr["xi_c"][:, None]
    tr_agree = float(np.mean(trainable == predicted))
    rate_err = float(np.max(np.abs(rg["rate_measured"] - rg["rate_theory"])))
    crit = rg["norms"][list(rg["W_vars"]).index(2.0)]
    checks = [
        check(
            "q^l measured vs variance map (max |z|, all layers and configs)",
            0.0,
            q_z,
            4.0,
            note=f"max relative error {q_err:.3f}",
        ),
        check(
            "c^l measured vs correlation map (max |z|, all layers and configs)",
            0.0,
            c_z,
            4.0,
            note=f"max absolute error {c_err:.3f}",
        ),
        check("tanh q^L vs fixed point q* (sigma_w^2=1.76, rel)", 0.0, qstar_err, 0.03),
        check(
            "tanh chaotic c^L vs c* (sigma_w^2=2.5)",
            chaotic["c_star"],
            chaotic["c_measured"][-1],
            0.03,
        ),
        check("phase agreement sign(chi_hat-1)=sign(chi_1-1), |chi_1-1|>0.1", 1.0, agree, 0.05),
        check("empirical chi_1 (one network) vs theory (mean abs err)", 0.0, chi_err, 0.05),
        check("trainable (acc>0.5) iff L < 6 xi_c (fraction of grid)", 1.0, tr_agree, 0.2),
        check(
            "ReLU backprop per-layer log-rate vs log(sigma_w^2/2) (max abs err)",
            0.0,
            rate_err,
            0.02,
            note="Monte Carlo: relative variance of |delta^1|^2 per network is (1+5/n)^L - 1",
        ),
        check(
            "ReLU sigma_w^2=2: |delta^1|^2/|delta^L|^2",
            1.0,
            crit[0] / crit[-1],
            0.25,
            note="constant with depth at criticality",
        ),
    ]
    metrics = {
        "signal_propagation": sp,
        "phase_diagram": pd,
        "trainability": tr,
        "relu_gradients": rg,
    }
    config = {
        "configs": configs,
        "signal_propagation": sp_size,
        "phase_diagram": {**pd_size, **pd_net},
        "trainability": {**tr_size, **tr_run},
        "relu_gradients": rg_size,
    }
    summary = (
        f"q err {q_err:.3f} (|z|<={q_z:.1f}), c err {c_err:.3f} (|z|<={c_z:.1f}), "
        f"phase agreement {agree:.2f}, "
        f"trainability agreement {tr_agree:.2f}, ReLU rate err {rate_err:.4f}"
    )
    return Result(metrics, checks, figures, config, summary)


def main(argv=None):
    return cli(run, __doc__, argv)


if __name__ == "__main__":
    main()
