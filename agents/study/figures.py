"""Figures of ``spep reproduce`` (PNG, matplotlib's Agg backend): the paper's figures 3-9 and more.

- ``fig3_success_rate.png``, ``fig4_latency.png``, ``fig5_fidelity.png``, ``utilization.png``: mean
  per topology and agent with 95 % confidence intervals (grouped bars), each interval clipped to the
  range its metric can take (:data:`BOUNDS`: a rate's bar never reaches below 0 or above 1).
- ``fig6``-``fig9`` (Erdős–Rényi, regular, scale-free, small-world, the paper's order): latency and
  fidelity distributions of the served requests, pooled over runs, one box per agent.
- ``sensitivity.png``: success rate per sensitivity variant for shortest, SPEP and the oracle, and
  each agent's gain over shortest; an agent has one colour in both panels (:func:`colour_map`).
- :func:`heatmap`: the regime map's gains (``spep regimes``), one tile per cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

#: (file name, metric, axis label) of the bar figures.
BAR_FIGURES = (
    ("fig3_success_rate.png", "success_rate", "success rate"),
    ("fig4_latency.png", "avg_latency", "average latency (slots)"),
    ("fig5_fidelity.png", "avg_fidelity", "average delivered fidelity"),
    ("utilization.png", "utilization", "resource utilization"),
)
#: Figures 6-9 of the paper, one per topology.
DISTRIBUTION_FIGURES = {
    "erdos_renyi": "fig6_distributions_erdos_renyi.png",
    "random_regular": "fig7_distributions_random_regular.png",
    "scale_free": "fig8_distributions_scale_free.png",
    "small_world": "fig9_distributions_small_world.png",
}
TOPOLOGY_LABELS = {
    "erdos_renyi": "Erdős–Rényi",
    "random_regular": "regular",
    "small_world": "small-world",
    "scale_free": "scale-free",
}
DPI = 100
#: The range each metric's mean lies in; its 95 % CI is drawn clipped to it.
BOUNDS = {
    "success_rate": (0.0, 1.0),
    "avg_fidelity": (0.0, 1.0),
    "utilization": (0.0, 1.0),
    "avg_latency": (0.0, math.inf),
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _pyplot().close(fig)
    return path


def colour_map(names: Iterable[str]) -> dict[str, str]:
    """One colour per name, in order of first appearance.

    The first ten take matplotlib's cycle ``C0`` to ``C9``; the next ten the light hues of
    ``tab20`` (the pale twin of each), so that up to 20 names have distinct colours.
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    light = [to_hex(c) for c in colormaps["tab20"].colors[1::2]]  # type: ignore[attr-defined]
    return {
        name: f"C{i}" if i < 10 else light[(i - 10) % 10]
        for i, name in enumerate(dict.fromkeys(names))
    }


