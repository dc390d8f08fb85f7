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
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from spep_gym import physics
from spep_gym.config import SpepConfig
from spep_gym.links import LinkPool
from spep_gym.metrics import (
    FAILED,
    ON_DEMAND,
    PREPOSITIONED,
    QUEUED,
    SERVED,
    Metrics,
    empty_records,
)
from spep_gym.routing import STRATEGIES, static_path
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
    # phases 1-3 of the slot that begins next
    arrived: list[int] = field(default_factory=list)  # request ids now queued
    pairs_generated: int = 0
    pairs_expired: int = 0
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

        self.links = LinkPool(net, self._model, costs=cfg.routing == "highest_fidelity")
        self.held: list[Preposition] = []
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
        """Phase 1: link pairs past their lifetime, pre-positioned pairs past expiry."""
        t = self.t
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

    def generate_links(self, events: SlotEvents) -> None:
        """Phase 2: one uniform per link, drawn for every link whatever its state."""
        n = self.links.generate(self.t, self._gen_rng.random(self.net.num_links))
        events.pairs_generated += n
        self.metrics.pairs_generated += n
        self.links.refresh(self.t)

    def admit_arrivals(self, events: SlotEvents) -> None:
        """Phase 3: this slot's requests join the queue (in priority, deadline, arrival order)."""
        lo, hi = self._starts[self.t], self._starts[self.t + 1]
        status = self.records["status"]
        for r in range(lo, hi):
            bisect.insort(self._queue, (-self._prio[r], self._deadline[r], self._arrival[r], r))
            status[r] = QUEUED
            events.arrived.append(r)
        self.metrics.arrived += hi - lo

    # ------------------------------------------------------------------ phases 4-6
    def finish_slot(self, action: Iterable[int], events: SlotEvents) -> None:
        """Phases 4-6 of slot ``t``: pre-position ``action``, serve, fail overdue."""
        self.preposition(action, events)
        self.serve(events)
        self.fail_overdue(events)

    def preposition(self, action: Iterable[int], events: SlotEvents) -> None:
        """Phase 4 (Algorithm 2's placement): try the chosen pairs in order within the limits."""
        cfg = self.cfg
        placed = 0
        num_pairs = self.net.num_pairs
        for a in action:
            if placed >= cfg.max_new_prepositions or len(self.held) >= cfg.max_prepositioned:
                break
            a = int(a)
            if not 0 <= a < num_pairs:
                continue
            path = self.preposition_path(a)
            if path is None:
                continue
            fidelity = self._consume(path, events)
            if fidelity is None:
                continue
            expiry = self.t + physics.slots_until_below(
                fidelity, self._prho, cfg.F_min, cfg.prediction_window
            )
            self.held.append(Preposition(a, fidelity, self.t, len(path), expiry))
            placed += 1
            events.placed.append((a, fidelity, len(path)))
            self.metrics.prepositions_placed += 1

    def preposition_path(self, a: int) -> list[int] | None:
        """The path pre-positioning would use for node pair ``a`` now, if all its links hold pairs."""
        s, d = self.net.pair_nodes[a].tolist()
        links = self.links
        if self.cfg.preposition_path == "static":
            path = static_path(self.net, s, d)
            return path if all(links.usable[e] for e in path) else None
        return shortest_path(self.net, links.usable, links.cost, s, d)

    def serve(self, events: SlotEvents) -> None:
        """Phase 5: pre-positioned pair first (lowest sufficient fidelity), else on demand."""
        if not self._queue:
            return
        t = self.t
        links = self.links
        records = self.records
        m = self.metrics
        remaining = []
        # The route of (s, d) is searched once until a consumption changes the links: requests of one
        # node pair share it, so a long queue costs no more searches than its distinct pairs. Links
        # only disappear within a slot, so "no path" stays true after a consumption.
        routes: dict[tuple[int, int], list[int] | None] = {}
        for key in self._queue:
            r = key[3]
            f_req = self._freq[r]
            how, fidelity, hops = 0, 0.0, 0
            best: Preposition | None = None
            best_f = math.inf
            pair = self._pair[r]
            for p in self.held:
                if p.pair == pair:
                    f = p.fidelity * self._prho ** (t - p.placed)
                    if f_req <= f < best_f:
                        best, best_f = p, f
            if best is not None:
                self.held.remove(best)
                how, fidelity, hops = PREPOSITIONED, best_f, best.hops
                m.prepositions_used += 1
                m.served_prepositioned += 1
            else:
                ends = (self._src[r], self._dst[r])
                if ends in routes:
                    path = routes[ends]
                else:
                    path = routes[ends] = self._route(self.net, links.usable, links.cost, *ends)
                if path is not None and self.path_fidelity(path) >= f_req:
                    got = self._consume(path, events)
                    routes = {k: v for k, v in routes.items() if v is None}
                    if got is not None:
                        how, fidelity, hops = ON_DEMAND, got, len(path)
            if not how:
                remaining.append(key)
                continue
            records["status"][r] = SERVED
            records["end_slot"][r] = t
            records["fidelity"][r] = fidelity
            records["how"][r] = how
            records["hops"][r] = hops
            m.served += 1
            m.latency_sum += t - self._arrival[r]
            m.fidelity_sum += fidelity
            m.pairs_delivered += hops
            m.served_weight += self._prio[r]
            events.served_weight += self._prio[r]
            events.served.append((r, how, fidelity, hops))
        self._queue = remaining

    def fail_overdue(self, events: SlotEvents) -> None:
        """Phase 6: a request still queued at the end of its deadline slot fails."""
        t = self.t
        if not self._queue:
            return
        keep = []
        records = self.records
        for key in self._queue:
            r = key[3]
            if key[1] <= t:
                records["status"][r] = FAILED
                records["end_slot"][r] = t
                self.metrics.failed += 1
                self.metrics.failed_weight += self._prio[r]
                events.failed_weight += self._prio[r]
                events.failed.append(r)
            else:
                keep.append(key)
        self._queue = keep

    # ------------------------------------------------------------------ links
    def path_fidelity(self, path: list[int]) -> float:
        """End-to-end fidelity the path's links would give now (swap success left out)."""
        return float(physics.fidelity_from_product(self.links.path_product(path), self._model))

    def _consume(self, path: list[int], events: SlotEvents) -> float | None:
        """Take the youngest pair of every link on ``path`` and swap; None if a swap failed."""
        fidelities = [self.links.take(e, self.t) for e in path]
        n = len(path)
        events.pairs_consumed += n
        self.metrics.pairs_consumed += n
        success = self.cfg.swap_success
        if n > 1 and success < 1.0 and not bool(np.all(self._swap_rng.random(n - 1) < success)):
            events.swap_failures += 1
            self.metrics.swap_failures += 1
            return None
        return physics.path_fidelity(fidelities, self._model)

    def link_fidelity(self) -> np.ndarray:
        """(E,) fidelity of each link's best (youngest) pair now; 0 where the link holds none."""
        return self.links.fidelity(self.t)

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
        else:
            pred = bfs_predecessors(net.n, net.edges, usable[:-1])
            paths, hops = paths_from_predecessors(pred, net.edge_id, net.pair_nodes, net.num_links)
            ok = hops > 0
            product = factor[paths].prod(axis=1)
        return np.where(ok, physics.fidelity_from_product(product, self._model), 0.0)

    def held_fidelities(self) -> list[tuple[int, float]]:
        """(pair, fidelity now) of every pre-positioned pair held."""
        t, prho = self.t, self._prho
        return [(p.pair, p.fidelity * prho ** (t - p.placed)) for p in self.held]

    def queued_requests(self, limit: int | None = None) -> list[int]:
        """Request ids in service order (the first ``limit`` of them)."""
        return [key[3] for key in self._queue[:limit]]

    @property
    def queue_length(self) -> int:
        """Requests waiting in the queue."""
        return len(self._queue)

    def request_records(self) -> dict[str, np.ndarray]:
        """Per-request records (arrays) of the episode so far, one row per drawn request."""
        w = self.workload
        return {
            "id": np.arange(len(w)),
            "source": w.source,
            "destination": w.destination,
            "arrival": w.arrival,
            "F_req": w.F_req,
            "deadline": w.deadline,
            "priority": w.priority,
            **{k: v.copy() for k, v in self.records.items()},
        }
