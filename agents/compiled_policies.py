"""Whole episodes of the non-learning agents, compiled: one call runs every slot of a run.

The studies' ``--engine compiled`` (:mod:`agents.study.compiled`) runs an agent's episode here instead
of one ``SpepEnv.step`` and one ``agent.act`` per slot. :func:`run` is the episode loop: at each
decision point it fills the observation arrays
(:func:`spep_gym.compiled.episode.fill_observation`: the values ``SpepEnv`` shows the agent), asks
the agent's compiled policy for the slot's action (:func:`act`), draws the slot's uniforms ahead
from the simulator's streams and runs the slot (:func:`spep_gym.compiled.phases.step`). The
policies reproduce the agents to the last bit (the ``random`` agent's draws included), so a
compiled run gives the result row of :func:`agents.run_episode` for the same agent, config and
seed.

A policy is a compiled function ``f(s, p, pol, obs, rng)`` that writes the slot's action into
``pol.action`` from the state ``s``, the params ``p``, the observation ``obs`` and its own arrays
(settings and memory in ``pol``); :func:`act` calls it by ``pol.kind`` (docs/compiled.md, "Compiled
agents: how to add one").
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np
from numba import njit

from agents.compiled_managed import managed
from spep_gym.compiled import cache_dir, phases
from spep_gym.compiled.episode import Observation, draw_ahead, fill_observation
from spep_gym.compiled.state import T_NOW, Params, State


def agents_cache_dir(sources: Path = Path(__file__).parent) -> str:
    """This module's compiled cache: in ``spep_gym.compiled``'s, named by ``compiled*.py`` here.

    numba checks only the file of a cached function: :func:`run` holds the machine code of the
    policies it calls, here and in :mod:`agents.compiled_managed`, so an edit of either starts a
    new directory instead of loading stale code (as ``spep_gym.compiled.cache_dir`` does for the
    engine's sources).
    """
    digest = hashlib.sha256()
    for path in sorted(sources.glob("compiled*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return os.path.join(cache_dir(), f"agents-{digest.hexdigest()[:16]}")


# read when a function below is decorated; set back at the end of the module
_CACHE_DIR = numba.config.CACHE_DIR  # type: ignore[attr-defined]
numba.config.CACHE_DIR = agents_cache_dir()  # type: ignore[attr-defined]

__all__ = [
    "KINDS",
    "MANAGED",
    "NONE",
    "ORACLE",
    "RANDOM",
    "SPEP_FREQUENCY",
    "Policy",
    "act",
    "choice",
    "run",
]

# The policies (Policy.kind).
NONE = 0  # pre-positions nothing: noop and the three routing baselines
RANDOM = 1  # agents.baselines.RandomAgent
SPEP_FREQUENCY = 2  # agents.spep.SpepAgent with agents.predictors.FrequencyPredictor
ORACLE = 3  # agents.oracle.OracleAgent
MANAGED = 4  # agents.controls.ManagedAgent: agents.compiled_managed.managed
#: The policy kinds by name.
KINDS = {
    "none": NONE, "random": RANDOM, "spep_frequency": SPEP_FREQUENCY, "oracle": ORACLE,
    "managed": MANAGED,
}  # fmt: skip


class Policy(NamedTuple):
    """A compiled agent: which policy, its settings and its memory (one record type for all)."""

    kind: int  # KINDS
    action: np.ndarray  # (action_len,) int64, the slot's action, written by the policy
    ints: np.ndarray  # (I,) int64 settings (per kind, see the policy)
    floats: np.ndarray  # (F,) float64 settings
    memory: np.ndarray  # (R, C) int64, kept across the slots of an episode (new each episode)
    table: np.ndarray  # (R, C) float64, the same for floats (e.g. values computed ahead)
    scratch: np.ndarray  # (max(P, action_len),) int64, free within a slot
    values: np.ndarray  # (P,) float64, free within a slot


# ---------------------------------------------------------------------- the episode
@njit(cache=True)
def run(
    s: State,
    p: Params,
    pol: Policy,
    obs: Observation,
    gen_rng: np.random.Generator,
    swap_rng: np.random.Generator,
    rng: np.random.Generator,
) -> None:
    """Run the episode of ``s`` (reset: phases 1-3 of slot 0 done) to its end with ``pol``.

    ``gen_rng`` and ``swap_rng`` are the simulator's generation and swap streams, ``rng`` the
    agent's own (the ``random`` policy's; any generator for the others).
    """
    while s.counts[T_NOW] < p.episode_slots:
        if pol.kind != NONE:
            fill_observation(s, p, obs)
        act(s, p, pol, obs, rng)
        draw_ahead(s, p, gen_rng, swap_rng)
        phases.step(s, p, pol.action)


@njit(cache=True)
def act(s: State, p: Params, pol: Policy, obs: Observation, rng: np.random.Generator) -> None:
    """The slot's action of the policy ``pol.kind`` into ``pol.action``."""
    if pol.kind == RANDOM:
        random_pairs(s, p, pol, obs, rng)
    elif pol.kind == SPEP_FREQUENCY:
        spep_frequency(s, p, pol, obs, rng)
    elif pol.kind == ORACLE:
        oracle(s, p, pol, obs, rng)
    elif pol.kind == MANAGED:
        managed(s, p, pol, obs, rng)
    else:
        pol.action[:] = obs.pf.shape[0]  # P: none


