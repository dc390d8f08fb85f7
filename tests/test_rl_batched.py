"""``spep train --engine batched``: the SB3 ``VecEnv`` over the batched core equals a ``DummyVecEnv`` of
the scalar env with the same draws, trains, checkpoints, resumes and evaluates on ``SpepEnv``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan, VecMonitor, VecNormalize

import agents
from agents import rl, run_episode
from agents.cli import main
from agents.rl import training
from agents.rl.batched_vec import BatchedVecEnv
from agents.rl.config import HYPERPARAMETERS, default_hyperparameters
from agents.rl.envs import make_env
from spep_gym.config import SpepConfig

TINY = ["--set", "num_nodes=6", "--set", "er_p=0.5", "--set", "episode_slots=20"]
TINY_CONFIG = {"num_nodes": 6, "er_p": 0.5, "episode_slots": 20}


def masked_random_actions(
    masks: np.ndarray, rng: np.random.Generator, entries: int | None
) -> np.ndarray:
    """A uniformly random allowed choice per entry (``entries`` None: one Discrete action)."""
    if entries is None:
        return np.array([rng.choice(np.flatnonzero(m)) for m in masks])
    rows = masks.reshape(len(masks), entries, -1)
    return np.array([[rng.choice(np.flatnonzero(e)) for e in row] for row in rows])


@pytest.mark.parametrize("algo", ["maskable_ppo", "dqn"])
def test_adapter_equals_a_dummy_vec_env_of_the_scalar_env_with_the_same_draws(algo: str) -> None:
    """Observations, masks, rewards (shaping included), dones and infos, over two episode ends."""
    cfg = SpepConfig.tiny(episode_slots=20)
    B, bonus = 3, 0.5
    ref = make_vec_env(
        lambda: make_env(cfg, algo, bonus), n_envs=B, seed=5, vec_env_cls=DummyVecEnv
    )
    bat = BatchedVecEnv(cfg, B, draws="scalar", preposition_bonus=bonus, single_pair=algo == "dqn")
    bat.seed(5)
    assert bat.observation_space == ref.observation_space
    assert bat.action_space == ref.action_space
    assert is_masking_supported(bat)
    entries = None if algo == "dqn" else cfg.action_len
    rng = np.random.default_rng(0)
    obs_ref, obs = ref.reset(), bat.reset()
    assert bat.get_attr("episode_seed") == ref.get_attr("episode_seed") == [5, 6, 7]
    ends = used = 0
    for _ in range(45):
        for key, space in ref.observation_space.spaces.items():
            assert obs[key].dtype == obs_ref[key].dtype == space.dtype, key
            np.testing.assert_array_equal(obs[key], obs_ref[key], err_msg=key)
        masks = get_action_masks(bat)
        np.testing.assert_array_equal(masks, get_action_masks(ref))
        actions = masked_random_actions(masks, rng, entries)
        obs_ref, r_ref, d_ref, i_ref = ref.step(actions)
        obs, r, d, infos = bat.step(actions)
        assert r.dtype == r_ref.dtype and d.dtype == d_ref.dtype
        np.testing.assert_array_equal(r, r_ref)
        np.testing.assert_array_equal(d, d_ref)
        used += sum(i["prepositions_used"] for i in i_ref)
        for mine, theirs in zip(infos, i_ref, strict=True):
            assert mine["TimeLimit.truncated"] == theirs["TimeLimit.truncated"]
            assert ("terminal_observation" in mine) == ("terminal_observation" in theirs)
            if "terminal_observation" not in theirs:
                assert "success_rate" not in mine
                continue
            ends += 1
            for key, value in theirs["terminal_observation"].items():
                np.testing.assert_array_equal(mine["terminal_observation"][key], value)
            assert mine["episode_metrics"] == theirs["episode_metrics"]
            assert mine["success_rate"] == theirs["success_rate"]
        assert bat.get_attr("episode_seed") == ref.get_attr("episode_seed")
    assert ends == 2 * B  # steps 20 and 40 ended every episode
    assert used > 0  # the bonus was paid and matched


def test_adapter_under_vec_monitor_and_vec_normalize_writes_the_success_rate(
    tmp_path: Path,
) -> None:
    cfg = SpepConfig.tiny(episode_slots=10)
    vec = VecCheckNan(BatchedVecEnv(cfg, 4), raise_exception=True)
    vec.seed(0)
    monitored = VecMonitor(vec, str(tmp_path / "batched"), info_keywords=("success_rate",))
    env = VecNormalize(monitored, norm_obs=False, gamma=0.95)
    env.reset()
    rng = np.random.default_rng(1)
    episodes = []
    for _ in range(10):
        actions = masked_random_actions(get_action_masks(env), rng, cfg.action_len)
        _, _, dones, infos = env.step(actions)
        episodes += [i["episode"] for i in infos if "episode" in i]
    assert dones.all() and len(episodes) == 4
    assert all(e["l"] == 10 and "success_rate" in e for e in episodes)
    rows = (tmp_path / "batched.monitor.csv").read_text().splitlines()
    assert rows[1] == "r,l,t,success_rate" and len(rows) == 2 + 4


def test_adapter_attributes_methods_and_their_refusals() -> None:
    bat = BatchedVecEnv(SpepConfig.tiny(episode_slots=10), 3, preposition_bonus=1.0)
    bat.seed(4)
    bat.reset()
    assert bat.get_attr("render_mode") == [None, None, None]
    assert bat.get_attr("num_pairs", indices=[2]) == [bat.num_pairs]
    assert bat.get_attr("episode_seed", indices=1) == [5]
    assert bat.has_attr("action_masks") and not bat.has_attr("no_such_thing")
    masks = bat.env_method("action_masks", indices=[0, 2])
    np.testing.assert_array_equal(np.stack(masks), bat.action_masks()[[0, 2]])
    assert bat.env_is_wrapped(VecMonitor) == [False, False, False]
    bat.set_attr("preposition_bonus", 2.0)
    assert bat.get_attr("preposition_bonus") == [2.0] * 3
    with pytest.raises(ValueError, match="share their attributes: allowed indices=None"):
        bat.set_attr("preposition_bonus", 0.0, indices=[0])
    with pytest.raises(AttributeError, match=r"env_method\('reset'\).*allowed one of"):
        bat.env_method("reset")
    bat.set_options({"x": 1})
    with pytest.raises(ValueError, match="reset options"):
        bat.reset()


def test_batched_defaults_keep_the_scalar_updates_per_environment_step() -> None:
    assert default_hyperparameters("ppo", "scalar", 256) == HYPERPARAMETERS["ppo"]
    for n_envs in (4, 64, 256):
        hp = default_hyperparameters("maskable_ppo", "batched", n_envs)
        assert hp["n_steps"] * n_envs == 1024
        assert {k: v for k, v in hp.items() if k != "n_steps"} == {
            k: v for k, v in HYPERPARAMETERS["maskable_ppo"].items() if k != "n_steps"
        }
        dqn = default_hyperparameters("dqn", "batched", n_envs)
        assert dqn["train_freq"] * n_envs / dqn["gradient_steps"] == 16
    assert default_hyperparameters("ppo", "batched", 2048)["n_steps"] == 1


def train_cli(out: Path, algo: str, timesteps: int, *extra: str) -> int:
    args = ["train", "--algo", algo, "--timesteps", str(timesteps), "--out", str(out)]
    args += ["--engine", "batched", "--n-envs", "16", "--seed", "3", "--checkpoint-freq", "256"]
    if algo == "dqn":
        args += ["--hyper", "learning_starts=64", "--hyper", "buffer_size=1000"]
    else:
        args += ["--hyper", "n_epochs=1"]
    return main([*args, *TINY, *extra])


@pytest.mark.parametrize("algo", rl.ALGOS)
def test_cli_trains_on_the_batched_engine_and_the_model_evaluates_on_spep_env(
    tmp_path: Path, algo: str
) -> None:
    assert train_cli(tmp_path, algo, 512) == 0
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["engine"] == "batched" and meta["n_envs"] == 16
    assert meta["timesteps"] >= 512
    if algo != "dqn":
        assert meta["hyperparameters"]["n_steps"] == 64  # 1024 // 16
    assert rl.latest_checkpoint(tmp_path) is not None
    monitor = (tmp_path / "monitor" / "batched.monitor.csv").read_text().splitlines()
    assert monitor[1] == "r,l,t,success_rate"
    assert len(monitor) - 2 == 16 * (meta["timesteps"] // 16 // 20)  # 16 networks, 20 slots each
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    config = SpepConfig.from_dict({**meta["config"], "episode_slots": 30})
    row = run_episode(agents.make("sb3", path=tmp_path), seed=5, config=config)
    assert row["agent"] == "sb3" and row["slots"] == 30
    again = run_episode(agents.make("sb3", path=tmp_path), seed=5, config=config)
    assert again["success_rate"] == row["success_rate"]


def test_maskable_ppo_on_the_batched_engine_resumes_from_its_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train_cli(tmp_path, "maskable_ppo", 512) == 0
    err = capsys.readouterr().err  # the last rollout runs past 512: the bar ends at 512, once
    assert "512/512" in err and err.count("100%") == 1 and "1024/" not in err
    before = rl.latest_checkpoint(tmp_path)
    assert before is not None and before[1] == 1024  # rollouts of 64 x 16 steps
    assert train_cli(tmp_path, "maskable_ppo", 2048, "--resume") == 0
    assert "2048/2048" in capsys.readouterr().err  # from the checkpoint's 1024 on
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["resumed_from"] == 1024 and meta["timesteps"] == 2048
    assert rl.latest_checkpoint(tmp_path) == (
        tmp_path / "checkpoints" / "rl_model_2048_steps.zip",
        2048,
    )
    assert (tmp_path / "monitor" / "resumed_1024" / "batched.monitor.csv").is_file()
    assert [p.name for p in (tmp_path / "tb").iterdir()] == ["maskable_ppo_1"]
    agents.make("sb3", path=tmp_path / "checkpoints" / "rl_model_2048_steps.zip")


def test_a_resumed_run_starts_its_environments_from_new_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Episode seeds ``seed + i`` at the start, ``seed + timesteps + i`` at a resumption."""
    seen: list[list[int]] = []
    original = training.make_vec

    def recording(*args: Any, **kwargs: Any) -> Any:
        vec = original(*args, **kwargs)
        reset = vec.reset

        def first_reset() -> Any:
            obs = reset()
            seen.append(vec.get_attr("episode_seed"))
            return obs

        vec.reset = first_reset
        return vec

    monkeypatch.setattr(training, "make_vec", recording)
    assert train_cli(tmp_path, "ppo", 512) == 0
    assert train_cli(tmp_path, "ppo", 2048, "--resume") == 0
    assert seen == [[3 + i for i in range(16)], [3 + 1024 + i for i in range(16)]]


