"""Config validation: every bad value raises ValueError naming the field, the value and what is allowed."""

from __future__ import annotations

import re

import gymnasium as gym
import networkx as nx
import pytest
from conftest import write_trace

import spep_gym  # noqa: F401  (registers Spep-v0)
from spep_gym.config import DEFAULTS, SpepConfig
from spep_gym.env import SpepEnv
from spep_gym.simulator import Simulator


def raises(field: str, value: object):
    """pytest.raises for a ValueError whose message names ``field`` and ``value``, and says what is allowed."""
    return pytest.raises(
        ValueError, match=rf"(?s)'{re.escape(field)}'.*{re.escape(repr(value))}.*allowed"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        # probabilities outside [0, 1]
        ("p_gen", 1.5),
        ("p_gen", -0.1),
        ("swap_success", 1.01),
        ("hot_traffic_share", -0.5),
        ("ws_p", 2.0),
        ("F_min", 1.2),
        # fidelities outside (0.25, 1]
        ("F0", 0.25),
        ("F0", 0.1),
        ("F0", 1.0001),
        # other numbers
        ("rho", 0.0),
        ("rho", 1.5),
        ("preposition_rho", 0.0),
        ("arrival_rate", -1.0),
        ("p_gen", float("nan")),
        ("episode_slots", 0),
        ("episode_slots", 2.5),
        ("link_capacity", 0),
        ("link_capacity", True),
        ("max_lifetime", -1),
        ("prediction_window", 0),
        ("max_prepositioned", -1),
        ("action_len", 0),
        ("queue_obs_size", 0),
        ("topology_seed", -3),
        # names
        ("topology", "ring"),
        ("swap_model", "bell"),
        ("routing", "fastest"),
        ("preposition_path", "any"),
        # ranges
        ("deadline_range", (5, 3)),
        ("deadline_range", (2.5, 4)),
        ("fidelity_req_range", (0.9, 0.6)),
        ("fidelity_req_range", (0.5, 1.5)),
        ("business_hours", (17, 9)),
        ("priority_weights", ()),
        ("priority_weights", (1.0, -2.0)),
        # generator parameters that don't fit the size
        ("er_p", 0.0),
        ("ba_m", 0),
        ("ws_k", 2.5),
        ("regular_degree", "3"),
    ],
)
def test_bad_value_names_field_value_and_allowed(field, value):
    with raises(field, value):
        SpepConfig(**{field: value})


def test_generator_parameters_must_fit_the_size():
    with raises("regular_degree", 3):
        SpepConfig(topology="random_regular", num_nodes=7, regular_degree=3)  # n * d odd
    with raises("regular_degree", 16):
        SpepConfig(topology="random_regular", num_nodes=16, regular_degree=16)
    with raises("regular_degree", 1):
        SpepConfig(topology="random_regular", num_nodes=8, regular_degree=1)  # disconnected
    SpepConfig(topology="random_regular", num_nodes=8, regular_degree=3)
    SpepConfig(num_nodes=5)  # degree 3 on 5 nodes does not fit, but no regular graph is drawn
    with raises("ws_k", 16):
        SpepConfig(topology="small_world", num_nodes=16, ws_k=16)
    with raises("ba_m", 6):
        SpepConfig(topology="scale_free", num_nodes=6, ba_m=6)


def test_user_graph_must_be_connected_simple_and_well_attributed():
    g = nx.Graph([(0, 1), (2, 3)])
    with pytest.raises(ValueError, match=r"'topology'.*connected"):
        SpepConfig(topology=g)
    with pytest.raises(ValueError, match=r"'topology'.*undirected"):
        SpepConfig(topology=nx.DiGraph([(0, 1)]))
    with pytest.raises(ValueError, match=r"self-loops"):
        SpepConfig(topology=nx.Graph([(0, 1), (1, 1)]))
    for attr, value in (("p_gen", 1.5), ("F0", 0.2), ("length_km", -1.0), ("link_capacity", 0)):
        g = nx.path_graph(3)
        g.edges[1, 2][attr] = value
        with pytest.raises(ValueError, match=rf"edge \(1, 2\) attribute {attr}.*{value}.*allowed"):
            SpepConfig(topology=g)


