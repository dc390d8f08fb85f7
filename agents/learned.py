"""A trained stable-baselines3 model as an :class:`~agents.base.Agent` (registered as ``"sb3"``).

``agents.make("sb3", path="runs/ppo")`` (the run folder of ``spep train``, or its ``model.zip``) reads
``model.json`` for the algorithm and config, builds the policy network fresh, and loads only its
weights (``torch.load(weights_only=True)`` via stable-baselines3's ``load_from_zip_file`` with
``load_data=False``): no pickled object in the zip is ever unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import Agent, register
from spep_gym.env import SpepEnv

# Fields that fix the observation and action shapes: a model acts only where they are the same.
SHAPE_FIELDS = ("num_nodes", "queue_obs_size")


def run_folder(path: str | Path) -> Path:
    """The run folder of ``path`` (the folder itself or its ``model.zip``)."""
    p = Path(path)
    folder = p.parent if p.suffix == ".zip" else p
    if not (folder / "model.json").is_file():
        raise ValueError(
            f"path={str(path)!r} is invalid: allowed a `spep train` run folder or its model.zip (no model.json found)"
        )
    return folder


class SB3Agent(Agent):
    """Acts with a policy trained by ``spep train`` (PPO, MaskablePPO or DQN).

    Observations are normalised with the run's saved VecNormalize statistics. The model's preference
    list (``action_len`` entries when trained) is padded with "none" (or cut) to the environment's
    ``action_len``; MaskablePPO gets the environment's action mask.
    """

    def __init__(
        self,
        path: str | Path,
        deterministic: bool = True,
        name: str = "sb3",
        device: str = "cpu",
    ) -> None:
        super().__init__()
        from agents import training

        folder = run_folder(path)
        zip_path = Path(path) if Path(path).suffix == ".zip" else folder / "model.zip"
        self.meta = json.loads((folder / "model.json").read_text())
        self.algo = self.meta["algo"]
        self.name = name
        self.deterministic = deterministic
        self.train_config = training.config_from_json(self.meta["config"])
        self.env_config = {k: getattr(self.train_config, k) for k in SHAPE_FIELDS}
        stats = folder / "obs_stats.npz"
        self.obs_stats = training.load_obs_stats(stats) if stats.is_file() else None
        self.policy = _load_policy(self.algo, zip_path, self.train_config, self.meta, device)
        self.num_pairs = self.train_config.n * (self.train_config.n - 1) // 2

    def reset(self, seed: int | None = None, env: SpepEnv | None = None) -> None:
        super().reset(seed, env)
        if env is not None and env.num_pairs != self.num_pairs:
            raise ValueError(
                f"agent {self.name!r} was trained on {self.train_config.n} nodes "
                f"({self.num_pairs} node pairs); the environment has {env.num_pairs} node pairs"
            )

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        from agents import training

        obs = dict(observation)
        if self.obs_stats is not None:
            obs = training.normalize_obs(obs, self.obs_stats)
        P = self.num_pairs
        if self.algo == "maskable_ppo":
            mask = info.get("action_mask")
            if mask is None:
                mask = self._mask_from_observation(observation)
            k = len(self.policy.action_space.nvec)
            mask = np.asarray(mask, dtype=bool)[: P + 1]
            raw, _ = self.policy.predict(
                obs, deterministic=self.deterministic, action_masks=np.tile(mask, k)
            )
        else:
            raw, _ = self.policy.predict(obs, deterministic=self.deterministic)
        choices = np.asarray(raw, dtype=np.int64).reshape(-1)
        action_len = self.env.config.action_len if self.env is not None else len(choices)
        action = self.none_action(P, action_len)
        k = min(action_len, len(choices))
        action[:k] = choices[:k]
        return action

    def _mask_from_observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """``SpepEnv.action_masks()``'s first entry, rebuilt from the observation alone."""
        cfg = self.env.config if self.env is not None else self.train_config
        one = np.ones(self.num_pairs + 1, dtype=bool)
        full = float(np.sum(observation["prepositioned"])) >= cfg.max_prepositioned
        one[:-1] = (
            False if full or cfg.max_new_prepositions == 0 else observation["path_fidelity"] > 0
        )
        return one


def _load_policy(algo: str, zip_path: Path, cfg: Any, meta: dict[str, Any], device: str) -> Any:
    """The policy network of ``algo``, built from the training env's spaces, with the saved weights."""
    from stable_baselines3.common.save_util import load_from_zip_file

    from agents import training

    env = training.make_env(cfg, algo)
    kwargs = {
        "observation_space": env.observation_space,
        "action_space": env.action_space,
        "lr_schedule": lambda _: 0.0,
        **meta.get("policy_kwargs", {}),
    }
    policy: Any
    if algo == "ppo":
        from stable_baselines3.common.policies import MultiInputActorCriticPolicy

        policy = MultiInputActorCriticPolicy(**kwargs)
    elif algo == "maskable_ppo":
        from sb3_contrib.common.maskable.policies import MaskableMultiInputActorCriticPolicy

        policy = MaskableMultiInputActorCriticPolicy(**kwargs)
    elif algo == "dqn":
        from stable_baselines3.dqn.policies import MultiInputPolicy

        policy = MultiInputPolicy(**kwargs)
    else:
        raise ValueError(f"model.json algo={algo!r} is invalid: allowed ppo, maskable_ppo or dqn")
    _, params, _ = load_from_zip_file(zip_path, load_data=False, device=device)
    policy.load_state_dict(params["policy"])
    policy.set_training_mode(False)
    return policy.to(device)


register("sb3", SB3Agent)
