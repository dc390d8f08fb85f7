"""``spep reproduce``: the paper's experiment (SPEC section 7), resumable and parallel.

An experiment is a list of :class:`Task` (topology, agent, seed, slots, config overrides); each runs
one :func:`agents.evaluate.run_episode` and is written at once, atomically, to
``DIR/runs/<topology>__<agent>__<seed>__<hash>.json`` (``hash``: slots and config overrides). Running
the same command again skips the runs already on disk, so an interrupt or a crash loses at most the
runs in flight. ``results.csv``, the statistics, the figures and ``report.md`` are always rebuilt from
the run files.

Layout of ``DIR``::

    runs/*.json          one file per finished run (key, result row, served latencies/fidelities)
    results.csv          the main study: one row per run, the columns of ``spep evaluate``
    sensitivity.csv      the sensitivity study (``variant`` first, then the same columns)
    summary.csv          mean and 95 % CI of every metric per topology and agent
    tests.csv            Mann-Whitney U and paired Wilcoxon tests, SPEP agents vs baselines
    figures/*.png        figures 3-9 of the paper, utilization, sensitivity
    meta.json            the command, the config and the wall time
    report.md            everything above, beside the paper's numbers
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spep_gym.config import TOPOLOGIES, SpepConfig

#: The paper's agents (spec section 7) and the oracle as an upper bound.
PAPER_AGENTS = (
    "reactive", "shortest", "highest_fidelity",
    "spep-frequency", "spep-lstm", "spep-arima", "spep-oracle",
)  # fmt: skip
BASELINES = ("reactive", "shortest", "highest_fidelity")
#: Slow agents start first, so that the last minutes are not one long run on one core.
SLOW_AGENTS = ("spep-arima", "spep-lstm")

#: The sensitivity study: one factor at a time from the paper preset, on Erdős–Rényi.
SENSITIVITY_TOPOLOGY = "erdos_renyi"
SENSITIVITY_AGENTS = ("shortest", "spep-frequency", "spep-oracle")
SENSITIVITY_VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("paper preset", {}),
    ("link_capacity=2", {"link_capacity": 2}),
    ("arrival_rate=0.5", {"arrival_rate": 0.5}),
    ("arrival_rate=1.0", {"arrival_rate": 1.0}),
    ("preposition_rho=1.0", {"preposition_rho": 1.0}),
    ("swap_model=werner", {"swap_model": "werner"}),
)

RUN_FILE_VERSION = 1
MAIN, SENSITIVITY = "main", "sensitivity"


@dataclass(frozen=True)
class Task:
    """One run: an agent on one topology from one seed, with config overrides."""

    topology: str
    agent: str
    seed: int
    slots: int
    overrides: tuple[tuple[str, Any], ...] = ()  # sorted (field, value), topology/slots excluded
    study: str = MAIN
    variant: str = ""  # the sensitivity variant's label

    def config(self) -> dict[str, Any]:
        return {**dict(self.overrides), "topology": self.topology, "episode_slots": self.slots}

    @property
    def config_hash(self) -> str:
        """Hash of slots and overrides: a run file is reused only for the same config."""
        text = json.dumps({"slots": self.slots, "overrides": self.overrides}, default=repr)
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    @property
    def key(self) -> dict[str, Any]:
        return {
            "topology": self.topology,
            "agent": self.agent,
            "seed": self.seed,
            "slots": self.slots,
            "overrides": dict(self.overrides),
            "config_hash": self.config_hash,
        }

    @property
    def filename(self) -> str:
        return f"{self.topology}__{self.agent}__{self.seed}__{self.config_hash}.json"


def _json_key(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, default=repr)


# One run ---------------------------------------------------------------------------------------
def run_task(task: Task) -> dict[str, Any]:
    """Run one task; return the payload of its run file.

    Besides the result row, the file keeps the latency (slots) and fidelity of every served request,
    compact (ints and 4-digit floats), for the distribution figures.
    """
    import agents  # noqa: F401  (registers the agents in a fresh worker process)
    from agents.evaluate import run_episode
    from spep_gym.metrics import SERVED

    row = run_episode(task.agent, task.seed, task.config(), return_records=True)
    records = row.pop("records")
    served = records["status"] == SERVED
    latency = records["end_slot"][served] - records["arrival"][served]
    fidelity = np.round(records["fidelity"][served], 4)
    return {
        "version": RUN_FILE_VERSION,
        "key": json.loads(_json_key(task.key)),
        "row": row,
        "served_latency": latency.astype(int).tolist(),
        "served_fidelity": fidelity.tolist(),
    }


def write_run(runs_dir: Path, task: Task, payload: dict[str, Any]) -> Path:
    """Write a run file atomically: a temp file in the same folder, fsync, ``os.replace``."""
    path = runs_dir / task.filename
    fd, tmp = tempfile.mkstemp(dir=runs_dir, prefix=task.filename + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_runs(runs_dir: Path, tasks: Iterable[Task]) -> dict[Task, dict[str, Any]]:
    """The finished runs among ``tasks``: run files that parse and carry the task's key.

    Temp files (``*.tmp``, left by a crash mid-write) are never read. A file that does not parse
    is skipped with a warning, and its run is done again.
    """
    done: dict[Task, dict[str, Any]] = {}
    for task in tasks:
        path = runs_dir / task.filename
        if not path.exists():
            continue
        try:
            payload = json.loads(path.read_text())
            ok = _json_key(payload["key"]) == _json_key(json.loads(_json_key(task.key)))
            ok = ok and isinstance(payload["row"], dict)
        except (OSError, ValueError, KeyError, TypeError) as err:
            warnings.warn(
                f"skipping unreadable run file {path} ({err}); it will be rerun", stacklevel=2
            )
            continue
        if ok:
            done[task] = payload
    return done


def remove_temp_files(runs_dir: Path) -> int:
    """Delete temp files left by a crash mid-write (never read as results)."""
    stale = list(runs_dir.glob("*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


# Planning --------------------------------------------------------------------------------------
def plan(
    agents: Sequence[str],
    topologies: Sequence[str],
    runs: int,
    slots: int,
    seed: int,
    overrides: dict[str, Any],
    main: bool = True,
    sensitivity: bool = True,
) -> list[Task]:
    """All tasks of an experiment. Run ``i`` uses seed ``seed + i`` for every agent (common random
    numbers). The sensitivity's preset variant is the main study's Erdős–Rényi runs (same key)."""
    tasks: list[Task] = []
    overrides = {k: _freeze(v) for k, v in overrides.items()}
    base = tuple(sorted(overrides.items()))
    seeds = range(seed, seed + runs)
    if main:
        tasks += [Task(t, a, s, slots, base) for t in topologies for a in agents for s in seeds]
    if sensitivity:
        for label, factors in SENSITIVITY_VARIANTS:
            fields = tuple(sorted({**overrides, **factors}.items()))
            tasks += [
                Task(SENSITIVITY_TOPOLOGY, a, s, slots, fields, SENSITIVITY, label)
                for a in SENSITIVITY_AGENTS
                for s in seeds
            ]
    return tasks


def _freeze(value: Any) -> Any:
    """Lists (from ``--set``) to tuples, so that tasks hash."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def schedule(tasks: Iterable[Task]) -> list[Task]:
    """Unique runs, slow agents first (then in plan order)."""
    unique = dict.fromkeys(dataclasses.replace(t, study=MAIN, variant="") for t in tasks)
    rank = {a: i for i, a in enumerate(SLOW_AGENTS)}
    return sorted(unique, key=lambda t: rank.get(t.agent, len(rank)))


