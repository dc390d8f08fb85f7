"""``spep-oracle``: a reference that READS THE FUTURE workload (SPEC sections 8 and 10).

It is the one agent allowed to look inside the environment: at the decision point of slot t it reads
``env.sim.workload`` for the requests that will arrive in slots t+1 .. t+``oracle_horizon`` and
pre-positions their node pairs. No real agent can do this; use it only as a reference for what
knowing the next requests gives under the same placement rules. It is not an upper bound: a policy
that flushes stale link pairs can beat it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import Agent, held_or_in_flight, register


class OracleAgent(Agent):
    """Pre-positions the pairs of the requests arriving in the next ``oracle_horizon`` slots.

    Order: earliest arrival first, then higher priority, then request order; each node pair once;
    pairs already held are skipped; at most ``action_len`` pairs (the environment then places them
    within its limits, skipping those whose path lacks a pair).

    Args:
        oracle_horizon: slots ahead it reads (SPEC 8: 3).
        name: the agent's name in results.
        routing: on-demand routing it runs with (default ``shortest``, like SPEP).
    """

    reads_future = True

    def __init__(
        self, oracle_horizon: int = 3, name: str = "spep-oracle", routing: str = "shortest"
    ) -> None:
        super().__init__()
        if isinstance(oracle_horizon, bool) or not isinstance(oracle_horizon, int):
            raise ValueError(f"oracle_horizon = {oracle_horizon!r} is invalid: allowed an int >= 1")
        if oracle_horizon < 1:
            raise ValueError(f"oracle_horizon = {oracle_horizon!r} is invalid: allowed an int >= 1")
        self.oracle_horizon = oracle_horizon
        self.name = name
        self.env_config = {"routing": routing}

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """The node pairs of the next ``oracle_horizon`` slots' requests (read from the workload)."""
        self.require_env()  # it reads the future workload from the environment, too
        env = self.env
        assert env is not None
        sim = env.sim
        w = sim.workload
        num_pairs = len(observation["prepositioned"])
        t = sim.t
        slots = len(w.starts) - 1
        lo = w.starts[min(t + 1, slots)]
        hi = w.starts[min(t + 1 + self.oracle_horizon, slots)]
        # requests are stored by arrival slot, then request order: a stable sort by -priority
        # inside each slot gives "earliest first, then higher priority"
        order = np.lexsort((np.arange(lo, hi), -w.priority[lo:hi], w.arrival[lo:hi]))
        pairs = w.pair[lo:hi][order]
        held = held_or_in_flight(observation) > 0
        chosen: list[int] = []
        for a in pairs.tolist():
            if not held[a] and a not in chosen:
                chosen.append(a)
        action_len = env.config.action_len
        action = self.none_action(num_pairs, action_len)
        chosen = chosen[:action_len]
        action[: len(chosen)] = chosen
        return action


register("spep-oracle", OracleAgent)
