"""The compiled engine (spep_gym.compiled) equals the scalar simulator bit for bit under the same draws.

This module runs the engine as plain Python (``NUMBA_DISABLE_JIT=1``, set before numba loads), so
that coverage sees its lines; one test runs the jitted engine in a fresh interpreter.
"""

from __future__ import annotations

import os

# before spep_gym.compiled imports numba: plain Python, so coverage sees it (a subprocess sets 0)
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")

import subprocess
import sys
import textwrap
from typing import Any

import networkx as nx
import numpy as np
import pytest
from conftest import (
    assert_same,
    line_graph,
    random_actions,
    run_jitted,
    trace_config,
    write_trace,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_properties import configs

from spep_gym import physics
from spep_gym.compiled import CompiledSimulator, latency, laws, links
from spep_gym.compiled import engine as compiled_engine
from spep_gym.compiled.state import DECAY_MODEL, SWAP_MODEL
from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv
from spep_gym.routing import highest_fidelity
from spep_gym.simulator import Simulator


def held(sim: Simulator) -> list[tuple[int, float, int, int, int]]:
    return [(p.pair, p.fidelity, p.placed, p.hops, p.expiry) for p in sim.held]


def assert_same_episode(cfg: SpepConfig, seed: int, action_seed: int = 0) -> Simulator:
    """Step both engines with the same random actions; every slot's state and events equal."""
    ref, fast = Simulator(cfg), CompiledSimulator(cfg)
    assert ref.reset(seed) == fast.reset(seed)
    rng = np.random.default_rng(action_seed)
    num_pairs = ref.net.num_pairs
    while not ref.done:
        # entries up to P + 2 (out of range: "none" in both engines), and half of them the pairs
        # of the last requests, so that pre-positioned pairs get used
        action = rng.integers(0, num_pairs + 2, cfg.action_len)
        recent = ref.workload.pair[max(0, ref.workload.starts[ref.t + 1] - 6) :]
        if len(recent):
            half = rng.random(cfg.action_len) < 0.5
            action[half] = rng.choice(recent, int(half.sum()))
        slot = ref.t
        assert ref.step(action.tolist()) == fast.step(action), f"events of slot {slot}"
        assert ref.metrics == fast.metrics, f"metrics after slot {slot}"
        assert fast.t == ref.t
        np.testing.assert_array_equal(ref.links.created, fast.state.created)
        np.testing.assert_array_equal(ref.links.count, fast.state.stored)
        np.testing.assert_array_equal(ref.links.youngest, fast.state.youngest)
        assert ref.links.usable == fast.state.usable[:-1].tolist()
        assert ref.links.factor == fast.state.factor[:-1].tolist()
        if cfg.routing == "highest_fidelity":
            assert ref.links.cost == fast.state.cost.tolist()
        assert ref.queued_requests() == fast.queued_requests()
        assert held(ref) == fast.held
        assert ref.in_flight == fast.in_flight, f"swaps in flight after slot {slot}"
        np.testing.assert_array_equal(ref.links.busy_until, fast.state.busy_until)
    assert fast.done
    for name, column in ref.records.items():
        np.testing.assert_array_equal(column, fast.records[name], err_msg=name)
    assert ref.queued_requests(3) == fast.queued_requests(3)
    return ref


@pytest.mark.parametrize("topology", ["erdos_renyi", "random_regular", "small_world", "scale_free"])
@pytest.mark.parametrize("seed", [0, 1])
def test_paper_preset_equals_the_scalar_simulator(topology: str, seed: int) -> None:
    ref = assert_same_episode(
        SpepConfig(topology=topology, episode_slots=150, arrival_rate=0.3), seed, seed
    )
    m = ref.metrics
    assert m.served > 0 and m.failed > 0 and m.prepositions_used > 0  # the run exercised them


OPTIONS: dict[str, dict[str, Any]] = {
    "werner": {"swap_model": "werner"},
    "depolarizing": {"decay_model": "depolarizing", "preposition_rho": 0.9},
    "replace_oldest": {"link_pool_policy": "replace_oldest", "link_capacity": 3, "p_gen": 0.4},
    "block_capacity": {"link_capacity": 2, "p_gen": 0.4},
    "cutoff": {"cutoff_fidelity": 0.75},
    "swap_failures": {"swap_success": 0.7},
    "reactive": {"routing": "reactive"},
    "highest_fidelity": {"routing": "highest_fidelity", "link_capacity": 2, "p_gen": 0.3},
    "available_paths": {"preposition_path": "available", "max_new_prepositions": 3},
    "queue_overflow": {"queue_capacity": 3, "arrival_rate": 0.5},
    "physical_without_latency": {"preset": "physical", "signalling_latency": 0.0},
}

EXERCISED = {
    "replace_oldest": "pairs_replaced",
    "swap_failures": "swap_failures",
    "queue_overflow": "queue_overflow",
    "physical_without_latency": "pairs_replaced",
}


#: Signalling latency (swaps in flight) of 0.5, 1 and 2 slots per hop, over the other options.
LATENCY: dict[str, dict[str, Any]] = {
    "half_slot": {"signalling_latency": 0.5},
    "physical": {"preset": "physical", "num_nodes": 10},
    "one_slot_swap_failures_small_world": {
        "signalling_latency": 1.0, "swap_success": 0.7, "topology": "small_world",
    },
    "two_slots_replace_oldest_reactive_scale_free": {
        "signalling_latency": 2.0, "link_pool_policy": "replace_oldest", "link_capacity": 3,
        "routing": "reactive", "p_gen": 0.4, "topology": "scale_free",
    },
    "half_slot_highest_fidelity": {
        "signalling_latency": 0.5, "routing": "highest_fidelity", "link_capacity": 2,
        "p_gen": 0.3, "swap_model": "werner", "swap_success": 0.9,
    },
    "two_slots_highest_fidelity_depolarizing": {
        "signalling_latency": 2.0, "routing": "highest_fidelity", "decay_model": "depolarizing",
        "preposition_rho": 0.97, "link_capacity": 2, "p_gen": 0.4,
    },
    "one_slot_available_paths_random_regular": {
        "signalling_latency": 1.0, "preposition_path": "available", "max_new_prepositions": 3,
        "cutoff_fidelity": 0.75, "topology": "random_regular",
    },
    "half_slot_queue_overflow": {
        "signalling_latency": 0.5, "queue_capacity": 3, "arrival_rate": 0.5, "swap_success": 0.8,
    },
}  # fmt: skip


@pytest.mark.parametrize("option", sorted(LATENCY))
def test_signalling_latency_equals_the_scalar_simulator(option: str) -> None:
    """Swaps in flight, busy links, outcomes in phase 1, routing on delivered fidelity: equal."""
    fields = {
        "num_nodes": 10, "er_p": 0.35, "episode_slots": 150, "arrival_rate": 0.4,
        "F_min": 0.5, "fidelity_req_range": (0.5, 0.8), **LATENCY[option],
    }  # fmt: skip
    cfg = SpepConfig.from_dict(fields)
    totals = [assert_same_episode(cfg, seed, seed).metrics for seed in (0, 1)]
    # the runs served on demand after a delay and used pre-positioned pairs
    assert sum(m.served - m.served_prepositioned for m in totals) > 0
    assert sum(m.prepositions_used for m in totals) > 0
    if cfg.swap_success < 1:
        assert sum(m.swap_failures for m in totals) > 0


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_physics_options_equal_the_scalar_simulator(option: str) -> None:
    fields = {"num_nodes": 10, "er_p": 0.35, "episode_slots": 150, **OPTIONS[option]}
    cfg = SpepConfig.from_dict(fields)
    totals = [assert_same_episode(cfg, seed, seed).metrics for seed in (0, 1)]
    if option in EXERCISED:  # the option did something in these runs
        assert sum(getattr(m, EXERCISED[option]) for m in totals) > 0


def test_a_user_graph_with_lengths_and_capacities_and_fibre_loss() -> None:
    g = nx.cycle_graph(7)
    for i, (u, v) in enumerate(g.edges):
        g.edges[u, v].update(length_km=10.0 + 15 * i, link_capacity=1 + i % 3)
    g.add_edge(0, 3, p_gen=0.5, F0=0.97)
    for length_model in ("paper", "loss"):
        cfg = SpepConfig(topology=g, length_model=length_model, episode_slots=150, arrival_rate=0.3)
        assert_same_episode(cfg, 3, 3)


def test_a_user_graph_with_capacities_and_signalling_latency() -> None:
    g = nx.cycle_graph(8)
    for i, (u, v) in enumerate(g.edges):
        g.edges[u, v].update(length_km=5.0 + 10 * i, link_capacity=1 + i % 3)
    g.add_edges_from([(0, 4), (2, 6)])
    for policy in ("block", "replace_oldest"):
        cfg = SpepConfig(
            topology=g, signalling_latency=0.7, link_pool_policy=policy, p_gen=0.5,
            routing="highest_fidelity", swap_success=0.9, episode_slots=150, arrival_rate=0.4,
        )  # fmt: skip
        m = assert_same_episode(cfg, 4, 4).metrics
        assert m.served > m.served_prepositioned > 0 and m.swap_failures > 0
        assert (m.pairs_replaced > 0) == (policy == "replace_oldest")


def test_latency_routes_highest_fidelity_by_the_fidelity_delivered() -> None:
    """A chain 0-1-2-3 of good links and a worse direct link 0-3: the three hops give the higher
    fidelity now, the one hop the higher fidelity on arrival (2 slots per hop, rho 0.9)."""
    g = nx.path_graph(4)
    nx.set_edge_attributes(g, 0.99, "F0")
    g.add_edge(0, 3, F0=0.9)
    cfg = SpepConfig(
        topology=g, p_gen=1.0, signalling_latency=2.0, preposition_rho=0.9,
        routing="highest_fidelity", episode_slots=5,
    )  # fmt: skip
    ref, fast = Simulator(cfg), CompiledSimulator(cfg)
    ref.reset(0)
    fast.reset(0)
    out = np.zeros(4, dtype=np.int64)
    for s, d in [(0, 3), (3, 0), (1, 3), (0, 2), (2, 2)]:
        want = ref._route(ref.net, ref.links.usable, ref.links.cost, s, d)
        hops = latency.highest_delivered(fast.state, fast.params, s, d, out)
        assert out[:hops].tolist() == want, (s, d)
    direct = ref._route(ref.net, ref.links.usable, ref.links.cost, 0, 3)
    assert len(direct) == 1
    assert len(highest_fidelity(ref.net, ref.links.usable, ref.links.cost, 0, 3)) == 3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs(), seed=st.integers(0, 2**32 - 1))
