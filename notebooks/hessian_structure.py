# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Class structure of the Hessian, the gradient subspace, neural collapse
#
# The cross-entropy Gauss–Newton matrix splits exactly into class-mean, cross-class and
# within-class parts (Papyan 2019, 2020; derivation in `wideth.hessian.structure`). We train a
# small MLP on digits with in-jit probes, then look at the parts' spectra.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import hessian_structure as hs
from wideth import data, hessian

QUICK = bool(os.environ.get("WIDETH_QUICK"))
sz = hs.SIZES(True)
sz.steps, sz.every = (200, 20) if QUICK else (1200, 40)
ds = data.digits(one_hot=False)
x, y = ds.x_train, ds.y_train
apply_fn, features_fn, params = hs.model(sz)
res = jax.jit(lambda p, k: hs.train_with_probes(sz, apply_fn, features_fn, p, x, y, k))(
    params, jax.random.key(0)
)
steps = np.asarray(res.probe_steps)
print("train loss", np.asarray(res.probes["loss"])[[0, -1]])

# %% [markdown]
# The three parts add up to the GGN; the class and cross-class parts have at most $C$ and
# $C(C-1)$ non-zero eigenvalues, read off $C\times C$ and $C(C-1)\times C(C-1)$ Gram matrices.
# Eigenvalues of $G$ above $\lambda_1(G_{\rm within})$ are outliers (at most $C^2$, Weyl).

# %%
final = jax.tree.map(lambda a: a[-1], res.probes["params"])
dec = hessian.ggn_decomposition(apply_fn, final, x, y, hs.NUM_CLASSES)
sp = hessian.class_spectrum(dec.means)
evals, _ = hessian.top_eigenpairs(dec.total, k=30, num_steps=60)
edge = hessian.sharpness(dec.within, num_steps=60)
print("outliers above the within-class edge:", int(hessian.count_above(evals, edge)))
plt.semilogy(np.asarray(evals), "o-", label="G (Lanczos)")
plt.semilogy(np.asarray(sp["class"]), "s", label="G_class (Gram)")
plt.semilogy(np.asarray(sp["cross"][:30]), "^", label="G_cross (Gram)")
plt.axhline(float(edge), color="k", ls=":", label="λ1(G_within)")
plt.xlabel("index")
plt.legend()
plt.show()

# %% [markdown]
# Gradient share in the top-$C$ Hessian eigenspace (Gur-Ari et al. 2018) and NC1–NC4
# (Papyan, Han & Donoho 2020) along training.

# %%
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
ax[0].semilogy(steps, np.asarray(res.probes["subspace"]["grad_overlap"]), label="‖P_C g‖²/‖g‖²")
ax[0].axhline(hs.NUM_CLASSES / dec.total.size, color="k", ls=":", label="random C/d")
ax[0].legend()
for f in hs.NC_FIELDS:
    ax[1].semilogy(steps, np.asarray(getattr(res.probes["collapse"], f)), label=f)
ax[1].legend()
plt.show()
