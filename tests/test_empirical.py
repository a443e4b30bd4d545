"""Tests for wideth.kernels.empirical.

Every method is checked against every other and against neural-tangents'
``empirical_ntk_fn`` (implementations 1 and 2) in float64; the empirical NTK of
wide ntk-parameterised networks is checked against the analytic kernel with the
n^(-1/2) rate of its fluctuations.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from wideth.compat import neural_tangents
from wideth.kernels import empirical

METHODS = ("jvp", "jacobian", "structured", "auto")
TOL = dict(rtol=1e-6, atol=1e-6)  # float64; every pair agrees far below this


def _nt():
    return neural_tangents()


def _nt_mlp(out_dim=3):
    stax = _nt().stax
    return stax.serial(
        stax.Dense(16, W_std=1.5, b_std=0.2),
        stax.Relu(),
        stax.Dense(16, W_std=1.3, b_std=0.1),
        stax.Erf(),
        stax.Dense(out_dim, W_std=1.0, b_std=0.3),
    )


def _cnn_apply(params, x):
    """A small CNN written by hand: two 3x3 convs (NHWC), relu, global mean, dense."""
    dn = ("NHWC", "HWIO", "NHWC")
    h = x
    for layer in params["convs"]:
        h = jax.lax.conv_general_dilated(h, layer["w"], (1, 1), "SAME", dimension_numbers=dn)
        h = jax.nn.relu(h + layer["b"])
    h = jnp.mean(h, axis=(1, 2))
    return jnp.tanh(h @ params["w1"]) @ params["w2"] + params["b2"]


def _cnn_params(key, c_in=2, channels=4, out_dim=2):
    ks = jax.random.split(key, 5)
    return {
        "convs": [
            {
                "w": jax.random.normal(ks[0], (3, 3, c_in, channels)) / 3,
                "b": jnp.full(channels, 0.1),
            },
            {
                "w": jax.random.normal(ks[1], (3, 3, channels, channels)) / 6,
                "b": jnp.zeros(channels),
            },
        ],
        "w1": jax.random.normal(ks[2], (channels, 8)),
        "w2": jax.random.normal(ks[3], (8, out_dim)) / 3,
        "b2": jax.random.normal(ks[4], (out_dim,)),
    }


def _all_close(a, b, tol=TOL):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), **tol)


# --------------------------------------------------------------------------------------
# Agreement of methods
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_methods_agree_on_mlp_with_neural_tangents(x64):
    init_fn, apply_fn, _ = _nt_mlp()
    x1 = jax.random.normal(jax.random.PRNGKey(1), (7, 5))
    x2 = jax.random.normal(jax.random.PRNGKey(2), (5, 5))
    _, params = init_fn(jax.random.PRNGKey(0), x1.shape)
    nt = _nt()
    ref1 = nt.empirical_ntk_fn(apply_fn, trace_axes=(), implementation=1)(x1, x2, params)
    ref2 = nt.empirical_ntk_fn(apply_fn, trace_axes=(), implementation=2)(x1, x2, params)
    traced2 = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), implementation=2)(x1, x2, params)
    _all_close(ref1, ref2)
    for method in METHODS:
        kf = empirical.ntk(apply_fn, params, x1, x2, method=method, full=True)
        k = empirical.ntk(
            apply_fn, params, x1, x2, method=method, batch_size=3
        )  # 3 divides neither 7 nor 5
        assert k.shape == (7, 5) and kf.shape == (7, 5, 3, 3)
        _all_close(kf, ref2)
        _all_close(k, traced2)
    sym = empirical.ntk(apply_fn, params, x1, method="structured", batch_size=2)
    _all_close(sym, nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,))(x1, None, params))
    _all_close(sym, sym.T)


@pytest.mark.slow
def test_methods_agree_on_cnn_with_neural_tangents(x64):
    params = _cnn_params(jax.random.PRNGKey(0))
    x1 = jax.random.normal(jax.random.PRNGKey(1), (5, 6, 6, 2))
    x2 = jax.random.normal(jax.random.PRNGKey(2), (4, 6, 6, 2))
    nt = _nt()
    ref1 = nt.empirical_ntk_fn(_cnn_apply, trace_axes=(), implementation=1)(x1, x2, params)
    ref2 = nt.empirical_ntk_fn(_cnn_apply, trace_axes=(), implementation=2)(x1, x2, params)
    _all_close(ref1, ref2)
    report = empirical.structured_report(_cnn_apply, params, x1)
    assert report["num_leaves"] == 7 and report["dense_paths"] == ["w1", "w2"]
    for method in ("jvp", "jacobian", "structured"):
        kf = empirical.ntk(_cnn_apply, params, x1, x2, method=method, full=True)
        _all_close(kf, ref2)
    k = empirical.ntk(_cnn_apply, params, x1, x2, batch_size=3)  # auto
    _all_close(k, jnp.einsum("ijkk->ij", ref2) / 2)


@pytest.mark.slow
def test_full_trace_equals_traced_and_mean_over_outputs(x64):
    """The traced kernel is the mean of the diagonal of the full one (NT's convention)."""
    init_fn, apply_fn, _ = _nt_mlp(out_dim=4)
    x = jax.random.normal(jax.random.PRNGKey(3), (6, 5))
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    jac = jax.jacrev(lambda p: apply_fn(p, x))(params)
    flat = jnp.concatenate([j.reshape(6, 4, -1) for j in jax.tree.leaves(jac)], -1)
    dense_ref = jnp.einsum("ikp,jlp->ijkl", flat, flat)  # independent: one full Jacobian
    for method in ("jvp", "structured"):
        kf = empirical.ntk(apply_fn, params, x, method=method, full=True)
        k = empirical.ntk(apply_fn, params, x, method=method)
        _all_close(kf, dense_ref)
        _all_close(k, jnp.trace(kf, axis1=2, axis2=3) / 4)


def test_structured_handles_scaled_transposed_shared_and_learned_scales(x64):
    """Weights scaled by constants / inputs, transposed, shared or scaled by a learned
    parameter: the structured route keeps only what is a pure dense product and still
    equals the Jacobian route."""

    def apply_fn(p, x):
        h = jnp.tanh((2.0 * p["w0"]) @ x.T).T  # W on the lhs, scaled
        h = jnp.tanh(h @ p["w1"].T / jnp.sqrt(8.0))  # transposed
        h = jnp.tanh(h @ p["shared"]) + jnp.sin(h @ p["shared"])  # used twice
        h = jnp.tanh(h @ (p["gain"] * p["w2"]))  # scaled by a learned scalar
        return h @ p["w3"]

    ks = jax.random.split(jax.random.PRNGKey(0), 5)
    params = {
        "w0": jax.random.normal(ks[0], (8, 3)),
        "w1": jax.random.normal(ks[1], (8, 8)),
        "shared": jax.random.normal(ks[2], (8, 8)) / 3,
        "gain": jnp.asarray(0.7),
        "w2": jax.random.normal(ks[3], (8, 8)) / 3,
        "w3": jax.random.normal(ks[4], (8, 2)),
    }
    x = jax.random.normal(jax.random.PRNGKey(5), (5, 3))
    report = empirical.structured_report(apply_fn, params, x)
    assert report["dense_paths"] == ["w0", "w1", "w3"]
    assert report["rest_paths"] == ["gain", "shared", "w2"]
    ref = empirical.ntk(apply_fn, params, x, method="jacobian", full=True)
    _all_close(empirical.ntk(apply_fn, params, x, method="structured", full=True), ref)
    _all_close(empirical.ntk(apply_fn, params, x, method="jvp", full=True), ref)


def test_structured_with_shared_positions(x64):
    """A weight applied at several positions (tokens) sums over position pairs."""

    def apply_fn(p, x):  # x: (n, T, d)
        h = jnp.tanh(x @ p["w"])  # (n, T, m), one weight for all positions
        return jnp.mean(h, axis=1) @ p["v"]

    params = {
        "w": jax.random.normal(jax.random.PRNGKey(0), (3, 6)),
        "v": jax.random.normal(jax.random.PRNGKey(1), (6, 2)),
    }
    x = jax.random.normal(jax.random.PRNGKey(2), (4, 5, 3))
    assert empirical.structured_report(apply_fn, params, x)["dense_fraction"] == 1.0
    ref = empirical.ntk(apply_fn, params, x, method="jacobian", full=True)
    _all_close(empirical.ntk(apply_fn, params, x, method="structured", full=True), ref)


class _Net(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(4, 16, rngs=rngs)
        self.l2 = nnx.Linear(16, 16, rngs=rngs)
        self.l3 = nnx.Linear(16, 2, rngs=rngs)

    def __call__(self, x):
        return self.l3(jnp.tanh(self.l2(jax.nn.relu(self.l1(x)))))

    def features(self, x):
        h1 = jax.nn.relu(self.l1(x))
        return [h1, jnp.tanh(self.l2(h1))]


def test_nnx_module_form_equals_apply_fn_form(x64):
    module = _Net(nnx.Rngs(0))
    module = jax.tree.map(lambda a: a.astype(jnp.float64), module)
    graphdef, params = nnx.split(module, nnx.Param)
    apply_fn = lambda p, x: nnx.merge(graphdef, p)(x)
    x1 = jax.random.normal(jax.random.PRNGKey(1), (5, 4))
    x2 = jax.random.normal(jax.random.PRNGKey(2), (3, 4))
    ref = empirical.ntk(apply_fn, params, x1, x2, method="jacobian")
    for method in METHODS:
        _all_close(empirical.ntk(module, None, x1, x2, method=method), ref)
    assert empirical.structured_report(module, None, x1)["dense_fraction"] > 0.9
    # nngp of a module with features(): last-layer features / width
    phi1, phi2 = module.features(x1)[-1], module.features(x2)[-1]
    _all_close(empirical.nngp(module, None, x1, x2), phi1 @ phi2.T / 16)


def test_wideth_models_mlp_if_available(x64):
    models = pytest.importorskip("wideth.models")
    if not hasattr(models, "MLP"):
        pytest.skip("wideth.models.MLP not available")
    module = models.MLP(5, 32, 2, out_dim=2, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (6, 5)).astype(jnp.float32)
    ref = empirical.ntk(module, None, x, method="jacobian")
    report = empirical.structured_report(module, None, x)
    assert report["dense_fraction"] > 0.9, report
    for method in ("jvp", "structured", "auto"):
        np.testing.assert_allclose(
            np.asarray(empirical.ntk(module, None, x, method=method)), np.asarray(ref), rtol=2e-4
        )


def test_structured_report_states_the_method_costs_and_autos_choice():
    """Closed-form cost check on a bias-free 2-layer MLP 5-32-2, n = 6 rows: one
    forward row costs F = 5*32 + 32*2 = 224 multiply-adds, so ``jvp`` costs
    n k (3n + 2n) F = 6*2*30*224; a network with no weight product has no
    structured route and ``auto`` must not pick it."""
    w1, w2 = jnp.ones((5, 32)) / 5, jnp.ones((32, 2)) / 32
    apply_fn = lambda p, x: jnp.tanh(x @ p["w1"]) @ p["w2"]
    x = jnp.ones((6, 5))
    report = empirical.structured_report(apply_fn, {"w1": w1, "w2": w2}, x)
    costs = report["method_costs"]
    assert set(costs) == {"structured", "jacobian", "jvp"}
    assert costs["jvp"] == 6 * 2 * 30 * 224
    assert costs["structured"] < costs["jacobian"]
    assert report["auto"] == "structured"
    no_sites = lambda p, x: jnp.tanh(x * p["s"]).sum(-1, keepdims=True)
    assert empirical.structured_report(no_sites, {"s": jnp.ones(5)}, x)["auto"] != "structured"


@pytest.mark.slow
def test_ntk_matvec_equals_kernel_times_vector(x64):
    params = _cnn_params(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 6, 6, 2))
    v = jax.random.normal(jax.random.PRNGKey(2), (5, 2))
    kf = empirical.ntk(_cnn_apply, params, x, method="jacobian", full=True)
    matvec = empirical.ntk_matvec(_cnn_apply, params, x)
    _all_close(matvec(v), jnp.einsum("ijkl,jl->ik", kf, v))
    with pytest.raises(ValueError, match="v"):
        matvec(jnp.ones(3))


# --------------------------------------------------------------------------------------
# Convergence to the analytic kernel
# --------------------------------------------------------------------------------------


def _triple(depth, width):
    try:
        from wideth.kernels import analytic

        return analytic.mlp(depth, width, "relu", W_std=2**0.5, b_std=0.1), analytic.kernel
    except ImportError:  # analytic module not there: NT stax directly
        stax = _nt().stax
        layers = [
            layer
            for _ in range(depth)
            for layer in (stax.Dense(width, W_std=2**0.5, b_std=0.1), stax.Relu())
        ]
        triple = stax.serial(*layers, stax.Dense(1, W_std=2**0.5, b_std=0.1))
        return triple, lambda kernel_fn, x1, x2=None, get="ntk": kernel_fn(x1, x2, get)


def _relative_errors(widths, seeds, depth=2, n=8, d=6):
    x = jax.random.normal(jax.random.PRNGKey(123), (n, d))
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True) * jnp.sqrt(d)
    errors = []
    for width in widths:
        (init_fn, apply_fn, kernel_fn), kernel = _triple(depth, width)
        exact = np.asarray(kernel(kernel_fn, x, None, get="ntk"))
        errs = []
        for seed in range(seeds):
            _, params = init_fn(jax.random.PRNGKey(seed), x.shape)
            emp = np.asarray(empirical.ntk(apply_fn, params, x, method="structured"))
            errs.append(np.linalg.norm(emp - exact) / np.linalg.norm(exact))
        errors.append(np.mean(errs))
    slope = np.polyfit(np.log(widths), np.log(errors), 1)[0]
    return np.asarray(errors), slope


