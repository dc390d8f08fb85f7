"""The long-run demand observation keys and the predictive-hit reward (issue 21, item 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import line_graph, trace_config
from gymnasium.utils.env_checker import check_env

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


def test_bad_half_lives_refused() -> None:
    for bad in ((0,), (2.5,), "x", (True,)):
        with pytest.raises(ValueError, match="demand_ema_half_lives"):
            SpepConfig(demand_ema_half_lives=bad)
    with pytest.raises(ValueError, match="demand_hour_obs"):
        SpepConfig(demand_hour_obs=1)


def test_compiled_engine_refuses_the_new_fields() -> None:
    for name, value in (*ON.items(), ("reward_predictive_hit", 1.0)):
        with pytest.raises(ValueError, match=f"{name}.*not covered by engine='compiled'"):
            SpepEnv(SpepConfig.tiny(**{name: value}), engine="compiled")


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
