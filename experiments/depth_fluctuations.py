r"""Depth-to-width effects: log-normal ReLU Jacobians, tanh's 1/(2l) decay, the mean NTK diagonal.

**A. The Jacobian of a deep ReLU network is log-normal with variance
β = 5 Σ 1/n_l** (Hanin & Nica 2019; the lecture notes' statement). For a
He-initialised ReLU MLP in NTK parameterisation (:math:`\sigma_w^2 = 2`, no
biases) let :math:`G_l = \|J_l u\|^2/n_l`, :math:`J_l = \partial\phi(h^l)/\partial x`,
for a unit direction :math:`u \perp x`, and :math:`G_0 = 1/n_0`. Each layer
multiplies :math:`G` by :math:`Y_l = \frac{1}{n_l}\sum_i 2\xi_i g_i^2`, where
:math:`a_i = w_i\cdot h^{l-1}`, :math:`g_i = w_i\cdot \widehat{J_{l-1}u}` are
jointly Gaussian given the previous layers and :math:`\xi_i = 1\{a_i > 0\}`.
The symmetry :math:`(a, g)\to(-a, -g)` maps :math:`\xi \to 1 - \xi` and keeps
:math:`g^2`, so :math:`g^2` has the same law given :math:`a > 0` as given
:math:`a < 0`, hence as unconditionally, whatever the correlation of :math:`a`
and :math:`g`. Therefore, **exactly at every width**,
:math:`Y_l = \frac{2}{n_l}\chi^2_{K_l}` with :math:`K_l \sim \mathrm{Bin}(n_l, \tfrac12)`,
independent of the previous layers, and
:math:`\log(n_0 G_L) = \sum_l \log Y_l` has

.. math::

    E = \sum_l \Big[\log\frac{4}{n_l} + E_K\,\psi(K_l/2)\Big],\qquad
    \mathrm{Var} = \sum_l \Big[E_K\,\psi'(K_l/2) + \mathrm{Var}_K\,\psi(K_l/2)\Big]

(:math:`\psi` the digamma function; the event :math:`K_l = 0`, of probability
:math:`2^{-n_l}`, is excluded). Expanding, :math:`E[Y] = 1`,
:math:`\mathrm{Var}\,Y = 5/n_l`, so the sum is approximately
:math:`\mathcal N(-\beta/2, \beta)`, :math:`\beta = 5\sum_l 1/n_l`, with
:math:`O(\sum_l n_l^{-2})` corrections. Checks: over a grid with
:math:`\beta \in [0.04, 1.25]`, the Monte Carlo mean and variance of
:math:`\log(n_0 G_L)` match the exact values within 3 standard errors (so the
check can fail on a wrong law: a variance constant 4 instead of 5 does, see
the tests); the asymptotic :math:`(-\beta/2, \beta)` is reported beside them
with its exact deviation, and the figure shows that architectures with equal
:math:`\beta` but different depth and width have the same law.

**B. tanh at the K* = 0 criticality, σ_w² = 1, σ_b = 0: q^(l) ≈ 1/(2l).** The
length map :math:`q_{l+1} = E_z[\tanh^2(\sqrt{q_l} z)] = q_l - 2q_l^2 + O(q_l^3)`
gives :math:`q_l \cdot 2l \to 1` (Roberts, Yaida & Hanin 2022, Sec. 5.3); the
exact infinite-width sequence is :func:`wideth.kernels.meanfield.variance_sequence`
(its limit is a unit test). Check (reproduced claim): finite networks follow
it. The per-layer second moment of the pre-activations of finite tanh
networks differs from the infinite-width value by :math:`O(l/n)`; we measure
it at three widths, fit :math:`a + b/n` by weighted least squares and check
the extrapolated :math:`a` against the infinite-width :math:`q_l` at three
depths within 3 standard errors of the fit.

**C. The mean NTK diagonal, E[Θ(x,x)] = 2(L+1)‖x‖²/n₀ at every width** (the
lecture notes' formula, with :math:`L+1` weight layers). Our derivation:
:math:`\Theta(x,x) = \sum_l \frac{2}{n_{l-1}}\|\delta_l\|^2\|h_{l-1}\|^2` with
:math:`\delta_l = \partial f/\partial z_l`. A bias-free ReLU network is
positively homogeneous, so :math:`\delta_l` does not change when
:math:`h_{l-1}` is rescaled, and :math:`W_l` is rotation invariant, so
:math:`\|\delta_l\|^2` is independent of :math:`\|h_{l-1}\|^2`; with
:math:`E\|h_{l-1}\|^2 = n_{l-1}\|x\|^2/n_0` and :math:`E\|\delta_l\|^2 = 1`
(each exact at finite width) every layer contributes :math:`2\|x\|^2/n_0`.
Check: the Monte Carlo mean over networks at three (width, depth) pairs
matches it within 3 standard errors (the spread grows like
:math:`e^{5\beta}`, so the SE is measured, not assumed); :math:`2L\|x\|^2/n_0`
(one layer too few) fails (tests).

References:
  Hanin & Nica, `Products of Many Large Random Matrices and Gradients in Deep
  Neural Networks <https://arxiv.org/abs/1812.05994>`_, Comm. Math. Phys. 2019.
  Roberts, Yaida & Hanin, `The Principles of Deep Learning Theory
  <https://arxiv.org/abs/2106.10165>`_, 2022.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.common import Config, Result, Sizes, check, cli, save_figure

SIZES = Sizes(
    quick=dict(
        n0=32,
        relu_grid=((128, 1), (64, 4), (128, 8), (64, 16)),
        relu_networks=1000,
        tanh_widths=(64, 128, 256),
        tanh_depth=20,
        tanh_networks=100,
        tanh_layers=(5, 10, 20),
        ntk_grid=((32, 1), (64, 4), (128, 8)),
        ntk_networks=1000,
    ),
    full=dict(
        n0=64,
        relu_grid=((256, 2), (128, 4), (256, 8), (64, 8), (128, 16), (64, 16)),
        relu_networks=8000,
        tanh_widths=(128, 256, 512, 1024),
        tanh_depth=50,
        tanh_networks=400,
        tanh_layers=(5, 10, 20, 50),
        ntk_grid=((32, 1), (64, 4), (128, 8), (64, 16), (256, 16)),
        ntk_networks=8000,
    ),
)


def _ensemble_init(n0: int, width: int, depth: int, method: str, **kw: Any):
    """``(apply_fn, init)``: ``init(key)`` draws one MLP's parameters (traceable in the key)."""
    from flax import nnx

    from wideth import functional, models

    def init(k):
        net = models.MLP(n0, width, depth, rngs=nnx.Rngs(params=k), **kw)
        return nnx.split(net, nnx.Param)[1]

    fn, _ = functional.as_apply(models.MLP(n0, width, depth, rngs=nnx.Rngs(0), **kw), method=method)
    return fn, init


