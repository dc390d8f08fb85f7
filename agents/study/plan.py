"""What a study runs: the paper's plan of (topology, agent, seed) runs, and each run's key.

A :class:`Task` is one run. Its file name holds topology, agent, seed and a hash of slots and
config overrides; its key holds everything that decides its result, so that a run file is reused
only when all of it matches:

- the run-file format (:data:`RUN_FILE_VERSION`);
- the code: a hash of the source of the ``spep_gym`` and ``agents`` packages
  (:func:`code_hash`), so that an edit of the simulator or of an agent makes old runs stale;
- the agent's parameters (:meth:`agents.base.Agent.params` of the agent made by name);
- the config (slots and overrides) and the *content* of the input files it names (a ``trace``:
  :func:`input_hashes`), so that an edited trace is run again;
- the engine and its draws (:mod:`agents.study.engine`): a batched run's file name holds them too
  (through its config hash), so that scalar and batched run files never mix.

:func:`plan` lists the tasks of the main study and the sensitivity study, :func:`schedule` the
unique runs in the order they start, and :func:`validate` checks a plan before any run starts.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.baselines import BASELINES
from agents.study.paper import SPEP_AGENTS
from agents.study.tables import ORACLE, TWIN
from spep_gym.config import TOPOLOGIES

#: The paper's agents (spec section 7): its baselines, its SPEP variants, and the oracle reference.
PAPER_AGENTS = (*BASELINES, *SPEP_AGENTS, ORACLE)
#: The controls every study runs beside them (SPEC sections 10 and 11): random pre-positioning
#: flushes links as much as SPEP does, so only a gain over it can be credited to prediction; the
#: strong demand-blind control ``managed`` (:mod:`agents.controls`) is the twin of the agents below.
CONTROLS = ("random", TWIN)
#: The managed control's predictive agents and oracles, each measured against its twin ``managed``
#: (prediction's value, SPEC section 11). About as cheap as ``random`` a run.
PREDICTION_AGENTS = ("managed-oracle", "managed-distribution", "managed-frequency", "managed-rates")
#: Their twins with the slow predictors: not run by default (each costs about as much as
#: ``spep-lstm`` / ``spep-arima``, and they would add about half the study's CPU time);
#: ``spep reproduce --slow-twins`` (or ``--agents``) runs them.
SLOW_PREDICTION_AGENTS = ("managed-lstm", "managed-arima")
#: What ``spep reproduce`` runs by default: the paper's agents, the controls and the managed agents.
STUDY_AGENTS = (*BASELINES, *CONTROLS, *SPEP_AGENTS, ORACLE, *PREDICTION_AGENTS)
#: Slow agents start first, so that the last minutes are not one long run on one core.
SLOW_AGENTS = ("spep-arima", "spep-lstm", "managed-arima", "managed-lstm")

#: The sensitivity study: one factor at a time from the paper preset, on Erdős–Rényi (without the
#: managed agents, which the main study runs: their cost stays in the main study).
SENSITIVITY_TOPOLOGY = "erdos_renyi"
SENSITIVITY_AGENTS = ("shortest", "random", "spep-frequency", "spep-oracle")
SENSITIVITY_VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("paper preset", {}),
    ("link_capacity=2", {"link_capacity": 2}),
    ("arrival_rate=0.5", {"arrival_rate": 0.5}),
    ("arrival_rate=1.0", {"arrival_rate": 1.0}),
    ("preposition_rho=1.0", {"preposition_rho": 1.0}),
    ("swap_model=werner", {"swap_model": "werner"}),
)

MAIN, SENSITIVITY = "main", "sensitivity"

#: Version of the run-file format (``version`` in each file, and part of every run key). 2: keys
#: with the code hash, the agent's parameters and the input files' content.
RUN_FILE_VERSION = 2
#: The packages whose source decides a run's result (their ``*.py`` files are hashed).
CODE_PACKAGES = ("spep_gym", "agents")
#: Config fields that name an input file, whose content (not only its path) decides the result.
INPUT_FILE_FIELDS = ("trace",)


def source_hash(roots: Iterable[tuple[str, Path]]) -> str:
    """SHA-256 (first 16 hex digits) of the ``*.py`` files under each ``(name, folder)``.

    The relative paths and the contents, in sorted order: an edit of any file changes it.
    """
    digest = hashlib.sha256()
    for name, root in roots:
        for path in sorted(Path(root).rglob("*.py")):
            digest.update(f"{name}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def code_hash() -> str:
    """:func:`source_hash` of :data:`CODE_PACKAGES` as imported, computed once per process."""
    import importlib

    return source_hash(
        (name, Path(importlib.import_module(name).__file__ or "").parent) for name in CODE_PACKAGES
    )


@functools.cache
def agent_params(name: str) -> dict[str, Any]:
    """The parameters of the agent registered as ``name``, made with its defaults (cached)."""
    from agents.base import make  # importing agents.base imports agents: the agents are registered

    params: dict[str, Any] = make(name).params()
    return params


def input_hashes(overrides: Iterable[tuple[str, Any]]) -> dict[str, str | None]:
    """SHA-256 of each input file the overrides name (None: a file that cannot be read)."""
    out: dict[str, str | None] = {}
    for key, value in overrides:
        if key in INPUT_FILE_FIELDS and isinstance(value, str | os.PathLike):
            out[key] = _file_hash(*_file_stamp(value))
    return out


def _file_stamp(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    """``(absolute path, mtime in ns, size)``: a file's hash is recomputed when one changes."""
    try:
        stat = os.stat(path)
    except OSError:
        return os.path.abspath(path), -1, -1
    return os.path.abspath(path), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=256)
