"""The environments a policy trains on: ``Spep-v0`` with the training wrappers, vectorised for SB3.

The wrappers themselves are core API in :mod:`spep_gym.wrappers` (no heavy dependency); the batched
engine's ``VecEnv`` is :mod:`agents.rl.batched_vec` (loaded only when it is asked for).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.rl.config import BATCHED_ENGINES, ENGINES, gamma
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
    engine: str = "scalar",
    env_device: str = "cpu",
) -> Any:
    """``n_envs`` monitored training environments, env i seeded ``seed + i``.

    ``engine`` "scalar": a DummyVecEnv (or, with ``subproc``, SubprocVecEnv) of :func:`make_env`,
    each in a Monitor; "batched": one :class:`agents.rl.batched_vec.BatchedVecEnv` of ``n_envs``
    networks on ``env_device``, in a VecMonitor. Rewards (and, with ``norm_obs``, observations)
    are normalised by VecNormalize.
    """
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    check_engine(engine, cfg, subproc)
    if engine == "batched":
        from stable_baselines3.common.vec_env import VecMonitor

        from agents.rl.batched_vec import BatchedVecEnv

        batched = BatchedVecEnv(
            cfg, n_envs, env_device, preposition_bonus=preposition_bonus, single_pair=algo == "dqn"
        )
        batched.seed(seed)
        filename = None
        if monitor_dir is not None:
            Path(monitor_dir).mkdir(parents=True, exist_ok=True)
            filename = str(Path(monitor_dir, "batched"))  # batched.monitor.csv
        monitored = VecMonitor(batched, filename, info_keywords=("success_rate",))
        return VecNormalize(monitored, norm_obs=norm_obs, norm_reward=True, gamma=gamma(algo))
    vec = make_vec_env(
        lambda: make_env(cfg, algo, preposition_bonus),
        n_envs=n_envs,
        seed=seed,
        monitor_dir=monitor_dir,
        monitor_kwargs={"info_keywords": ("success_rate",)},
        vec_env_cls=SubprocVecEnv if subproc else DummyVecEnv,
    )
    return VecNormalize(vec, norm_obs=norm_obs, norm_reward=True, gamma=gamma(algo))


def check_engine(engine: str, cfg: SpepConfig, subproc: bool = False) -> None:
    """Refuse an engine, or a setting the engine does not take, before any work.

    Raises:
        ValueError: an unknown ``engine``; with "batched" or "torchrl", ``subproc`` or a config the
            batched core does not run (``trace``), each one line naming the setting.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is invalid: allowed one of {ENGINES}")
    if engine not in BATCHED_ENGINES:
        return
    if subproc:
        raise ValueError(
            f"--subproc is invalid with --engine {engine} (one process steps every network): "
            "allowed with --engine scalar"
        )
    from spep_gym.batched.simulator import check_supported

    try:
        check_supported(cfg)
    except ValueError as err:
        raise ValueError(f"--engine {engine}: {err}") from None
