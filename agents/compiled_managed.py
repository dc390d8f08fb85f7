"""The managed family's one-slot decision (agents/controls.py), compiled: functions over arrays.

:class:`agents.controls.ManagedAgent` builds its action from three lists, in this order, each node
pair once, cut to ``action_len``: the queue, the demand (Algorithm 2 on window probabilities) and
the fill with its reserve (the module docstring of :mod:`agents.controls` says why).
:func:`managed_action` is the same decision over the observation's arrays, writing the action into
an array the caller owns; nothing is allocated per slot. The demand inputs:

- none: ``managed`` (the twin);
- :func:`frequency_observe` / :func:`frequency_predict`: the frequency predictor (paper eq. 3,
  :class:`agents.predictors.frequency.FrequencyPredictor`, any ``history_slots``), for
  ``managed-frequency``;
- :func:`next_requests`: the next requests of the workload, for ``managed-oracle``;
- a table of window probabilities, one row a slot, computed ahead by :func:`demand_table` with the
  agent's own Python demand input: ``managed-distribution`` (the workload's rates) and
  ``managed-rates`` (:class:`agents.predictors.rates.RatePredictor`). A predictor sees only the
  arrivals, and the arrivals of an episode are the workload's, whatever the agent does, so the table
  holds exactly the probabilities the agent computes slot by slot.

Each function equals its Python counterpart to the last bit (tests/test_compiled_managed.py steps
the Python env with :class:`~agents.controls.ManagedAgent` and compares every slot's action).
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
from numba import njit

from agents.controls import ManagedAgent, NextRequests, PredictedDemand, WorkloadRates, flushes
from agents.predictors.frequency import FrequencyPredictor
from agents.predictors.rates import RatePredictor
from spep_gym.compiled.state import T_NOW, Params, State
from spep_gym.config import SpepConfig
from spep_gym.topology import num_pairs
from spep_gym.workload import Workload

__all__ = [
    "DEMAND_FREQUENCY",
    "DEMAND_NONE",
    "DEMAND_ORACLE",
    "DEMAND_TABLE",
    "algorithm2_into",
    "demand_kind",
    "demand_table",
    "frequency_observe",
    "frequency_predict",
    "managed",
    "managed_action",
    "next_requests",
    "settings",
]

#: How a managed agent's demand input is computed: none (the twin), the compiled frequency
#: predictor, the compiled oracle, or a table of window probabilities computed ahead.
DEMAND_NONE, DEMAND_FREQUENCY, DEMAND_ORACLE, DEMAND_TABLE = 0, 1, 2, 3


# ---------------------------------------------------------------------- the decision
@njit(cache=True)
def _append(chosen: np.ndarray, count: int, a: int) -> int:
    """Append ``a`` to ``chosen[:count]`` unless it is there or the action is full; the new count."""
    if count >= chosen.shape[0]:
        return count
    for k in range(count):
        if chosen[k] == a:
            return count
    chosen[count] = a
    return count + 1


@njit(cache=True)
def algorithm2_into(
    probability: np.ndarray,
    path_fidelity: np.ndarray,
    held: np.ndarray,
    in_flight: np.ndarray,
    threshold: float,
    min_fidelity: float,
    out: np.ndarray,
) -> int:
    """Paper Algorithm 2 (:func:`agents.spep.algorithm2`): candidates, best first, into ``out``.

    A candidate has ``probability >= threshold``, no pair held or in flight and a path fidelity
    of at least ``min_fidelity`` (and above 0); its score is ``probability * path_fidelity``, high
    first, equal scores by lower index. Writes at most ``len(out)`` of them and returns how many.
    """
    num_pairs = probability.shape[0]
    count = 0
    last_score = np.inf
    last = -1
    while count < out.shape[0]:
        best = -1
        best_score = -np.inf
        for a in range(num_pairs):
            f = path_fidelity[a]
            if not (
                probability[a] >= threshold
                and held[a] + in_flight[a] == 0
                and f >= min_fidelity
                and f > 0.0
            ):
                continue
            score = probability[a] * f
            # after the last one taken in the order (score high first, then index low first)
            if score > last_score or (score == last_score and a <= last):
                continue
            if best < 0 or score > best_score:
                best, best_score = a, score
        if best < 0:
            break
        out[count] = best
        count += 1
        last, last_score = best, best_score
    return count


@njit(cache=True)
def managed_action(
    path_fidelity: np.ndarray,
    held: np.ndarray,
    in_flight: np.ndarray,
    held_fidelity: np.ndarray,
    queue: np.ndarray,
    queue_mask: np.ndarray,
    index: np.ndarray,
    probability: np.ndarray,
    use_demand: bool,
    flush: bool,
    threshold: float,
    min_fidelity: float,
    room_for_fill: int,
    candidates: np.ndarray,
    out: np.ndarray,
) -> None:
    """One slot's action of :class:`agents.controls.ManagedAgent` into ``out`` (padded with P).

    Args:
        path_fidelity: (P,) the observation's ``path_fidelity`` (float32).
        held: (P,) the observation's ``prepositioned``: pre-positioned pairs held per node pair.
        in_flight: (P,) its ``prepositioned_in_flight`` (signalling latency): counted as held.
        held_fidelity: (P,) the observation's ``prepositioned_fidelity``.
        queue: (Q, 6) the observation's ``queue`` (source, destination, F_req, ...).
        queue_mask: (Q,) 1 for a visible queued request.
        index: (n, n) node pair index (:func:`spep_gym.topology.pair_index_matrix`).
        probability: (P,) the demand input's window probabilities (read when ``use_demand``).
        use_demand: the agent has a demand input.
        flush: it spends link pairs (the queue and the fill; :func:`agents.controls.flushes`).
        threshold: Algorithm 2's least window probability.
        min_fidelity: Algorithm 2's least path fidelity.
        room_for_fill: ``max_prepositioned`` less the fill's reserve.
        candidates: (action_len,) scratch for Algorithm 2.
        out: (action_len,) the action.
    """
    num_pairs = path_fidelity.shape[0]
    count = 0
    if flush:  # 1. the queue
        for k in range(queue_mask.shape[0]):
            if queue_mask[k] > 0:
                a = index[int(queue[k, 0]), int(queue[k, 1])]
                if path_fidelity[a] > 0 and held_fidelity[a] < queue[k, 2]:
                    count = _append(out, count, a)
    if use_demand:  # 2. the demand
        found = algorithm2_into(
            probability, path_fidelity, held, in_flight, threshold, min_fidelity, candidates
        )
        for k in range(found):
            count = _append(out, count, candidates[k])
    if flush:  # 3. the fill: lowest path fidelity first, equal ones by lower index
        total = 0
        for a in range(num_pairs):
            total += int(held[a]) + int(in_flight[a])
        room = room_for_fill - total - count
        before = count
        added = 0
        last_f = -np.inf
        last = -1
        while added < room and count < out.shape[0]:
            pick = -1
            pick_f = np.inf
            for a in range(num_pairs):
                f = path_fidelity[a]
                if not f > 0 or f < last_f or (f == last_f and a <= last):
                    continue
                if pick < 0 or f < pick_f:
                    pick, pick_f = a, f
            if pick < 0:
                break
            last, last_f = pick, pick_f
            taken = False
            for k in range(before):
                if out[k] == pick:
                    taken = True
                    break
            if not taken:
                out[count] = pick
                count += 1
                added += 1
    for k in range(count, out.shape[0]):
        out[k] = num_pairs


# ---------------------------------------------------------------------- demand inputs
@njit(cache=True)
def frequency_observe(
    counts: np.ndarray, slot: int, slots_per_day: int, pairs: np.ndarray, sign: int
) -> None:
    """Count (``sign`` 1) or uncount (-1, leaving the history window) a slot's arrivals ``pairs``.

    ``counts`` (24, P + 1): the requests of each node pair by hour of day, and of all of them in
    the last column (:class:`agents.predictors.frequency.FrequencyPredictor`'s counts).
    """
    b = (slot % slots_per_day) * 24 // slots_per_day
    for a in pairs:
        counts[b, a] += sign
    counts[b, counts.shape[1] - 1] += sign * pairs.shape[0]


@njit(cache=True)
def frequency_predict(counts: np.ndarray, slot: int, slots_per_day: int, out: np.ndarray) -> None:
    """Paper eq. 3 into ``out``: the hour's share of demand per node pair (0 with none yet)."""
    b = (slot % slots_per_day) * 24 // slots_per_day
    total = counts[b, counts.shape[1] - 1]
    for a in range(out.shape[0]):
        out[a] = 0.0 if total == 0 else counts[b, a] / float(total)


@njit(cache=True)
def next_requests(
    pair: np.ndarray, starts: np.ndarray, slot: int, horizon: int, out: np.ndarray
) -> None:
    """1 for the node pairs of the requests of slots ``slot+1 .. slot+horizon``, else 0."""
    last = starts.shape[0] - 1
    lo = starts[min(slot + 1, last)]
    hi = starts[min(slot + 1 + horizon, last)]
    out[:] = 0.0
    for r in range(lo, hi):
        out[pair[r]] = 1.0


# ---------------------------------------------------------------------- the policy
@njit(cache=True)
def managed(s: State, p: Params, pol: Any, obs: Any, rng: np.random.Generator) -> None:
    """The managed family as a compiled policy: the slot's action into ``pol.action``.

    The interface of :mod:`agents.compiled_policies` (``pol`` a ``Policy``, ``obs`` an
    :class:`spep_gym.compiled.episode.Observation`; ``rng`` unused). Settings (:func:`settings`):
    ``ints`` = (demand kind, flush 0/1, room for the fill, oracle horizon, slots per day,
    history_slots or -1 for all),
    ``floats`` = (threshold, min_fidelity); ``memory`` (24, P + 1) the frequency counts;
    ``table`` (T, P) the window probabilities computed ahead; ``values`` the slot's
    probabilities; ``scratch`` Algorithm 2's candidates.
    """
    t = s.counts[T_NOW]
    kind = pol.ints[0]
    probability = pol.values
    if kind == DEMAND_FREQUENCY:
        frequency_observe(pol.memory, t, pol.ints[4], s.pair[s.starts[t] : s.starts[t + 1]], 1)
        old = t - pol.ints[5]  # the slot that leaves a window of history_slots
        if pol.ints[5] > 0 and old >= 0:
            leaving = s.pair[s.starts[old] : s.starts[old + 1]]
            frequency_observe(pol.memory, old, pol.ints[4], leaving, -1)
        frequency_predict(pol.memory, t, pol.ints[4], probability)
    elif kind == DEMAND_ORACLE:
        next_requests(s.pair, s.starts, t, pol.ints[3], probability)
    elif kind == DEMAND_TABLE:
        probability[:] = pol.table[t]
    managed_action(
        obs.path_fidelity, obs.prepositioned, obs.prepositioned_in_flight,
        obs.prepositioned_fidelity, obs.queue, obs.queue_mask, obs.pair_index, probability,
        kind != DEMAND_NONE, pol.ints[1] != 0,
        pol.floats[0], pol.floats[1], pol.ints[2], pol.scratch[: pol.action.shape[0]], pol.action,
    )  # fmt: skip


# ---------------------------------------------------------------------- from the agent
def demand_kind(agent: ManagedAgent) -> int:
    """How ``agent``'s demand input runs compiled; ValueError naming it where it cannot.

    Exact classes only: a subclass may compute otherwise.
    """
    demand = agent.demand
    if demand is None:
        return DEMAND_NONE
    if type(demand) is NextRequests:
        return DEMAND_ORACLE
    if type(demand) is WorkloadRates:
        return DEMAND_TABLE
    if isinstance(demand, PredictedDemand) and type(demand) is PredictedDemand:
        predictor = demand.predictor
        if type(predictor) is FrequencyPredictor:
            return DEMAND_FREQUENCY
        if type(predictor) is RatePredictor:
            return DEMAND_TABLE
    raise ValueError(
        f"agent {agent.name!r} is not covered by the compiled managed agents: allowed managed, "
        "managed-oracle, managed-distribution, managed-frequency, managed-rates"
    )


def demand_table(
    agent: ManagedAgent, cfg: SpepConfig, workload: Workload, num_pairs: int, seed: int | None
) -> np.ndarray:
    """(T, P) window probabilities of ``agent``'s demand input at each slot's decision point.

    Runs the agent's own demand input (started as :meth:`ManagedAgent.act` starts it) on the
    episode's arrivals, slot 0 to T - 1, as the agent would see them.
    """
    demand = agent.demand
    assert demand is not None
    # what DemandInput.start and .probability read of the environment
    env = types.SimpleNamespace(
        config=cfg, sim=types.SimpleNamespace(workload=workload), num_pairs=num_pairs
    )
    demand.start(env, seed)  # type: ignore[arg-type]
    table = np.empty((cfg.episode_slots, num_pairs), dtype=np.float64)
    starts, pair = workload.starts, workload.pair
    for t in range(cfg.episode_slots):
        arrived = np.asarray(pair[starts[t] : starts[t + 1]], dtype=np.int64)
        table[t] = demand.probability(t, arrived, env)  # type: ignore[arg-type]
    return table


def settings(
    agent: ManagedAgent, cfg: SpepConfig, workload: Workload, seed: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The settings of :func:`managed` for an episode of ``agent``: ints, floats, memory, table.

    ``workload`` and ``seed`` are the episode's (the table's demand input reads them).

    Raises:
        ValueError: ``agent``'s demand input has no compiled form (:func:`demand_kind`).
    """
    kind = demand_kind(agent)
    P = num_pairs(cfg.n)
    reserve = cfg.max_new_prepositions if agent.fill_reserve is None else agent.fill_reserve
    horizon = agent.demand.horizon if isinstance(agent.demand, NextRequests) else 0
    flush = flushes(agent.fill, cfg.link_pool_policy)
    history = -1
    if kind == DEMAND_FREQUENCY:
        assert isinstance(agent.demand, PredictedDemand)
        assert isinstance(agent.demand.predictor, FrequencyPredictor)
        slots = agent.demand.predictor.history_slots
        history = -1 if slots is None else slots
    room = cfg.max_prepositioned - reserve
    ints = np.array([kind, flush, room, horizon, cfg.slots_per_day, history], dtype=np.int64)
    floats = np.array([agent.threshold, agent.min_fidelity], dtype=np.float64)
    memory = np.zeros((24, P + 1) if kind == DEMAND_FREQUENCY else (1, 1), dtype=np.int64)
    table = (
        demand_table(agent, cfg, workload, P, seed) if kind == DEMAND_TABLE else np.zeros((1, 1))
    )
    return ints, floats, memory, table