# ---------------------------------------------------------------------- random
@njit(cache=True)
def choice(rng: np.random.Generator, population: np.ndarray, k: int, out: np.ndarray) -> None:
    """``rng.choice(population, size=k, replace=False)`` into ``out[:k]``, numpy's draws exactly.

    numpy's ``Generator.choice`` without replacement and without weights: Floyd's algorithm with
    a hash set, then a shuffle of the k picks (a tail shuffle of the whole population when it
    holds more than 10000 and k more than a 50th of it); every bounded draw is
    ``rng.integers(0, j + 1)`` (numpy's Lemire draw, which numba's generator reproduces).
    """
    n = population.shape[0]
    if n > 10000 and k > n // 50:
        idx = np.arange(n)
        for i in range(n - 1, max(n - k, 1) - 1, -1):
            other = int(rng.integers(0, i + 1))
            idx[i], idx[other] = idx[other], idx[i]
        for i in range(k):
            out[i] = population[idx[n - k + i]]
        return
    picks = np.empty(k, np.int64)
    set_size = int(1.2 * k)
    mask = 0  # the smallest 2^b - 1 >= set_size
    while mask < set_size:
        mask = 2 * mask + 1
    table = np.full(mask + 1, -1, np.int64)
    for j in range(n - k, n):
        val = int(rng.integers(0, j + 1))
        loc = val & mask
        while table[loc] != -1 and table[loc] != val:
            loc = (loc + 1) & mask
        if table[loc] == -1:  # val not picked yet
            table[loc] = val
            picks[j - n + k] = val
        else:  # it was: pick j instead
            loc = j & mask
            while table[loc] != -1:
                loc = (loc + 1) & mask
            table[loc] = j
            picks[j - n + k] = j
    for i in range(k - 1, 0, -1):
        other = int(rng.integers(0, i + 1))
        picks[i], picks[other] = picks[other], picks[i]
    for i in range(k):
        out[i] = population[picks[i]]


@njit(cache=True)
def random_pairs(
    s: State, p: Params, pol: Policy, obs: Observation, rng: np.random.Generator
) -> None:
    """``random``: up to ``action_len`` distinct pairs whose path holds pairs now, in random order.

    :class:`agents.baselines.RandomAgent`: ``rng.choice(feasible, size=k, replace=False)``.
    """
    num_pairs = obs.path_fidelity.shape[0]
    pol.action[:] = num_pairs
    feasible = pol.scratch
    m = 0
    for a in range(num_pairs):
        if obs.path_fidelity[a] > 0:
            feasible[m] = a
            m += 1
    if m:
        choice(rng, feasible[:m], min(pol.action.shape[0], m), pol.action)


# ---------------------------------------------------------------------- spep-frequency
@njit(cache=True)
def _count_slot(s: State, pol: Policy, slot: int, sign: int, slots_per_day: int) -> None:
    """Add (``sign`` 1) or remove (-1) the requests of ``slot`` in the counts of its hour."""
    b = (slot % slots_per_day) * 24 // slots_per_day
    total = pol.memory.shape[1] - 1  # the last column counts the hour's requests
    lo, hi = s.starts[slot], s.starts[slot + 1]
    for r in range(lo, hi):
        pol.memory[b, s.pair[r]] += sign
    pol.memory[b, total] += sign * (hi - lo)


