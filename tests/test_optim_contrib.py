"""The research variants of ADLER against independent routes: conjugate gradients
(textbook recursion) for the Gauss-Newton momentum, the local stability limit for
the safeguard, the schedule's values, and Rosenbrock where over-relaxation diverges."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wideth.optim import pl_adaptive_info
from wideth.optim.contrib import (
    gauss_newton_momentum,
    gauss_newton_momentum_info,
    pl_adaptive_relaxed,
    pl_adaptive_safeguarded,
    pl_adaptive_scheduled,
)


def _least_squares(n=20, d=6, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d)) * np.linspace(0.3, 3.0, d)  # condition number ~100
    y = rng.standard_normal(n)
    return jnp.asarray(a), jnp.asarray(y)


def _run(tx, f, ell, p, steps):
    s = tx.init(p)
    path = [p]
    for _ in range(steps):
        g = jax.grad(lambda q: ell(f(q)))(p)
        u, s = tx.update(g, s, p, outputs_fn=f, loss_of_outputs=ell)
        p = p + u
        path.append(p)
    return path, s


def test_gauss_newton_momentum_is_conjugate_gradients(x64):
    """On 0.5 mean (A w - y)^2 the span(G, d) minimiser is the CG iterate (Nocedal & Wright
    Thm 5.3): equal to the textbook recursion on H w = b, H = A'A/n, to 1e-9, and exact
    after d = 6 steps (ADLER's line search is still far off)."""
    a, y = _least_squares()
    n, d = a.shape
    f = lambda w: a @ w
    ell = lambda out: 0.5 * jnp.mean((out - y) ** 2)
    path, _ = _run(gauss_newton_momentum(eps=0.0), f, ell, jnp.zeros(d), d)
    h, b = np.asarray(a.T @ a / n), np.asarray(a.T @ y / n)
    x, r = np.zeros(d), b.copy()
    p = r.copy()
    for k in range(d):
        alpha = (r @ r) / (p @ h @ p)
        x = x + alpha * p
        r_new = r - alpha * h @ p
        p = r_new + (r_new @ r_new) / (r @ r) * p
        r = r_new
        np.testing.assert_allclose(path[k + 1], x, rtol=1e-8, atol=1e-9)
    w_star = np.linalg.solve(h, b)
    np.testing.assert_allclose(path[-1], w_star, rtol=1e-8)
    adler, _ = _run(pl_adaptive_relaxed(1.0), f, ell, jnp.zeros(d), d)
    assert np.linalg.norm(adler[-1] - w_star) > 1e-2 * np.linalg.norm(w_star)


def test_gauss_newton_momentum_first_step_is_the_line_search(x64):
    a, y = _least_squares()
    f = lambda w: a @ w
    ell = lambda out: 0.5 * jnp.mean((out - y) ** 2)
    w = jnp.zeros(a.shape[1])
    g = jax.grad(lambda q: ell(f(q)))(w)
    tx = gauss_newton_momentum(eps=0.0)
    u, s = tx.update(g, tx.init(w), w, outputs_fn=f, loss_of_outputs=ell)
    eta = float(g @ g / (g @ (a.T @ a / a.shape[0]) @ g))
    np.testing.assert_allclose(u, -eta * g, rtol=1e-10)
    info = gauss_newton_momentum_info(s)
    assert float(info["last_momentum"]) == 0.0 and np.isclose(float(info["last_eta"]), eta)


def test_safeguard_caps_the_step_at_the_stability_limit(x64):
    """Every applied step is at most 2 s eta_k along G (eta_k the line search of that step),
    and equals relaxation * eta_hat where that is smaller."""
    a, y = _least_squares()
    f = lambda w: jnp.tanh(a @ w)
    ell = lambda out: 0.5 * jnp.mean((out - y) ** 2)
    tx = pl_adaptive_safeguarded(relaxation=1.9, safety=0.8)
    w = jnp.zeros(a.shape[1]) + 0.1
    s = tx.init(w)
    capped = 0
    for _ in range(40):
        g = jax.grad(lambda q: ell(f(q)))(w)
        u, s = tx.update(g, s, w, outputs_fn=f, loss_of_outputs=ell)
        info = pl_adaptive_info(s)
        step = float(-(u @ g) / (g @ g))
        limit = 2 * 0.8 * float(info["last_eta"])
        plain = 1.9 * float(info["eta_hat"])
        np.testing.assert_allclose(step, min(plain, limit), rtol=1e-9)
        capped += plain > limit
        w = w + u
    assert capped > 0  # the cap was active on this problem


def _rosenbrock(tx, steps=1500):
    f = lambda p: jnp.stack([10 * (p[1] - p[0] ** 2), 1 - p[0]])
    ell = lambda r: 0.5 * jnp.sum(r**2)

    @jax.jit
    def run(p):
        def step(c, _):
            p, s = c
            g = jax.grad(lambda q: ell(f(q)))(p)
            u, s = tx.update(g, s, p, outputs_fn=f, loss_of_outputs=ell)
            return (p + u, s), None

        (p, _), _ = jax.lax.scan(step, (p, tx.init(p)), None, steps)
        return ell(f(p))

    return float(run(jnp.array([-1.2, 1.0])))


def test_rosenbrock(x64):
    """Over-relaxed ADLER overflows on Rosenbrock; the safeguarded one converges, and
    the Gauss-Newton momentum (a full Gauss-Newton step in 2-D) reaches the minimum."""
    assert (
        not np.isfinite(_rosenbrock(pl_adaptive_relaxed(1.5)))
        or _rosenbrock(pl_adaptive_relaxed(1.5)) > 1.0
    )
    assert _rosenbrock(pl_adaptive_safeguarded(1.5)) < 1e-2
    assert _rosenbrock(gauss_newton_momentum()) < 1e-20


def test_schedule_values():
    tx = pl_adaptive_scheduled(beta_max=0.99, tau=10.0)
    w = jnp.ones(2)
    f = lambda p: p
    ell = lambda out: jnp.sum(out**2)
    s = tx.init(w)
    betas = []
    for _ in range(3):  # update k uses beta(k) and records it in the state
        _, s = tx.update(2 * w, s, w, outputs_fn=f, loss_of_outputs=ell)
        betas.append(float(s.hyperparams["beta"]))
    np.testing.assert_allclose(betas, [0.0, 1 / 11, 2 / 12], rtol=1e-6)

    @jax.jit
    def late(s):
        step = lambda s, _: (tx.update(2 * w, s, w, outputs_fn=f, loss_of_outputs=ell)[1], None)
        return jax.lax.scan(step, s, None, 1200)[0]

    assert float(late(s).hyperparams["beta"]) == pytest.approx(0.99)  # 1202/1212 capped


def test_bad_input():
    with pytest.raises(ValueError, match="^safety: "):
        pl_adaptive_safeguarded(safety=0.0)
    with pytest.raises(ValueError, match="^relaxation: "):
        pl_adaptive_safeguarded(relaxation=2.0)
    with pytest.raises(ValueError, match="^eps: "):
        gauss_newton_momentum(eps=-1.0)
    with pytest.raises(ValueError, match="^tau: "):
        pl_adaptive_scheduled(tau=0.0)
    with pytest.raises(ValueError, match="^beta_max: "):
        pl_adaptive_scheduled(beta_max=1.0)
    tx = gauss_newton_momentum()
    with pytest.raises(TypeError, match="^outputs_fn: "):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)), jnp.ones(2))
    with pytest.raises(ValueError, match="^state: "):
        gauss_newton_momentum_info({"a": 1})
