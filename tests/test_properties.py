"""Invariants after every slot, over random valid configs and random actions (hypothesis)."""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import pytest
from conftest import stored_pairs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spep_gym.config import SpepConfig
from spep_gym.metrics import FAILED, IN_FLIGHT, NOT_ARRIVED, PREPOSITIONED, QUEUED, SERVED
from spep_gym.physics import decayed
from spep_gym.simulator import Simulator

SLOTS = 60


@st.composite
def configs(draw: st.DrawFn, max_nodes: int = 7) -> SpepConfig:
    """Tiny networks (the four generators or a custom graph with per-edge lengths and capacities),
    under every link-layer and physics option of SPEC section 9."""
    n = draw(st.integers(3, max_nodes))
    topology: Any = draw(
        st.sampled_from(["erdos_renyi", "random_regular", "small_world", "scale_free", "custom"])
    )
    fields: dict[str, Any] = {"num_nodes": n, "er_p": 0.6, "ba_m": 1, "ws_k": 2}
    if topology == "random_regular":
        fields["regular_degree"] = 2 if n % 2 else draw(st.sampled_from([2, 3]))
    if topology == "custom":
        g = nx.path_graph(n)
        g.add_edges_from((i, i + 2) for i in range(0, n - 2, 2))
        rng = draw(st.randoms(use_true_random=False))
        for u, v in g.edges:
            if rng.random() < 0.5:
                g.edges[u, v]["length_km"] = rng.choice([0.0, 5.0, 30.0])
            if rng.random() < 0.5:
                g.edges[u, v]["link_capacity"] = rng.randint(1, 3)
            if rng.random() < 0.3:
                g.edges[u, v]["p_gen"] = rng.choice([0.0, 1.0])
        topology = g
    fields["topology"] = topology
    f_min = draw(st.sampled_from([0.0, 0.3, 0.5, 0.7]))
    f0 = draw(st.floats(max(f_min, 0.26), 1.0))
    d_lo = draw(st.integers(0, 6))
    fields.update(
        episode_slots=SLOTS,
        F0=f0,
        F_min=f_min,
        p_gen=draw(st.sampled_from([0.1, 0.4, 0.9, 1.0])),
        rho=draw(st.sampled_from([0.8, 0.96, 1.0])),
        max_lifetime=draw(st.integers(0, 12)),
        link_capacity=draw(st.integers(1, 3)),
        swap_model=draw(st.sampled_from(["paper", "werner"])),
        swap_success=draw(st.sampled_from([0.0, 0.5, 0.9, 0.999])),
        routing=draw(st.sampled_from(["reactive", "shortest", "highest_fidelity"])),
        preposition_path=draw(st.sampled_from(["static", "available"])),
        preposition_rho=draw(st.sampled_from([None, 0.9, 1.0])),
        prediction_window=draw(st.integers(1, 10)),
        max_prepositioned=draw(st.integers(0, 4)),
        max_new_prepositions=draw(st.integers(0, 3)),
        arrival_rate=draw(st.sampled_from([0.2, 0.8, 2.0])),
        fidelity_req_range=draw(st.sampled_from([(0.3, 0.95), (0.6, 0.9), (0.5, 0.5)])),
        deadline_range=(d_lo, d_lo + draw(st.integers(0, 6))),
        num_hot_pairs=draw(st.integers(0, 2)),
        num_medium_pairs=draw(st.integers(1, 3)),
        action_len=draw(st.integers(1, 4)),
        link_pool_policy=draw(st.sampled_from(["block", "replace_oldest"])),
        cutoff_fidelity=draw(st.sampled_from([None, 0.0, 0.6, 0.85])),
        decay_model=draw(st.sampled_from(["paper", "depolarizing"])),
        signalling_latency=draw(st.sampled_from([0.0, 0.0, 0.3, 1.0, 2.5])),
        length_model=draw(st.sampled_from(["paper", "loss"])),
        fiber_loss_db_per_km=draw(st.sampled_from([0.0, 0.2, 1.0])),
    )
    return SpepConfig.from_dict(fields)


