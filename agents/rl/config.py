"""Training settings: the algorithms and their SB3 classes, default hyperparameters, the run's JSON.

Nothing here imports stable-baselines3 or torch until a class is asked for.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
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
#: Observation keys the pair policy can read as extra per-pair features (its extractor's ``extra``,
#: ``spep train --pair-features``), each as the observation gives it (the pair policy's inputs are
#: not normalised); ``demand_ema`` gives one feature per half-life, ``demand_by_hour`` two: the
#: current hour's and the next's share of the requests so far (log1p of it over a uniform spread,
#: so that it does not grow with the episode's length).
EXTRA_FEATURES = (
    "arrivals", "prepositioned_in_flight", "requests_in_flight", "link_busy", "demand_ema",
    "demand_by_hour",
)  # fmt: skip
#: The observation keys that carry demand (past arrivals, their long-run means, the time of day):
#: ``spep train --demand-blind`` blanks those the observation has, for a demand-blind twin that
#: still sees the queue (requests already waiting) and the links.
DEMAND_INPUTS = ("demand", "arrivals", "time_of_day", "demand_ema", "demand_by_hour")
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
#: The engines ``spep train`` steps: "scalar", a DummyVecEnv (or SubprocVecEnv) of ``SpepEnv``;
#: "batched", :class:`agents.rl.batched_vec.BatchedVecEnv` over the batched core; "torchrl", the
#: batched core and the policy on one device, trained by TorchRL (:mod:`agents.rl.torchrl_ppo`).
ENGINES = ("scalar", "batched", "torchrl")
#: The engines that step the batched core (and take its configs only).
BATCHED_ENGINES = ("batched", "torchrl")
#: ``n_envs`` when none is given: the batched core pays off only with many networks a step.
DEFAULT_N_ENVS = {"scalar": 4, "batched": 64, "torchrl": 64}
#: Environment steps per update of the scalar engine's defaults (PPO: ``n_steps`` 256 x 4 envs;
#: DQN: one gradient step per ``train_freq`` 4 x 4 envs), which the batched engine keeps.
SCALAR_ROLLOUT_STEPS = 1024
SCALAR_STEPS_PER_GRADIENT = 16
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


def config_to_json(cfg: SpepConfig) -> dict[str, Any]:
    """The config's fields as JSON values (a named topology only: a graph object has no JSON form)."""
    if not isinstance(cfg.topology, str):
        raise ValueError("topology: training takes a topology name, not a networkx graph")
    out = {name: getattr(cfg, name) for name in SpepConfig.field_names()}
    return json.loads(json.dumps(out))


def config_from_json(values: Mapping[str, Any]) -> SpepConfig:
    """The config of :func:`config_to_json`'s values."""
    return SpepConfig.from_dict(dict(values))


