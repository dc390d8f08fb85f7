"""Phase 5 of the batched slot: serve queued requests, round by round, from held pairs or on demand."""

from __future__ import annotations

import torch
from torch import Tensor

from spep_gym import physics
from spep_gym.batched.links import consume, dispatch, group_rank, path_product
from spep_gym.batched.preposition import held_now_fidelity
from spep_gym.batched.queue import compact_queue
from spep_gym.batched.records import count_one, record_served, set_record, tally, work_at
from spep_gym.batched.routing import route
from spep_gym.batched.state import BIG, BatchedState, BatchEvents, flat_take, pick
from spep_gym.metrics import IN_FLIGHT, ON_DEMAND, PREPOSITIONED


def serve(sim: BatchedState, events: BatchEvents) -> None:
    """Phase 5: each round serves, in every network, the first queued request it can serve.

    All queued requests are searched once against the state at the start of the round; in each
    network the first one that can be served is served (a held pair, else on demand), which
    changes only that network; the requests behind it are searched again the next round.
    """
    W = int(sim.queue_len.max())
    if W == 0:
        return
    dev = sim.device
    B = sim.num_envs
    queue = sim.queue[:, :W].contiguous()
    valid = torch.arange(W, device=dev) < sim.queue_len[:, None]
    slot = torch.nonzero(valid.reshape(-1)).flatten()
    eb, er = slot // W, slot % W
    rid = queue.reshape(-1).index_select(0, slot)
    w = sim.work
    N = w["arrival"].shape[1]
    wpos = eb * N + rid
    e_pair = flat_take(w["pair"], wpos)
    e_freq = flat_take(w["F_req"], wpos)
    # on-demand service is possible at all (a bound that holds for the whole slot: consuming a
    # pair only lowers or removes link factors)
    e_could = could_serve(sim, eb, e_pair, e_freq, flat_take(w["deadline"], wpos))
    removed = torch.zeros(B * W, dtype=torch.bool, device=dev)
    pending = torch.ones(eb.numel(), dtype=torch.bool, device=dev)
    while True:
        idx = torch.nonzero(pending).flatten()
        if idx.numel() == 0:
            break
        b, r = eb[idx], er[idx]
        freq = e_freq[idx]
        pair = e_pair[idx]
        # a held pre-positioned pair of this node pair, fidelity now >= F_req
        held_now = held_now_fidelity(sim).index_select(0, b)
        match = (sim.held_pair.index_select(0, b) == pair[:, None]) & (held_now >= freq[:, None])
        has_held = match.any(dim=1)
        # on demand: the routing strategy's path, if its delivered pair meets F_req in time
        routed = torch.zeros_like(has_held)
        need = torch.nonzero(~has_held & e_could[idx]).flatten()
        path = hops = None
        if need.numel():
            nb = b[need]
            npos = wpos[idx[need]]
            n_path, n_hops = route(
                sim, nb, flat_take(w["source"], npos), flat_take(w["destination"], npos), pair[need]
            )
            f_now = physics.fidelity_from_product(
                path_product(sim, nb[:, None] * (sim.tables.E + 1) + n_path), sim.cfg.swap_model
            )
            delay = sim._delay[n_hops]
            delivered = f_now
            if sim._latency:
                delivered = torch.where(
                    delay > 0,
                    physics.decayed_by(f_now, sim._pow[delay], sim.cfg.decay_model),
                    f_now,
                )
            fits = (
                (n_hops > 0)
                & (delivered >= freq[need])
                & (sim.t[nb] + delay <= flat_take(w["deadline"], npos))
            )
            routed[need] = fits
            path = torch.full(
                (idx.numel(), n_path.shape[1]), sim.tables.E, dtype=torch.int64, device=dev
            )
            path[need] = n_path
            hops = torch.zeros(idx.numel(), dtype=torch.int64, device=dev)
            hops[need] = n_hops
        event = has_held | routed
        if not bool(event.any()):
            break
        stop = round_stop(sim, b, r, pair, has_held, event, path, hops)
        pending[idx] = r >= stop.index_select(0, b)
        ev = torch.nonzero(event & (r < stop.index_select(0, b))).flatten()
        if ev.numel():
            apply_events(
                sim,
                ev,
                b,
                r,
                rid[idx],
                pair,
                has_held,
                held_now,
                match,
                path,
                hops,
                removed,
                W,
                events,
            )
    keep = valid & ~removed.view(B, W)
    if bool(removed.any()):
        compact_queue(sim, keep, W)


