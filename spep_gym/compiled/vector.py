"""B networks of the compiled engine stepped in one compiled call, ``prange`` over the networks.

The networks' states (:class:`~spep_gym.compiled.state.State`, one record of arrays each) are held
in a numba typed ``List``; :func:`step_rows` runs :func:`spep_gym.compiled.phases.step` on each
network of ``rows`` and :func:`after_rows` writes its part of the observation, its demand window,
its action mask and its counters into the caller's (B, ...) arrays, the rows in parallel. The
draws stay the scalar simulator's: each network's buffers are refilled from its own streams in
Python, only for the networks whose buffers ran low (``need``), every GEN_CHUNK slots.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from spep_gym.compiled import observe, phases
from spep_gym.compiled.state import (
    GEN_CHUNK,
    GEN_ROW,
    HELD_LEN,
    NUM_COUNTS,
    SWAP_END,
    SWAP_POS,
    T_NOW,
    Params,
    State,
)


@njit(cache=True)
def _after(
    s: State,
    p: Params,
    b: int,
    demand_slots: int,
    link_pair: np.ndarray,
    counts: np.ndarray,
    sums: np.ndarray,
    need: np.ndarray,
    obs: tuple[np.ndarray, ...],
    demand: np.ndarray,
    pf: np.ndarray,
    mask: np.ndarray,
) -> None:
    """Network ``b``'s row of every output after its step or reset (see :func:`after_rows`)."""
    (link_pairs, link_fidelity, link_age, prepositioned, prepositioned_fidelity, queue,
     queue_mask, path_fidelity, arrivals, demand_obs) = obs  # fmt: skip
    c = s.counts
    counts[b, :] = c[:NUM_COUNTS]
    sums[b, :] = s.sums
    reserve = (s.swap_u.shape[0] - 1) // 2
    need[b] = c[GEN_ROW] >= GEN_CHUNK or (
        p.swap_success < 1.0 and c[SWAP_END] - c[SWAP_POS] < reserve
    )
    for x in (link_pairs, link_fidelity, link_age, prepositioned, prepositioned_fidelity):
        x[b, :] = 0.0
    queue[b, :, :] = 0.0
    queue_mask[b, :] = 0.0
    observe.observe_all(
        s, p, link_pair[b], link_pairs[b], link_fidelity[b], link_age[b], prepositioned[b],
        prepositioned_fidelity[b], queue[b], queue_mask[b], pf[b],
    )  # fmt: skip
    num_pairs = pf.shape[1]
    for a in range(num_pairs):
        path_fidelity[b, a] = np.float32(pf[b, a])
    observe.slide_demand(
        c[T_NOW], p.episode_slots, s.starts, s.pair, demand_slots, demand[b], arrivals[b],
        demand_obs[b], arrivals[b],
    )  # fmt: skip
    # the action mask: every entry may say "none"; a pair where it can be placed now
    full = c[HELD_LEN] >= p.max_prepositioned or p.max_new_prepositions == 0
    for k in range(mask.shape[1]):
        for a in range(num_pairs):
            mask[b, k, a] = not full and pf[b, a] > 0.0
        mask[b, k, num_pairs] = True


@njit(cache=True, parallel=True)
def after_rows(
    states: list[State],
    p: Params,
    rows: np.ndarray,
    demand_slots: int,
    link_pair: np.ndarray,
    counts: np.ndarray,
    sums: np.ndarray,
    need: np.ndarray,
    obs: tuple[np.ndarray, ...],
    demand: np.ndarray,
    pf: np.ndarray,
    mask: np.ndarray,
) -> None:
    """The outputs of networks ``rows`` just reset (their demand windows start empty).

    ``link_pair`` (B, E_max): each link's node pair; ``counts`` (B, NUM_COUNTS) and ``sums``
    (B, NUM_SUMS): the states' counters; ``need`` (B,): the draw buffers need a refill before the
    next step; ``obs``: the float32 observation keys link_pairs, link_fidelity, link_age,
    prepositioned, prepositioned_fidelity (B, P), queue (B, Q, 6), queue_mask (B, Q),
    path_fidelity, arrivals, demand (B, P); ``demand`` (B, P) float32: the window's counts;
    ``pf`` (B, P) float64: the pre-position fidelities; ``mask`` (B, action_len, P + 1) bool.
    """
    for i in prange(rows.shape[0]):
        b = rows[i]
        demand[b, :] = 0.0
        _after(states[b], p, b, demand_slots, link_pair, counts, sums, need, obs, demand, pf, mask)


@njit(cache=True, parallel=True)
def step_rows(
    states: list[State],
    p: Params,
    rows: np.ndarray,
    actions: np.ndarray,
    demand_slots: int,
    link_pair: np.ndarray,
    counts: np.ndarray,
    sums: np.ndarray,
    need: np.ndarray,
    obs: tuple[np.ndarray, ...],
    demand: np.ndarray,
    pf: np.ndarray,
    mask: np.ndarray,
) -> None:
    """One env step of networks ``rows`` (``actions`` (B, action_len) int64), then their outputs.

    The arguments are :func:`after_rows`'; the caller has refilled the draws where ``need`` said.
    """
    for i in prange(rows.shape[0]):
        b = rows[i]
        s = states[b]
        phases.step(s, p, actions[b])
        _after(s, p, b, demand_slots, link_pair, counts, sums, need, obs, demand, pf, mask)
