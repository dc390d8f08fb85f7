"""Batched graph searches: many small searches at once, each over its own network's links.

Every search of a batch ``X`` reads a *neighbour table* ``nbr`` of shape ``(X, n, D)``: the neighbours
of each node in ascending id, padded with the sentinel ``n`` (a missing or unusable link is the
sentinel too). A search returns, per node, the position ``j`` in that list of the neighbour it was
reached from (``-1``: not reached), so the caller maps it to a node and a link with its own tables.

The tie rules are the scalar core's (:mod:`spep_gym.routing`, :mod:`spep_gym.topology`):

- :func:`bfs`: a queue-based breadth-first search that pops nodes in discovery order and visits
  neighbours in ascending id; a node's predecessor is the first popped node that reaches it. A node
  is keyed by the ids along its discovery chain (``key(v) = key(parent) * n + v``), which orders each
  layer exactly as the queue does; the predecessor of ``v`` is its neighbour of lowest key in the
  previous layer.
- :func:`dijkstra`: the heap of (distance, node id) pairs with lazy deletion pops, among the unvisited
  nodes of finite distance, the one of lowest (distance, id); a predecessor is replaced only on a
  strictly shorter distance; ``du + cost`` is summed as the scalar sums it.
- :func:`layered`: the best cost of every exact hop count (the scalar's
  ``highest_delivered_fidelity``): for each node, the lowest ``du + cost`` over its neighbours in the
  previous layer, the lowest id winning ties.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Larger than any key or position; "not reached".
BIG = 1 << 62


def bfs(nbr: Tensor, src: Tensor, dst: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Breadth-first search from ``src`` over the links of ``nbr``; ``(pred_j, depth)``, both (X, n).

    ``pred_j``: position in ``nbr[x, v]`` of the node ``v`` was discovered from (-1: the source or
    unreached); ``depth``: hops from the source (-1: unreached). With ``dst`` the search stops once
    every search has reached its destination (the layers it reached are complete).
    """
    X, n, D = nbr.shape
    device = nbr.device
    rows = torch.arange(X, device=device)
    key = torch.full((X, n + 1), BIG, dtype=torch.int64, device=device)
    key[rows, src] = 0
    visited = torch.zeros((X, n), dtype=torch.bool, device=device)
    visited[rows, src] = True
    depth = torch.full((X, n), -1, dtype=torch.int64, device=device)
    depth[rows, src] = 0
    pred_j = torch.full((X, n), -1, dtype=torch.int64, device=device)
    flat = nbr.reshape(X, n * D)
    ids = torch.arange(n, device=device)
    digits = 1  # layers since the keys were last ranked: keys are below n ** digits
    for layer in range(1, n):
        if n ** (digits + 1) >= BIG:  # the next keys would overflow: rank the layer's keys
            key[:, :n] = _rank(key[:, :n])
            digits = 1
        m, j = key.gather(1, flat).view(X, n, D).min(dim=2)
        new = (m < BIG) & ~visited
        if not bool(new.any()):
            break
        key[:, :n] = torch.where(new, m * n + ids, BIG)
        digits += 1
        visited |= new
        pred_j = torch.where(new, j, pred_j)
        depth = torch.where(new, layer, depth)
        if dst is not None and bool(visited[rows, dst].all()):
            break
    return pred_j, depth


def _rank(key: Tensor) -> Tensor:
    """Each finite key's rank among the finite keys of its row (order kept, values below n)."""
    finite = key < BIG
    smaller = (key[:, None, :] < key[:, :, None]) & finite[:, None, :]
    return torch.where(finite, smaller.sum(dim=2), BIG)