def ensemble(
    n0: int, width: int, depth: int, num: int, key: jax.Array, method: str = "features", **kw: Any
):
    """``(apply_fn, params)`` of ``num`` MLPs with a leading ensemble axis on ``params``.

    ``method="features"`` gives the per-layer post-activations, ``"__call__"`` the output.
    Network ``i`` is drawn from ``jax.random.split(key, num)[i]``.
    """
    fn, init = _ensemble_init(n0, width, depth, method, **kw)
    return fn, jax.jit(jax.vmap(init))(jax.random.split(key, num))


#: Networks drawn and evaluated together under ``vmap`` by :func:`ensemble_map` (the
#: groups run in sequence): full mode's 8,000 networks at once held 17-33 GB of parameters.
NETS_PER_BATCH = 500
#: ... and at most this many parameters per group (400 tanh networks of 1024 x 50 are
#: 21 billion: the full run asked for 42 GB).
PARAMS_PER_BATCH = 2**27


def ensemble_map(
    one: Any,
    n0: int,
    width: int,
    depth: int,
    num: int,
    key: jax.Array,
    method: str = "features",
    **kw: Any,
) -> np.ndarray:
    """``one(apply_fn, params)`` of each network of :func:`ensemble` (same keys), float64.

    Each network is drawn from its key inside ``lax.map``, :data:`NETS_PER_BATCH` at a
    time (fewer if they would hold more than :data:`PARAMS_PER_BATCH` parameters), so
    the ensemble's parameters are never all in memory at once.
    """
    fn, init = _ensemble_init(n0, width, depth, method, **kw)
    shapes = jax.eval_shape(init, key)  # one network's parameters, traced, not drawn
    per_net = sum(math.prod(a.shape) for a in jax.tree.leaves(shapes))
    batch = max(1, min(NETS_PER_BATCH, num, PARAMS_PER_BATCH // per_net))
    prog = jax.jit(lambda ks: jax.lax.map(lambda k: one(fn, init(k)), ks, batch_size=batch))
    return np.asarray(prog(jax.random.split(key, num)), np.float64)


def unit_input(key: jax.Array, n0: int) -> tuple[jax.Array, jax.Array]:
    """A point with ``|x|^2 = n0`` and a unit direction ``u ⊥ x``."""
    a, b = jax.random.normal(key, (2, n0))
    x = a / jnp.linalg.norm(a) * jnp.sqrt(n0)
    u = b - (b @ x) * x / n0
    return x, u / jnp.linalg.norm(u)


def log_jacobian(n0: int, width: int, depth: int, num: int, key: jax.Array) -> np.ndarray:
    r""":math:`\log(n_0 G_L)` of ``num`` random He ReLU MLPs (``vmap`` over nets).

    :math:`G_L = \|J_L u\|^2/n_L` is the empirical NTK (mean over the :math:`n_L`
    features) of :math:`s \mapsto \phi(h^L(x + s u))` with respect to the scalar
    :math:`s` at :math:`s = 0` (:func:`wideth.kernels.empirical.ntk`).
    """
    from wideth.kernels import empirical

    x, u = unit_input(jax.random.fold_in(key, 1), n0)

    def one(fn, p):
        along_u = lambda s, z: fn(p, z + s * u)[-1]
        return jnp.log(empirical.ntk(along_u, jnp.zeros(()), x[None], method="jvp")[0, 0] * n0)

    return ensemble_map(one, n0, width, depth, num, key)


def exact_log_moments(width: int, depth: int) -> tuple[float, float]:
    """Exact mean and variance of ``log(n0 G_L)``, ``depth`` layers of ``width`` (docstring A)."""
    from scipy.special import digamma, polygamma
    from scipy.stats import binom

    k = np.arange(1, width + 1)
    pk = binom.pmf(k, width, 0.5)
    pk = pk / pk.sum()
    psi = digamma(k / 2)
    mean = np.log(4 / width) + np.sum(pk * psi)
    var = np.sum(pk * polygamma(1, k / 2)) + np.sum(pk * psi**2) - np.sum(pk * psi) ** 2
    return float(depth * mean), float(depth * var)


def ntk_diagonal(n0: int, width: int, depth: int, num: int, key: jax.Array) -> np.ndarray:
    r""":math:`\Theta(x,x) = \|\nabla_\theta f(x)\|^2` of ``num`` bias-free He ReLU MLPs.

    :func:`wideth.kernels.empirical.ntk` under ``vmap`` over the ensemble. ``x`` has
    :math:`\|x\|^2 = n_0`, so the theory value is :math:`2(L+1)`.
    """
    from wideth.kernels import empirical

    x, _ = unit_input(jax.random.fold_in(key, 3), n0)
    one = lambda fn, p: empirical.ntk(fn, p, x[None], method="jvp")[0, 0]
    return ensemble_map(one, n0, width, depth, num, key, method="__call__", b_std=0.0)


def ntk_checks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean NTK diagonal against 2 (L + 1) |x|^2 / n0 (docstring C), 3 SE."""
    return [
        check(
            f"ReLU n={r['width']}, L={r['depth']}: E[Theta(x,x)] / (|x|^2/n0)",
            2.0 * (r["depth"] + 1),
            r["mean"],
            3 * r["se"],
            note="exact at every width (module docstring C); 3 SE over "
            f"{r['networks']} networks; relative spread {r['rel_sd']:.3g}",
        )
        for r in rows
    ]


def relu_checks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and variance of the log against their exact finite-width values (3 SE)."""
    checks = []
    for r in rows:
        tag = f"ReLU n={r['width']}, L={r['depth']} (beta={r['beta']:.3g})"
        checks.append(
            check(
                f"{tag}: mean of log ||J u||^2",
                r["exact_mean"],
                r["mean"],
                3 * r["mean_se"],
                note=f"exact law (module docstring); asymptotic -beta/2 = {-r['beta'] / 2:.4f}",
            )
        )
        checks.append(
            check(
                f"{tag}: variance of log ||J u||^2",
                r["exact_var"],
                r["var"],
                3 * r["var_se"],
                note=f"exact law; asymptotic beta = {r['beta']:.4f} (Hanin & Nica 2019)",
            )
        )
    return checks


def tanh_moments(n0: int, width: int, depth: int, num: int, key: jax.Array) -> np.ndarray:
    """Per-layer mean squared pre-activation of ``num`` tanh nets (sigma_w^2 = 1): ``(num, L)``."""
    x, _ = unit_input(jax.random.fold_in(key, 2), n0)
    eps = 1e-7

    def one(fn, p):
        return jnp.stack(
            [jnp.mean(jnp.arctanh(jnp.clip(h[0], -1 + eps, 1 - eps)) ** 2) for h in fn(p, x[None])]
        )

    kw = dict(activation="tanh", W_std=1.0, b_std=0.0)
    return ensemble_map(one, n0, width, depth, num, key, **kw)


def extrapolate(
    widths: np.ndarray, means: np.ndarray, ses: np.ndarray
) -> tuple[float, float, float]:
    """Weighted LS fit ``m(n) = a + b/n``: returns ``(a, se_a, b)``."""
    x = 1.0 / np.asarray(widths, np.float64)
    a_mat = np.stack([np.ones_like(x), x], axis=1)
    w = 1.0 / np.asarray(ses) ** 2
    cov = np.linalg.inv(a_mat.T @ (w[:, None] * a_mat))
    coef = cov @ (a_mat.T @ (w * np.asarray(means)))
    return float(coef[0]), float(np.sqrt(cov[0, 0])), float(coef[1])


def plot(rows: list[dict[str, Any]], tanh: dict[str, Any], ntk_rows: list[dict[str, Any]]):
    """Moments of log ||Ju||^2 against beta with theory; tanh q_l at finite widths and n -> inf."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 3.8))
    b = np.array([r["beta"] for r in rows])
    grid = np.linspace(0, b.max() * 1.05, 50)
    axes[0].plot(grid, grid, "k-", lw=1, label="β (variance)")
    axes[0].plot(grid, -grid / 2, "k--", lw=1, label="−β/2 (mean)")
    for key, fmt, label in (("var", "o", "MC variance of log"), ("mean", "s", "MC mean of log")):
        y, se = [r[key] for r in rows], [r[key + "_se"] for r in rows]
        axes[0].errorbar(b, y, yerr=se, fmt=fmt, capsize=2, label=label)
    axes[0].set(xlabel="β = 5 Σ 1/n_l", ylabel="log ||J u||²", title="ReLU Jacobian is log-normal")
    axes[0].legend(fontsize=8)
    l = np.arange(1, len(tanh["q_inf"]) + 1)
    axes[1].loglog(l, tanh["q_inf"], "k-", label="infinite width (length map)")
    axes[1].loglog(l, 1 / (2 * l), "k:", label="1/(2l)")
    for w, m in zip(tanh["widths"], tanh["means"], strict=True):
        axes[1].loglog(l, m, ".", ms=4, label=f"width {w}")
    axes[1].errorbar(
        tanh["layers"],
        tanh["extrapolated"],
        yerr=tanh["extrapolated_se"],
        fmt="o",
        color="C3",
        capsize=2,
        label="extrapolated n→∞",
    )
    axes[1].set(xlabel="layer l", ylabel="q_l", title="tanh, σ_w² = 1, σ_b = 0 (K* = 0)")
    axes[1].legend(fontsize=7)
    depths = np.array([r["depth"] for r in ntk_rows])
    axes[2].errorbar(
        depths,
        [r["mean"] for r in ntk_rows],
        yerr=[3 * r["se"] for r in ntk_rows],
        fmt="o",
        capsize=2,
        label="MC mean (±3 SE)",
    )
    grid = np.arange(0, depths.max() + 2)
    axes[2].plot(grid, 2 * (grid + 1), "k-", lw=1, label="2(L+1)")
    for r in ntk_rows:
        axes[2].annotate(f"n={r['width']}", (r["depth"], r["mean"]), fontsize=7)
    axes[2].set(xlabel="hidden layers L", ylabel="E[Θ(x,x)] n₀/|x|²", title="mean NTK diagonal")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plan(cfg: Config) -> dict[str, Any]:
    """Sizes and key (nothing expensive)."""
    return {"sz": SIZES(cfg), "key": jax.random.key(cfg.seed)}


def run(cfg: Config) -> Result:
    """Both parts of the module docstring."""
    from wideth.kernels import meanfield

    p = plan(cfg)
    sz, key = p["sz"], p["key"]
    rows = []
    for i, (width, depth) in enumerate(sz.relu_grid):
        lg = log_jacobian(sz.n0, width, depth, sz.relu_networks, jax.random.fold_in(key, i))
        m = len(lg)
        var = float(lg.var(ddof=1))
        # SE of the sample variance from the sample fourth central moment.
        m4 = float(np.mean((lg - lg.mean()) ** 4))
        exact_mean, exact_var = exact_log_moments(width, depth)
        rows.append(
            dict(
                width=width,
                depth=depth,
                beta=5 * depth / width,
                exact_mean=exact_mean,
                exact_var=exact_var,
                mean=float(lg.mean()),
                mean_se=float(lg.std(ddof=1) / np.sqrt(m)),
                var=var,
                var_se=float(np.sqrt(max(m4 - var**2, 0.0) / m)),
            )
        )
    checks = relu_checks(rows)

    ntk_rows = []
    for i, (width, depth) in enumerate(sz.ntk_grid):
        th = ntk_diagonal(sz.n0, width, depth, sz.ntk_networks, jax.random.fold_in(key, 100 + i))
        ntk_rows.append(
            dict(
                width=width,
                depth=depth,
                networks=len(th),
                mean=float(th.mean()),
                se=float(th.std(ddof=1) / np.sqrt(len(th))),
                rel_sd=float(th.std(ddof=1) / th.mean()),
            )
        )
    checks += ntk_checks(ntk_rows)

    q_inf = np.asarray(meanfield.variance_sequence("tanh", 1.0, 0.0, 1.0, sz.tanh_depth))
    means, ses = [], []
    for j, width in enumerate(sz.tanh_widths):
        q = tanh_moments(
            sz.n0, width, sz.tanh_depth, sz.tanh_networks, jax.random.fold_in(key, 50 + j)
        )
        means.append(q.mean(axis=0))
        ses.append(q.std(axis=0, ddof=1) / np.sqrt(q.shape[0]))
    means, ses = np.array(means), np.array(ses)
    extrap, extrap_se = [], []
    for l in sz.tanh_layers:
        a, se_a, b = extrapolate(np.array(sz.tanh_widths), means[:, l - 1], ses[:, l - 1])
        extrap.append(a)
        extrap_se.append(se_a)
        checks.append(
            check(
                f"tanh K*=0, layer {l}: finite widths extrapolated to n -> inf vs length map",
                float(q_inf[l - 1]),
                a,
                3 * se_a,
                note=f"fit a + b/n over widths {list(sz.tanh_widths)}: b = {b:.3g}; "
                f"q_l * 2l = {q_inf[l - 1] * 2 * l:.4f}",
            )
        )
    tanh = dict(
        widths=list(sz.tanh_widths),
        means=means,
        ses=ses,
        q_inf=q_inf,
        layers=list(sz.tanh_layers),
        extrapolated=extrap,
        extrapolated_se=extrap_se,
    )
    figures = [save_figure(plot(rows, tanh, ntk_rows), cfg, "depth_fluctuations")]
    metrics = {"relu": rows, "tanh": tanh, "ntk_diagonal": ntk_rows}
    summary = (
        "log ||Ju||^2 variance / beta: "
        + ", ".join(f"{r['var'] / r['beta']:.3f}" for r in rows)
        + "; tanh extrapolated q_l / length map: "
        + ", ".join(f"{a / q_inf[l - 1]:.3f}" for a, l in zip(extrap, sz.tanh_layers, strict=True))
    )
    config = dict(vars(sz))
    return Result(metrics=metrics, checks=checks, figures=figures, config=config, summary=summary)


def main(argv=None):
    """Command line entry point."""
    return cli(run, __doc__, argv)


if __name__ == "__main__":
    from experiments.depth_fluctuations import main as _main  # so metrics.json names it

    _main()