@njit(cache=True)
def spep_frequency(
    s: State, p: Params, pol: Policy, obs: Observation, rng: np.random.Generator
) -> None:
    """``spep-frequency``: the frequency predictor (paper eq. 3) and Algorithm 2.

    Settings: ``ints`` = (history_slots, -1 for all history; slots_per_day), ``floats`` =
    (threshold, min_fidelity); ``memory`` (24, P + 1): the requests of each pair (and of all, in
    the last column) by hour of day (:class:`agents.predictors.FrequencyPredictor`, fed the slot's
    arrivals as :class:`agents.spep.SpepAgent` feeds it).
    """
    t = s.counts[T_NOW]
    history, slots_per_day = pol.ints[0], pol.ints[1]
    _count_slot(s, pol, t, 1, slots_per_day)
    if history > 0 and t - history >= 0:  # the window keeps the last ``history`` slots
        _count_slot(s, pol, t - history, -1, slots_per_day)
    b = (t % slots_per_day) * 24 // slots_per_day
    num_pairs = obs.path_fidelity.shape[0]
    total = pol.memory[b, num_pairs]
    probability = pol.values
    for a in range(num_pairs):
        probability[a] = 0.0 if total == 0 else min(max(pol.memory[b, a] / float(total), 0.0), 1.0)
    algorithm2(probability, obs, pol.floats[0], pol.floats[1], pol.scratch, pol.action)


@njit(cache=True)
def algorithm2(
    probability: np.ndarray,
    obs: Observation,
    threshold: float,
    min_fidelity: float,
    candidates: np.ndarray,
    action: np.ndarray,
) -> None:
    """:func:`agents.spep.algorithm2` into ``action`` (``candidates``: (P,) scratch).

    Candidates by ascending pair, ordered by score (probability x the observation's path
    fidelity) high first with a stable sort, so equal scores keep the lower pair first.
    """
    num_pairs = probability.shape[0]
    m = 0
    for a in range(num_pairs):
        f = np.float64(obs.path_fidelity[a])
        if (
            probability[a] >= threshold
            and obs.prepositioned[a] + obs.prepositioned_in_flight[a] == 0
            and f >= min_fidelity
            and f > 0.0
        ):
            candidates[m] = a
            m += 1
    score = np.empty(m)
    for i in range(m):
        a = candidates[i]
        score[i] = -(probability[a] * np.float64(obs.path_fidelity[a]))
    order = np.argsort(score, kind="mergesort")
    action[:] = num_pairs
    for i in range(min(m, action.shape[0])):
        action[i] = candidates[order[i]]


# ---------------------------------------------------------------------- spep-oracle
@njit(cache=True)
def _sooner(s: State, a: int, b: int) -> bool:
    """The oracle's order: earlier arrival, then higher priority, then request order."""
    if s.arrival[a] != s.arrival[b]:
        return s.arrival[a] < s.arrival[b]
    if s.priority[a] != s.priority[b]:
        return -s.priority[a] < -s.priority[b]
    return a < b


@njit(cache=True)
def oracle(s: State, p: Params, pol: Policy, obs: Observation, rng: np.random.Generator) -> None:
    """``spep-oracle``: the pairs of the requests of the next ``ints[0]`` slots (the workload's).

    :class:`agents.oracle.OracleAgent`: earliest arrival first, then higher priority, then request
    order; each node pair once; pairs held or in flight skipped; at most ``action_len``.
    """
    t = s.counts[T_NOW]
    slots = s.starts.shape[0] - 1
    lo = s.starts[min(t + 1, slots)]
    hi = s.starts[min(t + 1 + pol.ints[0], slots)]
    ids = np.empty(hi - lo, np.int64)
    m = 0
    for r in range(lo, hi):  # insertion sort: the window holds a few requests
        i = m
        while i > 0 and _sooner(s, r, ids[i - 1]):
            ids[i] = ids[i - 1]
            i -= 1
        ids[i] = r
        m += 1
    num_pairs = obs.path_fidelity.shape[0]
    action = pol.action
    action[:] = num_pairs
    chosen = 0
    for i in range(m):
        if chosen >= action.shape[0]:
            break
        a = s.pair[ids[i]]
        if obs.prepositioned[a] + obs.prepositioned_in_flight[a] > 0:
            continue
        seen = False
        for j in range(chosen):
            if action[j] == a:
                seen = True
        if not seen:
            action[chosen] = a
            chosen += 1


numba.config.CACHE_DIR = _CACHE_DIR  # type: ignore[attr-defined]
