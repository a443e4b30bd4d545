r"""Bayesian interpolation with deep linear networks: exact posterior and effective depth.

A deep linear network :math:`z = W^{(L+1)}\cdots W^{(1)}x = \theta^\top x` with
fan-in Gaussian priors :math:`\mathcal N(0, \sigma^2/n_{l-1})`, conditioned on
interpolating :math:`P < n_0` points, has an exact posterior
(:mod:`wideth.kernels.deep_linear`): :math:`\theta = \theta_\parallel +
\theta_\perp`, :math:`\theta_\parallel = X^+Y`, :math:`\theta_\perp \mid s \sim
\mathcal N(0, s\Pi_\perp)`, and :math:`s` has the product-of-chi-squares prior
reweighted by :math:`s^{-P/2}e^{-\|\theta_\parallel\|^2/(2s)}`; the library
samples it exactly by rejection.

**A. Exact sampler vs direct sampling of weights (consistency).** The
derivation is ours, so this is a consistency check against an independent
route: draw every weight matrix of a tiny network (:math:`n_0 = 4`,
:math:`P = 2`, widths (3, 2)) from the prior and accept with probability
:math:`e^{-\beta\|X\theta - Y\|^2/2}` (exact rejection for the tempered
posterior at inverse temperature :math:`\beta`). Compared: the posterior means
of :math:`\log\|\theta_\perp\|^2`, :math:`\|\theta_\perp\|^2` and the predictive
variance at a test point in :math:`\mathrm{Col}(X^\top)^\perp`. The finite-β bias
is exact: :math:`\theta_\perp \mid s` does not depend on :math:`\beta`, only the
weight of :math:`s` does (:math:`\mathcal N(Y; 0, sXX^\top + \beta^{-1}I)`
instead of the :math:`\beta = \infty` weight), so both are computed by
importance weighting of the same prior draws of :math:`s`, and the check
compares the rejection mean with the library's :math:`\beta = \infty` mean
plus that exact shift. Tolerance: 3 standard errors of the difference (sample
SEs of both routes and of the importance estimate). With the wrong widths the
check fails (tests).

**B. Effective depth (claim, Hanin & Zlokapa 2023).** In the large-width limit
the posterior depends on depth and widths only through
:math:`\lambda_{\rm post} = P\sum_l 1/n_l`. Two architectures with the same
:math:`\lambda` and different :math:`L, n` (:math:`n_0 = 400`, :math:`P = 200`)
are compared on the mean and standard deviation of :math:`\log\|\theta_\perp\|^2`
under the exact posterior, for a teacher at the prior's scale
(:math:`\|\theta^*\|^2 = 1`) and one four times larger. Tolerance: 3 SE of the
difference plus the stated finite-size error :math:`|c_A| + |c_B|`, the
first-order (Edgeworth) corrections of each architecture to the common
:math:`\lambda`-limit (:func:`~wideth.kernels.deep_linear.finite_width_correction`).
Pairing on width instead of :math:`\lambda` fails (tests).

**C. Growing effective depth (claim, Hanin & Zlokapa 2023: deep networks with
data-agnostic priors give the posterior of shallow ones with the
evidence-maximising prior).** With :math:`\sigma^2 = 1` and the teacher four
times the prior scale, the posterior mean of :math:`\log\|\theta_\perp\|^2`
approaches that of the shallow model with :math:`\sigma_*^2 = n_0
\|\theta_\parallel\|^2/P` as :math:`\lambda` grows (:math:`\lambda` from 0.5
to 133). Checks: the gap shrinks monotonically in :math:`\lambda`, and at the
largest :math:`\lambda` it is within 3 SE plus the Laplace-approximation
remainder :math:`B(\lambda) = (|\Delta| + \lambda/P)/(1 + \lambda) + 1/P`,
:math:`\Delta = \log(\bar\sigma^2/n_0) - \log(\|\theta_\parallel\|^2/P)`
(derivation in :mod:`wideth.kernels.deep_linear`). A four times wider network
(smaller :math:`\lambda`) fails the same bound (tests). Only the location is
compared: at finite :math:`P` the deep posterior keeps a spread of
:math:`\log s` of :math:`\sqrt{2/P}` that the evidence-maximising point prior
lacks; both vanish relative to the mean as :math:`P \to \infty`.

References:
  Hanin & Zlokapa, `Bayesian interpolation with deep linear networks
  <https://arxiv.org/abs/2212.14457>`_, PNAS 120 (23), 2023.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import digamma as _digamma

from experiments.common import Config, Result, Sizes, check, cli, save_figure
from wideth.kernels import deep_linear as dl

#: Sizes the two modes share: the tiny network, the data of the pairs and the sweep.
_BOTH = dict(tiny_n0=4, tiny_p=2, tiny_widths=(3, 2), n0=400, p=200, sweep_rho=4.0)
SIZES = Sizes(
    quick=dict(
        _BOTH,
        tiny_beta=200.0,
        tiny_draws=2_000_000,
        tiny_chunk=200_000,
        tiny_samples=30_000,
        tiny_is=1_000_000,
        pairs=(
            (1.0, (200, 200), (800,) * 8),
            (4.0, (400,) * 4, (1600,) * 16),
        ),
        pair_samples=30_000,
        sweep=((1600,) * 4, (400,) * 4, (100,) * 4, (25,) * 4, (12,) * 8),
        sweep_samples=30_000,
    ),
    full=dict(
        _BOTH,
        tiny_beta=10_000.0,
        tiny_draws=200_000_000,
        tiny_chunk=1_000_000,
        tiny_samples=1_000_000,
        tiny_is=10_000_000,
        pairs=(
            (1.0, (200, 200), (800,) * 8),
            (1.0, (100,), (1000,) * 10),
            (4.0, (400,) * 4, (1600,) * 16),
            (4.0, (800,) * 8, (5000,) * 50),
        ),
        pair_samples=1_000_000,
        sweep=((1600,) * 4, (400,) * 4, (100,) * 4, (25,) * 4, (12,) * 8, (6,) * 16),
        sweep_samples=200_000,
    ),
)


def teacher_data(key: jax.Array, p: int, n0: int, rho: float):
    """Gaussian inputs ``(p, n0)``, targets of a linear teacher with ``|theta*|^2 = rho``."""
    kx, kt = jax.random.split(key)
    x = jax.random.normal(kx, (p, n0))
    th = jax.random.normal(kt, (n0,))
    th = jnp.sqrt(rho) * th / jnp.linalg.norm(th)
    return x, x @ th


def _mean_se(v: np.ndarray) -> tuple[float, float]:
    return float(v.mean()), float(v.std() / np.sqrt(len(v)))


# ----------------------------------------------------------------------------- part A


@functools.partial(jax.jit, static_argnames=("widths", "chunk", "num_chunks"))
def weight_rejection(key, x, y, widths, sigma2, beta, chunk, num_chunks):
    """Draw whole networks from the prior, accept with exp(-beta |X theta - Y|^2 / 2).

    Returns ``(theta, accepted)`` for all ``chunk * num_chunks`` draws.
    """
    n0 = x.shape[1]
    dims = (n0, *widths, 1)

    def one_chunk(k):
        ks = jax.random.split(k, len(dims))
        row = jnp.ones((chunk, 1, 1))  # running product W^(L+1) ... W^(l) as (chunk, 1, n_{l-1})
        for i in range(len(dims) - 1, 0, -1):
            w = jax.random.normal(ks[i], (chunk, dims[i], dims[i - 1])) * jnp.sqrt(
                sigma2 / dims[i - 1]
            )
            row = row @ w
        theta = row[:, 0, :]
        r = theta @ x.T - y
        u = jax.random.uniform(ks[0], (chunk,))
        return theta, jnp.log(u) < -beta / 2 * jnp.sum(r**2, axis=1)

    return jax.lax.map(one_chunk, jax.random.split(key, num_chunks))


def tiny_part(sz, key: jax.Array, widths=None, sigma2: float = 1.0) -> dict[str, Any]:
    """Part A: library sampler (``widths``, ``sigma2``) vs weight-space rejection (true widths)."""
    widths = sz.tiny_widths if widths is None else widths
    kx, kr, ks, ki, kp = jax.random.split(key, 5)
    x = jax.random.normal(kx, (sz.tiny_p, sz.tiny_n0)) / jnp.sqrt(sz.tiny_n0)
    y = jnp.asarray([0.3, -0.2])[: sz.tiny_p]
    theta_par, q = dl.interpolant(x, y)
    # test point in Col(X^T)^perp, unit norm
    xs = jax.random.normal(kp, (sz.tiny_n0,))
    xs = xs - q @ (q.T @ xs)
    xs = xs / jnp.linalg.norm(xs)
    m = sz.tiny_n0 - sz.tiny_p
    # weight-space rejection with the true architecture
    num_chunks = sz.tiny_draws // sz.tiny_chunk
    theta, acc = weight_rejection(
        kr, x, y, tuple(sz.tiny_widths), 1.0, sz.tiny_beta, sz.tiny_chunk, num_chunks
    )
    theta = np.asarray(theta.reshape(-1, sz.tiny_n0)[acc.reshape(-1)], np.float64)
    qn = np.asarray(q, np.float64)
    perp = theta - (theta @ qn) @ qn.T
    rej = {
        "log_perp_sq": np.log(np.sum(perp**2, 1)),
        "perp_sq": np.sum(perp**2, 1),
        "z_sq": (theta @ np.asarray(xs, np.float64)) ** 2,
    }
    # the library's exact zero-temperature sampler with the given architecture
    k1, k2 = jax.random.split(ks)
    nrm = np.asarray(dl.posterior_perp_norm(k1, x, y, widths, sigma2, sz.tiny_samples), np.float64)
    z = np.asarray(dl.predictive(k2, x, y, xs[None], widths, sigma2, sz.tiny_samples))[:, 0]
    lib = {"log_perp_sq": np.log(nrm**2), "perp_sq": nrm**2, "z_sq": z.astype(np.float64) ** 2}
    # finite-beta bias (true architecture) by importance weighting of prior draws of s
    t = np.asarray(dl.prior_log_scale(ki, sz.tiny_widths, sz.tiny_n0, 1.0, sz.tiny_is), np.float64)
    s = np.exp(t)
    kmat = np.asarray(x @ x.T, np.float64)
    ev, evec = np.linalg.eigh(kmat)
    yr = evec.T @ np.asarray(y, np.float64)
    a = float(np.sum(np.asarray(theta_par, np.float64) ** 2))
    lw0 = -sz.tiny_p / 2 * t - a / (2 * s)
    var = s[:, None] * ev[None] + 1.0 / sz.tiny_beta
    lwb = -0.5 * np.sum(np.log(var), 1) - 0.5 * np.sum(yr**2 / var, 1)
    chi_log = float(_digamma(m / 2) + np.log(2.0))
    fs = {"log_perp_sq": t + chi_log, "perp_sq": m * s, "z_sq": s}

    def wmean(lw, f):
        w = np.exp(lw - lw.max())
        w /= w.sum()
        mu = float(np.sum(w * f))
        return mu, float(np.sqrt(np.sum(w**2 * (f - mu) ** 2)))

    rows = []
    for name in ("log_perp_sq", "perp_sq", "z_sq"):
        e0, se0 = wmean(lw0, fs[name])
        eb, seb = wmean(lwb, fs[name])
        r_m, r_se = _mean_se(rej[name])
        l_m, l_se = _mean_se(lib[name])
        rows.append(
            dict(
                stat=name,
                library=l_m,
                library_se=l_se,
                rejection=r_m,
                rejection_se=r_se,
                exact_beta_inf=e0,
                exact_beta=eb,
                bias_beta=eb - e0,
                is_se=float(np.hypot(se0, seb)),
            )
        )
    hist = {"rejection": rej["log_perp_sq"], "library": lib["log_perp_sq"]}
    return {"rows": rows, "accepted": int(len(theta)), "draws": int(sz.tiny_draws), "hist": hist}


# ----------------------------------------------------------------------------- part B


def _log_perp_stats(nrm: np.ndarray) -> dict[str, float]:
    v = np.log(np.asarray(nrm, np.float64) ** 2)
    mu, sd = float(v.mean()), float(v.std())
    m4 = float(np.mean((v - mu) ** 4))
    return dict(
        mean=mu,
        mean_se=sd / np.sqrt(len(v)),
        sd=sd,
        sd_se=float(np.sqrt(max(m4 - sd**4, 0.0) / (4 * sd**2 * len(v)))),
    )


def architecture_law(key, x, y, widths, sigma2: float, num: int) -> dict[str, Any]:
    """Exact posterior statistics of log|theta_perp|^2, the lambda-limit and its 1st-order shift."""
    p, n0 = x.shape
    nrm = np.asarray(dl.posterior_perp_norm(key, x, y, widths, sigma2, num))
    theta_par, _ = dl.interpolant(x, y)
    a = float(jnp.sum(theta_par**2))
    lam = dl.effective_depth(p, widths)
    total = sigma2 ** (len(widths) + 1)
    lim = dl.large_width_posterior(p, n0, a, lam, total)
    d_mean, d_var = dl.finite_width_correction(lim, widths, p, n0, total)
    m = n0 - p
    chi_mean = float(_digamma(m / 2) + np.log(2.0))
    chi_var = float(jax.scipy.special.polygamma(1, m / 2.0))
    sd_lim = float(np.sqrt(lim.var + chi_var))
    out = dict(
        widths=list(widths),
        depth=len(widths),
        lam=lam,
        **_log_perp_stats(nrm),
        limit_mean=float(lim.mean) + chi_mean,
        limit_sd=sd_lim,
        corr_mean=float(d_mean),
        corr_sd=float(d_var) / (2 * sd_lim),
        a=a,
    )
    return out


def pairs_part(sz, key: jax.Array) -> list[dict[str, Any]]:
    """Part B: the exact law of log|theta_perp|^2 for each pair of equal-lambda architectures."""
    rows = []
    for i, (rho, wa, wb) in enumerate(sz.pairs):
        x, y = teacher_data(jax.random.fold_in(key, i), sz.p, sz.n0, rho)
        ka, kb = jax.random.split(jax.random.fold_in(key, 100 + i))
        rows.append(
            dict(
                rho=rho,
                a=architecture_law(ka, x, y, wa, 1.0, sz.pair_samples),
                b=architecture_law(kb, x, y, wb, 1.0, sz.pair_samples),
            )
        )
    return rows


# ----------------------------------------------------------------------------- part C


def sweep_part(sz, key: jax.Array, sweep=None) -> dict[str, Any]:
    """Part C: gap to the shallow evidence-maximising posterior as lambda grows (sigma^2 = 1)."""
    sweep = sz.sweep if sweep is None else sweep
    x, y = teacher_data(key, sz.p, sz.n0, sz.sweep_rho)
    theta_par, _ = dl.interpolant(x, y)
    a = float(jnp.sum(theta_par**2))
    m = sz.n0 - sz.p
    chi_mean = float(_digamma(m / 2) + np.log(2.0))
    s_star = a / sz.p  # shallow evidence-maximising posterior: s = sigma_*^2 / n0 = a / P
    sig2_star = float(dl.shallow_evidence_max_sigma2(x, y))
    target = np.log(s_star) + chi_mean
    delta = float(np.log(1.0 / sz.n0) - np.log(s_star))
    rows = []
    for j, widths in enumerate(sweep):
        k = jax.random.fold_in(key, 1000 + j)
        law = architecture_law(k, x, y, widths, 1.0, sz.sweep_samples)
        lam = law["lam"]
        rows.append(
            dict(
                widths=list(widths),
                lam=lam,
                gap=law["mean"] - target,
                gap_se=law["mean_se"],
                limit_gap=law["limit_mean"] - target,
                laplace_gap=(delta - lam / sz.p) / (1 + lam),
                bound=(abs(delta) + lam / sz.p) / (1 + lam) + 1.0 / sz.p,
            )
        )
    return dict(rows=rows, delta=delta, sigma2_star=sig2_star, shallow_gap=delta, s_star=s_star)


# ----------------------------------------------------------------------------- checks


def checks_for(tiny: dict | None, pairs: list, sweep: dict | None) -> list[dict[str, Any]]:
    """Checks of the module docstring; tolerances as stated there."""
    out = []
    if tiny is not None:
        for r in tiny["rows"]:
            se = float(np.sqrt(r["library_se"] ** 2 + r["rejection_se"] ** 2 + r["is_se"] ** 2))
            out.append(
                check(
                    f"tiny net: E[{r['stat']}], exact sampler + finite-beta shift vs weight-space "
                    "rejection",
                    r["library"] + r["bias_beta"],
                    r["rejection"],
                    3 * se,
                    note="our exact law (wideth.kernels.deep_linear) at beta=inf, shifted by the "
                    f"exact finite-beta bias {r['bias_beta']:.3g} (importance weights), vs prior "
                    "draws of all weights accepted with exp(-beta r^2/2); 3 SE of the difference",
                    kind="consistency",
                )
            )
    for r in pairs:
        a, b = r["a"], r["b"]
        tag = (
            f"lambda={a['lam']:.3g}, |theta*|^2={r['rho']:g}: L={a['depth']} x {a['widths'][0]} "
            f"vs L={b['depth']} x {b['widths'][0]}"
        )
        for stat in ("mean", "sd"):
            se = float(np.hypot(a[f"{stat}_se"], b[f"{stat}_se"]))
            fs = abs(a[f"corr_{stat}"]) + abs(b[f"corr_{stat}"])
            out.append(
                check(
                    f"{tag}: {stat} of log|theta_perp|^2",
                    a[stat],
                    b[stat],
                    3 * se + fs,
                    note="Hanin & Zlokapa 2023: the posterior depends on L, n only through "
                    f"lambda_post; 3 SE + first-order finite-size error {fs:.2g} "
                    f"(lambda-limit value {a[f'limit_{stat}']:.5g})",
                )
            )
    if sweep is not None:
        rows = sweep["rows"]
        gaps = [abs(r["gap"]) for r in rows]
        lams = [r["lam"] for r in rows]
        order = np.argsort(lams)
        mono = all(gaps[order[i]] > gaps[order[i + 1]] for i in range(len(order) - 1))
        out.append(
            check(
                "sigma^2=1: |gap| to the evidence-maximising shallow posterior decreases in lambda",
                "strictly decreasing",
                [round(g, 4) for g in gaps],
                None,
                passed=bool(mono),
                note="Hanin & Zlokapa 2023; gaps of E log|theta_perp|^2 at lambda="
                + ", ".join(f"{lam:.3g}" for lam in lams),
            )
        )
        last = rows[int(order[-1])]
        out.append(
            check(
                f"sigma^2=1, lambda={last['lam']:.3g}: E log|theta_perp|^2 vs shallow with "
                "evidence-maximising sigma^2",
                0.0,
                last["gap"],
                3 * last["gap_se"] + last["bound"],
                note="Hanin & Zlokapa 2023 (deep data-agnostic = shallow evidence-maximising as "
                f"lambda -> inf); 3 SE + Laplace remainder (|Delta| + lambda/P)/(1 + lambda) + 1/P"
                f" = {last['bound']:.3g}; shallow sigma^2=1 gap {sweep['shallow_gap']:.3g}",
            )
        )
    return out


# ----------------------------------------------------------------------------- figure


def plot(tiny, pairs, sweep):
    """Exact vs rejection; equal-lambda laws; the gap vs lambda."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    bins = np.linspace(-8, 2, 80)
    axes[0].hist(tiny["hist"]["library"], bins, density=True, alpha=0.5, label="exact sampler")
    axes[0].hist(
        tiny["hist"]["rejection"],
        bins,
        density=True,
        histtype="step",
        lw=1.5,
        label=f"weight rejection (β={int(tiny['beta'])})",
    )
    shift = tiny["rows"][0]["bias_beta"]
    axes[0].set(
        xlabel="log‖θ⊥‖²",
        title=f"tiny net, {tiny['accepted']} accepted (β shifts the mean by {shift:.2f})",
    )
    axes[0].legend(fontsize=8)
    for r in pairs:
        for side, fmt in (("a", "o"), ("b", "s")):
            d = r[side]
            axes[1].errorbar(
                d["lam"] + (0.05 if side == "b" else 0),
                d["sd"],
                yerr=3 * d["sd_se"],
                fmt=fmt,
                label=f"‖θ*‖²={r['rho']:g}, L={d['depth']}×{d['widths'][0]}",
            )
            axes[1].plot(d["lam"] + (0.05 if side == "b" else 0), d["limit_sd"], "k_", ms=14)
    axes[1].set(xlabel="λ_post", ylabel="sd of log‖θ⊥‖²", title="equal λ (— λ-limit)")
    axes[1].legend(fontsize=7)
    rows = sweep["rows"]
    lam = np.array([r["lam"] for r in rows])
    axes[2].errorbar(
        lam,
        [abs(r["gap"]) for r in rows],
        yerr=[3 * r["gap_se"] for r in rows],
        fmt="o",
        label="exact, σ²=1",
    )
    axes[2].plot(lam, [abs(r["limit_gap"]) for r in rows], "k.", label="λ-limit law")
    g = np.geomspace(lam.min(), lam.max(), 50)
    axes[2].plot(g, np.abs((sweep["delta"] - g / 200) / (1 + g)), "k--", lw=1, label="Laplace")
    axes[2].set(
        xscale="log",
        yscale="log",
        xlabel="λ_post",
        ylabel="|gap| to evidence-max shallow",
        title="deep σ²=1 → evidence-maximising",
    )
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plan(cfg: Config) -> dict[str, Any]:
    """Sizes, key and the effective depths of every architecture (cheap)."""
    sz = SIZES(cfg)
    lams = {
        "pairs": [
            (dl.effective_depth(sz.p, a), dl.effective_depth(sz.p, b)) for _, a, b in sz.pairs
        ],
        "sweep": [dl.effective_depth(sz.p, w) for w in sz.sweep],
    }
    for la, lb in lams["pairs"]:
        if not np.isclose(la, lb):
            raise ValueError(f"pairs: expected equal effective depths, got {la} and {lb}")
    return {"sz": sz, "key": jax.random.key(cfg.seed), "lams": lams}


