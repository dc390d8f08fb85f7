"""The long-run demand observation keys and the predictive-hit reward (issue 21, item 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from batched_util import compare_runs, random_actions, small
from conftest import line_graph, trace_config
from gymnasium.utils.env_checker import check_env

from spep_gym.batched import BatchedSimulator
from spep_gym.batched.vector_env import SpepVectorEnv
from spep_gym.config import SpepConfig
from spep_gym.env import OBSERVATION_KEYS, SpepEnv
from spep_gym.workload import hour_of_day

ON = {"demand_ema_half_lives": (3, 40), "demand_hour_obs": True}


def test_default_observation_is_unchanged() -> None:
    env = SpepEnv(SpepConfig.tiny())
    obs, _ = env.reset(seed=0)
    assert tuple(obs) == OBSERVATION_KEYS
    assert set(env.observation_space.spaces) == set(OBSERVATION_KEYS)


def test_keys_pass_check_env_and_lie_in_the_space() -> None:
    env = SpepEnv(SpepConfig.tiny(**ON))
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    P = env.num_pairs
    assert obs["demand_ema"].shape == (2, P) and obs["demand_by_hour"].shape == (24, P)
    for _ in range(60):
        obs, *_ = env.step(np.full(env.config.action_len, P))
        assert env.observation_space.contains(obs)


def test_keys_equal_their_definition_from_past_arrivals_only() -> None:
    """The exponential means and hourly counts recomputed from the workload's arrivals <= t."""
    cfg = SpepConfig.tiny(slots_per_day=48, episode_slots=120, arrival_rate=0.6, **ON)
    env = SpepEnv(cfg)
    obs, _ = env.reset(seed=5)
    w = env.sim.workload
    P = env.num_pairs
    for t in range(cfg.episode_slots):
        past = w.arrival <= t  # arrived by this decision point; later requests are unknown
        counts = np.zeros((t + 1, P))
        np.add.at(counts, (w.arrival[past], w.pair[past]), 1.0)
        for row, h in enumerate(cfg.demand_ema_half_lives):
            d = 2.0 ** (-1.0 / h)
            weights = d ** np.arange(t, -1, -1)  # slot s weighs d ** (t - s)
            want = (weights @ counts) / weights.sum()
            np.testing.assert_allclose(obs["demand_ema"][row], want, rtol=1e-5, atol=1e-7)
        by_hour = np.zeros((24, P))
        np.add.at(by_hour, (hour_of_day(w.arrival[past], 48), w.pair[past]), 1.0)
        now = int(hour_of_day(t, 48))
        np.testing.assert_array_equal(obs["demand_by_hour"], np.roll(by_hour, -now, axis=0))
        if t + 1 < cfg.episode_slots:
            obs, *_ = env.step(np.full(cfg.action_len, P))


@pytest.mark.parametrize("fields", [ON, {"demand_ema_half_lives": (7,)}, {"demand_hour_obs": True}])
def test_batched_keys_equal_the_scalar_env(fields: dict) -> None:
    """Every observation key (the new ones included) of the batched core equals SpepEnv's."""
    compare_runs(small(slots_per_day=24, arrival_rate=0.4, **fields), [0, 1, 2], steps=40)


def test_batched_keys_after_a_reset_of_some_networks() -> None:
    cfg = small(episode_slots=30, **ON)
    sim = BatchedSimulator(cfg, num_envs=3, draws="scalar")
    sim.reset([0, 1, 2])
    P = sim.num_pairs
    for _ in range(10):
        sim.step(torch.full((3, cfg.action_len), P))
    sim.reset([7], rows=[1])
    env = SpepEnv(cfg)
    obs, _ = env.reset(seed=7)
    got = {k: v[1].numpy() for k, v in sim.observation().items()}
    for key in ("demand_ema", "demand_by_hour"):
        np.testing.assert_array_equal(obs[key], got[key])
    env0 = SpepEnv(cfg)
    env0.reset(seed=0)
    for _ in range(10):
        obs0, *_ = env0.step(np.full(cfg.action_len, P))
    np.testing.assert_array_equal(obs0["demand_ema"], sim.observation()["demand_ema"][0].numpy())


def test_bad_half_lives_refused() -> None:
    for bad in ((0,), (2.5,), "x", (True,)):
        with pytest.raises(ValueError, match="demand_ema_half_lives"):
            SpepConfig(demand_ema_half_lives=bad)
    with pytest.raises(ValueError, match="demand_hour_obs"):
        SpepConfig(demand_hour_obs=1)


# ---------------------------------------------------------------------- predictive-hit reward
def _hit_run(tmp_path: Path, place_at: int) -> tuple[list[float], int]:
    """A line 0-1-2 with one request (0, 2) arriving at slot 5; pair (0, 2) placed at ``place_at``."""
    cfg = trace_config(
        tmp_path, line_graph(3), [(5, 0, 2, 0.5, 9, 2)], reward_predictive_hit=10.0, action_len=1
    )
    env = SpepEnv(cfg)
    env.reset(seed=0)
    pair = int(env.sim.net.pair_index[0, 2])
    rewards, used = [], 0
    for t in range(8):
        _, reward, _, _, info = env.step(np.array([pair if t == place_at else env.num_pairs]))
        rewards.append(reward)
        used += info["prepositions_used"]
    return rewards, used


def test_predictive_hit_pays_only_a_pair_placed_before_its_request(tmp_path: Path) -> None:
    ahead, used = _hit_run(tmp_path, place_at=3)
    assert used == 1 and ahead[5] == 2.0 + 10.0  # served (weight 2) + one predictive hit
    same_slot, used = _hit_run(tmp_path, place_at=5)
    assert used == 1 and same_slot[5] == 2.0  # placed after the request arrived: no hit


def test_predictive_hit_reward_is_off_by_default(tmp_path: Path) -> None:
    cfg = trace_config(tmp_path, line_graph(3), [(5, 0, 2, 0.5, 9, 2)], action_len=1)
    env = SpepEnv(cfg)
    env.reset(seed=0)
    pair = int(env.sim.net.pair_index[0, 2])
    rewards = [env.step(np.array([pair if t == 3 else env.num_pairs]))[1] for t in range(8)]
    assert rewards[5] == 2.0


def test_predictive_hit_reward_batched_equals_scalar() -> None:
    cfg = small(
        num_nodes=6, er_p=0.5, p_gen=0.4, episode_slots=60, arrival_rate=1.0,
        reward_predictive_hit=0.7, **ON,
    )  # fmt: skip
    seeds = [0, 1, 2, 3]
    envs = [SpepEnv(cfg) for _ in seeds]
    for env, s in zip(envs, seeds, strict=True):
        env.reset(seed=s)
    vec = SpepVectorEnv(len(seeds), cfg, draws="scalar")
    vec.reset(seed=seeds)
    rng = np.random.default_rng(1)
    P, hits = envs[0].num_pairs, 0.0
    for step in range(cfg.episode_slots):
        acts = random_actions([e.action_masks() for e in envs], P, cfg.action_len, rng)
        out = [env.step(a) for env, a in zip(envs, acts, strict=True)]
        obs, rewards, _, _, _ = vec.step(acts)
        assert [o[1] for o in out] == rewards.tolist(), f"step {step}: rewards"
        assert vec.observation_space.contains(obs)
        for key in ("demand_ema", "demand_by_hour"):
            assert np.array_equal(np.stack([o[0][key] for o in out]), obs[key]), key
        hits += sum(o[1] - o[4]["rewards"]["served"] - o[4]["rewards"]["failed"] for o in out)
    assert hits > 0  # the run had predictive hits to pay
