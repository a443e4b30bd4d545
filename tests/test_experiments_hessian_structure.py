"""hessian_structure experiment: checks fail on wrong inputs, parts on real small runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import hessian_structure as hs
from experiments.common import Config

C = hs.NUM_CLASSES


def _final(count=10, between=3, err=1e-7, lanczos=0.05, gram=0.05):
    return dict(
        count=count,
        count_between=between,
        identity_error=err,
        class_gram=np.array([gram]),
        top_class_lanczos=lanczos,
    )


def _sub(mean=0.2, se=0.02, sim=0.8, d=4810):
    return dict(overlap_mean=mean, overlap_se=se, random_overlap=C / d, similarity_early_final=sim)


def _col(start=0.5, end=0.3, zero=True):
    return dict(
        zero_error=zero, start={f: start for f in hs.NC_FIELDS}, end={f: end for f in hs.NC_FIELDS}
    )


def _by_name(checks, part):
    return [c for c in checks if part in c["name"]]


def test_checks_pass_on_the_claimed_values_and_fail_on_violations():
    ok = hs.checks_for(_final(), _sub(), _col())
    assert all(c["pass"] for c in ok), [c for c in ok if not c["pass"]]
    assert {c["kind"] for c in ok} == {"claim", "consistency"}
    # Measured without weight decay at zero loss: 2 outliers, not C.
    assert not _by_name(hs.checks_for(_final(count=2), _sub(), _col()), "Papyan")[0]["pass"]
    assert _by_name(hs.checks_for(_final(count=9), _sub(), _col()), "Papyan")[0]["pass"]
    # Weyl sandwich broken (a count below the G_B count, or above C^2).
    assert not _by_name(hs.checks_for(_final(count=2, between=3), _sub(), _col()), "Weyl")[0][
        "pass"
    ]
    assert not _by_name(hs.checks_for(_final(count=101), _sub(), _col()), "Weyl")[0]["pass"]
    # A missing part: the identity error is O(1).
    assert not _by_name(hs.checks_for(_final(err=0.3), _sub(), _col()), "G v")[0]["pass"]
    assert not _by_name(hs.checks_for(_final(lanczos=0.04), _sub(), _col()), "Gram")[0]["pass"]
    # Full-batch GD: the gradient share is the random C/d.
    gd = hs.checks_for(_final(), _sub(mean=0.002, se=0.001), _col())
    assert not _by_name(gd, "gradient share")[0]["pass"]
    assert not _by_name(hs.checks_for(_final(), _sub(sim=0.1), _col()), "1/10")[0]["pass"]
    grow = hs.checks_for(_final(), _sub(), _col(start=0.3, end=0.5))
    assert not any(c["pass"] for c in _by_name(grow, "PHD"))
    never = hs.checks_for(_final(), _sub(), _col(zero=False))
    assert not any(c["pass"] for c in _by_name(never, "PHD"))


def test_subspace_part_on_random_directions_gives_the_random_share():
    d, k, t = 400, C, 40
    rng = np.random.default_rng(0)
    bases = np.stack([np.linalg.qr(rng.normal(size=(d, k)))[0].T for _ in range(t)])
    overlap = np.array(
        [
            float(jnp.sum((bases[i] @ g) ** 2) / np.sum(g**2))
            for i, g in enumerate(rng.normal(size=(t, d)))
        ]
    )
    sub = hs.subspace_part(overlap, bases, d)
    assert abs(sub["overlap_mean"] - k / d) < 4 * sub["overlap_se"] + 1e-3
    assert sub["similarity_early_final"] < 5 * k / d
    checks = hs.checks_for(_final(), sub, _col())
    assert not _by_name(checks, "gradient share")[0]["pass"]
    assert not _by_name(checks, "1/10")[0]["pass"]


@pytest.mark.slow
def test_structure_at_on_a_small_model_and_weyl():
    sz = hs.SIZES(True)
    sz.width, sz.depth, sz.top_k, sz.top_steps = 8, 1, 12, 30
    apply_fn, _, params = hs.model(sz)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(60, 64)), jnp.float32)
    y = jnp.arange(60) % C
    s = hs.structure_at(sz, apply_fn, params, x, y, jax.random.key(0))
    assert s["identity_error"] < 1e-4
    assert s["count_between"] <= s["count"] <= C * C
    assert s["top_class_lanczos"] == pytest.approx(s["class_gram"][0], rel=1e-3)
    assert s["dimension"] == 64 * 8 + 8 + 8 * C + C
    # The top eigenvector of G_within is a unit vector; its share in the class span is in [0, 1].
    share = hs.within_in_class_span(s, 30, jax.random.key(1))
    assert 0.0 <= share <= 1.0 + 1e-6


def test_smoothed_xent_is_the_cross_entropy_against_smoothed_targets():
    logits = jax.random.normal(jax.random.key(0), (7, C))
    y = jnp.arange(7) % C
    logp = np.asarray(jax.nn.log_softmax(logits), np.float64)
    plain = -np.mean(logp[np.arange(7), np.asarray(y)])
    assert float(hs.smoothed_xent(logits, y)) == pytest.approx(plain, rel=1e-6)
    eps = 0.1
    ref = (1 - eps) * plain + eps * np.mean(-logp.mean(axis=1))
    assert float(hs.smoothed_xent(logits, y, eps)) == pytest.approx(ref, rel=1e-6)
    assert abs(float(hs.smoothed_xent(logits, y, eps)) - plain) > 1e-3


def test_span_share_against_known_subspaces():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(3, 20))
    inside = rows.T @ rng.normal(size=3)
    q, _ = np.linalg.qr(rows.T)
    outside = rng.normal(size=20)
    outside -= q @ (q.T @ outside)
    assert hs.span_share(inside, rows) == pytest.approx(1.0, abs=1e-12)
    assert hs.span_share(outside, rows) == pytest.approx(0.0, abs=1e-12)
    assert hs.span_share(inside + outside, rows) == pytest.approx(
        np.sum(inside**2) / np.sum((inside + outside) ** 2), rel=1e-12
    )
    # A repeated row adds no direction (rank 3, not 4).
    assert hs.span_share(outside, np.vstack([rows, rows[:1]])) == pytest.approx(0.0, abs=1e-12)


def test_softmax_weight_spread_is_zero_for_equal_logits_and_grows_with_spread():
    y = jnp.arange(40) % C
    same = jnp.tile(jnp.arange(C, dtype=jnp.float32), (40, 1))
    assert hs.softmax_weight_spread(lambda p, x: x, None, same, y) == pytest.approx(0.0, abs=1e-12)
    # Margins spread by a factor 1 or 4 in two halves of each class: sqrt(p) takes two values.
    scale = jnp.where(jnp.arange(40) < 20, 1.0, 4.0)[:, None]
    logits = 3.0 * jax.nn.one_hot(y, C) * scale
    spread = hs.softmax_weight_spread(lambda p, x: x, None, logits, y)
    p = np.asarray(jax.nn.softmax(logits), np.float64)
    a, b = np.sqrt(p[0, 1]), np.sqrt(p[20, 1])
    assert spread == pytest.approx(((a - b) / 2) ** 2 / ((a + b) / 2) ** 2, rel=1e-5)


def test_collapse_part_starts_at_the_first_low_error_probe():
    acc = np.array([0.1, 0.9, 0.996, 0.99, 1.0])
    nc = {f: np.array([5.0, 4.0, 3.0, 2.0, 1.0]) for f in hs.NC_FIELDS}
    col = hs.collapse_part(acc, nc)
    assert col["start_index"] == 2 and col["zero_error"]
    assert col["start"]["nc1"] == 3.0 and col["end"]["nc1"] == 1.0
    assert not hs.collapse_part(acc[:2], {f: v[:2] for f, v in nc.items()})["zero_error"]


def test_plan_builds_the_full_configuration():
    p = hs.plan(Config("hessian_structure", quick=False, seed=0, out=None, quiet=True))
    assert p["sz"].steps >= 5000 and p["dimension"] > 50_000 and p["sz"].top_k > C * C


@pytest.mark.slow
def test_main_quick_smoke(tmp_path):
    res = hs.main(["--quick", "--quiet", "--out", str(tmp_path)])
    cons = [c for c in res.checks if c["kind"] == "consistency"]
    assert all(c["pass"] for c in cons), cons
    assert (tmp_path / "hessian_structure.png").exists()
