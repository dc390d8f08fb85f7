"""Pair-equivariant stable-baselines3 policies for ``Spep-v0`` (imports torch: load lazily).

Every node pair is scored by the same small network from its own features (link state, the
fidelity a pre-position would get, pre-positioned pairs held, recent demand, queued requests) and a
summary of all pairs, so the policy has a few thousand weights whatever the network size, learns
"which pair is worth pre-positioning" once for all pairs, and applies to any graph of the same node
count. The extractor's ``blank`` argument names observation keys it zeroes before reading
anything (a twin that differs from another policy only in what it sees: ``spep train --blank``).
Its ``extra`` argument (``policy_kwargs={"features_extractor_kwargs": {"extra": [...]}}``) adds
per-pair features of :data:`agents.rl.config.EXTRA_FEATURES` (the arrivals, the in-flight
counts, ``link_busy``, the long-run demand keys); the default adds none, so a saved model of the
default policy loads and acts as before. ``PairPolicy`` (PPO), ``MaskablePairPolicy`` (MaskablePPO) and ``PairDQNPolicy`` (DQN) share
:class:`PairExtractor` and :class:`PairHead`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableMultiInputActorCriticPolicy
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.dqn.policies import MultiInputPolicy as DQNMultiInputPolicy
from torch import nn

from agents.rl.config import EXTRA_FEATURES
from agents.rl.config import POLICIES as POLICY_NAMES
from spep_gym.topology import num_nodes, pair_index_matrix

#: Features per node pair (see :meth:`PairExtractor.forward`).
PAIR_FEATURES = 10


def extra_width(observation_space: spaces.Dict, extra: Sequence[str]) -> int:
    """Columns the ``extra`` features add per node pair.

    Raises:
        ValueError: a name that is not in :data:`EXTRA_FEATURES`, repeated, or not in the
            observation (``demand_ema`` and ``demand_by_hour`` are there only when the config asks).
    """
    if isinstance(extra, str) or len(set(extra)) != len(extra):
        raise ValueError(
            f"extra = {extra!r} is invalid: allowed a list of distinct names of {EXTRA_FEATURES}"
        )
    width = 0
    for name in extra:
        if name not in EXTRA_FEATURES:
            raise ValueError(f"extra feature {name!r} is invalid: allowed one of {EXTRA_FEATURES}")
        if name not in observation_space.spaces:
            raise ValueError(
                f"extra feature {name!r} is not in the observation: set the config field that "
                "adds it (demand_ema_half_lives for demand_ema, demand_hour_obs for demand_by_hour)"
            )
        shape = observation_space[name].shape
        assert shape is not None
        width += {"demand_ema": shape[0], "demand_by_hour": 2}.get(name, 1)
    return width


def check_blank(observation_space: spaces.Dict, blank: Sequence[str]) -> None:
    """Refuse a ``blank`` list that is not distinct keys of the observation.

    Raises:
        ValueError: naming the key and the observation's keys.
    """
    keys = sorted(observation_space.spaces)
    if isinstance(blank, str) or len(set(blank)) != len(blank):
        raise ValueError(f"blank = {blank!r} is invalid: allowed a list of distinct keys of {keys}")
    for name in blank:
        if name not in observation_space.spaces:
            raise ValueError(
                f"blank key {name!r} is invalid: allowed observation keys ({', '.join(keys)})"
            )


class PairExtractor(BaseFeaturesExtractor):
    """Observation -> ``(P + 1) * hidden`` features: an embedding per node pair, then a global one."""

    def __init__(
        self,
        observation_space: spaces.Dict,
        hidden: int = 32,
        extra: Sequence[str] = (),
        blank: Sequence[str] = (),
    ) -> None:
        width = extra_width(observation_space, extra)
        check_blank(observation_space, blank)
        P = int(observation_space["adjacency"].shape[0])  # type: ignore[index]
        super().__init__(observation_space, features_dim=(P + 1) * hidden)
        self.num_nodes = n = num_nodes(P)
        self.num_pairs, self.hidden = P, hidden
        self.queue_len = int(observation_space["queue_mask"].shape[0])  # type: ignore[index]
        age: Any = observation_space["link_age"]
        self.age_scale = float(max(age.high.max(), 1.0))
        index = pair_index_matrix(n)
        index[index < 0] = (
            P  # source == destination: only in padding queue rows; column P drops them
        )
        self.pair_index: torch.Tensor
        self.register_buffer("pair_index", torch.as_tensor(index), persistent=False)
        self.extra, self.blank = tuple(extra), tuple(blank)
        self.encode = nn.Sequential(nn.Linear(PAIR_FEATURES + width, hidden), nn.ReLU())
        self.mix = nn.Sequential(nn.Linear(2 * hidden + 2, hidden), nn.ReLU())
        self.summary = nn.Sequential(nn.Linear(hidden + 2, hidden), nn.ReLU())

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``PAIR_FEATURES`` per pair -> embeddings mixed with their mean, then a global one."""
        if self.blank:
            obs = {k: torch.zeros_like(v) if k in self.blank else v for k, v in obs.items()}
        B, P = obs["adjacency"].shape
        n = self.num_nodes
        queue = obs["queue"].view(B, self.queue_len, 6)
        mask = obs["queue_mask"]
        s = queue[..., 0].round().long().clamp(0, n - 1)
        d = queue[..., 1].round().long().clamp(0, n - 1)
        pid = torch.where(mask > 0, self.pair_index[s, d], P)
        zeros = torch.zeros(B, P + 1, device=mask.device)
        queued = zeros.scatter_add(1, pid, mask)[:, :P]
        weight = zeros.scatter_add(1, pid, mask * queue[..., 5])[:, :P]
        columns = [
            obs["adjacency"],
            obs["link_pairs"],
            obs["link_fidelity"],
            obs["link_age"] / self.age_scale,
            obs["path_fidelity"],
            obs["prepositioned"],
            obs["prepositioned_fidelity"],
            torch.log1p(obs["demand"]),
            torch.log1p(queued),
            torch.log1p(weight),
        ]
        for name in self.extra:
            value = obs[name]
            if name == "demand_ema":
                columns.extend(value.unbind(1))
            elif name == "demand_by_hour":
                # the current hour's and the next's share of every request so far, relative to a
                # uniform spread over pairs and hours: it does not grow with the episode's length
                total = value.sum(dim=(1, 2), keepdim=True).clamp(min=1.0)
                columns.extend(torch.log1p(value[:, :2] * (24 * P) / total).unbind(1))
            else:
                columns.append(value)
        x = torch.stack(columns, dim=-1)
        t = obs["time_of_day"].unsqueeze(1).expand(B, P, 2)
        h = self.encode(x)
        h = self.mix(torch.cat([h, h.mean(1, keepdim=True).expand_as(h), t], dim=-1))
        g = self.summary(torch.cat([h.mean(1), obs["time_of_day"]], dim=-1))
        return torch.cat([h, g.unsqueeze(1)], dim=1).flatten(1)


