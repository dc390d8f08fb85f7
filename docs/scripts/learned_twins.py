"""A learned predictive agent against its demand-blind twin, on every topology of one preset.

The two models come from ``spep train`` runs that differ only in what the policy sees (the twin
was trained with ``--demand-blind``: the same network, seeds, reward and steps). Both are evaluated,
with the controls, on seeds ``0..runs-1`` x ``slots`` slots on the four topologies of the preset
(runs paired by seed), and the folder gets:

    results.csv      one row per run (agent, topology, seed, metrics), rewritten after each group
    prediction.csv   success rate, paired by seed, per topology: family "prediction" (the
                     predictive model - its twin) and family "control" (each model - managed, -
                     random, - the best baseline), mean difference with its 95 % CI, Wilcoxon p and
                     Holm over each family
    meta.json        preset, training topology, seeds, the models' labels and folders, the command
    <label>/         each model's model.zip, model.json, train.json, obs_stats.npz and its periodic
                     evaluations (loadable: ``agents.make("sb3", path=<label>)``)

An interrupted run keeps the finished groups and resumes from them.
``docs/scripts/leaderboard.py`` reads the folder (``docs/results/learned-<preset>``).

    .venv/bin/python docs/scripts/learned_twins.py --preset paper \
        --predictive runs/paper-pred --blind runs/paper-blind --out docs/results/learned-paper
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from agents.baselines import BASELINES
from agents.study import stats
from agents.study.evaluate import evaluate
from agents.study.store import write_text

TOPOLOGIES = ("erdos_renyi", "random_regular", "small_world", "scale_free")
#: The controls evaluated beside the two models.
CONTROLS = ("managed", "random", *BASELINES)
#: What is copied of a training run (the model, its settings and its periodic evaluations).
KEPT = (
    "model.zip", "model.json", "train.json", "obs_stats.npz", "evaluations.csv",
    "eval_controls.csv", "evaluation_curve.png",
)  # fmt: skip
PREDICTIVE, BLIND = "learned-predictive", "learned-blind"


def copy_model(run: Path, folder: Path) -> None:
    """The files of :data:`KEPT` that ``run`` has, into ``folder`` (a model needs the first 3)."""
    for name in KEPT[:3]:
        if not (run / name).is_file():
            raise ValueError(f"{run}: no {name}: allowed a finished `spep train` run folder")
    folder.mkdir(parents=True, exist_ok=True)
    for name in KEPT:
        if (run / name).is_file():
            shutil.copy2(run / name, folder / name)
    slim_zip(folder / "model.zip")


def slim_zip(path: Path) -> None:
    """Drop :data:`agents.rl.checkpoints.UNSAVED` from a zip's ``data`` (runs saved before they
    were left out carry every training env's last observation: 13 MB for 256 networks)."""
    from agents.rl.checkpoints import UNSAVED

    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    if not set(UNSAVED) & set(data):
        return
    members["data"] = json.dumps({k: v for k, v in data.items() if k not in UNSAVED}).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def check_twins(predictive: dict[str, Any], blind: dict[str, Any]) -> None:
    """Refuse two runs that differ in anything but the blind one's blanked demand inputs.

    Raises:
        ValueError: naming each setting that differs.
    """
    skip = {"timesteps", "resumed_from", "wall_time_s", "steps_per_s", "timing", "policy_kwargs"}
    diff = [
        k
        for k in predictive.keys() | blind.keys()
        if k not in skip and predictive.get(k) != blind.get(k)
    ]
    kw = [dict(m["policy_kwargs"]["features_extractor_kwargs"]) for m in (predictive, blind)]
    blank = kw[1].pop("blank", [])
    if (
        kw[0].pop("blank", [])
        or not blank
        or kw[0] != kw[1]
        or predictive["timesteps"] != blind["timesteps"]
    ):
        diff.append("policy_kwargs (allowed: the twin's blank list only) or timesteps")
    if diff:
        raise ValueError(f"the two runs are not twins: they differ in {', '.join(sorted(diff))}")


