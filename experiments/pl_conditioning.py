r"""PL and tangent-kernel conditioning: along a real training run, and at initialisation vs depth.

**A. Along training** (Balboni's thesis ch. 4 and 7; Liu, Zhu & Belkin 2022). A
ReLU MLP is trained by full-batch gradient descent with step :math:`1/L` on the
mean squared error :math:`\ell = \frac1{2n}\|F - y\|^2` of raw sklearn digits
(parity labels :math:`\pm1`). The smoothness :math:`L` is set before the run
from the Gauss--Newton curvature at initialisation, :math:`L = 1.5\,
\lambda_{\max}(K_0)\,\|\nabla^2_F\ell\|`. At every step the loop logs the loss
and the gradient norm, so the local PL ratio :math:`\mu(\theta_t) =
\|\nabla\mathcal L\|^2/(2\mathcal L)` (:math:`\ell^\star = 0`), and every
``probe_every`` steps the probes of :mod:`wideth.train.probes`: :math:`\mu` again,
:math:`\lambda_{\min}, \lambda_{\max}` and the Gershgorin bound of the NTK Gram
(dense ``eigh``: :math:`nk = 32 \le` ``DENSE_MAX``), the sharpness (Lanczos on
the Hessian) and :math:`\|\nabla^2_F\ell\|` (Lanczos in output space).
Checks, with the hypotheses of :mod:`wideth.diagnostics.conditioning`:

* (consistency, exact theorem) :math:`\lambda_{\min}(K)\mu_\ell \le \mu(\theta_t) \le
  \lambda_{\max}(K)\beta_\ell` with :math:`\mu_\ell = \beta_\ell = 1/n` at every
  probe. Tolerance: float32 rounding of the smallest eigenvalue of a dense
  ``eigh``, :math:`\epsilon_{32}\,\|K\|\sqrt{nk}`, relative to
  :math:`\lambda_{\min}`, i.e. :math:`\kappa\sqrt{nk}\,\epsilon_{32}`, times 10.
  The sum-loss constant :math:`\mu_\ell = 1` (forgetting the :math:`1/n`) and
  :math:`\beta_\ell = 1/n^2` are caught (tests).
* (claim, descent lemma) :math:`\mathcal L_k/\mathcal L_0 \le \prod_{i<k}(1 -
  \mu(\theta_i)/L)` for every :math:`k`; tolerance :math:`10\,T\epsilon_{32}`
  relative (rounding of the loss and of a product of :math:`T` factors). Its
  hypothesis, curvature at most :math:`L` along the path, is a consistency check
  on the sampled sharpness. A smoothness :math:`L/2` is caught (tests).
* (consistency) :math:`\|\nabla^2_F\ell\| = 1/n` (Lanczos on :math:`I/n`, exact in
  one step; 1e-5 relative).
* (consistency, Gershgorin's theorem) :math:`\lambda_{\max} \le G = \max_i\sum_j|K_{ij}|
  \le \sqrt{nk}\,\lambda_{\max}` at every probe; the ratio :math:`G/\lambda_{\max}`
  (how good a proxy the bound is) is reported. The Lanczos estimates of
  :math:`\lambda_{\max}` at initialisation (20 matrix-free steps) are compared to
  the dense value (1e-3 relative, a Kaniel--Paige error that is measured far
  smaller); the 20-step Lanczos :math:`\lambda_{\min}` is reported beside the
  dense one: Ritz values lie inside the spectrum, so it can only over-estimate
  :math:`\lambda_{\min}` (by 1e-4 relative here, more for larger Grams), and the
  lower bound uses ``eigh``.

**B. Conditioning at initialisation vs depth** (Balboni's thesis ch. 6). For an
MLP with :math:`\sigma_b = 0` and :math:`\sigma_w^2 = 1/E[\phi(z)^2]` (a unit-variance
activation), the infinite-width NNGP and NTK Grams on a fixed dataset (16 raw
digits on the sphere :math:`\sigma_w^2\|x\|^2/d = 1`) follow from the dual activation
(:func:`wideth.diagnostics.conditioning.dual_kernels`, built on
:mod:`wideth.kernels.meanfield`). A zero-mean activation (erf) contracts every
off-diagonal correlation, so the condition number :math:`\kappa` of both Grams
falls with depth towards 1; the non-centred ReLU drives correlations to 1, so
its NNGP :math:`\kappa` grows (its NTK :math:`\kappa` falls, but to a floor near
:math:`1 + n/3`, since the normalised off-diagonal NTK tends to 1/4, not 0).
Checks:

* (consistency) dual-activation recursion vs the neural-tangents analytic kernels
  (:func:`wideth.kernels.analytic.mlp`), two independent routes; tolerance
  :math:`5\sqrt{\epsilon_{32}}\,D` relative to the largest entry (the arc-cosine
  of a correlation near 1 loses half the digits in float32, per layer).
* (claim, Jacot et al. 2018) empirical NTK :math:`\kappa` of finite networks
  (``width``, ``seeds`` independent initialisations) against the infinite-width
  value at every depth: :math:`\max_D |z_D| \le 3` with :math:`z` in standard
  errors of the seed mean. The finite-width bias of :math:`\kappa` is positive
  (Jensen: :math:`\lambda_{\min}` is biased down) and measured at about 1.7 SE
  for 8 seeds at width 512; it grows as :math:`\sqrt{\text{seeds}/\text{width}}`,
  so full mode doubles the width with the seeds.
* (claim, ch. 6) erf: NTK and NNGP :math:`\kappa` fall from the shallowest to the
  deepest network, by more than 3 SE of the difference. ReLU: NNGP :math:`\kappa`
  does not fall (the deepest is not below the shallowest by more than 3 SE), as
  the infinite-width curve predicts. A network with the wrong weight variance
  fails the per-depth check, and the ReLU curve fails the erf claim (tests).

References:
  Liu, Zhu & Belkin, `Loss landscapes and optimization in over-parameterized
  non-linear systems and neural networks <https://arxiv.org/abs/2003.00307>`_, 2022.
  Balboni, PhD thesis, ch. 4, 6, 7.
  Jacot, Gabriel & Hongler, `Neural Tangent Kernel <https://arxiv.org/abs/1806.07572>`_, 2018.
  Daniely, Frostig & Singer, Toward deeper understanding of neural networks, 2016.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.common import Config, Result, Sizes, check, check_max_z, cli, save_figure
from wideth import data, functional, models, train
from wideth.diagnostics import conditioning as cd
from wideth.kernels import analytic, empirical

EPS32 = float(np.finfo(np.float32).eps)

SIZES = Sizes(
    quick=dict(
        train_n=32,
        train_width=256,
        train_depth=2,
        train_steps=300,
        probe_every=10,
        smoothness_margin=1.5,
        depth_n=16,
        depths=(1, 3, 6),
        depth_width=512,
        depth_seeds=6,
        activations=("erf", "relu"),
    ),
    full=dict(
        train_n=128,
        train_width=1024,
        train_depth=3,
        train_steps=3000,
        probe_every=10,
        smoothness_margin=1.5,
        depth_n=32,
        depths=(1, 2, 4, 8, 16),
        depth_width=2048,
        depth_seeds=32,
        activations=("erf", "tanh", "relu"),
    ),
)


def sphere_digits(n: int, seed: int, w_var: float) -> tuple[jax.Array, jax.Array]:
    r"""``n`` raw digits scaled to :math:`\sigma_w^2\|x\|^2/d = 1`; parity labels :math:`\pm1`."""
    ds = data.digits(n_train=n, seed=seed, one_hot=False, standardize=None)
    x = np.asarray(ds.x_train, np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(x.shape[1] / w_var)
    y = np.where(np.asarray(ds.y_train) % 2 == 0, 1.0, -1.0)[:, None]
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)


# ----------------------------------------------------------------------------- A: training


def training_part(sz, seed: int) -> dict[str, Any]:
    """GD with step 1/L on the MSE of a ReLU MLP; every quantity of the module docstring."""
    from flax import nnx

    x, y = sphere_digits(sz.train_n, seed, 2.0)
    net = models.MLP(x.shape[1], sz.train_width, sz.train_depth, rngs=nnx.Rngs(seed))
    apply_fn, params = functional.as_apply(net)
    lam_min0, lam_max0 = cd.ntk_extreme_eigenvalues(apply_fn, params, x, method="dense")
    mu_ell, beta_ell = cd.square_loss_constants(sz.train_n)
    smooth = sz.smoothness_margin * float(lam_max0) * beta_ell
    tx = optax.sgd(1.0 / smooth)
    step = train.train_step(apply_fn, "mse", tx, metrics=("grad_norm",))
    probes = {
        "mu": train.probes.pl_ratio(step),
        "ntk": train.probes.ntk_spectrum(step),
        "sharpness": train.probes.sharpness(step, num_steps=20),
        "q": train.probes.output_hessian_norm(step, num_steps=4),
    }
    res = jax.jit(
        lambda s: train.run(step, s, (x, y), sz.train_steps, probes=probes, every=sz.probe_every)
    )(train.TrainState.create(params, tx))
    pr = jax.tree.map(lambda a: np.asarray(a, np.float64), res.probes)
    loss = np.asarray(res.metrics["loss"], np.float64)
    gnorm = np.asarray(res.metrics["grad_norm"], np.float64)
    # Lanczos (matrix-free, 20 steps) against the dense extremes at initialisation.
    lz_min, lz_max = cd.ntk_extreme_eigenvalues(
        apply_fn, params, x, method="lanczos", num_steps=20, key=jax.random.key(seed)
    )
    return dict(
        n=sz.train_n,
        nk=int(y.size),
        smoothness=smooth,
        mu_ell=mu_ell,
        beta_ell=beta_ell,
        loss=loss,
        mu_steps=gnorm**2 / (2 * loss),
        probe_steps=np.asarray(res.probe_steps),
        mu=pr["mu"],
        lam_min=pr["ntk"]["lam_min"],
        lam_max=pr["ntk"]["lam_max"],
        gershgorin=pr["ntk"]["gershgorin"],
        sharpness=pr["sharpness"],
        q=pr["q"],
        lanczos_init=(float(lz_min), float(lz_max)),
        dense_init=(float(lam_min0), float(lam_max0)),
    )


def sandwich_checks(tr: dict[str, Any], mu_ell: float, beta_ell: float) -> list[dict[str, Any]]:
    """lam_min mu_ell <= mu <= lam_max beta_ell at every probe (exact theorem)."""
    lo, hi = (
        np.asarray(b) for b in cd.pl_kernel_bounds(tr["lam_min"], tr["lam_max"], mu_ell, beta_ell)
    )
    kappa = np.max(tr["lam_max"] / tr["lam_min"])
    tol = 10 * kappa * np.sqrt(tr["nk"]) * EPS32
    worst_lo = float(np.min(tr["mu"] / lo))
    worst_hi = float(np.max(tr["mu"] / hi))
    src = "Liu, Zhu & Belkin 2022 Thm. 3 / Balboni ch. 4: grad L = J^T grad l, |grad L|^2 = "
    return [
        check(
            "PL sandwich, lower: min_t mu(theta_t) / (lam_min(K_t) mu_ell) >= 1",
            ">= 1",
            worst_lo,
            tol,
            passed=bool(worst_lo >= 1 - tol),
            note=src + f"grad l^T K grad l >= lam_min |grad l|^2; mu_ell = {mu_ell:.4g}; "
            f"tolerance 10 kappa sqrt(nk) eps32 = {tol:.2g} (dense eigh rounding)",
            kind="consistency",
        ),
        check(
            "PL sandwich, upper: max_t mu(theta_t) / (lam_max(K_t) beta_ell) <= 1",
            "<= 1",
            worst_hi,
            tol,
            passed=bool(worst_hi <= 1 + tol),
            note=src + f"grad l^T K grad l <= lam_max |grad l|^2; beta_ell = {beta_ell:.4g}",
            kind="consistency",
        ),
    ]


def product_checks(tr: dict[str, Any], smoothness: float) -> list[dict[str, Any]]:
    """L_k / L_0 <= prod_{i<k} (1 - mu_i / L), and the hypothesis sharpness <= L."""
    loss = tr["loss"]
    bound = np.asarray(cd.pl_product_bound(tr["mu_steps"][:-1], smoothness), np.float64)
    ratio = loss / loss[0]
    worst = float(np.max(ratio[1:] / bound[1:]))  # k = 0 is 1/1 by definition
    tol = 10 * len(loss) * EPS32
    sharp = float(np.max(tr["sharpness"]) / smoothness)
    return [
        check(
            "descent lemma: max_k (L_k/L_0) / prod_{i<k}(1 - mu(theta_i)/L) <= 1",
            "<= 1",
            worst,
            tol,
            passed=bool(worst <= 1 + tol),
            note=f"Balboni ch. 4/7, GD with step 1/L, L = {smoothness:.4g}; tolerance "
            f"10 T eps32 = {tol:.2g} (rounding of T factors)",
        ),
        check(
            "hypothesis of the descent lemma: max sampled sharpness / L <= 1",
            "<= 1",
            sharp,
            0.0,
            passed=bool(sharp <= 1.0),
            note="Lanczos sharpness at every probe (a lower bound on the curvature; "
            "the hypothesis concerns the segments between steps)",
            kind="consistency",
        ),
    ]


def output_hessian_check(tr: dict[str, Any], theory: float) -> dict[str, Any]:
    """|Hessian of l in output space| = 1/n for the MSE, at every probe."""
    worst = float(np.max(np.abs(tr["q"] / theory - 1)))
    return check(
        "output-space Hessian norm |d^2 l/dF^2| = 1/n (MSE)",
        0.0,
        worst,
        1e-5,
        note=f"l = |F - y|^2/(2n): Hessian I/n, n = {tr['n']}; max relative deviation over "
        "probes; 1e-5 = float32 Lanczos rounding",
        kind="consistency",
    )


def gershgorin_checks(
    tr: dict[str, Any], lam_max: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """lam_max <= G <= sqrt(nk) lam_max at every probe, and Lanczos vs dense lam_max."""
    lam = tr["lam_max"] if lam_max is None else np.asarray(lam_max)
    r = tr["gershgorin"] / lam
    lo, hi = float(np.min(r)), float(np.max(r))
    root = float(np.sqrt(tr["nk"]))
    tol = 10 * root * EPS32
    lz, dn = tr["lanczos_init"][1], tr["dense_init"][1]
    return [
        check(
            "Gershgorin: lam_max(K) <= max_i sum_j |K_ij| <= sqrt(nk) lam_max(K)",
            f"in [1, {root:.3g}]",
            [lo, hi],
            tol,
            passed=bool(lo >= 1 - tol and hi <= root * (1 + tol)),
            note="Gershgorin 1931; |K|_inf <= sqrt(m) |K|_2; measured ratio range over "
            f"training {lo:.3f}-{hi:.3f} (the proxy's quality)",
            kind="consistency",
        ),
        check(
            "lam_max(K_0): 20 matrix-free Lanczos steps vs dense eigh",
            dn,
            lz,
            1e-3,
            relative=True,
            note=f"Lanczos lam_min after 20 steps {tr['lanczos_init'][0]:.4g} vs dense "
            f"{tr['dense_init'][0]:.4g} (Ritz values lie inside the spectrum)",
            kind="consistency",
        ),
    ]


# ----------------------------------------------------------------------------- B: depth


def infinite_width(corr: jax.Array, activation: str, depths: tuple[int, ...]) -> dict[str, Any]:
    """kappa of the dual-activation NNGP/NTK at each depth, and NT analytic kernels beside them."""
    sig, th = cd.dual_kernels(corr, activation, max(depths))
    w_var = cd.normalised_weight_variance(activation)
    out = dict(activation=activation, w_var=w_var, depths=list(depths))
    out["kappa_nngp"] = [float(cd.condition_number(sig[d])) for d in depths]
    out["kappa_ntk"] = [float(cd.condition_number(th[d])) for d in depths]
    return out | {"_sig": sig, "_th": th}


def analytic_errors(x: jax.Array, inf: dict[str, Any]) -> list[float]:
    """max |dual - analytic| / max |analytic| over NNGP and NTK, per depth."""
    errs = []
    for d in inf["depths"]:
        _, _, kf = analytic.mlp(d, 512, inf["activation"], W_std=inf["w_var"] ** 0.5, b_std=0.0)
        nngp, ntk = analytic.kernel(kf, x, get=("nngp", "ntk"))
        e = max(
            float(jnp.max(jnp.abs(nngp - inf["_sig"][d])) / jnp.max(jnp.abs(nngp))),
            float(jnp.max(jnp.abs(ntk - inf["_th"][d])) / jnp.max(jnp.abs(ntk))),
        )
        errs.append(e)
    return errs


def kappa_program(x: jax.Array, activation: str, depth: int, width: int, w_var: float):
    r"""Jitted ``keys (S,) -> (kappa NTK (S,), kappa last-layer NNGP (S,))`` of finite MLPs.

    Network ``s`` is ``models.MLP(..., rngs=nnx.Rngs(keys[s]))``. Parameters are drawn
    inside ``lax.map``, 4 seeds at a time: 32 deep, wide full-mode networks held at once
    (and stacked) took 17 GB of host memory before anything ran.
    """
    from flax import nnx

    build = lambda rngs: models.MLP(
        x.shape[1], width, depth, activation=activation, W_std=w_var**0.5, b_std=0.0, rngs=rngs
    )
    net = build(nnx.Rngs(0))  # only for the functions: its parameters are not used
    apply_fn, _ = functional.as_apply(net)
    feat_fn, _ = functional.as_apply(net, method="features")

    def kappas(key):
        p = functional.init_params(build, key)
        k = empirical.ntk(apply_fn, p, x)
        f = feat_fn(p, x)[-1]
        return cd.condition_number(k), cd.condition_number(f @ f.T / f.shape[1])

    return jax.jit(lambda keys: jax.lax.map(kappas, keys, batch_size=4))


def finite_width(
    x: jax.Array, activation: str, depths, width: int, seeds: int, w_var: float, seed: int = 0
) -> dict[str, Any]:
    """Per-seed kappa of the empirical NTK and last-layer NNGP of finite MLPs, mean and SE
    (seed ``s`` is ``nnx.Rngs(1000 seed + s)``; :func:`kappa_program`)."""
    rows = {"ntk": [], "nngp": []}
    keys = jnp.stack([jax.random.key(1000 * seed + s) for s in range(seeds)])
    for d in depths:
        out = kappa_program(x, activation, d, width, w_var)(keys)
        kn, kg = (np.asarray(a, np.float64) for a in out)
        for name, k in (("ntk", kn), ("nngp", kg)):
            rows[name].append((float(k.mean()), float(k.std(ddof=1) / np.sqrt(seeds))))
    return rows


def depth_part(sz, seed: int) -> list[dict[str, Any]]:
    """Both routes of the infinite-width kappa and the finite-width Monte Carlo, per activation."""
    out = []
    for act in sz.activations:
        w_var = cd.normalised_weight_variance(act)
        x, _ = sphere_digits(sz.depth_n, seed, w_var)
        u = np.asarray(x, np.float64)
        u = u / np.linalg.norm(u, axis=1, keepdims=True)
        corr = jnp.asarray(u @ u.T, jnp.float32)
        inf = infinite_width(corr, act, sz.depths)
        inf["analytic_error"] = analytic_errors(x, inf)
        inf["finite"] = finite_width(x, act, sz.depths, sz.depth_width, sz.depth_seeds, w_var, seed)
        inf["width"], inf["seeds"] = sz.depth_width, sz.depth_seeds
        out.append({k: v for k, v in inf.items() if not k.startswith("_")})
    return out


def _z(row: dict[str, Any], kernel: str) -> np.ndarray:
    m = np.array([a for a, _ in row["finite"][kernel]])
    se = np.array([b for _, b in row["finite"][kernel]])
    return (m - np.asarray(row[f"kappa_{kernel}"])) / se


def _drop(row: dict[str, Any], kernel: str) -> tuple[float, float]:
    (a, sa), (b, sb) = row["finite"][kernel][0], row["finite"][kernel][-1]
    return a - b, float(np.hypot(sa, sb))


def depth_checks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checks of part B for every activation row."""
    out = []
    for r in rows:
        act, ds = r["activation"], r["depths"]
        tol = 5 * np.sqrt(EPS32) * max(ds)
        out.append(
            check(
                f"{act}: dual-activation recursion vs neural-tangents analytic kernels",
                0.0,
                max(r["analytic_error"]),
                tol,
                note="max relative entry error over depths and NNGP/NTK; tolerance 5 sqrt(eps32) "
                "D_max (float32 arc-cosine near c = 1, per layer)",
                kind="consistency",
            )
        )
        out.append(
            check_max_z(
                f"{act}: empirical NTK kappa vs infinite width, depths {ds}",
                _z(r, "ntk"),
                3.0,
                note=f"Jacot et al. 2018; width {r['width']}, {r['seeds']} seeds, z in SE of "
                "the seed mean; finite-width bias of kappa is positive, O(depth/width)",
            )
        )
        out.append(falls_check(r, "ntk") if centred(act) else flat_check(r, "nngp"))
        if centred(act):
            out.append(falls_check(r, "nngp"))
    return out


