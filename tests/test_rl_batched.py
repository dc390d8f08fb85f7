"""``spep train --engine batched``: the SB3 ``VecEnv`` over the batched core equals a ``DummyVecEnv`` of
the scalar env with the same draws, trains, checkpoints, resumes and evaluates on ``SpepEnv``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan, VecMonitor, VecNormalize

from agents.rl.batched_vec import BatchedVecEnv
from agents.rl.envs import make_env
from spep_gym.config import SpepConfig


def masked_random_actions(
    masks: np.ndarray, rng: np.random.Generator, entries: int | None
) -> np.ndarray:
    """A uniformly random allowed choice per entry (``entries`` None: one Discrete action)."""
    if entries is None:
        return np.array([rng.choice(np.flatnonzero(m)) for m in masks])
    rows = masks.reshape(len(masks), entries, -1)
    return np.array([[rng.choice(np.flatnonzero(e)) for e in row] for row in rows])


@pytest.mark.parametrize("algo", ["maskable_ppo", "dqn"])
def test_adapter_equals_a_dummy_vec_env_of_the_scalar_env_with_the_same_draws(algo: str) -> None:
    """Observations, masks, rewards (shaping included), dones and infos, over two episode ends."""
    cfg = SpepConfig.tiny(episode_slots=20)
    B, bonus = 3, 0.5
    ref = make_vec_env(
        lambda: make_env(cfg, algo, bonus), n_envs=B, seed=5, vec_env_cls=DummyVecEnv
    )
    bat = BatchedVecEnv(cfg, B, draws="scalar", preposition_bonus=bonus, single_pair=algo == "dqn")
    bat.seed(5)
    assert bat.observation_space == ref.observation_space
    assert bat.action_space == ref.action_space
    assert is_masking_supported(bat)
    entries = None if algo == "dqn" else cfg.action_len
    rng = np.random.default_rng(0)
    obs_ref, obs = ref.reset(), bat.reset()
    assert bat.get_attr("episode_seed") == ref.get_attr("episode_seed") == [5, 6, 7]
    ends = used = 0
    for _ in range(45):
        for key, space in ref.observation_space.spaces.items():
            assert obs[key].dtype == obs_ref[key].dtype == space.dtype, key
            np.testing.assert_array_equal(obs[key], obs_ref[key], err_msg=key)
        masks = get_action_masks(bat)
        np.testing.assert_array_equal(masks, get_action_masks(ref))
        actions = masked_random_actions(masks, rng, entries)
        obs_ref, r_ref, d_ref, i_ref = ref.step(actions)
        obs, r, d, infos = bat.step(actions)
        assert r.dtype == r_ref.dtype and d.dtype == d_ref.dtype
        np.testing.assert_array_equal(r, r_ref)
        np.testing.assert_array_equal(d, d_ref)
        used += sum(i["prepositions_used"] for i in i_ref)
        for mine, theirs in zip(infos, i_ref, strict=True):
            assert mine["TimeLimit.truncated"] == theirs["TimeLimit.truncated"]
            assert ("terminal_observation" in mine) == ("terminal_observation" in theirs)
            if "terminal_observation" not in theirs:
                assert "success_rate" not in mine
                continue
            ends += 1
            for key, value in theirs["terminal_observation"].items():
                np.testing.assert_array_equal(mine["terminal_observation"][key], value)
            assert mine["episode_metrics"] == theirs["episode_metrics"]
            assert mine["success_rate"] == theirs["success_rate"]
        assert bat.get_attr("episode_seed") == ref.get_attr("episode_seed")
    assert ends == 2 * B  # steps 20 and 40 ended every episode
    assert used > 0  # the bonus was paid and matched


def test_adapter_under_vec_monitor_and_vec_normalize_writes_the_success_rate(
    tmp_path: Path,
) -> None:
    cfg = SpepConfig.tiny(episode_slots=10)
    vec = VecCheckNan(BatchedVecEnv(cfg, 4), raise_exception=True)
    vec.seed(0)
    monitored = VecMonitor(vec, str(tmp_path / "batched"), info_keywords=("success_rate",))
    env = VecNormalize(monitored, norm_obs=False, gamma=0.95)
    env.reset()
    rng = np.random.default_rng(1)
    episodes = []
    for _ in range(10):
        actions = masked_random_actions(get_action_masks(env), rng, cfg.action_len)
        _, _, dones, infos = env.step(actions)
        episodes += [i["episode"] for i in infos if "episode" in i]
    assert dones.all() and len(episodes) == 4
    assert all(e["l"] == 10 and "success_rate" in e for e in episodes)
    rows = (tmp_path / "batched.monitor.csv").read_text().splitlines()
    assert rows[1] == "r,l,t,success_rate" and len(rows) == 2 + 4


def test_adapter_attributes_methods_and_their_refusals() -> None:
    bat = BatchedVecEnv(SpepConfig.tiny(episode_slots=10), 3, preposition_bonus=1.0)
    bat.seed(4)
    bat.reset()
    assert bat.get_attr("render_mode") == [None, None, None]
    assert bat.get_attr("num_pairs", indices=[2]) == [bat.num_pairs]
    assert bat.get_attr("episode_seed", indices=1) == [5]
    assert bat.has_attr("action_masks") and not bat.has_attr("no_such_thing")
    masks = bat.env_method("action_masks", indices=[0, 2])
    np.testing.assert_array_equal(np.stack(masks), bat.action_masks()[[0, 2]])
    assert bat.env_is_wrapped(VecMonitor) == [False, False, False]
    bat.set_attr("preposition_bonus", 2.0)
    assert bat.get_attr("preposition_bonus") == [2.0] * 3
    with pytest.raises(ValueError, match="share their attributes: allowed indices=None"):
        bat.set_attr("preposition_bonus", 0.0, indices=[0])
    with pytest.raises(AttributeError, match=r"env_method\('reset'\).*allowed one of"):
        bat.env_method("reset")
    bat.set_options({"x": 1})
    with pytest.raises(ValueError, match="reset options"):
        bat.reset()
