"""Bad input to the config, a trace and the environment: one clear error, never a poisoned result.

Each test names the item of issue 10 it covers (numbers as in the issue).
"""

from __future__ import annotations

import re

import gymnasium as gym
import networkx as nx
import numpy as np
import pytest

import spep_gym  # noqa: F401  (registers Spep-v0)
from spep_gym.config import SpepConfig
from spep_gym.env import DEMAND_OBS_MAX, SpepEnv
from spep_gym.resources import memory_estimate
from spep_gym.simulator import Simulator


def invalid(field: str) -> pytest.RaisesContext:
    return pytest.raises(ValueError, match=rf"'{re.escape(field)}'.*invalid: allowed")


# ---------------------------------------------------------------------- 5. values that poison results


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("priority_weights", (1.0, float("inf"))),
        ("priority_weights", (float("nan"),)),
        ("demand_pairs", [(0, 3, float("inf"))]),
        ("demand_pairs", [(0, 3, float("nan"))]),
        ("demand_pairs", [5]),  # --set 'demand_pairs=[5]' used to end in a TypeError
        ("demand_pairs", [(0, True, 1.0)]),
        ("trace", 123),
    ],
)
def test_non_finite_and_malformed_values_are_refused(field, value):
    with invalid(field):
        SpepConfig(**{field: value})


@pytest.mark.parametrize(
    ("row", "column", "allowed"),
    [
        ("0,0,3,0.7,5,nan", "priority", "a finite number"),
        ("0,0,3,0.7,5,inf", "priority", "a finite number"),
        ("0,0,3,nan,5,1", "F_req", "a finite number"),
        ("0,0,3,0.7,99999999999999999999,1", "deadline", "at most"),
        ("99999999999999999999,0,3,0.7,5,1", "slot", "at most"),
    ],
)
def test_trace_values_that_would_poison_results(tmp_path, row, column, allowed):
    path = tmp_path / "trace.csv"
    path.write_text("slot,source,destination,F_req,deadline,priority\n" + row + "\n")
    with pytest.raises(ValueError, match=rf"trace.*line 2, column '{column}'.*{allowed}"):
        SpepEnv(SpepConfig.tiny(topology=nx.cycle_graph(5), trace=str(path)))


def test_trace_encodings(tmp_path):
    text = "slot,source,destination,F_req,deadline,priority\n0,0,3,0.7,5,1\n"
    bom = tmp_path / "bom.csv"
    bom.write_bytes(text.encode("utf-8-sig"))  # as spreadsheet programs save "CSV UTF-8"
    env = SpepEnv(SpepConfig.tiny(topology=nx.cycle_graph(5), trace=str(bom)))
    _, info = env.reset(seed=0)
    assert [(r["source"], r["destination"]) for r in info["arrived"]] == [(0, 3)]
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes(text.encode("utf-16"))
    with pytest.raises(ValueError, match=r"trace.*utf16\.csv.*not UTF-8 text.*allowed a UTF-8"):
        SpepEnv(SpepConfig.tiny(topology=nx.cycle_graph(5), trace=str(utf16)))


# ---------------------------------------------------------------------- 8. resources


@pytest.mark.parametrize(
    ("fields", "part"),
    [
        ({"num_nodes": 100_000}, "num_nodes"),
        ({"episode_slots": 10**12}, "episode_slots"),
        ({"arrival_rate": 1e9}, "arrival_rate"),
        ({"queue_obs_size": 10**10}, "queue_obs_size"),
        ({"link_capacity": 10**10}, "link_capacity"),
    ],
)
def test_configs_that_cannot_fit_are_refused_with_the_estimate(fields, part):
    with pytest.raises(ValueError, match=rf"needs about [\d,.]+ GiB .* largest part is {part}"):
        SpepConfig(**fields)


def test_memory_estimate_grows_with_the_sizes_and_passes_the_paper_preset():
    base = sum(memory_estimate(SpepConfig()).values())
    assert base < 2**26  # the paper preset: tens of MB at most
    assert sum(memory_estimate(SpepConfig(num_nodes=256)).values()) > 10 * base
    ring = nx.cycle_graph(400)
    wide = memory_estimate(SpepConfig(topology=ring))["num_nodes (static path matrix)"]
    assert wide >= 8 * 400 * 399 / 2 * 200  # a ring's paths are long: the estimate knows


# ---------------------------------------------------------------------- 13. actions, order, types


