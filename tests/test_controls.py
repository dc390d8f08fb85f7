"""The managed control, its predictive agents and oracles (agents.controls), and the rate estimator.

The twin differs from every predictive agent only in its demand input; the oracles use its link
management; the distribution oracle reads no realisations.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from conftest import trace_config

import agents
from agents import run_episode
from agents.controls import (
    ManagedAgent,
    NextRequests,
    PredictedDemand,
    WorkloadRates,
    flushes,
)
from agents.predictors import Predictor
from agents.predictors.rates import RatePredictor, gamma_poisson_mean
from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv
from spep_gym.topology import pair_index_matrix
from spep_gym.workload import arrival_rates


class FixedPredictor(Predictor):
    """Predicts fixed probabilities."""

    name = "fixed"

    def __init__(self, probability: list[float]) -> None:
        super().__init__()
        self.probability = np.asarray(probability, dtype=np.float64)

    def _reset(self) -> None:
        pass

    def _observe(self, slot: int, pairs: np.ndarray) -> None:
        pass

    def _predict(self, slot: int) -> np.ndarray:
        return np.resize(self.probability, self.num_pairs)


# ---------------------------------------------------------------------- one decision, by hand

# 5 nodes, P = 10 node pairs; pair index of (s, d) from pair_index_matrix(5):
# (0,1)=0 (0,2)=1 (0,3)=2 (0,4)=3 (1,2)=4 (1,3)=5 (1,4)=6 (2,3)=7 (2,4)=8 (3,4)=9
FID = [0.8, 0.9, 0.5, 0.0, 0.7, 0.65, 0.0, 0.95, 0.6, 0.85]
PROB = [0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.3, 0.0, 0.6]


def _observation(queue: list[tuple[int, int, float]], held_fidelity: dict[int, float]) -> dict:
    q = np.zeros((32, 6), np.float32)
    mask = np.zeros(32, np.float32)
    for i, (s, d, f_req) in enumerate(queue):
        q[i, :3] = s, d, f_req
        mask[i] = 1
    held = np.zeros(10, np.float32)
    held_f = np.zeros(10, np.float32)
    for pair, f in held_fidelity.items():
        held[pair], held_f[pair] = 1, f
    return {
        "path_fidelity": np.array(FID, np.float32),
        "prepositioned": held,
        "prepositioned_fidelity": held_f,
        "prepositioned_in_flight": np.zeros(10, np.float32),
        "queue": q.reshape(-1),
        "queue_mask": mask,
        "arrivals": np.zeros(10, np.float32),
    }


def _agent(demand: Any = None, fill_reserve: int | None = 0, **fields: Any) -> ManagedAgent:
    agent = ManagedAgent(demand, fill_reserve=fill_reserve)
    cfg = SpepConfig(num_nodes=5, er_p=0.6, routing="highest_fidelity", **fields)
    agent.reset(seed=0, env=SpepEnv(cfg))
    return agent


def test_control_queue_then_demand_then_lowest_fidelity_fill() -> None:
    # queue: (0,3) path 0.5 -> in; (0,4) no path -> out; (2,3) held pair 0.9 >= 0.8 serves it ->
    # out; (1,3) held 0.6 < F_req 0.7 -> in; (0,3) again -> once
    obs = _observation(
        [(0, 3, 0.6), (0, 4, 0.6), (2, 3, 0.8), (1, 3, 0.7), (0, 3, 0.9)], {7: 0.9, 5: 0.6}
    )
    twin = _agent()
    # fill: feasible by path fidelity, low first: 2 (0.5), 8 (0.6), 5 (0.65), 4, 0, 9, 1, 7;
    # K = 8 places, 2 held, 2 queue entries: room for 4 fill pairs (2 and 5 already chosen)
    assert twin.act(obs, {}).tolist() == [2, 5, 8, 4, 0, 9, 10, 10]
    # the demand part: Algorithm 2 on PROB (pair 3 has no path; 7 is held): 9; room for 3 fill
    predictive = _agent(PredictedDemand(FixedPredictor(PROB)))
    assert predictive.act(obs, {"next_slot": 0, "arrived": []}).tolist() == [
        2,
        5,
        9,
        8,
        4,
        0,
        10,
        10,
    ]
    # without info["arrived"] the arrivals come from the observation's counts (SB3's predict)
    counted = PredictedDemand(RatePredictor())
    reader = _agent(counted)
    reader.act({**obs, "arrivals": np.eye(10, dtype=np.float32)[3] * 2}, {})
    reader.act(obs, {"next_slot": 2, "arrived": [{"source": 2, "destination": 4}]})
    assert counted.predictor._hourly.counts.sum(axis=0).tolist() == [0, 0, 0, 2, 0, 0, 0, 0, 1, 0]
    assert "demand=PredictedDemand" in repr(reader) and "demand=None" in repr(twin)
    # fill_reserve leaves places free: 8 - 2 reserved - 2 held - 2 queue = 2 fill pairs; the
    # default reserves max_new_prepositions (2, or 3 here)
    assert _agent(fill_reserve=2).act(obs, {}).tolist() == [2, 5, 8, 4, 10, 10, 10, 10]
    assert _agent(fill_reserve=None).act(obs, {}).tolist() == [2, 5, 8, 4, 10, 10, 10, 10]
    assert _agent(fill_reserve=None, max_new_prepositions=3).act(obs, {}).tolist()[:4] == [
        2,
        5,
        8,
        10,
    ]


def test_control_without_a_blocking_link_layer_spends_no_link_pair() -> None:
    obs = _observation([(0, 3, 0.6)], {})
    twin = _agent(link_pool_policy="replace_oldest")
    assert twin.act(obs, {}).tolist() == [10] * 8
    predictive = _agent(PredictedDemand(FixedPredictor(PROB)), link_pool_policy="replace_oldest")
    assert predictive.act(obs, {"next_slot": 0, "arrived": []}).tolist() == [9, 7, *[10] * 6]
    assert flushes("auto", "block") and not flushes("auto", "replace_oldest")
    assert flushes("flush", "replace_oldest") and not flushes("none", "block")


def test_control_equals_its_baseline_where_flushing_cannot_pay() -> None:
    cfg = SpepConfig.tiny(episode_slots=120, link_pool_policy="replace_oldest")
    rows = [run_episode(name, seed=3, config=cfg) for name in ("managed", "highest_fidelity")]
    for row in rows:
        row.pop("agent"), row.pop("wall_time_s")
    assert rows[0] == rows[1] and rows[0]["prepositions_placed"] == 0


# ---------------------------------------------------------------------- twins and oracles


def _lockstep(agent: ManagedAgent, cfg: SpepConfig, seed: int, compare: Any) -> int:
    """Run ``agent`` on ``cfg``; call ``compare(obs, info, env, action, twin)`` before every step."""
    env = SpepEnv(cfg.replace(routing="highest_fidelity"))
    obs, info = env.reset(seed=seed)
    agent.reset(seed=seed, env=env)
    twin = ManagedAgent()
    twin.reset(seed=seed, env=env)
    truncated, placed = False, 0
    while not truncated:
        action = agent.act(obs, info)
        compare(obs, info, env, action, twin)
        obs, _, _, truncated, info = env.step(action)
        placed += len(info["placed"])
    return placed


def test_predictor_that_predicts_nothing_makes_the_twins_actions() -> None:
    cfg = SpepConfig.tiny(episode_slots=200)

    def same(obs: dict, info: dict, env: SpepEnv, action: np.ndarray, twin: ManagedAgent) -> None:
        assert action.tolist() == twin.act(obs, info).tolist()

    nothing = ManagedAgent(PredictedDemand(FixedPredictor([0.0])))
    assert _lockstep(nothing, cfg, seed=4, compare=same) > 0


def test_twin_reads_no_demand_arrivals_or_time() -> None:
    cfg = SpepConfig.tiny(episode_slots=200)
    rng = np.random.default_rng(0)

    def blind(obs: dict, info: dict, env: SpepEnv, action: np.ndarray, twin: ManagedAgent) -> None:
        other = dict(obs)
        for key in ("demand", "arrivals", "time_of_day"):
            other[key] = rng.integers(0, 5, size=obs[key].shape).astype(np.float32)
        fake = {"next_slot": int(rng.integers(1000)), "arrived": [{"pair": 0}] * 3}
        assert twin.act(other, fake).tolist() == twin.act(obs, info).tolist() == action.tolist()

    assert _lockstep(ManagedAgent(), cfg, seed=2, compare=blind) > 0


def test_equal_footing_oracle_is_the_control_where_no_request_is_next() -> None:
    cfg = SpepConfig.tiny(episode_slots=300)
    seen = {"quiet": 0, "known": 0}

    def footing(
        obs: dict, info: dict, env: SpepEnv, action: np.ndarray, twin: ManagedAgent
    ) -> None:
        w, t = env.sim.workload, env.sim.t
        upcoming = w.pair[(w.arrival > t) & (w.arrival <= t + 3)]
        mine = twin.act(obs, info)
        if len(upcoming) == 0:
            seen["quiet"] += 1
            assert action.tolist() == mine.tolist()
        else:  # the control's queue first; the oracle's pairs are known next requests
            seen["known"] += 1
            queue = twin._queue_pairs(obs, np.asarray(obs["path_fidelity"], np.float64))
            assert action[: len(queue)].tolist() == queue
            extra = [a for a in action[len(queue) :].tolist() if a not in mine.tolist()]
            assert set(extra) <= set(upcoming.tolist())

    oracle = agents.make("managed-oracle")
    assert oracle.reads_future and oracle.name == "managed-oracle"
    assert _lockstep(oracle, cfg, seed=1, compare=footing) > 0
    assert seen["quiet"] > 0 and seen["known"] > 0


def test_distribution_oracle_reads_the_rates_not_the_realisations() -> None:
    cfg = SpepConfig.tiny(episode_slots=300)
    env = SpepEnv(cfg)
    env.reset(seed=6)
    demand = WorkloadRates()
    demand.start(env, 6)
    slots = [0, 50, 95, 239]
    before = [demand.probability(t, np.zeros(0, np.int64), env) for t in slots]
    # other realisations of the same demand model: the probabilities do not move
    w = env.sim.workload
    env.sim.workload = dataclasses.replace(
        w,
        arrival=w.arrival[::-1].copy(),
        pair=np.zeros_like(w.pair),
        starts=np.zeros_like(w.starts),
    )
    other = WorkloadRates()
    other.start(env, 6)
    for t, p in zip(slots, before, strict=True):
        assert np.array_equal(other.probability(t, np.arange(5), env), p)
    # by hand: pair share x expected requests in slots t+1 .. t+15, Poisson
    idx = pair_index_matrix(cfg.n)
    s, d, weight = w.demand_pairs[0]
    share = weight / w.demand_pairs[:, 2].sum()
    expected = arrival_rates(cfg, 400)[96:111].sum()
    assert before[2][idx[int(s), int(d)]] == pytest.approx(1 - np.exp(-share * expected))
    assert np.count_nonzero(before[0]) == len(w.demand_pairs)


def test_distribution_oracle_refuses_a_trace(tmp_path: Any) -> None:
    import networkx as nx

    cfg = trace_config(tmp_path, nx.path_graph(4), [(1, 0, 2, 0.6, 5, 1.0)])
    agent = agents.make("managed-distribution")
    env = agent.make_env(cfg)
    obs, info = env.reset(seed=0)
    with pytest.raises(ValueError, match=r"'trace'.*distribution oracle"):
        agent.act(obs, info)


def test_next_requests_by_hand(tmp_path: Any) -> None:
    import networkx as nx

    cfg = trace_config(tmp_path, nx.path_graph(5), [(4, 0, 2, 0.6, 9, 1.0), (6, 1, 3, 0.6, 9, 1.0)])
    env = SpepEnv(cfg)
    env.reset(seed=0)
    idx = pair_index_matrix(5)
    oracle = NextRequests(horizon=3)
    assert np.flatnonzero(oracle.probability(0, np.zeros(0), env)).tolist() == []
    assert np.flatnonzero(oracle.probability(3, np.zeros(0), env)).tolist() == sorted(
        [idx[0, 2], idx[1, 3]]
    )
    with pytest.raises(ValueError, match="oracle_horizon"):
        NextRequests(horizon=0)


# ---------------------------------------------------------------------- registry and input


MANAGED = (
    "managed", "managed-frequency", "managed-lstm", "managed-arima", "managed-rates",
    "managed-oracle", "managed-distribution",
)  # fmt: skip


@pytest.mark.parametrize("name", MANAGED)
def test_every_managed_agent_runs_a_tiny_episode(name: str) -> None:
    kw: dict[str, Any] = {}
    if name == "managed-lstm":
        kw = {"min_train_slots": 60, "retrain_interval": 60, "first_epochs": 2, "epochs": 1}
    if name == "managed-arima":
        kw = {"refit_interval": 60, "bucket_slots": 5, "min_fit_buckets": 12, "max_p": 1,
              "max_q": 1, "max_d": 0, "max_pair_fits": 2}  # fmt: skip
    agent = agents.make(name, **kw)
    row = run_episode(agent, seed=5, config=SpepConfig.tiny(episode_slots=150))
    assert row["agent"] == name and row["prepositions_placed"] > 0
    assert agent.stateful == (name != "managed")
    assert agent.params()["class"] == "agents.controls.ManagedAgent"


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match="fill = 'x' is invalid"):
        ManagedAgent(fill="x")
    with pytest.raises(ValueError, match="fill_reserve = -1 is invalid: allowed None"):
        ManagedAgent(fill_reserve=-1)
    assert ManagedAgent().env_config == {"routing": "highest_fidelity"}
    with pytest.raises(ValueError, match="threshold = 2"):
        ManagedAgent(threshold=2)
    with pytest.raises(ValueError, match="history_slots is invalid for agent 'managed'"):
        agents.make("managed", history_slots=3)
    assert agents.make("managed-frequency", history_slots=48, fill="none").fill == "none"


# ---------------------------------------------------------------------- the rate estimator


def test_gamma_poisson_mean_by_hand() -> None:
    counts, exposure, prior = np.array([0.0, 10.0]), np.array([10.0, 10.0]), np.array([0.5, 0.5])
    # expected 5 each; 1/beta = ((0-5)^2 - 5 + (10-5)^2 - 5) / (100 * 0.5 * 2) = 40 / 100
    beta = 2.5
    want = (counts + beta * 0.5) / (10.0 + beta)
    assert gamma_poisson_mean(counts, exposure, prior) == pytest.approx(want)
    # no spread beyond Poisson noise, or no information: the prior mean
    assert gamma_poisson_mean(np.array([5.0, 5.0]), 10.0, prior).tolist() == [0.5, 0.5]
    assert gamma_poisson_mean(np.zeros(2), 0.0, prior).tolist() == [0.5, 0.5]


def test_rate_predictor_has_no_cold_start_and_learns_the_rates() -> None:
    p = RatePredictor()
    p.reset(num_nodes=4, slots_per_day=240, prediction_window=15, seed=0)
    assert not p.rates().any()
    p.observe(0, np.zeros(0, np.int64))
    assert p.predict(0).tolist() == [0.0] * 6  # nothing seen: nothing predicted
    p.observe(1, np.array([2]))
    first = p.predict(1)
    # hour 12 was never seen: it gets the pair's all-hours rate, not 0
    for t in range(2, 120):
        p.observe(t, np.zeros(0, np.int64))
    assert p.predict(119)[2] > 0 and first[2] == first.max()
    # a long Poisson history with business hours (x3 in hours 9-16, as SPEC 4): no pair-hour
    # spread beyond the shared profile, so each pair's rates pool its hours (its own mean rate
    # times the profile), not its hours' noisy counts
    rng = np.random.default_rng(0)
    rate = np.array([0.05, 0.0, 0.02, 0.0, 0.0, 0.01])
    busy = (np.arange(240) // 10 >= 9) & (np.arange(240) // 10 < 17)
    q = RatePredictor()
    q.reset(num_nodes=4)
    for t in range(240 * 30):
        q.observe(t, np.repeat(np.arange(6), rng.poisson(rate * (3.0 if busy[t % 240] else 1.0))))
    rates = q.rates()
    assert rates[12] / rates[0] == pytest.approx(np.full(6, 3.0), rel=0.15)  # one profile
    assert rates[0] == pytest.approx(rate, abs=0.005)
    # the window of slots 7200 .. 7214: ten slots of hour 0, five of hour 1
    assert q.predict(240 * 30 - 1) == pytest.approx(-np.expm1(-(10 * rates[0] + 5 * rates[1])))


def test_managed_rates_is_the_control_with_the_rate_predictor() -> None:
    agent = agents.make("managed-rates", threshold=0.1)
    assert isinstance(agent.demand, PredictedDemand)
    assert isinstance(agent.demand.predictor, RatePredictor) and agent.threshold == 0.1