def default_hyperparameters(algo: str, engine: str, n_envs: int) -> dict[str, Any]:
    """``algo``'s defaults for ``engine`` with ``n_envs`` environments.

    The scalar engine takes :data:`HYPERPARAMETERS` as they are. The batched engines keep their
    updates per environment step at any ``n_envs``: PPO's rollout ``n_steps * n_envs`` stays
    :data:`SCALAR_ROLLOUT_STEPS` (``n_steps = 1024 // n_envs``, at least 1), and DQN, whose
    ``train_freq`` counts vector steps of ``n_envs`` transitions, takes ``gradient_steps`` so that
    one gradient step follows every :data:`SCALAR_STEPS_PER_GRADIENT` transitions.
    """
    hp = dict(HYPERPARAMETERS[algo])
    if engine not in BATCHED_ENGINES:
        return hp
    if algo == "dqn":
        hp["gradient_steps"] = max(hp["train_freq"] * n_envs // SCALAR_STEPS_PER_GRADIENT, 1)
    else:
        hp["n_steps"] = max(SCALAR_ROLLOUT_STEPS // n_envs, 1)
    return hp


def gamma(algo: str) -> float:
    """The discount factor of ``algo``'s default hyperparameters."""
    return float(HYPERPARAMETERS[algo]["gamma"])


#: Bytes a policy parameter may cost in memory: float32 weights, their gradients and Adam's two
#: moments (training), or the weights and the loaded copy of them (an agent), with room to spare.
BYTES_PER_PARAMETER = 16


def policy_parameter_count(
    algo: str,
    policy: str,
    policy_kwargs: Any,
    observation_space: Any,
    action_space: Any,
) -> int:
    """Parameters the policy of ``algo`` will allocate, from its settings alone (nothing is built).

    Counts the pair policy's extractor and heads, with the linear heads SB3 builds (over the
    ``(P + 1) * hidden`` features) before :mod:`agents.rl.policies` swaps them, or the MLP's layers;
    DQN twice (its target network). ``policy_kwargs`` must be a dict of JSON values (a
    ``model.json``'s or ``train.json``'s).

    Raises:
        ValueError: ``policy_kwargs`` is not a dict, or a network size in it is not a positive int.
    """
    if not isinstance(policy_kwargs, Mapping):
        raise ValueError(f"policy_kwargs = {policy_kwargs!r} is invalid: allowed a dict")
    nvec = getattr(action_space, "nvec", None)
    outputs = int(sum(nvec)) if nvec is not None else int(action_space.n)
    entries = len(nvec) if nvec is not None else 1
    nets = 2 if algo == "dqn" else 1  # DQN keeps a target network of the same size
    if policy == "pair":
        extractor = policy_kwargs.get("features_extractor_kwargs", {})
        if not isinstance(extractor, Mapping):
            raise ValueError(
                f"policy_kwargs features_extractor_kwargs = {extractor!r} is invalid: allowed a dict"
            )
        h = _positive_int(
            "policy_kwargs features_extractor_kwargs hidden", extractor.get("hidden", 32)
        )
        pairs = int(observation_space["adjacency"].shape[0])
        own = 3 * h * h + 17 * h + 2 * (h * entries + entries) + 2 * h * h + 2 * h + 1
        sb3_heads = (pairs + 1) * h * (outputs + 1)
        return nets * (own + sb3_heads)
    obs = sum(math.prod(space.shape) for space in observation_space.spaces.values())
    arch = policy_kwargs.get("net_arch", [64, 64])
    if isinstance(arch, Mapping):
        pi = _layers("policy_kwargs net_arch pi", arch.get("pi", []))
        vf = _layers("policy_kwargs net_arch vf", arch.get("vf", []))
    else:
        pi = vf = _layers("policy_kwargs net_arch", arch)
    total = _chain([obs, *pi, outputs])
    if algo != "dqn":
        total += _chain([obs, *vf, 1])
    return nets * total


def check_policy_fits(algo: str, policy: str, policy_kwargs: Any, env: Any, source: str) -> None:
    """Refuse a policy whose parameters cannot fit in memory, before anything is allocated.

    Raises:
        ValueError: naming ``source`` (the file or option the settings come from), the estimate
            and the memory available.
    """
    from spep_gym.resources import GIB, available_memory

    count = policy_parameter_count(
        algo, policy, policy_kwargs, env.observation_space, env.action_space
    )
    need = count * BYTES_PER_PARAMETER
    have = available_memory()
    if need > have:
        raise ValueError(
            f"{source}: policy_kwargs = {dict(policy_kwargs)!r} is invalid: the {policy} policy "
            f"would have {count:,} parameters, about {need / GIB:,.1f} GiB, more than the "
            f"{have / GIB:,.1f} GiB available: allowed a network that fits"
        )


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} = {value!r} is invalid: allowed an integer >= 1")
    return value


def _layers(name: str, value: Any) -> list[int]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError(f"{name} = {value!r} is invalid: allowed a list of integers >= 1")
    return [_positive_int(name, v) for v in value]


def _chain(sizes: Sequence[int]) -> int:
    """Weights and biases of dense layers of ``sizes`` (input first)."""
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


# ---------------------------------------------------------------------- hyperparameters

#: Hyperparameters ``spep train`` sets itself (``--hyper`` may not).
SET_BY_TRAIN = ("policy", "env", "seed", "device", "tensorboard_log", "policy_kwargs", "verbose")
#: Checked hyperparameters: (kind, low, high, low included); others go to SB3 as they are.
HYPER_RANGES: dict[str, tuple[type, float, float, bool]] = {
    "n_steps": (int, 1, math.inf, True),
    "batch_size": (int, 2, math.inf, True),
    "n_epochs": (int, 1, math.inf, True),
    "buffer_size": (int, 1, math.inf, True),
    "learning_starts": (int, 0, math.inf, True),
    "train_freq": (int, 1, math.inf, True),
    "target_update_interval": (int, 1, math.inf, True),
    "learning_rate": (float, 0.0, math.inf, False),
    "gamma": (float, 0.0, 1.0, False),
    "gae_lambda": (float, 0.0, 1.0, True),
    "ent_coef": (float, 0.0, math.inf, True),
    "vf_coef": (float, 0.0, math.inf, True),
    "max_grad_norm": (float, 0.0, math.inf, False),
    "clip_range": (float, 0.0, math.inf, False),
    "tau": (float, 0.0, 1.0, False),
    "exploration_fraction": (float, 0.0, 1.0, True),
    "exploration_initial_eps": (float, 0.0, 1.0, True),
    "exploration_final_eps": (float, 0.0, 1.0, True),
}


def hyperparameter_names(algo: str) -> tuple[str, ...]:
    """The hyperparameters ``--hyper`` may set: ``algo``'s public constructor arguments.

    Left out: those ``spep train`` sets itself (:data:`SET_BY_TRAIN`), private ones
    (``_init_setup_model``) and the class-valued ones (``rollout_buffer_class``), which no
    command-line value can give.
    """
    import inspect

    params = inspect.signature(algorithm_class(algo).__init__).parameters
    return tuple(
        sorted(
            k
            for k in params
            if k not in ("self", *SET_BY_TRAIN)
            and not k.startswith("_")
            and not k.endswith("_class")
        )
    )


def check_hyperparameters(algo: str, hyperparameters: Mapping[str, Any]) -> None:
    """Refuse a hyperparameter ``algo``'s class does not take, or a value out of its range.

    Names are checked against :func:`hyperparameter_names`; the values of :data:`HYPER_RANGES`
    against their ranges (a number given as a string, ``nan`` or ``inf`` where a finite number
    belongs are refused too).

    Raises:
        ValueError: ``--hyper NAME=VALUE is invalid: allowed ...``.
    """
    import difflib

    known = hyperparameter_names(algo)
    for name, value in hyperparameters.items():
        if name in SET_BY_TRAIN:
            raise ValueError(f"--hyper {name}=...: set by spep train itself (use its own options)")
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"--hyper {name}={value!r}: {algo} has no hyperparameter {name!r}{hint}; "
                f"allowed: {', '.join(known)}"
            )
        if name not in HYPER_RANGES:
            continue
        kind, low, high, low_in = HYPER_RANGES[name]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if kind is int:
            number = number and isinstance(value, int)
        ok = number and math.isfinite(value) and (value >= low if low_in else value > low)
        ok = ok and value <= high
        if not ok:
            what = "an integer" if kind is int else "a finite number"
            bound = f">= {low}" if low_in else f"> {low}"
            if high != math.inf:
                bound = f"in {'[' if low_in else '('}{low}, {high}]"
            raise ValueError(f"--hyper {name}={value!r} is invalid: allowed {what} {bound}")


