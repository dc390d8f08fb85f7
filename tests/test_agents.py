"""Agents: Algorithm 2 on hand-made predictions, baselines' routing and the oracle on hand-made
networks, and short end-to-end runs of every registered agent."""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import pytest
from conftest import trace_config

import agents
from agents import run_episode
from agents.oracle import OracleAgent
from agents.predictors import Predictor
from agents.spep import SpepAgent, algorithm2
from agents.study.evaluate import agent_config
from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv
from spep_gym.metrics import FAILED, ON_DEMAND, SERVED
from spep_gym.topology import pair_index_matrix


class FixedPredictor(Predictor):
    """Predicts fixed probabilities; records what it was shown."""

    name = "fixed"

    def __init__(self, probability: list[float]) -> None:
        super().__init__()
        self.probability = np.asarray(probability, dtype=np.float64)
        self.seen: list[tuple[int, list[int]]] = []

    def _reset(self) -> None:
        self.seen = []

    def _observe(self, slot: int, pairs: np.ndarray) -> None:
        self.seen.append((slot, sorted(pairs.tolist())))

    def _predict(self, slot: int) -> np.ndarray:
        return self.probability


# ---------------------------------------------------------------------- Algorithm 2

# P = 10 pairs (5 nodes). Worked by hand (threshold 0.05, min_fidelity 0.6):
#   pair: 0     1     2     3     4     5     6     7     8     9
#   prob: 0.5   0.04  0.3   0.6   0.9   0.2   0.05  0.4   0.3   0.8
#   fid:  0.8   0.9   0.8   0.4   0.7   0.9   0.9   0.75  0.8   0.0
#   held: 0     0     0     0     1     0     0     0     0     0
# out: 1 (prob < threshold), 3 (fidelity < min), 4 (held), 9 (no path: fidelity 0)
# scores: 0 -> 0.40, 2 -> 0.24, 5 -> 0.18, 6 -> 0.045, 7 -> 0.30, 8 -> 0.24
# by score, ties (2 and 8) by lower index: 0, 7, 2, 8, 5, 6
PROB = [0.5, 0.04, 0.3, 0.6, 0.9, 0.2, 0.05, 0.4, 0.3, 0.8]
FID = [0.8, 0.9, 0.8, 0.4, 0.7, 0.9, 0.9, 0.75, 0.8, 0.0]
HELD = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]


def test_algorithm2_filters_and_sorts_by_score() -> None:
    action = algorithm2(np.array(PROB), np.array(FID, np.float32), np.array(HELD), 0.05, 0.6, 8)
    assert action.tolist() == [0, 7, 2, 8, 5, 6, 10, 10]


def test_algorithm2_truncates_to_action_len() -> None:
    action = algorithm2(np.array(PROB), np.array(FID), np.array(HELD), 0.05, 0.6, 3)
    assert action.tolist() == [0, 7, 2]


def test_algorithm2_threshold_and_min_fidelity() -> None:
    # threshold 0.3: 5 (0.2) and 6 (0.05) drop out; min_fidelity 0.8: 7 (0.75) too
    action = algorithm2(np.array(PROB), np.array(FID), np.array(HELD), 0.3, 0.8, 8)
    assert action.tolist() == [0, 2, 8, 10, 10, 10, 10, 10]
    # with min_fidelity 0 a pair without a path (fidelity 0) is still no candidate
    action = algorithm2(np.array(PROB), np.array(FID), np.zeros(10), 0.0, 0.0, 10)
    assert 9 not in action.tolist() and 4 in action.tolist()
    nothing = algorithm2(np.array(PROB), np.array(FID), np.array(HELD), 0.95, 0.6, 4)
    assert nothing.tolist() == [10] * 4


def test_spep_agent_feeds_arrivals_and_applies_algorithm2() -> None:
    predictor = FixedPredictor(PROB)
    agent = SpepAgent(predictor, threshold=0.05, min_fidelity=0.6)
    assert agent.name == "spep-fixed" and agent.env_config == {"routing": "shortest"}
    obs = {"path_fidelity": np.array(FID, np.float32), "prepositioned": np.array(HELD, np.float32)}
    agent.reset(seed=0, env=SpepEnv(SpepConfig(num_nodes=5, er_p=0.6)))  # P = 10 node pairs
    idx = pair_index_matrix(5)
    info = {"next_slot": 0, "arrived": [{"source": 3, "destination": 1, "pair": int(idx[1, 3])}]}
    assert agent.act(obs, info).tolist() == [0, 7, 2, 8, 5, 6, 10, 10]
    # without "pair" the pair comes from the nodes
    info = {
        "next_slot": 2,
        "arrived": [{"source": 4, "destination": 0}, {"source": 0, "destination": 1}],
    }
    agent.act(obs, info)
    assert predictor.num_nodes == 5
    assert predictor.seen == [(0, [int(idx[1, 3])]), (1, []), (2, sorted([idx[0, 4], idx[0, 1]]))]


