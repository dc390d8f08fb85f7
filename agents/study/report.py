"""``report.md`` of ``spep reproduce``: tables from ``results.csv``, figures, config, the paper's numbers.

Every number in the report is computed here from the CSV files in the output folder (never from the
runs in memory), so the report always says what ``results.csv`` holds. Also writes ``summary.csv``
(mean and 95 % CI of every metric) and ``tests.csv`` (Mann–Whitney U and Wilcoxon tests of every
predictive agent against every non-predictive agent, the controls of SPEC section 10 included,
with the paired difference's CI, ``best_control`` marking each topology's best non-predictive
agent, and Holm-corrected p-values beside the raw ones) and ``prediction.csv`` (prediction's
value: each ``managed-*`` agent against its demand-blind twin ``managed``, and ``managed``
against ``random`` and the best baseline; :func:`agents.study.tables.prediction_comparisons`).

The report leads with the controlled comparison: each predictive agent against the best
non-predictive agent and against ``random``, paired by seed, Holm-corrected.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.study.engine import engine_text
from agents.study.paper import paper_comparison
from agents.study.store import write_text
from agents.study.tables import (
    ALPHA,
    TWIN,
    config_table,
    controls_table,
    prediction_comparisons,
    prediction_table,
    results_table,
    sensitivity_table,
    tests_table,
)

if TYPE_CHECKING:
    import pandas as pd


def write_report(out: Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``out/report.md`` (and ``summary.csv``, ``tests.csv``) from the CSV files in ``out``.

    Each file is written atomically (:func:`agents.study.store.write_text`).
    """
    import pandas as pd

    from agents.study import stats

    out = Path(out)
    if meta is None:
        meta = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else {}
    else:
        write_text(out / "meta.json", json.dumps(meta, indent=1, default=repr))
    parts = [
        "# SPEP reproduction report",
        "",
        f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `{meta.get('command', 'spep reproduce')}`.",
        "",
        f"- Wall time of this invocation: **{meta.get('wall_time_s', math.nan):.1f} s** "
        f"({meta.get('runs_executed', '?')} of {meta.get('runs_total', '?')} runs executed, the rest "
        f"reused from `runs/`; {meta.get('backend', 'local')} backend, {meta.get('jobs', '?')} worker(s), "
        f"{engine_text(meta)}). "
        f"Sum of the runs' own wall times: {meta.get('run_time_sum_s', math.nan):.1f} s.",
        f"- {meta.get('runs', '?')} runs × {meta.get('slots', '?')} slots per topology and agent; run i "
        f"uses seed {meta.get('seed', 0)} + i for every agent (common random numbers).",
        "- Every number below is computed from `results.csv` (and `sensitivity.csv`); "
        "± is the half width of the 95 % Student-t confidence interval over runs.",
        "",
    ]
    results = out / "results.csv"
    if results.exists() and results.stat().st_size > 1:
        df = pd.read_csv(results)
        summary = stats.summarize(df)
        tests = study_tests(df)
        write_text(out / "summary.csv", summary.to_csv(index=False))
        write_text(out / "tests.csv", tests.to_csv(index=False))
        prediction = prediction_comparisons(df)
        write_text(out / "prediction.csv", prediction.to_csv(index=False))
        controls, notes = controls_table(tests, summary)
        parts += [
            "## Controlled comparison (SPEC section 10)",
            "",
            "Each predictive agent against the best non-predictive agent of its topology (chosen "
            "by mean success rate among the non-predictive agents run: "
            f"{', '.join(a for a in (*stats.NON_PREDICTIVE, TWIN) if a in set(df['agent']))}) "
            "and against "
            "`random` (random pre-positioning, which flushes stale link pairs as SPEP does). "
            "Δ: mean of the per-seed differences in success rate with its 95 % CI; p: two-sided "
            "Wilcoxon signed-rank over runs paired by seed (common random numbers); p Holm: "
            "corrected by Holm's step-down method over every success-rate comparison of this "
            "report (the family of `tests.csv`'s success-rate rows). `spep-oracle` is a reference "
            "that reads the next requests, not an upper bound.",
            "",
            controls,
            "",
            *(
                [f"Significant after the correction (Holm p < {ALPHA}):", ""]
                + [f"- {n}" for n in notes]
                if notes
                else [f"No predictive agent differs from a control with Holm p < {ALPHA}."]
            ),
            "",
            "## What is prediction worth",
            "",
            f"Prediction's value (SPEC section 11): each predictive agent minus its demand-blind "
            f"twin `{TWIN}`, which differs from it only in its demand input (the oracles' rows: "
            "what knowing the next requests, or the workload's rates, adds under the same link "
            f"management). The control's rows: `{TWIN}` minus `random` and minus the best "
            "baseline of its topology (highest mean success among the paper's baselines run). Δ: "
            "mean of the per-seed differences in success rate with its 95 % CI; p: two-sided "
            "Wilcoxon signed-rank over the runs paired by seed; p Holm: corrected by Holm's method "
            "over each family (every row of prediction's value, every row of the control). "
            "`prediction.csv` holds the table.",
            "",
            prediction_table(prediction, str(meta.get("preset", "paper"))),
            "",
            "## Our numbers beside the paper's",
            "",
            paper_comparison(df, summary, tests),
            "",
            "## Results per topology and agent",
            "",
            results_table(df, summary),
            "",
            "Latency and fidelity are means over the runs that served at least one request "
            "(SPEC section 6). All metrics with their CIs: `summary.csv`.",
            "",
            "## Tests: SPEP agents vs non-predictive agents",
            "",
            "Differences are SPEP minus baseline (success in percentage points, latency and "
            "utilization relative). Mann–Whitney U: two-sided, unpaired (as the paper); Wilcoxon "
            "signed-rank: two-sided, runs paired by seed; Holm: the Wilcoxon p corrected over "
            "every comparison of the same metric in `tests.csv`. All tested metrics, the "
            "Holm-corrected Mann–Whitney p too: `tests.csv`.",
            "",
            tests_table(tests),
            "",
        ]
    sens_path = out / "sensitivity.csv"
    if sens_path.exists() and sens_path.stat().st_size > 1:
        sens = pd.read_csv(sens_path)
        table, notes = sensitivity_table(sens)
        parts += [
            "## Sensitivity: where SPEP gains and where it loses",
            "",
            "Erdős–Rényi, one factor at a time from the paper preset (the first row); the other "
            "rows change one field the paper leaves open. Differences are against shortest path "
            "and against the `random` control; p from the Wilcoxon signed-rank test over runs "
            "paired by seed, Holm-corrected over every comparison of this table.",
            "",
            table,
            "",
            *(
                [f"Significant differences (Holm p < {ALPHA}):", ""] + [f"- {n}" for n in notes]
                if notes
                else [f"No variant shows a significant difference (Holm p < {ALPHA})."]
            ),
            "",
        ]
    figures = sorted((out / "figures").glob("*.png")) if (out / "figures").exists() else []
    if figures:
        parts += ["## Figures", ""]
        parts += [f"![{p.stem}](figures/{p.name})\n" for p in figures]
    parts += ["## Config", "", config_table(meta), ""]
    agent_config = meta.get("agent_config", {})
    if agent_config:
        parts += ["Settings the agents are defined with (applied on top of the config):", ""]
        parts += [f"- {a}: {c or '(none)'}" for a, c in agent_config.items()]
        parts.append("")
    path = out / "report.md"
    write_text(path, "\n".join(parts))
    return path


def study_tests(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``tests.csv``: every predictive agent against every non-predictive one run.

    The non-predictive agents are :data:`agents.study.stats.NON_PREDICTIVE` and the demand-blind
    control ``managed`` (SPEC section 10: the best non-predictive agent is a control). Beside
    :func:`agents.study.stats.compare`'s columns: ``best_control`` (the baseline is the
    topology's best non-predictive agent by mean success rate) and the Holm-corrected p-values
    (``wilcoxon_p_holm``, ``mwu_p_holm``; one family per metric: every row of that metric).
    """
    from agents.study import stats

    present = set(df["agent"])
    controls = [a for a in (*stats.NON_PREDICTIVE, TWIN) if a in present]
    tests = stats.compare(df, baselines=controls)
    if tests.empty:
        return tests.assign(best_control=[], wilcoxon_p_holm=[], mwu_p_holm=[])
    best = {t: stats.best_control(g, controls) for t, g in df.groupby("topology", sort=False)}
    tests.insert(3, "best_control", tests["baseline"] == tests["topology"].map(best))
    return stats.add_holm(tests)
