"""The thin parsers of ``spep evaluate``, ``quality``, ``reproduce``, ``regimes`` and ``calibrate``.

Each command turns its options into a call of :func:`agents.study.evaluate.evaluate`,
:func:`agents.study.quality.prediction_quality_table`, :func:`agents.study.reproduce.reproduce`,
:func:`agents.study.regimes.run_regimes` or :func:`agents.study.calibrate.calibrate`;
pandas, tqdm and the rest load when a command runs, not when ``spep --help`` builds the parser.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from agents.base import names as agent_names
from agents.cli import (
    add_common,
    add_import,
    non_negative,
    parse_literals,
    parse_names,
    parse_overrides,
    positive,
)
from agents.study.backends import BACKENDS
from agents.study.reproduce import Options
from spep_gym.config import TOPOLOGIES


def add_cli(subparsers: Any) -> None:
    """Add ``spep evaluate``, ``quality``, ``reproduce``, ``regimes`` and ``calibrate``."""
    add_evaluate(subparsers)
    add_quality(subparsers)
    add_reproduce(subparsers)
    add_regimes(subparsers)
    add_calibrate(subparsers)


# ---------------------------------------------------------------------- spep evaluate


def add_evaluate(subparsers: Any) -> None:
    """Add ``spep evaluate``."""
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate agents over runs; one CSV row per run",
        description="Run each agent over --runs episodes (run i uses seed --seed + i) and write "
        "one row per run to --out (rewritten as runs finish).",
    )
    p.add_argument(
        "--agent",
        required=True,
        metavar="[LABEL=]NAME[,...]",
        help="agent name, or a comma list of them; LABEL=NAME labels an agent in the rows and "
        "for --param (two of one name need labels, e.g. a=sb3,b=sb3); registered: "
        f"{', '.join(agent_names())}",
    )
    _add_run_options(p, runs=20)
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all CPUs)")
    p.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="[LABEL.]KEY=VALUE",
        help="agent keyword argument (repeatable) for every agent, or with LABEL. for that agent "
        "only, e.g. --param threshold=0.1 --param a.path=runs/a",
    )
    p.add_argument(
        "--blank",
        default=None,
        metavar="KEY[,KEY]",
        help="zero these observation keys before the agent sees them (an input ablation; the "
        "observation only: agents that read info or the environment, as the heuristics do, "
        "still see what those hold); the rows get a blank column; scalar engine",
    )
    p.add_argument(
        "--reference",
        default=None,
        metavar="AGENT",
        help="with two or more agents, each other agent's paired differences from AGENT (its "
        "label; default: the first agent): mean, 95 %% CI, Wilcoxon p and Holm p over the table",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_engine_options(p)
    add_common(p)
    add_import(p)
    p.set_defaults(func=cmd_evaluate)


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """``--engine``, ``--draws`` and ``--device`` (:mod:`agents.study.engine`)."""
    from agents.study.engine import DRAWS, ENGINES

    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="scalar",
        help="scalar: one environment per run (default); batched: the runs of each agent and "
        "config stepped as one batch of networks (noop, the baselines, random, spep-frequency, "
        "spep-oracle)",
    )
    parser.add_argument(
        "--draws",
        choices=DRAWS,
        default=None,
        help="the batched engine's random draws: counter (default: its own streams, within noise "
        "of the scalar runs) or scalar (the scalar streams: the scalar runs exactly, slower)",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="the batched engine's torch device: cpu (default), cuda or cuda:N",
    )


def _add_run_options(parser: argparse.ArgumentParser, runs: int) -> None:
    """The options that choose the runs of ``spep evaluate`` and ``spep quality``."""
    parser.add_argument(
        "--topology",
        default=None,
        help=f"topology: {', '.join(TOPOLOGIES)} (default: the config's)",
    )
    parser.add_argument("--runs", type=int, default=runs, help=f"runs (default {runs})")
    parser.add_argument("--slots", type=int, default=None, help="episode_slots (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="run i uses seed SEED+i")
    parser.add_argument("--out", default=None, help="CSV file of the rows")


def _check_run_options(args: argparse.Namespace) -> None:
    """``--runs``, ``--slots``, ``--seed`` in range and ``--out`` writable, before anything runs."""
    from agents.study.store import check_output_file

    positive("--runs", args.runs)
    positive("--slots", args.slots)
    non_negative("--seed", args.seed)
    if args.out is not None:
        check_output_file(Path(args.out))


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """Config fields of ``--set``, ``--topology`` and ``--slots``."""
    fields = parse_overrides(args.overrides)
    if args.topology is not None:
        fields["topology"] = args.topology
    if args.slots is not None:
        fields["episode_slots"] = args.slots
    return fields


#: An agent's label (``--agent LABEL=NAME``): the name of its rows, the prefix of its ``--param``.
LABEL = re.compile(r"[A-Za-z0-9_-]+")


def agent_specs(text: str, params: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """``--agent`` and ``--param`` to ``(label, name, parameters)`` per agent, in order.

    ``--agent a=sb3,b=sb3,shortest`` labels two ``sb3`` agents ``a`` and ``b`` (an agent without a
    label is labelled by its name; a label is given once); ``--param KEY=VALUE`` goes to every
    agent, ``--param a.KEY=VALUE`` to the agent labelled ``a`` only (and over the shared one).
    """
    specs: dict[str, tuple[str, dict[str, Any]]] = {}
    for item in parse_names(text, "--agent"):
        label, _, name = (s.strip() for s in item.rpartition("="))
        if not name:
            raise ValueError(
                f"--agent {item!r}: the agent name is empty: allowed NAME or LABEL=NAME"
            )
        label = label or name
        if not LABEL.fullmatch(label):
            raise ValueError(
                f"--agent {item!r}: the label {label!r} is invalid: allowed letters, digits, "
                "_ and -"
            )
        if label in specs:
            raise ValueError(
                f"--agent: label {label!r} is given twice: give each agent its own label, e.g. "
                f"--agent a={name},b={name}"
            )
        specs[label] = (name, {})
    shared: dict[str, Any] = {}
    for item in params:
        ((key, value),) = parse_literals([item], "--param").items()
        label, dot, field = key.rpartition(".")
        if not dot:
            shared[key] = value
        elif label not in specs:
            raise ValueError(
                f"--param {item!r}: no agent labelled {label!r}: allowed {', '.join(specs)}"
            )
        else:
            specs[label][1][field] = value
    return [(label, name, {**shared, **own}) for label, (name, own) in specs.items()]


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run ``spep evaluate``: every agent in turn, the rows of all so far kept in ``--out``."""
    import pandas as pd

    from agents.base import check_inputs, make
    from agents.study.engine import check_device, check_engine
    from agents.study.evaluate import agent_config, evaluate, summary_table, write_frame

    _check_run_options(args)
    positive("--jobs", args.jobs)
    fields = _fields(args)
    agents_ = []
    for label, name, params in agent_specs(args.agent, args.params):
        try:
            agent = make(name, **params)
        except TypeError as err:
            raise ValueError(f"agent {label!r}: bad --param: {err}") from None
        if label != name:
            agent.name = label
        agents_.append(agent)
    draws = check_engine(args.engine, args.draws, option="--")
    device = check_device(args.engine, args.device, option="--")  # no such device: one line
    blank = parse_names(args.blank, "--blank") if args.blank is not None else ()
    if blank:
        from spep_gym.env import SpepEnv
        from spep_gym.wrappers import BlankObservation

        if args.engine != "scalar":
            raise ValueError(
                f"--blank is invalid with --engine {args.engine}: allowed with --engine scalar "
                f"(the {args.engine} agents read the core's state, not an observation)"
            )
        for a in agents_:  # an unknown key: one line naming the allowed ones, before any run
            BlankObservation(SpepEnv(agent_config(a, fields)), blank, "--blank")
    labels = [a.name for a in agents_]
    if args.reference is not None and args.reference not in labels:
        raise ValueError(
            f"--reference {args.reference!r} is invalid: allowed one of the agents evaluated: "
            f"{', '.join(labels)}"
        )
    for a in agents_:  # every config and input-file problem shows before the first run
        check_inputs(agent_config(a, fields))
        if args.engine == "batched":
            from agents.batched import batched_agent

            batched_agent(a)  # no batched form: one line before any run
    frames: list[pd.DataFrame] = []

    def save(current: pd.DataFrame) -> None:  # keep finished runs of every agent so far
        if args.out:
            write_frame(pd.concat([*frames, current], ignore_index=True), args.out)

    for a in agents_:
        frames.append(
            evaluate(
                a, runs=args.runs, seed=args.seed, jobs=args.jobs,
                progress=not args.no_progress, callback=save, engine=args.engine, draws=draws,
                device=device, blank=blank, **fields,
            )
        )  # fmt: skip
    df = pd.concat(frames, ignore_index=True)
    print("mean over the runs with its 95 % CI (Student t); n: the runs where it is defined")
    print(summary_table(df).to_string(index=False))
    if len(agents_) > 1:
        from agents.study.stats import paired_table

        table = paired_table(df, args.reference, option="--reference")
        print(
            "\npaired by seed, agent - reference: mean difference [95 % CI], Wilcoxon signed-rank "
            "p, Holm p over this table"
        )
        print(table.drop(columns=["mean_agent", "mean_reference"]).round(4).to_string(index=False))
    if args.out:
        print(f"wrote {len(df)} rows to {args.out}")
    return 0