def test_misspelled_field_suggests_the_right_one():
    with pytest.raises(ValueError, match=r"unknown config field 'p_gn'.*did you mean 'p_gen'"):
        SpepConfig.from_dict({"p_gn": 0.1})
    with pytest.raises(ValueError, match=r"'max_lifetim'.*did you mean 'max_lifetime'"):
        SpepConfig.tiny().replace(max_lifetim=3)
    with pytest.raises(ValueError, match=r"'swap_modle'.*did you mean 'swap_model'"):
        gym.make("Spep-v0", swap_modle="werner")


def test_gym_make_kwargs_are_validated():
    with raises("p_gen", 2.0):
        gym.make("Spep-v0", p_gen=2.0)
    with raises("topology", "grid"):
        SpepEnv(topology="grid")


def test_bad_demand_pairs():
    for pairs in (
        [(0, 16, 1.0)],  # node out of range
        [(3, 3, 1.0)],  # source == destination
        [(0, 1, 0.0)],  # weight not positive
        [(0, 1)],  # not a triple
        [],
    ):
        with pytest.raises(ValueError, match=r"'demand_pairs'.*allowed"):
            SpepConfig(demand_pairs=pairs)
    assert SpepConfig(demand_pairs=[[0, 5, 2.0]]).demand_pairs == ((0, 5, 2.0),)


def test_bad_trace_csv(tmp_path):
    with raises("trace", str(tmp_path / "missing.csv")):
        SpepConfig(trace=str(tmp_path / "missing.csv"))
    bad_header = tmp_path / "header.csv"
    bad_header.write_text("slot,src,dst,F_req,deadline,priority\n0,0,1,0.7,5,1\n")
    with pytest.raises(ValueError, match=r"'trace'.*header.*slot,source,destination"):
        SpepEnv(trace=str(bad_header))
    bad_node = write_trace(tmp_path / "node.csv", [(0, 0, 1, 0.7, 5, 1), (1, 2, 99, 0.7, 5, 1)])
    with pytest.raises(ValueError, match=r"'trace'.*line 3.*'destination' = 99.*allowed"):
        Simulator(SpepConfig(trace=bad_node))
    cases = {
        "0,0,1,high,5,1": r"line 2.*'F_req' = 'high'",
        "0,0,0,0.7,5,1": r"line 2.*'destination' = 0",
        "4,0,1,0.7,3,1": r"line 2.*'deadline' = 3",
        "0,0,1,0.7,5,0": r"line 2.*'priority' = 0",
        "0,0,1,0.7,5": r"line 2.*6 comma-separated",
        "-1,0,1,0.7,5,1": r"line 2.*'slot' = -1",
    }
    for row, message in cases.items():
        path = tmp_path / "row.csv"
        path.write_text("slot,source,destination,F_req,deadline,priority\n" + row + "\n")
        with pytest.raises(ValueError, match=message):
            SpepEnv(trace=str(path))


def test_presets_construct():
    assert SpepConfig.paper() == SpepConfig()
    assert {k: getattr(SpepConfig.paper(), k) for k in DEFAULTS} == DEFAULTS
    tiny = SpepConfig.tiny(p_gen=0.3)
    assert (tiny.n, tiny.p_gen) == (6, 0.3)
    assert SpepConfig().n == 16 and SpepConfig(topology=nx.path_graph(5)).n == 5
    # Lists are accepted where tuples are expected (command line, JSON).
    assert SpepConfig(deadline_range=[4, 4]).deadline_range == (4, 4)
    assert SpepConfig().effective_preposition_rho == 0.96
    assert SpepConfig(preposition_rho=0.99).effective_preposition_rho == 0.99
