"""Gymnasium wrappers for training agents on ``Spep-v0``; none changes what the environment reports.

* :class:`SinglePairAction`: one node pair per slot as ``Discrete(P + 1)``, for algorithms that need a
  discrete action (DQN).
* :class:`PrepositionBonus`: reward shaping for training only: a bonus per pre-positioned pair used.
* :class:`BlankObservation`: zeroes named observation keys (an input ablation); info is left as it is.
* :class:`EpisodeMetricsInfo`: ``info["episode_metrics"]`` at every episode's end, a ``TimeLimit``
  cut (``gym.make``'s ``max_episode_steps``) included, and the final ``success_rate`` at the top
  of ``info`` so stable-baselines3's ``Monitor(info_keywords=...)`` writes it beside the return.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class SinglePairAction(gym.ActionWrapper):
    """``Discrete(P + 1)``: the node pair to pre-position this slot, P meaning none.

    Action ``a`` becomes the preference list ``[a, P, ..., P]`` of the wrapped environment, so at most
    one pair is placed per slot. ``action_masks()`` is the first entry's mask ((P + 1,) bool).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        inner = env.action_space
        if not isinstance(inner, spaces.MultiDiscrete):
            raise ValueError(f"SinglePairAction wraps a MultiDiscrete action space, got {inner!r}")
        self.num_pairs = int(inner.nvec[0]) - 1
        self.action_len = len(inner.nvec)
        self.action_space = spaces.Discrete(self.num_pairs + 1)

    def action(self, action: Any) -> np.ndarray:
        """The preference list ``[action, P, ..., P]``."""
        out = np.full(self.action_len, self.num_pairs, dtype=np.int64)
        out[0] = int(np.asarray(action).reshape(()))
        return out

    def action_masks(self) -> np.ndarray:
        """The first entry's mask of the wrapped environment, ``(P + 1,)`` bool."""
        return np.asarray(self.env.get_wrapper_attr("action_masks")())[: self.num_pairs + 1]


class BlankObservation(gym.ObservationWrapper):
    """Zeroes the observation's ``keys`` before the agent sees them: an input ablation.

    Only the observation changes: the reward, ``info`` (the action mask, the requests that arrived)
    and the environment are as they were, so an agent that reads ``info`` or the environment still
    sees what those hold.

    Raises:
        ValueError: a key the observation does not have (or none), naming the allowed keys
            (``option``: how the message names the keys, e.g. ``--blank``).
    """

    def __init__(
        self, env: gym.Env, keys: tuple[str, ...] | list[str], option: str = "blank ="
    ) -> None:
        super().__init__(env)
        allowed = list(getattr(env.observation_space, "spaces", {}))
        unknown = [k for k in keys if k not in allowed]
        if unknown or not keys:
            raise ValueError(
                f"{option} {','.join(keys)!r} is invalid: {', '.join(map(repr, unknown)) or 'no key'}"
                f" is no observation key: allowed a comma list of {', '.join(allowed)}"
            )
        self.keys = tuple(keys)

    def observation(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The observation with each of ``keys`` zeroed (same shape and dtype)."""
        return {k: np.zeros_like(v) if k in self.keys else v for k, v in observation.items()}


class EpisodeMetricsInfo(gym.Wrapper):
    """At every episode's end, ``info["episode_metrics"]`` and its ``success_rate`` on top.

    ``SpepEnv`` gives ``episode_metrics`` at its own end (``episode_slots``); a wrapper that ends the
    episode sooner, ``TimeLimit`` (``gym.make(..., max_episode_steps=N)``), is outside the env, which
    cannot know. Put this wrapper outside it (``gym.make_vec(..., wrappers=[EpisodeMetricsInfo])``
    does): at any end it fills ``episode_metrics`` from the simulator's metrics so far, as the env
    would at its own end.
    """

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """The wrapped step; at the episode's end ``episode_metrics`` and ``success_rate`` in info."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            if "episode_metrics" not in info:
                info["episode_metrics"] = self.env.get_wrapper_attr("sim").metrics.summary()
            info["success_rate"] = info["episode_metrics"]["success_rate"]
        return obs, float(reward), terminated, truncated, info


class PrepositionBonus(gym.Wrapper):
    """Adds ``bonus`` to the reward for each pre-positioned pair that served a request this step.

    Shaping for training: serving from a pre-positioned pair is already rewarded, but whether that
    request would have been served on demand anyway is noise the learner must average out; the
    bonus makes "place the pairs that get used" visible at once. ``info["rewards"]`` gains a
    ``"preposition_bonus"`` term; ``info["metrics"]`` and the episode metrics are untouched.
    """

    def __init__(self, env: gym.Env, bonus: float) -> None:
        super().__init__(env)
        self.bonus = float(bonus)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """The wrapped step, plus ``bonus`` per pre-positioned pair used."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        extra = self.bonus * info["prepositions_used"]
        info["rewards"] = {**info["rewards"], "preposition_bonus": extra}
        return obs, float(reward) + extra, terminated, truncated, info