def bar_table(
    summary: pd.DataFrame,
    metric: str,
    group: str,
    series: str,
    colours: Mapping[str, str] | None = None,
    groups: Sequence[str] | None = None,
) -> pd.DataFrame:
    """What grouped bars of ``metric`` draw, one row per (series, group) of ``summary``.

    Columns ``series, group, x, width, mean, low, high, colour``: ``low`` and ``high`` are the 95 %
    CI (:func:`agents.study.stats.summarize`) clipped to the metric's :data:`BOUNDS`, the mean where
    the CI is undefined (one run). ``colours`` maps each series to its colour and gives their order
    (default: :func:`colour_map` of the series in order of appearance); ``groups`` gives the order
    on the x axis (default: order of appearance).
    """
    import pandas as pd

    data = summary[summary["metric"] == metric]
    order = list(groups) if groups is not None else list(dict.fromkeys(data[group]))
    colours = colour_map(data[series]) if colours is None else colours
    missing = sorted(set(data[series]) - set(colours))
    if missing:
        raise ValueError(f"bar_table: no colour for series {missing}")
    names = [name for name in colours if name in set(data[series])]
    width = 0.8 / max(len(names), 1)
    lowest, highest = BOUNDS.get(metric, (-math.inf, math.inf))
    parts = []
    for i, name in enumerate(names):
        part = data[data[series] == name].set_index(group).reindex(order)
        mean = part["mean"].to_numpy(dtype=float)
        low = np.where(np.isnan(part["ci_low"]), mean, part["ci_low"])
        high = np.where(np.isnan(part["ci_high"]), mean, part["ci_high"])
        parts.append(
            pd.DataFrame(
                {
                    "series": name,
                    "group": order,
                    "x": np.arange(len(order)) + (i - (len(names) - 1) / 2) * width,
                    "width": width,
                    "mean": mean,
                    "low": np.clip(low, lowest, highest),
                    "high": np.clip(high, lowest, highest),
                    "colour": colours[name],
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _bars(ax: Any, table: pd.DataFrame) -> None:
    """Draw a :func:`bar_table` onto ``ax``: bars, asymmetric error bars, x labels, legend."""
    for name, part in table.groupby("series", sort=False):
        mean = part["mean"].to_numpy(dtype=float)
        err = np.nan_to_num([mean - part["low"].to_numpy(), part["high"].to_numpy() - mean])
        width = float(part["width"].iloc[0])
        colour = part["colour"].iloc[0]
        ax.bar(part["x"], mean, width, yerr=err, capsize=2, label=name, color=colour)
    labels = [TOPOLOGY_LABELS.get(g, g) for g in dict.fromkeys(table["group"])]
    # Long labels (sensitivity variants) slanted at 45 degrees, anchored at their end: no overlap.
    longest = max(map(len, labels), default=0)
    long = longest > 12
    ax.set_xticks(
        np.arange(len(labels)),
        labels,
        rotation=45 if long else 0,
        ha="right" if long else "center",
        rotation_mode="anchor",
    )
    ax.legend(
        fontsize="small",
        ncol=min(table["series"].nunique(), 4),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1 - 0.018 * longest if long else -0.1),  # below the labels
    )
    ax.grid(axis="y", alpha=0.3)


def grouped_bars(
    summary: pd.DataFrame,
    metric: str,
    ylabel: str,
    path: Path,
    group: str = "topology",
    series: str = "agent",
) -> Path:
    """Bars of ``metric``'s mean per ``group`` (x) and ``series`` (colour), 95 % CI error bars."""
    plt = _pyplot()
    groups = summary.loc[summary["metric"] == metric, group].nunique()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * groups + 2), 4.2))
    _bars(ax, bar_table(summary, metric, group, series))
    ax.set_ylabel(ylabel)
    return _save(fig, path)


