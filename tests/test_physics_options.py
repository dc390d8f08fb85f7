"""The link-layer and physics options of SPEC section 9, each on a tiny network worked out by hand.

Defaults as in test_analytic: F0 = 0.92, rho = 0.96, F_min = 0.5, p_gen = 1 unless a test says
otherwise. The workload comes from a trace, so everything is deterministic.
"""

from __future__ import annotations

import math

import gymnasium as gym
import networkx as nx
import numpy as np
import pytest
from conftest import line_graph, run, set_links, trace_config

import spep_gym
from spep_gym import physics
from spep_gym.config import PHYSICAL, SpepConfig
from spep_gym.env import SpepEnv
from spep_gym.metrics import FAILED, IN_FLIGHT, PREPOSITIONED, SERVED
from spep_gym.simulator import Simulator, SlotEvents
from spep_gym.topology import Network, generate_graph

F0, RHO = 0.92, 0.96
approx = pytest.approx


def werner(*fidelities: float) -> float:
    w = np.prod([(4 * f - 1) / 3 for f in fidelities])
    return float((1 + 3 * w) / 4)


def depol(f: float, rho: float, age: int) -> float:
    return 0.25 + (f - 0.25) * rho**age


# ---------------------------------------------------------------------- formulas


def test_decay_laws_and_coherence_time():
    assert physics.decayed(0.92, 0.96, 3) == 0.92 * 0.96**3
    assert physics.decayed(0.92, 0.96, 3, "depolarizing") == 0.25 + 0.67 * 0.96**3
    assert physics.decayed(0.92, 0.5, 200, "depolarizing") == approx(0.25)  # maximally mixed
    # SeQUeNCe's depolarizing memories: F(t) = 1/4 + (F0 - 1/4) exp(-t / tau), tau = 3 T_c / 8.
    tau, t_c = 1e-4, 1e-2
    rho = physics.rho_from_coherence(tau, t_c)
    assert rho**10 == approx(math.exp(-10 * tau / (3 * t_c / 8)), rel=1e-12)
    assert physics.slots_until_below(0.92, 0.9, 0.6, 30, "depolarizing") == next(
        k for k in range(1, 30) if depol(0.92, 0.9, k) < 0.6
    )


def test_loss_model_generation_probability():
    p = physics.loss_p_gen(np.array([0.27, 0.27, 0.9]), np.array([10.0, 25.0, 0.0]), 10.0, 0.2)
    assert p.tolist() == approx([0.27, 0.27 * 10 ** (-0.3), min(1.0, 0.9 * 10**0.2)])


def test_signalling_delay_rounds_up_per_path():
    assert [physics.signalling_delay(0.5, h) for h in range(5)] == [0, 1, 1, 2, 2]
    assert physics.signalling_delay(0.28, 25) == 7  # 0.28 * 25 = 7.000000000000001 in floats
    assert physics.signalling_delay(0.0, 9) == 0


# ---------------------------------------------------------------------- link layer


def test_replace_oldest_replaces_and_counts(tmp_path):
    """Link 0-1 of capacity 2, p_gen = 1, no request: slots 0 and 1 fill it; from slot 2 on each
    new pair replaces the oldest one, so the link always holds the two youngest pairs."""
    g = line_graph(2, link_capacity=2)
    for policy, expected in (("block", [[0, 1]]), ("replace_oldest", [[8, 9]])):
        cfg = trace_config(tmp_path, g, [(30, 0, 1, 0.6, 35, 1)], episode_slots=10)
        sim = Simulator(cfg.replace(link_pool_policy=policy))
        sim.reset(0)
        while sim.t < 9:
            sim.step([])
        assert sorted(sim.links.created.tolist()[0]) == expected[0]
        m = sim.metrics
        if policy == "block":
            assert (m.pairs_generated, m.pairs_replaced) == (2, 0)
        else:
            assert (m.pairs_generated, m.pairs_replaced) == (10, 8)
        assert m.pairs_generated == m.pairs_replaced + int(sim.links.count.sum()) + m.pairs_expired


