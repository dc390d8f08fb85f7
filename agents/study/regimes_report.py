"""The regime map's outputs, computed from ``regimes.csv`` alone: tables, gains, heatmaps, summary.

Split from :mod:`agents.study.regimes` (which plans and runs the grid) so that a map can be analysed
again without running anything: ``cells.csv``, ``gains.csv``, ``prediction.csv``, ``cells.md``,
``summary.md`` and ``figures/heatmap_*.png``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.study import stats
from agents.study.engine import engine_text
from agents.study.regimes_grid import (
    DEFAULT_SLOTS,
    FACTOR_NAMES,
    FACTORS,
    HEATMAPS,
    METRIC_NAMES,
    METRICS,
    ORACLE,
    PREDICTION_HEATMAPS,
    TWIN,
)
from agents.study.tables import (
    ALPHA,
    fmt,
    fmt_p,
    markdown_table,
    metric_cell,
    prediction_comparisons,
)

#: The non-predictive agents a cell's best control is chosen from (SPEC section 10): the paper's
#: baselines, ``noop``, ``random`` and the strong demand-blind control ``managed``.
CONTROLS = (*stats.NON_PREDICTIVE, TWIN)
#: The columns that name a cell of the map.
CELL = ("cell", *FACTOR_NAMES, "topology")

if TYPE_CHECKING:
    import pandas as pd


def read_rows(out: Path) -> pd.DataFrame:
    """``regimes.csv`` with the factor levels as text (``0.5`` stays the label ``"0.5"``)."""
    import pandas as pd

    return pd.read_csv(out / "regimes.csv", dtype={f: str for f in ("cell", *FACTOR_NAMES)})


def analyse(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``cells``, ``gains``) of the map's rows: means with CIs, and the controlled comparisons."""
    cells = stats.summarize(df, METRIC_NAMES, by=(*CELL, "agent"))
    gains = stats.compare_controls(df, METRIC_NAMES, by=CELL, controls=CONTROLS)
    return cells, gains


def prediction_gains(df: pd.DataFrame) -> pd.DataFrame:
    """Prediction's value per cell: each ``managed-*`` agent minus its twin ``managed``.

    :func:`agents.study.tables.prediction_comparisons` per cell (success rate, paired by seed),
    Holm-corrected over every cell and agent of the map (one family).
    """
    return prediction_comparisons(df, by=CELL, controls=False)


def write_outputs(out: Path, meta: dict[str, Any], figures: bool = True) -> None:
    """``cells.csv``, ``gains.csv``, ``cells.md``, heatmaps and ``summary.md`` from ``regimes.csv``."""
    out = Path(out)
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    df = read_rows(out)
    cells, gains = analyse(df)
    prediction = prediction_gains(df)
    cells.to_csv(out / "cells.csv", index=False)
    gains.to_csv(out / "gains.csv", index=False)
    prediction.to_csv(out / "prediction.csv", index=False)
    (out / "cells.md").write_text(cells_markdown(df, cells, gains, meta, prediction))
    if figures:
        draw_heatmaps(out, gains, prediction)
    write_summary(out, meta)


def _gain_text(row: Mapping[str, Any] | None, kind: str) -> str:
    """A difference with its CI and Holm p: ``+2.1 [+0.4, +3.8] pp (p 0.01)``."""
    if row is None:
        return "–"
    scale, digits, unit = {"pct": (100.0, 1, " pp"), "num": (1.0, 2, ""), "fid": (1.0, 3, "")}[kind]
    d, lo, hi = (row[c] * scale for c in ("difference", "diff_ci_low", "diff_ci_high"))
    if math.isnan(d):
        return "–"
    ci = "" if math.isnan(lo) else f" [{lo:+.{digits}f}, {hi:+.{digits}f}]"
    return f"{d:+.{digits}f}{ci}{unit} (p {fmt_p(row['wilcoxon_p_holm'])})"


def _lookup(gains: pd.DataFrame) -> dict[tuple, Mapping[Any, Any]]:
    """Gains rows keyed by (cell, topology, agent, control, metric)."""
    if gains.empty:
        return {}
    keys = ["cell", "topology", "agent", "control", "metric"]
    records = gains.to_dict("records")
    return {tuple(r[k] for k in keys): r for r in records}