def test_resume_refuses_another_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_cli(tmp_path, "ppo", 256) == 0
    args = ["train", "--algo", "ppo", "--timesteps", "2048", "--out", str(tmp_path), "--resume"]
    args += ["--hyper", "n_epochs=1", *TINY]
    assert main(args) == 2  # --engine scalar (the default) against the run's batched
    assert "engine: 'batched' vs 'scalar'" in capsys.readouterr().err
    # and a run trained before --engine existed counts as scalar
    meta = json.loads((tmp_path / "train.json").read_text())
    del meta["engine"]
    (tmp_path / "train.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="engine: 'scalar' vs 'batched'"):
        rl.train("ppo", tmp_path, 2048, resume=True, engine="batched")


def test_bad_engine_combinations_are_one_line_errors_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("slot,source,destination,F_req,deadline,priority\n0,0,1,0.7,5,1\n")
    out = tmp_path / "run"
    cases = {
        "--subproc is invalid with --engine batched": ["--subproc"],
        "--engine batched: config field 'trace'": ["--set", f"trace={trace}"],
    }
    for message, extra in cases.items():
        args = ["train", "--engine", "batched", "--timesteps", "64", "--out", str(out), *extra]
        assert main([*args, *TINY]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("spep: error: "), err
        assert not out.exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--engine", "gpu", "--out", str(out)])
    assert exit_info.value.code == 2 and "invalid choice: 'gpu'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"engine='gpu' is invalid: allowed one of \('scalar'"):
        rl.train("ppo", out, 64, config=TINY_CONFIG, engine="gpu")
    assert not out.exists()
