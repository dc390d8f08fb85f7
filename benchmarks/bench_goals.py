"""Issue 20's goals table, measured in one run: every row beside the figure it started from.

Rows (the issue's "Goals"): (1) ``gym.make("Spep-v0")`` with random actions, env steps per CPU
second against CartPole-v1's; (2, 3) the CPU vector env (``gym.make_vec(...,
vectorization_mode="vector_entry_point")``) at B = 1024 and B = 20, env steps per wall second
against CartPole-v1's steps per second; (4) the full ``spep reproduce`` at its defaults with 2
workers, wall; (5) ``spep regimes`` at 2000 slots x 20 runs, wall; (6) the physical preset's step
cost against the paper preset's. Rows 4 and 5 run the real commands into a temporary folder (minutes:
``--quick`` leaves them out). Env rates are by CPU time, best of ``--repeat`` (the machine is
shared); the vector env's too (one thread, its default; random actions as for the env); the load average is printed
before and after.

Usage: ``python benchmarks/bench_goals.py [--quick] [--engine compiled] [--steps 4000]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from bench_compiled import best_rate, env_rate  # this folder: python benchmarks/bench_goals.py

import spep_gym  # noqa: F401  (registers Spep-v0)

#: The issue's figures before the work (2-core machine), its goals and its moonshots.
TABLE = {
    "env": ("gym.make('Spep-v0'), random actions, CPU time/step vs CartPole-v1", "0.058-0.062x",
            ">= 0.3x", ">= 0.5x"),
    "vec1024": ("CPU vector env, B = 1024, env-steps/s vs CartPole-v1", "0.2-0.48x", ">= 3x",
                ">= 6x"),
    "vec20": ("CPU vector env, B = 20 (a study batch), vs CartPole-v1", "0.02x", ">= 1x", ""),
    "reproduce": ("full spep reproduce (defaults, 2 workers), wall", "7.6 min", "<= 3 min",
                  "<= 2 min"),
    "regimes": ("spep regimes at 2000 slots x 20 runs, wall", "about 27 min (est.)", "<= 5 min",
                "<= 2 min"),
    "physical": ("physical preset's step cost vs the paper preset's", "1.16-1.23x", "<= 1.3x", ""),
}  # fmt: skip


def vector_rate(num_envs: int, steps: int, repeat: int, **kwargs: object) -> tuple[float, str]:
    """Env steps per CPU second of the vector env (random actions; one thread by default)."""
    env = gym.make_vec(
        "Spep-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs
    )
    env.reset(seed=0)
    env.action_space.seed(0)
    batches = [env.action_space.sample() for _ in range(steps)]  # drawn before the clock starts

    def run() -> int:
        for actions in batches:
            env.step(actions)
        return num_envs * steps

    best = best_rate(run, repeat)
    name = type(getattr(env, "unwrapped", env)).__module__
    env.close()
    return best, name


def cartpole_rate(steps: int, repeat: int) -> float:
    """CartPole-v1 steps per CPU second with random actions."""
    return env_rate(lambda: gym.make("CartPole-v1"), steps, repeat)


def command_wall(args: list[str]) -> float:
    """Wall seconds of one ``spep`` command into a new temporary folder."""
    spep = str(Path(sys.executable).with_name("spep"))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run(
            [spep, *args, "--out", str(Path(tmp) / "out"), "--no-progress"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    """Measure every row and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4000, help="timed env steps per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="measurements; the best counts")
    parser.add_argument("--engine", default="compiled", help="the env's and studies' engine")
    parser.add_argument("--quick", action="store_true", help="leave out the two study rows")
    args = parser.parse_args(argv)
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    got: dict[str, str] = {}
    cart = cartpole_rate(args.steps, args.repeat)
    print(f"CartPole-v1: {cart:,.0f} steps per CPU second")
    slots = max(args.steps, 2000)
    paper = env_rate(lambda: gym.make("Spep-v0", engine=args.engine, episode_slots=slots),
                     args.steps, args.repeat)  # fmt: skip
    got["env"] = f"{paper / cart:.3f}x ({paper:,.0f} steps/s)"
    physical = env_rate(
        lambda: gym.make("Spep-v0", engine=args.engine, preset="physical", episode_slots=slots),
        args.steps,
        args.repeat,
    )
    got["physical"] = f"{paper / physical:.2f}x ({physical:,.0f} steps/s)"
    for key, b, steps in (("vec1024", 1024, 200), ("vec20", 20, 2000)):
        rate, where = vector_rate(b, steps, args.repeat)
        got[key] = f"{rate / cart:.2f}x ({rate:,.0f} env-steps/s; {where})"
    if not args.quick:
        engine = ["--engine", args.engine] if args.engine != "python" else []
        wall = command_wall(["reproduce", "--jobs", "2", *engine])
        got["reproduce"] = f"{wall / 60:.1f} min"
        wall = command_wall(["regimes", "--slots", "2000", "--runs", "20", "--jobs", "2",
                             "--no-figures", *engine])  # fmt: skip
        got["regimes"] = f"{wall / 60:.1f} min"
    print(f"load average at end {os.getloadavg()[0]:.2f}\n")
    print("| what | before | goal | moonshot | measured |")
    print("|---|---|---|---|---|")
    for key, (what, before, goal, moon) in TABLE.items():
        print(f"| {what} | {before} | {goal} | {moon} | {got.get(key, 'not run (--quick)')} |")


if __name__ == "__main__":
    main()
