"""neural-tangents' ``trace_axes``, ``diagonal_axes``, ``vmap_axes`` and apply kwargs.

Reference: neural-tangents' own ``empirical_ntk_fn`` / ``empirical_nngp_fn``
(implementation 1, the whole-Jacobian contraction, and NT's axis bookkeeping),
float64: every setting agrees to 1e-10 (measured <= 2e-15) for every method.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wideth.compat import neural_tangents
from wideth.kernels import empirical

TOL = dict(rtol=1e-10, atol=1e-10)


def _stax():
    return neural_tangents().stax


def _nt_ntk(apply_fn, **kw):
    return neural_tangents().empirical_ntk_fn(apply_fn, implementation=1, **kw)


def _cnn():
    """Conv -> relu -> conv without pooling: outputs (n, H, W, C)."""
    stax = _stax()
    init_fn, apply_fn, _ = stax.serial(
        stax.Conv(4, (3, 3), padding="SAME", b_std=0.1),
        stax.Relu(),
        stax.Conv(3, (2, 2), padding="SAME"),
    )
    x1 = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 4, 2))
    x2 = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 4, 2))
    return apply_fn, init_fn(jax.random.PRNGKey(2), x1.shape)[1], x1, x2


def _mlp(out_dim=3):
    stax = _stax()
    init_fn, apply_fn, _ = stax.serial(
        stax.Dense(8, W_std=1.5, b_std=0.2), stax.Erf(), stax.Dense(out_dim, b_std=0.1)
    )
    x1 = jax.random.normal(jax.random.PRNGKey(3), (4, 5))
    x2 = jax.random.normal(jax.random.PRNGKey(4), (3, 5))
    return apply_fn, init_fn(jax.random.PRNGKey(5), x1.shape)[1], x1, x2


# (trace_axes, diagonal_axes) on (n, H, W, C) outputs; batch-axis entries need x2 = None.
# The default run checks two settings with the structured method (the axis
# bookkeeping is the same for every method); the slow set sweeps all of them.
_SLOW = pytest.mark.slow
CNN_AXES = [
    pytest.param((-1,), (), marks=_SLOW),
    pytest.param((), (), marks=_SLOW),
    pytest.param((1, 2), (), marks=_SLOW),
    pytest.param((-1,), (1,), marks=_SLOW),
    pytest.param((3,), (1, 2), marks=_SLOW),
    pytest.param((1, 2, 3), (), marks=_SLOW),
    pytest.param((0,), (), marks=_SLOW),
    ((), (0,)),
]


@pytest.mark.parametrize("trace_axes,diagonal_axes", CNN_AXES)
@pytest.mark.parametrize(
    "method",
    [pytest.param("jvp", marks=_SLOW), pytest.param("jacobian", marks=_SLOW), "structured"],
)
def test_ntk_axes_match_neural_tangents_on_cnn(x64, method, trace_axes, diagonal_axes):
    apply_fn, params, x1, x2 = _cnn()
    batch = 0 in trace_axes + diagonal_axes
    kw = dict(trace_axes=trace_axes, diagonal_axes=diagonal_axes)
    for second in [None] if batch else [None, x2]:
        want = _nt_ntk(apply_fn, vmap_axes=0, **kw)(x1, second, params)
        got = empirical.ntk(apply_fn, params, x1, second, method=method, **kw)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("trace_axes,diagonal_axes", CNN_AXES)
def test_nngp_axes_match_neural_tangents_on_cnn(x64, trace_axes, diagonal_axes):
    apply_fn, params, x1, x2 = _cnn()
    kw = dict(trace_axes=trace_axes, diagonal_axes=diagonal_axes)
    second = None if 0 in trace_axes + diagonal_axes else x2
    want = neural_tangents().empirical_nngp_fn(apply_fn, **kw)(x1, second, params)
    got = empirical.nngp(apply_fn, params, x1, second, **kw)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize(
    "trace_axes", [(), pytest.param((-1,), marks=_SLOW), pytest.param((0, 1), marks=_SLOW)]
)
def test_mlp_axes_and_the_default_route(x64, trace_axes):
    apply_fn, params, x1, x2 = _mlp()
    want = _nt_ntk(apply_fn, trace_axes=trace_axes, vmap_axes=0)(x1, None, params)
    got = empirical.ntk(apply_fn, params, x1, trace_axes=trace_axes)
    np.testing.assert_allclose(got, want, **TOL)
    # default (trace over every output axis but the batch axis) is unchanged
    default = empirical.ntk(apply_fn, params, x1, x2)
    np.testing.assert_allclose(default, empirical.ntk(apply_fn, params, x1, x2, trace_axes=(1,)))
    full = empirical.ntk(apply_fn, params, x1, x2, full=True)
    np.testing.assert_allclose(full, empirical.ntk(apply_fn, params, x1, x2, trace_axes=()), **TOL)


@pytest.mark.slow
def test_vmap_axes_batch_on_another_axis(x64):
    """Inputs (d, n) and outputs (k, n): NT's vmap_axes=(1, 1, {}) with trace_axes=(0,)."""
    apply_fn, params, x1, x2 = _mlp()
    f = lambda p, x: apply_fn(p, x.T).T
    a, b = x1.T, x2.T
    for method in ["jvp", "structured"]:
        got = empirical.ntk(f, params, a, b, method=method, vmap_axes=(1, 1, {}))
        want = _nt_ntk(f, trace_axes=(0,), vmap_axes=(1, 1, {}))(a, b, params)
        np.testing.assert_allclose(got, want, **TOL)
        np.testing.assert_allclose(got, empirical.ntk(apply_fn, params, x1, x2), **TOL)
    got = empirical.ntk(f, params, a, b, trace_axes=(), vmap_axes=1)  # (k, k, n1, n2)
    want = _nt_ntk(f, trace_axes=(), vmap_axes=1)(a, b, params)
    assert got.shape == want.shape == (3, 3, 4, 3)
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.slow
def test_vmap_axes_none_sees_interacting_rows(x64):
    """Centred outputs couple the rows: with vmap_axes=None the kernel is
    NT's (whole-batch jvp); the row-wise default gives a different kernel."""
    apply_fn, params, x1, _ = _mlp()

    def f(p, x):
        h = apply_fn(p, x)
        return h - 0.5 * h.mean(0)

    want = _nt_ntk(f, vmap_axes=None)(x1, None, params)
    got = empirical.ntk(f, params, x1, vmap_axes=None)
    np.testing.assert_allclose(got, want, **TOL)
    row_wise = empirical.ntk(f, params, x1, method="jacobian")
    assert float(jnp.max(jnp.abs(row_wise - want))) > 1e-2


