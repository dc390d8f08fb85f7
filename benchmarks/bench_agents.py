"""Wall time of one paper-preset episode (2000 slots) for each agent, and the ratio to ``noop``.

Goals (issue 3): non-learning agents within 1.5x of noop; spep-lstm and spep-arima within 10 s per
episode on one CPU core (torch and BLAS run on one thread), with their prediction quality beside, scored on
the same workload by ``agents.study.quality.prediction_quality_table``.

Usage: ``python benchmarks/bench_agents.py [--slots 2000] [--seed 0] [--repeat 5] [--small]``;
``--small`` runs 300 slots (smoke test). Cheap agents take the best of ``--repeat`` runs; the
learning ones run once. Both the wall time and this process's CPU time are printed; the ratio
uses CPU time, which a machine shared with other jobs disturbs less (the episode is single-threaded,
so on an idle core the two agree).
"""

from __future__ import annotations

import argparse
import os
import time

AGENTS = (
    "noop", "reactive", "shortest", "highest_fidelity", "random",
    "spep-frequency", "spep-lstm", "spep-arima", "spep-oracle",
)  # fmt: skip
LEARNING = {"spep-lstm": "lstm", "spep-arima": "arima", "spep-frequency": "frequency"}


def main() -> None:
    """Print one row per agent: seconds per episode, ratio to noop, success rate, and for SPEP its
    predictor's Brier score, MAE (each beside the constant predictor's) and precision@K."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slots", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--agents", default=",".join(AGENTS), help="comma list")
    parser.add_argument("--small", action="store_true", help="300 slots (smoke test)")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # one core: set before numpy loads its BLAS
    import torch

    torch.set_num_threads(1)  # one CPU core

    import agents
    from agents import run_episode
    from agents.study.quality import prediction_quality_table
    from spep_gym.config import SpepConfig

    slots = 300 if args.small else args.slots
    cfg = SpepConfig(episode_slots=slots)
    names = [a.strip() for a in args.agents.split(",") if a.strip()]
    print(f"paper preset, {slots} slots, seed {args.seed}, torch threads {torch.get_num_threads()}")
    learners = [LEARNING[n] for n in names if n in LEARNING]
    quality = {}
    if learners:
        table = prediction_quality_table(seed=args.seed, predictors=learners, config=cfg)
        quality = {row["predictor"]: row for row in table.to_dict("records")}
    print(
        f"{'agent':<17} {'wall_s':>7} {'cpu_s':>7} {'x noop':>6} {'success':>8} "
        f"{'Brier':>7} {'const':>7} {'MAE':>7} {'const':>7} {'prec@K':>7}"
    )
    noop_s = None
    for name in names:
        repeat = 1 if name in ("spep-lstm", "spep-arima") else args.repeat
        best, best_cpu = float("inf"), float("inf")
        for _ in range(repeat):
            agent = agents.make(name)
            start, cpu = time.perf_counter(), time.process_time()
            row = run_episode(agent, args.seed, cfg)
            best = min(best, time.perf_counter() - start)
            best_cpu = min(best_cpu, time.process_time() - cpu)
        if name == "noop":
            noop_s = best_cpu
        ratio = f"{best_cpu / noop_s:>6.2f}" if noop_s else f"{'':>6}"
        line = f"{name:<17} {best:>7.3f} {best_cpu:>7.3f} {ratio} {row['success_rate']:>8.3f}"
        q = quality.get(LEARNING.get(name, ""))
        if q is not None:
            line += (
                f" {q['brier']:>7.4f} {q['brier_constant']:>7.4f} {q['mae']:>7.4f}"
                f" {q['mae_constant']:>7.4f} {q['precision_at_k']:>7.3f}"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()
