"""The batched core's parts: static tables, searches, random streams, resets and bad input."""

from __future__ import annotations

import math
import os

import networkx as nx
import numpy as np
import pytest
import torch
from batched_util import assert_equal_state, random_actions, small
from hypothesis import given, settings
from hypothesis import strategies as st

from spep_gym import physics, routing
from spep_gym.batched import BatchedSimulator, search
from spep_gym.batched import tables as T
from spep_gym.batched.draws import CounterDraws, StreamDraws, mix, to_uniform
from spep_gym.batched.simulator import resolve_device, same_config
from spep_gym.config import TOPOLOGIES, SpepConfig
from spep_gym.env import SpepEnv
from spep_gym.topology import Network, bfs_predecessors, generate_graph

CPU = torch.device("cpu")


# ---------------------------------------------------------------------- tables
@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("preset", ["paper", "physical"])
def test_tables_are_network_build_bit_for_bit(topology: str, preset: str) -> None:
    cfg = SpepConfig.from_dict({"preset": preset, "topology": topology})
    classes = T.FidelityClasses(cfg)
    graphs = [T.network_graph(cfg, seed) for seed in range(12)]
    tab = T.build_tables([T.link_rows(g, cfg, classes) for g in graphs], cfg.n, classes, CPU)
    fid = classes.tables(CPU)["fid"]
    for b, g in enumerate(graphs):
        net = Network.build(g, cfg)
        E, H = net.num_links, net.static_paths.shape[1]
        paths = tab.static_paths[b].T.numpy()
        assert (paths[:, H:] == tab.E).all()
        assert np.array_equal(np.where(paths[:, :H] == tab.E, E, paths[:, :H]), net.static_paths)
        assert np.array_equal(tab.static_hops[b].numpy(), net.static_hops)
        assert np.array_equal(tab.p_gen[b, :E].numpy(), net.p_gen)
        assert np.array_equal(tab.capacity[b, :E].numpy(), net.capacity)
        assert np.array_equal(tab.lifetime[b, :E].numpy(), net.lifetime)
        rows = fid[tab.link_class[b, :E]][:, : net.fidelity_table.shape[1]].numpy()
        assert np.array_equal(rows, net.fidelity_table[:E])
        assert (tab.p_gen[b, E:] < 0).all() and (tab.capacity[b, E:] == 0).all()
    assert len(classes.rows) == 2  # generated links share one (F0, rho) class, plus the dead one


def test_tables_of_a_user_graph_with_edge_attributes() -> None:
    g = nx.Graph()
    g.add_edge("a", "b", length_km=25.0, F0=0.95)
    g.add_edge("b", "c", p_gen=0.3, link_capacity=3)
    g.add_edge("c", "d", length_km=3.0)
    g.add_edge("a", "d")
    for cfg in (
        SpepConfig(topology=g),
        SpepConfig(topology=g, length_model="loss"),
        SpepConfig.physical(topology=g),
    ):
        classes = T.FidelityClasses(cfg)
        graph = T.fixed_graph(cfg)
        assert graph is not None
        tab = T.build_tables([T.link_rows(graph, cfg, classes)], cfg.n, classes, CPU)
        net = Network.build(graph, cfg)
        E = net.num_links
        assert np.array_equal(tab.p_gen[0, :E].numpy(), net.p_gen)
        assert np.array_equal(tab.capacity[0, :E].numpy(), net.capacity)
        fid = classes.tables(CPU)["fid"][tab.link_class[0, :E]]
        assert np.array_equal(fid[:, : net.fidelity_table.shape[1]].numpy(), net.fidelity_table[:E])


# ---------------------------------------------------------------------- searches
def _graph_and_usable(seed: int, n: int, p: float) -> tuple[Network, np.ndarray]:
    cfg = SpepConfig(num_nodes=n, er_p=p)
    net = Network.build(generate_graph(cfg, np.random.default_rng(seed)), cfg)
    usable = np.random.default_rng(seed + 1).random(net.num_links) < 0.7
    return net, usable


def _neighbour_table(net: Network, usable: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    n, D = net.n, max(len(x) for x in net.neighbours)
    nbr = np.full((n, D), n)
    link = np.full((n, D), net.num_links)
    for u, lst in enumerate(net.neighbours):
        for j, (v, e) in enumerate(lst):
            link[u, j] = e
            if usable[e]:
                nbr[u, j] = v
    return torch.tensor(nbr), torch.tensor(link)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(3, 14), p=st.sampled_from([0.2, 0.35, 0.6]))
