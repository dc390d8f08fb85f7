"""Phases 1, 3 and 6 of the batched slot (SPEC section 5): expiry, arrivals, overdue failures.

Phase 2 (generation) is :func:`spep_gym.batched.links.generate_links`, phase 4
:mod:`spep_gym.batched.preposition`, phase 5 :mod:`spep_gym.batched.serving`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spep_gym import physics
from spep_gym.batched.preposition import settle
from spep_gym.batched.queue import compact_queue, merge_into_queue, rows_of
from spep_gym.batched.records import (
    count_one,
    fail_rows,
    record_failed,
    record_served,
    set_record,
    tally,
    work_at,
)
from spep_gym.batched.state import BIG, NEVER, BatchedState, BatchEvents, flat_take, row_take
from spep_gym.metrics import ON_DEMAND, QUEUED


def discard_expired(sim: BatchedState, events: BatchEvents, live: Tensor | None) -> None:
    """Phase 1: swap outcomes due now, then expired link pairs and pre-positioned pairs."""
    t = sim.t
    if sim._latency:
        receive_outcomes(sim, events, live)
    created = sim.created
    age = t[:, None, None] - created
    expired = (created >= 0) & (age >= sim.tables.lifetime[:, :, None])
    if live is not None:
        expired &= live[:, None, None]
    if bool(expired.any()):
        per_link = expired.sum(dim=2)
        gone = per_link.sum(dim=1)
        created.masked_fill_(expired, -1)
        sim.count -= per_link
        sim.youngest = created.max(dim=2).values if created.shape[2] > 1 else created[:, :, 0]
        events.pairs_expired += gone
        sim.metrics["pairs_expired"] += gone
    old = (sim.held_pair < sim.num_pairs) & (sim.held_expiry <= t[:, None])
    if live is not None:
        old &= live[:, None]
    if bool(old.any()):
        n_old = old.sum(dim=1)
        sim.held_pair.masked_fill_(old, sim.num_pairs)
        events.prepositions_expired += n_old
        sim.metrics["prepositions_expired"] += n_old


def receive_outcomes(sim: BatchedState, events: BatchEvents, live: Tensor | None) -> None:
    """Phase 1 with signalling latency: outcomes due now, in the order they were sent."""
    t = sim.t
    due = sim.flight_due <= t[:, None]
    if live is not None:
        due &= live[:, None]
    if not bool(due.any()):
        return
    F = sim.flight_due.shape[1]
    requeue_b: list[Tensor] = []
    requeue_r: list[Tensor] = []
    while True:
        has = due.any(dim=1)
        if not bool(has.any()):
            break
        b = torch.nonzero(has).flatten()
        k = torch.where(due, sim.flight_seq, BIG).argmin(dim=1)[b]
        pos = b * F + k
        due.view(-1)[pos] = False
        sim.flight_due.view(-1)[pos] = NEVER
        req = flat_take(sim.flight_request, pos)
        ok = flat_take(sim.flight_ok, pos)
        fid = flat_take(sim.flight_fidelity, pos)
        placed = flat_take(sim.flight_placed, pos)
        hops = flat_take(sim.flight_hops, pos)
        prep = req < 0
        if bool(prep.any()):
            bp = b[prep]
            tally(sim, bp, events, {"prepositions_in_flight": -1.0}, {})
            pair = flat_take(sim.flight_pair, pos[prep])
            settle(sim, bp, pair, fid[prep], ok[prep], placed[prep], hops[prep], events)
        ask = ~prep
        if not bool(ask.any()):
            continue
        br, r = b[ask], req[ask]
        tally(sim, br, events, {"requests_in_flight": -1.0}, {})
        lost = ~ok[ask]
        if bool(lost.any()):
            bl, rl = br[lost], r[lost]
            count_one(sim, bl, "swap_failures", events)
            late = t[bl] > work_at(sim, "deadline", bl, rl)
            if bool(late.any()):
                record_failed(sim, bl[late], rl[late], events)
            back = ~late
            if bool(back.any()):
                set_record(sim, bl[back], rl[back], "status", QUEUED)
                requeue_b.append(bl[back])
                requeue_r.append(rl[back])
        got = ok[ask]
        if bool(got.any()):
            bg, rg = br[got], r[got]
            age = t[bg] - placed[ask][got]
            f = physics.decayed_by(fid[ask][got], sim._pow[age], sim.cfg.decay_model)
            record_served(sim, bg, rg, ON_DEMAND, f, hops[ask][got], events)
    if requeue_b:
        merge_into_queue(sim, *rows_of(sim, torch.cat(requeue_b), torch.cat(requeue_r)))


def admit_arrivals(sim: BatchedState, events: BatchEvents, live: Tensor | None) -> None:
    """Phase 3: this slot's requests join the queue; an arrival to a full queue fails at once."""
    K = sim._arrivals_per_slot
    if K == 0:
        return
    t = sim.t
    ids, arrive = requests_at(sim, sim.next_request, t, live)
    if bool(arrive.any()):
        k = arrive.sum(dim=1)
        # a request in flight keeps its place: it returns to the queue if its swap fails
        in_flight = sim.metrics["requests_in_flight"].to(torch.int64)
        space = (sim.cfg.queue_capacity - in_flight - sim.queue_len).clamp(min=0)
        admit = arrive & (torch.arange(K, device=sim.device) < space[:, None])
        over = arrive & ~admit
        if bool(over.any()):
            n_over = over.sum(dim=1)
            sim.metrics["queue_overflow"] += n_over
            events.queue_overflow += n_over
            fail_rows(sim, ids, over, events)
        merge_into_queue(sim, ids, admit)
        rows, cols = torch.nonzero(admit, as_tuple=True)
        set_record(sim, rows, ids[rows, cols], "status", QUEUED)
        sim.next_request += k
        sim.metrics["arrived"] += k
        events.arrived += k
        count_demand(sim, ids, arrive, 1.0)
    old = t - sim.cfg.demand_obs_slots
    ids, leave = requests_at(sim, sim.demand_start, old, live)
    leave &= (old >= 0)[:, None]
    if bool(leave.any()):
        count_demand(sim, ids, leave, -1.0)
        sim.demand_start += leave.sum(dim=1)


