"""A trained stable-baselines3 model as an :class:`~agents.base.Agent` (registered as ``"sb3"``).

``agents.make("sb3", path="runs/ppo")`` (the run folder of ``spep train``, its ``model.zip`` or a
checkpoint) reads ``model.json`` (or ``train.json``) for the algorithm and config, builds the policy
network fresh, and loads only its weights (``torch.load(weights_only=True)`` via stable-baselines3's
``load_from_zip_file`` with ``load_data=False``): no pickled object in the zip is ever unpickled.

The agent is defined with the fields of its training config that define its observation and its
training env (:data:`MODEL_FIELDS`, its ``env_config``): every run of it applies them, and a field
given another value is refused, naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agents.base import Agent, agent_config, register
from agents.rl.checkpoints import (
    checkpoint_meta_path,
    load_obs_stats,
    load_weights,
    normalize_obs,
    obs_stats_path,
)
from agents.rl.config import (
    check_policy_fits,
    config_from_json,
    differences,
    read_meta,
    run_identity,
)
from agents.rl.envs import make_env
from spep_gym.config import PHYSICAL, SpepConfig
from spep_gym.env import SpepEnv
from spep_gym.topology import num_pairs

#: Fields that define a model's observation: its shape (num_nodes, queue_obs_size), the window
#: of its demand counts and its long-run demand keys.
OBSERVATION_FIELDS = (
    "num_nodes", "queue_obs_size", "demand_obs_slots", "demand_ema_half_lives", "demand_hour_obs",
)  # fmt: skip
#: Fields that define the physics of a model's training env: those the presets set
#: (``--set preset=physical``).
PHYSICS_FIELDS = tuple(PHYSICAL)
#: The agent's ``env_config``: these fields of its training config.
MODEL_FIELDS = OBSERVATION_FIELDS + PHYSICS_FIELDS


def locate(path: str | Path) -> tuple[Path, Path, Path | None]:
    """``(metadata json, model zip, observation statistics or None)`` of a run folder or a zip.

    ``path`` is a ``spep train`` folder, its ``model.zip``, or one of its checkpoints
    (``DIR/checkpoints/rl_model_<N>_steps.zip``, whose settings are in ``DIR/train.json``).
    """
    p = Path(path)
    if p.suffix != ".zip":
        p = p / "model.zip"
    for folder in (p.parent, p.parent.parent):
        meta = folder / ("model.json" if p.parent == folder else "train.json")
        if p.is_file() and meta.is_file():
            stats = folder / "obs_stats.npz" if p.name == "model.zip" else obs_stats_path(p)
            return meta, p, stats if stats.is_file() else None
    raise ValueError(
        f"path={str(path)!r} is invalid: allowed a `spep train` run folder, its model.zip or one "
        "of its checkpoints (a zip with model.json beside it or train.json one folder up)"
    )


class SB3Agent(Agent):
    """Acts with a policy trained by ``spep train`` (PPO, MaskablePPO or DQN).

    Observations are normalised with the run's saved VecNormalize statistics. The model's preference
    list (``action_len`` entries when trained) is padded with "none" (or cut) to the environment's
    ``action_len``; MaskablePPO gets the environment's action mask.

    Args:
        path: a ``spep train`` run folder, its ``model.zip`` or a checkpoint zip.
        deterministic: take the most likely action (True) or sample one from the policy.
        label: the agent's name in result rows.
        device: torch device of the policy.
        seed: generator of sampled actions (reset(seed) reseeds it per episode).
        num_nodes: run on networks of this many nodes instead of the training one's (the pair
            policy only: its weights are shared by every node pair, so they apply to any size;
            a transfer test, ``--param num_nodes=32``).
    """

    def __init__(
        self,
        path: str | Path,
        deterministic: bool = True,
        label: str = "sb3",
        device: str = "cpu",
        seed: int | None = None,
        num_nodes: int | None = None,
    ) -> None:
        super().__init__()
        meta_path, zip_path, stats = locate(path)
        self.meta = read_meta(meta_path)
        if meta_path.name == "train.json":  # a checkpoint: its own settings must be the run's
            check_checkpoint(zip_path, self.meta)
        self.algo = self.meta["algo"]
        self.name = label
        self.deterministic = deterministic
        try:
            self.train_config = config_from_json(self.meta["config"])
        except ValueError as err:
            raise ValueError(f"{meta_path}: config: {err}") from None
        if num_nodes is not None and num_nodes != self.train_config.n:
            if self.meta.get("policy", "mlp") != "pair":
                raise ValueError(
                    f"num_nodes={num_nodes!r} is invalid for {meta_path.parent} (policy "
                    f"{self.meta.get('policy', 'mlp')!r}, trained on {self.train_config.n} "
                    "nodes): allowed for the pair policy only"
                )
            self.train_config = self.train_config.replace(num_nodes=num_nodes)
        self.env_config = {k: getattr(self.train_config, k) for k in MODEL_FIELDS}
        self.obs_stats = load_obs_stats(stats) if stats is not None else None
        self.policy = _load_policy(self.algo, zip_path, self.train_config, self.meta, device)
        self.num_pairs = num_pairs(self.train_config.n)
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None, env: Any = None) -> None:
        """Start an episode; a seed reseeds sampling, and an env of another size is an error."""
        super().reset(seed, env)
        if seed is not None:
            self.rng = np.random.default_rng([seed, 0x5B3])

    def require_env(self) -> None:
        """Nothing: :meth:`act` checks the observation's shapes (all it shows of the settings)."""

    def make_env(self, config: Any = None, **fields: Any) -> Any:
        """The environment of the model's training config (``fields`` over it), handed over."""
        if isinstance(config, SpepConfig):
            cfg = agent_config(self, fields, base=config)
        else:
            cfg = agent_config(self, {**dict(config or {}), **fields}, base=self.train_config)
        env = SpepEnv(cfg)
        self.reset(env=env)
        return env

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """The policy's preference list, padded with "none" (or cut) to the env's ``action_len``.

        Raises:
            ValueError: the observation is of another network size than the model's.
        """
        pairs = len(observation["adjacency"])
        queue = len(observation["queue_mask"])
        if (pairs, queue) != (self.num_pairs, self.train_config.queue_obs_size):
            raise ValueError(
                f"agent {self.name!r} was trained on {self.num_pairs} node pairs "
                f"(num_nodes={self.train_config.n}) and queue_obs_size="
                f"{self.train_config.queue_obs_size}; the observation has {pairs} node pairs and "
                f"{queue} queue rows"
            )
        obs = dict(observation)
        if self.obs_stats is not None:
            obs = normalize_obs(obs, self.obs_stats)
        P = self.num_pairs
        if self.algo == "maskable_ppo":
            mask = info.get("action_mask")
            if mask is None:
                mask = self._mask_from_observation(observation)
            k = len(self.policy.action_space.nvec)
            mask = np.asarray(mask, dtype=bool)[: P + 1]
            raw = self._predict(obs, action_masks=np.tile(mask, k))
        else:
            raw = self._predict(obs)
        choices = np.asarray(raw, dtype=np.int64).reshape(-1)
        action_len = self.env.config.action_len if self.env is not None else len(choices)
        action = self.none_action(P, action_len)
        k = min(action_len, len(choices))
        action[:k] = choices[:k]
        return action

    def _predict(self, obs: dict[str, np.ndarray], **kwargs: Any) -> np.ndarray:
        """The policy's action; a sampled one draws from this agent's own generator."""
        if self.deterministic:
            return self.policy.predict(obs, deterministic=True, **kwargs)[0]
        import torch

        with torch.random.fork_rng(devices=[]):  # SB3 samples from torch's global generator
            torch.manual_seed(int(self.rng.integers(2**63 - 1)))
            return self.policy.predict(obs, deterministic=False, **kwargs)[0]

    def _mask_from_observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """``SpepEnv.action_masks()``'s first entry, rebuilt from the observation alone."""
        cfg = self.env.config if self.env is not None else self.train_config
        one = np.ones(self.num_pairs + 1, dtype=bool)
        # pre-positions in flight (signalling latency) count toward K, as in SpepEnv.action_masks
        held = float(np.sum(observation["prepositioned"]))
        held += float(np.sum(observation.get("prepositioned_in_flight", 0.0)))
        full = held >= cfg.max_prepositioned
        one[:-1] = (
            False if full or cfg.max_new_prepositions == 0 else observation["path_fidelity"] > 0
        )
        return one


