"""What the agent sees of the batched simulator: observations, action masks, pre-position fidelities."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from spep_gym import physics
from spep_gym.batched import search
from spep_gym.batched.links import path_product, table_index
from spep_gym.batched.preposition import held_now_fidelity
from spep_gym.batched.routing import masked_neighbours
from spep_gym.batched.state import NEVER, BatchedState, flat_take, pick
from spep_gym.batched.tables import (
    predecessors,
)
from spep_gym.env import DEMAND_OBS_MAX


def preposition_fidelity(sim: BatchedState) -> Tensor:
    """(B, P) fidelity a pre-position of each node pair would get now; 0 where it cannot.

    ``Simulator.preposition_fidelity`` batched, computed once per decision point.
    """
    if sim._pf is not None:
        return sim._pf
    tab = sim.tables
    if sim.cfg.preposition_path == "static":
        # A link without a pair has factor NaN, as in the scalar core: the product says both.
        nan_factor = torch.where(sim.usable, sim.factor, torch.nan).reshape(-1)
        # Pairs in order of hops, longest first: hop h multiplies a prefix (the pad link's
        # factor 1 leaves the shorter paths unchanged, so skipping them is exact).
        links, inverse = sim._paths_by_hops
        product = nan_factor.index_select(0, links[0])
        for h in range(1, len(links)):
            part = links[h]
            product[: part.numel()].mul_(nan_factor.index_select(0, part))
        product = product.index_select(0, inverse).view(sim.num_envs, sim.num_pairs)
        ok: Tensor | None = None
        hops = tab.static_hops
    else:
        product, hops = available_products(sim)
        ok = hops > 0
    fidelity = physics.fidelity_from_product(product, sim.cfg.swap_model)
    if sim._latency:
        fidelity = physics.decayed_by(fidelity, sim._pow_np[hops], sim.cfg.decay_model)
    if ok is None:  # NaN where a link holds no pair, as in the scalar core
        sim._pf = fidelity.nan_to_num_(nan=0.0)
    else:
        sim._pf = torch.where(ok, fidelity, 0.0)
    return sim._pf


def available_products(sim: BatchedState) -> tuple[Tensor, Tensor]:
    """Products along the fewest-hop paths over links that hold a pair, of every node pair.

    As ``bfs_predecessors`` and ``paths_from_predecessors`` give them: the breadth-first path
    from i to j (i < j), its links listed from j back to i, multiplied in that order.
    """
    tab = sim.tables
    B, n, P = sim.num_envs, sim.n, sim.num_pairs
    dev = sim.device
    iu, ju = np.triu_indices(n, 1)
    src = torch.tensor(iu, dtype=torch.int64, device=dev).repeat(B)
    dst = torch.tensor(ju, dtype=torch.int64, device=dev).repeat(B)
    net = torch.arange(B, device=dev).repeat_interleave(P)
    if sim._bits:
        adj = sim._adj[:, :n]
        roots = torch.arange(n, device=dev).repeat(B)
        adj_rows = adj.repeat_interleave(n, dim=0)
        dist, layers = search.hop_counts(adj_rows, roots)
        nxt = search.next_hops(adj_rows, dist, layers)
        x = net * n + dst  # the search rooted at j
        hops = pick(dist, x, src)
        fwd, hops = search.walk(nxt.index_select(0, x), hops, tab.edge_id, net, src, tab.E)
        paths = search.reverse_paths(fwd, hops, tab.E)
    else:
        rows = torch.arange(B, device=dev).repeat_interleave(n)
        nbr, link = masked_neighbours(sim, rows)
        pred_j, depth = search.bfs(nbr, torch.arange(n, device=dev).repeat(B))
        pred_node, pred_link = predecessors(nbr, link, pred_j)
        x = net * n + src
        hops = depth[x, dst].clamp(min=0)
        width = max(int(hops.max()), 1)
        paths = search.walk_back(pred_node[x], pred_link[x], dst, hops, width, tab.E)
    product = path_product(sim, net[:, None] * (tab.E + 1) + paths)
    return product.view(B, P), hops.view(B, P)


def request_rows(sim: BatchedState) -> Tensor:
    """(B, N, 6) float64 request fields of the queue observation, built once per workload.

    The columns: source, destination, F_req, deadline, arrival, priority.
    """
    rows = sim._req_rows
    if rows is None:
        w = sim.work
        names = ("source", "destination", "F_req", "deadline", "arrival", "priority")
        rows = sim._req_rows = torch.stack([w[k].to(torch.float64) for k in names], dim=2)
    return rows


def action_masks(sim: BatchedState) -> Tensor:
    """(B, action_len * (P + 1)) bool: per entry, the node pairs that can be placed now."""
    if sim._masks is not None and sim._masks_of is sim._pf:
        return sim._masks
    cfg = sim.cfg
    B, P = sim.num_envs, sim.num_pairs
    held = (sim.held_pair < P).sum(dim=1) + sim.metrics["prepositions_in_flight"]
    blocked = (held >= cfg.max_prepositioned) | (cfg.max_new_prepositions == 0)
    can = (preposition_fidelity(sim) > 0.0) & ~blocked[:, None]
    out = torch.empty((B, cfg.action_len, P + 1), dtype=torch.bool, device=sim.device)
    out[:, :, :P] = can[:, None, :]
    out[:, :, P] = True
    sim._masks, sim._masks_of = out.view(B, -1), sim._pf
    return sim._masks


def observation(sim: BatchedState) -> dict[str, Tensor]:
    """The observation of ``SpepEnv`` for every network, as float32 tensors (B, ...)."""
    cfg = sim.cfg
    B, P = sim.num_envs, sim.num_pairs
    dev = sim.device
    t = sim.t
    ct = sim._class_tables
    lp = sim._lp_flat.reshape(-1)
    held = sim.count > 0
    features = [
        sim.count.to(torch.float32),
        (flat_take(ct["fid"], table_index(sim, sim.youngest)) * held).to(torch.float32),
        ((t[:, None] - sim.youngest) * held).to(torch.float32),
    ]
    if sim._latency:
        features.append((sim.busy_until - t[:, None]).clamp(min=0).to(torch.float32))
    per_link = []
    for values in features:  # one contiguous (B, P) array each, via a spare last element
        out = torch.zeros(B * P + 1, dtype=torch.float32, device=dev)
        out.index_copy_(0, lp, values.reshape(-1))
        per_link.append(out[: B * P].view(B, P))
    hp = sim.held_pair
    rows = torch.arange(B, device=dev)[:, None]
    held_pos = torch.where(hp < P, hp + rows * P, B * P).reshape(-1)
    prepositioned = torch.zeros(B * P + 1, dtype=torch.float32, device=dev)
    prepositioned.index_add_(0, held_pos, torch.ones_like(held_pos, dtype=torch.float32))
    best = torch.zeros(B * P + 1, dtype=torch.float64, device=dev)
    best.scatter_reduce_(0, held_pos, held_now_fidelity(sim).reshape(-1), "amax")
    best[-1] = 0.0
    zeros = torch.zeros((B, P), dtype=torch.float32, device=dev)
    if sim._latency:
        flights = sim.flight_due < NEVER
        counts = []
        for kind in (flights & (sim.flight_request < 0), flights & (sim.flight_request >= 0)):
            pos = torch.where(kind, sim.flight_pair + rows * P, B * P).reshape(-1)
            c = torch.zeros(B * P + 1, dtype=torch.float32, device=dev)
            c.index_add_(0, pos, kind.reshape(-1).to(torch.float32))
            counts.append(c[: B * P].view(B, P))
        prep_in_flight, req_in_flight = counts
    else:
        prep_in_flight, req_in_flight = zeros, zeros.clone()
    Q = cfg.queue_obs_size
    queue = torch.zeros((B, Q, 6), dtype=torch.float32, device=dev)
    mask = torch.zeros((B, Q), dtype=torch.float32, device=dev)
    width = min(Q, int(sim.queue_len.max()))
    if width:
        ids = sim.queue[:, :width].contiguous()
        shown = torch.arange(width, device=dev) < sim.queue_len[:, None]
        rows = request_rows(sim)
        N = rows.shape[1]
        at = (ids + torch.arange(B, device=dev)[:, None] * N).reshape(-1)
        fields = rows.view(B * N, 6).index_select(0, at).view(B, width, 6)
        # source, destination, F_req, slots left, slots waited, priority
        fields[:, :, 3] -= t[:, None]
        fields[:, :, 4] = t[:, None] - fields[:, :, 4]
        # where, not a product: the padding is 0 whatever the fields hold (inf * 0 is NaN)
        queue[:, :width] = torch.where(shown[:, :, None], fields.to(torch.float32), 0.0)
        mask[:, :width] = shown.to(torch.float32)
    return {
        "adjacency": sim.tables.adjacency.clone(),
        "link_pairs": per_link[0],
        "link_fidelity": per_link[1],
        "link_age": per_link[2],
        "link_busy": per_link[3] if sim._latency else zeros.clone(),
        "path_fidelity": preposition_fidelity(sim).to(torch.float32),
        "prepositioned": prepositioned[: B * P].view(B, P),
        "prepositioned_fidelity": best[: B * P].view(B, P).to(torch.float32),
        "prepositioned_in_flight": prep_in_flight,
        "requests_in_flight": req_in_flight,
        "demand": sim.demand[:, :P].clamp(max=DEMAND_OBS_MAX),
        "arrivals": sim.arrivals[:, :P].clamp(max=DEMAND_OBS_MAX),
        "queue": queue.view(B, Q * 6),
        "queue_mask": mask,
        "time_of_day": sim._time_of_day.index_select(0, t % cfg.slots_per_day),
    }