def test_random_configs_equal_the_scalar_simulator(cfg: SpepConfig, seed: int) -> None:
    """The configs of the invariant tests (every option, signalling latency among them)."""
    assert_same_episode(cfg, seed, seed)


def test_a_trace_drives_both_engines_alike(tmp_path) -> None:
    rows = [(t, t % 5, (t + 2) % 5, 0.6, t + 6, 1 + t % 3) for t in range(0, 60, 2)]
    cfg = SpepConfig(
        topology=nx.path_graph(5), trace=write_trace(tmp_path / "t.csv", rows), p_gen=0.6,
        episode_slots=60,
    )  # fmt: skip
    assert_same_episode(cfg, 0)


def test_taking_a_pair_leaves_the_link_view_of_the_scalar_pool() -> None:
    # one link's cost after a take is math.log's, not numpy's: they differ in the last bit for
    # some factors (links of different lengths have many), and a route searched later in the
    # slot reads that cost
    g = nx.random_regular_graph(4, 12, seed=1)
    lengths = np.random.default_rng(0).uniform(5.0, 60.0, g.number_of_edges()).tolist()
    nx.set_edge_attributes(g, dict(zip(g.edges, lengths, strict=True)), "length_km")
    cfg = SpepConfig(topology=g, routing="highest_fidelity", link_capacity=4, p_gen=0.6)
    ref, fast = Simulator(cfg), CompiledSimulator(cfg)
    ref.reset(0)
    fast.reset(0)
    for _ in range(60):
        ref.step()
        fast.step()
        t = ref.t
        for e in np.flatnonzero(ref.links.count > 1).tolist():
            assert ref.links.take(e, t) == links.take(fast.state, e, t)
        assert ref.links.cost == fast.state.cost.tolist(), f"slot {t}"
        assert ref.links.factor == fast.state.factor[:-1].tolist()
        assert ref.links.usable == fast.state.usable[:-1].tolist()


