"""``agents.rl`` (``spep train``) and the ``sb3`` agent: short runs save, resume, reload identically
and evaluate; the training wrappers and the pair policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

import agents
from agents import learned, rl, run_episode
from agents.baselines import BASELINES
from agents.cli import main
from agents.rl import checkpoints
from agents.rl.config import algorithm_class
from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv
from spep_gym.wrappers import PrepositionBonus, SinglePairAction

TINY = ["--set", "num_nodes=6", "--set", "er_p=0.5", "--set", "episode_slots=100"]
HYPER = {
    "ppo": ["--hyper", "n_steps=64", "--hyper", "batch_size=64", "--hyper", "n_epochs=1"],
    "dqn": ["--hyper", "learning_starts=50", "--hyper", "buffer_size=1000"],
}
HYPER["maskable_ppo"] = HYPER["ppo"]


def train_cli(out: Path, algo: str, timesteps: int, *extra: str) -> int:
    args = ["train", "--algo", algo, "--timesteps", str(timesteps), "--out", str(out)]
    args += ["--n-envs", "2", "--seed", "3", "--checkpoint-freq", "128", *TINY, *HYPER[algo]]
    return main([*args, *extra])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One short run per algorithm, shared by the tests below."""
    out = {}
    for algo in rl.ALGOS:
        folder = tmp_path_factory.mktemp(algo)
        assert train_cli(folder, algo, 256) == 0
        out[algo] = folder
    return out


@pytest.mark.parametrize("algo", rl.ALGOS)
def test_train_saves_model_metadata_checkpoints_and_logs(runs: dict[str, Path], algo: str) -> None:
    folder = runs[algo]
    meta = json.loads((folder / "model.json").read_text())
    assert meta["algo"] == algo and meta["seed"] == 3
    assert meta["timesteps"] >= 256
    assert meta["config"]["num_nodes"] == 6 and meta["config"]["action_len"] == 2
    assert checkpoints.saved_num_timesteps(folder / "model.zip") == meta["timesteps"]
    assert (folder / "obs_stats.npz").is_file()
    latest = rl.latest_checkpoint(folder)
    assert latest is not None and latest[1] == 256
    assert (
        Path(str(latest[0]).replace("rl_model_", "rl_model_obs_stats_"))
        .with_suffix(".npz")
        .is_file()
    )
    assert list((folder / "tb").rglob("events.out.tfevents.*"))
    assert len(list((folder / "monitor").glob("*.monitor.csv"))) == 2


