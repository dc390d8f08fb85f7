"""``spep calibrate``: a fit of the fields the paper leaves open to its baseline success rates, and SPEP out of sample.

The paper states some of its parameters (16 nodes, ``p_gen`` 0.12, ``F0`` 0.92, ``rho`` 0.96, a
lifetime of 15 slots, a prediction window of 15, K = 8, the topologies' parameters, fidelity
requirements in [0.6, 0.9], deadlines of 3-12 slots, 50 % of traffic on hot pairs) and leaves others
open. This command fits only open config fields (:data:`PARAMETERS`, each with the reason it is
open) to the paper's *baseline* success rates (shortest path: Erdős–Rényi 29 %, regular 8 %,
small-world 26 %, scale-free 14 %) with Optuna's TPE sampler, seeded; the objective is the root mean
square of the differences (percentage points) of shortest path's mean success rate over a fixed set
of seeds (common random numbers: every trial meets the same seeds). Stated fields (``p_gen``,
``max_lifetime``) can be freed with ``--params`` for a what-if, marked as such in the report.

Then, as an out-of-sample check, it runs shortest, ``random`` and SPEP-frequency under the best fit
on fresh seeds and sets SPEP's success rate beside the paper's 39-41 / 13-14 / 33-35 / 20-21 %. The
model's rules are never changed; the fit is reported whatever it is.

Every run goes through the study harness (one run file each in ``OUT/runs``): the sampler is
seeded and asks its trials in a fixed order, so the same command proposes the same trials, and a
second invocation (after an interrupt, or to rebuild the report) finds their runs on disk and runs
nothing again. Outputs: ``trials.json`` (every trial: parameters, per-topology success rates,
loss), ``check.csv`` (the out-of-sample runs), ``calibration.md`` and ``meta.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.study import stats
from agents.study.paper import PAPER_SUCCESS
from agents.study.plan import MAIN, Task, check_numbers, option_words, schedule, validate
from agents.study.tables import fmt, fmt_p, markdown_table, metric_cell
from spep_gym.config import DEFAULTS, TOPOLOGIES

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Parameter:
    """A config field the fit may choose: its search range and why the paper leaves it open."""

    kind: str  # "int", "float", "log" (a float searched on a log scale) or "choice"
    low: Any = None
    high: Any = None
    choices: tuple[Any, ...] = ()
    why: str = ""
    stated: bool = False  # the paper states a value: freeing it is a what-if

    def suggest(self, trial: Any, name: str) -> Any:
        """The trial's value of the field."""
        if self.kind == "int":
            return trial.suggest_int(name, self.low, self.high)
        if self.kind == "choice":
            return trial.suggest_categorical(name, list(self.choices))
        return trial.suggest_float(name, self.low, self.high, log=self.kind == "log")

    def describe(self) -> str:
        """The search range as text."""
        if self.kind == "choice":
            return " / ".join(map(str, self.choices))
        scale = " (log scale)" if self.kind == "log" else ""
        return f"{self.low} … {self.high}{scale}"


