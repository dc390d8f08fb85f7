"""Routing strategies (SPEC section 5), compiled, with the tie rules of :mod:`spep_gym.routing`.

Each writes the links of its path into ``out`` and returns the hop count, or -1 when there is none.
"""

from __future__ import annotations

import numpy as np

from spep_gym.compiled.jit import inner
from spep_gym.compiled.state import State


@inner
def _unwind(s: State, d: int, out: np.ndarray) -> int:
    """The links from the search's root to ``d`` (by ``parent_*``) into ``out``; their count."""
    hops = 0
    node = d
    while s.parent_node[node] >= 0:
        hops += 1
        node = s.parent_node[node]
    node = d
    for i in range(hops - 1, -1, -1):
        out[i] = s.parent_link[node]
        node = s.parent_node[node]
    return hops


@inner
def static(s: State, src: int, dst: int, out: np.ndarray) -> int:
    """The static path of (src, dst), if all its links hold a pair now (``reactive``)."""
    n = s.seen.shape[0]
    i, j = min(src, dst), max(src, dst)
    a = i * (2 * n - i - 1) // 2 + (j - i - 1)
    hops = s.static_hops[a]
    for k in range(hops):
        e = s.static_paths[a, k]
        if not s.usable[e]:
            return -1
        out[k] = e
    return hops


@inner
def breadth_first(s: State, src: int, dst: int) -> bool:
    """Breadth-first from ``src`` over usable links, neighbours in ascending id.

    ``parent_*`` hold each node's first discoverer; the search stops on reaching ``dst`` (-1:
    it reaches every node it can). Whether it reached ``dst``.
    """
    s.seen[:] = 0
    s.seen[src] = 1
    s.parent_node[src] = -1
    head, tail = 0, 1
    s.frontier[0] = src
    while head < tail:
        u = s.frontier[head]
        head += 1
        for k in range(s.nbr_start[u], s.nbr_start[u + 1]):
            v, e = s.nbr_node[k], s.nbr_link[k]
            if s.usable[e] and not s.seen[v]:
                s.seen[v] = 1
                s.parent_node[v] = u
                s.parent_link[v] = e
                if v == dst:
                    return True
                s.frontier[tail] = v
                tail += 1
    return False


@inner
def shortest(s: State, src: int, dst: int, out: np.ndarray) -> int:
    """Fewest hops over usable links: breadth-first, neighbours in ascending id."""
    if src == dst:
        return 0
    return _unwind(s, dst, out) if breadth_first(s, src, dst) else -1


@inner
def highest_fidelity(s: State, src: int, dst: int, out: np.ndarray) -> int:
    """Highest end-to-end fidelity over usable links: Dijkstra on ``cost``.

    The next node is the least (distance, node id), the order in which the heap of
    :func:`spep_gym.routing.highest_fidelity` pops; a predecessor is replaced only on a strictly
    shorter distance.
    """
    n = s.seen.shape[0]
    s.seen[:] = 0  # 0 not reached, 1 reached, 2 done
    s.seen[src] = 1
    s.dist[src] = 0.0
    s.parent_node[src] = -1
    while True:
        u = -1
        for v in range(n):
            if s.seen[v] == 1 and (u < 0 or s.dist[v] < s.dist[u]):
                u = v
        if u < 0:
            return -1
        if u == dst:
            return _unwind(s, dst, out)
        s.seen[u] = 2
        for k in range(s.nbr_start[u], s.nbr_start[u + 1]):
            v, e = s.nbr_node[k], s.nbr_link[k]
            if not s.usable[e] or s.seen[v] == 2:
                continue
            dv = s.dist[u] + s.cost[e]
            if s.seen[v] == 0 or dv < s.dist[v]:
                s.seen[v] = 1
                s.dist[v] = dv
                s.parent_node[v] = u
                s.parent_link[v] = e


@inner
def route(s: State, routing: int, src: int, dst: int, out: np.ndarray) -> int:
    """The on-demand strategy ``routing`` (state.ROUTING): reactive, shortest or highest_fidelity."""
    if routing == 0:
        return static(s, src, dst, out)
    if routing == 1:
        return shortest(s, src, dst, out)
    return highest_fidelity(s, src, dst, out)