def test_spep_agent_on_env_proposes_only_feasible_unheld_pairs() -> None:
    env = SpepEnv(SpepConfig.tiny(episode_slots=80))
    agent = agents.make("spep-frequency", threshold=0.0, min_fidelity=0.0)
    obs, info = env.reset(seed=3)
    agent.reset(seed=3, env=env)
    placed = 0
    for _ in range(80):
        action = agent.act(obs, info)
        P = env.num_pairs
        chosen = action[action < P]
        assert np.all(obs["path_fidelity"][chosen] > 0)
        assert np.all(obs["prepositioned"][chosen] == 0)
        score = agent.predictor.predict(env.sim.t)[chosen] * obs["path_fidelity"][chosen]
        assert np.all(np.diff(score) <= 0)  # best first
        obs, _, _, truncated, info = env.step(action)
        placed += len(info["placed"])
        if truncated:
            break
    assert placed > 0


def test_make_passes_kwargs_to_predictor_and_agent() -> None:
    a = agents.make("spep-frequency", history_slots=480, threshold=0.2, routing="highest_fidelity")
    assert isinstance(a, SpepAgent)
    assert a.threshold == 0.2 and a.env_config == {"routing": "highest_fidelity"}
    assert a.predictor.history_slots == 480  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="threshold"):
        agents.make("spep-frequency", threshold=1.5)
    with pytest.raises(ValueError, match=r"unknown agent .spep-frequenc.*spep-frequency"):
        agents.make("spep-frequenc")


# ---------------------------------------------------------------------- baselines' routing


def two_path_graph(short_p_gen: float) -> nx.Graph:
    """0-1-2 (2 hops, F0 0.7) and 0-3-4-2 (3 hops, F0 0.99); every link p_gen 1 except the
    short path's, which generate with ``short_p_gen``."""
    g = nx.Graph()
    g.add_edges_from([(0, 1), (1, 2)], F0=0.7, p_gen=short_p_gen)
    g.add_edges_from([(0, 3), (3, 4), (4, 2)], F0=0.99, p_gen=1.0)
    return g


# one request per slot, so each meets a full network; F_req 0.55 below both paths' fidelity
REQUESTS = [(s, 0, 2, 0.55, s + 3, 1.0) for s in (5, 12, 20, 31)]
SHORT_F = ((3 * 0.7 + 1) / 4) ** 2  # paper eq. 2 over two fresh 0.7 pairs
LONG_F = ((3 * 0.99 + 1) / 4) ** 3


@pytest.mark.parametrize(
    ("agent", "short_p_gen", "hops", "fidelity"),
    [
        ("shortest", 1.0, 2, SHORT_F),  # fewest hops over links that hold a pair
        ("reactive", 1.0, 2, SHORT_F),  # the static path, which holds pairs
        ("highest_fidelity", 1.0, 3, LONG_F),  # the best path, though longer
        ("shortest", 0.0, 3, LONG_F),  # the short path never holds pairs: go around
        ("highest_fidelity", 0.0, 3, LONG_F),
        ("reactive", 0.0, 0, None),  # bound to the static path: never served
    ],
)
def test_baseline_routing_on_hand_made_network(
    tmp_path: Any, agent: str, short_p_gen: float, hops: int, fidelity: float | None
) -> None:
    cfg = trace_config(tmp_path, two_path_graph(short_p_gen), REQUESTS, rho=1.0)
    row = run_episode(agent, seed=0, config=cfg, return_records=True)
    rec = row["records"]
    assert row["agent"] == agent and row["arrived"] == len(REQUESTS)
    if fidelity is None:
        assert rec["status"].tolist() == [FAILED] * len(REQUESTS)
        assert row["served"] == 0
        return
    assert rec["status"].tolist() == [SERVED] * len(REQUESTS)
    assert rec["how"].tolist() == [ON_DEMAND] * len(REQUESTS)
    assert rec["end_slot"].tolist() == [r[0] for r in REQUESTS]  # served on arrival
    assert rec["hops"].tolist() == [hops] * len(REQUESTS)
    np.testing.assert_allclose(rec["fidelity"], fidelity, rtol=1e-12)


def test_baselines_never_preposition_and_differ_only_in_routing() -> None:
    for name in ("reactive", "shortest", "highest_fidelity", "noop"):
        a = agents.make(name)
        assert a.env_config == ({} if name == "noop" else {"routing": name})
        row = run_episode(a, seed=1, config=SpepConfig.tiny())
        assert row["prepositions_placed"] == 0


