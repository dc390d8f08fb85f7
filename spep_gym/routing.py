"""Routing strategies (SPEC section 5), chosen by name: each proposes one path or none.

A path is a list of link indices. Every strategy is deterministic; the tie rules:

- ``reactive``: the static path of :mod:`spep_gym.topology` (breadth-first, neighbours in ascending id,
  first discoverer is the predecessor), usable only when all its links hold a pair.
- ``shortest``: the same breadth-first rule over the links that hold a pair now.
- ``highest_fidelity``: Dijkstra on ``-log(factor)`` over the links that hold a pair now, heap keyed by
  (distance, node id), a predecessor replaced only on a strictly shorter distance. With signalling
  latency the delivered pair decays for a delay that grows with the hop count, and the simulator
  uses :func:`highest_delivered_fidelity` instead (best cost per hop count, then the best arrival).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Sequence

from spep_gym.topology import Network

Path = list[int]
Strategy = Callable[[Network, Sequence[bool], Sequence[float], int, int], Path | None]


def static_path(net: Network, s: int, d: int) -> Path:
    """The topology's hop-count shortest path between s and d (fixed for the episode)."""
    a = int(net.pair_index[s, d])
    return net.static_paths[a, : net.static_hops[a]].tolist()


def reactive(
    net: Network, usable: Sequence[bool], cost: Sequence[float], s: int, d: int
) -> Path | None:
    """The static (hop-count shortest) path, if all its links hold a pair now."""
    path = static_path(net, s, d)
    return path if all(usable[e] for e in path) else None


def shortest(
    net: Network, usable: Sequence[bool], cost: Sequence[float], s: int, d: int
) -> Path | None:
    """Fewest hops over usable links (breadth-first search)."""
    if s == d:
        return []
    parent: dict[int, tuple[int, int]] = {s: (-1, -1)}
    frontier = deque([s])
    neighbours = net.neighbours
    while frontier:
        u = frontier.popleft()
        for v, e in neighbours[u]:
            if usable[e] and v not in parent:
                parent[v] = (u, e)
                if v == d:
                    return _unwind(parent, d)
                frontier.append(v)
    return None


def highest_fidelity(
    net: Network, usable: Sequence[bool], cost: Sequence[float], s: int, d: int
) -> Path | None:
    """Highest end-to-end fidelity over usable links: Dijkstra on ``cost = -log(factor)``."""
    dist = {s: 0.0}
    parent: dict[int, tuple[int, int]] = {s: (-1, -1)}
    done: set[int] = set()
    heap = [(0.0, s)]
    neighbours = net.neighbours
    while heap:
        du, u = heapq.heappop(heap)
        if u in done:
            continue
        if u == d:
            return _unwind(parent, d)
        done.add(u)
        for v, e in neighbours[u]:
            if not usable[e] or v in done:
                continue
            dv = du + cost[e]
            if v not in dist or dv < dist[v]:
                dist[v] = dv
                parent[v] = (u, e)
                heapq.heappush(heap, (dv, v))
    return None


def highest_delivered_fidelity(
    net: Network,
    usable: Sequence[bool],
    cost: Sequence[float],
    s: int,
    d: int,
    delivered: Callable[[int, float], float],
) -> Path | None:
    """Highest fidelity *on arrival* over usable links, when arrival decays with the hop count.

    With signalling latency a path of h links delivers ``delivered(h, sum of its costs)``, which
    falls with h for equal costs, so plain Dijkstra is not enough: the best cost is found for every
    exact hop count h (breadth-first layers, a node's entry replaced only on a strictly lower cost,
    nodes and neighbours in ascending id), and the h of highest delivered fidelity wins (ties: fewer
    hops). The winner is a simple path: removing a cycle lowers neither its product nor its delay.
    """
    if s == d:
        return []
    layer: dict[int, float] = {s: 0.0}
    parents: list[dict[int, tuple[int, int]]] = []
    best_f, best_h = -math.inf, 0
    neighbours = net.neighbours
    for h in range(1, net.n):
        if delivered(h, 0.0) <= best_f:
            break  # even a lossless path of h hops arrives worse than the best so far
        nxt: dict[int, float] = {}
        parent: dict[int, tuple[int, int]] = {}
        for u in sorted(layer):
            du = layer[u]
            for v, e in neighbours[u]:
                if usable[e]:
                    dv = du + cost[e]
                    if v not in nxt or dv < nxt[v]:
                        nxt[v] = dv
                        parent[v] = (u, e)
        if not nxt:
            break
        parents.append(parent)
        if d in nxt:
            f = delivered(h, nxt[d])
            if f > best_f:
                best_f, best_h = f, h
        layer = nxt
    if not best_h:
        return None
    path: Path = []
    node = d
    for h in range(best_h, 0, -1):
        node, e = parents[h - 1][node]
        path.append(e)
    path.reverse()
    return path


def _unwind(parent: dict[int, tuple[int, int]], d: int) -> Path:
    path: Path = []
    node = d
    while True:
        prev, e = parent[node]
        if prev < 0:
            break
        path.append(e)
        node = prev
    path.reverse()
    return path


STRATEGIES: dict[str, Strategy] = {
    "reactive": reactive,
    "shortest": shortest,
    "highest_fidelity": highest_fidelity,
}
