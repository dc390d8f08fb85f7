"""Signalling latency (SPEC section 9), compiled: swaps in flight and routing on delivered fidelity.

With ``signalling_latency > 0`` an h-link swap decided at slot t is known to the end nodes at
``t + delay[h]``: the swap is *in flight* until then (the ``flight_*`` arrays of :class:`State`,
in dispatch order, as :attr:`spep_gym.simulator.Simulator.in_flight`), and its links generate
nothing through that slot (``busy_until``). Phase 1 receives the outcomes
(:func:`spep_gym.compiled.phases.receive_outcomes`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from spep_gym.compiled import laws
from spep_gym.compiled.jit import inner
from spep_gym.compiled.state import (
    PREPOSITIONS_IN_FLIGHT,
    REQUESTS_IN_FLIGHT,
    T_NOW,
    Params,
    State,
)


@inner
def in_flight(s: State) -> int:
    """Swaps in flight now."""
    return s.counts[REQUESTS_IN_FLIGHT] + s.counts[PREPOSITIONS_IN_FLIGHT]


@inner
def dispatch(
    s: State, path: np.ndarray, hops: int, pair: int, fidelity: float, ok: bool, request: int
) -> None:
    """An ``hops``-link swap decided now is on its way; its links wait for it (generate nothing).

    ``request`` is the request it serves (-1: a pre-position of node pair ``pair``); a failed
    swap (not ``ok``) is stored with fidelity NaN and counted when its outcome arrives.
    """
    t = s.counts[T_NOW]
    due = t + s.delay[hops]
    k = in_flight(s)
    s.flight_due[k] = due
    s.flight_placed[k] = t
    s.flight_pair[k] = pair
    s.flight_hops[k] = hops
    s.flight_fidelity[k] = fidelity if ok else np.nan
    s.flight_request[k] = request
    s.counts[PREPOSITIONS_IN_FLIGHT if request < 0 else REQUESTS_IN_FLIGHT] += 1
    for i in range(hops):
        e = path[i]
        s.busy_until[e] = max(s.busy_until[e], due)


@inner
def delivered(s: State, p: Params, fidelity: float, hops: int) -> float:
    """The fidelity a pair swapped now at ``fidelity`` over ``hops`` links has on arrival."""
    delay = s.delay[hops]
    if delay == 0:
        return fidelity
    return laws.decayed(fidelity, p.preposition_rho, delay, p.decay_model)


@inner
def highest_delivered(s: State, p: Params, src: int, dst: int, out: np.ndarray) -> int:
    """Highest fidelity *on arrival* over usable links (:func:`spep_gym.routing.highest_delivered_fidelity`).

    The best cost for every exact hop count h (breadth-first layers: ``layer_cost[h]``, inf where
    a node is not reached in h hops; nodes and neighbours in ascending id, an entry replaced only
    on a strictly lower cost); the h of highest delivered fidelity wins (ties: fewer hops). The
    links of its path go into ``out``; the hop count is returned (-1: none).
    """
    if src == dst:
        return 0
    n = s.seen.shape[0]
    cost, parent_node, parent_link = s.layer_cost, s.layer_parent_node, s.layer_parent_link
    cost[0, :] = np.inf
    cost[0, src] = 0.0
    best_f, best_h = -np.inf, 0
    for h in range(1, n):
        if delivered(s, p, laws.fidelity_from_product(1.0, p.swap_model), h) <= best_f:
            break  # even a lossless path of h hops arrives worse than the best so far
        cost[h, :] = np.inf
        reached = False
        for u in range(n):
            du = cost[h - 1, u]
            if du == np.inf:
                continue
            for k in range(s.nbr_start[u], s.nbr_start[u + 1]):
                v, e = s.nbr_node[k], s.nbr_link[k]
                if s.usable[e]:
                    dv = du + s.cost[e]
                    if dv < cost[h, v]:
                        cost[h, v] = dv
                        parent_node[h, v] = u
                        parent_link[h, v] = e
                        reached = True
        if not reached:
            break
        if cost[h, dst] < np.inf:
            product = math.exp(-cost[h, dst])
            f = delivered(s, p, laws.fidelity_from_product(product, p.swap_model), h)
            if f > best_f:
                best_f, best_h = f, h
    if best_h == 0:
        return -1
    node = dst
    for h in range(best_h, 0, -1):
        out[h - 1] = parent_link[h, node]
        node = parent_node[h, node]
    return best_h


@njit(cache=True)
def observe(
    s: State,
    link_pair: np.ndarray,
    link_busy: np.ndarray,
    prepositioned_in_flight: np.ndarray,
    requests_in_flight: np.ndarray,
) -> None:
    """The observation keys of swaps in flight into the caller's zeroed float32 (P,) arrays.

    ``link_busy``: slots each link still waits for an outcome; the others count the swaps in
    flight per node pair, pre-positions and on-demand deliveries.
    """
    t = s.counts[T_NOW]
    for e in range(s.busy_until.shape[0]):
        link_busy[link_pair[e]] = max(s.busy_until[e] - t, 0)
    for i in range(in_flight(s)):
        if s.flight_request[i] < 0:
            prepositioned_in_flight[s.flight_pair[i]] += 1.0
        else:
            requests_in_flight[s.flight_pair[i]] += 1.0
