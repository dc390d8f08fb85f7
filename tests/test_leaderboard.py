"""docs/leaderboard.md is the table docs/scripts/leaderboard.py computes from docs/results.

The script is checked on a small fixture (known means and intervals, a preset not stored, a
learned agent with and without its ``model.json``, seeds that overlap the training seeds), and the
stored page against what it writes from the stored outputs.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

spec = importlib.util.spec_from_file_location("leaderboard", ROOT / "docs/scripts/leaderboard.py")
assert spec is not None and spec.loader is not None
leaderboard = importlib.util.module_from_spec(spec)
spec.loader.exec_module(leaderboard)


def _study(folder: Path, preset: str, rates: dict[tuple[str, str], list[float]]) -> None:
    folder.mkdir(parents=True)
    rows = [
        {"agent": a, "topology": t, "seed": s, "slots": 300, "success_rate": r}
        for (a, t), values in rates.items()
        for s, r in enumerate(values)
    ]
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    meta = {"command": "spep reproduce --runs 4 --slots 300", "preset": preset}
    (folder / "meta.json").write_text(json.dumps(meta))


def _learned(folder: Path, eval_seeds: list[int], model: dict | None = None) -> None:
    folder.mkdir(parents=True)
    pd.DataFrame(
        [
            {"agent": "learned", "success_rate": 0.40, "ci_low": 0.35, "ci_high": 0.45},
            {"agent": "random", "success_rate": 0.30, "ci_low": 0.25, "ci_high": 0.35},
        ]
    ).to_csv(folder / "compare.csv", index=False)
    meta = {"agent": "PPO, 1000 steps", "preset": "physical", "topology": "scale_free"}
    meta |= {"eval_seeds": eval_seeds, "name": folder.name.upper()}
    if model is None:
        meta["train_seeds"] = [100, 103]
    else:
        (folder / "model.json").write_text(json.dumps(model))
    (folder / "meta.json").write_text(json.dumps(meta))


def test_the_table_from_a_small_fixture(tmp_path):
    # paper preset only: managed at 0.3 +- ..., random constant; physical not stored
    _study(
        tmp_path / "reproduce",
        "paper",
        {
            ("random", "erdos_renyi"): [0.2, 0.2, 0.2, 0.2],
            ("managed", "erdos_renyi"): [0.3, 0.32, 0.34, 0.36],
        },
    )
    _learned(tmp_path / "learned", [0, 19])
    _learned(
        tmp_path / "learned_b",
        [5, 9],
        model={"seed": 8, "n_envs": 4, "timesteps": 61440, "wall_time_s": 65.0},
    )
    page = leaderboard.render(tmp_path)
    # mean 33.0, t(0.975, 3) x sd 0.02582 / 2 = 4.1 pp
    assert "| `managed` | none | **33.0 ± 4.1** | – | – | – | not stored |" in page
    assert "| `random` | none | 20.0 ± 0.0 | – |" in page  # identical values: a zero-width CI
    # learned agents sit in their preset and topology column, with their training
    assert "| learned: LEARNED | not stored | – | – | – | – | – | – | – | **40.0 ± 5.0** |" in page
    assert "| learned: LEARNED_B | 61,440 steps, 1.1 min |" in page
    assert "seeds 0–3 × 300 slots" in page and "**physical**: not stored" in page
    assert "evaluated on seeds 0–19; training started from seeds 100–103, disjoint" in page
    # seeds 5-9 overlap the training envs' seeds 8-11 (model.json): said so, in bold
    assert "evaluated on seeds 5–9; training started from seeds 8–11, **not disjoint" in page
    assert "61,440 steps, 1.1 min (`model.json`)" in page
    assert "its `meta.json` says: PPO, 1000 steps" in page


def test_twin_models_get_a_row_each_with_a_cell_per_topology(tmp_path):
    """A learned_twins.py folder: results.csv rows on several topologies, a model per label."""
    folder = tmp_path / "learned-physical"
    folder.mkdir()
    rows = [
        {"agent": a, "topology": t, "seed": s, "slots": 300, "success_rate": r}
        for a, t, values in (
            ("learned-predictive", "erdos_renyi", [0.5, 0.5]),
            ("learned-predictive", "scale_free", [0.2, 0.4]),
            ("learned-blind", "erdos_renyi", [0.1, 0.1]),
            ("managed", "erdos_renyi", [0.9, 0.9]),  # a control's rows: not a learned row
        )
        for s, r in enumerate(values)
    ]
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    agents = {"learned-predictive": "predictive", "learned-blind": "blind"}
    meta = {"preset": "physical", "topology": "erdos_renyi", "eval_seeds": [0, 1]}
    (folder / "meta.json").write_text(json.dumps({**meta, "agents": agents}))
    (folder / "predictive").mkdir()
    model = {"seed": 100, "n_envs": 2, "timesteps": 720_896, "wall_time_s": 600.0}
    (folder / "predictive" / "model.json").write_text(json.dumps(model))
    (folder / "blind").mkdir()
    resumed = {**model, "resumed_from": 360_448, "wall_time_s": 300.0}
    (folder / "blind" / "model.json").write_text(json.dumps(resumed))
    page = leaderboard.render(tmp_path)
    # mean 0.3 +- t(0.975, 1) x sd 0.1414 / sqrt(2) = 12.706 x 0.1 = 127.1 pp
    row = "| learned: learned-predictive | 720,896 steps, 10.0 min | " + "– | " * 4
    assert row + "**50.0 ± 0.0** | – | – | **30.0 ± 127.1** |" in page
    # a resumed run's model.json times the resumed part only: said so
    blind = "| learned: learned-blind | 720,896 steps (resumed at 360,448: 5.0 min for the rest) | "
    assert blind + "– | " * 4 + "10.0 ± 0.0 | – |" in page
    assert "learned: managed" not in page
    assert (
        "trained on erdos_renyi, evaluated on 2 topologies on seeds 0–1; training started" in page
    )
    assert "from seeds 100–101, disjoint from them; 720,896 steps, 10.0 min" in page


def test_a_study_of_another_preset_in_a_presets_folder_is_refused(tmp_path):
    _study(tmp_path / "reproduce-physical", "paper", {("random", "erdos_renyi"): [0.2, 0.3]})
    with pytest.raises(ValueError, match="preset 'paper' is invalid here: allowed 'physical'"):
        leaderboard.render(tmp_path)


def test_the_stored_page_is_what_the_script_writes_from_the_stored_outputs():
    assert leaderboard.PAGE.read_text() == leaderboard.render(), (
        "run .venv/bin/python docs/scripts/leaderboard.py --write"
    )
    assert "leaderboard.md" in (ROOT / "mkdocs.yml").read_text()


def test_write_rewrites_the_page(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    shutil.copytree(leaderboard.RESULTS / "learned", results / "learned")
    page = tmp_path / "leaderboard.md"
    monkeypatch.setattr(leaderboard, "RESULTS", results)
    monkeypatch.setattr(leaderboard, "PAGE", page)
    monkeypatch.setattr(leaderboard, "ROOT", tmp_path)
    monkeypatch.setattr(leaderboard.render, "__defaults__", (results,))
    assert leaderboard.main(["--write"]) == 0
    assert page.read_text() == leaderboard.render(results)
    assert "**paper**: not stored" in page.read_text()
    assert leaderboard.main([]) == 0
    assert capsys.readouterr().out == page.read_text()