ENV_CONFIGS: dict[str, dict[str, Any]] = {
    "paper": {"episode_slots": 80, "arrival_rate": 0.4},
    "available_werner": {
        "episode_slots": 60, "preposition_path": "available", "swap_model": "werner",
        "queue_obs_size": 4, "arrival_rate": 0.6, "info_level": "counts",
    },
    "physical_without_latency": {
        "preset": "physical", "signalling_latency": 0.0, "episode_slots": 60, "info_level": "minimal"
    },
    "physical_latency": {"preset": "physical", "episode_slots": 80, "info_level": "counts"},
    "latency_highest_fidelity_swap_failures": {
        "episode_slots": 80, "signalling_latency": 1.0, "routing": "highest_fidelity",
        "swap_success": 0.8, "link_capacity": 2, "p_gen": 0.4, "arrival_rate": 0.6,
    },
    "demand_keys_predictive_hits": {
        "episode_slots": 80, "arrival_rate": 0.8, "demand_ema_half_lives": (15, 240),
        "demand_hour_obs": True, "reward_predictive_hit": 2.0, "num_hot_pairs": 2,
    },
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(ENV_CONFIGS))
def test_the_env_on_the_compiled_engine_equals_the_python_engine(name: str) -> None:
    """Observations (keys in order), rewards, ends, infos and masks equal, step by step."""
    envs = [SpepEnv(engine=e, **ENV_CONFIGS[name]) for e in ("python", "compiled")]
    first = [env.reset(seed=5) for env in envs]
    assert list(first[0][0]) == list(first[1][0])
    assert_same(*first, "reset")
    rng = np.random.default_rng(0)
    flying = dict.fromkeys(("link_busy", "prepositioned_in_flight", "requests_in_flight"), 0.0)
    for slot in range(envs[0].config.episode_slots):
        assert_same(*(env.action_masks() for env in envs), f"mask of slot {slot}")
        # the python engine's mask chooses: places that succeed, then "none" and out-of-path pairs
        action = random_actions(envs[0], rng)
        action[-1] = rng.integers(0, envs[0].num_pairs + 1)
        steps = [env.step(action) for env in envs]
        assert_same(*steps, f"step of slot {slot}")
        for key in flying:
            flying[key] += float(steps[1][0][key].sum())
    assert steps[0][3] and "episode_metrics" in steps[0][4]
    if envs[0].config.signalling_latency > 0:  # the keys of swaps in flight were seen
        assert min(flying.values()) > 0, flying


