"""The compiled engine's state: one record of arrays (a struct of arrays), built from a network.

Every field is a numpy array that the phase functions read and write in place; a scalar lives in a
0-d slot of ``counts`` or ``sums``. Shapes: E links, C the largest link capacity, A the ages of the
fidelity table, n nodes, P node pairs, H the longest static path, N requests of the episode,
T slots, Q ``queue_capacity``, K ``max_prepositioned``, F = K + Q the swaps that can be in flight.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from spep_gym import physics
from spep_gym.config import SpepConfig
from spep_gym.topology import Network
from spep_gym.workload import Workload

# Indices of ``State.counts`` (int64): the metrics' integer counters, then the slot's events, then
# the engine's own scalars.
ARRIVED, SERVED, FAILED, SERVED_PREPOSITIONED = 0, 1, 2, 3
PAIRS_GENERATED, PAIRS_CONSUMED, PAIRS_EXPIRED, PAIRS_REPLACED, PAIRS_DELIVERED = 4, 5, 6, 7, 8
PREPOSITIONS_PLACED, PREPOSITIONS_USED, PREPOSITIONS_EXPIRED = 9, 10, 11
SWAP_FAILURES, QUEUE_OVERFLOW = 12, 13
#: Names of the metric counters, in index order (``Metrics``' integer fields).
COUNTER_NAMES = (
    "arrived", "served", "failed", "served_prepositioned", "pairs_generated", "pairs_consumed",
    "pairs_expired", "pairs_replaced", "pairs_delivered", "prepositions_placed",
    "prepositions_used", "prepositions_expired", "swap_failures", "queue_overflow",
)  # fmt: skip
# The slot's events (reset by every step): the same counters over one slot.
EV = 14  # offset: counts[EV + PAIRS_GENERATED] is the slot's pairs generated, and so on
EV_PLACED, EV_SERVED, EV_FAILED = 28, 29, 30  # entries used in the event buffers
T_NOW, QUEUE_LEN, HELD_LEN = 31, 32, 33  # the slot t, requests queued, pre-positions held
GEN_ROW, SWAP_POS, SWAP_END = 34, 35, 36  # next row of gen_u; next and end of swap_u's draws
EV_PREDICTIVE_HITS = 37  # the slot's pre-positioned pairs used by a request that arrived later
# swaps in flight (signalling_latency > 0; Metrics' fields of the same names): on-demand, pre-position
REQUESTS_IN_FLIGHT, PREPOSITIONS_IN_FLIGHT = 38, 39
NUM_COUNTS = 40
#: Slots of generation uniforms drawn at a time.
GEN_CHUNK = 64
# Indices of ``State.sums`` (float64).
LATENCY_SUM, FIDELITY_SUM, SERVED_WEIGHT, FAILED_WEIGHT = 0, 1, 2, 3
EV_SERVED_WEIGHT, EV_FAILED_WEIGHT = 4, 5
NUM_SUMS = 6
# Models as integers (the phases branch on them).
SWAP_MODEL = {"paper": 0, "werner": 1}
DECAY_MODEL = {"paper": 0, "depolarizing": 1}
ROUTING = {"reactive": 0, "shortest": 1, "highest_fidelity": 2}
PREPOSITION_PATH = {"static": 0, "available": 1}
# Request status and how served: the values of spep_gym.metrics.
QUEUED, SERVED_STATUS, FAILED_STATUS, IN_FLIGHT_STATUS = 1, 2, 3, 4
ON_DEMAND, PREPOSITIONED = 1, 2


class Params(NamedTuple):
    """The config's scalars the phases read (fixed for an episode)."""

    swap_model: int  # SWAP_MODEL
    decay_model: int  # DECAY_MODEL
    routing: int  # ROUTING
    preposition_path: int  # PREPOSITION_PATH
    replace_oldest: bool  # link_pool_policy == "replace_oldest"
    swap_success: float  # probability that one swap succeeds
    preposition_rho: float  # decay per slot of a pre-positioned pair
    F_min: float
    prediction_window: int  # slots
    max_prepositioned: int  # K
    max_new_prepositions: int
    queue_capacity: int
    episode_slots: int  # T
    latency: bool  # signalling_latency > 0: swaps in flight (latency.py)


