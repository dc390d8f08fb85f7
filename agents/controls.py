"""Managed link control: the strong demand-blind control, its predictive agents and its oracles.

SPEC sections 10 and 11: prediction's value is measured between two agents that differ only in
what they know of demand. :class:`ManagedAgent` is that machinery, one class with one code path;
what it knows of demand is one argument, ``demand``:

- ``demand=None``: the **demand-blind control** ``managed`` (the twin of every agent below);
- a predictor (:class:`PredictedDemand`): ``managed-frequency``, ``-lstm``, ``-arima`` and
  ``-rates`` (:class:`agents.predictors.rates.RatePredictor`, no cold start);
- :class:`NextRequests`: ``managed-oracle``, the **equal-footing oracle** (reads the next requests
  of the workload, like ``spep-oracle``);
- :class:`WorkloadRates`: ``managed-distribution``, the **distribution oracle** (knows the
  workload's hot and medium pairs and rates by hour, not the requests drawn from them).

Each slot the action is three lists, in this order, each node pair once, cut to ``action_len``:

1. **the queue** (only where spending a link pair frees its link, below): the node pairs of the
   visible queued requests, in service order, whose pre-positioning path holds pairs now
   (``path_fidelity > 0``) and that no held pair already serves (a held pair of at least the
   request's ``F_req``);
2. **the demand** (the one part the twin lacks): Algorithm 2 (:func:`agents.spep.algorithm2`, with
   ``threshold`` and ``min_fidelity``) on the demand input's window probabilities;
3. **the fill** (only where spending a link pair frees its link): the node pairs whose path holds
   pairs now, lowest path fidelity first (equal ones by lower index), so it spends the oldest link
   pairs; at most as many as leave ``fill_reserve`` (default ``max_new_prepositions``: one
   slot's placements) of the ``max_prepositioned`` places free. A fill pair is seldom used (its
   fidelity is the lowest there is) and holds its place until it expires; without the reserve the
   fill would take all K places and leave none for the queue and the demand in the next slots.

On-demand routing is ``highest_fidelity`` (``routing=`` changes it): the one path a request is
offered is then the one most likely to meet its ``F_req``; it is the strongest of the three baselines
on both presets. The choices (the routing, the reserve) were made on seeds 100-119 (docs/agents.md),
and the studies report seeds 0-19.

**When does consuming a link pair pay?** (SPEC sections 3 and 9.) With ``link_pool_policy =
"block"`` a full link generates nothing: at the paper preset's ``link_capacity = 1`` a pair that no
request uses holds its link until it expires (``max_lifetime`` slots, or below ``F_min``), decaying
all the while, and the link is lost to fresh pairs meanwhile. Consuming the oldest pairs frees their
links, and a fresh pair (``F0``) arrives after ``1 / p_gen`` slots on average, so the old pair is
worth less than the chance it gives up: flushing pays. A queued request whose path is too weak to
serve it (path fidelity below ``F_req``) waits on exactly such pairs, so the queue's paths are
flushed first. With ``"replace_oldest"`` a full link's new pair replaces its oldest one: a stored
pair never blocks generation, so consuming a pair frees nothing and only loses the pair (and, with
signalling latency, keeps the path's links busy, generating nothing, until the outcome arrives).
There the queue adds nothing either: on-demand routing already serves every queued request whose
path can serve it, and a pre-position for one that it cannot serve is a pair lost. So ``fill =
"auto"`` (default) flushes (parts 1 and 3) exactly when the config's ``link_pool_policy`` is
``"block"``; otherwise the control pre-positions nothing and equals the baseline of its routing
(``highest_fidelity`` by default), and only the demand part places pairs. The choice reads the config
alone, no demand information; ``fill="flush"`` or ``"none"`` forces it.

The oracles' extra knowledge only adds to the control's actions: with no next request (or rate)
known, they act exactly as ``managed`` does (tested), so ``managed-oracle − managed`` is what
knowing the next requests adds under the same link management.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from agents.base import Agent, held_or_in_flight, info_from_observation, register
from agents.predictors import PREDICTORS, Predictor, make_predictor
from agents.predictors.rates import RatePredictor
from agents.spep import algorithm2
from spep_gym.env import QUEUE_FEATURES, SpepEnv
from spep_gym.topology import pair_index_matrix
from spep_gym.workload import arrival_rates

__all__ = [
    "FILLS",
    "DemandInput",
    "ManagedAgent",
    "NextRequests",
    "PredictedDemand",
    "WorkloadRates",
    "flushes",
]

#: ``fill`` values: from the config's link layer, always flush, never flush.
FILLS = ("auto", "flush", "none")


def flushes(fill: str, link_pool_policy: str) -> bool:
    """Whether the control spends link pairs to free links (the queue and the fill; see module)."""
    if fill == "auto":
        return link_pool_policy == "block"
    return fill == "flush"


class DemandInput(abc.ABC):
    """What a :class:`ManagedAgent` knows of demand: a window probability per node pair each slot."""

    name: str = "demand"
    #: True where it reads the environment's workload (the oracles), not only what arrived.
    reads_future: bool = False

    @abc.abstractmethod
    def start(self, env: SpepEnv, seed: int | None) -> None:
        """Start an episode on ``env`` (called at the agent's first act of an episode)."""

    @abc.abstractmethod
    def probability(self, slot: int, arrived: np.ndarray, env: SpepEnv) -> np.ndarray:
        """(P,) probability of a request of each node pair within the next slots.

        Args:
            slot: the slot whose decision point this is.
            arrived: the node pairs of this slot's arrivals (repeats allowed).
            env: the environment (only the oracles read it).
        """


class PredictedDemand(DemandInput):
    """A demand predictor fed with the arrivals, as SPEP uses it (SPEC section 8)."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.name = predictor.name

    def start(self, env: SpepEnv, seed: int | None) -> None:
        """Reset the predictor for the env's network and day."""
        cfg = env.config
        self.predictor.reset(cfg.n, cfg.slots_per_day, cfg.prediction_window, seed)

    def probability(self, slot: int, arrived: np.ndarray, env: SpepEnv) -> np.ndarray:
        """Observe the slot's arrivals; the predictor's window probabilities."""
        self.predictor.observe(slot, arrived)
        return self.predictor.predict(slot)


class NextRequests(DemandInput):
    """Perfect knowledge of the next requests: READS THE FUTURE workload (like ``spep-oracle``).

    Probability 1 for the node pairs of the requests that arrive in slots t+1 .. t+``horizon``,
    0 elsewhere.
    """

    name = "oracle"
    reads_future = True

    def __init__(self, horizon: int = 3) -> None:
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"oracle_horizon = {horizon!r} is invalid: allowed an int >= 1")
        self.horizon = horizon

    def start(self, env: SpepEnv, seed: int | None) -> None:
        """Nothing to learn: it reads the workload."""

    def probability(self, slot: int, arrived: np.ndarray, env: SpepEnv) -> np.ndarray:
        """1 for the pairs of the next ``horizon`` slots' requests."""
        w = env.sim.workload
        last = len(w.starts) - 1
        lo = w.starts[min(slot + 1, last)]
        hi = w.starts[min(slot + 1 + self.horizon, last)]
        out = np.zeros(env.num_pairs, dtype=np.float64)
        out[w.pair[lo:hi]] = 1.0
        return out


