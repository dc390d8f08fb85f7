"""Cost per env step of each link-layer and physics option (SPEC 9), in instructions, not seconds.

On a shared machine CPU times move by tens of percent with the other jobs; valgrind's callgrind counts
the instructions a run executes, the same for the same binary and inputs whatever else runs. Each
config is run twice under callgrind, for ``--steps`` and for ``2 * --steps`` env steps from one seed
(the episode is long enough not to end), and the difference over ``--steps`` is the cost of one step
with start-up and imports cancelled out. The ratio to the paper preset is the figure of merit (goal
of issue 11: at most 1.3). Without valgrind it falls back to CPU time (noisy; said so).

Usage: ``python benchmarks/bench_options.py [--steps 1000] [--agents noop,random]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any

import numpy as np

from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv

#: Each option of SPEC section 9 alone, then all of them (the physical preset).
CONFIGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("paper preset", {}),
    ("link_pool_policy=replace_oldest", {"link_pool_policy": "replace_oldest"}),
    ("cutoff_fidelity=0.6", {"cutoff_fidelity": 0.6}),
    ("decay_model=depolarizing", {"decay_model": "depolarizing"}),
    ("signalling_latency=0.5", {"signalling_latency": 0.5}),
    ("length_model=loss", {"length_model": "loss"}),
    ("physical preset", {"preset": "physical"}),
)


def run_steps(fields: dict[str, Any], steps: int, agent: str) -> None:
    """``steps`` env steps of ``agent`` (noop, or random among the feasible pairs) from seed 0."""
    env = SpepEnv(SpepConfig.from_dict({"episode_slots": 10 * steps + 10, **fields}))
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    none = np.full(env.config.action_len, env.num_pairs)
    for _ in range(steps):
        action = none
        if agent == "random":
            feasible = np.flatnonzero(obs["path_fidelity"])
            action = none.copy()
            k = min(len(action), len(feasible))
            if k:
                action[:k] = rng.choice(feasible, size=k, replace=False)
        obs, *_ = env.step(action)


def instructions(fields: dict[str, Any], steps: int, agent: str) -> int:
    """Instructions callgrind counts for a whole process running ``steps`` steps."""
    cmd = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, __file__, "--child", json.dumps(fields), str(steps), agent,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    match = re.search(r"Collected : (\d+)", out)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{out}")
    return int(match.group(1))


def per_step(fields: dict[str, Any], steps: int, agent: str, counting: bool) -> float:
    """Instructions (or CPU seconds) per env step, start-up cancelled out."""
    if counting:
        return (instructions(fields, 2 * steps, agent) - instructions(fields, steps, agent)) / steps
    costs = []
    for n in (steps, 2 * steps):
        start = time.process_time()
        run_steps(fields, n, agent)
        costs.append(time.process_time() - start)
    return (costs[1] - costs[0]) / steps


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        run_steps(json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--agents", default="noop,random")
    args = parser.parse_args()
    counting = shutil.which("valgrind") is not None
    unit = "instructions per step (callgrind)" if counting else "CPU us per step (noisy)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{unit}; erdos_renyi, 16 nodes, steps {args.steps}..{2 * args.steps}; load {load:.2f}")
    agents = [a.strip() for a in args.agents.split(",")]
    print(f"{'config':<34}" + "".join(f"{a:>14}{'ratio':>7}" for a in agents))
    base: list[float] = []
    for label, fields in CONFIGS:
        costs = [per_step(fields, args.steps, a, counting) for a in agents]
        base = base or costs
        scale = 1.0 if counting else 1e6
        print(
            f"{label:<34}"
            + "".join(f"{c * scale:>14,.0f}{c / b:>7.2f}" for c, b in zip(costs, base, strict=True))
        )
    print("ratio: this config's cost per step over the paper preset's (goal <= 1.3)")


if __name__ == "__main__":
    main()