class State(NamedTuple):
    """One network's state and the static arrays of its episode (struct of arrays)."""

    # network (static)
    p_gen: np.ndarray  # (E,) float, generation probability per slot
    capacity: np.ndarray  # (E,) int, stored pairs at most
    lifetime: np.ndarray  # (E,) int, a pair is discarded at age >= lifetime
    fidelity_table: np.ndarray  # (E + 1, A) float, fidelity by age (0 from lifetime on)
    factor_table: np.ndarray  # (E + 1, A) float, the swap model's factor by age
    cost_table: np.ndarray  # (E + 1, A) float, -log(factor) as numpy computes it (whole refresh)
    cost_table_1: np.ndarray  # (E + 1, A) float, -log(factor) as math.log computes it (one link)
    nbr_start: np.ndarray  # (n + 1,) int, node u's neighbours are nbr_node[nbr_start[u]:...]
    nbr_node: np.ndarray  # (2E,) int, neighbours in ascending id
    nbr_link: np.ndarray  # (2E,) int, the link to each
    pair_nodes: np.ndarray  # (P, 2) int, i < j
    static_paths: np.ndarray  # (P, H) int, links of the static path (padded with E)
    static_hops: np.ndarray  # (P,) int
    # workload (static)
    source: np.ndarray  # (N,) int
    destination: np.ndarray  # (N,) int
    pair: np.ndarray  # (N,) int, node-pair index
    F_req: np.ndarray  # (N,) float
    deadline: np.ndarray  # (N,) int, t_d
    arrival: np.ndarray  # (N,) int, t_a
    priority: np.ndarray  # (N,) float
    starts: np.ndarray  # (T + 1,) int, slot t's requests are starts[t]:starts[t + 1]
    # link pools
    created: np.ndarray  # (E, C) int, creation slot of each stored pair; -1: free place
    stored: np.ndarray  # (E,) int, pairs stored (LinkPool.count)
    youngest: np.ndarray  # (E,) int, creation slot of the youngest pair; -1: none
    usable: np.ndarray  # (E + 1,) bool, the link holds a pair (E: the padding link, True)
    factor: np.ndarray  # (E + 1,) float, factor of the best pair (0: none; E: 1)
    cost: np.ndarray  # (E,) float, -log(factor) (inf: none)
    # requests
    queue: np.ndarray  # (Q,) int, queued request ids in service order; QUEUE_LEN are used
    status: np.ndarray  # (N,) int8, the records' status
    dispatch_slot: np.ndarray  # (N,) int, last on-demand swap sent for it; -1: none
    end_slot: np.ndarray  # (N,) int
    fidelity: np.ndarray  # (N,) float, delivered fidelity (NaN: none)
    how: np.ndarray  # (N,) int8, ON_DEMAND or PREPOSITIONED
    hops: np.ndarray  # (N,) int
    # pre-positioned pairs held, in placement order; HELD_LEN are used
    held_pair: np.ndarray  # (K,) int
    held_fidelity: np.ndarray  # (K,) float, F_path when placed
    held_placed: np.ndarray  # (K,) int, slot placed
    held_hops: np.ndarray  # (K,) int
    held_expiry: np.ndarray  # (K,) int, discarded in phase 1 of this slot
    # signalling latency: swaps in flight, in dispatch order; REQUESTS_ + PREPOSITIONS_IN_FLIGHT used
    delay: np.ndarray  # (n + 1,) int, slots until an h-link swap's outcome arrives, by h (static)
    busy_until: np.ndarray  # (E,) int, the link generates nothing through this slot
    flight_due: np.ndarray  # (F,) int, the slot whose phase 1 receives the outcome
    flight_placed: np.ndarray  # (F,) int, the decision slot
    flight_pair: np.ndarray  # (F,) int, node-pair index
    flight_hops: np.ndarray  # (F,) int, link pairs consumed
    flight_fidelity: np.ndarray  # (F,) float, F_path at the decision slot; NaN: a swap failed
    flight_request: np.ndarray  # (F,) int, the request it serves; -1: a pre-position
    # scalars and the slot's events
    counts: np.ndarray  # (NUM_COUNTS,) int, see the indices above
    sums: np.ndarray  # (NUM_SUMS,) float
    ev_placed: np.ndarray  # (max_new_prepositions, 3) float: pair, fidelity, hops
    ev_served: np.ndarray  # (Q, 4) float: request, how, fidelity, hops
    ev_failed: np.ndarray  # (Q + max arrivals of a slot,) int, request ids
    # the draws, taken ahead from the scalar simulator's streams (in their order)
    gen_u: np.ndarray  # (GEN_CHUNK, E) float, generation uniforms of the next slots, a row each
    swap_u: np.ndarray  # (2 S + 1,) float, swap uniforms (S = the pairs all links can store)
    # scratch of the searches (no allocation per slot)
    path: np.ndarray  # (n,) int, the links of the path found
    path2: np.ndarray  # (n,) int, a second path buffer
    seen: np.ndarray  # (n,) int, search marks
    parent_node: np.ndarray  # (n,) int
    parent_link: np.ndarray  # (n,) int
    dist: np.ndarray  # (n,) float
    frontier: np.ndarray  # (n,) int
    taken: np.ndarray  # (n,) float, fidelities of the pairs a path consumed
    route_len: np.ndarray  # (n * n,) int, cached route of (s, d): hops; -1 none; -2 not known
    route_links: np.ndarray  # (n * n, n) int, its links
    layer_cost: np.ndarray  # (n, n) float, least cost of node v in exactly h hops (inf: none)
    layer_parent_node: np.ndarray  # (n, n) int, its predecessor in layer h - 1
    layer_parent_link: np.ndarray  # (n, n) int, the link from it


