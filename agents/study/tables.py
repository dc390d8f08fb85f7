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
#: The oracle reference (reads the next requests; not an upper bound: SPEC section 10). Left out
#: of the sensitivity notes.
ORACLE = "spep-oracle"
#: Significance level of the notes.
ALPHA = 0.05
#: The strong demand-blind control (:mod:`agents.controls`): the twin of every ``managed-*`` agent,
#: which differs from it only in its demand input (SPEC section 11).
TWIN = "managed"
#: The families of :func:`prediction_comparisons`: prediction's value (an agent against its twin)
#: and the control's level (``managed`` against ``random`` and the best baseline).
PREDICTION, CONTROL = "prediction", "control"
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


def fmt_diff(row: dict[str, Any]) -> str:
    """A test row's difference of success rates with its paired 95 % CI, in percentage points."""
    text = f"{100 * row['difference']:+.1f}"
    low, high = row.get("diff_ci_low", math.nan), row.get("diff_ci_high", math.nan)
    if not (math.isnan(low) or math.isnan(high)):
        text += f" [{100 * low:+.1f}, {100 * high:+.1f}]"
    return text + " pp"


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
                [
                    change_text(r, kind),
                    fmt_p(r["mwu_p"]),
                    fmt_p(r["wilcoxon_p"]),
                    fmt_p(r.get("wilcoxon_p_holm", math.nan)),
                ]
                if r
                else ["–"] * 4
            )
        rows.append(cells)
    header = ["topology", "agent", "vs"]
    for name in ("success", "latency", "utilization"):
        header += [f"Δ {name}", "p MWU", "p Wilcoxon", "Holm"]
    return markdown_table(header, rows)


def controls_table(tests: pd.DataFrame, summary: pd.DataFrame) -> tuple[str, list[str]]:
    """Each predictive agent against the best control and against ``random`` (SPEC section 10).

    ``tests`` holds the rows of ``tests.csv`` (with ``best_control`` and ``wilcoxon_p_holm``);
    returns the markdown table and one note per significant difference (Holm p < ``ALPHA``).
    """
    if tests.empty or "best_control" not in tests:
        return "_No predictive agent and non-predictive agent in the same run set._", []
    sel = tests[(tests["metric"] == "success_rate") & tests["best_control"].astype(bool)]
    if sel.empty:
        return "_No predictive agent and non-predictive agent in the same run set._", []
    rows, notes = [], []
    for topology, agent, best in sel[["topology", "agent", "baseline"]].itertuples(index=False):
        mean, half, _ = metric_cell(summary, {"topology": topology, "agent": agent}, "success_rate")
        b_mean, b_half, _ = metric_cell(
            summary, {"topology": topology, "agent": best}, "success_rate"
        )
        cells: list[Any] = [topology, agent, fmt(mean, half), f"{best} {fmt(b_mean, b_half)}"]
        verdicts = []
        for control in (best, "random"):
            r = find_test(
                tests, topology=topology, agent=agent, baseline=control, metric="success_rate"
            )
            if r is None:
                cells += ["–"] * 3
                continue
            cells += [fmt_diff(r), fmt_p(r["wilcoxon_p"]), fmt_p(r["wilcoxon_p_holm"])]
            if r["wilcoxon_p_holm"] < ALPHA:
                verdicts.append((control, r["difference"]))
        rows.append(cells)
        for control, diff in dict(verdicts).items():
            word = "beats" if diff > 0 else "loses to"
            notes.append(
                f"{topology}: {agent} {word} {control} by {abs(100 * diff):.1f} pp (Holm p < {ALPHA})"
            )
    header = [
        "topology", "agent", "success (%)", "best control (%)",
        "Δ vs best control", "p", "p Holm", "Δ vs random", "p", "p Holm",
    ]  # fmt: skip
    return markdown_table(header, rows), notes


