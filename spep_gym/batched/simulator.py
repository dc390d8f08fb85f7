"""The batched simulator: B networks of one config stepped at once with torch tensors.

It runs the model of :class:`spep_gym.simulator.Simulator` (SPEC sections 1-6 and 9) with a leading
batch axis on every array, on the CPU or a CUDA device with one code path. A slot is the scalar
slot's six phases, each a batched operation; the phases that are sequential in the scalar core stay
sequential, but over *ranks*, not networks: pre-positioning runs over the action's entries, serving
over the events of the slot (each round finds, in every network, the first queued request that can
be served, serves it, and searches the rest again), arrivals over their order in the slot.

Every number is computed with the scalar core's operations in the scalar core's order (float64
fidelities, fidelity and cost tables built by the scalar code, sums in event order, the same tie
rules), so with the same random draws (:class:`spep_gym.batched.draws.StreamDraws`) a batched run
equals a scalar run bit for bit. The one operation the device computes itself is the ``exp`` of the
delivered-fidelity search (``highest_fidelity`` with ``signalling_latency``): it runs on the host
with Python's ``math.exp``, as the scalar core does.

The slot is a list of phases, each a function over the simulator's tensors in its own module (as
:mod:`spep_gym.compiled` has them): :mod:`~spep_gym.batched.phases` (phases 1, 3 and 6),
:mod:`~spep_gym.batched.links` (phase 2; the pools and swaps), :mod:`~spep_gym.batched.preposition`
(4) and :mod:`~spep_gym.batched.serving` (5), over :mod:`~spep_gym.batched.routing`,
:mod:`~spep_gym.batched.queue` and :mod:`~spep_gym.batched.records`. The state's fields are listed
in :mod:`~spep_gym.batched.state`; :mod:`~spep_gym.batched.install` fills them at reset and
:mod:`~spep_gym.batched.observe` reads them for the agent. The laws are :mod:`spep_gym.physics`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from spep_gym import physics
from spep_gym.batched import demand_obs, observe, records, search
from spep_gym.batched.draws import CounterDraws, Draws, StreamDraws
from spep_gym.batched.install import (
    after_install,
    build_constants,
    install_full,
    install_rows,
    tables_for,
)
from spep_gym.batched.links import generate_links
from spep_gym.batched.phases import admit_arrivals, discard_expired, fail_overdue
from spep_gym.batched.preposition import preposition
from spep_gym.batched.serving import serve
from spep_gym.batched.state import (
    EVENTS,
    METRICS,
    NEVER,
    RECORDS,
    BatchedState,
    BatchEvents,
    check_supported,
    resolve_device,
    same_config,
)
from spep_gym.batched.tables import (
    FidelityClasses,
    episode_workload,
    fixed_graph,
    link_rows,
    pack_workloads,
)
from spep_gym.config import SpepConfig
from spep_gym.resources import check_batched_memory
from spep_gym.topology import num_pairs
from spep_gym.workload import Workload

__all__ = [
    "EVENTS",
    "METRICS",
    "NEVER",
    "RECORDS",
    "BatchEvents",
    "BatchedSimulator",
    "check_supported",
    "resolve_device",
    "same_config",
]


class BatchedSimulator(BatchedState):
    """B quantum networks of one config, stepped together (see the module docstring).

    Args:
        cfg: the config every network runs (the paper preset by default).
        num_envs: the batch size B.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        draws: ``"counter"`` (on-device counter-based streams, the default), ``"scalar"`` (the
            scalar simulator's numpy streams, drawn on the host: equal to scalar runs) or any
            :class:`~spep_gym.batched.draws.Draws`.
    """

    def __init__(
        self,
        cfg: SpepConfig | None = None,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        draws: str | Draws = "counter",
    ) -> None:
        self.cfg = cfg = cfg or SpepConfig()
        check_supported(cfg)
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r} is invalid: allowed an integer >= 1")
        self.device = resolve_device(device)
        check_batched_memory(cfg, num_envs, self.device)  # before the first allocation
        self.num_envs = B = num_envs
        self.n = cfg.n
        self.num_pairs = num_pairs(self.n)
        self._demand_stats = demand_obs.make(cfg, B, self.num_pairs, self.device)
        if isinstance(draws, str):
            if draws == "counter":
                draws = CounterDraws(B, self.device)
            elif draws == "scalar":
                draws = StreamDraws(B, self.device)
            else:
                raise ValueError(
                    f"draws={draws!r} is invalid: allowed 'counter', 'scalar' or a Draws object"
                )
        self.draws = draws
        self.classes = FidelityClasses(cfg)
        graph = fixed_graph(cfg)
        self._fixed_rows = link_rows(graph, cfg, self.classes) if graph is not None else None
        self._fixed_tables = None
        self._fixed_workload_hops = None
        self._class_tables = self.classes.tables(self.device)
        self.delays = [
            physics.signalling_delay(cfg.signalling_latency, h) for h in range(self.n + 1)
        ]
        self._latency = cfg.signalling_latency > 0
        self._prho = cfg.effective_preposition_rho
        self._exact_weights = all(float(w).is_integer() for w in cfg.priority_weights)
        build_constants(self)
        self.t = torch.zeros(B, dtype=torch.int64, device=self.device)
        self._arrivals_per_slot = 0
        self._ready = False
        self._pf = None
        self._pair_nodes_t = None
        self._req_rows = None
        self._nbr_view = None
        self._nbr_stale = None
        self._masks = None
        self._masks_of = None
        self._column_cache = {}
        self._adj = torch.zeros((num_envs, self.n + 1), dtype=torch.int64, device=self.device)
        #: Node sets as int64 bit masks in the fewest-hop searches (n small enough).
        self._bits = self.n <= search.MAX_BIT_NODES
        #: The served requests of one slot can be applied together, round by round, where one
        #: event cannot change another's outcome but through the resources it uses: true of the
        #: fewest-hop (and static) routes, whose path stays the path when links elsewhere are
        #: removed (the lexicographically smallest shortest path of a graph remains so in any
        #: subgraph that contains it); Dijkstra's ties are left to one event per round.
        self._independent_events = cfg.routing in ("shortest", "reactive")

    def reset(
        self,
        seeds: Sequence[int],
        rows: Sequence[int] | Tensor | None = None,
        workloads: Sequence[Workload] | None = None,
    ) -> BatchEvents:
        """Start new episodes in the networks ``rows`` (default: all) and run phases 1-3 of slot 0.

        ``seeds[i]`` seeds network ``rows[i]``: its graph and workload are the scalar simulator's
        for that seed (``Simulator.reset(seed)``), its draws come from ``draws``. ``workloads``
        replaces the generated workloads (one per row; they must fit the graphs). The other networks
        are left as they are.
        """
        B, dev = self.num_envs, self.device
        if rows is None:
            rows_t = torch.arange(B, device=dev)
        else:
            rows_t = torch.as_tensor(rows, dtype=torch.int64).to(dev).reshape(-1)
        seeds = [int(s) for s in seeds]
        if len(seeds) != rows_t.numel():
            raise ValueError(
                f"{len(seeds)} seeds for {rows_t.numel()} networks: give one per network"
            )
        if workloads is not None and len(workloads) != len(seeds):
            raise ValueError(
                f"{len(workloads)} workloads for {len(seeds)} networks: one per network"
            )
        full = rows_t.numel() == B and bool((rows_t == torch.arange(B, device=dev)).all())
        new_tables, hops = tables_for(self, seeds)
        if workloads is None:
            workloads = [
                episode_workload(self.cfg, s, hops[i], self.n) for i, s in enumerate(seeds)
            ]
        width = max(max((len(w) for w in workloads), default=0), 1)
        work = pack_workloads(list(workloads), width, dev)
        if full or not self._ready:
            install_full(self, new_tables, work, rows_t)
        else:
            install_rows(self, new_tables, work, rows_t)
        self._class_tables = self.classes.tables(dev)
        self._arrivals_per_slot = max(
            self._arrivals_per_slot,
            max((int(np.bincount(w.arrival).max(initial=0)) for w in workloads), default=0),
        )
        after_install(self)
        self.draws.reset(seeds, rows_t, self.tables.num_links[rows_t])
        self._ready = True
        self._pf = None
        slot = torch.full((B,), -1, dtype=torch.int64, device=dev)
        events = BatchEvents.zeros(slot)
        live = torch.zeros(B, dtype=torch.bool, device=dev)
        live[rows_t] = True
        if self._demand_stats is not None:
            self._demand_stats.reset(rows_t)
        self._begin_slot(events, None if full else live)
        return events

    @property
    def done(self) -> Tensor:
        """(B,) True where every slot of the episode has run."""
        return self.t >= self.cfg.episode_slots

    def step(
        self, actions: Tensor | np.ndarray | Sequence[Sequence[int]], strict: bool = True
    ) -> BatchEvents:
        """Finish the current slot of every network with its action and begin the next.

        ``actions`` (B, A) int: per network, node-pair indices in order of preference; out-of-range
        entries mean "none". With ``strict`` a network whose episode is over is an error; without,
        it is stepped anyway (its results are meaningless: the vector env resets it right after).
        """
        if not self._ready:
            raise RuntimeError("call reset() before step()")
        if strict and bool(self.done.any()):
            raise RuntimeError(
                "the episode is over (all episode_slots have run) in networks "
                f"{torch.nonzero(self.done).flatten().tolist()[:8]}: reset them"
            )
        acts = torch.as_tensor(actions, device=self.device).to(torch.int64)
        if acts.dim() == 1:
            acts = acts[:, None]
        if acts.dim() != 2 or acts.shape[0] != self.num_envs:
            raise ValueError(
                f"actions of shape {tuple(acts.shape)}: expected ({self.num_envs}, action_len)"
            )
        events = BatchEvents.zeros(self.t)
        self._pf = None
        self.arrivals.zero_()  # this step's arrivals: those of the slot that begins
        preposition(self, acts, events)  # phase 4
        serve(self, events)  # phase 5
        fail_overdue(self, events)  # phase 6
        self.t += 1
        live = self.t < self.cfg.episode_slots
        if bool(live.all()):
            self._begin_slot(events, None)
        elif bool(live.any()):
            self._begin_slot(events, live)
        return events

    def _begin_slot(self, events: BatchEvents, live: Tensor | None) -> None:
        """Phases 1-3 of the next slot (in the networks ``live``; None: all)."""
        discard_expired(self, events, live)  # phase 1
        generate_links(self, events, live)  # phase 2
        admit_arrivals(self, events, live)  # phase 3
        if self._demand_stats is not None:  # the long-run demand keys fold in the arrivals
            self._demand_stats.update(self.arrivals, self.t, live)

    # ------------------------------------------------------------------ views
    def preposition_fidelity(self) -> Tensor:
        """(B, P) fidelity a pre-position of each node pair would get now; 0 where it cannot."""
        return observe.preposition_fidelity(self)

    def action_masks(self) -> Tensor:
        """(B, action_len * (P + 1)) bool: per entry, the node pairs that can be placed now."""
        return observe.action_masks(self)

    def observation(self) -> dict[str, Tensor]:
        """The observation of ``SpepEnv`` for every network, as float32 tensors (B, ...)."""
        obs = observe.observation(self)
        if self._demand_stats is not None:
            obs.update(self._demand_stats.observe(self.t))
        return obs

    def _request_rows(self) -> Tensor:
        return observe.request_rows(self)

    def _decayed(self, f: Tensor, power: Tensor) -> Tensor:
        return physics.decayed_by(f, power, self.cfg.decay_model)

    # ------------------------------------------------------------------ metrics
    def summary(self) -> dict[str, Tensor]:
        """Per network (B,): every key of ``Metrics.summary()``; rates NaN where undefined."""
        return records.summary(self)

    def request_records(self, b: int) -> dict[str, np.ndarray]:
        """Per-request records of network ``b`` as ``Simulator.request_records`` lists them."""
        return records.request_records(self, b)

    def memory_bytes(self) -> int:
        """Bytes held by the simulator's tensors (state, tables, workload, records)."""
        return records.memory_bytes(self)
