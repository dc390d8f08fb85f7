"""Helpers of the batched-core tests: run scalar environments and the batched simulator side by side.

``compare_runs`` steps one ``SpepEnv`` per seed and one ``BatchedSimulator`` over all seeds with the
scalar streams (``draws="scalar"``: both meet the same numbers) and the same actions, and asserts at
every decision point that every observation, action mask, reward and metric is equal bit for bit,
and at the end that the per-request records are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from spep_gym.batched import BatchedSimulator
from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv


def random_actions(masks: list[np.ndarray], P: int, A: int, rng: np.random.Generator) -> np.ndarray:
    """Feasible pairs in random order for most networks, arbitrary entries for some, none else."""
    acts = np.full((len(masks), A), P)
    for i, mask in enumerate(masks):
        u = rng.random()
        feasible = np.flatnonzero(mask[:P])
        if u < 0.6 and len(feasible):
            k = min(A, len(feasible))
            acts[i, :k] = rng.permutation(feasible)[:k]
        elif u < 0.8:
            acts[i] = rng.integers(0, P + 1, A)  # any pairs, P meaning "none"
    return acts


def assert_equal_state(envs: list[SpepEnv], sim: BatchedSimulator, where: str) -> None:
    """Every observation, mask and metric of the scalar envs equals the batched one's."""
    obs = {k: v.cpu().numpy() for k, v in sim.observation().items()}
    masks = sim.action_masks().cpu().numpy()
    summary = {k: v.cpu().numpy() for k, v in sim.summary().items()}
    for i, env in enumerate(envs):
        scalar = env._observation()
        assert set(scalar) == set(obs)
        for key, value in scalar.items():
            got = obs[key][i]
            assert value.dtype == got.dtype and np.array_equal(value, got), (
                f"{where}: network {i} observation {key!r}: "
                f"{np.flatnonzero(value != got)[:6].tolist()}"
            )
        assert np.array_equal(env.action_masks(), masks[i]), f"{where}: network {i} action mask"
        for key, value in env.sim.metrics.summary().items():
            got = summary[key][i]
            same = bool(np.isnan(got)) if value is None else value == got
            assert same, f"{where}: network {i} metric {key!r}: scalar {value!r}, batched {got!r}"


def compare_runs(
    cfg: SpepConfig, seeds: list[int], steps: int | None = None, action_seed: int = 0
) -> dict[str, float]:
    """Run both sides (see the module docstring); return the batched run's summed counters."""
    envs = [SpepEnv(cfg) for _ in seeds]
    for env, seed in zip(envs, seeds, strict=True):
        env.reset(seed=seed)
    sim = BatchedSimulator(cfg, num_envs=len(seeds), draws="scalar")
    sim.reset(seeds)
    P, A = envs[0].num_pairs, cfg.action_len
    rng = np.random.default_rng(action_seed)
    assert_equal_state(envs, sim, "reset")
    steps = cfg.episode_slots if steps is None else steps
    for step in range(steps):
        acts = random_actions([e.action_masks() for e in envs], P, A, rng)
        rewards = []
        truncated = []
        for env, act in zip(envs, acts, strict=True):
            _, reward, _, trunc, _ = env.step(act)
            rewards.append(reward)
            truncated.append(trunc)
        events = sim.step(torch.as_tensor(acts))
        batched = (
            cfg.reward_served * events.served_weight - cfg.reward_failed * events.failed_weight
        )
        assert rewards == batched.tolist(), f"step {step}: rewards"
        assert truncated == sim.done.tolist(), f"step {step}: truncation"
        assert_equal_state(envs, sim, f"step {step}")
        if all(truncated):
            break
    for i, env in enumerate(envs):
        scalar = env.sim.request_records()
        records = sim.request_records(i)
        for key, value in scalar.items():
            assert np.array_equal(value, records[key], equal_nan=True), f"network {i} records {key}"
    return {k: float(v.sum()) for k, v in sim.summary().items() if k in COUNTERS}


#: Counters a matrix case reports (to show which events a case exercised).
COUNTERS = (
    "served",
    "failed",
    "served_prepositioned",
    "prepositions_placed",
    "swap_failures",
    "queue_overflow",
    "pairs_replaced",
)


def small(**fields: Any) -> SpepConfig:
    """A small config for the fast suite (10 nodes, 50 slots) with ``fields`` over it."""
    values: dict[str, Any] = {"num_nodes": 10, "episode_slots": 50, "er_p": 0.4, **fields}
    return SpepConfig.from_dict(values)
