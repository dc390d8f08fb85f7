"""A random agent on Spep-v0: gym.make, random pre-positioning actions, the episode's metrics.

python examples/random_agent.py            # the paper preset (16 nodes, 2000 slots)
python examples/random_agent.py --small    # a 6-node, 200-slot network
"""

from __future__ import annotations

import argparse

import gymnasium as gym

import spep_gym
from spep_gym import SpepConfig


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a tiny network, for a quick run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--topology", default="erdos_renyi", choices=spep_gym.config.TOPOLOGIES)
    args = parser.parse_args(argv)

    config = SpepConfig.tiny() if args.small else SpepConfig()
    env = gym.make("Spep-v0", config=config, topology=args.topology)
    _, info = env.reset(seed=args.seed)
    env.action_space.seed(args.seed)
    episode_return, done = 0.0, False
    while not done:
        # Node pairs drawn uniformly; those whose path lacks a pair now are skipped by the env.
        action = env.action_space.sample()
        _, reward, terminated, truncated, info = env.step(action)
        episode_return += float(reward)
        done = terminated or truncated
    metrics = info["episode_metrics"]
    env.close()

    print(f"Spep-v0, {args.topology}, {config.episode_slots} slots, seed {args.seed}")
    print(f"  return               {episode_return:9.1f}")
    for key in ("arrived", "served", "failed", "pending", "prepositions_placed"):
        print(f"  {key:20s} {metrics[key]:9d}")
    for key in ("success_rate", "avg_latency", "avg_fidelity", "utilization"):
        value = metrics[key]
        print(f"  {key:20s} {'n/a' if value is None else f'{value:9.3f}'}")
    return metrics


if __name__ == "__main__":
    main()
