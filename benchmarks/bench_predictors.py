"""Wall time and quality of each predictor over one 2000-slot episode (n = 16, P = 120).

Usage: ``python benchmarks/bench_predictors.py [--slots 2000] [--seed 1] [--small]``; ``--small``
runs 300 slots, for CI. Torch runs on one thread (the LSTM's ``num_threads=1``).
"""

from __future__ import annotations

import argparse

from agents.predictors import make_predictor, prediction_quality, synthetic_periodic_arrivals


def main() -> None:
    """Print one row per predictor: wall time per episode, per slot, MAE, Brier, precision@4."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slots", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--small", action="store_true", help="300 slots (smoke test)")
    args = parser.parse_args()
    slots = 300 if args.small else args.slots
    arrivals = synthetic_periodic_arrivals(args.nodes, slots, seed=args.seed)
    print(
        f"synthetic_periodic_arrivals(n={args.nodes}, slots={slots}, seed={args.seed}): "
        f"{len(arrivals) / slots:.3f} requests/slot"
    )
    print(
        f"{'predictor':<10} {'episode_s':>9} {'ms/slot':>8} {'MAE':>7} {'Brier':>7} {'prec@4':>7}"
    )
    for name in ("frequency", "lstm", "arima"):
        q = prediction_quality(make_predictor(name), arrivals, args.nodes, slots, seed=args.seed)
        print(
            f"{name:<10} {q['wall_s']:>9.3f} {1e3 * q['seconds_per_slot']:>8.3f} "
            f"{q['mae']:>7.4f} {q['brier']:>7.4f} {q['precision_at_k']:>7.3f}"
        )
    print(
        f"{'constant':<10} {'':>9} {'':>8} {q['mae_constant']:>7.4f} {q['brier_constant']:>7.4f}"
        f" {'':>7}  (always the mean truth rate {q['base_rate']:.4f})"
    )


if __name__ == "__main__":
    main()
