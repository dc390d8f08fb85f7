"""The paper's three baselines (and the random agent) over a few seeds, as a table.

Every agent runs from the same seeds, so it meets the same requests and the same link generation
draws (common random numbers): the rows compare seed by seed.

    python examples/evaluate_baselines.py --small
    python examples/evaluate_baselines.py --runs 5 --topology small_world
"""

from __future__ import annotations

import argparse

from agents import run_episode
from spep_gym import SpepConfig
from spep_gym.config import TOPOLOGIES

AGENTS = ("reactive", "shortest", "highest_fidelity", "random")
METRICS = ("success_rate", "avg_latency", "avg_fidelity", "utilization")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a tiny network and 2 runs")
    parser.add_argument("--runs", type=int, default=3, help="seeds 0 .. runs-1")
    parser.add_argument("--slots", type=int, default=500, help="episode_slots")
    parser.add_argument("--topology", default="erdos_renyi", choices=TOPOLOGIES)
    args = parser.parse_args(argv)

    if args.small:
        config, runs = SpepConfig.tiny(topology=args.topology), 2
    else:
        config, runs = SpepConfig(topology=args.topology, episode_slots=args.slots), args.runs
    rows = [run_episode(name, seed, config) for name in AGENTS for seed in range(runs)]

    import pandas as pd  # only the table needs pandas

    table = pd.DataFrame(rows).groupby("agent", sort=False)[list(METRICS)].mean()
    print(f"{config.topology_name}, {config.n} nodes, {config.episode_slots} slots, {runs} runs")
    print(table.to_string(float_format=lambda x: f"{x:.3f}"))
    return rows


if __name__ == "__main__":
    main()
