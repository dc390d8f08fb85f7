"""Running agents on episodes: one run (``run_episode``) is the unit every experiment is made of.

``evaluate`` runs many (in parallel processes) into a DataFrame; ``prediction_quality_table`` scores
the demand predictors on the same workload; ``add_cli`` adds ``spep evaluate`` and ``spep quality``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.base import Agent, make
from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv

if TYPE_CHECKING:
    import pandas as pd

# Columns every result row has (the CSV of ``spep evaluate`` and ``spep reproduce``), in order.
COLUMNS = (
    "agent", "topology", "seed", "slots", "success_rate", "avg_latency", "avg_fidelity",
    "utilization", "arrived", "served", "failed", "pending", "pairs_generated",
    "prepositions_placed", "prepositions_used",
)  # fmt: skip


def agent_config(
    agent: Agent,
    config: Mapping[str, Any] | SpepConfig | None,
    base: SpepConfig | None = None,
) -> SpepConfig:
    """The config a run of ``agent`` uses: the user's fields plus the agent's own settings.

    A user field (in a mapping) that contradicts a setting the agent is defined by (e.g.
    ``routing`` for a baseline) is an error rather than silently overridden; a whole
    ``SpepConfig`` gets the agent's settings applied. A mapping applies over ``base`` (default: the
    paper preset).
    """
    if isinstance(config, SpepConfig):
        base, fields = config, {}
    else:
        base, fields = base or SpepConfig(), dict(config or {})
    for key, value in agent.env_config.items():
        if key in fields and fields[key] != value:
            raise ValueError(
                f"config field {key!r} = {fields[key]!r} contradicts agent {agent.name!r}, which is "
                f"defined with {key}={value!r}"
            )
    return SpepConfig.from_dict({**fields, **agent.env_config}, base=base)


def run_episode(
    agent: Agent | str,
    seed: int,
    config: Mapping[str, Any] | SpepConfig | None = None,
    return_records: bool = False,
) -> dict[str, Any]:
    """Run one episode of ``agent`` from ``seed``; return its result row (section-6 metrics).

    The row holds :data:`COLUMNS` first, then every other counter and rate of
    :meth:`spep_gym.metrics.Metrics.summary` and the wall time. With ``return_records`` the
    per-request records come along under ``"records"``.
    """
    if isinstance(agent, str):
        agent = make(agent)
    cfg = agent_config(agent, config)
    env = SpepEnv(cfg)
    start = time.perf_counter()
    obs, info = env.reset(seed=seed)
    agent.reset(seed=seed, env=env)
    truncated = False
    while not truncated:
        action = agent.act(obs, info)
        obs, _, _, truncated, info = env.step(action)
    wall = time.perf_counter() - start
    metrics = info["episode_metrics"]
    row: dict[str, Any] = {
        "agent": agent.name,
        "topology": cfg.topology_name,
        "seed": seed,
        "slots": cfg.episode_slots,
    }
    row.update({k: metrics[k] for k in COLUMNS if k in metrics})
    row.update({k: v for k, v in metrics.items() if k not in row})
    row["wall_time_s"] = wall
    if return_records:
        row["records"] = env.sim.request_records()
    return row


# ---------------------------------------------------------------------- many runs


def _run(agent: Agent | str, seed: int, cfg: SpepConfig) -> dict[str, Any]:
    """One run in a worker process (module level, so ``spawn`` can pickle it)."""
    return run_episode(agent, seed, cfg)


def evaluate(
    agent: Agent | str,
    runs: int = 20,
    seed: int = 0,
    jobs: int | None = None,
    progress: bool = False,
    config: Mapping[str, Any] | SpepConfig | None = None,
    out: str | None = None,
    callback: Callable[[pd.DataFrame], None] | None = None,
    **fields: Any,
) -> pd.DataFrame:
    """Evaluate ``agent`` over ``runs`` episodes; run ``i`` uses seed ``seed + i``.

    Args:
        agent: an :class:`~agents.base.Agent` or a registered name (``agents.names()``).
        runs: number of episodes.
        seed: seed of the first run.
        jobs: worker processes (``spawn``, one BLAS / OpenMP thread each); None:
            ``os.cpu_count()``; 1: in this process.
        progress: show a tqdm progress bar.
        config: a base config (or mapping of fields) under ``fields``.
        out: a CSV path rewritten after every finished run, so an interrupted evaluation keeps
            what finished.
        callback: called with the rows so far (a DataFrame) after every finished run.
        **fields: any config field, e.g. ``topology="small_world"``, ``episode_slots=500`` or a
            ``networkx`` graph as ``topology``.

    Returns:
        One row per run, in seed order: :data:`COLUMNS` first, then the other counters and rates of
        :meth:`spep_gym.metrics.Metrics.summary` and ``wall_time_s``.
    """
    import pandas as pd

    for name, value, low in (("runs", runs, 1), ("jobs", jobs, 1)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < low
        ):
            raise ValueError(f"{name} = {value!r} is invalid: allowed an integer >= {low}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed = {seed!r} is invalid: allowed an integer >= 0")
    if isinstance(agent, str):
        agent = make(agent)
    # validates before any process starts
    if isinstance(config, SpepConfig):
        cfg = agent_config(agent, fields, base=config)
    else:
        cfg = agent_config(agent, {**dict(config or {}), **fields})
    seeds = [seed + i for i in range(runs)]
    workers = min(jobs or os.cpu_count() or 1, runs)
    rows: dict[int, dict[str, Any]] = {}

    def frame() -> pd.DataFrame:
        done = [  # None (a rate undefined in a run, e.g. nothing served) becomes NaN
            {k: np.nan if v is None else v for k, v in rows[s].items()} for s in seeds if s in rows
        ]
        df = pd.DataFrame(done)
        if done:
            df = df[list(COLUMNS) + [c for c in df.columns if c not in COLUMNS]]
        return df

    bar = _progress(runs, f"{agent.name}", progress)

    def finished() -> None:
        if bar is not None:
            bar.update(1)
        if out is not None or callback is not None:
            df = frame()
            if out is not None:
                df.to_csv(out, index=False)
            if callback is not None:
                callback(df)

    try:
        if workers == 1:
            for s in seeds:
                rows[s] = run_episode(agent, s, cfg)
                finished()
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            ctx = multiprocessing.get_context("spawn")
            with single_threaded_workers(), ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                futures = {pool.submit(_run, agent, s, cfg): s for s in seeds}
                try:
                    for fut in as_completed(futures):
                        rows[futures[fut]] = fut.result()
                        finished()
                except BaseException:  # interrupted or a run failed: start no further run
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        if bar is not None:
            bar.close()
    return frame()


#: Thread-count variables of the BLAS / OpenMP libraries, read once when a process loads them.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def single_threaded_workers() -> Iterator[None]:
    """Start worker processes with one BLAS / OpenMP thread each (where the user set no count).

    The workers already use every core; a multithreaded BLAS in each of them only fights for the
    cores, and the small matrices of the ARIMA fits run about 8x slower on two threads than on one.
    """
    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    for k, v in saved.items():
        if v is None:
            os.environ[k] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="run")


# ---------------------------------------------------------------------- prediction quality


def workload_arrivals(seed: int, config: SpepConfig) -> np.ndarray:
    """``(N, 2)`` rows ``(arrival slot, unordered pair index)`` of the workload the env draws for
    ``seed``: exactly the requests every agent meets in that run."""
    from spep_gym.simulator import Simulator

    sim = Simulator(config)
    sim.reset(seed)
    w = sim.workload
    return np.column_stack([w.arrival, w.pair]).astype(np.int64)


def prediction_quality_table(
    seed: int = 0,
    runs: int = 1,
    predictors: Sequence[str] = ("frequency", "lstm", "arima"),
    top_k: int | None = None,
    progress: bool = False,
    config: Mapping[str, Any] | SpepConfig | None = None,
    **fields: Any,
) -> pd.DataFrame:
    """Score each predictor on the environment's own workload of seeds ``seed .. seed+runs-1``.

    Every predictor sees the same requests (those the SPEP agents meet), with the settings the
    registered ``spep-<name>`` agents use (:data:`agents.spep.PREDICTOR_DEFAULTS`), and is scored
    by :func:`agents.predictors.quality.prediction_quality` against the true future: mean absolute
    error, Brier score, precision of its top-``top_k`` pairs (default ``max_prepositioned``), the
    same for a constant predictor, and its wall time.

    Returns:
        One row per (predictor, seed).
    """
    import pandas as pd

    from agents.predictors import make_predictor, prediction_quality
    from agents.spep import PREDICTOR_DEFAULTS

    if isinstance(config, SpepConfig):
        cfg = config.replace(**fields)
    else:
        cfg = SpepConfig.from_dict({**dict(config or {}), **fields})
    for name in predictors:
        if name not in PREDICTOR_DEFAULTS:
            raise ValueError(
                f"predictor {name!r} is unknown: allowed {', '.join(PREDICTOR_DEFAULTS)}"
            )
    k = cfg.max_prepositioned if top_k is None else top_k
    rows = []
    bar = _progress(runs * len(predictors), "quality", progress)
    for s in range(seed, seed + runs):
        arrivals = workload_arrivals(s, cfg)
        for name in predictors:
            predictor = make_predictor(name, **PREDICTOR_DEFAULTS[name])
            q = prediction_quality(
                predictor,
                arrivals,
                num_nodes=cfg.n,
                slots=cfg.episode_slots,
                slots_per_day=cfg.slots_per_day,
                prediction_window=cfg.prediction_window,
                top_k=k,
                seed=s,
            )
            rows.append({"predictor": name, "topology": cfg.topology_name, "seed": s, **q})
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- command line


def add_cli(subparsers: Any) -> None:
    """``spep evaluate`` and ``spep quality``."""
    from agents.cli import add_common

    p = subparsers.add_parser(
        "evaluate",
        help="evaluate agents over runs; one CSV row per run",
        description="Run each agent over --runs episodes (run i uses seed --seed + i) and write "
        "one row per run to --out (rewritten as runs finish).",
    )
    p.add_argument("--agent", required=True, help="agent name, or a comma list (spep agents)")
    p.add_argument("--topology", default=None, help="topology name (default: the config's)")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--slots", type=int, default=None, help="episode_slots (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="CSV file of the rows")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all CPUs)")
    p.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="agent keyword argument (repeatable), e.g. --param threshold=0.1",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_common(p)
    p.set_defaults(func=_cmd_evaluate)

    q = subparsers.add_parser(
        "quality",
        help="prediction quality of each predictor on the env's workload",
        description="Score the demand predictors on the requests the environment draws for each "
        "seed (the requests the SPEP agents meet).",
    )
    q.add_argument("--predictors", default="frequency,lstm,arima", help="comma list")
    q.add_argument("--topology", default=None)
    q.add_argument("--runs", type=int, default=1)
    q.add_argument("--slots", type=int, default=None)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--top-k", type=int, default=None, help="default: max_prepositioned")
    q.add_argument("--out", default=None, help="CSV file of the rows")
    add_common(q)
    q.set_defaults(func=_cmd_quality)


def _cli_fields(args: Any) -> dict[str, Any]:
    from agents.cli import parse_overrides

    fields = parse_overrides(args.overrides)
    if args.topology is not None:
        fields["topology"] = args.topology
    if args.slots is not None:
        fields["episode_slots"] = args.slots
    return fields


def _parse_params(items: Sequence[str]) -> dict[str, Any]:
    from agents.cli import parse_literals

    return parse_literals(items, "--param")


def _cmd_evaluate(args: Any) -> int:
    import pandas as pd

    fields = _cli_fields(args)
    params = _parse_params(args.params)
    names = [a.strip() for a in args.agent.split(",") if a.strip()]
    agents_ = []
    for name in names:
        try:
            agents_.append(make(name, **params))
        except TypeError as err:
            raise ValueError(f"agent {name!r}: bad --param: {err}") from None
    for a in agents_:  # every config problem shows before the first run
        agent_config(a, fields)
    frames: list[pd.DataFrame] = []

    def save(current: pd.DataFrame) -> None:  # keep finished runs of every agent so far
        if args.out:
            pd.concat([*frames, current], ignore_index=True).to_csv(args.out, index=False)

    for a in agents_:
        frames.append(
            evaluate(
                a, runs=args.runs, seed=args.seed, jobs=args.jobs,
                progress=not args.no_progress, callback=save, **fields,
            )
        )  # fmt: skip
    df = pd.concat(frames, ignore_index=True)
    print(summary_table(df).to_string())
    if args.out:
        print(f"wrote {len(df)} rows to {args.out}")
    return 0


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean of the headline metrics per agent (the figures ``spep evaluate`` prints)."""
    cols = ["success_rate", "avg_latency", "avg_fidelity", "utilization", "served", "failed"]
    if "wall_time_s" in df:
        cols.append("wall_time_s")
    out = df.groupby("agent", sort=False)[cols].mean(numeric_only=True)
    out.insert(0, "runs", df.groupby("agent", sort=False).size())
    return out.round(4)


def _cmd_quality(args: Any) -> int:
    fields = _cli_fields(args)
    predictors = [p.strip() for p in args.predictors.split(",") if p.strip()]
    df = prediction_quality_table(
        seed=args.seed, runs=args.runs, predictors=predictors, top_k=args.top_k, **fields
    )
    cols = ["mae", "mae_constant", "brier", "brier_constant", "precision_at_k", "wall_s"]
    print(df.groupby("predictor", sort=False)[cols].mean().round(4).to_string())
    if args.out:
        df.to_csv(args.out, index=False)
        print(f"wrote {len(df)} rows to {args.out}")
    return 0


class _CallableModule(types.ModuleType):
    """Lets the module itself be called: ``agents.evaluate(agent, runs=...)`` is :func:`evaluate`,
    while ``agents.evaluate.run_episode`` and ``import agents.evaluate as m`` keep reaching the
    module (a function exported under the same name would shadow it)."""

    def __call__(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
