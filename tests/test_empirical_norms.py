"""Structured empirical NTK through LayerNorm and BatchNorm (eval) layers.

A normalisation layer's scale and bias act per feature on the normalised
activation :math:`\\hat z`: :math:`y_{tf} = \\gamma_f \\hat z_{tf} + \\beta_f`, so
their Jacobian is :math:`\\partial f_k / \\partial \\gamma_f = \\sum_t \\hat z_{tf}
\\delta_{ktf}` (and :math:`\\sum_t \\delta_{ktf}` for :math:`\\beta`): ``F`` entries
per output, formed by the per-leaf ``jax.jacrev`` route in the same backward pass as
the sites' cotangents. The weight products around them stay sites (fallback per
leaf, not for the whole network). Independent references: ``method="jacobian"``
and one whole-batch ``jax.jacrev`` contracted over parameters, in float64.
"""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from ntk_reference import dense_ntk, rel_err

from wideth import functional, models
from wideth.kernels import empirical

TOL = 1e-10


def _f64(module):
    cast = lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a
    return jax.tree.map(cast, module)


def _explicit(module, x1, x2):
    return dense_ntk(*functional.functional(module), x1, x2)


_err = rel_err


class _NormTokens(nnx.Module):
    """Pre-norm token block: h = x W_in; h = h + (LN(h) W_1) relu; LN(mean_t h) readout."""

    def __init__(self, d, m, out, rngs):
        self.inp = nnx.Linear(d, m, use_bias=False, rngs=rngs)
        self.ln1 = nnx.LayerNorm(m, rngs=rngs)
        self.w1 = nnx.Linear(m, m, use_bias=False, rngs=rngs)
        self.ln2 = nnx.LayerNorm(m, rngs=rngs)
        self.out = nnx.Linear(m, out, use_bias=False, rngs=rngs)

    def __call__(self, x):  # (n, T, d)
        h = self.inp(x)
        h = h + jax.nn.relu(self.w1(self.ln1(h)))
        return self.out(self.ln2(jnp.mean(h, axis=1)))


class _BatchNormCNN(nnx.Module):
    """conv3x3 -> BatchNorm (running statistics) -> relu -> pool -> dense."""

    def __init__(self, c, ch, out, rngs):
        self.conv = nnx.Conv(c, ch, (3, 3), use_bias=False, rngs=rngs)
        self.bn = nnx.BatchNorm(ch, use_running_average=True, rngs=rngs)
        self.out = nnx.Linear(ch, out, use_bias=False, rngs=rngs)

    def __call__(self, x):
        return self.out(jnp.mean(jax.nn.relu(self.bn(self.conv(x))), axis=(1, 2)))


def _nontrivial(module):
    """Random norm scales/biases (and running statistics), so every term matters."""
    keys = iter(jax.random.split(jax.random.PRNGKey(7), 16))
    for _, node in nnx.iter_graph(module):
        if isinstance(node, (nnx.LayerNorm, nnx.BatchNorm)):
            shape = node.scale.get_value().shape
            node.scale.set_value(1.0 + 0.5 * jax.random.normal(next(keys), shape))
            node.bias.set_value(0.5 * jax.random.normal(next(keys), shape))
        if isinstance(node, nnx.BatchNorm):
            shape = node.mean.get_value().shape
            node.mean.set_value(jax.random.normal(next(keys), shape))
            node.var.set_value(jnp.exp(jax.random.normal(next(keys), shape)))
    return module


def _cases():
    r = nnx.Rngs(0)
    return {
        "layernorm": (_NormTokens(3, 6, 2, r), (4, 3)),
        "batchnorm": (_BatchNormCNN(3, 4, 2, r), (5, 5, 3)),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["layernorm", "batchnorm"])
def test_norm_layers_fall_back_per_leaf_and_stay_exact(x64, name):
    module, shape = _cases()[name]
    module = _f64(_nontrivial(module))
    x1 = jax.random.normal(jax.random.PRNGKey(1), (4, *shape))
    x2 = jax.random.normal(jax.random.PRNGKey(2), (3, *shape))
    report = empirical.structured_report(module, None, x1)
    rest = set(report["rest_paths"])
    norm = {p for p in rest if p.startswith(("ln", "bn"))}
    # exactly the norm scales and biases take the per-leaf Jacobian route ...
    assert rest == norm and len(norm) == (4 if name == "layernorm" else 2)
    # ... every weight product around them is still a site
    sites = {s["path"] for s in report["sites"]}
    assert sites == (
        {"inp/kernel", "w1/kernel", "out/kernel"}
        if name == "layernorm"
        else {"conv/kernel", "out/kernel"}
    )
    ref = _explicit(module, x1, x2)
    jac = empirical.ntk(module, None, x1, x2, method="jacobian", full=True)
    assert _err(jac, ref) < TOL
    got = empirical.ntk(module, None, x1, x2, method="structured", full=True)
    assert _err(got, jac) < TOL
    traced = empirical.ntk(module, None, x1, x2, method="structured")
    assert _err(traced, jnp.einsum("ijkk->ij", ref) / ref.shape[-1]) < TOL
    # sensitivity: dropping the norm parameters' contribution is far outside TOL
    apply_fn, params = functional.functional(module)
    frozen = {k: v for k, v in params.items() if not k.startswith(("ln", "bn"))}
    fixed = {k: v for k, v in params.items() if k.startswith(("ln", "bn"))}
    partial = lambda p, x: apply_fn({**p, **fixed}, x)
    without = empirical.ntk(partial, nnx.State(frozen), x1, x2, method="structured", full=True)
    assert _err(without, ref) > 1e-3


@pytest.mark.slow
def test_transformer_with_layernorm_structured_equals_jacobian(x64):
    """models.Transformer with its (parameter-free) post layer norm: every method
    equals the dense-Jacobian kernel in float64."""
    module = models.Transformer(
        4, 8, 2, out_dim=3, n_heads=2, b_std=0.1, layernorm="post", rngs=nnx.Rngs(0)
    )
    module = _f64(module)
    x1 = jax.random.normal(jax.random.PRNGKey(1), (4, 5, 4))
    x2 = jax.random.normal(jax.random.PRNGKey(2), (3, 5, 4))
    ref = _explicit(module, x1, x2)
    assert _err(empirical.ntk(module, None, x1, x2, method="jacobian", full=True), ref) < TOL
    for method in ("structured", "auto"):
        assert _err(empirical.ntk(module, None, x1, x2, method=method, full=True), ref) < TOL
    report = empirical.structured_report(module, None, x1)
    assert "readout/w" in {s["path"] for s in report["sites"]}
