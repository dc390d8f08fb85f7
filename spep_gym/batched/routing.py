"""Routing in the batched simulator: the paths of the routing strategies and of pre-positioning."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from spep_gym import physics
from spep_gym.batched import search
from spep_gym.batched.state import BatchedState, flat_take, pick
from spep_gym.batched.tables import (
    predecessors,
)


def preposition_path(sim: BatchedState, b: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
    """The path pre-positioning would use in networks ``b`` for node pairs ``a``.

    Returns (X, H) links and the hops (0: no path).
    """
    if sim.cfg.preposition_path == "static":
        return static_route(sim, b, a)
    nodes = pair_nodes(sim).index_select(0, a)
    return bfs_route(sim, b, nodes[:, 0], nodes[:, 1])


def pair_nodes(sim: BatchedState) -> Tensor:
    """(P, 2) the nodes (i, j), i < j, of every node pair (built once)."""
    pn = sim._pair_nodes_t
    if pn is None:
        iu, ju = np.triu_indices(sim.n, 1)
        pn = torch.tensor(np.stack([iu, ju], 1), dtype=torch.int64, device=sim.device)
        sim._pair_nodes_t = pn
    return pn


def static_route(sim: BatchedState, b: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
    """The static path (X, H) of pair a in network b, and its hops where every link is usable."""
    tab = sim.tables
    B, P, H = sim.num_envs, sim.num_pairs, tab.H
    h = torch.arange(H, device=sim.device)
    flat = sim._paths_flat.reshape(-1).index_select(0, ((h[:, None] * B + b) * P + a).reshape(-1))
    flat = flat.view(H, -1).t()
    ok = flat_take(sim.usable, flat).all(dim=1)
    path = flat - b[:, None] * (tab.E + 1)
    return path, torch.where(ok, pick(tab.static_hops, b, a), 0)


def route(sim: BatchedState, b: Tensor, s: Tensor, d: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
    """The routing strategy's path (X, width) for requests (b, s -> d, pair a); hops (0: none)."""
    routing = sim.cfg.routing
    if routing == "reactive":
        return static_route(sim, b, a)
    if routing == "shortest":
        return bfs_route(sim, b, s, d)
    if sim._latency:
        return delivered_route(sim, b, s, d)
    return dijkstra_route(sim, b, s, d)


def masked_neighbours(sim: BatchedState, b: Tensor) -> tuple[Tensor, Tensor]:
    """Neighbour tables of networks ``b`` with the links that hold no pair masked out.

    The masked table of every network is kept and rebuilt only where the view changed.
    """
    tab = sim.tables
    view = sim._nbr_view
    if view is None:
        view = sim._nbr_view = mask_rows(sim, tab.nbr, tab.nbr_link, sim.usable)
        sim._nbr_stale = None
    elif sim._nbr_stale is not None:
        rows = torch.nonzero(sim._nbr_stale).flatten()
        if rows.numel():
            view[rows] = mask_rows(sim, tab.nbr[rows], tab.nbr_link[rows], sim.usable[rows])
        sim._nbr_stale = None
    return view.index_select(0, b), tab.nbr_link.index_select(0, b)


def mask_rows(sim: BatchedState, nbr: Tensor, link: Tensor, usable: Tensor) -> Tensor:
    """Neighbour tables ``nbr`` with the neighbours over links that hold no pair set to n."""
    X, n, D = nbr.shape
    ok = usable.gather(1, link.reshape(X, n * D)).view(X, n, D) & (link < sim.tables.E)
    return torch.where(ok, nbr, n)