def test_resume_continues_the_timestep_counter(tmp_path: Path) -> None:
    assert train_cli(tmp_path, "maskable_ppo", 256) == 0
    assert train_cli(tmp_path, "maskable_ppo", 512, "--resume") == 0
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["resumed_from"] == 256
    assert meta["timesteps"] == 512
    assert rl.latest_checkpoint(tmp_path) == (
        tmp_path / "checkpoints" / "rl_model_512_steps.zip",
        512,
    )
    # a resumed run keeps one TensorBoard run (reset_num_timesteps=False), adds Monitor files
    assert [p.name for p in (tmp_path / "tb").iterdir()] == ["maskable_ppo_1"]
    assert len(list((tmp_path / "monitor").glob("*.monitor.csv"))) == 2
    assert len(list((tmp_path / "monitor" / "resumed_256").glob("*.monitor.csv"))) == 2
    rl.plot_training_curve(tmp_path, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_resume_without_checkpoint_and_wrong_algo_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no checkpoint"):
        rl.train("ppo", tmp_path, 100, resume=True)
    assert train_cli(tmp_path, "ppo", 128) == 0
    with pytest.raises(ValueError, match="algo: 'ppo' vs 'dqn'"):
        rl.train("dqn", tmp_path, 256, resume=True)
    with pytest.raises(ValueError, match="algo='a2c'"):
        rl.train("a2c", tmp_path, 256)


@pytest.mark.parametrize("algo", rl.ALGOS)
def test_loaded_agent_acts_like_the_in_memory_model(runs: dict[str, Path], algo: str) -> None:
    """The agent (fresh policy + weights only) picks the same actions as SB3's own model."""
    folder = runs[algo]
    cls = algorithm_class(algo)
    model = cls.load(folder / "model.zip", device="cpu")  # trusted: our own file, in a test
    agent = agents.make("sb3", path=folder / "model.zip")
    stats = rl.load_obs_stats(folder / "obs_stats.npz")
    cfg = SpepConfig.from_dict(json.loads((folder / "model.json").read_text())["config"])
    env = SpepEnv(cfg)
    obs, info = env.reset(seed=11)
    agent.reset(seed=11, env=env)
    P = env.num_pairs
    for _ in range(40):
        norm = rl.normalize_obs(obs, stats)
        if algo == "maskable_ppo":
            expected, _ = model.predict(norm, deterministic=True, action_masks=env.action_masks())
        else:
            expected, _ = model.predict(norm, deterministic=True)
        expected = np.atleast_1d(expected)
        action = agent.act(obs, info)
        assert action.shape == (cfg.action_len,)
        np.testing.assert_array_equal(action[: len(expected)], expected)
        assert np.all(action[len(expected) :] == P)
        if algo == "maskable_ppo":
            assert all(info["action_mask"][a] for a in action)
        obs, _, _, _, info = env.step(action)


def test_agent_plugs_into_run_episode_and_pads_to_the_env_action_len(
    runs: dict[str, Path],
) -> None:
    config = SpepConfig.tiny(episode_slots=60)  # action_len 8, while the model was trained with 2
    row = run_episode(agents.make("sb3", path=runs["maskable_ppo"]), seed=5, config=config)
    assert row["agent"] == "sb3" and row["slots"] == 60
    assert 0.0 <= row["success_rate"] <= 1.0
    again = run_episode(agents.make("sb3", path=runs["maskable_ppo"]), seed=5, config=config)
    assert again["success_rate"] == row["success_rate"]
    assert again["prepositions_placed"] == row["prepositions_placed"]


def test_agent_predict_follows_the_sb3_protocol(runs: dict[str, Path]) -> None:
    agent = agents.make("sb3", path=runs["ppo"])
    env = SpepEnv(SpepConfig.tiny())
    obs, info = env.reset(seed=0)
    agent.reset(env=env)
    batch = {k: np.stack([v, v]) for k, v in obs.items()}
    actions, state = agent.predict(batch)
    assert state is None and actions.shape == (2, env.config.action_len)
    np.testing.assert_array_equal(actions[0], agent.act(obs, info))


def test_agent_rejects_a_network_of_another_size(runs: dict[str, Path]) -> None:
    agent = agents.make("sb3", path=runs["ppo"])
    with pytest.raises(ValueError, match="num_nodes"):
        run_episode(agent, seed=0, config={"num_nodes": 7, "episode_slots": 5})
    with pytest.raises(ValueError, match="run folder"):
        learned.locate(runs["ppo"] / "nothing")


def test_a_pair_policy_transfers_to_another_network_size(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """``num_nodes=`` builds the pair policy for that size with the same weights (issue 21, 7)."""
    small = agents.make("sb3", path=runs["maskable_ppo"])
    big = agents.make("sb3", path=runs["maskable_ppo"], num_nodes=8)
    a, b = small.policy.state_dict(), big.policy.state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert big.env_config["num_nodes"] == 8 and big.num_pairs == 28
    row = run_episode(big, seed=0, config={"episode_slots": 30})
    assert row["arrived"] > 0  # it ran on 8 nodes: a 6-node observation would be refused
    with pytest.raises(ValueError, match="contradicts"):
        run_episode(big, seed=0, config={"num_nodes": 6, "episode_slots": 5})
    assert train_cli(tmp_path / "mlp", "ppo", 64, "--policy", "mlp") == 0
    with pytest.raises(ValueError, match=r"num_nodes=8 is invalid .* pair policy only"):
        agents.make("sb3", path=tmp_path / "mlp", num_nodes=8)


def test_saved_zips_leave_out_the_training_envs_last_observations(runs: dict[str, Path]) -> None:
    """The zips hold the weights and settings, not every env's last observation (issue 21, 5)."""
    import json
    import zipfile

    folder = runs["maskable_ppo"]
    for zip_path in [folder / "model.zip", *sorted((folder / "checkpoints").glob("*.zip"))]:
        with zipfile.ZipFile(zip_path) as archive:
            data = json.loads(archive.read("data"))
        assert not set(checkpoints.UNSAVED) & set(data), zip_path.name
        assert data["num_timesteps"] > 0
    agent = agents.make("sb3", path=folder)  # still loads
    assert run_episode(agent, seed=0, config={"episode_slots": 10})["slots"] == 10


def test_a_checkpoint_loads_as_an_agent(runs: dict[str, Path]) -> None:
    ckpt = runs["ppo"] / "checkpoints" / "rl_model_128_steps.zip"
    meta, zip_path, stats = learned.locate(ckpt)
    assert meta.name == "train.json" and zip_path == ckpt and stats is not None
    assert stats.name == "rl_model_obs_stats_128_steps.npz"
    row = run_episode(
        agents.make("sb3", path=ckpt), seed=1, config=SpepConfig.tiny(episode_slots=20)
    )
    assert row["slots"] == 20


def test_single_pair_action_maps_to_a_one_entry_preference_list() -> None:
    env = SinglePairAction(SpepEnv(SpepConfig.tiny(action_len=3)))
    P = env.num_pairs
    assert env.action_space.n == P + 1
    np.testing.assert_array_equal(env.action(4), [4, P, P])
    np.testing.assert_array_equal(env.action(np.int64(P)), [P, P, P])
    env.reset(seed=1)
    inner = env.unwrapped.action_masks()
    np.testing.assert_array_equal(env.action_masks(), inner[: P + 1])
    # stepping with a feasible pair places it, as the unwrapped env would with [a, P, P]
    feasible = np.flatnonzero(env.action_masks()[:P])
    twin = SpepEnv(SpepConfig.tiny(action_len=3))
    twin.reset(seed=1)
    if len(feasible):
        a = int(feasible[0])
        _, r1, _, _, i1 = env.step(a)
        _, r2, _, _, i2 = twin.step(np.array([a, P, P]))
        assert i1["placed"] == i2["placed"] and i1["placed"][0]["pair"] == a and r1 == r2


def test_observation_statistics_round_trip_matches_vec_normalize(tmp_path: Path) -> None:
    cfg = SpepConfig.tiny(episode_slots=30)
    vec = rl.make_vec(cfg, "ppo", n_envs=1, seed=0)
    vec.reset()
    for _ in range(20):
        vec.step(np.array([vec.action_space.sample()]))
    rl.save_obs_stats(vec, tmp_path / "s.npz")
    stats = rl.load_obs_stats(tmp_path / "s.npz")
    raw = vec.get_original_obs()
    ours = rl.normalize_obs({k: v[0] for k, v in raw.items()}, stats)
    theirs = vec.normalize_obs(raw)
    for key in ours:
        np.testing.assert_allclose(ours[key], theirs[key][0], rtol=1e-6, atol=1e-6)
    vec.close()


def test_preposition_bonus_adds_to_the_reward_only() -> None:
    cfg = SpepConfig.tiny(episode_slots=150, arrival_rate=0.5)
    shaped = PrepositionBonus(SpepEnv(cfg), bonus=2.5)
    plain = SpepEnv(cfg)
    shaped.reset(seed=4)
    obs, _ = plain.reset(seed=4)
    rng = np.random.default_rng(0)
    used = 0
    for _ in range(150):
        feasible = np.flatnonzero(obs["path_fidelity"] > 0)
        action = np.full(cfg.action_len, plain.num_pairs)
        if len(feasible):
            action[0] = rng.choice(feasible)
        _, r1, _, _, i1 = shaped.step(action)
        obs, r2, _, _, i2 = plain.step(action)
        used += i2["prepositions_used"]
        assert r1 == pytest.approx(r2 + 2.5 * i2["prepositions_used"])
        assert i1["rewards"]["preposition_bonus"] == 2.5 * i2["prepositions_used"]
        assert i1["metrics"] == i2["metrics"]
    assert used > 0  # the bonus was exercised


def test_compare_pairs_the_learned_agent_with_others_on_the_same_seeds(
    runs: dict[str, Path],
) -> None:
    learned_agent = agents.make("sb3", path=runs["maskable_ppo"], label="mine")
    config = {"num_nodes": 6, "er_p": 0.5, "episode_slots": 80}
    rows, table = rl.compare(learned_agent, others=("noop", "random"), runs=3, config=config)
    assert list(table["agent"]) == ["mine", "noop", "random"]
    assert sorted(rows.groupby("agent")["seed"].apply(list).explode().unique()) == [0, 1, 2]
    mine = rows[rows.agent == "mine"].set_index("seed")["success_rate"]
    noop = rows[rows.agent == "noop"].set_index("seed")["success_rate"]
    assert table.loc[1, "learned_minus_agent"] == pytest.approx((mine - noop).mean())
    assert table.loc[0, "learned_minus_agent"] == 0 and table.loc[0, "wilcoxon_p"] == 1
    assert (table["ci_low"] <= table["success_rate"]).all()
    # issue 21 item 5: the difference's CI, and Holm over the table's two comparisons
    from agents.study.stats import holm, mean_ci

    _, low, high, _ = mean_ci(mine - noop)
    assert (table.loc[1, "diff_ci_low"], table.loc[1, "diff_ci_high"]) == pytest.approx(
        (low, high), nan_ok=True
    )
    assert table["wilcoxon_p_holm"][1:].tolist() == pytest.approx(
        holm(table["wilcoxon_p"][1:]).tolist(), nan_ok=True
    )


def test_a_sampling_agent_is_reproducible_from_the_episode_seed(runs: dict[str, Path]) -> None:
    config = SpepConfig.tiny(episode_slots=60)
    agent = agents.make("sb3", path=runs["maskable_ppo"], deterministic=False)
    rows = [run_episode(agent, seed=s, config=config) for s in (2, 3, 2)]
    assert rows[0]["prepositions_placed"] == rows[2]["prepositions_placed"]
    assert rows[0]["success_rate"] == rows[2]["success_rate"]


def test_pair_policy_is_equivariant_to_relabelling_the_nodes() -> None:
    """Relabel the nodes: every node pair keeps its score, only its index moves."""
    import torch

    from agents.rl.policies import MaskablePairPolicy

    cfg = SpepConfig.tiny(action_len=2, arrival_rate=0.8)
    env = SpepEnv(cfg)
    policy = MaskablePairPolicy(env.observation_space, env.action_space, lambda _: 0.0)
    obs, _ = env.reset(seed=3)
    for _ in range(30):  # a state with link pairs, held pairs and queued requests
        feasible = np.flatnonzero(env.action_masks()[: env.num_pairs + 1])[:2]
        action = np.full(2, env.num_pairs)
        action[: len(feasible)] = feasible
        obs, *_ = env.step(action)
    assert obs["queue_mask"].sum() > 0 and obs["link_pairs"].sum() > 0
    n, P = cfg.n, env.num_pairs
    sigma = np.random.default_rng(0).permutation(n)
    rows, cols = np.triu_indices(n, 1)
    index = np.zeros((n, n), dtype=int)
    index[rows, cols] = index[cols, rows] = np.arange(P)
    moved = index[sigma[rows], sigma[cols]]  # pair p goes to index moved[p]
    permuted = {k: v.copy() for k, v in obs.items()}
    for key, value in obs.items():
        if value.shape == (P,):
            permuted[key][moved] = value
    queue = permuted["queue"].reshape(-1, 6)
    real = obs["queue_mask"] > 0
    queue[real, 0] = sigma[queue[real, 0].astype(int)]
    queue[real, 1] = sigma[queue[real, 1].astype(int)]

    def logits(o: dict[str, np.ndarray]) -> np.ndarray:
        tensors = {k: torch.as_tensor(v)[None] for k, v in o.items()}
        with torch.no_grad():
            features = policy.extract_features(tensors, policy.features_extractor)
            return policy.action_net(features).numpy().reshape(2, P + 1)

    before, after = logits(obs), logits(permuted)
    np.testing.assert_allclose(after[:, moved], before[:, :P], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after[:, P], before[:, P], rtol=1e-5, atol=1e-6)
    assert np.ptp(before[:, :P]) > 0  # the scores differ between pairs


def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--out", str(tmp_path), "--set", "episode_slot=9"]) == 2
    assert "did you mean 'episode_slots'" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path), "--timesteps", "0"]) == 2
    assert "timesteps=0 is invalid" in capsys.readouterr().err
    with pytest.raises(ValueError, match="policy='cnn'"):
        rl.train("ppo", tmp_path, 10, policy="cnn")


