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
   networks (mean and SE over networks, ``vmap``) against the iterated maps
   (Poole et al. 2016, eqs. 3 and 5), the measured deep-layer :math:`q` at the
   tanh critical point against :math:`q^*` and the chaotic :math:`c^L` against
   the stable fixed point :math:`c^* < 1`.
2. **Phase diagram** over :math:`(\sigma_w^2, \sigma_b^2)` for tanh: theory
   :math:`\chi_1` with the critical line :math:`\chi_1 = 1`
   (``critical_W_var``), and the empirical :math:`\hat\chi_1 = \sigma_w^2
   \frac1n\sum_i\phi'(h^L_i)^2`, mean and SE over several random networks per
   grid point; the phases must agree wherever :math:`\chi_1` is more than 3 SE
   from 1, and :math:`\hat\chi_1` must match :math:`\chi_1` in SE units.
3. **Trainability** (Schoenholz et al. 2017, Sec. 5, Figs. 5-6): networks
   deeper than :math:`6\xi_c`, :math:`\xi_c^{-1} = -\log\chi_c` (their eq. 9,
   ``meanfield.depth_scales``), do not train. Depth-:math:`L` tanh networks
   (:math:`\sigma_b^2 = 0.05`, critical :math:`\sigma_w^2 \approx 1.76`) are
   trained on the digits data for a grid of :math:`\sigma_w^2` on **both
   sides** of criticality and depths on both sides of :math:`6\xi_c` at each
   (quick: :math:`\sigma_w^2 \in \{0.45, 0.9, 1.2, 1.4\}` ordered,
   :math:`\{2.5, 6, 30\}` chaotic, with :math:`6\xi_c \approx 6, 17, 36, 64`
   and :math:`71, 33, 19`, against :math:`L \in \{6, 12, 24, 48\}`; far from
   criticality :math:`\xi_c` is short, which keeps the deepest network cheap). Optimiser:
   SGD with momentum 0.9 at the small learning rate :math:`10^{-3}` (the
   paper trains with SGD/RMSProp at :math:`10^{-3}`; at :math:`10^{-2}` with
   momentum deep near-critical networks fail for optimisation reasons and the
   boundary is lost), minibatches of 32 (full: 64),
   cross-entropy, 1000 steps quick / 4000 full. A cell is *trainable* when its
   train accuracy, averaged over seeds, exceeds 0.5: chance is 0.1, shallow
   networks reach > 0.9, and untrainable ones stay near chance, so 0.5 sits in
   the gap between the two modes. The checked claim: the predictor
   :math:`L < 6\xi_c` has **balanced accuracy** (mean of the fractions of
   trainable and of untrainable cells it gets right) above 0.8 on the
   ordered and on the chaotic side separately (strictly: on the exact map a
   predictor off by the grid's depth factor 2, :math:`3\xi_c`, scores 0.8).
   The grid must make that claim falsifiable: on each side the best depth cutoff that ignores
   :math:`\sigma_w^2` ("trainable iff :math:`L < c`" for one :math:`c`) must
   score at most 0.8 (a consistency check; the always-trainable predictor, 0.5
   by construction, is its special case :math:`c > \max L`), which is why the
   grid spans :math:`6\xi_c` from about 6 to 70 layers; and a unit test shows
   that a wrong scale, :math:`2\xi_c` or :math:`\xi_c/2`, fails on the true
   boundary. Where this stops: on the chaotic side :math:`6\xi_c` only runs
   from about 16 (:math:`\sigma_w^2 \to \infty`) upwards, so with depths up
   to 48 even a map that follows :math:`6\xi_c` exactly is matched by the flat
   cutoff :math:`L < 24` at balanced accuracy 0.83 (0.89 on the full grid, up to
   128 layers): there the control passes only because the measured boundary
   falls with :math:`\sigma_w^2` faster than :math:`6\xi_c` (measured 0.69 in
   quick mode); a chaotic-side test that a flat line must fail needs
   near-critical columns and depths of several hundred layers. On the ordered
   side the exact map gives 0.77 and the measured one 0.67.
   Training is :func:`wideth.train.run` with
   :func:`wideth.train.train_step`, vmapped over every (:math:`\sigma_w^2`,
   :math:`L`, seed): hidden layers are stacked and applied by ``lax.scan``
   with a depth mask (a frozen ``depth`` leaf of the parameters), so one
   compilation serves every depth (tested to equal :class:`wideth.models.MLP`
   in standard parameterisation). 6 :math:`\xi_c` is the boundary after long
   training (their Fig. 6: the trainable region grows with training time
   towards it); a finite run sees it blurred by a factor of order one, which
   the grid's factor-2 depth spacing and the 0.8 bar allow for.
4. **ReLU gradients**: the back-propagated signal :math:`\delta^l =
   \partial f/\partial h^l` of a depth-:math:`L` ReLU network (no biases)
   obeys :math:`\mathbb E\|\delta^l\|^2 = (\sigma_w^2/2)^{L-l}\,\mathbb
   E\|\delta^L\|^2` (He et al. 2015; :math:`\chi_1 = \sigma_w^2/2`): constant
   at the critical :math:`\sigma_w^2 = 2` (He initialisation), geometric
   explosion/vanishing otherwise. The fitted per-layer log-rate is compared
   with :math:`\log(\sigma_w^2/2)` and the end-to-end ratio at
   :math:`\sigma_w^2 = 2` with 1, both with jackknife SEs over networks.

Tolerances: curves are checked as :math:`\max|z| \le 4` (``check_max_z``),
:math:`z` the error in standard errors over independent networks plus a
stated finite-width floor; single numbers within 3 SE.

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

from experiments.common import (
    Config,
    Result,
    Sizes,
    check,
    check_max_z,
    cli,
    measured_str,
    save_figure,
)
from wideth import activations
from wideth.kernels import meanfield as mf

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
    phi = activations.get(activation)

    def stats(h):
        n2 = jnp.sum(h * h, axis=1)
        q = jnp.mean(n2) / width
        c = jnp.sum(h[0] * h[1]) / jnp.sqrt(n2[0] * n2[1])
        chi = W_var * jnp.mean(mf.derivative(activation, h[0]) ** 2)
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


#: Networks propagated together under ``vmap`` (larger grids run in groups of configs).
NETS_PER_BATCH = 192


def propagate_many(
    keys: jax.Array, x: jax.Array, W: jax.Array, b: jax.Array, depth: int, width: int, act: str
) -> dict[str, jax.Array]:
    """:func:`propagate` vmapped over configs ``(C,)`` and networks ``keys (C, N)``."""
    return propagate_program(depth, width, act)(keys, x, W, b)


@functools.cache
def propagate_program(depth: int, width: int, act: str) -> Callable:
    """Jitted ``(keys (C, N), x, W (C,), b (C,)) -> stats``: configs in groups under ``vmap``.

    ``max(1, NETS_PER_BATCH // N)`` configs at a time bound memory (the full phase
    diagram, 756 x 8 networks of width 1000 at once, would need 90 GiB).
    """
    per_net = jax.vmap(propagate, (0, None, None, None, None, None, None))

    @jax.jit
    def run(keys, x, W, b):
        one = lambda a: per_net(a[0], x, a[1], a[2], depth, width, act)
        per_batch = max(1, NETS_PER_BATCH // keys.shape[1])
        return jax.lax.map(one, (keys, W, b), batch_size=per_batch)

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
        m = propagate_many(keys[np.array(idx)], x, W, b, depth, width, act)
        m = jax.tree.map(lambda a: np.asarray(a, np.float64), m)
        for j, i in enumerate(idx):
            _, Wv, bv = configs[i]
            th = theory_maps(act, Wv, bv, q_x, c_x, depth)
            q_star, chi1 = mf.fixed_point(act, Wv, bv)
            out[i] = {
                "activation": act,
                "W_var": Wv,
                "b_var": bv,
                "num_nets": num_nets,
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
    key: jax.Array,
    W_grid: np.ndarray,
    b_grid: np.ndarray,
    depth: int,
    width: int,
    num_nets: int,
) -> dict[str, Any]:
    r"""Theory :math:`\chi_1` and the mean and SE of :math:`\hat\chi_1` over ``num_nets`` networks.

    :math:`\hat\chi_1` of one network is :math:`\sigma_w^2\frac1n\sum_i\phi'(h^l_i)^2`
    averaged over its last four layers :math:`l = L-3..L`; the SE is the spread over
    the ``num_nets`` independent networks of each grid point divided by
    :math:`\sqrt{\text{num\_nets}}`.
    """
    Wm, Bm = np.meshgrid(W_grid, b_grid, indexing="ij")
    chi = jax.vmap(lambda w, b: mf.fixed_point("tanh", w, b)[1])(
        jnp.asarray(Wm.ravel(), jnp.float32), jnp.asarray(Bm.ravel(), jnp.float32)
    )
    x = two_inputs(jax.random.fold_in(key, 1), 50, 1.0, 0.5)
    keys = jax.random.split(key, (Wm.size, num_nets))
    W = jnp.asarray(Wm.ravel(), jnp.float32)
    m = propagate_many(keys, x, W, jnp.asarray(Bm.ravel(), jnp.float32), depth, width, "tanh")
    per_net = np.asarray(m["chi1"][:, :, -4:].mean(-1), np.float64)  # (points, nets)
    b_line = np.linspace(b_grid.min(), b_grid.max(), 21)
    W_line = np.array([float(mf.critical_W_var("tanh", float(b))) for b in b_line])
    return {
        "W_grid": W_grid,
        "b_grid": b_grid,
        "num_nets": num_nets,
        "chi1": np.asarray(chi, np.float64).reshape(Wm.shape),
        "chi1_measured": per_net.mean(1).reshape(Wm.shape),
        "chi1_sem": (per_net.std(1, ddof=1) / np.sqrt(num_nets)).reshape(Wm.shape),
        "critical_b": b_line,
        "critical_W": W_line,
    }


def phase_agreement(chi1: np.ndarray, measured: np.ndarray, sem: np.ndarray, k: float = 3.0):
    r"""Fraction of points with :math:`|\chi_1 - 1| > k\,\mathrm{SE}` whose measured phase agrees.

    The phase is :math:`\mathrm{sign}(\chi - 1)` (ordered :math:`< 1 <` chaotic).
    Points within :math:`k` SE of the critical line are left out: there the sign
    of a noisy estimate is a coin flip. Returns ``(fraction, number of points)``.
    """
    away = np.abs(chi1 - 1.0) > k * sem
    agree = (chi1[away] > 1) == (measured[away] > 1)
    return float(np.mean(agree)) if agree.size else float("nan"), int(away.sum())


# ------------------------------------------------------------------ trainability


#: Heavy-ball momentum of the trainability runs' SGD.
MOMENTUM = 0.9


def train_grid_program(
    width: int,
    max_depth: int,
    steps: int,
    lr: float,
    b_var: float,
    batch_size: int,
    nets_per_batch: int,
) -> Callable:
    """Jitted ``(keys, W_vars, depths, X, Y) -> (accuracy, final loss, stopped)`` per network.

    Each network is a tanh :mod:`wideth.stacked` MLP (depth an array, so one
    program serves every depth of the grid) initialised at its ``(W_var, depth)``
    and trained by :func:`wideth.train.run` with :func:`wideth.train.train_step`
    (cross-entropy, SGD with momentum :data:`MOMENTUM`, minibatches of
    ``batch_size`` drawn from the network's key); networks run
    ``nets_per_batch`` at a time under ``vmap`` (``lax.map`` over groups), which
    bounds memory at full size. The accuracy is on all of ``X``.
    """
    from wideth import stacked, train

    tx = optax.sgd(lr, momentum=MOMENTUM)

    def one(k, W_var, depth, X, Y):
        k_init, k_run = jax.random.split(k)
        params = stacked.init(
            k_init, X.shape[1], width, max_depth, Y.shape[1],
            W_std=jnp.sqrt(W_var), b_std=jnp.sqrt(b_var),
        )  # fmt: skip
        apply_fn = lambda p, x: stacked.apply(p, x, depth, "tanh")
        step = train.train_step(apply_fn, "xent", tx, metrics=())
        state = train.TrainState.create(params, tx, k_run)
        res = train.run(step, state, train.minibatches(X, Y, batch_size), steps)
        acc = train.accuracy(apply_fn(res.state.params, X), Y)
        return acc, jnp.nanmean(res.metrics["loss"][-10:]), res.stopped

    @jax.jit
    def train_grid(keys, W_vars, depths, X, Y):
        return jax.lax.map(
            lambda a: one(*a, X, Y), (keys, W_vars, depths), batch_size=nets_per_batch
        )

    return train_grid


def six_xi_c(W_vars: np.ndarray, b_var: float) -> np.ndarray:
    r""":math:`6\xi_c` (layers) per :math:`\sigma_w^2` (tanh), from ``meanfield.depth_scales``."""
    return np.array([6 * float(mf.depth_scales("tanh", float(w), b_var)[1]) for w in W_vars])


def balanced_accuracy(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    r"""Agreement of a trainability predictor with the measured map.

    ``sensitivity`` = fraction of measured-trainable cells predicted trainable,
    ``specificity`` = fraction of measured-untrainable cells predicted untrainable,
    ``balanced`` = their mean (0.5 for a constant predictor, whatever the grid's
    class balance; NaN when the grid has only one class).
    """
    p, m = np.asarray(predicted, bool), np.asarray(measured, bool)
    sens = float(np.mean(p[m])) if m.any() else float("nan")
    spec = float(np.mean(~p[~m])) if (~m).any() else float("nan")
    return {"sensitivity": sens, "specificity": spec, "balanced": 0.5 * (sens + spec)}


def trainability(
    key: jax.Array,
    W_grid: np.ndarray,
    depths: np.ndarray,
    width: int,
    seeds: int,
    steps: int,
    lr: float,
    batch_size: int,
    b_var: float,
    nets_per_batch: int,
) -> dict[str, Any]:
    """Train accuracy after ``steps`` of SGD for every (W_var, depth, seed), one program."""
    from wideth.data import digits

    ds = digits()
    X, Y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    Wm, Lm, _ = np.meshgrid(W_grid, depths, np.arange(seeds), indexing="ij")
    run = train_grid_program(width, int(depths.max()), steps, lr, b_var, batch_size, nets_per_batch)
    acc, loss, stopped = run(
        jax.random.split(key, Wm.size),
        jnp.asarray(Wm.ravel(), jnp.float32),
        jnp.asarray(Lm.ravel(), jnp.int32),
        X,
        Y,
    )
    acc = np.asarray(acc, np.float64).reshape(Wm.shape)
    W_fine = np.geomspace(W_grid.min(), W_grid.max(), 120)
    return {
        "W_grid": np.asarray(W_grid),
        "depths": np.asarray(depths),
        "b_var": b_var,
        "W_critical": float(mf.critical_W_var("tanh", b_var)),
        "accuracy_per_seed": acc,
        "accuracy": acc.mean(-1),
        "accuracy_sd": acc.std(-1, ddof=1) if seeds > 1 else np.zeros(acc.shape[:2]),
        "final_loss": np.asarray(loss, np.float64).reshape(Wm.shape),
        "stopped": np.asarray(stopped).reshape(Wm.shape),
        "six_xi_c": six_xi_c(W_grid, b_var),
        "W_fine": W_fine,
        "six_xi_c_fine": six_xi_c(W_fine, b_var),
        "chance": 1.0 / Y.shape[1],
    }


#: A cell is trainable when its seed-mean train accuracy exceeds this (see module docstring).
TRAINABLE_ACCURACY = 0.5
#: Balanced accuracy the 6 xi_c predictor must reach on each side of criticality.
BALANCED_BAR = 0.8


def flat_cutoff(depths: np.ndarray, measured: np.ndarray) -> tuple[float, float]:
    """Best balanced accuracy of ``trainable iff L < c`` with one ``c`` for every row.

    ``c`` runs over the grid depths and one past the deepest (every network
    trainable); returns ``(balanced accuracy, c)``.
    """
    L = np.asarray(depths)
    measured = np.asarray(measured, bool)
    cuts = np.r_[L, L.max() + 1]
    scores = [
        balanced_accuracy(np.broadcast_to(L[None, :] < c, measured.shape), measured)["balanced"]
        for c in cuts
    ]
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    i = int(np.argmax(scores))
    return float(scores[i]), float(cuts[i])


def trainability_checks(tr: dict[str, Any], xi_factor: float = 1.0) -> list[dict[str, Any]]:
    r"""Checks of "trainable iff :math:`L < 6\xi_c`" on each side of criticality.

    ``xi_factor`` scales :math:`\xi_c` (tests feed a wrong depth scale, e.g. 2).
    Claims: balanced accuracy :math:`>` ``BALANCED_BAR`` on the ordered and on the
    chaotic side. Controls: on each side the best depth cutoff that ignores
    :math:`\sigma_w^2` (:func:`flat_cutoff`) scores below the bar, so the grid can
    tell the curve from a flat line; the grid straddles the curve on each side
    (both classes predicted).
    """
    W, L = tr["W_grid"], tr["depths"]
    measured = tr["accuracy"] > TRAINABLE_ACCURACY
    predicted = L[None, :] < xi_factor * tr["six_xi_c"][:, None]
    sides = {"ordered": W < tr["W_critical"], "chaotic": W > tr["W_critical"]}
    out = []
    n_seeds = tr["accuracy_per_seed"].shape[-1]
    for side, rows in sides.items():
        ba = balanced_accuracy(predicted[rows], measured[rows])
        n = int(rows.sum()) * len(L)
        se = float(np.sqrt(0.8 * 0.2 / max(n, 1)))
        ok = bool(np.isfinite(ba["balanced"]) and ba["balanced"] > BALANCED_BAR)
        out.append(
            check(
                f"trainable (acc>{TRAINABLE_ACCURACY:g}) iff L < 6 xi_c, {side} side: "
                "balanced accuracy",
                f"> {BALANCED_BAR:g}",
                ba["balanced"],
                None,
                passed=ok,
                note=(
                    "Schoenholz et al. 2017, Sec. 5 and Fig. 5-6 (trainable for L < 6 xi_c, "
                    "xi_c of eq. 9 from meanfield.depth_scales); "
                    f"sensitivity {ba['sensitivity']:.2f}, specificity {ba['specificity']:.2f} "
                    f"over {n} cells ({n_seeds} seeds each); the bar allows the blur of a "
                    f"finite run (module docstring); binomial SE at 0.8 on {n} cells is {se:.2f}"
                ),
            )
        )
    for side, rows in sides.items():
        best, cut = flat_cutoff(L, measured[rows])
        out.append(
            check(
                f"{side} side: best sigma_w^2-blind depth cutoff, balanced accuracy "
                "(must not pass the bar)",
                f"<= {BALANCED_BAR:g}",
                best,
                None,
                passed=bool(np.isfinite(best) and best <= BALANCED_BAR),
                note=(
                    f"'trainable iff L < {cut:g}' at every sigma_w^2 is the best predictor that "
                    "ignores sigma_w^2; it must fail the claim's bar, or the grid cannot tell "
                    "the 6 xi_c curve from a flat line"
                ),
                kind="consistency",
            )
        )
    for side, rows in sides.items():
        p = predicted[rows]
        out.append(
            check(
                f"grid straddles 6 xi_c on the {side} side: cells predicted (un)trainable",
                "both > 0",
                [int(p.sum()), int((~p).sum())],
                None,
                passed=bool(p.any() and (~p).any()),
                note="regime condition: depths on both sides of the curve at some sigma_w^2",
                kind="consistency",
            )
        )
    return out


# ------------------------------------------------------------------ ReLU gradients


def relu_backprop_norms(
    key: jax.Array, W_vars: np.ndarray, depth: int, width: int, num_nets: int, d: int = 100
) -> np.ndarray:
    r""":math:`\|\partial f/\partial h^l\|^2`, :math:`l = 1..L`, of every network.

    Depth-``depth`` ReLU networks without biases, weights drawn inside ``lax.scan``;
    :math:`\delta^l` is the gradient with respect to an additive perturbation of
    :math:`h^l` (zero), readout :math:`f = \sqrt{\sigma_w^2/n}\,v^\top\phi(h^L)`.
    One program vmapped over ``W_vars`` and ``num_nets`` independent networks each.

    Returns:
      ``(len(W_vars), num_nets, depth)`` squared norms.
    """
    x = jax.random.normal(jax.random.fold_in(key, 7), (d,))
    keys = jax.random.split(key, (len(W_vars), num_nets))
    out = relu_norms_program(x, depth, width)(keys, jnp.asarray(W_vars, jnp.float32))
    return np.asarray(out, np.float64)


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


def log_rate(norms: np.ndarray) -> float:
    r"""Per-layer log-rate: slope of :math:`\log \overline{\|\delta^l\|^2}` against :math:`L-l`.

    ``norms`` is ``(num_nets, depth)``; the mean is over networks (the mean obeys
    the exact recursion; the mean of logs is biased by the per-layer variance).
    """
    L = norms.shape[-1]
    return float(np.polyfit(L - np.arange(1, L + 1), np.log(norms.mean(0)), 1)[0])


def jackknife_se(stat: Callable[[np.ndarray], float], samples: np.ndarray) -> float:
    r"""Jackknife standard error of ``stat`` over the rows (networks) of ``samples``.

    :math:`\mathrm{SE}^2 = \frac{N-1}{N}\sum_i (\hat\theta_{-i} - \bar\theta)^2`.
    """
    n = samples.shape[0]
    loo = np.array([stat(np.delete(samples, i, axis=0)) for i in range(n)])
    return float(np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)))


def relu_gradients(
    key: jax.Array, W_vars: np.ndarray, depth: int, width: int, num_nets: int
) -> dict[str, Any]:
    r"""Mean back-propagated norms, fitted log-rates and their jackknife SEs per ``W_var``.

    Also the end-to-end ratio :math:`\overline{\|\delta^1\|^2}/\overline{\|\delta^L\|^2}`
    (theory :math:`(\sigma_w^2/2)^{L-1}`) with its jackknife SE.
    """
    per_net = relu_backprop_norms(key, W_vars, depth, width, num_nets)
    ratio = lambda n: float(n[:, 0].mean() / n[:, -1].mean())
    return {
        "W_vars": np.asarray(W_vars),
        "norms": per_net.mean(1),
        "norms_sem": per_net.std(1, ddof=1) / np.sqrt(num_nets),
        "rate_measured": np.array([log_rate(n) for n in per_net]),
        "rate_se": np.array([jackknife_se(log_rate, n) for n in per_net]),
        "rate_theory": np.log(np.asarray(W_vars) / 2.0),
        "ratio_measured": np.array([ratio(n) for n in per_net]),
        "ratio_se": np.array([jackknife_se(ratio, n) for n in per_net]),
        "ratio_theory": (np.asarray(W_vars) / 2.0) ** (depth - 1),
        "depth": depth,
        "num_nets": num_nets,
    }


# ------------------------------------------------------------------ figures


def _fig_propagation(sp: list[dict[str, Any]]):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for r in sp:
        lab = f"{r['activation']} $\\sigma_w^2$={r['W_var']}, $\\sigma_b^2$={r['b_var']}"
        l = np.arange(1, len(r["q_measured"]) + 1)
        line = axes[0].errorbar(l, r["q_measured"], 2 * r["q_sem"], fmt="o", ms=3, label=lab)
        color = line[0].get_color()
        axes[0].plot(l, r["q_theory"], "-", color=color)
        axes[1].errorbar(l, r["c_measured"], 2 * r["c_sem"], fmt="o", ms=3, color=color)
        axes[1].plot(l, r["c_theory"], "-", color=color)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("layer $l$")
    axes[0].set_ylabel("$q^l$")
    axes[1].set_xlabel("layer $l$")
    axes[1].set_ylabel("$c^l$")
    axes[0].legend(fontsize=7)
    fig.suptitle("Signal propagation: random networks (dots, ±2 SE) vs mean-field maps (lines)")
    return fig


def _fig_phase(pd: dict[str, Any]):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    ext = [pd["W_grid"][0], pd["W_grid"][-1], pd["b_grid"][0], pd["b_grid"][-1]]
    z = (pd["chi1_measured"] - pd["chi1"]) / (pd["chi1_sem"] + CHI_FLOOR)
    panels = (
        ("theory $\\chi_1$", pd["chi1"], "RdBu_r", (0.4, 1.6)),
        (
            f"measured $\\hat\\chi_1$ ({pd['num_nets']} nets)",
            pd["chi1_measured"],
            "RdBu_r",
            (0.4, 1.6),
        ),
        (
            f"$z=(\\hat\\chi_1-\\chi_1)/(\\mathrm{{SE}}+{CHI_FLOOR:g})$ "
            f"(checked: $|z|\\leq${Z_MAX:g})",
            z,
            "PuOr",
            (-4, 4),
        ),
    )
    for ax, (t, v, cmap, (lo, hi)) in zip(axes, panels, strict=True):
        im = ax.imshow(v.T, origin="lower", extent=ext, aspect="auto", cmap=cmap, vmin=lo, vmax=hi)
        if "SE" not in t:
            ax.contour(pd["W_grid"], pd["b_grid"], v.T, levels=[1.0], colors="k")
        ax.plot(pd["critical_W"], pd["critical_b"], "y--", label="critical_W_var")
        ax.set_xlabel("$\\sigma_w^2$")
        ax.set_title(t, fontsize=9)
        fig.colorbar(im, ax=ax)
    axes[0].set_ylabel("$\\sigma_b^2$")
    axes[0].legend(fontsize=8)
    return fig


def _fig_trainability(tr: dict[str, Any]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    W, L = tr["W_grid"], tr["depths"]
    Wm, Lm = np.meshgrid(W, L, indexing="ij")
    measured = tr["accuracy"] > TRAINABLE_ACCURACY
    predicted = L[None, :] < tr["six_xi_c"][:, None]
    bad = measured != predicted
    sc = ax.scatter(
        Wm.ravel(),
        Lm.ravel(),
        c=tr["accuracy"].ravel(),
        s=600,
        marker="s",
        cmap="viridis",
        vmin=tr["chance"],
        vmax=1.0,
        edgecolors=np.where(bad.ravel(), "r", "none"),
        linewidths=2.5,
    )
    for i, w in enumerate(W):
        for j, d in enumerate(L):
            a = tr["accuracy"][i, j]
            ax.text(
                w,
                d,
                f"{a:.2f}\n±{tr['accuracy_sd'][i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=6,
                color="k" if a > 0.6 else "w",
            )
    ax.plot(tr["W_fine"], tr["six_xi_c_fine"], "r-", lw=2, label=r"$6\xi_c$ (checked)")
    ax.axvline(tr["W_critical"], color="k", ls=":", label=r"critical $\sigma_w^2$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(plt.NullLocator())
    ax.set_yticks(L, [str(int(d)) for d in L])
    ax.set_ylim(L.min() / 1.5, L.max() * 1.5)
    ax.set_xlim(W.min() / 1.5, W.max() * 1.5)
    ax.set_xlabel(rf"$\sigma_w^2$ ($\sigma_b^2$ = {tr['b_var']:g}; ordered | chaotic)")
    ax.set_ylabel("depth $L$")
    n = tr["accuracy_per_seed"].shape[-1]
    ax.set_title(
        f"tanh train accuracy, mean ± sd over {n} seeds (red edge: disagrees with "
        f"$L<6\\xi_c$ at acc > {TRAINABLE_ACCURACY:g})",
        fontsize=8,
    )
    ax.legend(fontsize=8, loc="center")
    fig.colorbar(sc, ax=ax, label="train accuracy")
    return fig


def _fig_gradients(rg: dict[str, Any]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    L = rg["depth"]
    layers = np.arange(1, L + 1)
    rows = zip(
        rg["W_vars"], rg["norms"], rg["norms_sem"], rg["rate_theory"], rg["rate_se"], strict=True
    )
    for w, nrm, sem, rate, se in rows:
        lab = f"$\\sigma_w^2$={w:g} (rate SE {se:.1e})"
        line = ax.errorbar(layers, nrm / nrm[-1], 2 * sem / nrm[-1], fmt="o", ms=3, label=lab)
        ax.plot(layers, np.exp(rate * (L - layers)), "-", color=line[0].get_color())
    ax.set_yscale("log")
    ax.set_xlabel("layer $l$")
    ax.set_ylabel(r"$E\|\partial f/\partial h^l\|^2 / E\|\partial f/\partial h^L\|^2$")
    ax.set_title(r"ReLU back-propagation (dots, ±2 SE) vs $(\sigma_w^2/2)^{L-l}$ (lines)")
    ax.legend(fontsize=7)
    return fig


# ------------------------------------------------------------------ run

SIZES = Sizes(
    quick=dict(
        signal=dict(depth=20, width=512, num_nets=8),
        phase_grid=dict(W_grid=np.linspace(0.5, 4.0, 12), b_grid=np.linspace(0.0, 1.0, 9)),
        phase_net=dict(depth=20, width=256, num_nets=4),
        train_grid=dict(
            W_grid=np.array([0.45, 0.9, 1.2, 1.4, 2.5, 6.0, 30.0]),
            depths=np.array([6, 12, 24, 48]),
            width=64,
            seeds=2,
        ),
        train_run=dict(steps=1000, lr=1e-3, batch_size=32, b_var=0.05, nets_per_batch=40),
        gradients=dict(depth=30, width=256, num_nets=32),
    ),
    full=dict(
        signal=dict(depth=40, width=2000, num_nets=16),
        phase_grid=dict(W_grid=np.linspace(0.5, 4.0, 36), b_grid=np.linspace(0.0, 1.0, 21)),
        phase_net=dict(depth=40, width=1000, num_nets=8),
        train_grid=dict(
            W_grid=np.array([0.5, 0.7, 0.9, 1.2, 1.4, 2.5, 4.0, 6.0, 10.0, 30.0]),
            depths=np.array([6, 8, 12, 16, 24, 32, 48, 64, 96, 128]),
            width=256,
            seeds=4,
        ),
        train_run=dict(steps=4000, lr=1e-3, batch_size=64, b_var=0.05, nets_per_batch=40),
        gradients=dict(depth=50, width=1024, num_nets=64),
    ),
)
#: Weight variances of the ReLU gradient part.
RELU_W_VARS = np.array([1.6, 1.8, 2.0, 2.2, 2.4])
#: Signal-propagation configurations ``(activation, W_var, b_var)``: tanh ordered,
#: critical, chaotic; ReLU ordered and critical (He).
CONFIGS = [
    ("tanh", 1.3, 0.05),
    ("tanh", 1.76, 0.05),
    ("tanh", 2.5, 0.05),
    ("relu", 1.5, 0.1),
    ("relu", 2.0, 0.0),
]
#: Floor added to the SE of chi_hat_1: the finite-depth bias of q^L (at sigma_b^2 = 0 in the
#: ordered phase q^L -> 0 only geometrically and the SE vanishes there) and the O(1/n) one.
CHI_FLOOR = 0.01
#: Max-|z| bound for a curve of many points (Bonferroni: P(|z| > 4) = 6e-5 per point).
Z_MAX = 4.0


def plan(cfg: Config) -> dict[str, Any]:
    """Sizes, keys and the jitted (not yet compiled) programs of every part."""
    sz = SIZES(cfg)
    keys = dict(
        zip(
            ("signal", "phase", "train", "relu"),
            jax.random.split(jax.random.key(cfg.seed), 4),
            strict=True,
        )
    )
    tg, trr = sz.train_grid, sz.train_run
    return dict(
        sz=sz,
        keys=keys,
        programs={
            "signal": propagate_program(sz.signal["depth"], sz.signal["width"], "tanh"),
            "phase": propagate_program(sz.phase_net["depth"], sz.phase_net["width"], "tanh"),
            "train": train_grid_program(
                tg["width"],
                int(tg["depths"].max()),
                trr["steps"],
                trr["lr"],
                trr["b_var"],
                trr["batch_size"],
                trr["nets_per_batch"],
            ),
            "relu": relu_norms_program(
                jnp.zeros(100), sz.gradients["depth"], sz.gradients["width"]
            ),
        },
        six_xi_c=six_xi_c(tg["W_grid"], trr["b_var"]),
    )


def signal_checks(sp: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Checks of the measured ``q^l``, ``c^l`` against the maps, ``q*`` and ``c*``."""
    src = "Poole et al. 2016, eqs. 3 and 5 (meanfield.variance_map, correlation_map)"
    q_z = np.concatenate(
        [(r["q_measured"] - r["q_theory"]) / (r["q_sem"] + 1e-3 * r["q_theory"]) for r in sp]
    )
    c_z = np.concatenate([(r["c_measured"] - r["c_theory"]) / (r["c_sem"] + 1e-3) for r in sp])
    npts = q_z.size
    nn = sp[0]["num_nets"]
    crit, chaotic = sp[1], sp[2]
    q_tol = 3 * crit["q_sem"][-1] + 1e-3 * crit["q_star"]
    c_transient = abs(chaotic["c_theory"][-1] - chaotic["c_star"])
    c_tol = 3 * chaotic["c_sem"][-1] + 1e-3 + c_transient
    return [
        check_max_z(
            "q^l measured vs variance map: max |z| over all layers and configs",
            q_z,
            Z_MAX,
            note=f"{src}; z = error / (SE over {nn} networks + 1e-3 q, the O(1/n) "
            f"finite-width bias); {Z_MAX:g} SE bounds {npts} points (Bonferroni)",
        ),
        check_max_z(
            "c^l measured vs correlation map: max |z| over all layers and configs",
            c_z,
            Z_MAX,
            note=f"{src}; z = error / (SE over networks + 1e-3); {Z_MAX:g} SE over {npts} points",
        ),
        check(
            f"tanh q^L vs fixed point q* (sigma_w^2={crit['W_var']})",
            crit["q_star"],
            crit["q_measured"][-1],
            q_tol,
            note="Poole et al. 2016, eq. 3 fixed point (meanfield.fixed_point); tolerance "
            "3 SE over networks + 1e-3 q* (finite-width bias)",
        ),
        check(
            f"tanh chaotic c^L vs c* (sigma_w^2={chaotic['W_var']})",
            chaotic["c_star"],
            chaotic["c_measured"][-1],
            c_tol,
            note="Poole et al. 2016 / Schoenholz et al. 2017 eq. 5 stable fixed point c* < 1 "
            f"(meanfield.c_star); tolerance 3 SE + 1e-3 + the map's remaining transient "
            f"|c^L_map - c*| = {c_transient:.4f} at depth L",
        ),
    ]


def phase_checks(pd: dict[str, Any]) -> list[dict[str, Any]]:
    r"""Phase agreement away from the line and :math:`\hat\chi_1` vs :math:`\chi_1` in SE units."""
    frac, n = phase_agreement(pd["chi1"], pd["chi1_measured"], pd["chi1_sem"])
    z = (pd["chi1_measured"] - pd["chi1"]) / (pd["chi1_sem"] + CHI_FLOOR)
    src = "Poole et al. 2016 / Schoenholz et al. 2017 eq. 4: chi_1 (meanfield.fixed_point)"
    return [
        check(
            "phase sign(chi_hat-1) = sign(chi_1-1) where |chi_1-1| > 3 SE (fraction)",
            1.0,
            frac,
            0.05,
            note=f"{src}; {n} points, SE over {pd['num_nets']} networks per point; a point "
            "3 SE from the line disagrees with probability < 0.2%, so >= 95% must agree",
        ),
        check_max_z(
            "empirical chi_1 vs theory: max |z| over the grid",
            z,
            Z_MAX,
            note=f"{src}; z = error / (SE over {pd['num_nets']} networks + {CHI_FLOOR:g}, the "
            f"finite-depth/width bias of q^L); {Z_MAX:g} SE bounds {z.size} points",
        ),
    ]


def relu_checks(rg: dict[str, Any]) -> list[dict[str, Any]]:
    """Fitted log-rates vs log(sigma_w^2/2), and the end-to-end ratio at sigma_w^2 = 2."""
    z = (rg["rate_measured"] - rg["rate_theory"]) / rg["rate_se"]
    i = list(rg["W_vars"]).index(2.0)
    return [
        check_max_z(
            "ReLU backprop per-layer log-rate vs log(sigma_w^2/2): max |z|",
            z,
            Z_MAX,
            note=f"He et al. 2015 eq. 13 / Schoenholz et al. 2017 Sec. 4 (chi_1 = sigma_w^2/2); "
            f"SE by jackknife over {rg['num_nets']} networks; {Z_MAX:g} SE over "
            f"{z.size} sigma_w^2",
        ),
        check(
            "ReLU sigma_w^2=2: E|delta^1|^2 / E|delta^L|^2",
            1.0,
            rg["ratio_measured"][i],
            3 * rg["ratio_se"][i],
            note="He et al. 2015: the gradient norm is preserved at sigma_w^2 = 2; tolerance "
            f"3 SE (jackknife over {rg['num_nets']} networks)",
        ),
    ]


def run(cfg: Config) -> Result:
    """Signal propagation, phase diagram, trainability and ReLU gradients."""
    p = plan(cfg)
    sz, keys = p["sz"], p["keys"]
    say = (lambda s: None) if cfg.quiet else print
    say("signal propagation ...")
    sp = signal_propagation(keys["signal"], CONFIGS, **sz.signal)
    say("phase diagram ...")
    pd = phase_diagram(
        keys["phase"], sz.phase_grid["W_grid"], sz.phase_grid["b_grid"], **sz.phase_net
    )
    say("trainability ...")
    tr = trainability(keys["train"], **sz.train_grid, **sz.train_run)
    say("ReLU gradients ...")
    rg = relu_gradients(keys["relu"], RELU_W_VARS, **sz.gradients)

    figures = [
        save_figure(_fig_propagation(sp), cfg, "signal_propagation"),
        save_figure(_fig_phase(pd), cfg, "phase_diagram"),
        save_figure(_fig_trainability(tr), cfg, "trainability"),
        save_figure(_fig_gradients(rg), cfg, "relu_gradients"),
    ]
    checks = signal_checks(sp) + phase_checks(pd) + trainability_checks(tr) + relu_checks(rg)
    metrics = {
        "signal_propagation": sp,
        "phase_diagram": pd,
        "trainability": tr,
        "relu_gradients": rg,
    }
    config = {
        "configs": CONFIGS,
        "signal_propagation": sz.signal,
        "phase_diagram": {**sz.phase_grid, **sz.phase_net},
        "trainability": {
            **sz.train_grid,
            **sz.train_run,
            "optimizer": f"SGD, momentum {MOMENTUM}, cross-entropy, digits train split",
            "trainable_accuracy": TRAINABLE_ACCURACY,
            "balanced_accuracy_bar": BALANCED_BAR,
        },
        "relu_gradients": sz.gradients,
    }
    # balanced accuracy of "L < s 6 xi_c" for a few scales s (s = 1 is the checked one)
    measured = tr["accuracy"] > TRAINABLE_ACCURACY
    tr["balanced_accuracy_by_xi_scale"] = {
        f"{s:g}": balanced_accuracy(tr["depths"][None, :] < s * tr["six_xi_c"][:, None], measured)[
            "balanced"
        ]
        for s in (0.5, 1.0, 2.0)
    }
    ba = [measured_str(c) for c in checks if "balanced accuracy" in c["name"]]
    passed = sum(c["pass"] for c in checks)
    summary = (
        f"{passed}/{len(checks)} checks pass; L < 6 xi_c balanced accuracy (ordered, chaotic; "
        f"best sigma_w^2-blind cutoff ordered, chaotic) = {', '.join(ba)}; "
        f"max |z|: q {measured_str(checks[0], '.1f')}, "
        f"c {measured_str(checks[1], '.1f')}, chi_1 {measured_str(checks[5], '.1f')}, "
        f"ReLU rate {measured_str(checks[-2], '.1f')}"
    )
    return Result(metrics, checks, figures, config, summary)


def main(argv=None):
    """Command line entry point."""
    return cli(run, __doc__, argv)


if __name__ == "__main__":
    from experiments.criticality import main as _main  # so metrics.json names it

    _main()