def dijkstra(
    nbr: Tensor, nbr_link: Tensor, cost: Tensor, src: Tensor, dst: Tensor
) -> tuple[Tensor, Tensor]:
    """Lowest-cost search from ``src`` to ``dst``; ``(pred_node, pred_link)``, both (X, n).

    ``nbr_link`` (X, n, D): the link to each neighbour; ``cost`` (X, n, D): its cost (ignored where
    ``nbr`` is the sentinel). ``pred_node[x, v]``: the node ``v`` was last relaxed from (-1: none);
    ``dst`` is unreached (``pred_node[x, dst] == -1``) when no path exists. Each round pops one node
    per search, so at most n rounds run.
    """
    X, n, _ = nbr.shape
    device = nbr.device
    rows = torch.arange(X, device=device)
    inf = torch.tensor(torch.inf, dtype=torch.float64, device=device)
    dist = torch.full((X, n + 1), torch.inf, dtype=torch.float64, device=device)
    dist[rows, src] = 0.0
    done = torch.zeros((X, n + 1), dtype=torch.bool, device=device)
    done[:, n] = True  # the sentinel is never relaxed
    pred_node = torch.full((X, n + 1), -1, dtype=torch.int64, device=device)
    pred_link = torch.full((X, n + 1), -1, dtype=torch.int64, device=device)
    running = torch.ones(X, dtype=torch.bool, device=device)
    for _ in range(n):
        open_dist = torch.where(done[:, :n], inf, dist[:, :n])
        u = open_dist.argmin(dim=1)  # the lowest (distance, id): argmin returns the first minimum
        du = open_dist[rows, u]
        running &= (du < inf) & (u != dst)
        if not bool(running.any()):
            break
        done[rows, u] |= running
        nb = nbr[rows, u]  # (X, D)
        dv = du[:, None] + cost[rows, u]
        better = running[:, None] & ~done.gather(1, nb) & (dv < dist.gather(1, nb))
        target = torch.where(better, nb, n)  # the sentinel column takes the rest
        dist.scatter_(1, target, torch.where(better, dv, inf))
        pred_node.scatter_(1, target, torch.where(better, u[:, None], -1))
        pred_link.scatter_(1, target, torch.where(better, nbr_link[rows, u], -1))
    return pred_node[:, :n], pred_link[:, :n]


def layered(nbr: Tensor, cost: Tensor, src: Tensor, dst: Tensor) -> tuple[Tensor, Tensor]:
    """Best cost to ``dst`` with exactly h links, for h = 1 .. n-1 (walks allowed).

    Returns ``(cost_at_dst, pred_j)``: (X, n - 1) costs (inf where no walk of h links reaches
    ``dst``) and (n - 1, X, n) the predecessor position of every node in each layer.
    """
    X, n, D = nbr.shape
    device = nbr.device
    rows = torch.arange(X, device=device)
    layer_cost = torch.full((X, n + 1), torch.inf, dtype=torch.float64, device=device)
    layer_cost[rows, src] = 0.0
    flat = nbr.reshape(X, n * D)
    at_dst = torch.full((X, max(n - 1, 0)), torch.inf, dtype=torch.float64, device=device)
    preds = torch.full((max(n - 1, 0), X, n), -1, dtype=torch.int64, device=device)
    for h in range(1, n):
        cand = layer_cost.gather(1, flat).view(X, n, D) + cost
        j = cand.argmin(dim=2)  # first minimum: the lowest neighbour id wins a tie
        m = cand.gather(2, j[:, :, None])[:, :, 0]
        reached = m < torch.inf
        if not bool(reached.any()):
            break
        layer_cost[:, :n] = m
        preds[h - 1] = torch.where(reached, j, -1)
        at_dst[:, h - 1] = m[rows, dst]
    return at_dst, preds


def walk_back(
    pred_node: Tensor, pred_link: Tensor, dst: Tensor, hops: Tensor, width: int, pad: int
) -> Tensor:
    """Links of each search's path, from ``dst`` back to its source: (X, width), padded with ``pad``.

    ``pred_node`` / ``pred_link`` (X, n): the node and link each node was reached from; ``hops``
    (X,): the path's length (0: no path, all ``pad``).
    """
    X = dst.shape[0]
    device = dst.device
    rows = torch.arange(X, device=device)
    out = torch.full((X, width), pad, dtype=torch.int64, device=device)
    node = dst.clone()
    for k in range(width):
        live = hops > k
        if not bool(live.any()):
            break
        safe = torch.where(live, node, 0)
        out[:, k] = torch.where(live, pred_link[rows, safe], pad)
        node = torch.where(live, pred_node[rows, safe], node)
    return out


def reverse_paths(paths: Tensor, hops: Tensor, pad: int) -> Tensor:
    """Each row's first ``hops`` links in reverse order (the rest stays ``pad``)."""
    width = paths.shape[1]
    k = torch.arange(width, device=paths.device)
    src = (hops[:, None] - 1 - k).clamp(min=0)
    rev = paths.gather(1, src)
    return torch.where(k < hops[:, None], rev, pad)
