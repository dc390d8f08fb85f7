"""The state of the batched simulator: constants, the step's events, indexing helpers.

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

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spep_gym.batched.draws import Draws
from spep_gym.batched.tables import (
    FidelityClasses,
    LinkRows,
    NetworkTables,
)
from spep_gym.config import SpepConfig
from spep_gym.metrics import Metrics

#: A slot no swap is due in (a free in-flight place).
NEVER = 1 << 62
BIG = 1 << 62
#: The counters of :class:`spep_gym.metrics.Metrics`, columns of the metrics table.
METRICS = tuple(f.name for f in fields(Metrics))
INT_METRICS = tuple(f.name for f in fields(Metrics) if f.type in ("int", int))
MCOL = {name: i for i, name in enumerate(METRICS)}
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
    "predictive_hits",
)
ECOL = {name: i for i, name in enumerate(EVENTS)}
#: Columns of the per-request records table, and their values before anything happens.
RECORDS = ("status", "dispatch_slot", "end_slot", "fidelity", "how", "hops")
RCOL = {name: i for i, name in enumerate(RECORDS)}
RECORD_FILL = (0.0, -1.0, -1.0, float("nan"), 0.0, 0.0)


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
    predictive_hits: Tensor  # pre-positioned pairs used by a request arrived after placement

    @classmethod
    def zeros(cls, slot: Tensor) -> BatchEvents:
        """No events yet, in slot ``slot``."""
        table = torch.zeros((slot.shape[0], len(EVENTS)), dtype=torch.float64, device=slot.device)
        return cls(slot=slot.clone(), table=table, **{k: table[:, i] for k, i in ECOL.items()})


def empty_records(B: int, N: int, device: torch.device) -> Tensor:
    """(B, N, len(RECORDS)) float64 records of requests nothing has happened to yet."""
    fill = torch.tensor(RECORD_FILL, dtype=torch.float64, device=device)
    return fill.expand(B, N, len(RECORDS)).clone()


def repeat_tables(tab: NetworkTables, k: int) -> NetworkTables:
    """``k`` copies of one network's tables."""
    values: dict[str, Any] = {}
    for name, value in vars(tab).items():
        if isinstance(value, Tensor):
            values[name] = value.expand(k, *value.shape[1:]).clone()
        else:
            values[name] = value
    return NetworkTables(**values)


def pad_links(tab: NetworkTables, E_new: int) -> NetworkTables:
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


def pad_dh(tab: NetworkTables, D: int, H: int) -> NetworkTables:
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


def flat_take(x: Tensor, idx: Tensor) -> Tensor:
    """``x.flatten()[idx]`` with the shape of ``idx`` (``index_select``: faster than indexing)."""
    return x.reshape(-1).index_select(0, idx.reshape(-1)).view(idx.shape)


def row_take(x: Tensor, idx: Tensor) -> Tensor:
    """``x.gather(1, idx)`` of a 2-d tensor, as one flat ``index_select``."""
    rows = torch.arange(x.shape[0], device=x.device)[:, None] * x.shape[1]
    return x.reshape(-1).index_select(0, (idx + rows).reshape(-1)).view(idx.shape)


