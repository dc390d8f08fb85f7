"""One slot (SPEC section 5), compiled: a function per phase over :class:`State`, and ``step``.

The agent decides between phase 3 and phase 4, so a slot is split as in
:class:`spep_gym.simulator.Simulator`: :func:`begin_slot` (1 discard expired, 2 generate, 3 admit
arrivals) and :func:`finish_slot` (4 pre-position, 5 serve, 6 fail overdue). :func:`step` runs
``finish_slot`` of slot t and ``begin_slot`` of slot t + 1, and records the events of both in the
state's event entries. The draws come from the scalar simulator's own streams, drawn ahead into
``gen_u`` and ``swap_u`` by the caller (:class:`spep_gym.compiled.engine.CompiledSimulator`) and
read here in their order, so both engines see the same numbers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from spep_gym.compiled import latency, laws, links, routing
from spep_gym.compiled.jit import inner
from spep_gym.compiled.state import (
    ARRIVED,
    EV,
    EV_FAILED,
    EV_FAILED_WEIGHT,
    EV_PLACED,
    EV_PREDICTIVE_HITS,
    EV_SERVED,
    EV_SERVED_WEIGHT,
    FAILED,
    FAILED_STATUS,
    FAILED_WEIGHT,
    FIDELITY_SUM,
    GEN_ROW,
    HELD_LEN,
    IN_FLIGHT_STATUS,
    LATENCY_SUM,
    ON_DEMAND,
    PAIRS_CONSUMED,
    PAIRS_DELIVERED,
    PAIRS_EXPIRED,
    PAIRS_GENERATED,
    PAIRS_REPLACED,
    PREPOSITIONED,
    PREPOSITIONS_EXPIRED,
    PREPOSITIONS_IN_FLIGHT,
    PREPOSITIONS_PLACED,
    PREPOSITIONS_USED,
    QUEUE_LEN,
    QUEUE_OVERFLOW,
    QUEUED,
    REQUESTS_IN_FLIGHT,
    SERVED,
    SERVED_PREPOSITIONED,
    SERVED_STATUS,
    SERVED_WEIGHT,
    SWAP_FAILURES,
    SWAP_POS,
    T_NOW,
    Params,
    State,
)


@inner
def _count(s: State, index: int, n: int) -> None:
    """Add ``n`` to a metric counter and to the slot's event of the same name."""
    s.counts[index] += n
    s.counts[EV + index] += n


# ---------------------------------------------------------------------- requests
@inner
def _before(s: State, a: int, b: int) -> bool:
    """Request ``a`` is served before ``b``: priority (high first), deadline, arrival, id."""
    if s.priority[a] != s.priority[b]:
        return -s.priority[a] < -s.priority[b]
    if s.deadline[a] != s.deadline[b]:
        return s.deadline[a] < s.deadline[b]
    if s.arrival[a] != s.arrival[b]:
        return s.arrival[a] < s.arrival[b]
    return a < b


@inner
def _enqueue(s: State, r: int) -> None:
    """Insert request ``r`` into the queue in service order."""
    n = s.counts[QUEUE_LEN]
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if _before(s, r, s.queue[mid]):
            hi = mid
        else:
            lo = mid + 1
    for i in range(n, lo, -1):
        s.queue[i] = s.queue[i - 1]
    s.queue[lo] = r
    s.counts[QUEUE_LEN] = n + 1


@inner
def _served(s: State, r: int, how: int, fidelity: float, hops: int) -> None:
    """Record request ``r`` as served now."""
    t = s.counts[T_NOW]
    s.status[r] = SERVED_STATUS
    s.end_slot[r] = t
    s.fidelity[r] = fidelity
    s.how[r] = how
    s.hops[r] = hops
    s.counts[SERVED] += 1
    s.sums[LATENCY_SUM] += t - s.arrival[r]
    s.sums[FIDELITY_SUM] += fidelity
    s.counts[PAIRS_DELIVERED] += hops
    s.sums[SERVED_WEIGHT] += s.priority[r]
    s.sums[EV_SERVED_WEIGHT] += s.priority[r]
    k = s.counts[EV_SERVED]
    s.ev_served[k, 0] = r
    s.ev_served[k, 1] = how
    s.ev_served[k, 2] = fidelity
    s.ev_served[k, 3] = hops
    s.counts[EV_SERVED] = k + 1


