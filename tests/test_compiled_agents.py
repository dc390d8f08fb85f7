"""The study engine ``compiled`` (agents.study.compiled): whole episodes of the non-learning agents.

Each compiled agent's result row and per-request records equal the scalar engine's
``run_episode`` for the same agent, config and seed. This module runs the compiled code as plain
Python (``NUMBA_DISABLE_JIT=1``, set before numba loads), so that coverage sees its lines; one test
runs it jitted in a fresh interpreter.
"""

from __future__ import annotations

import os

# before numba loads: plain Python, so coverage sees it (a subprocess sets 0)
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")

import dataclasses
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
from conftest import reproduce_options, run_jitted, write_trace

import agents
from agents.base import Agent, agent_config
from agents.compiled_policies import choice
from agents.study.compiled import COMPILED_AGENTS, compiled_policy, covers, run_compiled
from agents.study.engine import check_engine, engine_text
from agents.study.evaluate import evaluate, run_episode
from spep_gym.config import SpepConfig


def assert_same_rows(agent: Agent, cfg: SpepConfig, seeds: list[int]) -> list[dict[str, Any]]:
    """The compiled rows (records included) equal the scalar engine's, column by column."""
    rows = run_compiled(agent, seeds, cfg, return_records=True)
    for seed, row in zip(seeds, rows, strict=True):
        ref = run_episode(agent, seed, cfg, return_records=True)
        assert list(row) == list(ref), f"{agent.name} seed {seed}: columns"
        for key, value in ref.items():
            if key == "records":
                for name, column in value.items():
                    np.testing.assert_array_equal(column, row[key][name], err_msg=name)
            elif key != "wall_time_s":
                same = value == row[key] or (
                    isinstance(value, float) and math.isnan(value) and math.isnan(row[key])
                )
                assert same, f"{agent.name} seed {seed}: {key} {value!r} != {row[key]!r}"
    return rows


#: Options over the paper preset: the link pool, the swaps, capacity, the paths, physics.
OPTIONS: dict[str, dict[str, Any]] = {
    "paper": {},
    "replace_oldest": {"link_pool_policy": "replace_oldest", "link_capacity": 2},
    "swap_success": {"swap_success": 0.7, "link_capacity": 3},
    "available": {"preposition_path": "available", "arrival_rate": 0.6},
    "physical": {"preset": "physical", "signalling_latency": 0.0, "swap_success": 0.9},
    # long signalling latency: pairs still in flight at a decision point (skipped as held)
    "latency": {
        "preset": "physical",
        "signalling_latency": 3.0,
        "link_capacity": 4,
        "arrival_rate": 1.0,
    },
    "latency_available": {"preset": "physical", "preposition_path": "available"},
}


@pytest.mark.parametrize("name", COMPILED_AGENTS)
@pytest.mark.parametrize("topology", ["erdos_renyi", "random_regular", "small_world", "scale_free"])
def test_every_compiled_agent_equals_the_scalar_engine(name: str, topology: str) -> None:
    agent = agents.make(name)
    cfg = agent_config(agent, {"topology": topology, "episode_slots": 120})
    rows = assert_same_rows(agent, cfg, [0, 3])
    if name in ("random", "spep-oracle"):
        assert rows[0]["prepositions_placed"] > 0  # the policy acted


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("name", ["random", "spep-frequency", "spep-oracle", "highest_fidelity"])
def test_the_options_give_the_scalar_rows(name: str, option: str) -> None:
    agent = agents.make(name)
    cfg = agent_config(agent, {**OPTIONS[option], "episode_slots": 150})
    assert_same_rows(agent, cfg, [1, 2])


def test_the_agents_settings_give_the_scalar_rows() -> None:
    """threshold, min_fidelity, history_slots, routing, oracle_horizon; a long day's hours."""
    fields = {"episode_slots": 300, "slots_per_day": 48}
    for agent in (
        agents.make("spep-frequency", threshold=0.0, min_fidelity=0.0, history_slots=20),
        agents.make("spep-frequency", threshold=0.2, routing="highest_fidelity"),
        agents.make("spep-oracle", oracle_horizon=1, routing="reactive"),
    ):
        assert_same_rows(agent, agent_config(agent, fields), [4])


