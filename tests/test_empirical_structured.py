"""Structured empirical NTK on dense, convolutional, residual and token networks.

Independent reference: one ``jax.jacrev`` of the whole batch output with respect to
all parameters, flattened to ``(n, k, P)`` and contracted, ``J1 J2^T``. Every method
must equal it in float64 to 1e-10 (relative to max |K|): the routes are exact
rewritings of the same sum over parameters, so only rounding separates them
(float64 eps ~ 1e-16 times a few thousand terms).
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


class _TokenBlock(nnx.Module):
    """Per-token dense projections with a residual path and token mixing:
    h = x W_in + b; h = h + softmax(q k^T) v (q, k, v per-token projections); mean; readout."""

    def __init__(self, d, m, out, rngs):
        self.inp = nnx.Linear(d, m, rngs=rngs)
        self.q = nnx.Linear(m, m, rngs=rngs)
        self.k = nnx.Linear(m, m, use_bias=False, rngs=rngs)
        self.v = nnx.Linear(m, m, rngs=rngs)
        self.out = nnx.Linear(m, out, rngs=rngs)

    def __call__(self, x):  # (n, T, d)
        h = jnp.tanh(self.inp(x))
        a = jax.nn.softmax(jnp.einsum("ntm,nsm->nts", self.q(h), self.k(h)) / 2.0, axis=-1)
        h = h + jnp.einsum("nts,nsm->ntm", a, self.v(h))
        return self.out(jnp.mean(h, axis=1))


def _nets():
    r = nnx.Rngs(0)
    return {
        "mlp": (models.MLP(5, 8, 2, out_dim=3, b_std=0.3, rngs=r), (5,)),
        "cnn": (models.CNN(3, 4, 3, depth=2, b_std=0.2, rngs=r), (5, 5, 3)),
        "convresnet": (models.ConvResNet(2, 4, 2, depth=2, b_std=0.2, rngs=r), (4, 4, 2)),
        "tokens": (_TokenBlock(3, 6, 2, r), (4, 3)),
    }


@pytest.mark.slow
def test_structured_and_auto_equal_explicit_jacobian_product(x64):
    """Fast check: structured (full) and auto (traced) on the CNN; every method on
    every architecture is the slow test below."""
    for name, (module, shape) in [("cnn", _nets()["cnn"])]:
        apply_fn, params = _functional(module)
        x1 = jax.random.normal(jax.random.PRNGKey(1), (4, *shape))
        x2 = jax.random.normal(jax.random.PRNGKey(2), (3, *shape))
        ref = _explicit(apply_fn, params, x1, x2)
        _close(empirical.ntk(apply_fn, params, x1, x2, method="structured", full=True), ref)
        if name == "cnn":
            traced = jnp.einsum("ijkk->ij", ref) / ref.shape[-1]
            _close(empirical.ntk(apply_fn, params, x1, x2, method="auto"), traced)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "cnn", "convresnet", "tokens"])
def test_every_method_equals_explicit_jacobian_product(x64, name):
    module, shape = _nets()[name]
    apply_fn, params = _functional(module)
    x1 = jax.random.normal(jax.random.PRNGKey(1), (5, *shape))
    x2 = jax.random.normal(jax.random.PRNGKey(2), (3, *shape))
    ref = _explicit(apply_fn, params, x1, x2)
    ref_sym = _explicit(apply_fn, params, x1, x1)
    k = ref.shape[-1]
    for method in empirical.METHODS:
        _close(empirical.ntk(apply_fn, params, x1, x2, method=method, full=True), ref)
        # traced convention: mean over the k outputs (NT's trace_axes=(-1,))
        traced = jnp.einsum("ijkk->ij", ref) / k
        _close(empirical.ntk(apply_fn, params, x1, x2, method=method), traced)
        _close(
            empirical.ntk(apply_fn, params, x1, method=method, batch_size=2),
            jnp.einsum("ijkk->ij", ref_sym) / k,
        )


@pytest.mark.slow
@pytest.mark.parametrize("route", ["gram", "jacobian"])
def test_each_site_route_is_exact(x64, monkeypatch, route):
    """Forcing every site to one route (the cost model picks per site) changes nothing."""
    monkeypatch.setattr(empirical, "_routes", lambda plan, *a: (route,) * len(plan.sites))
    for name in ("cnn",) if route == "jacobian" else ("cnn", "tokens"):
        module, shape = _nets()[name]
        apply_fn, params = _functional(module)
        x1 = jax.random.normal(jax.random.PRNGKey(3), (4, *shape))
        x2 = jax.random.normal(jax.random.PRNGKey(4), (3, *shape))
        got = empirical.ntk(apply_fn, params, x1, x2, "structured", full=True)
        _close(got, _explicit(apply_fn, params, x1, x2))


@pytest.mark.slow
def test_blocks_that_do_not_fit_are_recomputed(x64, monkeypatch):
    """A factor budget of a few rows: blocks of x2 are recomputed per x1 block."""
    monkeypatch.setattr(empirical, "_FACTOR_BUDGET_BYTES", 20_000)
    module, shape = _nets()["cnn"]
    apply_fn, params = _functional(module)
    x1 = jax.random.normal(jax.random.PRNGKey(5), (7, *shape))
    got = empirical.ntk(apply_fn, params, x1, method="structured", full=True)
    _close(got, _explicit(apply_fn, params, x1, x1))


@pytest.mark.slow
def test_report_lists_sites_with_paths_and_routes():
    module, shape = _nets()["cnn"]
    x = jnp.ones((16, *shape))
    report = empirical.structured_report(module, None, x)
    rows = {s["path"]: s for s in report["sites"]}
    assert set(rows) == {
        "convs/0/w",
        "convs/1/w",
        "readout/w",
    }
    assert all(s["bias_path"] == p.replace("w", "b") for p, s in rows.items())
    assert report["rest_paths"] == [] and report["dense_fraction"] == 1.0
    conv = rows["convs/1/w"]
    # 5x5 SAME positions, 3*3*4 patch + bias column, 4 output channels
    assert (conv["positions"], conv["inputs"], conv["outputs"]) == (25, 37, 4)
    for s in rows.values():  # the route is the cheaper estimate
        assert s["flops"][s["route"]] == min(s["flops"].values())
    assert conv["route"] == "jacobian" and rows["readout/w"]["route"] == "gram"


@pytest.mark.slow
def test_learned_gain_on_bias_is_not_folded(x64):
    """A bias scaled by another parameter is not a plain bias: it goes to the
    Jacobian route and the kernel is still exact; a wrong bias scale in the
    reference would be caught (the comparison is sensitive to it)."""

    def apply_fn(p, x):
        h = jnp.tanh(x @ p["w"] + p["g"] * p["b"])
        return h @ p["v"] + 0.5 * p["c"]

    ks = jax.random.split(jax.random.PRNGKey(0), 5)
    params = {
        "w": jax.random.normal(ks[0], (3, 6)),
        "b": jax.random.normal(ks[1], (6,)),
        "g": jnp.asarray(0.7),
        "v": jax.random.normal(ks[2], (6, 2)),
        "c": jax.random.normal(ks[3], (2,)),
    }
    x = jax.random.normal(ks[4], (4, 3))
    report = empirical.structured_report(apply_fn, params, x)
    assert sorted(report["rest_paths"]) == ["b", "g"]
    assert [s["bias_path"] for s in report["sites"]] == [None, "c"]
    ref = _explicit(apply_fn, params, x, x)
    _close(empirical.ntk(apply_fn, params, x, method="structured", full=True), ref)
    wrong = lambda p, x: apply_fn(p, x) + 0.1 * p["c"]  # bias scale 0.6 instead of 0.5
    with pytest.raises(AssertionError):
        _close(empirical.ntk(wrong, params, x, method="structured", full=True), ref)


@pytest.mark.slow
def test_auto_picks_structured_where_the_cost_model_says(x64):
    """Dense and conv networks: structured is estimated cheapest (its FLOPs are a
    subset of the jacobian method's: no weight gradients in the backward pass)."""
    for name in ("mlp", "cnn", "convresnet"):
        module, shape = _nets()[name]
        apply_fn, params = _functional(module)
        x = jnp.ones((32, *shape))
        assert empirical.structured_report(apply_fn, params, x)["auto"] == "structured", name
    # no weight product at all: structured is not eligible
    f = lambda p, x: jnp.tanh(x * p["a"]).sum(-1, keepdims=True)
    assert (
        empirical.structured_report(f, {"a": jnp.ones(3)}, jnp.ones((4, 3)))["auto"] != "structured"
    )
