"""Speed of the batched vector env (``spep_gym.batched``) against the scalar ``SpepEnv``, in one run.

For each batch size B it times ``SpepVectorEnv.step`` (observations, rewards, masks and info
included, as ``SpepEnv.step`` includes them) over the first ``--slots`` slots of an episode
(default: one day, 240 slots, business hours included), and the scalar env over the same slots of
``--episodes`` seeds; both with a no-op agent and a random agent that places random feasible
pairs (the agents themselves are not timed). It prints env-steps per second (CPU time of this
process and wall time), the ratio to the scalar env measured in the same run, the memory of the
batched state per network, and the reset time per network.

Usage: ``python benchmarks/bench_batched.py [--device cpu|cuda] [--sizes 1,64,1024,8192]
[--slots 240] [--threads 1,2,global1] [--repeats 3]``. ``--device cuda`` defaults to B = 1024 ..
65,536 and stops adding sizes when ``--budget`` seconds (default 240) are spent, so it finishes
within 5 minutes. On the CPU each batch size gets one row per ``--threads`` setting (default 1
alone: two threads on a busy machine can take 20 times as long): N is the vector env's
``num_threads=N`` (torch's global count left at its default and restored after each call), and
``globalN`` is ``torch.set_num_threads(N)`` for the whole run with ``num_threads=None`` (no switch
per call: it measures what the switch costs). ``--repeats`` runs the settings interleaved that many
times and prints the medians; "x first" is the ratio of wall-time rates to the first setting's
(wall time: a second thread's CPU time counts twice).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from spep_gym.batched.vector_env import SpepVectorEnv
from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv

Clock = Callable[[], float]


def scalar_rates(cfg: SpepConfig, agent: str, slots: int, episodes: int) -> tuple[float, float]:
    """Steps/s of ``SpepEnv.step`` (CPU time, wall time) over the first ``slots`` slots."""
    env = SpepEnv(cfg)
    P = env.num_pairs
    cpu_s = wall_s = 0.0
    steps = 0
    for ep in range(episodes):
        env.reset(seed=ep)
        rng = np.random.default_rng(ep)
        for _ in range(slots):
            action = np.full(cfg.action_len, P)
            if agent == "random":
                feasible = np.flatnonzero(env.action_masks()[:P])
                k = min(cfg.action_len, len(feasible))
                action[:k] = rng.permutation(feasible)[:k]
            c, w = time.process_time(), time.perf_counter()
            env.step(action)
            cpu_s += time.process_time() - c
            wall_s += time.perf_counter() - w
            steps += 1
    return steps / cpu_s, steps / wall_s


def batched_rates(
    cfg: SpepConfig, B: int, agent: str, slots: int, device: str, threads: str = "1"
) -> dict[str, float]:
    """Env-steps/s of ``SpepVectorEnv.step`` at batch size B, its memory and reset time."""
    if threads.startswith("global"):
        before = torch.get_num_threads()
        torch.set_num_threads(int(threads.removeprefix("global")))
        try:
            return batched_rates(cfg, B, agent, slots, device, "none")
        finally:
            torch.set_num_threads(before)
    num_threads = None if threads == "none" else int(threads)
    env = SpepVectorEnv(
        B, config=cfg, device=device, torch_obs=device != "cpu", num_threads=num_threads
    )
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    w = time.perf_counter()
    env.reset(seed=0)
    sync()
    reset_s = time.perf_counter() - w
    P, A = env.num_pairs, cfg.action_len
    none = torch.full((B, A), P, device=env.device)
    gen = torch.Generator(device=env.device).manual_seed(0)
    cpu_s = wall_s = 0.0
    for _ in range(slots):
        action = none
        if agent == "random":
            mask = env.sim.action_masks()[:, :P]
            score = torch.rand((B, P), generator=gen, device=env.device).masked_fill(~mask, -1)
            top = score.topk(A, dim=1)
            action = torch.where(top.values >= 0, top.indices, P)
        sync()
        c, w = time.process_time(), time.perf_counter()
        env.step(action)
        sync()
        cpu_s += time.process_time() - c
        wall_s += time.perf_counter() - w
    memory = env.sim.memory_bytes() / B
    if device.startswith("cuda"):
        memory = torch.cuda.max_memory_allocated() / B
    return {
        "cpu": B * slots / cpu_s,
        "wall": B * slots / wall_s,
        "memory_kib": memory / 1024,
        "reset_ms": reset_s / B * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--sizes", default=None, help="comma list of batch sizes")
    parser.add_argument("--slots", type=int, default=240, help="slots timed from reset")
    parser.add_argument("--episodes", type=int, default=5, help="scalar episodes per agent")
    parser.add_argument("--agents", default="noop,random")
    parser.add_argument("--threads", default="1", help="num_threads settings: N or globalN, ...")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs; medians shown")
    parser.add_argument("--budget", type=float, default=240.0, help="seconds before no new size")
    args = parser.parse_args()
    on_gpu = args.device.startswith("cuda")
    settings = ["none"] if on_gpu else args.threads.split(",")
    default = "1024,8192,32768,65536" if on_gpu else "1,64,1024,8192"
    sizes = [int(x) for x in (args.sizes or default).split(",")]
    agents = args.agents.split(",")
    cfg = SpepConfig()
    start = time.perf_counter()
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs, torch's default threads {torch.get_num_threads()}, "
        f"device {args.device}" + (f" ({torch.cuda.get_device_name()})" if on_gpu else "")
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"paper preset, first {args.slots} slots of an episode; load average at start {load:.2f}")
    scalar: dict[str, tuple[float, float]] = {}
    for agent in agents:
        scalar[agent] = scalar_rates(cfg, agent, args.slots, args.episodes)
    print(
        f"\n{'':>8}{'agent':>8}{'threads':>9}{'steps/s cpu':>14}{'(wall)':>12}{'x scalar':>10}"
        f"{'x first':>9}{'KiB/network':>13}{'reset ms/net':>14}"
    )
    for agent in agents:
        c, w = scalar[agent]
        print(f"{'scalar':>8}{agent:>8}{'':>9}{c:>14,.0f}{f'({w:,.0f})':>12}{1.0:>10.1f}")
    for B in sizes:
        if time.perf_counter() - start > args.budget:
            print(f"(budget of {args.budget:.0f} s spent: B >= {B} not run)")
            break
        for agent in agents:
            runs: dict[str, list[dict[str, float]]] = {t: [] for t in settings}
            for _ in range(args.repeats):  # interleaved: load changes hit every setting alike
                for t in settings:
                    runs[t].append(batched_rates(cfg, B, agent, args.slots, args.device, t))
            key = "wall" if on_gpu else "cpu"
            first = float(np.median([r["wall"] for r in runs[settings[0]]]))
            for t in settings:
                r = {k: float(np.median([x[k] for x in runs[t]])) for k in runs[t][0]}
                ratio = r[key] / scalar[agent][0 if key == "cpu" else 1]
                wall = f"({r['wall']:,.0f})"
                print(
                    f"{B:>8}{agent:>8}{t:>9}{r['cpu']:>14,.0f}{wall:>12}{ratio:>10.1f}"
                    f"{r['wall'] / first:>9.2f}{r['memory_kib']:>13.1f}{r['reset_ms']:>14.2f}",
                    flush=True,
                )
    print(
        f"\nratio: batched env-steps/s over the scalar env's steps/s, by "
        f"{'wall' if on_gpu else 'CPU'} time, same agent; total {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