def validate(
    agents: Sequence[str], topologies: Sequence[str], slots: int, overrides: dict[str, Any]
) -> None:
    """Fail before any run starts: unknown agents or topologies, bad config fields."""
    import agents as registry
    from agents.evaluate import agent_config

    for name in ("topology", "episode_slots"):
        if name in overrides:
            option = "--topologies" if name == "topology" else "--slots"
            raise ValueError(f"--set {name}=...: use {option} to choose {name!r}")
    known = registry.names()
    unknown = [a for a in agents if a not in known]
    if unknown:
        raise ValueError(
            f"unknown agent(s) {', '.join(map(repr, unknown))}; registered: {', '.join(known)}"
        )
    bad = [t for t in topologies if t not in TOPOLOGIES]
    if bad:
        raise ValueError(
            f"unknown topology {', '.join(map(repr, bad))}; allowed: {', '.join(TOPOLOGIES)}"
        )
    for topology in topologies:
        cfg = {**overrides, "topology": topology, "episode_slots": slots}
        for name in agents:
            agent_config(registry.make(name), cfg)


# Execution -------------------------------------------------------------------------------------
Done = Callable[[Task, dict[str, Any]], None]


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the driver, which cancels the work and stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_serial(tasks: Sequence[Task], on_done: Done, on_error: Done) -> None:
    for task in tasks:
        try:
            payload = run_task(task)
        except Exception:
            on_error(task, {"error": traceback.format_exc()})
            continue
        on_done(task, payload)


