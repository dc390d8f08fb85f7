"""``spep regimes``: the grid's plan and keys, resume, outputs computed from the run files, errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from agents.cli import main
from agents.study import plan, regimes, regimes_report, stats
from spep_gym.config import PHYSICAL, TOPOLOGIES


def test_grid_plans_cells_agents_and_seeds_with_unique_stable_keys():
    grid = regimes.regimes()
    assert len(grid) == 2**5 and len({regimes.regime_label(r) for r in grid}) == 32
    assert grid[0] == {f: levels[0][0] for f, levels in regimes.FACTORS.items()}  # the preset
    tasks = regimes.plan_grid(regimes.DEFAULT_AGENTS, TOPOLOGIES, 3, 100, 7, {})
    assert len(tasks) == 32 * 4 * len(regimes.DEFAULT_AGENTS) * 3
    unique = plan.schedule(tasks)
    assert len(unique) == len(tasks) and len({t.filename for t in unique}) == len(tasks)
    # Common random numbers: every agent of every cell runs seeds 7, 8, 9.
    assert {t.seed for t in tasks} == {7, 8, 9}
    # Stable: planning again gives the same keys, and the preset cell's runs are the runs
    # spep reproduce would make with the same slots (same key, same file name).
    again = regimes.plan_grid(regimes.DEFAULT_AGENTS, TOPOLOGIES, 3, 100, 7, {})
    assert [t.filename for t in again] == [t.filename for t in tasks]
    preset = next(t for t in tasks if t.variant == regimes.regime_label(grid[0]))
    assert preset.filename == plan.Task(preset.topology, preset.agent, preset.seed, 100).filename
    # The physical cell holds the physical preset's laws, link layer and latency.
    physical = {
        "link_layer": "replace_oldest", "physics": "physical", "end_memory": "equal",
        "latency": "0.5", "load": "paper",
    }  # fmt: skip
    fields = regimes.regime_fields(physical)
    for key in (
        *regimes.PHYSICAL_LAWS,
        "link_pool_policy",
        "cutoff_fidelity",
        "signalling_latency",
    ):
        assert fields[key] == PHYSICAL[key]


def test_only_keeps_levels_and_bad_options_fail_before_any_run(tmp_path, capsys):
    assert len(regimes.regimes({"load": ["heavy"], "physics": ["paper", "physical"]})) == 16
    with pytest.raises(ValueError, match="unknown factor 'lod': allowed factors: link_layer"):
        regimes.regimes({"lod": ["paper"]})
    with pytest.raises(
        ValueError, match="unknown level 'light': allowed levels of load: paper, heavy"
    ):
        regimes.regimes({"load": ["light"]})
    out = tmp_path / "out"
    base = regimes.Options(runs=1, slots=20, out=out, jobs=1, progress=False)
    for bad, message in (
        ({"runs": 0}, "--runs = 0"),
        ({"agents": ("shortest", "nope")}, "unknown agent"),
        ({"agents": ("shortest", "random")}, "at least one of"),
        ({"agents": ("random", "managed")}, "at least one of .*, managed and one predictive"),
        ({"agents": ("spep-frequency",)}, "at least one of"),
        ({"agents": ("shortest", "shortest")}, "name each agent once"),
        ({"topologies": ("ring",)}, "unknown topology 'ring'"),
        ({"overrides": {"arrival_rate": 0.3}}, "sets arrival_rate itself"),
        ({"overrides": {"link_capacity": 0}}, "'link_capacity'"),
        ({"backend": "slurm"}, "--backend"),
    ):
        opts = regimes.Options(**{**vars(base), **bad})
        with pytest.raises(ValueError, match=message):
            regimes.run_regimes(opts)
    assert not out.exists()
    assert main(["regimes", "--only", "load", "--out", str(out)]) == 2
    assert "expected FACTOR=LEVEL" in capsys.readouterr().err
    assert main(["regimes", "--only", "latency=1", "--out", str(out)]) == 2
    assert "levels of latency: 0, 0.5" in capsys.readouterr().err
    assert not out.exists()


def test_cli_end_to_end_on_a_tiny_grid_resumes_and_computes_from_the_run_files(tmp_path):
    out = tmp_path / "map"
    argv = [
        "regimes", "--runs", "2", "--slots", "100", "--topologies", "erdos_renyi,scale_free",
        "--only", "physics=paper", "--only", "latency=0", "--only", "end_memory=equal",
        "--out", str(out), "--jobs", "1", "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    for name in ("regimes.csv", "cells.csv", "gains.csv", "cells.md", "summary.md", "meta.json"):
        assert (out / name).stat().st_size > 0, name
    figures = {p.name for p in (out / "figures").glob("*.png")}
    assert figures == {
        "heatmap_spep-frequency_vs_best.png",
        "heatmap_spep-frequency_vs_random.png",
        "heatmap_spep-oracle_vs_random.png",
        "heatmap_managed-oracle_vs_twin.png",
        "heatmap_managed-frequency_vs_twin.png",
    }
    runs = sorted((out / "runs").glob("*.json"))
    assert len(runs) == 4 * 2 * 7 * 2  # cells x topologies x agents x runs
    df = regimes_report.read_rows(out)
    assert len(df) == len(runs) and set(df["load"]) == {"paper", "heavy"}
    gains = pd.read_csv(out / "gains.csv", dtype=str)
    assert {"wilcoxon_p", "wilcoxon_p_holm", "diff_ci_low", "diff_ci_high"} <= set(gains.columns)
    assert set(gains["control"]) == {"best", "random"}
    # The gains are the paired differences of regimes.csv's rows.
    cell = df["cell"].iloc[0]
    part = df[(df.cell == cell) & (df.topology == "erdos_renyi")].set_index("seed")
    diff = (
        part[part.agent == "spep-oracle"]["success_rate"]
        - part[part.agent == "random"]["success_rate"]
    )
    g = pd.read_csv(out / "gains.csv")
    row = g[
        (g.cell == cell) & (g.topology == "erdos_renyi") & (g.agent == "spep-oracle")
        & (g.control == "random") & (g.metric == "success_rate")
    ].iloc[0]  # fmt: skip
    assert row["difference"] == pytest.approx(diff.mean())
    success = g[g.metric == "success_rate"].drop_duplicates(
        ["cell", "topology", "agent", "baseline"]
    )
    assert success["wilcoxon_p_holm"].tolist() == pytest.approx(
        stats.holm(success["wilcoxon_p"]).tolist()
    )
    # Prediction's value per cell: each managed-* agent minus its twin managed, Holm over the map.
    twins = pd.read_csv(out / "prediction.csv")
    assert len(twins) == 8 * 2 and set(twins["baseline"]) == {"managed"}
    assert set(twins["agent"]) == {"managed-oracle", "managed-frequency"}
    assert twins["wilcoxon_p_holm"].tolist() == pytest.approx(
        stats.holm(twins["wilcoxon_p"]).tolist()
    )
    twin = twins[(twins.cell == cell) & (twins.topology == "erdos_renyi")]
    twin = twin[twin.agent == "managed-oracle"].iloc[0]
    diff = (
        part[part.agent == "managed-oracle"]["success_rate"]
        - part[part.agent == "managed"]["success_rate"]
    )
    assert twin["mean_paired_difference"] == pytest.approx(diff.mean())
    summary = (out / "summary.md").read_text()
    up = int(
        (
            (twins.wilcoxon_p_holm < 0.05)
            & (twins.difference > 0)
            & (twins.agent == "managed-oracle")
        ).sum()
    )
    assert f"- managed-oracle − managed: above in **{up}**" in summary
    assert "managed-oracle − managed (its twin)" in (out / "cells.md").read_text()
    best = g[(g.metric == "success_rate") & (g.agent == "spep-frequency") & (g.control == "best")]
    wins = int(((best.wilcoxon_p_holm < 0.05) & (best.difference > 0)).sum())
    assert f"Beats the best control in **{wins} of 8** cells" in summary
    assert "What prediction adds beyond flushing" in summary and "Offered load" in summary
    assert (out / "cells.md").read_text().count("\n## ") == 4
    meta = json.loads((out / "meta.json").read_text())
    assert meta["runs_executed"] == len(runs) and meta["command"].startswith("spep regimes")
    # The same command again runs nothing, keeps the run files and rebuilds the same tables.
    before = {p.name: p.read_bytes() for p in runs}
    assert main(argv) == 0
    assert {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")} == before
    assert json.loads((out / "meta.json").read_text())["runs_executed"] == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "gains.csv"), g)


def test_the_holm_family_is_the_distinct_tests_the_correction_used():
    """A cell whose best control is ``random`` repeats a test: it counts once."""
    from pathlib import Path

    stored = Path(__file__).resolve().parents[1] / "docs/results/regimes/gains.csv"
    gains = pd.read_csv(stored, dtype={f: str for f in ("cell", *regimes.FACTOR_NAMES)})
    success = gains[gains.metric == "success_rate"]
    size = regimes_report.holm_family_size(success)
    repeats = int((success.baseline == "random").sum() - (success.control == "random").sum())
    assert size == len(success) - repeats
    # In the stored map `managed` is every cell's best control (no repeats); make random the best
    # control of 3 cells: their "best" rows become repeats of their "random" rows.
    made = success.copy()
    cells = made[["cell", "topology"]].drop_duplicates().head(3)
    chosen = made.set_index(["cell", "topology"]).index.isin(
        cells.set_index(["cell", "topology"]).index
    )
    best = chosen & (made.baseline != "random").to_numpy()
    made.loc[chosen, "control"] = "random"
    made.loc[best, "baseline"] = "random"
    assert best.sum() > 0
    assert regimes_report.holm_family_size(made) == len(made) - int(best.sum())
    # The correction stored beside the tests is Holm's over exactly that many distinct p-values.
    unique = success.drop_duplicates(["cell", "topology", "agent", "baseline"])
    assert list(stats.holm(unique.wilcoxon_p)) == pytest.approx(list(unique.wilcoxon_p_holm))
    assert regimes_report.holm_family_size(success.iloc[:0]) == 0
