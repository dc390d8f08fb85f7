"""Non-predictive agents: the paper's three baselines (SPEC section 5), ``noop`` and ``random``.

The baselines never pre-position; they differ only in their on-demand routing strategy, which they
carry in ``env_config``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import Agent, register

#: The paper's non-predictive baselines (SPEC section 5), named after their routing strategies.
BASELINES = ("reactive", "shortest", "highest_fidelity")


class NoPreposition(Agent):
    """Pre-positions nothing; the environment's routing strategy does all the work."""

    def __init__(self, name: str = "noop", routing: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.env_config = {} if routing is None else {"routing": routing}

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """The action that pre-positions nothing.

        Raises:
            RuntimeError: a baseline (defined by its routing) before ``reset(env=...)``.
        """
        self.require_env()
        num_pairs = len(observation["adjacency"])
        return self.none_action(num_pairs, self.action_length())


class RandomAgent(Agent):
    """Pre-positions node pairs drawn at random among those that can succeed now."""

    name = "random"
    env_config: dict[str, Any] = {}  # noqa: RUF012  (read-only default; instances replace it)

    def __init__(self, seed: int | None = None) -> None:
        super().__init__()
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None, env: Any = None) -> None:
        """Start an episode; a seed reseeds the agent's generator (its runs repeat)."""
        super().reset(seed, env)
        if seed is not None:
            self.rng = np.random.default_rng([seed, 0x5EED])

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """Up to ``action_len`` distinct pairs whose path holds pairs now, in random order."""
        num_pairs = len(observation["adjacency"])
        action_len = self.action_length()
        feasible = np.flatnonzero(np.asarray(observation["path_fidelity"]) > 0)
        action = self.none_action(num_pairs, action_len)
        if len(feasible):
            k = min(action_len, len(feasible))
            action[:k] = self.rng.choice(feasible, size=k, replace=False)
        return action


for _routing in BASELINES:
    register(_routing, lambda _r=_routing, **kw: NoPreposition(name=_r, routing=_r, **kw))
register("noop", lambda **kw: NoPreposition(name="noop", **kw))
register("random", RandomAgent)
