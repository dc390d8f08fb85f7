"""Training settings: the algorithms and their SB3 classes, default hyperparameters, the run's JSON.

Nothing here imports stable-baselines3 or torch until a class is asked for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from spep_gym.config import SpepConfig

#: The algorithms ``spep train`` trains (stable-baselines3 and sb3-contrib).
ALGOS = ("ppo", "maskable_ppo", "dqn")
#: "pair": the pair-equivariant network of :mod:`agents.rl.policies`; "mlp": SB3's MultiInputPolicy.
POLICIES = ("pair", "mlp")
#: Training config over the paper preset: shorter episodes (more of them per minute), and a
#: preference list of 2 entries instead of 8. The environment places at most
#: ``max_new_prepositions`` (2) pairs a slot, so the entries cut are only the fallbacks it would try
#: when an earlier one fails; the policy's action shrinks from 8 entries to 2.
TRAIN_DEFAULTS: dict[str, Any] = {"episode_slots": 480, "action_len": 2}
#: Network sizes of each policy kind.
POLICY_KWARGS: dict[str, dict[str, Any]] = {
    "pair": {"features_extractor_kwargs": {"hidden": 16}},
    "mlp": {"net_arch": [64, 64]},
}
#: Default hyperparameters of each algorithm (``--hyper NAME=VALUE`` overrides one).
HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    # gamma 0.95: a request's deadline is at most 12 slots and a pre-position lasts 15. A larger
    # learning rate and more epochs than SB3's defaults: with 3e-4 and 4 epochs the policy barely
    # moved in 150k steps (approx_kl ~ 0), the reward signal of one choice being weak.
    "ppo": {
        "n_steps": 256,
        "batch_size": 256,
        "n_epochs": 10,
        "learning_rate": 1e-3,
        "gamma": 0.95,
        "gae_lambda": 0.9,
        "ent_coef": 0.0,
    },
    "dqn": {
        "learning_rate": 1e-4,
        "buffer_size": 50_000,
        "learning_starts": 1_000,
        "batch_size": 64,
        "gamma": 0.95,
        "train_freq": 4,
        "target_update_interval": 1_000,
        "exploration_fraction": 0.3,
        "exploration_final_eps": 0.05,
    },
}
HYPERPARAMETERS["maskable_ppo"] = HYPERPARAMETERS["ppo"]
#: Training reward shaping (spep_gym.wrappers.PrepositionBonus): reward per pre-positioned pair used.
PREPOSITION_BONUS = 1.0


def algorithm_class(algo: str) -> Any:
    """The stable-baselines3 (or sb3-contrib) class of ``algo``."""
    if algo == "ppo":
        from stable_baselines3 import PPO

        return PPO
    if algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    if algo == "dqn":
        from stable_baselines3 import DQN

        return DQN
    raise ValueError(f"algo={algo!r} is invalid: allowed one of {ALGOS}")


def policy_class(algo: str, policy: str) -> Any:
    """The SB3 policy of ``algo`` for ``policy`` ("pair" or "mlp")."""
    if policy == "pair":
        from agents.rl.policies import POLICIES as PAIR

        return PAIR[algo]
    if policy != "mlp":
        raise ValueError(f"policy={policy!r} is invalid: allowed one of {POLICIES}")
    if algo == "maskable_ppo":
        from sb3_contrib.common.maskable.policies import MaskableMultiInputActorCriticPolicy

        return MaskableMultiInputActorCriticPolicy
    if algo == "ppo":
        from stable_baselines3.common.policies import MultiInputActorCriticPolicy

        return MultiInputActorCriticPolicy
    from stable_baselines3.dqn.policies import MultiInputPolicy

    return MultiInputPolicy


def config_to_json(cfg: SpepConfig) -> dict[str, Any]:
    """The config's fields as JSON values (a named topology only: a graph object has no JSON form)."""
    if not isinstance(cfg.topology, str):
        raise ValueError("topology: training takes a topology name, not a networkx graph")
    out = {name: getattr(cfg, name) for name in SpepConfig.field_names()}
    return json.loads(json.dumps(out))


def config_from_json(values: Mapping[str, Any]) -> SpepConfig:
    """The config of :func:`config_to_json`'s values."""
    return SpepConfig.from_dict(dict(values))


def gamma(algo: str) -> float:
    """The discount factor of ``algo``'s default hyperparameters."""
    return float(HYPERPARAMETERS[algo]["gamma"])
