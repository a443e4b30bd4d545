"""Structured empirical NTK on attention: weights with several free dimensions.

An attention projection ``K`` of shape ``(heads, in, key)`` applied by
``einsum("nti,hik->hntk")`` is the product :math:`y = a W` with ``W`` flattened to
``(in, heads * key)``; the structured method must treat it as one site (Gram route)
and still equal, in float64 to 1e-10 relative to max |K|, two independent routes:
one ``jax.jacrev`` of the whole batch output contracted as ``J1 J2^T``, and
``method="jacobian"`` (per-row Jacobians of all parameters).
"""

import functools

import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from ntk_reference import assert_close, dense_ntk, f64_functional

from wideth import models
from wideth.kernels import empirical

TOL = 1e-10


_explicit, _functional = dense_ntk, f64_functional
_close = functools.partial(assert_close, tol=TOL)


class _Pooled(nnx.Module):
    """SelfAttention, then token mean: ``(n, T, d) -> (n, out)``."""

    def __init__(self, attention):
        self.attention = attention

    def __call__(self, x):
        return jnp.mean(self.attention(x), axis=1)


def _check_methods(apply_fn, params, shape, seed=1, quick=False):
    x1 = jax.random.normal(jax.random.PRNGKey(seed), (4, *shape))
    x2 = jax.random.normal(jax.random.PRNGKey(seed + 1), (3, *shape))
    ref = _explicit(apply_fn, params, x1, x2)
    got = empirical.ntk(apply_fn, params, x1, x2, method="structured", full=True)
    _close(got, ref)
    if quick:
        return
    _close(got, empirical.ntk(apply_fn, params, x1, x2, method="jacobian", full=True))
    traced = jnp.einsum("ijkk->ij", ref) / ref.shape[-1]
    _close(empirical.ntk(apply_fn, params, x1, x2, method="structured"), traced)


@pytest.mark.slow
@pytest.mark.parametrize("n_heads", [1, 3])
def test_self_attention_projections_are_sites_and_exact(x64, n_heads):
    module = _Pooled(models.SelfAttention(4, 3, n_heads, key_dim=2, b_std=0.3, rngs=nnx.Rngs(0)))
    apply_fn, params = _functional(module)
    report = empirical.structured_report(apply_fn, params, jnp.ones((2, 5, 4)))
    rows = {s["path"]: s for s in report["sites"]}
    assert report["rest_paths"] == []
    key, value = rows["attention/key"], rows["attention/value"]
    # 5 tokens, D = in_dim 4, O = heads * key_dim (resp. heads * value_dim)
    assert (key["positions"], key["inputs"], key["outputs"]) == (5, 4, 2 * n_heads)
    assert (value["positions"], value["inputs"], value["outputs"]) == (5, 4, 3 * n_heads)
    assert rows["attention/out"]["bias_path"] == "attention/b"
    _check_methods(apply_fn, params, (5, 4))


@pytest.mark.slow
@pytest.mark.parametrize(("n_heads", "layernorm"), [(1, None), (2, "post"), (4, None)])
def test_transformer_structured_equals_dense_and_jacobian(x64, n_heads, layernorm):
    module = models.Transformer(
        3, 4, 2, out_dim=2, n_heads=n_heads, b_std=0.2, layernorm=layernorm, rngs=nnx.Rngs(1)
    )
    apply_fn, params = _functional(module)
    report = empirical.structured_report(apply_fn, params, jnp.ones((2, 5, 3)))
    assert report["rest_paths"] == [] and report["dense_fraction"] == 1.0
    _check_methods(apply_fn, params, (5, 3), seed=3)


@pytest.mark.parametrize("route", ["gram", "jacobian"])
def test_forced_routes_on_multi_dimensional_sites(x64, monkeypatch, route):
    """Several contracted dims, a transposed 3-d weight and a bias over two feature
    dims: both routes of every site are exact."""
    monkeypatch.setattr(empirical, "_routes", lambda plan, *a: (route,) * len(plan.sites))

    def apply_fn(p, x):  # x: (n, T, a, b)
        h = jnp.einsum("ntab,abo->nto", x, p["w1"])  # two contracted dims
        h = jnp.tanh(jnp.einsum("nto,ohk->nthk", h, p["w2"]) + 0.5 * p["b2"])
        w3 = jnp.transpose(p["w3"], (1, 2, 0))  # stored (k, c, h)
        h = jnp.einsum("nthk,chk->ntc", h, w3)
        return jnp.mean(h, axis=1)

    ks = jax.random.split(jax.random.PRNGKey(0), 5)
    params = {
        "w1": jax.random.normal(ks[0], (2, 3, 4)),
        "w2": jax.random.normal(ks[1], (4, 2, 3)),
        "b2": jax.random.normal(ks[2], (2, 3)),
        "w3": jax.random.normal(ks[3], (3, 2, 2)),
    }
    report = empirical.structured_report(apply_fn, params, jnp.ones((2, 5, 2, 3)))
    rows = {s["path"]: s for s in report["sites"]}
    assert report["rest_paths"] == []
    assert (rows["w1"]["inputs"], rows["w1"]["outputs"]) == (6, 4)
    assert rows["w2"]["bias_path"] == "b2"
    assert (rows["w2"]["inputs"], rows["w2"]["outputs"]) == (5, 6)
    assert (rows["w3"]["inputs"], rows["w3"]["outputs"]) == (6, 2)
    x1 = jax.random.normal(ks[4], (4, 5, 2, 3))
    got = empirical.ntk(apply_fn, params, x1, method="structured", full=True)
    _close(got, _explicit(apply_fn, params, x1, x1))


def test_linear_bias_added_through_reshape_is_folded(x64):
    """``nnx.Linear`` on tokens adds ``bias.reshape(1, 1, O)``: folded into its site."""

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Linear(3, 5, rngs=rngs)
            self.b = nnx.Linear(5, 2, rngs=rngs)

        def __call__(self, x):
            return self.b(jnp.tanh(self.a(x))).mean(axis=1)

    apply_fn, params = _functional(Net(nnx.Rngs(2)))
    params = jax.tree.map(lambda a: a + 0.3, params)  # nonzero biases
    report = empirical.structured_report(apply_fn, params, jnp.ones((2, 4, 3)))
    assert report["rest_paths"] == []
    biases = {s["bias_path"] for s in report["sites"]}
    assert biases == {"a/bias", "b/bias"}
    assert {s["inputs"] for s in report["sites"]} == {4, 6}  # D + bias column
    _check_methods(apply_fn, params, (4, 3), seed=5, quick=True)


def test_reshape_that_is_not_a_feature_bias_is_not_folded(x64):
    """``b.reshape(1, 3, 1)`` added to ``(n, 3, 3)`` varies over tokens, not features:
    it must stay on the per-leaf route (folding it would give a wrong kernel)."""

    def apply_fn(p, x):  # x: (n, 3, 2)
        h = x @ p["w"] + p["b"].reshape(1, 3, 1)
        return jnp.tanh(h).reshape(x.shape[0], -1) @ p["v"]

    ks = jax.random.split(jax.random.PRNGKey(4), 4)
    params = {
        "w": jax.random.normal(ks[0], (2, 3)),
        "b": jax.random.normal(ks[1], (3,)),
        "v": jax.random.normal(ks[2], (9, 2)),
    }
    report = empirical.structured_report(apply_fn, params, jnp.ones((2, 3, 2)))
    assert report["rest_paths"] == ["b"]
    _check_methods(apply_fn, params, (3, 2), seed=7, quick=True)