def test_fewest_hop_searches_follow_the_scalar_tie_rule(seed: int, n: int, p: float) -> None:
    """Both batched searches (the bit-set lexicographic one and the keyed breadth-first one) give
    routing.shortest's path for every node pair, and the keyed one bfs_predecessors' tree."""
    net, usable = _graph_and_usable(seed, n, p)
    nbr, link = _neighbour_table(net, usable)
    E = net.num_links
    pairs = [(s, d) for s in range(n) for d in range(n) if s != d]
    src = torch.tensor([s for s, _ in pairs])
    dst = torch.tensor([d for _, d in pairs])
    X = len(pairs)
    adj = search.neighbour_bits(nbr[None].expand(X, n, -1))
    edge_id = torch.tensor(np.where(net.edge_id >= 0, net.edge_id, E))[None]
    paths, hops = search.lexmin_paths(adj, edge_id, torch.zeros(X, dtype=torch.int64), src, dst, E)
    pred_j, depth = search.bfs(nbr[None].expand(X, n, -1).contiguous(), src, dst)
    pred_node, pred_link = T.predecessors(
        nbr[None].expand(X, n, -1), link[None].expand(X, n, -1), pred_j
    )
    rows = torch.arange(X)
    kh = depth[rows, dst].clamp(min=0)
    back = search.walk_back(pred_node, pred_link, dst, kh, max(int(kh.max()), 1), E)
    keyed = search.reverse_paths(back, kh, E)
    for x, (s, d) in enumerate(pairs):
        want = routing.shortest(net, usable.tolist(), [0.0] * E, s, d)
        got = paths[x, : hops[x]].tolist() if hops[x] else None
        assert got == want, (s, d)
        assert (keyed[x, : kh[x]].tolist() if kh[x] else None) == want, (s, d)
    # the full tree from every source equals scipy's breadth-first predecessors
    pred_j, _ = search.bfs(nbr[None].expand(n, n, -1).contiguous(), torch.arange(n))
    pred_node, _ = T.predecessors(nbr[None].expand(n, n, -1), link[None].expand(n, n, -1), pred_j)
    scipy_pred = bfs_predecessors(n, net.edges, usable)
    assert np.array_equal(np.where(scipy_pred < 0, -1, scipy_pred), pred_node.numpy())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(3, 12), ties=st.booleans())
def test_dijkstra_and_the_layered_search_follow_the_scalar(seed: int, n: int, ties: bool) -> None:
    """Costs drawn from few values (ties) or many: the batched Dijkstra returns
    routing.highest_fidelity's path; the layered search the best cost per hop count of
    routing.highest_delivered_fidelity."""
    net, usable = _graph_and_usable(seed, n, 0.4)
    rng = np.random.default_rng(seed + 2)
    E = net.num_links
    values = [0.1, 0.2, 0.3] if ties else rng.uniform(0.01, 0.5, 64).tolist()
    cost = [float(rng.choice(values)) if usable[e] else math.inf for e in range(E)]
    nbr, link = _neighbour_table(net, usable)
    cost_t = torch.tensor([*cost, math.inf], dtype=torch.float64)[link]
    pairs = [(s, d) for s in range(n) for d in range(n) if s != d]
    X = len(pairs)
    src = torch.tensor([s for s, _ in pairs])
    dst = torch.tensor([d for _, d in pairs])
    nb, lk, ct = (x[None].expand(X, *x.shape) for x in (nbr, link, cost_t))
    pred_node, pred_link = search.dijkstra(nb, lk, ct, src, dst)
    at_dst, _ = search.layered(nb, lk.new_zeros(lk.shape).double() + ct, src, dst)
    for x, (s, d) in enumerate(pairs):
        want = routing.highest_fidelity(net, usable.tolist(), cost, s, d)
        path: list[int] = []
        node = d
        while pred_node[x, node] >= 0:
            path.append(int(pred_link[x, node]))
            node = int(pred_node[x, node])
        got = path[::-1] if path else None
        assert got == want, (s, d)
        calls: list[tuple[int, float]] = []

        def delivered(h: int, c: float, calls: list[tuple[int, float]] = calls) -> float:
            calls.append((h, c))
            return -c - 0.01 * h  # a hop-aware score: the search explores several hop counts

        routing.highest_delivered_fidelity(net, usable.tolist(), cost, s, d, delivered)
        # per hop count: a call with cost 0 (the bound), then one with the best cost if d is reached
        explored = {h for h, _ in calls}
        by_hops: dict[int, list[float]] = {}
        for h, c in calls:
            by_hops.setdefault(h, []).append(c)
        best = {h: cs[1] for h, cs in by_hops.items() if len(cs) == 2}
        for h in explored:
            got = at_dst[x, h - 1].item()
            if h in best:
                assert got == best[h], (s, d, h)
            elif h != max(explored):  # the last hop count may have been cut by the bound
                assert got == math.inf, (s, d, h)