# ---------------------------------------------------------------------- issue 10


def test_issue10_2_train_refuses_a_folder_that_holds_another_run(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 2: without --resume a non-empty folder is refused, and nothing in it changes."""
    import shutil

    folder = tmp_path / "other"
    shutil.copytree(runs["ppo"], folder)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert train_cli(folder, "ppo", 128) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds another run or other files" in err and "--resume" in err
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_issue10_2_resume_refuses_other_settings_and_a_checkpoint_of_another_run(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 2: the command's config and algorithm, and the checkpoint's, must be the run's."""
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(runs["maskable_ppo"], folder)
    assert train_cli(folder, "maskable_ppo", 512, "--resume", "--set", "num_nodes=8") == 2
    err = capsys.readouterr().err
    assert "config.num_nodes: 6 vs 8" in err and err.count("\n") == 1
    assert train_cli(folder, "ppo", 512, "--resume") == 2
    assert "algo: 'maskable_ppo' vs 'ppo'" in capsys.readouterr().err
    # a later checkpoint of another run (the DQN one) in this run's folder
    src = runs["dqn"] / "checkpoints"
    dst = folder / "checkpoints"
    for name in ("rl_model_{}_steps.zip", "rl_model_obs_stats_{}_steps.npz"):
        shutil.copy(src / name.format(256), dst / name.format(9000))
    assert train_cli(folder, "maskable_ppo", 10_000, "--resume") == 2
    assert "no rl_model_meta_9000_steps.json beside it" in capsys.readouterr().err
    shutil.copy(src / "rl_model_meta_256_steps.json", dst / "rl_model_meta_9000_steps.json")
    assert train_cli(folder, "maskable_ppo", 10_000, "--resume") == 2
    err = capsys.readouterr().err
    assert "rl_model_9000_steps.zip was saved by another run" in err
    assert "algo: 'dqn' vs 'maskable_ppo'" in err
    with pytest.raises(ValueError, match="saved by another run"):
        agents.make("sb3", path=dst / "rl_model_9000_steps.zip")
    assert not (folder / "checkpoints" / "rl_model_9256_steps.zip").exists()  # nothing trained


def test_issue10_2_checkpoints_carry_their_runs_settings(runs: dict[str, Path]) -> None:
    meta = json.loads((runs["ppo"] / "train.json").read_text())
    side = json.loads((runs["ppo"] / "checkpoints" / "rl_model_meta_128_steps.json").read_text())
    assert side == {k: meta[k] for k in rl.config.RUN_IDENTITY}


def _broken_copy(runs: dict[str, Path], tmp_path: Path, how: str) -> Path:
    import shutil
    import zipfile

    folder = tmp_path / how
    shutil.copytree(runs["ppo"], folder)
    meta_path = folder / "model.json"
    meta = json.loads(meta_path.read_text())
    if how == "no-policy":
        with (
            zipfile.ZipFile(runs["ppo"] / "model.zip") as src,
            zipfile.ZipFile(folder / "model.zip", "w") as dst,
        ):
            for item in src.namelist():
                if item != "policy.pth":
                    dst.writestr(item, src.read(item))
    elif how == "algo":
        meta["algo"] = "a2c"
    elif how == "shape":
        meta["policy_kwargs"] = {"features_extractor_kwargs": {"hidden": 8}}
    elif how == "huge":
        meta["policy_kwargs"] = {"features_extractor_kwargs": {"hidden": 100_000}}
    elif how == "not-zip":
        (folder / "model.zip").write_text("not a zip")
    meta_path.write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("no-policy", r"model\.zip: no policy\.pth in the zip"),
        ("algo", r"model\.json: algo = 'a2c' is invalid: allowed one of"),
        ("shape", r"model\.zip: the saved weights do not fit .*size mismatch"),
        ("huge", r"policy_kwargs = .*100000.*parameters, about [\d,.]+ GiB, more than"),
        ("not-zip", r"model\.zip: not a stable-baselines3 zip"),
    ],
)
def test_issue10_8_12_a_broken_model_is_one_clear_error(
    runs: dict[str, Path],
    tmp_path: Path,
    how: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Items 8 and 12: a model file that cannot load says why in one line, before allocating."""
    folder = _broken_copy(runs, tmp_path, how)
    with pytest.raises(ValueError, match=message):
        agents.make("sb3", path=folder)
    argv = ["evaluate", "--agent", "sb3", "--param", f"path={folder}", "--runs", "1"]
    assert main([*argv, "--slots", "10", "--jobs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spep: error: ") and err.count("\n") == 1


def test_issue10_mask_counts_prepositions_in_flight_toward_k(runs: dict[str, Path]) -> None:
    """Also: with signalling latency, pre-positions in flight count toward K in the rebuilt mask."""
    agent = agents.make("sb3", path=runs["maskable_ppo"])
    cfg = agent.train_config
    env = SpepEnv(cfg.replace(signalling_latency=2.0, max_prepositioned=2, p_gen=1.0))
    obs, _ = env.reset(seed=0)
    agent.env = env  # the rebuilt mask alone, under other physics than the model was trained on
    full_by_flight = 0
    for _ in range(60):
        rebuilt = agent._mask_from_observation(obs)  # type: ignore[attr-defined]
        np.testing.assert_array_equal(rebuilt, env.action_masks()[: env.num_pairs + 1])
        held, flying = obs["prepositioned"].sum(), obs["prepositioned_in_flight"].sum()
        full_by_flight += int(held < 2 <= held + flying)
        feasible = np.flatnonzero(env.action_masks()[: env.num_pairs])
        action = np.full(cfg.action_len, env.num_pairs)
        action[: min(len(action), len(feasible))] = feasible[: len(action)]
        obs, *_ = env.step(action)
    assert full_by_flight > 0  # slots where only the pairs in flight make K full


def test_issue10_3_sb3_agent_checks_the_network_size_of_env_and_observation(
    runs: dict[str, Path],
) -> None:
    agent = agents.make("sb3", path=runs["ppo"])
    with pytest.raises(ValueError, match=r"defined with num_nodes=6.*has num_nodes=16"):
        agent.reset(env=SpepEnv())
    obs, _ = SpepEnv().reset(seed=0)
    with pytest.raises(ValueError, match=r"trained on 15 node pairs .* observation has 120"):
        agent.predict(obs)
    env = agent.make_env()  # the training config: predict works without info
    obs, _ = env.reset(seed=0)
    assert agent.predict(obs)[0].shape == (env.config.action_len,)


# ---------------------------------------------------------------------- issue 19


def _resumable(runs: dict[str, Path], tmp_path: Path) -> Path:
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(runs["maskable_ppo"], folder)
    return folder


def test_issue19_6_resume_skips_a_broken_newest_checkpoint(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An interrupted save (a 0-byte or truncated newest zip) is skipped, named, on --resume."""
    import shutil

    folder = _resumable(runs, tmp_path)
    ckpts = folder / "checkpoints"
    good = (ckpts / "rl_model_256_steps.zip").read_bytes()
    for steps, data in ((384, b""), (512, good[: len(good) // 2])):
        for name in ("rl_model_obs_stats_{}_steps.npz", "rl_model_meta_{}_steps.json"):
            shutil.copy(ckpts / name.format(256), ckpts / name.format(steps))
        (ckpts / f"rl_model_{steps}_steps.zip").write_bytes(data)
    assert train_cli(folder, "maskable_ppo", 512, "--resume", "--no-progress") == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "skipped" in line]
    assert len(lines) == 1 and "rl_model_512_steps.zip" in lines[0]
    assert "rl_model_384_steps.zip" in lines[0] and "resuming from " in lines[0]
    assert lines[0].endswith("rl_model_256_steps.zip")
    meta = json.loads((folder / "model.json").read_text())
    assert meta["resumed_from"] == 256 and meta["timesteps"] == 512
    assert sorted(p.name for p in (folder / "monitor").iterdir() if p.is_dir()) == ["resumed_256"]
    for steps in (384, 512):  # written again, whole
        assert checkpoints.saved_num_timesteps(ckpts / f"rl_model_{steps}_steps.zip") == steps
    assert not list(ckpts.glob(".*"))  # no temporary file left


def test_issue19_6_no_complete_checkpoint_creates_nothing(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _resumable(runs, tmp_path)
    for zip_path in (folder / "checkpoints").glob("rl_model_*_steps.zip"):
        zip_path.write_bytes(b"")
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    assert train_cli(folder, "maskable_ppo", 512, "--resume", "--no-progress") == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("spep: error: --resume: no complete checkpoint")
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


def test_issue19_6_an_interrupted_checkpoint_save_leaves_no_partial_zip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGINT in the middle of a checkpoint's save: the checkpoints before it stay the newest."""
    from stable_baselines3.common.base_class import BaseAlgorithm

    save = BaseAlgorithm.save
    calls: list[Any] = []

    def interrupted(self: Any, path: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(path)
        if len(calls) == 2:  # the second checkpoint: a few bytes written, then Ctrl-C
            Path(path).write_bytes(b"PK\x03\x04")
            raise KeyboardInterrupt
        save(self, path, *args, **kwargs)

    monkeypatch.setattr(BaseAlgorithm, "save", interrupted)
    assert train_cli(tmp_path, "maskable_ppo", 512, "--no-progress") == 130
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir() if p.suffix == ".zip") == [
        "rl_model_128_steps.zip"
    ]
    monkeypatch.setattr(BaseAlgorithm, "save", save)
    assert train_cli(tmp_path, "maskable_ppo", 256, "--resume", "--no-progress") == 0
    assert json.loads((tmp_path / "model.json").read_text())["resumed_from"] == 128


def _pickled_payload() -> bytes:
    import pickle
    from fractions import Fraction

    return pickle.dumps(
        {"weights": Fraction(1, 3)}, protocol=2
    )  # a global torch's weights_only refuses


@pytest.mark.parametrize("how", ["no-stats", "garbage-stats", "npy-stats", "pickled-zip"])
def test_issue19_resume_with_a_bad_checkpoint_file_is_one_line_naming_it(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    import zipfile

    folder = _resumable(runs, tmp_path)
    ckpts = folder / "checkpoints"
    stats = ckpts / "rl_model_obs_stats_256_steps.npz"
    zip_path = ckpts / "rl_model_256_steps.zip"
    bad = zip_path
    if how == "no-stats":
        stats.unlink()
        bad = stats
    elif how == "garbage-stats":
        stats.write_bytes(b"\x80\x04garbage" * 10)
        bad = stats
    elif how == "npy-stats":  # one array where the .npz of them belongs
        with stats.open("wb") as fh:
            np.save(fh, np.zeros(3))
        bad = stats
    else:
        with zipfile.ZipFile(runs["maskable_ppo"] / "checkpoints" / zip_path.name) as src:
            items = {name: src.read(name) for name in src.namelist()}
        items["policy.pth"] = _pickled_payload()
        with zipfile.ZipFile(zip_path, "w") as dst:
            for name, data in items.items():
                dst.writestr(name, data)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    assert train_cli(folder, "maskable_ppo", 512, "--resume", "--no-progress") == 2
    err = capsys.readouterr().err
    assert err.startswith("spep: error: ") and err.count("\n") == 1 and str(bad) in err
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


def test_issue19_a_model_zip_with_a_pickled_payload_is_one_line_naming_it(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import zipfile

    folder = _resumable(runs, tmp_path)
    with zipfile.ZipFile(runs["maskable_ppo"] / "model.zip") as src:
        items = {name: src.read(name) for name in src.namelist()}
    items["policy.pth"] = _pickled_payload()
    with zipfile.ZipFile(folder / "model.zip", "w") as dst:
        for name, data in items.items():
            dst.writestr(name, data)
    with pytest.raises(ValueError, match=r"model\.zip: .*policy\.pth"):
        agents.make("sb3", path=folder)
    argv = ["evaluate", "--agent", "sb3", "--param", f"path={folder}", "--runs", "1"]
    assert main([*argv, "--slots", "10", "--jobs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spep: error: ") and err.count("\n") == 1 and "model.zip" in err


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n_envs", 1e9, r"n_envs = 1000000000.0 is invalid: allowed an integer"),
        ("n_envs", 10**12, r"n_envs = 1000000000000 is invalid: allowed an integer in \[1, "),
        ("n_envs", 0, r"n_envs = 0 is invalid"),
        ("seed", -1, r"seed = -1 is invalid: allowed an integer in \[0, 4294967295\]"),
        ("seed", "x", r"seed = 'x' is invalid"),
        ("preposition_bonus", 1e308, r"preposition_bonus = 1e\+308 is invalid"),
        ("hyperparameters", [1], r"hyperparameters = \[1\] is invalid: allowed a JSON object"),
        ("policy_kwargs", None, r"no 'policy_kwargs' in it"),
    ],
)
def test_issue19_resume_validates_train_json(
    runs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    field: str,
    value: Any,
    message: str,
) -> None:
    """A tampered train.json is refused on --resume, one line naming the field (no hang)."""
    import re

    folder = _resumable(runs, tmp_path)
    meta = json.loads((folder / "train.json").read_text())
    meta[field] = value
    if value is None:
        del meta[field]
    (folder / "train.json").write_text(json.dumps(meta))
    extra = ["--preposition-bonus", "1e308"] if field == "preposition_bonus" else []
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    assert train_cli(folder, "maskable_ppo", 512, "--resume", "--no-progress", *extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.json" in err and re.search(message, err), err
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


@pytest.mark.parametrize("bonus", ["nan", "inf", "-inf", "1e308"])
def test_issue19_train_refuses_a_non_finite_or_absurd_bonus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bonus: str
) -> None:
    out = tmp_path / "run"
    assert train_cli(out, "ppo", 128, f"--preposition-bonus={bonus}", "--no-progress") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--preposition-bonus {float(bonus)!r} is invalid" in err
    assert "allowed a finite number with |bonus| <=" in err
    assert not out.exists()


def test_issue19_the_bonus_bound_keeps_an_episodes_bonus_finite_in_float32() -> None:
    cfg = SpepConfig.tiny(max_prepositioned=3, episode_slots=50)
    bound = rl.config.preposition_bonus_bound(cfg)
    assert np.isfinite(np.float32(bound * 3 * 50))
    assert bound * 3 * 50 == pytest.approx(float(np.finfo(np.float32).max))
    rl.config.check_preposition_bonus(-bound, cfg)  # a penalty of the same size is allowed
    with pytest.raises(ValueError, match="preposition-bonus"):
        rl.config.check_preposition_bonus(bound * 1.01, cfg)


def test_issue19_train_help_says_its_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(0: the env's reward)" not in out
    assert "default: 1.0: training is shaped" in out
    assert "default: maskable_ppo" in out


@pytest.mark.parametrize("algo", rl.ALGOS)
def test_issue19_hyper_lists_only_public_constructor_hyperparameters(algo: str) -> None:
    names = rl.config.hyperparameter_names(algo)
    assert not [n for n in names if n.startswith("_") or n.endswith("_class")]
    assert "learning_rate" in names and "gamma" in names
    assert ("n_epochs" in names) == (algo != "dqn")
    with pytest.raises(ValueError, match=r"'learnin_rate' \(did you mean 'learning_rate'\?\); al"):
        rl.config.check_hyperparameters(algo, {"learnin_rate": 1e-3})
    with pytest.raises(ValueError, match="has no hyperparameter 'foo'; allowed: ") as info:
        rl.config.check_hyperparameters(algo, {"foo": 1})
    allowed = str(info.value).split("allowed: ")[1].split(", ")
    assert allowed == list(names)
    for private in ("_init_setup_model", "rollout_buffer_class", "replay_buffer_class"):
        with pytest.raises(ValueError, match=f"has no hyperparameter {private!r}"):
            rl.config.check_hyperparameters(algo, {private: None})


def test_issue19_the_progress_bar_ends_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PPO's last rollout runs past --timesteps (300 -> 384): one bar, one "100%"."""
    assert train_cli(tmp_path, "ppo", 300) == 0
    err = capsys.readouterr().err
    assert err.count("100%") == 1 and "300/300" in err
    assert json.loads((tmp_path / "model.json").read_text())["timesteps"] == 384


@pytest.fixture(scope="module")
def obs_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Short runs under another observation window and under the physical preset."""
    out = {}
    for name, fields in (
        ("window", ["--set", "demand_obs_slots=40"]),
        ("physical", ["--set", "preset=physical"]),
    ):
        folder = tmp_path_factory.mktemp(name)
        assert train_cli(folder, "maskable_ppo", 128, *fields, "--no-progress") == 0
        out[name] = folder
    return out


@pytest.mark.parametrize(
    ("run", "field", "trained", "other"),
    [
        ("window", "demand_obs_slots", 40, {"demand_obs_slots": 15}),
        ("physical", "swap_model", "werner", {"preset": "paper"}),
        ("physical", "p_gen", SpepConfig.physical().p_gen, {"p_gen": 0.12}),
    ],
)
def test_issue19_7_the_agent_applies_its_training_observation_and_physics(
    obs_runs: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    run: str,
    field: str,
    trained: Any,
    other: dict[str, Any],
) -> None:
    """A model is evaluated under its training observation and physics, or refused by name."""
    agent = agents.make("sb3", path=obs_runs[run])
    row = run_episode(agent, seed=0, config={"episode_slots": 20})
    assert row["slots"] == 20 and agent.env is not None
    assert getattr(agent.env.config, field) == trained
    if run == "physical":
        physical = SpepConfig.physical()
        for name in ("decay_model", "link_pool_policy", "signalling_latency", "rho", "F0"):
            assert getattr(agent.env.config, name) == getattr(physical, name)
    with pytest.raises(ValueError, match=f"config field {field!r} = .* contradicts agent 'sb3'"):
        run_episode(agent, seed=0, config={"episode_slots": 20, **other})
    ((key, value),) = other.items()
    argv = ["evaluate", "--agent", "sb3", "--param", f"path={obs_runs[run]}", "--runs", "1"]
    argv += ["--slots", "10", "--jobs", "1", "--no-progress", "--set", f"{key}={value}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("spep: error: ") and err.count("\n") == 1 and repr(field) in err


def test_issue19_7_a_preset_counts_as_naming_the_fields_it_sets() -> None:
    """`--set preset=...` is checked against an agent's settings; a routing baseline still runs."""
    from agents.base import agent_config

    reactive = agents.make("reactive")
    cfg = agent_config(reactive, {"preset": "physical", "episode_slots": 30})
    assert cfg.swap_model == "werner" and cfg.routing == reactive.env_config["routing"]
    physics = type("Physics", (agents.Agent,), {"name": "physics"})()
    physics.env_config = {"swap_model": "werner"}
    assert agent_config(physics, {"preset": "physical"}).swap_model == "werner"
    with pytest.raises(ValueError, match=r"'swap_model' = 'paper' contradicts agent 'physics'"):
        agent_config(physics, {"preset": "paper"})


def test_issue19_7_compare_runs_every_agent_under_the_learned_agents_physics(
    obs_runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model trained under the physical preset is compared with the others there."""
    import agents.study.evaluate as study_evaluate

    seen: list[SpepConfig] = []
    original = study_evaluate.evaluate

    def recording(agent: Any, **kwargs: Any) -> Any:
        config = kwargs["config"]
        seen.append(config if isinstance(config, SpepConfig) else SpepConfig.from_dict(config))
        return original(agent, **kwargs)

    monkeypatch.setattr(study_evaluate, "evaluate", recording)
    learned_agent = agents.make("sb3", path=obs_runs["physical"], label="mine")
    _, table = rl.compare(learned_agent, others=("noop",), runs=2, config={"episode_slots": 20})
    assert list(table["agent"]) == ["mine", "noop"] and len(seen) == 2
    physical = SpepConfig.physical()
    for cfg in seen:
        assert (
            cfg.episode_slots == 20 and cfg.swap_model == "werner" and cfg.p_gen == physical.p_gen
        )


def test_issue19_6_a_zip_without_its_members_or_failing_its_crc_is_not_whole(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil
    import zipfile

    folder = _resumable(runs, tmp_path)
    ckpts = folder / "checkpoints"
    with zipfile.ZipFile(ckpts / "rl_model_256_steps.zip") as src:
        items = {name: src.read(name) for name in src.namelist()}
    with zipfile.ZipFile(ckpts / "rl_model_384_steps.zip", "w") as dst:
        dst.writestr("data", items["data"])  # no policy.pth
    shutil.copy(ckpts / "rl_model_256_steps.zip", ckpts / "rl_model_512_steps.zip")
    raw = bytearray((ckpts / "rl_model_512_steps.zip").read_bytes())
    at = raw.index(items["policy.pth"][-64:])  # stored uncompressed: flip a byte of the weights
    raw[at] ^= 0xFF
    (ckpts / "rl_model_512_steps.zip").write_bytes(bytes(raw))
    assert rl.checkpoints.resumable_checkpoint(folder) == (ckpts / "rl_model_256_steps.zip", 256)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no policy.pth in it" in err and "CRC" in err


def test_issue21_5_periodic_evaluation_keep_checkpoints_and_the_timing_split(
    tmp_path: Path,
) -> None:
    """--eval-freq evaluates on fixed seeds (as the checkpoint's agent would), beside the controls;
    --keep-checkpoints keeps the newest; model.json splits collection from updates."""
    import pandas as pd

    folder = tmp_path / "run"
    extra = ["--eval-freq", "128", "--eval-seeds", "100-101", "--keep-checkpoints", "2"]
    assert train_cli(folder, "maskable_ppo", 384, *extra, "--no-progress") == 0
    ckpts = folder / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == sorted(
        f"rl_model_{kind}{n}_steps.{ext}"
        for n in (256, 384)
        for kind, ext in (("", "zip"), ("meta_", "json"), ("obs_stats_", "npz"))
    )
    rows = pd.read_csv(folder / "evaluations.csv")
    assert rows.groupby("timesteps")["seed"].apply(list).to_dict() == {
        128: [100, 101],
        256: [100, 101],
        384: [100, 101],
    }
    config = {"num_nodes": 6, "er_p": 0.5, "episode_slots": 100}
    again = agents.evaluate(
        agents.make("sb3", path=ckpts / "rl_model_256_steps.zip", label="learned"),
        runs=2,
        seed=100,
        jobs=1,
        config=config,
    )
    at_256 = rows[rows.timesteps == 256].drop(columns=["timesteps", "wall_time_s"])
    pd.testing.assert_frame_equal(
        at_256.reset_index(drop=True), again.drop(columns=["wall_time_s"]), check_dtype=False
    )
    controls = pd.read_csv(folder / "eval_controls.csv")
    assert list(controls["agent"].unique())[0::2] == ["random", "managed"]
    assert controls["agent"].unique()[1] in BASELINES
    assert sorted(set(controls["seed"])) == [100, 101]
    assert (folder / "evaluation_curve.png").stat().st_size > 1000
    timing = json.loads((folder / "model.json").read_text())["timing"]
    assert timing["collect_s"] > 0 and timing["update_s"] > 0 and timing["eval_s"] > 0
    assert timing["collect_steps_per_s"] == pytest.approx(384 / timing["collect_s"], rel=0.01)
    assert timing["update_steps_per_s"] == pytest.approx(384 / timing["update_s"], rel=0.01)
    # a resumed run keeps the rows up to its checkpoint and the controls as they were
    controls_before = (folder / "eval_controls.csv").read_bytes()
    (ckpts / "rl_model_384_steps.zip").write_bytes(b"")  # resumes from 256: 384 is evaluated again
    assert train_cli(folder, "maskable_ppo", 512, *extra, "--resume", "--no-progress") == 0
    rows = pd.read_csv(folder / "evaluations.csv")
    assert rows["timesteps"].tolist() == [t for t in (128, 256, 384, 512) for _ in range(2)]
    assert (folder / "eval_controls.csv").read_bytes() == controls_before
    assert sorted(p.name for p in ckpts.glob("*.zip")) == [
        "rl_model_384_steps.zip",
        "rl_model_512_steps.zip",
    ]


def test_issue21_5_evaluation_seeds_that_overlap_training_seeds_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "run"
    for seeds, message in (
        ("4-9", "--eval-seeds 4-9 is invalid: it overlaps the training seeds 3-4"),
        ("9-4", "--eval-seeds '9-4' is invalid: allowed a seed range A-B"),
    ):
        assert train_cli(folder, "ppo", 128, "--eval-freq", "64", "--eval-seeds", seeds) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
        assert not folder.exists()
    assert train_cli(folder, "ppo", 128, "--keep-checkpoints", "-1") == 2
    assert "keep_checkpoints=-1 is invalid" in capsys.readouterr().err


def test_issue21_5_pruning_keeps_the_newest_whole_checkpoints(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """Older checkpoints go with their files; a broken newest zip never counts toward N."""
    import shutil

    src = runs["maskable_ppo"] / "checkpoints"
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    for steps in (100, 200, 300, 400):
        for name in ("rl_model_{}_steps.zip", "rl_model_obs_stats_{}_steps.npz"):
            shutil.copy(src / name.format(256), ckpts / name.format(steps))
    (ckpts / "rl_model_400_steps.zip").write_bytes(b"")  # an interrupted save
    assert checkpoints.prune_checkpoints(tmp_path, 0) == []
    assert checkpoints.prune_checkpoints(tmp_path, 5) == []
    assert checkpoints.prune_checkpoints(tmp_path, 1) == [
        ckpts / "rl_model_200_steps.zip",
        ckpts / "rl_model_100_steps.zip",
    ]
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "rl_model_300_steps.zip",
        "rl_model_400_steps.zip",
        "rl_model_obs_stats_300_steps.npz",
        "rl_model_obs_stats_400_steps.npz",
    ]
    assert checkpoints.resumable_checkpoint(tmp_path) == (ckpts / "rl_model_300_steps.zip", 300)


def test_issue21_5_torchrl_engine_evaluates_prunes_and_times(tmp_path: Path) -> None:
    pytest.importorskip("torchrl")
    import pandas as pd

    folder = tmp_path / "run"
    args = ["train", "--engine", "torchrl", "--timesteps", "320", "--out", str(folder)]
    args += ["--n-envs", "8", "--hyper", "n_steps=20", "--hyper", "batch_size=64"]
    args += ["--hyper", "n_epochs=1", "--checkpoint-freq", "160", "--seed", "3", "--no-progress"]
    args += ["--set", "num_nodes=6", "--set", "er_p=0.5", "--set", "episode_slots=20"]
    args += ["--eval-freq", "160", "--eval-seeds", "50-51", "--keep-checkpoints", "1"]
    assert main(args) == 0
    zips = sorted(p.name for p in (folder / "checkpoints").glob("*.zip"))
    assert zips == ["rl_model_320_steps.zip"]
    rows = pd.read_csv(folder / "evaluations.csv")
    assert sorted(set(rows["timesteps"])) == [160, 320] and sorted(set(rows["seed"])) == [50, 51]
    timing = json.loads((folder / "model.json").read_text())["timing"]
    assert timing["collect_s"] > 0 and timing["update_s"] > 0 and timing["eval_s"] > 0
