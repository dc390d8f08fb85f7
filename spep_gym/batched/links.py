"""The link pools of the batched simulator: generation (phase 2), the routing view, taking pairs.

Taking the pairs of a path and swapping them (``consume``) and sending the swaps' outcomes when
they travel (``dispatch``, with ``signalling_latency``) are here too: both phases 4 and 5 use them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spep_gym import physics
from spep_gym.batched.records import tally
from spep_gym.batched.state import BIG, NEVER, BatchedState, BatchEvents, flat_take, pick


def generate_links(sim: BatchedState, events: BatchEvents, live: Tensor | None) -> None:
    """Phase 2: one uniform per link; a new pair where it is below p_gen and the link is free."""
    tab = sim.tables
    E = tab.E
    t = sim.t
    all_live = torch.ones_like(t, dtype=torch.bool) if live is None else live
    u = sim.draws.generation(t, all_live, E)
    draw = (u < tab.p_gen[:, :E]) & (sim.busy_until[:, :E] < t[:, None])
    if live is not None:
        draw &= live[:, None]
    room = sim.count[:, :E] < tab.capacity[:, :E]
    new = draw & room
    tt = t[:, None].expand_as(new)
    C = sim.created.shape[2]
    created = sim.created[:, :E]
    if C == 1:
        created[:, :, 0] += (tt - created[:, :, 0]) * new
    else:
        free = (created < 0).int().argmax(dim=2, keepdim=True)
        old = created.gather(2, free)[:, :, 0]
        created.scatter_(2, free, torch.where(new, tt, old)[:, :, None])
    sim.count[:, :E] += new
    young = sim.youngest[:, :E]
    young = young + (tt - young) * new
    made = new.sum(dim=1)
    if sim.cfg.link_pool_policy == "replace_oldest":
        full = draw & ~room
        held = torch.where(created >= 0, created, BIG)
        oldest = held.argmin(dim=2, keepdim=True)
        old = created.gather(2, oldest)[:, :, 0]
        created.scatter_(2, oldest, torch.where(full, tt, old)[:, :, None])
        young = torch.where(full, tt, young)
        replaced = full.sum(dim=1)
        made = made + replaced
        events.pairs_replaced += replaced
        sim.metrics["pairs_replaced"] += replaced
    sim.youngest[:, :E] = young
    events.pairs_generated += made
    sim.metrics["pairs_generated"] += made
    refresh_all(sim, live)


def refresh_all(sim: BatchedState, live: Tensor | None = None) -> None:
    """The view of every link (as ``LinkPool.refresh`` with no links given), in ``live``."""
    E = sim.tables.E
    held = sim.count > 0
    idx = table_index(sim, sim.youngest)
    ct = sim._class_tables
    factor = flat_take(ct["factor"], idx) * held
    usable = held
    usable[:, E] = True
    factor[:, E] = 1.0
    hf = sim.cfg.routing == "highest_fidelity"
    cost = torch.where(held, flat_take(ct["cost_full"], idx), torch.inf) if hf else sim.cost
    if live is not None:  # networks whose slot does not begin keep their view
        keep = ~live[:, None]
        usable = torch.where(keep, sim.usable, usable)
        factor = torch.where(keep, sim.factor, factor)
        if hf:
            cost = torch.where(keep, sim.cost, cost)
    sim.usable, sim.factor, sim.cost = usable, factor, cost
    sim._pf = None
    sim._nbr_view = None
    if sim._bits:
        rebuild_adjacency(sim)


def rebuild_adjacency(sim: BatchedState) -> None:
    """Neighbour bit sets (B, n + 1) of every node over the links that hold a pair."""
    tab = sim.tables
    B, n = sim.num_envs, sim.n
    u, v = tab.link_u, tab.link_v
    real = sim.usable & (u < n)
    one = torch.ones_like(u)
    adj = torch.zeros((B, n + 1), dtype=torch.int64, device=sim.device)
    adj.scatter_add_(1, u, (one << v.clamp(max=n - 1)) * real)
    adj.scatter_add_(1, v, (one << u.clamp(max=n - 1)) * real)
    sim._adj = adj


def table_index(sim: BatchedState, youngest: Tensor) -> Tensor:
    """Flat index into the class tables of each link's youngest pair's age."""
    L = sim._class_tables["fid"].shape[1]
    age = (sim.t[:, None] - youngest).clamp(0, L - 1)
    return sim.tables.link_class * L + age


def path_product(sim: BatchedState, flat: Tensor) -> Tensor:
    """Product of the view's factors at the flat link positions ``flat`` (X, H), in order."""
    f = flat_take(sim.factor, flat)
    product = f[:, 0]
    for h in range(1, flat.shape[1]):
        product = product * f[:, h]
    return product


