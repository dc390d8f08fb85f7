"""CPU time, wall time and quality of each predictor over one 2000-slot episode (n = 16, P = 120).

Usage: ``python benchmarks/bench_predictors.py [--slots 2000] [--seed 1] [--small] [--env]
[--predictors frequency,lstm,arima]``; ``--small`` runs 300 slots, for CI; ``--env`` scores the
requests the environment draws for the seed (the paper preset's workload, what ``spep-lstm`` and
``spep-arima`` meet in a study) instead of the synthetic periodic workload. Torch runs on one
thread (the LSTM's ``num_threads=1``), statsmodels' BLAS on one (the ARIMA refits).

``cpu_s`` is the process's CPU time for the episode (reset, observe and predict every slot); the
one-time imports a first reset triggers (torch's optimizer loads ``torch._dynamo``) are paid
before the clock starts, as a study worker pays them once for all its episodes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from agents.predictors import (
    PREDICTORS,
    make_predictor,
    prediction_quality,
    synthetic_periodic_arrivals,
)


def workload(args: argparse.Namespace, slots: int) -> tuple[np.ndarray, str]:
    """The arrivals to score on and a line that names them."""
    if not args.env:
        arrivals = synthetic_periodic_arrivals(args.nodes, slots, seed=args.seed)
        return (
            arrivals,
            f"synthetic_periodic_arrivals(n={args.nodes}, slots={slots}, seed={args.seed})",
        )
    from agents.study.quality import workload_arrivals
    from spep_gym.config import SpepConfig

    cfg = SpepConfig.from_dict({"num_nodes": args.nodes, "episode_slots": slots})
    return workload_arrivals(
        args.seed, cfg
    ), f"the env's requests (paper preset, n={args.nodes}, seed={args.seed})"


def main() -> None:
    """Print one row per predictor: CPU and wall time per episode, ms/slot, MAE, Brier, prec@4."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slots", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--small", action="store_true", help="300 slots (smoke test)")
    parser.add_argument("--env", action="store_true", help="the environment's own requests")
    parser.add_argument("--predictors", default=",".join(PREDICTORS), help="comma list")
    args = parser.parse_args()
    slots = 300 if args.small else args.slots
    names = [n for n in args.predictors.split(",") if n]
    if not names:
        parser.error(f"--predictors = {args.predictors!r}: allowed one or more predictor names")
    for name in names:
        if name not in PREDICTORS:
            parser.error(f"--predictors: {name!r} is unknown: allowed {', '.join(PREDICTORS)}")
    arrivals, about = workload(args, slots)
    print(f"{about}: {len(arrivals) / slots:.3f} requests/slot")
    print(
        f"{'predictor':<10} {'cpu_s':>7} {'wall_s':>7} {'ms/slot':>8} {'MAE':>7} {'Brier':>7} "
        f"{'prec@4':>7}"
    )
    q: dict[str, float] = {}
    for name in names:
        make_predictor(name).reset(args.nodes)  # the one-time imports, off the clock
        cpu = time.process_time()
        q = prediction_quality(make_predictor(name), arrivals, args.nodes, slots, seed=args.seed)
        cpu = time.process_time() - cpu
        print(
            f"{name:<10} {cpu:>7.3f} {q['wall_s']:>7.3f} {1e3 * q['seconds_per_slot']:>8.3f} "
            f"{q['mae']:>7.4f} {q['brier']:>7.4f} {q['precision_at_k']:>7.3f}",
            flush=True,
        )
    print(
        f"{'constant':<10} {'':>7} {'':>7} {'':>8} {q['mae_constant']:>7.4f} "
        f"{q['brier_constant']:>7.4f} {'':>7}  (always the mean truth rate {q['base_rate']:.4f})"
    )


if __name__ == "__main__":
    main()
