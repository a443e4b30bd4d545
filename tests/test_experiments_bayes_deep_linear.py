"""Bayesian deep linear experiment: each check passes as configured and fails on a wrong input."""

import types

import jax
import pytest

from experiments import bayes_deep_linear as bdl
from experiments.common import Config


def _small():
    sz = types.SimpleNamespace(**bdl.SIZES.quick)
    sz.tiny_draws, sz.tiny_chunk, sz.tiny_samples, sz.tiny_is = 400_000, 100_000, 10_000, 100_000
    sz.pair_samples, sz.sweep_samples = 10_000, 10_000
    return sz


@pytest.mark.slow  # ~25 s of CPU: 400k whole networks drawn from the prior
def test_exact_sampler_matches_weight_rejection_and_fails_with_wrong_widths(x64):
    sz = _small()
    key = jax.random.key(1)
    ok = bdl.checks_for(bdl.tiny_part(sz, key), [], None)
    assert len(ok) == 3 and all(c["pass"] for c in ok), ok
    assert all(c["kind"] == "consistency" for c in ok)
    bad = bdl.checks_for(bdl.tiny_part(sz, key, widths=(3,)), [], None)
    assert not all(c["pass"] for c in bad)


@pytest.mark.slow
def test_equal_lambda_architectures_agree_and_width_matching_fails(x64):
    sz = _small()
    sz.pairs = ((1.0, (200, 200), (800,) * 8),)
    rows = bdl.pairs_part(sz, jax.random.key(2))
    ok = bdl.checks_for(None, rows, None)
    assert all(c["pass"] for c in ok) and all(c["kind"] == "claim" for c in ok), ok
    # same depth, matched by nothing: lambda 2 vs 16 -> the law of |theta_perp| differs
    sz.pairs = ((1.0, (200, 200), (25, 25)),)
    bad = bdl.checks_for(None, bdl.pairs_part(sz, jax.random.key(2)), None)
    assert not bad[1]["pass"]  # the spread of log|theta_perp|^2 grows with lambda


@pytest.mark.slow
def test_deep_data_agnostic_prior_approaches_evidence_max_and_a_wider_net_fails(x64):
    sz = _small()
    sweep = bdl.sweep_part(sz, jax.random.key(3), sweep=((100,) * 4, (12,) * 8))
    ok = bdl.checks_for(None, [], sweep)
    assert all(c["pass"] for c in ok), ok
    # four times wider at the largest depth: lambda 33 instead of 133, the gap exceeds B(133)
    wrong = bdl.sweep_part(sz, jax.random.key(3), sweep=((48,) * 8,))
    last = dict(sweep["rows"][-1], gap=wrong["rows"][0]["gap"], gap_se=wrong["rows"][0]["gap_se"])
    bad = bdl.checks_for(None, [], dict(sweep, rows=[sweep["rows"][0], last]))
    assert not bad[1]["pass"]
    # the shallow model with the data-agnostic prior is a whole Delta away
    assert abs(sweep["shallow_gap"]) > 10 * last["bound"]


def test_plan_builds_the_full_configuration():
    p = bdl.plan(Config("bayes_deep_linear", quick=False, seed=0, out=None, quiet=True))
    assert len(p["lams"]["pairs"]) == len(p["sz"].pairs) and max(p["lams"]["sweep"]) > 100


@pytest.mark.slow
def test_main_quick_smoke(tmp_path):
    res = bdl.main(["--quick", "--quiet", "--out", str(tmp_path)])
    assert all(c["pass"] for c in res.checks), [c for c in res.checks if not c["pass"]]
