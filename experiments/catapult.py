r"""Catapult phase of large-learning-rate gradient descent (Lewkowycz et al. 2020).

Conventions (those of Lewkowycz et al. for their uv model and networks): MSE loss
:math:`L=\frac1{2n}\sum_{i=1}^n\|f(x_i)-y_i\|^2` over :math:`n` samples
(:func:`wideth.train.mse`), full-batch gradient descent with step :math:`\eta`,
and :math:`\lambda_0` the top eigenvalue of the empirical NTK normalised by the
number of samples, :math:`\lambda_{\max}(\Theta/n)` with
:math:`\Theta = JJ^\top` over samples and outputs (matrix-free: Lanczos on the
NTK-vector product, :func:`wideth.train.probes.ntk_top_eigenvalue` and
:func:`wideth.hessian.ntk`). In this normalisation the linearised dynamics
converge iff :math:`\eta<2/\lambda_0`. Three phases:

* **lazy** :math:`\eta<2/\lambda_0`: the loss decreases monotonically;
* **catapult** :math:`2/\lambda_0<\eta<\eta_{\max}`: the loss first grows, the
  kernel's top eigenvalue drops until :math:`\eta\lambda<2` and the loss converges;
* **divergent** :math:`\eta>\eta_{\max}`.

1. **uv model with a label.** :math:`f = u^\top v/\sqrt m` (one input
   :math:`x=1`, :math:`u,v\in\mathbb R^m` standard normal), label :math:`y`,
   :math:`L=\frac12 r^2` with the residual :math:`r=f-y`. Its NTK is
   :math:`\lambda=(\|u\|^2+\|v\|^2)/m`. One GD step
   :math:`u'=u-\eta r v/\sqrt m`, :math:`v'=v-\eta r u/\sqrt m` gives, expanding
   :math:`u'^\top v'` and :math:`\|u'\|^2+\|v'\|^2`,

   .. math::

       r_{t+1} = r_t\Big(1-\eta\lambda_t+\frac{\eta^2 r_t f_t}{m}\Big),\qquad
       \lambda_{t+1} = \lambda_t + \frac{\eta r_t}{m}\big(\eta r_t\lambda_t - 4 f_t\big),
       \qquad f_t = r_t + y

   (for :math:`y=0` the uv-model recursion of Lewkowycz et al.). Thresholds, at
   large :math:`m` and fixed :math:`y`: while :math:`r=O(1)` the corrections are
   :math:`O(1/m)` and :math:`r_{t+1}\approx(1-\eta\lambda_0)r_t`, which decays iff
   :math:`\eta\lambda_0<2` (**lazy**). For :math:`\eta\lambda_0>2`, :math:`|r|`
   grows geometrically until :math:`r^2 = O(m)\gg y^2`; then :math:`f\approx r`
   and :math:`\lambda_{t+1}-\lambda_t\approx\frac{\eta r_t^2}{m}(\eta\lambda_t-4)`
   (the label enters at relative order :math:`y/r=O(y/\sqrt m)`): the kernel
   shrinks iff :math:`\eta\lambda<4`, until :math:`\eta\lambda<2`, where the
   residual decays again (**catapult**, :math:`2<\eta\lambda_0<4`, ending with
   :math:`\eta\lambda_{\rm final}<2`); for :math:`\eta\lambda_0>4` both
   :math:`\lambda` and :math:`|r|` grow without bound (**divergent**). The minima
   :math:`f=y` have :math:`\lambda\ge 2|u^\top v|/m = 2|y|/\sqrt m`, so a catapult
   can land for :math:`\eta<\sqrt m/|y|`, far above :math:`4/\lambda_0` here.
   The growth stops at :math:`r^2=O(m)`, so the peak loss grows like :math:`m`.
   The model is trained (:func:`wideth.train.run`, vmapped over
   :math:`\eta\lambda_0` and seeds) on a grid :math:`\eta\lambda_0\in[0.5, 5]` for
   :math:`y=0` and :math:`y=1`; the scalar recursion is a unit test.
2. **Deep ReLU MLP** (NTK parameterisation, :math:`\sigma_w^2=2`,
   :math:`\sigma_b=0`, ``depth`` hidden layers of ``width`` units, 10 outputs,
   one-hot targets) on ``n`` sklearn digits. Lewkowycz et al. report that
   deep ReLU networks diverge only at :math:`\eta_{\max}\approx 12/\lambda_0`,
   not at the uv model's :math:`4/\lambda_0`. Per initialisation seed,
   :math:`\eta_{\max}\lambda_0` is found by bisection (a run diverges when its
   loss becomes non-finite or ends above its initial value); a grid of
   :math:`\eta\lambda_0` across the three phases gives the lazy/catapult
   boundary, :math:`\eta\lambda_{\rm final}` and the test accuracy (their claim:
   the best test performance is found in the catapult phase), and three runs
   give :math:`\lambda_t` during training.

Checks (claims): uv thresholds 2 and 4 for each label, peak loss
:math:`\propto m`; MLP: no loss spike below :math:`2/\lambda_0`,
:math:`\eta_{\max}\lambda_0 = 12`, catapult test accuracy above lazy (best grid
point of each phase, by more than 3 paired SE over seeds).
Tolerances: half the grid (or bisection) resolution plus 3 standard errors over
seeds; for the published :math:`12`, which is given to the integer, also
:math:`\pm0.5`. Consistency: every bisection bracket holds (converges at its
bottom, diverges at its top); a catapult phase exists for every seed. That
every catapult run lands with :math:`\eta\lambda_{\rm final}<2` holds by
construction (a run that converges at a fixed step is linearly stable there):
it is a unit test, not a check.

Where the infinite-width picture stops: at width 512 the top NTK eigenvalue of
the ReLU net drifts down by about 10% in the first steps even for
:math:`\eta\lambda_0=1`, so the loss spike only appears from
:math:`\eta\lambda_0` between 2.2 and 3 (reported as ``spike_onset``, not
checked against 2). The test accuracy of the lazy networks is low on this small
training set; a likely cause (not tested here) is the random initial function
that a lazy network keeps on test inputs, which a catapult moves away from.

Sizes: quick mode depth 3, width 512, 64 digits, 3 seeds (the paper's
architecture class, fully connected ReLU); full mode depth 3, width 2048, 256
digits, 8 seeds (for a GPU).

References:
  Lewkowycz, Bahri, Dyer, Sohl-Dickstein, Gur-Ari, `The large learning rate phase
  of deep learning: the catapult mechanism <https://arxiv.org/abs/2003.02218>`_, 2020.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.common import Config, Result, Sizes, check, cli, save_figure

LAZY, CATAPULT, DIVERGENT = "lazy", "catapult", "divergent"
PUBLISHED_ETA_MAX = 12.0  # Lewkowycz et al. 2020: eta_max ~ 12 / lambda_0 for ReLU nets
PUBLISHED_DIGITS = 0.5  # "12" is given to the integer

SIZES = Sizes(
    quick=dict(
        uv_m=1000,
        uv_steps=1000,
        uv_seeds=3,
        uv_labels=(0.0, 1.0),
        uv_grid_step=0.1,
        uv_widths=(1000, 10000, 100000),
        uv_peak_steps=300,
        n=64,
        width=512,
        depth=3,
        seeds=3,
        steps=300,
        grid=(0.5, 1.0, 1.8, 2.2, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0),
        bracket=(8.0, 16.0),
        rounds=6,
        bisect_steps=200,
        traj=(1.0, 6.0, 14.0),
        traj_steps=40,
        traj_every=1,
        lanczos=20,
    ),
    full=dict(
        uv_m=10000,
        uv_steps=3000,
        uv_seeds=8,
        uv_labels=(0.0, 1.0, 3.0),
        uv_grid_step=0.05,
        uv_widths=(1000, 10000, 100000, 1000000),
        uv_peak_steps=500,
        n=256,
        width=2048,
        depth=3,
        seeds=8,
        steps=1000,
        grid=(0.5, 1.0, 1.5, 1.8, 1.9, 2.1, 2.2, 2.5, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 16),
        bracket=(8.0, 16.0),
        rounds=8,
        bisect_steps=500,
        traj=(1.0, 6.0, 14.0),
        traj_steps=100,
        traj_every=1,
        lanczos=30,
    ),
)

# --------------------------------------------------------------------------- phases


def classify(loss: np.ndarray, rtol: float = 1e-4, floor: float = 1e-4) -> str:
    """Phase of one run from its loss curve ``(steps,)`` (NaN after a stop).

    divergent: non-finite, or final loss not below the initial one; lazy: the
    loss never increases from one step to the next (relative tolerance
    ``rtol``, ignoring steps once it is below ``floor`` times its initial
    value, where rounding dominates); catapult: it increases at some step, then
    converges below its initial value.
    """
    loss = np.asarray(loss, np.float64)
    if not np.all(np.isfinite(loss)) or loss[-1] >= loss[0]:
        return DIVERGENT
    prev, nxt = loss[:-1], loss[1:]
    rises = (nxt > prev * (1 + rtol)) & (prev > floor * loss[0])
    return CATAPULT if rises.any() else LAZY


def boundaries(grid: Sequence[float], phase: Sequence[str]) -> tuple[float, float]:
    """Phase boundaries on a sorted grid: ``(lazy -> not lazy, convergent -> divergent)``.

    Each is the midpoint between the last grid point below the boundary and the
    first above it (``inf`` if never crossed; the first point if crossed there).
    """
    grid, phase = np.asarray(grid, np.float64), np.asarray(phase)

    def boundary(below: np.ndarray) -> float:
        above = np.flatnonzero(~below)
        if len(above) == 0:
            return math.inf
        j = int(above[0])
        return float(grid[0]) if j == 0 else float(0.5 * (grid[j - 1] + grid[j]))

    return boundary(phase == LAZY), boundary(phase != DIVERGENT)


def bisect(
    converges: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, rounds: int, size: int
) -> dict[str, np.ndarray]:
    r"""Bisection of a convergence boundary for ``size`` problems at once.

    ``converges(c)`` takes ``(size,)`` values and returns ``(size,)`` booleans
    (one vmapped program per round). Starts from ``[lo, hi]``, which must
    converge at ``lo`` and diverge at ``hi`` (``bracket_ok``); after ``rounds``
    halvings the boundary is ``0.5 (lo + hi)`` within :math:`\pm(hi-lo)/2^{r+1}`.

    Returns:
      dict with ``estimate``, ``lo``, ``hi`` ``(size,)``, ``bracket_ok`` ``(size,)``
      and ``resolution`` (the final half-width, a float).
    """
    lo_a, hi_a = np.full(size, float(lo)), np.full(size, float(hi))
    ok = np.asarray(converges(lo_a), bool) & ~np.asarray(converges(hi_a), bool)
    for _ in range(rounds):
        mid = 0.5 * (lo_a + hi_a)
        conv = np.asarray(converges(mid), bool)
        lo_a, hi_a = np.where(conv, mid, lo_a), np.where(conv, hi_a, mid)
    return {
        "estimate": 0.5 * (lo_a + hi_a),
        "lo": lo_a,
        "hi": hi_a,
        "bracket_ok": ok,
        "resolution": float((hi - lo) / 2 ** (rounds + 1)),
    }


def mean_se(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over ``axis`` (SE 0 for a single value)."""
    values = np.asarray(values, np.float64)
    k = values.shape[axis]
    se = values.std(axis=axis, ddof=1) / np.sqrt(k) if k > 1 else np.zeros_like(values.mean(axis))
    return values.mean(axis=axis), se


