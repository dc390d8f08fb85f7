"""The batched simulator is the scalar model: with the same draws, equal step for step, bit for bit.

Each case runs one ``SpepEnv`` per seed and one ``BatchedSimulator`` over all seeds with the scalar
streams (``draws="scalar"``), the same random (mostly feasible) actions, and asserts equality of every
observation, mask, reward and metric after every step and of the per-request records at the end
(tests/batched_util.py). The cases cover every topology generator, a user graph with per-edge
attributes, every option of SPEC section 9 and the physical preset, the limits of the action, and
loaded networks where many requests are served in one slot.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import pytest
from batched_util import compare_runs, small
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spep_gym.config import TOPOLOGIES, SpepConfig


def attributed_graph() -> nx.Graph:
    """A 7-node graph whose edges override p_gen, F0, link_capacity and length_km."""
    g = nx.Graph()
    edges = [
        ("a", "b", {"length_km": 25.0, "F0": 0.95}),
        ("b", "c", {"p_gen": 0.3, "link_capacity": 3}),
        ("c", "d", {"length_km": 3.0}),
        ("a", "d", {}),
        ("d", "e", {"link_capacity": 2}),
        ("e", "f", {}),
        ("b", "f", {"F0": 0.97}),
        ("c", "f", {}),
        ("f", "g", {"length_km": 12.0}),
        ("g", "a", {}),
    ]
    for u, v, data in edges:
        g.add_edge(u, v, **data)
    return g


#: Loaded networks: many requests queued, several served per slot (the rounds of phase 5).
STRESS: dict[str, Any] = {
    "arrival_rate": 1.0,
    "deadline_range": (3, 30),
    "p_gen": 0.3,
    "episode_slots": 60,
}

#: The fast cases and the counters each must exercise (nonzero over its networks).
CASES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    **{f"topology={t}": ({"topology": t}, ()) for t in TOPOLOGIES},
    "user graph with edge attributes": ({"topology": attributed_graph(), "p_gen": 0.4}, ()),
    "routing=reactive": ({"routing": "reactive"}, ()),
    "routing=highest_fidelity": ({"routing": "highest_fidelity"}, ()),
    "preposition_path=available": ({"preposition_path": "available"}, ("prepositions_placed",)),
    "werner swaps, depolarizing decay, preposition_rho": (
        {"swap_model": "werner", "decay_model": "depolarizing", "preposition_rho": 0.99},
        (),
    ),
    "swap_success=0.7": ({"swap_success": 0.7}, ("swap_failures",)),
    "replace_oldest, capacity 2, cutoff": (
        {"link_pool_policy": "replace_oldest", "link_capacity": 2, "cutoff_fidelity": 0.7},
        ("pairs_replaced",),
    ),
    "signalling latency, highest_fidelity, user graph, length_model=loss": (
        {
            "signalling_latency": 0.3,
            "routing": "highest_fidelity",
            "topology": attributed_graph(),
            "length_model": "loss",
        },
        ("served",),
    ),
    "physical preset": ({"preset": "physical"}, ("served", "pairs_replaced")),
    "queue overflow, non-integer priority weights": (
        {"priority_weights": (0.1, 0.7, 1.3), "queue_capacity": 3, "arrival_rate": 0.5},
        ("queue_overflow",),
    ),
    "topology_seed, demand_pairs": (
        {"topology_seed": 5, "demand_pairs": ((0, 5, 2.0), (7, 2, 1.0), (3, 9, 1.0))},
        (),
    ),
    "limits: max_prepositioned=0, action_len=1, prediction_window=1": (
        {"max_prepositioned": 0, "action_len": 1, "prediction_window": 1, "reward_failed": 0.5},
        (),
    ),
    "loaded, shortest, capacity 2": (
        {**STRESS, "link_capacity": 2},
        ("served", "served_prepositioned"),
    ),
    "loaded, latency, swap_success, non-integer weights": (
        {
            **STRESS,
            "signalling_latency": 0.4,
            "swap_success": 0.9,
            "priority_weights": (0.1, 0.7, 1.3),
        },
        ("served", "swap_failures"),
    ),
}

#: Further cases for the slow suite.
SLOW_CASES: dict[str, dict[str, Any]] = {
    "cutoff_fidelity=0.7": {"cutoff_fidelity": 0.7},
    "signalling_latency=0.5": {"signalling_latency": 0.5},
    "latency, highest_fidelity": {"signalling_latency": 0.5, "routing": "highest_fidelity"},
    "physical, highest_fidelity, available, swap_success": {
        "preset": "physical",
        "routing": "highest_fidelity",
        "preposition_path": "available",
        "swap_success": 0.9,
    },
    "capacity 3, highest_fidelity, swap_success": {
        "link_capacity": 3,
        "routing": "highest_fidelity",
        "swap_success": 0.8,
    },
    "no pre-positioning (max_new_prepositions=0)": {"max_new_prepositions": 0},
    "loaded, shortest": {**STRESS, "episode_slots": 120},
    "loaded, reactive": {**STRESS, "routing": "reactive", "link_capacity": 2},
    "loaded, highest_fidelity": {**STRESS, "routing": "highest_fidelity", "link_capacity": 2},
    "loaded, available, replace_oldest": {
        **STRESS,
        "preposition_path": "available",
        "link_capacity": 2,
        "link_pool_policy": "replace_oldest",
    },
}


@pytest.mark.parametrize("name", list(CASES))
def test_batched_equals_scalar(name: str) -> None:
    fields, exercised = CASES[name]
    totals = compare_runs(small(**fields), seeds=[0, 1, 2])
    assert totals["served"] + totals["failed"] > 0  # the case has requests that ended
    for counter in exercised:
        assert totals[counter] > 0, f"the case should exercise {counter}"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SLOW_CASES))
def test_batched_equals_scalar_more_options(name: str) -> None:
    # 120 slots unless the case sets its own (the loaded ones do: STRESS)
    compare_runs(small(**{"episode_slots": 120, **SLOW_CASES[name]}), seeds=[0, 1, 2, 3])


def test_one_slot_episodes() -> None:
    compare_runs(small(episode_slots=1), seeds=[0, 1])


def test_more_nodes_than_bit_sets_hold() -> None:
    """70 nodes: the searches leave the 62-node bit sets for the general breadth-first search."""
    g = nx.cycle_graph(70)
    g.add_edges_from([(0, 35), (10, 50), (20, 60), (5, 6)])
    for fields in ({}, {"preposition_path": "available"}):
        cfg = SpepConfig.from_dict(
            {"topology": g, "episode_slots": 6, "p_gen": 0.6, "arrival_rate": 1.0, **fields}
        )
        compare_runs(cfg, seeds=[0])


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    topology=st.sampled_from(TOPOLOGIES),
    routing=st.sampled_from(["reactive", "shortest", "highest_fidelity"]),
    preposition_path=st.sampled_from(["static", "available"]),
    swap_model=st.sampled_from(["paper", "werner"]),
    decay_model=st.sampled_from(["paper", "depolarizing"]),
    policy=st.sampled_from(["block", "replace_oldest"]),
    capacity=st.integers(1, 3),
    latency=st.sampled_from([0.0, 0.3, 1.0]),
    swap_success=st.sampled_from([1.0, 0.85]),
    cutoff=st.sampled_from([None, 0.65]),
    arrival_rate=st.sampled_from([0.2, 0.8]),
    seed=st.integers(0, 10**6),
)
def test_random_configs(
    topology: str,
    routing: str,
    preposition_path: str,
    swap_model: str,
    decay_model: str,
    policy: str,
    capacity: int,
    latency: float,
    swap_success: float,
    cutoff: float | None,
    arrival_rate: float,
    seed: int,
) -> None:
    cfg = small(
        num_nodes=8,
        episode_slots=40,
        er_p=0.5,
        topology=topology,
        routing=routing,
        preposition_path=preposition_path,
        swap_model=swap_model,
        decay_model=decay_model,
        link_pool_policy=policy,
        link_capacity=capacity,
        signalling_latency=latency,
        swap_success=swap_success,
        cutoff_fidelity=cutoff,
        arrival_rate=arrival_rate,
        p_gen=0.25,
    )
    compare_runs(cfg, seeds=[seed, seed + 1], action_seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("preset", ["paper", "physical"])
def test_batched_equals_scalar_16_nodes(topology: str, preset: str) -> None:
    """The presets themselves (16 nodes), 500 slots into business hours, 4 networks."""
    cfg = SpepConfig.from_dict({"preset": preset, "topology": topology, "episode_slots": 500})
    compare_runs(cfg, seeds=[0, 1, 2, 3])


@pytest.mark.slow
@pytest.mark.parametrize(
    "fields",
    [
        {"link_capacity": 2},
        {"routing": "highest_fidelity", "swap_success": 0.9},
        {"signalling_latency": 0.5, "routing": "highest_fidelity"},
        {"preposition_path": "available", "link_pool_policy": "replace_oldest"},
    ],
    ids=["capacity 2", "highest_fidelity", "latency", "available"],
)
def test_batched_equals_scalar_loaded_16_nodes(fields: dict[str, Any]) -> None:
    cfg = SpepConfig.from_dict({**STRESS, "episode_slots": 300, **fields})  # 16 nodes
    compare_runs(cfg, seeds=[0, 1, 2, 3, 4, 5])
