"""``spep train --engine torchrl``: the TorchRL env over the batched core equals ``SpepEnv`` with the
same draws, its pieces (masked distribution, shared critic, reward scaling) match what they stand
for, and the engine trains, checkpoints, resumes, repeats for a seed and evaluates on ``SpepEnv``."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torchrl")
pytest.importorskip("sb3_contrib")

import io
import warnings

import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

import agents
from agents import rl, run_episode
from agents.cli import main
from agents.rl import torchrl_ppo
from agents.rl.config import POLICY_KWARGS, algorithm_class, default_hyperparameters
from agents.rl.envs import make_env
from agents.rl.policies import policy_class
from agents.rl.torchrl_ppo import MaskedMultiCategorical, ReturnScale, SpepTorchEnv, actor_critic
from spep_gym.config import SpepConfig

TINY = ["--set", "num_nodes=6", "--set", "er_p=0.5", "--set", "episode_slots=20"]
#: 8 networks, rollouts of 8 x 20 = 160 steps, one epoch of minibatches of 64: a second a run.
SMALL = ["--n-envs", "8", "--hyper", "n_steps=20", "--hyper", "batch_size=64"]
SMALL += ["--hyper", "n_epochs=1", "--checkpoint-freq", "160"]


def train_cli(out: Path, timesteps: int, *extra: str) -> int:
    args = ["train", "--engine", "torchrl", "--timesteps", str(timesteps), "--out", str(out)]
    return main([*args, "--seed", "3", *SMALL, *TINY, *extra])


def masked_random_actions(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(B, entries, P + 1) bool -> a uniformly random allowed pair per entry."""
    return np.array([[rng.choice(np.flatnonzero(e)) for e in row] for row in masks])


def tiny_model(cfg: SpepConfig) -> object:
    """A MaskablePPO with the pair policy over one ``SpepEnv`` (the spaces), as the engine builds."""
    hp = default_hyperparameters("maskable_ppo", "torchrl", 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return algorithm_class("maskable_ppo")(
            policy_class("maskable_ppo", "pair"),
            make_env(cfg, "maskable_ppo", 1.0),
            seed=0,
            policy_kwargs=POLICY_KWARGS["pair"],
            **hp,
        )


def test_torch_env_equals_spep_env_with_the_same_draws() -> None:
    """Observations, masks, shaped rewards and truncation, over two episodes per network."""
    cfg = SpepConfig.tiny(episode_slots=10, action_len=2, arrival_rate=3.0)  # prepositions used
    B, bonus = 3, 0.5
    env = SpepTorchEnv(cfg, B, draws="scalar", preposition_bonus=bonus)
    env.set_seed(11)
    td = env.reset()
    refs = [make_env(cfg, "maskable_ppo", bonus) for _ in range(B)]
    starts = [ref.reset(seed=int(s))[0] for ref, s in zip(refs, env.episode_seeds, strict=True)]
    rng = np.random.default_rng(0)
    used = ends = 0

    def same_obs(td_obs: TensorDict, i: int, obs: dict[str, np.ndarray]) -> None:
        for key, value in obs.items():
            np.testing.assert_allclose(td_obs[key][i].numpy(), value, rtol=1e-6, err_msg=key)

    for i in range(B):
        same_obs(td, i, starts[i])
    first_seeds = env.episode_seeds.copy()
    for _ in range(2 * cfg.episode_slots):
        masks = td["action_mask"].numpy()
        for i, ref in enumerate(refs):
            want = ref.unwrapped.action_masks().reshape(cfg.action_len, -1)
            np.testing.assert_array_equal(masks[i], want)
        actions = masked_random_actions(masks, rng)
        td["action"] = torch.as_tensor(actions)
        out, td = env.step_and_maybe_reset(td)
        for i, ref in enumerate(refs):
            obs, reward, terminated, truncated, info = ref.step(actions[i])
            assert out["next", "reward"][i, 0].item() == pytest.approx(reward, rel=1e-6, abs=1e-6)
            assert bool(out["next", "truncated"][i, 0]) is truncated
            assert not terminated and not bool(out["next", "terminated"][i, 0])
            same_obs(out["next"], i, obs)
            used += info["prepositions_used"]
            if truncated:
                ends += 1
                start, _ = ref.reset(seed=int(env.episode_seeds[i]))
                same_obs(td, i, start)
    assert ends == 2 * B and used > 0  # the bonus was exercised
    assert (env.episode_seeds != first_seeds).all()  # each new episode a new seed
    assert len(env.finished) == 2 * B
    assert all(length == cfg.episode_slots for _, length, _ in env.finished)


def test_torch_env_passes_torchrl_spec_checks_and_resets_only_the_rows_asked() -> None:
    cfg = SpepConfig.tiny(episode_slots=8, action_len=2)
    env = SpepTorchEnv(cfg, 4)
    env.set_seed(0)
    check_env_specs(env)
    td = env.reset()
    before = {k: td[k].clone() for k in env.obs_keys}
    seeds = env.episode_seeds.copy()
    reset = torch.tensor([[False], [True], [False], [True]])
    again = env.reset(TensorDict({"_reset": reset}, batch_size=[4]))
    assert (env.episode_seeds[[0, 2]] == seeds[[0, 2]]).all()
    assert (env.episode_seeds[[1, 3]] != seeds[[1, 3]]).all()
    now = env.sim.observation()  # TorchRL keeps the other rows from its input (its convention)
    for k in env.obs_keys:
        assert torch.equal(now[k][[0, 2]], before[k][[0, 2]]), k
        assert torch.equal(again[k][[1, 3]], now[k][[1, 3]]), k
    assert not torch.equal(now["adjacency"][[1, 3]], before["adjacency"][[1, 3]])
    with pytest.raises(ValueError, match="trace"):
        SpepTorchEnv(SpepConfig.tiny(trace="x.csv"), 2)


def test_masked_multi_categorical_is_a_masked_categorical_per_entry() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 2, 7, generator=gen)
    mask = torch.rand(5, 2, 7, generator=gen) < 0.5
    mask[..., 6] = True  # "none" is always allowed
    dist = MaskedMultiCategorical(logits=logits, mask=mask)
    sample = dist.sample((200,))
    assert sample.shape == (200, 5, 2)
    assert mask.gather(-1, sample.permute(1, 2, 0)).all()  # never a masked-out pair
    action = dist.sample()
    log_softmax = torch.log_softmax(logits.masked_fill(~mask, -torch.inf), -1)
    want = log_softmax.gather(-1, action.unsqueeze(-1)).squeeze(-1).sum(-1)
    torch.testing.assert_close(dist.log_prob(action), want)
    p = log_softmax.exp()
    entropy = -(p * log_softmax.masked_fill(~mask, 0.0)).sum(-1).sum(-1)
    torch.testing.assert_close(dist.entropy(), entropy)
    assert torch.equal(dist.deterministic_sample, log_softmax.argmax(-1))


