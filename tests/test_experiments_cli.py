"""The experiments' shared command line: ``--set`` size overrides and one-line errors."""

import json
import types

import pytest

from experiments import common


def _run_module(tmp_path):
    """A fake experiment whose result records the sizes it ran with."""
    sizes = common.Sizes(
        quick={"n": 3, "lr": 0.1, "on": True, "names": ("a", "b")},
        full={"n": 9, "lr": 1.0, "on": False, "names": ("c",)},
    )
    seen = []

    def run(cfg):
        sz = sizes(cfg)
        seen.append(vars(sz))
        return common.Result(metrics={"n": sz.n}, checks=[], figures=[])

    run.__module__ = __name__
    return run, seen


def test_set_overrides_sizes_of_the_chosen_mode_with_their_types(tmp_path):
    run, seen = _run_module(tmp_path)
    out = tmp_path / "out"
    argv = ["--quick", "--out", str(out), "--quiet", "--set", "n=5", "--set", "names=x, y"]
    common.cli(run, "fake", argv + ["--set", "on=false", "--set", "lr=2e-3"])
    assert seen[-1] == {"n": 5, "lr": 2e-3, "on": False, "names": ("x", "y")}
    assert type(seen[-1]["n"]) is int and type(seen[-1]["lr"]) is float
    payload = json.loads((out / "metrics.json").read_text())
    assert payload["overrides"] == {"n": "5", "names": "x, y", "on": "false", "lr": "2e-3"}
    common.cli(run, "fake", ["--full", "--out", str(out), "--quiet", "--set", "n=4"])
    assert seen[-1] == {"n": 4, "lr": 1.0, "on": False, "names": ("c",)}
    common.cli(run, "fake", ["--full", "--out", str(out), "--quiet"])
    assert seen[-1] == {"n": 9, "lr": 1.0, "on": False, "names": ("c",)}


@pytest.mark.parametrize(
    "extra, starts",
    [
        (["--set", "m=3"], "--set: expected a size of this experiment"),
        (["--set", "n=2.5"], "--set: expected n as int, got"),
        (["--set", "n"], "--set: expected KEY=VALUE"),
        (["--set", "on=1"], "--set: expected on as true or false"),
        (["--seed", "x"], "argument --seed: invalid int value"),
    ],
)
def test_bad_command_lines_fail_with_one_line_and_status_2(tmp_path, capsys, extra, starts):
    run, seen = _run_module(tmp_path)
    with pytest.raises(SystemExit) as info:
        common.cli(run, "fake", ["--quick", "--out", str(tmp_path / "o"), *extra])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("python -m experiments.") and starts in err, err
    assert seen == []


def test_sizes_called_with_a_mode_flag_apply_no_overrides():
    sizes = common.Sizes(quick={"n": 1}, full={"n": 2})
    assert vars(sizes(True)) == {"n": 1} and vars(sizes(False)) == {"n": 2}
    cfg = types.SimpleNamespace(quick=True, overrides=(("n", "7"),))
    assert vars(sizes(cfg)) == {"n": 7}