# ---------------------------------------------------------------------- run settings' ranges

#: The seeds SB3 takes (``set_random_seed`` seeds numpy's legacy generator: 32 bits).
SEED_MAX = 2**32 - 1


def preposition_bonus_bound(cfg: SpepConfig) -> float:
    """The largest ``|preposition_bonus|`` whose sum over an episode is finite in float32.

    At most ``max_prepositioned`` pre-positioned pairs are held, so at most that many are used in
    a slot; an episode's bonus is at most ``bonus x max_prepositioned x episode_slots``.
    """
    import numpy as np

    return float(np.finfo(np.float32).max) / (max(cfg.max_prepositioned, 1) * cfg.episode_slots)


def check_preposition_bonus(value: Any, cfg: SpepConfig, what: str | None = None) -> None:
    """Refuse a bonus that is not a finite number within :func:`preposition_bonus_bound`.

    Raises:
        ValueError: ``what`` (default ``--preposition-bonus VALUE``) is invalid: allowed ...
    """
    bound = preposition_bonus_bound(cfg)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and abs(value) <= bound):
        raise ValueError(
            f"{what or f'--preposition-bonus {value!r}'} is invalid: allowed a finite number with "
            f"|bonus| <= {bound:.3g} (its sum over an episode, at most max_prepositioned "
            f"{cfg.max_prepositioned} pairs a slot x episode_slots {cfg.episode_slots}, must stay "
            "finite in float32)"
        )


