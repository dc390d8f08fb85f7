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
#: Largest node count the bit-set searches handle (node sets are int64 bit masks).
MAX_BIT_NODES = 62


def bfs(nbr: Tensor, src: Tensor, dst: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Breadth-first search from ``src`` over the links of ``nbr``; ``(pred_j, depth)``, both (X, n).

    ``pred_j``: position in ``nbr[x, v]`` of the node ``v`` was discovered from (-1: the source or
    unreached); ``depth``: hops from the source (-1: unreached). With ``dst`` the search stops once
    every search has reached its destination (the layers it reached are complete).
    """
    X, n, D = nbr.shape
    device = nbr.device
    rows = torch.arange(X, device=device)
    depth = torch.full((X, n), -1, dtype=torch.int64, device=device)
    depth[rows, src] = 0
    pred_j = torch.full((X, n), -1, dtype=torch.int64, device=device)
    # The searches still running (the others are compacted away as they finish).
    live = rows
    key = torch.full((X, n + 1), BIG, dtype=torch.int64, device=device)
    key[rows, src] = 0
    visited = depth >= 0
    flat = nbr.reshape(X, n * D)
    target = dst
    ids = torch.arange(n, device=device)
    compacted = False
    digits = 1  # layers since the keys were last ranked: keys are below n ** digits
    for layer in range(1, n):
        if n ** (digits + 1) >= BIG:  # the next keys would overflow: rank the layer's keys
            key[:, :n] = _rank(key[:, :n])
            digits = 1
        m, j = key.gather(1, flat).view(-1, n, D).min(dim=2)
        new = (m < BIG) & ~visited
        key[:, :n] = torch.where(new, m * n + ids, BIG)
        digits += 1
        visited |= new
        if compacted:
            pred_j[live] = torch.where(new, j, pred_j[live])
            depth[live] = torch.where(new, layer, depth[live])
        else:
            pred_j = torch.where(new, j, pred_j)
            depth = torch.where(new, layer, depth)
        running = new.any(dim=1)
        if target is not None:
            running &= ~visited.gather(1, target[:, None])[:, 0]
        count = int(running.sum())
        if count == 0:
            break
        if count < 0.75 * running.numel():  # drop the finished searches
            keep = torch.nonzero(running).flatten()
            live, key, visited, flat = live[keep], key[keep], visited[keep], flat[keep]
            compacted = True
            if target is not None:
                target = target[keep]
    return pred_j, depth


def neighbour_bits(nbr: Tensor) -> Tensor:
    """(X, n) int64: bit v of row u is set where v is a neighbour of u (``nbr`` padded with n)."""
    n = nbr.shape[1]
    bits = torch.where(nbr < n, torch.ones_like(nbr) << nbr.clamp(max=n - 1), 0)
    return bits.sum(dim=2)  # distinct bits: the sum is the union


def lowest_node(bits: Tensor) -> Tensor:
    """Index of the lowest set bit of each bit set; -1 where it is empty."""
    low = bits & -bits
    exponent = torch.frexp(low.to(torch.float64)).exponent.to(torch.int64) - 1
    return torch.where(bits != 0, exponent, -1)


def hop_counts(adj: Tensor, root: Tensor, stop: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Hop counts from ``root`` over the links of ``adj``; ``(dist, layers)``.

    ``adj`` (X, n): neighbour bit sets (the graph is undirected: v is reached from the frontier
    exactly when v's own neighbours meet it). ``dist`` (X, n): hops of every node (-1: unreached);
    ``layers`` (X, n) bit sets, column k the nodes at k hops. With ``stop`` (X,) node ids the search
    ends once every ``stop`` is reached or unreachable (farther columns may be incomplete).
    """
    X, n = adj.shape
    device = adj.device
    ids = torch.arange(n, device=device)
    pow2 = torch.ones(n, dtype=torch.int64, device=device) << ids
    layers = torch.zeros((n, X), dtype=torch.int64, device=device)
    frontier = pow2[root]
    layers[0] = frontier
    unseen = pow2 != frontier[:, None]
    dist = torch.where(unseen, -1, 0)
    found = None if stop is None else (frontier >> stop) & 1
    depth = n
    for k in range(1, n):
        new = ((adj & frontier[:, None]) != 0) & unseen
        unseen &= ~new
        dist.masked_fill_(new, k)
        frontier = (new * pow2).sum(dim=1)
        layers[k] = frontier
        if found is None:
            if not bool(frontier.any()):
                depth = k
                break
        else:
            assert stop is not None
            found |= (frontier >> stop) & 1
            if bool(((found != 0) | (frontier == 0)).all()):
                depth = k + 1
                break
    out = torch.zeros((X, n), dtype=torch.int64, device=device)
    out[:, :depth] = layers[:depth].t()
    return dist, out


def next_hops(adj: Tensor, dist: Tensor, layers: Tensor) -> Tensor:
    """(X, n) each node's lowest-id neighbour one hop closer to the root (-1: none or the root)."""
    closer = layers.gather(1, (dist - 1).clamp(min=0))
    return torch.where(dist > 0, lowest_node(adj & closer), -1)


def lexmin_paths(
    adj: Tensor, edge_id: Tensor, net: Tensor, src: Tensor, dst: Tensor, pad: int
) -> tuple[Tensor, Tensor]:
    """The breadth-first path from ``src`` to ``dst`` of every search, s-side first.

    The queue-based search of :func:`bfs` (discovery order, neighbours in ascending id) finds, of
    all fewest-hop paths, the one whose node sequence from the source is lexicographically
    smallest: a node's key is the sequence of ids along its discovery chain, and its predecessor the
    neighbour of smallest key in the previous layer. That path is found here greedily: hop counts to
    ``dst`` from bit-set layers, then from ``src`` the lowest-id neighbour one hop closer, each step.
    ``adj`` (X, n) neighbour bit sets (n <= :data:`MAX_BIT_NODES`); ``edge_id`` (B, n, n) the link
    of each node pair of each network, ``net`` (X,) the network of each search. Returns (X, width)
    links padded with ``pad`` and hops (0: unreachable).
    """
    dist, layers = hop_counts(adj, dst, stop=src)
    return walk(
        next_hops(adj, dist, layers), dist.gather(1, src[:, None])[:, 0], edge_id, net, src, pad
    )


def walk(
    nxt: Tensor, hops: Tensor, edge_id: Tensor, net: Tensor, src: Tensor, pad: int
) -> tuple[Tensor, Tensor]:
    """Follow the next-hop table ``nxt`` (X, n) from ``src`` for ``hops`` steps (-1: unreachable).

    Returns the links (X, width), s-side first, padded with ``pad``, and the hops (0: none).
    """
    X, n = nxt.shape
    device = nxt.device
    hops = hops.clamp(min=0)
    width = max(int(hops.max()), 1) if X else 1
    nodes = torch.empty((X, width + 1), dtype=torch.int64, device=device)
    nodes[:, 0] = src
    node = src[:, None]
    for step in range(width):
        node = nxt.gather(1, node.clamp(min=0))
        nodes[:, step + 1] = node[:, 0]
    live = torch.arange(width, device=device) < hops[:, None]
    base = net[:, None] * (n * n)
    flat = base + nodes[:, :-1].clamp(min=0) * n + nodes[:, 1:].clamp(min=0)
    links = edge_id.reshape(-1).index_select(0, flat.reshape(-1)).view(X, width)
    return torch.where(live, links, pad), hops


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