def test_a_trace_on_a_user_graph_gives_the_scalar_rows(tmp_path) -> None:
    rows = [(t, t % 5, (t + 2) % 5, 0.6, t + 6, 1 + t % 3) for t in range(0, 80, 2)]
    rows += [(t, 1, 3, 0.5, t + 4, 2) for t in range(0, 80, 5)]
    rows.sort()
    graph = nx.cycle_graph(5)
    trace = write_trace(tmp_path / "t.csv", rows)
    for name in ("spep-frequency", "spep-oracle", "random"):
        agent = agents.make(name)
        cfg = agent_config(
            agent, {"topology": graph, "trace": trace, "p_gen": 0.6, "episode_slots": 80}
        )
        assert_same_rows(agent, cfg, [0])


def test_choice_draws_what_numpy_draws() -> None:
    """numpy's Generator.choice without replacement: Floyd's picks and the tail shuffle."""
    gen = np.random.default_rng(0)
    cases = [(int(gen.integers(1, 300)), 0) for _ in range(200)] + [(10050, 300), (20000, 1)]
    for n, big_k in cases:
        k = big_k or int(gen.integers(1, min(n, 12) + 1))
        population = np.sort(gen.choice(30000, n, replace=False))
        ours, theirs = np.random.default_rng([n, k]), np.random.default_rng([n, k])
        out = np.empty(k, np.int64)
        for _ in range(2):  # the stream continues alike
            choice(ours, population, k, out)
            np.testing.assert_array_equal(out, theirs.choice(population, size=k, replace=False))


class Subclassed(agents.baselines.RandomAgent):
    """A subclass may act otherwise: not compiled."""

    name = "random-subclass"


class FirstPair(Agent):
    """An agent of the user's own: pre-positions node pair 0 every slot."""

    name = "first-pair"

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        action = self.none_action(len(observation["adjacency"]), self.action_length())
        action[0] = 0
        return action


def test_an_agent_without_a_compiled_policy_runs_on_the_scalar_path() -> None:
    cfg = SpepConfig(episode_slots=60)
    for agent in (Subclassed(), FirstPair()):
        assert not covers(agent, agent_config(agent, cfg))
        assert_same_rows(agent, agent_config(agent, cfg), [0])
        with pytest.raises(ValueError, match=r"has no compiled policy: allowed noop, ") as err:
            compiled_policy(agent, agent_config(agent, cfg))
        assert "\n" not in str(err.value)


def test_signalling_latency_is_compiled_for_the_agents_that_read_swaps_in_flight() -> None:
    latency = {"signalling_latency": 0.5, "episode_slots": 40}
    for name in ("shortest", "random", "spep-frequency", "spep-oracle", "managed"):
        assert covers(agents.make(name), agent_config(agents.make(name), latency)), name


def test_the_engine_is_checked_and_named() -> None:
    assert check_engine("compiled", None, ["spep-lstm"]) is None
    with pytest.raises(ValueError, match=r"^draws = 'scalar' is invalid with engine 'compiled'"):
        check_engine("compiled", "scalar")
    assert engine_text({"engine": "compiled"}) == (
        "compiled engine (the scalar engine's runs exactly)"
    )


def test_evaluate_on_the_compiled_engine_gives_the_scalar_frame() -> None:
    for agent in (agents.make("spep-frequency"), FirstPair()):  # compiled; the scalar path
        fields = {"runs": 3, "seed": 5, "jobs": 1, "episode_slots": 80}
        fast = evaluate(agent, engine="compiled", **fields).drop(columns="wall_time_s")
        ref = evaluate(agent, **fields).drop(columns="wall_time_s")
        assert fast.equals(ref), agent.name
    with pytest.raises(ValueError, match=r"^blank = 'queue' is invalid with engine='compiled'"):
        evaluate("random", runs=1, engine="compiled", blank=("queue",), episode_slots=10)