def params(cfg: SpepConfig) -> Params:
    """The scalars of ``cfg`` that the phases read."""
    return Params(
        swap_model=SWAP_MODEL[cfg.swap_model],
        decay_model=DECAY_MODEL[cfg.decay_model],
        routing=ROUTING[cfg.routing],
        preposition_path=PREPOSITION_PATH[cfg.preposition_path],
        replace_oldest=cfg.link_pool_policy == "replace_oldest",
        swap_success=float(cfg.swap_success),
        preposition_rho=float(cfg.effective_preposition_rho),
        F_min=float(cfg.F_min),
        prediction_window=int(cfg.prediction_window),
        max_prepositioned=int(cfg.max_prepositioned),
        max_new_prepositions=int(cfg.max_new_prepositions),
        queue_capacity=int(cfg.queue_capacity),
        episode_slots=int(cfg.episode_slots),
        latency=cfg.signalling_latency > 0,
    )


def new_state(cfg: SpepConfig, net: Network, work: Workload) -> State:
    """An empty state at slot 0 on ``net`` with the episode's requests ``work``."""
    E, n, N = net.num_links, net.n, len(work)
    table = net.fidelity_table
    factor_table = np.asarray(physics.link_factor(table, cfg.swap_model), dtype=np.float64)
    # The scalar engine's view takes -log of the factor with numpy over all links and with
    # math.log for one link: both tables, so that the costs are theirs to the last bit.
    cost_table = -np.log(np.clip(factor_table, 1e-300, None))
    cost_table_1 = np.array(
        [[-math.log(max(f, 1e-300)) for f in row] for row in factor_table.tolist()]
    ).reshape(factor_table.shape)
    degree = np.array([len(nb) for nb in net.neighbours], dtype=np.int64)
    nbr_start = np.concatenate([[0], np.cumsum(degree)]).astype(np.int64)
    nbr = [vl for nb in net.neighbours for vl in nb]
    nbr_node = np.array([v for v, _ in nbr], dtype=np.int64)
    nbr_link = np.array([e for _, e in nbr], dtype=np.int64)
    Q, K = cfg.queue_capacity, cfg.max_prepositioned
    F = K + Q
    delay = [physics.signalling_delay(cfg.signalling_latency, h) for h in range(n + 1)]
    per_slot = int(np.diff(work.starts).max(initial=0))
    usable = np.zeros(E + 1, dtype=np.bool_)
    usable[E] = True
    factor = np.zeros(E + 1)
    factor[E] = 1.0
    i64 = np.int64
    return State(
        p_gen=np.ascontiguousarray(net.p_gen, dtype=np.float64),
        capacity=np.ascontiguousarray(net.capacity, dtype=i64),
        lifetime=np.ascontiguousarray(net.lifetime, dtype=i64),
        fidelity_table=np.ascontiguousarray(table),
        factor_table=factor_table,
        cost_table=cost_table,
        cost_table_1=cost_table_1,
        nbr_start=nbr_start,
        nbr_node=nbr_node,
        nbr_link=nbr_link,
        pair_nodes=np.ascontiguousarray(net.pair_nodes, dtype=i64),
        static_paths=np.ascontiguousarray(net.static_paths, dtype=i64),
        static_hops=np.ascontiguousarray(net.static_hops, dtype=i64),
        source=np.ascontiguousarray(work.source, dtype=i64),
        destination=np.ascontiguousarray(work.destination, dtype=i64),
        pair=np.ascontiguousarray(work.pair, dtype=i64),
        F_req=np.ascontiguousarray(work.F_req, dtype=np.float64),
        deadline=np.ascontiguousarray(work.deadline, dtype=i64),
        arrival=np.ascontiguousarray(work.arrival, dtype=i64),
        priority=np.ascontiguousarray(work.priority, dtype=np.float64),
        starts=np.ascontiguousarray(work.starts, dtype=i64),
        created=np.full((E, int(net.capacity.max(initial=1))), -1, dtype=i64),
        stored=np.zeros(E, dtype=i64),
        youngest=np.full(E, -1, dtype=i64),
        usable=usable,
        factor=factor,
        cost=np.full(E, np.inf),
        queue=np.zeros(Q, dtype=i64),
        status=np.zeros(N, dtype=np.int8),
        dispatch_slot=np.full(N, -1, dtype=i64),
        end_slot=np.full(N, -1, dtype=i64),
        fidelity=np.full(N, np.nan),
        how=np.zeros(N, dtype=np.int8),
        hops=np.zeros(N, dtype=i64),
        held_pair=np.zeros(K, dtype=i64),
        held_fidelity=np.zeros(K),
        held_placed=np.zeros(K, dtype=i64),
        held_hops=np.zeros(K, dtype=i64),
        held_expiry=np.zeros(K, dtype=i64),
        delay=np.array(delay, dtype=i64),
        busy_until=np.full(E, -1, dtype=i64),
        flight_due=np.zeros(F, dtype=i64),
        flight_placed=np.zeros(F, dtype=i64),
        flight_pair=np.zeros(F, dtype=i64),
        flight_hops=np.zeros(F, dtype=i64),
        flight_fidelity=np.zeros(F),
        flight_request=np.zeros(F, dtype=i64),
        counts=np.zeros(NUM_COUNTS, dtype=i64),
        gen_u=np.zeros((GEN_CHUNK, E)),
        swap_u=np.zeros(2 * int(net.capacity.sum()) + 1),
        sums=np.zeros(NUM_SUMS),
        # placed now, or (latency) received in phase 1: at most K
        ev_placed=np.zeros((max(cfg.max_new_prepositions, K, 1), 3)),
        ev_served=np.zeros((max(Q, 1), 4)),
        ev_failed=np.zeros(Q + per_slot + 1, dtype=i64),
        path=np.zeros(n, dtype=i64),
        path2=np.zeros(n, dtype=i64),
        seen=np.zeros(n, dtype=i64),
        parent_node=np.zeros(n, dtype=i64),
        parent_link=np.zeros(n, dtype=i64),
        dist=np.zeros(n),
        frontier=np.zeros(n, dtype=i64),
        taken=np.zeros(n),
        route_len=np.full(n * n, -2, dtype=i64),
        route_links=np.zeros((n * n, n), dtype=i64),
        layer_cost=np.zeros((n, n)),
        layer_parent_node=np.zeros((n, n), dtype=i64),
        layer_parent_link=np.zeros((n, n), dtype=i64),
    )
