"""The ``spep`` command: every sub-command's parser is there with all its options, and helps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import pytest

from agents.cli import build_parser, main, parse_literals, parse_names, parse_overrides

ROOT = Path(__file__).resolve().parents[1]

#: The options of each sub-command (the public command line: removing one breaks users' scripts).
OPTIONS = {
    "evaluate": [
        "--agent", "--blank", "--device", "--draws", "--engine", "--import", "--jobs", "--no-progress",
        "--out", "--param", "--reference", "--runs", "--seed", "--set", "--slots", "--topology",
    ],
    "quality": [
        "--out", "--predictors", "--runs", "--seed", "--set", "--slots", "--top-k", "--topology",
    ],
    "reproduce": [
        "--agents", "--backend", "--device", "--draws", "--engine", "--import", "--jobs",
        "--no-figures", "--no-progress", "--no-sensitivity", "--out", "--ray-address", "--runs",
        "--seed", "--sensitivity", "--set", "--slots", "--slow-twins", "--topologies",
    ],
    "regimes": [
        "--agents", "--backend", "--device", "--draws", "--engine", "--import", "--jobs",
        "--no-figures", "--no-progress", "--only", "--out", "--ray-address", "--runs", "--seed",
        "--set", "--slots", "--topologies",
    ],
    "calibrate": [
        "--backend", "--batch", "--check-runs", "--engine", "--fit-runs", "--jobs", "--no-progress", "--out",
        "--params", "--patience", "--ray-address", "--seed", "--set", "--slots", "--topologies",
        "--trials",
    ],
    "train": [
        "--algo", "--blank", "--checkpoint-freq", "--demand-blind", "--device", "--engine",
        "--eval-freq", "--eval-seeds",
        "--hyper", "--keep-checkpoints", "--n-envs", "--no-progress", "--out", "--pair-features",
        "--plot", "--policy", "--predictive-hit-reward", "--preposition-bonus", "--resume", "--seed",
        "--set", "--subproc", "--timesteps", "--topology", "--torch-threads", "--verbose",
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


# ---------------------------------------------------------------------- custom agents (issue 19)

#: A module that registers an agent (what a user writes beside their command line).
AGENT_MODULE = """
import agents
from agents.baselines import NoPreposition


class Idle(NoPreposition):
    def __init__(self, tag: str = "idle-custom") -> None:
        super().__init__()
        self.name = tag
