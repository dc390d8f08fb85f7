"""What a batched step counts and records: the metrics table, the step's events, per-request records.

Also the per-network summaries read from them (``summary``, ``request_records``) and the memory
the simulator's tensors hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spep_gym.batched.state import (
    ECOL,
    INT_METRICS,
    MCOL,
    RCOL,
    BatchedState,
    BatchEvents,
    pick,
    row_take,
)
from spep_gym.metrics import FAILED, SERVED


def tally(
    sim: BatchedState,
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
        (sim.metric_table, [MCOL[k] for k in metric], list(metric.values())),
        (events.table, [ECOL[k] for k in event], list(event.values())),
    ):
        if not cols:
            continue
        width = table.shape[1]
        col = column_index(sim, tuple(cols))
        vals = torch.stack(
            [
                v.to(torch.float64)
                if isinstance(v, Tensor)
                else torch.full(b.shape, float(v), dtype=torch.float64, device=sim.device)
                for v in values
            ],
            dim=1,
        )
        table.view(-1).index_add_(0, (b[:, None] * width + col).reshape(-1), vals.reshape(-1))


def column_index(sim: BatchedState, cols: tuple[int, ...]) -> Tensor:
    """The columns ``cols`` as a cached int64 tensor on the device."""
    cache = sim._column_cache
    t = cache.get(cols)
    if t is None:
        t = cache[cols] = torch.tensor(cols, dtype=torch.int64, device=sim.device)
    return t


def count_one(
    sim: BatchedState, b: Tensor, name: str, events: BatchEvents, event: str | None = None
) -> None:
    """Add one to metric ``name`` and to the step's count ``event`` (default: the same name)."""
    tally(sim, b, events, {name: 1.0}, {event or name: 1.0})


def work_at(sim: BatchedState, name: str, b: Tensor, r: Tensor) -> Tensor:
    """Workload column ``name`` of requests ``r`` of networks ``b``."""
    col = sim.work[name]
    return pick(col, b, r)


def set_record(
    sim: BatchedState, b: Tensor, r: Tensor, name: str, value: Tensor | int | float
) -> None:
    """Set record column ``name`` of requests ``r`` of networks ``b``."""
    rec = sim.records
    N, C = rec.shape[1], rec.shape[2]
    pos = (b * N + r) * C + RCOL[name]
    rec.view(-1)[pos] = value.to(torch.float64) if isinstance(value, Tensor) else float(value)


def record_served(
    sim: BatchedState,
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
    t = sim.t.index_select(0, b).to(torch.float64)
    rec = sim.records
    N, C = rec.shape[1], rec.shape[2]
    row = (b * N + r) * C
    cols = column_index(
        sim, (RCOL["status"], RCOL["end_slot"], RCOL["fidelity"], RCOL["how"], RCOL["hops"])
    )
    hops_f = hops.to(torch.float64)
    how_f = how.to(torch.float64) if isinstance(how, Tensor) else torch.full_like(t, how)
    values = torch.stack([torch.full_like(t, SERVED), t, fidelity, how_f, hops_f], dim=1)
    rec.view(-1).index_copy_(0, (row[:, None] + cols).reshape(-1), values.reshape(-1))
    prio = work_at(sim, "priority", b, r)
    latency = t - work_at(sim, "arrival", b, r).to(torch.float64)
    counts: dict[str, Tensor | float] = {
        "served": 1.0,
        "latency_sum": latency,
        "pairs_delivered": hops_f,
    }
    sums: dict[str, Tensor | float] = {"fidelity_sum": fidelity}
    weights: dict[str, Tensor | float] = {"served_weight": prio}
    (counts if sim._exact_weights else sums).update(weights)
    tally(sim, b, events, counts, {"served": 1.0, **(weights if sim._exact_weights else {})})
    if k_of is None or b.numel() == 0:
        tally(sim, b, events, sums, {} if sim._exact_weights else weights)
        return
    for k in range(int(k_of.max()) + 1):  # float sums in the scalar's order
        at = torch.nonzero(k_of == k).flatten()
        part = {name: v[at] if isinstance(v, Tensor) else v for name, v in sums.items()}
        ev_part = {} if sim._exact_weights else {"served_weight": prio[at]}
        tally(sim, b[at], events, part, ev_part)


def fail_rows(sim: BatchedState, ids: Tensor, mask: Tensor, events: BatchEvents) -> None:
    """Fail the requests ``ids[b, j]`` where ``mask``, in column order (B, k)."""
    rows, cols = torch.nonzero(mask, as_tuple=True)
    r = ids[rows, cols]
    set_record(sim, rows, r, "status", FAILED)
    set_record(sim, rows, r, "end_slot", sim.t.index_select(0, rows))
    n = mask.sum(dim=1)
    sim.metrics["failed"] += n
    events.failed += n
    prio = row_take(sim.work["priority"], ids)
    if sim._exact_weights:
        total = torch.where(mask, prio, 0.0).sum(dim=1)
        sim.metrics["failed_weight"] += total
        events.failed_weight += total
        return
    for j in range(ids.shape[1]):  # sums in event order, as the scalar adds them
        add = torch.where(mask[:, j], prio[:, j], 0.0)
        sim.metrics["failed_weight"] += add
        events.failed_weight += add


def record_failed(sim: BatchedState, b: Tensor, r: Tensor, events: BatchEvents) -> None:
    """Record requests ``r`` of networks ``b`` (distinct) as failed now."""
    set_record(sim, b, r, "status", FAILED)
    set_record(sim, b, r, "end_slot", sim.t.index_select(0, b))
    prio = work_at(sim, "priority", b, r)
    tally(sim, b, events, {"failed": 1.0, "failed_weight": prio})


def summary(sim: BatchedState) -> dict[str, Tensor]:
    """Per network (B,): every key of ``Metrics.summary()``; rates NaN where undefined.

    Counters are int64 (float64 for the sums), rates float64, computed as the scalar divides.
    """
    f = {k: sim.metric_table[:, i] for k, i in MCOL.items()}
    out: dict[str, Tensor] = {
        k: (v.to(torch.int64) if k in INT_METRICS else v.clone()) for k, v in f.items()
    }
    nan = torch.tensor(torch.nan, dtype=torch.float64, device=sim.device)

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


def request_records(sim: BatchedState, b: int) -> dict[str, np.ndarray]:
    """Per-request records of network ``b`` as ``Simulator.request_records`` lists them."""
    n = int((sim.work["arrival"][b] < (1 << 40)).sum())
    w = {k: v[b, :n].cpu().numpy() for k, v in sim.work.items()}
    rec = sim.records[b, :n].cpu().numpy()
    dtypes = {"status": np.int8, "how": np.int8, "fidelity": np.float64}
    return {
        "id": np.arange(n),
        "source": w["source"],
        "destination": w["destination"],
        "arrival": w["arrival"],
        "F_req": w["F_req"],
        "deadline": w["deadline"],
        "priority": w["priority"],
        **{k: rec[:, i].astype(dtypes.get(k, np.int64)) for k, i in RCOL.items()},
    }


def memory_bytes(sim: BatchedState) -> int:
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

    for value in vars(sim).values():
        add(value)
    for value in vars(sim.tables).values():
        add(value)
    return total
