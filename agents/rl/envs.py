"""The environments a policy trains on: ``Spep-v0`` with the training wrappers, vectorised for SB3.

The wrappers themselves are core API in :mod:`spep_gym.wrappers` (no heavy dependency).
"""

from __future__ import annotations

from typing import Any

from agents.rl.config import gamma
from spep_gym.config import SpepConfig


def make_env(cfg: SpepConfig, algo: str, preposition_bonus: float = 0.0) -> Any:
    """One training environment: ``SpepEnv`` (+ reward shaping, + ``SinglePairAction`` for DQN)."""
    from spep_gym.env import SpepEnv
    from spep_gym.wrappers import EpisodeMetricsInfo, PrepositionBonus, SinglePairAction

    env: Any = EpisodeMetricsInfo(SpepEnv(cfg))
    if preposition_bonus:
        env = PrepositionBonus(env, preposition_bonus)
    return SinglePairAction(env) if algo == "dqn" else env


def make_vec(
    cfg: SpepConfig,
    algo: str,
    n_envs: int,
    seed: int,
    monitor_dir: str | None = None,
    subproc: bool = False,
    norm_obs: bool = True,
    preposition_bonus: float = 0.0,
) -> Any:
    """``n_envs`` monitored training environments, env i seeded ``seed + i``.

    Rewards (and, with ``norm_obs``, observations) are normalised by VecNormalize.
    """
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    vec = make_vec_env(
        lambda: make_env(cfg, algo, preposition_bonus),
        n_envs=n_envs,
        seed=seed,
        monitor_dir=monitor_dir,
        monitor_kwargs={"info_keywords": ("success_rate",)},
        vec_env_cls=SubprocVecEnv if subproc else DummyVecEnv,
    )
    return VecNormalize(vec, norm_obs=norm_obs, norm_reward=True, gamma=gamma(algo))
