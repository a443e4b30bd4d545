# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # ADLER: a learning rate from the local Gauss–Newton model
#
# Under the Polyak–Łojasiewicz condition (Polyak 1963; Łojasiewicz 1963), which wide
# networks satisfy near initialisation (Liu, Zhu & Belkin 2022), gradient descent
# converges linearly and the right local step is the exact line search of the
# Gauss–Newton quadratic along the gradient $G$:
#
# $$\eta_k = \frac{G^\top G}{G^\top J^\top Q J G + \varepsilon\, G^\top G},$$
#
# with $J$ the Jacobian of the outputs on the batch and $Q$ the Hessian of the loss in
# output space. ADLER (Balboni, PhD thesis, Alg. 1) smooths $\eta_k$ in log space,
# $\hat\eta_k = \exp(s_k/c_k)$ with $s_k = \beta s_{k-1} + \log\eta_k$,
# $c_k = \beta c_{k-1} + 1$. `wideth.optim.pl_adaptive` is that rule as an Optax
# transform; $v^\top Q v$ costs one JVP, $J$ and $Q$ are never formed.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from wideth.optim import pl_adaptive, pl_adaptive_info

QUICK = bool(os.environ.get("WIDETH_QUICK"))

# %% [markdown]
# ## 1. On least squares it *is* the exact line search
#
# For $f(w) = \frac{1}{2n}\|Xw - y\|^2$ the Gauss–Newton model is exact, so the first
# ADLER step equals $\arg\min_t f(w - tG)$, which we find independently by fitting the
# 1-D parabola through three evaluations.

# %%
rng = np.random.default_rng(0)
n, d = 50, 8
X = jnp.asarray(rng.standard_normal((n, d)) * np.linspace(0.2, 2, d), jnp.float32)
y = jnp.asarray(rng.standard_normal(n), jnp.float32)
f_out = lambda w: X @ w
ell = lambda out: 0.5 * jnp.mean((out - y) ** 2)
loss = lambda w: ell(f_out(w))

w = jnp.zeros(d)
g = jax.grad(loss)(w)
tx = pl_adaptive()
u, state = tx.update(g, tx.init(w), w, outputs_fn=f_out, loss_of_outputs=ell)
p0, p1, p2 = (float(loss(w - t * g)) for t in (0.0, 1.0, 2.0))
a = (p2 - 2 * p1 + p0) / 2
t_star = -(p1 - p0 - a) / (2 * a)
print(f"ADLER step {float(pl_adaptive_info(state)['eta_hat']):.6f}, line search {t_star:.6f}")

# %% [markdown]
# ## 2. Digits: ADLER vs an SGD learning-rate grid, the GN baseline and a peer
#
# The experiment module runs every method with `wideth.train.run` on the same initial
# parameters and minibatch sequence; the SGD grid is one `vmap` over learning rates
# and seeds. Here we run one task at notebook size.

# %%
import types  # noqa: E402

from experiments import pl_adaptive as exp  # noqa: E402

sz = types.SimpleNamespace(**exp.SIZES.quick)
sz.width, sz.steps, sz.seeds = (32, 40, 3) if QUICK else (128, 300, 3)
task = exp.build_task("digits", "mlp_relu", 0, sz.seeds, sz)
lrs = {k: v[:: 3 if QUICK else 1] for k, v in exp.learning_rate_grids().items()}
keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(0), s))(jnp.arange(sz.seeds))
peer_names = ["dog"]
res = exp.run_task(task, keys, lrs, sz.steps, sz.every, sz.batch_size, peer_names)
summary = exp.summarise(task, res, lrs, sz.steps)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
t = res["adler"]["probe_steps"][0]
axes[0].semilogy(t, res["adler"]["probes"]["train_loss"].mean(0), "k", lw=2, label="ADLER")
for i, lr in enumerate(lrs["loss"]):
    axes[0].semilogy(
        t,
        res["sgd_loss_grid"]["probes"]["train_loss"][:, i].mean(0),
        color=plt.cm.viridis(i / len(lrs["loss"])),
        lw=0.8,
        label=f"SGD {lr:.2g}",
    )
axes[0].semilogy(t, res["gn"]["probes"]["train_loss"].mean(0), "C3--", label="GN")
for name in peer_names:
    axes[0].semilogy(t, res[name]["probes"]["train_loss"].mean(0), "--", lw=1, label=name)
axes[0].set_xlabel("step")
axes[0].set_ylabel("train loss (whole set)")
axes[0].legend(fontsize=6, ncol=2)
axes[1].semilogy(
    t[1:], res["adler"]["probes"]["eta_hat"][:, 1:].mean(0), "k", label=r"ADLER $\hat\eta$"
)
axes[1].semilogy(
    t[1:], res["gn"]["probes"]["eta_hat"][:, 1:].mean(0), "C3--", label=r"GN $\hat\eta$"
)
axes[1].axhline(summary["loss_grid"]["best_lr"], color="C0", ls=":", label="best SGD lr")
axes[1].set_xlabel("step")
axes[1].legend()
fig.tight_layout()

# %%
for name in ("adler", "gn", *peer_names):
    m, h = summary[name]["test_acc"]
    print(
        f"{name:>12s}  final train loss {summary[name]['final_loss_geo']:.3e}  "
        f"test acc {m:.3f} ± {h:.3f}"
    )
th = summary["thesis_grid"]
print(f"best SGD (lr {th['best_lr']:.3g}) test acc {th['test_acc_mean'][th['best_index']]:.3f}")
print("compute, gradient evaluations:", summary["compute"])

# %% [markdown]
# ADLER's step follows the curvature: as the cross-entropy saturates, $Q$ shrinks and
# $\hat\eta$ grows, something a fixed learning rate cannot do. The log-space average
# with $\beta = 0.99$ lags behind that growth. GN's step $1/G^\top G$ grows like
# $1/L$ as the loss falls and overshoots. The full comparison over datasets,
# architectures and seeds, with checks, is `python -m experiments.pl_adaptive`.
