"""Running agents on episodes: one run (``run_episode``) is the unit every experiment is made of.

``evaluate`` runs many of them (in worker processes, through :mod:`agents.study.backends`, or as
one batch with the batched engine, :mod:`agents.study.engine`) into a DataFrame of one row per run.
Both are re-exported as ``agents.run_episode`` and ``agents.evaluate``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.base import Agent, agent_config, check_inputs, make
from agents.study import backends
from agents.study.episode import result_row, run_episode
from agents.study.store import COLUMNS
from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv
from spep_gym.wrappers import BlankObservation

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COLUMNS",
    "agent_config",
    "evaluate",
    "progress_bar",
    "result_row",
    "run_episode",
    "summary_table",
    "write_frame",
]


# ---------------------------------------------------------------------- many runs


def _run(agent: Agent | str, cfg: SpepConfig, blank: tuple[str, ...], seed: int) -> dict[str, Any]:
    """One run of :func:`evaluate` (module level, so that worker processes can unpickle it)."""
    return run_episode(agent, seed, cfg, blank=blank)


def evaluate(
    agent: Agent | str,
    runs: int = 20,
    seed: int = 0,
    jobs: int | None = None,
    progress: bool = False,
    config: Mapping[str, Any] | SpepConfig | None = None,
    out: str | None = None,
    callback: Callable[[pd.DataFrame], None] | None = None,
    engine: str = "scalar",
    draws: str | None = None,
    device: str = "cpu",
    blank: Sequence[str] = (),
    **fields: Any,
) -> pd.DataFrame:
    """Evaluate ``agent`` over ``runs`` episodes; run ``i`` uses seed ``seed + i``.

    Args:
        agent: an :class:`~agents.base.Agent` or a registered name (``agents.names()``).
        runs: number of episodes.
        seed: seed of the first run.
        jobs: worker processes (:func:`agents.study.backends.run_processes`: one BLAS / OpenMP
            thread each); None: ``os.cpu_count()``; 1: in this process. The batched engine runs
            its one batch in this process.
        progress: show a tqdm progress bar.
        config: a base config (or mapping of fields) under ``fields``.
        out: a CSV path rewritten (atomically) after every finished run, so an interrupted
            evaluation keeps what finished (checked writable before the first run).
        callback: called with the rows so far (a DataFrame) after every finished run.
        engine: ``"scalar"`` (one ``SpepEnv`` per run), ``"batched"``: the runs stepped together
            as one batch of networks, network i from seed ``seed + i``
            (:func:`agents.study.engine.run_batch`; the agents of :data:`agents.batched.BATCHED_AGENTS`),
            or ``"compiled"``: each run one compiled call, in this process
            (:func:`agents.study.compiled.iter_compiled`: the scalar rows exactly; an agent it does not
            compile runs as with ``"scalar"``).
        draws: the batched engine's random draws: ``"counter"`` (default; its own streams, within
            noise of the scalar runs) or ``"scalar"`` (the scalar streams: the scalar rows exactly).
        device: the batched engine's torch device (``"cpu"``, ``"cuda"``).
        blank: observation keys zeroed before the agent sees them (:func:`run_episode`; the scalar
            engine only).
        **fields: any config field, e.g. ``topology="small_world"``, ``episode_slots=500`` or a
            ``networkx`` graph as ``topology``.

    Returns:
        One row per run, in seed order: :data:`COLUMNS` first, then the other counters and rates of
        :meth:`spep_gym.metrics.Metrics.summary` and ``wall_time_s``.

    Raises:
        ValueError: a bad argument, config field, ``out``, engine or draws, or an agent without a
            batched form for the batched engine, before any run starts.
        agents.study.backends.RunFailed: a run raised (a bug: its traceback is in the message).
    """
    import pandas as pd

    for name, value, low in (("runs", runs, 1), ("jobs", jobs, 1)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < low
        ):
            raise ValueError(f"{name} = {value!r} is invalid: allowed an integer >= {low}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed = {seed!r} is invalid: allowed an integer >= 0")
    from agents.study.engine import check_engine

    draws = check_engine(engine, draws)
    if out is not None:
        from agents.study.store import check_output_file

        check_output_file(Path(out), "out =")
    if isinstance(agent, str):
        agent = make(agent)
    if engine == "batched":
        from agents.batched import batched_agent

        batched_agent(agent)  # an agent without a batched form fails here, before any run
    # validates before any process starts
    if isinstance(config, SpepConfig):
        cfg = agent_config(agent, fields, base=config)
    else:
        cfg = agent_config(agent, {**dict(config or {}), **fields})
    check_inputs(cfg)
    if blank:
        if engine != "scalar":
            raise ValueError(
                f"blank = {','.join(blank)!r} is invalid with engine={engine!r}: allowed with the "
                f"scalar engine (the {engine} agents read the core's state, not an observation)"
            )
        BlankObservation(SpepEnv(cfg), tuple(blank))  # an unknown key: one line, before any run
    seeds = [seed + i for i in range(runs)]
    rows: dict[int, dict[str, Any]] = {}

    def frame() -> pd.DataFrame:
        done = [  # None (a rate undefined in a run, e.g. nothing served) becomes NaN
            {k: np.nan if v is None else v for k, v in rows[s].items()} for s in seeds if s in rows
        ]
        df = pd.DataFrame(done)
        if done:
            df = df[list(COLUMNS) + [c for c in df.columns if c not in COLUMNS]]
        return df

    bar = progress_bar(runs, agent.name, progress)

    def finished(run_seed: int, row: dict[str, Any]) -> None:
        rows[run_seed] = row
        if bar is not None:
            bar.update(1)
        if out is not None or callback is not None:
            df = frame()
            if out is not None:
                write_frame(df, out)
            if callback is not None:
                callback(df)

    from agents.study.compiled import covers as compiled_covers

    try:
        if engine == "batched":
            from agents.study.engine import run_batch

            assert draws is not None
            for run_seed, row in zip(
                seeds, run_batch(agent, seeds, cfg, draws, device), strict=True
            ):
                finished(run_seed, row)
        elif engine == "compiled" and compiled_covers(agent, cfg):
            from agents.study.compiled import iter_compiled

            # one compiled call per run, in this process
            for run_seed, row in zip(seeds, iter_compiled(agent, seeds, cfg), strict=True):
                finished(run_seed, row)
        else:
            backends.run(
                functools.partial(_run, agent, cfg, tuple(blank)),
                seeds,
                finished,
                backends.raise_run_failed,
                jobs,
            )
    finally:
        if bar is not None:
            bar.close()
    return frame()


def write_frame(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` to CSV atomically (:func:`agents.study.store.write_text`).

    An interrupt while the file is written (Ctrl-C, SIGTERM) leaves the previous file whole; a
    write the system refuses (a full disk) raises ``ValueError``, one line naming the file.
    """
    from agents.study.store import write_errors, write_text

    path = Path(path)
    with write_errors(path.parent):
        write_text(path, df.to_csv(index=False))


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm progress bar of ``total`` runs, or None when not ``enabled``."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="run")


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """The headline metrics per agent as ``spep evaluate`` prints them: mean and 95 % CI over runs.

    One row per (agent, metric): ``agent, metric, n, mean, ci_low, ci_high``
    (:func:`agents.study.stats.summarize`: Student-t interval; ``n`` counts the runs where the
    metric is defined, e.g. ``avg_latency`` is undefined in a run that served nothing).
    """
    from agents.study import stats

    cols = ["success_rate", "avg_latency", "avg_fidelity", "utilization", "served", "failed"]
    if "wall_time_s" in df:
        cols.append("wall_time_s")
    out = stats.summarize(df, cols, by=("agent",))
    return out[["agent", "metric", "n", "mean", "ci_low", "ci_high"]].round(4)
