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
# # PL and the conditioning of the tangent kernel
#
# For $\mathcal L = \ell\circ F$ the gradient is $J^\top\nabla\ell$, so the local PL ratio
# $\mu(\theta) = \|\nabla\mathcal L\|^2 / 2\mathcal L$ is the Rayleigh quotient of the NTK
# Gram $K = JJ^\top$ at the output gradient: for the mean squared error
# $\lambda_{\min}(K)/n \le \mu(\theta) \le \lambda_{\max}(K)/n$ (Liu, Zhu & Belkin 2022;
# Balboni's thesis, ch. 4). At initialisation the conditioning of $K$ is set by the
# architecture: the dual activation $\rho$ of a zero-mean activation contracts correlations,
# so the condition number falls with depth (ch. 6).

# %%
import os
import types

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from experiments import pl_conditioning as plc
from wideth.diagnostics import conditioning as cd

QUICK = bool(os.environ.get("WIDETH_QUICK"))

# %% [markdown]
# Infinite-width condition numbers on 16 raw digits, from the dual-activation recursion
# (`dual_kernels`, built on `wideth.kernels.meanfield`), for a zero-mean activation (erf,
# tanh) and the non-centred ReLU.

# %%
depths = tuple(range(0, 13 if QUICK else 33, 2))
for act in ("erf", "tanh", "relu"):
    w = cd.normalised_weight_variance(act)
    x, _ = plc.sphere_digits(16, 0, w)
    u = np.asarray(x, np.float64)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    sig, th = cd.dual_kernels(jnp.asarray(u @ u.T, jnp.float32), act, max(depths))
    plt.semilogy(
        depths, [float(cd.condition_number(th[d])) for d in depths], "-", label=f"{act} NTK"
    )
    plt.semilogy(
        depths, [float(cd.condition_number(sig[d])) for d in depths], ":", label=f"{act} NNGP"
    )
plt.xlabel("hidden layers D")
plt.ylabel("κ at initialisation (infinite width)")
plt.legend(fontsize=8)
plt.show()

# %% [markdown]
# Along a real gradient-descent run (step $1/L$): the PL ratio between its NTK bounds, and
# the loss under the descent-lemma product $\prod_i (1 - \mu(\theta_i)/L)$.

# %%
sz = types.SimpleNamespace(**plc.SIZES.quick)
if QUICK:
    sz.train_n, sz.train_width, sz.train_depth, sz.train_steps = 16, 64, 1, 60
tr = plc.training_part(sz, 0)
lo, hi = cd.pl_kernel_bounds(tr["lam_min"], tr["lam_max"], tr["mu_ell"], tr["beta_ell"])
print("min mu / lower bound:", float(np.min(tr["mu"] / np.asarray(lo))))
print("max mu / upper bound:", float(np.max(tr["mu"] / np.asarray(hi))))
print("Gershgorin / lam_max:", np.round(tr["gershgorin"] / tr["lam_max"], 3))
bound = np.asarray(cd.pl_product_bound(tr["mu_steps"][:-1], tr["smoothness"]))
plt.semilogy(tr["loss"] / tr["loss"][0], label="L_k / L_0")
plt.semilogy(bound, "--", label="Π(1 − μ/L)")
plt.legend()
plt.show()
