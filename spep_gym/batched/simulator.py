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

State (B networks, E links after padding plus the pad link, C = largest link capacity, K =
``max_prepositioned``, F = in-flight capacity, Q = ``queue_capacity``, N = most requests):

- link pools ``created`` (B, E+1, C), ``count``, ``youngest``, ``busy_until`` (B, E+1), and the view
  ``usable``, ``factor``, ``cost`` (B, E+1) that routing reads (rebuilt where the scalar rebuilds it);
- held pre-positioned pairs ``held_*`` (B, K): node pair (P: free), fidelity when placed, slot
  placed, hops, expiry slot, and a sequence number that keeps the scalar list's order;
- in-flight swaps ``flight_*`` (B, F) (``signalling_latency > 0``): due slot (``NEVER``: free),
  decision slot, node pair, hops, fidelity, swap success, request (-1: a pre-position), sequence;
- the queue ``queue`` (B, Q): request ids in service order, ``queue_len`` (B,);
- the workload ``work[...]`` (B, N) and the per-request records ``records[...]`` (B, N);
- the metrics ``metrics[...]`` (B,): every counter of :class:`spep_gym.metrics.Metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spep_gym import physics
from spep_gym.batched import search
from spep_gym.batched.draws import CounterDraws, Draws, StreamDraws
from spep_gym.batched.tables import (
    WORKLOAD_COLUMNS,
    FidelityClasses,
    NetworkTables,
    build_tables,
    episode_workload,
    fixed_graph,
    link_rows,
    network_graph,
    pack_workloads,
    predecessors,
)
from spep_gym.config import SpepConfig
from spep_gym.env import DEMAND_OBS_MAX
from spep_gym.metrics import (
    FAILED,
    IN_FLIGHT,
    ON_DEMAND,
    PREPOSITIONED,
    QUEUED,
    SERVED,
    Metrics,
)
from spep_gym.resources import check_batched_memory
from spep_gym.topology import num_pairs
from spep_gym.workload import Workload

#: A slot no swap is due in (a free in-flight place).
NEVER = 1 << 62
_BIG = 1 << 62
#: The counters of :class:`spep_gym.metrics.Metrics`, columns of the metrics table.
METRICS = tuple(f.name for f in fields(Metrics))
_INT_METRICS = tuple(f.name for f in fields(Metrics) if f.type in ("int", int))
_MCOL = {name: i for i, name in enumerate(METRICS)}
#: The per-step event counts of :class:`BatchEvents`, columns of its table.
EVENTS = (
    "arrived",
    "served",
    "served_prepositioned",
    "failed",
    "placed",
    "pairs_generated",
    "pairs_consumed",
    "pairs_expired",
    "pairs_replaced",
    "prepositions_expired",
    "swap_failures",
    "queue_overflow",
    "served_weight",
    "failed_weight",
)
_ECOL = {name: i for i, name in enumerate(EVENTS)}
#: Columns of the per-request records table, and their values before anything happens.
RECORDS = ("status", "dispatch_slot", "end_slot", "fidelity", "how", "hops")
_RCOL = {name: i for i, name in enumerate(RECORDS)}
_RECORD_FILL = (0.0, -1.0, -1.0, float("nan"), 0.0, 0.0)


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device; a CUDA device that does not exist is a one-line ValueError."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device={device!r} is invalid: allowed 'cpu', 'cuda' or 'cuda:N'"
        ) from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r}: CUDA is not available here (torch {torch.__version__} "
                f"sees no CUDA device); use device='cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: there are {torch.cuda.device_count()} CUDA devices "
                f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})"
            )
    elif dev.type != "cpu":
        raise ValueError(f"device={device!r} is invalid: allowed 'cpu', 'cuda' or 'cuda:N'")
    return dev


def check_supported(cfg: SpepConfig) -> None:
    """Refuse a config the batched core does not run (one-line ValueError naming the field)."""
    if cfg.trace is not None:
        raise ValueError(
            f"config field 'trace' = {cfg.trace!r} is not supported by the batched simulator "
            "(trace replay runs on the scalar Simulator); allowed None"
        )


def same_config(configs: Sequence[SpepConfig]) -> SpepConfig:
    """The one config of a batch; configs that differ are a ValueError naming the first field."""
    first = configs[0]
    for i, cfg in enumerate(configs[1:], start=1):
        for name in SpepConfig.field_names():
            a, b = getattr(first, name), getattr(cfg, name)
            if a is b:
                continue
            if name == "topology" and not (isinstance(a, str) and isinstance(b, str)):
                same = a is b
            else:
                same = a == b
            if not same:
                raise ValueError(
                    f"configs differ across the batch: field {name!r} is {a!r} in network 0 and "
                    f"{b!r} in network {i}; a batch runs one config"
                )
    return first


@dataclass
class BatchEvents:
    """What happened in one step, per network: the counts of ``SlotEvents``' lists.

    Every field but ``slot`` is a (B,) float64 view of one (B, len(EVENTS)) ``table`` (counts are
    whole numbers; ``served_weight`` and ``failed_weight`` are summed in event order).
    """

    slot: Tensor  # (B,) int, the slot whose phases 4-6 ran
    table: Tensor  # (B, len(EVENTS)) float64
    arrived: Tensor
    served: Tensor
    served_prepositioned: Tensor  # pre-positioned pairs used this step
    failed: Tensor
    placed: Tensor  # pre-positions stored (usable) this step
    pairs_generated: Tensor
    pairs_consumed: Tensor
    pairs_expired: Tensor
    pairs_replaced: Tensor
    prepositions_expired: Tensor
    swap_failures: Tensor
    queue_overflow: Tensor
    served_weight: Tensor
    failed_weight: Tensor

    @classmethod
    def zeros(cls, slot: Tensor) -> BatchEvents:
        """No events yet, in slot ``slot``."""
        table = torch.zeros((slot.shape[0], len(EVENTS)), dtype=torch.float64, device=slot.device)
        return cls(slot=slot.clone(), table=table, **{k: table[:, i] for k, i in _ECOL.items()})


class BatchedSimulator:
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
        if isinstance(draws, str):
            if draws == "counter":
                draws = CounterDraws(B, self.device)
            elif draws == "scalar":
                draws = StreamDraws(B, self.device)
            else:
                raise ValueError(
                    f"draws={draws!r} is invalid: allowed 'counter', 'scalar' or a Draws object"
                )
        self.draws: Draws = draws
        self.classes = FidelityClasses(cfg)
        graph = fixed_graph(cfg)
        self._fixed_rows = link_rows(graph, cfg, self.classes) if graph is not None else None
        self._fixed_tables: NetworkTables | None = None
        self._fixed_workload_hops: np.ndarray | None = None
        self._class_tables = self.classes.tables(self.device)
        self.delays = [
            physics.signalling_delay(cfg.signalling_latency, h) for h in range(self.n + 1)
        ]
        self._latency = cfg.signalling_latency > 0
        self._prho = cfg.effective_preposition_rho
        self._exact_weights = all(float(w).is_integer() for w in cfg.priority_weights)
        self._build_constants()
        self.t = torch.zeros(B, dtype=torch.int64, device=self.device)
        self._arrivals_per_slot = 0
        self._ready = False
        self._pf: Tensor | None = None
        self._nbr_view: Tensor | None = None
        self._nbr_stale: Tensor | None = None
        self._masks: Tensor | None = None
        self._masks_of: Tensor | None = None
        self._column_cache: dict[tuple[int, ...], Tensor] = {}
        self._adj = torch.zeros((num_envs, self.n + 1), dtype=torch.int64, device=self.device)
        #: Node sets as int64 bit masks in the fewest-hop searches (n small enough).
        self._bits = self.n <= search.MAX_BIT_NODES
        #: The served requests of one slot can be applied together, round by round, where one
        #: event cannot change another's outcome but through the resources it uses: true of the
        #: fewest-hop (and static) routes, whose path stays the path when links elsewhere are
        #: removed (the lexicographically smallest shortest path of a graph remains so in any
        #: subgraph that contains it); Dijkstra's ties are left to one event per round.
        self._independent_events = cfg.routing in ("shortest", "reactive")

    # ------------------------------------------------------------------ constants
    def _build_constants(self) -> None:
        cfg, dev = self.cfg, self.device
        f64: dict[str, Any] = {"dtype": torch.float64, "device": dev}
        ages = cfg.prediction_window + max(self.delays) + 2
        # Python pow, as physics.decayed computes it; numpy pow, as physics.decayed_array does.
        self._pow = torch.tensor([self._prho**k for k in range(ages)], **f64)
        self._pow_np = torch.tensor(self._prho ** np.asarray(self.delays), **f64)
        self._delay = torch.tensor(self.delays, dtype=torch.int64, device=dev)
        spd = cfg.slots_per_day
        tod = []
        for r in range(spd):
            phase = 2.0 * np.pi * r / spd
            tod.append(np.array([np.sin(phase), np.cos(phase)], np.float32))
        self._time_of_day = torch.tensor(np.stack(tod), dtype=torch.float32, device=dev)
        self._below_k = torch.arange(1, max(cfg.prediction_window, 1), device=dev)

    # ------------------------------------------------------------------ episodes
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
        new_tables, hops = self._tables_for(seeds)
        if workloads is None:
            workloads = [
                episode_workload(self.cfg, s, hops[i], self.n) for i, s in enumerate(seeds)
            ]
        width = max(max((len(w) for w in workloads), default=0), 1)
        work = pack_workloads(list(workloads), width, dev)
        if full or not self._ready:
            self._install_full(new_tables, work, rows_t)
        else:
            self._install_rows(new_tables, work, rows_t)
        self._class_tables = self.classes.tables(dev)
        self._arrivals_per_slot = max(
            self._arrivals_per_slot,
            max((int(np.bincount(w.arrival).max(initial=0)) for w in workloads), default=0),
        )
        self._after_install()
        self.draws.reset(seeds, rows_t, self.tables.num_links[rows_t])
        self._ready = True
        self._pf = None
        slot = torch.full((B,), -1, dtype=torch.int64, device=dev)
        events = BatchEvents.zeros(slot)
        live = torch.zeros(B, dtype=torch.bool, device=dev)
        live[rows_t] = True
        self._begin_slot(events, None if full else live)
        return events

    def _tables_for(self, seeds: list[int]) -> tuple[NetworkTables, list[np.ndarray]]:
        """Tables of the networks of ``seeds`` and their static hops (numpy, for the workloads)."""
        cfg = self.cfg
        if self._fixed_rows is not None:
            if self._fixed_tables is None:
                self._fixed_tables = build_tables(
                    [self._fixed_rows], self.n, self.classes, self.device
                )
                self._fixed_workload_hops = self._fixed_tables.static_hops[0].cpu().numpy()
            tab = _repeat_tables(self._fixed_tables, len(seeds))
            assert self._fixed_workload_hops is not None
            return tab, [self._fixed_workload_hops] * len(seeds)
        rows = [link_rows(network_graph(cfg, s), cfg, self.classes) for s in seeds]
        tab = build_tables(rows, self.n, self.classes, self.device)
        hops = tab.static_hops.cpu().numpy()
        return tab, list(hops)

    def _install_full(self, tab: NetworkTables, work: dict[str, Tensor], rows: Tensor) -> None:
        """Fresh state for every network (shapes from these tables and workloads)."""
        cfg, dev = self.cfg, self.device
        B = self.num_envs
        self.tables = tab
        E = tab.E
        C = max(int(tab.capacity.max()), 1)
        i64: dict[str, Any] = {"dtype": torch.int64, "device": dev}
        self.created = torch.full((B, E + 1, C), -1, **i64)
        self.count = torch.zeros((B, E + 1), **i64)
        self.youngest = torch.full((B, E + 1), -1, **i64)
        self.busy_until = torch.full((B, E + 1), -1, **i64)
        self.usable = torch.zeros((B, E + 1), dtype=torch.bool, device=dev)
        self.factor = torch.zeros((B, E + 1), dtype=torch.float64, device=dev)
        self.cost = torch.full((B, E + 1), torch.inf, dtype=torch.float64, device=dev)
        self.usable[:, E] = True
        self.factor[:, E] = 1.0
        K = cfg.max_prepositioned
        P = self.num_pairs
        self.held_pair = torch.full((B, K), P, **i64)
        self.held_fidelity = torch.zeros((B, K), dtype=torch.float64, device=dev)
        self.held_placed = torch.zeros((B, K), **i64)
        self.held_hops = torch.zeros((B, K), **i64)
        self.held_expiry = torch.zeros((B, K), **i64)
        self.held_seq = torch.zeros((B, K), **i64)
        self.held_next = torch.zeros(B, **i64)
        F = (E + 1) * C if self._latency else 1
        self._alloc_flights(F)
        Q = cfg.queue_capacity
        self.queue = torch.zeros((B, Q), **i64)
        self.queue_len = torch.zeros(B, **i64)
        self.work = work
        self.next_request = torch.zeros(B, **i64)
        self.demand_start = torch.zeros(B, **i64)
        N = work["arrival"].shape[1]
        self.records = _empty_records(B, N, dev)
        #: (B, len(METRICS)) float64: every counter of Metrics (whole numbers exact below 2**53)
        self.metric_table = torch.zeros((B, len(METRICS)), dtype=torch.float64, device=dev)
        self.metrics = {k: self.metric_table[:, i] for k, i in _MCOL.items()}
        self.demand = torch.zeros((B, P + 1), dtype=torch.float32, device=dev)
        self.arrivals = torch.zeros((B, P + 1), dtype=torch.float32, device=dev)
        self.t = torch.zeros(B, **i64)
        self._arrivals_per_slot = 0

    def _alloc_flights(self, F: int) -> None:
        B, dev = self.num_envs, self.device
        i64: dict[str, Any] = {"dtype": torch.int64, "device": dev}
        self.flight_due = torch.full((B, F), NEVER, **i64)
        self.flight_placed = torch.zeros((B, F), **i64)
        self.flight_pair = torch.zeros((B, F), **i64)
        self.flight_hops = torch.zeros((B, F), **i64)
        self.flight_fidelity = torch.zeros((B, F), dtype=torch.float64, device=dev)
        self.flight_ok = torch.zeros((B, F), dtype=torch.bool, device=dev)
        self.flight_request = torch.full((B, F), -1, **i64)
        self.flight_seq = torch.zeros((B, F), **i64)
        self.flight_next = torch.zeros(B, **i64)

    def _install_rows(self, tab: NetworkTables, work: dict[str, Tensor], rows: Tensor) -> None:
        """Fresh state for the networks ``rows`` only; shared sizes grow to fit the new ones."""
        cur = self.tables
        if tab.E > cur.E:
            self._grow_links(tab.E)
        elif tab.E < cur.E:
            tab = _pad_links(tab, self.tables.E)
        cur = self.tables
        if tab.D != cur.D or tab.H != cur.H:
            D, H = max(tab.D, cur.D), max(tab.H, cur.H)
            self.tables = _pad_dh(cur, D, H)
            tab = _pad_dh(tab, D, H)
        C = max(int(tab.capacity.max()), 1)
        if self.created.shape[2] < C:
            pad = torch.full(
                (*self.created.shape[:2], C - self.created.shape[2]),
                -1,
                dtype=torch.int64,
                device=self.device,
            )
            self.created = torch.cat([self.created, pad], dim=2)
        for name in vars(self.tables):
            value = getattr(self.tables, name)
            if isinstance(value, Tensor):
                value[rows] = getattr(tab, name)
        N_new, N_cur = work["arrival"].shape[1], self.work["arrival"].shape[1]
        if N_new > N_cur:
            self._grow_requests(N_new)
        for name, (_, fill) in WORKLOAD_COLUMNS.items():
            col = self.work[name]
            col[rows] = fill
            col[rows, :N_new] = work[name]
        self.records[rows] = _empty_records(len(rows), self.work["arrival"].shape[1], self.device)
        E = self.tables.E
        self.created[rows] = -1
        for name, fill in (("count", 0), ("youngest", -1), ("busy_until", -1)):
            getattr(self, name)[rows] = fill
        self.usable[rows] = False
        self.factor[rows] = 0.0
        self.cost[rows] = torch.inf
        self.usable[:, E] = True
        self.factor[:, E] = 1.0
        self.held_pair[rows] = self.num_pairs
        self.held_next[rows] = 0
        F = (E + 1) * self.created.shape[2] if self._latency else 1
        if self.flight_due.shape[1] < F:
            self._grow_flights(F)
        self.flight_due[rows] = NEVER
        self.flight_next[rows] = 0
        self.queue_len[rows] = 0
        self.next_request[rows] = 0
        self.demand_start[rows] = 0
        self.metric_table[rows] = 0.0
        self.demand[rows] = 0.0
        self.arrivals[rows] = 0.0
        self.t[rows] = 0

    def _grow_links(self, E_new: int) -> None:
        """Insert dead links before the pad link so that networks of ``E_new`` links fit."""
        E = self.tables.E
        extra = E_new - E
        dev = self.device

        def grow(x: Tensor, fill: float | bool) -> Tensor:
            shape = list(x.shape)
            shape[1] = extra
            mid = torch.full(shape, fill, dtype=x.dtype, device=dev)
            return torch.cat([x[:, :E], mid, x[:, E:]], dim=1)

        self.tables = _pad_links(self.tables, E_new)
        self.created = grow(self.created, -1)
        self.count = grow(self.count, 0)
        self.youngest = grow(self.youngest, -1)
        self.busy_until = grow(self.busy_until, -1)
        self.usable = grow(self.usable, False)
        self.factor = grow(self.factor, 0.0)
        self.cost = grow(self.cost, torch.inf)

    def _grow_flights(self, F: int) -> None:
        old = {
            name: getattr(self, name)
            for name in vars(self)
            if name.startswith("flight_") and name != "flight_next"
        }
        next_seq = self.flight_next
        self._alloc_flights(F)
        for name, value in old.items():
            getattr(self, name)[:, : value.shape[1]] = value
        self.flight_next = next_seq

    def _grow_requests(self, N: int) -> None:
        cur = self.work["arrival"].shape[1]
        for name, (dtype, fill) in WORKLOAD_COLUMNS.items():
            pad = torch.full((self.num_envs, N - cur), fill, dtype=dtype, device=self.device)
            self.work[name] = torch.cat([self.work[name], pad], dim=1)
        fresh = _empty_records(self.num_envs, N - cur, self.device)
        self.records = torch.cat([self.records, fresh], dim=1)

    def _after_install(self) -> None:
        """Index tables derived from the network tables (rebuilt whenever they change)."""
        tab = self.tables
        B, E1, P = self.num_envs, tab.E + 1, self.num_pairs
        rows = torch.arange(B, device=self.device)
        #: (H, B, P) flat positions in a (B, E + 1) array of each static path's links
        self._paths_flat = (tab.static_paths.transpose(0, 1) + rows[:, None] * E1).contiguous()
        # the static path links by hop, pairs ordered by hops (longest first), and the inverse
        hops = tab.static_hops.reshape(-1)
        order = torch.argsort(-hops, stable=True)
        by_h = []
        for h in range(tab.H):
            count = int((hops > h).sum())
            by_h.append(self._paths_flat[h].reshape(-1).index_select(0, order[:count]))
        self._paths_by_hops = (by_h, torch.argsort(order))
        #: (B, E + 1) flat positions in a (B * P + 1) array of each link's node pair; dead links
        #: and the pad go to the last, spare element
        lp = tab.link_pair
        self._lp_flat = torch.where(lp < P, lp + rows[:, None] * P, B * P).contiguous()
        self._nbr_view = None
        self._nbr_stale = None
        self._pf = None
        self._req_rows: Tensor | None = None
        if self._bits:
            self._rebuild_adjacency()

    @property
    def done(self) -> Tensor:
        """(B,) True where every slot of the episode has run."""
        return self.t >= self.cfg.episode_slots

    # ------------------------------------------------------------------ one step
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
        self._preposition(acts, events)
        self._serve(events)
        self._fail_overdue(events)
        self.t += 1
        live = self.t < self.cfg.episode_slots
        if bool(live.all()):
            self._begin_slot(events, None)
        elif bool(live.any()):
            self._begin_slot(events, live)
        return events

    # ------------------------------------------------------------------ phases 1-3
    def _begin_slot(self, events: BatchEvents, live: Tensor | None) -> None:
        """Phases 1-3 (in the networks ``live``; None: all)."""
        self._discard_expired(events, live)
        self._generate(events, live)
        self._admit_arrivals(events, live)

    def _discard_expired(self, events: BatchEvents, live: Tensor | None) -> None:
        """Phase 1: swap outcomes due now, then expired link pairs and pre-positioned pairs."""
        t = self.t
        if self._latency:
            self._receive_outcomes(events, live)
        created = self.created
        age = t[:, None, None] - created
        expired = (created >= 0) & (age >= self.tables.lifetime[:, :, None])
        if live is not None:
            expired &= live[:, None, None]
        if bool(expired.any()):
            per_link = expired.sum(dim=2)
            gone = per_link.sum(dim=1)
            created.masked_fill_(expired, -1)
            self.count -= per_link
            self.youngest = created.max(dim=2).values if created.shape[2] > 1 else created[:, :, 0]
            events.pairs_expired += gone
            self.metrics["pairs_expired"] += gone
        old = (self.held_pair < self.num_pairs) & (self.held_expiry <= t[:, None])
        if live is not None:
            old &= live[:, None]
        if bool(old.any()):
            n_old = old.sum(dim=1)
            self.held_pair.masked_fill_(old, self.num_pairs)
            events.prepositions_expired += n_old
            self.metrics["prepositions_expired"] += n_old

    def _receive_outcomes(self, events: BatchEvents, live: Tensor | None) -> None:
        """Phase 1 with signalling latency: outcomes due now, in the order they were sent."""
        t = self.t
        due = self.flight_due <= t[:, None]
        if live is not None:
            due &= live[:, None]
        if not bool(due.any()):
            return
        F = self.flight_due.shape[1]
        requeue_b: list[Tensor] = []
        requeue_r: list[Tensor] = []
        while True:
            has = due.any(dim=1)
            if not bool(has.any()):
                break
            b = torch.nonzero(has).flatten()
            k = torch.where(due, self.flight_seq, _BIG).argmin(dim=1)[b]
            pos = b * F + k
            due.view(-1)[pos] = False
            self.flight_due.view(-1)[pos] = NEVER
            req = _take(self.flight_request, pos)
            ok = _take(self.flight_ok, pos)
            fid = _take(self.flight_fidelity, pos)
            placed = _take(self.flight_placed, pos)
            hops = _take(self.flight_hops, pos)
            prep = req < 0
            if bool(prep.any()):
                bp = b[prep]
                self._tally(bp, events, {"prepositions_in_flight": -1.0}, {})
                pair = _take(self.flight_pair, pos[prep])
                self._settle(bp, pair, fid[prep], ok[prep], placed[prep], hops[prep], events)
            ask = ~prep
            if not bool(ask.any()):
                continue
            br, r = b[ask], req[ask]
            self._tally(br, events, {"requests_in_flight": -1.0}, {})
            lost = ~ok[ask]
            if bool(lost.any()):
                bl, rl = br[lost], r[lost]
                self._count(bl, "swap_failures", events)
                late = t[bl] > self._work_at("deadline", bl, rl)
                if bool(late.any()):
                    self._fail(bl[late], rl[late], events)
                back = ~late
                if bool(back.any()):
                    self._record(bl[back], rl[back], "status", QUEUED)
                    requeue_b.append(bl[back])
                    requeue_r.append(rl[back])
            got = ok[ask]
            if bool(got.any()):
                bg, rg = br[got], r[got]
                age = t[bg] - placed[ask][got]
                f = self._decayed(fid[ask][got], self._pow[age])
                self._served(bg, rg, ON_DEMAND, f, hops[ask][got], events)
        if requeue_b:
            self._merge_into_queue(*self._rows_of(torch.cat(requeue_b), torch.cat(requeue_r)))

    def _rows_of(self, b: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
        """Per network the values ``r`` of its entries ``b``, as (B, k) ids and a validity mask."""
        order = torch.argsort(b, stable=True)
        b, r = b[order], r[order]
        k = torch.bincount(b, minlength=self.num_envs)
        width = int(k.max())
        col = torch.arange(b.numel(), device=self.device) - (torch.cumsum(k, 0) - k)[b]
        ids = torch.zeros((self.num_envs, width), dtype=torch.int64, device=self.device)
        valid = torch.zeros((self.num_envs, width), dtype=torch.bool, device=self.device)
        ids[b, col] = r
        valid[b, col] = True
        return ids, valid

    def _generate(self, events: BatchEvents, live: Tensor | None) -> None:
        """Phase 2: one uniform per link; a new pair where it is below p_gen and the link is free."""
        tab = self.tables
        E = tab.E
        t = self.t
        all_live = torch.ones_like(t, dtype=torch.bool) if live is None else live
        u = self.draws.generation(t, all_live, E)
        draw = (u < tab.p_gen[:, :E]) & (self.busy_until[:, :E] < t[:, None])
        if live is not None:
            draw &= live[:, None]
        room = self.count[:, :E] < tab.capacity[:, :E]
        new = draw & room
        tt = t[:, None].expand_as(new)
        C = self.created.shape[2]
        created = self.created[:, :E]
        if C == 1:
            created[:, :, 0] += (tt - created[:, :, 0]) * new
        else:
            free = (created < 0).int().argmax(dim=2, keepdim=True)
            old = created.gather(2, free)[:, :, 0]
            created.scatter_(2, free, torch.where(new, tt, old)[:, :, None])
        self.count[:, :E] += new
        young = self.youngest[:, :E]
        young = young + (tt - young) * new
        made = new.sum(dim=1)
        if self.cfg.link_pool_policy == "replace_oldest":
            full = draw & ~room
            held = torch.where(created >= 0, created, _BIG)
            oldest = held.argmin(dim=2, keepdim=True)
            old = created.gather(2, oldest)[:, :, 0]
            created.scatter_(2, oldest, torch.where(full, tt, old)[:, :, None])
            young = torch.where(full, tt, young)
            replaced = full.sum(dim=1)
            made = made + replaced
            events.pairs_replaced += replaced
            self.metrics["pairs_replaced"] += replaced
        self.youngest[:, :E] = young
        events.pairs_generated += made
        self.metrics["pairs_generated"] += made
        self._refresh_all(live)

    def _refresh_all(self, live: Tensor | None = None) -> None:
        """The view of every link (as ``LinkPool.refresh`` with no links given), in ``live``."""
        E = self.tables.E
        held = self.count > 0
        idx = self._table_index(self.youngest)
        ct = self._class_tables
        factor = _take(ct["factor"], idx) * held
        usable = held
        usable[:, E] = True
        factor[:, E] = 1.0
        hf = self.cfg.routing == "highest_fidelity"
        cost = torch.where(held, _take(ct["cost_full"], idx), torch.inf) if hf else self.cost
        if live is not None:  # networks whose slot does not begin keep their view
            keep = ~live[:, None]
            usable = torch.where(keep, self.usable, usable)
            factor = torch.where(keep, self.factor, factor)
            if hf:
                cost = torch.where(keep, self.cost, cost)
        self.usable, self.factor, self.cost = usable, factor, cost
        self._pf = None
        self._nbr_view = None
        if self._bits:
            self._rebuild_adjacency()

    def _rebuild_adjacency(self) -> None:
        """Neighbour bit sets (B, n + 1) of every node over the links that hold a pair."""
        tab = self.tables
        B, n = self.num_envs, self.n
        u, v = tab.link_u, tab.link_v
        real = self.usable & (u < n)
        one = torch.ones_like(u)
        adj = torch.zeros((B, n + 1), dtype=torch.int64, device=self.device)
        adj.scatter_add_(1, u, (one << v.clamp(max=n - 1)) * real)
        adj.scatter_add_(1, v, (one << u.clamp(max=n - 1)) * real)
        self._adj = adj

    def _table_index(self, youngest: Tensor) -> Tensor:
        """Flat index into the class tables of each link's youngest pair's age."""
        L = self._class_tables["fid"].shape[1]
        age = (self.t[:, None] - youngest).clamp(0, L - 1)
        return self.tables.link_class * L + age

    def _admit_arrivals(self, events: BatchEvents, live: Tensor | None) -> None:
        """Phase 3: this slot's requests join the queue; an arrival to a full queue fails at once."""
        K = self._arrivals_per_slot
        if K == 0:
            return
        t = self.t
        ids, arrive = self._requests_at(self.next_request, t, live)
        if bool(arrive.any()):
            k = arrive.sum(dim=1)
            # a request in flight keeps its place: it returns to the queue if its swap fails
            in_flight = self.metrics["requests_in_flight"].to(torch.int64)
            space = (self.cfg.queue_capacity - in_flight - self.queue_len).clamp(min=0)
            admit = arrive & (torch.arange(K, device=self.device) < space[:, None])
            over = arrive & ~admit
            if bool(over.any()):
                n_over = over.sum(dim=1)
                self.metrics["queue_overflow"] += n_over
                events.queue_overflow += n_over
                self._fail_rows(ids, over, events)
            self._merge_into_queue(ids, admit)
            rows, cols = torch.nonzero(admit, as_tuple=True)
            self._record(rows, ids[rows, cols], "status", QUEUED)
            self.next_request += k
            self.metrics["arrived"] += k
            events.arrived += k
            self._count_demand(ids, arrive, 1.0)
        old = t - self.cfg.demand_obs_slots
        ids, leave = self._requests_at(self.demand_start, old, live)
        leave &= (old >= 0)[:, None]
        if bool(leave.any()):
            self._count_demand(ids, leave, -1.0)
            self.demand_start += leave.sum(dim=1)

    def _requests_at(
        self, start: Tensor, slot: Tensor, live: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """The requests arriving in ``slot`` from position ``start`` on: (B, K) ids and mask."""
        K = self._arrivals_per_slot
        N = self.work["arrival"].shape[1]
        ids = (start[:, None] + torch.arange(K, device=self.device)).clamp(max=N - 1)
        at = _row_take(self.work["arrival"], ids) == slot[:, None]
        at &= start[:, None] + torch.arange(K, device=self.device) < N
        if live is not None:
            at &= live[:, None]
        return ids, at

    def _count_demand(self, ids: Tensor, mask: Tensor, step: float) -> None:
        """Add ``step`` to the demand window of each masked request's node pair.

        An arrival (``step > 0``) counts in this slot's arrivals too.
        """
        pair = torch.where(mask, _row_take(self.work["pair"], ids), self.num_pairs)
        values = mask.to(torch.float32) * step
        self.demand.scatter_add_(1, pair, values)
        if step > 0:
            self.arrivals.scatter_add_(1, pair, values)

    # ------------------------------------------------------------------ phase 4
    def _preposition(self, actions: Tensor, events: BatchEvents) -> None:
        """Phase 4: try each network's chosen node pairs in order, within the limits."""
        cfg = self.cfg
        P = self.num_pairs
        valid = (actions >= 0) & (actions < P)
        if not bool(valid.any()):
            return
        placed = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        m = self.metrics
        # the last entry any network still wants: later ones cannot matter
        last = int(torch.nonzero(valid.any(dim=0)).max()) + 1
        for j in range(last):
            held = (self.held_pair < P).sum(dim=1) + m["prepositions_in_flight"]
            active = (placed < cfg.max_new_prepositions) & (held < cfg.max_prepositioned)
            go = active & valid[:, j]
            b = torch.nonzero(go).flatten()
            if b.numel() == 0:
                if not bool((active[:, None] & valid[:, j:]).any()):
                    break
                continue
            a = actions[b, j]
            path, hops = self._preposition_path(b, a)
            ok = hops > 0
            if not bool(ok.all()):
                b, a, path, hops = b[ok], a[ok], path[ok], hops[ok]
                if b.numel() == 0:
                    continue
            fidelity, swapped = self._consume(b, path, hops, events)
            t = self.t[b]
            if self._latency:
                self._dispatch(b, t + self._delay[hops], t, a, hops, fidelity, swapped, -1, path)
                self._tally(b, events, {"prepositions_in_flight": 1.0}, {})
                placed.index_add_(0, b, torch.ones_like(b))
                continue
            stored = self._settle(b, a, fidelity, swapped, t, hops, events)
            placed.index_add_(0, b, stored)

    def _preposition_path(self, b: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        """The path pre-positioning would use in networks ``b`` for node pairs ``a``.

        Returns (X, H) links and the hops (0: no path).
        """
        if self.cfg.preposition_path == "static":
            return self._static_route(b, a)
        nodes = self._pair_nodes.index_select(0, a)
        return self._bfs_route(b, nodes[:, 0], nodes[:, 1])

    @property
    def _pair_nodes(self) -> Tensor:
        pn = getattr(self, "_pair_nodes_t", None)
        if pn is None:
            iu, ju = np.triu_indices(self.n, 1)
            pn = torch.tensor(np.stack([iu, ju], 1), dtype=torch.int64, device=self.device)
            self._pair_nodes_t = pn
        return pn

    def _settle(
        self,
        b: Tensor,
        pair: Tensor,
        fidelity: Tensor,
        ok: Tensor,
        placed: Tensor,
        hops: Tensor,
        events: BatchEvents,
    ) -> Tensor:
        """Store the pre-positions whose swaps succeeded in networks ``b`` (one each); count the rest.

        Returns 1 where a pair was stored, 0 where the swap failed.
        """
        lost = ~ok
        if bool(lost.any()):
            self._count(b[lost], "swap_failures", events)
        if bool(ok.any()):
            bs, f, pl = b[ok], fidelity[ok], placed[ok]
            K = self.held_pair.shape[1]
            slot = (self.held_pair.index_select(0, bs) == self.num_pairs).int().argmax(dim=1)
            pos = bs * K + slot
            self.held_pair.view(-1)[pos] = pair[ok]
            self.held_fidelity.view(-1)[pos] = f
            self.held_placed.view(-1)[pos] = pl
            self.held_hops.view(-1)[pos] = hops[ok]
            self.held_expiry.view(-1)[pos] = pl + self._slots_until_below(f)
            self.held_seq.view(-1)[pos] = self.held_next[bs]
            self.held_next.index_add_(0, bs, torch.ones_like(bs))
            self._tally(bs, events, {"prepositions_placed": 1.0}, {"placed": 1.0})
        return ok.long()

    def _slots_until_below(self, f: Tensor) -> Tensor:
        """``physics.slots_until_below`` of fidelities ``f`` (the first age below F_min, capped)."""
        window = self.cfg.prediction_window
        k = self._below_k
        if k.numel() == 0:
            return torch.full_like(f, window, dtype=torch.int64)
        below = self._decayed(f[:, None], self._pow[k][None, :]) < self.cfg.F_min
        first = below.int().argmax(dim=1) + 1
        return torch.where(below.any(dim=1), first, window)

    def _from_product(self, product: Tensor) -> Tensor:
        """Path fidelity from the product of the links' factors (``physics.fidelity_from_product``)."""
        if self.cfg.swap_model == "paper":
            return product
        return (1.0 + 3.0 * product) / 4.0

    def _decayed(self, f: Tensor, power: Tensor) -> Tensor:
        """The decay law of ``decay_model`` with ``power = rho ** age`` (from a pow table)."""
        if self.cfg.decay_model == "paper":
            return f * power
        return 0.25 + (f - 0.25) * power

    # ------------------------------------------------------------------ links
    def _path_product(self, flat: Tensor) -> Tensor:
        """Product of the view's factors at the flat link positions ``flat`` (X, H), in order."""
        f = _take(self.factor, flat)
        product = f[:, 0]
        for h in range(1, flat.shape[1]):
            product = product * f[:, h]
        return product

    def _consume(
        self,
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
        tab = self.tables
        E = tab.E
        E1 = E + 1
        taking = path < E
        flat = b[:, None] * E1 + path  # the pad entries point at the network's pad link
        fidelity = self._from_product(self._path_product(flat))
        pos = flat.reshape(-1)
        take = taking.reshape(-1)
        C = self.created.shape[2]
        rows = self.created.view(-1, C).index_select(0, pos)
        j = rows.argmax(dim=1, keepdim=True)
        rows.scatter_(1, j, torch.where(take[:, None], -1, rows.gather(1, j)))
        self.created.view(-1, C).index_copy_(0, pos, rows)
        count = self.count.view(-1)
        count.index_add_(0, pos, -take.long())
        young = rows.max(dim=1).values
        self.youngest.view(-1).index_copy_(0, pos, young)
        left = count.index_select(0, pos)
        held = left > 0
        L = self._class_tables["fid"].shape[1]
        t = self.t.index_select(0, b)[:, None].expand_as(path).reshape(-1)
        idx = _take(tab.link_class, pos) * L + (t - young).clamp(0, L - 1)
        ct = self._class_tables
        usable = torch.where(take, held, _take(self.usable, pos))
        factor = torch.where(
            take, torch.where(held, _take(ct["factor"], idx), 0.0), _take(self.factor, pos)
        )
        self.usable.view(-1).index_copy_(0, pos, usable)
        self.factor.view(-1).index_copy_(0, pos, factor)
        if self.cfg.routing == "highest_fidelity":
            cost = torch.where(held, _take(ct["cost_part"], idx), torch.inf)
            self.cost.view(-1).index_copy_(0, pos, torch.where(take, cost, _take(self.cost, pos)))
        if self._bits:  # links left without a pair leave the neighbour bit sets
            gone = take & ~held
            u, v = _take(tab.link_u, pos), _take(tab.link_v, pos)
            n = self.n
            bb = b[:, None].expand_as(path).reshape(-1)
            one = torch.ones_like(u)
            adj = self._adj.view(-1)
            adj.index_add_(0, bb * (n + 1) + u, -torch.where(gone, one << v.clamp(max=n - 1), 0))
            adj.index_add_(0, bb * (n + 1) + v, -torch.where(gone, one << u.clamp(max=n - 1), 0))
        self._mark_stale(b)
        self._tally(b, events, {"pairs_consumed": hops})
        ok = torch.ones(b.shape, dtype=torch.bool, device=self.device)
        success = self.cfg.swap_success
        if success < 1.0:
            need = (hops - 1).clamp(min=0)
            counts = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
            counts.index_add_(0, b, need)
            if bool(counts.any()):
                offset = self._offsets(b, need, k_of)
                u = self.draws.swap(counts)
                width = max(int(need.max()), 1)
                k = torch.arange(width, device=self.device)
                col = (offset[:, None] + k).clamp(max=max(u.shape[1] - 1, 0))
                mine = _pick(u, b[:, None].expand_as(col).reshape(-1), col.reshape(-1))
                ok = ((mine.view(-1, width) < success) | (k >= need[:, None])).all(dim=1)
        return fidelity, ok

    def _offsets(self, b: Tensor, sizes: Tensor, k_of: Tensor | None) -> Tensor:
        """Start of each item's share in its network: the sizes of the network's earlier items.

        Items are sorted by network and then by ``k_of`` (None: one item per network).
        """
        if k_of is None:
            return torch.zeros_like(sizes)
        total = torch.cumsum(sizes, 0) - sizes  # exclusive, over all items
        first = total - torch.cummax(torch.where(k_of == 0, total, 0), dim=0).values
        return first

    def _dispatch(
        self,
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
        F = self.flight_due.shape[1]
        k_of = self._offsets(b, torch.ones_like(b), self._group_rank(b))
        free = (self.flight_due.index_select(0, b) == NEVER).cumsum(dim=1)
        slot = (free == k_of[:, None] + 1).int().argmax(dim=1)
        pos = b * F + slot
        self.flight_due.view(-1)[pos] = due
        self.flight_placed.view(-1)[pos] = placed
        self.flight_pair.view(-1)[pos] = pair
        self.flight_hops.view(-1)[pos] = hops
        self.flight_fidelity.view(-1)[pos] = fidelity
        self.flight_ok.view(-1)[pos] = ok
        self.flight_request.view(-1)[pos] = request
        self.flight_seq.view(-1)[pos] = self.flight_next[b] + k_of
        self.flight_next.index_add_(0, b, torch.ones_like(b))
        E = self.tables.E
        on_path = path < E
        flat = (b[:, None] * (E + 1) + path).reshape(-1)
        value = torch.where(on_path, due[:, None], -1).reshape(-1)
        self.busy_until.view(-1).scatter_reduce_(0, flat, value, "amax")

    # ------------------------------------------------------------------ phase 5
    def _serve(self, events: BatchEvents) -> None:
        """Phase 5: each round serves, in every network, the first queued request it can serve.

        All queued requests are searched once against the state at the start of the round; in each
        network the first one that can be served is served (a held pair, else on demand), which
        changes only that network; the requests behind it are searched again the next round.
        """
        W = int(self.queue_len.max())
        if W == 0:
            return
        dev = self.device
        B = self.num_envs
        queue = self.queue[:, :W].contiguous()
        valid = torch.arange(W, device=dev) < self.queue_len[:, None]
        slot = torch.nonzero(valid.reshape(-1)).flatten()
        eb, er = slot // W, slot % W
        rid = queue.reshape(-1).index_select(0, slot)
        w = self.work
        N = w["arrival"].shape[1]
        wpos = eb * N + rid
        e_pair = _take(w["pair"], wpos)
        e_freq = _take(w["F_req"], wpos)
        # on-demand service is possible at all (a bound that holds for the whole slot: consuming a
        # pair only lowers or removes link factors)
        e_could = self._could_serve(eb, e_pair, e_freq, _take(w["deadline"], wpos))
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
            held_now = self._held_now().index_select(0, b)
            match = (self.held_pair.index_select(0, b) == pair[:, None]) & (
                held_now >= freq[:, None]
            )
            has_held = match.any(dim=1)
            # on demand: the routing strategy's path, if its delivered pair meets F_req in time
            routed = torch.zeros_like(has_held)
            need = torch.nonzero(~has_held & e_could[idx]).flatten()
            path = hops = None
            if need.numel():
                nb = b[need]
                npos = wpos[idx[need]]
                n_path, n_hops = self._route(
                    nb, _take(w["source"], npos), _take(w["destination"], npos), pair[need]
                )
                f_now = self._from_product(
                    self._path_product(nb[:, None] * (self.tables.E + 1) + n_path)
                )
                delay = self._delay[n_hops]
                delivered = f_now
                if self._latency:
                    delivered = torch.where(
                        delay > 0, self._decayed(f_now, self._pow[delay]), f_now
                    )
                fits = (
                    (n_hops > 0)
                    & (delivered >= freq[need])
                    & (self.t[nb] + delay <= _take(w["deadline"], npos))
                )
                routed[need] = fits
                path = torch.full(
                    (idx.numel(), n_path.shape[1]), self.tables.E, dtype=torch.int64, device=dev
                )
                path[need] = n_path
                hops = torch.zeros(idx.numel(), dtype=torch.int64, device=dev)
                hops[need] = n_hops
            event = has_held | routed
            if not bool(event.any()):
                break
            stop = self._round_stop(b, r, pair, has_held, event, path, hops)
            pending[idx] = r >= stop.index_select(0, b)
            ev = torch.nonzero(event & (r < stop.index_select(0, b))).flatten()
            if ev.numel():
                self._apply_events(
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
            self._compact_queue(keep, W)

    @staticmethod
    def _group_rank(b: Tensor) -> Tensor:
        """Each item's number among the items of its network (items sorted by network)."""
        if b.numel() == 0:
            return b
        start = torch.ones_like(b, dtype=torch.bool)
        start[1:] = b[1:] != b[:-1]
        order = torch.arange(b.numel(), device=b.device)
        return order - torch.cummax(torch.where(start, order, 0), dim=0).values

    def _round_stop(
        self,
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
        B, dev = self.num_envs, self.device
        stop = torch.full((B,), _BIG, dtype=torch.int64, device=dev)
        if not self._independent_events:
            first = torch.full((B,), _BIG, dtype=torch.int64, device=dev)
            first.scatter_reduce_(0, b[event], r[event], "amin")
            return torch.where(first < _BIG, first + 1, _BIG)
        touched = torch.zeros_like(event)
        # held pairs: an event wanting a node pair an earlier event of its network took
        held_ev = torch.nonzero(event & has_held).flatten()
        if held_ev.numel() > 1:
            key = b[held_ev] * (self.num_pairs + 1) + pair[held_ev]
            first = torch.full((B * (self.num_pairs + 1),), _BIG, dtype=torch.int64, device=dev)
            first.scatter_reduce_(0, key, r[held_ev], "amin")
            touched[held_ev] = r[held_ev] > first.index_select(0, key)
        # links: a request whose path runs over a link an earlier on-demand event takes
        if path is not None and hops is not None:
            E1 = self.tables.E + 1
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

    def _apply_events(
        self,
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
        K = self.held_pair.shape[1]
        dev = self.device
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
            kpos = hb * K + torch.where(tie, self.held_seq.index_select(0, hb), _BIG).argmin(dim=1)
            used[hi] = _take(self.held_hops, kpos)
            self.held_pair.view(-1)[kpos] = self.num_pairs
            fidelity[hi] = low
            served[hi] = True
            how[hi] = PREPOSITIONED
            self._tally(
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
            got, ok = self._consume(db, dpath, dhops, events, self._group_rank(db))
            t = self.t.index_select(0, db)
            self._record(db, req[d], "dispatch_slot", t)
            if self._latency:
                due = t + self._delay[dhops]
                self._dispatch(db, due, t, pair[d], dhops, got, ok, req[d], dpath)
                self._record(db, req[d], "status", IN_FLIGHT)
                self._tally(db, events, {"requests_in_flight": 1.0}, {})
                removed[db * W + r[d]] = True
            else:
                if not bool(ok.all()):
                    self._count(db[~ok], "swap_failures", events)
                fidelity[di] = got
                used[di] = dhops
                served[di] = ok
        if bool(served.any()):
            sv = torch.nonzero(served).flatten()
            sb = eb[sv]
            removed[sb * W + r[ev[sv]]] = True
            self._served(
                sb, req[ev[sv]], how[sv], fidelity[sv], used[sv], events, self._group_rank(sb)
            )

    def _could_serve(self, b: Tensor, pair: Tensor, freq: Tensor, deadline: Tensor) -> Tensor:
        """False where no path can serve the request now (a pure shortcut: those would wait).

        Any path has at least the static path's hops, and each link's factor is at most the
        network's largest (in magnitude, at most 1), so the path fidelity is at most
        ``fidelity_from_product(max ** hops)``; with latency the delay of those hops must also fit
        the deadline. A relative margin covers the rounding of the bound.
        """
        E = self.tables.E
        hops = _pick(self.tables.static_hops, b, pair)
        top = (self.factor[:, :E].abs() * self.usable[:, :E]).max(dim=1).values
        bound = self._from_product(top.index_select(0, b) ** hops.to(torch.float64))
        ok = bound * (1.0 + 1e-9) + 1e-12 >= freq
        if self._latency:
            ok &= self.t.index_select(0, b) + self._delay[hops] <= deadline
        return ok

    def _held_now(self) -> Tensor:
        """(B, K) fidelity now of every held pre-positioned pair (meaningless in free places)."""
        age = (self.t[:, None] - self.held_placed).clamp(0, self._pow.numel() - 1)
        return self._decayed(self.held_fidelity, self._pow[age])

    def _tally(
        self,
        b: Tensor,
        events: BatchEvents,
        metric: Mapping[str, Tensor | float],
        event: Mapping[str, Tensor | float] | None = None,
    ) -> None:
        """Add ``metric`` values to the metrics and ``event`` values to the step's counts.

        ``event`` defaults to ``metric``. Each value is one addition per row of ``b``; rows of one
        network add in an undefined order, which is exact for whole numbers only.
        """
        event = metric if event is None else event
        for table, cols, values in (
            (self.metric_table, [_MCOL[k] for k in metric], list(metric.values())),
            (events.table, [_ECOL[k] for k in event], list(event.values())),
        ):
            if not cols:
                continue
            width = table.shape[1]
            col = self._columns(tuple(cols))
            vals = torch.stack(
                [
                    v.to(torch.float64)
                    if isinstance(v, Tensor)
                    else torch.full(b.shape, float(v), dtype=torch.float64, device=self.device)
                    for v in values
                ],
                dim=1,
            )
            table.view(-1).index_add_(0, (b[:, None] * width + col).reshape(-1), vals.reshape(-1))

    def _columns(self, cols: tuple[int, ...]) -> Tensor:
        cache = self._column_cache
        t = cache.get(cols)
        if t is None:
            t = cache[cols] = torch.tensor(cols, dtype=torch.int64, device=self.device)
        return t

    def _count(self, b: Tensor, name: str, events: BatchEvents, event: str | None = None) -> None:
        """Add one to metric ``name`` and to the step's count ``event`` (default: the same name)."""
        self._tally(b, events, {name: 1.0}, {event or name: 1.0})

    def _work_at(self, name: str, b: Tensor, r: Tensor) -> Tensor:
        col = self.work[name]
        return _pick(col, b, r)

    def _record(self, b: Tensor, r: Tensor, name: str, value: Tensor | int | float) -> None:
        """Set record column ``name`` of requests ``r`` of networks ``b``."""
        rec = self.records
        N, C = rec.shape[1], rec.shape[2]
        pos = (b * N + r) * C + _RCOL[name]
        rec.view(-1)[pos] = value.to(torch.float64) if isinstance(value, Tensor) else float(value)

    def _served(
        self,
        b: Tensor,
        r: Tensor,
        how: Tensor | int,
        fidelity: Tensor,
        hops: Tensor,
        events: BatchEvents,
        k_of: Tensor | None = None,
    ) -> None:
        """Record requests ``r`` of networks ``b`` as served now.

        A network may appear several times (``k_of``: the order the scalar core serves them in);
        the fidelity and weight sums are then added in that order.
        """
        t = self.t.index_select(0, b).to(torch.float64)
        rec = self.records
        N, C = rec.shape[1], rec.shape[2]
        row = (b * N + r) * C
        cols = self._columns(
            (_RCOL["status"], _RCOL["end_slot"], _RCOL["fidelity"], _RCOL["how"], _RCOL["hops"])
        )
        hops_f = hops.to(torch.float64)
        how_f = how.to(torch.float64) if isinstance(how, Tensor) else torch.full_like(t, how)
        values = torch.stack([torch.full_like(t, SERVED), t, fidelity, how_f, hops_f], dim=1)
        rec.view(-1).index_copy_(0, (row[:, None] + cols).reshape(-1), values.reshape(-1))
        prio = self._work_at("priority", b, r)
        latency = t - self._work_at("arrival", b, r).to(torch.float64)
        counts: dict[str, Tensor | float] = {
            "served": 1.0,
            "latency_sum": latency,
            "pairs_delivered": hops_f,
        }
        sums: dict[str, Tensor | float] = {"fidelity_sum": fidelity}
        weights: dict[str, Tensor | float] = {"served_weight": prio}
        (counts if self._exact_weights else sums).update(weights)
        self._tally(b, events, counts, {"served": 1.0, **(weights if self._exact_weights else {})})
        if k_of is None or b.numel() == 0:
            self._tally(b, events, sums, {} if self._exact_weights else weights)
            return
        for k in range(int(k_of.max()) + 1):  # float sums in the scalar's order
            at = torch.nonzero(k_of == k).flatten()
            part = {name: v[at] if isinstance(v, Tensor) else v for name, v in sums.items()}
            ev_part = {} if self._exact_weights else {"served_weight": prio[at]}
            self._tally(b[at], events, part, ev_part)

    # ------------------------------------------------------------------ phase 6
    def _fail_overdue(self, events: BatchEvents) -> None:
        """Phase 6: a request still queued at the end of its deadline slot fails."""
        W = int(self.queue_len.max())
        if W == 0:
            return
        queue = self.queue[:, :W]
        valid = torch.arange(W, device=self.device) < self.queue_len[:, None]
        late = valid & (_row_take(self.work["deadline"], queue) <= self.t[:, None])
        if not bool(late.any()):
            return
        self._fail_rows(queue, late, events)
        self._compact_queue(valid & ~late, W)

    def _fail_rows(self, ids: Tensor, mask: Tensor, events: BatchEvents) -> None:
        """Fail the requests ``ids[b, j]`` where ``mask``, in column order (B, k)."""
        rows, cols = torch.nonzero(mask, as_tuple=True)
        r = ids[rows, cols]
        self._record(rows, r, "status", FAILED)
        self._record(rows, r, "end_slot", self.t.index_select(0, rows))
        n = mask.sum(dim=1)
        self.metrics["failed"] += n
        events.failed += n
        prio = _row_take(self.work["priority"], ids)
        if self._exact_weights:
            total = torch.where(mask, prio, 0.0).sum(dim=1)
            self.metrics["failed_weight"] += total
            events.failed_weight += total
            return
        for j in range(ids.shape[1]):  # sums in event order, as the scalar adds them
            add = torch.where(mask[:, j], prio[:, j], 0.0)
            self.metrics["failed_weight"] += add
            events.failed_weight += add

    def _fail(self, b: Tensor, r: Tensor, events: BatchEvents) -> None:
        """Record requests ``r`` of networks ``b`` (distinct) as failed now."""
        self._record(b, r, "status", FAILED)
        self._record(b, r, "end_slot", self.t.index_select(0, b))
        prio = self._work_at("priority", b, r)
        self._tally(b, events, {"failed": 1.0, "failed_weight": prio})

    # ------------------------------------------------------------------ the queue
    def _merge_into_queue(self, ids: Tensor, valid: Tensor) -> None:
        """Insert ``ids`` (B, k) where ``valid`` into the sorted queues (by service key)."""
        if not bool(valid.any()):
            return
        dev = self.device
        W = int(self.queue_len.max())
        k = ids.shape[1]
        skey = self.work["service_key"]
        queue = self.queue[:, :W]
        ar = torch.arange(W, device=dev)
        ek = torch.where(ar < self.queue_len[:, None], _row_take(skey, queue), _BIG)
        nk = torch.where(valid, _row_take(skey, ids), _BIG + 1)
        pos_old = ar + (nk[:, None, :] < ek[:, :, None]).sum(dim=2)
        pos_new = (ek[:, None, :] < nk[:, :, None]).sum(dim=2) + (
            nk[:, None, :] < nk[:, :, None]
        ).sum(dim=2)
        out = torch.zeros((self.num_envs, W + k), dtype=torch.int64, device=dev)
        out.scatter_(1, pos_old, queue)
        out.scatter_(1, pos_new, ids)
        width = min(W + k, self.queue.shape[1])
        self.queue[:, :width] = out[:, :width]
        self.queue_len += valid.sum(dim=1)

    def _compact_queue(self, keep: Tensor, W: int) -> None:
        """Keep the entries ``keep`` (B, W) of the queues, in order."""
        pos = torch.where(keep, torch.cumsum(keep, dim=1) - 1, W)
        out = torch.zeros((self.num_envs, W + 1), dtype=torch.int64, device=self.device)
        out.scatter_(1, pos, self.queue[:, :W])
        self.queue[:, :W] = out[:, :W]
        self.queue_len = keep.sum(dim=1)

    # ------------------------------------------------------------------ routing
    def _static_route(self, b: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        """The static path (X, H) of pair a in network b, and its hops where every link is usable."""
        tab = self.tables
        B, P, H = self.num_envs, self.num_pairs, tab.H
        h = torch.arange(H, device=self.device)
        flat = self._paths_flat.reshape(-1).index_select(
            0, ((h[:, None] * B + b) * P + a).reshape(-1)
        )
        flat = flat.view(H, -1).t()
        ok = _take(self.usable, flat).all(dim=1)
        path = flat - b[:, None] * (tab.E + 1)
        return path, torch.where(ok, _pick(tab.static_hops, b, a), 0)

    def _route(self, b: Tensor, s: Tensor, d: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        """The routing strategy's path (X, width) for requests (b, s -> d, pair a); hops (0: none)."""
        routing = self.cfg.routing
        if routing == "reactive":
            return self._static_route(b, a)
        if routing == "shortest":
            return self._bfs_route(b, s, d)
        if self._latency:
            return self._delivered_route(b, s, d)
        return self._dijkstra_route(b, s, d)

    def _masked_neighbours(self, b: Tensor) -> tuple[Tensor, Tensor]:
        """Neighbour tables of networks ``b`` with the links that hold no pair masked out.

        The masked table of every network is kept and rebuilt only where the view changed.
        """
        tab = self.tables
        view = self._nbr_view
        if view is None:
            view = self._nbr_view = self._mask_rows(tab.nbr, tab.nbr_link, self.usable)
            self._nbr_stale = None
        elif self._nbr_stale is not None:
            rows = torch.nonzero(self._nbr_stale).flatten()
            if rows.numel():
                view[rows] = self._mask_rows(tab.nbr[rows], tab.nbr_link[rows], self.usable[rows])
            self._nbr_stale = None
        return view.index_select(0, b), tab.nbr_link.index_select(0, b)

    def _mask_rows(self, nbr: Tensor, link: Tensor, usable: Tensor) -> Tensor:
        X, n, D = nbr.shape
        ok = usable.gather(1, link.reshape(X, n * D)).view(X, n, D) & (link < self.tables.E)
        return torch.where(ok, nbr, n)

    def _mark_stale(self, b: Tensor) -> None:
        """The views of networks ``b`` changed (a consumption)."""
        self._pf = None
        if self._nbr_view is not None:
            if self._nbr_stale is None:
                self._nbr_stale = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
            self._nbr_stale[b] = True

    def _bfs_route(self, b: Tensor, s: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """Fewest hops over the links that hold a pair (``routing.shortest``): path from s to d."""
        E = self.tables.E
        if self._bits:
            adj = self._adj[:, : self.n].index_select(0, b)
            return search.lexmin_paths(adj, self.tables.edge_id, b, s, d, E)
        nbr, link = self._masked_neighbours(b)
        pred_j, depth = search.bfs(nbr, s, d)
        pred_node, pred_link = predecessors(nbr, link, pred_j)
        rows = torch.arange(b.numel(), device=self.device)
        hops = depth[rows, d].clamp(min=0)
        width = max(int(hops.max()), 1) if hops.numel() else 1
        back = search.walk_back(pred_node, pred_link, d, hops, width, E)
        return search.reverse_paths(back, hops, E), hops

    def _neighbour_costs(self, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        nbr, link = self._masked_neighbours(b)
        X, n, D = nbr.shape
        flat = (b[:, None, None] * (self.tables.E + 1) + link).reshape(-1)
        cost = self.cost.reshape(-1).index_select(0, flat).view(X, n, D)
        return nbr, link, cost

    def _dijkstra_route(self, b: Tensor, s: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """Highest fidelity (``routing.highest_fidelity``): Dijkstra on the links' costs."""
        nbr, link, cost = self._neighbour_costs(b)
        pred_node, pred_link = search.dijkstra(nbr, link, cost, s, d)
        hops = self._unwound_hops(pred_node, s, d)
        width = max(int(hops.max()), 1) if hops.numel() else 1
        back = search.walk_back(pred_node, pred_link, d, hops, width, self.tables.E)
        return search.reverse_paths(back, hops, self.tables.E), hops

    def _unwound_hops(self, pred_node: Tensor, s: Tensor, d: Tensor) -> Tensor:
        """Hops of the path from s to d along ``pred_node`` (0 where d was not reached)."""
        X, n = pred_node.shape
        rows = torch.arange(X, device=self.device)
        hops = torch.zeros(X, dtype=torch.int64, device=self.device)
        node = d.clone()
        alive = pred_node[rows, d] >= 0
        for _ in range(n):
            if not bool(alive.any()):
                break
            hops += alive
            node = torch.where(alive, pred_node[rows, node.clamp(min=0)], node)
            alive &= node != s
        return torch.where(pred_node[rows, d] >= 0, hops, 0)

    def _delivered_route(self, b: Tensor, s: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """``routing.highest_delivered_fidelity``: the hop count of highest fidelity on arrival."""
        nbr, link, cost = self._neighbour_costs(b)
        X, n, _ = nbr.shape
        at_dst, preds = search.layered(nbr, cost, s, d)
        best_h = self._best_hops(at_dst.cpu().numpy())
        h = torch.tensor(best_h, dtype=torch.int64, device=self.device)
        width = max(int(h.max()), 1) if h.numel() else 1
        rows = torch.arange(X, device=self.device)
        path = torch.full((X, width), self.tables.E, dtype=torch.int64, device=self.device)
        node = d.clone()
        for layer in range(n - 1, 0, -1):  # the link into the layer-h node is the path's h-th
            on = h >= layer
            if not bool(on.any()):
                continue
            j = preds[layer - 1][rows, node].clamp(min=0)
            path[:, layer - 1] = torch.where(on, link[rows, node, j], path[:, layer - 1])
            node = torch.where(on, nbr[rows, node, j], node)
        return path, h

    def _best_hops(self, at_dst: np.ndarray) -> list[int]:
        """The scalar's choice of hop count per search from the best cost at each hop count.

        The delivered fidelity of each hop count is computed on the host with ``math.exp``, as
        ``Simulator._highest_delivered`` computes it, so that near ties break the same way.
        """
        cfg = self.cfg
        out = []
        for row in at_dst.tolist():
            best_f, best_h = -math.inf, 0
            for h, c in enumerate(row, start=1):
                if c == math.inf:
                    continue
                f = float(physics.fidelity_from_product(math.exp(-c), cfg.swap_model))
                delay = self.delays[h]
                if delay:
                    f = physics.decayed(f, self._prho, delay, cfg.decay_model)
                if f > best_f:
                    best_f, best_h = f, h
            out.append(best_h)
        return out

    # ------------------------------------------------------------------ views
    def preposition_fidelity(self) -> Tensor:
        """(B, P) fidelity a pre-position of each node pair would get now; 0 where it cannot.

        ``Simulator.preposition_fidelity`` batched, computed once per decision point.
        """
        if self._pf is not None:
            return self._pf
        tab = self.tables
        if self.cfg.preposition_path == "static":
            # A link without a pair has factor NaN, as in the scalar core: the product says both.
            nan_factor = torch.where(self.usable, self.factor, torch.nan).reshape(-1)
            # Pairs in order of hops, longest first: hop h multiplies a prefix (the pad link's
            # factor 1 leaves the shorter paths unchanged, so skipping them is exact).
            links, inverse = self._paths_by_hops
            product = nan_factor.index_select(0, links[0])
            for h in range(1, len(links)):
                part = links[h]
                product[: part.numel()].mul_(nan_factor.index_select(0, part))
            product = product.index_select(0, inverse).view(self.num_envs, self.num_pairs)
            ok: Tensor | None = None
            hops = tab.static_hops
        else:
            product, hops = self._available_products()
            ok = hops > 0
        fidelity = self._from_product(product)
        if self._latency:
            fidelity = self._decayed(fidelity, self._pow_np[hops])
        if ok is None:  # NaN where a link holds no pair, as in the scalar core
            self._pf = fidelity.nan_to_num_(nan=0.0)
        else:
            self._pf = torch.where(ok, fidelity, 0.0)
        return self._pf

    def _available_products(self) -> tuple[Tensor, Tensor]:
        """Products along the fewest-hop paths over links that hold a pair, of every node pair.

        As ``bfs_predecessors`` and ``paths_from_predecessors`` give them: the breadth-first path
        from i to j (i < j), its links listed from j back to i, multiplied in that order.
        """
        tab = self.tables
        B, n, P = self.num_envs, self.n, self.num_pairs
        dev = self.device
        iu, ju = np.triu_indices(n, 1)
        src = torch.tensor(iu, dtype=torch.int64, device=dev).repeat(B)
        dst = torch.tensor(ju, dtype=torch.int64, device=dev).repeat(B)
        net = torch.arange(B, device=dev).repeat_interleave(P)
        if self._bits:
            adj = self._adj[:, :n]
            roots = torch.arange(n, device=dev).repeat(B)
            adj_rows = adj.repeat_interleave(n, dim=0)
            dist, layers = search.hop_counts(adj_rows, roots)
            nxt = search.next_hops(adj_rows, dist, layers)
            x = net * n + dst  # the search rooted at j
            hops = _pick(dist, x, src)
            fwd, hops = search.walk(nxt.index_select(0, x), hops, tab.edge_id, net, src, tab.E)
            paths = search.reverse_paths(fwd, hops, tab.E)
        else:
            rows = torch.arange(B, device=dev).repeat_interleave(n)
            nbr, link = self._masked_neighbours(rows)
            pred_j, depth = search.bfs(nbr, torch.arange(n, device=dev).repeat(B))
            pred_node, pred_link = predecessors(nbr, link, pred_j)
            x = net * n + src
            hops = depth[x, dst].clamp(min=0)
            width = max(int(hops.max()), 1)
            paths = search.walk_back(pred_node[x], pred_link[x], dst, hops, width, tab.E)
        product = self._path_product(net[:, None] * (tab.E + 1) + paths)
        return product.view(B, P), hops.view(B, P)

    def _request_rows(self) -> Tensor:
        """(B, N, 6) float64 request fields of the queue observation, built once per workload.

        The columns: source, destination, F_req, deadline, arrival, priority.
        """
        rows = self._req_rows
        if rows is None:
            w = self.work
            names = ("source", "destination", "F_req", "deadline", "arrival", "priority")
            rows = self._req_rows = torch.stack([w[k].to(torch.float64) for k in names], dim=2)
        return rows

    def action_masks(self) -> Tensor:
        """(B, action_len * (P + 1)) bool: per entry, the node pairs that can be placed now."""
        if self._masks is not None and self._masks_of is self._pf:
            return self._masks
        cfg = self.cfg
        B, P = self.num_envs, self.num_pairs
        held = (self.held_pair < P).sum(dim=1) + self.metrics["prepositions_in_flight"]
        blocked = (held >= cfg.max_prepositioned) | (cfg.max_new_prepositions == 0)
        can = (self.preposition_fidelity() > 0.0) & ~blocked[:, None]
        out = torch.empty((B, cfg.action_len, P + 1), dtype=torch.bool, device=self.device)
        out[:, :, :P] = can[:, None, :]
        out[:, :, P] = True
        self._masks, self._masks_of = out.view(B, -1), self._pf
        return self._masks

    def observation(self) -> dict[str, Tensor]:
        """The observation of ``SpepEnv`` for every network, as float32 tensors (B, ...)."""
        cfg = self.cfg
        B, P = self.num_envs, self.num_pairs
        dev = self.device
        t = self.t
        ct = self._class_tables
        lp = self._lp_flat.reshape(-1)
        held = self.count > 0
        features = [
            self.count.to(torch.float32),
            (_take(ct["fid"], self._table_index(self.youngest)) * held).to(torch.float32),
            ((t[:, None] - self.youngest) * held).to(torch.float32),
        ]
        if self._latency:
            features.append((self.busy_until - t[:, None]).clamp(min=0).to(torch.float32))
        per_link = []
        for values in features:  # one contiguous (B, P) array each, via a spare last element
            out = torch.zeros(B * P + 1, dtype=torch.float32, device=dev)
            out.index_copy_(0, lp, values.reshape(-1))
            per_link.append(out[: B * P].view(B, P))
        hp = self.held_pair
        rows = torch.arange(B, device=dev)[:, None]
        held_pos = torch.where(hp < P, hp + rows * P, B * P).reshape(-1)
        prepositioned = torch.zeros(B * P + 1, dtype=torch.float32, device=dev)
        prepositioned.index_add_(0, held_pos, torch.ones_like(held_pos, dtype=torch.float32))
        best = torch.zeros(B * P + 1, dtype=torch.float64, device=dev)
        best.scatter_reduce_(0, held_pos, self._held_now().reshape(-1), "amax")
        best[-1] = 0.0
        zeros = torch.zeros((B, P), dtype=torch.float32, device=dev)
        if self._latency:
            flights = self.flight_due < NEVER
            counts = []
            for kind in (flights & (self.flight_request < 0), flights & (self.flight_request >= 0)):
                pos = torch.where(kind, self.flight_pair + rows * P, B * P).reshape(-1)
                c = torch.zeros(B * P + 1, dtype=torch.float32, device=dev)
                c.index_add_(0, pos, kind.reshape(-1).to(torch.float32))
                counts.append(c[: B * P].view(B, P))
            prep_in_flight, req_in_flight = counts
        else:
            prep_in_flight, req_in_flight = zeros, zeros.clone()
        Q = cfg.queue_obs_size
        queue = torch.zeros((B, Q, 6), dtype=torch.float32, device=dev)
        mask = torch.zeros((B, Q), dtype=torch.float32, device=dev)
        width = min(Q, int(self.queue_len.max()))
        if width:
            ids = self.queue[:, :width].contiguous()
            shown = torch.arange(width, device=dev) < self.queue_len[:, None]
            rows = self._request_rows()
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
            "adjacency": self.tables.adjacency.clone(),
            "link_pairs": per_link[0],
            "link_fidelity": per_link[1],
            "link_age": per_link[2],
            "link_busy": per_link[3] if self._latency else zeros.clone(),
            "path_fidelity": self.preposition_fidelity().to(torch.float32),
            "prepositioned": prepositioned[: B * P].view(B, P),
            "prepositioned_fidelity": best[: B * P].view(B, P).to(torch.float32),
            "prepositioned_in_flight": prep_in_flight,
            "requests_in_flight": req_in_flight,
            "demand": self.demand[:, :P].clamp(max=DEMAND_OBS_MAX),
            "arrivals": self.arrivals[:, :P].clamp(max=DEMAND_OBS_MAX),
            "queue": queue.view(B, Q * 6),
            "queue_mask": mask,
            "time_of_day": self._time_of_day.index_select(0, t % cfg.slots_per_day),
        }

    # ------------------------------------------------------------------ metrics
    def summary(self) -> dict[str, Tensor]:
        """Per network (B,): every key of ``Metrics.summary()``; rates NaN where undefined.

        Counters are int64 (float64 for the sums), rates float64, computed as the scalar divides.
        """
        f = {k: self.metric_table[:, i] for k, i in _MCOL.items()}
        out: dict[str, Tensor] = {
            k: (v.to(torch.int64) if k in _INT_METRICS else v.clone()) for k, v in f.items()
        }
        nan = torch.tensor(torch.nan, dtype=torch.float64, device=self.device)

        def ratio(num: str, den: Tensor) -> Tensor:
            return torch.where(den > 0, f[num] / den, nan)

        done = f["served"] + f["failed"]
        out["pending"] = out["arrived"] - out["served"] - out["failed"]
        out["success_rate"] = ratio("served", done)
        out["avg_latency"] = ratio("latency_sum", f["served"])
        out["avg_fidelity"] = ratio("fidelity_sum", f["served"])
        out["utilization"] = ratio("pairs_delivered", f["pairs_generated"])
        out["preposition_hit_rate"] = ratio("served_prepositioned", f["served"])
        out["preposition_use_rate"] = ratio("prepositions_used", f["prepositions_placed"])
        out["preposition_waste_rate"] = ratio("prepositions_expired", f["prepositions_placed"])
        return out

    def request_records(self, b: int) -> dict[str, np.ndarray]:
        """Per-request records of network ``b`` as ``Simulator.request_records`` lists them."""
        n = int((self.work["arrival"][b] < (1 << 40)).sum())
        w = {k: v[b, :n].cpu().numpy() for k, v in self.work.items()}
        rec = self.records[b, :n].cpu().numpy()
        dtypes = {"status": np.int8, "how": np.int8, "fidelity": np.float64}
        return {
            "id": np.arange(n),
            "source": w["source"],
            "destination": w["destination"],
            "arrival": w["arrival"],
            "F_req": w["F_req"],
            "deadline": w["deadline"],
            "priority": w["priority"],
            **{k: rec[:, i].astype(dtypes.get(k, np.int64)) for k, i in _RCOL.items()},
        }

    def memory_bytes(self) -> int:
        """Bytes held by the simulator's tensors (state, tables, workload, records)."""
        seen: set[int] = set()
        total = 0

        def add(x: Any) -> None:
            nonlocal total
            if isinstance(x, Tensor) and id(x) not in seen:
                seen.add(id(x))
                total += x.element_size() * x.nelement()
            elif isinstance(x, dict):
                for v in x.values():
                    add(v)

        for value in vars(self).values():
            add(value)
        for value in vars(self.tables).values():
            add(value)
        return total


def _empty_records(B: int, N: int, device: torch.device) -> Tensor:
    """(B, N, len(RECORDS)) float64 records of requests nothing has happened to yet."""
    fill = torch.tensor(_RECORD_FILL, dtype=torch.float64, device=device)
    return fill.expand(B, N, len(RECORDS)).clone()


def _repeat_tables(tab: NetworkTables, k: int) -> NetworkTables:
    """``k`` copies of one network's tables."""
    values: dict[str, Any] = {}
    for name, value in vars(tab).items():
        if isinstance(value, Tensor):
            values[name] = value.expand(k, *value.shape[1:]).clone()
        else:
            values[name] = value
    return NetworkTables(**values)


def _pad_links(tab: NetworkTables, E_new: int) -> NetworkTables:
    """The tables with dead links inserted before the pad link, for E_new links per network."""
    E = tab.E
    if E_new == E:
        return tab
    extra = E_new - E

    def grow(x: Tensor) -> Tensor:
        pad = x[:, E:].expand(x.shape[0], extra, *x.shape[2:])
        return torch.cat([x[:, :E], pad, x[:, E:]], dim=1)

    values: dict[str, Any] = dict(vars(tab))
    for name in ("link_pair", "link_u", "link_v", "p_gen", "capacity", "link_class", "lifetime"):
        values[name] = grow(getattr(tab, name))
    values["nbr_link"] = torch.where(tab.nbr_link == E, E_new, tab.nbr_link)
    values["edge_id"] = torch.where(tab.edge_id == E, E_new, tab.edge_id)
    values["static_paths"] = torch.where(tab.static_paths == E, E_new, tab.static_paths)
    return NetworkTables(**values)


def _pad_dh(tab: NetworkTables, D: int, H: int) -> NetworkTables:
    """The tables with neighbour tables of width D and static paths of width H."""
    values: dict[str, Any] = dict(vars(tab))
    n, E = tab.n, tab.E
    if D > tab.D:
        values["nbr"] = torch.nn.functional.pad(tab.nbr, (0, D - tab.D), value=n)
        values["nbr_link"] = torch.nn.functional.pad(tab.nbr_link, (0, D - tab.D), value=E)
    if H > tab.H:
        values["static_paths"] = torch.nn.functional.pad(
            tab.static_paths, (0, 0, 0, H - tab.H), value=E
        )
    return NetworkTables(**values)


def _take(x: Tensor, idx: Tensor) -> Tensor:
    """``x.flatten()[idx]`` with the shape of ``idx`` (``index_select``: faster than indexing)."""
    return x.reshape(-1).index_select(0, idx.reshape(-1)).view(idx.shape)


def _row_take(x: Tensor, idx: Tensor) -> Tensor:
    """``x.gather(1, idx)`` of a 2-d tensor, as one flat ``index_select``."""
    rows = torch.arange(x.shape[0], device=x.device)[:, None] * x.shape[1]
    return x.reshape(-1).index_select(0, (idx + rows).reshape(-1)).view(idx.shape)


def _pick(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """``x[rows, cols]`` of a 2-d tensor, as one flat ``index_select``."""
    return x.reshape(-1).index_select(0, rows * x.shape[1] + cols)