# ---------------------------------------------------------------------- spep quality


def add_quality(subparsers: Any) -> None:
    """Add ``spep quality``."""
    q = subparsers.add_parser(
        "quality",
        help="prediction quality of each predictor on the env's workload",
        description="Score the demand predictors on the requests the environment draws for each "
        "seed (the requests the SPEP agents meet).",
    )
    q.add_argument("--predictors", default="frequency,lstm,arima", help="comma list")
    _add_run_options(q, runs=1)
    q.add_argument("--top-k", type=int, default=None, help="default: max_prepositioned")
    add_common(q)
    q.set_defaults(func=cmd_quality)


def cmd_quality(args: argparse.Namespace) -> int:
    """Run ``spep quality``: print each predictor's mean scores, write the rows to ``--out``."""
    from agents.study.evaluate import write_frame
    from agents.study.quality import prediction_quality_table

    _check_run_options(args)
    positive("--top-k", args.top_k)
    df = prediction_quality_table(
        seed=args.seed,
        runs=args.runs,
        predictors=parse_names(args.predictors, "--predictors"),
        top_k=args.top_k,
        **_fields(args),
    )
    cols = ["mae", "mae_constant", "brier", "brier_constant", "precision_at_k", "wall_s"]
    print(df.groupby("predictor", sort=False)[cols].mean().round(4).to_string())
    if args.out:
        write_frame(df, args.out)
        print(f"wrote {len(df)} rows to {args.out}")
    return 0