def test_cutoff_discards_below_the_cutoff_fidelity():
    """Cut-off 0.8: 0.92 * 0.96**a >= 0.8 up to a = 3 (0.7815 at a = 4), so a pair lives 4 slots
    instead of 15; depolarizing decay to 0.7 (0.25 + 0.67 * 0.96**a >= 0.7 up to a = 9)."""
    base = SpepConfig(topology=nx.Graph([(0, 1)]), p_gen=1.0, arrival_rate=0.0)
    assert Network.build(nx.Graph([(0, 1)]), base).lifetime.tolist() == [15]
    cut = base.replace(cutoff_fidelity=0.8)
    assert Network.build(nx.Graph([(0, 1)]), cut).lifetime.tolist() == [4]
    assert Network.build(
        nx.Graph([(0, 1)]), cut.replace(cutoff_fidelity=0.3)
    ).lifetime.tolist() == [15]
    dep = base.replace(cutoff_fidelity=0.7, decay_model="depolarizing")
    net = Network.build(nx.Graph([(0, 1)]), dep)
    assert net.lifetime.tolist() == [10]
    assert net.fidelity_table[0, :10].tolist() == [depol(F0, RHO, a) for a in range(10)]
    sim = Simulator(cut.replace(episode_slots=20))
    sim.reset(0)
    while not sim.done:
        assert sim.t - sim.links.created[0, 0] == sim.t % 4
        sim.step([])
    assert sim.metrics.pairs_expired == 4  # discarded at slots 4, 8, 12, 16


def test_depolarizing_decay_of_link_and_held_pairs(tmp_path):
    """Line 0-1-2, Werner swaps, depolarizing decay with preposition_rho 0.9: pre-position (0, 2) at
    slot 0 (F_path = werner(0.92, 0.92)); request (0, 2) at slot 3 gets it at 1/4 + (F_path - 1/4) *
    0.9**3."""
    cfg = trace_config(
        tmp_path,
        line_graph(3),
        [(3, 0, 2, 0.6, 5, 1)],
        swap_model="werner",
        decay_model="depolarizing",
        preposition_rho=0.9,
        episode_slots=6,
    )
    sim = Simulator(cfg)
    pair = int(sim.fixed_net.pair_index[0, 2])
    run(sim, {0: [pair]})
    rec = sim.request_records()
    assert rec["how"].tolist() == [PREPOSITIONED]
    assert rec["fidelity"][0] == approx(depol(werner(F0, F0), 0.9, 3), rel=1e-14)


def test_length_model_loss_moves_length_from_decay_to_generation():
    g = nx.Graph()
    g.add_edge(0, 1, length_km=30.0)
    g.add_edge(1, 2)
    paper = Network.build(g, SpepConfig(topology=g))
    assert paper.rho.tolist() == approx([RHO**3, RHO]) and paper.p_gen.tolist() == [0.12, 0.12]
    loss = Network.build(g, SpepConfig(topology=g, length_model="loss"))
    assert loss.rho.tolist() == [RHO, RHO]
    assert loss.p_gen.tolist() == approx([0.12 * 10 ** (-0.2 * 20 / 10), 0.12])


# ---------------------------------------------------------------------- signalling latency


def latency_sim(tmp_path, requests, **fields) -> Simulator:
    """Line 0-1-2 (links 0: 0-1, 1: 1-2), p_gen = 1, latency 0.5 slot per hop (2 hops: 1 slot)."""
    fields = {"signalling_latency": 0.5, "episode_slots": 12, **fields}
    return Simulator(trace_config(tmp_path, line_graph(3), requests, **fields))


