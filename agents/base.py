"""The ``Agent`` protocol every policy follows, and the registry that makes agents by name.

An agent sees only what the environment hands it (observation and info), never its internals; the
oracle, a reference that reads the future workload, is the one named exception
(``reads_future = True``). Every agent also has stable-baselines3's ``predict`` signature, so SB3's
``evaluate_policy`` takes any agent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv


class Agent:
    """Base class: override :meth:`act` (and :meth:`reset` when the agent keeps state).

    ``env_config`` holds the environment settings the agent is defined with (for example its
    on-demand routing strategy); :func:`agents.run_episode` applies them.
    """

    name: str = "agent"
    env_config: dict[str, Any] = {}  # noqa: RUF012  (read-only default; instances replace it)
    reads_future: bool = False  # True only for oracles (references that read the future)
    stateful: bool = False  # keeps a history across steps (then predict() takes one env at a time)

    def __init__(self) -> None:
        self.env: SpepEnv | None = None

    def reset(self, seed: int | None = None, env: SpepEnv | None = None) -> None:
        """Start an episode. ``env`` is handed over so the agent can read its config and spaces."""
        self.env = env

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """The node pairs to pre-position this slot (see ``SpepEnv``'s action space)."""
        raise NotImplementedError

    # stable-baselines3 protocol -------------------------------------------------------------
    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's signature: a batch of observations (or one) in, a batch of actions out.

        Without ``info``, the slot's arrivals are read from the observation: queued requests that
        have waited 0 slots.
        """
        batched = np.asarray(observation["time_of_day"]).ndim == 2
        if not batched:
            return self.act(observation, info_from_observation(observation)), state
        size = len(observation["time_of_day"])
        if self.stateful and size > 1:
            raise ValueError(
                f"agent {self.name!r} keeps a request history: predict() takes one environment at a "
                f"time, got a batch of {size}"
            )
        actions = []
        for i in range(size):
            if episode_start is not None and bool(episode_start[i]) and self.stateful:
                self.reset(env=self.env)
            obs_i = {k: v[i] for k, v in observation.items()}
            actions.append(self.act(obs_i, info_from_observation(obs_i)))
        return np.stack(actions), state

    def none_action(self, num_pairs: int, action_len: int) -> np.ndarray:
        """The action that pre-positions nothing."""
        return np.full(action_len, num_pairs, dtype=np.int64)

    def action_length(self) -> int:
        """``action_len`` of the environment handed to :meth:`reset` (the preset's without one)."""
        return self.env.config.action_len if self.env is not None else SpepConfig.action_len

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def info_from_observation(observation: dict[str, np.ndarray]) -> dict[str, Any]:
    """The part of ``info`` an agent can rebuild from the observation alone: this slot's arrivals."""
    queue = np.asarray(observation["queue"]).reshape(-1, 6)
    mask = np.asarray(observation["queue_mask"]) > 0
    new = mask & (queue[:, 4] == 0)
    arrived = [
        {"source": int(s), "destination": int(d), "F_req": float(f), "priority": float(w)}
        for s, d, f, w in queue[new][:, [0, 1, 2, 5]].tolist()
    ]
    return {"arrived": arrived}


REGISTRY: dict[str, Callable[..., Agent]] = {}


def register(name: str, factory: Callable[..., Agent]) -> None:
    """Make ``agents.make(name, **kwargs)`` call ``factory(**kwargs)``."""
    REGISTRY[name] = factory


def make(name: str, **kwargs: Any) -> Agent:
    """An agent by registered name, with keyword arguments for its parameters."""
    if name not in REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown agent {name!r}{hint} Registered: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name](**kwargs)


def names() -> list[str]:
    """The registered agent names, sorted."""
    return sorted(REGISTRY)