def centred(activation: str) -> bool:
    """Whether E[phi(z)] = 0 (the dual activation has no constant term)."""
    return activation in ("erf", "tanh", "identity")


def falls_check(r: dict[str, Any], kernel: str) -> dict[str, Any]:
    """kappa at the shallowest depth exceeds the deepest by > 3 SE (zero-mean activations)."""
    d, se = _drop(r, kernel)
    ds = r["depths"]
    return check(
        f"{r['activation']}: {kernel.upper()} kappa falls from depth {ds[0]} to {ds[-1]}",
        "> 3 SE",
        d / se,
        3.0,
        passed=bool(d > 3 * se),
        note=f"Balboni ch. 6 (zero-mean unit-variance phi: |rho(c)| < |c|); infinite width "
        f"{r[f'kappa_{kernel}'][0]:.4g} -> {r[f'kappa_{kernel}'][-1]:.4g}; measured drop "
        f"{d:.4g} +- {se:.2g}",
    )


def flat_check(r: dict[str, Any], kernel: str) -> dict[str, Any]:
    """kappa does not fall by more than 3 SE (non-centred activations)."""
    d, se = _drop(r, kernel)
    ds = r["depths"]
    return check(
        f"{r['activation']}: {kernel.upper()} kappa does not fall from depth {ds[0]} to {ds[-1]}",
        "<= 3 SE",
        d / se,
        3.0,
        passed=bool(d <= 3 * se),
        note=f"Balboni ch. 6 (rho(0) > 0: correlations -> 1); infinite width "
        f"{r[f'kappa_{kernel}'][0]:.4g} -> {r[f'kappa_{kernel}'][-1]:.4g}; measured drop "
        f"{d:.4g} +- {se:.2g}",
    )