def _run_processes(tasks: Sequence[Task], jobs: int, on_done: Done, on_error: Done) -> None:
    from agents.evaluate import single_threaded_workers

    # One BLAS/OpenMP thread per worker: the workers already fill the cores.
    with single_threaded_workers():
        _run_pool(tasks, jobs, on_done, on_error)


def _run_pool(tasks: Sequence[Task], jobs: int, on_done: Done, on_error: Done) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(jobs, mp.get_context(method), initializer=_ignore_sigint)
    try:
        futures = {pool.submit(run_task, t): t for t in tasks}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                task = futures[future]
                try:
                    payload = future.result()
                except Exception:
                    on_error(task, {"error": traceback.format_exc()})
                    continue
                on_done(task, payload)
    except BaseException:
        # Interrupt: cancel what has not started and stop the runs in flight (they are lost).
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        raise
    pool.shutdown()


def _run_ray(
    tasks: Sequence[Task], jobs: int, address: str | None, on_done: Done, on_error: Done
) -> None:
    import ray

    started = not ray.is_initialized()
    if started and address:
        ray.init(address=address, log_to_driver=False)
    elif started:
        ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(run_task)
    refs = {remote.remote(t): t for t in tasks}
    try:
        while refs:
            finished, _ = ray.wait(list(refs), num_returns=1)
            for ref in finished:
                task = refs.pop(ref)
                try:
                    payload = ray.get(ref)
                except Exception:
                    on_error(task, {"error": traceback.format_exc()})
                    continue
                on_done(task, payload)
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


def execute(
    tasks: Sequence[Task],
    runs_dir: Path,
    jobs: int = 1,
    backend: str = "local",
    address: str | None = None,
    progress: bool = True,
    done_before: dict[Task, dict[str, Any]] | None = None,
) -> tuple[dict[Task, dict[str, Any]], dict[Task, str]]:
    """Run ``tasks``, writing each run file as soon as it finishes; return (payloads, errors).

    A ``KeyboardInterrupt`` propagates after the finished runs are on disk.
    """
    from tqdm import tqdm

    results: dict[Task, dict[str, Any]] = {}
    errors: dict[Task, str] = {}
    rates: dict[str, list[float]] = {}
    for task, payload in (done_before or {}).items():
        if payload["row"].get("success_rate") is not None:
            rates.setdefault(task.agent, []).append(payload["row"]["success_rate"])
    total = len(tasks) + len(done_before or {})
    bar = tqdm(
        total=total, initial=total - len(tasks), unit="run", disable=not progress, file=sys.stderr
    )

    def on_done(task: Task, payload: dict[str, Any]) -> None:
        write_run(runs_dir, task, payload)
        results[task] = payload
        rate = payload["row"].get("success_rate")
        if rate is not None:
            rates.setdefault(task.agent, []).append(rate)
        bar.set_postfix({a: f"{np.mean(v):.3f}" for a, v in sorted(rates.items())}, refresh=False)
        bar.update()

    def on_error(task: Task, info: dict[str, Any]) -> None:
        errors[task] = info["error"]
        bar.write(f"run {task.filename} failed:\n{info['error']}", file=sys.stderr)

    try:
        if backend == "ray":
            _run_ray(tasks, jobs, address, on_done, on_error)
        elif jobs == 1 or len(tasks) <= 1:
            _run_serial(tasks, on_done, on_error)
        else:
            _run_processes(tasks, min(jobs, len(tasks)), on_done, on_error)
    finally:
        bar.close()
    return results, errors


# Outputs ---------------------------------------------------------------------------------------
def result_rows(tasks: Iterable[Task], payloads: dict[Task, dict[str, Any]]) -> Iterator[dict]:
    """Result rows of ``tasks`` (in order) whose runs are finished."""
    for task in tasks:
        payload = payloads.get(dataclasses.replace(task, study=MAIN, variant=""))
        if payload is not None:
            row = dict(payload["row"])
            if task.study == SENSITIVITY:
                row = {"variant": task.variant, **row}
            yield row


def write_csv(path: Path, rows: Iterable[dict[str, Any]], first: Sequence[str]) -> int:
    """Write rows to CSV atomically, ``first`` columns first; return the row count."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    if len(frame):
        frame = frame[[c for c in first if c in frame] + [c for c in frame if c not in first]]
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return len(frame)


def served_samples(
    tasks: Iterable[Task], payloads: dict[Task, dict[str, Any]]
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Latencies and fidelities of every served request, pooled per (topology, agent)."""
    pooled: dict[tuple[str, str], dict[str, list]] = {}
    for task in tasks:
        payload = payloads.get(task)
        if payload is None:
            continue
        entry = pooled.setdefault((task.topology, task.agent), {"latency": [], "fidelity": []})
        entry["latency"] += payload["served_latency"]
        entry["fidelity"] += payload["served_fidelity"]
    return {k: {m: np.asarray(v) for m, v in d.items()} for k, d in pooled.items()}


