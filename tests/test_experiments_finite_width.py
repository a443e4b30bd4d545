"""Finite-width experiment: the exact NNGP-diagonal variance law and the empirical NTK."""

import jax
import numpy as np

from experiments import finite_width as fw
from wideth.kernels import meanfield as mf


def test_nngp_diag_variance_5L_over_n_within_monte_carlo_error():
    n, L = 32, 3
    kr, kl = fw.nngp_diag_samples(jax.random.key(0), n, L, 4000)
    for K, act in ((np.asarray(kr)[:, -1], "relu"), (np.asarray(kl)[:, -1], "linear")):
        rv, se = fw._bootstrap_relvar(K, 0)
        theory = float(mf.nngp_diag_variance([n] * L, act))
        assert abs(rv - theory) < 4 * se, (act, rv, theory, se)
    # and the two laws are told apart: 5 vs 2 per layer
    assert float(mf.nngp_diag_variance([n] * L, "relu")) > 2 * float(
        mf.nngp_diag_variance([n] * L, "linear")
    )


def test_ntk_diag_mean_matches_analytic_kernel():
    import jax.numpy as jnp

    from wideth.kernels import analytic

    d, width, depth = 32, 128, 2
    s = fw.ntk_diag_samples(jax.random.key(1), width, depth, 200, d=d)
    x = jax.random.normal(jax.random.fold_in(jax.random.key(1), 5), (1, d))
    x = x / jnp.linalg.norm(x) * jnp.sqrt(d)
    _, _, kfn = analytic.mlp(depth, width)
    theta = float(analytic.kernel(kfn, x, get="ntk")[0, 0])
    assert abs(s.mean() - theta) < 4 * s.std() / np.sqrt(len(s))
