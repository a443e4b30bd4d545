"""Analytic vs empirical NTK of a ReLU MLP: the finite network approaches its limit."""

import jax
import jax.numpy as jnp

import wideth as wt

x = jax.random.normal(jax.random.PRNGKey(0), (64, 16))

# Infinite width: the analytic NTK (neural-tangents underneath).
init_fn, apply_fn, kernel_fn = wt.kernels.analytic.mlp(depth=2, width=4096, activation="relu")
k_inf = wt.kernels.analytic.kernel(kernel_fn, x, get="ntk")

# Finite width: the empirical NTK of one random network with the same architecture.
_, params = init_fn(jax.random.PRNGKey(1), x.shape)
k_emp = wt.kernels.empirical.ntk(apply_fn, params, x)

rel = jnp.linalg.norm(k_emp - k_inf) / jnp.linalg.norm(k_inf)
print(f"relative difference at width 4096: {rel:.3f}")  # ~ c / sqrt(width)

for width in (256, 1024, 4096):
    init_fn, apply_fn, _ = wt.kernels.analytic.mlp(depth=2, width=width)
    _, params = init_fn(jax.random.PRNGKey(1), x.shape)
    k = wt.kernels.empirical.ntk(apply_fn, params, x)
    print(width, float(jnp.linalg.norm(k - k_inf) / jnp.linalg.norm(k_inf)))
