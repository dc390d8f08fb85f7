"""The demand of one run (SPEC section 4), drawn whole at reset from the workload stream.

Because the workload is fixed before the first slot, every agent meets the same requests for a seed
(common random numbers), and predictors can only be handed what has already arrived.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spep_gym.config import MAX_PRIORITY_WEIGHT, SpepConfig
from spep_gym.topology import Network

TRACE_COLUMNS = ("slot", "source", "destination", "F_req", "deadline", "priority")
#: Slots and deadlines of a trace are held as float64 rows: integers beyond 2**53 would round.
MAX_TRACE_SLOT = 2**53


@dataclass(eq=False)
class Workload:
    """All requests of an episode, sorted by arrival slot (file order within a slot)."""

    arrival: np.ndarray  # (N,) int, t_a
    source: np.ndarray  # (N,) int
    destination: np.ndarray  # (N,) int
    F_req: np.ndarray  # (N,) float
    deadline: np.ndarray  # (N,) int, t_d (absolute slot)
    priority: np.ndarray  # (N,) float, w
    pair: np.ndarray  # (N,) int, unordered node-pair index
    starts: np.ndarray  # (T + 1,) requests arriving at slot t are starts[t]:starts[t + 1]
    demand_pairs: np.ndarray  # (M, 3) the (source, destination, weight) the generator drew from

    def __len__(self) -> int:
        return len(self.arrival)


def hour_of_day(slot: np.ndarray | int, slots_per_day: int) -> np.ndarray | int:
    """floor((t mod slots_per_day) / (slots_per_day / 24)); slot 0 is midnight."""
    return (np.asarray(slot) % slots_per_day) * 24 // slots_per_day


def arrival_rates(cfg: SpepConfig, slots: int) -> np.ndarray:
    """Poisson rate of each slot: ``arrival_rate``, times the factor in business hours."""
    hours = hour_of_day(np.arange(slots), cfg.slots_per_day)
    start, end = cfg.business_hours
    busy = (hours >= start) & (hours < end)
    return np.where(busy, cfg.arrival_rate * cfg.business_hours_factor, cfg.arrival_rate)


def draw_demand_pairs(cfg: SpepConfig, net: Network, rng: np.random.Generator) -> np.ndarray:
    """Hot then medium node pairs: distinct, at least ``min_pair_hops`` apart where possible."""
    wanted = min(cfg.num_hot_pairs + cfg.num_medium_pairs, net.num_pairs)
    far = np.flatnonzero(net.static_hops >= cfg.min_pair_hops)
    near = np.flatnonzero(net.static_hops < cfg.min_pair_hops)
    chosen = rng.permutation(far)[:wanted]
    if len(chosen) < wanted:
        chosen = np.concatenate([chosen, rng.permutation(near)[: wanted - len(chosen)]])
    hot = min(cfg.num_hot_pairs, wanted)
    medium = wanted - hot
    share = cfg.hot_traffic_share if medium and hot else (1.0 if hot else 0.0)
    weights = np.where(np.arange(wanted) < hot, share / max(hot, 1), (1.0 - share) / max(medium, 1))
    nodes = net.pair_nodes[chosen]
    return np.column_stack([nodes[:, 0], nodes[:, 1], weights])


def generate(cfg: SpepConfig, net: Network, rng: np.random.Generator) -> Workload:
    """Draw the episode's requests; the draw order is fixed, so the seed alone decides them."""
    slots = cfg.episode_slots
    if cfg.demand_pairs is not None:
        pairs = np.array(cfg.demand_pairs, dtype=np.float64).reshape(-1, 3)
    else:
        pairs = draw_demand_pairs(cfg, net, rng)
    counts = rng.poisson(arrival_rates(cfg, slots))
    total = int(counts.sum())
    weights = pairs[:, 2] / pairs[:, 2].sum()
    which = rng.choice(len(pairs), size=total, p=weights)
    lo, hi = cfg.fidelity_req_range
    f_req = rng.uniform(lo, hi, size=total)
    d_lo, d_hi = cfg.deadline_range
    arrival = np.repeat(np.arange(slots), counts)
    deadline = arrival + rng.integers(d_lo, d_hi + 1, size=total)
    priority = rng.choice(np.asarray(cfg.priority_weights, dtype=np.float64), size=total)
    return _workload(
        net, arrival, pairs[which, 0], pairs[which, 1], f_req, deadline, priority, slots, pairs
    )