@dataclass
class Options:
    """What ``spep reproduce`` was asked to do (the parsed command line)."""

    agents: tuple[str, ...] = PAPER_AGENTS
    topologies: tuple[str, ...] = TOPOLOGIES
    runs: int = 20
    slots: int = 2000
    seed: int = 0
    out: Path = Path("results")
    backend: str = "local"
    ray_address: str | None = None
    jobs: int = 0  # 0: os.cpu_count()
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    main: bool = True
    sensitivity: bool = True
    figures: bool = True
    progress: bool = True


def reproduce(opts: Options) -> int:
    """Run (or resume) the experiment and write every output; return the exit code."""
    from agents.evaluate import COLUMNS

    for name, value, low in (
        ("runs", opts.runs, 1),
        ("slots", opts.slots, 1),
        ("jobs", opts.jobs, 0),
    ):
        if value < low:
            raise ValueError(f"--{name} = {value} is invalid: allowed integers >= {low}")
    if opts.backend not in ("local", "ray"):
        raise ValueError(f"--backend = {opts.backend!r} is invalid: allowed 'local' or 'ray'")
    check_agents = list(opts.agents if opts.main else ())
    if opts.sensitivity:
        check_agents += [a for a in SENSITIVITY_AGENTS if a not in check_agents]
    topologies = list(opts.topologies if opts.main else ())
    if opts.sensitivity and SENSITIVITY_TOPOLOGY not in topologies:
        topologies.append(SENSITIVITY_TOPOLOGY)
    validate(check_agents, topologies, opts.slots, opts.overrides)
    if opts.sensitivity:  # every variant must be a valid config
        for _, factors in SENSITIVITY_VARIANTS:
            validate(
                SENSITIVITY_AGENTS,
                [SENSITIVITY_TOPOLOGY],
                opts.slots,
                {**opts.overrides, **factors},
            )

    start = time.perf_counter()
    out = Path(opts.out)
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    remove_temp_files(runs_dir)
    tasks = plan(
        opts.agents, opts.topologies, opts.runs, opts.slots, opts.seed, opts.overrides,
        main=opts.main, sensitivity=opts.sensitivity,
    )  # fmt: skip
    unique = schedule(tasks)
    done = load_runs(runs_dir, unique)
    todo = [t for t in unique if t not in done]
    jobs = opts.jobs or os.cpu_count() or 1
    print(
        f"spep reproduce: {len(unique)} runs ({len(done)} already done in {runs_dir}), "
        f"{len(todo)} to run on {jobs} {'Ray' if opts.backend == 'ray' else 'local'} worker(s)",
        file=sys.stderr,
    )
    interrupted = False
    errors: dict[Task, str] = {}
    try:
        _, errors = execute(
            todo, runs_dir, jobs, opts.backend, opts.ray_address, opts.progress, done_before=done
        )
    except KeyboardInterrupt:
        interrupted = True
    payloads = load_runs(runs_dir, unique)
    main_tasks = [t for t in tasks if t.study == MAIN]
    sens_tasks = [t for t in tasks if t.study == SENSITIVITY]
    if opts.main:
        write_csv(out / "results.csv", result_rows(main_tasks, payloads), COLUMNS)
    if opts.sensitivity:
        write_csv(out / "sensitivity.csv", result_rows(sens_tasks, payloads), ("variant", *COLUMNS))
    missing = len(unique) - len(payloads)
    if interrupted or missing:
        why = "interrupted" if interrupted else f"{len(errors)} run(s) failed"
        print(
            f"spep reproduce: {why}: {len(payloads)} of {len(unique)} runs done and kept in "
            f"{runs_dir}; results.csv holds them. Run the same command again to resume.",
            file=sys.stderr,
        )
        return 130 if interrupted else 1

    from agents import report

    meta = {
        "command": command_line(opts),
        "agents": list(opts.agents) if opts.main else [],
        "topologies": list(opts.topologies) if opts.main else [],
        "runs": opts.runs,
        "slots": opts.slots,
        "seed": opts.seed,
        "overrides": {k: repr(v) for k, v in opts.overrides.items()},
        "config": {f: repr(getattr(SpepConfig(), f)) for f in SpepConfig.field_names()},
        "agent_config": _agent_configs(check_agents),
        "backend": opts.backend,
        "jobs": jobs,
        "runs_total": len(unique),
        "runs_executed": len(todo),
        "wall_time_s": math.nan,  # set below, once the figures are drawn
        "run_time_sum_s": sum(p["row"].get("wall_time_s", 0.0) for p in payloads.values()),
        "sensitivity": opts.sensitivity,
        "sensitivity_variants": [label for label, _ in SENSITIVITY_VARIANTS],
    }
    figures: list[Path] = []
    if opts.figures:
        from agents import figures as figs

        figures = figs.make_all(out, served_samples(main_tasks, payloads))
    meta["wall_time_s"] = time.perf_counter() - start
    report.write_report(out, meta)
    print(
        f"spep reproduce: done in {meta['wall_time_s']:.1f} s ({len(todo)} runs executed); "
        f"wrote {out / 'results.csv'}, {out / 'report.md'} and {len(figures)} figures",
        file=sys.stderr,
    )
    return 0