def _sgd() -> optax.GradientTransformation:
    return optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)


def _state(params: Any, eta: jax.Array, key: jax.Array):
    from wideth import train

    state = train.TrainState.create(params, _sgd(), key)
    return train.with_hyperparams(state, learning_rate=eta)


# --------------------------------------------------------------------------- uv model


def uv_apply(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    r"""The uv model :math:`f(x) = x\,u^\top v/\sqrt m` on inputs ``(n, 1)``."""
    u, v = params["u"], params["v"]
    return x * (u @ v) / jnp.sqrt(jnp.asarray(u.shape[0], u.dtype))


def uv_init(key: jax.Array, m: int) -> dict[str, jax.Array]:
    """Standard normal :math:`u, v\\in\\mathbb R^m` (NTK parameterisation)."""
    ku, kv = jax.random.split(key)
    return {"u": jax.random.normal(ku, (m,)), "v": jax.random.normal(kv, (m,))}


def uv_kernel(params: dict[str, jax.Array]) -> jax.Array:
    r"""NTK of the uv model at :math:`x=1`: :math:`\lambda = (\|u\|^2+\|v\|^2)/m`."""
    u, v = params["u"], params["v"]
    return (u @ u + v @ v) / u.shape[0]


def uv_recursion(
    r0: jax.Array, lam0: jax.Array, eta: jax.Array, m: float, y: float, steps: int
) -> dict[str, jax.Array]:
    r"""The closed-form dynamics of :math:`(r, \lambda)` for label ``y`` (module docstring).

    Returns ``loss`` :math:`r_t^2/2` and ``ntk`` :math:`\lambda_t`, ``(steps + 1,)``.
    """

    def one(carry, _):
        r, lam = carry
        f = r + y
        r_new = r * (1 - eta * lam + eta**2 * r * f / m)
        lam_new = lam + eta * r / m * (eta * r * lam - 4 * f)
        return (r_new, lam_new), (0.5 * r**2, lam)

    (r, lam), (loss, ntk) = jax.lax.scan(one, (r0, lam0), None, length=steps)
    return {"loss": jnp.append(loss, 0.5 * r**2), "ntk": jnp.append(ntk, lam)}


def uv_runs(
    key: jax.Array, m: int, eta_lam: Sequence[float], y: float, steps: int, seeds: int
) -> dict[str, np.ndarray]:
    r"""GD on the uv model for every :math:`\eta\lambda_0` and seed (one vmapped ``train.run``).

    :math:`\lambda_0` is measured per seed, :math:`\eta=(\eta\lambda_0)/\lambda_0`.

    Returns:
      dict with ``loss`` ``(S, E, steps)``, ``phase`` ``(S, E)``, ``eta_lam_final``
      ``(S, E)`` (:math:`\eta\lambda_{\rm final}`, NaN if the run stopped),
      ``peak_loss`` ``(S, E)`` and ``lam0`` ``(S,)``.
    """
    from wideth import train

    params = jax.vmap(lambda s: uv_init(jax.random.fold_in(key, s), m))(jnp.arange(seeds))
    lam0 = jax.vmap(uv_kernel)(params)
    eta = jnp.asarray(eta_lam, jnp.float32)[None, :] / lam0[:, None]
    data = (jnp.ones((1, 1)), jnp.full((1, 1), y, jnp.float32))
    step = train.train_step(uv_apply, "mse", _sgd(), metrics=())
    probes = {"ntk": lambda state, batch: uv_kernel(state.params)}

    def one(p, e):
        return train.run(step, _state(p, e, key), data, steps, probes=probes)

    res = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0))))(params, eta)
    loss = np.asarray(res.metrics["loss"], np.float64)
    lam_final = np.asarray(res.probes["ntk"][..., -1], np.float64)
    return {
        "loss": loss,
        "phase": np.array([[classify(row, rtol=1e-3) for row in s] for s in loss]),
        "eta_lam_final": np.asarray(eta, np.float64) * lam_final,
        "peak_loss": np.nanmax(np.where(np.isfinite(loss), loss, np.nan), axis=-1),
        "lam0": np.asarray(lam0, np.float64),
    }