@inner
def _fail(s: State, r: int) -> None:
    """Record request ``r`` as failed now."""
    s.status[r] = FAILED_STATUS
    s.end_slot[r] = s.counts[T_NOW]
    s.counts[FAILED] += 1
    s.sums[FAILED_WEIGHT] += s.priority[r]
    s.sums[EV_FAILED_WEIGHT] += s.priority[r]
    s.ev_failed[s.counts[EV_FAILED]] = r
    s.counts[EV_FAILED] += 1


@inner
def _drop_held(s: State, i: int) -> None:
    """Remove the i-th pre-positioned pair, keeping the others in order."""
    n = s.counts[HELD_LEN]
    for k in range(i, n - 1):
        s.held_pair[k] = s.held_pair[k + 1]
        s.held_fidelity[k] = s.held_fidelity[k + 1]
        s.held_placed[k] = s.held_placed[k + 1]
        s.held_hops[k] = s.held_hops[k + 1]
        s.held_expiry[k] = s.held_expiry[k + 1]
    s.counts[HELD_LEN] = n - 1


# ---------------------------------------------------------------------- swaps
@inner
def _consume(s: State, p: Params, path: np.ndarray, hops: int) -> tuple[float, bool]:
    """Take the youngest pair of every link on ``path`` and swap: (F_path, the swaps succeeded)."""
    t = s.counts[T_NOW]
    for i in range(hops):
        s.taken[i] = links.take(s, path[i], t)
    _count(s, PAIRS_CONSUMED, hops)
    if hops > 1 and p.swap_success < 1.0:
        ok = True
        for _ in range(hops - 1):  # every draw is read, as the scalar engine draws hops - 1 at once
            if not s.swap_u[s.counts[SWAP_POS]] < p.swap_success:
                ok = False
            s.counts[SWAP_POS] += 1
        if not ok:
            return 0.0, False
    product = 1.0
    for i in range(hops):
        product *= laws.link_factor(s.taken[i], p.swap_model)
    return laws.fidelity_from_product(product, p.swap_model), True


# ---------------------------------------------------------------------- phases 1-3
@inner
def _settle_preposition(
    s: State, p: Params, a: int, fidelity: float, placed: int, hops: int
) -> None:
    """A pre-position's swap succeeded and its outcome is known: hold the pair (an event)."""
    window = laws.slots_until_below(
        fidelity, p.preposition_rho, p.F_min, p.prediction_window, p.decay_model
    )
    k = s.counts[HELD_LEN]
    s.held_pair[k] = a
    s.held_fidelity[k] = fidelity
    s.held_placed[k] = placed
    s.held_hops[k] = hops
    s.held_expiry[k] = placed + window
    s.counts[HELD_LEN] = k + 1
    j = s.counts[EV_PLACED]
    s.ev_placed[j, 0] = a
    s.ev_placed[j, 1] = fidelity
    s.ev_placed[j, 2] = hops
    s.counts[EV_PLACED] = j + 1
    s.counts[PREPOSITIONS_PLACED] += 1


@inner
def receive_outcomes(s: State, p: Params) -> None:
    """Phase 1 (``signalling_latency > 0``): the swaps decided ``delay`` slots ago are known now.

    In dispatch order: an on-demand delivery serves its request (decayed while in flight); a
    pre-position becomes usable; a failed swap is counted, and its request returns to the queue
    (it is not past its deadline: serve sent it only if the outcome arrives by then). The swaps
    still in flight keep their order.
    """
    t = s.counts[T_NOW]
    n = latency.in_flight(s)
    keep = 0
    for i in range(n):
        if s.flight_due[i] > t:  # still on its way
            s.flight_due[keep] = s.flight_due[i]
            s.flight_placed[keep] = s.flight_placed[i]
            s.flight_pair[keep] = s.flight_pair[i]
            s.flight_hops[keep] = s.flight_hops[i]
            s.flight_fidelity[keep] = s.flight_fidelity[i]
            s.flight_request[keep] = s.flight_request[i]
            keep += 1
            continue
        r, f, hops = s.flight_request[i], s.flight_fidelity[i], s.flight_hops[i]
        if r < 0:
            s.counts[PREPOSITIONS_IN_FLIGHT] -= 1
            if np.isnan(f):
                _count(s, SWAP_FAILURES, 1)
            else:
                _settle_preposition(s, p, s.flight_pair[i], f, s.flight_placed[i], hops)
            continue
        s.counts[REQUESTS_IN_FLIGHT] -= 1
        if np.isnan(f):  # back to the queue: serve sent it only if t + delay <= its deadline
            _count(s, SWAP_FAILURES, 1)
            s.status[r] = QUEUED
            _enqueue(s, r)
            continue
        f = laws.decayed(f, p.preposition_rho, t - s.flight_placed[i], p.decay_model)
        _served(s, r, ON_DEMAND, f, hops)


