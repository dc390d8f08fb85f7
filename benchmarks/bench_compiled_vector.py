"""Env-steps/s of the compiled CPU vector env against CartPole-v1's steps/s, in one run.

For each batch size B and numba thread count it times ``CompiledVectorEnv.step`` (observations,
rewards, masks and info included) over ``--steps`` steps from a reset, with random valid actions
drawn from the action masks (the drawing is not timed), after one untimed warm-up step; CartPole-v1
(``gym.make``, random actions) is timed in the same run. Rates are wall-clock (two threads' CPU
time would count twice); the load average is printed at the start.

Usage: ``python benchmarks/bench_compiled_vector.py [--sizes 20,1024] [--threads 1,2]
[--steps 200] [--copy 1]``. The first run compiles the engine (tens of CPU seconds; cached after).
"""

from __future__ import annotations

import argparse
import os
import time

import gymnasium as gym
import numba
import numpy as np

from spep_gym.compiled.vector_env import CompiledVectorEnv


def cartpole_rate(steps: int = 20000) -> float:
    """Steps/s of CartPole-v1 with random actions (wall time)."""
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps)]
    w = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - w)


def random_valid(mask: np.ndarray, L: int, rng: np.random.Generator) -> np.ndarray:
    """(B, L): per network, L random placeable pairs (P, "none", where fewer are placeable)."""
    B = mask.shape[0]
    P = mask.shape[1] // L - 1
    ok = mask.reshape(B, L, P + 1)[:, 0, :P]
    score = np.where(ok, rng.random(ok.shape), -1.0)
    top = np.argsort(-score, axis=1)[:, :L]
    return np.where(np.take_along_axis(score, top, axis=1) >= 0, top, P)


def vector_rate(B: int, threads: int, steps: int, copy: bool) -> float:
    """Env-steps/s of the compiled vector env at batch size B on ``threads`` numba threads."""
    env = CompiledVectorEnv(B, num_threads=threads, copy=copy)
    L = env.config.action_len
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    env.step(random_valid(env.action_masks(), L, rng))  # warm-up
    spent = 0.0
    for _ in range(steps):
        action = random_valid(env.action_masks(), L, rng)
        w = time.perf_counter()
        env.step(action)
        spent += time.perf_counter() - w
    return B * steps / spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,1024")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--copy", type=int, default=1, help="1: copies of the obs (the default)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}; numba threads available: "
          f"{numba.config.NUMBA_NUM_THREADS}")  # fmt: skip
    CompiledVectorEnv(1).reset(seed=0)  # compile (or load the cache) before timing
    cart = cartpole_rate()
    print(f"CartPole-v1: {cart:,.0f} steps/s")
    print("| B | numba threads | env-steps/s | x CartPole-v1 |")
    print("|---|---|---|---|")
    for B in (int(b) for b in args.sizes.split(",")):
        for threads in (int(t) for t in args.threads.split(",")):
            rate = vector_rate(B, threads, args.steps, bool(args.copy))
            print(f"| {B} | {threads} | {rate:,.0f} | {rate / cart:.2f} |", flush=True)
    print(f"CartPole-v1 again: {cartpole_rate():,.0f} steps/s; load average at end: "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
