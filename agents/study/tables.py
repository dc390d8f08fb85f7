"""The tables of a study's report: formatting, and markdown tables of results, tests and config.

Every table is computed from the data frames it is given (read from the study's CSV files by
:func:`agents.study.report.write_report`), never from runs in memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

#: The comparison baseline of the tables ("shortest path", as the paper's).
REFERENCE = "shortest"
#: The oracle (an upper bound, left out of the sensitivity notes).
ORACLE = "spep-oracle"
#: Significance level of the notes.
ALPHA = 0.05
#: (metric, column label, format) of the results table.
TABLE_METRICS = (
    ("success_rate", "success rate (%)", "pct"),
    ("avg_latency", "latency (slots)", "num"),
    ("avg_fidelity", "fidelity", "fid"),
    ("utilization", "utilization (%)", "pct"),
    ("preposition_hit_rate", "served pre-positioned (%)", "pct"),
)


def fmt(mean: float, half: float, kind: str = "pct") -> str:
    """``mean ± half`` as the report prints it: percent (1 decimal), slots (2), fidelity (3)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    scale, digits = {"pct": (100.0, 1), "num": (1.0, 2), "fid": (1.0, 3)}[kind]
    text = f"{mean * scale:.{digits}f}"
    if half is not None and not math.isnan(half):
        text += f" ± {half * scale:.{digits}f}"
    return text


def fmt_p(p: float) -> str:
    """A p-value as the report prints it: 2 significant digits, ``<1e-4`` below that, ``–`` if NaN."""
    if p is None or math.isnan(p):
        return "–"
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table of ``header`` and ``rows``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def metric_cell(
    summary: pd.DataFrame, keys: dict[str, Any], metric: str
) -> tuple[float, float, float]:
    """(mean, half width, n) of one metric of one group of ``summary``; NaN when absent."""
    sel = summary["metric"] == metric
    for k, v in keys.items():
        sel &= summary[k] == v
    if not sel.any():
        return (math.nan, math.nan, 0)
    row = summary[sel].iloc[0]
    return (float(row["mean"]), float(row["half_width"]), int(row["n"]))


def results_table(df: pd.DataFrame, summary: pd.DataFrame) -> str:
    """Mean ± 95 % CI of the main metrics per topology and agent."""
    rows = []
    for topology in dict.fromkeys(df["topology"]):
        for agent in dict.fromkeys(df["agent"]):
            keys = {"topology": topology, "agent": agent}
            runs = int(((df["topology"] == topology) & (df["agent"] == agent)).sum())
            if not runs:
                continue
            cells = [fmt(*metric_cell(summary, keys, m)[:2], kind) for m, _, kind in TABLE_METRICS]
            rows.append([topology, agent, runs, *cells])
    return markdown_table(
        ["topology", "agent", "runs", *(label for _, label, _ in TABLE_METRICS)], rows
    )


def find_test(tests: pd.DataFrame, **keys: Any) -> dict[str, Any] | None:
    """The row of ``tests`` matching ``keys`` (column=value), as a dict; None when absent."""
    if tests.empty:
        return None
    sel = np.ones(len(tests), dtype=bool)
    for column, value in keys.items():
        sel &= (tests[column] == value).to_numpy()
    return {str(k): v for k, v in tests[sel].iloc[0].items()} if sel.any() else None


def change_text(row: dict[str, Any], kind: str) -> str:
    """A test row's difference: in percentage points (``kind="pp"``) or relative (``"rel"``)."""
    if kind == "pp":
        return f"{100 * row['difference']:+.1f} pp"
    rel = row["relative_difference"]
    return "–" if math.isnan(rel) else f"{100 * rel:+.1f} %"


def tests_table(tests: pd.DataFrame) -> str:
    """SPEP agents vs baselines: differences of the means and p-values (MWU, Wilcoxon)."""
    if tests.empty:
        return "_No SPEP agent and baseline in the same run set: no tests._"
    rows = []
    combos = tests[["topology", "agent", "baseline"]].drop_duplicates().itertuples(index=False)
    for topology, agent, base in combos:
        cells = [topology, agent, base]
        for metric, kind in (
            ("success_rate", "pp"),
            ("avg_latency", "rel"),
            ("utilization", "rel"),
        ):
            r = find_test(tests, topology=topology, agent=agent, baseline=base, metric=metric)
            cells += (
                [change_text(r, kind), fmt_p(r["mwu_p"]), fmt_p(r["wilcoxon_p"])]
                if r
                else ["–"] * 3
            )
        rows.append(cells)
    header = ["topology", "agent", "vs"]
    for name in ("success", "latency", "utilization"):
        header += [f"Δ {name}", "p MWU", "p Wilcoxon"]
    return markdown_table(header, rows)


def sensitivity_table(sens: pd.DataFrame) -> tuple[str, list[str]]:
    """Success rate per variant and agent, SPEP's gain over shortest, the oracle's bound."""
    from agents.study import stats

    summary = stats.summarize(sens, ["success_rate"], by=("variant", "agent"))
    agents = list(dict.fromkeys(sens["agent"]))
    others = [a for a in agents if a != REFERENCE]
    comparisons = stats.compare(
        sens, ["success_rate"], agents=others, baselines=[REFERENCE], by="variant"
    )
    rows, notes = [], []
    for variant in dict.fromkeys(sens["variant"]):
        cells: list[Any] = [variant]
        for agent in agents:
            cells.append(
                fmt(*metric_cell(summary, {"variant": variant, "agent": agent}, "success_rate")[:2])
            )
        for agent in agents:
            if agent == REFERENCE:
                continue
            r = find_test(comparisons, variant=variant, agent=agent)
            if r is None:
                cells.append("–")
                continue
            cells.append(f"{100 * r['difference']:+.1f} pp (p {fmt_p(r['wilcoxon_p'])})")
            if agent != ORACLE and r["wilcoxon_p"] < ALPHA:
                notes.append(
                    f"{variant}: {agent} {'gains' if r['difference'] > 0 else 'loses'} "
                    f"{abs(100 * r['difference']):.1f} pp against shortest"
                )
        rows.append(cells)
    header = [
        "variant",
        *(f"{a} (%)" for a in agents),
        *(f"{a} − shortest" for a in agents if a != REFERENCE),
    ]
    return markdown_table(header, rows), notes


def config_table(meta: dict[str, Any]) -> str:
    """Every config field with its value; overrides (``--set``, ``--slots``, topology) marked."""
    overrides = meta.get("overrides", {})
    preset = meta.get("preset", "paper")
    rows = [["preset", preset, "**--set**" if preset != "paper" else ""]]
    for field, value in meta.get("config", {}).items():
        if field == "topology":
            rows.append([field, ", ".join(meta.get("topologies", [])) or value, "--topologies"])
        elif field == "episode_slots":
            mark = "**--slots**" if str(meta.get("slots")) != value else ""
            rows.append([field, meta.get("slots", value), mark])
        elif field in overrides:
            rows.append(
                [f"**{field}**", f"**{overrides[field]}** ({preset}: {value})", "**--set**"]
            )
        else:
            rows.append([field, value, ""])
    return markdown_table(["field", "value", "override"], rows)