def test_random_agent_places_only_feasible_pairs_and_is_seeded() -> None:
    rows = [run_episode("random", seed=2, config=SpepConfig.tiny()) for _ in range(2)]
    assert rows[0]["prepositions_placed"] > 0
    rows[0].pop("wall_time_s"), rows[1].pop("wall_time_s")
    assert rows[0] == rows[1]


# ---------------------------------------------------------------------- oracle


def test_oracle_prepositions_exactly_the_upcoming_pairs(tmp_path: Any) -> None:
    g = nx.path_graph(5)
    requests = [
        (10, 0, 2, 0.6, 14, 1.0),
        (11, 1, 3, 0.6, 15, 1.0),
        (11, 0, 4, 0.6, 15, 3.0),  # same slot, higher priority: first
        (13, 3, 2, 0.6, 16, 2.0),  # direction does not matter: pair {2, 3}
        (14, 0, 2, 0.6, 18, 1.0),
    ]
    cfg = trace_config(tmp_path, g, requests, episode_slots=30)
    env = SpepEnv(cfg)
    oracle = OracleAgent()
    assert oracle.reads_future and oracle.name == "spep-oracle"
    idx = pair_index_matrix(5)
    P = env.num_pairs
    obs, info = env.reset(seed=0)
    oracle.reset(seed=0, env=env)
    actions = {}
    while env.sim.t <= 14:
        t = env.sim.t
        actions[t] = oracle.act(obs, info).tolist()
        obs, _, _, _, info = env.step(np.full(cfg.action_len, P))  # place nothing: nothing held
    none = [P] * cfg.action_len
    assert actions[6] == none
    assert actions[7] == [idx[0, 2], *none[1:]]  # slot 10 within 8..10
    assert actions[9] == [idx[0, 2], idx[0, 4], idx[1, 3], *none[3:]]
    assert actions[10] == [idx[0, 4], idx[1, 3], idx[2, 3], *none[3:]]
    assert actions[11] == [idx[2, 3], idx[0, 2], *none[2:]]
    assert actions[14] == none
    # pairs already held are skipped
    obs, info = env.reset(seed=0)
    while env.sim.t < 9:
        obs, *_ = env.step(np.full(cfg.action_len, P))
    obs_held = {**obs, "prepositioned": obs["prepositioned"].copy()}
    obs_held["prepositioned"][idx[0, 4]] = 1
    assert oracle.act(obs_held, {}).tolist() == [idx[0, 2], idx[1, 3], *none[2:]]


def test_oracle_places_only_upcoming_pairs() -> None:
    cfg = SpepConfig.tiny(episode_slots=150)
    env = SpepEnv(agent_config(OracleAgent(), cfg))
    oracle = OracleAgent()
    obs, info = env.reset(seed=4)
    oracle.reset(seed=4, env=env)
    w = env.sim.workload
    truncated = False
    placed = 0
    while not truncated:
        t = env.sim.t
        upcoming = set(w.pair[(w.arrival > t) & (w.arrival <= t + 3)].tolist())
        obs, _, _, truncated, info = env.step(oracle.act(obs, info))
        assert {p["pair"] for p in info["placed"]} <= upcoming
        placed += len(info["placed"])
    assert placed > 0


# ---------------------------------------------------------------------- every agent runs


MADE_BY_NAME = (
    "noop", "reactive", "shortest", "highest_fidelity", "random",
    "spep-frequency", "spep-lstm", "spep-arima", "spep-oracle",
)  # fmt: skip


def test_registry_holds_every_agent_made_by_name() -> None:
    assert set(MADE_BY_NAME) <= set(agents.names())


@pytest.mark.parametrize("name", MADE_BY_NAME)
def test_every_agent_runs_a_tiny_episode(name: str) -> None:
    kw: dict[str, Any] = {}
    if name == "spep-lstm":  # train within the tiny run: first training after 60 slots
        kw = {"min_train_slots": 60, "retrain_interval": 60, "first_epochs": 2, "epochs": 1}
    if name == "spep-arima":
        kw = {
            "refit_interval": 60,
            "bucket_slots": 5,
            "min_fit_buckets": 12,
            "max_p": 1,
            "max_q": 1,
            "max_d": 0,
            "max_pair_fits": 2,
        }
    agent = agents.make(name, **kw)
    cfg = SpepConfig.tiny(episode_slots=150)
    row = run_episode(agent, seed=5, config=cfg)
    assert row["agent"] == name and row["slots"] == 150
    assert row["served"] + row["failed"] + row["pending"] == row["arrived"] > 0
    if name.startswith("spep"):
        assert row["prepositions_placed"] > 0
