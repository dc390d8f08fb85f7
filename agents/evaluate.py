"""Running agents on episodes: one run (``run_episode``) is the unit every experiment is made of."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from agents.base import Agent, make
from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv

# Columns every result row has (the CSV of ``spep evaluate`` and ``spep reproduce``), in order.
COLUMNS = (
    "agent", "topology", "seed", "slots", "success_rate", "avg_latency", "avg_fidelity",
    "utilization", "arrived", "served", "failed", "pending", "pairs_generated",
    "prepositions_placed", "prepositions_used",
)  # fmt: skip


def agent_config(agent: Agent, config: Mapping[str, Any] | SpepConfig | None) -> SpepConfig:
    """The config a run of ``agent`` uses: the user's fields plus the agent's own settings.

    A user field that contradicts a setting the agent is defined by (e.g. ``routing`` for a baseline)
    is an error rather than silently overridden.
    """
    if isinstance(config, SpepConfig):
        base, fields = config, {}
    else:
        base, fields = SpepConfig(), dict(config or {})
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