#: Fields the fit may choose. The default set (:data:`DEFAULT_PARAMETERS`) holds only fields the
#: paper leaves open; ``p_gen`` and ``max_lifetime`` are stated by the paper (what-ifs only). A
#: per-node memory limit is not a field of the model, so it is not fitted.
PARAMETERS: dict[str, Parameter] = {
    "link_capacity": Parameter(
        "int", 1, 10, why="the paper gives no number of memories (stored pairs) per link"
    ),
    "arrival_rate": Parameter(
        "log",
        0.02,
        2.0,
        why="the paper gives no request rate, only 'higher demand' in business hours",
    ),
    "business_hours_factor": Parameter(
        "float",
        1.0,
        6.0,
        why="business hours have 'higher demand', the paper does not say how much",
    ),
    "link_pool_policy": Parameter(
        "choice",
        choices=("block", "replace_oldest"),
        why="the paper does not say what a full link does with a new pair",
    ),
    "F_min": Parameter(
        "float", 0.3, 0.85, why="the paper names the threshold F_min without a value"
    ),
    "num_hot_pairs": Parameter(
        "int", 1, 12, why="the paper says 50 % of traffic goes to hot pairs, not how many there are"
    ),
    "num_medium_pairs": Parameter(
        "int", 1, 40, why="the paper does not say how many medium-demand pairs there are"
    ),
    "min_pair_hops": Parameter(
        "int", 1, 3, why="the paper does not say how far apart the demanded pairs are"
    ),
    "swap_success": Parameter(
        "float", 0.5, 1.0, why="the paper says swaps can fail, not how often"
    ),
    "p_gen": Parameter(
        "float", 0.05, 0.5, why="stated by the paper (0.12): a what-if", stated=True
    ),
    "max_lifetime": Parameter(
        "int", 5, 40, why="stated by the paper (15 slots): a what-if", stated=True
    ),
}
DEFAULT_PARAMETERS = tuple(name for name, p in PARAMETERS.items() if not p.stated)
#: The baseline fitted, and the agents of the out-of-sample check.
BASELINE = "shortest"
CHECK_AGENTS = ("shortest", "random", "spep-frequency")
SPEP = "spep-frequency"
#: Check seeds start this far above the fit's, so the check meets seeds the fit never saw.
CHECK_SEED_OFFSET = 1000
CALIBRATE = "calibrate"


@dataclass
class Options:
    """What ``spep calibrate`` was asked to do (the parsed command line)."""

    trials: int = 100  # at most; the search stops earlier when the best stops moving (patience)
    patience: int = 20
    fit_runs: int = 3
    check_runs: int = 20
    slots: int = 2000
    seed: int = 0
    params: tuple[str, ...] = DEFAULT_PARAMETERS
    batch: int = 4
    topologies: tuple[str, ...] = TOPOLOGIES
    out: Path = Path("results/calibration")
    backend: str = "local"
    ray_address: str | None = None
    jobs: int = 0
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    progress: bool = True
    engine: str = "scalar"  # CALIBRATE_ENGINES (agents.study.engine)


#: The engines ``spep calibrate`` runs on: its agents all run compiled (agents.study.compiled).
CALIBRATE_ENGINES = ("scalar", "compiled")


def check_options(opts: Options) -> None:
    """Fail before any run starts: bad numbers, parameters, topologies or fields."""
    from agents.study import backends
    from agents.study.engine import check_engine

    check_numbers(
        (
            ("trials", opts.trials, 1),
            ("patience", opts.patience, 1),
            ("fit-runs", opts.fit_runs, 1),
            ("check-runs", opts.check_runs, 1),
            ("slots", opts.slots, 1),
            ("seed", opts.seed, 0),
            ("batch", opts.batch, 1),
            ("jobs", opts.jobs, 0),
        )
    )
    backends.check_backend(opts.backend)
    if opts.engine not in CALIBRATE_ENGINES:
        raise ValueError(
            f"--engine {opts.engine!r} is invalid for spep calibrate: allowed "
            f"{', '.join(map(repr, CALIBRATE_ENGINES))}"
        )
    check_engine(opts.engine, None, option="--")
    unknown = [p for p in opts.params if p not in PARAMETERS]
    if unknown or not opts.params:
        raise ValueError(
            f"--params {','.join(opts.params)}: unknown parameter {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(PARAMETERS)}"
        )
    clash = sorted(set(opts.params) & set(opts.overrides))
    if clash:
        raise ValueError(f"--set {clash[0]}=...: {clash[0]!r} is fitted (--params); do not set it")
    missing = [t for t in opts.topologies if t not in PAPER_SUCCESS]
    if missing:
        raise ValueError(
            f"unknown topology {', '.join(map(repr, missing))}; the paper's table has "
            f"{', '.join(PAPER_SUCCESS)}"
        )
    validate(CHECK_AGENTS, opts.topologies, opts.slots, opts.overrides)
    for name in opts.params:  # both ends of every range make valid configs
        p = PARAMETERS[name]
        for value in p.choices or (p.low, p.high):
            validate([BASELINE], opts.topologies[:1], opts.slots, {**opts.overrides, name: value})