class PairHead(nn.Module):
    """Features -> ``k * (P + 1)`` logits (or Q-values): a score per pair and one for "none", per entry."""

    def __init__(self, num_pairs: int, hidden: int, k: int, gain: float = 0.01) -> None:
        super().__init__()
        self.num_pairs, self.hidden, self.k = num_pairs, hidden, k
        self.pair = nn.Linear(hidden, k)
        self.none = nn.Linear(hidden, k)
        for layer in (self.pair, self.none):
            nn.init.orthogonal_(layer.weight, gain=gain)
            nn.init.zeros_(layer.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, (P + 1) * hidden)`` features -> ``(B, k * (P + 1))`` scores, entry by entry."""
        h = features.view(-1, self.num_pairs + 1, self.hidden)
        scores = torch.cat([self.pair(h[:, :-1]), self.none(h[:, -1:])], dim=1)  # (B, P+1, k)
        return scores.transpose(1, 2).reshape(-1, self.k * (self.num_pairs + 1))


class PairValue(nn.Module):
    """Features -> state value, from the mean pair embedding and the global embedding."""

    def __init__(self, num_pairs: int, hidden: int) -> None:
        super().__init__()
        self.num_pairs, self.hidden = num_pairs, hidden
        self.net = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, (P + 1) * hidden)`` features -> ``(B, 1)`` state values."""
        h = features.view(-1, self.num_pairs + 1, self.hidden)
        return self.net(torch.cat([h[:, :-1].mean(1), h[:, -1]], dim=-1))


def _entries(action_space: spaces.Space) -> int:
    return len(action_space.nvec) if isinstance(action_space, spaces.MultiDiscrete) else 1


def _pair_kwargs(kwargs: dict[str, Any], net_arch: Any) -> dict[str, Any]:
    kwargs.setdefault("features_extractor_class", PairExtractor)
    kwargs.setdefault("net_arch", net_arch)
    return kwargs


def _swap_heads(policy: Any, lr_schedule: Any) -> None:
    """After SB3 builds an actor-critic, swap its linear heads for the per-pair ones."""
    ext = policy.features_extractor
    policy.action_net = PairHead(ext.num_pairs, ext.hidden, _entries(policy.action_space))
    policy.value_net = PairValue(ext.num_pairs, ext.hidden)
    policy.optimizer = policy.optimizer_class(
        policy.parameters(), lr=lr_schedule(1), **policy.optimizer_kwargs
    )


class _PairHeads:
    """Mixin for SB3's actor-critic policies: the pair extractor, and per-pair heads after build."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **_pair_kwargs(kwargs, {"pi": [], "vf": []}))

    def _build(self, lr_schedule: Any) -> None:
        # super() is the SB3 policy class that follows this mixin in the MRO
        super()._build(lr_schedule)  # type: ignore[misc]
        _swap_heads(self, lr_schedule)


class PairPolicy(_PairHeads, MultiInputActorCriticPolicy):
    """PPO's policy: :class:`PairExtractor`, a :class:`PairHead` per entry, :class:`PairValue`."""


class MaskablePairPolicy(_PairHeads, MaskableMultiInputActorCriticPolicy):
    """MaskablePPO's policy: the same network as :class:`PairPolicy`, with action masks."""


class PairDQNPolicy(DQNMultiInputPolicy):
    """DQN's policy: :class:`PairExtractor` and a :class:`PairHead` of Q-values (one entry)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **_pair_kwargs(kwargs, []))

    def make_q_net(self) -> Any:
        """SB3's Q-network with its linear head swapped for a :class:`PairHead`."""
        q = super().make_q_net()
        ext: Any = q.features_extractor
        q.q_net = PairHead(ext.num_pairs, ext.hidden, 1, gain=1.0)  # type: ignore[assignment]
        return q


#: The pair policy of each algorithm.
POLICIES = {"ppo": PairPolicy, "maskable_ppo": MaskablePairPolicy, "dqn": PairDQNPolicy}


def policy_class(algo: str, policy: str) -> Any:
    """The SB3 policy of ``algo`` for ``policy`` ("pair" or "mlp")."""
    if policy == "mlp":
        mlp = {
            "maskable_ppo": MaskableMultiInputActorCriticPolicy,
            "ppo": MultiInputActorCriticPolicy,
        }
        return mlp.get(algo, DQNMultiInputPolicy)
    if policy != "pair":
        raise ValueError(f"policy={policy!r} is invalid: allowed one of {POLICY_NAMES}")
    return POLICIES[algo]