# ---------------------------------------------------------------------- spep reproduce


def add_reproduce(subparsers: Any) -> None:
    """Add ``spep reproduce``."""
    default = Options()
    p = subparsers.add_parser(
        "reproduce",
        help="run the paper's experiment (resumable) and write results, figures and a report",
        description=(
            "Run the paper's experiment: topologies x agents x runs, each run written at once to "
            "OUT/runs/ (run the same command again to resume), then results.csv, statistics, "
            "figures and report.md. Default: the full paper-scale study plus the sensitivity study."
        ),
    )
    p.add_argument("--agents", default=",".join(default.agents), help="comma-separated agent names")
    p.add_argument(
        "--slow-twins",
        action="store_true",
        help="also run managed-lstm and managed-arima, the managed twins with the slow predictors "
        "(not run by default: about as slow as spep-lstm and spep-arima)",
    )
    p.add_argument("--topologies", default=",".join(TOPOLOGIES), help="comma-separated topologies")
    p.add_argument(
        "--runs", type=int, default=default.runs, help="runs per topology and agent (seeds SEED..)"
    )
    p.add_argument("--slots", type=int, default=default.slots, help="slots per run (episode_slots)")
    p.add_argument(
        "--seed", type=int, default=default.seed, help="run i uses seed SEED+i, for every agent"
    )
    p.add_argument("--out", default=str(default.out), help="output folder (default: results)")
    add_backend_options(p, default.backend)
    p.add_argument(
        "--jobs", type=int, default=default.jobs, help="parallel runs (default: all CPUs)"
    )
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
    add_engine_options(p)
    add_common(p)
    add_import(p)
    p.set_defaults(func=cmd_reproduce)


def add_backend_options(parser: argparse.ArgumentParser, backend: str) -> None:
    """``--backend`` and ``--ray-address`` (:mod:`agents.study.backends`)."""
    from agents.study.backends import RAY_CONNECT_TIMEOUT_S

    parser.add_argument("--backend", choices=BACKENDS, default=backend)
    parser.add_argument(
        "--ray-address",
        default=None,
        help="the Ray cluster's address, with --backend ray (default: a local Ray); one that "
        f"does not answer in {RAY_CONNECT_TIMEOUT_S:g} s is an error",
    )


