"""Installing episodes in the batched simulator: state tensors, network tables and workloads, grown to fit."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from spep_gym.batched.links import rebuild_adjacency
from spep_gym.batched.state import (
    MCOL,
    METRICS,
    NEVER,
    BatchedState,
    empty_records,
    pad_dh,
    pad_links,
    repeat_tables,
)
from spep_gym.batched.tables import (
    WORKLOAD_COLUMNS,
    NetworkTables,
    build_tables,
    link_rows,
    network_graph,
)


def build_constants(sim: BatchedState) -> None:
    """Tables that depend on the config only: decay powers, delays, time-of-day features."""
    cfg, dev = sim.cfg, sim.device
    f64: dict[str, Any] = {"dtype": torch.float64, "device": dev}
    ages = cfg.prediction_window + max(sim.delays) + 2
    # Python pow, as physics.decayed computes it; numpy pow, as physics.decayed_array does.
    sim._pow = torch.tensor([sim._prho**k for k in range(ages)], **f64)
    sim._pow_np = torch.tensor(sim._prho ** np.asarray(sim.delays), **f64)
    sim._delay = torch.tensor(sim.delays, dtype=torch.int64, device=dev)
    spd = cfg.slots_per_day
    tod = []
    for r in range(spd):
        phase = 2.0 * np.pi * r / spd
        tod.append(np.array([np.sin(phase), np.cos(phase)], np.float32))
    sim._time_of_day = torch.tensor(np.stack(tod), dtype=torch.float32, device=dev)
    sim._below_k = torch.arange(1, max(cfg.prediction_window, 1), device=dev)


def tables_for(sim: BatchedState, seeds: list[int]) -> tuple[NetworkTables, list[np.ndarray]]:
    """Tables of the networks of ``seeds`` and their static hops (numpy, for the workloads)."""
    cfg = sim.cfg
    if sim._fixed_rows is not None:
        if sim._fixed_tables is None:
            sim._fixed_tables = build_tables([sim._fixed_rows], sim.n, sim.classes, sim.device)
            sim._fixed_workload_hops = sim._fixed_tables.static_hops[0].cpu().numpy()
        tab = repeat_tables(sim._fixed_tables, len(seeds))
        assert sim._fixed_workload_hops is not None
        return tab, [sim._fixed_workload_hops] * len(seeds)
    rows = [link_rows(network_graph(cfg, s), cfg, sim.classes) for s in seeds]
    tab = build_tables(rows, sim.n, sim.classes, sim.device)
    hops = tab.static_hops.cpu().numpy()
    return tab, list(hops)


def install_full(
    sim: BatchedState, tab: NetworkTables, work: dict[str, Tensor], rows: Tensor
) -> None:
    """Fresh state for every network (shapes from these tables and workloads)."""
    cfg, dev = sim.cfg, sim.device
    B = sim.num_envs
    sim.tables = tab
    E = tab.E
    C = max(int(tab.capacity.max()), 1)
    i64: dict[str, Any] = {"dtype": torch.int64, "device": dev}
    sim.created = torch.full((B, E + 1, C), -1, **i64)
    sim.count = torch.zeros((B, E + 1), **i64)
    sim.youngest = torch.full((B, E + 1), -1, **i64)
    sim.busy_until = torch.full((B, E + 1), -1, **i64)
    sim.usable = torch.zeros((B, E + 1), dtype=torch.bool, device=dev)
    sim.factor = torch.zeros((B, E + 1), dtype=torch.float64, device=dev)
    sim.cost = torch.full((B, E + 1), torch.inf, dtype=torch.float64, device=dev)
    sim.usable[:, E] = True
    sim.factor[:, E] = 1.0
    K = cfg.max_prepositioned
    P = sim.num_pairs
    sim.held_pair = torch.full((B, K), P, **i64)
    sim.held_fidelity = torch.zeros((B, K), dtype=torch.float64, device=dev)
    sim.held_placed = torch.zeros((B, K), **i64)
    sim.held_hops = torch.zeros((B, K), **i64)
    sim.held_expiry = torch.zeros((B, K), **i64)
    sim.held_seq = torch.zeros((B, K), **i64)
    sim.held_next = torch.zeros(B, **i64)
    F = (E + 1) * C if sim._latency else 1
    alloc_flights(sim, F)
    Q = cfg.queue_capacity
    sim.queue = torch.zeros((B, Q), **i64)
    sim.queue_len = torch.zeros(B, **i64)
    sim.work = work
    sim.next_request = torch.zeros(B, **i64)
    sim.demand_start = torch.zeros(B, **i64)
    N = work["arrival"].shape[1]
    sim.records = empty_records(B, N, dev)
    #: (B, len(METRICS)) float64: every counter of Metrics (whole numbers exact below 2**53)
    sim.metric_table = torch.zeros((B, len(METRICS)), dtype=torch.float64, device=dev)
    sim.metrics = {k: sim.metric_table[:, i] for k, i in MCOL.items()}
    sim.demand = torch.zeros((B, P + 1), dtype=torch.float32, device=dev)
    sim.arrivals = torch.zeros((B, P + 1), dtype=torch.float32, device=dev)
    sim.t = torch.zeros(B, **i64)
    sim._arrivals_per_slot = 0


def alloc_flights(sim: BatchedState, F: int) -> None:
    """Fresh in-flight places, ``F`` per network (all free)."""
    B, dev = sim.num_envs, sim.device
    i64: dict[str, Any] = {"dtype": torch.int64, "device": dev}
    sim.flight_due = torch.full((B, F), NEVER, **i64)
    sim.flight_placed = torch.zeros((B, F), **i64)
    sim.flight_pair = torch.zeros((B, F), **i64)
    sim.flight_hops = torch.zeros((B, F), **i64)
    sim.flight_fidelity = torch.zeros((B, F), dtype=torch.float64, device=dev)
    sim.flight_ok = torch.zeros((B, F), dtype=torch.bool, device=dev)
    sim.flight_request = torch.full((B, F), -1, **i64)
    sim.flight_seq = torch.zeros((B, F), **i64)
    sim.flight_next = torch.zeros(B, **i64)


def install_rows(
    sim: BatchedState, tab: NetworkTables, work: dict[str, Tensor], rows: Tensor
) -> None:
    """Fresh state for the networks ``rows`` only; shared sizes grow to fit the new ones."""
    cur = sim.tables
    if tab.E > cur.E:
        grow_links(sim, tab.E)
    elif tab.E < cur.E:
        tab = pad_links(tab, sim.tables.E)
    cur = sim.tables
    if tab.D != cur.D or tab.H != cur.H:
        D, H = max(tab.D, cur.D), max(tab.H, cur.H)
        sim.tables = pad_dh(cur, D, H)
        tab = pad_dh(tab, D, H)
    C = max(int(tab.capacity.max()), 1)
    if sim.created.shape[2] < C:
        pad = torch.full(
            (*sim.created.shape[:2], C - sim.created.shape[2]),
            -1,
            dtype=torch.int64,
            device=sim.device,
        )
        sim.created = torch.cat([sim.created, pad], dim=2)
    for name in vars(sim.tables):
        value = getattr(sim.tables, name)
        if isinstance(value, Tensor):
            value[rows] = getattr(tab, name)
    N_new, N_cur = work["arrival"].shape[1], sim.work["arrival"].shape[1]
    if N_new > N_cur:
        grow_requests(sim, N_new)
    for name, (_, fill) in WORKLOAD_COLUMNS.items():
        col = sim.work[name]
        col[rows] = fill
        col[rows, :N_new] = work[name]
    sim.records[rows] = empty_records(len(rows), sim.work["arrival"].shape[1], sim.device)
    E = sim.tables.E
    sim.created[rows] = -1
    for name, fill in (("count", 0), ("youngest", -1), ("busy_until", -1)):
        getattr(sim, name)[rows] = fill
    sim.usable[rows] = False
    sim.factor[rows] = 0.0
    sim.cost[rows] = torch.inf
    sim.usable[:, E] = True
    sim.factor[:, E] = 1.0
    sim.held_pair[rows] = sim.num_pairs
    sim.held_next[rows] = 0
    F = (E + 1) * sim.created.shape[2] if sim._latency else 1
    if sim.flight_due.shape[1] < F:
        grow_flights(sim, F)
    sim.flight_due[rows] = NEVER
    sim.flight_next[rows] = 0
    sim.queue_len[rows] = 0
    sim.next_request[rows] = 0
    sim.demand_start[rows] = 0
    sim.metric_table[rows] = 0.0
    sim.demand[rows] = 0.0
    sim.arrivals[rows] = 0.0
    sim.t[rows] = 0


def grow_links(sim: BatchedState, E_new: int) -> None:
    """Insert dead links before the pad link so that networks of ``E_new`` links fit."""
    E = sim.tables.E
    extra = E_new - E
    dev = sim.device

    def grow(x: Tensor, fill: float | bool) -> Tensor:
        shape = list(x.shape)
        shape[1] = extra
        mid = torch.full(shape, fill, dtype=x.dtype, device=dev)
        return torch.cat([x[:, :E], mid, x[:, E:]], dim=1)

    sim.tables = pad_links(sim.tables, E_new)
    sim.created = grow(sim.created, -1)
    sim.count = grow(sim.count, 0)
    sim.youngest = grow(sim.youngest, -1)
    sim.busy_until = grow(sim.busy_until, -1)
    sim.usable = grow(sim.usable, False)
    sim.factor = grow(sim.factor, 0.0)
    sim.cost = grow(sim.cost, torch.inf)


def grow_flights(sim: BatchedState, F: int) -> None:
    """Room for ``F`` in-flight swaps per network, keeping those under way."""
    old = {
        name: getattr(sim, name)
        for name in vars(sim)
        if name.startswith("flight_") and name != "flight_next"
    }
    next_seq = sim.flight_next
    alloc_flights(sim, F)
    for name, value in old.items():
        getattr(sim, name)[:, : value.shape[1]] = value
    sim.flight_next = next_seq


def grow_requests(sim: BatchedState, N: int) -> None:
    """Room for ``N`` requests per network (padding rows and fresh records)."""
    cur = sim.work["arrival"].shape[1]
    for name, (dtype, fill) in WORKLOAD_COLUMNS.items():
        pad = torch.full((sim.num_envs, N - cur), fill, dtype=dtype, device=sim.device)
        sim.work[name] = torch.cat([sim.work[name], pad], dim=1)
    fresh = empty_records(sim.num_envs, N - cur, sim.device)
    sim.records = torch.cat([sim.records, fresh], dim=1)


def after_install(sim: BatchedState) -> None:
    """Index tables derived from the network tables (rebuilt whenever they change)."""
    tab = sim.tables
    B, E1, P = sim.num_envs, tab.E + 1, sim.num_pairs
    rows = torch.arange(B, device=sim.device)
    #: (H, B, P) flat positions in a (B, E + 1) array of each static path's links
    sim._paths_flat = (tab.static_paths.transpose(0, 1) + rows[:, None] * E1).contiguous()
    # the static path links by hop, pairs ordered by hops (longest first), and the inverse
    hops = tab.static_hops.reshape(-1)
    order = torch.argsort(-hops, stable=True)
    by_h = []
    for h in range(tab.H):
        count = int((hops > h).sum())
        by_h.append(sim._paths_flat[h].reshape(-1).index_select(0, order[:count]))
    sim._paths_by_hops = (by_h, torch.argsort(order))
    #: (B, E + 1) flat positions in a (B * P + 1) array of each link's node pair; dead links
    #: and the pad go to the last, spare element
    lp = tab.link_pair
    sim._lp_flat = torch.where(lp < P, lp + rows[:, None] * P, B * P).contiguous()
    sim._nbr_view = None
    sim._nbr_stale = None
    sim._pf = None
    sim._req_rows = None
    if sim._bits:
        rebuild_adjacency(sim)
