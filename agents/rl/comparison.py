"""A learned agent against others on the same seeds: success rates, paired differences, p-values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def compare(
    learned: Any,
    others: tuple[str, ...] = ("noop", "random", "spep-frequency", "spep-oracle"),
    runs: int = 20,
    seed: int = 0,
    jobs: int | None = 1,
    config: Mapping[str, Any] | None = None,
) -> tuple[Any, Any]:
    """Evaluate ``learned`` (an agent) and ``others`` on the same seeds; ``(rows, table)``.

    The table has, per agent, the mean success rate with its 95 % Student-t interval, and the
    learned agent's paired difference from it with the Wilcoxon signed-rank p-value (runs paired by
    seed: every agent meets the same requests and link draws for a seed). Every agent runs under
    ``config`` with the learned agent's settings applied (its observation and physics: a model
    trained under the physical preset is compared there).
    """
    import pandas as pd

    from agents.base import agent_config
    from agents.study.evaluate import evaluate
    from agents.study.stats import mean_ci, wilcoxon_paired

    cfg = agent_config(learned, config)
    frames = [evaluate(learned, runs=runs, seed=seed, jobs=jobs, config=cfg)]
    frames += [evaluate(name, runs=runs, seed=seed, jobs=jobs, config=cfg) for name in others]
    rows = pd.concat(frames, ignore_index=True)
    mine = frames[0].set_index("seed")["success_rate"]
    table = []
    for df in frames:
        rate = df.set_index("seed")["success_rate"]
        mean, low, high, n = mean_ci(rate)
        diff = (mine - rate).mean()
        _, p, _ = wilcoxon_paired(mine, rate.reindex(mine.index))
        table.append(
            {
                "agent": df["agent"].iloc[0],
                "runs": n,
                "success_rate": mean,
                "ci_low": low,
                "ci_high": high,
                "learned_minus_agent": diff,
                "wilcoxon_p": p,
            }
        )
    return rows, pd.DataFrame(table)