def test_a_sixty_two_node_bit_set_and_keys_that_need_ranking() -> None:
    """Long chains: the keyed search ranks its keys before they overflow (n ** layers)."""
    n = 70
    g = nx.path_graph(n)
    cfg = SpepConfig(topology=g)
    net = Network.build(g, cfg)
    nbr, _ = _neighbour_table(net, np.ones(net.num_links, dtype=bool))
    _pred_j, depth = search.bfs(nbr[None], torch.tensor([0]))
    assert depth[0].tolist() == list(range(n))
    assert search.lowest_node(torch.tensor([0, 1 << 61, 6])).tolist() == [-1, 61, 1]


# ---------------------------------------------------------------------- draws
def _splitmix(state: int) -> int:
    z = state & (2**64 - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    return z ^ (z >> 31)


def test_counter_streams_are_splitmix64_and_independent_of_the_batch() -> None:
    values = [0, 1, 2**40 + 7, 2**63 - 25]
    x = torch.tensor([v - 2**64 if v >= 2**63 else v for v in values])
    got = [int(v) % 2**64 for v in mix(x).tolist()]
    assert got == [_splitmix(v) for v in values]
    u = to_uniform(mix(x))
    assert ((u >= 0) & (u < 1)).all()
    one = CounterDraws(1, CPU)
    many = CounterDraws(5, CPU)
    one.reset([1234], torch.tensor([0]), torch.tensor([9]))
    many.reset([5, 6, 1234, 7, 8], torch.arange(5), torch.full((5,), 9))
    t = torch.tensor([17])
    a = one.generation(t, torch.ones(1, dtype=torch.bool), 9)
    b = many.generation(torch.full((5,), 17), torch.ones(5, dtype=torch.bool), 12)
    assert torch.equal(a[0], b[2, :9])  # a network's draws: its seed, slot and link alone
    assert not torch.equal(b[1, :9], b[2, :9])
    s1 = torch.cat([one.swap(torch.tensor([2]))[0], one.swap(torch.tensor([3]))[0]])
    s5 = many.swap(torch.tensor([0, 1, 5, 0, 0]))[2]
    assert torch.equal(s1, s5)  # the swap stream is one sequence whatever the chunks


def test_generation_uniforms_look_uniform() -> None:
    draws = CounterDraws(64, CPU)
    draws.reset(list(range(64)), torch.arange(64), torch.full((64,), 30))
    u = torch.cat(
        [
            draws.generation(torch.full((64,), t), torch.ones(64, dtype=torch.bool), 30)
            for t in range(50)
        ]
    )
    assert abs(float(u.mean()) - 0.5) < 0.01
    assert abs(float((u < 0.12).double().mean()) - 0.12) < 0.01
    assert abs(float(np.corrcoef(u[:, :-1].flatten(), u[:, 1:].flatten())[0, 1])) < 0.02


def test_stream_draws_are_the_scalar_streams() -> None:
    draws = StreamDraws(2, CPU)
    draws.reset([3, 4], torch.arange(2), torch.tensor([5, 7]))
    got = draws.generation(torch.zeros(2, dtype=torch.int64), torch.tensor([True, False]), 8)
    _, _, gen_ss, _ = np.random.SeedSequence(3).spawn(4)
    assert got[0, :5].tolist() == np.random.default_rng(gen_ss).random(5).tolist()
    assert got[1].tolist() == [0.0] * 8  # a network whose slot does not begin draws nothing


# ---------------------------------------------------------------------- resets and sizes
def test_partial_resets_grow_the_shared_sizes_and_stay_exact() -> None:
    """Network 1 restarts mid-episode on a graph with more links (and requests) than any before;
    both networks still equal their scalar runs."""
    cfg = small(episode_slots=40)
    links = {s: Network.build(T.network_graph(cfg, s), cfg).num_links for s in range(40)}
    low = min(links, key=links.get)
    high = max(links, key=links.get)
    sim = BatchedSimulator(cfg, num_envs=2, draws="scalar")
    envs = [SpepEnv(cfg), SpepEnv(cfg)]
    sim.reset([low, low + 100])
    envs[0].reset(seed=low)
    envs[1].reset(seed=low + 100)
    rng = np.random.default_rng(0)
    P = envs[0].num_pairs
    E_before = sim.tables.E
    for step in range(30):
        if step == 10:
            sim.reset([high], rows=[1])
            envs[1].reset(seed=high)
            assert E_before < sim.tables.E
        acts = random_actions([e.action_masks() for e in envs], P, cfg.action_len, rng)
        for env, act in zip(envs, acts, strict=True):
            env.step(act)
        sim.step(torch.as_tensor(acts))
        assert_equal_state(envs, sim, f"step {step}")


def test_out_of_range_entries_mean_none_as_in_the_simulator() -> None:
    """The simulators (not the envs, which refuse them) skip entries outside 0..P-1."""
    from spep_gym.simulator import Simulator

    cfg = small(episode_slots=30)
    sims = [Simulator(cfg) for _ in range(2)]
    for seed, sim in enumerate(sims):
        sim.reset(seed)
    batched = BatchedSimulator(cfg, num_envs=2, draws="scalar")
    batched.reset([0, 1])
    rng = np.random.default_rng(1)
    P = batched.num_pairs
    for _ in range(30):
        acts = rng.integers(-3, P + 4, (2, cfg.action_len))
        for sim, act in zip(sims, acts, strict=True):
            sim.step(act.tolist())
        batched.step(torch.as_tensor(acts))
    summary = batched.summary()
    for i, sim in enumerate(sims):
        for key, value in sim.metrics.summary().items():
            got = summary[key][i].item()
            assert math.isnan(got) if value is None else got == value, key
    assert summary["prepositions_placed"].sum() > 0


def test_memory_and_records() -> None:
    sim = BatchedSimulator(small(), num_envs=3)
    sim.reset([0, 1, 2])
    sim.step(np.full((3, 8), sim.num_pairs))
    assert sim.memory_bytes() > 0
    rec = sim.request_records(1)
    assert set(rec) >= {"id", "status", "end_slot", "fidelity", "how", "hops", "dispatch_slot"}
    assert bool(sim.done.any()) is False


# ---------------------------------------------------------------------- bad input
def test_refused_configs_and_arguments_are_one_line_errors(tmp_path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("slot,source,destination,F_req,deadline,priority\n0,0,1,0.7,5,1\n")
    with pytest.raises(ValueError, match=r"config field .trace.*not supported by the batched"):
        BatchedSimulator(SpepConfig(trace=str(trace)), 2)
    with pytest.raises(ValueError, match="num_envs=0 is invalid"):
        BatchedSimulator(small(), 0)
    with pytest.raises(ValueError, match="draws='bogus' is invalid"):
        BatchedSimulator(small(), 2, draws="bogus")
    with pytest.raises(ValueError, match="configs differ across the batch: field 'p_gen'"):
        same_config([small(), small(), small(p_gen=0.2)])
    assert same_config([small(), small()]) == small()
    g = nx.path_graph(4)
    with pytest.raises(ValueError, match="field 'topology'"):
        same_config([SpepConfig(topology=g), SpepConfig(topology=nx.path_graph(4))])


def test_a_device_that_does_not_exist_is_one_line() -> None:
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available here"):
            resolve_device("cuda")
    else:
        with pytest.raises(ValueError, match=r"there are .* CUDA devices"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    with pytest.raises(ValueError, match="device='tpu' is invalid"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="device='mps' is invalid"):
        resolve_device("mps")


def test_steps_out_of_turn() -> None:
    sim = BatchedSimulator(small(episode_slots=2), num_envs=2)
    with pytest.raises(RuntimeError, match="call reset"):
        sim.step(np.zeros((2, 8)))
    with pytest.raises(ValueError, match="3 seeds for 2 networks"):
        sim.reset([0, 1, 2])
    sim.reset([0, 1])
    with pytest.raises(ValueError, match=r"actions of shape \(3, 8\)"):
        sim.step(np.zeros((3, 8)))
    sim.step(np.zeros((2, 8)))
    sim.step(np.zeros(2))  # one entry each
    with pytest.raises(RuntimeError, match="the episode is over"):
        sim.step(np.zeros((2, 8)))


def test_decay_tables_are_the_scalar_pow() -> None:
    cfg = small(decay_model="depolarizing", preposition_rho=0.97, signalling_latency=0.5)
    sim = BatchedSimulator(cfg, num_envs=1)
    prho = cfg.effective_preposition_rho
    assert sim._pow.tolist() == [prho**k for k in range(sim._pow.numel())]
    f = torch.tensor([0.9, 0.7], dtype=torch.float64)
    got = sim._decayed(f, sim._pow[torch.tensor([3, 5])]).tolist()
    assert got == [
        physics.decayed(0.9, prho, 3, "depolarizing"),
        physics.decayed(0.7, prho, 5, "depolarizing"),
    ]


def test_the_queue_observation_pads_with_zeros_and_stays_in_the_space() -> None:
    from spep_gym.config import MAX_PRIORITY_WEIGHT

    cfg = small(priority_weights=(1.0, MAX_PRIORITY_WEIGHT), arrival_rate=0.5, queue_obs_size=64)
    space = SpepEnv(cfg).observation_space
    B, Q = 3, cfg.queue_obs_size
    sim = BatchedSimulator(cfg, B)
    sim.reset(list(range(B)))
    none = np.full((B, cfg.action_len), sim.num_pairs)
    for _ in range(6):
        sim.step(none)
        obs = sim.observation()
        for b in range(B):
            assert space.contains({k: v[b].numpy() for k, v in obs.items()})
    assert 0 < int(sim.queue_len.max()) < Q
    # A weight float32 cannot hold (a workload made by hand) must not turn the padding into NaN
    # (inf * 0): the padding is 0, as the scalar env leaves it.
    sim._request_rows()[:, :, 5] = 1e300
    queue = sim.observation()["queue"].view(B, Q, 6)
    padding = torch.arange(Q)[None, :] >= sim.queue_len[:, None]
    assert (queue[padding] == 0).all()


# ---------------------------------------------------------------------- memory (issue 19)
BIG_BATCHES = [
    # tables built in Python loops, one entry per slot of a window or a day (were a hang)
    (small(prediction_window=2**53), 1, "prediction_window"),
    (small(slots_per_day=2**53), 1, "slots_per_day"),
    (SpepConfig(), 10**12, "num_envs x arrival_rate x episode_slots"),
    (small(queue_capacity=10**9), 64, "num_envs x queue_capacity \\(queues\\)"),
    (small(max_prepositioned=10**9), 64, "num_envs x max_prepositioned"),
]


@pytest.mark.parametrize(("cfg", "B", "part"), BIG_BATCHES)
def test_a_batch_that_cannot_fit_is_refused_before_allocating(cfg, B, part) -> None:
    message = rf"^num_envs {B:,} is too large: .* GiB .*largest part is {part}.*allowed about"
    with pytest.raises(ValueError, match=message):  # was a torch allocation error
        BatchedSimulator(cfg, B)
    import gymnasium as gym

    with pytest.raises(ValueError, match=message):
        gym.make_vec("Spep-v0", num_envs=B, vectorization_mode="vector_entry_point", config=cfg)


def test_a_study_batch_that_cannot_fit_is_refused_naming_the_runs() -> None:
    from agents.study.engine import run_batch

    with pytest.raises(ValueError, match=r"^runs 2 is too large: .*queue_capacity"):
        run_batch("shortest", [0, 1], {"queue_capacity": 10**9, "episode_slots": 5})


@pytest.mark.parametrize(
    "fields",
    [{}, {"preset": "physical"}, {"topology": "scale_free", "num_nodes": 24}, {"link_capacity": 3}],
)
def test_the_batched_memory_estimate_bounds_the_tensors(fields) -> None:
    from spep_gym.resources import batched_memory_estimate

    cfg = SpepConfig.from_dict(fields)
    B = 16
    sim = BatchedSimulator(cfg, B)
    sim.reset(list(range(B)))
    most = sim.memory_bytes()
    for _ in range(20):
        sim.step(np.full((B, cfg.action_len), sim.num_pairs))
        sim.observation()
        most = max(most, sim.memory_bytes())
    estimate = sum(batched_memory_estimate(cfg, B).values())
    # the tensors held are a part of the peak (the host objects of a reset, a slot's temporaries)
    assert most < estimate < 10 * most


MEASURE = """
import json, sys
import numpy as np
import torch
torch.set_num_threads(1)
from spep_gym.batched import BatchedSimulator
from spep_gym.config import SpepConfig
B, cfg = int(sys.argv[1]), SpepConfig.from_dict(json.loads(sys.argv[2]))
sim = BatchedSimulator(cfg, B)
sim.reset(list(range(B)))
for _ in range(30):
    sim.step(np.full((B, cfg.action_len), sim.num_pairs))
    sim.observation()
    sim.action_masks()
sim.reset(list(range(B, 2 * B)))
# VmHWM: this program's own peak (ru_maxrss would keep the pytest parent's peak across exec)
status = open("/proc/self/status").read()
print(int(status.split("VmHWM:")[1].split()[0]) * 1024)
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux's VmHWM")
@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"num_nodes": 48},
        {"max_prepositioned": 20000},
        {"queue_capacity": 4096, "arrival_rate": 2.0},
    ],
)
def test_the_batched_memory_estimate_is_an_upper_bound_of_the_measured_peak(fields) -> None:
    """Peak RSS per network (B = 128 less B = 1, so the interpreter and torch cancel out)."""
    import json
    import subprocess
    import sys

    from spep_gym.resources import batched_memory_estimate

    def peak(B: int) -> int:
        args = [sys.executable, "-c", MEASURE, str(B), json.dumps(fields)]
        return int(subprocess.run(args, capture_output=True, text=True, check=True).stdout)

    measured = (peak(128) - peak(1)) / 127
    parts = batched_memory_estimate(SpepConfig.from_dict(fields), 1)
    estimate = sum(v for k, v in parts.items() if "num_envs" in k)  # per network
    assert measured < estimate < 4 * measured


@pytest.mark.parametrize("topology", [*TOPOLOGIES, "user graph"])
def test_the_estimate_bounds_the_largest_degree_and_grows_with_the_batch(topology) -> None:
    from spep_gym.resources import _max_degree, batched_memory_estimate

    graph = nx.barbell_graph(6, 3)
    cfg = SpepConfig(topology=graph) if topology == "user graph" else SpepConfig(topology=topology)
    graphs = [graph] if topology == "user graph" else [T.network_graph(cfg, s) for s in range(200)]
    assert max(d for g in graphs for _, d in g.degree()) <= _max_degree(cfg) <= cfg.n - 1
    one, many = (batched_memory_estimate(cfg, B) for B in (1, 1000))
    for part, value in one.items():  # the parts named after num_envs grow with it, no others
        assert many[part] == pytest.approx(1000 * value if "num_envs" in part else value)


def test_spep_reproduce_refuses_batches_that_cannot_fit_before_writing(tmp_path) -> None:
    from agents.study import reproduce

    out = tmp_path / "out"
    opts = reproduce.Options(
        agents=("shortest",), topologies=("erdos_renyi",), runs=2, slots=5, out=out,
        overrides={"queue_capacity": 10**9}, figures=False, progress=False, engine="batched",
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"^--runs 2 is too large: .*queue_capacity"):
        reproduce.reproduce(opts)  # was: the batch failed as a run, its traceback, exit 1
    assert not out.exists()


def test_a_cuda_batch_is_held_to_the_devices_free_memory(monkeypatch) -> None:
    from spep_gym.resources import check_batched_memory

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**20, 2**34))
    with pytest.raises(ValueError, match=r"^num_envs 64 is too large: .* than the 0.0 GiB avail"):
        check_batched_memory(small(), 64, torch.device("cuda:0"))
    check_batched_memory(small(), 64, torch.device("cpu"))