def cells_markdown(
    df: pd.DataFrame,
    cells: pd.DataFrame,
    gains: pd.DataFrame,
    meta: Mapping[str, Any],
    prediction: pd.DataFrame | None = None,
) -> str:
    """One table per cell: each agent's metrics, each predictive agent's gains, its twin's."""
    lookup = _lookup(gains)
    twins: dict[tuple, Mapping[Any, Any]] = {}
    if prediction is not None and not prediction.empty:
        twins = {(r["cell"], r["topology"], r["agent"]): r for r in prediction.to_dict("records")}
    agents = list(dict.fromkeys(df["agent"]))
    predictive = [a for a in agents if a not in CONTROLS]
    parts = [
        "# Regime map: a table per cell",
        "",
        f"Written {meta.get('written', '?')} by `{meta.get('command', 'spep regimes')}`; "
        f"{meta.get('runs', '?')} runs × {meta.get('slots', '?')} slots per agent and cell, run i "
        f"on seed {meta.get('seed', 0)} + i for every agent (common random numbers). Means ± the "
        "half width of the 95 % Student-t CI over runs. Gains: mean of the per-seed differences "
        "[95 % CI] (success and utilization in percentage points, latency in slots, fidelity), "
        "p: Wilcoxon signed-rank, Holm-corrected over every comparison of that metric in the map "
        "(`gains.csv` holds the raw p beside it). Best control: the non-predictive agent with "
        "the highest mean success rate in the cell. Its twin: a `managed-*` agent against "
        "`managed` (prediction's value; p Holm-corrected over every such comparison of the map, "
        "`prediction.csv`).",
        "",
    ]
    for cell in dict.fromkeys(df["cell"]):
        parts += [f"## {cell}", ""]
        for topology in dict.fromkeys(df.loc[df["cell"] == cell, "topology"]):
            keys = {"cell": cell, "topology": topology}
            rows = []
            for agent in agents:
                values = [
                    fmt(*metric_cell(cells, {**keys, "agent": agent}, m)[:2], kind)
                    for m, _, kind in METRICS
                ]
                rows.append([agent, *values])
            for agent in predictive:
                best = lookup.get((cell, topology, agent, "best", "success_rate"))
                for role in ("best", "random"):
                    first = lookup.get((cell, topology, agent, role, "success_rate"))
                    if first is None or (
                        role == "random" and best and best["baseline"] == "random"
                    ):
                        continue
                    label = f"{agent} − {first['baseline']}" + (
                        " (best control)" if role == "best" else ""
                    )
                    rows.append(
                        [
                            label,
                            *(
                                _gain_text(lookup.get((cell, topology, agent, role, m)), kind)
                                for m, _, kind in METRICS
                            ),
                        ]
                    )
                twin = twins.get((cell, topology, agent))
                if twin is not None:
                    rows.append(
                        [
                            f"{agent} − {twin['baseline']} (its twin)",
                            _gain_text(twin, "pct"),
                            *["–"] * (len(METRICS) - 1),
                        ]
                    )
            parts += [
                f"**{topology}**",
                "",
                markdown_table(["agent / gain", *(label for _, label, _ in METRICS)], rows),
                "",
            ]
    return "\n".join(parts)


def draw_heatmaps(
    out: Path, gains: pd.DataFrame, prediction: pd.DataFrame | None = None
) -> list[Path]:
    """``figures/heatmap_<agent>_vs_<control>.png`` for each of :data:`HEATMAPS` in ``gains``.

    And ``heatmap_<agent>_vs_twin.png`` for each of :data:`PREDICTION_HEATMAPS` in ``prediction``
    (:func:`prediction_gains`): prediction's value per cell.
    """
    from agents.study import figures

    folder = Path(out) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    success = gains[gains["metric"] == "success_rate"] if not gains.empty else gains
    plots = [
        (success[(success["agent"] == agent) & (success["control"] == role)], role, agent, title)
        for agent, role, title in HEATMAPS
        if not success.empty
    ]
    if prediction is not None and not prediction.empty:
        plots += [
            (prediction[prediction["agent"] == agent], "twin", agent, title)
            for agent, title in PREDICTION_HEATMAPS
        ]
    for part, role, agent, title in plots:
        if part.empty:
            continue
        name = f"heatmap_{agent}_vs_{role}.png"
        written.append(
            figures.heatmap(
                part,
                rows=("topology", "load"),
                columns=("link_layer", "physics", "end_memory", "latency"),
                title=f"{title}: success rate (pp); * Holm p < {ALPHA}",
                path=folder / name,
                alpha=ALPHA,
            )
        )
    return written


# ---------------------------------------------------------------------- summary


