"""The compiled CPU vector env: network i is the scalar ``SpepEnv`` of the i-th seed, bit for bit.

The engine runs as plain Python here (``NUMBA_DISABLE_JIT=1``, set before numba loads), so that
coverage sees its lines; one test runs it jitted in a fresh interpreter. The Gymnasium API tests
of tests/test_batched_vector_env.py run on it too (parametrized by engine).
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_DISABLE_JIT", "1")

import subprocess
import sys
import textwrap
from typing import Any

import gymnasium as gym
import numba
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import spep_gym
from spep_gym.batched.vector_env import SpepVectorEnv
from spep_gym.compiled.vector_env import CompiledVectorEnv, NotCovered, numba_threads
from spep_gym.env import SpepEnv

TINY: dict[str, Any] = {"num_nodes": 8, "episode_slots": 20, "er_p": 0.5}


def random_valid(masks: np.ndarray, L: int, rng: np.random.Generator) -> np.ndarray:
    """(B, L): per network, up to L placeable pairs (by the mask) in random order, else none."""
    B = masks.shape[0]
    P = masks.shape[1] // L - 1
    out = np.full((B, L), P)
    for b in range(B):
        feasible = np.flatnonzero(masks[b, :P])
        k = min(L, len(feasible))
        out[b, :k] = rng.permutation(feasible)[:k]
    return out


@pytest.mark.parametrize(
    "fields",
    [
        # 150 slots: the generation draws are refilled twice (every 64 slots)
        {"episode_slots": 150},
        # swaps that fail: the swap draws run low between those refills and are refilled then
        {
            "episode_slots": 60,
            "p_gen": 0.9,
            "swap_success": 0.6,
            "routing": "highest_fidelity",
            "link_pool_policy": "replace_oldest",
        },
        {"preset": "physical", "signalling_latency": 0.0, "preposition_path": "available"},
        {"routing": "shortest", "reward_predictive_hit": 0.5, "topology": "scale_free"},
    ],
    ids=["long", "swap-failures", "physical", "shortest-scale-free"],
)
def test_network_i_is_the_scalar_env_of_the_ith_seed_bit_for_bit(fields: dict[str, Any]) -> None:
    kwargs = {**TINY, **fields}
    seeds = [3, 11, 2**64 + 5]
    B = len(seeds)
    env = CompiledVectorEnv(B, **kwargs)
    obs, info = env.reset(seed=seeds)
    # network b against SpepEnv seeded with seeds[b], on both scalar engines
    rows = [[SpepEnv(engine=eng, **kwargs) for _ in seeds] for eng in ("compiled", "python")]
    for envs in rows:
        for b, (e, s) in enumerate(zip(envs, seeds, strict=True)):
            o, _ = e.reset(seed=s)
            assert all(np.array_equal(obs[k][b], v) for k, v in o.items()), f"reset {b}"
    rng = np.random.default_rng(0)
    L = env.config.action_len
    for step in range(env.config.episode_slots):
        masks = env.action_masks()
        for envs in rows:
            for b, e in enumerate(envs):
                assert np.array_equal(masks[b], e.action_masks()), f"mask {b} at {step}"
        action = random_valid(masks, L, rng)
        obs, reward, terminated, truncated, info = env.step(action)
        for envs in rows:
            for b, e in enumerate(envs):
                o, r, te, tr, i = e.step(action[b])
                for k, v in o.items():
                    assert np.array_equal(obs[k][b], v), f"{k} of network {b} at step {step}"
                assert reward[b] == r and terminated[b] == te and truncated[b] == tr
                assert info["served"][b] == len(i["served"])
                assert info["failed"][b] == len(i["failed"]) and info["placed"][b] == len(
                    i["placed"]
                )
                for k in ("prepositions_used", "pairs_generated", "swap_failures", "slot"):
                    assert info[k][b] == i[k], (k, b, step)
                for k, v in i["metrics"].items():
                    got = info["metrics"][k][b]
                    assert (np.isnan(got) and v is None) or got == v, (k, b, step)
    assert truncated.all() and info["_episode_metrics"].all()


def test_the_gymnasium_vector_entry_point_chooses_the_engine(monkeypatch: Any) -> None:
    def make(**kwargs: Any) -> Any:
        return gym.make_vec(
            "Spep-v0", num_envs=2, vectorization_mode="vector_entry_point", **{**TINY, **kwargs}
        )

    assert isinstance(make(), CompiledVectorEnv)  # the default on the CPU with numba
    assert isinstance(make(engine="compiled", device="cpu"), CompiledVectorEnv)
    assert isinstance(make(draws="scalar"), CompiledVectorEnv)
    for torch_side in ({"engine": "torch"}, {"draws": "counter"}, {"torch_obs": True}):
        assert isinstance(make(**torch_side), SpepVectorEnv), torch_side
    # what the compiled env does not cover runs on the torch core, or is refused when asked for
    for field in ({"signalling_latency": 0.5}, {"demand_hour_obs": True}):
        assert isinstance(make(**field), SpepVectorEnv), field
    with pytest.raises(
        NotCovered,
        match=r"^config field 'signalling_latency' = 0\.5 is not covered .* allowed 0\.0",
    ):
        make(engine="compiled", signalling_latency=0.5)
    with pytest.raises(ValueError, match=r"^device='cuda', torch_obs=None are invalid for engine"):
        make(engine="compiled", device="cuda")
    with pytest.raises(ValueError, match=r"^engine='jax' is invalid: allowed None, 'compiled'"):
        make(engine="jax")
    with pytest.raises(ValueError, match=r"^draws='counter' is invalid for engine='compiled'"):
        make(engine="compiled", draws="counter")
    # without numba: the torch core
    real = spep_gym.importlib.util.find_spec
    monkeypatch.setattr(
        spep_gym.importlib.util, "find_spec", lambda name: None if name == "numba" else real(name)
    )
    assert isinstance(make(), SpepVectorEnv)


def test_threads_are_set_per_call_and_restored(monkeypatch: Any) -> None:
    seen: list[int] = []
    monkeypatch.setattr(numba, "set_num_threads", seen.append)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 7)
    with numba_threads(None):
        pass
    with numba_threads(7):
        pass
    assert seen == []
    with numba_threads(1):
        seen.append(-1)
    assert seen == [1, -1, 7]
    for bad in (0, True, 1.5):
        with pytest.raises(
            ValueError, match=r"^num_threads=.* is invalid: allowed an integer >= 1"
        ):
            CompiledVectorEnv(1, num_threads=bad, **TINY)  # type: ignore[arg-type]


def test_copy_false_returns_the_envs_own_arrays_overwritten_by_the_next_step() -> None:
    env, twin = CompiledVectorEnv(2, copy=False, **TINY), CompiledVectorEnv(2, **TINY)
    obs, _ = env.reset(seed=0)
    obs2, _ = twin.reset(seed=0)
    assert all(np.array_equal(obs[k], obs2[k]) for k in obs)
    none = np.full((2, 8), env.num_pairs)
    after, *_ = env.step(none)
    after2, *_ = twin.step(none)
    assert after["link_pairs"] is obs["link_pairs"]
    assert after2["link_pairs"] is not obs2["link_pairs"]
    assert all(np.array_equal(after[k], after2[k]) for k in after)


def test_same_step_final_info_keeps_its_own_arrays() -> None:
    env = CompiledVectorEnv(
        2, autoreset_mode=AutoresetMode.SAME_STEP, **{**TINY, "episode_slots": 2}
    )
    env.reset(seed=0)
    none = np.full((2, 8), env.num_pairs)
    env.step(none)
    *_, truncated, info = env.step(none)
    assert truncated.all() and info["_final_info"].all()
    assert (info["final_info"]["slot"] == 1).all() and (info["slot"] == -1).all()
    assert (info["final_info"]["next_slot"] == 2).all() and (info["next_slot"] == 0).all()


@pytest.mark.slow  # a cold compile of the engine takes tens of CPU seconds
def test_the_jitted_vector_env_equals_the_scalar_env(tmp_path: Any) -> None:
    # a fresh cache: numba's cache notices changes to a function's own file only, so a cached
    # step_rows could still hold an older phases.py or observe.py compiled into it
    code = textwrap.dedent(
        """
        import numpy as np
        from spep_gym.compiled.vector_env import CompiledVectorEnv
        from spep_gym.env import SpepEnv
        kw = dict(num_nodes=8, episode_slots=70, er_p=0.5, swap_success=0.7)
        env = CompiledVectorEnv(3, num_threads=2, **kw)
        ref = [SpepEnv(**kw) for _ in range(3)]
        obs, _ = env.reset(seed=4)
        for b, e in enumerate(ref):
            e.reset(seed=4 + b)
        rng = np.random.default_rng(1)
        P = env.num_pairs
        for step in range(70):
            action = rng.integers(0, P + 1, (3, 8))
            obs, reward, _, _, _ = env.step(action)
            for b, e in enumerate(ref):
                o, r, *_ = e.step(action[b])
                assert r == reward[b] and all(np.array_equal(obs[k][b], o[k]) for k in o), step
        print("ok")
        """
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "0", "NUMBA_CACHE_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1500
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok"


def test_networks_out_of_step_autoreset_alone_as_in_sync_vector_env() -> None:
    """After a partial reset the episodes end at different steps: each resets on its own."""
    kwargs = {**TINY, "episode_slots": 5}
    ours = CompiledVectorEnv(2, **kwargs)
    theirs = gym.make_vec("Spep-v0", num_envs=2, vectorization_mode="sync", **kwargs)
    ours.reset(seed=0)
    theirs.reset(seed=0)
    ours.action_space.seed(0)
    ends = []
    for step in range(14):
        if step == 2:
            mask = np.array([True, False])
            o, _ = ours.reset(options={"reset_mask": mask})
            o2, _ = theirs.reset(options={"reset_mask": mask})
            assert all(np.array_equal(o[k], o2[k]) for k in o)
        action = ours.action_space.sample()
        o, r, _, tr, info = ours.step(action)
        o2, r2, _, tr2, info2 = theirs.step(action)
        assert all(np.array_equal(o[k], o2[k]) for k in o), step
        assert np.array_equal(r, r2) and np.array_equal(tr, tr2), step
        assert np.array_equal(info["slot"], info2["slot"]), step
        assert np.array_equal(info["served"], [len(x) for x in info2["served"]]), step
        ends.append(tr.tolist())
    assert [True, False] in ends and [False, True] in ends


def test_an_option_the_compiled_engine_refuses_is_not_covered(monkeypatch: Any) -> None:
    from spep_gym.compiled import engine as compiled_engine

    monkeypatch.setitem(compiled_engine.UNSUPPORTED, "rho", 0.5)
    with pytest.raises(NotCovered, match=r"^config field 'rho' = .* is not covered"):
        CompiledVectorEnv(1, **TINY)


def test_steps_run_on_the_envs_threads_and_the_callers_count_comes_back(monkeypatch: Any) -> None:
    from spep_gym.compiled import vector_env

    seen: list[int] = []
    real = vector_env.step_rows

    def spy(*args: Any) -> None:
        seen.append(numba.get_num_threads())
        real(*args)

    monkeypatch.setattr(vector_env, "step_rows", spy)
    most = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    before = numba.get_num_threads()
    for num_threads, expected in ((None, before), (1, 1), (2, min(2, most))):
        env = CompiledVectorEnv(2, num_threads=num_threads, **TINY)
        env.reset(seed=0)
        env.step(np.full((2, 8), env.num_pairs))
        assert seen[-1] == expected and numba.get_num_threads() == before
    assert CompiledVectorEnv(1, **TINY).num_threads == 1  # the default


def test_a_batched_agent_refuses_the_compiled_env_naming_the_torch_engine() -> None:
    from agents.batched import batched_agent

    with pytest.raises(ValueError, match=r"^env = CompiledVectorEnv is invalid .* engine='torch'"):
        batched_agent("random").reset([0, 1], env=CompiledVectorEnv(2, **TINY))
