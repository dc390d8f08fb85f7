"""``BatchedVecEnv``: the batched core as a stable-baselines3 ``VecEnv``, for ``--engine batched``.

Why: SB3 steps a ``DummyVecEnv`` one ``SpepEnv`` at a time in Python; ``SpepVectorEnv`` steps B
networks with one batched operation per phase. This adapter gives SB3 what it expects of a
``VecEnv`` (imports torch and stable-baselines3: load it lazily):

* ``step_wait`` returns ``(obs, rewards, dones, infos)`` with the auto-reset in the same step
  (``SpepVectorEnv``'s ``SAME_STEP`` mode): a network whose episode ended returns its new episode's
  first observation, and its info holds ``terminal_observation``;
* ``infos`` is a list of B dicts: ``TimeLimit.truncated`` in each (as ``DummyVecEnv`` sets it), and
  at an episode's end ``episode_metrics`` and ``success_rate`` as
  :class:`spep_gym.wrappers.EpisodeMetricsInfo` puts them (so ``VecMonitor(info_keywords=
  ("success_rate",))`` and the training callbacks read them);
* ``env_method("action_masks")`` gives each network's mask (sb3-contrib's ``get_action_masks``);
* the reward shaping of :class:`spep_gym.wrappers.PrepositionBonus` (``preposition_bonus``) and,
  for DQN, the action of :class:`spep_gym.wrappers.SinglePairAction` (``single_pair``).

With ``draws="scalar"`` it equals a ``DummyVecEnv`` of those wrappers over ``SpepEnv`` seeded alike,
step for step (tests/test_rl_batched.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv

from spep_gym.batched.vector_env import SpepVectorEnv
from spep_gym.config import SpepConfig

#: The methods ``env_method`` calls (each network's own value).
METHODS = ("action_masks", "render")


class BatchedVecEnv(VecEnv):
    """B networks of one config as an SB3 ``VecEnv`` over :class:`SpepVectorEnv`.

    Args:
        cfg: the config every network runs.
        num_envs: the batch size B.
        device: where the batched core runs (``"cpu"``, ``"cuda"``, ``"cuda:N"``); observations
            reach SB3 as numpy arrays either way.
        draws: ``"counter"`` (the batched core's own streams, fast) or ``"scalar"`` (the scalar
            environment's, equal to ``SpepEnv``; slow).
        preposition_bonus: reward per pre-positioned pair that served a request this step.
        single_pair: the action is ``Discrete(P + 1)``, one node pair per slot (DQN), as
            :class:`spep_gym.wrappers.SinglePairAction`; the masks are the first entry's.

    Attributes are shared by the batch: ``get_attr`` returns the vector env's value for every
    network (``episode_seed`` each network's own), ``set_attr`` sets it for all networks only.
    """

    def __init__(
        self,
        cfg: SpepConfig,
        num_envs: int,
        device: str = "cpu",
        draws: str = "counter",
        preposition_bonus: float = 0.0,
        single_pair: bool = False,
    ) -> None:
        self.venv = SpepVectorEnv(
            num_envs, cfg, device=device, draws=draws, autoreset_mode=AutoresetMode.SAME_STEP
        )
        self.config = cfg
        self.num_pairs = P = self.venv.num_pairs
        self.preposition_bonus = float(preposition_bonus)
        self.single_pair = bool(single_pair)
        action_space: spaces.Space[Any] = self.venv.single_action_space
        if self.single_pair:
            action_space = spaces.Discrete(P + 1)
        self._actions: np.ndarray | None = None
        self._masks: np.ndarray | None = None
        super().__init__(num_envs, self.venv.single_observation_space, action_space)

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> dict[str, np.ndarray]:
        """Reset every network with the seeds of :meth:`seed` (``seed + i``), then forget them."""
        if any(self._options):
            raise ValueError(
                f"reset options {self._options[0]!r} are invalid for the batched engine: "
                "allowed none"
            )
        obs, info = self.venv.reset(seed=list(self._seeds))
        self._reset_seeds()
        self._reset_options()
        self._masks = info["action_mask"]
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Keep the actions for :meth:`step_wait`."""
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[dict]]:
        """One slot in every network; SB3's ``(obs, rewards, dones, infos)``."""
        if self._actions is None:
            raise RuntimeError("call step_async() before step_wait()")
        actions, self._actions = self._actions, None
        if self.single_pair:
            first = actions.reshape(self.num_envs)
            actions = np.full((self.num_envs, self.config.action_len), self.num_pairs, np.int64)
            actions[:, 0] = first
        obs, rewards, terminated, truncated, info = self.venv.step(actions)
        self._masks = info["action_mask"]
        step_info = info.get("final_info", info)  # SAME_STEP: the ended step's counts and metrics
        rewards = np.asarray(rewards, dtype=np.float64)
        if self.preposition_bonus:
            rewards = rewards + self.preposition_bonus * step_info["prepositions_used"]
        dones = np.logical_or(terminated, truncated)
        timeouts = np.logical_and(truncated, np.logical_not(terminated))
        infos: list[dict[str, Any]] = [{"TimeLimit.truncated": bool(t)} for t in timeouts]
        for i in np.flatnonzero(dones).tolist():
            infos[i]["terminal_observation"] = {k: v[i] for k, v in info["final_obs"].items()}
            metrics = {k: _python(v[i]) for k, v in step_info["episode_metrics"].items()}
            infos[i]["episode_metrics"] = metrics
            infos[i]["success_rate"] = metrics["success_rate"]
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        """Release the vector environment."""
        self.venv.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """The attribute of each network in ``indices`` (shared by the batch but ``episode_seed``)."""
        rows = self._get_indices(indices)
        if attr_name == "episode_seed":
            return [int(self.venv.episode_seeds[i]) for i in rows]
        if attr_name in METHODS or attr_name in ("preposition_bonus", "single_pair"):
            value = getattr(self, attr_name)
        else:
            value = getattr(self.venv, attr_name)  # AttributeError when absent: has_attr's answer
        return [value for _ in rows]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Set an attribute of the whole batch (``indices`` must be all networks)."""
        rows = list(self._get_indices(indices))
        if sorted(rows) != list(range(self.num_envs)):
            raise ValueError(
                f"set_attr({attr_name!r}, indices={indices!r}) is invalid for the batched engine: "
                "its networks share their attributes: allowed indices=None (all networks)"
            )
        if attr_name == "preposition_bonus":
            self.preposition_bonus = float(value)
        else:
            setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        """``action_masks`` (each network's mask) or ``render`` (None) of the networks ``indices``."""
        rows = self._get_indices(indices)
        if method_name not in METHODS:
            raise AttributeError(
                f"env_method({method_name!r}) is not offered by the batched engine: allowed one of "
                f"{METHODS}"
            )
        if method_name == "render":
            return [None for _ in rows]
        masks = self.action_masks()
        return [masks[i] for i in rows]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        """False for every network: the batched engine has no Gymnasium wrappers."""
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """The batched core renders nothing."""
        return [None for _ in range(self.num_envs)]

    # ------------------------------------------------------------------ masks
    def action_masks(self) -> np.ndarray:
        """(B, action_len * (P + 1)) bool, or (B, P + 1) with ``single_pair``: the masks now."""
        if self._masks is None:
            raise RuntimeError("call reset() before action_masks()")
        if self.single_pair:
            return self._masks[:, : self.num_pairs + 1]
        return self._masks

    def _get_indices(self, indices: Any) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int | np.integer):
            return [int(indices)]
        return [int(i) for i in indices]


def _python(value: Any) -> Any:
    """A metric as ``Metrics.summary()`` gives it: a Python int or float, None for NaN."""
    item = value.item() if hasattr(value, "item") else value
    if isinstance(item, float) and item != item:
        return None
    return item