class WorkloadRates(DemandInput):
    """The distribution oracle: knows the workload's rates, not its realisations.

    It reads the demand model the generator drew from (``workload.demand_pairs``: the hot and
    medium node pairs and their weights, SPEC section 4) and the config's arrival rate by hour
    (:func:`spep_gym.workload.arrival_rates`); never the requests drawn. Its probability is the
    Poisson probability of at least one request of the pair in slots t+1 .. t+``prediction_window``.
    """

    name = "distribution"
    reads_future = True

    def __init__(self) -> None:
        self._share = np.zeros(0)
        self._cumulative = np.zeros(1)
        self._window = 0

    def start(self, env: SpepEnv, seed: int | None) -> None:
        """Read the demand model; a trace has none (ValueError)."""
        cfg = env.config
        model = np.asarray(env.sim.workload.demand_pairs, dtype=np.float64).reshape(-1, 3)
        if len(model) == 0:
            raise ValueError(
                f"config field 'trace' = {cfg.trace!r} is invalid for the distribution oracle: "
                "allowed None (a recorded trace has no rates to know)"
            )
        index = pair_index_matrix(cfg.n)
        share = np.zeros(env.num_pairs, dtype=np.float64)
        np.add.at(share, index[model[:, 0].astype(int), model[:, 1].astype(int)], model[:, 2])
        self._share = share / share.sum()
        rates = arrival_rates(cfg, cfg.episode_slots + cfg.prediction_window + 1)
        self._cumulative = np.concatenate([[0.0], np.cumsum(rates)])
        self._window = cfg.prediction_window

    def probability(self, slot: int, arrived: np.ndarray, env: SpepEnv) -> np.ndarray:
        """``1 - exp(-share * expected requests in slots t+1 .. t+W)``."""
        c = self._cumulative
        expected = c[slot + 1 + self._window] - c[slot + 1]
        out: np.ndarray = -np.expm1(-self._share * expected)
        return out


