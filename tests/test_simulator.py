"""Each phase of a slot on its own, on small hand-set states, and the topology generators."""

from __future__ import annotations

import copy

import networkx as nx
import numpy as np
import pytest
from conftest import line_graph, set_links, trace_config

from spep_gym.config import SpepConfig
from spep_gym.metrics import FAILED, ON_DEMAND, PREPOSITIONED, QUEUED, SERVED
from spep_gym.routing import STRATEGIES, static_path
from spep_gym.simulator import Preposition, Simulator, SlotEvents
from spep_gym.topology import Network, generate_graph

F0, RHO = 0.92, 0.96


def factor(f: float) -> float:
    """Paper eq. 2's per-link factor."""
    return (3 * f + 1) / 4


def expiry_age(f: float, window: int = 15, f_min: float = 0.5) -> int:
    """Slots a pre-positioned pair of fidelity f stays: the window, or until below F_min."""
    return next((k for k in range(1, window) if f * RHO**k < f_min), window)


def line_sim(tmp_path, requests=(), **fields) -> Simulator:
    """Line 0-1-2-3 (links 0: 0-1, 1: 1-2, 2: 2-3), nothing generated unless set, reset at slot 0."""
    graph = line_graph(4)
    cfg = trace_config(tmp_path, graph, list(requests) or [(30, 0, 1, 0.6, 35, 1)], p_gen=0.0)
    sim = Simulator(cfg.replace(**fields))
    sim.reset(0)
    return sim


def test_discard_expired_by_age_by_fidelity_and_prepositions(tmp_path):
    graph = line_graph(4, link_capacity=2)
    graph.edges[2, 3]["length_km"] = 40.0  # decays by 0.96**4 per slot: lifetime 4 slots
    cfg = trace_config(tmp_path, graph, [(30, 0, 1, 0.6, 35, 1)], p_gen=0.0)
    sim = Simulator(cfg)
    sim.reset(0)
    assert sim.net.lifetime.tolist() == [15, 15, 4]
    sim.t = 20
    set_links(sim, {0: [5, 10], 1: [6], 2: [16, 17]})
    sim.held = [Preposition(1, 0.9, 5, 2, 20), Preposition(2, 0.9, 6, 3, 21)]
    events = SlotEvents(slot=19)
    sim.discard_expired(events)
    assert sim.links.created.tolist() == [[-1, 10], [6, -1], [-1, 17]]
    assert sim.links.count.tolist() == [1, 1, 1]
    assert sim.links.youngest.tolist() == [10, 6, 17]
    assert events.pairs_expired == sim.metrics.pairs_expired == 2
    assert [p.expiry for p in sim.held] == [21]
    assert events.prepositions_expired == sim.metrics.prepositions_expired == 1


def test_generate_links_one_draw_per_link_only_where_free(tmp_path):
    graph = line_graph(4)
    graph.edges[0, 1].update(p_gen=1.0, link_capacity=2)
    graph.edges[1, 2]["p_gen"] = 0.0
    graph.edges[2, 3].update(p_gen=1.0, link_capacity=1)
    cfg = trace_config(tmp_path, graph, [(30, 0, 1, 0.6, 35, 1)])
    sim = Simulator(cfg)
    sim.reset(0)
    sim.t = 3
    set_links(sim, {0: [2], 2: [1]})
    expected_rng = copy.deepcopy(sim._gen_rng)
    expected_rng.random(3)
    events = SlotEvents(slot=2)
    sim.generate_links(events)
    assert sim.links.created.tolist() == [[2, 3], [-1, -1], [1, -1]]
    assert sim.links.count.tolist() == [2, 0, 1] and sim.links.youngest.tolist() == [3, -1, 1]
    assert events.pairs_generated == 1
    assert sim._gen_rng.bit_generator.state == expected_rng.bit_generator.state
    # The routing view is refreshed: link 0's best pair is the new one.
    np.testing.assert_allclose(sim.link_fidelity(), [F0, 0.0, F0 * RHO**2], rtol=1e-15)


def test_admit_arrivals_orders_by_priority_deadline_arrival_then_file(tmp_path):
    requests = [
        (0, 0, 1, 0.6, 5, 1),
        (0, 1, 2, 0.6, 8, 3),
        (0, 2, 3, 0.6, 4, 3),
        (0, 0, 3, 0.6, 5, 1),
        (1, 1, 3, 0.6, 5, 1),
        (1, 0, 2, 0.6, 4, 1),
    ]
    sim = line_sim(tmp_path, requests)
    # reset ran slot 0's phases 1-3
    assert sim.queued_requests() == [2, 1, 0, 3]
    assert sim.metrics.arrived == 4
    sim.t = 1
    events = SlotEvents(slot=0)
    sim.admit_arrivals(events)
    assert events.arrived == [4, 5]
    assert sim.queued_requests() == [2, 1, 5, 0, 3, 4]
    assert (sim.records["status"] == QUEUED).all()


