"""``gym.make_vec("Spep-v0", vectorization_mode="vector_entry_point")``: the Gymnasium vector API.

With the scalar streams the vector env equals ``SyncVectorEnv`` over ``SpepEnv`` step for step,
autoresets included, in every autoreset mode; Gymnasium's own checks run on it. Tests that take
the ``engine`` fixture run on both vector envs: the torch core and the compiled one (plain Python
here, ``NUMBA_DISABLE_JIT=1``; tests/test_compiled_vector_env.py runs it jitted).
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_DISABLE_JIT", "1")  # before numba loads: the compiled env as Python

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.utils.performance import benchmark_vector_step
from gymnasium.vector import AutoresetMode

import spep_gym
from spep_gym.batched.vector_env import INFO_COUNTS, SpepVectorEnv
from spep_gym.compiled.vector_env import CompiledVectorEnv
from spep_gym.config import SpepConfig

TINY: dict[str, Any] = {"num_nodes": 8, "episode_slots": 20, "er_p": 0.5}
CLASSES: dict[str, Any] = {"torch": SpepVectorEnv, "compiled": CompiledVectorEnv}


@pytest.fixture(params=list(CLASSES))
def engine(request: pytest.FixtureRequest) -> str:
    """The vector env's engine: the torch core or the compiled one."""
    return str(request.param)


def make(num_envs: int = 3, engine: str = "torch", **kwargs: Any) -> Any:
    env = gym.make_vec(
        "Spep-v0",
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        engine=engine,
        **{**TINY, **kwargs},
    )
    assert isinstance(env, CLASSES[engine])
    return env


def sync(num_envs: int, mode: AutoresetMode, **kwargs: Any) -> gym.vector.SyncVectorEnv:
    return gym.make_vec(
        "Spep-v0",
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": mode},
        **{**TINY, **kwargs},
    )


def same(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, tuple):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    else:
        assert np.array_equal(np.asarray(a), np.asarray(b)), where


def scalar_metric(values: Any) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def test_registered_lazily_for_both_ids(engine: str) -> None:
    for env_id in ("Spep-v0", "Spep-physical-v0"):
        assert gym.spec(env_id).vector_entry_point == spep_gym.VECTOR_ENTRY_POINT
    env = gym.make_vec("Spep-physical-v0", num_envs=2, vectorization_mode="vector_entry_point")
    assert env.unwrapped.config == SpepConfig.physical()
    single = gym.make("Spep-v0", **TINY).unwrapped
    env = make(4, engine=engine)
    assert env.single_observation_space == single.observation_space
    assert env.single_action_space == single.action_space
    assert env.observation_space == gym.vector.utils.batch_space(single.observation_space, 4)
    assert env.action_space.shape == (4, TINY.get("action_len", 8))
    assert env.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_equals_sync_vector_env_through_autoresets(mode: AutoresetMode, engine: str) -> None:
    B = 3
    ours = make(B, draws="scalar", autoreset_mode=mode, episode_slots=12, engine=engine)
    theirs = sync(B, mode, episode_slots=12)
    same(ours.reset(seed=5)[0], theirs.reset(seed=5)[0], "reset")
    ours.action_space.seed(1)
    ends = 0
    for step in range(40):
        action = ours.action_space.sample()
        o, r, te, tr, info = ours.step(action)
        o2, r2, te2, tr2, info2 = theirs.step(action)
        same(o, o2, f"obs {step}")
        same((r, te, tr), (r2, te2, tr2), f"flags {step}")
        for key in INFO_COUNTS:  # SpepEnv lists the arrived, served, failed and placed records
            if key not in info2:  # overflow: a metric of SpepEnv, a per-step count here
                continue
            theirs_ = info2[key]
            if theirs_.dtype == object:
                theirs_ = np.array([len(x) for x in theirs_])
            same(info[key], theirs_, f"{key} {step}")
        same(info["action_mask"], info2["action_mask"], "mask")
        for key in ("success_rate", "served", "pairs_generated", "avg_fidelity"):
            got = np.asarray(info["metrics"][key], dtype=float)
            assert np.array_equal(got, scalar_metric(info2["metrics"][key]), equal_nan=True)
        if tr.any():
            ends += 1
            assert info[
                "_episode_metrics" if mode is AutoresetMode.NEXT_STEP else "_final_info"
            ].all()
        if mode is AutoresetMode.SAME_STEP and tr.any():
            for i in np.flatnonzero(tr):
                same(
                    {k: v[i] for k, v in info["final_obs"].items()}, info2["final_obs"][i], "final"
                )
    assert ends >= 2


