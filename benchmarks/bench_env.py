"""Speed of the Spep-v0 environment and of the simulator under it.

Prints (1) env steps per second for each topology of the paper preset with a no-op and a random
agent (only ``env.step`` is timed; the random agent picks node pairs among those whose path holds
pairs now, so it really pre-positions), (2) the simulator's slot rate alone (``Simulator.step``),
(3) how a step's cost grows with ``num_nodes`` (16, 64, 256, 1024) on scale-free graphs: the graph is
built once (``topology_seed``) and only steps are timed, as microseconds per slot and as ratios to
links + queued requests (the simulator) and to node pairs (the env, whose observation arrays have one
entry per node pair), (4) how the simulator's slot cost grows with the queue (higher arrival
rates on a 256-node graph), and (5) what each link-layer and physics option of SPEC section 9
costs per env step against the paper preset (goal: at most 1.3x).

Usage: ``python benchmarks/bench_env.py [--episodes 3] [--repeat 3] [--small]``. Each figure is the
best of ``--repeat`` measurements, timed by this process's CPU time (the machine is shared: wall
time counts the other jobs too; it is printed beside for sections 1 and 2);
``--small`` is a quick smoke run. Goals (issue 2): at least 10,000 env steps/s on the 16-node paper
preset, and a simulator slot cost growing no faster than linearly in links plus queued requests.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from spep_gym.config import TOPOLOGIES, SpepConfig
from spep_gym.env import SpepEnv


def noop_agent(env: SpepEnv, rng: np.random.Generator) -> Callable[[dict], np.ndarray]:
    none = np.full(env.config.action_len, env.num_pairs)
    return lambda obs: none


def random_agent(env: SpepEnv, rng: np.random.Generator) -> Callable[[dict], np.ndarray]:
    """Random node pairs among those a pre-position can reach now (``path_fidelity > 0``)."""
    none = np.full(env.config.action_len, env.num_pairs)

    def act(obs: dict) -> np.ndarray:
        feasible = np.flatnonzero(obs["path_fidelity"])
        action = none.copy()
        k = min(len(action), len(feasible))
        if k:
            action[:k] = rng.choice(feasible, size=k, replace=False)
        return action

    return act


AGENTS = {"noop": noop_agent, "random": random_agent}


def env_rate(cfg: SpepConfig, agent: str, episodes: int, repeat: int) -> tuple[float, float]:
    """Steps per second of ``env.step`` alone by CPU time and by wall time, best of ``repeat``."""
    env = SpepEnv(cfg)
    best_cpu = best_wall = 0.0
    cpu, wall = time.process_time, time.perf_counter
    for r in range(repeat):
        steps, cpu_s, wall_s = 0, 0.0, 0.0
        for ep in range(episodes):
            obs, _ = env.reset(seed=1000 * r + ep)
            act = AGENTS[agent](env, np.random.default_rng(ep))
            truncated = False
            while not truncated:
                action = act(obs)
                c, w = cpu(), wall()
                obs, _, _, truncated, _ = env.step(action)
                wall_s += wall() - w
                cpu_s += cpu() - c
                steps += 1
        best_cpu, best_wall = max(best_cpu, steps / cpu_s), max(best_wall, steps / wall_s)
    return best_cpu, best_wall


def sim_rate(cfg: SpepConfig, episodes: int, repeat: int) -> tuple[float, float]:
    """Simulator slots per second (no pre-positioning) by CPU and wall time, best of ``repeat``."""
    env = SpepEnv(cfg)
    best_cpu = best_wall = 0.0
    for r in range(repeat):
        slots, cpu_s, wall_s = 0, 0.0, 0.0
        for ep in range(episodes):
            env.reset(seed=1000 * r + ep)
            sim = env.sim
            c, w = time.process_time(), time.perf_counter()
            while not sim.done:
                sim.step(())
            cpu_s += time.process_time() - c
            wall_s += time.perf_counter() - w
            slots += cfg.episode_slots
        best_cpu, best_wall = max(best_cpu, slots / cpu_s), max(best_wall, slots / wall_s)
    return best_cpu, best_wall


def scaling_row(
    n: int, slots: int, env_steps: int, repeat: int, arrival_rate: float = 0.1
) -> dict[str, Any]:
    """Per-slot cost on a scale-free graph of n nodes, built once; noop agent."""
    cfg = SpepConfig(
        topology="scale_free",
        num_nodes=n,
        topology_seed=0,
        episode_slots=slots,
        arrival_rate=arrival_rate,
    )
    env = SpepEnv(cfg)
    none = np.full(cfg.action_len, env.num_pairs)
    sim_us = env_us = float("inf")
    queue_sum = 0
    clock = time.process_time
    for r in range(repeat):
        env.reset(seed=r)
        sim = env.sim
        queue_sum = 0
        start = clock()
        while not sim.done:
            sim.step(())
            queue_sum += sim.queue_length
        sim_us = min(sim_us, (clock() - start) / slots * 1e6)
        env.reset(seed=r)
        start = clock()
        for _ in range(env_steps):
            env.step(none)
        env_us = min(env_us, (clock() - start) / env_steps * 1e6)
    links = env.sim.net.num_links
    queue = queue_sum / slots
    return {
        "n": n,
        "links": links,
        "queue": queue,
        "pairs": env.num_pairs,
        "sim_us": sim_us,
        "sim_per": sim_us / (links + queue),
        "env_us": env_us,
        "env_per_pair": env_us / env.num_pairs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=3, help="episodes per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="measurements; the best is shown")
    parser.add_argument("--small", action="store_true", help="short episodes (smoke test)")
    parser.add_argument(
        "--sections", default="1,2,3,4,5", help="comma list of the sections to run (default: all)"
    )
    args = parser.parse_args()
    slots = 200 if args.small else 2000
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs; "
        f"{args.episodes} episodes x {slots} slots, best of {args.repeat}"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at start: {load:.2f} (rates by CPU time; wall-clock rates beside)")
    for section in args.sections.split(","):
        SECTIONS[section.strip()](args, slots)


def env_rates(args: argparse.Namespace, slots: int) -> None:
    print("\n1. env steps/s, paper preset (16 nodes), env.step timed alone")
    print(f"{'topology':<16}{'noop cpu':>10}{'(wall)':>9}{'random cpu':>12}{'(wall)':>9}")
    for topology in TOPOLOGIES:
        cfg = SpepConfig(topology=topology, episode_slots=slots)
        line = f"{topology:<16}"
        for agent, width in (("noop", 10), ("random", 12)):
            rate_cpu, rate_wall = env_rate(cfg, agent, args.episodes, args.repeat)
            line += f"{rate_cpu:>{width},.0f}{f'({rate_wall:,.0f})':>9}"
        print(line)


def sim_rates(args: argparse.Namespace, slots: int) -> None:
    print("\n2. simulator slots/s alone (Simulator.step, no pre-positioning), paper preset")
    print(f"{'topology':<16}{'cpu':>10}{'(wall)':>9}")
    for topology in TOPOLOGIES:
        cfg = SpepConfig(topology=topology, episode_slots=slots)
        rate_cpu, rate_wall = sim_rate(cfg, args.episodes, args.repeat)
        print(f"{topology:<16}{rate_cpu:>10,.0f}{f'({rate_wall:,.0f})':>9}")


def node_scaling(args: argparse.Namespace, slots: int) -> None:
    print("\n3. CPU us per step vs num_nodes, scale_free (ba_m=2), graph built once, noop agent")
    print(
        f"{'n':>6}{'links':>7}{'queue':>7}{'pairs':>9}{'sim us':>9}{'us/(links+queue)':>18}"
        f"{'env us':>10}{'us/pair':>9}"
    )
    base = None
    for n in (16, 64, 256, 1024):
        env_steps = max(50, min(slots, 200_000 // n))
        row = scaling_row(n, slots, env_steps, args.repeat)
        base = base or row
        print(
            f"{row['n']:>6}{row['links']:>7}{row['queue']:>7.2f}{row['pairs']:>9}"
            f"{row['sim_us']:>9.1f}{row['sim_per']:>11.3f} (x{row['sim_per'] / base['sim_per']:.2f})"
            f"{row['env_us']:>10.1f}{row['env_per_pair']:>9.3f}"
        )


def queue_scaling(args: argparse.Namespace, slots: int) -> None:
    print("\n4. CPU us per simulator slot vs queued requests, scale_free n=256, noop agent")
    print(f"{'arrival_rate':>12}{'links':>7}{'queue':>8}{'sim us':>9}{'us/(links+queue)':>18}")
    for rate in (0.1, 1.0, 5.0, 20.0):
        row = scaling_row(256, slots, 1, args.repeat, arrival_rate=rate)
        print(
            f"{rate:>12}{row['links']:>7}{row['queue']:>8.1f}{row['sim_us']:>9.1f}"
            f"{row['sim_per']:>18.3f}"
        )


def option_costs(args: argparse.Namespace, slots: int) -> None:
    print("\n5. cost of the link-layer and physics options (SPEC 9), erdos_renyi, env steps/s")
    print(f"{'config':<34}{'noop cpu':>10}{'ratio':>7}{'random cpu':>12}{'ratio':>7}")
    paper = None
    for label, fields in OPTION_CONFIGS:
        cfg = SpepConfig.from_dict({"episode_slots": slots, **fields})
        rates = [env_rate(cfg, agent, args.episodes, args.repeat)[0] for agent in AGENTS]
        paper = paper or rates
        print(
            f"{label:<34}{rates[0]:>10,.0f}{paper[0] / rates[0]:>7.2f}"
            f"{rates[1]:>12,.0f}{paper[1] / rates[1]:>7.2f}"
        )
    print("ratio: paper preset's steps/s over this config's (cost per step; goal <= 1.3)")


#: Section 5: each option of SPEC section 9 alone, then all of them (the physical preset).
OPTION_CONFIGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("paper preset", {}),
    ("link_pool_policy=replace_oldest", {"link_pool_policy": "replace_oldest"}),
    ("cutoff_fidelity=0.6", {"cutoff_fidelity": 0.6}),
    ("decay_model=depolarizing", {"decay_model": "depolarizing"}),
    ("signalling_latency=0.5", {"signalling_latency": 0.5}),
    ("length_model=loss", {"length_model": "loss"}),
    ("physical preset", {"preset": "physical"}),
)

SECTIONS = {
    "1": env_rates,
    "2": sim_rates,
    "3": node_scaling,
    "4": queue_scaling,
    "5": option_costs,
}


if __name__ == "__main__":
    main()