def bfs_route(sim: BatchedState, b: Tensor, s: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """Fewest hops over the links that hold a pair (``routing.shortest``): path from s to d."""
    E = sim.tables.E
    if sim._bits:
        adj = sim._adj[:, : sim.n].index_select(0, b)
        return search.lexmin_paths(adj, sim.tables.edge_id, b, s, d, E)
    nbr, link = masked_neighbours(sim, b)
    pred_j, depth = search.bfs(nbr, s, d)
    pred_node, pred_link = predecessors(nbr, link, pred_j)
    rows = torch.arange(b.numel(), device=sim.device)
    hops = depth[rows, d].clamp(min=0)
    width = max(int(hops.max()), 1) if hops.numel() else 1
    back = search.walk_back(pred_node, pred_link, d, hops, width, E)
    return search.reverse_paths(back, hops, E), hops


def neighbour_costs(sim: BatchedState, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Masked neighbour tables of networks ``b``, their links and the links' costs."""
    nbr, link = masked_neighbours(sim, b)
    X, n, D = nbr.shape
    flat = (b[:, None, None] * (sim.tables.E + 1) + link).reshape(-1)
    cost = sim.cost.reshape(-1).index_select(0, flat).view(X, n, D)
    return nbr, link, cost


def dijkstra_route(sim: BatchedState, b: Tensor, s: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """Highest fidelity (``routing.highest_fidelity``): Dijkstra on the links' costs."""
    nbr, link, cost = neighbour_costs(sim, b)
    pred_node, pred_link = search.dijkstra(nbr, link, cost, s, d)
    hops = unwound_hops(sim, pred_node, s, d)
    width = max(int(hops.max()), 1) if hops.numel() else 1
    back = search.walk_back(pred_node, pred_link, d, hops, width, sim.tables.E)
    return search.reverse_paths(back, hops, sim.tables.E), hops


def unwound_hops(sim: BatchedState, pred_node: Tensor, s: Tensor, d: Tensor) -> Tensor:
    """Hops of the path from s to d along ``pred_node`` (0 where d was not reached)."""
    X, n = pred_node.shape
    rows = torch.arange(X, device=sim.device)
    hops = torch.zeros(X, dtype=torch.int64, device=sim.device)
    node = d.clone()
    alive = pred_node[rows, d] >= 0
    for _ in range(n):
        if not bool(alive.any()):
            break
        hops += alive
        node = torch.where(alive, pred_node[rows, node.clamp(min=0)], node)
        alive &= node != s
    return torch.where(pred_node[rows, d] >= 0, hops, 0)


def delivered_route(sim: BatchedState, b: Tensor, s: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """``routing.highest_delivered_fidelity``: the hop count of highest fidelity on arrival."""
    nbr, link, cost = neighbour_costs(sim, b)
    X, n, _ = nbr.shape
    at_dst, preds = search.layered(nbr, cost, s, d)
    best_h = best_hops(sim, at_dst.cpu().numpy())
    h = torch.tensor(best_h, dtype=torch.int64, device=sim.device)
    width = max(int(h.max()), 1) if h.numel() else 1
    rows = torch.arange(X, device=sim.device)
    path = torch.full((X, width), sim.tables.E, dtype=torch.int64, device=sim.device)
    node = d.clone()
    for layer in range(n - 1, 0, -1):  # the link into the layer-h node is the path's h-th
        on = h >= layer
        if not bool(on.any()):
            continue
        j = preds[layer - 1][rows, node].clamp(min=0)
        path[:, layer - 1] = torch.where(on, link[rows, node, j], path[:, layer - 1])
        node = torch.where(on, nbr[rows, node, j], node)
    return path, h


def best_hops(sim: BatchedState, at_dst: np.ndarray) -> list[int]:
    """The scalar's choice of hop count per search from the best cost at each hop count.

    The delivered fidelity of each hop count is computed on the host with ``math.exp``, as
    ``Simulator._highest_delivered`` computes it, so that near ties break the same way.
    """
    cfg = sim.cfg
    out = []
    for row in at_dst.tolist():
        best_f, best_h = -math.inf, 0
        for h, c in enumerate(row, start=1):
            if c == math.inf:
                continue
            f = float(physics.fidelity_from_product(math.exp(-c), cfg.swap_model))
            delay = sim.delays[h]
            if delay:
                f = physics.decayed(f, sim._prho, delay, cfg.decay_model)
            if f > best_f:
                best_f, best_h = f, h
        out.append(best_h)
    return out
