"""One run, the unit every study is made of: ``run_episode`` and the result row it returns.

Its own module so that the engines (:mod:`agents.study.compiled`) and :mod:`agents.study.evaluate`
(many runs) both build on it without importing each other.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from agents.base import Agent, agent_config, make
from agents.study.store import COLUMNS
from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv
from spep_gym.wrappers import BlankObservation

__all__ = ["result_row", "run_episode"]


def run_episode(
    agent: Agent | str,
    seed: int,
    config: Mapping[str, Any] | SpepConfig | None = None,
    return_records: bool = False,
    blank: Sequence[str] = (),
) -> dict[str, Any]:
    """Run one episode of ``agent`` from ``seed``; return its result row (section-6 metrics).

    The row holds :data:`COLUMNS` first, then every other counter and rate of
    :meth:`spep_gym.metrics.Metrics.summary` and the wall time. With ``return_records`` the
    per-request records come along under ``"records"``. ``blank`` names observation keys zeroed
    before the agent sees them (:class:`spep_gym.wrappers.BlankObservation`; the observation only:
    ``info`` and the environment the agent is given stay as they are); the row then says which,
    under ``"blank"``.
    """
    if isinstance(agent, str):
        agent = make(agent)
    cfg = agent_config(agent, config)
    env = SpepEnv(cfg)
    seen: Any = BlankObservation(env, tuple(blank)) if blank else env
    start = time.perf_counter()
    obs, info = seen.reset(seed=seed)
    agent.reset(seed=seed, env=env)
    truncated = False
    while not truncated:
        action = agent.act(obs, info)
        obs, _, _, truncated, info = seen.step(action)
    row = result_row(agent, cfg, seed, info["episode_metrics"], time.perf_counter() - start)
    if blank:
        row["blank"] = ",".join(blank)
    if return_records:
        row["records"] = env.sim.request_records()
    return row


def result_row(
    agent: Agent, cfg: SpepConfig, seed: int, metrics: Mapping[str, Any], wall: float
) -> dict[str, Any]:
    """The result row of a run: who and what, :data:`COLUMNS` first, the other metrics, the time."""
    row: dict[str, Any] = {
        "agent": agent.name,
        "topology": cfg.topology_name,
        "seed": seed,
        "slots": cfg.episode_slots,
    }
    row.update({k: metrics[k] for k in COLUMNS if k in metrics})
    row.update({k: v for k, v in metrics.items() if k not in row})
    row["wall_time_s"] = wall
    return row