@pytest.mark.parametrize(
    "action",
    [
        list(range(20)),  # 20 entries: entry 9 was used
        np.zeros((2, 8), dtype=np.int64),  # 2-D: was flattened
        3,  # a scalar
        "01234567",  # a string: was parsed digit by digit
        [1.9] * 8,  # floats: were truncated
        np.full(8, 121),  # above P
        np.full(8, -1),  # below 0
        [True] * 8,  # booleans
    ],
    ids=["too-long", "2d", "scalar", "string", "floats", "above", "below", "bools"],
)
def test_step_refuses_actions_outside_the_space(action):
    env = SpepEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action = .* invalid: allowed .*shape \(8,\).*0\.\.120"):
        env.step(action)
    obs, *_ = env.step(np.full(8, 120))  # a valid action still works after the error
    assert env.observation_space.contains(obs)
    obs, *_ = env.step([120] * 8)  # a list of Python ints is in the space too
    assert env.observation_space.contains(obs)


def test_masks_and_render_before_reset_say_so():
    env = SpepEnv(render_mode="ansi")
    for call in (env.action_masks, env.render):
        with pytest.raises(RuntimeError, match=r"call reset\(\) before"):
            call()


def test_numpy_scalars_are_numbers_and_messages_do_not_offer_infinity():
    cfg = SpepConfig(num_nodes=np.int64(8), rho=np.float32(0.9), deadline_range=(np.int64(3), 9))
    assert cfg.num_nodes == 8 and type(cfg.num_nodes) is int and type(cfg.rho) is float
    assert type(cfg.deadline_range[0]) is int
    g = nx.path_graph(3)
    g.edges[0, 1]["link_capacity"] = np.int64(2)
    g.edges[1, 2]["length_km"] = np.float32(5.0)
    Simulator(SpepConfig(topology=g)).reset(0)
    for field in ("reward_served", "reference_km"):
        with pytest.raises(ValueError) as err:
            SpepConfig(**{field: float("inf")})
        assert "inf" not in str(err.value).split("allowed")[1]
    with pytest.raises(ValueError, match=r"length_km.*allowed a finite number"):
        g.edges[1, 2]["length_km"] = float("inf")
        SpepConfig(topology=g)


def test_gym_make_takes_a_config_dict_or_says_what_config_must_be():
    env = gym.make("Spep-v0", config={"num_nodes": 6, "er_p": 0.5})
    assert env.unwrapped.config == SpepConfig(num_nodes=6, er_p=0.5)
    with pytest.raises(ValueError, match=r"config = 'tiny' is invalid: allowed a SpepConfig"):
        gym.make("Spep-v0", config="tiny")


# ---------------------------------------------------------------------- Also


def test_spec_step_limit_is_episode_slots_and_the_simulator_stops_at_the_end():
    assert gym.make("Spep-v0").spec.max_episode_steps == 2000
    env = gym.make("Spep-v0", episode_slots=7)
    assert env.spec.max_episode_steps == 7
    again = gym.make(env.spec)  # re-made from its spec: the same limit, no earlier cut
    again.reset(seed=0)
    for _ in range(7):
        *_, truncated, _ = again.step(np.full(8, 120))
    assert truncated
    sim = Simulator(SpepConfig(episode_slots=3))
    sim.reset(0)
    for _ in range(3):
        sim.step(())
    with pytest.raises(RuntimeError, match=r"episode is over"):
        sim.step(())


def test_info_levels_keep_the_rewards_and_the_episode_metrics():
    full = SpepEnv(SpepConfig.tiny(episode_slots=40))
    cheap = {
        level: SpepEnv(SpepConfig.tiny(episode_slots=40, info_level=level))
        for level in ("counts", "minimal")
    }
    _, info = full.reset(seed=1)
    infos = {level: env.reset(seed=1)[1] for level, env in cheap.items()}
    assert set(infos["minimal"]) == {"rewards"}
    assert "arrived" not in infos["counts"] and "metrics" in infos["counts"]
    action = np.full(8, full.num_pairs)
    while True:
        obs, reward, _, truncated, info = full.step(action)
        for level, env in cheap.items():
            o, r, _, t, i = env.step(action)
            assert r == reward and t == truncated and i["rewards"] == info["rewards"]
            np.testing.assert_array_equal(o["link_pairs"], obs["link_pairs"])
            if level == "counts":
                assert i["metrics"] == info["metrics"]
        if truncated:
            break
    assert cheap["minimal"].sim.metrics.summary() == info["episode_metrics"]
    with invalid("info_level"):
        SpepConfig(info_level="some")


def test_demand_observation_has_a_finite_bound_and_is_clipped():
    env = SpepEnv(SpepConfig.tiny(arrival_rate=50.0, episode_slots=5, demand_pairs=[(0, 1, 1.0)]))
    space = env.observation_space["demand"]
    assert np.isfinite(space.high).all() and space.high.max() == DEMAND_OBS_MAX
    env.reset(seed=0)
    env._demand[:] = 2 * DEMAND_OBS_MAX  # as after a long burst
    obs = env._observation()
    assert obs["demand"].max() == DEMAND_OBS_MAX and space.contains(obs["demand"])


# ---------------------------------------------------------------------- issue 19: numeric extremes