@pytest.mark.parametrize("with_x2", [True, pytest.param(False, marks=_SLOW)])
def test_dropout_rng_is_split_like_neural_tangents(x64, with_x2):
    stax = _stax()
    init_fn, apply_fn, _ = stax.serial(
        stax.Dense(16), stax.Relu(), stax.Dropout(0.7, mode="train"), stax.Dense(2)
    )
    x1 = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
    x2 = jax.random.normal(jax.random.PRNGKey(1), (3, 3))
    _, params = init_fn(jax.random.PRNGKey(2), x1.shape)
    rng = jax.random.PRNGKey(7)
    nt_fn = _nt_ntk(apply_fn, vmap_axes=None)
    second = x2 if with_x2 else None
    want = nt_fn(x1, second, params, rng=rng)
    got = empirical.ntk(apply_fn, params, x1, second, vmap_axes=None, apply_kwargs={"rng": rng})
    np.testing.assert_allclose(got, want, **TOL)
    other = empirical.ntk(
        apply_fn, params, x1, second, vmap_axes=None, apply_kwargs={"rng": jax.random.PRNGKey(8)}
    )
    assert float(jnp.max(jnp.abs(other - want))) > 1e-3  # the key reaches the network
    want = neural_tangents().empirical_nngp_fn(apply_fn)(x1, second, params, rng=rng)
    got = empirical.nngp(apply_fn, params, x1, second, apply_kwargs={"rng": rng})
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.slow
def test_pair_static_and_batched_kwargs(x64):
    apply_fn, params, x1, x2 = _mlp()

    def f(p, x, scale, mask=None, square=False):
        out = scale * apply_fn(p, x)
        out = out**2 if square else out
        return out if mask is None else out * mask

    s1, s2 = jnp.asarray(0.5), jnp.asarray(2.0)
    for method in ["jacobian", "structured"]:
        kw = {"scale": (s1, s2), "square": True}  # square: bound statically
        got = empirical.ntk(f, params, x1, x2, method=method, apply_kwargs=kw)
        nt_f = lambda p, x, scale: f(p, x, scale, square=True)
        want = _nt_ntk(nt_f, vmap_axes=0)(x1, x2, params, scale=(s1, s2))
        np.testing.assert_allclose(got, want, **TOL)
    mask = jax.random.bernoulli(jax.random.PRNGKey(9), 0.5, (4, 3)).astype(x1.dtype)
    kw = {"scale": s1, "mask": mask}
    got = empirical.ntk(f, params, x1, vmap_axes=(0, 0, {"mask": 0}), apply_kwargs=kw)
    want = _nt_ntk(f, vmap_axes=(0, 0, {"mask": 0}))(x1, None, params, **kw)
    np.testing.assert_allclose(got, want, **TOL)