def test_on_demand_with_latency_is_served_after_the_delay(tmp_path):
    """Request (0, 2) at slot 0: both links hold a fresh pair, F_path = 0.94**2 (paper eq. 2); it is
    sent at slot 0 and arrives at slot 1 decayed by rho once; the links wait (generate nothing) in
    slot 1 and regenerate at slot 2. A one-hop request (1, 2) at slot 4 waits one slot as well; its
    pair, made at slot 2, is 2 slots old when sent."""
    sim = latency_sim(tmp_path, [(0, 0, 2, 0.6, 5, 1), (4, 1, 2, 0.6, 8, 2)])
    sim.reset(0)
    events = sim.step([])
    rec = sim.records
    assert rec["status"][0] == SERVED and rec["end_slot"][0] == 1 and rec["dispatch_slot"][0] == 0
    assert rec["fidelity"][0] == approx(0.94**2 * RHO, rel=1e-14)
    assert [s[0] for s in events.served] == [0] and events.pairs_generated == 0
    assert sim.links.count.tolist() == [0, 0]  # busy in slot 1
    sim.step([])
    assert sim.links.count.tolist() == [1, 1]  # slot 2 regenerates
    while sim.t < 4:
        sim.step([])
    sim.step([])  # slot 4: request 1 sent over one link
    assert rec["status"][1] == SERVED and rec["end_slot"][1] == 5
    assert rec["fidelity"][1] == approx((3 * F0 * RHO**2 + 1) / 4 * RHO, rel=1e-14)
    assert sim.metrics.summary()["avg_latency"] == 1.0


def test_request_in_flight_state_metrics_and_observation(tmp_path):
    """Latency 1 slot per hop: request (0, 2) is in flight during slots 1 (sent at 0, arrives at 2)."""
    cfg = trace_config(
        tmp_path, line_graph(3), [(0, 0, 2, 0.6, 5, 1)], signalling_latency=1.0, episode_slots=6
    )
    env = SpepEnv(cfg)
    obs, info = env.reset(seed=0)
    sim = env.sim
    obs, _, _, _, info = env.step(env.action_space.sample() * 0 + env.num_pairs)
    pair = int(sim.net.pair_index[0, 2])
    assert sim.records["status"][0] == IN_FLIGHT and sim.metrics.requests_in_flight == 1
    assert obs["requests_in_flight"][pair] == 1 and obs["queue_mask"].sum() == 0
    assert obs["link_busy"].max() == 1.0  # busy through slot 2
    assert info["metrics"]["pending"] == 1 and info["metrics"]["requests_in_flight"] == 1
    obs, reward, _, _, info = env.step(np.full(8, env.num_pairs))
    assert info["served"] == [
        {"id": 0, "how": "on_demand", "fidelity": approx(0.94**2 * RHO**2), "hops": 2, "latency": 2}
    ]
    assert reward == 1.0 and info["metrics"]["requests_in_flight"] == 0
    assert obs["requests_in_flight"].sum() == 0


def test_latency_counts_against_the_deadline_and_the_fidelity(tmp_path):
    """A request whose deadline is its arrival slot cannot wait 1 slot for the outcome: it fails. A
    request asking more than the decayed fidelity (0.94**2 * 0.96 = 0.8482 < 0.86 <= 0.8836) fails
    too, though the path's fidelity now would do."""
    sim = latency_sim(tmp_path, [(0, 0, 2, 0.6, 0, 1), (3, 0, 2, 0.86, 6, 1)])
    run(sim)
    assert sim.records["status"].tolist() == [FAILED, FAILED]
    assert sim.metrics.pairs_consumed == 0


def test_failed_swap_with_latency_returns_the_request_when_known(tmp_path):
    """swap_success = 0: request (0, 2), sent at slot 0, learns of the failure at slot 1 and returns
    to the queue; the links are empty (busy) in slot 1, so it is sent again at slot 2, and at 4. The
    third failure arrives at slot 5, its deadline: it waits, no path can deliver by 5, it fails."""
    sim = latency_sim(tmp_path, [(0, 0, 2, 0.6, 5, 1)], swap_success=0.0)
    run(sim)
    m = sim.metrics
    assert sim.records["status"].tolist() == [FAILED] and sim.records["end_slot"].tolist() == [5]
    assert sim.records["dispatch_slot"].tolist() == [4]
    assert m.swap_failures == 3 and m.pairs_consumed == 6