def _workload(
    net: Network,
    arrival: np.ndarray,
    source: np.ndarray,
    destination: np.ndarray,
    f_req: np.ndarray,
    deadline: np.ndarray,
    priority: np.ndarray,
    slots: int,
    pairs: np.ndarray,
) -> Workload:
    source = source.astype(np.int64)
    destination = destination.astype(np.int64)
    starts = np.searchsorted(arrival, np.arange(slots + 1), side="left")
    return Workload(
        arrival=arrival.astype(np.int64),
        source=source,
        destination=destination,
        F_req=f_req.astype(np.float64),
        deadline=deadline.astype(np.int64),
        priority=priority.astype(np.float64),
        pair=net.pair_index[source, destination],
        starts=starts,
        demand_pairs=pairs,
    )


@dataclass(frozen=True)
class Trace:
    """A recorded request list (CSV), parsed and checked once."""

    rows: np.ndarray  # (N, 6) float, columns TRACE_COLUMNS, sorted by slot (stable)

    @classmethod
    def load(cls, path: str | Path, num_nodes: int) -> Trace:
        """Parse ``path``; a bad row raises ``ValueError`` naming the line, column and value."""
        rows: list[list[float]] = []
        # utf-8-sig: a byte-order mark (as spreadsheet programs write) is not part of the header
        with open(path, newline="", encoding="utf-8-sig") as fh:
            try:
                lines = list(csv.reader(fh))
            except UnicodeDecodeError as err:
                raise ValueError(
                    f"config field 'trace' = {str(path)!r}: not UTF-8 text ({err.reason} at byte "
                    f"{err.start}): allowed a UTF-8 CSV file (save it as UTF-8, not UTF-16)"
                ) from None
        header = [h.strip() for h in (lines[0] if lines else [])]
        if tuple(header) != TRACE_COLUMNS:
            raise ValueError(
                f"config field 'trace' = {str(path)!r}: header is {','.join(header)!r}, "
                f"allowed exactly {','.join(TRACE_COLUMNS)!r}"
            )
        for line, row in enumerate(lines[1:], start=2):
            if not row or all(not c.strip() for c in row):
                continue
            rows.append(_parse_row(path, line, row, num_nodes))
        arr = np.array(rows, dtype=np.float64).reshape(-1, 6)
        order = np.argsort(arr[:, 0], kind="stable")
        return cls(arr[order])

    def workload(self, cfg: SpepConfig, net: Network) -> Workload:
        """The trace's requests within the episode, as a :class:`Workload` on ``net``."""
        rows = self.rows[self.rows[:, 0] < cfg.episode_slots]
        arrival = rows[:, 0].astype(np.int64)
        src, dst = rows[:, 1].astype(np.int64), rows[:, 2].astype(np.int64)
        empty = np.zeros((0, 3))
        return _workload(
            net,
            arrival,
            src,
            dst,
            rows[:, 3],
            rows[:, 4].astype(np.int64),
            rows[:, 5],
            cfg.episode_slots,
            empty,
        )


def _parse_row(path: str | Path, line: int, row: list[str], n: int) -> list[float]:
    def bad(col: str, value: object, allowed: str) -> ValueError:
        return ValueError(
            f"config field 'trace' = {str(path)!r}, line {line}, column {col!r} = {value!r}: "
            f"allowed {allowed}"
        )

    if len(row) != 6:
        raise bad("row", ",".join(row), "6 comma-separated values")
    values: list[float] = []
    for col, text, kind in zip(TRACE_COLUMNS, row, (int, int, int, float, int, float), strict=True):
        # Python's int() and float() also read other scripts' digits and underscores: not a CSV's
        if not text.isascii() or "_" in text:
            what = "an integer" if kind is int else "a number"
            raise bad(col, text, f"{what} written in ASCII (digits 0-9, no '_')")
        try:
            value = kind(text.strip())
        except ValueError:
            raise bad(col, text, "an integer" if kind is int else "a number") from None
        if kind is float and not math.isfinite(value):
            raise bad(col, text, "a finite number")
        if kind is int and abs(value) > MAX_TRACE_SLOT:
            raise bad(col, text, f"an integer of at most {MAX_TRACE_SLOT} (2**53)")
        values.append(value)
    slot, s, d, f_req, deadline, w = values
    if slot < 0:
        raise bad("slot", int(slot), "an integer >= 0")
    for col, node in (("source", s), ("destination", d)):
        if not 0 <= node < n:
            raise bad(col, int(node), f"a node id in 0..{n - 1}")
    if s == d:
        raise bad("destination", int(d), "a node other than the source")
    if not 0.0 <= f_req <= 1.0:
        raise bad("F_req", f_req, "a number in [0, 1]")
    if deadline < slot:
        raise bad("deadline", int(deadline), f"an absolute slot >= the arrival slot {int(slot)}")
    if not 0 < w <= MAX_PRIORITY_WEIGHT:
        raise bad(
            "priority",
            w,
            f"a number w with 0 < w <= {MAX_PRIORITY_WEIGHT:g} (sums of weights stay finite)",
        )
    return values