def offered_load(cfg_fields: Mapping[str, Any], seeds: Iterable[int]) -> float:
    """Link pairs the requests ask for on their static paths per link pair the links can make.

    Mean over ``seeds`` of sum(static hops of every request) / (slots x sum of the links' p_gen):
    1 means the requests need every pair the links could generate, if none were lost.
    """
    from spep_gym.config import SpepConfig
    from spep_gym.simulator import Simulator

    sim = Simulator(SpepConfig.from_dict(dict(cfg_fields)))
    values = []
    for seed in seeds:
        sim.reset(seed)
        need = float(sim.net.static_hops[sim.workload.pair].sum())
        values.append(need / (sim.cfg.episode_slots * float(sim.net.p_gen.sum())))
    return float(np.mean(values))


def holm_family_size(part: pd.DataFrame) -> int:
    """The distinct tests among ``part``'s rows: the size of the family Holm's correction used.

    Where a cell's best control is ``random``, its "best" and "random" rows are one test, and
    :func:`agents.study.stats.add_holm` counts it once.
    """
    if part.empty:
        return 0
    return len(part.drop_duplicates(["cell", "topology", "agent", "baseline"]))


def significant(part: pd.DataFrame, sign: int) -> pd.DataFrame:
    """The rows whose Holm-corrected Wilcoxon p is below ALPHA, with a difference of ``sign``."""
    holm = part["wilcoxon_p_holm"].to_numpy(dtype=float)
    diff = part["difference"].to_numpy(dtype=float)
    keep = (holm < ALPHA) & (np.sign(diff) == sign)
    return part[keep]


def _cell_name(row: Mapping[Any, Any]) -> str:
    return f"{row['topology']}, {row['cell']}"


def _pp(x: float) -> str:
    return f"{100 * x:+.1f} pp"


def write_summary(out: Path, meta: Mapping[str, Any]) -> Path:
    """``summary.md``: where pre-positioning pays and where it hurts, from ``gains.csv``."""
    import pandas as pd

    out = Path(out)
    gains = pd.read_csv(out / "gains.csv", dtype={f: str for f in ("cell", *FACTOR_NAMES)})
    cells = pd.read_csv(out / "cells.csv", dtype={f: str for f in ("cell", *FACTOR_NAMES)})
    n_cells = int(cells[["cell", "topology"]].drop_duplicates().shape[0])
    wall = meta.get("wall_time_s", math.nan)
    success = gains[gains["metric"] == "success_rate"] if not gains.empty else gains
    parts = [
        "# Regime map: when does pre-positioning pay?",
        "",
        f"Written {meta.get('written', '?')} by `{meta.get('command', 'spep regimes')}`: "
        f"{n_cells} cells (regimes × topologies) × {len(meta.get('agents', []))} agents "
        f"({', '.join(meta.get('agents', []))}) × {meta.get('runs', '?')} runs × "
        f"{meta.get('slots', '?')} slots; {meta.get('runs_total', '?')} runs "
        f"({meta.get('runs_executed', '?')} executed by this invocation) on "
        f"{meta.get('jobs', '?')} {meta.get('backend', 'local')} worker(s) ({engine_text(meta)}), "
        "wall time "
        f"{wall / 60:.1f} min (runs {meta.get('runs_wall_time_s', math.nan) / 60:.1f} min; the "
        f"runs' own times sum to {meta.get('run_time_sum_s', math.nan) / 60:.1f} min).",
        "",
        "Every number below is computed from the run files (through `regimes.csv`, `cells.csv` "
        "and `gains.csv`). A gain is the mean of the per-seed differences in success rate "
        "(percentage points), paired by seed (common random numbers); *significant* means a "
        f"two-sided Wilcoxon signed-rank p below {ALPHA} after Holm's correction over every "
        f"success-rate comparison of the map ({holm_family_size(success)} distinct tests: where "
        "the best control is `random`, its two comparisons are one). The best control of a cell "
        "is its non-predictive "
        "agent with the highest mean success rate (among those run: "
        f"{', '.join(a for a in meta.get('agents', []) if a in CONTROLS)}).",
        "",
    ]
    predictive = [a for a in dict.fromkeys(success.get("agent", [])) if a != ORACLE]
    for agent in predictive:
        parts += _agent_summary(success, agent, n_cells)
    if ORACLE in set(success.get("agent", [])):
        parts += _beyond_flushing(success, predictive, n_cells)
    parts += _factor_table(success)
    if (out / "prediction.csv").exists() and (out / "prediction.csv").stat().st_size > 1:
        prediction = pd.read_csv(
            out / "prediction.csv", dtype={f: str for f in ("cell", *FACTOR_NAMES)}
        )
        parts += _prediction_summary(prediction, n_cells)
    parts += _controls_and_load(success, meta)
    path = out / "summary.md"
    path.write_text("\n".join(parts))
    return path