@pytest.mark.parametrize("place_at", [3, 5])
def test_the_compiled_engine_pays_a_predictive_hit_as_the_python_engine(tmp_path, place_at):
    """A line 0-1-2, one request (0, 2) at slot 5, its pair placed before it arrived or with it."""
    cfg = trace_config(
        tmp_path, line_graph(3), [(5, 0, 2, 0.5, 9, 2)], reward_predictive_hit=10.0, action_len=1
    )
    runs = []
    for engine in ("python", "compiled"):
        env = SpepEnv(cfg, engine=engine)
        env.reset(seed=0)
        pair, none = 1, env.num_pairs  # pairs (0, 1), (0, 2), (1, 2)
        runs.append([env.step(np.array([pair if t == place_at else none])) for t in range(8)])
    assert_same(*runs, "steps")
    assert runs[1][5][1] == (2.0 + 10.0 if place_at < 5 else 2.0)  # served, and a hit if ahead


def test_the_compiled_engine_refuses_what_it_does_not_cover_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"^engine = 'numba' is invalid: allowed 'python' or"):
        SpepEnv(engine="numba")
    with pytest.raises(
        ValueError, match=r"^render_mode='ansi' is not covered by engine='compiled'"
    ):
        SpepEnv(engine="compiled", render_mode="ansi")


