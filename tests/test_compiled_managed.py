"""The compiled managed decision (agents.compiled_managed) equals ManagedAgent.act, slot by slot.

Each test steps the Python env with :class:`agents.controls.ManagedAgent` and, beside it, computes
every slot's action from the same observation and info with the compiled functions; the actions
must be identical. The functions run as plain Python here (``NUMBA_DISABLE_JIT=1``, set before
numba loads), so that coverage sees them; one test runs them jitted in a fresh interpreter.
"""

from __future__ import annotations

import os

# before agents.compiled_managed imports numba: plain Python, so coverage sees it
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")

import textwrap
from typing import Any

import numpy as np
import pytest
from conftest import run_jitted, trace_config

import agents
from agents.base import agent_config
from agents.compiled_managed import (
    DEMAND_FREQUENCY,
    DEMAND_NONE,
    DEMAND_ORACLE,
    DEMAND_TABLE,
    algorithm2_into,
    demand_kind,
    demand_table,
    frequency_observe,
    frequency_predict,
    managed,
    next_requests,
)
from agents.controls import ManagedAgent, NextRequests, PredictedDemand, make_managed
from agents.spep import algorithm2
from agents.study.compiled import compiled_policy
from spep_gym.compiled.episode import new_observation
from spep_gym.compiled.state import T_NOW, new_state, params
from spep_gym.env import SpepEnv


class CompiledDecision:
    """The compiled policy :func:`managed` driven by the Python env's observation, slot by slot.

    It gets the engine's own record types (a ``State``, an ``Observation``, a ``Policy``), so that
    the compiled code and its disk cache are the study engine's: no type of this module reaches
    numba's cache index.
    """

    def __init__(self, agent: ManagedAgent, env: SpepEnv, seed: int) -> None:
        cfg = env.config
        net, w = env.sim.net, env.sim.workload
        self.state = new_state(cfg, net, w)  # only the slot and the workload are read
        self.params = params(cfg)
        self.obs = new_observation(net.pair_index[net.edges[:, 0], net.edges[:, 1]], cfg.n, 0)
        self.pol = compiled_policy(agent, cfg, w, seed)
        self.rng = np.random.default_rng(0)

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        self.state.counts[T_NOW] = info["next_slot"]
        queue = obs["queue"].reshape(-1, 6)
        seen = self.obs._replace(
            path_fidelity=obs["path_fidelity"],
            prepositioned=obs["prepositioned"],
            prepositioned_in_flight=obs["prepositioned_in_flight"],
            prepositioned_fidelity=obs["prepositioned_fidelity"],
            queue=np.ascontiguousarray(queue),
            queue_mask=obs["queue_mask"],
        )
        managed(self.state, self.params, self.pol, seen, self.rng)
        return self.pol.action.copy()


def assert_same_actions(name: str, config: Any, seed: int, **kw: Any) -> int:
    """Step a Python episode of agent ``name``; the compiled action equals its action every slot.

    Returns the number of node pairs the actions named (so a test can see they placed some).
    """
    agent = agents.make(name, **kw)
    twin = agents.make(name, **kw)  # the compiled side's own demand input
    cfg = agent_config(agent, config)
    env = SpepEnv(cfg)
    obs, info = env.reset(seed=seed)
    agent.reset(seed=seed, env=env)
    compiled = CompiledDecision(twin, env, seed)
    named = 0
    truncated = False
    while not truncated:
        action = agent.act(obs, info)
        fast = compiled.act(obs, info)
        assert action.tolist() == fast.tolist(), f"{name}, seed {seed}, slot {info['next_slot']}"
        named += int((action < env.num_pairs).sum())
        obs, _, _, truncated, info = env.step(action)
    return named


NAMES = ("managed", "managed-oracle", "managed-distribution", "managed-frequency", "managed-rates")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("topology", ["erdos_renyi", "random_regular"])
def test_the_paper_preset(name: str, topology: str):
    config = {"topology": topology, "episode_slots": 300}
    assert assert_same_actions(name, config, seed=3) > 0