def uv_peak_vs_width(
    key: jax.Array, widths: Sequence[int], eta_lam: float, steps: int, seeds: int
) -> dict[str, Any]:
    r"""Peak loss at fixed :math:`\eta\lambda_0` (label 0) against the width :math:`m`.

    Returns ``widths``, ``peak`` ``(W, S)``, per-seed log-log ``slopes`` ``(S,)``
    and their mean and standard error.
    """
    peak = np.stack(
        [
            uv_runs(jax.random.fold_in(key, m), m, [eta_lam], 0.0, steps, seeds)["peak_loss"][:, 0]
            for m in widths
        ]
    )
    logm = np.log(np.asarray(widths, np.float64))
    slopes = np.array([np.polyfit(logm, np.log(peak[:, s]), 1)[0] for s in range(seeds)])
    mean, se = mean_se(slopes)
    return {
        "widths": np.asarray(widths),
        "peak": peak,
        "slopes": slopes,
        "slope": float(mean),
        "slope_se": float(se),
    }


# --------------------------------------------------------------------------- deep ReLU MLP


def mlp_setup(seed: int, seeds: int, n: int, width: int, depth: int) -> dict[str, Any]:
    """Digits (split by ``seed``) and ``seeds`` ReLU MLPs (NTK param.), params stacked."""
    from flax import nnx

    from wideth import data, functional, models

    ds = data.digits(n_train=n, seed=seed)
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    params = []
    for s in range(seeds):
        net = models.MLP(
            x.shape[1],
            width,
            depth,
            out_dim=y.shape[1],
            activation="relu",
            parameterization="ntk",
            rngs=nnx.Rngs(seed * 1000 + s),
        )
        apply_fn, p = functional.as_apply(net)
        params.append(p)
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *params)
    test = (jnp.asarray(ds.x_test), jnp.asarray(ds.y_test))
    return {"apply_fn": apply_fn, "params": stacked, "train": (x, y), "test": test}


