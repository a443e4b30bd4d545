"""Tests of wideth.data: shapes, standardisation, splits, synthetic laws, offline loading."""

from __future__ import annotations

import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wideth import data


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_digits_shapes_split_and_standardisation(no_network):
    ds = data.digits(seed=0)
    assert ds.x_train.shape == (1348, 64) and ds.x_test.shape == (449, 64)
    assert ds.y_train.shape == (1348, 10) and ds.num_classes == 10
    assert ds.x_train.dtype == jnp.float32 and ds.y_train.dtype == jnp.float32
    np.testing.assert_allclose(np.sum(ds.y_train, axis=1), 1.0)
    # train statistics: zero mean, unit std except floored near-constant pixels
    x = np.asarray(ds.x_train, np.float64)
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-5)
    sd = x.std(0)
    assert np.all(sd <= 1 + 1e-5) and np.sum(np.abs(sd - 1) < 1e-4) >= 50
    assert np.abs(np.asarray(ds.x_test)).max() < 30  # no blown-up rare pixels
    # all 1797 images, each in exactly one split: class counts add up to load_digits'
    from sklearn.datasets import load_digits

    counts = np.bincount(load_digits().target, minlength=10)
    np.testing.assert_array_equal(ds.y_train.sum(0) + ds.y_test.sum(0), counts)


def test_digits_options_and_seeds():
    a = data.digits(seed=0, one_hot=False, n_train=100, test_fraction=0.5)
    assert a.x_train.shape == (100, 64) and a.y_train.dtype == jnp.int32
    assert a.y_train.shape == (100,) and a.x_test.shape == (898, 64)
    img = data.digits(image=True)
    assert img.x_train.shape == (1348, 8, 8, 1)
    np.testing.assert_allclose(float(jnp.mean(img.x_train)), 0.0, atol=1e-5)
    np.testing.assert_allclose(float(jnp.std(img.x_train)), 1.0, atol=1e-4)
    b, c = data.digits(seed=0), data.digits(seed=1)
    np.testing.assert_array_equal(b.x_train, data.digits(seed=0).x_train)
    assert not np.allclose(b.y_train, c.y_train)
    with pytest.raises(ValueError, match="test_fraction"):
        data.digits(test_fraction=1.5)
    with pytest.raises(ValueError, match="n_train"):
        data.digits(n_train=5000)


def test_mnist5k_offline_real_images(no_network):
    ds = data.mnist5k(seed=0)
    assert ds.x_train.shape == (3750, 784) and ds.x_test.shape == (1250, 784)
    np.testing.assert_array_equal(ds.y_train.sum(0) + ds.y_test.sum(0), np.full(10, 500))
    img = data.mnist5k(n_train=200, image=True, one_hot=False)
    assert img.x_train.shape == (200, 28, 28, 1) and img.y_train.shape == (200,)
    # real digits: the mean image of class 1 is darker than that of class 0 (fewer inked pixels)
    raw = data.mnist5k(image=True, standardize=None, one_hot=False)
    x, y = np.asarray(raw.x_train).reshape(-1, 784), np.asarray(raw.y_train)
    assert x.max() == 255 and x[y == 1].mean() < x[y == 0].mean()


def test_missing_optional_dependency_gives_install_hint():
    # a fresh process, where scikit-learn cannot be imported and nothing is cached yet
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "from wideth import data\n"
        "try:\n    data.digits()\nexcept ImportError as e:\n    print(e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wideth[data]" in proc.stdout, proc.stdout


def test_synthetic_regression_recovers_teacher_and_noise_level():
    key = jax.random.PRNGKey(0)
    x, y = data.synthetic_regression(key, 4000, 8, noise=0.0, out_dim=2)
    assert x.shape == (4000, 8) and y.shape == (4000, 2) and x.dtype == jnp.float32
    beta, res, *_ = np.linalg.lstsq(np.asarray(x, np.float64), np.asarray(y, np.float64))
    assert np.max(np.abs(np.asarray(x) @ beta - np.asarray(y))) < 1e-4  # exactly linear
    np.testing.assert_allclose(np.var(np.asarray(y), axis=0), 1.0, rtol=0.1)
    xn, yn = data.synthetic_regression(key, 4000, 8, noise=0.3, out_dim=2)
    np.testing.assert_array_equal(x, xn)  # same key, same inputs
    resid = np.asarray(yn) - np.asarray(x) @ beta
    np.testing.assert_allclose(np.std(resid), 0.3, rtol=0.05)
    _, ys = data.synthetic_regression(key, 100, 8, target="sin")
    assert float(jnp.max(jnp.abs(ys))) <= 1.0
    with pytest.raises(ValueError, match="noise"):
        data.synthetic_regression(key, 10, 3, noise=-1.0)


def test_synthetic_classification_cluster_geometry():
    x, y = data.synthetic_classification(jax.random.PRNGKey(1), 6000, 10, 3, separation=3.0)
    assert x.shape == (6000, 10) and y.shape == (6000, 3)
    labels = np.argmax(np.asarray(y), axis=1)
    means = np.stack([np.asarray(x)[labels == c].mean(0) for c in range(3)])
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 3.0, rtol=0.05)
    resid = np.asarray(x) - means[labels]
    np.testing.assert_allclose(resid.std(0), 1.0, rtol=0.05)
    _, yi = data.synthetic_classification(jax.random.PRNGKey(1), 10, 4, 3, one_hot=False)
    assert yi.shape == (10,) and yi.dtype == jnp.int32
    with pytest.raises(ValueError, match="num_classes"):
        data.synthetic_classification(jax.random.PRNGKey(1), 10, 4, 1)


def test_subset_draws_distinct_rows_deterministically():
    ds = data.digits(seed=0)
    s = data.subset(ds, 50, jax.random.PRNGKey(0), n_test=20)
    assert s.x_train.shape == (50, 64) and s.x_test.shape == (20, 64) and s.num_classes == 10
    full = np.asarray(ds.x_train)
    idx = [int(np.argmin(np.sum((full - r) ** 2, axis=1))) for r in np.asarray(s.x_train)]
    np.testing.assert_array_equal(full[idx], s.x_train)
    np.testing.assert_array_equal(np.asarray(ds.y_train)[idx], s.y_train)
    assert len(set(idx)) == 50
    np.testing.assert_array_equal(s.x_train, data.subset(ds, 50, jax.random.PRNGKey(0)).x_train)
    with pytest.raises(ValueError, match="^n: expected an integer in"):
        data.subset(ds, 0, jax.random.PRNGKey(0))
