"""The pair policy's extra per-pair features (issue 21, item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sb3_contrib")

from agents.rl.config import EXTRA_FEATURES  # noqa: E402
from agents.rl.policies import MaskablePairPolicy  # noqa: E402
from spep_gym.config import SpepConfig  # noqa: E402
from spep_gym.env import SpepEnv  # noqa: E402

#: A MaskablePairPolicy (hidden 16, tiny config, action_len 2) saved by the code before the extra
#: features existed (commit fd6a7a8), its weights perturbed, with 30 observations and its logits.
FIXTURE = Path(__file__).parent / "data" / "pair_policy_v0.npz"
DEMAND = {"demand_ema_half_lives": (4, 60), "demand_hour_obs": True}


def _policy(env: SpepEnv, **extractor: object) -> MaskablePairPolicy:
    return MaskablePairPolicy(
        env.observation_space,
        env.action_space,
        lambda _: 1e-3,
        features_extractor_kwargs={"hidden": 16, **extractor},
    )


def _logits(policy: MaskablePairPolicy, obs: dict[str, np.ndarray]) -> np.ndarray:
    o = {k: torch.as_tensor(v) for k, v in obs.items()}
    with torch.no_grad():
        features = policy.extract_features(o)
        return policy.action_net(policy.mlp_extractor.forward_actor(features)).numpy()


def test_a_saved_default_pair_policy_loads_and_gives_the_same_logits() -> None:
    data = np.load(FIXTURE)
    policy = _policy(SpepEnv(SpepConfig.tiny(action_len=2)))
    params = {k[6:]: torch.as_tensor(data[k]) for k in data.files if k.startswith("param/")}
    policy.load_state_dict(params, strict=True)
    obs = {k[4:]: data[k] for k in data.files if k.startswith("obs/")}
    np.testing.assert_array_equal(_logits(policy, obs), data["logits"])


def test_extra_features_widen_the_pair_input_and_are_read() -> None:
    env = SpepEnv(SpepConfig.tiny(action_len=2, **DEMAND))
    obs, _ = env.reset(seed=1)
    for _ in range(30):
        obs, *_ = env.step(np.full(2, env.num_pairs))
    torch.manual_seed(0)
    policy = _policy(env, extra=list(EXTRA_FEATURES))
    # 10 base + arrivals, two in-flight counts, link_busy + 2 half-lives + 2 hours
    assert policy.features_extractor.encode[0].in_features == 10 + 4 + 2 + 2
    batch = {k: v[None] for k, v in obs.items()}
    before = _logits(policy, batch)
    for key in EXTRA_FEATURES:
        changed = {**batch, key: batch[key] + 1.0}
        assert not np.array_equal(_logits(policy, changed), before), key
    # the default policy ignores them
    plain = _policy(env)
    base = _logits(plain, batch)
    assert np.array_equal(_logits(plain, {**batch, "demand_ema": batch["demand_ema"] + 1}), base)


def test_bad_extra_features_are_refused_in_one_line() -> None:
    env = SpepEnv(SpepConfig.tiny())
    with pytest.raises(ValueError, match="'demand' is invalid: allowed one of"):
        _policy(env, extra=["demand"])
    with pytest.raises(ValueError, match="'demand_ema' is not in the observation"):
        _policy(env, extra=["demand_ema"])
    with pytest.raises(ValueError, match="distinct names"):
        _policy(env, extra=["arrivals", "arrivals"])


TINY = ["--set", "num_nodes=6", "--set", "er_p=0.5", "--set", "episode_slots=100"]
FAST = ["--hyper", "n_steps=64", "--hyper", "batch_size=64", "--hyper", "n_epochs=1"]
DEMAND_SET = ["--set", "demand_ema_half_lives=[4, 60]", "--set", "demand_hour_obs=True"]


@pytest.mark.parametrize("engine", ["scalar", "batched", "torchrl"])
def test_train_smoke_with_demand_keys_extra_features_and_predictive_hits(
    tmp_path: Path, engine: str
) -> None:
    """``spep train`` end to end with the three options, then the model evaluates."""
    from agents.cli import main

    folder = tmp_path / engine
    args = ["train", "--timesteps", "512", "--out", str(folder), "--engine", engine]
    args += ["--n-envs", "2", "--seed", "3", "--checkpoint-freq", "256", "--no-progress"]
    args += [*TINY, *FAST, *DEMAND_SET, "--predictive-hit-reward", "0.5"]
    args += ["--pair-features", ",".join(EXTRA_FEATURES)]
    assert main(args) == 0
    meta = json.loads((folder / "model.json").read_text())
    assert meta["config"]["reward_predictive_hit"] == 0.5
    assert meta["config"]["demand_ema_half_lives"] == [4, 60]
    assert meta["policy_kwargs"]["features_extractor_kwargs"]["extra"] == list(EXTRA_FEATURES)
    argv = ["evaluate", "--agent", "sb3", "--param", f"path={folder}", "--runs", "1"]
    assert main([*argv, "--slots", "20", "--jobs", "1", "--no-progress"]) == 0


def test_train_refuses_a_feature_the_observation_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agents.cli import main

    args = ["train", "--timesteps", "64", "--out", str(tmp_path / "run"), *TINY]
    assert main([*args, "--pair-features", "demand_ema"]) == 2
    err = capsys.readouterr().err
    assert "--pair-features: extra feature 'demand_ema' is not in the observation" in err
    assert not (tmp_path / "run").exists()
    assert main([*args, "--policy", "mlp", "--pair-features", "arrivals"]) == 2
    assert "allowed with --policy pair" in capsys.readouterr().err


def test_blanked_keys_are_never_read_and_the_rest_is() -> None:
    """A policy with ``blank`` gives the same logits whatever the blanked keys hold, the logits it
    gives with those keys zeroed, and still reacts to the keys it was not told to blank."""
    env = SpepEnv(SpepConfig.tiny(action_len=2, **DEMAND))
    obs, _ = env.reset(seed=2)
    for _ in range(30):
        obs, *_ = env.step(np.full(2, env.num_pairs))
    batch = {k: v[None] for k, v in obs.items()}
    blank = ["demand", "arrivals", "time_of_day", "demand_ema", "demand_by_hour"]
    torch.manual_seed(0)
    blind = _policy(env, extra=list(EXTRA_FEATURES), blank=blank)
    torch.manual_seed(0)
    seeing = _policy(env, extra=list(EXTRA_FEATURES))  # the same weights, nothing blanked
    zeroed = {k: np.zeros_like(v) if k in blank else v for k, v in batch.items()}
    before = _logits(blind, batch)
    np.testing.assert_array_equal(before, _logits(seeing, zeroed))
    rng = np.random.default_rng(0)
    for key in blank:
        changed = {**batch, key: batch[key] + rng.uniform(1, 5, batch[key].shape)}
        np.testing.assert_array_equal(_logits(blind, changed), before, err_msg=key)
        assert not np.array_equal(_logits(seeing, changed), _logits(seeing, batch)), key
    for key in ("link_fidelity", "link_age", "requests_in_flight"):
        changed = {**batch, key: batch[key] + 1.0}
        assert not np.array_equal(_logits(blind, changed), before), key


def test_bad_blank_keys_are_refused_in_one_line() -> None:
    env = SpepEnv(SpepConfig.tiny())
    with pytest.raises(ValueError, match="blank key 'demand_ema' is invalid: allowed observation"):
        _policy(env, blank=["demand_ema"])
    with pytest.raises(ValueError, match="distinct keys"):
        _policy(env, blank=["demand", "demand"])


def test_a_demand_blind_run_stores_its_blank_keys_and_its_model_ignores_demand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--demand-blind`` blanks the demand inputs the run's observation has, the model saved acts
    the same whatever they hold, and a resume with other blank keys is refused."""
    from agents import make
    from agents.cli import main

    folder = tmp_path / "blind"
    args = ["train", "--timesteps", "256", "--out", str(folder), "--engine", "batched"]
    args += ["--n-envs", "2", "--seed", "3", "--checkpoint-freq", "128", "--no-progress"]
    args += [*TINY, *FAST, *DEMAND_SET, "--pair-features", "demand_ema"]
    assert main([*args, "--demand-blind"]) == 0
    meta = json.loads((folder / "model.json").read_text())
    extractor = meta["policy_kwargs"]["features_extractor_kwargs"]
    assert extractor["blank"] == [
        "demand",
        "arrivals",
        "time_of_day",
        "demand_ema",
        "demand_by_hour",
    ]
    agent = make("sb3", path=folder)
    env = agent.make_env()
    obs, info = env.reset(seed=5)
    for _ in range(20):
        obs, _, _, _, info = env.step(agent.act(obs, info))
    action = agent.act(obs, info)
    for key in extractor["blank"]:
        noisy = {**obs, key: obs[key] + 3.0}
        np.testing.assert_array_equal(agent.act(noisy, info), action, err_msg=key)
    resume = ["train", "--timesteps", "512", "--out", str(folder), "--resume", *TINY, *FAST]
    resume += [*DEMAND_SET, "--pair-features", "demand_ema", "--engine", "batched", "--no-progress"]
    assert main([*resume, "--blank", "demand"]) == 2
    assert "blank" in capsys.readouterr().err
    assert main([*args[:2], "64", "--out", str(tmp_path / "x"), *TINY, "--blank", "nope"]) == 2
    assert "--blank: blank key 'nope' is invalid" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