def test_disabled_autoreset_takes_reset_masks(engine: str) -> None:
    B = 2
    ours = make(
        B, draws="scalar", autoreset_mode=AutoresetMode.DISABLED, episode_slots=5, engine=engine
    )
    theirs = sync(B, AutoresetMode.DISABLED, episode_slots=5)
    same(ours.reset(seed=0)[0], theirs.reset(seed=0)[0])
    none = np.full((B, 8), ours.num_pairs)
    for _ in range(5):
        o, *_ = ours.step(none)
        o2, *_ = theirs.step(none)
    with pytest.raises(RuntimeError, match="autoreset_mode is DISABLED"):
        ours.step(none)
    mask = np.array([True, False])
    o, _ = ours.reset(options={"reset_mask": mask})
    o2, _ = theirs.reset(options={"reset_mask": mask})
    same(o, o2, "after a partial reset")
    with pytest.raises(ValueError, match="reset_mask"):
        ours.reset(options={"reset_mask": np.array([1, 0])})
    with pytest.raises(ValueError, match="unknown reset options"):
        ours.reset(options={"colour": "red"})


def test_gymnasium_data_equivalence_against_sync(engine: str) -> None:
    """Gymnasium's own equivalence check (``data_equivalence``) on whole step results."""
    ours, theirs = make(2, draws="scalar", engine=engine), sync(2, AutoresetMode.NEXT_STEP)
    assert data_equivalence(ours.reset(seed=3)[0], theirs.reset(seed=3)[0], exact=True)
    ours.action_space.seed(3)
    for _ in range(30):
        action = ours.action_space.sample()
        assert data_equivalence(ours.step(action)[:4], theirs.step(action)[:4], exact=True)


def test_spaces_dtypes_and_determinism(engine: str) -> None:
    env, twin = make(4, engine=engine), make(4, engine=engine)
    obs, info = env.reset(seed=11)
    obs2, _ = twin.reset(seed=11)
    same(obs, obs2)
    assert env.observation_space.contains(obs)
    env.action_space.seed(0)
    for _ in range(25):
        action = env.action_space.sample()
        obs, reward, terminated, _truncated, info = env.step(action)
        obs2, reward2, *_ = twin.step(action)
        same((obs, reward), (obs2, reward2))
        assert env.observation_space.contains(obs)
        assert reward.dtype == np.float64 and reward.shape == (4,)
        assert terminated.dtype == np.bool_ and not terminated.any()
        assert info["action_mask"].shape == (4, 8 * (env.num_pairs + 1))
        assert all(info[k].shape == (4,) and info[k].dtype == np.int64 for k in INFO_COUNTS)
    other = make(4, engine=engine)
    other.reset(seed=12)
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(obs.values(), other.step(action)[0].values(), strict=True)
    )


def test_torch_outputs_stay_on_the_device_and_equal_numpy_ones() -> None:
    env, ref = make(2, torch_obs=True), make(2)
    obs, info = env.reset(seed=0)
    obs_np, _ = ref.reset(seed=0)
    assert all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in obs.values())
    same({k: v.numpy() for k, v in obs.items()}, obs_np)
    action = torch.full((2, 8), env.num_pairs)
    obs, reward, _terminated, _truncated, info = env.step(action)
    assert isinstance(reward, torch.Tensor) and isinstance(info["metrics"]["served"], torch.Tensor)
    assert isinstance(env.action_masks(), torch.Tensor)
    same({k: v.numpy() for k, v in obs.items()}, ref.step(action.numpy())[0])


def test_seeds_and_configs(engine: str) -> None:
    env = make(3, engine=engine)
    env.reset(seed=[4, None, 6])
    assert env.episode_seeds[0] == 4 and env.episode_seeds[2] == 6
    with pytest.raises(ValueError, match="2 seeds for num_envs=3"):
        env.reset(seed=[1, 2])
    cfg = SpepConfig.tiny()
    env = CLASSES[engine](2, config=[cfg, cfg.replace()])
    assert env.config == cfg
    with pytest.raises(ValueError, match="configs differ across the batch: field 'rho'"):
        CLASSES[engine](2, config=[cfg, cfg.replace(rho=0.9)])
    with pytest.raises(ValueError, match="3 configs for num_envs=2"):
        CLASSES[engine](2, config=[cfg, cfg, cfg])