@inner
def discard_expired(s: State, p: Params) -> None:
    """Phase 1: discard link pairs past their lifetime and pre-positioned pairs past expiry.

    Swap outcomes due now (signalling latency) arrive first.
    """
    t = s.counts[T_NOW]
    if latency.in_flight(s):
        receive_outcomes(s, p)
    _count(s, PAIRS_EXPIRED, links.discard_expired(s, t))
    n = s.counts[HELD_LEN]
    k = 0
    for i in range(n):
        if s.held_expiry[i] > t:
            s.held_pair[k] = s.held_pair[i]
            s.held_fidelity[k] = s.held_fidelity[i]
            s.held_placed[k] = s.held_placed[i]
            s.held_hops[k] = s.held_hops[i]
            s.held_expiry[k] = s.held_expiry[i]
            k += 1
    s.counts[HELD_LEN] = k
    _count(s, PREPOSITIONS_EXPIRED, n - k)


@inner
def generate_links(s: State, p: Params) -> None:
    """Phase 2: one uniform per link, drawn for every link whatever its state (a row of gen_u)."""
    t = s.counts[T_NOW]
    new, replaced = links.generate(s, t, p.replace_oldest, s.gen_u[s.counts[GEN_ROW]])
    s.counts[GEN_ROW] += 1
    _count(s, PAIRS_GENERATED, new)
    _count(s, PAIRS_REPLACED, replaced)
    links.refresh(s, t)


@inner
def admit_arrivals(s: State, p: Params) -> None:
    """Phase 3: this slot's requests join the queue; a full queue rejects (fails) a request."""
    t = s.counts[T_NOW]
    lo, hi = s.starts[t], s.starts[t + 1]
    # a request in flight keeps its place: it returns to the queue if its swap fails
    free = p.queue_capacity - s.counts[REQUESTS_IN_FLIGHT]
    for r in range(lo, hi):
        if s.counts[QUEUE_LEN] >= free:
            s.counts[QUEUE_OVERFLOW] += 1
            _fail(s, r)
            continue
        _enqueue(s, r)
        s.status[r] = QUEUED
    s.counts[ARRIVED] += hi - lo


@inner
def begin_slot(s: State, p: Params) -> None:
    """Phases 1-3 of the slot ``counts[T_NOW]``."""
    discard_expired(s, p)
    generate_links(s, p)
    admit_arrivals(s, p)


# ---------------------------------------------------------------------- phases 4-6
@inner
def preposition_path(s: State, p: Params, a: int, out: np.ndarray) -> int:
    """The path pre-positioning would use for node pair ``a`` now (its hops; -1: none)."""
    src, dst = s.pair_nodes[a, 0], s.pair_nodes[a, 1]
    if p.preposition_path == 0:
        return routing.static(s, src, dst, out)
    return routing.shortest(s, src, dst, out)


@inner
def preposition(s: State, p: Params, action: np.ndarray) -> None:
    """Phase 4 (Algorithm 2's placement): try the chosen node pairs in order within the limits.

    Pairs in flight (placed, outcome not yet known) count toward ``max_prepositioned``.
    """
    t = s.counts[T_NOW]
    num_pairs = s.pair_nodes.shape[0]
    placed = 0
    for i in range(action.shape[0]):
        if (
            placed >= p.max_new_prepositions
            or s.counts[HELD_LEN] + s.counts[PREPOSITIONS_IN_FLIGHT] >= p.max_prepositioned
        ):
            break
        a = action[i]
        if a < 0 or a >= num_pairs:
            continue
        hops = preposition_path(s, p, a, s.path)
        if hops < 0:
            continue
        fidelity, ok = _consume(s, p, s.path, hops)
        if s.delay[hops]:  # the end nodes cannot know the outcome yet: it counts as placed now
            latency.dispatch(s, s.path, hops, a, fidelity, ok, -1)
            placed += 1
            continue
        if not ok:
            _count(s, SWAP_FAILURES, 1)
            continue
        _settle_preposition(s, p, a, fidelity, t, hops)
        placed += 1