def consume(
    sim: BatchedState,
    b: Tensor,
    path: Tensor,
    hops: Tensor,
    events: BatchEvents,
    k_of: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Take the youngest pair of every link on each path (networks ``b``) and swap.

    A network may appear several times when its paths share no link: ``k_of`` then gives each
    path's place in the network's order (its swap draws follow those of the earlier ones).

    Returns the path fidelity (the scalar ``physics.path_fidelity`` of the pairs taken: the
    product of the view's factors before the take) and whether every swap succeeded (draws
    from the swap stream only where ``swap_success < 1``).
    """
    tab = sim.tables
    E = tab.E
    E1 = E + 1
    taking = path < E
    flat = b[:, None] * E1 + path  # the pad entries point at the network's pad link
    fidelity = physics.fidelity_from_product(path_product(sim, flat), sim.cfg.swap_model)
    pos = flat.reshape(-1)
    take = taking.reshape(-1)
    C = sim.created.shape[2]
    rows = sim.created.view(-1, C).index_select(0, pos)
    j = rows.argmax(dim=1, keepdim=True)
    rows.scatter_(1, j, torch.where(take[:, None], -1, rows.gather(1, j)))
    sim.created.view(-1, C).index_copy_(0, pos, rows)
    count = sim.count.view(-1)
    count.index_add_(0, pos, -take.long())
    young = rows.max(dim=1).values
    sim.youngest.view(-1).index_copy_(0, pos, young)
    left = count.index_select(0, pos)
    held = left > 0
    L = sim._class_tables["fid"].shape[1]
    t = sim.t.index_select(0, b)[:, None].expand_as(path).reshape(-1)
    idx = flat_take(tab.link_class, pos) * L + (t - young).clamp(0, L - 1)
    ct = sim._class_tables
    usable = torch.where(take, held, flat_take(sim.usable, pos))
    factor = torch.where(
        take, torch.where(held, flat_take(ct["factor"], idx), 0.0), flat_take(sim.factor, pos)
    )
    sim.usable.view(-1).index_copy_(0, pos, usable)
    sim.factor.view(-1).index_copy_(0, pos, factor)
    if sim.cfg.routing == "highest_fidelity":
        cost = torch.where(held, flat_take(ct["cost_part"], idx), torch.inf)
        sim.cost.view(-1).index_copy_(0, pos, torch.where(take, cost, flat_take(sim.cost, pos)))
    if sim._bits:  # links left without a pair leave the neighbour bit sets
        gone = take & ~held
        u, v = flat_take(tab.link_u, pos), flat_take(tab.link_v, pos)
        n = sim.n
        bb = b[:, None].expand_as(path).reshape(-1)
        one = torch.ones_like(u)
        adj = sim._adj.view(-1)
        adj.index_add_(0, bb * (n + 1) + u, -torch.where(gone, one << v.clamp(max=n - 1), 0))
        adj.index_add_(0, bb * (n + 1) + v, -torch.where(gone, one << u.clamp(max=n - 1), 0))
    mark_stale(sim, b)
    tally(sim, b, events, {"pairs_consumed": hops})
    ok = torch.ones(b.shape, dtype=torch.bool, device=sim.device)
    success = sim.cfg.swap_success
    if success < 1.0:
        need = (hops - 1).clamp(min=0)
        counts = torch.zeros(sim.num_envs, dtype=torch.int64, device=sim.device)
        counts.index_add_(0, b, need)
        if bool(counts.any()):
            offset = offsets(sim, b, need, k_of)
            u = sim.draws.swap(counts)
            width = max(int(need.max()), 1)
            k = torch.arange(width, device=sim.device)
            col = (offset[:, None] + k).clamp(max=max(u.shape[1] - 1, 0))
            mine = pick(u, b[:, None].expand_as(col).reshape(-1), col.reshape(-1))
            ok = ((mine.view(-1, width) < success) | (k >= need[:, None])).all(dim=1)
    return fidelity, ok


def offsets(sim: BatchedState, b: Tensor, sizes: Tensor, k_of: Tensor | None) -> Tensor:
    """Start of each item's share in its network: the sizes of the network's earlier items.

    Items are sorted by network and then by ``k_of`` (None: one item per network).
    """
    if k_of is None:
        return torch.zeros_like(sizes)
    total = torch.cumsum(sizes, 0) - sizes  # exclusive, over all items
    first = total - torch.cummax(torch.where(k_of == 0, total, 0), dim=0).values
    return first


def dispatch(
    sim: BatchedState,
    b: Tensor,
    due: Tensor,
    placed: Tensor,
    pair: Tensor,
    hops: Tensor,
    fidelity: Tensor,
    ok: Tensor,
    request: Tensor | int,
    path: Tensor,
) -> None:
    """Swaps whose outcomes are on their way; their links wait.

    Several in one network are listed (sent) in the order of ``b`` (sorted by network).
    """
    F = sim.flight_due.shape[1]
    k_of = offsets(sim, b, torch.ones_like(b), group_rank(b))
    free = (sim.flight_due.index_select(0, b) == NEVER).cumsum(dim=1)
    slot = (free == k_of[:, None] + 1).int().argmax(dim=1)
    pos = b * F + slot
    sim.flight_due.view(-1)[pos] = due
    sim.flight_placed.view(-1)[pos] = placed
    sim.flight_pair.view(-1)[pos] = pair
    sim.flight_hops.view(-1)[pos] = hops
    sim.flight_fidelity.view(-1)[pos] = fidelity
    sim.flight_ok.view(-1)[pos] = ok
    sim.flight_request.view(-1)[pos] = request
    sim.flight_seq.view(-1)[pos] = sim.flight_next[b] + k_of
    sim.flight_next.index_add_(0, b, torch.ones_like(b))
    E = sim.tables.E
    on_path = path < E
    flat = (b[:, None] * (E + 1) + path).reshape(-1)
    value = torch.where(on_path, due[:, None], -1).reshape(-1)
    sim.busy_until.view(-1).scatter_reduce_(0, flat, value, "amax")


def group_rank(b: Tensor) -> Tensor:
    """Each item's number among the items of its network (items sorted by network)."""
    if b.numel() == 0:
        return b
    start = torch.ones_like(b, dtype=torch.bool)
    start[1:] = b[1:] != b[:-1]
    order = torch.arange(b.numel(), device=b.device)
    return order - torch.cummax(torch.where(start, order, 0), dim=0).values


def mark_stale(sim: BatchedState, b: Tensor) -> None:
    """The views of networks ``b`` changed (a consumption)."""
    sim._pf = None
    if sim._nbr_view is not None:
        if sim._nbr_stale is None:
            sim._nbr_stale = torch.zeros(sim.num_envs, dtype=torch.bool, device=sim.device)
        sim._nbr_stale[b] = True
