"""Throughput of ``agents.evaluate``: the scalar engine against the batched engine, in one run.

For each agent it times ``agents.evaluate(agent, runs=R, jobs=1, engine=...)`` on the paper preset
cut to ``--slots`` slots (default one day, 240 slots, business hours included): the scalar engine
(one ``SpepEnv`` per run, in this process) over ``--scalar-runs`` runs (its rate does not depend on
how many), and the batched engine (the R runs as one batch, counter draws, on ``--device``) at each
``--sizes`` R. The agents' decisions, the result rows and the DataFrame are part of the time. It
prints env-steps per second (run slots per second of this process's CPU time, wall time beside)
and the batched engine's ratio to the scalar engine's, by CPU time on the CPU (wall time on a GPU).

Usage: ``python benchmarks/bench_engine.py [--agents shortest,random,spep-frequency]
[--sizes 64,256] [--slots 240] [--scalar-runs 32] [--device cpu]``. Torch runs on one thread.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: set before numpy and torch load their libraries

import numpy as np  # noqa: E402
import torch  # noqa: E402

import agents  # noqa: E402


def rates(agent: str, runs: int, slots: int, **how: str) -> tuple[float, float]:
    """Env-steps per second of one ``agents.evaluate`` call: (CPU time, wall time)."""
    cpu, wall = time.process_time(), time.perf_counter()
    df = agents.evaluate(agent, runs=runs, jobs=1, episode_slots=slots, **how)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert len(df) == runs
    return runs * slots / cpu, runs * slots / wall


def main() -> None:
    """Print one row per engine, agent and size, and the ratio of the batched to the scalar."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="shortest,random,spep-frequency")
    parser.add_argument("--sizes", default="64,256", help="comma list of batch sizes (runs)")
    parser.add_argument("--slots", type=int, default=240)
    parser.add_argument("--scalar-runs", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.agents.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    on_gpu = args.device.startswith("cuda")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, device {args.device}"
    )
    print(f"paper preset, {args.slots} slots per run; load average at start {load:.2f}")
    start = time.perf_counter()
    rates("shortest", 2, 10, engine="batched", device=args.device)  # warm up torch
    print(
        f"\n{'engine':>8}{'agent':>16}{'runs':>6}{'steps/s cpu':>13}{'(wall)':>11}{'x scalar':>10}"
    )
    for name in names:
        c, w = rates(name, args.scalar_runs, args.slots)
        print(
            f"{'scalar':>8}{name:>16}{args.scalar_runs:>6}{c:>13,.0f}{f'({w:,.0f})':>11}{1.0:>10.1f}"
        )
        for size in sizes:
            bc, bw = rates(name, size, args.slots, engine="batched", device=args.device)
            ratio = bw / w if on_gpu else bc / c
            print(
                f"{'batched':>8}{name:>16}{size:>6}{bc:>13,.0f}{f'({bw:,.0f})':>11}{ratio:>10.1f}"
            )
    print(
        f"\nratio: the batched engine's env-steps/s over the scalar engine's, by "
        f"{'wall' if on_gpu else 'CPU'} time, same agent; total {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