def pick(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """``x[rows, cols]`` of a 2-d tensor, as one flat ``index_select``."""
    return x.reshape(-1).index_select(0, rows * x.shape[1] + cols)


class BatchedState:
    """The fields of the batched simulator, B networks at once (see the module docstring).

    :class:`~spep_gym.batched.simulator.BatchedSimulator` holds them; the phase functions read and
    write them. Set in ``__init__``, then by :mod:`~spep_gym.batched.install` at each reset.
    """

    # The config and what follows from it (BatchedSimulator.__init__).
    cfg: SpepConfig
    device: torch.device
    num_envs: int  # B
    n: int  # nodes per network
    num_pairs: int  # P = n (n - 1) / 2
    draws: Draws  # the random draws (generation and swap uniforms)
    classes: FidelityClasses  # the links' fidelity classes
    delays: list[int]  # signalling delay of h hops, slots
    _fixed_rows: LinkRows | None  # the links of a graph every seed shares (None: drawn per seed)
    _fixed_tables: NetworkTables | None
    _fixed_workload_hops: np.ndarray | None
    _class_tables: dict[str, Tensor]  # (U, L) per class and age: fidelity, factor, costs
    _latency: bool  # signalling_latency > 0
    _prho: float  # the pre-positioned pairs' rho
    _exact_weights: bool  # priority weights are whole numbers (sums in any order are exact)
    _bits: bool  # node sets as int64 bit masks in the fewest-hop searches
    _independent_events: bool  # a slot's served requests can be applied round by round
    # The clock and caches.
    t: Tensor  # (B,) int64 the current slot
    _arrivals_per_slot: int  # most requests of one slot, over the workloads installed
    _ready: bool  # reset() has run
    _pf: Tensor | None  # (B, P) pre-position fidelities of this decision point
    _nbr_view: Tensor | None  # (B, n, D) neighbour tables masked to the links that hold a pair
    _nbr_stale: Tensor | None  # (B,) bool networks whose masked table is out of date
    _masks: Tensor | None  # the action masks of this decision point
    _masks_of: Tensor | None  # the _pf they were computed from
    _column_cache: dict[tuple[int, ...], Tensor]
    _adj: Tensor  # (B, n + 1) int64 neighbour bit sets over the links that hold a pair
    # The state, filled by :mod:`~spep_gym.batched.install` at reset.
    tables: NetworkTables  # the networks' graphs, padded to one shape
    created: Tensor  # (B, E+1, C) int64 slot each pool place's pair was made (-1: empty)
    count: Tensor  # (B, E+1) int64 pairs held per link
    youngest: Tensor  # (B, E+1) int64 slot of each link's youngest pair (-1: none)
    busy_until: Tensor  # (B, E+1) int64 last slot a link waits for a swap's outcome
    usable: Tensor  # (B, E+1) bool the routing view: the link holds a pair (the pad: True)
    factor: Tensor  # (B, E+1) float64 the view's per-link factor
    cost: Tensor  # (B, E+1) float64 the view's per-link cost (highest_fidelity)
    held_pair: Tensor  # (B, K) int64 node pair of each held pre-position (P: free)
    held_fidelity: Tensor  # (B, K) float64 fidelity when placed
    held_placed: Tensor  # (B, K) int64 slot placed
    held_hops: Tensor  # (B, K) int64 hops of its path
    held_expiry: Tensor  # (B, K) int64 slot it expires in
    held_seq: Tensor  # (B, K) int64 sequence number (the scalar list's order)
    held_next: Tensor  # (B,) int64 next sequence number
    flight_due: Tensor  # (B, F) int64 slot the outcome arrives (NEVER: free)
    flight_placed: Tensor  # (B, F) int64 decision slot
    flight_pair: Tensor  # (B, F) int64 node pair
    flight_hops: Tensor  # (B, F) int64 hops
    flight_fidelity: Tensor  # (B, F) float64 fidelity when swapped
    flight_ok: Tensor  # (B, F) bool the swap succeeded
    flight_request: Tensor  # (B, F) int64 request (-1: a pre-position)
    flight_seq: Tensor  # (B, F) int64 sequence number (the order sent)
    flight_next: Tensor  # (B,) int64 next sequence number
    queue: Tensor  # (B, Q) int64 request ids in service order
    queue_len: Tensor  # (B,) int64
    work: dict[str, Tensor]  # workload columns, (B, N) each
    next_request: Tensor  # (B,) int64 first request not arrived yet
    demand_start: Tensor  # (B,) int64 first request still in the demand window
    records: Tensor  # (B, N, len(RECORDS)) float64 per-request records
    metric_table: Tensor  # (B, len(METRICS)) float64 every counter of Metrics
    metrics: dict[str, Tensor]  # (B,) views of metric_table's columns, by name
    demand: Tensor  # (B, P+1) float32 arrivals in the demand window, per node pair
    arrivals: Tensor  # (B, P+1) float32 arrivals of the slot that began, per node pair
    # Derived tables (install.build_constants, install.after_install) and caches.
    _pow: Tensor  # (ages,) float64 rho ** age, Python pow
    _pow_np: Tensor  # (n+1,) float64 rho ** delay(hops), numpy pow
    _delay: Tensor  # (n+1,) int64 signalling delay of h hops
    _time_of_day: Tensor  # (slots_per_day, 2) float32
    _below_k: Tensor  # (prediction_window - 1,) int64 ages 1, 2, ...
    _paths_flat: Tensor  # (H, B, P) flat positions of each static path's links
    _paths_by_hops: tuple[list[Tensor], Tensor]  # static path links by hop, longest first
    _lp_flat: Tensor  # (B, E+1) flat position of each link's node pair
    _req_rows: Tensor | None  # (B, N, 6) float64 request fields of the queue observation
    _pair_nodes_t: Tensor | None  # (P, 2) int64 nodes of every node pair
