"""``spep regimes``: the regime map, a grid of cells that asks when pre-positioning pays and what prediction adds.

A grid of cells (SPEC sections 9 and 10): every combination of five factors, each at two levels,
on each topology:

- ``link_layer``: ``block`` (the paper preset: a full link generates nothing) or ``replace_oldest``
  (a new pair replaces the link's oldest) with a memory cut-off at fidelity 0.6;
- ``physics``: the ``paper`` laws or the ``physical`` preset's laws and time scales (Werner swaps,
  depolarizing decay, its ``p_gen``, ``F0``, ``rho`` and ``max_lifetime``);
- ``end_memory``: ``equal`` (pre-positioned pairs decay like link pairs) or ``better``
  (``preposition_rho = 1.0``: end-node memories that keep their pairs);
- ``latency``: signalling latency ``0`` or ``0.5`` slot per hop (the physical preset's);
- ``load``: the ``paper``'s arrival rate (0.1 per slot) or a ``heavy`` one (:data:`HEAVY_ARRIVAL_RATE`).

Each cell runs every agent on the same seeds (run ``i``: seed ``seed + i`` for every agent and every
cell: common random numbers). The runs go through the study harness (:mod:`agents.study.plan`,
:mod:`agents.study.store`, :mod:`agents.study.backends`): one run file each, resumable, local
processes or Ray, a progress bar. Everything after the runs is computed from the run files, through
``regimes.csv``:

- ``cells.csv``: mean and 95 % CI of every table metric per cell and agent;
- ``gains.csv``: each predictive agent against the cell's best control and against ``random``, per
  metric: the mean paired difference with its 95 % CI, the Wilcoxon signed-rank p and its Holm
  correction (one family per metric: every comparison of that metric in the map);
- ``prediction.csv``: prediction's value per cell, each ``managed-*`` agent against its
  demand-blind twin ``managed`` (:func:`agents.study.tables.prediction_comparisons`: the paired
  difference with its 95 % CI, the Wilcoxon p and its Holm correction over every cell and agent);
- ``cells.md``: a table per cell; ``summary.md``: where pre-positioning pays, where it hurts, and
  what prediction adds beyond flushing links; ``figures/heatmap_*.png``: the gains as heatmaps.

Default cost: see :data:`DEFAULT_SLOTS` and docs/reproducing.md.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.study import stats
from agents.study.engine import check_device
from agents.study.plan import MAIN, Task, check_numbers, option_words, schedule, validate
from agents.study.regimes_grid import (
    DEFAULT_AGENTS,
    DEFAULT_RUNS,
    DEFAULT_SLOTS,
    FACTOR_FIELDS,
    FACTOR_NAMES,
    FACTORS,
    TWIN,
)
from agents.study.regimes_grid import HEAVY_ARRIVAL_RATE as HEAVY_ARRIVAL_RATE  # re-exported
from agents.study.regimes_grid import PHYSICAL_LAWS as PHYSICAL_LAWS  # re-exported
from spep_gym.config import TOPOLOGIES

if TYPE_CHECKING:
    pass

REGIMES = "regimes"


def regimes(only: Mapping[str, Sequence[str]] | None = None) -> list[dict[str, str]]:
    """Every combination of factor levels (one dict factor -> level each), in grid order.

    ``only`` keeps some levels of some factors (``{"load": ["paper"]}``); unknown factors or levels
    raise ``ValueError``.
    """
    only = check_only(only or {})
    choices = [
        [name for name, _ in FACTORS[f] if f not in only or name in only[f]] for f in FACTORS
    ]
    return [dict(zip(FACTORS, combo, strict=True)) for combo in itertools.product(*choices)]


def check_only(only: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """``only`` with each level by its name in :data:`FACTORS` (``0.50`` is ``0.5``).

    A level is its name, or a number equal to a numeric level's.

    Raises:
        ValueError: an unknown factor, an unknown level or none, with the allowed ones.
    """
    out: dict[str, tuple[str, ...]] = {}
    for factor, levels in only.items():
        given = f"--only {factor}={','.join(levels)}"
        if factor not in FACTORS:
            raise ValueError(
                f"{given}: unknown factor {factor!r}: allowed factors: {', '.join(FACTORS)}"
            )
        known = [name for name, _ in FACTORS[factor]]
        allowed = f"allowed levels of {factor}: {', '.join(known)}"
        if not [level for level in levels if level.strip()]:
            raise ValueError(f"{given}: the level is empty: {allowed}")
        names = []
        for level in (level.strip() for level in levels):
            if not level:
                continue  # a blank in a list (load=paper,)
            name = next((k for k in known if _same_level(k, level)), None)
            if name is None:
                raise ValueError(f"{given}: unknown level {level!r}: {allowed}")
            names.append(name)
        out[factor] = tuple(dict.fromkeys(names))
    return out


def _same_level(name: str, text: str) -> bool:
    """``text`` names level ``name``: the same word, or the same number (``0.50`` and ``0.5``)."""
    if text == name:
        return True
    try:
        return float(text) == float(name)
    except ValueError:
        return False


def regime_fields(regime: Mapping[str, str]) -> dict[str, Any]:
    """The config fields of one regime (the union of its levels' fields)."""
    fields: dict[str, Any] = {}
    for factor, level in regime.items():
        fields.update(dict(FACTORS[factor])[level])
    return fields


def regime_label(regime: Mapping[str, str]) -> str:
    """``factor=level`` of every factor, joined by spaces (the tasks' ``variant``)."""
    return " ".join(f"{f}={regime[f]}" for f in FACTORS)


def plan_grid(
    agents: Sequence[str],
    topologies: Sequence[str],
    runs: int,
    slots: int,
    seed: int,
    overrides: Mapping[str, Any],
    only: Mapping[str, Sequence[str]] | None = None,
    engine: str = "scalar",
    draws: str | None = None,
    device: str = "cpu",
) -> list[Task]:
    """The tasks of the map: regimes x topologies x agents x seeds (run i: seed ``seed + i``).

    A task's key holds its config (``overrides`` and the regime's fields) and its ``engine``,
    ``draws`` and ``device``, so its run file is reused only for the same config and engine; the
    regime's label rides in ``variant``.
    """
    tasks = []
    seeds = range(seed, seed + runs)
    for regime in regimes(only):
        fields = tuple(sorted({**overrides, **regime_fields(regime)}.items()))
        label = regime_label(regime)
        tasks += [
            Task(t, a, s, slots, fields, REGIMES, label, engine, draws, device)
            for t in topologies
            for a in agents
            for s in seeds
        ]
    return tasks


#: What ``spep regimes`` writes into its folder, beside the run files: deleted when it starts
#: (:func:`agents.study.store.locked_output`), so that every output there is this invocation's.
OUTPUTS = (
    "regimes.csv", "cells.csv", "gains.csv", "prediction.csv", "cells.md", "summary.md",
    "meta.json", "figures/heatmap_*.png",
)  # fmt: skip


@dataclass
class Options:
    """What ``spep regimes`` was asked to do (the parsed command line)."""

    agents: tuple[str, ...] = DEFAULT_AGENTS
    topologies: tuple[str, ...] = TOPOLOGIES
    runs: int = DEFAULT_RUNS
    slots: int = DEFAULT_SLOTS
    seed: int = 0
    out: Path = Path("results/regimes")
    backend: str = "local"
    ray_address: str | None = None
    jobs: int = 0  # 0: os.cpu_count()
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    only: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    figures: bool = True
    progress: bool = True
    engine: str = "scalar"  # agents.study.engine.ENGINES
    draws: str | None = None  # the batched engine's draws; None: counter (batched), none (scalar)
    device: str | None = None  # the batched engine's torch device; None: cpu


def check(opts: Options) -> list[dict[str, str]]:
    """Fail before any run starts (bad numbers, agents, topologies, fields, factors, engine).

    Returns:
        The regimes of the map.
    """
    from agents.study import backends
    from agents.study.engine import check_engine

    check_numbers(
        (
            ("runs", opts.runs, 1),
            ("slots", opts.slots, 1),
            ("seed", opts.seed, 0),
            ("jobs", opts.jobs, 0),
        )
    )
    backends.check_backend(opts.backend)
    clash = sorted(FACTOR_FIELDS & set(opts.overrides))
    if clash:
        raise ValueError(
            f"--set {clash[0]}=...: the regime map sets {', '.join(clash)} itself (its factors "
            f"{', '.join(FACTORS)}); choose levels with --only FACTOR=LEVEL"
        )
    if len(set(opts.agents)) != len(opts.agents) or not opts.agents:
        raise ValueError(f"--agents {','.join(opts.agents)}: name each agent once")
    grid = regimes(opts.only)
    validate(opts.agents, opts.topologies, opts.slots, opts.overrides)
    check_engine(opts.engine, opts.draws, opts.agents, option="--")
    controls = (*stats.NON_PREDICTIVE, TWIN)
    if not any(a in controls for a in opts.agents) or not any(
        a not in controls for a in opts.agents
    ):
        raise ValueError(
            f"--agents {','.join(opts.agents)}: the map compares predictive agents with controls; "
            f"name at least one of {', '.join(controls)} and one predictive agent "
            "(e.g. spep-frequency)"
        )
    for regime in grid:  # every cell must be a valid config
        validate(
            opts.agents, opts.topologies, opts.slots, {**opts.overrides, **regime_fields(regime)}
        )
    return grid


def run_regimes(opts: Options) -> int:
    """Run (or resume) the map and write every output; return the exit code.

    0: done; 1: some runs failed (the others are kept); 130 / 143: interrupted by SIGINT / SIGTERM
    (the runs done are kept and in ``regimes.csv``).

    Raises:
        ValueError: a bad option (before anything is written), an output folder that cannot be
            written, or one in use by another command (:class:`agents.study.store.FolderInUse`).
    """
    from agents.study.store import locked_output

    grid = check(opts)
    if opts.engine == "batched" and opts.draws is None:
        opts = dataclasses.replace(opts, draws="counter")
    opts = dataclasses.replace(opts, device=check_device(opts.engine, opts.device, option="--"))
    with locked_output(Path(opts.out), "spep regimes", OUTPUTS, ("runs", "figures")) as out:
        return _run_regimes(opts, out, grid)


def _run_regimes(opts: Options, out: Path, grid: list[dict[str, str]]) -> int:
    """:func:`run_regimes` once the options are checked and ``out`` is locked."""
    from agents.interrupts import interrupt_name, interrupt_status
    from agents.study.plan import batches
    from agents.study.reproduce import engine_note, execute
    from agents.study.store import load_runs, remove_temp_files, write_csv

    start = time.perf_counter()
    runs_dir = out / "runs"
    runs_dir.mkdir(exist_ok=True)
    remove_temp_files(runs_dir)
    tasks = plan_grid(
        opts.agents, opts.topologies, opts.runs, opts.slots, opts.seed, opts.overrides, opts.only,
        opts.engine, opts.draws, opts.device or "cpu",
    )  # fmt: skip
    unique = schedule(tasks)
    done = load_runs(runs_dir, unique)
    todo = [t for t in unique if t not in done]
    jobs = opts.jobs or os.cpu_count() or 1
    cells = len(grid) * len(opts.topologies)
    print(
        f"spep regimes: {cells} cells x {len(opts.agents)} agents x {opts.runs} runs x "
        f"{opts.slots} slots = {len(unique)} runs ({len(done)} already done in {runs_dir}), "
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
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (agents.interrupts.Terminated)
        interrupted = err
    payloads = load_runs(runs_dir, unique)
    write_csv(out / "regimes.csv", grid_rows(tasks, payloads), ("cell", *FACTOR_NAMES))
    if interrupted is not None or len(payloads) < len(unique):
        if interrupted is not None:
            why = f"interrupted ({interrupt_name(interrupted)})"
        else:
            why = f"{len(errors)} run(s) failed"
        print(
            f"spep regimes: {why}: {len(payloads)} of {len(unique)} runs done and kept in "
            f"{runs_dir}; regimes.csv holds them. Run the same command again to resume.",
            file=sys.stderr,
        )
        return interrupt_status(interrupted) if interrupted is not None else 1
    meta = {
        "command": command_line(opts),
        "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "agents": list(opts.agents),
        "topologies": list(opts.topologies),
        "factors": {f: [level for level, _ in FACTORS[f]] for f in FACTORS},
        "only": {k: list(v) for k, v in opts.only.items()},
        "cells": cells,
        "runs": opts.runs,
        "slots": opts.slots,
        "seed": opts.seed,
        "overrides": {k: repr(v) for k, v in opts.overrides.items()},
        "backend": opts.backend,
        "jobs": jobs,
        "engine": opts.engine,
        "draws": opts.draws,
        "device": opts.device,
        "cpu_count": os.cpu_count(),
        "runs_total": len(unique),
        "runs_executed": len(todo),
        "run_time_sum_s": sum(p["row"].get("wall_time_s", 0.0) for p in payloads.values()),
        "runs_wall_time_s": time.perf_counter() - start,
        "wall_time_s": math.nan,  # set once the outputs are written
    }
    from agents.study.regimes_report import write_outputs, write_summary

    write_outputs(out, meta, figures=opts.figures)
    meta["wall_time_s"] = time.perf_counter() - start
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    write_summary(out, meta)  # again, with the total wall time
    print(
        f"spep regimes: done in {meta['wall_time_s']:.1f} s ({len(todo)} runs executed); wrote "
        f"{out / 'summary.md'}, {out / 'cells.md'}, {out / 'gains.csv'}"
        + (" and the heatmaps" if opts.figures else ""),
        file=sys.stderr,
    )
    return 0


def grid_rows(tasks: Iterable[Task], payloads: Mapping[Task, dict[str, Any]]) -> Iterable[dict]:
    """The result rows of the finished ``tasks``, each with its cell's factor levels first."""
    for task in tasks:
        payload = payloads.get(dataclasses.replace(task, study=MAIN, variant=""))
        if payload is None:
            continue
        levels = dict(item.split("=", 1) for item in task.variant.split(" "))
        yield {"cell": task.variant, **levels, **payload["row"]}


def command_line(opts: Options) -> str:
    """The ``spep regimes`` command that does what ``opts`` asks (defaults left out)."""
    default = Options()
    words = [
        "spep regimes",
        *option_words(
            opts,
            default,
            ("agents", "topologies"),
            ("runs", "slots", "seed", "out", "backend", "ray_address", "jobs", "engine"),
        ),
    ]
    words += [f"--draws {opts.draws}"] if opts.draws is not None else []
    words += [f"--device {opts.device}"] if opts.device not in (None, "cpu") else []
    words += [f"--only {k}={','.join(v)}" for k, v in opts.only.items()]
    words += [f"--set {k}={v!r}" for k, v in opts.overrides.items()]
    words += ["--no-figures"] if not opts.figures else []
    return " ".join(words)
