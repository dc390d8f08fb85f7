"""The env's step in one compiled call (spep_gym.compiled.env_step) equals the python env's.

Plain Python (``NUMBA_DISABLE_JIT=1``) for coverage, as tests/test_compiled.py; the jitted check
runs in a fresh interpreter there and here.
"""

from __future__ import annotations

import copy
import os
import pickle

os.environ.setdefault("NUMBA_DISABLE_JIT", "1")

import textwrap
import warnings
from typing import Any

import numpy as np
import pytest
from conftest import assert_same, random_actions, run_jitted

from spep_gym.compiled import CompiledSimulator
from spep_gym.compiled.env_step import ENV_KEYS, EnvCore, time_of_day_table
from spep_gym.config import SpepConfig
from spep_gym.env import OBSERVATION_KEYS, SpepEnv

CONFIGS: dict[str, dict[str, Any]] = {
    "paper": {"episode_slots": 140, "arrival_rate": 0.5, "demand_obs_slots": 4},
    "available_werner_swap_failures": {
        "episode_slots": 90, "preposition_path": "available", "swap_model": "werner",
        "queue_obs_size": 3, "arrival_rate": 0.8, "swap_success": 0.7, "slots_per_day": 24,
    },
    "latency": {"episode_slots": 80, "signalling_latency": 1.0, "swap_success": 0.8},
}  # fmt: skip


def run_core_beside_the_python_env(cfg: SpepConfig, seed: int) -> None:
    """Every slot: the core's observation and pre-position fidelities are the python env's."""
    env = SpepEnv(cfg)
    core = EnvCore(CompiledSimulator(cfg))
    obs, _ = env.reset(seed=seed)
    core.reset(seed)
    rng = np.random.default_rng(seed)
    for slot in range(cfg.episode_slots + 1):
        got = core.observation()
        assert list(got) == list(OBSERVATION_KEYS)
        assert_same({k: obs[k] for k in got}, got, f"observation at slot {slot}")
        assert_same(env.sim.preposition_fidelity(), core.pf, f"fidelities at slot {slot}")
        assert core.sim.t == env.sim.t
        if slot == cfg.episode_slots:
            break
        action = random_actions(env, rng)
        action[-1] = rng.integers(0, env.num_pairs + 1)
        obs = env.step(action)[0]
        assert core.step(action.astype(np.int64))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_core_observes_as_the_python_env(name: str) -> None:
    run_core_beside_the_python_env(SpepConfig.from_dict(CONFIGS[name]), seed=3)


def test_an_action_out_of_range_runs_nothing() -> None:
    cfg = SpepConfig.tiny(episode_slots=5)
    core = EnvCore(CompiledSimulator(cfg))
    core.reset(0)
    before = core.observation()
    P = cfg.n * (cfg.n - 1) // 2
    for bad in (-1, P + 1):
        action = np.full(cfg.action_len, P, np.int64)
        action[-1] = bad
        assert not core.step(action)
    assert core.sim.t == 0
    assert_same(before, core.observation())
    obs = core.observation()
    obs["demand"][:] = -1.0  # a copy: the next step does not write into it, nor does this
    assert core.step(np.zeros(cfg.action_len, np.int64))
    assert core.observation()["demand"].min() >= 0.0


def test_the_buffer_keys_are_the_envs() -> None:
    assert ENV_KEYS == OBSERVATION_KEYS


def test_the_time_of_day_table_is_the_envs_formula() -> None:
    table = time_of_day_table(240)
    t = 37
    phase = 2.0 * np.pi * t / 240
    assert table[t].tolist() == np.array([np.sin(phase), np.cos(phase)], np.float32).tolist()


def test_a_copied_compiled_env_continues_identically() -> None:
    env = SpepEnv(engine="compiled", episode_slots=40, swap_success=0.7, arrival_rate=0.6)
    env.reset(seed=2)
    rng = np.random.default_rng(0)
    for _ in range(10):
        env.step(random_actions(env, rng))
    clones = [pickle.loads(pickle.dumps(env)), copy.deepcopy(env)]
    for _ in range(25):
        action = random_actions(env, rng)
        step = env.step(action)
        for clone in clones:
            assert_same(step, clone.step(action))


def test_an_observation_is_not_overwritten_by_later_steps() -> None:
    env = SpepEnv(engine="compiled", episode_slots=30, arrival_rate=0.8)
    obs, _ = env.reset(seed=0)
    kept = copy.deepcopy(obs)
    rng = np.random.default_rng(1)
    for _ in range(5):
        env.step(random_actions(env, rng))
    assert_same(obs, kept)