def test_bad_axes_and_kwargs_raise_by_name():
    apply_fn, params, x1, x2 = _mlp()
    cases = [
        (dict(trace_axes=(2,)), ValueError, r"^trace_axes: expected axes of the 2-d output"),
        (dict(trace_axes=(1, -1)), ValueError, r"^trace_axes: expected distinct axes"),
        (dict(trace_axes="1"), TypeError, r"^trace_axes: expected an integer or a sequence"),
        (dict(trace_axes=(1,), diagonal_axes=(1,)), ValueError, r"^diagonal_axes: axes \[1\]"),
        (dict(full=True, trace_axes=()), ValueError, r"^full: not combined with trace_axes"),
        (dict(diagonal_axes=(0,), x2=x2), ValueError, r"^diagonal_axes: axis 0 has size 4"),
        (dict(vmap_axes="0"), TypeError, r"^vmap_axes: expected None, an integer axis"),
        (dict(vmap_axes=(0, 0, [0])), TypeError, r"^vmap_axes: kwargs_axes must map"),
        (dict(vmap_axes=2), ValueError, r"^vmap_axes: input axis 2 is outside x1"),
        (dict(vmap_axes=(0, 0, {"mask": 0})), ValueError, r"^vmap_axes: kwargs_axes names"),
        (dict(vmap_axes=None, method="jacobian"), ValueError, r"^method: 'jacobian' evaluates"),
        (dict(vmap_axes=None, batch_size=2), ValueError, r"^batch_size: must be None"),
        (dict(apply_kwargs=[1]), TypeError, r"^apply_kwargs: expected a dict"),
        (dict(apply_kwargs={"a": [1]}), TypeError, r"^apply_kwargs: 'a' must be an array"),
    ]
    for kw, err, match in cases:
        kw = dict(kw)
        second = kw.pop("x2", None)
        with pytest.raises(err, match=match):
            empirical.ntk(apply_fn, params, x1, second, **kw)
    with pytest.raises(ValueError, match=r"^trace_axes: expected axes of the 2-d output"):
        empirical.nngp(apply_fn, params, x1, trace_axes=(3,))


def test_module_features_route_takes_the_axes():
    """nngp of a module with features(x): the axes refer to the last features (n, 8)."""
    from flax import nnx

    from wideth import models

    net = models.MLP(3, (16, 8), 2, 2, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
    default = empirical.nngp(net, None, x)
    np.testing.assert_allclose(empirical.nngp(net, None, x, trace_axes=(1,)), default, rtol=1e-6)
    feats = net.features(x)[-1]
    every = empirical.nngp(net, None, x, trace_axes=())
    np.testing.assert_allclose(every, jnp.einsum("ia,jb->ijab", feats, feats), rtol=1e-6)
    np.testing.assert_allclose(
        empirical.ntk(net, None, x, trace_axes=(-1,)), empirical.ntk(net, None, x), rtol=1e-6
    )