def test_priority_weights_that_would_make_a_sum_infinite_are_refused(tmp_path):
    from spep_gym.config import MAX_PRIORITY_WEIGHT

    # The bound keeps every sum of weights finite in float32: the most requests a run can hold
    # (int64 counters) times the largest weight, served minus failed.
    assert np.isfinite(np.float32(2 * MAX_PRIORITY_WEIGHT * 2.0**63))
    assert SpepConfig(priority_weights=(MAX_PRIORITY_WEIGHT,)).priority_weights == (1e19,)
    for weights in ((1e308,), (1.0, 2 * MAX_PRIORITY_WEIGHT)):
        with pytest.raises(ValueError, match=r"'priority_weights'.*invalid: allowed.*<= 1e\+19"):
            SpepConfig(priority_weights=weights)
    path = tmp_path / "trace.csv"
    path.write_text("slot,source,destination,F_req,deadline,priority\n0,0,3,0.7,5,1e308\n")
    with pytest.raises(ValueError, match=r"trace.*line 2, column 'priority'.*<= 1e\+19"):
        SpepEnv(SpepConfig.tiny(topology=nx.cycle_graph(5), trace=str(path)))


HUGE = 10**400  # --set num_nodes=1 followed by 400 zeros


@pytest.mark.parametrize(
    "field",
    ["num_nodes", "link_capacity", "max_lifetime", "max_prepositioned", "episode_slots",
     "queue_capacity", "queue_obs_size"],
)  # fmt: skip
def test_huge_integers_are_refused_with_the_range_before_any_float_overflows(field):
    with pytest.raises(ValueError, match=rf"'{field}' = 1000.*invalid: allowed an integer >= \d+ "
                       r"and <= 9007199254740992 \(2\*\*53\)"):  # fmt: skip
        SpepConfig(**{field: HUGE})


@pytest.mark.parametrize("field", ["p_gen", "arrival_rate", "reward_served", "signalling_latency"])
def test_huge_integers_in_number_fields_are_refused(field):
    with invalid(field):
        SpepConfig(**{field: HUGE})
    with invalid("priority_weights"):
        SpepConfig(priority_weights=(HUGE,))
    with invalid("demand_pairs"):
        SpepConfig(demand_pairs=[(0, 3, HUGE)])


def test_demand_pair_weights_whose_sum_is_infinite_are_refused():
    with pytest.raises(ValueError, match=r"'demand_pairs'.*invalid: allowed.*sum finite"):
        SpepConfig(demand_pairs=[(0, 3, 1e308), (1, 4, 1e308)])


def test_numpy_arrays_and_sequences_for_tuple_fields_become_tuples_of_python_numbers():
    cfg = SpepConfig(
        priority_weights=np.array([1.0, 2.0, 3.0]),
        business_hours=np.array([8, 18]),
        fidelity_req_range=np.array([0.5, 0.8], dtype=np.float32),
        deadline_range=range(4, 6, 1),
        demand_pairs=np.array([[0, 5, 2], [1, 4, 1]]),
    )
    assert cfg.priority_weights == (1.0, 2.0, 3.0)
    assert cfg.business_hours == (8, 18) and cfg.deadline_range == (4, 5)
    assert cfg.demand_pairs == ((0, 5, 2), (1, 4, 1))
    for value in (*cfg.priority_weights, *cfg.business_hours, *cfg.fidelity_req_range):
        assert type(value) in (int, float)
    assert cfg == SpepConfig(
        priority_weights=(1.0, 2.0, 3.0), business_hours=(8, 18),
        fidelity_req_range=(float(np.float32(0.5)), float(np.float32(0.8))),
        deadline_range=(4, 5), demand_pairs=((0, 5, 2), (1, 4, 1)),
    )  # fmt: skip
    with invalid("priority_weights"):  # a 2-D array is not a list of weights
        SpepConfig(priority_weights=np.ones((2, 2)))
    with invalid("priority_weights"):
        SpepConfig(priority_weights="123")


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("\u0660,0,3,0.7,5,1", "slot"),  # Arabic-Indic zero
        ("0,0,\u0663,0.7,5,1", "destination"),
        ("0,0,3,\uff10.\uff17,5,1", "F_req"),  # full-width 0.7
        ("0,0,3,0.7,\uff15,1", "deadline"),
        ("0,0,3,0.7,5,\u0661", "priority"),
        ("0,0,3,0.7,5,1_0", "priority"),  # Python's int() and float() take underscores too
    ],
)
def test_trace_numbers_must_be_ascii(tmp_path, row, column):
    path = tmp_path / "trace.csv"
    path.write_text("slot,source,destination,F_req,deadline,priority\n" + row + "\n", "utf-8")
    with pytest.raises(ValueError, match=rf"trace.*trace\.csv.*line 2, column '{column}'.*ASCII"):
        SpepEnv(SpepConfig.tiny(topology=nx.cycle_graph(5), trace=str(path)))