# ----------------------------------------------------------------------------- figure, run


def plot(tr: dict[str, Any], rows: list[dict[str, Any]]):
    """PL ratio and its kernel bounds; loss vs the PL product; kappa vs depth."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    t = tr["probe_steps"]
    lo, hi = cd.pl_kernel_bounds(tr["lam_min"], tr["lam_max"], tr["mu_ell"], tr["beta_ell"])
    axes[0].semilogy(t, tr["mu"], "o-", ms=3, label="μ(θ) = |∇L|²/2L")
    axes[0].semilogy(t, np.asarray(lo), "--", label="λ_min(K) μ_ℓ")
    axes[0].semilogy(t, np.asarray(hi), "--", label="λ_max(K) β_ℓ")
    axes[0].semilogy(t, tr["gershgorin"] * tr["beta_ell"], ":", label="Gershgorin × β_ℓ")
    axes[0].set(xlabel="step", title="PL ratio and its NTK sandwich")
    axes[0].legend(fontsize=7)
    bound = np.asarray(cd.pl_product_bound(tr["mu_steps"][:-1], tr["smoothness"]))
    axes[1].semilogy(tr["loss"] / tr["loss"][0], label="L_k / L_0 (GD, step 1/L)")
    axes[1].semilogy(bound, "--", label="Π (1 − μ(θ_i)/L)")
    axes[1].set(xlabel="step", title="descent lemma along training")
    axes[1].legend(fontsize=8)
    for r in rows:
        for kernel, style in (("ntk", "-"), ("nngp", ":")):
            ds = r["depths"]
            m = [a for a, _ in r["finite"][kernel]]
            se = [3 * b for _, b in r["finite"][kernel]]
            line = axes[2].semilogy(
                ds, r[f"kappa_{kernel}"], style, label=f"{r['activation']} {kernel} ∞"
            )
            axes[2].errorbar(ds, m, yerr=se, fmt="o", color=line[0].get_color(), ms=3, capsize=2)
    axes[2].set(xlabel="depth D", ylabel="κ at init", title="conditioning vs depth (±3 SE)")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plan(cfg: Config) -> dict[str, Any]:
    """Sizes and the infinite-width curves (cheap: dual-activation recursion only)."""
    sz = SIZES(cfg)
    curves = {}
    for act in sz.activations:
        w_var = cd.normalised_weight_variance(act)
        x, _ = sphere_digits(sz.depth_n, cfg.seed, w_var)
        u = np.asarray(x, np.float64)
        u = u / np.linalg.norm(u, axis=1, keepdims=True)
        curves[act] = infinite_width(jnp.asarray(u @ u.T, jnp.float32), act, sz.depths)["kappa_ntk"]
    return {"sz": sz, "curves": curves}


def run(cfg: Config) -> Result:
    """Parts A and B of the module docstring."""
    sz = SIZES(cfg)
    tr = training_part(sz, cfg.seed)
    rows = depth_part(sz, cfg.seed)
    checks = (
        sandwich_checks(tr, tr["mu_ell"], tr["beta_ell"])
        + product_checks(tr, tr["smoothness"])
        + [output_hessian_check(tr, tr["beta_ell"])]
        + gershgorin_checks(tr)
        + depth_checks(rows)
    )
    figures = [save_figure(plot(tr, rows), cfg, "pl_conditioning")]
    gap = tr["mu"] / (tr["lam_min"] * tr["mu_ell"])
    summary = (
        f"training: mu / (lam_min mu_ell) in [{gap.min():.3f}, {gap.max():.3f}], "
        f"loss {tr['loss'][0]:.3g} -> {tr['loss'][-1]:.3g}, Gershgorin/lam_max "
        f"{np.median(tr['gershgorin'] / tr['lam_max']):.3f}; kappa_NTK(depth) at infinite width: "
        + "; ".join(
            f"{r['activation']} " + " -> ".join(f"{k:.3g}" for k in r["kappa_ntk"]) for r in rows
        )
    )
    metrics = {
        "training": {k: v for k, v in tr.items()},
        "depth": rows,
    }
    config = dict(vars(sz))
    return Result(metrics=metrics, checks=checks, figures=figures, config=config, summary=summary)


def main(argv=None):
    """Command line entry point."""
    return cli(run, __doc__, argv)


if __name__ == "__main__":
    from experiments.pl_conditioning import main as _main  # so metrics.json names it

    _main()