def sensitivity_table(sens: pd.DataFrame) -> tuple[str, list[str]]:
    """Success rate per variant and agent; gains over shortest and over the ``random`` control.

    p-values are Wilcoxon signed-rank over runs paired by seed, Holm-corrected over every
    comparison of the table. Notes name the significant differences (the oracle's left out).
    """
    from agents.study import stats

    summary = stats.summarize(sens, ["success_rate"], by=("variant", "agent"))
    agents = list(dict.fromkeys(sens["agent"]))
    references = [a for a in (REFERENCE, stats.RANDOM_CONTROL) if a in agents]
    frames = [
        stats.compare(
            sens, ["success_rate"], agents=[a for a in agents if a != ref], baselines=[ref],
            by="variant",
        )
        for ref in references
    ]  # fmt: skip
    frames = [f for f in frames if not f.empty]
    if frames:
        import pandas as pd

        comparisons = stats.add_holm(
            pd.concat(frames, ignore_index=True), key=("variant", "agent", "baseline", "metric")
        )
    else:
        comparisons = sens.iloc[0:0]
    pairs = [
        (agent, ref)
        for ref in references
        for agent in agents
        if agent != ref and not (ref == stats.RANDOM_CONTROL and agent in stats.NON_PREDICTIVE)
    ]
    rows, notes = [], []
    for variant in dict.fromkeys(sens["variant"]):
        cells: list[Any] = [variant]
        for agent in agents:
            cells.append(
                fmt(*metric_cell(summary, {"variant": variant, "agent": agent}, "success_rate")[:2])
            )
        for agent, ref in pairs:
            r = find_test(comparisons, variant=variant, agent=agent, baseline=ref)
            if r is None:
                cells.append("–")
                continue
            cells.append(f"{100 * r['difference']:+.1f} pp (p {fmt_p(r['wilcoxon_p_holm'])})")
            if agent != ORACLE and r["wilcoxon_p_holm"] < ALPHA:
                notes.append(
                    f"{variant}: {agent} {'gains' if r['difference'] > 0 else 'loses'} "
                    f"{abs(100 * r['difference']):.1f} pp against {ref}"
                )
        rows.append(cells)
    header = [
        "variant",
        *(f"{a} (%)" for a in agents),
        *(f"{a} − {ref}" for a, ref in pairs),
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


def twin_of(agent: str) -> str | None:
    """The demand-blind twin of a predictive agent (``managed-*``: ``managed``); None if it has none."""
    return TWIN if agent.startswith(f"{TWIN}-") else None


def prediction_comparisons(
    df: pd.DataFrame, by: Sequence[str] = ("topology",), controls: bool = True
) -> pd.DataFrame:
    """Prediction's value (SPEC section 11): each predictive agent against its twin, per group.

    One row per (group, agent, reference) on success rate: family :data:`PREDICTION`, each
    ``managed-*`` agent against ``managed``; with ``controls``, family :data:`CONTROL`,
    ``managed`` against ``random`` and against the group's best baseline (the one of
    :data:`agents.baselines.BASELINES` of highest mean). Columns: ``by``, ``family``, ``agent``,
    ``baseline``, then those of :func:`agents.study.stats.compare` (the mean paired difference
    with its 95 % CI, Wilcoxon p over the runs paired by seed) and ``wilcoxon_p_holm``: Holm over
    each family (every group's comparisons together). Empty where ``managed`` was not run.
    """
    import pandas as pd

    from agents.baselines import BASELINES
    from agents.study import stats

    frames = []
    for keys, group in df.groupby(list(by), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        present = list(dict.fromkeys(group["agent"]))
        if TWIN not in present:
            continue
        pairs = [(PREDICTION, str(a), TWIN) for a in present if twin_of(str(a)) == TWIN]
        if controls:
            best = stats.best_control(group, [b for b in BASELINES if b in present])
            pairs += [
                (CONTROL, TWIN, c)
                for c in (stats.RANDOM_CONTROL, best)
                if c is not None and c in present
            ]
        for family, agent, base in pairs:
            tests = stats.compare(
                group.assign(_group=0), ["success_rate"], [agent], [base], by="_group"
            ).drop(columns="_group")
            tests.insert(0, "family", family)
            for name, value in reversed(list(zip(by, keys, strict=True))):
                tests.insert(0, name, [value] * len(tests))
            frames.append(tests)
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    return stats.add_holm(
        out, key=(*by, "agent", "baseline", "metric"), columns=("wilcoxon_p",), family=("family",)
    )


def prediction_table(comparisons: pd.DataFrame, preset: str) -> str:
    """The report's table of prediction's value: the rows of :func:`prediction_comparisons`."""
    if comparisons.empty:
        return (
            f"_No `{TWIN}` (the demand-blind twin) and predictive `{TWIN}-*` agent in the same "
            "run set: nothing to compare._"
        )
    rows = []
    for record in comparisons.to_dict("records"):
        r = {str(k): v for k, v in record.items()}
        what = "prediction's value" if r["family"] == PREDICTION else "the control"
        rows.append(
            [
                preset,
                r["topology"],
                what,
                f"{r['agent']} − {r['baseline']}",
                fmt(r["mean_agent"], math.nan),
                fmt(r["mean_baseline"], math.nan),
                fmt_diff({**r, "difference": r["mean_paired_difference"]}),
                r["pairs"],
                fmt_p(r["wilcoxon_p"]),
                fmt_p(r["wilcoxon_p_holm"]),
            ]
        )
    header = [
        "preset", "topology", "family", "comparison", "agent (%)", "reference (%)",
        "Δ [95 % CI]", "pairs", "p", "p Holm",
    ]  # fmt: skip
    return markdown_table(header, rows)