def command_line(opts: Options) -> str:
    """The ``spep reproduce`` command that does what ``opts`` asks (defaults left out)."""
    default = Options()
    words = ["spep reproduce"]
    for name in ("agents", "topologies"):
        if getattr(opts, name) != getattr(default, name):
            words.append(f"--{name} {','.join(getattr(opts, name))}")
    for name in ("runs", "slots", "seed", "out", "backend", "ray_address", "jobs"):
        value = getattr(opts, name)
        if value != getattr(default, name):
            words.append(f"--{name.replace('_', '-')} {value}")
    words += [f"--set {k}={v!r}" for k, v in opts.overrides.items()]
    if not opts.main:
        words.append("--sensitivity")
    elif not opts.sensitivity:
        words.append("--no-sensitivity")
    words += ["--no-figures"] if not opts.figures else []
    return " ".join(words)


def _agent_configs(names: Iterable[str]) -> dict[str, dict[str, Any]]:
    import agents

    return {name: {k: repr(v) for k, v in agents.make(name).env_config.items()} for name in names}


# Command line ----------------------------------------------------------------------------------
def _names(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def cmd_reproduce(args: argparse.Namespace) -> int:
    from agents.cli import parse_overrides

    opts = Options(
        agents=_names(args.agents),
        topologies=_names(args.topologies),
        runs=args.runs,
        slots=args.slots,
        seed=args.seed,
        out=Path(args.out),
        backend=args.backend,
        ray_address=args.ray_address,
        jobs=args.jobs,
        overrides=parse_overrides(args.overrides),
        main=args.sensitivity is not True,
        sensitivity=args.sensitivity is not False,
        figures=not args.no_figures,
        progress=not args.no_progress,
    )
    return reproduce(opts)


def add_cli(subparsers: Any) -> None:
    """Add ``spep reproduce`` to the ``spep`` command."""
    from agents.cli import add_common

    p = subparsers.add_parser(
        "reproduce",
        help="run the paper's experiment (resumable) and write results, figures and a report",
        description=(
            "Run the paper's experiment: topologies x agents x runs, each run written at once to "
            "OUT/runs/ (run the same command again to resume), then results.csv, statistics, "
            "figures and report.md. Default: the full paper-scale study plus the sensitivity study."
        ),
    )
    p.add_argument("--agents", default=",".join(PAPER_AGENTS), help="comma-separated agent names")
    p.add_argument("--topologies", default=",".join(TOPOLOGIES), help="comma-separated topologies")
    p.add_argument(
        "--runs", type=int, default=20, help="runs per topology and agent (seeds SEED..)"
    )
    p.add_argument("--slots", type=int, default=2000, help="slots per run (episode_slots)")
    p.add_argument("--seed", type=int, default=0, help="run i uses seed SEED+i, for every agent")
    p.add_argument("--out", default="results", help="output folder (default: results)")
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: local Ray)")
    p.add_argument("--jobs", type=int, default=0, help="parallel runs (default: all CPUs)")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--sensitivity", dest="sensitivity", action="store_true", default=None,
        help="run only the sensitivity study (default: main study and sensitivity study)",
    )  # fmt: skip
    group.add_argument(
        "--no-sensitivity",
        dest="sensitivity",
        action="store_false",
        help="skip the sensitivity study",
    )
    p.add_argument("--no-figures", action="store_true", help="write no figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_common(p)
    p.set_defaults(func=cmd_reproduce)