def test_preposition_with_latency_counts_toward_k_and_serves_when_usable(tmp_path):
    """Pre-position (0, 2) at slot 0 (latency 1 slot): in flight in slot 1 (counts toward K = 1, so
    nothing else is placed), usable from slot 1's phase 1 on; request (0, 2) at slot 1 takes it."""
    sim = latency_sim(tmp_path, [(1, 0, 2, 0.6, 3, 1)], max_prepositioned=1)
    pair = int(sim.fixed_net.pair_index[0, 2])
    sim.reset(0)
    events = sim.step([pair])
    assert not events.placed or events.placed[0][0] == pair
    assert sim.metrics.prepositions_placed == 1  # arrived in phase 1 of slot 1
    sim.step([])
    rec = sim.records
    assert rec["how"][0] == PREPOSITIONED and rec["end_slot"][0] == 1
    assert rec["fidelity"][0] == approx(0.94**2 * RHO)
    # in flight: the env's mask and the simulator's K count it
    sim2 = latency_sim(tmp_path, [(9, 0, 2, 0.6, 10, 1)], max_prepositioned=1, episode_slots=3)
    env = SpepEnv(sim2.cfg)
    env.reset(seed=0)
    env.step(np.array([pair] + [env.num_pairs] * 7))
    assert env.sim.metrics.prepositions_placed == 1
    events = env.sim.step([int(env.sim.net.pair_index[0, 1])])
    assert not events.placed


def test_path_fidelity_observation_predicts_the_usable_pair(tmp_path):
    """With latency, path_fidelity is what the pair will have when it becomes usable."""
    cfg = trace_config(
        tmp_path, line_graph(4), [(9, 0, 3, 0.6, 10, 1)], signalling_latency=0.4, episode_slots=10
    )
    env = SpepEnv(cfg)
    obs, _ = env.reset(seed=0)
    idx = env.sim.net.pair_index
    # 1 hop: ceil(0.4) = 1 slot; 2 hops: 1; 3 hops: ceil(1.2) = 2
    expected = {(0, 1): 0.94 * RHO, (0, 2): 0.94**2 * RHO, (0, 3): 0.94**3 * RHO**2}
    for (s, d), f in expected.items():
        assert obs["path_fidelity"][idx[s, d]] == approx(f, rel=1e-6)


def test_highest_fidelity_routing_ranks_paths_by_delivered_fidelity(tmp_path):
    """Triangle 0-1-2 with a direct link 0-2 of F0 = 0.8 and links 0-1, 1-2 of F0 = 0.99; Werner
    swaps, depolarizing decay, latency 1 slot per hop: direct delivers 1/4 + 0.55 * rho_p, two hops
    1/4 + (werner(0.99, 0.99) - 1/4) * rho_p**2. With rho_p = 0.7 the direct link wins (0.635 vs
    0.608), though its fidelity now is lower (0.8 vs 0.980); with rho_p = 0.8 the two hops win."""
    g = nx.Graph()
    g.add_edge(0, 1, F0=0.99)
    g.add_edge(1, 2, F0=0.99)
    g.add_edge(0, 2, F0=0.8)
    for prho, hops in ((0.7, 1), (0.8, 2)):
        cfg = trace_config(
            tmp_path, g, [(0, 0, 2, 0.6, 5, 1)], swap_model="werner", decay_model="depolarizing",
            signalling_latency=1.0, routing="highest_fidelity", preposition_rho=prho,
            episode_slots=4,
        )  # fmt: skip
        sim = Simulator(cfg)
        run(sim)
        assert sim.records["hops"].tolist() == [hops]
        f_now = 0.8 if hops == 1 else werner(0.99, 0.99)
        assert sim.records["fidelity"][0] == approx(depol(f_now, prho, hops), rel=1e-12)
    # Without latency it is the plain highest-fidelity path (two hops).
    cfg = trace_config(
        tmp_path, g, [(0, 0, 2, 0.6, 5, 1)], swap_model="werner", routing="highest_fidelity"
    )
    sim = Simulator(cfg)
    run(sim)
    assert sim.records["hops"].tolist() == [2]


