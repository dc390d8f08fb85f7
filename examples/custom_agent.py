"""A custom agent: pre-position the node pairs with the most recent demand, against shortest path.

The agent reads only its observation: ``demand`` (arrivals per node pair in the last
``demand_obs_slots`` slots), ``path_fidelity`` (what a pre-position would get now, 0 = impossible)
and ``prepositioned`` (pairs already held). Its preference list goes to the environment, which tries
the pairs in order within ``max_new_prepositions`` and ``max_prepositioned``.

    python examples/custom_agent.py --small
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import agents
from agents import run_episode
from spep_gym import SpepConfig


class RecentDemandAgent(agents.Agent):
    """Pre-positions the most demanded node pairs that hold no pair yet and can get a good one."""

    name = "recent_demand"
    env_config = {"routing": "shortest"}  # noqa: RUF012  (on-demand routing, as SPEP uses)

    def __init__(self, min_fidelity: float = 0.6) -> None:
        super().__init__()
        self.min_fidelity = min_fidelity

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        demand = observation["demand"]
        ok = (
            (demand > 0)
            & (observation["path_fidelity"] >= self.min_fidelity)
            & (observation["prepositioned"] == 0)
        )
        candidates = np.flatnonzero(ok)
        order = candidates[np.argsort(-demand[candidates], kind="stable")]
        action_len = self.env.config.action_len if self.env is not None else len(order)
        action = self.none_action(len(demand), action_len)
        chosen = order[:action_len]
        action[: len(chosen)] = chosen
        return action


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a tiny network and 2 runs")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    if args.small:
        config, runs = SpepConfig.tiny(), 2
    else:
        config, runs = SpepConfig(episode_slots=1000), args.runs
    agents.register("recent_demand", RecentDemandAgent)  # now agents.make("recent_demand") works
    rows = []
    for agent in (agents.make("shortest"), agents.make("recent_demand")):
        for seed in range(runs):  # the same seeds: the same requests for both agents
            rows.append(run_episode(agent, seed, config))
    print(f"{'agent':15s} {'seed':>4s} {'success':>8s} {'latency':>8s} {'hit rate':>8s}")
    for row in rows:
        cells = [row[k] for k in ("success_rate", "avg_latency", "preposition_hit_rate")]
        text = ["     n/a" if v is None else f"{v:8.3f}" for v in cells]
        print(f"{row['agent']:15s} {row['seed']:4d} " + " ".join(text))
    return rows


if __name__ == "__main__":
    main()
