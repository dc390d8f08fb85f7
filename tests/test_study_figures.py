"""The data behind the study figures: error bars within a metric's range, one colour per agent."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from agents.study import figures, reproduce, stats

VARIANTS = ["paper preset", "link_capacity=2", "preposition_rho=1.0", "swap_model=werner"]
# In most row orders the reference is not the first agent: a colour counted from the left panel's
# order would then be wrong in the right panel.
AGENTS = ["spep-frequency", "shortest", "spep-oracle", "random"]


def sensitivity_rows(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {"variant": v, "agent": a, "seed": s, "success_rate": rng.uniform(0.1, 0.4)}
        for v, a, s in itertools.product(VARIANTS, AGENTS, range(4))
    ]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed)  # rows in any order


def test_a_rate_error_bar_stays_within_0_and_1() -> None:
    runs = pd.DataFrame(
        {
            "topology": ["t"] * 6,
            "agent": ["low"] * 3 + ["high"] * 3,
            "success_rate": [0.0, 0.0, 0.3, 1.0, 1.0, 0.7],
            "utilization": [0.0, 0.0, 0.3, 1.0, 1.0, 0.7],
        }
    )
    summary = stats.summarize(runs, ["success_rate", "utilization"])
    assert summary["ci_low"].min() < 0 and summary["ci_high"].max() > 1  # the raw t interval
    for metric in ("success_rate", "utilization"):
        table = figures.bar_table(summary, metric, "topology", "agent")
        assert (table["low"] >= 0).all() and (table["high"] <= 1).all()
        assert (table["low"] <= table["mean"]).all() and (table["mean"] <= table["high"]).all()
    # A difference is not a rate: its interval is drawn as computed.
    low = summary[(summary["agent"] == "low") & (summary["metric"] == "success_rate")]
    table = figures.bar_table(low.assign(metric="gain"), "gain", "topology", "agent")
    assert table["low"].iloc[0] == pytest.approx(summary["ci_low"].min())


def test_a_run_of_one_has_no_error_bar() -> None:
    runs = pd.DataFrame({"topology": ["t"], "agent": ["a"], "success_rate": [0.25]})
    table = figures.bar_table(
        stats.summarize(runs, ["success_rate"]), "success_rate", "topology", "agent"
    )
    assert table[["low", "mean", "high"]].iloc[0].tolist() == [0.25, 0.25, 0.25]


def test_sensitivity_gives_each_agent_one_colour_in_both_panels() -> None:
    for seed in range(5):
        sens = sensitivity_rows(seed)
        agents = list(dict.fromkeys(sens["agent"]))
        left, right = figures.sensitivity_tables(sens, reference="shortest")
        colour = dict(zip(left["series"], left["colour"], strict=False))
        assert list(colour) == agents and len(set(colour.values())) == len(agents)
        gain = dict(zip(right["series"], right["colour"], strict=False))
        assert list(gain) == [f"{a} − shortest" for a in agents if a != "shortest"]
        for label, c in gain.items():
            assert c == colour[label.split(" − ")[0]], label
        for table in (left, right):  # the variants keep their order
            assert list(dict.fromkeys(table["group"])) == list(dict.fromkeys(sens["variant"]))


def test_bar_table_refuses_a_series_without_a_colour() -> None:
    summary = stats.summarize(sensitivity_rows(), ["success_rate"], by=("variant", "agent"))
    with pytest.raises(ValueError, match="no colour for series"):
        figures.bar_table(summary, "success_rate", "variant", "agent", {"shortest": "C0"})


def test_sensitivity_x_labels_overlap_neither_each_other_nor_the_legend() -> None:
    fig = figures.sensitivity_figure(sensitivity_rows())
    fig.tight_layout()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels()]
        assert len(boxes) == len(VARIANTS)
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b), "two x labels overlap"
        legend = ax.get_legend().get_window_extent(renderer)
        assert not any(box.overlaps(legend) for box in boxes), "the legend covers an x label"
    figures._pyplot().close(fig)


def test_every_agent_of_the_default_study_has_its_own_colour() -> None:
    """The 13 agents of spep reproduce: C0-C9 repeat after ten, so the rest take tab20's light hues."""
    from matplotlib.colors import to_hex

    names = list(reproduce.Options().agents)
    assert len(names) > 10
    colours = figures.colour_map(names)
    assert len({to_hex(c) for c in colours.values()}) == len(names)
    # ten or fewer keep the default cycle, as before
    assert figures.colour_map(names[:4]) == {n: f"C{i}" for i, n in enumerate(names[:4])}