def lambda0(apply_fn: Callable, params: Any, x: jax.Array, key: jax.Array, steps: int = 40):
    r""":math:`\lambda_{\max}(\Theta/n)` per seed (params stacked on axis 0), matrix-free."""
    from wideth import hessian

    def one(p):
        return hessian.sharpness(hessian.ntk(apply_fn, p, x), num_steps=steps, key=key)

    return jax.vmap(one)(params) / x.shape[0]


#: Seeds trained together under ``vmap`` by :func:`mlp_program` (the rest in sequence).
SEEDS_PER_BATCH = 2


def mlp_program(
    apply_fn: Callable, train_data: Any, steps: int, probes: dict[str, Any], every: int | None
) -> Callable:
    """``program(params (S, ...), etas (S, E), key) -> RunResult`` with ``(S, E)`` leading axes.

    Full-batch GD on the mse loss (:func:`wideth.train.run`), vmapped over learning
    rates (axis 1 of ``etas``) and over seeds (axis 0 of ``params`` and ``etas``) in
    groups of :data:`SEEDS_PER_BATCH` (``lax.map``), jitted; ``state`` is ``None`` (the
    final parameters are not needed). Grouping changes memory, not values: at full size
    all 8 x 19 networks at once, final parameters included, planned 23 GiB.
    """
    from wideth import train

    step = train.train_step(apply_fn, "mse", _sgd(), metrics=())

    def one(p, eta, key):  # the final parameters are not used: not returned
        res = train.run(step, _state(p, eta, key), train_data, steps, probes=probes, every=every)
        return res._replace(state=None)

    per_seed = jax.vmap(one, in_axes=(None, 0, None))

    def program(params, etas, key):
        return jax.lax.map(
            lambda pe: per_seed(*pe, key), (params, etas), batch_size=SEEDS_PER_BATCH
        )

    return jax.jit(program)


def converged(res: Any) -> np.ndarray:
    """Runs that did not diverge: finite throughout and final loss below the initial one."""
    loss = np.asarray(res.metrics["loss"], np.float64)
    return ~np.asarray(res.stopped) & (loss[..., -1] < loss[..., 0])


