"""Training curves of ``spep train`` runs, drawn from their Monitor CSVs."""

from __future__ import annotations

import json
from pathlib import Path


def plot_training_curve(
    out: str | Path | list[str | Path], png: str | Path, window: int = 20
) -> None:
    """Training curve(s) from the Monitor CSVs: episode success rate and return against timesteps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    runs = out if isinstance(out, list) else [out]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for run in runs:
        files = sorted(Path(run, "monitor").rglob("*.monitor.csv"))
        if not files:
            raise ValueError(f"no Monitor CSVs in {Path(run, 'monitor')}")
        parts = []
        for f in files:  # absolute end time of each episode orders runs and their resumptions
            with open(f) as fh:
                t_start = json.loads(fh.readline().lstrip("#"))["t_start"]
            part = pd.read_csv(f, skiprows=1)
            part["end"] = part["t"] + t_start
            parts.append(part)
        df = pd.concat(parts).sort_values("end")
        df["timesteps"] = df["l"].cumsum()
        label = json.loads(Path(run, "train.json").read_text())["algo"]
        for ax, col in zip(axes, ("success_rate", "r"), strict=True):
            ax.plot(
                df["timesteps"],
                df[col].rolling(window, min_periods=min(window, len(df))).mean(),
                label=label,
            )
    axes[0].set_ylabel(f"success rate (mean of {window} episodes)")
    axes[1].set_ylabel("training return (with shaping)")
    for ax in axes:
        ax.set_xlabel("training timesteps (slots)")
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:.0f}k")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def plot_evaluation(out: str | Path, png: str | Path) -> None:
    """The periodic evaluation of a run (``evaluations.csv``) against the controls' levels.

    The policy's mean success rate on the evaluation seeds, with its 95 % CI, against training
    timesteps; each control of ``eval_controls.csv`` is a horizontal line at its mean on the same
    seeds.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from agents.study.stats import summarize

    rows = pd.read_csv(Path(out, "evaluations.csv"))
    levels = pd.read_csv(Path(out, "eval_controls.csv"))
    curve = summarize(rows, ["success_rate"], by=("timesteps",)).sort_values("timesteps")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(curve["timesteps"], curve["mean"], marker="o", label="learned policy")
    band = curve[["ci_low", "ci_high"]].clip(0, 1)  # a rate: few seeds give a wide t interval
    ax.fill_between(curve["timesteps"], band["ci_low"], band["ci_high"], alpha=0.25)
    for i, (agent, df) in enumerate(levels.groupby("agent", sort=False)):
        ax.axhline(df["success_rate"].mean(), color=f"C{i + 1}", linestyle="--", label=agent)
    seeds = sorted(rows["seed"].unique())
    ax.set_title(f"evaluation on seeds {seeds[0]}-{seeds[-1]} (mean, 95 % CI)", fontsize=9)
    ax.set_ylabel("success rate")
    ax.set_xlabel("training timesteps (slots)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