def test_the_losses_critic_head_gives_the_full_critics_loss_and_gradients() -> None:
    """The loss's critic reads the features of the actor's pass: as if it computed its own."""
    cfg = SpepConfig.tiny(episode_slots=8, action_len=2)
    env = SpepTorchEnv(cfg, 4)
    env.set_seed(1)
    torch.manual_seed(0)
    model = tiny_model(cfg)
    operator = actor_critic(model.policy, env)  # type: ignore[attr-defined]
    actor, critic = operator.get_policy_operator(), operator.get_value_operator()
    with torch.no_grad():  # as the engine computes the advantages
        batch = env.rollout(6, operator)
        critic(batch["next"])
        GAE(gamma=0.95, lmbda=0.9, value_network=None)(batch)
    batch = batch.reshape(-1).exclude("features", ("next", "features"))
    results = []
    for value in (operator.get_value_head(), critic):
        loss = ClipPPOLoss(actor, value, critic_coeff=0.5, loss_critic_type="l2", functional=False)
        model.policy.zero_grad()  # type: ignore[attr-defined]
        terms = loss(batch.clone())
        total = terms["loss_objective"] + terms["loss_critic"]
        total.backward()
        grads = [p.grad.clone() for p in model.policy.parameters()]  # type: ignore[attr-defined]
        results.append((terms["loss_critic"].detach(), total.detach(), grads))
    (critic_a, total_a, grads_a), (critic_b, total_b, grads_b) = results
    assert critic_a.item() > 0
    torch.testing.assert_close(critic_a, critic_b)
    torch.testing.assert_close(total_a, total_b)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b)