def plan(cfg: Config, **overrides: Any) -> dict[str, Any]:
    """Everything :func:`run` builds for the MLP before training (sizes, data, programs).

    ``overrides`` replace entries of ``SIZES(cfg)`` (smaller set-ups in the notebook).
    """
    import types

    from wideth import train

    sz = SIZES(cfg)
    unknown = set(overrides) - set(vars(sz))
    if unknown:
        raise ValueError(f"overrides: unknown sizes {sorted(unknown)}")
    sz = types.SimpleNamespace(**{**vars(sz), **overrides})
    setup = mlp_setup(cfg.seed, sz.seeds, sz.n, sz.width, sz.depth)
    apply_fn, (x, _) = setup["apply_fn"], setup["train"]
    ntk_probe = train.probes.ntk_top_eigenvalue(apply_fn, num_steps=sz.lanczos)
    acc_probe = train.probes.metric(apply_fn, "accuracy", setup["test"])
    programs = {
        "sweep": mlp_program(
            apply_fn, setup["train"], sz.steps, {"ntk": ntk_probe, "test_accuracy": acc_probe}, None
        ),
        "bisect": mlp_program(apply_fn, setup["train"], sz.bisect_steps, {}, None),
        "trajectory": mlp_program(
            apply_fn, setup["train"], sz.traj_steps, {"ntk": ntk_probe}, sz.traj_every
        ),
        "lambda0": jax.jit(lambda p, k: lambda0(apply_fn, p, x, k)),
    }
    return {"sz": sz, **setup, "programs": programs, "key": jax.random.key(cfg.seed)}


def mlp_experiment(p: dict[str, Any]) -> dict[str, Any]:
    """Run the three MLP programs of :func:`plan`: grid sweep, bisection, trajectories."""
    sz, prog, key = p["sz"], p["programs"], p["key"]
    n = p["train"][0].shape[0]
    lam0 = np.asarray(prog["lambda0"](p["params"], key), np.float64)
    grid = np.asarray(sz.grid, np.float64)
    etas = grid[None, :] / lam0[:, None]
    sw = prog["sweep"](p["params"], jnp.asarray(etas, jnp.float32), key)
    loss = np.asarray(sw.metrics["loss"], np.float64)
    phase = np.array([[classify(row) for row in s] for s in loss])
    eta_lam_final = etas * np.asarray(sw.probes["ntk"][..., -1], np.float64) / n
    acc = np.asarray(sw.probes["test_accuracy"][..., -1], np.float64)
    acc = np.where(phase == DIVERGENT, np.nan, acc)

    def conv(c: np.ndarray) -> np.ndarray:
        e = jnp.asarray((c / lam0)[:, None], jnp.float32)
        return converged(prog["bisect"](p["params"], e, key))[:, 0]

    bis = bisect(conv, *sz.bracket, sz.rounds, sz.seeds)

    eta_t = np.asarray(sz.traj, np.float64)[None, :] / lam0[:1, None]
    params0 = jax.tree.map(lambda a: a[:1], p["params"])
    tr = prog["trajectory"](params0, jnp.asarray(eta_t, jnp.float32), key)
    return {
        "lam0": lam0,
        "grid": grid,
        "phase": phase,
        "loss": loss,
        "eta_lam_final": eta_lam_final,
        "test_accuracy": acc,
        "bisection": bis,
        "trajectory": {
            "eta_lam0": np.asarray(sz.traj),
            "steps": np.asarray(tr.probe_steps[0, 0]),
            "eta_lam": eta_t[0][:, None] * np.asarray(tr.probes["ntk"][0], np.float64) / n,
            "loss": np.asarray(tr.metrics["loss"][0], np.float64),
            "bad_step": np.asarray(tr.bad_step[0]),
            "phase": [classify(row) for row in np.asarray(tr.metrics["loss"][0])],
        },
    }


# --------------------------------------------------------------------------- checks


def threshold_check(
    name: str, theory: float, per_seed: np.ndarray, resolution: float, source: str, **kw: Any
) -> dict[str, Any]:
    """Boundary estimate (mean over seeds) vs theory; tol = resolution + 3 SE (+ extra)."""
    per_seed = np.asarray(per_seed, np.float64)
    mean, se = mean_se(per_seed)
    extra = kw.pop("extra", 0.0)
    tol = float(resolution + 3 * se + extra)
    note = (
        f"{source}; per seed {np.round(per_seed, 3).tolist()}; tolerance = grid/bisection "
        f"half-width {resolution:g} + 3 SE ({len(per_seed)} seeds, SE {float(se):.3g})"
        + (f" + {extra:g} (precision of the published value)" if extra else "")
    )
    return check(name, theory, float(mean), tol, note=note, **kw)


def lazy_below_check(grid: np.ndarray, phase: np.ndarray) -> dict[str, Any]:
    r"""No loss spike below :math:`\eta_{\rm crit}=2/\lambda_0`: every run there is lazy."""
    below = np.asarray(grid) < 2
    bad = int(np.sum(np.asarray(phase)[:, below] != LAZY))
    return check(
        "MLP: lazy (no loss spike) at every eta below 2/lambda0",
        0,
        bad,
        None,
        passed=bool(below.any() and bad == 0),
        note=(
            "Lewkowycz et al. 2020: eta_crit = 2/lambda0 (linearised dynamics); "
            f"measured: runs with a spike among the {int(below.sum()) * len(phase)} below 2"
        ),
    )


def catapult_present_check(phase: np.ndarray, onset: np.ndarray) -> dict[str, Any]:
    """Regime condition: every seed has a catapult run (loss spike, then convergence)."""
    phase = np.asarray(phase)
    return check(
        "MLP: catapult phase present (loss spike, then convergence) for every seed",
        ">= 1 grid point per seed",
        int(np.all(phase == CATAPULT, axis=0).sum()),
        None,
        passed=bool(np.all(np.any(phase == CATAPULT, axis=1))),
        note=f"measured: grid points catapult for every seed; spike onset per seed at "
        f"eta*lambda0 = {np.asarray(onset).tolist()} (midpoints)",
        kind="consistency",
    )