def _tasks(
    params: Mapping[str, Any],
    opts: Options,
    agents: Sequence[str],
    seeds: Sequence[int],
    label: str,
) -> list[Task]:
    fields = tuple(sorted({**opts.overrides, **params}.items()))
    return [
        Task(t, a, s, opts.slots, fields, study=CALIBRATE, variant=label, engine=opts.engine)
        for t in opts.topologies
        for a in agents
        for s in seeds
    ]


def _run(tasks: Sequence[Task], runs_dir: Path, opts: Options) -> dict[Task, dict[str, Any]]:
    """The payloads of ``tasks``: from their run files, the missing ones run and written first."""
    from agents.study.reproduce import execute
    from agents.study.store import load_runs

    unique = schedule(tasks)
    done = load_runs(runs_dir, unique)
    todo = [t for t in unique if t not in done]
    if todo:
        jobs = opts.jobs or os.cpu_count() or 1
        _, errors = execute(todo, runs_dir, jobs, opts.backend, opts.ray_address, progress=False)
        if errors:
            first = next(iter(errors.values()))
            raise RuntimeError(f"{len(errors)} run(s) failed; the first:\n{first}")
        done = load_runs(runs_dir, unique)
    return {t: done[dataclasses.replace(t, study=MAIN, variant="")] for t in tasks}


def _rates(payloads: Mapping[Task, dict[str, Any]]) -> dict[str, np.ndarray]:
    """The success rates per topology of the payloads' runs, in seed order."""
    rates: dict[str, dict[int, float]] = {}
    for task, payload in payloads.items():
        value = payload["row"].get("success_rate")
        rates.setdefault(task.topology, {})[task.seed] = math.nan if value is None else value
    return {t: np.array([v[s] for s in sorted(v)]) for t, v in rates.items()}


def paper_shortest() -> dict[str, float]:
    """The paper's shortest-path success rate of each topology: the targets of the fit."""
    return {t: short for t, (_, short) in PAPER_SUCCESS.items()}