def test_bad_arguments(engine: str) -> None:
    with pytest.raises(ValueError, match="render_mode='ansi' is invalid"):
        make(render_mode="ansi", engine=engine)
    with pytest.raises(ValueError, match="autoreset_mode='later' is invalid"):
        make(autoreset_mode="later", engine=engine)
    env = make(2, engine=engine)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros((2, 8)))
    env.reset(seed=0)
    for bad in (np.zeros((3, 8), dtype=int), np.full((2, 8), 0.5), np.full((2, 8), -1)):
        with pytest.raises(ValueError, match=r"actions .* are invalid: allowed integers of shape"):
            env.step(bad)
    for bad in (0, -1, 2.5, True):  # TimeLimit's rule: a positive int
        with pytest.raises(ValueError, match=rf"max_episode_steps={bad!r} is invalid: allowed"):
            make(2, max_episode_steps=bad, engine=engine)
    assert (
        make(2, max_episode_steps=TINY["episode_slots"], engine=engine).config.episode_slots == 20
    )
    with pytest.raises(RuntimeError, match="without reset_mask first"):
        make(2, engine=engine).reset(options={"reset_mask": np.array([True, True])})
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available here"):
            make(2, device="cuda")
    assert env.render() is None


def test_gymnasium_benchmark_runs_on_it(engine: str) -> None:
    assert benchmark_vector_step(make(8, engine=engine), target_duration=1, seed=0) > 0


def test_the_docs_page_names_every_info_key(engine: str) -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "batched.md").read_text()
    env = make(2, autoreset_mode=AutoresetMode.SAME_STEP, episode_slots=2, engine=engine)
    _, info = env.reset(seed=0)
    keys = set(info)
    for _ in range(2):
        keys |= set(env.step(np.full((2, 8), env.num_pairs))[4])
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert not missing, f"docs/batched.md does not name these info keys: {missing}"


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.uint64, np.int16, np.uint8])
def test_takes_actions_of_every_integer_dtype_as_the_scalar_env(dtype: Any, engine: str) -> None:
    env, ref = make(2, engine=engine), make(2, engine=engine)
    env.reset(seed=0)
    ref.reset(seed=0)
    action = np.array([[0, 1, 2, 3, 4, 5, 6, env.num_pairs]] * 2)
    same(env.step(action.astype(dtype))[:4], ref.step(action)[:4])
    same(env.step(torch.as_tensor(action.astype(dtype)))[:4], ref.step(action)[:4])
    too_big = np.full((2, 8), env.num_pairs + 1).astype(dtype)
    with pytest.raises(ValueError, match=rf"actions \(shape \(2, 8\), dtype .*{dtype.__name__}"):
        env.step(too_big)


def test_refuses_actions_outside_the_integers_in_one_line(engine: str) -> None:
    env = make(2, engine=engine)
    env.reset(seed=0)
    huge = np.full((2, 8), 2**64 - 1, dtype=np.uint64)  # -1 as int64: refused, not wrapped
    for bad in (huge, torch.as_tensor(huge), np.full((2, 8), True), torch.full((2, 8), 1.0)):
        with pytest.raises(ValueError, match=r"actions .* are invalid: allowed integers of shape"):
            env.step(bad)


def test_takes_every_seed_the_scalar_env_takes_and_refuses_the_rest(engine: str) -> None:
    env = make(2, engine=engine)
    for seed in (2**63 - 1, 2**64, 2**80):
        env.reset(seed=seed)
        assert list(env.episode_seeds) == [seed, seed + 1]
        scalar = gym.make("Spep-v0", **TINY).unwrapped
        scalar.reset(seed=seed + 1)
        assert scalar.episode_seed == env.episode_seeds[1]
    env.reset(seed=[2**70, np.uint64(2**64 - 1)])
    assert list(env.episode_seeds) == [2**70, 2**64 - 1]
    env.reset(seed=np.int64(3))
    assert list(env.episode_seeds) == [3, 4]
    # SyncVectorEnv and SpepEnv refuse these; so does the vector env, in one line, before any work
    for bad in (1.0, 2.5, -1, "3", [1, 2.0], [1, -2], [None, 1.5], np.float64(4.0)):
        with pytest.raises(ValueError, match=r"seed=.* is invalid: allowed None, an integer >= 0"):
            env.reset(seed=bad)  # type: ignore[arg-type]
    assert list(env.episode_seeds) == [3, 4]