def generalisation_check(grid: np.ndarray, phase: np.ndarray, acc: np.ndarray) -> dict[str, Any]:
    """Best catapult grid point minus best lazy grid point, test accuracy, > 3 SE (paired)."""
    cat_cols = np.flatnonzero(np.all(phase == CATAPULT, axis=0))
    lazy_cols = np.flatnonzero(np.all(phase == LAZY, axis=0))
    if not len(cat_cols) or not len(lazy_cols):
        return check(
            "MLP: catapult phase generalises better than lazy (test accuracy)",
            "> 0 by 3 SE",
            math.nan,
            None,
            passed=False,
            note="no grid point is lazy (or catapult) for every seed",
        )
    mean = acc.mean(axis=0)
    jc = cat_cols[np.argmax(mean[cat_cols])]
    jl = lazy_cols[np.argmax(mean[lazy_cols])]
    diff, se = mean_se(acc[:, jc] - acc[:, jl])
    return check(
        "MLP: catapult phase generalises better than lazy (test accuracy)",
        "> 0 by 3 SE",
        float(diff),
        None,
        passed=bool(diff > 3 * se),
        note=(
            "Lewkowycz et al. 2020: best performance in the catapult phase; best "
            f"catapult eta*lambda0 = {grid[jc]:g} ({mean[jc]:.3f}) minus best lazy "
            f"{grid[jl]:g} ({mean[jl]:.3f}); SE {float(se):.3g} from {acc.shape[0]} seeds "
            "(paired)"
        ),
    )


# --------------------------------------------------------------------------- figures

_COLORS = {LAZY: "tab:blue", CATAPULT: "tab:orange", DIVERGENT: "tab:red"}