def round_stop(
    sim: BatchedState,
    b: Tensor,
    r: Tensor,
    pair: Tensor,
    has_held: Tensor,
    event: Tensor,
    path: Tensor | None,
    hops: Tensor | None,
) -> Tensor:
    """(B,) the queue rank from which a network's requests must be searched again.

    The requests were searched against the state at the start of the round. Serving one
    changes the state for those behind it only through what it takes: a held pair of its node
    pair, or the link pairs of its path. A request behind it keeps its outcome unless it wants
    a held pair of the same node pair, or its proposed path runs over a link taken before it
    (then its route, not only its fidelity, may change); a request without a path keeps having
    none (links only disappear within a slot). So each network serves, in rank order, every
    event before the first request that an earlier event of the round touched. With Dijkstra
    routing (whose ties a removal elsewhere may change) only the first event is served.
    """
    B, dev = sim.num_envs, sim.device
    stop = torch.full((B,), BIG, dtype=torch.int64, device=dev)
    if not sim._independent_events:
        first = torch.full((B,), BIG, dtype=torch.int64, device=dev)
        first.scatter_reduce_(0, b[event], r[event], "amin")
        return torch.where(first < BIG, first + 1, BIG)
    touched = torch.zeros_like(event)
    # held pairs: an event wanting a node pair an earlier event of its network took
    held_ev = torch.nonzero(event & has_held).flatten()
    if held_ev.numel() > 1:
        key = b[held_ev] * (sim.num_pairs + 1) + pair[held_ev]
        first = torch.full((B * (sim.num_pairs + 1),), BIG, dtype=torch.int64, device=dev)
        first.scatter_reduce_(0, key, r[held_ev], "amin")
        touched[held_ev] = r[held_ev] > first.index_select(0, key)
    # links: a request whose path runs over a link an earlier on-demand event takes
    if path is not None and hops is not None:
        E1 = sim.tables.E + 1
        with_path = (hops > 0) & ~has_held
        rows = torch.nonzero(with_path).flatten()
        if rows.numel() > 1:
            X = rows.numel()
            mask = torch.zeros((X, E1), dtype=torch.int64, device=dev)
            mask.scatter_(1, path[rows], 1)
            mask[:, E1 - 1] = 0
            mask = mask.t().contiguous()  # (E1, X): the scans run along the last axis
            seg = b[rows][None, :] * 2
            taking = mask * event[rows][None, :]
            # exclusive prefix "or" within each network: cummax of (network * 2 + taken)
            upto = torch.cummax(seg + taking, dim=1).values
            before = torch.full_like(upto, -1)
            before[:, 1:] = upto[:, :-1]
            hit = ((before == seg + 1) & (mask == 1)).any(dim=0)
            touched[rows] = hit
    if bool(touched.any()):
        stop.scatter_reduce_(0, b[touched], r[touched], "amin")
    return stop


