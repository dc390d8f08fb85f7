"""Per-run metrics (SPEC section 6): running counters plus per-request records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Request status codes in the per-request records (IN_FLIGHT: its swap's outcome is on its way).
NOT_ARRIVED, QUEUED, SERVED, FAILED, IN_FLIGHT = 0, 1, 2, 3, 4
# How a request was served.
ON_DEMAND, PREPOSITIONED = 1, 2
STATUS_NAMES = {
    NOT_ARRIVED: "not_arrived",
    QUEUED: "pending",
    SERVED: "served",
    FAILED: "failed",
    IN_FLIGHT: "in_flight",
}
HOW_NAMES = {0: "", ON_DEMAND: "on_demand", PREPOSITIONED: "prepositioned"}


@dataclass
class Metrics:
    """Counters of one run; every derived rate is computed from them."""

    arrived: int = 0
    served: int = 0
    failed: int = 0
    served_prepositioned: int = 0
    latency_sum: float = 0.0
    fidelity_sum: float = 0.0
    pairs_generated: int = 0
    pairs_consumed: int = 0  # by pre-positioning or on-demand service, swap losses included
    pairs_expired: int = 0
    pairs_replaced: int = 0  # stored pairs a new pair replaced (link_pool_policy "replace_oldest")
    pairs_delivered: int = 0  # link pairs that ended in a delivered end-to-end pair
    prepositions_placed: int = 0
    prepositions_used: int = 0
    prepositions_expired: int = 0
    swap_failures: int = 0
    queue_overflow: int = 0  # arrivals rejected by a full queue (queue_capacity); they failed
    served_weight: float = 0.0
    failed_weight: float = 0.0
    # State (signalling_latency > 0): swaps whose outcome has not reached the end nodes yet.
    requests_in_flight: int = 0  # on-demand deliveries on their way (their requests are pending)
    prepositions_in_flight: int = 0  # pre-positions placed, not yet usable (they count toward K)

    @property
    def pending(self) -> int:
        """Requests arrived but neither served nor failed yet."""
        return self.arrived - self.served - self.failed

    def summary(self) -> dict[str, Any]:
        """The counters and the section-6 rates (None where undefined, e.g. nothing served).

        None rather than NaN keeps infos comparable with ``==`` (determinism checks); pandas reads it
        as NaN.
        """
        out: dict[str, Any] = dict(vars(self))  # the fields are scalars: no deep copy (asdict)
        out["pending"] = self.pending
        done = self.served + self.failed
        out["success_rate"] = self.served / done if done else None
        out["avg_latency"] = self.latency_sum / self.served if self.served else None
        out["avg_fidelity"] = self.fidelity_sum / self.served if self.served else None
        out["utilization"] = (
            self.pairs_delivered / self.pairs_generated if self.pairs_generated else None
        )
        placed = self.prepositions_placed
        out["preposition_hit_rate"] = (
            self.served_prepositioned / self.served if self.served else None
        )
        out["preposition_use_rate"] = self.prepositions_used / placed if placed else None
        out["preposition_waste_rate"] = self.prepositions_expired / placed if placed else None
        return out


def empty_records(n: int) -> dict[str, np.ndarray]:
    """Outcome columns of the per-request records, filled in as the episode runs."""
    return {
        "status": np.zeros(n, dtype=np.int8),
        "dispatch_slot": np.full(
            n, -1, dtype=np.int64
        ),  # last on-demand swap sent for it; -1: none
        "end_slot": np.full(n, -1, dtype=np.int64),
        "fidelity": np.full(n, np.nan),
        "how": np.zeros(n, dtype=np.int8),
        "hops": np.zeros(n, dtype=np.int64),
    }
