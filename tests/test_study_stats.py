"""Statistics of ``spep reproduce`` against hand computations and scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from agents.study import stats

# Student t quantile t(0.975, df=4), from tables.
T_975_4 = 2.7764451051977987


def test_mean_ci_matches_hand_computation():
    mean, low, high, n = stats.mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    half = T_975_4 * math.sqrt(2.5) / math.sqrt(5)  # t * s / sqrt(n), s^2 = 2.5
    assert (mean, n) == (3.0, 5)
    assert low == pytest.approx(3.0 - half, abs=1e-12)
    assert high == pytest.approx(3.0 + half, abs=1e-12)


def test_mean_ci_drops_nan_and_handles_degenerate_samples():
    assert stats.mean_ci([1.0, np.nan, 2.0, 3.0, 4.0, 5.0]) == stats.mean_ci([1, 2, 3, 4, 5])
    assert stats.mean_ci([0.3, 0.3, 0.3]) == (0.3, 0.3, 0.3, 3)
    mean, low, high, n = stats.mean_ci([0.7])
    assert (mean, n) == (0.7, 1) and math.isnan(low) and math.isnan(high)
    assert stats.mean_ci([np.nan])[3] == 0 and math.isnan(stats.mean_ci([])[0])


def test_mann_whitney_known_answer_and_scipy():
    # Complete separation of 3 vs 3: U = 0, exact two-sided p = 2 / C(6, 3) = 0.1.
    assert stats.mann_whitney([1, 2, 3], [4, 5, 6]) == pytest.approx((0.0, 0.1))
    rng = np.random.default_rng(7)
    a, b = rng.normal(0.3, 0.05, 20), rng.normal(0.28, 0.05, 20)
    expected = sps.mannwhitneyu(a, b, alternative="two-sided")
    assert stats.mann_whitney(a, b) == (expected.statistic, expected.pvalue)
    # NaNs are dropped, not ranked.
    assert stats.mann_whitney([*a, np.nan], b) == (expected.statistic, expected.pvalue)
    assert all(math.isnan(v) for v in stats.mann_whitney([], b))


def test_wilcoxon_known_answer_scipy_and_degenerate_cases():
    # Five positive differences: W = 0 (sum of negative ranks), exact p = 2 / 2^5.
    w, p, n = stats.wilcoxon_paired([2, 3, 4, 5, 6], [1.5, 2.4, 3.3, 4.2, 5.1])
    assert (w, n) == (0.0, 5) and p == pytest.approx(0.0625)
    rng = np.random.default_rng(3)
    a = rng.uniform(0.2, 0.4, 20)
    b = a - rng.normal(0.02, 0.03, 20)
    expected = sps.wilcoxon(a, b, alternative="two-sided")
    assert stats.wilcoxon_paired(a, b) == (expected.statistic, expected.pvalue, 20)
    # All differences zero: no evidence of a difference.
    assert stats.wilcoxon_paired([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]) == (0.0, 1.0, 3)
    # A pair with a NaN (nothing served: latency undefined) is dropped.
    assert stats.wilcoxon_paired([*a, np.nan], [*b, 0.5]) == (
        expected.statistic,
        expected.pvalue,
        20,
    )
    assert stats.wilcoxon_paired([np.nan], [1.0])[2] == 0


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    rows = []
    for topology in ("erdos_renyi", "scale_free"):
        for agent, shift in (("shortest", 0.0), ("spep-frequency", 0.05), ("reactive", -0.03)):
            for seed in range(8):
                latency = np.nan if (agent == "reactive" and seed == 0) else 3 + rng.normal()
                rows.append(
                    {
                        "agent": agent,
                        "topology": topology,
                        "seed": seed,
                        "slots": 100,
                        "success_rate": 0.3 + shift + 0.01 * seed + rng.normal(0, 0.01),
                        "avg_latency": latency,
                        "avg_fidelity": 0.8,
                        "utilization": 0.1 + shift,
                    }
                )
    return pd.DataFrame(rows)


def test_summarize_groups_metrics_and_drops_undefined_values():
    df = _frame()
    summary = stats.summarize(df)
    assert set(summary["metric"]) == {"success_rate", "avg_latency", "avg_fidelity", "utilization"}
    assert len(summary) == 2 * 3 * 4
    row = summary[
        (summary.topology == "scale_free")
        & (summary.agent == "spep-frequency")
        & (summary.metric == "success_rate")
    ].iloc[0]
    values = df[(df.topology == "scale_free") & (df.agent == "spep-frequency")]["success_rate"]
    mean, low, high, n = stats.mean_ci(values)
    assert (row["mean"], row["ci_low"], row["ci_high"], row["n"]) == (mean, low, high, n)
    assert row["half_width"] == pytest.approx((high - low) / 2)
    latency = summary[
        (summary.topology == "erdos_renyi")
        & (summary.agent == "reactive")
        & (summary.metric == "avg_latency")
    ].iloc[0]
    assert latency["n"] == 7  # the run that served nothing is left out


def test_compare_pairs_runs_by_seed_and_matches_scipy():
    df = _frame().sample(frac=1.0, random_state=1)  # row order must not matter: pairs by seed
    tests = stats.compare(df)
    assert set(tests["agent"]) == {"spep-frequency"}  # the SPEP agents
    assert set(tests["baseline"]) == {"reactive", "shortest"}
    row = tests[
        (tests.topology == "erdos_renyi")
        & (tests.baseline == "shortest")
        & (tests.metric == "success_rate")
    ].iloc[0]
    part = df[df.topology == "erdos_renyi"]
    a = part[part.agent == "spep-frequency"].sort_values("seed")["success_rate"].to_numpy()
    b = part[part.agent == "shortest"].sort_values("seed")["success_rate"].to_numpy()
    w = sps.wilcoxon(a, b)
    u = sps.mannwhitneyu(a, b, alternative="two-sided")
    assert (row["wilcoxon_w"], row["wilcoxon_p"], row["pairs"]) == (w.statistic, w.pvalue, 8)
    assert (row["mwu_u"], row["mwu_p"]) == (u.statistic, u.pvalue)
    assert row["difference"] == pytest.approx(a.mean() - b.mean())
    # Latency against reactive: seed 0 has no reactive latency, so 7 pairs remain.
    lat = tests[
        (tests.topology == "erdos_renyi")
        & (tests.baseline == "reactive")
        & (tests.metric == "avg_latency")
    ].iloc[0]
    assert lat["pairs"] == 7
    # Identical fidelity in every pair: no difference, p = 1.
    fid = tests[(tests.baseline == "shortest") & (tests.metric == "avg_fidelity")]
    assert len(fid) == 2 and (fid["wilcoxon_p"] == 1.0).all()
