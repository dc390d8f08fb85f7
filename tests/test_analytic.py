"""Known answers on tiny networks, worked out by hand in each test's docstring.

Defaults used throughout: F0 = 0.92, rho = 0.96, F_min = 0.5, max_lifetime = 15, p_gen = 1 (every
free link gets a pair every slot), so everything but the workload's own draws is deterministic.
A pair of age a has fidelity 0.92 * 0.96**a; 0.92 * 0.96**14 = 0.5195 >= 0.5 but
0.92 * 0.96**15 = 0.4987 < 0.5, so a link pair lives 15 slots (ages 0..14).
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from conftest import line_graph, run, trace_config

from spep_gym.config import SpepConfig
from spep_gym.metrics import FAILED, ON_DEMAND, PREPOSITIONED, SERVED
from spep_gym.simulator import Simulator
from spep_gym.topology import Network, generate_graph
from spep_gym.workload import arrival_rates, draw_demand_pairs, generate, hour_of_day

F0, RHO = 0.92, 0.96
approx = pytest.approx


def paper(*fidelities: float) -> float:
    """Paper eq. 2 literally: prod (3 F_i + 1) / 4."""
    return float(np.prod([(3 * f + 1) / 4 for f in fidelities]))


def werner(*fidelities: float) -> float:
    w = np.prod([(4 * f - 1) / 3 for f in fidelities])
    return float((1 + 3 * w) / 4)


def records(sim: Simulator) -> dict[str, list]:
    return {k: v.tolist() for k, v in sim.request_records().items()}


def test_one_link_service_decay_and_expiry(tmp_path):
    """One link 0-1, p_gen = 1, capacity 1.

    - Slot 0: a pair is made (age 0). Nothing asks for it until request 0 arrives at slot 4 (F_req
      0.5): served at once with the pair of age 4, delivered fidelity (3 * 0.92 * 0.96**4 + 1) / 4
      (eq. 2 at h = 1, literally), latency 0.
    - Slot 5: a new pair (the old one was consumed). Request 1 arrives at slot 10 asking F_req = 0.9,
      i.e. a link pair of at least (4 * 0.9 - 1) / 3 = 0.8667: the pair made at 5 has
      0.92 * 0.96**5 = 0.750, too low. It expires in phase 1 of slot 5 + 15 = 20, a fresh pair
      (0.94 delivered) is made in phase 2 of slot 20 and serves request 1 then: latency 10.
    - Request 2 arrives at 21 asking 0.95 > 0.94, the best this link can give: it fails at the end of
      its deadline slot 24.
    - Generated: slots 0, 5, 20, 21 (after 20's pair was consumed), and 36 when 21's expires = 5 pairs
      in 40 slots; consumed 2; expired 2 (made at 5 and 21); stored 1.
    """
    g = nx.Graph([(0, 1)])
    requests = [(4, 0, 1, 0.5, 6, 1), (10, 1, 0, 0.9, 30, 1), (21, 0, 1, 0.95, 24, 2)]
    sim = Simulator(trace_config(tmp_path, g, requests))
    events = run(sim)
    rec = records(sim)
    assert rec["status"] == [SERVED, SERVED, FAILED]
    assert rec["end_slot"] == [4, 20, 24]
    assert rec["how"] == [ON_DEMAND, ON_DEMAND, 0]
    assert rec["fidelity"][:2] == [approx((3 * F0 * RHO**4 + 1) / 4), approx((3 * F0 + 1) / 4)]
    assert [e.slot for e in events if e.failed] == [24]
    generated_at = [e.slot + 1 for e in events if e.pairs_generated] + [0]
    assert sorted(generated_at) == [0, 5, 20, 21, 36]
    m = sim.metrics
    assert (m.pairs_generated, m.pairs_consumed, m.pairs_expired) == (5, 2, 2)
    assert sim.links.created.tolist() == [[36]]
    assert sim.link_fidelity() == approx([F0 * RHO**4])  # t = 40 at the end: age 4
    s = m.summary()
    assert s["success_rate"] == 2 / 3 and s["avg_latency"] == 5.0
    assert s["utilization"] == 2 / 5


def test_one_link_decay_and_expiry_at_lifetime():
    """An idle link with p_gen = 1: its pair ages 0..14 with fidelity 0.92 * 0.96**age, is discarded
    in phase 1 of slot 15 (0.92 * 0.96**15 = 0.4987 < F_min) and replaced in phase 2 at once; with
    F_min = 0.3 instead the age limit max_lifetime = 15 decides: ages 0..15, replaced at slot 16."""
    for f_min, life in ((0.5, 15), (0.3, 16)):
        cfg = SpepConfig(
            topology=nx.Graph([(0, 1)]), p_gen=1.0, F_min=f_min, episode_slots=40, arrival_rate=0.0
        )
        sim = Simulator(cfg)
        sim.reset(0)
        seen = []
        while not sim.done:
            seen.append((sim.t, int(sim.links.created[0, 0]), float(sim.link_fidelity()[0])))
            sim.step([])
        for t, created, fidelity in seen:
            assert created == t - t % life
            assert fidelity == F0 * RHO ** (t % life)
        assert sim.metrics.pairs_expired == 39 // life


def test_line_two_hop_fidelity_paper_and_werner(tmp_path):
    """Line 0-1-2, p_gen = 1: a request 0 -> 2 at slot 0 is served over both links at age 0.
    paper: ((3 * 0.92 + 1) / 4)**2 = 0.94**2 = 0.8836;
    werner: w = (4 * 0.92 - 1) / 3 = 0.89333, F = (1 + 3 w**2) / 4 = 0.848533."""
    expected = {"paper": 0.94**2, "werner": (1 + 3 * ((4 * F0 - 1) / 3) ** 2) / 4}
    assert expected["paper"] == approx(0.8836) and expected["werner"] == approx(0.848533, abs=1e-6)
    for model, value in expected.items():
        cfg = trace_config(tmp_path, line_graph(3), [(0, 0, 2, 0.6, 3, 1)], swap_model=model)
        sim = Simulator(cfg)
        run(sim)
        rec = records(sim)
        assert rec["fidelity"] == [approx(value, rel=1e-14)] and rec["hops"] == [2]
        assert rec["end_slot"] == [0]
    # One hop: paper eq. 2 still applies (0.94), werner gives the link's own fidelity.
    for model, value in (("paper", 0.94), ("werner", 0.92)):
        cfg = trace_config(tmp_path, line_graph(3), [(0, 1, 2, 0.6, 3, 1)], swap_model=model)
        sim = Simulator(cfg)
        run(sim)
        assert records(sim)["fidelity"] == [approx(value, rel=1e-14)]


def test_swap_success_zero_loses_pairs_every_try(tmp_path):
    """swap_success = 0: request 0 -> 2 (t_a = 2, t_d = 6) tries slots 2..6, each swap fails and
    loses both link pairs (regenerated next slot since p_gen = 1): 5 failures, 10 pairs consumed,
    the request fails at the end of slot 6. A one-hop request at slot 8 needs no swap and is served."""
    requests = [(2, 0, 2, 0.6, 6, 1), (8, 0, 1, 0.6, 9, 1)]
    cfg = trace_config(tmp_path, line_graph(3), requests, swap_success=0.0, episode_slots=10)
    sim = Simulator(cfg)
    run(sim)
    m = sim.metrics
    assert (m.swap_failures, m.pairs_consumed, m.failed, m.served) == (5, 11, 1, 1)
    assert records(sim)["end_slot"] == [6, 8]
    assert m.pairs_delivered == 1


def test_deadline_failure_at_end_of_deadline_slot(tmp_path):
    """A request 0 -> 1 asking 0.99 (> 0.94, never possible) with t_a = 3, D = 4 is queued in slots
    3..7 (the observation shows slots_left 4..0) and fails in phase 6 of slot 7, the env step whose
    info['slot'] is 7."""
    from spep_gym.env import SpepEnv

    cfg = trace_config(tmp_path, nx.Graph([(0, 1)]), [(3, 0, 1, 0.99, 7, 2)], episode_slots=12)
    env = SpepEnv(cfg)
    obs, info = env.reset(seed=0)
    left = []
    for _ in range(12):
        if obs["queue_mask"][0]:
            left.append(int(obs["queue"][3]))
        obs, reward, _, _, info = env.step(np.array([1] * 8))
        if info["failed"]:
            assert (info["slot"], info["failed"], reward) == (7, [0], -2.0)
    assert left == [4, 3, 2, 1, 0]
    assert records(env.sim)["end_slot"] == [7]


def test_prepositioned_pair_served_first_lowest_sufficient_fidelity(tmp_path):
    """Line 0-1-2, p_gen = 1. Pair (0, 2) is pre-positioned at slots 0 and 1, each from fresh links:
    F = 0.94**2 = 0.8836 when placed, then x 0.96 per slot. At slot 2 they hold 0.8836 * 0.96**2 =
    0.8143 (A) and 0.8836 * 0.96 = 0.8483 (B). Requests at slot 2 (both priority 1, file order):
    request 0 asks 0.6, request 1 asks 0.83. Request 0 takes A, the lowest sufficient one (taking B
    would starve request 1); request 1 takes B. Both are served 'prepositioned' although the links
    hold fresh pairs (0.8836 on demand)."""
    requests = [(2, 2, 0, 0.6, 5, 1), (2, 0, 2, 0.83, 5, 1)]
    cfg = trace_config(tmp_path, line_graph(3), requests, episode_slots=6)
    sim = Simulator(cfg)
    a = int(sim_pair(cfg, 0, 2))
    run(sim, {0: [a], 1: [a]})
    rec = records(sim)
    f = 0.94**2
    assert rec["how"] == [PREPOSITIONED, PREPOSITIONED]
    assert rec["fidelity"] == [approx(f * RHO**2, rel=1e-14), approx(f * RHO, rel=1e-14)]
    assert sim.metrics.prepositions_used == 2 and sim.metrics.pairs_delivered == 4


def sim_pair(cfg: SpepConfig, s: int, d: int) -> int:
    n = cfg.n
    return int(np.flatnonzero((np.triu_indices(n, 1)[0] == s) & (np.triu_indices(n, 1)[1] == d))[0])


def test_preposition_expiry_window_and_preposition_rho(tmp_path):
    """Pair (0, 2) placed at slot 0 with F = 0.8836 on line 0-1-2.
    - preposition_rho = 0.99: 0.8836 * 0.99**14 = 0.7678 >= 0.5: kept for the whole window, discarded
      in phase 1 of slot 0 + prediction_window = 15. A request at slot 14 asking 0.76 is served with
      0.8836 * 0.99**14; one at slot 15 finds nothing held.
    - preposition_rho unset (= rho = 0.96): 0.8836 * 0.96**13 = 0.5196, 0.8836 * 0.96**14 = 0.4988 <
      0.5: discarded in phase 1 of slot 14."""
    for prho, expiry in ((0.99, 15), (None, 14)):
        cfg = trace_config(
            tmp_path,
            line_graph(
                3, p_gen=0.0
            ),  # no links after slot 0's hand-made ones: only the pre-position
            [(expiry - 1, 0, 2, 0.5, expiry - 1, 1), (expiry, 0, 2, 0.3, expiry, 1)],
            preposition_rho=prho,
            episode_slots=20,
        )
        sim = Simulator(cfg)
        sim.reset(0)
        sim.links.created[:, 0] = 0
        sim.links.count[:] = 1
        sim.links.youngest[:] = 0
        sim.links.refresh(sim.t)
        held_slots = []
        sim.step([sim_pair(cfg, 0, 2)])
        while not sim.done:
            if sim.held:
                held_slots.append(sim.t)
            sim.step([])
        rec = records(sim)
        assert held_slots == list(range(1, expiry))
        rate = prho or RHO
        assert rec["fidelity"][0] == approx(0.94**2 * rate ** (expiry - 1), rel=1e-14)
        assert rec["status"] == [SERVED, FAILED]
        assert sim.metrics.prepositions_expired == 0 and sim.metrics.prepositions_used == 1


def test_priority_then_deadline_then_arrival_order(tmp_path):
    """One link, p_gen = 1: exactly one pair per slot, so the queue order decides who gets it.
    Requests (slot, priority, deadline): 0: (0, 1, 10), 1: (0, 3, 10), 2: (0, 1, 5), 3: (0, 1, 10),
    4: (1, 2, 12). Slot 0 serves 1 (priority 3); slot 1 serves 4 (priority 2, arrived at 1); then
    priority 1 by deadline: 2 at slot 2; then 0 and 3 (equal keys) in file order: slots 3 and 4."""
    requests = [
        (0, 0, 1, 0.5, 10, 1),
        (0, 0, 1, 0.5, 10, 3),
        (0, 1, 0, 0.5, 5, 1),
        (0, 0, 1, 0.5, 10, 1),
        (1, 0, 1, 0.5, 12, 2),
    ]
    sim = Simulator(trace_config(tmp_path, nx.Graph([(0, 1)]), requests, episode_slots=8))
    run(sim)
    assert records(sim)["end_slot"] == [3, 0, 2, 4, 1]


def routing_graph(**long_edge: object) -> nx.Graph:
    """Short path 0-1-2 of poor links (F0 = 0.7), long path 0-3-4-2 of good links (F0 = 0.99).
    Via 0-1-2: ((3 * 0.7 + 1) / 4)**2 = 0.775**2 = 0.600625; via 0-3-4-2: 0.9925**3 = 0.97767."""
    g = nx.Graph()
    g.add_edges_from([(0, 1), (1, 2)], F0=0.7)
    g.add_edges_from([(0, 3), (3, 4), (4, 2)], F0=0.99, **long_edge)
    return g


def test_routing_strategies_differ(tmp_path):
    """Requests at slot 0: 0 -> 1 (priority 3, served first over link 0-1: 0.775) and 0 -> 2
    (priority 1, F_req 0.55).
    - shortest: 0-1-2 lacks the 0-1 pair now; the fewest-hop path over links holding pairs is
      0-3-4-2: served at slot 0 with 0.97767, 3 hops.
    - highest_fidelity: 0-3-4-2 as well (the best path whatever is available).
    - reactive: fixed path 0-1-2 (the static hop-count path); it waits one slot for link 0-1 and is
      served at slot 1 with a fresh 0-1 pair and the 1-2 pair of age 1:
      0.775 * (3 * 0.7 * 0.96 + 1) / 4 = 0.775 * 0.754 = 0.58435, 2 hops.
    With F_req = 0.7 on the 0 -> 2 request and no 0 -> 1 request, shortest takes 0-1-2 (0.6006 <
    0.7: it waits, its one proposed path too poor, and fails at t_d = 2), while highest_fidelity
    serves it with 0.97767 at slot 0."""
    long, short = 0.9925**3, 0.775 * (3 * 0.7 * RHO + 1) / 4
    requests = [(0, 0, 1, 0.5, 5, 3), (0, 0, 2, 0.55, 5, 1)]
    expected = {
        "shortest": ([0, 0], long, 3),
        "highest_fidelity": ([0, 0], long, 3),
        "reactive": ([0, 1], short, 2),
    }
    for routing, (end, fidelity, hops) in expected.items():
        sim = Simulator(trace_config(tmp_path, routing_graph(), requests, routing=routing))
        run(sim)
        rec = records(sim)
        assert rec["end_slot"] == end, routing
        assert rec["fidelity"] == [approx(0.775), approx(fidelity, rel=1e-12)], routing
        assert rec["hops"] == [1, hops], routing
    for routing, status in (("shortest", FAILED), ("highest_fidelity", SERVED)):
        cfg = trace_config(tmp_path, routing_graph(), [(0, 0, 2, 0.7, 2, 1)], routing=routing)
        sim = Simulator(cfg)
        run(sim)
        assert records(sim)["status"] == [status], routing


def test_per_edge_attributes_take_effect():
    """Star 0-1, 0-2, 0-3 with per-edge p_gen 0 / 1 / 1, F0 -, 0.8, 0.92, capacity -, 1, 3 and
    length_km -, -, 20 (decay 0.96**(20 / 10) = 0.9216 per slot). After slot 2's generation: link
    0-1 holds nothing, 0-2 one pair of age 2 (0.8 * 0.96**2), 0-3 three pairs (ages 0, 1, 2), the best
    0.92."""
    g = nx.Graph()
    g.add_edge(0, 1, p_gen=0.0)
    g.add_edge(0, 2, F0=0.8)
    g.add_edge(0, 3, link_capacity=3, length_km=20.0)
    sim = Simulator(SpepConfig(topology=g, p_gen=1.0, arrival_rate=0.0, episode_slots=10))
    sim.reset(0)
    sim.step([])
    sim.step([])
    assert sim.links.count.tolist() == [0, 1, 3]
    assert sim.link_fidelity().tolist() == approx([0.0, 0.8 * RHO**2, 0.92])
    assert sim.net.rho.tolist() == approx([RHO, RHO, RHO**2])
    assert sim.net.fidelity_table[2, 5] == approx(0.92 * RHO**10)
    assert sim.net.lifetime.tolist() == [15, 12, 8]  # 0.8 * 0.96**12 < 0.5; 0.92 * 0.9216**8 < 0.5


def test_business_hours_rate():
    """Rate 0.1 per slot, x 3 in hours 9..16: slots 90..169 of each 240-slot day."""
    cfg = SpepConfig()
    rates = arrival_rates(cfg, 480)
    busy = np.zeros(480, dtype=bool)
    busy[90:170] = busy[330:410] = True
    np.testing.assert_allclose(rates, np.where(busy, 0.3, 0.1))
    assert hour_of_day(89, 240) == 8 and hour_of_day(90, 240) == 9 and hour_of_day(239, 240) == 23
    # Mean arrivals over 100 days: standard errors 0.003 inside, 0.0012 outside.
    cfg = SpepConfig(episode_slots=24000, topology_seed=0)
    net = Simulator(cfg).fixed_net
    counts = np.bincount(generate(cfg, net, np.random.default_rng(5)).arrival, minlength=24000)
    inside = np.tile(busy[:240], 100)
    assert counts[inside].mean() == approx(0.3, abs=0.015)
    assert counts[~inside].mean() == approx(0.1, abs=0.006)


def test_hot_and_medium_pairs():
    """16 distinct node pairs at least 2 hops apart: 4 hot with 0.5 / 4 each, 12 medium with
    0.5 / 12 each; the lower node id is the source. Over 20000 requests the hot share is 0.5 +- 0.02."""
    cfg = SpepConfig(episode_slots=24000, arrival_rate=1.0, topology_seed=3)
    net = Simulator(cfg).fixed_net
    pairs = draw_demand_pairs(cfg, net, np.random.default_rng(1))
    assert pairs.shape == (16, 3)
    index = net.pair_index[pairs[:, 0].astype(int), pairs[:, 1].astype(int)]
    assert len(set(index.tolist())) == 16
    assert (net.static_hops[index] >= 2).all() and (pairs[:, 0] < pairs[:, 1]).all()
    np.testing.assert_allclose(pairs[:, 2], [0.125] * 4 + [0.5 / 12] * 12)
    w = generate(cfg, net, np.random.default_rng(1))
    hot = np.isin(w.pair, index[:4])
    assert np.isin(w.pair, index).all()
    assert hot.mean() == approx(0.5, abs=0.02)
    # On a graph with too few far pairs (a star: 3 leaf pairs at 2 hops), near pairs fill in.
    star = SpepConfig(topology=nx.star_graph(3))
    star_net = Network.build(generate_graph(star, np.random.default_rng(0)), star)
    drawn = draw_demand_pairs(star, star_net, np.random.default_rng(0))
    assert (
        len(drawn) == 6
        and (star_net.pair_index[drawn[:3, 0].astype(int), drawn[:3, 1].astype(int)] >= 0).all()
    )
    assert sorted(
        star_net.static_hops[
            star_net.pair_index[drawn[:, 0].astype(int), drawn[:, 1].astype(int)]
        ].tolist()
    ) == [1, 1, 1, 2, 2, 2]


def test_demand_pairs_replace_the_draw():
    """demand_pairs ((5, 2, 3), (1, 4, 1)): only these, direction kept, shares 3/4 and 1/4."""
    cfg = SpepConfig(demand_pairs=((5, 2, 3.0), (1, 4, 1.0)), arrival_rate=1.0, episode_slots=8000)
    sim = Simulator(cfg)
    sim.reset(2)
    w = sim.workload
    got = set(zip(w.source.tolist(), w.destination.tolist(), strict=True))
    assert got == {(5, 2), (1, 4)}
    assert (w.source == 5).mean() == approx(0.75, abs=0.02)


def test_trace_replay(tmp_path):
    """The file's requests, unsorted by slot, replayed exactly; requests of one slot with equal
    priority and deadline queue in file order; rows past episode_slots are dropped."""
    requests = [
        (3, 2, 0, 0.7, 9, 1),
        (1, 0, 3, 0.65, 4, 2),
        (3, 1, 3, 0.8, 9, 1),
        (3, 0, 2, 0.75, 9, 1),
        (50, 0, 1, 0.6, 55, 1),
    ]
    cfg = trace_config(tmp_path, line_graph(4, p_gen=0.0), requests, episode_slots=20)
    sim = Simulator(cfg)
    sim.reset(0)
    w = sim.workload
    assert w.arrival.tolist() == [1, 3, 3, 3]
    assert w.source.tolist() == [0, 2, 1, 0] and w.destination.tolist() == [3, 0, 3, 2]
    assert w.F_req.tolist() == [0.65, 0.7, 0.8, 0.75]
    assert w.deadline.tolist() == [4, 9, 9, 9] and w.priority.tolist() == [2, 1, 1, 1]
    for _ in range(3):
        sim.step([])
    assert sim.queued_requests() == [0, 1, 2, 3]  # request 0 first: priority 2
    # The same file drives every seed identically.
    other = Simulator(cfg)
    other.reset(99)
    assert other.workload.source.tolist() == w.source.tolist()