def check_checkpoint(checkpoint: Path, meta: dict[str, Any]) -> None:
    """Refuse a checkpoint whose settings (saved beside it) are not those of ``meta`` (train.json).

    Raises:
        ValueError: naming the checkpoint and each setting that differs, or the missing file.
    """
    side = checkpoint_meta_path(checkpoint)
    if not side.is_file():
        raise ValueError(
            f"{checkpoint}: no {side.name} beside it, so its algorithm and config cannot be "
            "checked: allowed a checkpoint written by spep train"
        )
    diff = differences(run_identity(read_meta(side)), run_identity(meta))
    if diff:
        raise ValueError(
            f"{checkpoint} was saved by another run than {checkpoint.parent.parent / 'train.json'} "
            f"describes (checkpoint vs run): {'; '.join(diff)}"
        )


def _load_policy(algo: str, zip_path: Path, cfg: Any, meta: dict[str, Any], device: str) -> Any:
    """The policy network of ``algo``, built from the training env's spaces, with the saved weights.

    Raises:
        ValueError: a policy too large for memory (checked before it is built), a zip without
            ``policy.pth`` or one that is not a zip, weights of other shapes than the policy's.
    """
    import zipfile

    env = make_env(cfg, algo)
    policy_name = meta.get("policy", "mlp")
    kwargs = meta.get("policy_kwargs", {})
    check_policy_fits(algo, policy_name, kwargs, env, f"{zip_path.parent}")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"{zip_path}: not a stable-baselines3 zip ({err})") from None
    if "policy.pth" not in names:
        raise ValueError(
            f"{zip_path}: no policy.pth in the zip (it holds {', '.join(names) or 'nothing'}): "
            "allowed a model saved by spep train (stable-baselines3's save)"
        )
    from agents.rl.policies import policy_class

    cls = policy_class(algo, policy_name)
    policy = cls(
        observation_space=env.observation_space,
        action_space=env.action_space,
        lr_schedule=lambda _: 0.0,
        **kwargs,
    )
    params = load_weights(zip_path, device)
    try:
        policy.load_state_dict(params["policy"])
    except RuntimeError as err:  # torch: missing keys or shapes that differ
        first = str(err).split("\n\t")[1:2] or [str(err)]
        raise ValueError(
            f"{zip_path}: the saved weights do not fit the policy that {zip_path.parent} "
            f"describes ({first[0].strip()}): allowed the model.json (or train.json) saved with it"
        ) from None
    policy.set_training_mode(False)
    return policy.to(device)


register("sb3", SB3Agent)
