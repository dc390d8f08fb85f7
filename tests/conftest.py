"""Shared helpers for the simulator and environment tests: small hand-made networks and traces."""

from __future__ import annotations

import os

# The LSTM's numbers depend on oneDNN's kernels (AVX2 against AVX-512/AMX): pinned for every test
# process before torch loads, so fewer CPUs need golden rows of their own (tests/test_golden.py).
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest

from spep_gym.config import SpepConfig
from spep_gym.simulator import Simulator
from spep_gym.workload import TRACE_COLUMNS

Request = tuple[int, int, int, float, int, float]  # slot, source, destination, F_req, t_d, priority


@pytest.fixture
def tiny() -> SpepConfig:
    """A 6-node config with short episodes."""
    return SpepConfig.tiny(episode_slots=60)


def write_trace(path: Path, rows: Iterable[Request]) -> str:
    """Write a request trace CSV (SPEC section 4) and return its path."""
    lines = [",".join(TRACE_COLUMNS)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def line_graph(n: int, **edge_attrs: Any) -> nx.Graph:
    """Nodes 0 - 1 - ... - n-1, every edge with ``edge_attrs``."""
    g = nx.path_graph(n)
    nx.set_edge_attributes(g, {e: dict(edge_attrs) for e in g.edges})
    return g


def trace_config(
    tmp_path: Path, graph: nx.Graph, requests: Sequence[Request], **fields: Any
) -> SpepConfig:
    """A config on ``graph`` driven by ``requests`` (a trace), p_gen = 1 unless overridden."""
    trace = write_trace(tmp_path / "trace.csv", requests)
    values: dict[str, Any] = {"topology": graph, "trace": trace, "p_gen": 1.0, "episode_slots": 40}
    values.update(fields)
    return SpepConfig.from_dict(values)


def reproduce_options(out: Path, **kw: Any) -> Any:
    """A small ``spep reproduce`` (shortest on one topology, 2 runs of 60 slots, no extras)."""
    from agents.study import reproduce

    values: dict[str, Any] = {
        "agents": ("shortest",),
        "topologies": ("erdos_renyi",),
        "runs": 2,
        "slots": 60,
        "out": out,
        "jobs": 1,
        "sensitivity": False,
        "figures": False,
        "progress": False,
        **kw,
    }
    return reproduce.Options(**values)


def run(sim: Simulator, actions: dict[int, list[int]] | None = None, seed: int = 0) -> list:
    """Reset ``sim`` and run the episode; ``actions`` maps a slot to its pre-positioning list."""
    actions = actions or {}
    sim.reset(seed)
    events = []
    while not sim.done:
        events.append(sim.step(actions.get(sim.t, [])))
    return events


def set_links(sim: Simulator, pairs: dict[int, Sequence[int]]) -> None:
    """Hand-set the stored link pairs: link -> creation slots of its pairs (others emptied)."""
    sim.links.created[:] = -1
    for e, slots in pairs.items():
        sim.links.created[e, : len(slots)] = slots
    sim.links.count[:] = (sim.links.created >= 0).sum(axis=1)
    sim.links.youngest[:] = sim.links.created.max(axis=1)
    sim.links.refresh(sim.t)


def stored_pairs(sim: Simulator) -> set[tuple[int, int]]:
    """Every stored link pair as (link, creation slot): at most one pair per link per slot."""
    links, cols = np.nonzero(sim.links.created >= 0)
    return {(int(e), int(sim.links.created[e, c])) for e, c in zip(links, cols, strict=True)}


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tolist())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def trajectory_hash(config: dict[str, Any], seed: int, steps: int) -> str:
    """SHA-256 of the observations, rewards and infos of a seeded run with seeded random actions.

    A plain function (not a fixture) so that another process can import and run it.
    """
    from spep_gym.env import SpepEnv

    env = SpepEnv(SpepConfig.tiny(**config))
    digest = hashlib.sha256()
    obs, info = env.reset(seed=seed)
    digest.update(repr(_plain([obs, info])).encode())
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(random_actions(env, rng))
        digest.update(repr(_plain([obs, reward, terminated, truncated, info])).encode())
        if truncated:
            break
    return digest.hexdigest()


def random_actions(env: Any, rng: np.random.Generator) -> np.ndarray:
    """Feasible node pairs first (by the mask), in random order: an agent that really places."""
    P = env.num_pairs
    feasible = np.flatnonzero(env.action_masks()[:P])
    action = np.full(env.config.action_len, P)
    k = min(len(action), len(feasible))
    action[:k] = rng.permutation(feasible)[:k]
    return action


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Exact equality of nested dicts, lists and arrays (floats bit for bit)."""
    assert _plain(a) == _plain(b), where


def run_jitted(code: str, cwd: str | Path = Path(__file__).parent) -> None:
    """Run ``code`` in a fresh interpreter with numba's JIT on; it must exit 0 and print ``ok`` last.

    The fast suite runs the compiled engine as plain Python (``NUMBA_DISABLE_JIT=1``, for
    coverage); this is its check that the same functions also compile and agree.
    """
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_DISABLE_JIT": "0"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
