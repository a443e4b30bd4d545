"""Scaling-laws experiment: published values as printed, checks that fail on wrong inputs."""

import dataclasses

import jax
import numpy as np
import pytest

from experiments import scaling_laws as sl
from experiments.common import Config
from wideth.scaling import BESIROGLU_2024, HOFFMANN_2022, PublishedFit, datasets, fit_chinchilla


def test_published_values_are_stored_as_printed():
    # Besiroglu et al. 2024, Table 1 (estimate, bootstrap SE)
    table = {
        "E": (1.8172, 0.03),
        "A": (482.01, 124.58),
        "B": (2085.43, 1293.23),
        "alpha": (0.3478, 0.02),
        "beta": (0.3658, 0.02),
    }
    for k, (v, se) in table.items():
        assert BESIROGLU_2024[k] == v and BESIROGLU_2024.stderr[k] == se
    assert dict(HOFFMANN_2022) == {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    assert HOFFMANN_2022.stderr is None and BESIROGLU_2024.n_points == 240
    assert "Table 1" in BESIROGLU_2024.source
    assert BESIROGLU_2024.rounding("beta") == pytest.approx(5e-5)
    assert BESIROGLU_2024.rounding("A") == pytest.approx(5e-3)
    assert BESIROGLU_2024.stderr_rounding("alpha") == pytest.approx(5e-3)
    assert isinstance(BESIROGLU_2024, PublishedFit)
    with pytest.raises(dataclasses.FrozenInstanceError):
        BESIROGLU_2024.beta = 0.37
    with pytest.raises(KeyError):
        BESIROGLU_2024["gamma"]


@pytest.fixture(scope="module")
def fits():
    fit240 = fit_chinchilla(
        *datasets.chinchilla(exclude_outliers=True),
        n_bootstrap=300,
        key=jax.random.key(0),
        quiet=True,
    )
    fit245 = fit_chinchilla(*datasets.chinchilla(), n_bootstrap=0, quiet=True)
    return fit240, fit245


@pytest.mark.slow
def test_chinchilla_checks_pass_on_the_240_points_and_fail_on_wrong_inputs(fits):
    fit240, fit245 = fits
    se, se_se = fit240.stderr, sl.stderr_of_stderr(fit240.bootstrap)
    good = sl.chinchilla_checks(fit240, se, se_se)
    assert [c["kind"] for c in good] == ["claim"] * 11
    params, ses, beta = good[:5], good[5:10], good[10]
    assert all(c["pass"] for c in ses), ses
    assert all(c["pass"] for c in params), params
    assert beta["pass"] and beta["measured"] > 3
    # The same estimator on all 245 points is several SE away in E, B and beta: it fails.
    bad = {c["name"].split("_")[2]: c["pass"] for c in sl.chinchilla_checks(fit245, se, se_se)[:5]}
    assert not bad["beta"] and not bad["B"] and not bad["E"], bad
    # Standard errors twice as large fail the SE comparison for every parameter,
    # and a rejected beta equal to ours is not rejected.
    doubled = {k: 2 * v for k, v in se.items()}
    assert not any(c["pass"] for c in sl.chinchilla_checks(fit240, doubled, se_se)[5:10])
    same = PublishedFit(**{**dataclasses.asdict(HOFFMANN_2022), "beta": fit240.params["beta"]})
    assert not sl.chinchilla_checks(fit240, se, se_se, rejected=same)[10]["pass"]


def test_stderr_of_stderr_matches_the_gaussian_formula():
    rng = np.random.default_rng(0)
    samples = rng.standard_normal((4000, 5))
    se = sl.stderr_of_stderr(samples)
    # sd of a Gaussian sample of size m has SE ~ 1/sqrt(2(m-1)); here m = 4000
    for v in se.values():
        assert 0.4 / np.sqrt(2 * 3999) < v < 2.5 / np.sqrt(2 * 3999)


def test_sweep_check_passes_within_its_error_and_fails_outside():
    ex = {"z": np.array([0.5, -1.2, 2.0])}
    assert sl.sweep_checks(ex, 4, 1000)[0]["pass"]
    assert not sl.sweep_checks({"z": np.array([0.5, 3.5])}, 4, 1000)[0]["pass"]


def test_masked_xent_is_the_mean_over_the_unmasked_rows():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((6, 3))
    y = np.eye(3)[rng.integers(0, 3, 6)]
    m = np.array([1, 0, 1, 1, 0, 1.0])
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    want = -np.mean(np.sum(y * logp, axis=1)[m == 1])
    assert float(sl.masked_xent(logits, m[:, None] * y)) == pytest.approx(want, rel=1e-6)


def test_sweep_extrapolation_bootstrap_predictions():
    N, D, L = datasets.chinchilla(exclude_outliers=True)
    f = fit_chinchilla(N, D, L, n_bootstrap=20, key=jax.random.key(1), quiet=True)
    boot = sl.bootstrap_predictions(f, N[:3], D[:3])
    assert boot.shape == (20, 3)
    b0 = np.asarray(f.bootstrap)[0]
    want = b0[0] + b0[1] * N[:3] ** -b0[3] + b0[2] * D[:3] ** -b0[4]
    np.testing.assert_allclose(boot[0], want, rtol=1e-12)


def test_plan_builds_the_full_configuration():
    p = sl.plan(Config("scaling_laws", quick=False, seed=0, out=None, quiet=True))
    assert p["sz"].n_bootstrap == 4000 and len(p["sz"].widths) == 7 and len(p["sz"].seeds) == 8
    assert p["points"]["240"][0].shape == (240,) and p["points"]["245"][0].shape == (245,)


@pytest.mark.slow
def test_main_quick_smoke(tmp_path):
    res = sl.main(["--quick", "--quiet", "--out", str(tmp_path)])
    assert (tmp_path / "metrics.json").exists()
    assert all(c["pass"] for c in res.checks), [c for c in res.checks if not c["pass"]]
    assert all("note" in c for c in res.checks)
