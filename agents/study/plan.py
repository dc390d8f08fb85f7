"""What a study runs: the paper's plan of (topology, agent, seed) runs, and each run's key.

A :class:`Task` is one run; its key (topology, agent, seed, slots and a hash of the config
overrides) names its run file, so that a run is reused only for the same config. :func:`plan` lists
the tasks of the main study and the sensitivity study, :func:`schedule` the unique runs in the order
they start, and :func:`validate` checks a plan before any run starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agents.baselines import BASELINES
from agents.study.paper import SPEP_AGENTS
from agents.study.tables import ORACLE
from spep_gym.config import TOPOLOGIES

#: The paper's agents (spec section 7): its baselines, its SPEP variants, and the oracle reference.
PAPER_AGENTS = (*BASELINES, *SPEP_AGENTS, ORACLE)
#: The controls every study runs beside them (SPEC section 10): random pre-positioning flushes
#: links as much as SPEP does, so only a gain over it can be credited to prediction.
CONTROLS = ("random",)
#: What ``spep reproduce`` runs by default: the paper's agents and the controls.
STUDY_AGENTS = (*BASELINES, *CONTROLS, *SPEP_AGENTS, ORACLE)
#: Slow agents start first, so that the last minutes are not one long run on one core.
SLOW_AGENTS = ("spep-arima", "spep-lstm")

#: The sensitivity study: one factor at a time from the paper preset, on Erdős–Rényi.
SENSITIVITY_TOPOLOGY = "erdos_renyi"
SENSITIVITY_AGENTS = ("shortest", *CONTROLS, "spep-frequency", "spep-oracle")
SENSITIVITY_VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("paper preset", {}),
    ("link_capacity=2", {"link_capacity": 2}),
    ("arrival_rate=0.5", {"arrival_rate": 0.5}),
    ("arrival_rate=1.0", {"arrival_rate": 1.0}),
    ("preposition_rho=1.0", {"preposition_rho": 1.0}),
    ("swap_model=werner", {"swap_model": "werner"}),
)

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
        """The run's config fields: the overrides, its topology and its slots."""
        return {**dict(self.overrides), "topology": self.topology, "episode_slots": self.slots}

    @property
    def config_hash(self) -> str:
        """Hash of slots and overrides: a run file is reused only for the same config."""
        text = json.dumps({"slots": self.slots, "overrides": self.overrides}, default=repr)
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    @property
    def key(self) -> dict[str, Any]:
        """What identifies the run in its file: a file counts as done only with the same key."""
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
        """The run file's name, ``<topology>__<agent>__<seed>__<config hash>.json``."""
        return f"{self.topology}__{self.agent}__{self.seed}__{self.config_hash}.json"


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
) -> list[Task]:
    """All tasks of an experiment: the main study, then the sensitivity study.

    Run ``i`` uses seed ``seed + i`` for every agent (common random numbers). The sensitivity's
    preset variant on Erdős–Rényi has the same keys as the main study's runs there, so
    :func:`schedule` runs them once.
    """
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
    from agents.study.evaluate import agent_config

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
