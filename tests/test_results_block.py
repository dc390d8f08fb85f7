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
    assert "random" in meta["agents"], "the study's control is missing"
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