def test_preposition_in_order_within_limits(tmp_path):
    sim = line_sim(tmp_path, link_capacity=2, max_new_prepositions=2)
    t = sim.t = 5
    set_links(sim, {0: [4, 5], 1: [2, 3]})
    pair = sim.net.pair_index
    events = SlotEvents(slot=5)
    action = [6, 99, -1, int(pair[0, 3]), int(pair[0, 2]), int(pair[0, 1]), int(pair[1, 2])]
    sim.preposition(action, events)
    f02 = factor(F0) * factor(F0 * RHO**2)
    f01 = factor(F0 * RHO)
    assert events.placed == [
        (pair[0, 2], pytest.approx(f02, rel=1e-14), 2),
        (pair[0, 1], pytest.approx(f01, rel=1e-14), 1),
    ]
    # Youngest pairs consumed; the third choice (1, 2) is possible but over the per-slot limit.
    assert sim.links.created.tolist() == [[-1, -1], [2, -1], [-1, -1]]
    assert events.pairs_consumed == 3
    assert [(p.pair, p.placed, p.hops) for p in sim.held] == [
        (pair[0, 2], t, 2),
        (pair[0, 1], t, 1),
    ]
    # Usable for prediction_window slots unless it decays below F_min first.
    assert [p.expiry for p in sim.held] == [t + expiry_age(f02), t + expiry_age(f01)]
    assert expiry_age(f02) == 13 and expiry_age(f01) == 15
    # K: with K - 1 held, only one more is placed.
    sim.held = sim.held[:1]
    set_links(sim, {0: [5], 1: [5]})
    sim2 = copy.deepcopy(sim)
    sim2.cfg = sim.cfg.replace(max_prepositioned=2)
    events = SlotEvents(slot=5)
    sim2.preposition([int(pair[0, 1]), int(pair[1, 2])], events)
    assert [p[0] for p in events.placed] == [pair[0, 1]] and len(sim2.held) == 2


def test_preposition_expiry_when_fidelity_falls_below_f_min(tmp_path):
    sim = line_sim(tmp_path)
    set_links(sim, {0: [0], 1: [0], 2: [0]})
    sim.preposition([int(sim.net.pair_index[0, 3])], SlotEvents(slot=0))
    (p,) = sim.held
    f = factor(F0) ** 3
    assert p.fidelity == pytest.approx(f, rel=1e-14)
    assert p.expiry == expiry_age(f) == 13  # 0.830584 * 0.96**13 = 0.4886 < 0.5


def test_failed_swap_places_nothing(tmp_path):
    sim = line_sim(tmp_path, swap_success=0.0)
    set_links(sim, {0: [0], 1: [0]})
    events = SlotEvents(slot=0)
    sim.preposition([int(sim.net.pair_index[0, 2]), int(sim.net.pair_index[0, 1])], events)
    assert events.placed == [] and sim.held == []
    assert events.swap_failures == 1 and events.pairs_consumed == 2
    assert sim.links.count.tolist() == [0, 0, 0]
    # One-hop pairs need no swap: they are placed whatever swap_success is.
    set_links(sim, {0: [0]})
    sim.preposition([int(sim.net.pair_index[0, 1])], events)
    assert len(sim.held) == 1


def test_serve_prepositioned_lowest_sufficient_first_then_on_demand(tmp_path):
    requests = [
        (0, 0, 3, 0.6, 10, 3),  # no path now: waits, blocks nobody
        (0, 2, 0, 0.75, 10, 2),  # reversed direction of pair (0, 2)
        (0, 0, 2, 0.85, 10, 1),
        (0, 0, 1, 0.9, 10, 1),  # on demand over link 0: (3 * 0.92 + 1) / 4 = 0.94
        (0, 1, 2, 0.95, 10, 1),  # link 1 gives 0.94 < 0.95: waits, consumes nothing
    ]
    sim = line_sim(tmp_path, requests)
    a02 = int(sim.net.pair_index[0, 2])
    sim.t = 2
    set_links(sim, {0: [2], 1: [2]})
    sim.held = [Preposition(a02, 0.9 / RHO**2, 0, 2, 15), Preposition(a02, 0.8 / RHO**2, 0, 2, 15)]
    events = SlotEvents(slot=2)
    sim.serve(events)
    served = {r: (how, f, h) for r, how, f, h in events.served}
    assert served == {
        1: (PREPOSITIONED, pytest.approx(0.8), 2),
        2: (PREPOSITIONED, pytest.approx(0.9), 2),
        3: (ON_DEMAND, pytest.approx(factor(F0)), 1),
    }
    assert sim.queued_requests() == [0, 4]
    assert sim.links.count.tolist() == [0, 1, 0]  # request 4 took nothing
    assert (sim.records["status"][[1, 2, 3]] == SERVED).all()
    assert sim.records["end_slot"][[1, 2, 3]].tolist() == [2, 2, 2]
    assert sim.metrics.prepositions_used == 2 and sim.metrics.pairs_delivered == 5
    assert events.served_weight == 4.0 and sim.held == []


