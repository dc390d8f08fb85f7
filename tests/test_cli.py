"""The ``spep`` command: every sub-command's parser is there with all its options, and helps."""

from __future__ import annotations

import argparse

import pytest

from agents.cli import build_parser, main, parse_literals, parse_names, parse_overrides

#: The options of each sub-command (the public command line: removing one breaks users' scripts).
OPTIONS = {
    "evaluate": [
        "--agent", "--device", "--draws", "--engine", "--jobs", "--no-progress", "--out", "--param",
        "--runs", "--seed", "--set", "--slots", "--topology",
    ],
    "quality": [
        "--out", "--predictors", "--runs", "--seed", "--set", "--slots", "--top-k", "--topology",
    ],
    "reproduce": [
        "--agents", "--backend", "--device", "--draws", "--engine", "--jobs", "--no-figures",
        "--no-progress", "--no-sensitivity", "--out", "--ray-address", "--runs", "--seed", "--sensitivity", "--set",
        "--slots", "--topologies",
    ],
    "regimes": [
        "--agents", "--backend", "--device", "--draws", "--engine", "--jobs", "--no-figures",
        "--no-progress", "--only", "--out", "--ray-address", "--runs", "--seed", "--set", "--slots", "--topologies",
    ],
    "calibrate": [
        "--backend", "--batch", "--check-runs", "--fit-runs", "--jobs", "--no-progress", "--out",
        "--params", "--ray-address", "--seed", "--set", "--slots", "--topologies", "--trials",
    ],
    "train": [
        "--algo", "--checkpoint-freq", "--device", "--engine", "--hyper", "--n-envs", "--no-progress",
        "--out", "--plot", "--policy", "--preposition-bonus", "--resume", "--seed", "--set",
        "--subproc", "--timesteps", "--topology", "--torch-threads", "--verbose",
    ],
}  # fmt: skip


def test_every_sub_command_has_its_options() -> None:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(sub.choices) == sorted(OPTIONS)
    for name, parser in sub.choices.items():
        options = sorted(
            s
            for a in parser._actions
            for s in a.option_strings
            if s.startswith("--") and s != "--help"
        )
        assert options == OPTIONS[name], name


@pytest.mark.parametrize("argv", [["--help"], *([name, "--help"] for name in OPTIONS)])
def test_help_exits_0(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    assert "usage: spep" in capsys.readouterr().out


def test_shared_parsers() -> None:
    assert parse_literals(["a=1", "b=werner", "c=(3, 12)", "d=None"]) == {
        "a": 1, "b": "werner", "c": (3, 12), "d": None,
    }  # fmt: skip
    with pytest.raises(ValueError, match="expected key=value"):
        parse_literals(["rho"], "--set")
    assert parse_overrides(["rho=0.99"]) == {"rho": 0.99}
    with pytest.raises(ValueError, match="unknown config field 'rhoo'"):
        parse_overrides(["rhoo=0.99"])
    assert parse_names(" shortest, spep-lstm,,") == ("shortest", "spep-lstm")


def test_set_preset_names_the_base_on_every_command(tmp_path) -> None:
    from spep_gym.config import SpepConfig

    fields = parse_overrides(["rho=0.9", "preset=physical"])
    assert SpepConfig.from_dict(fields) == SpepConfig.physical(rho=0.9)
    with pytest.raises(ValueError, match="'preset' = 'phys'"):
        parse_overrides(["preset=phys"])
    out = tmp_path / "rows.csv"
    argv = ["evaluate", "--agent", "shortest", "--runs", "1", "--slots", "60", "--jobs", "1"]
    assert main([*argv, "--no-progress", "--set", "preset=physical", "--out", str(out)]) == 0
    physical = out.read_text()
    assert main([*argv, "--no-progress", "--out", str(out)]) == 0
    assert out.read_text() != physical  # the physical preset ran, not the paper's
    assert (
        main(["quality", "--predictors", "frequency", "--slots", "60", "--set", "preset=physical"])
        == 0
    )
