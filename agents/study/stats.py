"""Statistics of an experiment (SPEC sections 7 and 10): means with 95 % confidence intervals, tests.

Every function takes the result rows (a DataFrame with the columns of ``results.csv``). Missing values
(``avg_latency`` of a run that served nothing) are dropped from that metric only (SPEC section 6).
Tests compare each predictive agent (``spep-*``, the oracle reference included) with each
non-predictive agent per topology: Mann–Whitney U (two-sided, unpaired, as the paper did) and the
Wilcoxon signed-rank test on runs paired by seed (valid because every agent meets the same workload
and link draws for a seed: common random numbers). The controls of SPEC section 10 are ``random``
and the best non-predictive agent of each group (:func:`best_control`); :func:`holm` corrects a
family of p-values (Holm's step-down method, from statsmodels), and :func:`add_holm` applies it to
a table of tests, one family per metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from agents.baselines import BASELINES

#: Agents that never predict demand: the paper's baselines, ``noop`` and the ``random`` control.
NON_PREDICTIVE = (*BASELINES, "noop", "random")
#: The control that pre-positions random node pairs (SPEC section 10): it flushes links as SPEP does.
RANDOM_CONTROL = "random"
if TYPE_CHECKING:
    import pandas as pd

#: Metrics in the order tables show them; any other numeric column follows.
METRICS = (
    "success_rate", "avg_latency", "avg_fidelity", "utilization",
    "preposition_hit_rate", "preposition_use_rate", "preposition_waste_rate",
    "arrived", "served", "failed", "pending", "pairs_generated", "prepositions_placed",
    "prepositions_used", "prepositions_expired", "swap_failures",
)  # fmt: skip
#: Metrics the tests are run on.
TESTED_METRICS = ("success_rate", "avg_latency", "avg_fidelity", "utilization")
NOT_METRICS = ("agent", "topology", "seed", "slots", "variant")


def mean_ci(values: npt.ArrayLike, confidence: float = 0.95) -> tuple[float, ...]:
    """Mean and Student-t confidence interval: ``(mean, low, high, n)``; NaNs are dropped.

    With one value the interval is undefined (NaN); with identical values it is the point.
    """
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return (math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n == 1:
        return (mean, math.nan, math.nan, 1)
    sem = float(stats.sem(x))
    if sem == 0.0:
        return (mean, mean, mean, n)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return (mean, float(low), float(high), n)


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The numeric metric columns of ``df``: :data:`METRICS` first, then the rest."""
    numeric = [c for c in df.columns if c not in NOT_METRICS and _is_numeric(df[c])]
    return [m for m in METRICS if m in numeric] + [c for c in numeric if c not in METRICS]


def _is_numeric(column: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(column)) and not pd.api.types.is_bool_dtype(column)