def test_action_masks_before_reset_is_one_clear_error(engine: str) -> None:
    with pytest.raises(RuntimeError, match=r"call reset\(\) before action_masks\(\)"):
        make(2, engine=engine).action_masks()


def test_num_envs_takes_numpy_integers_and_refuses_the_rest(engine: str) -> None:
    env = make(np.int64(2), engine=engine)  # type: ignore[arg-type]
    assert env.num_envs == 2 and type(env.num_envs) is int
    assert env.reset(seed=0)[0]["adjacency"].shape == (2, env.num_pairs)
    for bad in (True, np.bool_(True), 0, -3, 2.0, np.int64(0), "2"):
        with pytest.raises(ValueError, match=r"num_envs=.* is invalid: allowed an integer >= 1"):
            CLASSES[engine](bad, **TINY)  # type: ignore[arg-type]


def test_runs_on_its_own_torch_threads_and_restores_the_callers(monkeypatch: Any) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # the caller's setting, whatever it is
    try:
        for num_threads, expected in ((1, 1), (None, 3), (2, 2)):
            kwargs = {} if num_threads == 1 else {"num_threads": num_threads}  # 1: the default
            env = make(2, **kwargs)
            seen: list[int] = []
            for name in ("reset", "step"):
                inner = getattr(env.sim, name)

                def spy(*a: Any, _inner: Any = inner, _seen: list[int] = seen, **k: Any) -> Any:
                    _seen.append(torch.get_num_threads())
                    return _inner(*a, **k)

                monkeypatch.setattr(env.sim, name, spy)
            env.reset(seed=0)
            assert torch.get_num_threads() == 3
            env.step(np.full((2, 8), env.num_pairs))
            assert seen == [expected, expected] and torch.get_num_threads() == 3
            with pytest.raises(ValueError, match="actions"):
                env.step(np.full((2, 8), 0.5))
            assert torch.get_num_threads() == 3, "restored after an error too"
    finally:
        torch.set_num_threads(before)


def test_num_threads_is_validated(engine: str) -> None:
    for bad in (0, -1, True, 1.5, "2"):
        with pytest.raises(ValueError, match=r"num_threads=.* is invalid: allowed an integer >= 1"):
            make(2, num_threads=bad, engine=engine)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_max_episode_steps_cuts_as_time_limit_does_with_the_episode_metrics(
    mode: AutoresetMode, engine: str
) -> None:
    """``max_episode_steps=N`` (make_vec passes it) ends episodes as ``TimeLimit(N)`` does in
    ``SyncVectorEnv``, with ``episode_metrics`` at the cut (there: ``EpisodeMetricsInfo``)."""
    from spep_gym.wrappers import EpisodeMetricsInfo

    B = 2
    ours = make(B, draws="scalar", autoreset_mode=mode, max_episode_steps=7, engine=engine)
    theirs = gym.make_vec(
        "Spep-v0",
        num_envs=B,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": mode},
        max_episode_steps=7,
        wrappers=[EpisodeMetricsInfo],
        **TINY,
    )
    same(ours.reset(seed=1)[0], theirs.reset(seed=1)[0])
    ours.action_space.seed(2)
    ends = 0
    for step in range(17):
        action = ours.action_space.sample()
        o, r, te, tr, info = ours.step(action)
        o2, r2, te2, tr2, info2 = theirs.step(action)
        same((o, r, te, tr), (o2, r2, te2, tr2), f"step {step}")
        if mode is AutoresetMode.SAME_STEP and tr.any():
            info, info2 = info["final_info"], info2["final_info"]
        assert ("episode_metrics" in info) == tr.any() == ("episode_metrics" in info2)
        if tr.any():
            ends += 1
            assert info["_episode_metrics"].all() and info2["_episode_metrics"].all()
            for key in ("arrived", "served", "success_rate"):
                assert np.array_equal(
                    np.asarray(info["episode_metrics"][key], dtype=float),
                    scalar_metric(info2["episode_metrics"][key]),
                    equal_nan=True,
                ), key
    assert ends == 2
    longer = make(
        1, max_episode_steps=50, engine=engine
    )  # longer than episode_slots: the episode's own end
    longer.reset(seed=0)
    ends = [bool(longer.step(np.full((1, 8), longer.num_pairs))[3][0]) for _ in range(20)]
    assert ends == [False] * 19 + [True]
