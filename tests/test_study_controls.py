"""The controls of SPEC section 10: Holm's correction, the best control, and their place in
``spep reproduce`` (default plan, tests.csv and report)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agents.study import plan, reproduce, stats, tables


def test_holm_known_answer_by_hand():
    # Sorted: 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; step-down keeps
    # the running maximum, so 0.04 becomes 0.06. Back in the input order:
    p = [0.01, 0.04, 0.03, 0.005]
    assert stats.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # Corrected values are capped at 1; NaN (a test that could not run) stays out of the family.
    out = stats.holm([0.5, np.nan, 0.4])
    assert out[0] == pytest.approx(0.8) and math.isnan(out[1]) and out[2] == pytest.approx(0.8)
    assert stats.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert len(stats.holm([])) == 0


def test_add_holm_keeps_raw_p_one_family_per_metric_and_counts_repeats_once():
    tests = pd.DataFrame(
        {
            "topology": ["er", "er", "sf", "er", "er"],
            "agent": ["spep-frequency"] * 5,
            "baseline": ["random", "random", "random", "random", "shortest"],
            "metric": [
                "success_rate",
                "success_rate",
                "success_rate",
                "avg_latency",
                "avg_latency",
            ],
            "wilcoxon_p": [0.01, 0.01, 0.04, 0.02, 0.5],
        }
    )
    out = stats.add_holm(tests, columns=("wilcoxon_p",))
    assert out["wilcoxon_p"].tolist() == tests["wilcoxon_p"].tolist()  # raw p kept beside
    # success_rate: rows 0 and 1 are one test (a repeat), so the family is {0.01, 0.04}.
    assert out["wilcoxon_p_holm"].tolist() == pytest.approx([0.02, 0.02, 0.04, 0.04, 0.5])


def _rows() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    rows = []
    for agent, shift in (("shortest", 0.0), ("random", 0.03), ("spep-frequency", 0.05)):
        for seed in range(10):
            rows.append(
                {
                    "agent": agent,
                    "topology": "erdos_renyi",
                    "seed": seed,
                    "success_rate": 0.2 + shift + 0.01 * seed + rng.normal(0, 0.005),
                    "avg_latency": 2.0,
                    "avg_fidelity": 0.8,
                    "utilization": 0.1,
                }
            )
    return pd.DataFrame(rows)


def test_best_control_and_compare_controls():
    df = _rows()
    assert stats.best_control(df) == "random"
    assert stats.best_control(df, controls=("shortest",)) == "shortest"
    assert stats.best_control(df[df.agent == "spep-frequency"]) is None
    tests = stats.compare_controls(df)
    success = tests[tests.metric == "success_rate"]
    assert success[["control", "baseline"]].values.tolist() == [
        ["best", "random"],
        ["random", "random"],
    ]
    row = success.iloc[0]
    diff = (
        df[df.agent == "spep-frequency"]["success_rate"].to_numpy()
        - df[df.agent == "random"]["success_rate"].to_numpy()
    )
    assert row["difference"] == pytest.approx(diff.mean())
    assert row["diff_ci_low"] < diff.mean() < row["diff_ci_high"]
    assert row["wilcoxon_p"] == pytest.approx(2 / 2**10)  # all 10 paired differences positive
    # The best control is random itself: one test in the family, so Holm leaves it alone.
    assert row["wilcoxon_p_holm"] == pytest.approx(row["wilcoxon_p"])


def test_reproduce_runs_the_random_control_by_default():
    assert "random" in reproduce.Options().agents
    assert "random" in plan.SENSITIVITY_AGENTS
    tasks = plan.plan(reproduce.Options().agents, ("erdos_renyi",), 2, 100, 0, {})
    for study in (plan.MAIN, plan.SENSITIVITY):
        assert {t.agent for t in tasks if t.study == study} >= {"random", "shortest"}


def test_report_leads_with_the_controlled_comparison(tmp_path):
    out = tmp_path / "out"
    opts = reproduce.Options(
        agents=("shortest", "random", "spep-frequency", "spep-oracle"),
        topologies=("erdos_renyi",),
        runs=3,
        slots=80,
        out=out,
        jobs=1,
        sensitivity=False,
        figures=False,
        progress=False,
    )
    assert reproduce.reproduce(opts) == 0
    report = (out / "report.md").read_text()
    assert report.index("## Controlled comparison") < report.index("## Our numbers beside")
    assert "Holm" in report and "oracle bound" not in report and "oracle reference" in report
    tests = pd.read_csv(out / "tests.csv")
    assert {"best_control", "wilcoxon_p", "wilcoxon_p_holm", "mwu_p_holm"} <= set(tests.columns)
    assert set(tests["baseline"]) == {"shortest", "random"}
    best = tests[tests.best_control & (tests.metric == "success_rate")]
    df = pd.read_csv(out / "results.csv")
    assert set(best["baseline"]) == {stats.best_control(df)}
    # Holm over the report's success-rate comparisons: recomputed from the raw p.
    success = tests[tests.metric == "success_rate"]
    assert success["wilcoxon_p_holm"].tolist() == pytest.approx(
        stats.holm(success["wilcoxon_p"]).tolist()
    )


def _managed_rows() -> pd.DataFrame:
    """Two topologies: managed-oracle +2 pp over its twin on every seed, managed-rates equal."""
    rng = np.random.default_rng(8)
    shifts = {
        "shortest": -0.02,
        "highest_fidelity": -0.01,
        "random": -0.03,
        "managed": 0.0,
        "managed-oracle": 0.02,
        "managed-rates": 0.0,
    }
    rows = []
    for topology in ("erdos_renyi", "scale_free"):
        for agent, shift in shifts.items():
            for seed in range(8):
                base = 0.3 + 0.01 * seed + rng.normal(0, 0.003)
                rows.append(
                    {"agent": agent, "topology": topology, "seed": seed, "success_rate": base}
                )
                rows[-1]["success_rate"] += shift
    return pd.DataFrame(rows)


def test_prediction_comparisons_pair_each_agent_with_its_twin_and_holm_per_family():
    df = _managed_rows()
    out = tables.prediction_comparisons(df)
    er = out[out.topology == "erdos_renyi"]
    assert er[["family", "agent", "baseline"]].values.tolist() == [
        ["prediction", "managed-oracle", "managed"],
        ["prediction", "managed-rates", "managed"],
        ["control", "managed", "random"],
        ["control", "managed", "highest_fidelity"],  # the best baseline of the topology
    ]
    for r in out.to_dict("records"):
        a = df[(df.topology == r["topology"]) & (df.agent == r["agent"])].set_index("seed")
        b = df[(df.topology == r["topology"]) & (df.agent == r["baseline"])].set_index("seed")
        diff = (a.success_rate - b.success_rate).to_numpy()
        assert r["mean_paired_difference"] == pytest.approx(diff.mean())
        assert r["pairs"] == 8
    # Holm over each family, both topologies together: recomputed from the raw p.
    for family in ("prediction", "control"):
        part = out[out.family == family]
        assert len(part) == 4
        assert part.wilcoxon_p_holm.tolist() == pytest.approx(stats.holm(part.wilcoxon_p).tolist())
    oracle = er[er.agent == "managed-oracle"].iloc[0]
    assert oracle.mean_paired_difference == pytest.approx(0.02, abs=0.005)
    assert oracle.wilcoxon_p == pytest.approx(2 / 2**8)  # all 8 paired differences positive
    # Without the twin there is nothing to compare; the table says so in one line.
    assert tables.prediction_comparisons(df[df.agent != "managed"]).empty
    assert "nothing to compare" in tables.prediction_table(pd.DataFrame(), "paper")
    table = tables.prediction_table(out, "physical")
    assert "| physical | erdos_renyi | prediction's value | managed-oracle − managed |" in table
    assert tables.twin_of("managed-lstm") == "managed" and tables.twin_of("spep-lstm") is None


def test_reproduce_runs_the_managed_control_its_twins_and_oracles_by_default():
    agents = reproduce.Options().agents
    assert {"managed", "managed-oracle", "managed-distribution"} <= set(agents)
    assert {"managed-frequency", "managed-rates"} <= set(agents)
    assert not set(plan.SLOW_PREDICTION_AGENTS) & set(agents)  # an option: --agents
    assert "managed" not in plan.SENSITIVITY_AGENTS


def test_report_says_what_prediction_is_worth(tmp_path):
    out = tmp_path / "out"
    opts = reproduce.Options(
        agents=("shortest", "random", "managed", "managed-oracle", "spep-frequency"),
        topologies=("erdos_renyi",),
        runs=3,
        slots=80,
        out=out,
        jobs=1,
        sensitivity=False,
        figures=False,
        progress=False,
    )
    assert reproduce.reproduce(opts) == 0
    report = (out / "report.md").read_text()
    assert report.index("## Controlled comparison") < report.index("## What is prediction worth")
    prediction = pd.read_csv(out / "prediction.csv")
    assert prediction[["family", "agent", "baseline"]].values.tolist() == [
        ["prediction", "managed-oracle", "managed"],
        ["control", "managed", "random"],
        ["control", "managed", "shortest"],
    ]
    assert "| paper | erdos_renyi | prediction's value | managed-oracle − managed |" in report
    # managed is a non-predictive agent: a candidate for the best control of tests.csv
    tests = pd.read_csv(out / "tests.csv")
    assert "managed" in set(tests["baseline"])
    # the table is computed from results.csv: a rerun of the report regenerates it
    from agents.study import report as report_module

    (out / "prediction.csv").unlink()
    report_module.write_report(out)
    assert pd.read_csv(out / "prediction.csv").equals(prediction)


def test_slow_twins_option_adds_the_lstm_and_arima_twins(monkeypatch, tmp_path):
    from agents.cli import main

    seen = []
    monkeypatch.setattr(reproduce, "reproduce", lambda opts: seen.append(opts.agents) or 0)
    out = str(tmp_path / "out")
    assert main(["reproduce", "--out", out]) == 0
    assert main(["reproduce", "--slow-twins", "--out", out]) == 0
    assert (
        main(["reproduce", "--agents", "managed,managed-lstm", "--slow-twins", "--out", out]) == 0
    )
    assert seen[1] == (*seen[0], "managed-lstm", "managed-arima")
    assert seen[2] == ("managed", "managed-lstm", "managed-arima")
    assert not set(plan.SLOW_PREDICTION_AGENTS) & set(seen[0])