def summarize(
    df: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    by: Sequence[str] = ("topology", "agent"),
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean and confidence interval of every metric per group, one row per (group, metric).

    Columns: ``*by, metric, n, mean, ci_low, ci_high, half_width`` (``n`` counts the runs where the
    metric is defined).
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    metrics = list(metrics) if metrics is not None else metric_columns(df)
    for keys, group in df.groupby(list(by), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        for metric in metrics:
            mean, low, high, n = mean_ci(pd.to_numeric(group[metric]), confidence)
            rows.append(
                {
                    **dict(zip(by, keys, strict=True)),
                    "metric": metric,
                    "n": n,
                    "mean": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "half_width": (high - low) / 2,
                }
            )
    return pd.DataFrame(rows)


def mann_whitney(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[float, float]:
    """Two-sided Mann–Whitney U test: ``(U of a, p)``; NaN when a sample is empty."""
    from scipy import stats

    x, y = _finite(a), _finite(b)
    if len(x) == 0 or len(y) == 0:
        return (math.nan, math.nan)
    result = stats.mannwhitneyu(x, y, alternative="two-sided")
    return (float(result.statistic), float(result.pvalue))


def wilcoxon_paired(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[float, float, int]:
    """Two-sided Wilcoxon signed-rank test of paired samples: ``(W, p, pairs)``.

    Pairs with a NaN are dropped. When every difference is zero there is no evidence of a
    difference: ``W = 0``, ``p = 1`` (scipy would warn and divide by zero).
    """
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = len(x)
    if n == 0:
        return (math.nan, math.nan, 0)
    if np.all(x == y):
        return (0.0, 1.0, n)
    result = stats.wilcoxon(x, y, alternative="two-sided")
    return (float(result.statistic), float(result.pvalue), n)


def _finite(values: npt.ArrayLike) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[~np.isnan(x)]


def _mean(values: npt.ArrayLike) -> float:
    x = _finite(values)
    return float(x.mean()) if len(x) else math.nan


def predictive_agents(df: pd.DataFrame) -> list[str]:
    """The SPEP agents of ``df`` (names starting with ``spep-``), in order of appearance."""
    return [a for a in df["agent"].unique() if str(a).startswith("spep-")]


def compare(
    df: pd.DataFrame,
    metrics: Sequence[str] = TESTED_METRICS,
    agents: Sequence[str] | None = None,
    baselines: Sequence[str] = BASELINES,
    by: str = "topology",
) -> pd.DataFrame:
    """Each of ``agents`` (default: the SPEP agents) against each baseline, per ``by`` group.

    One row per (group, agent, baseline, metric): the means, their difference (agent - baseline)
    and relative difference, the mean of the paired differences (``mean_paired_difference``) with
    its 95 % Student-t interval (``diff_ci_low``, ``diff_ci_high``), Mann–Whitney U and p, and the Wilcoxon W and p over runs
    paired by seed.
    """
    import pandas as pd

    agents = list(agents) if agents is not None else predictive_agents(df)
    rows: list[dict[str, Any]] = []
    for group_key, group in df.groupby(by, sort=False):
        runs = {a: g.set_index("seed") for a, g in group.groupby("agent", sort=False)}
        for agent in agents:
            for base in baselines:
                if agent not in runs or base not in runs or agent == base:
                    continue
                for metric in metrics:
                    a = pd.to_numeric(runs[agent][metric])
                    b = pd.to_numeric(runs[base][metric])
                    u, p_u = mann_whitney(a, b)
                    paired = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
                    w, p_w, pairs = wilcoxon_paired(paired["a"], paired["b"])
                    diff, diff_low, diff_high, _ = mean_ci(paired["a"] - paired["b"])
                    mean_a, mean_b = _mean(a), _mean(b)
                    rows.append(
                        {
                            by: group_key,
                            "agent": agent,
                            "baseline": base,
                            "metric": metric,
                            "mean_agent": mean_a,
                            "mean_baseline": mean_b,
                            "difference": mean_a - mean_b,
                            "relative_difference": (mean_a - mean_b) / mean_b
                            if mean_b
                            else math.nan,
                            "mean_paired_difference": diff,
                            "diff_ci_low": diff_low,
                            "diff_ci_high": diff_high,
                            "mwu_u": u,
                            "mwu_p": p_u,
                            "wilcoxon_w": w,
                            "wilcoxon_p": p_w,
                            "pairs": pairs,
                        }
                    )
    return pd.DataFrame(rows)


def paired_table(
    df: pd.DataFrame,
    reference: str | None = None,
    metrics: Sequence[str] = TESTED_METRICS,
    option: str = "reference",
) -> pd.DataFrame:
    """Every other agent of ``df`` against ``reference`` (default: the first agent), paired by seed.

    One row per (topology, agent, metric): the agent's and the reference's means, the mean paired
    difference (agent - reference) with its 95 % Student-t interval, the pairs, the Wilcoxon
    signed-rank p and its Holm correction over the whole table (one family):
    :func:`compare` and :func:`add_holm`.

    Raises:
        ValueError: ``reference`` is not an agent of ``df`` (named as ``option``).
    """
    agents = [str(a) for a in df["agent"].unique()]
    reference = agents[0] if reference is None else reference
    if reference not in agents:
        raise ValueError(
            f"{option} {reference!r} is invalid: allowed one of the agents evaluated: "
            f"{', '.join(agents)}"
        )
    others = [a for a in agents if a != reference]
    tests = compare(df, metrics, agents=others, baselines=(reference,))
    if tests.empty:
        return tests
    tests = add_holm(tests, columns=("wilcoxon_p",), family=("baseline",))
    tests = tests.rename(columns={"baseline": "reference", "mean_baseline": "mean_reference"})
    return tests[
        [
            "topology", "agent", "reference", "metric", "pairs", "mean_agent", "mean_reference",
            "mean_paired_difference", "diff_ci_low", "diff_ci_high", "wilcoxon_p",
            "wilcoxon_p_holm",
        ]
    ]  # fmt: skip


# ---------------------------------------------------------------------- controls (SPEC section 10)


def holm(pvalues: npt.ArrayLike) -> np.ndarray:
    """Holm's step-down correction of a family of p-values (``multipletests(method="holm")``).

    Controls the family-wise error rate: the chance that any of the family's null hypotheses is
    rejected wrongly stays at most alpha. NaN p-values (a test that could not run) are left out of
    the family and stay NaN.
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def add_holm(
    tests: pd.DataFrame,
    key: Sequence[str] = ("topology", "agent", "baseline", "metric"),
    columns: Sequence[str] = ("wilcoxon_p", "mwu_p"),
    family: Sequence[str] = ("metric",),
) -> pd.DataFrame:
    """``tests`` with a Holm-corrected ``<column>_holm`` beside each p-value column.

    One family per value of the ``family`` columns (default: one per metric): every comparison of
    that metric in the table is corrected together. ``key`` names the columns that identify a test;
    rows that repeat a test (the best control is ``random`` itself) count once in the family.
    """
    out = tests.copy()
    for column in columns:
        if column not in out:
            continue
        corrected = np.full(len(out), math.nan)
        if len(out):
            ids = out[list(key)].astype(str).agg("\x1f".join, axis=1)
            for _, part in out.groupby(list(family), sort=False):
                unique = ~ids[part.index].duplicated()
                first = part[unique.to_numpy()]
                by_id = dict(zip(ids[first.index], holm(first[column]), strict=True))
                corrected[out.index.get_indexer(part.index)] = ids[part.index].map(by_id)
        out[f"{column}_holm"] = corrected
    return out


def best_control(
    df: pd.DataFrame, controls: Sequence[str] = NON_PREDICTIVE, metric: str = "success_rate"
) -> str | None:
    """The non-predictive agent of ``df`` with the highest mean ``metric`` (None if there is none).

    ``df`` holds the runs of one group (a topology, a cell). Ties go to the first in ``controls``.
    The choice is made on the same runs the tests use, which favours the control: a predictive
    agent that beats it beats every control run.
    """
    means = {c: _mean(df.loc[df["agent"] == c, metric]) for c in controls}
    means = {c: m for c, m in means.items() if not math.isnan(m)}
    if not means:
        return None
    return max(means, key=lambda c: (means[c], -list(controls).index(c)))


def compare_controls(
    df: pd.DataFrame,
    metrics: Sequence[str] = TESTED_METRICS,
    agents: Sequence[str] | None = None,
    by: Sequence[str] = ("topology",),
    controls: Sequence[str] = NON_PREDICTIVE,
) -> pd.DataFrame:
    """Each predictive agent against the best control and against ``random``, per group (SPEC 10).

    One row per (group, agent, control role, metric): ``control`` is ``"best"`` (the group's
    :func:`best_control` by mean success rate) or ``"random"``, ``baseline`` names the agent it is;
    then the columns of :func:`compare` and the Holm-corrected p-values of :func:`add_holm` (one
    family per metric: every comparison of that metric in the table).
    """
    import pandas as pd

    agents = list(agents) if agents is not None else predictive_agents(df)
    frames = []
    for keys, group in df.groupby(list(by), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        present = set(group["agent"])
        for role, control in (("best", best_control(group, controls)), ("random", RANDOM_CONTROL)):
            if control is None or control not in present:
                continue
            tests = compare(group.assign(_group=0), metrics, agents, [control], by="_group")
            if tests.empty:
                continue
            tests = tests.drop(columns="_group")
            tests.insert(1, "control", role)
            for name, value in reversed(list(zip(by, keys, strict=True))):
                tests.insert(0, name, [value] * len(tests))
            frames.append(tests)
    if not frames:
        return pd.DataFrame()
    return add_holm(pd.concat(frames, ignore_index=True), key=(*by, "agent", "baseline", "metric"))


# ---------------------------------------------------------------------- calibration misses


def _rms_parts(
    rates: Mapping[str, npt.ArrayLike], targets: Mapping[str, float]
) -> tuple[float, dict[str, np.ndarray], dict[str, float]]:
    """(RMS miss, the per-run values, the gradient of the RMS with respect to each group mean)."""
    values = {g: _finite(r) for g, r in rates.items()}
    misses = {g: float(v.mean()) - targets[g] for g, v in values.items()}
    rms = math.sqrt(float(np.mean(np.square(list(misses.values())))))
    grad = {g: m / (len(misses) * rms) if rms else math.nan for g, m in misses.items()}
    return rms, values, grad


def rms_miss(
    rates: Mapping[str, npt.ArrayLike], targets: Mapping[str, float]
) -> tuple[float, float]:
    """Root mean square over the groups of (mean of the group's runs - its target), and its SE.

    ``rates[g]`` holds the per-run values of group ``g`` (a topology's per-seed success rates),
    ``targets[g]`` the value it should have. Both numbers are in the units of the rates (multiply
    by 100 for percentage points). The standard error is the delta method's (first order): the
    groups are independent, the runs of a group independent and alike; NaN with one run.
    """
    rms, values, grad = _rms_parts(rates, targets)
    var = sum(grad[g] ** 2 * np.var(v, ddof=1) / len(v) for g, v in values.items() if len(v) > 1)
    ok = all(len(v) > 1 for v in values.values())
    return rms, math.sqrt(var) if ok else math.nan


def rms_miss_difference(
    a: Mapping[str, npt.ArrayLike], b: Mapping[str, npt.ArrayLike], targets: Mapping[str, float]
) -> tuple[float, float]:
    """``rms_miss(a) - rms_miss(b)`` and its SE, ``a[g]`` and ``b[g]`` paired run by run (same seeds).

    The delta method over the per-run differences of the two linearised misses, so the noise the
    pairs share (common random numbers) cancels.
    """
    rms_a, va, ga = _rms_parts(a, targets)
    rms_b, vb, gb = _rms_parts(b, targets)
    var = 0.0
    for g in va:
        if len(va[g]) != len(vb[g]) or len(va[g]) < 2:
            return rms_a - rms_b, math.nan
        z = ga[g] * va[g] - gb[g] * vb[g]
        var += float(np.var(z, ddof=1)) / len(z)
    return rms_a - rms_b, math.sqrt(var)


def tost_paired(a: npt.ArrayLike, b: npt.ArrayLike, margin: float) -> float:
    """The p-value of the paired equivalence test (TOST) that ``mean(a - b)`` is within ``±margin``.

    ``statsmodels.stats.weightstats.ttost_paired``: two one-sided paired t-tests; a small p says
    the difference is inside the margin (equivalence), a large one that equivalence is not shown.
    Pairs with a NaN are dropped.
    """
    from statsmodels.stats.weightstats import ttost_paired

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    return float(ttost_paired(x[keep], y[keep], -margin, margin)[0])
