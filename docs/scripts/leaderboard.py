"""The leaderboard, docs/leaderboard.md, computed from the stored study outputs in docs/results.

Rows: every agent of the stored ``spep reproduce`` outputs (one folder per preset:
:data:`PRESETS`) and every stored learned agent (a ``learned*`` folder with the ``compare.csv``
of ``agents.rl.compare``). Columns: each preset x the four topologies. A cell is the mean success
rate over the seeds with its 95 % Student-t interval (``agents.study.stats.mean_ci``); the seeds and
slots of each study are stated. A learned agent's row also states its training (steps and wall
time from its ``model.json``, where it was kept) and whether its evaluation seeds are disjoint
from its training seeds (SPEC section 11). An output that is not stored is said to be so.
``tests/test_leaderboard.py`` fails when the page differs from what this script writes.

    .venv/bin/python docs/scripts/leaderboard.py --write   # rewrite docs/leaderboard.md
    .venv/bin/python docs/scripts/leaderboard.py           # print it
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from agents.study.stats import mean_ci
from agents.study.tables import markdown_table

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
PAGE = ROOT / "docs" / "leaderboard.md"
#: (preset, the folder under docs/results holding its ``spep reproduce`` outputs).
PRESETS = (("paper", "reproduce"), ("physical", "reproduce-physical"))
TOPOLOGIES = ("erdos_renyi", "random_regular", "small_world", "scale_free")
SHORT = {
    "erdos_renyi": "ER",
    "random_regular": "regular",
    "small_world": "small-world",
    "scale_free": "scale-free",
}


def seed_text(seeds: Sequence[int]) -> str:
    """``0–19`` for a run of seeds, else the list."""
    seeds = sorted({int(s) for s in seeds})
    if not seeds:
        return "none"
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
    return ", ".join(map(str, seeds))


def cell(values: Sequence[float]) -> str:
    """``33.3 ± 1.2`` (%): the mean and the half width of its 95 % CI; ``n=`` where few."""
    m, low, high, n = mean_ci(values)
    if n == 0:
        return "–"
    text = f"{100 * m:.1f}"
    return text + (f" ± {50 * (high - low):.1f}" if n > 1 else " (n=1)")


def load_studies(results: Path) -> dict[str, tuple[pd.DataFrame, dict[str, Any]] | None]:
    """Each preset's ``results.csv`` and ``meta.json`` (None where its folder holds none)."""
    out: dict[str, tuple[pd.DataFrame, dict[str, Any]] | None] = {}
    for preset, folder in PRESETS:
        path = results / folder
        if (path / "results.csv").exists() and (path / "meta.json").exists():
            meta = json.loads((path / "meta.json").read_text())
            if meta.get("preset", "paper") != preset:
                raise ValueError(
                    f"{path / 'meta.json'}: preset {meta.get('preset')!r} is invalid here: "
                    f"allowed {preset!r} (the folder of that preset)"
                )
            out[preset] = (pd.read_csv(path / "results.csv"), meta)
        else:
            out[preset] = None
    return out


def learned_agents(results: Path) -> list[dict[str, Any]]:
    """Every stored learned agent: its cells and what its folder says of it.

    A ``learned*`` folder holds either the ``compare.csv`` of ``agents.rl.compare`` (one cell: its
    preset and training topology) or, as ``docs/scripts/learned_twins.py`` writes it, a
    ``results.csv`` of per-run rows on every topology of its preset, with ``meta.json``'s
    ``agents`` mapping each row label to the subfolder of its model (one row per label, named by
    ``names`` where it names it).
    ``meta.json`` names the preset, topology, evaluation and training seeds (``preset``,
    ``topology``, ``eval_seeds`` and ``train_seeds``: ``[first, last]``); ``model.json``
    (``spep train``'s, where it was kept) gives the training steps and wall time.
    """
    agents = []
    for folder in sorted(results.glob("learned*")):
        if (folder / "results.csv").exists():
            meta = json.loads((folder / "meta.json").read_text())
            df = pd.read_csv(folder / "results.csv")
            for label, sub in meta["agents"].items():
                rows = df[df["agent"] == label]
                cells = {str(t): list(g["success_rate"]) for t, g in rows.groupby("topology")}
                name = meta.get("names", {}).get(label, label)
                agents.append(_learned(folder, meta, cells, folder / sub / "model.json", name))
        elif (folder / "compare.csv").exists():
            meta = json.loads((folder / "meta.json").read_text())
            row = pd.read_csv(folder / "compare.csv").set_index("agent").loc["learned"]
            one = {
                "text": f"{100 * row['success_rate']:.1f} ± "
                f"{50 * (row['ci_high'] - row['ci_low']):.1f}",
                "mean": float(row["success_rate"]),
            }
            name = meta.get("name", folder.name)
            agents.append(
                _learned(folder, meta, {meta["topology"]: one}, folder / "model.json", name)
            )
    return agents


def _learned(
    folder: Path, meta: dict[str, Any], cells: dict[str, Any], model: Path, name: str
) -> dict[str, Any]:
    """One learned agent's entry: its cells per topology (run values, or a stored text and mean)."""
    trained = json.loads(model.read_text()) if model.exists() else None
    first, last = meta["eval_seeds"]
    train = meta.get("train_seeds")
    if trained is not None and train is None:
        train = [trained["seed"], trained["seed"] + trained["n_envs"] - 1]
    disjoint = None if train is None else (last < train[0] or first > train[1])
    return {
        "name": f"learned: {name}",
        "folder": folder.name,
        "source": "results.csv" if (folder / "results.csv").exists() else "compare.csv",
        "what": meta.get("agent", ""),
        "preset": meta["preset"],
        "topology": meta["topology"],
        "cells": {
            t: v if isinstance(v, dict) else {"text": cell(v), "mean": float(pd.Series(v).mean())}
            for t, v in cells.items()
        },
        "eval_seeds": (first, last),
        "train_seeds": train,
        "disjoint": disjoint,
        "steps": None if trained is None else trained["timesteps"],
        "wall_s": None if trained is None else trained["wall_time_s"],
        "resumed_from": None if trained is None else trained.get("resumed_from"),
    }