def apply_events(
    sim: BatchedState,
    ev: Tensor,
    b: Tensor,
    r: Tensor,
    req: Tensor,
    pair: Tensor,
    has_held: Tensor,
    held_now: Tensor,
    match: Tensor,
    path: Tensor | None,
    hops: Tensor | None,
    removed: Tensor,
    W: int,
    events: BatchEvents,
) -> None:
    """Serve the events ``ev`` of a round, from held pairs or on demand, all at once.

    The events are sorted by network, then rank; no two of one network share a held pair or
    a link (see :meth:`_round_stop`).
    """
    K = sim.held_pair.shape[1]
    dev = sim.device
    X = ev.numel()
    eb = b[ev]
    fidelity = torch.zeros(X, dtype=torch.float64, device=dev)
    used = torch.zeros(X, dtype=torch.int64, device=dev)
    served = torch.zeros(X, dtype=torch.bool, device=dev)
    how = torch.full((X,), ON_DEMAND, dtype=torch.int64, device=dev)
    # from a held pair: the lowest sufficient fidelity, the earliest placed on a tie
    from_held = has_held[ev]
    hi = torch.nonzero(from_held).flatten()
    if hi.numel():
        h = ev[hi]
        hb = b[h]
        hn, hm = held_now[h], match[h]
        low = torch.where(hm, hn, torch.inf).min(dim=1).values
        tie = hm & (hn == low[:, None])
        kpos = hb * K + torch.where(tie, sim.held_seq.index_select(0, hb), BIG).argmin(dim=1)
        used[hi] = flat_take(sim.held_hops, kpos)
        ahead = flat_take(sim.held_placed, kpos) < work_at(sim, "arrival", hb, req[h])
        tally(sim, hb[ahead], events, {}, {"predictive_hits": 1.0})
        sim.held_pair.view(-1)[kpos] = sim.num_pairs
        fidelity[hi] = low
        served[hi] = True
        how[hi] = PREPOSITIONED
        tally(
            sim,
            hb,
            events,
            {"prepositions_used": 1.0, "served_prepositioned": 1.0},
            {"served_prepositioned": 1.0},
        )
    di = torch.nonzero(~from_held).flatten()
    if di.numel():
        assert path is not None and hops is not None
        d = ev[di]
        db, dpath, dhops = b[d], path[d], hops[d]
        got, ok = consume(sim, db, dpath, dhops, events, group_rank(db))
        t = sim.t.index_select(0, db)
        set_record(sim, db, req[d], "dispatch_slot", t)
        if sim._latency:
            due = t + sim._delay[dhops]
            dispatch(sim, db, due, t, pair[d], dhops, got, ok, req[d], dpath)
            set_record(sim, db, req[d], "status", IN_FLIGHT)
            tally(sim, db, events, {"requests_in_flight": 1.0}, {})
            removed[db * W + r[d]] = True
        else:
            if not bool(ok.all()):
                count_one(sim, db[~ok], "swap_failures", events)
            fidelity[di] = got
            used[di] = dhops
            served[di] = ok
    if bool(served.any()):
        sv = torch.nonzero(served).flatten()
        sb = eb[sv]
        removed[sb * W + r[ev[sv]]] = True
        record_served(sim, sb, req[ev[sv]], how[sv], fidelity[sv], used[sv], events, group_rank(sb))


def could_serve(
    sim: BatchedState, b: Tensor, pair: Tensor, freq: Tensor, deadline: Tensor
) -> Tensor:
    """False where no path can serve the request now (a pure shortcut: those would wait).

    Any path has at least the static path's hops, and each link's factor is at most the
    network's largest (in magnitude, at most 1), so the path fidelity is at most
    ``fidelity_from_product(max ** hops)``; with latency the delay of those hops must also fit
    the deadline. A relative margin covers the rounding of the bound.
    """
    E = sim.tables.E
    hops = pick(sim.tables.static_hops, b, pair)
    top = (sim.factor[:, :E].abs() * sim.usable[:, :E]).max(dim=1).values
    bound = physics.fidelity_from_product(
        top.index_select(0, b) ** hops.to(torch.float64), sim.cfg.swap_model
    )
    ok = bound * (1.0 + 1e-9) + 1e-12 >= freq
    if sim._latency:
        ok &= sim.t.index_select(0, b) + sim._delay[hops] <= deadline
    return ok
