"""REPORT.md: reproduced claims and consistency checks are listed apart, with their sources."""

import json

import pytest

from experiments import report
from experiments.common import check


def _write(tmp_path, name, checks):
    (tmp_path / name).mkdir()
    payload = {"experiment": name, "checks": checks, "runtime_s": 1.0, "mode": "quick"}
    (tmp_path / name / "metrics.json").write_text(json.dumps(payload))


def test_claims_and_consistency_checks_are_separate_tables(tmp_path):
    checks = [
        check("slope", -1.0, -0.97, 0.06, note="Dyer & Gur-Ari 2019; 3 SE over 8 seeds"),
        check("baseline fails", "< 0.6", 0.5, None, passed=True, kind="consistency"),
        check("exponent", 0.5, 0.9, 0.1, note="eq. 3"),
    ]
    _write(tmp_path, "exp", checks)
    text = report.write_report(["exp"], tmp_path).read_text()
    claims, rest = text.split("**Reproduced claims", 1)[1].split("**Consistency checks", 1)
    assert "slope" in claims and "exponent" in claims and "baseline fails" not in claims
    assert "baseline fails" in rest and "slope" not in rest
    assert "Dyer & Gur-Ari 2019; 3 SE over 8 seeds" in claims
    # The summary table counts the two kinds apart: 1 of 2 claims pass, 1 of 1 control.
    assert "| [exp](#exp) | 1/2 | 1/1 |" in text


def test_metrics_without_kinds_count_as_claims(tmp_path):
    _write(tmp_path, "old", [{"name": "a", "theory": 1, "measured": 1, "pass": True}])
    text = report.write_report(["old"], tmp_path).read_text()
    assert "| [old](#old) | 1/1 | 0/0 |" in text


def test_undefined_statistics_fail_their_check():
    nan = float("nan")
    assert not check("x", 1.0, 1.0, nan)["pass"]  # an SE from too few samples
    assert not check("x", nan, 1.0, 0.1)["pass"] and not check("x", 1.0, nan, 0.1)["pass"]
    assert check("x", 1.0, 1.05, 0.1)["pass"]


def test_check_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="^kind: expected one of"):
        check("x", 1.0, 1.0, 0.1, kind="sanity")


def test_size_overrides_are_named_in_the_report(tmp_path):
    _write(tmp_path, "plain", [])
    (tmp_path / "part").mkdir()
    payload = {"experiment": "part", "checks": [], "mode": "full", "overrides": {"seeds": "3"}}
    (tmp_path / "part" / "metrics.json").write_text(json.dumps(payload))
    text = report.write_report(["plain", "part"], tmp_path).read_text()
    assert "Mode: full, seeds = 3, seed" in text and "Mode: quick, seed" in text