def test_a_field_not_covered_is_refused_in_one_line(monkeypatch) -> None:
    # every field is covered now; the check stays for the next option the engine lacks
    assert compiled_engine.UNSUPPORTED == {}
    CompiledSimulator(SpepConfig.physical())
    monkeypatch.setitem(compiled_engine.UNSUPPORTED, "signalling_latency", 0.0)
    with pytest.raises(
        ValueError, match=r"^config field 'signalling_latency' = 0\.5 is not covered"
    ):
        CompiledSimulator(SpepConfig(signalling_latency=0.5))


def test_a_finished_episode_refuses_a_step() -> None:
    sim = CompiledSimulator(SpepConfig.tiny(episode_slots=2))
    sim.reset(0)
    sim.step()
    sim.step([0])
    with pytest.raises(RuntimeError, match="call reset"):
        sim.step()


@pytest.mark.parametrize("model", ["paper", "depolarizing"])
def test_the_compiled_laws_are_physics_py(model: str) -> None:
    for f in np.linspace(0.3, 1.0, 15).tolist():
        for rho in (0.5, 0.9, 0.96, 0.999):
            for age in range(0, 40, 3):
                assert laws.decayed(f, rho, age, DECAY_MODEL[model]) == physics.decayed(
                    f, rho, age, model
                )
            assert laws.slots_until_below(
                f, rho, 0.5, 15, DECAY_MODEL[model]
            ) == physics.slots_until_below(f, rho, 0.5, 15, model)
    for swap in ("paper", "werner"):
        for f in np.linspace(0.25, 1.0, 31).tolist():
            m = SWAP_MODEL[swap]
            assert laws.link_factor(f, m) == physics.link_factor(f, swap)
            assert laws.fidelity_from_product(f, m) == physics.fidelity_from_product(f, swap)


def test_import_spep_gym_does_not_load_numba() -> None:
    code = (
        "import gymnasium as gym, spep_gym, sys; gym.make('Spep-v0'); print('numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_jitted_engine_equals_the_scalar_simulator() -> None:
    """The compiled code itself (not the plain-Python run above), in a fresh interpreter."""
    code = textwrap.dedent(
        """
        import numba, numpy as np
        from spep_gym.compiled import phases
        from spep_gym.config import SpepConfig
        from test_compiled import (
            assert_same_episode, test_the_env_on_the_compiled_engine_equals_the_python_engine
        )
        assert not numba.config.DISABLE_JIT
        assert_same_episode(SpepConfig(episode_slots=300), 0)
        assert_same_episode(SpepConfig.from_dict(
            {"preset": "physical", "signalling_latency": 0.0, "episode_slots": 300,
             "routing": "highest_fidelity", "preposition_path": "available", "swap_success": 0.8}
        ), 1, 1)
        assert_same_episode(SpepConfig.from_dict(
            {"preset": "physical", "signalling_latency": 1.0, "episode_slots": 300,
             "routing": "highest_fidelity", "preposition_path": "available", "swap_success": 0.8}
        ), 2, 2)
        test_the_env_on_the_compiled_engine_equals_the_python_engine("available_werner")
        test_the_env_on_the_compiled_engine_equals_the_python_engine("physical_latency")
        assert phases.step.signatures, "the engine ran as Python"
        print("ok")
        """
    )
    run_jitted(code)