def check_slot(sim: Simulator, before: set, events: Any, seen_served: set, totals: dict) -> None:
    """Every invariant of the state after a step (decision point of the next slot, or the end)."""
    cfg, net, t, m = sim.cfg, sim.net, sim.t, sim.metrics
    # Capacity and the bookkeeping arrays agree.
    assert (sim.links.count <= net.capacity).all()
    assert (sim.links.count == (sim.links.created >= 0).sum(axis=1)).all()
    # Stored pairs: no pair used twice (a consumed or expired pair never stays), the new ones are
    # this slot's, and every pair's fidelity is F_create * rho_e**age, >= F_min, age <= max_lifetime.
    now = stored_pairs(sim)
    new = now - before
    assert all(c == t for _, c in new) and len(new) == events.pairs_generated
    gone = events.pairs_consumed + events.pairs_expired + events.pairs_replaced
    assert len(before - now) == gone
    if cfg.link_pool_policy == "block":
        assert events.pairs_replaced == 0
    # A link that waits for a swap's outcome generates nothing.
    busy = {e for e in range(net.num_links) if sim.links.busy_until[e] >= t}
    assert not any(e in busy for e, _ in new) or sim.done
    table = net.fidelity_table
    # After the last step no phase 1 runs: the pairs are those of the end of slot T - 1.
    t_now = t - 1 if sim.done else t
    floor = max(cfg.F_min, cfg.cutoff_fidelity or 0.0)
    for e, c in now:
        age = t_now - c
        f = table[e, age]
        assert f == decayed(float(net.F0[e]), float(net.rho[e]), age, cfg.decay_model)
        assert 0 <= age <= cfg.max_lifetime
        assert f >= floor or age == 0  # a fresh pair is checked against the floor next slot
    best = np.array(
        [
            max((table[e, t - c] for ee, c in now if ee == e), default=0.0)
            for e in range(net.num_links)
        ]
    )
    if not sim.done:
        np.testing.assert_array_equal(sim.link_fidelity(), best)
    # Link pair conservation.
    stored = int(sim.links.count.sum())
    assert m.pairs_generated == m.pairs_consumed + m.pairs_expired + m.pairs_replaced + stored
    # Pre-positions: limits (pairs in flight count toward K) and conservation; their fidelity
    # stays above F_min while held.
    flying = [f for f in sim.in_flight if f.request < 0]
    assert m.prepositions_in_flight == len(flying)
    assert len(sim.held) + len(flying) <= cfg.max_prepositioned
    assert len([f for f in flying if f.placed == events.slot]) <= cfg.max_new_prepositions
    assert m.prepositions_placed == m.prepositions_used + m.prepositions_expired + len(sim.held)
    for pair, f in sim.held_fidelities():
        assert 0 <= pair < net.num_pairs and f > 0
    assert all(f.due > t for f in sim.in_flight) or sim.done
    if cfg.signalling_latency == 0:
        assert not sim.in_flight and len(events.placed) <= cfg.max_new_prepositions
    # Requests: conservation, each served once, service within deadline with enough fidelity.
    queued, flying_requests = sim.queue_length, m.requests_in_flight
    assert m.arrived == m.served + m.failed + queued + flying_requests
    assert m.pending == queued + flying_requests
    w, rec = sim.workload, sim.records
    for r, how, fidelity, hops in events.served:
        assert r not in seen_served
        seen_served.add(r)
        assert fidelity >= w.F_req[r]
        # served in phase 5 of events.slot, or on arrival in phase 1 of the next slot
        assert rec["end_slot"][r] in (events.slot, events.slot + 1)
        latency = rec["end_slot"][r] - w.arrival[r]
        assert 0 <= latency <= w.deadline[r] - w.arrival[r]
        assert rec["status"][r] == SERVED
        assert hops >= 1
        totals["prepositioned"] += how == PREPOSITIONED
    for r in events.failed:
        assert rec["end_slot"][r] == w.deadline[r] == events.slot and rec["status"][r] == FAILED
    status = rec["status"]
    assert (status == SERVED).sum() == m.served and (status == FAILED).sum() == m.failed
    assert (status == IN_FLIGHT).sum() == flying_requests
    assert sorted(sim.queued_requests()) == np.flatnonzero(status == QUEUED).tolist()
    upcoming = w.arrival > t
    assert (status[upcoming] == NOT_ARRIVED).all()
    # The queue is in service order: priority (high first), deadline, arrival.
    keys = [(-w.priority[r], w.deadline[r], w.arrival[r], r) for r in sim.queued_requests()]
    assert keys == sorted(keys)
    totals["placed"] += len(events.placed)
    totals["served"] += len(events.served)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs(), seed=st.integers(0, 2**32 - 1))
def test_invariants_after_every_slot(cfg: SpepConfig, seed: int):
    run_and_check(cfg, seed)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs(max_nodes=16), seed=st.integers(0, 2**32 - 1), slots=st.integers(60, 400))
def test_invariants_after_every_slot_long(cfg: SpepConfig, seed: int, slots: int):
    run_and_check(cfg.replace(episode_slots=slots), seed)


def run_and_check(cfg: SpepConfig, seed: int) -> None:
    sim = Simulator(cfg)
    sim.reset(seed)
    rng = np.random.default_rng(seed)
    P = sim.net.num_pairs
    seen: set[int] = set()
    totals = {"placed": 0, "served": 0, "prepositioned": 0}
    before = stored_pairs(sim)
    while not sim.done:
        # Feasible pairs by the simulator's own view (often those of the queued requests, so that
        # pre-positioned pairs serve), mixed with random and out-of-range entries.
        feasible = np.flatnonzero(sim.preposition_fidelity() > 0)
        if rng.random() < 0.5:
            wanted = sim.workload.pair[sim.queued_requests()]
            feasible = np.concatenate([np.intersect1d(wanted, feasible), feasible])
        else:
            feasible = rng.permutation(feasible)
        action = rng.integers(-1, P + 2, size=cfg.action_len)
        k = min(len(feasible), rng.integers(0, cfg.action_len + 1))
        action[:k] = feasible[:k]
        snapshot = stored_pairs(sim)
        assert snapshot == before
        events = sim.step(action.tolist())
        check_slot(sim, before, events, seen, totals)
        before = stored_pairs(sim)
    s = sim.metrics.summary()
    if s["success_rate"] is not None:
        assert 0.0 <= s["success_rate"] <= 1.0
    if s["utilization"] is not None:
        assert 0.0 <= s["utilization"] <= 1.0
    assert s["pairs_delivered"] <= s["pairs_consumed"]