"""
REGISTERING = AGENT_MODULE + 'agents.register("idle-custom", Idle)\n'


def names_in_worker(name: str) -> str:
    """Made in a worker process by name: the name the worker's registry resolves."""
    import agents

    return agents.make(name).name


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry, the import path and the imported modules restored after the test."""
    import sys

    from agents import base

    monkeypatch.setattr(base, "REGISTRY", dict(base.REGISTRY))
    monkeypatch.setattr(base, "IMPORTED", [])
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("my_agents", "plugin_agents"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_unknown_agent_message_is_punctuated() -> None:
    import agents

    with pytest.raises(
        ValueError, match=r"unknown agent 'shortes' \(did you mean 'shortest'\?\); registered: "
    ):
        agents.make("shortes")
    with pytest.raises(ValueError, match=r"unknown agent 'zz'; registered: \w.*, shortest, "):
        agents.make("zz")


def test_import_option_registers_an_agent_in_this_process_and_the_workers(
    tmp_path, monkeypatch: pytest.MonkeyPatch, isolated_registry: None, capsys
) -> None:
    from agents.study import backends

    (tmp_path / "my_agents.py").write_text(REGISTERING)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "rows.csv"
    argv = ["evaluate", "--agent", "idle-custom", "--runs", "2", "--slots", "40", "--no-progress"]
    assert main([*argv, "--out", str(out), "--jobs", "1"]) == 2
    assert "unknown agent 'idle-custom'" in capsys.readouterr().err
    assert main([*argv, "--import", "my_agents", "--out", str(out), "--jobs", "2"]) == 0
    assert set(pd.read_csv(out)["agent"]) == {"idle-custom"}
    # workers that get only a name (spep reproduce, regimes) import the module too
    results: dict[str, str] = {}
    backends.run(names_in_worker, ["idle-custom", "noop"], results.__setitem__, jobs=2)
    assert results == {"idle-custom": "idle-custom", "noop": "noop"}
    assert main([*argv, "--import", "no_such_module"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spep: error: --import 'no_such_module'") and len(err.splitlines()) == 1


def test_reproduce_takes_an_imported_agent(
    tmp_path, monkeypatch: pytest.MonkeyPatch, isolated_registry: None
) -> None:
    (tmp_path / "my_agents.py").write_text(REGISTERING)
    monkeypatch.chdir(tmp_path)
    argv = ["reproduce", "--agents", "idle-custom,noop", "--topologies", "erdos_renyi", "--runs", "2",
            "--slots", "40", "--out", str(tmp_path / "study"), "--jobs", "2", "--no-sensitivity",
            "--no-figures", "--no-progress", "--set", "num_nodes=6"]  # fmt: skip
    assert main([*argv, "--import", "my_agents"]) == 0
    assert set(pd.read_csv(tmp_path / "study" / "results.csv")["agent"]) == {"idle-custom", "noop"}


def _plugin(folder) -> None:
    """An installed distribution with an agent in the ``spep.agents`` entry point group."""
    (folder / "plugin_agents.py").write_text(AGENT_MODULE)
    info = folder / "spep_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: spep-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[spep.agents]\nidle-custom = plugin_agents:Idle\n")


def test_an_entry_point_agent_is_listed_and_made(
    tmp_path, monkeypatch: pytest.MonkeyPatch, isolated_registry: None, capsys
) -> None:
    import agents

    _plugin(tmp_path)
    assert "idle-custom" not in agents.names()
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "idle-custom" in agents.names()  # listed without importing it
    assert "plugin_agents" not in sys.modules
    assert agents.make("idle-custom", tag="p").name == "p"  # loaded when asked for
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "idle-custom" in " ".join(capsys.readouterr().out.split())


def test_spep_evaluate_takes_an_entry_point_agent_in_workers(tmp_path) -> None:
    import os
    import subprocess

    _plugin(tmp_path)
    out = tmp_path / "rows.csv"
    cmd = [sys.executable, "-m", "agents.cli", "evaluate", "--agent", "idle-custom,noop", "--runs",
           "2", "--slots", "40", "--jobs", "2", "--no-progress", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert pd.read_csv(out)["agent"].tolist() == ["idle-custom"] * 2 + ["noop"] * 2


# ---------------------------------------------------------------------- messages (issue 19)


@pytest.mark.parametrize("command", ["reproduce", "regimes", "calibrate"])
def test_a_ray_address_without_the_ray_backend_is_refused(
    command: str, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    # --slots 0 too: the ray check comes first (without it, this one line would be about slots)
    argv = [command, "--ray-address", "10.0.0.1:6379", "--out", str(out), "--slots", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        "spep: error: --ray-address '10.0.0.1:6379' is invalid with --backend local: allowed "
        "only with --backend ray\n"
    )
    assert not out.exists()


def test_a_ray_cluster_that_does_not_answer_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import ray

    from agents.study import backends

    never = threading.Event()

    def blocking_init(**kwargs: object) -> None:  # a cluster that never answers (10 s here)
        never.wait(10)
        raise RuntimeError("ray.init blocked for 10 s")

    monkeypatch.setattr(ray, "init", blocking_init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(backends, "RAY_CONNECT_TIMEOUT_S", 0.2)
    with pytest.raises(
        ValueError, match=r"^--ray-address '127.0.0.1:1': no Ray cluster answered within 0.2 s"
    ):
        backends.run(abs, [1, 2], print, backend="ray", address="127.0.0.1:1")
    never.set()
    assert (
        backends.RAY_CONNECT_TIMEOUT_S == 0.2
        and "RAY_CONNECT_TIMEOUT_S" in backends.run_ray.__doc__
    )


@pytest.mark.parametrize(
    ("only", "message"),
    [
        ("load=", "--only load=: the level is empty: allowed levels of load: paper, heavy"),
        ("load=,", "--only load=,: the level is empty: allowed levels of load: paper, heavy"),
        (
            "load=light",
            "--only load=light: unknown level 'light': allowed levels of load: paper, heavy",
        ),
        ("speed=1", "--only speed=1: unknown factor 'speed': allowed factors: link_layer, "),
    ],
)
def test_only_refuses_with_the_allowed_levels(
    only: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["regimes", "--only", only, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"spep: error: {message}") and len(err.splitlines()) == 1, err


def test_only_compares_numeric_levels_as_numbers() -> None:
    from agents.study.cli import parse_only

    assert parse_only(["latency=0.50", "load=paper"]) == {"latency": ("0.5",), "load": ("paper",)}
    assert parse_only(["latency=0.0,5e-1"]) == {"latency": ("0", "0.5")}
    with pytest.raises(ValueError, match=r"unknown level '0\.25'"):
        parse_only(["latency=0.25"])


@pytest.mark.parametrize("command", ["regimes", "calibrate"])
def test_help_shows_a_single_percent_sign(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "%%" not in text and " %" in text


def test_evaluate_help_lists_the_topologies(capsys: pytest.CaptureFixture[str]) -> None:
    from spep_gym.config import TOPOLOGIES

    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in TOPOLOGIES), text


def test_regimes_without_figures_names_only_what_it_wrote(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "map"
    argv = ["regimes", "--agents", "shortest,spep-frequency", "--topologies", "erdos_renyi"]
    argv += ["--runs", "2", "--slots", "40", "--jobs", "1", "--out", str(out), "--no-progress"]
    argv += ["--only", "link_layer=block", "--only", "physics=paper", "--only", "end_memory=equal"]
    argv += ["--only", "latency=0", "--only", "load=paper", "--set", "num_nodes=6", "--no-figures"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "spep regimes: done" in err and "heatmaps" not in err
    assert not list(out.rglob("*.png"))


def test_loading_errors_name_their_cause(
    tmp_path, monkeypatch: pytest.MonkeyPatch, isolated_registry: None
) -> None:
    import agents
    from agents.base import import_modules

    _plugin(tmp_path)
    (tmp_path / "plugin_agents.py").write_text(AGENT_MODULE + "NOT_A_FACTORY = 3\n")
    entry = tmp_path / "spep_plugin-0.1.dist-info" / "entry_points.txt"
    entry.write_text("[spep.agents]\nidle-bad = plugin_agents:NOT_A_FACTORY\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"entry point 'plugin_agents:NOT_A_FACTORY' .* is a int"):
        agents.make("idle-bad")
    (tmp_path / "my_agents.py").write_text("import no_such_dependency_of_mine\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_of_mine"):
        import_modules(["my_agents"])  # found, and broken: its own traceback


def test_a_ray_init_error_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    from agents.study import backends

    def refusing_init(**kwargs: object) -> None:
        raise ConnectionError("refused")

    monkeypatch.setattr(ray, "init", refusing_init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(ConnectionError, match="refused"):
        backends.run(abs, [1, 2], print, backend="ray", address="127.0.0.1:1")
