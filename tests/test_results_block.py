"""The results the README and docs/reproducing.md state are the ones the study outputs give.

The block between the results markers of each page is computed by docs/scripts/results_block.py from
the outputs in docs/results (what ``spep reproduce``, ``spep regimes`` and ``spep calibrate`` wrote);
a number typed by hand, or outputs replaced without rewriting the pages, fails here.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

spec = importlib.util.spec_from_file_location(
    "results_block", ROOT / "docs/scripts/results_block.py"
)
assert spec is not None and spec.loader is not None
results_block = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results_block)


@pytest.fixture(scope="module")
def block() -> str:
    return results_block.render()


@pytest.mark.parametrize("page", results_block.PAGES, ids=lambda p: p.name)
def test_each_page_holds_the_block_computed_from_the_outputs(page, block):
    text = page.read_text()
    assert text.count(results_block.BEGIN) == 1 and text.count(results_block.END) == 1
    start = text.index(results_block.BEGIN)
    stored = text[start : text.index(results_block.END) + len(results_block.END)]
    assert stored == block, (
        f"{page.name}: run .venv/bin/python docs/scripts/results_block.py --write"
    )


def test_the_outputs_are_the_ones_the_block_names(block):
    about = json.loads((results_block.RESULTS / "about.json").read_text())
    assert about["commit"] in block
    meta = json.loads((results_block.RESULTS / "reproduce/meta.json").read_text())
    assert {"random", "managed", "managed-oracle"} <= set(meta["agents"]), "a control is missing"
    physical = json.loads((results_block.RESULTS / "reproduce-physical/meta.json").read_text())
    assert physical["preset"] == "physical" and physical["agents"] == meta["agents"]
    # the summary the block reads agrees with the per-run rows it was computed from
    rows = pd.read_csv(results_block.RESULTS / "reproduce/results.csv")
    summary = pd.read_csv(results_block.RESULTS / "reproduce/summary.csv")
    for topology, agent in (("erdos_renyi", "random"), ("scale_free", "spep-frequency")):
        mean = rows[(rows.topology == topology) & (rows.agent == agent)].success_rate.mean()
        stored = summary[
            (summary.topology == topology)
            & (summary.agent == agent)
            & (summary.metric == "success_rate")
        ]["mean"].iloc[0]
        assert mean == pytest.approx(stored, rel=1e-12)


def test_a_changed_output_changes_the_block(tmp_path, block):
    copy = tmp_path / "results"
    shutil.copytree(results_block.RESULTS, copy)
    summary = pd.read_csv(copy / "reproduce/summary.csv")
    hit = (summary.topology == "erdos_renyi") & (summary.agent == "shortest")
    summary.loc[hit & (summary.metric == "success_rate"), "mean"] += 0.01
    summary.to_csv(copy / "reproduce/summary.csv", index=False)
    assert results_block.render(copy) != block


def test_significance_counts_use_the_corrected_p():
    rows = pd.DataFrame(
        {
            "difference": [0.02, 0.03, -0.01, 0.05],
            "wilcoxon_p": [0.001, 0.04, 0.001, 0.2],
            "wilcoxon_p_holm": [0.004, 0.08, 0.004, 0.2],
        }
    )
    assert len(results_block.significant(rows, 1)) == 1
    assert len(results_block.significant(rows, -1)) == 1


def test_a_page_without_its_block_is_an_error():
    with pytest.raises(ValueError, match="no results block"):
        results_block.replace_block("no markers here", "x", "page.md")


def test_the_sensitivity_table_of_the_docs_is_the_reports():
    """docs/reproducing.md copies the report's sensitivity rows (without the gains over shortest)."""
    docs = (ROOT / "docs/reproducing.md").read_text()
    report = (results_block.RESULTS / "reproduce/report.md").read_text()
    section = docs[docs.index("### Sensitivity study") :]
    section = section[: section.index("\n\n", section.index("| variant |"))]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 7  # the header and six variants

    def cells(line: str) -> list[str]:
        return [c.strip().replace("**", "").replace("−", "-") for c in line.strip("|").split("|")]

    reported = {
        cells(line)[0]: cells(line) for line in report.splitlines() if line.startswith("| ")
    }
    for line in rows[1:]:
        ours = cells(line)
        theirs = reported[ours[0]]
        assert ours[:5] == theirs[:5] and ours[5:] == theirs[-2:], ours[0]


def _part(block: str, start: str, end: str) -> str:
    return block[block.index(start) : block.index(end, block.index(start))]


