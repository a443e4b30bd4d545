r"""Finite-width corrections: kernel fluctuations at initialisation and kernel movement.

1. **NNGP diagonal fluctuations** (Hanin & Nica 2019; Yaida 2020). For a
   bias-free network of hidden widths :math:`n_l` and
   :math:`\hat K_L = \|\phi(h^L)\|^2/n_L` at one input,

   .. math::

       \frac{\mathrm{Var}(\hat K_L)}{\mathbb E[\hat K_L]^2}
       = \prod_{l=1}^{L}\Big(1 + \frac{\kappa - 1}{n_l}\Big) - 1
       \approx (\kappa - 1)\frac{L}{n},

   :math:`\kappa - 1 = 5` for ReLU and 2 for linear networks
   (:func:`wideth.kernels.meanfield.nngp_diag_variance`). Measured over many
   random networks (``vmap``; one ``lax.scan`` per width records every depth),
   with bootstrap standard errors.
2. **NTK fluctuations at initialisation**: the relative variance of
   :math:`\Theta(x, x)` of a ReLU MLP (NTK parameterisation, empirical NTK
   from :func:`wideth.kernels.empirical.ntk`) over random initialisations
   grows like :math:`c\,L/n` for :math:`L/n \ll 1` (Hanin & Nica 2019 give
   :math:`\exp(5L/n)`-type growth for the gradient norms); :math:`c` is fitted
   through the origin and reported.
3. **NTK movement during training** (Jacot et al. 2018; Yang & Hu 2021).
   Full-batch GD on a digits subset with the MSE loss
   :math:`\frac1{2n}\sum_i\|f(x_i) - y_i\|^2`; the relative change
   :math:`\|\Theta_T - \Theta_0\|_F/\|\Theta_0\|_F` of the effective NTK (the
   kernel of the function-space dynamics, :math:`\sum_p m_p J_p J_p^\top`
   with the per-parameter learning-rate multipliers :math:`m_p`) on a fixed
   batch decays like :math:`n^{-1/2}` in NTK parameterisation (lazy) and stays
   :math:`\Theta(1)` in muP (feature learning). Test accuracies of both are
   reported side by side. Full mode also trains the centred models
   :math:`f_\theta - f_{\theta_0}` (Chizat et al. 2019; same NTK, no random
   initial function to erase), where the measured movement falls faster than
   :math:`n^{-1/2}`, closer to the :math:`1/n` of Dyer & Gur-Ari (2019);
   reported, not checked.

References:
  Hanin & Nica, `Products of Many Large Random Matrices and Gradients in Deep
  Neural Networks <https://arxiv.org/abs/1812.05994>`_, 2019; `Finite Depth and
  Width Corrections to the Neural Tangent Kernel
  <https://arxiv.org/abs/1909.05989>`_, 2020.
  Yaida, `Non-Gaussian processes and neural networks at finite widths
  <https://arxiv.org/abs/1910.00019>`_, 2020.
  Jacot, Gabriel, Hongler, `Neural Tangent Kernel <https://arxiv.org/abs/1806.07572>`_, 2018.
  Yang & Hu, `Feature Learning in Infinite-Width Neural Networks
  <https://arxiv.org/abs/2011.14522>`_, 2021.
  Dyer & Gur-Ari, `Asymptotics of Wide Networks from Feynman Diagrams
  <https://arxiv.org/abs/1909.11304>`_, 2019.
  Chizat, Oyallon, Bach, `On Lazy Training in Differentiable Programming
  <https://arxiv.org/abs/1812.07956>`_, 2019.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments._common import Config, Result, check, cli, save_figure
from wideth.kernels import meanfield as mf

# ------------------------------------------------------------------ NNGP diagonal


#: Random networks sampled together under ``vmap``; larger ensembles run in groups.
NETS_PER_BATCH = 250


def nngp_diag_samples(key: jax.Array, width: int, depth: int, num_nets: int, d: int = 32):
    r""":math:`\hat K_l = \|\phi(h^l)\|^2/n` for :math:`l = 1..L` of ``num_nets`` random networks.

    ReLU (:math:`\sigma_w^2 = 2`) and linear (:math:`\sigma_w^2 = 1`) streams share
    the Gaussian weights; weights are drawn inside ``lax.scan``, never stored.

    Returns:
      ``(relu, linear)``, each ``(num_nets, depth)``.
    """
    x = jax.random.normal(jax.random.fold_in(key, 3), (d,))
    return nngp_program(x, width, depth)(jax.random.split(key, num_nets))


def nngp_program(x: jax.Array, width: int, depth: int) -> Callable:
    """The jitted sampler of :func:`nngp_diag_samples`: ``keys (N,) -> (relu, linear)``."""
    d = x.shape[0]

    def one(k):
        k0, k = jax.random.split(k)
        z = x @ jax.random.normal(k0, (d, width)) / jnp.sqrt(d)
        hr, hl = jnp.sqrt(2.0) * z, z

        def layer(c, kl):
            hr, hl = c
            W = jax.random.normal(kl, (width, width)) / jnp.sqrt(width)
            ar = jax.nn.relu(hr)
            return (jnp.sqrt(2.0) * ar @ W, hl @ W), (jnp.mean(ar**2), jnp.mean(hl**2))

        (hr, hl), (kr, kl) = jax.lax.scan(layer, (hr, hl), jax.random.split(k, depth))
        return kr, kl

    # Networks in groups of NETS_PER_BATCH under vmap: all 10,000 of width 512
    # at once would need 39 GiB of weights in flight.
    return jax.jit(lambda ks: jax.lax.map(one, ks, batch_size=NETS_PER_BATCH))


def _bootstrap_relvar(samples: np.ndarray, key: int, reps: int = 200) -> tuple[float, float]:
    """Relative variance Var/mean^2 of ``samples`` and its bootstrap standard error."""
    s = np.asarray(samples, np.float64)
    rv = lambda a: a.var(ddof=1) / a.mean() ** 2
    idx = np.asarray(jax.random.randint(jax.random.key(key), (reps, len(s)), 0, len(s)))
    boot = np.array([rv(s[i]) for i in idx])
    return float(rv(s)), float(boot.std())


def nngp_fluctuations(
    key: jax.Array, widths: list[int], depths: list[int], num_nets: int
) -> dict[str, Any]:
    """Measured vs predicted relative variance of the NNGP diagonal on a (width, depth) grid."""
    out: dict[str, Any] = {"widths": widths, "depths": depths}
    for act in ("relu", "linear"):
        out[act] = {"measured": [], "stderr": [], "theory": []}
    for i, n in enumerate(widths):
        kr, kl = nngp_diag_samples(jax.random.fold_in(key, i), n, max(depths), num_nets)
        for act, K in (("relu", np.asarray(kr)), ("linear", np.asarray(kl))):
            m, s, t = [], [], []
            for L in depths:
                rv, se = _bootstrap_relvar(K[:, L - 1], 1000 * i + L)
                m.append(rv)
                s.append(se)
                t.append(float(mf.nngp_diag_variance([n] * L, act)))
            out[act]["measured"].append(m)
            out[act]["stderr"].append(s)
            out[act]["theory"].append(t)
    for act in ("relu", "linear"):
        out[act] = {k: np.array(v) for k, v in out[act].items()}
    return out


# ------------------------------------------------------------------ NTK at init


def ntk_diag_samples(
    key: jax.Array, width: int, depth: int, num_nets: int, d: int = 32
) -> np.ndarray:
    r""":math:`\Theta(x, x)` of ``num_nets`` random ReLU MLPs (NTK parameterisation).

    The parameters of one :class:`wideth.models.MLP` are resampled from their
    init distribution (every leaf i.i.d. :math:`\mathcal N(0, 1)` in NTK
    parameterisation) and :func:`wideth.kernels.empirical.ntk` is vmapped over them.
    """
    x = jax.random.normal(jax.random.fold_in(key, 5), (1, d))
    x = x / jnp.linalg.norm(x) * jnp.sqrt(d)
    run = ntk_program(x, width, depth)
    return np.asarray(run(jax.random.split(key, num_nets)), np.float64)


def ntk_program(x: jax.Array, width: int, depth: int) -> Callable:
    """The jitted sampler of :func:`ntk_diag_samples`: ``keys (N,) -> Theta(x, x) (N,)``."""
    from flax import nnx

    from wideth.kernels import empirical
    from wideth.models import MLP, functional

    apply_fn, params = functional(MLP(x.shape[1], width, depth, rngs=nnx.Rngs(0)))
    leaves, tree = jax.tree.flatten(params)

    def one(k):
        ks = jax.random.split(k, len(leaves))
        new = [jax.random.normal(kk, a.shape) for kk, a in zip(ks, leaves, strict=True)]
        p = jax.tree.unflatten(tree, new)
        return empirical.ntk(apply_fn, p, x)[0, 0]

    return jax.jit(lambda ks: jax.lax.map(one, ks, batch_size=NETS_PER_BATCH))


def ntk_fluctuations(
    key: jax.Array, widths: list[int], depths: list[int], num_nets: int
) -> dict[str, Any]:
    """Relative variance of Theta(x, x) on a (width, depth) grid and the fitted c in c L / n."""
    rv, se = np.zeros((len(widths), len(depths))), np.zeros((len(widths), len(depths)))
    for i, n in enumerate(widths):
        for j, L in enumerate(depths):
            s = ntk_diag_samples(jax.random.fold_in(key, 100 * i + j), n, L, num_nets)
            rv[i, j], se[i, j] = _bootstrap_relvar(s, 7 * i + j)
    ratio = np.array(depths)[None, :] / np.array(widths)[:, None]
    w = 1.0 / np.maximum(se, 1e-12) ** 2
    c = float(np.sum(w * ratio * rv) / np.sum(w * ratio**2))  # weighted LS through 0
    c_se = float(1.0 / np.sqrt(np.sum(w * ratio**2)))
    small = ratio <= 0.1
    c_small = float(np.sum(ratio[small] * rv[small]) / np.sum(ratio[small] ** 2))
    return {
        "widths": widths,
        "depths": depths,
        "L_over_n": ratio,
        "relvar": rv,
        "stderr": se,
        "c": c,
        "c_stderr": c_se,
        "c_unweighted_small_ratio": c_small,
    }


# ------------------------------------------------------------------ NTK movement


def effective_ntk(apply_fn, params, multipliers, x: jax.Array) -> jax.Array:
    r"""NTK of the function-space GD dynamics, :math:`\sum_p m_p J_p J_p^\top` (trace over outputs).

    Computed with :func:`wideth.kernels.empirical.ntk` in the coordinates
    :math:`p' = p/\sqrt{m_p}`, where plain gradients carry the multipliers.
    """
    from wideth.kernels import empirical

    sq = jax.tree.map(lambda m: jnp.sqrt(jnp.asarray(m, jnp.float32)), multipliers)
    scaled = lambda q, x: apply_fn(jax.tree.map(lambda a, s: a * s, q, sq), x)
    q = jax.tree.map(lambda a, s: a / s, params, sq)
    return empirical.ntk(scaled, q, x)


def ntk_movement(
    key: jax.Array,
    widths: list[int],
    depth: int,
    steps: int,
    lr: dict[str, float],
    n_train: int,
    n_probe: int,
    base_width: int,
    quiet: bool = True,
    centred: bool = False,
) -> dict[str, Any]:
    """Train NTK- and muP-parameterised ReLU MLPs of each width; kernel movement and accuracy.

    ``centred=True`` trains :math:`f_\theta - f_{\theta_0}` instead of :math:`f_\theta`.
    """
    from flax import nnx

    from wideth.data import digits, subset
    from wideth.models import MLP, functional, mup_multipliers, scale_by_multipliers
    from wideth.train import accuracy, fit

    ds = subset(digits(), n_train, jax.random.fold_in(key, 1))
    probe = ds.x_train[:n_probe]
    out: dict[str, Any] = {"widths": widths}
    for par in ("ntk", "mup"):
        rec: dict[str, list] = {"movement": [], "test_accuracy": [], "loss0": [], "lossT": []}
        for i, n in enumerate(widths):
            net = MLP(
                ds.x_train.shape[1],
                n,
                depth,
                ds.num_classes,
                parameterization=par,
                rngs=nnx.Rngs(int(jax.random.randint(jax.random.fold_in(key, i), (), 0, 2**30))),
            )
            apply_fn, p0 = functional(net)
            if centred:
                f0_params = jax.tree.map(jnp.copy, p0)

                def apply_fn(p, x, _raw=apply_fn, _p0=f0_params):
                    return _raw(p, x) - _raw(_p0, x)  # f_theta - f_theta0: same NTK

            if par == "mup":
                mult = mup_multipliers(net, "sgd", base_width=base_width)
            else:
                mult = jax.tree.map(lambda _: 1.0, p0)
            tx = optax.chain(optax.sgd(lr[par]), scale_by_multipliers(mult))
            res = fit(
                apply_fn,
                p0,
                tx,
                (ds.x_train, ds.y_train),
                "mse",
                steps=steps,
                log_every=max(steps // 4, 1),
                quiet=quiet,
            )
            K0 = effective_ntk(apply_fn, p0, mult, probe)
            KT = effective_ntk(apply_fn, res.params, mult, probe)
            rec["movement"].append(float(jnp.linalg.norm(KT - K0) / jnp.linalg.norm(K0)))
            rec["test_accuracy"].append(float(accuracy(apply_fn(res.params, ds.x_test), ds.y_test)))
            rec["loss0"].append(float(res.history["loss"][0]))
            rec["lossT"].append(float(res.history["loss"][-1]))
        slope = float(np.polyfit(np.log(widths), np.log(rec["movement"]), 1)[0])
        out[par] = {**{k: np.array(v) for k, v in rec.items()}, "slope": slope}
    return out


# ------------------------------------------------------------------ figures


def _fig_nngp(nf: dict[str, Any]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    r = np.array(nf["depths"])[None, :] / np.array(nf["widths"])[:, None]
    for act, mk, k1 in (("relu", "o", 5), ("linear", "s", 2)):
        d = nf[act]
        ax.errorbar(
            r.ravel(), d["measured"].ravel(), d["stderr"].ravel(), fmt=mk, ms=4, label=f"{act}"
        )
        rr = np.geomspace(r.min(), r.max(), 50)
        ax.plot(rr, np.exp(k1 * rr) - 1, "--", color="0.4", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("$L/n$")
    ax.set_ylabel(r"Var$(\hat K)/K^2$")
    ax.set_title(r"NNGP diagonal: $\prod(1+5/n)-1$ (ReLU), $\prod(1+2/n)-1$ (linear)")
    ax.legend(fontsize=8)
    return fig


def _fig_ntk(nt: dict[str, Any]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    r = nt["L_over_n"]
    ax.errorbar(r.ravel(), nt["relvar"].ravel(), nt["stderr"].ravel(), fmt="o", ms=4)
    rr = np.geomspace(r.min(), r.max(), 50)
    ax.plot(rr, nt["c"] * rr, "r--", label=f"fit $c\\,L/n$, $c$ = {nt['c']:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("$L/n$")
    ax.set_ylabel(r"Var$(\Theta(x,x))/E[\Theta(x,x)]^2$")
    ax.set_title("NTK fluctuations at initialisation (ReLU)")
    ax.legend()
    return fig


def _fig_movement(mv: dict[str, Any]):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    w = np.array(mv["widths"])
    for par, mk in (("ntk", "o-"), ("mup", "s-")):
        axes[0].loglog(w, mv[par]["movement"], mk, label=f"{par} (slope {mv[par]['slope']:.2f})")
        axes[1].semilogx(w, mv[par]["test_accuracy"], mk, label=par)
    m0 = mv["ntk"]["movement"][0]
    axes[0].loglog(w, m0 * (w / w[0]) ** -0.5, "k--", label="$n^{-1/2}$")
    axes[0].set_xlabel("width $n$")
    axes[0].set_ylabel(r"$\|\Theta_T-\Theta_0\|_F/\|\Theta_0\|_F$")
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("width $n$")
    axes[1].set_ylabel("test accuracy")
    axes[1].legend(fontsize=8)
    fig.suptitle("Lazy (NTK) vs feature learning (muP)")
    return fig


# ------------------------------------------------------------------ run


#: Sizes of the three parts (NNGP, NTK fluctuations, NTK movement) per mode.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "nngp": dict(widths=[32, 64, 128], depths=[1, 2, 4, 8], num_nets=2000),
        "ntk": dict(widths=[64, 256], depths=[1, 4], num_nets=400),
        "movement": dict(widths=[64, 128, 256, 512], depth=2, steps=200, n_train=256, n_probe=32),
    },
    "full": {
        "nngp": dict(widths=[32, 64, 128, 256, 512], depths=[1, 2, 4, 8, 16, 32], num_nets=10000),
        "ntk": dict(widths=[64, 128, 256, 512], depths=[1, 2, 4, 8], num_nets=2000),
        "movement": dict(
            widths=[64, 128, 256, 512, 1024, 2048, 4096],
            depth=2,
            steps=1000,
            n_train=1024,
            n_probe=64,
        ),
    },
}


def run(cfg: Config) -> Result:
    """NNGP and NTK fluctuations at init, NTK movement in NTK vs muP parameterisation."""
    key = jax.random.key(cfg.seed)
    k1, k2, k3 = jax.random.split(key, 3)
    nn, nk, mv = (SIZES["quick"] if cfg.quick else SIZES["full"]).values()
    lr = {"ntk": 1.0, "mup": 0.5}
    say = (lambda s: None) if cfg.quiet else print
    say("NNGP diagonal fluctuations ...")
    nf = nngp_fluctuations(k1, **nn)
    say("NTK fluctuations ...")
    nt = ntk_fluctuations(k2, **nk)
    say("NTK movement ...")
    mo = ntk_movement(k3, lr=lr, base_width=64, quiet=cfg.quiet, **mv)
    mo_c = None if cfg.quick else ntk_movement(k3, lr=lr, base_width=64, centred=True, **mv)

    figures = [
        save_figure(_fig_nngp(nf), cfg, "nngp_fluctuations"),
        save_figure(_fig_ntk(nt), cfg, "ntk_fluctuations"),
        save_figure(_fig_movement(mo), cfg, "ntk_movement"),
    ]
    # bootstrap errors are only trustworthy while K-hat is not heavy-tailed: theory <= 1
    z, rel = {}, {}
    for act in ("relu", "linear"):
        d = nf[act]
        ok = d["theory"] <= 1.0
        z[act] = float(np.max(np.abs(d["measured"] - d["theory"])[ok] / d["stderr"][ok]))
        rel[act] = float(np.max(np.abs(d["measured"] / d["theory"] - 1)[ok]))
    checks = [
        check(
            "NNGP Var/K^2 vs prod(1+5/n)-1, ReLU (max |z|, grid points with theory <= 1)",
            0.0,
            z["relu"],
            4.0,
            note=f"max relative error {rel['relu']:.3f}",
        ),
        check(
            "NNGP Var/K^2 vs prod(1+2/n)-1, linear (max |z|, grid points with theory <= 1)",
            0.0,
            z["linear"],
            4.0,
            note=f"max relative error {rel['linear']:.3f}",
        ),
        check(
            "NTK relvar(Theta(x,x)) ~ c L/n, c (lecture notes 3-5)",
            4.0,
            nt["c"],
            2.0,
            note=f"fitted c = {nt['c']:.2f} +- {nt['c_stderr']:.2f}",
        ),
        check("NTK movement slope vs width, NTK parameterisation", -0.5, mo["ntk"]["slope"], 0.25),
        check(
            "NTK movement does not decay with width in muP (slope >= -0.15)",
            "0 (width-independent)",
            mo["mup"]["slope"],
            None,
            passed=bool(mo["mup"]["slope"] >= -0.15),
            note="one network per width: the muP movement rises at small width towards its "
            "infinite-width limit, the NTK-parameterised one falls",
        ),
        check(
            "both parameterisations train (final/initial loss < 0.2 at every width)",
            "< 0.2",
            [float(np.max(mo[p]["lossT"] / mo[p]["loss0"])) for p in ("ntk", "mup")],
            None,
            passed=bool(all(np.all(mo[p]["lossT"] / mo[p]["loss0"] < 0.2) for p in ("ntk", "mup"))),
        ),
    ]
    metrics = {"nngp": nf, "ntk_init": nt, "ntk_movement": mo, "learning_rates": lr}
    if mo_c is not None:
        metrics["ntk_movement_centred"] = mo_c
    config = {"nngp": nn, "ntk_init": nk, "ntk_movement": mv, "lr": lr}
    summary = (
        f"NNGP max|z| relu {z['relu']:.1f}, linear {z['linear']:.1f}; NTK c = {nt['c']:.2f}; "
        f"movement slope ntk {mo['ntk']['slope']:.2f}, mup {mo['mup']['slope']:.2f}; test acc "
        f"ntk {np.round(mo['ntk']['test_accuracy'], 3)}, "
        f"mup {np.round(mo['mup']['test_accuracy'], 3)}"
    )
    return Result(metrics, checks, figures, config, summary)


def main(argv=None):
    return cli(run, __doc__, argv)


if __name__ == "__main__":
    main()