def comparisons(df: pd.DataFrame) -> pd.DataFrame:
    """``prediction.csv``: per topology, the predictive model - its twin, and each model - controls."""
    frames = []
    for _, group in df.groupby("topology", sort=False):
        present = set(group["agent"])
        best = stats.best_control(group, [b for b in BASELINES if b in present])
        pairs = [("prediction", PREDICTIVE, BLIND)]
        pairs += [
            ("control", a, c)
            for a in (PREDICTIVE, BLIND)
            for c in dict.fromkeys(("managed", "random", best))
            if c is not None
        ]
        for family, agent, base in pairs:
            if not {agent, base} <= present:
                continue
            tests = stats.compare(group, ["success_rate"], [agent], [base])
            tests.insert(1, "family", family)
            frames.append(tests)
    out = pd.concat(frames, ignore_index=True)
    return stats.add_holm(out, columns=("wilcoxon_p",), family=("family",))


def main(argv: list[str] | None = None) -> int:
    """Evaluate (or resume), then write prediction.csv and meta.json."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=("paper", "physical"), required=True)
    p.add_argument("--predictive", type=Path, required=True, help="the predictive model's run")
    p.add_argument("--blind", type=Path, required=True, help="its --demand-blind twin's run")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--slots", type=int, default=2000)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument(
        "--topologies", default=",".join(TOPOLOGIES), help="comma-separated (default: all four)"
    )
    args = p.parse_args(argv)
    import torch

    # the policies are small: with torch's default threads on a busy machine a step cost 6x more
    # CPU (measured: 2.0 against 0.32 s per 300 slots); the worker processes run one thread each
    torch.set_num_threads(1)
    out: Path = args.out
    models = {PREDICTIVE: out / "predictive", BLIND: out / "blind"}
    for folder, run in zip(models.values(), (args.predictive, args.blind), strict=True):
        if not (folder / "model.zip").is_file():
            copy_model(run, folder)
    trained = {k: json.loads((v / "model.json").read_text()) for k, v in models.items()}
    check_twins(trained[PREDICTIVE], trained[BLIND])
    csv = out / "results.csv"
    df = pd.read_csv(csv) if csv.is_file() else pd.DataFrame()
    start = time.perf_counter()
    topologies = [t.strip() for t in args.topologies.split(",") if t.strip()]
    for topology in topologies:
        if topology not in TOPOLOGIES:
            raise ValueError(f"--topologies {topology!r} is invalid: allowed of {TOPOLOGIES}")
        for agent in (PREDICTIVE, BLIND, *CONTROLS):
            if (
                not df.empty
                and ((df["agent"] == agent) & (df["topology"] == topology)).sum() == args.runs
            ):
                continue
            if agent in models:
                from agents import make

                who: Any = make("sb3", path=models[agent], label=agent)
            else:
                who = agent
            rows = evaluate(
                who, runs=args.runs, seed=0, jobs=args.jobs, config={"preset": args.preset},
                topology=topology, episode_slots=args.slots,
            )  # fmt: skip
            keep = (
                df[~((df["agent"] == agent) & (df["topology"] == topology))] if not df.empty else df
            )
            df = pd.concat([keep, rows], ignore_index=True)
            write_text(csv, df.to_csv(index=False))
            print(f"{topology} {agent}: {rows['success_rate'].mean():.3f}", file=sys.stderr)
    write_text(out / "prediction.csv", comparisons(df).to_csv(index=False))
    first = trained[PREDICTIVE]
    meta = {
        "preset": args.preset,
        "topology": first["config"]["topology"],
        "eval_seeds": [0, args.runs - 1],
        "slots": args.slots,
        "train_seeds": [first["seed"], first["seed"] + first["n_envs"] - 1],
        "agents": {PREDICTIVE: "predictive", BLIND: "blind"},
        "command": "python docs/scripts/learned_twins.py " + " ".join(argv or sys.argv[1:]),
        "evaluation_wall_s": round(time.perf_counter() - start, 1),
    }
    write_text(out / "meta.json", json.dumps(meta, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