def plot_uv(uv: dict[float, dict[str, Any]], peaks: dict[str, Any], grid: np.ndarray, m: int):
    """Figure: uv phases (divergent as x at the top), loss curves, peak loss vs width."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax, top = axes[0], 5.2
    for k, (y, sw) in enumerate(uv.items()):
        off = 0.02 * k
        for ph, col in _COLORS.items():
            sel = sw["phase"] == ph
            xs = np.broadcast_to(grid, sel.shape)[sel] + off
            ys = np.full(sel.sum(), top) if ph == DIVERGENT else sw["eta_lam_final"][sel]
            ax.scatter(
                xs,
                ys,
                s=12,
                color=col,
                marker="x" if ph == DIVERGENT else "os"[k % 2],
                label=f"y={y:g}: {ph}" if sel.any() else None,
            )
    for v in (2, 4):
        ax.axvline(v, color="gray", ls="--", lw=0.8)
    ax.axhline(2, color="gray", ls=":", lw=0.8)
    ax.plot(grid, grid, "k-", lw=0.5, alpha=0.4)
    ax.set(
        xlabel="η λ₀",
        ylabel="η λ_final  (x at top: diverged)",
        ylim=(0, top + 0.3),
        title=f"uv model, m={m}: thresholds 2 and 4",
    )
    ax.legend(fontsize=7, ncol=2)
    ax = axes[1]
    y_last = list(uv)[-1]
    for c in (1.5, 2.5, 3.5, 4.5):
        i = int(np.argmin(np.abs(grid - c)))
        curve = uv[y_last]["loss"][0, i]
        ax.plot(np.arange(len(curve)), curve, label=f"ηλ₀={grid[i]:.1f}")
    ax.set_xscale("symlog", linthresh=1)
    ax.set(
        xlim=(0, len(curve)),
        yscale="log",
        xlabel="step",
        ylabel="loss",
        title=f"Loss curves, label y={y_last:g} (divergent: ends at overflow)",
    )
    ax.legend(fontsize=8)
    ax = axes[2]
    w = np.asarray(peaks["widths"], np.float64)
    mean, se = mean_se(peaks["peak"], axis=1)
    ax.errorbar(w, mean, yerr=se, fmt="o", label="uv model (mean ± SE)")
    pref = np.exp(np.mean(np.log(mean / w)))
    ax.plot(w, pref * w, "k--", label="theory ∝ m (slope 1)")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="width m",
        ylabel="peak loss",
        title=f"Catapult height at ηλ₀=3: slope {peaks['slope']:.2f}±{peaks['slope_se']:.2f}",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_mlp(res: dict[str, Any], sz: Any):
    """Figure: MLP lambda_t in the three phases, eta*lambda_final and test accuracy vs eta."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    ax, tr = axes[0], res["trajectory"]
    shown = [c for c, ph in zip(tr["eta_lam"], tr["phase"], strict=True) if ph != DIVERGENT]
    top = 1.15 * float(np.nanmax(np.concatenate([*shown, tr["eta_lam0"]])))
    for c, curve, ph, bad in zip(
        tr["eta_lam0"], tr["eta_lam"], tr["phase"], tr["bad_step"], strict=True
    ):
        curve = np.where(curve > top, np.nan, curve)  # a diverging run leaves the axis
        (line,) = ax.plot(tr["steps"], curve, "o-", ms=3, label=f"ηλ₀={c:g} ({ph})")
        if ph == DIVERGENT:
            ax.plot(
                [max(int(bad), 1)],
                [top],
                "x",
                ms=10,
                mew=2,
                color=line.get_color(),
                label=f"diverged at step {int(bad)}",
            )
    ax.axhline(2, color="gray", ls="--", lw=0.8, label="ηλ = 2")
    ax.set(
        xlim=(0, float(tr["steps"][-1])),
        xlabel="step",
        ylabel="η λ_t  (λ_t = top eigenvalue of Θ/n)",
        ylim=(0, top * 1.05),
        title=f"ReLU MLP depth {sz.depth} width {sz.width}, digits n={sz.n}",
    )
    ax.legend(fontsize=7)
    grid, phase = res["grid"], res["phase"]
    ax = axes[1]
    top = 1.1 * max(float(np.nanmax(res["eta_lam_final"])), 2.5)
    for ph, col in _COLORS.items():
        sel = phase == ph
        xs = np.broadcast_to(grid, sel.shape)[sel]
        ys = np.full(sel.sum(), top) if ph == DIVERGENT else res["eta_lam_final"][sel]
        ax.scatter(
            xs,
            ys,
            color=col,
            s=16,
            marker="x" if ph == DIVERGENT else "o",
            label=f"{ph}" + (" (at top)" if ph == DIVERGENT else "") if sel.any() else None,
        )
    ax.axhline(2, color="gray", ls=":", lw=0.8)
    _eta_max_lines(ax, res)
    ax.set(xlabel="η λ₀", ylabel="η λ_final", ylim=(0, top * 1.05), title="Final kernel by phase")
    ax.legend(fontsize=7)
    ax = axes[2]
    acc = res["test_accuracy"]
    ok = ~np.any(phase == DIVERGENT, axis=0)  # mean +- SE only where every seed converged
    mean, se = mean_se(acc[:, ok])
    cols = [
        _COLORS[CATAPULT] if np.any(phase[:, j] == CATAPULT) else _COLORS[LAZY]
        for j in np.flatnonzero(ok)
    ]
    ax.errorbar(grid[ok], mean, yerr=se, fmt="-", color="gray", lw=0.8)
    ax.scatter(grid[ok], mean, c=cols, s=25, zorder=3)
    for j in np.flatnonzero(~ok):
        k = int(np.sum(phase[:, j] == DIVERGENT))
        ax.plot(grid[j], 1.0, "x", color=_COLORS[DIVERGENT], ms=9, mew=2)
        ax.annotate(
            f"{k}/{len(phase)} diverged",
            (grid[j], 1.0),
            fontsize=7,
            textcoords="offset points",
            xytext=(-20, -12),
        )
        fine = phase[:, j] != DIVERGENT
        ax.scatter(
            np.full(fine.sum(), grid[j]),
            acc[fine, j],
            s=14,
            facecolors="none",
            edgecolors=_COLORS[CATAPULT],
            label="single seeds that converged",
        )
    _eta_max_lines(ax, res)
    ax.set(
        xlabel="η λ₀",
        ylabel="test accuracy (mean ± SE over seeds)",
        ylim=(0, 1.05),
        title="Test accuracy: blue lazy, orange catapult",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _eta_max_lines(ax: Any, res: dict[str, Any]) -> None:
    est = res["bisection"]["estimate"]
    mean, se = mean_se(est)
    ax.axvline(2, color="gray", ls="--", lw=0.8)
    ax.axvspan(
        mean - 3 * se - res["bisection"]["resolution"],
        mean + 3 * se + res["bisection"]["resolution"],
        color="tab:red",
        alpha=0.15,
        label=f"measured η_max λ₀ = {mean:.2f}",
    )
    ax.axvline(PUBLISHED_ETA_MAX, color="k", ls="-.", lw=0.8, label="published 12")
    ax.axvline(4, color="tab:purple", ls=":", lw=0.8, label="uv model 4")


# --------------------------------------------------------------------------- run


def run(cfg: Config) -> Result:
    """The uv model with labels and the deep ReLU MLP; see the module docstring."""
    sz = SIZES(cfg)
    key = jax.random.key(cfg.seed)
    k_uv, k_peak = jax.random.split(key)
    checks: list[dict[str, Any]] = []
    source_uv = "derivation in the module docstring (for y=0 the uv model of Lewkowycz et al. 2020)"

    # 1. uv model
    step = sz.uv_grid_step  # grid points straddle 2 and 4, never on them
    grid = np.round(np.arange(0.5 + step / 2, 5.0, step), 6)
    uv = {
        y: uv_runs(jax.random.fold_in(k_uv, i), sz.uv_m, grid, y, sz.uv_steps, sz.uv_seeds)
        for i, y in enumerate(sz.uv_labels)
    }
    half = sz.uv_grid_step / 2
    uv_metrics = {}
    for y, sw in uv.items():
        thr = np.array([boundaries(grid, ph) for ph in sw["phase"]])
        checks += [
            threshold_check(
                f"uv y={y:g}: lazy -> catapult at eta*lambda0", 2.0, thr[:, 0], half, source_uv
            ),
            threshold_check(
                f"uv y={y:g}: catapult -> divergent at eta*lambda0", 4.0, thr[:, 1], half, source_uv
            ),
        ]
        uv_metrics[f"y={y:g}"] = {
            "lam0": sw["lam0"],
            "phase": sw["phase"],
            "eta_lam_final": sw["eta_lam_final"],
            "peak_loss": sw["peak_loss"],
            "lazy_to_catapult": thr[:, 0],
            "catapult_to_divergent": thr[:, 1],
        }
    peaks = uv_peak_vs_width(k_peak, sz.uv_widths, 3.0, sz.uv_peak_steps, sz.uv_seeds)
    checks.append(
        check(
            "uv peak loss at eta*lambda0=3 grows like m: log-log slope",
            1.0,
            peaks["slope"],
            3 * peaks["slope_se"],
            note=f"{source_uv}; tolerance 3 SE over {sz.uv_seeds} seeds' slopes, "
            f"m = {list(sz.uv_widths)}",
        )
    )
    figures = [save_figure(plot_uv(uv, peaks, grid, sz.uv_m), cfg, "uv_model")]

    # 2. deep ReLU MLP
    p = plan(cfg)
    mlp = mlp_experiment(p)
    bis = mlp["bisection"]
    thr = np.array([boundaries(mlp["grid"], ph) for ph in mlp["phase"]])
    paper = "Lewkowycz et al. 2020"
    checks += [
        lazy_below_check(mlp["grid"], mlp["phase"]),
        threshold_check(
            "MLP: eta_max*lambda0 (divergence boundary, bisection)",
            PUBLISHED_ETA_MAX,
            bis["estimate"],
            bis["resolution"],
            f"{paper}: eta_max ~ 12/lambda0 for ReLU networks (uv model: 4); depth "
            f"{sz.depth}, width {sz.width}, {sz.bisect_steps} steps",
            extra=PUBLISHED_DIGITS,
        ),
        generalisation_check(mlp["grid"], mlp["phase"], mlp["test_accuracy"]),
        catapult_present_check(mlp["phase"], thr[:, 0]),
        check(
            "MLP: bisection bracket holds (converges at bottom, diverges at top)",
            "all seeds",
            int(bis["bracket_ok"].sum()),
            None,
            passed=bool(bis["bracket_ok"].all()),
            note=f"bracket eta*lambda0 in {list(sz.bracket)}",
            kind="consistency",
        ),
    ]
    figures.append(save_figure(plot_mlp(mlp, sz), cfg, "mlp_phases"))

    est_mean, est_se = mean_se(bis["estimate"])
    acc_mean = np.mean(mlp["test_accuracy"], axis=0)  # NaN where any seed diverged
    metrics = {
        "uv": {"m": sz.uv_m, "grid": grid, **uv_metrics, "peak_vs_width": peaks},
        "mlp": {
            "lam0": mlp["lam0"],
            "grid": mlp["grid"],
            "phase": mlp["phase"],
            "eta_lam_final": mlp["eta_lam_final"],
            "test_accuracy": mlp["test_accuracy"],
            "test_accuracy_mean": acc_mean,
            "spike_onset": thr[:, 0],
            "eta_max_lam0": bis["estimate"],
            "eta_max_lam0_mean": float(est_mean),
            "eta_max_lam0_se": float(est_se),
            "bisection_resolution": bis["resolution"],
            "trajectory": mlp["trajectory"],
        },
    }
    summary = (
        f"uv model (m={sz.uv_m}, labels {list(sz.uv_labels)}): thresholds "
        + ", ".join(
            f"{y}: {np.mean(v['lazy_to_catapult']):.2f}/{np.mean(v['catapult_to_divergent']):.2f}"
            for y, v in uv_metrics.items()
        )
        + f" (theory 2/4); peak loss ~ m^{peaks['slope']:.2f}. ReLU MLP depth {sz.depth} width "
        f"{sz.width} on {sz.n} digits: eta_max*lambda0 = {est_mean:.2f} ± {est_se:.2f} "
        f"({sz.seeds} seeds; published 12, uv 4), loss spike from eta*lambda0 ~ "
        f"{np.mean(thr[:, 0]):.2f}; best test accuracy "
        f"{np.nanmax(acc_mean):.3f} at eta*lambda0 = {mlp['grid'][np.nanargmax(acc_mean)]:g}."
    )
    config = {k: v for k, v in vars(sz).items()}
    config.update(
        dataset="digits",
        activation="relu",
        parameterization="ntk",
        W_std=2**0.5,
        b_std=0.0,
        loss="mse 1/(2n) sum ||f-y||^2",
        optimizer="full-batch GD",
    )
    return Result(metrics=metrics, checks=checks, figures=figures, config=config, summary=summary)


def main(argv=None):
    """Command line entry point."""
    return cli(run, __doc__, argv)


if __name__ == "__main__":
    from experiments.catapult import main as _main  # so metrics.json names the experiment

    _main()