def requests_at(
    sim: BatchedState, start: Tensor, slot: Tensor, live: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The requests arriving in ``slot`` from position ``start`` on: (B, K) ids and mask."""
    K = sim._arrivals_per_slot
    N = sim.work["arrival"].shape[1]
    ids = (start[:, None] + torch.arange(K, device=sim.device)).clamp(max=N - 1)
    at = row_take(sim.work["arrival"], ids) == slot[:, None]
    at &= start[:, None] + torch.arange(K, device=sim.device) < N
    if live is not None:
        at &= live[:, None]
    return ids, at


def count_demand(sim: BatchedState, ids: Tensor, mask: Tensor, step: float) -> None:
    """Add ``step`` to the demand window of each masked request's node pair.

    An arrival (``step > 0``) counts in this slot's arrivals too.
    """
    pair = torch.where(mask, row_take(sim.work["pair"], ids), sim.num_pairs)
    values = mask.to(torch.float32) * step
    sim.demand.scatter_add_(1, pair, values)
    if step > 0:
        sim.arrivals.scatter_add_(1, pair, values)


def fail_overdue(sim: BatchedState, events: BatchEvents) -> None:
    """Phase 6: a request still queued at the end of its deadline slot fails."""
    W = int(sim.queue_len.max())
    if W == 0:
        return
    queue = sim.queue[:, :W]
    valid = torch.arange(W, device=sim.device) < sim.queue_len[:, None]
    late = valid & (row_take(sim.work["deadline"], queue) <= sim.t[:, None])
    if not bool(late.any()):
        return
    fail_rows(sim, queue, late, events)
    compact_queue(sim, valid & ~late, W)