@pytest.mark.parametrize("name", NAMES)
def test_the_physical_preset(name: str):
    # replace_oldest: fill "auto" does not flush; signalling latency: pairs in flight count as held
    config = {"preset": "physical", "episode_slots": 300}
    placed = assert_same_actions(name, config, seed=1)
    assert placed > 0 if name != "managed" else placed == 0


@pytest.mark.parametrize("name", ["managed", "managed-oracle", "managed-frequency"])
def test_forced_fills_and_reserves(name: str):
    physical = {"preset": "physical", "episode_slots": 200}
    assert assert_same_actions(name, physical, seed=2, fill="flush") > 0
    paper = {"num_nodes": 10, "episode_slots": 200, "max_prepositioned": 12}
    assert assert_same_actions(name, paper, seed=4, fill_reserve=0, threshold=0.0) > 0
    assert_same_actions(name, paper, seed=4, fill="none", min_fidelity=0.0)


def test_the_frequency_predictors_history_window():
    fields = {"episode_slots": 300, "slots_per_day": 48}
    assert assert_same_actions("managed-frequency", fields, seed=6, history_slots=10) > 0
    from test_compiled_agents import assert_same_rows

    agent = agents.make("managed-frequency", history_slots=7, threshold=0.2)
    assert_same_rows(agent, agent_config(agent, fields), [2])


def test_link_capacity_and_the_oracle_horizon():
    config = {"link_capacity": 3, "episode_slots": 200, "swap_success": 0.8}
    assert assert_same_actions("managed-oracle", config, seed=5, oracle_horizon=8) > 0


def test_a_trace_has_no_rates_for_the_distribution_oracle(tmp_path):
    import networkx as nx

    rng = np.random.default_rng(0)
    pairs = [(0, 3), (1, 4), (2, 5), (0, 5)]
    requests = [
        (t, *pairs[int(rng.integers(4))], 0.6, t + 20, 1.0) for t in range(60) if rng.random() < 0.4
    ]
    cfg = trace_config(tmp_path, nx.cycle_graph(6), requests, p_gen=0.3, episode_slots=60)
    agent = agents.make("managed-distribution")
    env = SpepEnv(agent_config(agent, cfg))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"'trace'.*distribution oracle"):
        demand_table(agent, env.config, env.sim.workload, env.num_pairs, 0)
    # the other inputs run on a trace as on drawn requests
    for name in ("managed-frequency", "managed-oracle", "managed-rates"):
        assert assert_same_actions(name, cfg, seed=0) > 0


def test_demand_kinds_and_the_agents_not_covered():
    assert demand_kind(agents.make("managed")) == DEMAND_NONE
    assert demand_kind(agents.make("managed-oracle")) == DEMAND_ORACLE
    assert demand_kind(agents.make("managed-distribution")) == DEMAND_TABLE
    assert demand_kind(agents.make("managed-rates")) == DEMAND_TABLE
    assert demand_kind(agents.make("managed-frequency")) == DEMAND_FREQUENCY
    assert demand_kind(make_managed("frequency", history_slots=20)) == DEMAND_FREQUENCY
    with pytest.raises(ValueError, match="'managed-lstm' is not covered"):
        demand_kind(ManagedAgent(PredictedDemand(_lstm_like())))

    class Later(NextRequests):
        """A subclass may compute otherwise: not covered."""

    with pytest.raises(ValueError, match="'managed-later' is not covered"):
        demand_kind(ManagedAgent(Later(), name="managed-later"))


def _lstm_like() -> Any:
    """A predictor of another class than the covered ones (the LSTM's, without torch)."""
    from agents.predictors.frequency import FrequencyPredictor

    class Other(FrequencyPredictor):
        name = "lstm"

    return Other()


