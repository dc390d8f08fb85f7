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
    learned agent's mean paired difference from it with its 95 % interval, the Wilcoxon
    signed-rank p-value and its Holm correction over the table's comparisons (runs paired by seed:
    every agent meets the same requests and link draws for a seed; :func:`agents.study.stats.compare`
    and :func:`~agents.study.stats.add_holm`). Every agent runs under ``config`` with the learned
    agent's settings applied (its observation and physics: a model trained under the physical
    preset is compared there). Every metric: :func:`agents.study.stats.paired_table` of the rows.
    """
    import pandas as pd

    from agents.base import agent_config
    from agents.study import stats
    from agents.study.evaluate import evaluate

    cfg = agent_config(learned, config)
    frames = [evaluate(learned, runs=runs, seed=seed, jobs=jobs, config=cfg)]
    frames += [evaluate(name, runs=runs, seed=seed, jobs=jobs, config=cfg) for name in others]
    rows = pd.concat(frames, ignore_index=True)
    names = [str(df["agent"].iloc[0]) for df in frames]
    tests = stats.compare(rows, ("success_rate",), agents=names[:1], baselines=names[1:])
    tests = stats.add_holm(tests, columns=("wilcoxon_p",)).set_index("baseline")
    table = []
    for name, df in zip(names, frames, strict=True):
        mean, low, high, n = stats.mean_ci(df["success_rate"])
        test = tests.loc[name] if name in tests.index else None  # None: the learned agent itself
        table.append(
            {
                "agent": name,
                "runs": n,
                "success_rate": mean,
                "ci_low": low,
                "ci_high": high,
                "learned_minus_agent": 0.0 if test is None else test["mean_paired_difference"],
                "diff_ci_low": 0.0 if test is None else test["diff_ci_low"],
                "diff_ci_high": 0.0 if test is None else test["diff_ci_high"],
                "wilcoxon_p": 1.0 if test is None else test["wilcoxon_p"],
                "wilcoxon_p_holm": 1.0 if test is None else test["wilcoxon_p_holm"],
            }
        )
    return rows, pd.DataFrame(table)