class ManagedAgent(Agent):
    """The managed link control, with or without a demand input (see the module docstring).

    Args:
        demand: what it knows of demand; None: the demand-blind control (the twin).
        threshold: least window probability of a demand candidate (SPEC 8: 0.05).
        min_fidelity: least path fidelity of a demand candidate (SPEC 8: 0.6).
        fill: ``"auto"`` (flush where ``link_pool_policy`` is ``"block"``), ``"flush"`` or
            ``"none"``.
        fill_reserve: pre-positioned places (of ``max_prepositioned``) the fill leaves free for
            the queue and the demand; None (default): ``max_new_prepositions``, one slot's worth.
        name: the agent's name in results (default ``managed`` or ``managed-<demand name>``).
        routing: on-demand routing it runs with (default ``highest_fidelity``: the path most
            likely to meet the request's ``F_req``; module docstring).
    """

    def __init__(
        self,
        demand: DemandInput | None = None,
        threshold: float = 0.05,
        min_fidelity: float = 0.6,
        fill: str = "auto",
        fill_reserve: int | None = None,
        name: str | None = None,
        routing: str = "highest_fidelity",
    ) -> None:
        super().__init__()
        for key, value in (("threshold", threshold), ("min_fidelity", min_fidelity)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"{key} = {value!r} is invalid: allowed a number in [0, 1]")
        if fill not in FILLS:
            raise ValueError(f"fill = {fill!r} is invalid: allowed one of {', '.join(FILLS)}")
        if fill_reserve is not None and (
            isinstance(fill_reserve, bool) or not isinstance(fill_reserve, int) or fill_reserve < 0
        ):
            raise ValueError(
                f"fill_reserve = {fill_reserve!r} is invalid: allowed None or an int >= 0"
            )
        self.demand = demand
        self.threshold = float(threshold)
        self.min_fidelity = float(min_fidelity)
        self.fill = fill
        self.fill_reserve = fill_reserve
        self.name = name or ("managed" if demand is None else f"managed-{demand.name}")
        self.env_config = {"routing": routing}
        self.reads_future = demand is not None and demand.reads_future
        self.stateful = demand is not None
        self._seed: int | None = None
        self._started = False
        self._slot = -1

    def reset(self, seed: int | None = None, env: Any = None) -> None:
        """Start an episode: the demand input restarts at the first :meth:`act`."""
        super().reset(seed, env)
        self._seed = seed
        self._started = False

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """The queue, the demand candidates and the fill, in that order (module docstring).

        The demand input (when there is one) gets the slot's arrivals from ``info["arrived"]``,
        or from the observation's ``arrivals`` when ``info`` has none; the twin reads neither.

        Raises:
            RuntimeError: before ``reset(env=...)``: it reads the env's link layer and routing.
        """
        self.require_env()
        env = self.env
        assert env is not None
        cfg = env.config
        if not self._started:
            self._index = pair_index_matrix(cfg.n)
            if self.demand is not None:
                self.demand.start(env, self._seed)
            self._started = True
            self._slot = -1
        path_fidelity = np.asarray(observation["path_fidelity"], dtype=np.float64)
        num_pairs = len(path_fidelity)
        flush = flushes(self.fill, cfg.link_pool_policy)
        chosen = self._queue_pairs(observation, path_fidelity) if flush else []
        if self.demand is not None:
            slot = int(info.get("next_slot", self._slot + 1))
            self._slot = slot
            probability = self.demand.probability(slot, self._arrived(observation, info), env)
            candidates = algorithm2(
                probability,
                path_fidelity,
                held_or_in_flight(observation),
                self.threshold,
                self.min_fidelity,
                cfg.action_len,
            )
            chosen += [int(a) for a in candidates if a < num_pairs and a not in chosen]
        if flush:
            held = int(held_or_in_flight(observation).sum())
            reserve = cfg.max_new_prepositions if self.fill_reserve is None else self.fill_reserve
            room = cfg.max_prepositioned - reserve - held - len(chosen)
            if room > 0:
                feasible = np.flatnonzero(path_fidelity > 0)
                order = feasible[np.argsort(path_fidelity[feasible], kind="stable")]
                fill = [int(a) for a in order if a not in chosen]
                chosen += fill[:room]
        action = self.none_action(num_pairs, cfg.action_len)
        chosen = chosen[: cfg.action_len]
        action[: len(chosen)] = chosen
        return action

    def _queue_pairs(
        self, observation: dict[str, np.ndarray], path_fidelity: np.ndarray
    ) -> list[int]:
        """Node pairs of the visible queued requests whose path holds pairs and no held pair serves."""
        queue = np.asarray(observation["queue"]).reshape(-1, len(QUEUE_FEATURES))
        real = np.asarray(observation["queue_mask"]) > 0
        held_fidelity = np.asarray(observation["prepositioned_fidelity"])
        pairs: list[int] = []
        for source, destination, f_req, *_ in queue[real].tolist():
            a = int(self._index[int(source), int(destination)])
            if path_fidelity[a] > 0 and held_fidelity[a] < f_req and a not in pairs:
                pairs.append(a)
        return pairs

    def _arrived(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        arrived = info["arrived"] if "arrived" in info else _arrivals(observation)
        return np.asarray(
            [
                r["pair"] if "pair" in r else self._index[int(r["source"]), int(r["destination"])]
                for r in arrived
            ],
            dtype=np.int64,
        )

    def __repr__(self) -> str:
        demand = "None" if self.demand is None else type(self.demand).__name__
        return (
            f"ManagedAgent(name={self.name!r}, demand={demand}, fill={self.fill!r}, "
            f"routing={self.env_config['routing']!r})"
        )


def _arrivals(observation: dict[str, np.ndarray]) -> list[dict[str, int]]:
    arrived: list[dict[str, int]] = info_from_observation(observation)["arrived"]
    return arrived


#: ManagedAgent's own keyword arguments; the others go to the predictor.
AGENT_KWARGS = ("threshold", "min_fidelity", "fill", "fill_reserve", "name", "routing")


def make_managed(predictor_name: str | None = None, **kwargs: Any) -> ManagedAgent:
    """A managed agent with a registered predictor (``"rates"`` included), or the twin (None).

    Agent keywords (:data:`AGENT_KWARGS`) go to the agent, the rest to the predictor.
    """
    agent_kw = {k: kwargs.pop(k) for k in AGENT_KWARGS if k in kwargs}
    if predictor_name is None:
        if kwargs:
            raise ValueError(
                f"{sorted(kwargs)[0]} is invalid for agent 'managed': allowed "
                f"{', '.join(AGENT_KWARGS)}"
            )
        return ManagedAgent(None, **agent_kw)
    if predictor_name == "rates":
        predictor: Predictor = RatePredictor(**kwargs)
    else:
        predictor = make_predictor(predictor_name, **kwargs)
    return ManagedAgent(PredictedDemand(predictor), **agent_kw)


def make_oracle(oracle_horizon: int = 3, **kwargs: Any) -> ManagedAgent:
    """``managed-oracle``: the control plus the next ``oracle_horizon`` slots' requests."""
    return ManagedAgent(NextRequests(oracle_horizon), **kwargs)


register("managed", make_managed)
for _name in (*PREDICTORS, "rates"):
    register(f"managed-{_name}", lambda _p=_name, **kw: make_managed(_p, **kw))
register("managed-oracle", make_oracle)
register("managed-distribution", lambda **kw: ManagedAgent(WorkloadRates(), **kw))