def check_seed(value: Any, what: str = "seed") -> None:
    """Refuse a seed that is not an integer in ``[0, SEED_MAX]``.

    Raises:
        ValueError: ``what = VALUE is invalid: allowed ...``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
        raise ValueError(f"{what} = {value!r} is invalid: allowed an integer in [0, {SEED_MAX}]")


def check_n_envs(value: Any, cfg: SpepConfig, what: str = "n_envs") -> None:
    """Refuse an ``n_envs`` that is not an integer >= 1 or whose environments cannot fit in memory.

    Each environment holds at least what :func:`spep_gym.resources.memory_estimate` counts for
    one network of ``cfg``.

    Raises:
        ValueError: ``what = VALUE is invalid: allowed an integer in [1, N]`` with the memory.
    """
    from spep_gym.resources import GIB, available_memory, memory_estimate

    have = available_memory()
    most = max(int(have // sum(memory_estimate(cfg).values())), 1)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise ValueError(
            f"{what} = {value!r} is invalid: allowed an integer in [1, {most}] ({most:,} "
            f"environments of this config fit in the {have / GIB:,.1f} GiB available)"
        )


# ---------------------------------------------------------------------- a run's settings

#: The settings of a run that a checkpoint must share to be resumed (train.json's).
RUN_IDENTITY = (
    "algo", "config", "policy", "policy_kwargs", "preposition_bonus", "hyperparameters", "engine",
)  # fmt: skip


def run_identity(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`RUN_IDENTITY` part of a ``train.json`` (as JSON values)."""
    out: dict[str, Any] = json.loads(json.dumps({k: meta.get(k) for k in RUN_IDENTITY}))
    return out


def differences(have: Any, want: Any, where: str = "") -> list[str]:
    """``"name: A here, B there"`` for every leaf where two JSON values differ (dicts recursed)."""
    if isinstance(have, Mapping) and isinstance(want, Mapping):
        out: list[str] = []
        for key in sorted(set(have) | set(want)):
            out += differences(have.get(key), want.get(key), f"{where}.{key}" if where else key)
        return out
    if json.dumps(have, sort_keys=True) == json.dumps(want, sort_keys=True):
        return []
    return [f"{where or 'value'}: {have!r} vs {want!r}"]


def read_meta(path: Any) -> dict[str, Any]:
    """A run's ``model.json`` / ``train.json``, checked: JSON, a known ``algo`` and ``policy``.

    Raises:
        ValueError: naming the file, the bad value and what is allowed.
    """
    from pathlib import Path

    path = Path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise ValueError(f"{path}: allowed a JSON object with 'algo' and 'config' (spep train's)")
    if meta.get("algo") not in ALGOS:
        raise ValueError(f"{path}: algo = {meta.get('algo')!r} is invalid: allowed one of {ALGOS}")
    if meta.get("policy", "mlp") not in POLICIES:
        raise ValueError(
            f"{path}: policy = {meta.get('policy')!r} is invalid: allowed one of {POLICIES}"
        )
    return meta
