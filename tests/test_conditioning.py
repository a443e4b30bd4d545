"""wideth.diagnostics.conditioning and the new probes against independent routes."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wideth import hessian, train
from wideth.diagnostics import conditioning as cd
from wideth.kernels import analytic


def _net(p, x):
    return jnp.tanh(x @ p["w1"]) @ p["w2"]


def _params(key, d=3, h=16, k=2):
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (d, h)), "w2": jax.random.normal(k2, (h, k)) / h**0.5}


def test_gershgorin_and_condition_number_against_eigh():
    a = jax.random.normal(jax.random.key(0), (12, 12))
    k = a @ a.T + 0.1 * jnp.eye(12)
    ev = np.linalg.eigvalsh(np.asarray(k, np.float64))
    g = float(cd.gershgorin_bound(k))
    assert ev[-1] <= g * (1 + 1e-6) and g <= np.sqrt(12) * ev[-1] * (1 + 1e-6)
    assert float(cd.condition_number(k)) == pytest.approx(ev[-1] / ev[0], rel=1e-3)
    assert float(cd.condition_number(jnp.diag(jnp.array([0.0, 1.0])))) == np.inf


def test_ntk_gram_is_j_jt_and_lanczos_matches_dense():
    p, x = _params(jax.random.key(1)), jax.random.normal(jax.random.key(2), (5, 3))
    jac = jax.jacobian(lambda q: _net(q, x).reshape(-1))(p)
    j = jnp.concatenate([jac["w1"].reshape(10, -1), jac["w2"].reshape(10, -1)], axis=1)
    np.testing.assert_allclose(cd.ntk_gram(_net, p, x), j @ j.T, rtol=1e-4, atol=1e-5)
    lo, hi = cd.ntk_extreme_eigenvalues(_net, p, x, method="dense")
    ev = np.linalg.eigvalsh(np.asarray(j @ j.T, np.float64))
    assert float(lo) == pytest.approx(ev[0], rel=1e-3, abs=1e-5)
    assert float(hi) == pytest.approx(ev[-1], rel=1e-5)
    llo, lhi = cd.ntk_extreme_eigenvalues(_net, p, x, method="lanczos", num_steps=10)
    assert float(lhi) == pytest.approx(ev[-1], rel=1e-4)
    assert float(llo) == pytest.approx(ev[0], rel=1e-2, abs=1e-4)
    few_lo, few_hi = cd.ntk_extreme_eigenvalues(_net, p, x, method="lanczos", num_steps=3)
    assert float(few_lo) >= ev[0] - 1e-5 and float(few_hi) <= ev[-1] * (1 + 1e-5)  # inside


def test_pl_sandwich_holds_on_real_gradients_and_fails_with_the_sum_constant():
    p, x = _params(jax.random.key(3)), jax.random.normal(jax.random.key(4), (6, 3))
    y = jax.random.normal(jax.random.key(5), (6, 2))
    loss = lambda q: train.losses.mse(_net(q, x), y)
    f, g = jax.value_and_grad(loss)(p)
    mu = float(optax.tree.norm(g, squared=True) / (2 * f))
    lo_k, hi_k = cd.ntk_extreme_eigenvalues(_net, p, x)
    lo, hi = cd.pl_kernel_bounds(lo_k, hi_k, *cd.square_loss_constants(6))
    assert float(lo) * (1 - 1e-4) <= mu <= float(hi) * (1 + 1e-4)
    wrong_lo, _ = cd.pl_kernel_bounds(lo_k, hi_k, 1.0, 1.0)  # sum loss constants on a mean loss
    _, wrong_hi = cd.pl_kernel_bounds(lo_k, hi_k, 1 / 6, 1 / 36)
    assert float(wrong_lo) > mu or float(wrong_hi) < mu


def test_pl_product_bound_on_a_quadratic_and_a_wrong_smoothness():
    a = jnp.array([4.0, 1.0, 0.25])
    f = lambda t: 0.5 * jnp.sum(a * t**2)
    smooth = 4.0
    th, losses, mus = jnp.ones(3), [], []
    for _ in range(30):
        g = a * th
        losses.append(float(f(th)))
        mus.append(float(g @ g / (2 * f(th))))
        th = th - g / smooth
    ratio = np.array(losses) / losses[0]
    bound = np.asarray(cd.pl_product_bound(jnp.array(mus[:-1]), smooth))
    assert np.all(ratio <= bound * (1 + 1e-5))
    wrong = np.asarray(cd.pl_product_bound(jnp.array(mus[:-1]), smooth / 2))
    assert np.any(ratio > wrong * (1 + 1e-3))
    assert bound.shape == (30,) and bound[0] == 1.0


def test_dual_kernels_match_analytic_kernels_and_the_identity_closed_form():
    x = jax.random.normal(jax.random.key(6), (5, 4))
    w_var = cd.normalised_weight_variance("erf")
    assert w_var == pytest.approx(np.pi / (2 * np.arcsin(2 / 3)), rel=1e-5)
    assert cd.normalised_weight_variance("relu") == pytest.approx(2.0, rel=1e-6)
    u = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    xs = u * jnp.sqrt(4 / w_var)
    sig, th = cd.dual_kernels(u @ u.T, "erf", 2)
    _, _, kf = analytic.mlp(2, 64, "erf", W_std=w_var**0.5, b_std=0.0)
    nngp, ntk = analytic.kernel(kf, xs, get=("nngp", "ntk"))
    np.testing.assert_allclose(sig[2], nngp, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(th[2], ntk, rtol=1e-4, atol=1e-5)
    c = u @ u.T
    s_id, t_id = cd.dual_kernels(c, "identity", 3)
    np.testing.assert_allclose(s_id[3], c, atol=1e-5)
    np.testing.assert_allclose(t_id[3], 4 * c, rtol=1e-5, atol=1e-5)


def test_probes_agree_with_direct_computations():
    p, x = _params(jax.random.key(7)), jax.random.normal(jax.random.key(8), (6, 3))
    y = jax.random.normal(jax.random.key(9), (6, 2))
    step = train.train_step(_net, "mse", optax.sgd(0.1), metrics=("grad_norm",))
    probes = {
        "mu": train.probes.pl_ratio(step),
        "ntk": train.probes.ntk_spectrum(step),
        "ntk_lz": train.probes.ntk_spectrum(step, method="lanczos", num_steps=12),
        "q": train.probes.output_hessian_norm(step, num_steps=3),
    }
    res = jax.jit(lambda s: train.run(step, s, (x, y), 4, probes=probes, every=2))(
        train.TrainState.create(p, optax.sgd(0.1))
    )
    m = res.metrics
    np.testing.assert_allclose(
        res.probes["mu"][:2], (m["grad_norm"] ** 2 / (2 * m["loss"]))[::2], rtol=1e-5
    )
    lo, hi = cd.ntk_extreme_eigenvalues(_net, p, x, method="dense")
    assert float(res.probes["ntk"]["lam_max"][0]) == pytest.approx(float(hi), rel=1e-5)
    assert float(res.probes["ntk_lz"]["lam_max"][0]) == pytest.approx(float(hi), rel=1e-4)
    assert np.isnan(res.probes["ntk_lz"]["gershgorin"][0])
    k = cd.ntk_gram(_net, p, x)
    assert float(res.probes["ntk"]["gershgorin"][0]) == pytest.approx(
        float(cd.gershgorin_bound(k)), rel=1e-5
    )
    np.testing.assert_allclose(res.probes["q"], 1 / 6, rtol=1e-5)
    op = hessian.ntk(_net, p, x)
    assert op.size == 12


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: cd.gershgorin_bound(jnp.ones((2, 3))), "gram"),
        (lambda: cd.condition_number(jnp.ones(3)), "gram"),
        (
            lambda: cd.ntk_extreme_eigenvalues(
                _net, _params(jax.random.key(0)), jnp.ones((2, 3)), method="qr"
            ),
            "method",
        ),
        (
            lambda: cd.ntk_extreme_eigenvalues(
                _net, _params(jax.random.key(0)), jnp.ones((2, 3)), num_steps=0
            ),
            "num_steps",
        ),
        (lambda: cd.pl_kernel_bounds(1.0, 2.0, 0.0, 1.0), "mu_ell"),
        (lambda: cd.pl_kernel_bounds(1.0, jnp.ones(3), 1.0, "a"), "beta_ell"),
        (lambda: cd.pl_kernel_bounds(jnp.ones(2), jnp.ones(3), 1.0, 1.0), "lam_max"),
        (lambda: cd.pl_product_bound(jnp.ones((2, 2)), 1.0), "mu"),
        (lambda: cd.pl_product_bound(jnp.ones(3), -1.0), "smoothness"),
        (lambda: cd.pl_product_bound(jnp.ones(3), jnp.ones(2)), "smoothness"),
        (lambda: cd.square_loss_constants(0), "n"),
        (lambda: cd.normalised_weight_variance("gelu"), "activation"),
        (lambda: cd.dual_kernels(2 * jnp.eye(3), "erf", 2), "corr"),
        (lambda: cd.dual_kernels(jnp.eye(3), "erf", -1), "depth"),
        (lambda: cd.dual_kernels(jnp.array([[1.0, 2.0], [2.0, 1.0]]), "erf", 1), "corr"),
        (lambda: train.probes.pl_ratio(lambda p, b: 0.0, loss_star="x"), "loss_star"),
        (lambda: train.probes.ntk_spectrum(_net, method="qr"), "method"),
        (lambda: train.probes.output_hessian_norm(_net), "step"),
    ],
)
def test_bad_inputs_name_the_argument(call, name):
    with pytest.raises((ValueError, TypeError)) as err:
        call()
    assert str(err.value).startswith(name), str(err.value)