def test_fail_overdue_at_end_of_deadline_slot(tmp_path):
    requests = [(0, 0, 3, 0.99, 5, 2), (0, 0, 3, 0.99, 6, 1), (0, 0, 3, 0.99, 5, 1)]
    sim = line_sim(tmp_path, requests)
    sim.t = 5
    events = SlotEvents(slot=5)
    sim.fail_overdue(events)
    assert events.failed == [0, 2] and sim.queued_requests() == [1]
    assert events.failed_weight == 3.0 == sim.metrics.failed_weight
    assert sim.records["status"].tolist() == [FAILED, QUEUED, FAILED]
    assert sim.records["end_slot"].tolist() == [5, -1, 5]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generators_give_connected_graphs_of_the_right_kind(seed):
    for topology in ("erdos_renyi", "random_regular", "small_world", "scale_free"):
        cfg = SpepConfig(topology=topology)
        graph = generate_graph(cfg, np.random.default_rng(seed))
        assert nx.is_connected(graph) and graph.number_of_nodes() == 16
        assert sorted(graph.nodes) == list(range(16))
        again = generate_graph(cfg, np.random.default_rng(seed))
        assert sorted(again.edges) == sorted(graph.edges)
        degrees = [d for _, d in graph.degree]
        if topology == "random_regular":
            assert set(degrees) == {3}
        elif topology == "small_world":
            assert graph.number_of_edges() == 16 * 4 // 2  # rewiring keeps the edge count
        elif topology == "scale_free":
            assert graph.number_of_edges() == 2 * (16 - 2) and min(degrees) >= 2


def test_disconnected_draw_is_redrawn_from_the_seed():
    cfg = SpepConfig(er_p=0.12)
    redrawn = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        first = nx.gnp_random_graph(16, 0.12, seed=int(rng.integers(2**32)))
        graph = generate_graph(cfg, np.random.default_rng(seed))
        assert nx.is_connected(graph)
        if not nx.is_connected(first):
            redrawn += 1
            second = nx.gnp_random_graph(16, 0.12, seed=int(rng.integers(2**32)))
            if nx.is_connected(second):
                assert sorted(graph.edges) == sorted(second.edges)
        else:
            assert sorted(graph.edges) == sorted(first.edges)
    assert redrawn >= 5


def test_topology_seed_fixes_the_graph_none_draws_per_seed():
    def edges(cfg: SpepConfig, seed: int) -> list:
        sim = Simulator(cfg)
        sim.reset(seed)
        return sim.net.edges.tolist()

    fixed = SpepConfig.tiny(num_nodes=12, topology_seed=4, episode_slots=5)
    assert edges(fixed, 0) == edges(fixed, 1) == edges(fixed, 2)
    assert edges(fixed, 0) != edges(fixed.replace(topology_seed=5), 0)
    free = fixed.replace(topology_seed=None)
    assert edges(free, 0) == edges(free, 0)
    assert len({str(edges(free, s)) for s in range(5)}) >= 4


def test_user_graph_relabelled_in_sorted_label_order():
    g = nx.Graph()
    g.add_edge("c", "a", p_gen=0.5)
    g.add_edge("a", "b", F0=0.8)
    g.add_edge("d", "c", link_capacity=3, length_km=20.0)
    net = Network.build(
        generate_graph(SpepConfig(topology=g), np.random.default_rng(0)), SpepConfig(topology=g)
    )
    assert net.edges.tolist() == [[0, 1], [0, 2], [2, 3]]
    assert net.p_gen.tolist() == [0.12, 0.5, 0.12]
    assert net.F0.tolist() == [0.8, 0.92, 0.92]
    assert net.capacity.tolist() == [1, 1, 3]
    assert net.rho.tolist() == [0.96, 0.96, 0.96**2]


def test_tie_rules_of_static_path_and_routing():
    """On the 4-cycle 0-1-2-3-0 both 2-hop paths from 0 to 2 tie: the one via the lower id wins."""
    g = nx.cycle_graph(4)
    cfg = SpepConfig(topology=g)
    net = Network.build(generate_graph(cfg, np.random.default_rng(0)), cfg)
    via_1 = {int(net.edge_id[0, 1]), int(net.edge_id[1, 2])}
    assert set(static_path(net, 0, 2)) == via_1
    usable, cost = [True] * 4, [0.1] * 4
    for name, route in STRATEGIES.items():
        assert set(route(net, usable, cost, 0, 2)) == via_1, name
    usable[net.edge_id[1, 2]] = False
    via_3 = {int(net.edge_id[0, 3]), int(net.edge_id[2, 3])}
    assert set(STRATEGIES["shortest"](net, usable, cost, 0, 2)) == via_3
    assert set(STRATEGIES["highest_fidelity"](net, usable, cost, 0, 2)) == via_3
    assert STRATEGIES["reactive"](net, usable, cost, 0, 2) is None