def test_return_scale_keeps_vec_normalizes_statistics(tmp_path: Path) -> None:
    """One update per rollout gives the statistics VecNormalize's per-step updates give."""
    gen = np.random.default_rng(0)
    B, T, gamma = 3, 7, 0.9
    scale = ReturnScale(B, gamma)
    ref, returns = RunningMeanStd(shape=()), np.zeros(B)
    for _ in range(2):  # two rollouts: the discounted return carries over
        rewards = gen.normal(size=(B, T)).astype(np.float32).astype(np.float64)  # the env's
        dones = gen.random((B, T)) < 0.2
        for t in range(T):  # VecNormalize.step_wait's _update_reward
            returns = returns * gamma + rewards[:, t]
            ref.update(returns)
            returns[dones[:, t]] = 0.0
        batch = TensorDict(
            {
                "next": {
                    "reward": torch.as_tensor(rewards, dtype=torch.float32).unsqueeze(-1),
                    "done": torch.as_tensor(dones).unsqueeze(-1),
                }
            },
            batch_size=[B, T],
        )
        scale(batch)
        np.testing.assert_allclose(scale.ret_rms.mean, ref.mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(scale.ret_rms.var, ref.var, rtol=1e-9)
        assert scale.ret_rms.count == pytest.approx(ref.count)
        want = np.clip(rewards / np.sqrt(ref.var + 1e-8), -10, 10)
        np.testing.assert_allclose(batch["next", "reward"].squeeze(-1).numpy(), want, rtol=1e-6)
    rl.save_obs_stats(scale, tmp_path / "stats.npz")  # as VecNormalize's, and back
    other = ReturnScale(B, gamma)
    rl.checkpoints.restore_obs_stats(other, rl.load_obs_stats(tmp_path / "stats.npz"))
    assert other.ret_rms.var == scale.ret_rms.var and other.ret_rms.count == scale.ret_rms.count


def test_cli_trains_resumes_and_the_model_evaluates_on_spep_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train_cli(tmp_path, 320) == 0
    assert "320/320" in capsys.readouterr().err  # the progress bar, at its end
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["engine"] == "torchrl" and meta["n_envs"] == 8 and meta["timesteps"] == 320
    assert meta["device"] == "cpu"
    assert rl.latest_checkpoint(tmp_path) == (
        tmp_path / "checkpoints" / "rl_model_320_steps.zip",
        320,
    )
    for steps in (160, 320):
        ckpt = tmp_path / "checkpoints" / f"rl_model_{steps}_steps.zip"
        assert json.loads(ckpt.with_name(f"rl_model_meta_{steps}_steps.json").read_text()) == (
            rl.config.run_identity(meta)
        )
        stats = rl.load_obs_stats(ckpt.with_name(f"rl_model_obs_stats_{steps}_steps.npz"))
        assert stats["ret_count"] > 1 and stats["ret_var"] > 0
    monitor = (tmp_path / "monitor" / "torchrl.monitor.csv").read_text().splitlines()
    assert monitor[1] == "r,l,t,success_rate"
    rows = [line.split(",") for line in monitor[2:]]
    assert len(rows) == 8 * 2 and all(r[1] == "20" for r in rows)  # 8 networks x 2 episodes
    rates = [float(r[3]) for r in rows]  # NaN: an episode without requests
    assert all(0.0 <= x <= 1.0 or math.isnan(x) for x in rates) and sum(x >= 0 for x in rates) > 8
    rl.plot_training_curve(tmp_path, tmp_path / "curve.png")
    config = SpepConfig.from_dict({**meta["config"], "episode_slots": 30})
    row = run_episode(agents.make("sb3", path=tmp_path), seed=5, config=config)
    assert row["agent"] == "sb3" and row["slots"] == 30
    again = run_episode(agents.make("sb3", path=tmp_path), seed=5, config=config)
    assert again["success_rate"] == row["success_rate"]
    # resume: from the 320-step checkpoint to 480, with its own Monitor file
    assert train_cli(tmp_path, 480, "--resume", "--no-progress") == 0
    assert "480/480" not in capsys.readouterr().err
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["resumed_from"] == 320 and meta["timesteps"] == 480
    assert (tmp_path / "monitor" / "resumed_320" / "torchrl.monitor.csv").is_file()
    agents.make("sb3", path=tmp_path / "checkpoints" / "rl_model_480_steps.zip")


def policy_weights(zip_path: Path) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(zip_path) as archive:
        data = io.BytesIO(archive.read("policy.pth"))
    return torch.load(data, weights_only=True)


def test_a_seed_repeats_its_run_exactly_and_training_moves_the_policy(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert train_cli(tmp_path / name, 320) == 0
    a, b = (policy_weights(tmp_path / n / "model.zip") for n in ("a", "b"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    first = policy_weights(tmp_path / "a" / "checkpoints" / "rl_model_160_steps.zip")
    assert any(not torch.equal(first[k], a[k]) for k in a)
    assert train_cli(tmp_path / "c", 320, "--seed", "4") == 0
    c = policy_weights(tmp_path / "c" / "model.zip")
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_resume_refuses_another_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_cli(tmp_path, 160) == 0
    args = ["train", "--engine", "batched", "--timesteps", "320", "--out", str(tmp_path)]
    assert main([*args, "--resume", *SMALL, *TINY]) == 2
    assert "engine: 'torchrl' vs 'batched'" in capsys.readouterr().err


def test_what_the_torchrl_engine_does_not_train_is_a_one_line_error_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("slot,source,destination,F_req,deadline,priority\n0,0,1,0.7,5,1\n")
    out = tmp_path / "run"
    cases = {
        "--algo dqn is invalid with --engine torchrl": ["--algo", "dqn"],
        "--algo ppo is invalid with --engine torchrl": ["--algo", "ppo"],
        "--policy mlp is invalid with --engine torchrl": ["--policy", "mlp"],
        "--hyper target_kl=...: not taken by --engine torchrl": ["--hyper", "target_kl=0.1"],
        "--subproc is invalid with --engine torchrl": ["--subproc"],
        "--engine torchrl: config field 'trace'": ["--set", f"trace={trace}"],
    }
    if not torch.cuda.is_available():
        cases["CUDA is not available here"] = ["--device", "cuda"]
    for message, extra in cases.items():
        args = ["train", "--engine", "torchrl", "--timesteps", "64", "--out", str(out), *extra]
        assert main([*args, *TINY]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("spep: error: "), err
        assert not out.exists()


def test_the_engine_module_loads_only_when_asked_for() -> None:
    import subprocess
    import sys

    code = "import agents, agents.rl, sys; print('torchrl' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
    assert torchrl_ppo.TORCHRL_ALGOS == ("maskable_ppo",)


def test_devices_auto_and_missing() -> None:
    from agents.rl.training import _env_device
    from spep_gym.batched.simulator import resolve_device

    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(_env_device("auto")).type == want
    assert resolve_device(_env_device("cpu")) == torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ValueError, match=f"cuda:{count}"):  # one past the last device
        resolve_device(f"cuda:{count}")


def test_the_minibatch_loss_is_maskable_ppos() -> None:
    """ClipPPOLoss as the engine builds it gives SB3 MaskablePPO's loss and gradients on a batch.

    SB3's ``MaskablePPO.train`` per minibatch: the advantages normalised, the clipped surrogate,
    ``vf_coef`` times the MSE of the returns and values, ``ent_coef`` times minus the entropy.
    """
    import torch.nn.functional as F

    cfg = SpepConfig.tiny(episode_slots=8, action_len=2)
    env = SpepTorchEnv(cfg, 4)
    env.set_seed(2)
    torch.manual_seed(0)
    model = tiny_model(cfg)
    policy = model.policy  # type: ignore[attr-defined]
    operator = actor_critic(policy, env)
    with torch.no_grad():
        batch = env.rollout(6, operator)
        operator.get_value_operator()(batch["next"])
        GAE(gamma=0.95, lmbda=0.9, value_network=None)(batch)
    batch = batch.reshape(-1)
    with torch.no_grad():  # move the weights off the rollout's, so that the ratios are not all 1
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    clip, vf_coef, ent_coef = 0.2, 0.5, 0.01
    loss = ClipPPOLoss(
        operator.get_policy_operator(),
        operator.get_value_head(),
        clip_epsilon=clip,
        entropy_bonus=True,
        entropy_coeff=ent_coef,
        critic_coeff=vf_coef,
        loss_critic_type="l2",
        normalize_advantage=True,
        functional=False,
    )
    policy.zero_grad()
    terms = loss(batch.clone())
    ours = sum(v for k, v in terms.items() if k.startswith("loss_"))
    ours.backward()
    ours_grads = [p.grad.clone() for p in policy.parameters()]

    policy.zero_grad()
    obs = {k: batch[k] for k in env.obs_keys}
    masks = batch["action_mask"].reshape(len(batch), -1)
    values, log_prob, entropy = policy.evaluate_actions(obs, batch["action"], action_masks=masks)
    adv = batch["advantage"].squeeze(-1)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = torch.exp(log_prob - batch["action_log_prob"])
    surrogate = torch.min(adv * ratio, adv * torch.clamp(ratio, 1 - clip, 1 + clip))
    returns = batch["value_target"].squeeze(-1)
    sb3 = (
        -surrogate.mean()
        + ent_coef * -entropy.mean()
        + vf_coef * F.mse_loss(returns, values.flatten())
    )
    sb3.backward()
    assert 0.0 < float(terms["clip_fraction"]) < 1.0  # some ratios were clipped, others not
    torch.testing.assert_close(ours.detach(), sb3.detach(), rtol=1e-5, atol=1e-6)
    for a, (name, p) in zip(ours_grads, policy.named_parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-6, msg=name)
