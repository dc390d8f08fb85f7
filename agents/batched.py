"""Batched forms of the non-learning agents: one call decides the actions of B networks at once.

The batched engine (``engine="batched"``, ``--engine batched``) steps the runs of one agent and
config together as one batch of networks (:mod:`spep_gym.batched`); an agent that decided network
by network in Python would take longer than the batch it drives. Each class here takes the batched
observation (a dict of (B, ...) arrays, numpy or torch) and ``info`` and returns a (B, action_len)
action: for every network the action its scalar agent returns from the same observation. The
baselines and ``noop`` pre-position nothing; ``random`` draws from a generator of its own per
network, seeded as :class:`agents.baselines.RandomAgent` is; ``spep-frequency`` runs Algorithm 2
over the frequency predictor's counts, kept per network; ``spep-oracle`` reads the next requests
from the batched simulator's workload, as the scalar oracle reads the scalar simulator's.

:func:`batched_agent` makes the batched form of a registered agent (or of an agent object); the
agents that learn (``spep-lstm``, ``spep-arima``, trained ``sb3`` models) have none and stay on the
scalar engine. This module imports torch; only the batched engine imports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from agents.base import Agent, make
from agents.baselines import BASELINES, NoPreposition, RandomAgent
from agents.oracle import OracleAgent
from agents.predictors.frequency import FrequencyPredictor
from agents.spep import SpepAgent
from spep_gym.batched import BatchedSimulator

__all__ = [
    "BATCHED_AGENTS",
    "BatchedAgent",
    "BatchedNoPreposition",
    "BatchedOracle",
    "BatchedRandom",
    "BatchedSpepFrequency",
    "algorithm2_batched",
    "batched_agent",
    "check_batched",
]

#: The registered agents that have a batched form.
BATCHED_AGENTS = ("noop", *BASELINES, "random", "spep-frequency", "spep-oracle")


def check_batched(names: Iterable[str]) -> None:
    """Raise ``ValueError`` naming the first of ``names`` that has no batched form.

    Raises:
        ValueError: ``agent 'spep-lstm' has no batched form: allowed ...``.
    """
    for name in names:
        if name not in BATCHED_AGENTS:
            raise ValueError(_refusal(name))


def _refusal(name: str) -> str:
    return (
        f"agent {name!r} has no batched form (engine 'batched'): allowed "
        f"{', '.join(BATCHED_AGENTS)}; spep-lstm, spep-arima and learned agents run on the "
        "scalar engine"
    )


def batched_agent(agent: Agent | str, **kwargs: Any) -> BatchedAgent:
    """The batched form of ``agent``: a registered name (made with ``kwargs``) or an agent object.

    Raises:
        ValueError: the agent has no batched form (the allowed ones are :data:`BATCHED_AGENTS`).
    """
    if isinstance(agent, str):
        check_batched([agent])
        agent = make(agent, **kwargs)
    kind = type(agent)
    if kind is NoPreposition:
        return BatchedNoPreposition(agent)
    if kind is RandomAgent:
        assert isinstance(agent, RandomAgent)
        return BatchedRandom(agent)
    if kind is SpepAgent:
        assert isinstance(agent, SpepAgent)
        if type(agent.predictor) is FrequencyPredictor:
            return BatchedSpepFrequency(agent)
    if kind is OracleAgent:
        assert isinstance(agent, OracleAgent)
        return BatchedOracle(agent)
    raise ValueError(_refusal(agent.name))


class BatchedAgent:
    """The batched form of a scalar agent: its name, settings and parameters, B networks at once.

    Call :meth:`reset` with the episode seeds and the environment (a ``SpepVectorEnv`` or a
    :class:`~spep_gym.batched.BatchedSimulator`) before :meth:`act`; subclasses implement
    :meth:`_reset` and :meth:`_act` on torch tensors on the simulator's device.

    Args:
        agent: the scalar agent this one mirrors.
    """

    reads_future = False

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.name = agent.name
        self.env_config = dict(agent.env_config)
        self.sim: BatchedSimulator | None = None

    def reset(self, seeds: Sequence[int] | None, env: Any) -> None:
        """Start the episodes of every network; ``seeds[i]`` is network i's episode seed.

        Raises:
            ValueError: ``env`` is not a batched environment, its config contradicts the agent's
                ``env_config``, or the seeds do not match its batch size.
        """
        sim = getattr(env, "sim", env)
        if not isinstance(sim, BatchedSimulator):
            raise ValueError(
                f"env = {type(env).__name__} is invalid for batched agent {self.name!r}: allowed "
                "a SpepVectorEnv (make_vec(..., engine='torch')) or a "
                "spep_gym.batched.BatchedSimulator"
            )
        wrong = {k: v for k, v in self.env_config.items() if getattr(sim.cfg, k) != v}
        if wrong:
            have = ", ".join(f"{k}={getattr(sim.cfg, k)!r}" for k in wrong)
            need = ", ".join(f"{k}={v!r}" for k, v in wrong.items())
            raise ValueError(
                f"agent {self.name!r} is defined with {need}, but the environment has {have}"
            )
        if seeds is not None and len(seeds) != sim.num_envs:
            raise ValueError(
                f"{len(seeds)} seeds for a batch of {sim.num_envs} networks: give one per network"
            )
        self.sim = sim
        self.device = sim.device
        self.num_envs = sim.num_envs
        self.num_pairs = sim.num_pairs
        self.action_len = sim.cfg.action_len
        self._reset(None if seeds is None else [int(s) for s in seeds])

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> Any:
        """(B, action_len) int64 actions: a numpy array for numpy observations, else a tensor.

        Raises:
            RuntimeError: before :meth:`reset`.
        """
        if self.sim is None:
            raise RuntimeError(
                f"batched agent {self.name!r}: call reset(seeds, env) with its environment first"
            )
        as_numpy = not isinstance(observation["path_fidelity"], Tensor)
        action = self._act(observation, info)
        return action.cpu().numpy() if as_numpy else action

    def params(self) -> dict[str, Any]:
        """The scalar agent's parameters (:meth:`agents.base.Agent.params`)."""
        return self.agent.params()

    def _reset(self, seeds: list[int] | None) -> None:
        """Start the episodes (the attributes of :meth:`reset` are set)."""

    def _act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> Tensor:
        raise NotImplementedError

    def _get(self, observation: Mapping[str, Any], key: str) -> Tensor:
        """Observation ``key`` as a tensor on the simulator's device."""
        value = observation[key]
        tensor = value if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value))
        if tensor.shape[0] != self.num_envs:
            raise ValueError(
                f"observation[{key!r}] has {tensor.shape[0]} rows: allowed one per network "
                f"({self.num_envs})"
            )
        return tensor.to(self.device)

    def _held_or_in_flight(self, observation: Mapping[str, Any]) -> Tensor:
        """(B, P) pre-positioned pairs held or in flight (:func:`agents.base.held_or_in_flight`)."""
        held = self._get(observation, "prepositioned")
        if "prepositioned_in_flight" not in observation:
            return held
        return held + self._get(observation, "prepositioned_in_flight")

    def _none(self) -> Tensor:
        return torch.full(
            (self.num_envs, self.action_len), self.num_pairs, dtype=torch.int64, device=self.device
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class BatchedNoPreposition(BatchedAgent):
    """``noop`` and the routing baselines: nothing pre-positioned (the routing is the env's)."""

    def _act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> Tensor:
        return self._none()


class BatchedRandom(BatchedAgent):
    """``random``: up to ``action_len`` distinct feasible pairs per network, in random order.

    Network i draws from ``numpy.random.default_rng([seeds[i], 0x5EED])``, the generator the scalar
    :class:`~agents.baselines.RandomAgent` makes at ``reset(seed=seeds[i])``, with the same call, so
    that the two choose the same pairs from the same observations. Without seeds each network gets a
    generator spawned from the agent's ``seed``.
    """

    def _reset(self, seeds: list[int] | None) -> None:
        if seeds is None:
            self.rngs = np.random.default_rng(self.agent.params().get("seed")).spawn(self.num_envs)
        else:
            self.rngs = [np.random.default_rng([s, 0x5EED]) for s in seeds]

    def _act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> Tensor:
        fidelity = self._get(observation, "path_fidelity").cpu().numpy()
        action = np.full((self.num_envs, self.action_len), self.num_pairs, dtype=np.int64)
        for b, rng in enumerate(self.rngs):  # one generator per network: a loop over them
            feasible = np.flatnonzero(fidelity[b] > 0)
            if len(feasible):
                k = min(self.action_len, len(feasible))
                action[b, :k] = rng.choice(feasible, size=k, replace=False)
        return torch.as_tensor(action).to(self.device)


def algorithm2_batched(
    probability: Tensor,
    path_fidelity: Tensor,
    prepositioned: Tensor,
    threshold: float,
    min_fidelity: float,
    action_len: int,
) -> Tensor:
    """:func:`agents.spep.algorithm2` for B networks: (B, P) inputs, (B, action_len) int64 out.

    The same candidates, the same float64 scores (probability x path fidelity) and the same order
    (high score first, equal scores by lower pair index: a stable sort), padded with P.
    """
    probability = probability.to(torch.float64)
    fidelity = path_fidelity.to(torch.float64)
    B, P = probability.shape
    candidate = (
        (probability >= threshold)
        & (prepositioned == 0)
        & (fidelity >= min_fidelity)
        & (fidelity > 0.0)
    )
    score = torch.where(candidate, probability * fidelity, -torch.inf)
    order = torch.sort(-score, dim=1, stable=True).indices[:, :action_len]
    chosen = torch.where(candidate.gather(1, order), order, P)
    if chosen.shape[1] < action_len:  # fewer pairs than entries
        pad = torch.full((B, action_len - chosen.shape[1]), P, device=chosen.device)
        chosen = torch.cat([chosen, pad], dim=1)
    return chosen


class BatchedSpepFrequency(BatchedAgent):
    """``spep-frequency``: paper Algorithm 2 over the frequency predictor (eq. 3), per network.

    Each network keeps the request counts per hour of day and node pair that the scalar
    :class:`~agents.predictors.frequency.FrequencyPredictor` keeps (the last ``history_slots``
    slots' when set), fed each slot with the observation's ``arrivals`` (every request of the slot
    per node pair, as the scalar agent's ``info["arrived"]``); a network whose slot goes back
    (``info["next_slot"]``: an autoreset) starts its counts anew.
    """

    def __init__(self, agent: SpepAgent) -> None:
        super().__init__(agent)
        predictor = agent.predictor
        assert isinstance(predictor, FrequencyPredictor)
        self.history_slots = predictor.history_slots
        self.threshold = agent.threshold
        self.min_fidelity = agent.min_fidelity

    def _reset(self, seeds: list[int] | None) -> None:
        assert self.sim is not None
        cfg = self.sim.cfg
        B, P, dev = self.num_envs, self.num_pairs, self.device
        self.slots_per_day = cfg.slots_per_day
        self._counts = torch.zeros((B, 24, P), dtype=torch.int64, device=dev)
        self._totals = torch.zeros((B, 24), dtype=torch.int64, device=dev)
        self._last = torch.full((B,), -1, dtype=torch.int64, device=dev)
        # a window as long as the episode never drops a slot (the counts restart with it)
        window = self.history_slots
        self._window = window if window is not None and window < cfg.episode_slots else None
        if self._window is not None:
            self._ring = torch.zeros((B, self._window, P), dtype=torch.int64, device=dev)

    def _hour(self, slot: Tensor) -> Tensor:
        return (slot % self.slots_per_day) * 24 // self.slots_per_day

    def _act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> Tensor:
        assert self.sim is not None
        if "next_slot" in info:
            slot = torch.as_tensor(info["next_slot"]).to(device=self.device, dtype=torch.int64)
        else:
            slot = self.sim.t
        restart = slot <= self._last
        if bool(restart.any()):
            self._counts[restart] = 0
            self._totals[restart] = 0
            if self._window is not None:
                self._ring[restart] = 0
        arrivals = torch.round(self._get(observation, "arrivals")).to(torch.int64)
        rows = torch.arange(self.num_envs, device=self.device)
        hour = self._hour(slot)
        self._counts[rows, hour] += arrivals
        self._totals[rows, hour] += arrivals.sum(dim=1)
        if self._window is not None:  # the slot leaving the window (zeros before slot 0)
            at = slot % self._window
            old = self._ring[rows, at]
            old_hour = self._hour(slot - self._window)
            self._counts[rows, old_hour] -= old
            self._totals[rows, old_hour] -= old.sum(dim=1)
            self._ring[rows, at] = arrivals
        self._last = slot.clone()
        counts = self._counts[rows, hour].to(torch.float64)
        total = self._totals[rows, hour].to(torch.float64)[:, None]
        probability = torch.where(total > 0, counts / total.clamp(min=1.0), 0.0).clamp(0.0, 1.0)
        return algorithm2_batched(
            probability,
            self._get(observation, "path_fidelity"),
            self._held_or_in_flight(observation),
            self.threshold,
            self.min_fidelity,
            self.action_len,
        )


class BatchedOracle(BatchedAgent):
    """``spep-oracle``: the pairs of the requests of the next ``oracle_horizon`` slots, per network.

    A reference that READS THE FUTURE, as :class:`agents.oracle.OracleAgent` does: it reads the
    batched simulator's workload tensors (``sim.work``) at each network's decision point
    (``sim.t``). The same order (earliest arrival, higher priority, request order), each node pair
    once, pairs held or in flight skipped, at most ``action_len``.
    """

    reads_future = True

    def __init__(self, agent: OracleAgent) -> None:
        super().__init__(agent)
        self.oracle_horizon = agent.oracle_horizon

    def _act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> Tensor:
        sim = self.sim
        assert sim is not None
        work, t = sim.work, sim.t
        arrival = work["arrival"]
        B, N = arrival.shape
        # requests are stored by arrival slot, then request order (padding arrives never)
        lo = torch.searchsorted(arrival, (t + 1)[:, None]).squeeze(1)
        hi = torch.searchsorted(arrival, (t + 1 + self.oracle_horizon)[:, None]).squeeze(1)
        width = int((hi - lo).max())
        if width == 0:
            return self._none()
        idx = lo[:, None] + torch.arange(width, device=self.device)
        valid = idx < hi[:, None]
        idx = idx.clamp(max=N - 1)
        # earliest first, then higher priority, then request order: two stable sorts
        by_priority = torch.sort(-work["priority"].gather(1, idx), dim=1, stable=True).indices
        slots = torch.where(valid, arrival.gather(1, idx), 1 << 62).gather(1, by_priority)
        by_arrival = torch.sort(slots, dim=1, stable=True).indices
        order = by_priority.gather(1, by_arrival)
        pairs = work["pair"].gather(1, idx).gather(1, order)
        valid = valid.gather(1, order)
        held = self._held_or_in_flight(observation) > 0
        ok = valid & ~held.gather(1, torch.where(valid, pairs, 0))
        # a pair already chosen earlier in the order is not chosen again
        earlier = torch.ones((width, width), dtype=torch.bool, device=self.device).tril(-1)
        same = (pairs[:, :, None] == pairs[:, None, :]) & ok[:, None, :] & earlier
        keep = ok & ~same.any(dim=2)
        rank = keep.cumsum(dim=1) - 1
        place = keep & (rank < self.action_len)
        A = self.action_len
        action = torch.full((B, A + 1), self.num_pairs, dtype=torch.int64, device=self.device)
        action.scatter_(1, torch.where(place, rank, A), torch.where(place, pairs, self.num_pairs))
        return action[:, :A]
