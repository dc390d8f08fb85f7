"""The evaluation API (``agents.study.evaluate``, ``agents.study.quality``), ``spep evaluate`` /
``spep quality``, and SB3's ``evaluate_policy`` on agents."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

import agents
from agents import run_episode
from agents.cli import main
from agents.study.evaluate import COLUMNS
from agents.study.quality import prediction_quality_table, workload_arrivals
from spep_gym.config import SpepConfig

TINY = {"num_nodes": 6, "er_p": 0.5, "episode_slots": 200}


def without_time(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["wall_time_s"])


def test_public_names_are_the_study_functions() -> None:
    import agents.study.evaluate as module

    assert module.run_episode is run_episode
    assert agents.evaluate is module.evaluate
    df = agents.evaluate("shortest", runs=1, jobs=1, **TINY)
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS)


def test_same_seed_same_rows_and_seed_per_run() -> None:
    a = agents.evaluate("spep-frequency", runs=3, seed=7, jobs=1, **TINY)
    b = agents.evaluate(agents.make("spep-frequency"), runs=2, seed=8, jobs=1, **TINY)
    assert a["seed"].tolist() == [7, 8, 9] and b["seed"].tolist() == [8, 9]
    pd.testing.assert_frame_equal(without_time(a.iloc[1:]).reset_index(drop=True), without_time(b))
    row = run_episode("spep-frequency", 8, SpepConfig.from_dict(TINY))
    assert {k: row[k] for k in COLUMNS} == {k: b.iloc[0][k] for k in COLUMNS}


def test_parallel_equals_in_process() -> None:
    one = agents.evaluate("random", runs=3, seed=0, jobs=1, **TINY)
    two = agents.evaluate("random", runs=3, seed=0, jobs=2, **TINY)
    pd.testing.assert_frame_equal(without_time(one), without_time(two))


def test_every_agent_meets_the_same_requests() -> None:
    cfg = SpepConfig.from_dict(TINY)
    keys = ("arrival", "source", "destination", "F_req", "deadline", "priority")
    reference = None
    for name in ("reactive", "highest_fidelity", "random", "spep-frequency", "spep-oracle"):
        row = run_episode(name, seed=3, config=cfg, return_records=True)
        seen = (row["arrived"], {k: row["records"][k].tolist() for k in keys})
        if reference is None:
            reference = seen
        assert seen == reference, name
    assert reference is not None and reference[0] > 0
    arrivals = workload_arrivals(3, cfg)  # the quality report scores predictors on these
    assert arrivals[:, 0].tolist() == reference[1]["arrival"]


def test_networkx_topology_and_config_errors() -> None:
    g = nx.cycle_graph(["a", "b", "c", "d", "e"])
    df = agents.evaluate("shortest", runs=2, jobs=1, topology=g, episode_slots=100)
    assert df["topology"].tolist() == ["custom", "custom"]
    assert (df["arrived"] > 0).all()
    with pytest.raises(ValueError, match="unknown config field 'topolgy'"):
        agents.evaluate("shortest", runs=1, topolgy="small_world")
    with pytest.raises(ValueError, match="runs = 0"):
        agents.evaluate("shortest", runs=0)
    with pytest.raises(ValueError, match="'routing' = 'reactive' contradicts agent 'shortest'"):
        agents.evaluate("shortest", runs=1, routing="reactive")


def test_out_csv_keeps_finished_runs(tmp_path: Path) -> None:
    seen: list[int] = []
    out = tmp_path / "rows.csv"
    df = agents.evaluate(
        "noop", runs=2, jobs=1, out=str(out), callback=lambda d: seen.append(len(d)), **TINY
    )
    assert seen == [1, 2]
    pd.testing.assert_frame_equal(pd.read_csv(out), df, check_dtype=False)


def test_prediction_quality_table_on_env_workload() -> None:
    table = prediction_quality_table(seed=0, runs=2, predictors=("frequency",), **TINY)
    assert table["predictor"].tolist() == ["frequency", "frequency"]
    assert table["seed"].tolist() == [0, 1]
    assert ((table["precision_at_k"] >= 0) & (table["precision_at_k"] <= 1)).all()
    assert (table["base_rate"] > 0).all()
    with pytest.raises(ValueError, match="predictor 'prophet' is unknown"):
        prediction_quality_table(predictors=("prophet",), **TINY)


# ---------------------------------------------------------------------- command line


def test_cli_evaluate_writes_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "res.csv"
    argv = ["evaluate", "--agent", "shortest,spep-frequency", "--topology", "small_world"]
    argv += ["--runs", "2", "--slots", "120", "--seed", "4", "--out", str(out), "--jobs", "1"]
    argv += ["--set", "num_nodes=8", "--param", "threshold=0.1", "--no-progress"]
    assert main(argv) == 2  # shortest takes no threshold
    assert "agent 'shortest': bad --param" in capsys.readouterr().err
    argv.remove("--param"), argv.remove("threshold=0.1")
    assert main(argv) == 0
    df = pd.read_csv(out)
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert df["agent"].tolist() == ["shortest"] * 2 + ["spep-frequency"] * 2
    assert df["seed"].tolist() == [4, 5, 4, 5]
    assert set(df["topology"]) == {"small_world"} and set(df["slots"]) == {120}
    assert "spep-frequency" in capsys.readouterr().out


def test_cli_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["evaluate", "--runs", "1", "--slots", "50", "--jobs", "1", "--no-progress"]
    assert main([*base, "--agent", "shortes"]) == 2
    assert "did you mean 'shortest'" in capsys.readouterr().err
    assert main([*base, "--agent", "noop", "--set", "rhoo=0.9"]) == 2
    assert "unknown config field 'rhoo'" in capsys.readouterr().err
    assert main([*base, "--agent", "noop", "--topology", "torus"]) == 2
    assert "topology" in capsys.readouterr().err


def test_cli_quality(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "q.csv"
    argv = ["quality", "--predictors", "frequency", "--slots", "150", "--out", str(out)]
    assert main([*argv, "--set", "num_nodes=6"]) == 0
    assert pd.read_csv(out)["predictor"].tolist() == ["frequency"]
    assert "precision_at_k" in capsys.readouterr().out


def test_spep_evaluate_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "res.csv"
    spep = Path(sys.executable).with_name("spep")
    cmd = [str(spep), "evaluate", "--agent", "reactive", "--runs", "2", "--slots", "100"]
    cmd += ["--seed", "1", "--out", str(out), "--jobs", "2", "--set", "num_nodes=6"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    df = pd.read_csv(out)
    assert df["seed"].tolist() == [1, 2] and set(df["agent"]) == {"reactive"}
    assert "success_rate" in done.stdout
    bad = subprocess.run([str(spep), "evaluate", "--agent", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown agent 'nope'" in bad.stderr


# ---------------------------------------------------------------------- stable-baselines3


@pytest.mark.parametrize("name", ["shortest", "random", "spep-frequency"])
def test_sb3_evaluate_policy_takes_an_agent(name: str) -> None:
    from stable_baselines3.common.evaluation import evaluate_policy

    agent = agents.make(name)
    env = agent.make_env(SpepConfig.tiny(episode_slots=60))  # the agent's env, handed to it
    rewards, lengths = evaluate_policy(agent, env, n_eval_episodes=2, return_episode_rewards=True)
    assert lengths == [60, 60]
    assert all(np.isfinite(rewards))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["spep-lstm", "spep-arima"])
def test_learning_agents_repeat_exactly_across_processes(name: str) -> None:
    """A paper-preset episode with the registered settings: same rows in-process and in workers,
    and pre-positions that serve."""
    one = agents.evaluate(name, runs=2, seed=11, jobs=1)
    two = agents.evaluate(name, runs=2, seed=11, jobs=2)
    pd.testing.assert_frame_equal(without_time(one), without_time(two))
    assert (one["prepositions_used"] > 0).all()


def test_summary_gives_each_mean_with_its_ci_and_n(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 19: ``spep evaluate`` prints n and the 95 % CI beside each mean, as reproduce does."""
    from agents.study.evaluate import summary_table
    from agents.study.stats import mean_ci

    df = agents.evaluate("random", runs=3, seed=0, jobs=1, **TINY)
    df.loc[0, "avg_latency"] = np.nan  # a run that served nothing: the metric's n is 2
    table = summary_table(df).set_index(["agent", "metric"])
    assert {"n", "mean", "ci_low", "ci_high"} <= set(table.columns)
    mean, low, high, n = mean_ci(df["success_rate"])
    row = table.loc[("random", "success_rate")]
    assert (row["n"], row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx(
        (n, mean, low, high), abs=5e-5
    )
    assert n == 3 and low < mean < high
    assert table.loc[("random", "avg_latency"), "n"] == 2
    argv = ["evaluate", "--agent", "random,noop", "--runs", "3", "--slots", "100", "--jobs", "1"]
    assert main([*argv, "--no-progress", "--set", "num_nodes=6"]) == 0
    out = capsys.readouterr().out
    assert "ci_low" in out and "ci_high" in out and "95 %" in out
    assert "noop" in out and "random" in out


def test_cli_evaluate_labels_agents_and_gives_each_its_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 19: two agents of one name (two trained models), each labelled, each with its own
    ``--param LABEL.KEY=VALUE``; a ``--param KEY=VALUE`` without a label goes to every agent."""
    out = tmp_path / "rows.csv"
    base = ["evaluate", "--runs", "2", "--slots", "120", "--jobs", "1", "--no-progress"]
    base += ["--set", "num_nodes=6", "--out", str(out)]
    argv = [*base, "--agent", "eager=spep-frequency,picky=spep-frequency,shortest"]
    argv += ["--param", "eager.threshold=0.0", "--param", "picky.threshold=0.9"]
    assert main(argv) == 0
    df = pd.read_csv(out)
    assert df["agent"].tolist() == ["eager"] * 2 + ["picky"] * 2 + ["shortest"] * 2
    placed = df.groupby("agent", sort=False)["prepositions_placed"].sum()
    assert placed["eager"] > placed["picky"]  # each got its own threshold
    alone = main([*base, "--agent", "spep-frequency", "--param", "threshold=0.9"])
    assert alone == 0 and pd.read_csv(out)["prepositions_placed"].sum() == placed["picky"]
    capsys.readouterr()
    for agent, params, message in [
        ("spep-frequency,spep-frequency", [], "--agent: label 'spep-frequency' is given twice"),
        ("a=shortest,a=random", [], "--agent: label 'a' is given twice"),
        ("a.b=shortest", [], "--agent 'a.b=shortest': the label 'a.b' is invalid"),
        ("a=", [], "--agent 'a=': the agent name is empty"),
        (
            "a=shortest",
            ["--param", "b.threshold=1"],
            "--param 'b.threshold=1': no agent labelled 'b'",
        ),
    ]:
        assert main([*base, "--agent", agent, *params]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.splitlines()) == 1, err


def test_issue21_5_paired_table_against_a_reference(capsys: pytest.CaptureFixture[str]) -> None:
    """Each agent minus the reference, paired by seed, with its CI, Wilcoxon p and Holm p."""
    from agents.study.stats import holm, mean_ci, paired_table, wilcoxon_paired

    df = pd.concat(
        [agents.evaluate(a, runs=6, seed=0, jobs=1, **TINY) for a in ("shortest", "random", "noop")]
    )
    table = paired_table(df)
    assert list(table["reference"].unique()) == ["shortest"]
    assert list(table["agent"].unique()) == ["random", "noop"]
    row = table.set_index(["agent", "metric"]).loc[("random", "success_rate")]
    a = df[df.agent == "random"].set_index("seed")["success_rate"]
    b = df[df.agent == "shortest"].set_index("seed")["success_rate"]
    mean, low, high, n = mean_ci(a - b)
    assert (row["mean_paired_difference"], row["diff_ci_low"], row["diff_ci_high"]) == (
        pytest.approx((mean, low, high))
    )
    assert row["pairs"] == n == 6 and row["wilcoxon_p"] == wilcoxon_paired(a, b)[1]
    assert table["wilcoxon_p_holm"].tolist() == pytest.approx(
        holm(table["wilcoxon_p"]).tolist(), nan_ok=True
    )  # one family: the whole table
    other = paired_table(df, reference="noop")
    assert set(other["agent"]) == {"shortest", "random"}
    with pytest.raises(
        ValueError, match=r"reference 'oracle' is invalid: allowed one of the agents"
    ):
        paired_table(df, reference="oracle")

    argv = ["evaluate", "--agent", "random,noop", "--runs", "3", "--slots", "100", "--jobs", "1"]
    argv += ["--no-progress", "--set", "num_nodes=6"]
    assert main([*argv, "--reference", "noop"]) == 0
    out = capsys.readouterr().out
    assert "agent - reference" in out and "wilcoxon_p_holm" in out
    lines = [line.split() for line in out.splitlines() if "success_rate" in line]
    assert lines[-1][1:5] == ["random", "noop", "success_rate", "3"]
    assert main([*argv, "--reference", "shortest"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "spep: error: --reference 'shortest' is invalid: allowed one of the agents evaluated: "
        "random, noop"
    )


def test_issue21_5_blank_zeroes_exactly_the_named_keys_on_a_seeded_run() -> None:
    from spep_gym.env import SpepEnv
    from spep_gym.wrappers import BlankObservation

    keys = ("arrivals", "queue", "link_pairs")
    cfg = SpepConfig.from_dict(TINY)
    plain, blanked = SpepEnv(cfg), BlankObservation(SpepEnv(cfg), keys)
    (obs, _), (seen, _) = plain.reset(seed=5), blanked.reset(seed=5)
    plain.action_space.seed(5)
    nonzero = set()
    for _ in range(60):
        assert obs.keys() == seen.keys()
        for key in obs:
            if key in keys:
                assert seen[key].shape == obs[key].shape and not seen[key].any()
                nonzero |= {key} if obs[key].any() else set()
            else:
                np.testing.assert_array_equal(seen[key], obs[key])
        action = plain.action_space.sample()
        obs, r1, *_, i1 = plain.step(action)
        seen, r2, *_, i2 = blanked.step(action)
        assert r1 == r2 and np.array_equal(i1["action_mask"], i2["action_mask"])
    assert nonzero == set(keys)  # the blanked keys did hold something
    with pytest.raises(ValueError, match=r"'arrival' is no observation key: allowed .*arrivals"):
        BlankObservation(SpepEnv(cfg), ["arrival"])


def test_issue21_5_evaluate_blank_reaches_the_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--blank`` zeroes the keys in what the agent is given; the rows say what was blanked."""
    from agents.base import Agent

    class Spy(Agent):
        name = "spy"

        def __init__(self) -> None:
            super().__init__()
            self.seen: list[dict[str, np.ndarray]] = []

        def act(self, observation: dict[str, np.ndarray], info: dict) -> np.ndarray:
            self.seen.append(observation)
            return self.none_action(len(observation["adjacency"]), self.env.config.action_len)

    spy = Spy()
    row = run_episode(spy, 3, {**TINY, "episode_slots": 40}, blank=("arrivals", "demand"))
    assert len(spy.seen) == 40 and row["blank"] == "arrivals,demand"
    assert not any(o["arrivals"].any() or o["demand"].any() for o in spy.seen)
    assert any(o["link_pairs"].any() for o in spy.seen)
    argv = ["evaluate", "--agent", "random", "--runs", "2", "--slots", "50", "--jobs", "1"]
    argv += ["--no-progress", "--set", "num_nodes=6", "--out", str(tmp_path / "b.csv")]
    assert main([*argv, "--blank", "arrivals,queue"]) == 0
    assert set(pd.read_csv(tmp_path / "b.csv")["blank"]) == {"arrivals,queue"}
    assert main([*argv, "--blank", "arrivals,nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "--blank 'arrivals,nope' is invalid: 'nope' is no observation" in err[0]
    )
    assert main([*argv, "--blank", "arrivals", "--engine", "batched"]) == 2
    assert "--blank" in capsys.readouterr().err