@inner
def serve(s: State, p: Params) -> None:
    """Phase 5: a pre-positioned pair first (the lowest sufficient fidelity), else on demand.

    The route of (s, d) is searched once until a consumption changes the links ("none" stays
    true after one: links only disappear within a slot). On demand, the path counts only if the
    pair it delivers (after the signalling delay) meets F_req and arrives by the deadline; with a
    delay the request leaves the queue in flight.
    """
    queued = s.counts[QUEUE_LEN]
    if queued == 0:
        return
    t = s.counts[T_NOW]
    n = s.seen.shape[0]
    s.route_len[:] = -2
    keep = 0
    for qi in range(queued):
        r = s.queue[qi]
        f_req = s.F_req[r]
        best = -1
        best_f = np.inf
        for i in range(s.counts[HELD_LEN]):
            if s.held_pair[i] == s.pair[r]:
                f = laws.decayed(
                    s.held_fidelity[i], p.preposition_rho, t - s.held_placed[i], p.decay_model
                )
                if f_req <= f < best_f:
                    best, best_f = i, f
        if best >= 0:
            hops, placed = s.held_hops[best], s.held_placed[best]
            _drop_held(s, best)
            s.counts[PREPOSITIONS_USED] += 1
            s.counts[SERVED_PREPOSITIONED] += 1
            if placed < s.arrival[r]:  # a predictive hit: placed before the request arrived
                s.counts[EV_PREDICTIVE_HITS] += 1
            _served(s, r, PREPOSITIONED, best_f, hops)
            continue
        key = s.source[r] * n + s.destination[r]
        hops = s.route_len[key]
        if hops == -2:
            src, dst, out = s.source[r], s.destination[r], s.route_links[key]
            if p.latency and p.routing == 2:  # highest_fidelity on the fidelity delivered
                hops = latency.highest_delivered(s, p, src, dst, out)
            else:
                hops = routing.route(s, p.routing, src, dst, out)
            s.route_len[key] = hops
        if hops < 0:
            s.queue[keep] = r
            keep += 1
            continue
        path = s.route_links[key]
        product = 1.0
        for i in range(hops):
            product *= s.factor[path[i]]
        delivered = latency.delivered(s, p, laws.fidelity_from_product(product, p.swap_model), hops)
        if delivered < f_req or t + s.delay[hops] > s.deadline[r]:
            s.queue[keep] = r
            keep += 1
            continue
        fidelity, ok = _consume(s, p, path, hops)
        for k in range(n * n):  # the links changed: forget the routes found, keep the "none"s
            if s.route_len[k] >= 0:
                s.route_len[k] = -2
        s.dispatch_slot[r] = t
        if s.delay[hops]:
            s.status[r] = IN_FLIGHT_STATUS
            latency.dispatch(s, path, hops, s.pair[r], fidelity, ok, r)
        elif ok:
            _served(s, r, ON_DEMAND, fidelity, hops)
        else:
            _count(s, SWAP_FAILURES, 1)
            s.queue[keep] = r
            keep += 1
    s.counts[QUEUE_LEN] = keep


@inner
def fail_overdue(s: State, p: Params) -> None:
    """Phase 6: a request still queued at the end of its deadline slot fails."""
    t = s.counts[T_NOW]
    keep = 0
    for i in range(s.counts[QUEUE_LEN]):
        r = s.queue[i]
        if s.deadline[r] <= t:
            _fail(s, r)
        else:
            s.queue[keep] = r
            keep += 1
    s.counts[QUEUE_LEN] = keep


@inner
def finish_slot(s: State, p: Params, action: np.ndarray) -> None:
    """Phases 4-6 of the slot ``counts[T_NOW]``: pre-position ``action``, serve, fail overdue."""
    preposition(s, p, action)
    serve(s, p)
    fail_overdue(s, p)


# ---------------------------------------------------------------------- the slot
@inner
def clear_events(s: State) -> None:
    """Zero the slot's event entries."""
    s.counts[EV:T_NOW] = 0
    s.counts[EV_PREDICTIVE_HITS] = 0
    s.sums[EV_SERVED_WEIGHT] = 0.0
    s.sums[EV_FAILED_WEIGHT] = 0.0


@njit(cache=True)
def reset(s: State, p: Params) -> None:
    """Run phases 1-3 of slot 0 on a new state."""
    clear_events(s)
    begin_slot(s, p)


@njit(cache=True)
def step(s: State, p: Params, action: np.ndarray) -> None:
    """Finish slot t with the pre-positioning ``action`` (node-pair ids) and begin slot t + 1.

    The caller has drawn the uniforms ahead: a row of ``gen_u`` left, and in ``swap_u`` at least
    as many swap uniforms as the links hold pairs.
    """
    clear_events(s)
    finish_slot(s, p, action)
    s.counts[T_NOW] += 1
    if s.counts[T_NOW] < p.episode_slots:
        begin_slot(s, p)
