"""``spep reproduce``: the paper's experiment (SPEC section 7), resumable and parallel.

An experiment is a list of :class:`Task` (topology, agent, seed, slots, config overrides); each runs
one :func:`agents.run_episode` (with ``--engine batched`` the runs of one agent and config run as
one batch, :func:`agents.study.engine.run_batch`) and is written at once, atomically, to
``DIR/runs/<topology>__<agent>__<seed>__<hash>.json`` (``hash``: slots and config overrides, and a
batched run's engine and draws; a batch's files are written when the batch finishes). Running
the same command again skips the runs already on disk whose key matches (code, agent parameters,
config, input files' content: see :mod:`agents.study.plan`); a run file that does not match, or
fails the checks of :func:`agents.study.store.check_payload`, is reported and run again. An
interrupt (Ctrl-C, or SIGTERM) or a crash loses at most the runs in flight; on an interrupt
``results.csv`` is written from the runs done and the command exits 130 (SIGINT) or 143 (SIGTERM).
``results.csv``, the statistics, the figures and ``report.md`` are always rebuilt from the run files,
and only those of this invocation's plan are there: the outputs of an earlier one (:data:`OUTPUTS`)
are deleted when it starts.
The folder is locked while a command runs (:func:`agents.study.store.folder_lock`): a second
``spep reproduce`` on it stops at once, touching nothing.

Layout of ``DIR``::

    .spep.lock           the lock of the running command (holds its pid and command)
    runs/*.json          one file per finished run (key, result row, served latencies/fidelities)
    results.csv          the main study: one row per run, the columns of ``spep evaluate``
    sensitivity.csv      the sensitivity study (``variant`` first, then the same columns)
    summary.csv          mean and 95 % CI of every metric per topology and agent
    tests.csv            Mann-Whitney U and paired Wilcoxon tests, SPEP agents vs non-predictive
                         agents (the controls included), raw and Holm-corrected p-values
    prediction.csv       prediction's value: each managed-* agent - its twin managed, and managed
                         - random and - the best baseline (paired CI, Wilcoxon p, Holm)
    figures/*.png        figures 3-9 of the paper, utilization, sensitivity
    meta.json            the command, the config and the wall time
    report.md            everything above, beside the paper's numbers
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.study import backends
from agents.study.engine import check_batches, check_device, check_engine
from agents.study.evaluate import COLUMNS
from agents.study.plan import (
    MAIN,
    SENSITIVITY,
    SENSITIVITY_AGENTS,
    SENSITIVITY_TOPOLOGY,
    SENSITIVITY_VARIANTS,
    STUDY_AGENTS,
    Task,
    batches,
    check_numbers,
    json_key,
    option_words,
    plan,
    schedule,
    validate,
)
from agents.study.store import (
    RUN_FILE_VERSION,
    locked_output,
    remove_temp_files,
    result_rows,
    scan_runs,
    served_samples,
    write_csv,
    write_run,
)
from spep_gym.config import TOPOLOGIES, SpepConfig


def run_task(task: Task) -> dict[str, Any]:
    """Run one task; return the payload of its run file.

    Besides the result row, the file keeps the latency (slots) and fidelity of every served request,
    compact (ints and 4-digit floats), for the distribution figures.
    """
    import agents  # noqa: F401  (registers the agents in a fresh worker process)
    from agents.study.evaluate import run_episode

    return _payload(task, run_episode(task.agent, task.seed, task.config(), return_records=True))


def run_tasks(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    """Run a unit of :func:`agents.study.plan.batches`; return the payloads of its run files.

    A scalar task runs alone (:func:`run_task`); batched tasks (one agent and config, one seed
    each) run as one batch (:func:`agents.study.engine.run_batch`) on their device, network i
    from the i-th seed.
    """
    first = tasks[0]
    if first.engine == "scalar":
        return [run_task(task) for task in tasks]
    import agents  # registers the agents in a fresh worker process

    if first.engine == "compiled":  # one compiled call per run, the agent's scalar path where none
        from agents.base import agent_config
        from agents.study.compiled import run_compiled

        agent, seeds = agents.make(first.agent), [task.seed for task in tasks]
        rows = run_compiled(agent, seeds, agent_config(agent, first.config()), True)
        return [_payload(task, row) for task, row in zip(tasks, rows, strict=True)]
    from agents.study.engine import run_batch

    assert first.draws is not None
    seeds = [task.seed for task in tasks]
    rows = run_batch(
        first.agent, seeds, first.config(), first.draws, first.device, return_records=True
    )
    return [_payload(task, row) for task, row in zip(tasks, rows, strict=True)]


def _payload(task: Task, row: dict[str, Any]) -> dict[str, Any]:
    """The run file of ``task`` from its result row (with its ``records``, which it drops)."""
    from spep_gym.metrics import SERVED

    records = row.pop("records")
    served = records["status"] == SERVED
    latency = records["end_slot"][served] - records["arrival"][served]
    fidelity = np.round(records["fidelity"][served], 4)
    return {
        "version": RUN_FILE_VERSION,
        "key": json.loads(json_key(task.key)),
        "row": row,
        "served_latency": latency.astype(int).tolist(),
        "served_fidelity": fidelity.tolist(),
    }


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

    Scalar tasks run one by one, batched tasks as the batches of :func:`agents.study.plan.batches`
    (each written as its run files when the batch finishes). A ``KeyboardInterrupt`` propagates
    after the finished runs are on disk.
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

    def on_batch(batch: tuple[Task, ...], payloads: list[dict[str, Any]]) -> None:
        for task, payload in zip(batch, payloads, strict=True):
            on_done(task, payload)

    def on_error(batch: tuple[Task, ...], error: str) -> None:
        errors.update(dict.fromkeys(batch, error))
        what = f"run {batch[0].filename}" if len(batch) == 1 else f"batch of {len(batch)} runs "
        if len(batch) > 1:
            what += f"({batch[0].filename} ...)"
        bar.write(f"{what} failed:\n{error}", file=sys.stderr)

    try:
        backends.run(run_tasks, batches(tasks), on_batch, on_error, jobs, backend, address)
    finally:
        bar.close()
    return results, errors


@dataclass
class Options:
    """What ``spep reproduce`` was asked to do (the parsed command line)."""

    agents: tuple[str, ...] = STUDY_AGENTS
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
    engine: str = "scalar"  # agents.study.engine.ENGINES
    draws: str | None = None  # the batched engine's draws; None: counter (batched), none (scalar)
    device: str | None = None  # the batched engine's torch device; None: cpu


#: What ``spep reproduce`` writes into its folder, beside the run files: deleted when it starts
#: (:func:`agents.study.store.locked_output`), so that every output there is this invocation's.
OUTPUTS = (
    "results.csv", "sensitivity.csv", "summary.csv", "tests.csv", "prediction.csv", "meta.json",
    "report.md", "figures/*.png",
)  # fmt: skip

#: How many rejected run files are named one by one (the rest are counted).
SHOW_REJECTED = 10


def check_options(opts: Options) -> None:
    """Every option of ``opts`` in range, before anything runs or is written.

    Raises:
        ValueError: naming the option, the bad value and what is allowed.
    """
    check_numbers(
        (
            ("runs", opts.runs, 1),
            ("slots", opts.slots, 1),
            ("seed", opts.seed, 0),
            ("jobs", opts.jobs, 0),
        )
    )
    backends.check_backend(opts.backend)
    for name in ("agents", "topologies"):
        if opts.main and not getattr(opts, name):
            raise ValueError(
                f"--{name} is empty: allowed a comma list of one or more names"
                + (" (registered agents: see spep evaluate --help)" if name == "agents" else "")
            )


def reproduce(opts: Options) -> int:
    """Run (or resume) the experiment and write every output; return the exit code.

    0: done; 1: some runs failed (the others are kept); 130 / 143: interrupted by SIGINT / SIGTERM
    (the runs done are kept and in ``results.csv``).

    Raises:
        ValueError: a bad option (before anything is written), an output folder that cannot be
            written, or one in use by another ``spep reproduce``
            (:class:`agents.study.store.FolderInUse`).
    """
    check_options(opts)
    check_agents = list(opts.agents if opts.main else ())
    if opts.sensitivity:
        check_agents += [a for a in SENSITIVITY_AGENTS if a not in check_agents]
    opts = dataclasses.replace(
        opts,
        draws=check_engine(opts.engine, opts.draws, check_agents, option="--"),
        device=check_device(opts.engine, opts.device, option="--"),
    )
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
    if opts.engine == "batched":  # a batch, the runs of one agent and config, must fit
        main = {**opts.overrides, "episode_slots": opts.slots}
        configs = [{**main, "topology": t} for t in topologies]
        if opts.sensitivity:
            configs += [
                {**main, **factors, "topology": SENSITIVITY_TOPOLOGY}
                for _, factors in SENSITIVITY_VARIANTS
            ]
        check_batches(check_agents, configs, opts.runs, opts.device)
    with locked_output(Path(opts.out), "spep reproduce", OUTPUTS, ("runs", "figures")) as out:
        return _reproduce(opts, out, check_agents)


def _reproduce(opts: Options, out: Path, check_agents: list[str]) -> int:
    """:func:`reproduce` once the options are checked and ``out`` is locked."""
    start = time.perf_counter()
    runs_dir = out / "runs"
    runs_dir.mkdir(exist_ok=True)
    remove_temp_files(runs_dir)
    tasks = plan(
        opts.agents, opts.topologies, opts.runs, opts.slots, opts.seed, opts.overrides,
        main=opts.main, sensitivity=opts.sensitivity, engine=opts.engine, draws=opts.draws,
        device=opts.device or "cpu",
    )  # fmt: skip
    unique = schedule(tasks)
    done, rejected = scan_runs(runs_dir, unique)
    report_rejected(rejected)
    todo = [t for t in unique if t not in done]
    jobs = opts.jobs or os.cpu_count() or 1
    print(
        f"spep reproduce: {len(unique)} runs ({len(done)} already done in {runs_dir}), "
        f"{len(todo)} to run on {jobs} {'Ray' if opts.backend == 'ray' else 'local'} worker(s)"
        f"{engine_note(opts.engine, opts.draws, len(batches(todo)))}",
        file=sys.stderr,
    )
    interrupted: KeyboardInterrupt | None = None
    errors: dict[Task, str] = {}
    try:
        _, errors = execute(
            todo, runs_dir, jobs, opts.backend, opts.ray_address, opts.progress, done_before=done
        )
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (backends.Terminated)
        interrupted = err
    payloads, _ = scan_runs(runs_dir, unique)
    main_tasks = [t for t in tasks if t.study == MAIN]
    sens_tasks = [t for t in tasks if t.study == SENSITIVITY]
    if opts.main:
        write_csv(out / "results.csv", result_rows(main_tasks, payloads), COLUMNS)
    if opts.sensitivity:
        write_csv(out / "sensitivity.csv", result_rows(sens_tasks, payloads), ("variant", *COLUMNS))
    missing = len(unique) - len(payloads)
    if interrupted is not None or missing:
        if interrupted is not None:
            why = f"interrupted ({backends.interrupt_name(interrupted)})"
        else:
            why = f"{len(errors)} run(s) failed"
        print(
            f"spep reproduce: {why}: {len(payloads)} of {len(unique)} runs done and kept in "
            f"{runs_dir}; results.csv holds them. Run the same command again to resume.",
            file=sys.stderr,
        )
        return backends.interrupt_status(interrupted) if interrupted is not None else 1

    from agents.study import report

    base = SpepConfig.from_dict({"preset": opts.overrides.get("preset", "paper")})
    meta = {
        "command": command_line(opts),
        "agents": list(opts.agents) if opts.main else [],
        "topologies": list(opts.topologies) if opts.main else [],
        "runs": opts.runs,
        "slots": opts.slots,
        "seed": opts.seed,
        "overrides": {k: repr(v) for k, v in opts.overrides.items() if k != "preset"},
        "preset": opts.overrides.get("preset", "paper"),
        # the named preset's values (the overrides apply over them)
        "config": {f: repr(getattr(base, f)) for f in SpepConfig.field_names()},
        "agent_config": _agent_configs(check_agents),
        "backend": opts.backend,
        "jobs": jobs,
        "engine": opts.engine,
        "draws": opts.draws,
        "device": opts.device,
        "runs_total": len(unique),
        "runs_executed": len(todo),
        "wall_time_s": math.nan,  # set below, once the figures are drawn
        "run_time_sum_s": sum(p["row"].get("wall_time_s", 0.0) for p in payloads.values()),
        "sensitivity": opts.sensitivity,
        "sensitivity_variants": [label for label, _ in SENSITIVITY_VARIANTS],
    }
    figures: list[Path] = []
    if opts.figures:
        from agents.study import figures as figs

        figures = figs.make_all(out, served_samples(main_tasks, payloads))
    meta["wall_time_s"] = time.perf_counter() - start
    report.write_report(out, meta)
    print(
        f"spep reproduce: done in {meta['wall_time_s']:.1f} s ({len(todo)} runs executed); "
        f"wrote {out / 'results.csv'}, {out / 'report.md'} and {len(figures)} figures",
        file=sys.stderr,
    )
    return 0


def report_rejected(rejected: Sequence[tuple[Path, str]]) -> None:
    """Name each rejected run file and why, one line each (the first :data:`SHOW_REJECTED`)."""
    for path, reason in rejected[:SHOW_REJECTED]:
        print(f"spep reproduce: rerunning {path.name}: {reason}", file=sys.stderr)
    if len(rejected) > SHOW_REJECTED:
        reasons: dict[str, int] = {}
        for _, reason in rejected[SHOW_REJECTED:]:
            head = re.split(r"[:(,]", reason)[0].strip()
            reasons[head] = reasons.get(head, 0) + 1
        summary = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
        print(
            f"spep reproduce: and {len(rejected) - SHOW_REJECTED} more run files to rerun "
            f"({summary})",
            file=sys.stderr,
        )


def command_line(opts: Options) -> str:
    """The ``spep reproduce`` command that does what ``opts`` asks (defaults left out)."""
    default = Options()
    words = [
        "spep reproduce",
        *option_words(
            opts,
            default,
            ("agents", "topologies"),
            ("runs", "slots", "seed", "out", "backend", "ray_address", "jobs", "engine"),
        ),
    ]
    words += [f"--draws {opts.draws}"] if opts.draws is not None else []
    words += [f"--device {opts.device}"] if opts.device not in (None, "cpu") else []
    words += [f"--set {k}={v!r}" for k, v in opts.overrides.items()]
    if not opts.main:
        words.append("--sensitivity")
    elif not opts.sensitivity:
        words.append("--no-sensitivity")
    words += ["--no-figures"] if not opts.figures else []
    return " ".join(words)


def engine_note(engine: str, draws: str | None, units: int) -> str:
    """``", batched engine (counter draws): 3 batches"`` for the progress line; "" for scalar."""
    if engine == "scalar":
        return ""
    if engine == "compiled":
        return ", compiled engine"
    return f", {engine} engine ({draws} draws): {units} batch(es)"


def _agent_configs(names: Iterable[str]) -> dict[str, dict[str, Any]]:
    import agents

    return {name: {k: repr(v) for k, v in agents.make(name).env_config.items()} for name in names}
