"""The discrete-time simulator (SPEC section 5, paper Algorithm 1), with no Gymnasium in it.

One slot runs six phases in order. The agent decides between phase 3 and phase 4, so the simulator
splits a slot in two: :meth:`Simulator.begin_slot` (1 discard expired, 2 generate, 3 admit arrivals)
and :meth:`Simulator.finish_slot` (4 pre-position, 5 serve, 6 fail overdue). An agent therefore sees
the state exactly as Algorithm 2 sees it: after this slot's generation and arrivals.

Randomness comes from one seed split into named streams (topology, workload, generation, swaps); the
generation stream draws one uniform per link per slot whatever the agent does (common random numbers).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from spep_gym import physics
from spep_gym.config import SpepConfig
from spep_gym.links import LinkPool
from spep_gym.metrics import (
    FAILED,
    IN_FLIGHT,
    ON_DEMAND,
    PREPOSITIONED,
    QUEUED,
    SERVED,
    Metrics,
    empty_records,
)
from spep_gym.routing import STRATEGIES, highest_delivered_fidelity, static_path
from spep_gym.routing import shortest as shortest_path
from spep_gym.topology import (
    Network,
    bfs_predecessors,
    generate_graph,
    paths_from_predecessors,
)
from spep_gym.workload import Trace, Workload, generate


@dataclass(slots=True)
class Preposition:
    """A pre-positioned end-to-end pair between the nodes of ``pair``."""

    pair: int  # unordered node-pair index
    fidelity: float  # F_path when placed
    placed: int  # slot t_place
    hops: int  # link pairs it consumed
    expiry: int  # discarded in phase 1 of this slot


@dataclass(slots=True)
class InFlight:
    """A swap whose outcome is still on its way to the end nodes (``signalling_latency > 0``)."""

    due: int  # the slot whose phase 1 receives the outcome
    placed: int  # the decision slot
    pair: int  # unordered node-pair index
    hops: int  # link pairs consumed
    fidelity: float | None  # F_path at the decision slot; None: a swap failed
    request: int = -1  # the request it serves; -1: a pre-position


@dataclass
class SlotEvents:
    """What happened in one slot's phases 4-6 and the next slot's phases 1-3."""

    slot: int  # the slot whose phases 4-6 ran
    placed: list[tuple[int, float, int]] = field(default_factory=list)  # (pair, fidelity, hops)
    served: list[tuple[int, int, float, int]] = field(default_factory=list)  # (id, how, F, hops)
    failed: list[int] = field(default_factory=list)  # request ids
    swap_failures: int = 0
    pairs_consumed: int = 0
    served_weight: float = 0.0
    failed_weight: float = 0.0
    predictive_hits: int = 0  # pre-positioned pairs used by a request that arrived after placement
    # phases 1-3 of the slot that begins next (outcomes received in its phase 1 add to the above)
    arrived: list[int] = field(default_factory=list)  # request ids now queued
    pairs_generated: int = 0
    pairs_expired: int = 0
    pairs_replaced: int = 0
    prepositions_expired: int = 0


class Simulator:
    """A quantum network with link pair pools, a request queue and pre-positioned pairs."""

    def __init__(self, cfg: SpepConfig | None = None) -> None:
        self.cfg = cfg = cfg or SpepConfig()
        self._trace = Trace.load(cfg.trace, cfg.n) if cfg.trace is not None else None
        #: The network every episode uses (``topology_seed`` set or a user graph); None: one per seed.
        self.fixed_net: Network | None = None
        if cfg.topology_seed is not None or not isinstance(cfg.topology, str):
            rng = np.random.default_rng(np.random.SeedSequence(cfg.topology_seed or 0))
            self.fixed_net = Network.build(generate_graph(cfg, rng), cfg)
        #: The most pairs a link can store, over every network an episode can draw.
        self.max_link_capacity = cfg.link_capacity
        if self.fixed_net is not None:
            self.max_link_capacity = max(cfg.link_capacity, int(self.fixed_net.capacity.max()))
        if self._trace is not None:
            rows = self._trace.rows
            self.max_deadline_slots = int((rows[:, 4] - rows[:, 0]).max(initial=0))
            self.max_priority = float(rows[:, 5].max(initial=1.0))
        else:
            self.max_deadline_slots = cfg.deadline_range[1]
            self.max_priority = float(max(cfg.priority_weights))
        self._route = STRATEGIES[cfg.routing]
        self._prho = cfg.effective_preposition_rho
        self._model = cfg.swap_model
        self._decay = cfg.decay_model
        #: Slots until an h-link swap's outcome reaches the end nodes, by h (SPEC 9).
        self.delays = [
            physics.signalling_delay(cfg.signalling_latency, h) for h in range(cfg.n + 1)
        ]
        self._latency = cfg.signalling_latency > 0
        if self._latency and cfg.routing == "highest_fidelity":
            self._route = self._highest_delivered
        self.t = 0
        self.net: Network
        self.workload: Workload

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int) -> SlotEvents:
        """Start an episode from ``seed`` and run phases 1-3 of slot 0."""
        cfg = self.cfg
        topo_ss, work_ss, gen_ss, swap_ss = np.random.SeedSequence(seed).spawn(4)
        if self.fixed_net is not None:
            self.net = self.fixed_net
        else:
            self.net = Network.build(generate_graph(cfg, np.random.default_rng(topo_ss)), cfg)
        net = self.net
        work_rng = np.random.default_rng(work_ss)
        if self._trace is not None:
            self.workload = self._trace.workload(cfg, net)
        else:
            self.workload = generate(cfg, net, work_rng)
        self._gen_rng = np.random.default_rng(gen_ss)
        self._swap_rng = np.random.default_rng(swap_ss)

        self.links = LinkPool(
            net,
            self._model,
            costs=cfg.routing == "highest_fidelity",
            replace_oldest=cfg.link_pool_policy == "replace_oldest",
        )
        self.held: list[Preposition] = []  # usable pre-positioned pairs
        self.in_flight: list[InFlight] = []  # swaps whose outcome has not arrived (latency > 0)
        self._queue: list[tuple[float, int, int, int]] = []  # (-w, t_d, t_a, id), service order
        self.metrics = Metrics()
        w = self.workload
        self.records = empty_records(len(w))
        self._src = w.source.tolist()
        self._dst = w.destination.tolist()
        self._pair = w.pair.tolist()
        self._freq = w.F_req.tolist()
        self._deadline = w.deadline.tolist()
        self._arrival = w.arrival.tolist()
        self._prio = w.priority.tolist()
        self._starts = w.starts.tolist()
        self.t = 0
        events = SlotEvents(slot=-1)
        self.begin_slot(events)
        return events

    @property
    def done(self) -> bool:
        """True once every slot of the episode has run."""
        return self.t >= self.cfg.episode_slots

    def step(self, action: Iterable[int] = ()) -> SlotEvents:
        """Finish the current slot with the agent's pre-positioning ``action`` and begin the next.

        ``action`` lists node-pair indices in order of preference; out-of-range entries mean "none".
        """
        if self.done:
            raise RuntimeError("the episode is over (all episode_slots have run): call reset()")
        events = SlotEvents(slot=self.t)
        self.finish_slot(action, events)
        self.t += 1
        if not self.done:
            self.begin_slot(events)
        return events

    # ------------------------------------------------------------------ phases 1-3
    def begin_slot(self, events: SlotEvents) -> None:
        """Phases 1-3 of slot ``t``: discard expired, generate, admit arrivals."""
        self.discard_expired(events)
        self.generate_links(events)
        self.admit_arrivals(events)

    def discard_expired(self, events: SlotEvents) -> None:
        """Phase 1: discard link pairs past their lifetime and pre-positioned pairs past expiry.

        Swap outcomes due now (signalling latency) arrive first.
        """
        t = self.t
        if self.in_flight:
            self.receive_outcomes(events)
        n = self.links.discard_expired(t)
        events.pairs_expired += n
        self.metrics.pairs_expired += n
        if self.held:
            keep = [p for p in self.held if p.expiry > t]
            gone = len(self.held) - len(keep)
            if gone:
                self.held = keep
                events.prepositions_expired += gone
                self.metrics.prepositions_expired += gone

    def receive_outcomes(self, events: SlotEvents) -> None:
        """Phase 1 (``signalling_latency > 0``): the swaps decided ``delay`` slots ago are known now.

        An on-demand delivery serves its request; a pre-position becomes usable; a failed swap is
        counted, and its request returns to the queue (or fails, past its deadline).
        """
        t = self.t
        due = [f for f in self.in_flight if f.due <= t]
        if not due:
            return
        self.in_flight = [f for f in self.in_flight if f.due > t]
        m = self.metrics
        for f in due:
            if f.request < 0:
                m.prepositions_in_flight -= 1
                self._settle_preposition(f.pair, f.fidelity, f.placed, f.hops, events)
                continue
            r = f.request
            m.requests_in_flight -= 1
            if f.fidelity is None:
                events.swap_failures += 1
                m.swap_failures += 1
                if t > self._deadline[r]:
                    self._fail(r, events)
                else:
                    self.records["status"][r] = QUEUED
                    bisect.insort(self._queue, self._key(r))
                continue
            fidelity = physics.decayed(f.fidelity, self._prho, t - f.placed, self._decay)
            self._served(r, ON_DEMAND, fidelity, f.hops, events)

    def generate_links(self, events: SlotEvents) -> None:
        """Phase 2: one uniform per link, drawn for every link whatever its state."""
        n, replaced = self.links.generate(self.t, self._gen_rng.random(self.net.num_links))
        events.pairs_generated += n
        self.metrics.pairs_generated += n
        if replaced:
            events.pairs_replaced += replaced
            self.metrics.pairs_replaced += replaced
        self.links.refresh(self.t)

    def admit_arrivals(self, events: SlotEvents) -> None:
        """Phase 3: this slot's requests join the queue (in priority, deadline, arrival order).

        A request that finds ``queue_capacity`` requests waiting or in flight is rejected: it fails
        at once (counted in ``queue_overflow``).
        """
        lo, hi = self._starts[self.t], self._starts[self.t + 1]
        status = self.records["status"]
        # a request in flight keeps its place: it returns to the queue if its swap fails
        free = self.cfg.queue_capacity - self.metrics.requests_in_flight
        for r in range(lo, hi):
            events.arrived.append(r)
            if len(self._queue) >= free:  # a full queue rejects the request: it fails now
                self.metrics.queue_overflow += 1
                self._fail(r, events)
                continue
            bisect.insort(self._queue, self._key(r))
            status[r] = QUEUED
        self.metrics.arrived += hi - lo

    # ------------------------------------------------------------------ phases 4-6
    def finish_slot(self, action: Iterable[int], events: SlotEvents) -> None:
        """Phases 4-6 of slot ``t``: pre-position ``action``, serve, fail overdue."""
        self.preposition(action, events)
        self.serve(events)
        self.fail_overdue(events)

    def preposition(self, action: Iterable[int], events: SlotEvents) -> None:
        """Phase 4 (Algorithm 2's placement): try the chosen pairs in order within the limits.

        Pairs in flight (placed, outcome not yet known) count toward ``max_prepositioned``.
        """
        cfg = self.cfg
        placed = 0
        num_pairs = self.net.num_pairs
        m = self.metrics
        for a in action:
            if (
                placed >= cfg.max_new_prepositions
                or len(self.held) + m.prepositions_in_flight >= cfg.max_prepositioned
            ):
                break
            a = int(a)
            if not 0 <= a < num_pairs:
                continue
            path = self.preposition_path(a)
            if path is None:
                continue
            fidelity = self._consume(path, events)
            delay = self.delays[len(path)]
            if delay:
                # The end nodes cannot know the outcome yet: it counts as placed this slot.
                self._dispatch(InFlight(self.t + delay, self.t, a, len(path), fidelity), path)
                m.prepositions_in_flight += 1
                placed += 1
                continue
            if self._settle_preposition(a, fidelity, self.t, len(path), events):
                placed += 1

    def _settle_preposition(
        self, a: int, fidelity: float | None, placed: int, hops: int, events: SlotEvents
    ) -> bool:
        """A pre-position's swap outcome is known: store the pair (True) or count the failure."""
        if fidelity is None:
            events.swap_failures += 1
            self.metrics.swap_failures += 1
            return False
        cfg = self.cfg
        expiry = placed + physics.slots_until_below(
            fidelity, self._prho, cfg.F_min, cfg.prediction_window, self._decay
        )
        self.held.append(Preposition(a, fidelity, placed, hops, expiry))
        events.placed.append((a, fidelity, hops))
        self.metrics.prepositions_placed += 1
        return True

    def preposition_path(self, a: int) -> list[int] | None:
        """The path pre-positioning would use for node pair ``a`` now, if all its links hold pairs."""
        s, d = self.net.pair_nodes[a].tolist()
        links = self.links
        if self.cfg.preposition_path == "static":
            path = static_path(self.net, s, d)
            return path if all(links.usable[e] for e in path) else None
        return shortest_path(self.net, links.usable, links.cost, s, d)

    def serve(self, events: SlotEvents) -> None:
        """Phase 5: pre-positioned pair first (lowest sufficient fidelity), else on demand.

        On demand, the path counts only if the pair it delivers (after the signalling delay) meets
        F_req and arrives by the deadline; with a delay the request leaves the queue in flight.
        """
        if not self._queue:
            return
        t = self.t
        links = self.links
        prho, decay = self._prho, self._decay
        remaining = []
        # The route of (s, d) is searched once until a consumption changes the links: requests of one
        # node pair share it, so a long queue costs no more searches than its distinct pairs. Links
        # only disappear within a slot, so "no path" stays true after a consumption.
        routes: dict[tuple[int, int], list[int] | None] = {}
        for key in self._queue:
            r = key[3]
            f_req = self._freq[r]
            best: Preposition | None = None
            best_f = math.inf
            pair = self._pair[r]
            for p in self.held:
                if p.pair == pair:
                    f = physics.decayed(p.fidelity, prho, t - p.placed, decay)
                    if f_req <= f < best_f:
                        best, best_f = p, f
            if best is not None:
                self.held.remove(best)
                self.metrics.prepositions_used += 1
                self.metrics.served_prepositioned += 1
                if best.placed < self._arrival[r]:
                    events.predictive_hits += 1
                self._served(r, PREPOSITIONED, best_f, best.hops, events)
                continue
            ends = (self._src[r], self._dst[r])
            if ends in routes:
                path = routes[ends]
            else:
                path = routes[ends] = self._route(self.net, links.usable, links.cost, *ends)
            if path is None:
                remaining.append(key)
                continue
            delay = self.delays[len(path)]
            f_now = self.path_fidelity(path)
            delivered = physics.decayed(f_now, prho, delay, decay) if delay else f_now
            if delivered < f_req or t + delay > key[1]:
                remaining.append(key)
                continue
            got = self._consume(path, events)
            routes = {k: v for k, v in routes.items() if v is None}
            self.records["dispatch_slot"][r] = t
            if delay:
                self.records["status"][r] = IN_FLIGHT
                self._dispatch(InFlight(t + delay, t, pair, len(path), got, r), path)
                self.metrics.requests_in_flight += 1
            elif got is None:
                events.swap_failures += 1
                self.metrics.swap_failures += 1
                remaining.append(key)
            else:
                self._served(r, ON_DEMAND, got, len(path), events)
        self._queue = remaining

    def _served(self, r: int, how: int, fidelity: float, hops: int, events: SlotEvents) -> None:
        """Record request ``r`` as served now."""
        t = self.t
        records = self.records
        records["status"][r] = SERVED
        records["end_slot"][r] = t
        records["fidelity"][r] = fidelity
        records["how"][r] = how
        records["hops"][r] = hops
        m = self.metrics
        m.served += 1
        m.latency_sum += t - self._arrival[r]
        m.fidelity_sum += fidelity
        m.pairs_delivered += hops
        m.served_weight += self._prio[r]
        events.served_weight += self._prio[r]
        events.served.append((r, how, fidelity, hops))

    def fail_overdue(self, events: SlotEvents) -> None:
        """Phase 6: a request still queued at the end of its deadline slot fails."""
        t = self.t
        if not self._queue:
            return
        keep = []
        for key in self._queue:
            if key[1] <= t:
                self._fail(key[3], events)
            else:
                keep.append(key)
        self._queue = keep

    def _fail(self, r: int, events: SlotEvents) -> None:
        """Record request ``r`` as failed now."""
        self.records["status"][r] = FAILED
        self.records["end_slot"][r] = self.t
        self.metrics.failed += 1
        self.metrics.failed_weight += self._prio[r]
        events.failed_weight += self._prio[r]
        events.failed.append(r)

    def _key(self, r: int) -> tuple[float, int, int, int]:
        """Service order of request ``r``: priority (high first), deadline, arrival, id."""
        return (-self._prio[r], self._deadline[r], self._arrival[r], r)

    # ------------------------------------------------------------------ links
    def path_fidelity(self, path: list[int]) -> float:
        """End-to-end fidelity the path's links would give now (swap success left out)."""
        return float(physics.fidelity_from_product(self.links.path_product(path), self._model))

    def delivered_fidelity(self, fidelity: float, hops: int) -> float:
        """The fidelity a pair swapped now at ``fidelity`` over ``hops`` links has on arrival."""
        delay = self.delays[hops]
        return physics.decayed(fidelity, self._prho, delay, self._decay) if delay else fidelity

    def _highest_delivered(
        self, net: Network, usable: Sequence[bool], cost: Sequence[float], s: int, d: int
    ) -> list[int] | None:
        """Highest-fidelity routing on the fidelity *delivered* after the signalling delay."""
        return highest_delivered_fidelity(
            net,
            usable,
            cost,
            s,
            d,
            lambda hops, cost_sum: self.delivered_fidelity(
                float(physics.fidelity_from_product(math.exp(-cost_sum), self._model)), hops
            ),
        )

    def _consume(self, path: list[int], events: SlotEvents) -> float | None:
        """Take the youngest pair of every link on ``path`` and swap; None if a swap failed.

        The failure is drawn now (the swap stream's order never depends on the latency) but
        counted by the caller when the end nodes learn it.
        """
        fidelities = [self.links.take(e, self.t) for e in path]
        n = len(path)
        events.pairs_consumed += n
        self.metrics.pairs_consumed += n
        success = self.cfg.swap_success
        if n > 1 and success < 1.0 and not bool(np.all(self._swap_rng.random(n - 1) < success)):
            return None
        return physics.path_fidelity(fidelities, self._model)

    def _dispatch(self, flight: InFlight, path: list[int]) -> None:
        """A swap's outcome is on its way: the path's links wait for it (generate nothing)."""
        self.in_flight.append(flight)
        self.links.mark_busy(path, flight.due)

    def link_fidelity(self) -> np.ndarray:
        """(E,) fidelity of each link's best (youngest) pair now; 0 where the link holds none."""
        return self.links.fidelity(self.t).copy()

    # ------------------------------------------------------------------ views
    def preposition_fidelity(self) -> np.ndarray:
        """(P,) fidelity a pre-position of each node pair would get now; 0 where it cannot."""
        net = self.net
        usable, factor = self.links.usable_pad, self.links.factor_pad
        if self.cfg.preposition_path == "static":
            # Paths as (H, P), multiplied hop by hop: a product along the short axis of (P, H) is
            # several times slower for many pairs. A link without a pair has factor NaN.
            product = np.where(usable, factor, np.nan).take(net.static_paths_t).prod(axis=0)
            ok = ~np.isnan(product)
            hops = net.static_hops
        else:
            pred = bfs_predecessors(net.n, net.edges, usable[:-1])
            paths, hops = paths_from_predecessors(pred, net.edge_id, net.pair_nodes, net.num_links)
            ok = hops > 0
            product = factor[paths].prod(axis=1)
        fidelity = physics.fidelity_from_product(product, self._model)
        if self._latency:  # usable from t + delay, decayed meanwhile
            delay = np.asarray(self.delays)[hops]
            fidelity = physics.decayed_array(np.asarray(fidelity), self._prho, delay, self._decay)
        return np.where(ok, fidelity, 0.0)

    def held_fidelities(self) -> list[tuple[int, float]]:
        """(pair, fidelity now) of every pre-positioned pair held (usable now)."""
        t, prho, decay = self.t, self._prho, self._decay
        return [(p.pair, physics.decayed(p.fidelity, prho, t - p.placed, decay)) for p in self.held]

    def queued_requests(self, limit: int | None = None) -> list[int]:
        """Request ids in service order (the first ``limit`` of them)."""
        return [key[3] for key in self._queue[:limit]]

    @property
    def queue_length(self) -> int:
        """Requests waiting in the queue."""
        return len(self._queue)

    def request_records(self) -> dict[str, np.ndarray]:
        """Per-request records (arrays) of the episode so far, one row per drawn request."""
        return request_records(self.workload, self.records)


def request_records(w: Workload, outcomes: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One row per drawn request: the workload's columns, then copies of its outcome columns."""
    return {
        "id": np.arange(len(w)),
        "source": w.source,
        "destination": w.destination,
        "arrival": w.arrival,
        "F_req": w.F_req,
        "deadline": w.deadline,
        "priority": w.priority,
        **{k: v.copy() for k, v in outcomes.items()},
    }
