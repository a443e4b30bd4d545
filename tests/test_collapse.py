"""Neural collapse metrics NC1-NC4 against configurations with known values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wideth import diagnostics


def _simplex(c, d, key):
    """Centred, equinorm, equiangular frame: rows of I - 11^T/C, rotated into R^d."""
    m = np.eye(c) - 1.0 / c
    q, _ = np.linalg.qr(np.asarray(jax.random.normal(key, (d, c)), np.float64))
    return m @ q.T  # (C, d), cos = -1/(C-1)


def test_exact_collapse_gives_zero(x64):
    c, d, per = 5, 8, 6
    m = _simplex(c, d, jax.random.key(0)) + 3.0  # a shifted global mean is removed
    h = np.repeat(m, per, axis=0)
    y = np.repeat(np.arange(c), per)
    nc = diagnostics.neural_collapse(h, y, c, weights=m - 3.0, logits=(h - 3.0) @ (m - 3.0).T)
    np.testing.assert_allclose(np.asarray(nc), 0.0, atol=1e-10)


def test_nc1_closed_form_and_nc2_of_a_non_simplex(x64):
    # Two classes at +-a e1 with isotropic spread s^2 in e1 only: Sigma_W = s^2 e1e1^T,
    # Sigma_B = a^2 e1e1^T, so NC1 = (s^2/a^2)/2 exactly.
    a, s = 2.0, 0.5
    h = np.array([[a + s, 0], [a - s, 0], [-a + s, 0], [-a - s, 0]])
    y = np.array([0, 0, 1, 1])
    nc = diagnostics.neural_collapse(h, y, 2)
    assert float(nc.nc1) == pytest.approx(s**2 / a**2 / 2)
    assert float(nc.nc2_equinorm) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(float(nc.nc3)) and np.isnan(float(nc.nc4))
    # Three means at right angles: cos = 0 instead of -1/2 after centring? Centring changes
    # them; measure against the explicit formula.
    m = np.eye(3) * np.array([1.0, 2.0, 3.0])[:, None]
    nc = diagnostics.neural_collapse(m, np.arange(3), 3)
    cm = m - m.mean(0)
    nrm = np.linalg.norm(cm, axis=1)
    assert float(nc.nc2_equinorm) == pytest.approx(nrm.std() / nrm.mean())
    cos = (cm / nrm[:, None]) @ (cm / nrm[:, None]).T
    off = cos[~np.eye(3, dtype=bool)]
    assert float(nc.nc2_equiangular) == pytest.approx(np.mean(np.abs(off + 0.5)))
    assert float(nc.nc2_equiangular) > 0.05


def test_nc3_and_nc4_detect_a_wrong_classifier(x64):
    c, d, per = 4, 6, 5
    m = _simplex(c, d, jax.random.key(1))
    h = np.repeat(m, per, axis=0) + 0.05 * np.asarray(
        jax.random.normal(jax.random.key(2), (c * per, d))
    )
    y = np.repeat(np.arange(c), per)
    good = diagnostics.neural_collapse(h, y, c, weights=2 * m.T, logits=h @ m.T)
    assert float(good.nc4) == 0.0 and float(good.nc3) < 0.02  # noisy means: small, not 0
    perm = m[[1, 2, 3, 0]]
    bad = diagnostics.neural_collapse(h, y, c, weights=perm, logits=h @ perm.T)
    assert float(bad.nc4) == 1.0 and float(bad.nc3) > 0.5
    # NC1 grows with the within-class spread.
    wide = diagnostics.neural_collapse(
        np.repeat(m, per, axis=0) + 0.5 * (h - np.repeat(m, per, axis=0)) * 10, y, c
    )
    assert float(wide.nc1) > 10 * float(good.nc1)


def test_jittable():
    h = jax.random.normal(jax.random.key(0), (20, 4))
    y = jnp.arange(20) % 3
    f = jax.jit(lambda h, y: diagnostics.neural_collapse(h, y, 3, logits=h[:, :3]))
    a, b = f(h, y), diagnostics.neural_collapse(h, y, 3, logits=h[:, :3])
    np.testing.assert_allclose(np.asarray(a)[:4], np.asarray(b)[:4], rtol=1e-5)


def test_bad_inputs_name_the_argument():
    h, y = jnp.ones((6, 4)), jnp.arange(6) % 3
    with pytest.raises(ValueError, match="^features"):
        diagnostics.neural_collapse(jnp.ones(6), y, 3)
    with pytest.raises(ValueError, match="^labels"):
        diagnostics.neural_collapse(h, y[:-1], 3)
    with pytest.raises(ValueError, match="^labels"):
        diagnostics.neural_collapse(h, jnp.zeros(6, jnp.int32), 3)
    with pytest.raises(ValueError, match="^weights"):
        diagnostics.neural_collapse(h, y, 3, weights=jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="^logits"):
        diagnostics.neural_collapse(h, y, 3, logits=jnp.ones((6, 2)))
    with pytest.raises(ValueError, match="^num_classes"):
        diagnostics.neural_collapse(h, y, 1)
