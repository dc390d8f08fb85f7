"""The study engine ``compiled``: whole episodes of the non-learning agents in compiled code.

:func:`run_compiled` runs one episode per seed, each as one compiled call
(:func:`agents.compiled_policies.run`), and returns the result rows of
:func:`agents.run_episode` for the same agent, config and seeds, to the last bit. The agents it
compiles (:func:`compiled_policy`): ``noop`` and the three routing baselines, ``random``,
``spep-frequency`` (any threshold, min_fidelity, history_slots or routing), ``spep-oracle`` and
the managed family (:data:`MANAGED_AGENTS`, :mod:`agents.compiled_managed`).
Any other agent (:func:`covers`) runs on the
scalar path (:func:`agents.study.evaluate.run_episode`), with the same rows. numba loads only when
a compiled run starts (the ``fast`` extra).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from agents.base import Agent
from agents.controls import ManagedAgent
from spep_gym.config import SpepConfig
from spep_gym.topology import num_pairs
from spep_gym.workload import Workload

__all__ = [
    "COMPILED_AGENTS",
    "MANAGED_AGENTS",
    "compiled_policy",
    "covers",
    "iter_compiled",
    "run_compiled",
]

#: The managed family it compiles (agents.compiled_managed; managed-lstm/-arima stay Python).
MANAGED_AGENTS = (
    "managed", "managed-oracle", "managed-distribution", "managed-frequency", "managed-rates",
)  # fmt: skip
#: The registered agents the compiled engine runs in compiled code (at their registered classes).
COMPILED_AGENTS = (
    "noop", "reactive", "shortest", "highest_fidelity", "random", "spep-frequency", "spep-oracle",
    *MANAGED_AGENTS,
)  # fmt: skip


def _settings(agent: Agent) -> tuple[str, list[int], list[float]] | None:
    """The compiled policy of ``agent``: (kind, ints, floats), or None if it has none.

    Exact classes only: a subclass may act otherwise.
    """
    from agents.baselines import NoPreposition, RandomAgent
    from agents.oracle import OracleAgent
    from agents.predictors.frequency import FrequencyPredictor
    from agents.spep import SpepAgent

    kind = type(agent)
    if kind is NoPreposition:
        return "none", [], []
    if kind is RandomAgent:
        return "random", [], []
    if isinstance(agent, OracleAgent) and kind is OracleAgent:
        return "oracle", [agent.oracle_horizon], []
    if (
        isinstance(agent, SpepAgent)
        and kind is SpepAgent
        and type(agent.predictor) is FrequencyPredictor
    ):
        history = getattr(agent.predictor, "history_slots", None)
        settings = [agent.threshold, agent.min_fidelity]
        return "spep_frequency", [-1 if history is None else history], settings
    if isinstance(agent, ManagedAgent) and kind is ManagedAgent:
        from agents.compiled_managed import demand_kind

        try:
            demand_kind(agent)
        except ValueError:
            return None
        return "managed", [], []  # the settings: agents.compiled_managed.settings
    return None


def covers(agent: Agent, cfg: SpepConfig) -> bool:
    """True when the compiled engine runs ``agent`` on ``cfg`` in compiled code (any config)."""
    return _settings(agent) is not None


def compiled_policy(
    agent: Agent, cfg: SpepConfig, workload: Workload | None = None, seed: int | None = None
) -> Any:
    """A new :class:`agents.compiled_policies.Policy` of ``agent`` for an episode of ``cfg``.

    ``workload`` and ``seed`` are the episode's (a managed agent's demand table reads them).

    Raises:
        ValueError: ``agent`` has no compiled policy (one line naming those that have).
    """
    from agents.compiled_policies import KINDS, Policy

    settings = _settings(agent)
    if settings is None:
        raise ValueError(
            f"agent {agent.name!r} ({type(agent).__name__}) has no compiled policy: allowed "
            f"{', '.join(COMPILED_AGENTS)}"
        )
    kind, ints, floats = settings
    P = num_pairs(cfg.n)
    memory = np.zeros((24, P + 1) if kind == "spep_frequency" else (1, 1), dtype=np.int64)
    if kind == "spep_frequency":
        ints = [*ints, cfg.slots_per_day]
    int_array = np.array([*ints, 0], dtype=np.int64)
    float_array = np.array([*floats, 0.0], dtype=np.float64)
    table = np.zeros((1, 1))
    if kind == "managed":
        from agents.compiled_managed import settings as managed_settings

        assert isinstance(agent, ManagedAgent) and workload is not None
        int_array, float_array, memory, table = managed_settings(agent, cfg, workload, seed)
    return Policy(
        kind=KINDS[kind],
        action=np.full(cfg.action_len, P, dtype=np.int64),
        ints=int_array,
        floats=float_array,
        memory=memory,
        table=table,
        scratch=np.zeros(max(P, cfg.action_len), dtype=np.int64),
        values=np.zeros(P, dtype=np.float64),
    )


def run_compiled(
    agent: Agent,
    seeds: Sequence[int],
    cfg: SpepConfig,
    return_records: bool = False,
) -> list[dict[str, Any]]:
    """Run one episode of ``agent`` per seed; return their result rows, in order.

    The rows equal :func:`agents.study.evaluate.run_episode`'s (``wall_time_s`` aside); with
    ``return_records`` each holds its per-request records under ``"records"``. An agent or config
    the compiled engine does not cover (:func:`covers`) runs on the scalar path.
    """
    return list(iter_compiled(agent, seeds, cfg, return_records))


def iter_compiled(
    agent: Agent,
    seeds: Sequence[int],
    cfg: SpepConfig,
    return_records: bool = False,
) -> Iterator[dict[str, Any]]:
    """:func:`run_compiled`'s rows one by one, each as soon as its run has finished."""
    from agents.study.episode import result_row, run_episode

    if not covers(agent, cfg):
        for seed in seeds:
            yield run_episode(agent, seed, cfg, return_records=return_records)
        return
    from agents.compiled_policies import run
    from spep_gym.compiled import CompiledSimulator
    from spep_gym.compiled.episode import new_observation
    from spep_gym.simulator import request_records

    sim = CompiledSimulator(cfg)
    for seed in seeds:
        start = time.perf_counter()
        sim.reset(seed)
        policy = compiled_policy(agent, cfg, sim.workload, seed)
        obs = new_observation(sim._link_pair, cfg.n, cfg.queue_obs_size)
        # the agent's own stream: RandomAgent.reset(seed) (the other policies draw nothing)
        rng = np.random.default_rng([seed, 0x5EED])
        run(sim.state, sim.params, policy, obs, sim._gen_rng, sim._swap_rng, rng)
        sim.t = cfg.episode_slots
        row = result_row(agent, cfg, seed, sim.metrics.summary(), time.perf_counter() - start)
        if return_records:
            row["records"] = request_records(sim.workload, sim.records)
        yield row