def test_reproduce_on_the_compiled_engine_writes_the_scalar_results(tmp_path) -> None:
    from agents.study import reproduce

    out: dict[str, Any] = {}
    for engine in ("scalar", "compiled"):
        opts = reproduce_options(
            tmp_path / engine, agents=("shortest", "spep-frequency"), engine=engine
        )
        assert reproduce.reproduce(opts) == 0
        out[engine] = (tmp_path / engine / "results.csv").read_text()
    assert out["compiled"] == out["scalar"] or _same_but_time(out["compiled"], out["scalar"])


def test_a_compiled_run_is_a_unit_of_its_own() -> None:
    """So that the runs spread over the workers (spep-lstm's on the scalar path too)."""
    from agents.study.plan import Task, batches

    tasks = [Task("erdos_renyi", "spep-lstm", s, 60, (), engine="compiled") for s in range(3)]
    assert batches(tasks) == [(t,) for t in tasks]
    grouped = [dataclasses.replace(t, engine="batched", draws="counter") for t in tasks]
    assert batches(grouped) == [tuple(grouped)]


def test_regimes_on_the_compiled_engine_writes_the_scalar_map(tmp_path) -> None:
    from agents.cli import main

    text = {}
    for engine in ("scalar", "compiled"):
        out = tmp_path / engine
        argv = [
            "regimes", "--runs", "1", "--slots", "60", "--topologies", "erdos_renyi",
            "--only", "physics=paper", "--only", "latency=0", "--only", "end_memory=equal",
            "--only", "load=paper", "--out", str(out), "--jobs", "1", "--no-progress",
            "--no-figures", "--engine", engine,
        ]  # fmt: skip
        assert main(argv) == 0
        text[engine] = (out / "regimes.csv").read_text()
    assert _same_but_time(text["compiled"], text["scalar"])
    assert (
        "compiled engine (the scalar engine's runs exactly)"
        in (tmp_path / "compiled" / "summary.md").read_text()
    )


def _same_but_time(a: str, b: str) -> bool:
    import io

    import pandas as pd

    x, y = (pd.read_csv(io.StringIO(t)) for t in (a, b))
    drop = [c for c in x.columns if "time" in c]
    return bool(x.drop(columns=drop).equals(y.drop(columns=drop)))


def test_the_episode_is_cached_by_the_sources_of_the_policies_it_calls(tmp_path) -> None:
    """run() holds the code of agents.compiled_managed's policy: an edit there gets a new cache."""
    import shutil

    from agents import compiled_policies
    from spep_gym.compiled import cache_dir

    for path in Path(compiled_policies.__file__).parent.glob("compiled*.py"):
        shutil.copy(path, tmp_path)
    before = compiled_policies.agents_cache_dir(tmp_path)
    assert before.startswith(cache_dir()) and before != cache_dir()
    managed = tmp_path / "compiled_managed.py"
    managed.write_text(managed.read_text() + "\n# edited\n")
    assert compiled_policies.agents_cache_dir(tmp_path) != before
    code = (  # where the jitted run() caches (no compile needed to ask)
        "import numba; from agents import compiled_policies as c; "
        "print(c.run.stats.cache_path.startswith(c.agents_cache_dir()), numba.config.CACHE_DIR)"
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "0"}
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    same, after = out.stdout.split()
    assert same == "True" and after == cache_dir()  # the engine's own directory set back


@pytest.mark.slow  # a cold compile of the episode loop and every policy: about a minute
def test_the_jitted_agents_equal_the_scalar_engine() -> None:
    """The compiled code itself (not the plain-Python runs above), in a fresh interpreter."""
    code = textwrap.dedent(
        """
        import numba
        import agents
        from agents.base import agent_config
        from agents.study.compiled import COMPILED_AGENTS
        from agents.compiled_policies import run
        from test_compiled_agents import assert_same_rows
        assert not numba.config.DISABLE_JIT
        for name in COMPILED_AGENTS:
            agent = agents.make(name)
            fields = {"episode_slots": 300, "swap_success": 0.8, "preposition_path": "available"}
            assert_same_rows(agent, agent_config(agent, fields), [0, 1])
            latency = {"preset": "physical", "episode_slots": 200}
            assert_same_rows(agent, agent_config(agent, latency), [2])
        assert run.signatures, "the episode ran as Python"
        print("ok")
        """
    )
    run_jitted(code)
