"""Speed of ``Spep-v0`` on the compiled engine against the python engine and CartPole-v1.

Prints, in one run: (1) env steps per second of ``gym.make("Spep-v0", engine=...)`` with random
actions (``action_space.sample()``, drawn before the clock starts) for the python and the compiled
engine, at ``info_level`` full (the default) and minimal, and CartPole-v1's steps per second with
random actions, with each ratio to CartPole (issue 20's first goal: at least 0.3x); (2) the slot
rate of the simulators alone (no observation); (3) the compiled engine's cold compile time (a fresh
interpreter with an empty cache directory) and its cached start (the same again, cache filled).
Rates are by this process's CPU time, best of ``--repeat`` (the machine is shared: wall time counts
the other jobs too); the load average at the start is printed.

Usage: ``python benchmarks/bench_compiled.py [--steps 4000] [--repeat 3] [--small]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

import spep_gym  # noqa: F401  (registers Spep-v0)
from spep_gym.config import SpepConfig
from spep_gym.simulator import Simulator

STARTUP = (
    "import gymnasium as gym, spep_gym\n"
    "env = gym.make('Spep-v0', engine='compiled', episode_slots=20)\n"
    "env.reset(seed=0)\n"
    "env.step(env.action_space.sample())\n"
)


def best_rate(run: Callable[[], int], repeat: int) -> float:
    """Steps per CPU second of ``run`` (which returns its step count), best of ``repeat``."""
    best = 0.0
    for _ in range(repeat):
        t0 = time.process_time()
        steps = run()
        best = max(best, steps / max(time.process_time() - t0, 1e-9))
    return best


def env_rate(make: Callable[[], gym.Env], steps: int, repeat: int) -> float:
    """``env.step`` per CPU second with random actions drawn beforehand (resets not timed)."""
    env = make()
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps)]

    def run() -> int:
        env.reset(seed=0)
        done = 0
        step = env.step
        for a in actions:
            _, _, terminated, truncated, _ = step(a)
            done += 1
            if terminated or truncated:
                break  # an episode's end stops the timed run (steps <= episode length)
        return done

    return best_rate(run, repeat)


def sim_rate(make: Callable[[], object], steps: int, repeat: int) -> float:
    """Slots per CPU second of a simulator alone, no pre-positioning."""
    sim = make()

    def run() -> int:
        sim.reset(0)  # type: ignore[attr-defined]
        for _ in range(steps):
            sim.step(())  # type: ignore[attr-defined]
        return steps

    return best_rate(run, repeat)


def child_seconds(env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of a fresh interpreter that makes the compiled env and steps once."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", STARTUP], env=env, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> None:
    """Print the rates, ratios and start times."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4000, help="timed steps per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="measurements; the best counts")
    parser.add_argument("--small", action="store_true", help="a quick smoke run")
    args = parser.parse_args(argv)
    steps, repeat = (200, 1) if args.small else (args.steps, args.repeat)
    import numba

    load = os.getloadavg()
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    # (3) first, while the cache directory is empty
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "NUMBA_DISABLE_JIT": "0"}
        cold = child_seconds(env)
        warm = child_seconds(env)
    slots = max(steps, SpepConfig().episode_slots)
    cartpole = env_rate(lambda: gym.make("CartPole-v1"), steps, repeat)
    print(f"\n(1) env.step per CPU second, random actions ({steps} steps, best of {repeat})")
    print(f"{'env':<44} {'steps/s':>10} {'x CartPole':>11}")
    print(f"{'CartPole-v1':<44} {cartpole:>10,.0f} {1.0:>11.3f}")
    rates = {}
    for level in ("full", "minimal"):
        for engine in ("python", "compiled"):
            name = f"Spep-v0 engine={engine} info_level={level}"

            def make(engine: str = engine, level: str = level) -> gym.Env:
                return gym.make("Spep-v0", engine=engine, info_level=level, episode_slots=slots)

            rates[engine, level] = r = env_rate(make, steps, repeat)
            print(f"{name:<44} {r:>10,.0f} {r / cartpole:>11.3f}")
    for level in ("full", "minimal"):
        speedup = rates["compiled", level] / rates["python", level]
        print(f"compiled / python at info_level={level}: {speedup:.2f}x")

    from spep_gym.compiled import CompiledSimulator

    cfg = SpepConfig(episode_slots=slots)
    print(f"\n(2) simulator slots per CPU second, no pre-positioning ({steps} slots)")
    py = sim_rate(lambda: Simulator(cfg), steps, repeat)
    co = sim_rate(lambda: CompiledSimulator(cfg), steps, repeat)
    print(f"Simulator {py:,.0f}   CompiledSimulator {co:,.0f}   ratio {co / py:.1f}x")
    print("\n(3) a fresh interpreter: import, gym.make(engine='compiled'), reset, one step")
    print(f"cold (empty NUMBA_CACHE_DIR): {cold[0]:.1f} s wall, {cold[1]:.1f} s CPU")
    print(f"cached start:                 {warm[0]:.1f} s wall, {warm[1]:.1f} s CPU")


if __name__ == "__main__":
    main()