def score(rates: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """A configuration's mean success rates, RMS miss of the paper's and its SE (pp)."""
    value, se = stats.rms_miss(rates, paper_shortest())
    return {
        "success": {t: float(np.nanmean(v)) for t, v in rates.items()},
        "loss_pp": 100 * value,
        "se_pp": 100 * se,
    }


def trials_since_improvement(losses: Sequence[float], ses: Sequence[float]) -> int:
    """Trials run since the best loss last fell by more than its noise.

    Trials in order; a trial *moves* the best when its loss is below the best's so far minus the
    best's standard error (its noise on the search seeds). A lower loss within that noise becomes
    the best without counting as a move. The search stops when this count reaches the patience.
    """
    best, best_se, moved = math.inf, 0.0, 0
    for i, (value, se) in enumerate(zip(losses, ses, strict=True)):
        if value < best - (best_se if math.isfinite(best_se) else 0.0):
            moved = i
        if value < best:
            best, best_se = value, se
    return len(losses) - 1 - moved


def preset_values(params: Sequence[str]) -> dict[str, Any]:
    """The paper preset's value of each fitted field (its first trial)."""
    return {p: DEFAULTS[p] for p in params}


def calibrate(opts: Options) -> int:
    """Fit, check out of sample and write every output; return the exit code.

    0: done; 130 / 143: interrupted by SIGINT / SIGTERM (the runs done are kept: the same command
    resumes).

    Raises:
        ValueError: a bad option (before anything is written), an output folder that cannot be
            written, or one in use by another command (:class:`agents.study.store.FolderInUse`).
    """
    from agents.study.store import locked_output

    check_options(opts)
    with locked_output(Path(opts.out), "spep calibrate", OUTPUTS) as out:
        return _calibrate(opts, out)


#: What ``spep calibrate`` writes beside its run files: deleted when it starts
#: (:func:`agents.study.store.locked_output`), so that every output there is this invocation's.
OUTPUTS = ("trials.json", "meta.json", "check.csv", "check_preset.csv", "calibration.md")


def _calibrate(opts: Options, out: Path) -> int:
    """:func:`calibrate` once the options are checked and ``out`` is locked."""
    import optuna
    from tqdm import tqdm

    from agents.interrupts import interrupt_status
    from agents.study.store import remove_temp_files, write_csv, write_text

    start = time.perf_counter()
    runs_dir = out / "runs"
    runs_dir.mkdir(exist_ok=True)
    remove_temp_files(runs_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=opts.seed, multivariate=True, constant_liar=True)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.enqueue_trial(preset_values(opts.params))
    fit_seeds = list(range(opts.seed, opts.seed + opts.fit_runs))
    print(
        f"spep calibrate: up to {opts.trials} trials (stopping when the best has not moved by "
        f"more than its SE for {opts.patience}) x {len(opts.topologies)} topologies x "
        f"{opts.fit_runs} seeds x {opts.slots} slots of {BASELINE}, then {len(CHECK_AGENTS)} agents "
        f"under the best fit and {BASELINE} under the paper preset x {opts.check_runs} fresh "
        f"seeds; run files in {runs_dir}",
        file=sys.stderr,
    )
    records: list[dict[str, Any]] = []
    bar = tqdm(total=opts.trials, unit="trial", disable=not opts.progress, file=sys.stderr)
    stale = 0
    try:
        while len(records) < opts.trials and stale < opts.patience:
            size = min(opts.batch, opts.trials - len(records))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                trials = [study.ask() for _ in range(size)]
                params = [
                    {name: PARAMETERS[name].suggest(trial, name) for name in opts.params}
                    for trial in trials
                ]
            tasks = {
                trial.number: _tasks(p, opts, [BASELINE], fit_seeds, f"trial {trial.number}")
                for trial, p in zip(trials, params, strict=True)
            }
            payloads = _run([t for ts in tasks.values() for t in ts], runs_dir, opts)
            for trial, p in zip(trials, params, strict=True):
                scored = score(_rates({t: payloads[t] for t in tasks[trial.number]}))
                study.tell(trial, scored["loss_pp"])
                records.append({"number": trial.number, "params": p, **scored})
            best = min(records, key=lambda r: r["loss_pp"])
            stale = trials_since_improvement(
                [r["loss_pp"] for r in records], [r["se_pp"] for r in records]
            )
            bar.set_postfix({"best loss (pp)": f"{best['loss_pp']:.2f}"}, refresh=False)
            bar.update(size)
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (agents.interrupts.Terminated)
        bar.close()
        print(
            f"spep calibrate: interrupted after {len(records)} trials; their runs are kept in "
            f"{runs_dir}. Run the same command again to resume (finished runs are not rerun).",
            file=sys.stderr,
        )
        return interrupt_status(err)
    bar.close()
    best = min(records, key=lambda r: r["loss_pp"])
    stop = (
        f"the best had not moved by more than its SE for {stale} trials (patience {opts.patience})"
        if stale >= opts.patience
        else f"the maximum of {opts.trials} trials (the best last moved {stale} trials before)"
    )
    check_seeds = range(
        opts.seed + CHECK_SEED_OFFSET, opts.seed + CHECK_SEED_OFFSET + opts.check_runs
    )
    check_tasks = _tasks(best["params"], opts, CHECK_AGENTS, list(check_seeds), "check")
    preset_tasks = _tasks(
        preset_values(opts.params), opts, [BASELINE], list(check_seeds), "check preset"
    )
    print(
        f"spep calibrate: best fit trial {best['number']} of {len(records)} (RMS "
        f"{best['loss_pp']:.2f} ± {best['se_pp']:.2f} pp on the search seeds); stopped: {stop}; "
        f"out-of-sample check: {len(check_tasks) + len(preset_tasks)} runs",
        file=sys.stderr,
    )
    try:
        payloads = _run([*check_tasks, *preset_tasks], runs_dir, opts)
    except KeyboardInterrupt as err:
        print(
            "spep calibrate: interrupted in the check; run the same command again to resume.",
            file=sys.stderr,
        )
        return interrupt_status(err)
    write_csv(out / "check.csv", (payloads[t]["row"] for t in check_tasks), ("agent", "topology"))
    write_csv(out / "check_preset.csv", (payloads[t]["row"] for t in preset_tasks), ("topology",))
    meta = {
        "command": command_line(opts),
        "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "trials": len(records),
        "max_trials": opts.trials,
        "patience": opts.patience,
        "stop": stop,
        "fit_runs": opts.fit_runs,
        "fit_seeds": fit_seeds,
        "check_runs": opts.check_runs,
        "check_seeds": list(check_seeds),
        "slots": opts.slots,
        "seed": opts.seed,
        "sampler": f"optuna {optuna.__version__} TPESampler(seed={opts.seed}, multivariate=True, "
        f"constant_liar=True), {opts.batch} trials asked per batch",
        "params": list(opts.params),
        "topologies": list(opts.topologies),
        "overrides": {k: repr(v) for k, v in opts.overrides.items()},
        "jobs": opts.jobs or os.cpu_count() or 1,
        "engine": opts.engine,
        "wall_time_s": time.perf_counter() - start,
    }
    fresh = fresh_scores(out)
    write_text(
        out / "trials.json",
        json.dumps({"meta": meta, "best": best, "fresh": fresh, "trials": records}, indent=1),
    )
    write_text(out / "meta.json", json.dumps(meta, indent=1))
    write_report(out)
    print(
        f"spep calibrate: done in {meta['wall_time_s']:.1f} s; wrote {out / 'calibration.md'}, "
        f"{out / 'trials.json'} and {out / 'check.csv'}",
        file=sys.stderr,
    )
    return 0


def fresh_scores(out: Path) -> dict[str, Any]:
    """The best fit and the paper preset scored on the check's fresh seeds, paired by seed.

    From ``check.csv`` (shortest under the best fit) and ``check_preset.csv`` (shortest under the
    paper preset, the same seeds): each one's RMS miss of the paper's rates with its SE, and the
    paired difference (fit - preset) with its SE, in percentage points. The search picked the
    lowest of many noisy losses, so its own loss is optimistic; these seeds never took part in it.
    """
    import pandas as pd

    check = pd.read_csv(Path(out) / "check.csv")
    preset = pd.read_csv(Path(out) / "check_preset.csv")

    def rates(df: pd.DataFrame) -> dict[str, np.ndarray]:
        return {
            str(t): g.sort_values("seed")["success_rate"].to_numpy(dtype=float)
            for t, g in df.groupby("topology", sort=False)
        }

    fit_rates, preset_rates = rates(check[check["agent"] == BASELINE]), rates(preset)
    diff, se = stats.rms_miss_difference(fit_rates, preset_rates, paper_shortest())
    return {
        "seeds": sorted(int(x) for x in preset["seed"].unique()),
        "fit": score(fit_rates),
        "preset": score(preset_rates),
        "difference_pp": 100 * diff,
        "difference_se_pp": 100 * se,
    }


def command_line(opts: Options) -> str:
    """The ``spep calibrate`` command that does what ``opts`` asks (defaults left out)."""
    default = Options()
    words = [
        "spep calibrate",
        *option_words(
            opts,
            default,
            ("params", "topologies"),
            (
                "trials",
                "patience",
                "fit_runs",
                "check_runs",
                "slots",
                "seed",
                "batch",
                "out",
                "backend",
                "ray_address",
                "jobs",
                "engine",
            ),
        ),
    ]
    words += [f"--set {k}={v!r}" for k, v in opts.overrides.items()]
    return " ".join(words)


# ---------------------------------------------------------------------- report


def _value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def write_report(out: Path) -> Path:
    """``calibration.md`` from ``trials.json`` and ``check.csv``."""
    import pandas as pd

    from agents.study.store import write_text

    out = Path(out)
    data = json.loads((out / "trials.json").read_text())
    meta, best, records = data["meta"], data["best"], data["trials"]
    fresh = data["fresh"]
    topologies = meta["topologies"]
    preset = records[0]  # the enqueued paper preset
    order = sorted(records, key=lambda r: r["loss_pp"])
    parts = [
        "# Calibration against the paper's table",
        "",
        f"Written {meta['written']} by `{meta['command']}`: {meta['trials']} trials of "
        f"{meta['sampler']}; each trial runs shortest path on {len(topologies)} topologies × "
        f"seeds {meta['fit_seeds'][0]}–{meta['fit_seeds'][-1]} × {meta['slots']} slots (common "
        f"random numbers: every trial meets the same seeds). Wall time "
        f"{meta['wall_time_s'] / 60:.1f} min on {meta['jobs']} worker(s). Every number below is "
        "computed from `trials.json`, `check.csv` and `check_preset.csv`, which come from the run "
        "files.",
        "",
        "Objective: the root mean square, over the topologies, of shortest path's mean success "
        "rate minus the paper's (29 / 8 / 26 / 14 %), in percentage points, ± its standard error "
        "over the seeds (delta method). The model's rules are not changed; only these config "
        "fields are fitted:",
        "",
        markdown_table(
            ["field", "searched", "paper preset", "why it is open"],
            [
                [
                    name + (" (what-if)" if PARAMETERS[name].stated else ""),
                    PARAMETERS[name].describe(),
                    _value(DEFAULTS[name]),
                    PARAMETERS[name].why,
                ]
                for name in meta["params"]
            ],
        ),
        "",
        "A per-node memory limit (the paper's nodes have 'quantum memory', the model's links "
        "have `link_capacity`) is not a field of the model, so it is not fitted; "
        "`priority_weights` only orders the queue (the success rate counts requests unweighted).",
        "",
        "## The fit",
        "",
    ]
    header = ["", *meta["params"], *(f"{t} (%)" for t in topologies), "RMS miss ± SE (pp)"]
    paper_row = ["paper", *([""] * len(meta["params"]))]
    paper_row += [f"{100 * PAPER_SUCCESS[t][1]:.0f}" for t in topologies] + [""]

    def row(label: str, r: Mapping[str, Any]) -> list[Any]:
        return [
            label,
            *(_value(r["params"][p]) for p in meta["params"]),
            *(f"{100 * r['success'][t]:.1f}" for t in topologies),
            f"{r['loss_pp']:.2f} ± {r['se_pp']:.2f}",
        ]

    label = "paper preset (trial 0)" + (" (best)" if best["number"] == preset["number"] else "")
    rows = [paper_row, row(label, preset)]
    others = [r for r in order if r["number"] != preset["number"]][:5]
    rows += [
        row(f"trial {r['number']}" + (" (best)" if r["number"] == best["number"] else ""), r)
        for r in others
    ]
    misses = {t: 100 * (best["success"][t] - PAPER_SUCCESS[t][1]) for t in topologies}
    worst = max(misses, key=lambda t: abs(misses[t]))
    parts += [
        f"Stopping rule: at most {meta['max_trials']} trials; stop once the best loss has not "
        "fallen by more than its own standard error on the search seeds for "
        f"{meta['patience']} trials (a lower loss within that noise is taken as the best but "
        f"does not count as a move). This search stopped after {meta['trials']} trials: "
        f"{meta['stop']}.",
        "",
        markdown_table(header, rows),
        "",
        f"The best fit (trial {best['number']}) misses the paper's shortest-path success rates by "
        f"{best['loss_pp']:.2f} ± {best['se_pp']:.2f} pp RMS on the search seeds (the paper "
        f"preset: {preset['loss_pp']:.2f} ± {preset['se_pp']:.2f} pp); its largest "
        f"miss is {misses[worst]:+.1f} pp on {worst}. That is the lowest of {meta['trials']} noisy "
        "losses, so it is optimistic. **On the fresh seeds** "
        f"{fresh['seeds'][0]}–{fresh['seeds'][-1]} (never seen by the search) the fit misses by "
        f"{fresh['fit']['loss_pp']:.2f} ± {fresh['fit']['se_pp']:.2f} pp and the paper preset by "
        f"{fresh['preset']['loss_pp']:.2f} ± {fresh['preset']['se_pp']:.2f} pp; paired by seed, "
        f"fit − preset = {fresh['difference_pp']:+.2f} ± {fresh['difference_se_pp']:.2f} pp. "
        "It needs: "
        + ", ".join(
            f"{p} = {_value(best['params'][p])}"
            + ("" if best["params"][p] == DEFAULTS[p] else f" (preset {_value(DEFAULTS[p])})")
            for p in meta["params"]
        )
        + ".",
        "",
    ]
    check = pd.read_csv(out / "check.csv")
    parts += _check_section(check, meta, best)
    path = out / "calibration.md"
    write_text(path, "\n".join(parts))
    return path


def _check_section(
    check: pd.DataFrame, meta: Mapping[str, Any], best: Mapping[str, Any]
) -> list[str]:
    summary = stats.summarize(check, ["success_rate"])
    tests = stats.compare(check, ["success_rate"], agents=[SPEP], baselines=["shortest", "random"])
    tests = stats.add_holm(tests)
    rows, gains = [], []
    for topology in meta["topologies"]:
        (lo, hi), shortest = PAPER_SUCCESS[topology]
        keys = {"topology": topology}
        cells: list[Any] = [topology]
        for agent in CHECK_AGENTS:
            cells.append(fmt(*metric_cell(summary, {**keys, "agent": agent}, "success_rate")[:2]))
        cells.append(f"{100 * lo:.0f}–{100 * hi:.0f}")
        spep = metric_cell(summary, {**keys, "agent": SPEP}, "success_rate")
        inside = spep[0] - spep[1] <= hi and spep[0] + spep[1] >= lo
        cells.append("yes" if inside else "no")
        for control in ("shortest", "random"):
            r = next(
                (
                    x
                    for x in tests.to_dict("records")
                    if x["topology"] == topology and x["baseline"] == control
                ),
                None,
            )
            cells.append(
                "–"
                if r is None
                else f"{100 * r['difference']:+.1f} pp (p {fmt_p(r['wilcoxon_p_holm'])})"
            )
            if r is not None and control == "shortest":
                gains.append(
                    (topology, 100 * r["difference"], 100 * (lo - shortest), 100 * (hi - shortest))
                )
        rows.append(cells)
    header = [
        "topology", *(f"{a} (%)" for a in CHECK_AGENTS), "paper SPEP (%)",
        "paper's range in our 95 % CI", "SPEP − shortest", "SPEP − random",
    ]  # fmt: skip
    lines = [
        "## Out-of-sample check: SPEP under the fitted assumptions",
        "",
        f"Shortest path, `random` and {SPEP} under the best fit, on fresh seeds "
        f"{meta['check_seeds'][0]}–{meta['check_seeds'][-1]} (the fit never saw them), "
        f"{meta['slots']} slots. Success rates: mean ± 95 % CI; differences: paired by seed, "
        f"p: Wilcoxon signed-rank, Holm-corrected over the table's {len(tests)} comparisons.",
        "",
        markdown_table(header, rows),
        "",
    ]
    if gains:
        lines.append(
            "SPEP's gain over shortest path under the fit: "
            + "; ".join(f"{t} {g:+.1f} pp (paper {a:+.0f} to {b:+.0f})" for t, g, a, b in gains)
            + "."
        )
        lines.append("")
    return lines