@pytest.mark.parametrize(
    "action",
    [[0, 1], np.zeros(8, np.float64), np.full(8, -1), np.full(8, 121), np.zeros((2, 4), int)],
)
def test_a_bad_action_is_refused_as_by_the_python_engine_and_runs_nothing(action: Any) -> None:
    envs = [SpepEnv(engine=e, episode_slots=10) for e in ("python", "compiled")]
    errors = []
    for env in envs:
        env.reset(seed=1)
        with pytest.raises(ValueError) as error:
            env.step(action)
        errors.append(str(error.value))
    assert errors[0] == errors[1]
    assert errors[1].startswith("action = ") and "is invalid: allowed an integer array" in errors[1]
    ok = np.array([3, 120, 7, 120, 120, 120, 120, 120], np.uint8)  # another integer dtype is taken
    assert_same(*(env.step(ok) for env in envs))


@pytest.mark.parametrize("level", ["counts", "full"])
def test_an_info_read_late_is_the_one_of_its_step(level: str) -> None:
    """The compiled engine's info is built when read: read after later steps, it is unchanged."""
    cfg = {"episode_slots": 25, "arrival_rate": 0.9, "info_level": level, "swap_success": 0.8}
    envs = [SpepEnv(engine=e, **cfg) for e in ("python", "compiled")]
    rng = np.random.default_rng(4)
    runs: list[list[Any]] = [[], []]
    for run, env in zip(runs, envs, strict=True):
        run.append(env.reset(seed=6)[1])
    for _ in range(25):
        action = random_actions(envs[0], rng)
        for run, env in zip(runs, envs, strict=True):
            run.append(env.step(action)[4])
    late = runs[1][12]
    late["mine"] = 1  # written before it is built: kept, after the info's own keys
    assert "metrics" in late and len(late) == len(runs[0][12]) + 1
    assert late.pop("mine") == 1
    for slot, (eager, lazy) in enumerate(zip(*runs, strict=True)):
        assert list(lazy) == list(eager), f"keys of slot {slot}"
        assert_same(eager, dict(lazy.items()), f"info of slot {slot}")
    assert "episode_metrics" in runs[1][-1]
    info = runs[1][5]
    assert type(pickle.loads(pickle.dumps(info))) is dict
    assert_same(copy.deepcopy(info), info)
    assert_same(info.copy(), {**info})


def test_an_unread_info_equals_an_eager_one() -> None:
    cfg = {"episode_slots": 5, "info_level": "counts"}
    envs = [SpepEnv(engine=e, **cfg) for e in ("python", "compiled")]
    infos = [env.reset(seed=0) and env.step(np.full(8, 120))[4] for env in envs]
    assert infos[1] == infos[0]
    assert infos[1].__ne__(infos[0]) is False
    other = SpepEnv(engine="compiled", **cfg)
    other.reset(seed=1)
    assert infos[1] != other.step(np.full(8, 120))[4]  # two unread infos compare built


def test_the_compiled_env_passes_gymnasiums_and_sb3s_checkers_without_warnings() -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fields in ({}, {"preposition_path": "available", "demand_hour_obs": True}):
            env = SpepEnv(SpepConfig.tiny(episode_slots=30, **fields), engine="compiled")
            check_env(env, skip_render_check=True)  # no render modes: it refuses them
        sb3_check_env(SpepEnv(engine="compiled", episode_slots=30), warn=True)


def test_the_jitted_core_equals_the_python_env() -> None:
    """The compiled code itself, in a fresh interpreter."""
    code = textwrap.dedent(
        """
        import numba
        from spep_gym.compiled import env_step
        from spep_gym.config import SpepConfig
        from test_compiled_env_step import (
            CONFIGS, run_core_beside_the_python_env,
            test_a_copied_compiled_env_continues_identically,
            test_an_observation_is_not_overwritten_by_later_steps,
        )
        assert not numba.config.DISABLE_JIT
        for name in ("available_werner_swap_failures", "latency"):
            run_core_beside_the_python_env(SpepConfig.from_dict(CONFIGS[name]), seed=1)
        test_a_copied_compiled_env_continues_identically()
        test_an_observation_is_not_overwritten_by_later_steps()
        assert env_step.env_step.signatures, "the core ran as Python"
        assert len(env_step.env_step.signatures) == 1, env_step.env_step.signatures
        print("ok")
        """
    )
    run_jitted(code)
