"""Periodic evaluation during ``spep train``: the policy on fixed seeds, beside the controls' levels.

Every ``eval_freq`` training steps (and once at the end) the policy as it is then runs one episode
on each evaluation seed (``SpepEnv`` under the training config, as the ``sb3`` agent runs it); the
rows go to ``DIR/evaluations.csv`` (``timesteps`` first, then :data:`agents.study.evaluate.COLUMNS`).
The controls (``random``, the best baseline on those seeds and ``managed``) run once on the same
seeds, into ``DIR/eval_controls.csv``. The evaluation seeds must be disjoint from the training
environments' seeds (env i starts from ``seed + i``).
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

from spep_gym.config import SpepConfig

#: The seeds ``--eval-seeds`` takes when not given.
EVAL_SEEDS = "1000-1004"


def parse_seeds(text: str) -> tuple[int, int]:
    """``"A-B"`` (seeds A to B, both included) or ``"A"``: ``(first seed, runs)``.

    Raises:
        ValueError: naming ``--eval-seeds``, the value and what is allowed.
    """
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
    if m is None or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
        raise ValueError(
            f"--eval-seeds {text!r} is invalid: allowed a seed range A-B with 0 <= A <= B "
            "(e.g. 1000-1004) or one seed"
        )
    first = int(m.group(1))
    return first, int(m.group(2) or first) - first + 1


def check_disjoint(eval_seeds: tuple[int, int], train_seeds: list[tuple[int, int]]) -> None:
    """Refuse evaluation seeds that overlap the training seeds (each a ``(first, count)`` range).

    Raises:
        ValueError: naming both ranges.
    """
    first, runs = eval_seeds
    for start, count in train_seeds:
        if first < start + count and start < first + runs:
            raise ValueError(
                f"--eval-seeds {first}-{first + runs - 1} is invalid: it overlaps the training "
                f"seeds {start}-{start + count - 1} (env i starts from seed + i): allowed seeds "
                "outside them"
            )


class PeriodicEvaluation:
    """Evaluates a training model every ``freq`` steps into ``out/evaluations.csv``.

    Args:
        out: the run folder.
        meta: the run's settings (``train.json``'s), saved beside the evaluated model.
        cfg: the training config; every evaluation runs under it.
        seeds: ``(first seed, runs)`` from :func:`parse_seeds`.
        freq: training steps between evaluations.
        done: the steps the run starts from (a resumed run keeps the rows up to them).
    """

    def __init__(
        self,
        out: Path,
        meta: dict[str, Any],
        cfg: SpepConfig,
        seeds: tuple[int, int],
        freq: int,
        done: int = 0,
    ) -> None:
        import pandas as pd

        self.out, self.meta, self.cfg, self.freq = out, meta, cfg, freq
        self.seed, self.runs = seeds
        self.csv = out / "evaluations.csv"
        self.rows = pd.read_csv(self.csv) if self.csv.is_file() else pd.DataFrame()
        if len(self.rows):
            self.rows = self.rows[self.rows["timesteps"] <= done]
        self.next_at = (done // freq + 1) * freq
        self.last = done if len(self.rows) else None
        self.seconds = 0.0

    def controls(self) -> None:
        """Evaluate the controls once on the evaluation seeds (kept when the file is there)."""
        import pandas as pd

        from agents.base import names
        from agents.baselines import BASELINES
        from agents.study.evaluate import evaluate, write_frame

        path = self.out / "eval_controls.csv"
        if path.is_file():
            return
        run: dict[str, Any] = {"runs": self.runs, "seed": self.seed, "jobs": 1, "config": self.cfg}
        baselines = [evaluate(name, **run) for name in BASELINES]
        best = max(baselines, key=lambda df: df["success_rate"].mean())
        frames = [evaluate("random", **run), best]
        if "managed" in names():
            frames.append(evaluate("managed", **run))
        write_frame(pd.concat(frames, ignore_index=True), path)

    def maybe(self, steps: int, model: Any, stats: Any, final: bool = False) -> None:
        """Evaluate ``model`` (with its statistics ``stats``) when ``steps`` reached the next point.

        ``final``: evaluate unless these steps were the last evaluated.
        """
        if steps < self.next_at and not (final and steps != self.last):
            return
        start = time.perf_counter()
        self._evaluate(steps, model, stats)
        self.seconds += time.perf_counter() - start
        self.next_at = (steps // self.freq + 1) * self.freq
        self.last = steps

    def _evaluate(self, steps: int, model: Any, stats: Any) -> None:
        import json

        import pandas as pd

        from agents.learned import SB3Agent
        from agents.rl.checkpoints import save_model, save_obs_stats
        from agents.study.evaluate import evaluate, write_frame

        with tempfile.TemporaryDirectory(dir=self.out, prefix=".eval-") as tmp:
            folder = Path(tmp)
            (folder / "model.json").write_text(json.dumps(self.meta))
            if stats is not None:
                save_obs_stats(stats, folder / "obs_stats.npz")
            save_model(model, folder / "model.zip")
            agent = SB3Agent(folder, label="learned", device=str(model.device))
        rows = evaluate(agent, runs=self.runs, seed=self.seed, jobs=1, config=self.cfg)
        rows.insert(0, "timesteps", steps)
        self.rows = pd.concat([self.rows, rows], ignore_index=True)
        write_frame(self.rows, self.csv)


def evaluation_callback(evaluator: PeriodicEvaluation, timing: dict[str, float]) -> Any:
    """An SB3 callback that runs ``evaluator`` after each step; its seconds go to ``eval_s``."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Evaluation(BaseCallback):
        """Evaluates the model every ``freq`` steps and at the end of training."""

        def _run(self, final: bool) -> None:
            before = evaluator.seconds
            evaluator.maybe(
                self.model.num_timesteps, self.model, self.model.get_vec_normalize_env(), final
            )
            timing["eval_s"] = timing.get("eval_s", 0.0) + evaluator.seconds - before

        def _on_step(self) -> bool:
            self._run(final=False)
            return True

        def _on_training_end(self) -> None:
            self._run(final=True)

    return Evaluation()