def _agent_summary(success: pd.DataFrame, agent: str, n_cells: int) -> list[str]:
    best = success[(success["agent"] == agent) & (success["control"] == "best")]
    rand = success[(success["agent"] == agent) & (success["control"] == "random")]
    key = ["cell", "topology"]
    wins_best = significant(best, 1)
    wins_rand = significant(rand, 1)
    both = wins_best.merge(wins_rand[key], on=key)
    hurts = significant(best, -1)
    lines = [
        f"## {agent}: where pre-positioning pays",
        "",
        f"- Beats the best control in **{len(wins_best)} of {n_cells}** cells, beats `random` in "
        f"{len(wins_rand)}, beats both in **{len(both)}** (significant).",
    ]
    if len(both):
        top = both.sort_values("difference", ascending=False).head(5)
        lines.append("- Largest gains over the best control where it beats both controls:")
        lines += [
            f"  - {_cell_name(r)}: {_pp(r['difference'])} "
            f"[{_pp(r['diff_ci_low'])}, {_pp(r['diff_ci_high'])}] over {r['baseline']}"
            for r in top.to_dict("records")
        ]
    lines += [
        "",
        f"## {agent}: where it hurts",
        "",
        f"- Below the best control in **{len(hurts)} of {n_cells}** cells (significant).",
    ]
    if len(hurts):
        worst = hurts.sort_values("difference").head(5)
        lines += [
            f"  - {_cell_name(r)}: {_pp(r['difference'])} "
            f"[{_pp(r['diff_ci_low'])}, {_pp(r['diff_ci_high'])}] against {r['baseline']}"
            for r in worst.to_dict("records")
        ]
    if len(best):
        lines.append(
            f"- Gain over the best control across cells: mean {_pp(best['difference'].mean())}, "
            f"from {_pp(best['difference'].min())} to {_pp(best['difference'].max())}."
        )
    lines.append("")
    return lines


def _beyond_flushing(success: pd.DataFrame, predictive: Sequence[str], n_cells: int) -> list[str]:
    lines = [
        "## What prediction adds beyond flushing",
        "",
        "`random` pre-positions random node pairs: it frees (flushes) link memories as much as "
        "SPEP does, but predicts nothing. A gain over `random` is what choosing the pairs adds.",
        "",
    ]
    for agent in [*predictive, ORACLE]:
        part = success[(success["agent"] == agent) & (success["control"] == "random")]
        if part.empty:
            continue
        up, down = len(significant(part, 1)), len(significant(part, -1))
        lines.append(
            f"- {agent} − random: above in **{up}**, below in **{down}**, no significant "
            f"difference in {len(part) - up - down} of {n_cells} cells; mean "
            f"{_pp(part['difference'].mean())}, from {_pp(part['difference'].min())} to "
            f"{_pp(part['difference'].max())}."
        )
    oracle = success[(success["agent"] == ORACLE) & (success["control"] == "best")]
    if len(oracle):
        up, down = len(significant(oracle, 1)), len(significant(oracle, -1))
        lines += [
            "",
            f"{ORACLE} reads the realised requests of the next slots (what will arrive, not a "
            "model of the demand). Against the best control, not only `random`: above in "
            f"**{up}**, below in **{down}**, no significant difference in {len(oracle) - up - down} "
            f"of {n_cells} cells.",
        ]
    lines.append("")
    return lines


