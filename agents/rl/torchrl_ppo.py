"""``spep train --engine torchrl``: MaskablePPO with the env and the policy on one device, in TorchRL.

Why: ``--engine batched`` hands every step to SB3 as numpy arrays and updates in SB3's loop. Here the
batched core is a TorchRL ``EnvBase`` (:class:`SpepTorchEnv`) whose tensors stay on the device (CPU
or CUDA); TorchRL's ``Collector`` steps it with the policy on that device, and ``GAE``,
``ClipPPOLoss`` and a ``ReplayBuffer`` (sampling without replacement) make PPO's update, as in
TorchRL's PPO tutorial. Imports torch, TorchRL and stable-baselines3: load it lazily.

The networks are the modules of the SB3 pair policy (:class:`agents.rl.policies.MaskablePairPolicy`)
of a ``MaskablePPO`` built for the run, and its Adam optimizer is theirs, so checkpoints and the
final model are SB3 zips: ``--resume``, the ``sb3`` agent and evaluation on ``SpepEnv`` work as for
the other engines. What differs from SB3's MaskablePPO (documented in ``docs/training.md``):

* rewards are scaled as VecNormalize scales them (by the running standard deviation of the
  discounted return, clipped at 10), but with the statistics updated once per rollout, from all of
  its steps, rather than at every step;
* the action is sampled on the device from TorchRL's ``MaskedCategorical`` per entry.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.monitor import ResultsWriter
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule
from torch import Tensor, nn
from torch.distributions import Independent
from torchrl.collectors import Collector
from torchrl.data import (
    Binary,
    Categorical,
    Composite,
    LazyTensorStorage,
    MultiCategorical,
    ReplayBuffer,
    Unbounded,
)
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.envs import EnvBase
from torchrl.modules import ActorValueOperator, MaskedCategorical, ProbabilisticActor, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from agents.rl.checkpoints import advance, restore_obs_stats
from spep_gym.batched.simulator import BatchedSimulator
from spep_gym.config import SpepConfig

logging.getLogger("torchrl").setLevel(logging.WARNING)  # its INFO lines (storage sizes): noise here

#: The algorithms the TorchRL engine trains.
TORCHRL_ALGOS = ("maskable_ppo",)
#: The policies it trains (the mlp policy needs VecNormalize's observation statistics).
TORCHRL_POLICIES = ("pair",)
#: The hyperparameters it takes (MaskablePPO's names and meanings); any other is refused.
TORCHRL_HYPERPARAMETERS = (
    "n_steps", "batch_size", "n_epochs", "learning_rate", "gamma", "gae_lambda", "ent_coef",
    "vf_coef", "max_grad_norm", "clip_range", "normalize_advantage",
)  # fmt: skip
#: VecNormalize's reward clipping and epsilon (SB3's defaults), kept by the reward scaling here.
CLIP_REWARD = 10.0
EPSILON = 1e-8


def check_torchrl(algo: str, policy: str, hyperparameters: Mapping[str, Any]) -> None:
    """Refuse what the TorchRL engine does not train, in one line naming it.

    Raises:
        ValueError: an algorithm, policy or hyperparameter the engine does not take.
    """
    if algo not in TORCHRL_ALGOS:
        raise ValueError(
            f"--algo {algo} is invalid with --engine torchrl: allowed {', '.join(TORCHRL_ALGOS)} "
            "(ppo and dqn train with --engine scalar or batched)"
        )
    if policy not in TORCHRL_POLICIES:
        raise ValueError(
            f"--policy {policy} is invalid with --engine torchrl: allowed "
            f"{', '.join(TORCHRL_POLICIES)} (the mlp policy trains with --engine scalar or batched)"
        )
    for name in hyperparameters:
        if name not in TORCHRL_HYPERPARAMETERS:
            raise ValueError(
                f"--hyper {name}=...: not taken by --engine torchrl: allowed "
                f"{', '.join(TORCHRL_HYPERPARAMETERS)}"
            )


# ---------------------------------------------------------------------- the environment
class SpepTorchEnv(EnvBase):
    """B networks of one config as a TorchRL ``EnvBase`` over :class:`BatchedSimulator`.

    The observation is ``SpepEnv``'s (float32, one row per network) plus ``action_mask``
    ``(B, action_len, P + 1)``; the action is ``(B, action_len)`` pair indices (``P``: none); the
    reward is ``SpepEnv``'s plus ``preposition_bonus`` per pre-positioned pair used (the
    ``PrepositionBonus`` wrapper's shaping). An episode ends truncated after ``episode_slots``
    steps; TorchRL's ``_reset`` mask starts new episodes in the networks that ended, each from an
    episode seed drawn from the env's generator (:meth:`set_seed`). ``draws`` are the batched
    core's: ``"counter"`` (its own streams, what training uses) or ``"scalar"`` (``SpepEnv``'s, so
    that a network equals ``SpepEnv`` reset with its episode seed, step for step: the tests).

    ``finished`` collects ``(return, length, success_rate)`` of every episode that ends (the
    trainer writes them to the Monitor CSV).
    """

    def __init__(
        self,
        cfg: SpepConfig,
        num_envs: int,
        device: str | torch.device = "cpu",
        preposition_bonus: float = 0.0,
        draws: str = "counter",
    ) -> None:
        from spep_gym.batched.simulator import check_supported
        from spep_gym.env import SpepEnv

        check_supported(cfg)
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.config = cfg
        self.sim = BatchedSimulator(cfg, num_envs, device=self.device, draws=draws)
        self.num_pairs = P = self.sim.num_pairs
        self.preposition_bonus = float(preposition_bonus)
        B, k, dev = num_envs, cfg.action_len, self.device
        single = SpepEnv(cfg).observation_space
        self.obs_keys = tuple(single.spaces)
        self.observation_spec = Composite(
            {
                **{
                    key: Unbounded(shape=(B, *(space.shape or ())), dtype=torch.float32, device=dev)
                    for key, space in single.spaces.items()
                },
                "action_mask": Binary(shape=(B, k, P + 1), dtype=torch.bool, device=dev),
            },
            shape=(B,),
        )
        self.action_spec = MultiCategorical(
            nvec=torch.full((k,), P + 1, device=dev), shape=(B, k), dtype=torch.int64, device=dev
        )
        self.reward_spec = Unbounded(shape=(B, 1), dtype=torch.float32, device=dev)
        flag = Categorical(2, shape=(B, 1), dtype=torch.bool, device=dev)
        self.done_spec = Composite(
            done=flag.clone(), terminated=flag.clone(), truncated=flag.clone(), shape=(B,)
        )
        self._rng = np.random.default_rng()
        self._returns = torch.zeros(B, dtype=torch.float64, device=dev)
        #: Each network's episode seed (``SpepEnv.reset(seed=...)`` gives its graph and workload).
        self.episode_seeds = np.zeros(B, dtype=np.int64)
        self.finished: list[tuple[float, int, float]] = []

    def _set_seed(self, seed: int | None) -> None:
        self._rng = np.random.default_rng(seed)

    def _observe(self) -> TensorDict:
        obs: dict[str, Tensor] = dict(self.sim.observation())
        obs["action_mask"] = self.sim.action_masks().view(*self.batch_size, -1, self.num_pairs + 1)
        return TensorDict(obs, batch_size=self.batch_size, device=self.device)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        B = self.batch_size[0]
        rows = None
        if tensordict is not None and "_reset" in tensordict.keys():  # noqa: SIM118 (a TensorDict has no `in`)
            rows = tensordict["_reset"].reshape(B).nonzero().flatten().cpu()
        count = B if rows is None else int(rows.numel())
        seeds = self._rng.integers(2**63 - 1, size=count)
        self.episode_seeds[slice(None) if rows is None else rows.numpy()] = seeds
        self.sim.reset(seeds.tolist(), rows=None if rows is None or count == B else rows)
        if rows is None:
            self._returns.zero_()
        else:
            self._returns[rows.to(self.device)] = 0.0
        out = self._observe()
        zeros = torch.zeros(B, 1, dtype=torch.bool, device=self.device)
        out.update({"done": zeros, "terminated": zeros.clone(), "truncated": zeros.clone()})
        return out

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        cfg = self.config
        events = self.sim.step(tensordict["action"], strict=False)
        reward = cfg.reward_served * events.served_weight - cfg.reward_failed * events.failed_weight
        if self.preposition_bonus:
            reward = reward + self.preposition_bonus * events.served_prepositioned
        if cfg.reward_predictive_hit:
            reward = reward + cfg.reward_predictive_hit * events.predictive_hits
        self._returns += reward
        done = self.sim.done
        if bool(done.any()):
            rows = done.nonzero().flatten()
            rate = self.sim.summary()["success_rate"][rows].tolist()
            returns = self._returns[rows].tolist()
            for r, s in zip(returns, rate, strict=True):
                self.finished.append((r, cfg.episode_slots, s))
        out = self._observe()
        out["reward"] = reward.to(torch.float32).unsqueeze(-1)
        out["done"] = done.unsqueeze(-1)
        out["truncated"] = done.unsqueeze(-1).clone()
        out["terminated"] = torch.zeros_like(out["done"])
        return out


# ---------------------------------------------------------------------- the networks
class MaskedMultiCategorical(Independent):
    """One masked categorical per action entry; log-probabilities and entropies summed over them."""

    def __init__(self, logits: Tensor, mask: Tensor) -> None:
        super().__init__(MaskedCategorical(logits=logits, mask=mask), 1)

    @property
    def deterministic_sample(self) -> Tensor:
        """The most likely pair of each entry (TorchRL's deterministic action)."""
        return self.base_dist.logits.argmax(-1)


class _Features(nn.Module):
    """The SB3 policy's extractor over the observation keys given one by one (TensorDict's way)."""

    def __init__(self, extractor: nn.Module, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.extractor, self.keys = extractor, keys

    def forward(self, *obs: Tensor) -> Tensor:
        lead = obs[0].shape[:-1]  # (B,) when stepping, (B, T) over a rollout: flattened for SB3
        n = len(lead)  # a key's own shape follows (demand_ema and demand_by_hour have two axes)
        flat = {k: o.reshape(-1, *o.shape[n:]) for k, o in zip(self.keys, obs, strict=True)}
        features = self.extractor(flat)
        return features.view(*lead, features.shape[-1])


class _Logits(nn.Module):
    """Features -> ``(..., action_len, P + 1)`` logits through the SB3 policy's actor head."""

    def __init__(self, latent: nn.Module, head: nn.Module, entries: int) -> None:
        super().__init__()
        self.latent, self.head, self.entries = latent, head, entries

    def forward(self, features: Tensor) -> Tensor:
        logits = self.head(self.latent(features))
        return logits.view(*features.shape[:-1], self.entries, -1)


class _Value(nn.Module):
    """Features -> state value through the SB3 policy's value head."""

    def __init__(self, latent: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.latent, self.head = latent, head

    def forward(self, features: Tensor) -> Tensor:
        return self.head(self.latent(features)).view(*features.shape[:-1], 1)


def actor_critic(policy: Any, env: SpepTorchEnv) -> ActorValueOperator:
    """TorchRL's actor and critic over the modules of an SB3 pair policy (weights shared)."""
    keys = env.obs_keys
    common = TensorDictModule(
        _Features(policy.features_extractor, keys), in_keys=list(keys), out_keys=["features"]
    )
    mlp = policy.mlp_extractor
    head = TensorDictModule(
        _Logits(mlp.policy_net, policy.action_net, env.config.action_len),
        in_keys=["features"],
        out_keys=["logits"],
    )
    actor = ProbabilisticActor(
        head,
        in_keys={"logits": "logits", "mask": "action_mask"},
        distribution_class=MaskedMultiCategorical,
        spec=env.action_spec,
        return_log_prob=True,
    )
    value = ValueOperator(_Value(mlp.value_net, policy.value_net), in_keys=["features"])
    return ActorValueOperator(common, actor, value)


# ---------------------------------------------------------------------- reward scaling
class ReturnScale:
    """VecNormalize's reward scaling, over whole rollouts: r / sqrt(var(discounted return) + eps).

    Uses stable-baselines3's ``RunningMeanStd`` and has VecNormalize's attributes for it
    (``ret_rms``, ``clip_obs``, ``epsilon``, ``norm_obs`` False), so that
    :func:`agents.rl.checkpoints.save_obs_stats` and ``restore_obs_stats`` save and restore it as
    they do VecNormalize. The discounted return carries over from one rollout to the next and
    restarts where an episode ends.
    """

    norm_obs = False  # observations as they are (the pair policy scales its inputs)
    clip_obs = 10.0  # VecNormalize's default, saved beside the statistics
    epsilon = EPSILON

    def __init__(self, num_envs: int, gamma: float) -> None:
        from stable_baselines3.common.running_mean_std import RunningMeanStd

        self.ret_rms = RunningMeanStd(shape=())
        self.gamma = gamma
        self.returns = np.zeros(num_envs)

    def __call__(self, batch: TensorDictBase) -> None:
        """Scale ``batch["next", "reward"]`` (B, T, 1) in place, after updating the statistics."""
        reward = batch["next", "reward"]
        rewards = reward.squeeze(-1).double().cpu().numpy()
        dones = batch["next", "done"].squeeze(-1).cpu().numpy()
        seen = np.empty_like(rewards)
        for t in range(rewards.shape[1]):
            self.returns = self.returns * self.gamma + rewards[:, t]
            seen[:, t] = self.returns
            self.returns[dones[:, t]] = 0.0
        self.ret_rms.update(seen.reshape(-1))
        scale = math.sqrt(float(self.ret_rms.var) + EPSILON)
        batch["next", "reward"] = (reward / scale).clamp(-CLIP_REWARD, CLIP_REWARD)


# ---------------------------------------------------------------------- the loop
def learn(
    model: Any,
    cfg: SpepConfig,
    n_envs: int,
    env_seed: int,
    timesteps: int,
    done: int,
    device: torch.device,
    preposition_bonus: float,
    save: Callable[[int, ReturnScale], None],
    checkpoint_freq: int,
    monitor_csv: Path,
    stats: Mapping[str, np.ndarray] | None = None,
    bar: Any = None,
    timing: dict[str, float] | None = None,
    after_rollout: Callable[[int], None] | None = None,
) -> ReturnScale:
    """Train ``model``'s policy with TorchRL from ``done`` to ``timesteps`` environment steps.

    The hyperparameters are the SB3 model's own (``n_steps``, ``batch_size``, ``n_epochs``,
    ``gamma``, ``gae_lambda``, ``clip_range``, ``ent_coef``, ``vf_coef``, ``max_grad_norm``,
    ``normalize_advantage``; the learning rate is its optimizer's).

    Every ``checkpoint_freq`` steps (at the end of a rollout) ``save(steps, scale)`` writes a
    checkpoint. Each finished episode is appended to ``monitor_csv`` in SB3's Monitor format.
    ``stats`` are the reward statistics to resume from; ``bar`` (a tqdm bar, or None) moves on by
    each rollout's steps. ``timing["collect_s"]`` and ``timing["update_s"]`` (when given) grow by
    the seconds of each rollout's collection and of its update (reward scaling, advantages and
    PPO's epochs). ``after_rollout(steps)`` runs after each rollout's update (the periodic
    evaluation). Returns the reward scaling (its statistics).
    """
    frames, batch_size = n_envs * model.n_steps, model.batch_size
    policy = model.policy
    policy.to(device)
    env = SpepTorchEnv(cfg, n_envs, device=device, preposition_bonus=preposition_bonus)
    env.set_seed(env_seed)
    torch.manual_seed(env_seed)
    operator = actor_critic(policy, env)
    actor, critic = operator.get_policy_operator(), operator.get_value_operator()
    # The extractor runs once a step while collecting (for the action and the state value, as in
    # SB3's rollouts), once over the rollout's next observations (``critic``), and once a
    # minibatch: GAE takes both values from the batch, and the loss's critic is the value head
    # alone, over the features the actor's pass has just written into the minibatch.
    advantage = GAE(gamma=model.gamma, lmbda=model.gae_lambda, value_network=None)
    value_head = operator.get_value_head()
    ent_coef = float(model.ent_coef)
    loss = ClipPPOLoss(
        actor,
        value_head,
        clip_epsilon=float(model.clip_range(1.0)),  # SB3 keeps it as a (constant) schedule
        entropy_bonus=ent_coef > 0,
        entropy_coeff=ent_coef if ent_coef > 0 else None,
        critic_coeff=float(model.vf_coef),
        loss_critic_type="l2",
        normalize_advantage=bool(model.normalize_advantage),
        functional=False,  # no target networks in PPO: the modules as they are
    )
    optimizer = policy.optimizer  # SB3's Adam (its learning rate) over the same parameters
    scale = ReturnScale(n_envs, model.gamma)
    if stats is not None:
        restore_obs_stats(scale, stats)
    buffer = ReplayBuffer(
        storage=LazyTensorStorage(frames, device=device),
        sampler=SamplerWithoutReplacement(),
        batch_size=batch_size,
    )
    remaining = max(timesteps - done, 0)
    total = math.ceil(remaining / frames) * frames
    collector = Collector(
        env,
        operator,  # actions and state values
        frames_per_batch=frames,
        total_frames=total,
        device=device,
        auto_register_policy_transforms=False,  # the policy is stateless: no InitTracker
    )
    # SB3's Monitor CSV (read by the training curves), rows appended as episodes end
    start = time.time()
    monitor = ResultsWriter(
        str(monitor_csv), header={"t_start": start, "env_id": "SpepTorchEnv"},
        extra_keys=("success_rate",),
    )  # fmt: skip
    steps, next_save = done, (done // checkpoint_freq + 1) * checkpoint_freq
    timing = {} if timing is None else timing
    for key in ("collect_s", "update_s"):
        timing.setdefault(key, 0.0)
    try:
        mark = time.perf_counter()
        for batch in collector:
            collected = time.perf_counter()
            timing["collect_s"] += collected - mark
            scale(batch)
            with torch.no_grad():
                critic(batch["next"])
                advantage(batch)
            buffer.empty()
            buffer.extend(batch.reshape(-1))
            minibatches = math.ceil(frames / batch_size)
            update(loss, buffer, optimizer, model.n_epochs, minibatches, model.max_grad_norm)
            timing["update_s"] += time.perf_counter() - collected
            steps += frames
            model.num_timesteps = steps
            if bar is not None:
                advance(bar, frames)
            t = round(time.time() - start, 6)
            for r, length, rate in env.finished:
                monitor.write_row({"r": round(r, 6), "l": length, "t": t, "success_rate": rate})
            env.finished.clear()
            if steps >= next_save:
                save(steps, scale)
                next_save = (steps // checkpoint_freq + 1) * checkpoint_freq
            if after_rollout is not None:
                after_rollout(steps)
            mark = time.perf_counter()
    finally:
        collector.shutdown()
        monitor.close()
    return scale


def update(
    loss: ClipPPOLoss,
    buffer: ReplayBuffer,
    optimizer: Any,
    n_epochs: int,
    minibatches: int,
    max_grad_norm: float,
) -> None:
    """PPO's update: ``n_epochs`` passes over the rollout in ``buffer``, a gradient step a minibatch.

    Each step clips the gradient norm at ``max_grad_norm``, as SB3 does.
    """
    for _ in range(n_epochs):
        for _ in range(minibatches):
            terms = loss(buffer.sample())
            value = sum(v for k, v in terms.items() if k.startswith("loss_"))
            optimizer.zero_grad()
            value.backward()
            for group in optimizer.param_groups:
                nn.utils.clip_grad_norm_(group["params"], max_grad_norm)
            optimizer.step()