def check_ray_address(args: argparse.Namespace) -> None:
    """``--ray-address`` only with ``--backend ray`` (elsewhere it would be ignored)."""
    if args.ray_address is not None and args.backend != "ray":
        raise ValueError(
            f"--ray-address {args.ray_address!r} is invalid with --backend {args.backend}: allowed "
            "only with --backend ray"
        )


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Run ``spep reproduce`` with the options of ``args``."""
    from agents.study.plan import SLOW_PREDICTION_AGENTS
    from agents.study.reproduce import reproduce

    check_ray_address(args)
    agents = parse_names(args.agents, "--agents")
    if args.slow_twins:
        agents += tuple(a for a in SLOW_PREDICTION_AGENTS if a not in agents)
    opts = Options(
        agents=agents,
        topologies=parse_names(args.topologies, "--topologies"),
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
        engine=args.engine,
        draws=args.draws,
        device=args.device,
    )
    return reproduce(opts)


# ---------------------------------------------------------------------- spep regimes


def add_regimes(subparsers: Any) -> None:
    """Add ``spep regimes``."""
    from agents.study import regimes

    default = regimes.Options()
    levels = "; ".join(f"{f}: {', '.join(n for n, _ in ls)}" for f, ls in regimes.FACTORS.items())
    p = subparsers.add_parser(
        "regimes",
        help="the regime map: when pre-positioning pays, against the controls (resumable)",
        description=(
            "Run the regime map: every combination of the factors (link layer, physics, end-node "
            "memory, signalling latency, load) on each topology, each cell with every agent on "
            "the same seeds, each run written at once to OUT/runs/ (run the same command again to "
            "resume); then regimes.csv, cells.csv, gains.csv (gains over the best control and "
            "over random, 95 % CIs, raw and Holm-corrected Wilcoxon p), prediction.csv (each "
            "managed-* agent minus its twin managed), cells.md, heatmaps and "
            f"summary.md. Factor levels: {levels}. The default grid is 128 cells x "
            f"{len(default.agents)} agents x "
            f"{default.runs} runs x {default.slots} slots (the paper's run length; fewer than "
            "about 15 paired runs cannot pass the Holm correction): about 6.5 minutes on a 2-core "
            "machine with --engine compiled (its runs cost 4.9-13.7x less CPU than the scalar engine's, "
            "docs/compiled.md); --slots 500 is the shorter map of earlier versions."
        ),
    )
    p.add_argument("--agents", default=",".join(default.agents), help="comma-separated agent names")
    p.add_argument("--topologies", default=",".join(TOPOLOGIES), help="comma-separated topologies")
    p.add_argument(
        "--runs",
        type=int,
        default=default.runs,
        help=f"runs per cell and agent (default {default.runs})",
    )
    p.add_argument(
        "--slots",
        type=int,
        default=default.slots,
        help=f"slots per run (default {default.slots}; the paper's: 2000)",
    )
    p.add_argument(
        "--seed", type=int, default=default.seed, help="run i uses seed SEED+i, for every agent"
    )
    p.add_argument(
        "--out", default=str(default.out), help=f"output folder (default: {default.out})"
    )
    add_backend_options(p, default.backend)
    p.add_argument(
        "--jobs", type=int, default=default.jobs, help="parallel runs (default: all CPUs)"
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="FACTOR=LEVEL[,LEVEL]",
        help="keep only these levels of a factor (repeatable), e.g. --only load=paper",
    )
    p.add_argument("--no-figures", action="store_true", help="draw no heatmaps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_engine_options(p)
    add_common(p)
    add_import(p)
    p.set_defaults(func=cmd_regimes)


def parse_only(items: list[str]) -> dict[str, tuple[str, ...]]:
    """``["load=paper", "latency=0,0.50"]`` to ``{"load": ("paper",), "latency": ("0", "0.5")}``.

    Levels by their names (:func:`agents.study.regimes.check_only`: numbers compared as numbers).
    """
    from agents.study import regimes

    out: dict[str, tuple[str, ...]] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(
                f"--only {item!r}: expected FACTOR=LEVEL[,LEVEL], e.g. --only load=heavy"
            )
        factor, levels = (s.strip() for s in item.split("=", 1))
        out[factor] = (*out.get(factor, ()), *(s.strip() for s in levels.split(",")))
    return regimes.check_only(out)


def cmd_regimes(args: argparse.Namespace) -> int:
    """Run ``spep regimes`` with the options of ``args``."""
    from agents.study import regimes

    check_ray_address(args)

    opts = regimes.Options(
        agents=parse_names(args.agents),
        topologies=parse_names(args.topologies),
        runs=args.runs,
        slots=args.slots,
        seed=args.seed,
        out=Path(args.out),
        backend=args.backend,
        ray_address=args.ray_address,
        jobs=args.jobs,
        overrides=parse_overrides(args.overrides),
        only=parse_only(args.only),
        figures=not args.no_figures,
        progress=not args.no_progress,
        engine=args.engine,
        draws=args.draws,
        device=args.device,
    )
    return regimes.run_regimes(opts)


# ---------------------------------------------------------------------- spep calibrate


def add_calibrate(subparsers: Any) -> None:
    """Add ``spep calibrate``."""
    from agents.study import calibrate

    default = calibrate.Options()
    p = subparsers.add_parser(
        "calibrate",
        help="fit the fields the paper leaves open to its shortest-path success rates (Optuna)",
        description=(
            "Fit open config fields (--params) to the paper's shortest-path success rates (ER 29, "
            "regular 8, small-world 26, scale-free 14 %) with Optuna's seeded TPE sampler, on a "
            "fixed set of seeds (common random numbers); then run shortest, random and "
            "spep-frequency under the best fit on fresh seeds and compare SPEP with the paper's "
            "39-41 / 13-14 / 33-35 / 20-21 %. Every run is a run file in OUT/runs: the same "
            "command proposes the same trials and reuses their runs (resumable). Writes "
            "calibration.md, trials.json, check.csv and check_preset.csv (the preset's shortest "
            "path on the same fresh seeds: both scored out of sample). Fields: "
            + "; ".join(f"{n} {spec.describe()}" for n, spec in calibrate.PARAMETERS.items())
            + " (p_gen and max_lifetime are stated by the paper: what-ifs)."
        ),
    )
    p.add_argument(
        "--trials",
        type=int,
        default=default.trials,
        help=f"trials at most (default {default.trials})",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=default.patience,
        help="stop once the best loss has not fallen by more than its standard error for this "
        f"many trials (default {default.patience})",
    )
    p.add_argument(
        "--fit-runs",
        type=int,
        default=default.fit_runs,
        help=f"seeds per topology in the objective (default {default.fit_runs})",
    )
    p.add_argument(
        "--check-runs",
        type=int,
        default=default.check_runs,
        help=f"fresh seeds per topology and agent in the check (default {default.check_runs})",
    )
    p.add_argument("--slots", type=int, default=default.slots, help="slots per run (default 2000)")
    p.add_argument(
        "--seed", type=int, default=default.seed, help="sampler seed and first fit seed (default 0)"
    )
    p.add_argument(
        "--params",
        default=",".join(default.params),
        help=f"comma-separated fields to fit (default {','.join(default.params)})",
    )
    p.add_argument(
        "--batch", type=int, default=default.batch, help="trials asked and run together (default 4)"
    )
    p.add_argument("--topologies", default=",".join(TOPOLOGIES), help="comma-separated topologies")
    p.add_argument(
        "--out", default=str(default.out), help=f"output folder (default: {default.out})"
    )
    add_backend_options(p, default.backend)
    p.add_argument(
        "--jobs", type=int, default=default.jobs, help="parallel runs (default: all CPUs)"
    )
    p.add_argument(
        "--engine",
        choices=calibrate.CALIBRATE_ENGINES,
        default=default.engine,
        help="scalar (default) or compiled: each run one compiled call, the same rows (numba)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_common(p)
    p.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Run ``spep calibrate`` with the options of ``args``."""
    from agents.study import calibrate

    check_ray_address(args)

    opts = calibrate.Options(
        trials=args.trials,
        patience=args.patience,
        fit_runs=args.fit_runs,
        check_runs=args.check_runs,
        slots=args.slots,
        seed=args.seed,
        params=parse_names(args.params),
        batch=args.batch,
        topologies=parse_names(args.topologies),
        out=Path(args.out),
        backend=args.backend,
        ray_address=args.ray_address,
        jobs=args.jobs,
        overrides=parse_overrides(args.overrides),
        progress=not args.no_progress,
        engine=args.engine,
    )
    return calibrate.calibrate(opts)