# ---------------------------------------------------------------------- preset, validation, env


def test_physical_preset_everywhere():
    cfg = SpepConfig.physical()
    assert cfg == SpepConfig.from_dict({"preset": "physical"}) == SpepConfig.from_dict(PHYSICAL)
    assert (cfg.swap_model, cfg.decay_model, cfg.link_pool_policy) == (
        "werner", "depolarizing", "replace_oldest",
    )  # fmt: skip
    assert cfg.cutoff_fidelity == cfg.fidelity_req_range[0] and cfg.signalling_latency > 0
    assert SpepConfig.physical(rho=0.9).rho == 0.9
    for env in (gym.make("Spep-physical-v0"), gym.make("Spep-v0", preset="physical")):
        assert env.unwrapped.config == cfg
    assert (
        gym.make("Spep-v0", preset="physical", episode_slots=7).unwrapped.config.episode_slots == 7
    )
    with pytest.raises(ValueError, match=r"preset.*'nope'.*allowed"):
        SpepConfig.from_dict({"preset": "nope"})
    with pytest.raises(ValueError, match="either config or preset"):
        SpepEnv(SpepConfig(), preset="physical")
    assert spep_gym.SpepEnv(config={"num_nodes": 6}).config.num_nodes == 6


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("signalling_latency", -0.5),
        ("signalling_latency", float("nan")),
        ("cutoff_fidelity", 1.5),
        ("cutoff_fidelity", -0.1),
        ("link_pool_policy", "lru"),
        ("decay_model", "amplitude"),
        ("length_model", "km"),
        ("fiber_loss_db_per_km", -0.2),
    ],
)
def test_bad_physics_options(field, value):
    with pytest.raises(ValueError, match=rf"'{field}' = .* is invalid: allowed"):
        SpepConfig(**{field: value})


@pytest.mark.parametrize(
    "fields",
    [
        {"preset": "physical"},
        {"link_pool_policy": "replace_oldest", "cutoff_fidelity": 0.7, "routing": "reactive"},
        {"signalling_latency": 1.5, "routing": "highest_fidelity", "swap_success": 0.6},
        {"decay_model": "depolarizing", "preposition_path": "available", "signalling_latency": 0.5},
    ],
)
def test_checkers_pass_under_every_option(fields):
    from gymnasium.utils.env_checker import check_env

    env = gym.make("Spep-v0", **{**fields, "num_nodes": 6, "er_p": 0.5, "episode_slots": 60})
    check_env(env.unwrapped)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=3)
    u = env.unwrapped
    while True:
        mask = u.action_masks()[: u.num_pairs]
        feasible = np.flatnonzero(mask)
        action = np.full(u.config.action_len, u.num_pairs)
        k = min(len(action), len(feasible))
        action[:k] = rng.permutation(feasible)[:k]
        obs, _, _, truncated, info = env.step(action)
        assert u.observation_space.contains(obs)
        if truncated:
            break
    m = info["episode_metrics"]
    assert m["arrived"] == m["served"] + m["failed"] + m["pending"]


def test_vector_envs_under_the_physical_preset():
    envs = gym.make_vec("Spep-v0", num_envs=2, vectorization_mode="sync", preset="physical",
                        num_nodes=6, er_p=0.5, episode_slots=5)  # fmt: skip
    try:
        obs, _ = envs.reset(seed=[1, 2])
        for _ in range(7):
            obs, reward, _, _, _ = envs.step(np.full((2, 8), 15))
            assert obs["requests_in_flight"].shape == (2, 15) and reward.shape == (2,)
    finally:
        envs.close()


