"""Profile and conservation certificates on small real cases (sklearn digits)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from wideth import data, diagnostics, models
from wideth.diagnostics import conservation


@pytest.fixture(scope="module")
def digits():
    ds = data.digits(seed=0)
    return ds.x_train[:256], ds.y_train[:256], ds.x_test[:256], ds.y_test[:256]


def _mlp(in_dim, out_dim, width=64, depth=2, activation="relu", w_std=2**0.5, seed=0):
    net = models.MLP(
        in_dim,
        width,
        depth,
        out_dim,
        activation=activation,
        W_std=w_std,
        b_std=0.0,
        parameterization="ntk",
        rngs=nnx.Rngs(seed),
    )
    return net, *models.functional(net)


def _xent(apply_fn, x, y):
    return lambda p: -jnp.mean(jnp.sum(y * jax.nn.log_softmax(apply_fn(p, x)), -1))


def _train(loss_fn, params, lr=0.5, steps=150):
    tx = optax.sgd(lr)

    def step(carry, _):
        p, s = carry
        g = jax.grad(loss_fn)(p)
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
    return params


# --- pieces with closed forms -------------------------------------------------


def test_loss_curve_shapes():
    t = np.arange(50)
    assert diagnostics.loss_curve_shape(np.exp(-0.1 * t))["verdict"] == "library"
    assert diagnostics.loss_curve_shape(np.exp(-0.1 * t))["rate"] == pytest.approx(0.1)
    assert diagnostics.loss_curve_shape(1.0 / (1 + t) ** 0.5 + 0.5)["verdict"] == "tame"
    osc = 1.0 + 0.5 * (-1.0) ** t
    assert diagnostics.loss_curve_shape(osc)["verdict"] == "wild"
    assert diagnostics.loss_curve_shape(np.exp(0.05 * t))["verdict"] == "wild"
    assert diagnostics.loss_curve_shape([1.0, 2.0, np.inf])["verdict"] == "wild"


def test_gradient_ratios_closed_form():
    grads = {"a": {"w": jnp.full((2, 2), 0.5), "b": jnp.zeros(2)}, "z": {"w": jnp.ones((1, 4))}}
    r = diagnostics.gradient_ratios(grads)
    assert list(r.values()) == pytest.approx([1.0 / 2.0, 1.0])


# --- profile ------------------------------------------------------------------


@pytest.mark.slow
def test_shallow_critical_relu_is_not_wild(digits):
    x, y, _, _ = digits
    net, apply_fn, params = _mlp(x.shape[1], y.shape[1])
    cert = diagnostics.profile(
        apply_fn, params, x, y, key=jax.random.PRNGKey(0), probe_steps=30, lanczos_steps=15
    )
    assert cert.regime in ("library", "tame"), cert.to_markdown()
    assert cert.measurements["gradient_ratio_min"] > 0.1
    payload = json.loads(cert.to_json())
    assert payload["regime"] == cert.regime and "ntk_condition_number" in payload["measurements"]
    # The NTK condition number is the one of an independently computed Gram matrix.
    from wideth.kernels import empirical

    ev = np.linalg.eigvalsh(np.asarray(empirical.ntk(apply_fn, params, x[:64]), np.float64))
    assert cert.measurements["ntk_condition_number"] == pytest.approx(ev[-1] / ev[0], rel=1e-3)


@pytest.mark.slow
def test_deep_tanh_below_criticality_is_wild_with_vanishing_gradients(digits):
    """40 tanh layers at sigma_w^2 = 0.5, sigma_b^2 = 0.05 (ordered phase, chi_1 ~ 0.4)."""
    x, y, _, _ = digits
    net = models.MLP(
        x.shape[1],
        32,
        40,
        y.shape[1],
        activation="tanh",
        W_std=0.5**0.5,
        b_std=0.05**0.5,
        parameterization="ntk",
        rngs=nnx.Rngs(0),
    )
    apply_fn, params = models.functional(net)
    cert = diagnostics.profile(
        apply_fn,
        params,
        x,
        y,
        key=jax.random.PRNGKey(0),
        probe_steps=10,
        probe_size=32,
        lanczos_steps=10,
    )
    assert cert.regime == "wild"
    assert cert.criteria["gradient_flow"]["verdict"] == "wild"
    assert cert.pathology["pathology"] == "vanishing gradients"
    assert "critical" in cert.pathology["remedy"]
    assert "vanishing gradients" in cert.to_markdown()
    # The first layer's gradient is the smallest, and far below the last one.
    ratios = list(cert.measurements["gradient_ratios"].values())
    assert ratios[0] < 1e-2 and ratios[0] == min(ratios)


@pytest.mark.slow
def test_resnet_better_than_plain_net_of_same_depth(digits):
    x, y, _, _ = digits
    depth = 20
    kw = dict(activation="relu", W_std=2**0.5, b_std=0.0, parameterization="ntk")
    plain = models.MLP(x.shape[1], 64, depth, y.shape[1], rngs=nnx.Rngs(0), **kw)
    res = models.ResNet(x.shape[1], 64, depth, y.shape[1], rngs=nnx.Rngs(0), **kw)
    rank = {"library": 0, "tame": 1, "wild": 2}
    certs = []
    for net in (plain, res):
        fn, p = models.functional(net)
        certs.append(diagnostics.profile(fn, p, x, y, key=jax.random.PRNGKey(1), probe_steps=10))
    assert rank[certs[1].regime] <= rank[certs[0].regime]
    assert (
        certs[1].measurements["gradient_ratio_min"] > certs[0].measurements["gradient_ratio_min"]
        or certs[1].measurements["ntk_condition_number"]
        < certs[0].measurements["ntk_condition_number"]
    )


@pytest.mark.slow
def test_profile_accepts_module(digits):
    x, y, _, _ = digits
    net, apply_fn, params = _mlp(x.shape[1], y.shape[1], width=32, depth=1)
    a = diagnostics.profile(net, None, x[:32], y[:32], probe_steps=5, probe_size=32)
    b = diagnostics.profile(apply_fn, params, x[:32], y[:32], probe_steps=5, probe_size=32)
    assert a.measurements["ntk_condition_number"] == pytest.approx(
        b.measurements["ntk_condition_number"], rel=1e-4
    )


@pytest.mark.slow
def test_profile_width_scaling_kernel_regime_and_a_width_blind_model(digits):
    """Criterion 7: an NTK-parameterised MLP's drift falls with width (slope between the
    leading-order -1 and the -1/2 bound: library); a make_model that ignores the width
    has slope 0 (tame), so the criterion can fail."""
    x, y = digits[0][:64], digits[1][:64]

    def make(width):
        return _mlp(x.shape[1], y.shape[1], width=width, depth=1, seed=1)[1:]

    fn, p = make(64)
    kw = dict(key=jax.random.PRNGKey(0), probe_steps=20, probe_size=64, lanczos_steps=10)
    cert = diagnostics.profile(fn, p, x, y, widths=(64, 256, 1024), make_model=make, **kw)
    slope = cert.measurements["width_slope"]
    assert -1.2 < slope < -0.3, slope
    assert cert.criteria["width_scaling"]["verdict"] == "library"
    blind = diagnostics.profile(
        fn, p, x, y, widths=(64, 256, 1024), make_model=lambda w: make(64), **kw
    )
    assert abs(blind.measurements["width_slope"]) < 1e-6
    assert blind.criteria["width_scaling"]["verdict"] == "tame"


def test_profile_bad_input(digits):
    x, y, _, _ = digits
    _, apply_fn, params = _mlp(x.shape[1], y.shape[1], width=16, depth=1)
    with pytest.raises(ValueError, match="y"):
        diagnostics.profile(apply_fn, params, x, y[:, :3])
    with pytest.raises(ValueError, match="rows"):
        diagnostics.profile(apply_fn, params, x, y[:10])
    bad = jax.tree.map(lambda a: a.at[(0,) * a.ndim].set(jnp.nan), params)
    with pytest.raises(ValueError, match="params"):
        diagnostics.profile(apply_fn, bad, x, y)
    with pytest.raises(ValueError, match="x"):
        diagnostics.profile(apply_fn, params, x.at[0, 0].set(jnp.inf), y)
    with pytest.raises(ValueError, match="loss"):
        diagnostics.profile(apply_fn, params, x, y, loss="hinge")


# --- conservation -------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(digits):
    x, y, xt, yt = digits
    net, apply_fn, params = _mlp(x.shape[1], y.shape[1], width=128, depth=2)
    loss_fn = _xent(apply_fn, x, y)
    params = _train(loss_fn, params)
    return net, apply_fn, params, loss_fn


@pytest.mark.slow
def test_progress_certificate_descent_lemma(trained):
    _, _, params, loss_fn = trained
    from wideth import hessian

    lam = float(
        hessian.top_eigenpairs(loss_fn, params, k=1, num_steps=30, key=jax.random.PRNGKey(0))[0][0]
    )
    g = jax.grad(loss_fn)(params)
    for factor, premise in ((0.5, True), (3.0, False)):
        lr = factor / lam
        new = jax.tree.map(lambda a, b: a - lr * b, params, g)
        cert = conservation.progress(loss_fn, params, new, lr, key=jax.random.PRNGKey(0))
        assert cert.bounds[0].holds is premise
        if premise:
            assert cert.holds, cert.to_markdown()
    # Measured decrease is independently L(theta) - L(theta').
    assert cert.measurements["loss_before"] == pytest.approx(float(loss_fn(params)), rel=1e-5)


def _magnitude_prune(params, fraction):
    leaves, tree = jax.tree.flatten(params)
    flat = jnp.concatenate([jnp.abs(a).ravel() for a in leaves])
    thresh = jnp.quantile(flat, fraction)
    return jax.tree.unflatten(tree, [jnp.where(jnp.abs(a) < thresh, 0.0, a) for a in leaves])


def test_pruning_taylor_prediction_and_preservation(trained, digits):
    net, apply_fn, params, loss_fn = trained
    _, _, xt, yt = digits
    graphdef = nnx.graphdef(net)
    features = lambda p, x: nnx.merge(graphdef, p).features(x) + [apply_fn(p, x)]
    light = _magnitude_prune(params, 0.1)
    taylor = conservation.taylor_change(loss_fn, params, light, rel_tolerance=0.25)
    assert taylor.holds, taylor.to_markdown()
    ok = conservation.preservation(features, params, light, xt, yt, eps=0.3)
    assert ok.holds, ok.to_markdown()
    heavy = _magnitude_prune(params, 0.95)
    bad = conservation.preservation(features, params, heavy, xt, yt, eps=0.3)
    assert not bad.holds and bad.failed
    # The accuracy change is measured independently.
    acc = lambda p: float(jnp.mean(jnp.argmax(apply_fn(p, xt), -1) == jnp.argmax(yt, -1)))
    assert bad.measurements["accuracy_after"] == pytest.approx(acc(heavy))


def test_count_bound_on_certified_gd_run(trained):
    _, _, params, loss_fn = trained
    from wideth import hessian

    lam = float(
        hessian.top_eigenpairs(loss_fn, params, k=1, num_steps=30, key=jax.random.PRNGKey(0))[0][0]
    )
    lr = 0.5 / lam
    losses, deltas, p = [float(loss_fn(params))], [], params
    for _ in range(5):
        g = jax.grad(loss_fn)(p)
        deltas.append(0.5 * lr * float(sum(jnp.sum(a**2) for a in jax.tree.leaves(g))))
        p = jax.tree.map(lambda a, b: a - lr * b, p, g)
        losses.append(float(loss_fn(p)))
    cert = conservation.count_bound(losses, deltas)
    assert cert.holds, cert.to_markdown()
    assert cert.measurements["bound"] == pytest.approx(losses[0] / min(deltas))
    with pytest.raises(ValueError, match="losses"):
        conservation.count_bound(losses[:3], deltas)


def test_distillation_pinsker_holds_on_held_out(trained, digits):
    _, apply_fn, params, _ = trained
    x, y, xt, yt = digits
    teacher_t = apply_fn(params, xt)
    _, s_apply, s_params = _mlp(x.shape[1], y.shape[1], width=32, depth=1, seed=3)
    soft = jax.nn.softmax(apply_fn(params, x))
    s_params = _train(_xent(s_apply, x, soft), s_params, steps=100)
    cert = conservation.distillation(teacher_t, s_apply(s_params, xt), yt)
    assert cert.holds, cert.to_markdown()
    # Independent check of the mean TV with numpy.
    pt = np.asarray(jax.nn.softmax(teacher_t))
    ps = np.asarray(jax.nn.softmax(s_apply(s_params, xt)))
    assert cert.measurements["mean_tv"] == pytest.approx(
        0.5 * np.abs(pt - ps).sum(1).mean(), rel=1e-4
    )
    with pytest.raises(ValueError, match="teacher_logits"):
        conservation.distillation(teacher_t, teacher_t[:, :3])


def test_conservation_bad_input(trained):
    _, _, params, loss_fn = trained
    wrong = jax.tree.map(lambda a: a[..., :1], params)
    with pytest.raises(ValueError, match="new_params"):
        conservation.taylor_change(loss_fn, params, wrong)
    vector_loss = lambda p: jnp.ones(3)
    with pytest.raises(ValueError, match="scalar"):
        conservation.taylor_change(vector_loss, params, params)


@pytest.mark.slow
def test_cli_prints_certificate(capsys):
    from wideth.__main__ import main

    rc = main(["profile", "--depth", "2", "--width", "16", "--n", "32", "--data", "digits"])
    out = capsys.readouterr().out
    assert rc == 0 and "Profile certificate" in out and '"regime"' in out
    assert "| hessian_conditioning |" in out and "| gradient_noise |" in out
    assert "Architecture: model MLP, depth 2, widths [16, 16]" in out and "activation relu" in out
    for label in ("Hessian lambda_min", "kappa_H", "spectral gap", "tr Sigma", "effective rank"):
        assert label in out, label
    assert '"hessian_lambda_min"' in out and '"gradient_effective_rank"' in out
    # Bad arguments still give one line and status 2.
    assert main(["profile", "--depth", "2", "--width", "0", "--n", "32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wideth profile: error: --width")


def test_taylor_change_complex_params_uses_real_pairing():
    """L = sum |p - t|^2 is quadratic in (Re p, Im p): the Taylor prediction is exact.

    jax.grad gives g = 2 conj(p - t); the directional derivative along dw is
    Re sum(g dw) and the second one Re sum(dw H dw) = 2 sum |dw|^2 (no conjugate).
    """
    t = jnp.array([1.0 + 2.0j, -0.5j, 0.3])
    loss_fn = lambda p: jnp.sum(jnp.abs(p - t) ** 2)
    params = jnp.array([0.2 - 0.1j, 0.4j, -1.0 + 0.5j])
    new = params + jnp.array([0.1 + 0.05j, -0.02j, 0.03 - 0.04j])
    cert = conservation.taylor_change(loss_fn, params, new, rel_tolerance=1e-4)
    m = cert.measurements
    dw = new - params
    np.testing.assert_allclose(m["second_order"], float(jnp.sum(jnp.abs(dw) ** 2)), rtol=1e-5)
    np.testing.assert_allclose(m["predicted_change"], m["measured_change"], rtol=1e-4)
    assert cert.holds


# --- Hessian, gradient noise and architecture in the certificate ---------------------


def _tiny_tanh():
    """A 3 -> 5 -> 2 tanh net on 7 rows: an indefinite Hessian, d = 25."""
    k = jax.random.split(jax.random.key(4), 4)
    params = {
        "l1": {"w": jax.random.normal(k[0], (3, 5)), "b": 0.3 * jnp.ones(5)},
        "out": {"w": jax.random.normal(k[1], (5, 2))},
    }
    x = jax.random.normal(k[2], (7, 3))
    y = 2.0 * jax.random.normal(k[3], (7, 2))
    apply_fn = lambda p, x: jnp.tanh(x @ p["l1"]["w"] + p["l1"]["b"]) @ p["out"]["w"]
    objective = lambda p, batch: (
        0.5 * jnp.mean(jnp.sum((apply_fn(p, batch[0]) - batch[1]) ** 2, -1))
    )
    return apply_fn, objective, params, x, y


def _dense_hessian(loss_fn, params):
    from jax.flatten_util import ravel_pytree

    flat, unravel = ravel_pytree(params)
    return np.asarray(jax.hessian(lambda v: loss_fn(unravel(v)))(flat), np.float64)


@pytest.mark.slow
def test_hessian_summary_matches_dense_eigh(x64):
    _, objective, params, x, y = _tiny_tanh()
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    x, y = x.astype(jnp.float64), y.astype(jnp.float64)
    loss_fn = lambda p: objective(p, (x, y))
    ev = np.linalg.eigvalsh(_dense_hessian(loss_fn, params))
    assert ev[0] < 0 < ev[-1]  # indefinite: the sign of lambda_min is tested
    s = diagnostics.hessian_summary(loss_fn, params, num_steps=25)
    np.testing.assert_allclose(
        [s["lambda_max"], s["lambda_2"], s["lambda_min"], s["spectral_gap"]],
        [ev[-1], ev[-2], ev[0], ev[-1] - ev[-2]],
        rtol=1e-9,
    )
    assert s["lambda_min_sign"] == -1.0 and s["smoothness"] == s["lambda_max"]
    assert s["condition_number"] == pytest.approx(ev[-1] / abs(ev[0]), rel=1e-9)
    assert s["negative_curvature"] == pytest.approx(-ev[0] / ev[-1], rel=1e-9)
    assert s["hessian_norm"] == pytest.approx(np.max(np.abs(ev)), rel=1e-9)
    # A positive definite quadratic: sign +1 and kappa_H = lambda_max / lambda_min.
    q = diagnostics.hessian_summary(
        lambda p: jnp.sum(jnp.array([3.0, 2.0, 0.5]) * p**2), jnp.ones(3)
    )
    assert q["lambda_min_sign"] == 1.0 and q["condition_number"] == pytest.approx(6.0)
    assert q["negative_curvature"] == 0.0


@pytest.mark.slow
def test_gradient_noise_matches_dense_covariance(x64):
    _, objective, params, x, y = _tiny_tanh()
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    x, y = x.astype(jnp.float64), y.astype(jnp.float64)
    from jax.flatten_util import ravel_pytree

    per_ex = jax.vmap(lambda xi, yi: jax.grad(objective)(params, (xi[None], yi[None])))(x, y)
    g = np.asarray(jax.vmap(lambda t: ravel_pytree(t)[0])(per_ex), np.float64)  # (N, d)
    gbar = g.mean(0)
    sigma = (g - gbar).T @ (g - gbar) / g.shape[0]
    ev = np.linalg.eigvalsh(sigma)
    n = diagnostics.gradient_noise(objective, params, (x, y), num_steps=25, chunk=3)
    assert n["trace_sigma"] == pytest.approx(np.trace(sigma), rel=1e-10)
    assert n["gradient_variance"] == n["trace_sigma"]
    assert n["sigma_norm"] == pytest.approx(ev[-1], rel=1e-9)
    assert n["effective_rank"] == pytest.approx(np.trace(sigma) / ev[-1], rel=1e-9)
    assert n["grad_sq"] == pytest.approx(gbar @ gbar, rel=1e-10)
    assert n["snr"] == pytest.approx(gbar @ gbar / np.trace(sigma), rel=1e-9)
    assert n["noise_scale"] == pytest.approx(np.trace(sigma) / (gbar @ gbar), rel=1e-9)
    # Identical examples: no noise at all.
    same = (jnp.repeat(x[:1], 4, 0), jnp.repeat(y[:1], 4, 0))
    z = diagnostics.gradient_noise(objective, params, same, num_steps=5)
    assert z["trace_sigma"] < 1e-25 and z["noise_scale"] < 1e-25  # zero up to rounding


def test_architecture_from_module_and_from_params():
    net, apply_fn, params = _mlp(64, 10, width=32, depth=2, activation="tanh")
    a = diagnostics.architecture(net)
    b = diagnostics.architecture(apply_fn, params)
    n_params = 64 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10
    assert a["source"] == "module" and a["model"] == "MLP" and a["activation"] == "tanh"
    assert b["source"] == "params" and b["activation"] is None
    for arch in (a, b):
        assert (arch["depth"], arch["widths"], arch["in_dim"], arch["out_dim"]) == (
            2,
            [32, 32],
            64,
            10,
        )
        assert arch["num_parameters"] == n_params
    assert a["parameterization"] == "ntk"


def _saddle(s):
    """f = x.w + s (x.u)^2 at w = u = 0, y = 1: H = diag(X^T X/n, -2s X^T X/n).

    The Gauss-Newton block is X^T X/n; the u-block is the residual term
    (1/n) sum_i r_i grad^2 f_i with r_i = -1. So -lambda_min/lambda_max = 2s
    exactly, and u never moves (its gradient 2s (x.u) x r is 0 at u = 0): the
    probe run, the NTK and the loss curve do not depend on s.
    """
    x = 0.5 + jax.random.normal(jax.random.key(7), (8, 32))
    y = jnp.ones((8, 1))
    params = {"layer": {"w": jnp.zeros(32), "u": jnp.zeros(32)}}

    def apply_fn(p, x):
        w, u = p["layer"]["w"], p["layer"]["u"]
        return (x @ w + s * (x @ u) ** 2)[:, None]

    return apply_fn, params, x, y


@pytest.mark.slow
def test_profile_negative_curvature_changes_the_verdict():
    kw = dict(key=jax.random.PRNGKey(0), probe_steps=30, lanczos_steps=64)
    certs = {}
    for s in (0.01, 1.0):
        apply_fn, params, x, y = _saddle(s)
        certs[s] = diagnostics.profile(apply_fn, params, x, y, **kw)
    lib, wild = certs[0.01], certs[1.0]
    assert lib.regime == "library", lib.to_markdown()
    assert wild.regime == "wild", wild.to_markdown()
    # Only the Hessian criterion differs.
    for name in lib.criteria:
        if name != "hessian_conditioning":
            assert lib.criteria[name]["verdict"] == wild.criteria[name]["verdict"], name
    assert wild.criteria["hessian_conditioning"]["verdict"] == "wild"
    assert "negative curvature" in wild.pathology["pathology"]
    # The measurements are those of the dense Hessian and covariance (float32).
    apply_fn, params, x, y = _saddle(1.0)
    loss_fn = lambda p: 0.5 * jnp.mean(jnp.sum((apply_fn(p, x) - y) ** 2, -1))
    ev = np.linalg.eigvalsh(_dense_hessian(loss_fn, params))
    m = wild.measurements
    assert m["hessian_lambda_max"] == pytest.approx(ev[-1], rel=1e-4)
    assert m["hessian_lambda_min"] == pytest.approx(ev[0], rel=1e-4)
    assert m["hessian_lambda_min_sign"] == -1.0
    assert m["hessian_negative_curvature"] == pytest.approx(2.0, rel=1e-4)  # = 2s
    assert m["hessian_spectral_gap"] == pytest.approx(ev[-1] - ev[-2], rel=1e-3, abs=1e-5)
    g = -np.asarray(x, np.float64)  # per-example gradient in w (r_i = -1); 0 in u
    dev = g - g.mean(0)
    sig = dev.T @ dev / 8
    assert m["gradient_variance"] == pytest.approx(np.trace(sig), rel=1e-4)
    assert m["sigma_norm"] == pytest.approx(np.linalg.eigvalsh(sig)[-1], rel=1e-4)
    # The certificate tuple carries the new fields in every format.
    payload = json.loads(wild.to_json())
    assert payload["architecture"]["num_parameters"] == 64
    assert wild.to_dict()["measurements"]["hessian_condition_number"] == pytest.approx(0.5, 1e-4)
    md = wild.to_markdown()
    for label in ("kappa_H", "lambda_min", "tr Sigma", "effective rank", "Architecture"):
        assert label in md, label


def test_profile_architecture_info_bad_input():
    apply_fn, params, x, y = _saddle(0.01)
    with pytest.raises(TypeError, match="^architecture_info"):
        diagnostics.profile(apply_fn, params, x, y, architecture_info=["relu"])
    with pytest.raises(TypeError, match="^architecture_info"):
        diagnostics.profile(apply_fn, params, x, y, architecture_info={1: "relu"})