def _prediction_summary(prediction: pd.DataFrame, n_cells: int) -> list[str]:
    """Prediction's value over the map: each ``managed-*`` agent minus its twin, per cell."""
    lines = [
        "## What prediction is worth: each agent − its demand-blind twin",
        "",
        f"Each `{TWIN}-*` agent differs from `{TWIN}` only in its demand input, so its gain over "
        f"`{TWIN}` is prediction's value under the same link management (the equal-footing oracle: "
        "what knowing the next requests adds). Significant: Holm p < "
        f"{ALPHA} over every such comparison of the map ({len(prediction)} tests, "
        "`prediction.csv`; heatmaps `figures/heatmap_*_vs_twin.png`).",
        "",
    ]
    for agent in dict.fromkeys(prediction["agent"]):
        part = prediction[prediction["agent"] == agent]
        up, down = len(significant(part, 1)), len(significant(part, -1))
        lines.append(
            f"- {agent} − {TWIN}: above in **{up}**, below in **{down}**, no significant "
            f"difference in {len(part) - up - down} of {n_cells} cells; mean "
            f"{_pp(part['difference'].mean())}, from {_pp(part['difference'].min())} to "
            f"{_pp(part['difference'].max())}."
        )
    rows = []
    agents = list(dict.fromkeys(prediction["agent"]))
    for factor in ("topology", *FACTOR_NAMES):
        for level in dict.fromkeys(prediction[factor]):
            cells: list[Any] = [factor, level]
            for agent in agents:
                part = prediction[(prediction["agent"] == agent) & (prediction[factor] == level)]
                up, down = len(significant(part, 1)), len(significant(part, -1))
                cells.append(f"{_pp(part['difference'].mean())} (+{up} / −{down} of {len(part)})")
            rows.append(cells)
    lines += [
        "",
        "Mean of prediction's value over the cells at each level of each factor; in brackets the "
        "cells where it is significantly positive / negative.",
        "",
        markdown_table(["factor", "level", *(f"{a} − {TWIN}" for a in agents)], rows),
        "",
    ]
    return lines


def _factor_table(success: pd.DataFrame) -> list[str]:
    """Mean gain at each level of each factor (over the cells at that level)."""
    columns = [
        (agent, role)
        for agent, role, _ in HEATMAPS
        if not success[(success["agent"] == agent) & (success["control"] == role)].empty
    ]
    if not columns:
        return []
    rows = []
    for factor in ("topology", *FACTOR_NAMES):
        for level in dict.fromkeys(success[factor]):
            cells: list[Any] = [factor, level]
            for agent, role in columns:
                part = success[
                    (success["agent"] == agent)
                    & (success["control"] == role)
                    & (success[factor] == level)
                ]
                up, down = len(significant(part, 1)), len(significant(part, -1))
                cells.append(f"{_pp(part['difference'].mean())} (+{up} / −{down} of {len(part)})")
            rows.append(cells)
    header = [
        "factor",
        "level",
        *(f"{agent} − {'best control' if role == 'best' else role}" for agent, role in columns),
    ]
    return [
        "## Which factor moves the gain",
        "",
        "Mean gain in success rate over the cells at each level; in brackets the cells where it is "
        "significantly positive / negative.",
        "",
        markdown_table(header, rows),
        "",
    ]


def _controls_and_load(success: pd.DataFrame, meta: Mapping[str, Any]) -> list[str]:
    lines = []
    best = success[success["control"] == "best"].drop_duplicates(["cell", "topology"])
    if len(best):
        counts = best["baseline"].value_counts()
        lines += [
            "## The best control",
            "",
            "Cells where each non-predictive agent is the best control: "
            + ", ".join(f"{name} {int(n)}" for name, n in counts.items())
            + ".",
            "",
        ]
    levels = meta.get("factors", {})
    only = meta.get("only", {})
    physics = only.get("physics", levels.get("physics", ["paper"]))
    loads = only.get("load", levels.get("load", ["paper"]))
    rows = []
    seeds = range(int(meta.get("seed", 0)), int(meta.get("seed", 0)) + int(meta.get("runs", 1)))
    base = {k: _literal(v) for k, v in meta.get("overrides", {}).items()}
    for topology in meta.get("topologies", []):
        for phys in physics:
            cells: list[Any] = [topology, phys]
            for load in loads:
                fields = {
                    **base,
                    **dict(FACTORS["physics"])[phys],
                    **dict(FACTORS["load"])[load],
                    "topology": topology,
                    "episode_slots": int(meta.get("slots", DEFAULT_SLOTS)),
                }
                cells.append(f"{offered_load(fields, seeds):.2f}")
            rows.append(cells)
    if rows:
        lines += [
            "## Load",
            "",
            "Offered load: link pairs the requests ask for on their static paths per link pair "
            "the links can generate (sum of p_gen), over the run seeds (1: every pair the links "
            "could make, none lost). Business hours carry three times the rate.",
            "",
            markdown_table(["topology", "physics", *(f"load {load}" for load in loads)], rows),
            "",
        ]
    return lines


def _literal(text: str) -> Any:
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
