"""The batched agents and the batched engine: the scalar agents' decisions, the scalar rows.

With the scalar streams (``draws="scalar"``) a batched evaluation must give the scalar evaluation's
rows exactly, every metric column, for every agent with a batched form; with its own counter
streams it must run and give rows of the same columns. Through the study harness the engine and
its draws are part of every run key, and the agents without a batched form fail before any run.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch

import agents
from agents.base import Agent
from agents.batched import BATCHED_AGENTS, BatchedSpepFrequency, batched_agent
from agents.cli import main
from agents.study import plan, regimes
from agents.study.engine import check_engine, run_batch
from agents.study.evaluate import COLUMNS, agent_config
from agents.study.store import check_payload
from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv

#: Small configs busy enough that every agent places, serves and fails requests.
BUSY = {"num_nodes": 8, "episode_slots": 80, "arrival_rate": 1.0}
LATENCY = {**BUSY, "signalling_latency": 0.5}
PHYSICAL = {**BUSY, "preset": "physical"}
SEEDS = 3


def frames(name: str, fields: dict, params: dict | None = None) -> tuple[pd.DataFrame, ...]:
    """The scalar engine's rows and the batched engine's with the scalar draws (no wall time)."""
    out = []
    for how in ({"engine": "scalar", "jobs": 1}, {"engine": "batched", "draws": "scalar"}):
        df = agents.evaluate(agents.make(name, **(params or {})), runs=SEEDS, **how, **fields)
        out.append(df.drop(columns="wall_time_s"))
    return tuple(out)


@pytest.mark.parametrize(
    ("name", "fields", "params"),
    [
        *[(name, BUSY, None) for name in BATCHED_AGENTS],
        ("spep-frequency", BUSY, {"history_slots": 20, "threshold": 0.1}),
        ("spep-oracle", BUSY, {"oracle_horizon": 1}),
        *[
            (name, LATENCY, None)
            for name in ("shortest", "random", "spep-frequency", "spep-oracle")
        ],
        ("highest_fidelity", LATENCY, None),
        *[(name, PHYSICAL, None) for name in ("random", "spep-frequency", "spep-oracle")],
        ("spep-frequency", {**BUSY, "link_pool_policy": "replace_oldest"}, None),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_batched_evaluate_equals_scalar_evaluate_with_the_scalar_draws(name, fields, params):
    scalar, batched = frames(name, fields, params)
    assert list(batched.columns) == list(scalar.columns)
    pd.testing.assert_frame_equal(batched, scalar, check_exact=True)
    assert scalar["served"].sum() > 0 and scalar["failed"].sum() > 0
    if name in ("random", "spep-frequency", "spep-oracle"):  # the decisions were exercised
        assert scalar["prepositions_placed"].sum() > 0
        assert scalar["prepositions_used"].sum() > 0


def test_counter_draws_run_with_the_scalar_columns_and_per_seed_results():
    cfg = agent_config(agents.make("spep-frequency"), BUSY)
    rows = run_batch("spep-frequency", [0, 1, 2], cfg)
    scalar = [agents.run_episode("spep-frequency", s, cfg) for s in (0, 1, 2)]
    for row, ref in zip(rows, scalar, strict=True):
        assert list(row) == list(ref)  # the same columns, in the same order
        assert {k: type(v) for k, v in row.items() if v is not None} == {
            k: type(v) for k, v in ref.items() if v is not None
        }
        assert row["arrived"] == ref["arrived"]  # the workload comes from the seed alone
        assert row["seed"] == ref["seed"] and row["agent"] == "spep-frequency"
    assert [r["pairs_generated"] for r in rows] != [r["pairs_generated"] for r in scalar]
    # A network's run depends on its seed alone, not on the batch it runs in (resume reruns
    # the missing seeds of a batch).
    (alone,) = run_batch("spep-frequency", [1], cfg)
    assert {k: v for k, v in alone.items() if k != "wall_time_s"} == {
        k: v for k, v in rows[1].items() if k != "wall_time_s"
    }
    df = agents.evaluate("random", runs=2, engine="batched", **BUSY)
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS) and df["seed"].tolist() == [0, 1]


def test_batched_agents_act_as_the_scalar_agents_on_the_vector_envs_observations():
    # numpy observations in, numpy actions out; autoresets restart the predictor's counts
    cfg = SpepConfig(**{**BUSY, "episode_slots": 30})
    envs = gym.make_vec(
        "Spep-v0", num_envs=3, vectorization_mode="vector_entry_point", engine="torch",
        draws="scalar", config=cfg,
    )  # fmt: skip
    single = SpepEnv(cfg)
    obs, info = envs.reset(seed=5)
    seeds = [5, 6, 7]
    for name in ("spep-frequency", "random"):
        batched = batched_agent(name)
        batched.reset(seeds, env=envs.unwrapped)
        scalars = [agents.make(name) for _ in seeds]
        for agent, seed in zip(scalars, seeds, strict=True):
            agent.reset(seed=seed, env=single)
        obs, info = envs.reset(seed=5)
        placed = 0
        for _ in range(70):  # two autoresets
            action = batched.act(obs, info)
            assert isinstance(action, np.ndarray) and action.shape == (3, cfg.action_len)
            for i, agent in enumerate(scalars):
                if info["next_slot"][i] == 0 and name != "random":
                    agent.reset(env=single)
                obs_i = {k: v[i] for k, v in obs.items()}
                info_i = {"next_slot": int(info["next_slot"][i])}
                info_i.update(agents.base.info_from_observation(obs_i))
                np.testing.assert_array_equal(action[i], agent.act(obs_i, info_i))
            placed += int((action < envs.unwrapped.num_pairs).sum())
            obs, _, _, _, info = envs.step(action)
        assert placed > 0
    envs.close()


def test_torch_observations_give_torch_actions():
    sim_agent = batched_agent("spep-oracle")
    from spep_gym.batched import BatchedSimulator

    cfg = agent_config(agents.make("spep-oracle"), BUSY)
    sim = BatchedSimulator(cfg, num_envs=2)
    sim.reset([0, 1])
    sim_agent.reset([0, 1], env=sim)
    action = sim_agent.act(sim.observation(), {"next_slot": sim.t})
    assert isinstance(action, torch.Tensor) and action.dtype == torch.int64
    assert tuple(action.shape) == (2, cfg.action_len)


def test_agents_without_a_batched_form_are_refused_by_name():
    for name in ("spep-lstm", "spep-arima", "sb3"):
        with pytest.raises(ValueError, match=rf"agent '{name}' has no batched form") as err:
            batched_agent(name)
        assert "allowed noop, reactive, shortest, highest_fidelity, random" in str(err.value)
        with pytest.raises(ValueError, match="no batched form"):
            check_engine("batched", None, ["shortest", name])

    class Custom(Agent):
        name = "custom"

    with pytest.raises(ValueError, match="agent 'custom' has no batched form"):
        agents.evaluate(Custom(), runs=1, engine="batched", **BUSY)
    with pytest.raises(ValueError, match="engine = 'fast' is invalid: allowed 'scalar', 'batched'"):
        agents.evaluate("shortest", runs=1, engine="fast")
    with pytest.raises(ValueError, match="draws = 'scalar' is invalid with engine 'scalar'"):
        agents.evaluate("shortest", runs=1, draws="scalar")
    with pytest.raises(ValueError, match="draws = 'exact' is invalid: allowed 'counter'"):
        agents.evaluate("shortest", runs=1, engine="batched", draws="exact")
    # a batched agent on an environment without its routing
    sim_agent = batched_agent("highest_fidelity")
    from spep_gym.batched import BatchedSimulator

    with pytest.raises(ValueError, match="defined with routing='highest_fidelity'"):
        sim_agent.reset([0], env=BatchedSimulator(SpepConfig.tiny(), num_envs=1))
    with pytest.raises(RuntimeError, match=r"call reset\(seeds, env\)"):
        BatchedSpepFrequency(agents.make("spep-frequency")).act({"path_fidelity": None}, {})


def test_the_cli_refuses_unsupported_agents_in_one_line_before_any_run(tmp_path, capsys):
    assert main(["evaluate", "--engine", "batched", "--agent", "shortest,spep-lstm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "agent 'spep-lstm' has no batched form" in err
    out = tmp_path / "study"
    assert main(["reproduce", "--engine", "batched", "--out", str(out)]) == 2  # default agents
    assert "spep-lstm" in capsys.readouterr().err and not out.exists()
    assert main(["regimes", "--engine", "batched", "--agents", "shortest,spep-arima"]) == 2
    assert "agent 'spep-arima' has no batched form" in capsys.readouterr().err
    assert main(["regimes", "--draws", "scalar", "--out", str(out)]) == 2
    assert "invalid with engine 'scalar'" in capsys.readouterr().err and not out.exists()


def test_run_keys_and_file_names_differ_between_engines_and_draws():
    scalar = plan.Task("erdos_renyi", "shortest", 0, 60)
    counter = plan.Task("erdos_renyi", "shortest", 0, 60, engine="batched", draws="counter")
    exact = plan.Task("erdos_renyi", "shortest", 0, 60, engine="batched", draws="scalar")
    assert len({scalar.filename, counter.filename, exact.filename}) == 3
    assert (scalar.key["engine"], scalar.key["draws"]) == ("scalar", None)
    assert (counter.key["engine"], counter.key["draws"]) == ("batched", "counter")
    payload = {"version": plan.RUN_FILE_VERSION, "key": json.loads(plan.json_key(counter.key))}
    reason = str(check_payload(payload, scalar))
    assert "draws 'counter', expected None, engine 'batched', expected 'scalar'" in reason
    tasks = plan.plan(["shortest", "random"], ["erdos_renyi"], 3, 60, 0, {}, sensitivity=False)
    assert {t.engine for t in tasks} == {"scalar"}
    units = plan.batches(tasks)
    assert len(units) == 6 and all(len(u) == 1 for u in units)
    tasks = plan.plan(
        ["shortest", "random"], ["erdos_renyi"], 3, 60, 0, {}, engine="batched", draws="counter"
    )
    units = plan.batches(plan.schedule(tasks))
    # main study and each sensitivity variant: one batch of the 3 seeds per agent and config
    assert all([t.seed for t in u] == [0, 1, 2] for u in units)
    # (the main study's two batches are the preset variant's of shortest and random)
    assert len(units) == len(plan.SENSITIVITY_VARIANTS) * len(plan.SENSITIVITY_AGENTS)


def test_cli_evaluate_batched_with_scalar_draws_writes_the_scalar_rows(tmp_path):
    base = ["evaluate", "--agent", "shortest,spep-frequency", "--runs", "3", "--slots", "60"]
    base += ["--set", "num_nodes=8", "--set", "arrival_rate=1.0", "--no-progress"]
    scalar, batched = tmp_path / "scalar.csv", tmp_path / "batched.csv"
    assert main([*base, "--jobs", "1", "--out", str(scalar)]) == 0
    assert main([*base, "--engine", "batched", "--draws", "scalar", "--out", str(batched)]) == 0
    pd.testing.assert_frame_equal(
        pd.read_csv(batched).drop(columns="wall_time_s"),
        pd.read_csv(scalar).drop(columns="wall_time_s"),
    )


def test_cli_evaluate_device_runs_on_the_cpu_and_refuses_what_it_cannot(tmp_path, capsys):
    base = ["evaluate", "--agent", "shortest", "--runs", "2", "--slots", "30", "--no-progress"]
    base += ["--set", "num_nodes=8"]
    cpu, default = tmp_path / "cpu.csv", tmp_path / "default.csv"
    assert main([*base, "--engine", "batched", "--device", "cpu", "--out", str(cpu)]) == 0
    assert main([*base, "--engine", "batched", "--out", str(default)]) == 0
    pd.testing.assert_frame_equal(
        pd.read_csv(cpu).drop(columns="wall_time_s"),
        pd.read_csv(default).drop(columns="wall_time_s"),
    )
    capsys.readouterr()
    out = tmp_path / "never.csv"
    assert main([*base, "--device", "cpu", "--out", str(out)]) == 2
    assert "only the batched engine runs on a device" in capsys.readouterr().err
    assert main([*base, "--engine", "batched", "--device", "tpu", "--out", str(out)]) == 2
    assert "allowed 'cpu', 'cuda' or 'cuda:N'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*base, "--engine", "batched", "--device", "cuda", "--out", str(out)]) == 2
        assert "CUDA is not available here" in capsys.readouterr().err
    assert not out.exists()


def test_cli_reproduce_batched_writes_run_files_and_resumes(tmp_path):
    out = tmp_path / "study"
    argv = [
        "reproduce", "--engine", "batched", "--agents", "shortest,random,spep-frequency",
        "--runs", "2", "--slots", "50", "--no-sensitivity", "--no-figures", "--out", str(out),
        "--jobs", "1", "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    runs = sorted((out / "runs").glob("*.json"))
    assert len(runs) == 4 * 3 * 2  # topologies x agents x runs
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS) and len(df) == len(runs)
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["engine"], meta["draws"]) == ("batched", "counter")
    assert "--engine batched --draws counter" in meta["command"]
    assert "batched engine, counter draws" in (out / "report.md").read_text()
    key = json.loads(runs[0].read_text())["key"]
    assert (key["engine"], key["draws"]) == ("batched", "counter") and "device" not in key
    before = {p.name: p.read_bytes() for p in runs}
    assert main(argv) == 0  # resumes: nothing runs again
    assert json.loads((out / "meta.json").read_text())["runs_executed"] == 0
    assert {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")} == before


#: The regime map's agents that have a batched form (its default adds the managed family, which
#: has none: ``--engine batched`` refuses it in one line).
BATCHED_MAP = ("shortest", "random", "spep-frequency", "spep-oracle")


def test_reproduce_and_regimes_run_their_batches_on_the_device_asked(tmp_path, monkeypatch, capsys):
    from agents.study import engine

    seen: list[str] = []
    run = engine.run_batch

    def on_cpu(*args, **kwargs):  # records the device the batch was sent to, then runs on the CPU
        device = kwargs.pop("device", args[4] if len(args) > 4 else "cpu")
        seen.append(device)
        return run(*args[:4], device="cpu", **kwargs)

    monkeypatch.setattr(engine, "run_batch", on_cpu)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    study = tmp_path / "study"
    argv = [
        "reproduce", "--engine", "batched", "--agents", "shortest", "--topologies", "erdos_renyi",
        "--runs", "2", "--slots", "30", "--no-sensitivity", "--no-figures", "--jobs", "1",
        "--no-progress", "--out", str(study), "--device", "cuda:0",
    ]  # fmt: skip
    assert main(argv) == 0
    meta = json.loads((study / "meta.json").read_text())
    assert meta["device"] == "cuda:0" and "--device cuda:0" in meta["command"]
    assert "batched engine on cuda:0, counter draws" in (study / "report.md").read_text()
    key = json.loads(next((study / "runs").glob("*.json")).read_text())["key"]
    assert key["device"] == "cuda:0"  # a resume on another device runs again
    only = {
        "link_layer": ("replace_oldest",), "physics": ("paper",), "end_memory": ("equal",),
        "latency": ("0",), "load": ("paper",),
    }  # fmt: skip
    opts = regimes.Options(
        runs=2, slots=30, topologies=("erdos_renyi",), jobs=1, progress=False, figures=False,
        only=only, out=tmp_path / "map", engine="batched", device="cuda", agents=BATCHED_MAP,
    )  # fmt: skip
    assert regimes.run_regimes(opts) == 0
    meta = json.loads((tmp_path / "map" / "meta.json").read_text())
    assert meta["device"] == "cuda" and "--device cuda" in meta["command"]
    assert seen == ["cuda:0"] + ["cuda"] * 4  # one batch per agent and cell
    monkeypatch.undo()
    capsys.readouterr()
    bad = [a for a in argv if a not in ("--engine", "batched", "--device", "cuda:0")]
    out = tmp_path / "never"
    assert main([*bad[:-1], str(out), "--device", "cuda"]) == 2
    assert "--device 'cuda': only the batched engine runs on a device" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*argv[:-1], "cuda"]) == 2
        assert "CUDA is not available here" in capsys.readouterr().err
        with pytest.raises(ValueError, match="CUDA is not available here"):
            regimes.run_regimes(regimes.Options(**{**vars(opts), "out": out}))
    assert not out.exists()


def test_scalar_and_batched_run_files_never_mix(tmp_path):
    out = tmp_path / "study"
    argv = [
        "reproduce", "--agents", "random", "--topologies", "erdos_renyi", "--runs", "2",
        "--slots", "40", "--no-sensitivity", "--no-figures", "--out", str(out), "--jobs", "1",
        "--no-progress",
    ]  # fmt: skip
    for extra in ([], ["--engine", "batched"], ["--engine", "batched", "--draws", "scalar"]):
        assert main([*argv, *extra]) == 0
        assert json.loads((out / "meta.json").read_text())["runs_executed"] == 2
    assert len(list((out / "runs").glob("*.json"))) == 3 * 2


def test_regimes_batched_with_scalar_draws_gives_the_scalar_map(tmp_path):
    base = regimes.Options(
        runs=2, slots=50, topologies=("erdos_renyi",), jobs=1, progress=False, figures=False,
        agents=BATCHED_MAP,
        only={
            "link_layer": ("replace_oldest",), "physics": ("paper",), "end_memory": ("equal",),
            "latency": ("0",), "load": ("heavy",),
        },
    )  # fmt: skip
    frames_ = []
    for engine, draws in (("scalar", None), ("batched", "scalar")):
        out = tmp_path / engine
        opts = regimes.Options(**{**vars(base), "out": out, "engine": engine, "draws": draws})
        assert regimes.run_regimes(opts) == 0
        frames_.append(pd.read_csv(out / "regimes.csv").drop(columns="wall_time_s"))
        assert json.loads((out / "meta.json").read_text())["engine"] == engine
    assert len(frames_[0]) == 4 * 2  # agents x runs
    pd.testing.assert_frame_equal(frames_[1], frames_[0])
    assert "batched engine, scalar draws" in Path(tmp_path / "batched" / "summary.md").read_text()