def test_paper_preset_unchanged_by_the_options_at_their_defaults():
    """The options at their defaults draw and decide exactly as before (the golden test holds the
    numbers); here: a generated graph's tables equal those of the plain paper law."""
    cfg = SpepConfig()
    net = Network.build(generate_graph(cfg, np.random.default_rng(0)), cfg)
    ages = np.arange(cfg.max_lifetime + 2)
    np.testing.assert_array_equal(
        net.fidelity_table[0, : net.lifetime[0]], [F0 * RHO**a for a in ages[: net.lifetime[0]]]
    )
    assert Simulator(cfg).delays == [0] * 17


def test_set_links_helper_still_drives_the_pool(tmp_path):
    sim = latency_sim(tmp_path, [(5, 0, 2, 0.6, 9, 1)])
    sim.reset(0)
    set_links(sim, {0: [0]})
    assert sim.links.usable == [True, False]
    events = SlotEvents(slot=0)
    sim.links.mark_busy(range(sim.net.num_links), 3)
    sim.t = 1
    sim.generate_links(events)
    assert events.pairs_generated == 0  # busy links make nothing


def test_a_full_queue_rejects_arrivals_and_counts_them(tmp_path):
    """queue_capacity 2, no link ever holds a pair: of four requests arriving at slot 0 two queue,
    two fail at once (counted in queue_overflow); the queued ones fail at their deadline."""
    requests = [
        (0, 0, 2, 0.6, 3, 1),
        (0, 0, 2, 0.6, 3, 2),
        (0, 0, 1, 0.6, 4, 1),
        (0, 1, 2, 0.6, 4, 3),
    ]
    cfg = trace_config(
        tmp_path, line_graph(3), requests, p_gen=0.0, queue_capacity=2, episode_slots=6
    )
    sim = Simulator(cfg)
    events = sim.reset(0)
    assert events.arrived == [0, 1, 2, 3] and events.failed == [2, 3]
    assert sim.queued_requests() == [1, 0]
    run(sim)
    m = sim.metrics
    assert (m.arrived, m.failed, m.queue_overflow) == (4, 4, 2)
    assert sim.records["end_slot"].tolist() == [3, 3, 0, 0]


def test_queue_capacity_counts_requests_in_flight(tmp_path):
    """queue_capacity 1, latency 1 slot: request 0 is sent at slot 0 and in flight in slot 1, so
    request 1 (arriving at slot 1) finds no place; request 2 (slot 2) finds request 0 served."""
    requests = [(0, 0, 2, 0.6, 9, 1), (1, 0, 2, 0.6, 9, 1), (2, 0, 1, 0.6, 9, 1)]
    sim = latency_sim(tmp_path, requests, signalling_latency=1.0, queue_capacity=1)
    run(sim)
    assert sim.metrics.queue_overflow == 1
    assert sim.records["status"].tolist() == [SERVED, FAILED, SERVED]
    assert sim.records["end_slot"].tolist()[:2] == [2, 1]


def test_spep_and_the_oracle_do_not_place_a_pair_already_in_flight():
    """With latency, a pair in flight counts as held for Algorithm 2 and the oracle."""
    from agents.base import held_or_in_flight
    from agents.spep import algorithm2

    obs = {
        "prepositioned": np.array([0.0, 0.0, 1.0]),
        "prepositioned_in_flight": np.array([1.0, 0.0, 0.0]),
    }
    assert held_or_in_flight(obs).tolist() == [1.0, 0.0, 1.0]
    action = algorithm2(np.full(3, 0.5), np.full(3, 0.9), held_or_in_flight(obs), 0.05, 0.6, 3)
    assert action.tolist() == [1, 3, 3]