def test_algorithm2_equals_the_python_one_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(200):
        P = int(rng.integers(1, 30))
        # few distinct values, so that equal scores and bounds met exactly are common
        probability = rng.choice([0.0, 0.05, 0.1, 0.5, 1.0], P)
        fidelity = rng.choice([0.0, 0.5, 0.6, 0.8, 1.0], P)
        held = rng.choice([0.0, 0.0, 1.0], P).astype(np.float32)
        flying = rng.choice([0.0, 0.0, 0.0, 1.0], P).astype(np.float32)
        threshold, min_fidelity = rng.choice([0.0, 0.05, 0.5]), rng.choice([0.0, 0.6])
        length = int(rng.integers(1, 10))
        want = algorithm2(probability, fidelity, held + flying, threshold, min_fidelity, length)
        out = np.full(length, P, dtype=np.int64)
        found = algorithm2_into(probability, fidelity, held, flying, threshold, min_fidelity, out)
        assert out.tolist() == want.tolist()
        assert found == int((want < P).sum())


def test_the_frequency_and_oracle_inputs_by_hand():
    counts = np.zeros((24, 4), dtype=np.int64)
    out = np.full(3, -1.0)
    frequency_predict(counts, 0, 240, out)
    assert out.tolist() == [0.0, 0.0, 0.0]  # no request in the hour yet
    frequency_observe(counts, 5, 240, np.array([0, 2, 2, 2]), 1)  # hour 0
    frequency_observe(counts, 10, 240, np.array([1, 0]), 1)  # hour 1
    frequency_observe(counts, 11, 240, np.array([0]), -1)  # slot 11 leaves a window
    assert counts[:2].tolist() == [[1, 0, 3, 4], [0, 1, 0, 1]]
    frequency_predict(counts, 9, 240, out)
    assert out.tolist() == [0.25, 0.0, 0.75]
    frequency_predict(counts, 250, 240, out)  # hour 1 of day 2
    assert out.tolist() == [0.0, 1.0, 0.0]
    # requests of slots 0..3: pairs [1], [], [0, 2], [2]
    pair, starts = np.array([1, 0, 2, 2]), np.array([0, 1, 1, 3, 4])
    next_requests(pair, starts, 0, 2, out)
    assert out.tolist() == [1.0, 0.0, 1.0]  # slots 1 and 2
    next_requests(pair, starts, 2, 5, out)
    assert out.tolist() == [0.0, 0.0, 1.0]  # slot 3, then the episode's end
    next_requests(pair, starts, 3, 1, out)
    assert out.tolist() == [0.0, 0.0, 0.0]


def test_the_jitted_functions_equal_the_python_agent():
    code = textwrap.dedent(
        """
        import os
        os.environ["NUMBA_DISABLE_JIT"] = "0"
        import sys
        sys.path.insert(0, "tests")
        import test_compiled_managed as t
        for name in t.NAMES:
            t.assert_same_actions(name, {"episode_slots": 150}, seed=7)
        t.assert_same_actions("managed-oracle", {"preset": "physical", "episode_slots": 150}, 7)
        t.assert_same_actions(
            "managed-frequency", {"slots_per_day": 48, "episode_slots": 150}, 7, history_slots=10
        )
        print("ok")
        """
    )
    run_jitted(code, cwd=_root())


def _root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------- the study engine
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # the physical preset's physics (replace_oldest: no flushing) and its latency where covered
    "physical": {"preset": "physical", "signalling_latency": 0.0},
    "physical, flushing": {"preset": "physical", "signalling_latency": 0.0},
    # with its latency: pre-positions in flight count as held
    "physical, latency": {"preset": "physical"},
}


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("topology", ["erdos_renyi", "random_regular"])
@pytest.mark.parametrize("name", NAMES)
def test_the_compiled_engine_gives_the_scalar_rows(name: str, topology: str, preset: str):
    from test_compiled_agents import assert_same_rows

    from agents.study.compiled import covers

    kw = {"fill": "flush"} if preset == "physical, flushing" else {}
    agent = agents.make(name, **kw)
    cfg = agent_config(agent, {**PRESETS[preset], "topology": topology, "episode_slots": 150})
    assert covers(agent, cfg)
    rows = assert_same_rows(agent, cfg, [0, 5])
    if name != "managed" or preset not in ("physical", "physical, latency"):
        assert sum(row["prepositions_placed"] for row in rows) > 0  # the policy acted