def test_every_number_of_the_tables_has_its_uncertainty(block):
    comparison = _part(block, "1. **The controlled comparison**", "Every SPEP predictor")
    rows = [
        line for line in comparison.splitlines() if line.startswith("   | ") and "---" not in line
    ]
    assert len(rows) == 5  # the header and four topologies
    assert "| `managed` |" in rows[0] and "| `managed-oracle` |" in rows[0]
    for row in rows[1:]:
        cells = [c.strip() for c in row.strip().strip("|").split("|")][1:]
        for cell in cells:
            for value in cell.split(" / "):
                assert "±" in value or "[" in value, (row, value)
    worth = _part(block, "2. **What prediction is worth**", "3. **The regime map**")
    rows = [line for line in worth.splitlines() if line.startswith("   | ") and "---" not in line]
    assert len(rows) == 9  # the header and two presets × four topologies
    for row in rows[1:]:
        cells = [c.strip() for c in row.strip().strip("|").split("|")][2:]
        stored = cells[0] != "not stored"
        assert all("[" in c and "(" in c for c in cells) or not stored, row
    claims = _part(block, "| the paper's claim |", "**What the block says**")
    for row in claims.splitlines()[2:]:
        if row.startswith("| "):
            ours = row.split("|")[2]
            assert "±" in ours or "CI" in ours, row
    assert "CIs within" in _part(block, "Every SPEP predictor", "2. **What prediction")


def test_the_regime_map_states_its_true_holm_family_and_the_oracle_against_the_best(block):
    gains = pd.read_csv(results_block.RESULTS / "regimes/gains.csv", dtype=str)
    success = gains[gains.metric == "success_rate"]
    distinct = success.drop_duplicates(["cell", "topology", "agent", "baseline"])
    assert f"over the map's {len(distinct)} distinct success-rate tests" in block
    if len(distinct) < len(success):  # where random is the best control, a test counts once
        assert f"{len(success)} distinct" not in block
    oracle = success[(success.agent == "spep-oracle") & (success.control == "best")]
    holm = oracle.wilcoxon_p_holm.astype(float) < 0.05
    diff = oracle.difference.astype(float)
    up, down = int((holm & (diff > 0)).sum()), int((holm & (diff < 0)).sum())
    assert f"spep-oracle − the best control above / below zero | **{up}** / {down} |" in block
    assert "realised requests of the next 3 slots, not a model of the demand" in block
    # prediction's value over the map: each managed-* agent against its twin, Holm over the map
    pred = pd.read_csv(results_block.RESULTS / "regimes/prediction.csv")
    assert set(pred.baseline) == {"managed"} and set(pred.family) == {"prediction"}
    for agent, part in pred.groupby("agent"):
        hit = part.wilcoxon_p_holm < 0.05
        up, down = (
            int((hit & (part.difference > 0)).sum()),
            int((hit & (part.difference < 0)).sum()),
        )
        assert f"| {agent} − managed (its twin) above / below zero | **{up}** / {down} |" in block


def test_the_map_states_its_run_length_and_warns_only_when_it_is_short(tmp_path, block):
    meta = json.loads((results_block.RESULTS / "regimes/meta.json").read_text())
    assert f"{meta['slots']} slots" in _part(block, "3. **The regime map**", "|")
    assert ("**The map was run at" in block) == (meta["slots"] < 2000)
    assert "500-slot cut" not in block and "issue 19" not in block
    copy = tmp_path / "results"
    shutil.copytree(results_block.RESULTS, copy)
    (copy / "regimes/meta.json").write_text(json.dumps({**meta, "slots": 500}))
    short = results_block.render(copy)
    assert "**The map was run at 500 slots**, shorter than the studies' 2000" in short
    assert "(240 slots, 48 % of a run)" in short


def test_prediction_is_read_from_each_studys_prediction_csv(tmp_path):
    """Known values written into a copy of the outputs show up in the table and in the words."""
    copy = tmp_path / "results"
    shutil.copytree(results_block.RESULTS, copy)
    path = copy / "reproduce/prediction.csv"
    pred = pd.read_csv(path)
    hit = (
        (pred.topology == "erdos_renyi")
        & (pred.agent == "managed-oracle")
        & (pred.baseline == "managed")
    )
    assert hit.sum() == 1
    pred.loc[hit, ["difference", "diff_ci_low", "diff_ci_high", "wilcoxon_p_holm"]] = (
        0.0123,
        0.0011,
        0.0234,
        0.0042,
    )
    oracle = pred.family.eq("prediction") & pred.agent.eq("managed-oracle")
    pred.loc[oracle & ~hit, "wilcoxon_p_holm"] = 1.0
    pred.to_csv(path, index=False)
    shutil.rmtree(copy / "reproduce-physical", ignore_errors=True)
    about = json.loads((copy / "about.json").read_text())
    about["cost"]["reproduce-physical"] = {"wall_s": 90.0, "cpu_s": 150.0, "load": "3.1"}
    (copy / "about.json").write_text(json.dumps(about))
    block = results_block.render(copy)
    table = _part(block, "2. **What prediction is worth**", "3. **The regime map**")
    paper = next(line for line in table.splitlines() if "| paper | Erdős–Rényi |" in line)
    assert "| +1.2 [+0.1, +2.3] (0.0042) |" in paper
    physical = [line for line in table.splitlines() if "| physical |" in line]
    assert len(physical) == 4 and all("not stored" in line for line in physical)
    words = block[block.index("**What the block says**") :]
    assert "Under the physical preset: not stored." in words
    oracle_words = words[words.index("(managed-oracle − managed): ") :].split(". ")[0]
    assert "significantly above zero in 1 and below in 0 of 4" in oracle_words
    assert "`spep reproduce --set preset=physical` 1.5 min (2.5 CPU-min; load 3.1)" in block
    about["cost"]["reproduce-physical"] = {"wall_s": None, "cpu_s": None, "load": None}
    (copy / "about.json").write_text(json.dumps(about))
    assert "`spep reproduce --set preset=physical` (not recorded)" in results_block.render(copy)