@pytest.mark.slow
def test_converges_to_analytic_kernel_fast(x64):
    """Relative Frobenius error ~ n^(-1/2): log-log slope over widths 64, 256, 1024."""
    errors, slope = _relative_errors([64, 256, 1024], seeds=8)
    assert errors[-1] < 0.2, errors
    assert abs(slope + 0.5) < 0.15, (slope, errors)


@pytest.mark.slow
def test_converges_to_analytic_kernel_128_to_4096(x64):
    errors, slope = _relative_errors([128, 256, 512, 1024, 2048, 4096], seeds=8)
    assert abs(slope + 0.5) < 0.15, (slope, errors)


def test_nngp_outputs_converge_to_analytic_nngp(x64):
    """f f^T / k over k = 256 independent readouts of a width-1024 net."""
    stax = _nt().stax
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Dense(1024, W_std=2**0.5, b_std=0.1),
        stax.Relu(),
        stax.Dense(256, W_std=2**0.5, b_std=0.1),
    )
    x = jax.random.normal(jax.random.PRNGKey(4), (6, 5))
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    emp = empirical.nngp(apply_fn, params, x)
    out = apply_fn(params, x)
    _all_close(emp, out @ out.T / 256)
    exact = kernel_fn(x, None, "nngp")
    rel = np.linalg.norm(emp - exact) / np.linalg.norm(exact)
    assert rel < 0.2, rel  # one-sample-per-output error ~ sqrt(2/256) plus 1/sqrt(width)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def test_bad_input_errors():
    f = lambda p, x: x @ p
    p = jnp.ones((3, 2))
    x = jnp.ones((4, 3))
    with pytest.raises(ValueError, match="method"):
        empirical.ntk(f, p, x, method="exact")
    with pytest.raises(ValueError, match="x2"):
        empirical.ntk(f, p, x, jnp.ones((4, 5)))
    with pytest.raises(ValueError, match="x1"):
        empirical.ntk(f, p, x.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="x2"):
        empirical.nngp(f, p, x, x.at[1, 1].set(jnp.inf))
    with pytest.raises(ValueError, match="x1"):
        empirical.ntk(f, p, jnp.ones(3))
    with pytest.raises(ValueError, match="batch_size"):
        empirical.ntk(f, p, x, batch_size=0)
    with pytest.raises(TypeError, match="params"):
        empirical.ntk(_Net(nnx.Rngs(0)), {"w": p}, jnp.ones((2, 4)))
    with pytest.raises(TypeError, match="apply_fn"):
        empirical.ntk(3, p, x)