def _file_hash(path: str, mtime_ns: int, size: int) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return None


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
    engine: str = "scalar"  # agents.study.engine.ENGINES
    draws: str | None = None  # the batched engine's draws (None for the scalar engine)
    device: str = "cpu"  # the batched engine's torch device

    def config(self) -> dict[str, Any]:
        """The run's config fields: the overrides, its topology and its slots."""
        return {**dict(self.overrides), "topology": self.topology, "episode_slots": self.slots}

    @property
    def config_hash(self) -> str:
        """Hash of slots and overrides (and of a batched run's engine, draws and device).

        A run file is reused only for the same config; a scalar run's hash is that of its slots and
        overrides alone, as before there were engines, and a run on the CPU has no device in it, as
        before there were devices.
        """
        parts: dict[str, Any] = {"slots": self.slots, "overrides": self.overrides}
        if self.engine != "scalar":
            parts.update(engine=self.engine, draws=self.draws)
        if self.device != "cpu":
            parts.update(device=self.device)
        text = json.dumps(parts, default=repr)
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    @property
    def key(self) -> dict[str, Any]:
        """What decides the run's result: a file counts as done only with the same key.

        See the module docstring: format version, code hash, agent parameters, config, the
        content of input files, engine and draws (and the device, where it is not the CPU).
        """
        key = {
            "version": RUN_FILE_VERSION,
            "code": code_hash(),
            "topology": self.topology,
            "agent": self.agent,
            "agent_params": agent_params(self.agent),
            "seed": self.seed,
            "slots": self.slots,
            "overrides": dict(self.overrides),
            "inputs": input_hashes(self.overrides),
            "engine": self.engine,
            "draws": self.draws,
            "config_hash": self.config_hash,
        }
        if self.device != "cpu":
            key["device"] = self.device
        return key

    @property
    def filename(self) -> str:
        """The run file's name, ``<topology>__<agent>__<seed>__<config hash>.json``."""
        return f"{self.topology}__{self.agent}__{self.seed}__{self.config_hash}.json"


def check_numbers(options: Iterable[tuple[str, Any, int]]) -> None:
    """Each ``(option, value, low)`` an integer (not a bool) ``>= low``, or a ValueError naming it."""
    for name, value, low in options:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"--{name} = {value!r} is invalid: allowed an integer >= {low}")


def option_words(opts: Any, default: Any, lists: Sequence[str], values: Sequence[str]) -> list[str]:
    """The command-line words of the options of ``opts`` that differ from ``default``.

    ``lists`` are comma lists (``--agents a,b``), ``values`` single values; ``_`` becomes ``-``.
    """
    words = []
    for name in lists:
        if getattr(opts, name) != getattr(default, name):
            words.append(f"--{name.replace('_', '-')} {','.join(getattr(opts, name))}")
    for name in values:
        value = getattr(opts, name)
        if value != getattr(default, name):
            words.append(f"--{name.replace('_', '-')} {value}")
    return words


def json_key(key: dict[str, Any]) -> str:
    """A run key as canonical JSON text (sorted keys; values JSON has no form for by ``repr``)."""
    return json.dumps(key, sort_keys=True, default=repr)


def plan(
    agents: Sequence[str],
    topologies: Sequence[str],
    runs: int,
    slots: int,
    seed: int,
    overrides: dict[str, Any],
    main: bool = True,
    sensitivity: bool = True,
    engine: str = "scalar",
    draws: str | None = None,
    device: str = "cpu",
) -> list[Task]:
    """All tasks of an experiment: the main study, then the sensitivity study.

    Run ``i`` uses seed ``seed + i`` for every agent (common random numbers). The sensitivity's
    preset variant on Erdős–Rényi has the same keys as the main study's runs there, so
    :func:`schedule` runs them once. Every task runs on ``engine`` (with ``draws``, on ``device``).
    """
    tasks: list[Task] = []
    overrides = {k: _freeze(v) for k, v in overrides.items()}
    base = tuple(sorted(overrides.items()))
    seeds = range(seed, seed + runs)
    on: dict[str, Any] = {"engine": engine, "draws": draws, "device": device}
    if main:
        tasks += [
            Task(t, a, s, slots, base, **on) for t in topologies for a in agents for s in seeds
        ]
    if sensitivity:
        for label, factors in SENSITIVITY_VARIANTS:
            fields = tuple(sorted({**overrides, **factors}.items()))
            tasks += [
                Task(SENSITIVITY_TOPOLOGY, a, s, slots, fields, SENSITIVITY, label, **on)
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


def batches(tasks: Iterable[Task]) -> list[tuple[Task, ...]]:
    """The units that execute: a scalar or compiled task alone, batched tasks grouped but by seed.

    The batched engine steps the runs of one (topology, agent, slots, config, draws) together, one
    network per seed; the groups keep the order of their first task, the tasks their order. A
    compiled run is one compiled call: alone, its unit spreads over the workers as a scalar run's
    does (an agent the compiled engine runs on the scalar path, e.g. spep-lstm, too).
    """
    groups: dict[Any, list[Task]] = {}
    for task in tasks:
        key: Any = task if task.engine != "batched" else dataclasses.replace(task, seed=0)
        groups.setdefault(key, []).append(task)
    return [tuple(group) for group in groups.values()]


def validate(
    agents: Sequence[str], topologies: Sequence[str], slots: int, overrides: dict[str, Any]
) -> None:
    """Fail before any run starts: unknown agents or topologies, bad config fields."""
    from agents.base import agent_config, check_inputs, make, names

    for name in ("topology", "episode_slots"):
        if name in overrides:
            option = "--topologies" if name == "topology" else "--slots"
            raise ValueError(f"--set {name}=...: use {option} to choose {name!r}")
    known = names()
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
            check_inputs(agent_config(make(name), cfg))
