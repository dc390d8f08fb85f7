"""Figures of ``spep reproduce`` (PNG, matplotlib's Agg backend): the paper's figures 3-9 and more.

- ``fig3_success_rate.png``, ``fig4_latency.png``, ``fig5_fidelity.png``, ``utilization.png``: mean
  per topology and agent with 95 % confidence intervals (grouped bars).
- ``fig6``-``fig9`` (Erdős–Rényi, regular, scale-free, small-world, the paper's order): latency and
  fidelity distributions of the served requests, pooled over runs, one box per agent.
- ``sensitivity.png``: success rate per sensitivity variant for shortest, SPEP and the oracle.
- :func:`heatmap`: the regime map's gains (``spep regimes``), one tile per cell.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def _bars(
    ax: Any, summary: pd.DataFrame, metric: str, group: str, series: str, first_colour: int = 0
) -> None:
    """Grouped bars of ``metric``'s mean, 95 % CI error bars, onto ``ax``."""
    data = summary[summary["metric"] == metric]
    groups = list(dict.fromkeys(data[group]))
    names = list(dict.fromkeys(data[series]))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        part = data[data[series] == name].set_index(group).reindex(groups)
        x = np.arange(len(groups)) + (i - (len(names) - 1) / 2) * width
        err = np.nan_to_num(part["half_width"].to_numpy(dtype=float))
        colour = f"C{(first_colour + i) % 10}"
        mean = part["mean"].to_numpy(dtype=float)
        ax.bar(x, mean, width, yerr=err, capsize=2, label=name, color=colour)
    labels = [TOPOLOGY_LABELS.get(g, g) for g in groups]
    long = max(map(len, labels), default=0) > 12  # long labels: slanted, legend lower
    ax.set_xticks(
        np.arange(len(groups)), labels, rotation=25 if long else 0, ha="right" if long else "center"
    )
    ax.legend(
        fontsize="small",
        ncol=min(len(names), 4),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.2 if long else -0.1),
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
    _bars(ax, summary, metric, group, series)
    ax.set_ylabel(ylabel)
    return _save(fig, path)


def sensitivity(sens: pd.DataFrame, path: Path, reference: str = "shortest") -> Path:
    """Success rate per variant (left) and each agent's gain over ``reference`` (right).

    The gain is the mean of the per-seed differences (runs paired by seed), with its 95 % CI.
    """
    import pandas as pd

    from agents.study import stats

    plt = _pyplot()
    rates = stats.summarize(sens, ["success_rate"], by=("variant", "agent"))
    wide = sens.pivot_table(index=["variant", "seed"], columns="agent", values="success_rate")
    gains = []
    for agent in [a for a in dict.fromkeys(sens["agent"]) if a != reference]:
        if agent in wide and reference in wide:
            diff = (100 * (wide[agent] - wide[reference])).rename("gain").reset_index()
            diff["agent"] = f"{agent} − {reference}"
            gains.append(diff)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    _bars(axes[0], rates, "success_rate", "variant", "agent")
    axes[0].set_ylabel("success rate")
    axes[0].set_title("Success rate (Erdős–Rényi, one factor at a time)")
    if gains:
        gain = pd.concat(gains)
        order = list(dict.fromkeys(sens["variant"]))
        gain["variant"] = pd.Categorical(gain["variant"], order, ordered=True)
        summary = stats.summarize(gain.sort_values("variant"), ["gain"], by=("variant", "agent"))
        _bars(axes[1], summary, "gain", "variant", "agent", first_colour=1)
        axes[1].axhline(0.0, color="black", linewidth=0.8)
    axes[1].set_ylabel("gain in success rate (percentage points)")
    axes[1].set_title(f"Gain over {reference} (paired by seed)")
    return _save(fig, path)


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