def training_text(agent: dict[str, Any]) -> str:
    """``261,120 steps, 10.2 min`` from a learned agent's ``model.json``; ``not stored`` without."""
    if agent["steps"] is None:
        return "not stored"
    if agent.get("resumed_from"):  # model.json's wall time is the resumed part's
        return (
            f"{agent['steps']:,} steps (resumed at {agent['resumed_from']:,}: "
            f"{agent['wall_s'] / 60:.1f} min for the rest)"
        )
    return f"{agent['steps']:,} steps, {agent['wall_s'] / 60:.1f} min"


def render(results: Path = RESULTS) -> str:
    """The page: the table, then what each study and learned agent is, from the stored outputs."""
    studies = load_studies(results)
    learned = learned_agents(results)
    agents: list[str] = []
    for study in studies.values():
        if study is not None:
            agents += [a for a in dict.fromkeys(study[0]["agent"]) if a not in agents]
    columns = [(p, t) for p, _ in PRESETS for t in TOPOLOGIES]
    cells: dict[tuple[str, str, str], str] = {}
    means: dict[tuple[str, str, str], float] = {}
    for preset, study in studies.items():
        if study is None:
            continue
        df = study[0]
        for (agent, topology), group in df.groupby(["agent", "topology"], sort=False):
            cells[(str(agent), preset, str(topology))] = cell(group["success_rate"])
            means[(str(agent), preset, str(topology))] = float(group["success_rate"].mean())
    for a in learned:
        for topology, one in a["cells"].items():
            cells[(a["name"], a["preset"], topology)] = one["text"]
            means[(a["name"], a["preset"], topology)] = one["mean"]
    best = {
        (p, t): max((m for (_, mp, mt), m in means.items() if (mp, mt) == (p, t)), default=None)
        for p, t in columns
    }
    training = {a["name"]: training_text(a) for a in learned}
    rows = []
    for name in [*agents, *(a["name"] for a in learned)]:
        row = [f"`{name}`" if name not in training else name, training.get(name, "none")]
        for preset, topology in columns:
            if studies.get(preset) is None and name not in training:
                row.append("not stored")
                continue
            text = cells.get((name, preset, topology), "–")
            if means.get((name, preset, topology)) == best[(preset, topology)] and text != "–":
                text = f"**{text}**"
            row.append(text)
        rows.append(row)
    header = ["agent", "training", *(f"{p} {SHORT[t]}" for p, t in columns)]
    parts = [
        "# Leaderboard",
        "",
        "<!-- generated by docs/scripts/leaderboard.py from docs/results: do not edit by hand -->",
        "",
        "Success rate (%) of every agent on the paper and `physical` presets and the four "
        "topologies: the mean over the seeds ± the half width of its 95 % Student-t interval; "
        "the best mean of each column in bold. Every number is computed from the stored outputs "
        "in `docs/results` (`python docs/scripts/leaderboard.py --write` rewrites this page; a "
        "test fails when it differs). Run *i* of every agent of a study uses seed *i*, so "
        "differences between agents are best read paired ([Reproducing the paper]"
        "(reproducing.md): each study's `report.md` and `prediction.csv`); the intervals here are "
        "of the levels.",
        "",
        markdown_table(header, rows),
        "",
        "## Where the numbers come from",
        "",
    ]
    for preset, folder in PRESETS:
        study = studies.get(preset)
        if study is None:
            parts.append(
                f"- **{preset}**: not stored (`docs/results/{folder}/` holds no `results.csv` "
                f"and `meta.json`: run `spep reproduce"
                + (" --set preset=physical" if preset != "paper" else "")
                + f" --out docs/results/{folder}` and rewrite this page)."
            )
            continue
        df, meta = study
        parts.append(
            f"- **{preset}**: `docs/results/{folder}/results.csv`, written by "
            f"`{meta.get('command', 'spep reproduce')}`: {df['agent'].nunique()} agents × "
            f"{df['topology'].nunique()} topologies, seeds {seed_text(df['seed'])} × "
            f"{seed_text(df['slots'])} slots, no training (the learned agents are below)."
        )
    if not learned:
        parts.append("- **learned agents**: none stored (no `docs/results/learned*/compare.csv`).")
    for a in learned:
        first, last = a["eval_seeds"]
        if a["train_seeds"] is None:
            seeds = "its training seeds are not stored, so their disjointness is not checked"
        else:
            t0, t1 = a["train_seeds"]
            seeds = f"training started from seeds {t0}–{t1}, " + (
                "disjoint from them" if a["disjoint"] else "**not disjoint from them**"
            )
        training = (
            f"{training_text(a)} (`model.json`)"
            if a["steps"] is not None
            else "training steps and wall time: not stored (no `model.json`; its `meta.json` "
            f"says: {a['what']})"
        )
        where = (
            f"trained on {a['topology']}, evaluated on {len(a['cells'])} topologies on"
            if len(a["cells"]) > 1
            else f"{a['topology']}, evaluated on"
        )
        parts.append(
            f"- **{a['name']}** (`docs/results/{a['folder']}/{a['source']}`): "
            f"{a['preset']} preset, {where} seeds {first}–{last}; {seeds}; {training}."
        )
    parts.append("")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Print the page, or write it to docs/leaderboard.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite docs/leaderboard.md")
    args = parser.parse_args(argv)
    page = render()
    if not args.write:
        print(page, end="")
        return 0
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
