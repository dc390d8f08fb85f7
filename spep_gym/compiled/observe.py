"""What the agent sees (the observation of :class:`spep_gym.env.SpepEnv`), compiled.

The arrays are the caller's, zeroed: nothing is allocated here. The values equal those the env
builds from the scalar simulator, float32 rounding included.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from spep_gym.compiled import laws, routing
from spep_gym.compiled.jit import inner
from spep_gym.compiled.state import HELD_LEN, QUEUE_LEN, T_NOW, Params, State

#: Upper bound of ``demand`` and ``arrivals`` (``spep_gym.env.DEMAND_OBS_MAX``).
DEMAND_OBS_MAX = np.float32(1e6)


@inner
def slide_demand(
    t: int,
    episode_slots: int,
    starts: np.ndarray,
    pair: np.ndarray,
    demand_slots: int,
    window: np.ndarray,
    arrived: np.ndarray,
    demand: np.ndarray,
    arrivals: np.ndarray,
) -> None:
    """The demand window slid to slot ``t``, as ``SpepEnv`` slides it.

    ``arrived`` gets slot ``t``'s requests per node pair, ``window`` (unclipped) adds them and drops
    those of ``demand_slots`` slots ago; ``demand`` and ``arrivals`` are the two, clipped to
    :data:`DEMAND_OBS_MAX` (``arrivals`` may be ``arrived`` itself).
    """
    arrived[:] = 0.0
    if t < episode_slots:
        for r in range(starts[t], starts[t + 1]):
            arrived[pair[r]] += np.float32(1.0)
        for a in range(window.shape[0]):
            window[a] += arrived[a]
        old = t - demand_slots
        if old >= 0:
            for r in range(starts[old], starts[old + 1]):
                window[pair[r]] -= np.float32(1.0)
    for a in range(window.shape[0]):
        demand[a] = min(window[a], DEMAND_OBS_MAX)
        arrivals[a] = min(arrived[a], DEMAND_OBS_MAX)


@inner
def _on_arrival(p: Params, product: float, delay: int) -> float:
    """The path fidelity of ``product``, decayed for the signalling ``delay`` (slots).

    It takes the delay, not the state record: a call that passes the record costs about 0.25 us
    (45 of them took 11 us of the 16 us of a paper-preset observation).
    """
    fidelity = laws.fidelity_from_product(product, p.swap_model)
    if not p.latency:
        return fidelity
    return laws.decayed(fidelity, p.preposition_rho, delay, p.decay_model)


@njit(cache=True)
def preposition_fidelity(s: State, p: Params, out: np.ndarray) -> None:
    """(P,) fidelity a pre-position of each node pair would get now into ``out``; 0: it cannot.

    Static paths multiply their links' factors hop by hop from the first (as the scalar engine's
    product over the padded path matrix does); "available" paths are breadth-first from the lower
    node, multiplied from the higher node back. With signalling latency the pair is usable from
    t + delay, decayed meanwhile.
    """
    # the arrays taken out of the record once: an access in a loop costs a reference count each
    paths, usable, factor, delay = s.static_paths, s.usable, s.factor, s.delay
    num_pairs, H = paths.shape
    if p.preposition_path == 0:
        hops = s.static_hops
        for a in range(num_pairs):
            product = 1.0
            ok = True
            for k in range(H):
                e = paths[a, k]
                if not usable[e]:
                    ok = False
                    break
                product = factor[e] if k == 0 else product * factor[e]
            out[a] = _on_arrival(p, product, delay[hops[a]]) if ok else 0.0
        return
    seen, parent_node, parent_link = s.seen, s.parent_node, s.parent_link
    n = seen.shape[0]
    a = 0
    for i in range(n):
        routing.breadth_first(s, i, -1)  # every node (the predecessor: first discoverer)
        for j in range(i + 1, n):
            if not seen[j]:
                out[a] = 0.0
            else:
                node = j
                product = factor[parent_link[node]]
                node = parent_node[node]
                h = 1
                while node != i:
                    product *= factor[parent_link[node]]
                    node = parent_node[node]
                    h += 1
                out[a] = _on_arrival(p, product, delay[h])
            a += 1


@njit(cache=True)
def observe(
    s: State,
    p: Params,
    link_pair: np.ndarray,
    link_pairs: np.ndarray,
    link_fidelity: np.ndarray,
    link_age: np.ndarray,
    prepositioned: np.ndarray,
    prepositioned_fidelity: np.ndarray,
    queue: np.ndarray,
    queue_mask: np.ndarray,
) -> None:
    """The state's part of the observation into the caller's zeroed float32 arrays.

    ``link_pair`` (E,) is the node pair of each link; ``queue`` is (Q, 6): source, destination,
    F_req, slots left, slots waited, priority of the first Q queued requests.
    """
    t = s.counts[T_NOW]
    last = s.fidelity_table.shape[1] - 1
    for e in range(s.stored.shape[0]):
        a = link_pair[e]
        link_pairs[a] = s.stored[e]
        if s.stored[e] > 0:
            age = t - s.youngest[e]
            link_fidelity[a] = s.fidelity_table[e, min(age, last)]
            link_age[a] = age
    for i in range(s.counts[HELD_LEN]):
        a = s.held_pair[i]
        f = laws.decayed(s.held_fidelity[i], p.preposition_rho, t - s.held_placed[i], p.decay_model)
        prepositioned[a] += 1.0
        if f > prepositioned_fidelity[a]:
            prepositioned_fidelity[a] = f
    for k in range(min(s.counts[QUEUE_LEN], queue.shape[0])):
        r = s.queue[k]
        queue[k, 0] = s.source[r]
        queue[k, 1] = s.destination[r]
        queue[k, 2] = s.F_req[r]
        queue[k, 3] = s.deadline[r] - t
        queue[k, 4] = t - s.arrival[r]
        queue[k, 5] = s.priority[r]
        queue_mask[k] = 1.0


@njit(cache=True)
def observe_all(
    s: State,
    p: Params,
    link_pair: np.ndarray,
    link_pairs: np.ndarray,
    link_fidelity: np.ndarray,
    link_age: np.ndarray,
    prepositioned: np.ndarray,
    prepositioned_fidelity: np.ndarray,
    queue: np.ndarray,
    queue_mask: np.ndarray,
    path_fidelity: np.ndarray,
) -> None:
    """:func:`observe` and :func:`preposition_fidelity` (into ``path_fidelity``, float64)."""
    observe(
        s, p, link_pair, link_pairs, link_fidelity, link_age, prepositioned,
        prepositioned_fidelity, queue, queue_mask,
    )  # fmt: skip
    preposition_fidelity(s, p, path_fidelity)