def run(cfg: Config) -> Result:
    """The three parts of the module docstring (float64 throughout)."""
    p = plan(cfg)
    sz, key = p["sz"], p["key"]
    with jax.enable_x64(True):
        tiny = tiny_part(sz, jax.random.fold_in(key, 1))
        tiny["beta"] = sz.tiny_beta
        pairs = pairs_part(sz, jax.random.fold_in(key, 2))
        sweep = sweep_part(sz, jax.random.fold_in(key, 3))
    checks = checks_for(tiny, pairs, sweep)
    figures = [save_figure(plot(tiny, pairs, sweep), cfg, "bayes_deep_linear")]
    summary = (
        "tiny net exact/rejection E|theta_perp|^2: "
        f"{tiny['rows'][1]['library'] / tiny['rows'][1]['rejection']:.3f}; equal-lambda sd ratios: "
        + ", ".join(f"{r['a']['sd'] / r['b']['sd']:.4f}" for r in pairs)
        + "; gap to evidence-max at lambda="
        + ", ".join(f"{r['lam']:.3g}: {r['gap']:.3g}" for r in sweep["rows"])
    )
    tiny_out = {k: v for k, v in tiny.items() if k != "hist"}
    metrics = {"tiny": tiny_out, "pairs": pairs, "sweep": sweep}
    return Result(
        metrics=metrics, checks=checks, figures=figures, config=dict(vars(sz)), summary=summary
    )


def main(argv=None):
    """Command line entry point."""
    return cli(run, __doc__, argv)


if __name__ == "__main__":
    from experiments.bayes_deep_linear import main as _main  # so metrics.json names it

    _main()
