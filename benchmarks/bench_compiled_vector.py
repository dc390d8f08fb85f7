"""Env-steps/s of the compiled CPU vector env against CartPole-v1's steps/s, in one run.

For each batch size B and numba thread count it times ``CompiledVectorEnv.step`` (observations,
rewards, masks and info included) over ``--steps`` steps from a reset, with random valid actions
drawn from the action masks (the drawing is not timed), after one untimed warm-up step; CartPole-v1
(``gym.make``, random actions) is timed in the same run, and the torch core (``SpepVectorEnv``,
``--engines``) beside. Rates per wall second and per CPU second of this process (two threads' CPU
time counts twice); the load average is printed at the start and the end.

Usage: ``python benchmarks/bench_compiled_vector.py [--sizes 20,1024] [--threads 1,2]
[--steps 200] [--copy 1] [--engines compiled,torch]``. The first run compiles the engine (tens of CPU seconds; cached after).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import gymnasium as gym
import numba
import numpy as np

from spep_gym.compiled.vector_env import CompiledVectorEnv


def cartpole_rate(steps: int = 20000) -> tuple[float, float]:
    """Steps/s of CartPole-v1 with random actions (CPU time, wall time)."""
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps)]
    c, w = time.process_time(), time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return steps / (time.process_time() - c), steps / (time.perf_counter() - w)


def random_valid(mask: np.ndarray, L: int, rng: np.random.Generator) -> np.ndarray:
    """(B, L): per network, L random placeable pairs (P, "none", where fewer are placeable)."""
    B = mask.shape[0]
    P = mask.shape[1] // L - 1
    ok = mask.reshape(B, L, P + 1)[:, 0, :P]
    score = np.where(ok, rng.random(ok.shape), -1.0)
    top = np.argsort(-score, axis=1)[:, :L]
    return np.where(np.take_along_axis(score, top, axis=1) >= 0, top, P)


def vector_rate(B: int, threads: int, steps: int, copy: bool, engine: str) -> tuple[float, float]:
    """Env-steps/s (CPU time, wall time) of a vector env at batch size B on ``threads`` threads."""
    env: Any
    if engine == "torch":
        from spep_gym.batched.vector_env import SpepVectorEnv

        env = SpepVectorEnv(B, num_threads=threads)
    else:
        env = CompiledVectorEnv(B, num_threads=threads, copy=copy)
    L = env.config.action_len
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    env.step(random_valid(env.action_masks(), L, rng))  # warm-up
    cpu = wall = 0.0
    for _ in range(steps):
        action = random_valid(env.action_masks(), L, rng)
        c, w = time.process_time(), time.perf_counter()
        env.step(action)
        cpu += time.process_time() - c
        wall += time.perf_counter() - w
    return B * steps / cpu, B * steps / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,1024")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--copy", type=int, default=1, help="1: copies of the obs (the default)")
    parser.add_argument("--engines", default="compiled,torch", help="torch: SpepVectorEnv beside")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}; numba threads available: "
          f"{numba.config.NUMBA_NUM_THREADS}")  # fmt: skip
    CompiledVectorEnv(1).reset(seed=0)  # compile (or load the cache) before timing
    cart_cpu, cart = cartpole_rate()
    print(f"CartPole-v1: {cart_cpu:,.0f} steps per CPU second ({cart:,.0f} per wall second)")
    print("| engine | B | threads | env-steps/s wall | x CartPole-v1 | per CPU s | x CartPole-v1 |")
    print("|---|---|---|---|---|---|---|")
    for engine in args.engines.split(","):
        for B in (int(b) for b in args.sizes.split(",")):
            for threads in (int(t) for t in args.threads.split(",")):
                cpu, wall = vector_rate(B, threads, args.steps, bool(args.copy), engine)
                print(
                    f"| {engine} | {B} | {threads} | {wall:,.0f} | {wall / cart:.2f} | "
                    f"{cpu:,.0f} | {cpu / cart_cpu:.2f} |",
                    flush=True,
                )
    cart_cpu, cart = cartpole_rate()
    print(f"CartPole-v1 again: {cart_cpu:,.0f} per CPU second ({cart:,.0f} wall); load average "
          f"at end: {os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
