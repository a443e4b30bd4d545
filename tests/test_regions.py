"""Exact linear-region counts of ReLU networks against known combinatorics and dense sampling."""

import itertools
import math

import numpy as np
import pytest
from flax import nnx

from wideth import models, regions


def _sawtooth(depth):
    first = (np.array([[1.0, 1.0]]), np.array([0.0, -0.5]))
    inner = (np.array([[2.0, 2.0], [-4.0, -4.0]]), np.array([0.0, -0.5]))
    return [first] + [inner] * (depth - 1)


@pytest.mark.parametrize("depth", [1, 2, 5, 8])
def test_telgarsky_sawtooth_has_two_to_the_depth_pieces(depth):
    res = regions.line_regions(_sawtooth(depth), [0.0], [1.0], (0.0, 1.0))
    assert res.num_regions == 2**depth
    # The breakpoints are the kinks of the iterated tent map: k / 2^depth.
    np.testing.assert_allclose(res.breakpoints, np.arange(1, 2**depth) / 2**depth, atol=1e-12)


def test_one_hidden_layer_in_general_position_has_n_plus_one_pieces():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(3, 25)), rng.normal(size=25)
    x0, u = rng.normal(size=3), rng.normal(size=3)
    roots = -(x0 @ w + b) / (u @ w)
    t = (roots.min() - 1, roots.max() + 1)  # a segment that crosses every hyperplane
    assert regions.line_regions([(w, b)], x0, u, t).num_regions == 26
    # A shorter segment: exactly the hyperplanes it crosses.
    t = (-0.3, 0.4)
    assert regions.line_regions([(w, b)], x0, u, t).num_regions == 1 + int(
        np.sum((roots > -0.3) & (roots < 0.4))
    )


def test_line_regions_agree_with_dense_sampling_of_activation_patterns():
    net = models.MLP(4, 12, 3, rngs=nnx.Rngs(1), b_std=0.5)
    layers = regions.affine_layers(net)
    rng = np.random.default_rng(2)
    x0, u = rng.normal(size=4), rng.normal(size=4)
    res = regions.line_regions(net, x0, u, (-2.0, 2.0))
    ts = np.linspace(-2, 2, 400_001)
    h, pattern = x0 + ts[:, None] * u, []
    for w, b in layers:
        z = h @ w + b
        pattern.append(z > 0)
        h = np.maximum(z, 0)
    pattern = np.concatenate(pattern, axis=1)
    changes = np.flatnonzero(np.any(pattern[1:] != pattern[:-1], axis=1))
    assert res.num_regions == changes.size + 1
    # Every sampled change lies within one grid step of an exact breakpoint.
    step = ts[1] - ts[0]
    gaps = np.min(np.abs(ts[changes][:, None] - res.breakpoints[None]), axis=1)
    assert np.all(gaps <= step)
    assert sum(res.layer_breakpoints) == changes.size


def test_zaslavsky_count_for_lines_in_general_position():
    rng = np.random.default_rng(3)
    n1 = 9
    w, b = rng.normal(size=(2, n1)), rng.normal(size=n1)
    # A box holding every intersection point, so every region of the arrangement meets it.
    pts = []
    for i, j in itertools.combinations(range(n1), 2):
        pts.append(np.linalg.solve(np.stack([w[:, i], w[:, j]]), -np.array([b[i], b[j]])))
    r = np.abs(np.array(pts)).max() + 1.0
    count = regions.slice_regions([(w, b)], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], (-r, r, -r, r))
    assert count == sum(math.comb(n1, i) for i in range(3))  # 1 + 9 + 36 = 46
    # A small box misses regions: the count must drop (the check can fail).
    small = regions.slice_regions(
        [(w, b)], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], (-0.1, 0.1, -0.1, 0.1)
    )
    assert small < 46


def test_slice_regions_match_dense_sampling_for_a_deep_net():
    net = models.MLP(2, 6, 3, rngs=nnx.Rngs(4), b_std=0.3)
    layers = regions.affine_layers(net)
    count = regions.slice_regions(net, [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], (-1, 1, -1, 1))
    g = np.linspace(-1, 1, 1201)
    s, t = np.meshgrid(g, g)
    h = np.stack([s.ravel(), t.ravel()], axis=1)
    codes = []
    for w, b in layers:
        z = h @ w + b
        codes.append(z > 0)
        h = np.maximum(z, 0)
    codes = np.concatenate(codes, axis=1)
    distinct = len({row.tobytes() for row in np.packbits(codes, axis=1)})
    # Sampling can only miss tiny regions; a pattern may also repeat in two
    # disconnected regions, so compare within a small margin and from below.
    assert distinct <= count <= distinct + 3


def test_bad_inputs_are_named():
    w, b = np.ones((2, 3)), np.zeros(3)
    with pytest.raises(ValueError, match="^x0"):
        regions.line_regions([(w, b)], [0.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="^direction"):
        regions.line_regions([(w, b)], [0.0, 0.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="^t_range"):
        regions.line_regions([(w, b)], [0.0, 0.0], [1.0, 0.0], (1.0, -1.0))
    with pytest.raises(ValueError, match="^model"):
        regions.line_regions(
            models.MLP(2, 4, 1, activation="tanh", rngs=nnx.Rngs(0)), [0.0, 0.0], [1.0, 0.0]
        )
    with pytest.raises(ValueError, match="^model: layer 1"):
        regions.line_regions([(w, b), (np.ones((4, 2)), np.zeros(2))], [0.0, 0.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="^box"):
        regions.slice_regions([(w, b)], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], (1, 0, 0, 1))


def test_per_layer_relu_tuple_is_a_relu_network():
    """activation=("relu",)*D is the network of "relu" (same breakpoints); a tanh entry is not."""
    rng = np.random.default_rng(3)
    x0, u = rng.normal(size=4), rng.normal(size=4)
    plain = models.MLP(4, 12, 3, rngs=nnx.Rngs(1), b_std=0.5)
    tupled = models.MLP(4, 12, 3, activation=("relu",) * 3, rngs=nnx.Rngs(1), b_std=0.5)
    ref = regions.line_regions(plain, x0, u, (-2.0, 2.0))
    res = regions.line_regions(tupled, x0, u, (-2.0, 2.0))
    assert res.num_regions == ref.num_regions > 3
    np.testing.assert_allclose(res.breakpoints, ref.breakpoints, rtol=1e-12)
    mixed = models.MLP(4, 12, 3, activation=("relu", "tanh", "relu"), rngs=nnx.Rngs(1))
    with pytest.raises(ValueError, match="^model: expected a ReLU network"):
        regions.line_regions(mixed, x0, u, (-2.0, 2.0))