def sensitivity_tables(
    sens: pd.DataFrame, reference: str = "shortest"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The :func:`bar_table` of each panel of ``sensitivity.png``: success rates, gains.

    The gain of agent ``a`` is the mean of its per-seed differences from ``reference`` (runs paired
    by seed), in percentage points, with its 95 % CI, labelled ``a − reference``. An agent's colour
    is the same in both panels; the variants keep their order in ``sens``.
    """
    import pandas as pd

    from agents.study import stats

    agents = list(dict.fromkeys(sens["agent"]))
    variants = list(dict.fromkeys(sens["variant"]))
    colours = colour_map(agents)
    rates = stats.summarize(sens, ["success_rate"], by=("variant", "agent"))
    left = bar_table(rates, "success_rate", "variant", "agent", colours, variants)
    wide = sens.pivot_table(index=["variant", "seed"], columns="agent", values="success_rate")
    gains, gain_colours = [], {}
    for agent in agents:
        if agent != reference and agent in wide and reference in wide:
            label = f"{agent} − {reference}"
            diff = (100 * (wide[agent] - wide[reference])).rename("gain").reset_index()
            diff["agent"] = label
            gains.append(diff)
            gain_colours[label] = colours[agent]
    if not gains:
        return left, pd.DataFrame()
    summary = stats.summarize(pd.concat(gains), ["gain"], by=("variant", "agent"))
    return left, bar_table(summary, "gain", "variant", "agent", gain_colours, variants)


def sensitivity_figure(sens: pd.DataFrame, reference: str = "shortest") -> Any:
    """The figure of :func:`sensitivity` (a matplotlib ``Figure``)."""
    plt = _pyplot()
    left, right = sensitivity_tables(sens, reference)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    _bars(axes[0], left)
    axes[0].set_ylabel("success rate")
    axes[0].set_title("Success rate (Erdős–Rényi, one factor at a time)")
    if len(right):
        _bars(axes[1], right)
        axes[1].axhline(0.0, color="black", linewidth=0.8)
    axes[1].set_ylabel("gain in success rate (percentage points)")
    axes[1].set_title(f"Gain over {reference} (paired by seed)")
    return fig


def sensitivity(sens: pd.DataFrame, path: Path, reference: str = "shortest") -> Path:
    """Success rate per variant (left) and each agent's gain over ``reference`` (right).

    The gain is the mean of the per-seed differences (runs paired by seed), with its 95 % CI.
    """
    return _save(sensitivity_figure(sens, reference), path)


def distributions(
    samples: dict[tuple[str, str], dict[str, np.ndarray]],
    topology: str,
    agents: Sequence[str],
    path: Path,
) -> Path:
    """Two panels for one topology: latency and fidelity of served requests, one box per agent."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in zip(
        axes, ("latency", "fidelity"), ("latency (slots)", "delivered fidelity"), strict=True
    ):
        data = [samples.get((topology, a), {}).get(key, np.empty(0)) for a in agents]
        ax.boxplot([d if len(d) else [np.nan] for d in data], showmeans=True)
        ax.set_xticks(np.arange(1, len(agents) + 1), list(agents), rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{TOPOLOGY_LABELS.get(topology, topology)}: served requests, pooled over runs")
    return _save(fig, path)


def make_all(out: Path, samples: dict[tuple[str, str], dict[str, np.ndarray]]) -> list[Path]:
    """Every figure from ``out/results.csv`` (and ``out/sensitivity.csv``) into ``out/figures``."""
    import pandas as pd

    from agents.study import stats

    folder = Path(out) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    results = Path(out) / "results.csv"
    if results.exists() and results.stat().st_size > 1:
        df = pd.read_csv(results)
        summary = stats.summarize(df, [m for _, m, _ in BAR_FIGURES])
        for name, metric, label in BAR_FIGURES:
            written.append(grouped_bars(summary, metric, label, folder / name))
        agents = list(dict.fromkeys(df["agent"]))
        for topology in dict.fromkeys(df["topology"]):
            name = DISTRIBUTION_FIGURES.get(topology, f"distributions_{topology}.png")
            written.append(distributions(samples, topology, agents, folder / name))
    sens = Path(out) / "sensitivity.csv"
    if sens.exists() and sens.stat().st_size > 1:
        written.append(sensitivity(pd.read_csv(sens), folder / "sensitivity.png"))
    return written


def heatmap(
    gains: pd.DataFrame,
    rows: Sequence[str],
    columns: Sequence[str],
    title: str,
    path: Path,
    alpha: float = 0.05,
    value: str = "difference",
    p_column: str = "wilcoxon_p_holm",
) -> Path:
    """A heatmap of ``value`` (a fraction, drawn in percentage points), one tile per row of ``gains``.

    Tiles are laid out by the levels of the ``rows`` columns (y) and the ``columns`` columns (x),
    in order of appearance; each is annotated with its value and ``*`` where ``p_column`` is below
    ``alpha``. The colour scale is diverging and centred on 0 (red: a gain, blue: a loss).
    """
    plt = _pyplot()
    frame = gains.copy()
    frame["_y"] = frame[list(rows)].astype(str).agg(" | ".join, axis=1)
    frame["_x"] = frame[list(columns)].astype(str).agg("\n".join, axis=1)
    ys, xs = list(dict.fromkeys(frame["_y"])), list(dict.fromkeys(frame["_x"]))
    grid = np.full((len(ys), len(xs)), np.nan)
    stars = np.zeros_like(grid, dtype=bool)
    for r in frame.to_dict("records"):
        i, j = ys.index(r["_y"]), xs.index(r["_x"])
        grid[i, j] = 100 * float(r[value])
        stars[i, j] = float(r[p_column]) < alpha
    limit = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    limit = max(limit, 0.5)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(xs) + 3), max(3.0, 0.45 * len(ys) + 2.2)))
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(grid[i, j]):
                text = f"{grid[i, j]:+.1f}" + ("*" if stars[i, j] else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=7)
    ax.set_xticks(np.arange(len(xs)), xs, fontsize=6)
    ax.set_yticks(np.arange(len(ys)), ys, fontsize=7)
    ax.set_xlabel(" / ".join(columns), fontsize=8)
    ax.set_ylabel(" | ".join(rows), fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="percentage points")
    return _save(fig, path)