def test_equivalence_with_random_is_a_tost_with_a_stated_margin(block):
    from statsmodels.stats.weightstats import ttost_paired

    assert results_block.equivalence_margin() == pytest.approx(0.025)  # (13 % - 8 %) / 2
    runs = pd.read_csv(results_block.RESULTS / "reproduce/results.csv")
    er = runs[runs.topology == "erdos_renyi"]
    a = er[er.agent == "spep-frequency"].set_index("seed").success_rate
    b = er[er.agent == "random"].set_index("seed").success_rate.loc[a.index]
    tost = results_block.equivalence(runs, ["spep-frequency", "spep-lstm", "spep-arima"])
    row = tost[(tost.topology == "erdos_renyi") & (tost.agent == "spep-frequency")].iloc[0]
    assert row.tost_p == pytest.approx(ttost_paired(a.to_numpy(), b.to_numpy(), -0.025, 0.025)[0])
    shown = int((tost.tost_p_holm < 0.05).sum())
    assert f"within the margin of `random` in {shown} of {len(tost)} comparisons" in block


def test_levels_over_many_seeds_are_stated_beside_the_twenty(block):
    from scipy import stats

    rows = pd.read_csv(results_block.RESULTS / "levels/shortest_random_regular.csv")
    assert len(rows) == 150 and sorted(rows.seed) == list(range(150))
    x = 100 * rows.success_rate
    half = stats.sem(x) * stats.t.ppf(0.975, len(x) - 1)
    assert f"{x.mean():.1f} ± {half:.1f}" in _part(block, "Absolute levels", "2. **What prediction")


def test_the_calibration_is_scored_on_fresh_seeds_with_its_se(block):
    from agents.study import stats

    folder = results_block.RESULTS / "calibration"
    check, preset = pd.read_csv(folder / "check.csv"), pd.read_csv(folder / "check_preset.csv")
    targets = {t: short for t, (_, short) in results_block.PAPER_SUCCESS.items()}

    def rates(df):
        return {t: g.sort_values("seed").success_rate.to_numpy() for t, g in df.groupby("topology")}

    fit, se = stats.rms_miss(rates(check[check.agent == "shortest"]), targets)
    base, base_se = stats.rms_miss(rates(preset), targets)
    part = _part(block, "4. **Calibration**", "| the paper's claim |")
    assert f"it misses by {100 * fit:.2f} ± {100 * se:.2f} pp" in part
    assert f"the paper preset by {100 * base:.2f} ± {100 * base_se:.2f} pp" in part
    stored = json.loads((folder / "trials.json").read_text())
    assert stored["fresh"]["fit"]["loss_pp"] == pytest.approx(100 * fit)
    assert "stopped after" in part and stored["meta"]["stop"] in part


def test_the_learned_policy_is_stated_from_its_stored_table_with_its_uncertainty(block):
    from scipy import stats

    rows = pd.read_csv(ROOT / "docs/results/learned/compare.csv").set_index("agent")
    part = block[block.index("5. **A learned policy**") :].split("\n\n")[0]
    learned, oracle = rows.loc["learned"], rows.loc["spep-oracle"]
    half = (learned.ci_high - learned.ci_low) / 2
    assert f"Success rate {100 * learned.success_rate:.1f} ± {100 * half:.1f} %" in part
    # Holm over the four tests: random's p, the third smallest of four, times 2
    assert "Holm p 0.00013 over the table's 4 tests" in part
    # the unpaired interval of learned - oracle from the rows' Student-t intervals
    t = stats.t.ppf(0.975, 19)
    se = sum(((r.ci_high - r.ci_low) / 2 / t) ** 2 for r in (learned, oracle)) ** 0.5
    diff = learned.success_rate - oracle.success_rate
    assert abs(diff) < 2 * se  # the stored table shows no difference
    assert "unpaired: −3.4 to +3.2 pp" in part
    assert "were not kept" in part
