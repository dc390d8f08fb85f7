"""The predictor interface and the count bookkeeping the predictors share.

Node pairs are unordered and indexed as everywhere in the project (``spep_gym.topology.pair_index``,
``numpy.triu_indices(n, 1)`` order), so that a demand vector is a flat ``(P,)`` array with
``P = n(n-1)/2``. Every predictor sees requests only through :meth:`Predictor.observe`, one call per
slot in increasing slot order, and so cannot read the future: the base class enforces the call order.
"""

from __future__ import annotations

import abc

import numpy as np

from spep_gym.topology import num_pairs
from spep_gym.workload import hour_of_day

__all__ = ["CountHistory", "HourlyRates", "Predictor"]


class Predictor(abc.ABC):
    """Demand predictor: learns from arrived requests, predicts window request probabilities.

    Subclasses implement :meth:`_reset`, :meth:`_observe` and :meth:`_predict`; this class checks
    the call order (slots strictly increasing, ``predict(t)`` only after ``observe(t)``) and fills
    skipped slots with empty observations, so subclasses see every slot from 0 on exactly once.
    """

    name: str = "base"

    def __init__(self) -> None:
        self.num_nodes = 0
        self.num_pairs = 0
        self.slots_per_day = 240
        self.prediction_window = 15
        self.seed: int | None = None
        self._last_slot = -1
        self._ready = False

    def reset(
        self,
        num_nodes: int,
        slots_per_day: int = 240,
        prediction_window: int = 15,
        seed: int | None = None,
    ) -> None:
        """Forget all history and start a new episode at slot 0.

        Args:
            num_nodes: Number of network nodes n; pairs are indexed 0..n(n-1)/2 - 1.
            slots_per_day: Slots in a simulated day (SPEC 1).
            prediction_window: W, predictions are for slots t+1..t+W.
            seed: Seed of the predictor's own random streams (training only); None draws fresh
                entropy.
        """
        if num_nodes < 2:
            raise ValueError(f"num_nodes must be at least 2, got {num_nodes}")
        if slots_per_day < 24:
            raise ValueError(f"slots_per_day must be at least 24, got {slots_per_day}")
        if prediction_window < 1:
            raise ValueError(f"prediction_window must be positive, got {prediction_window}")
        self.num_pairs = num_pairs(num_nodes)
        self.num_nodes = num_nodes
        self.slots_per_day = slots_per_day
        self.prediction_window = prediction_window
        self.seed = seed
        self._last_slot = -1
        self._ready = True
        self._reset()

    def observe(self, slot: int, pairs: np.ndarray) -> None:
        """Record the requests that arrived at ``slot`` (pair indices, repeats allowed)."""
        if not self._ready:
            raise RuntimeError(f"{type(self).__name__}: call reset() before observe()")
        if slot <= self._last_slot:
            raise ValueError(f"slots must increase: got {slot} after {self._last_slot}")
        arr = np.asarray(pairs, dtype=np.int64).reshape(-1)
        if arr.size and (arr.min() < 0 or arr.max() >= self.num_pairs):
            raise ValueError(f"pair indices must lie in [0, {self.num_pairs})")
        empty = np.zeros(0, dtype=np.int64)
        for skipped in range(self._last_slot + 1, slot):
            self._observe(skipped, empty)
        self._observe(slot, arr)
        self._last_slot = slot

    def predict(self, slot: int) -> np.ndarray:
        """Probability, per pair, of a request in slots ``slot+1 .. slot+W``; shape ``(P,)``."""
        if slot != self._last_slot:
            raise ValueError(
                f"predict({slot}) must follow observe({slot}); last observed slot is "
                f"{self._last_slot}"
            )
        out = np.asarray(self._predict(slot), dtype=np.float64)
        return np.clip(out, 0.0, 1.0)

    @abc.abstractmethod
    def _reset(self) -> None:
        """Clear per-episode state; the public fields are already set."""

    @abc.abstractmethod
    def _observe(self, slot: int, pairs: np.ndarray) -> None:
        """Record the slot's requests; called for every slot 0, 1, 2, ... exactly once."""

    @abc.abstractmethod
    def _predict(self, slot: int) -> np.ndarray:
        """Window probabilities after the slot's observation."""


class CountHistory:
    """Per-slot request counts of every pair, with O(1) window sums through cumulative sums.

    Keeps at least the last ``max_slots`` slots (None: all), at most ``2 * max_slots``: when the
    buffer is full the oldest slots beyond ``max_slots`` are dropped at once, so appends stay
    amortised O(P) and memory is bounded by ``2 * max_slots + 1`` rows of P counts. Windows reaching
    before slot 0 or before the kept history count as zero.
    """

    def __init__(self, num_pairs: int, max_slots: int | None = None) -> None:
        if max_slots is not None and max_slots < 1:
            raise ValueError(f"max_slots = {max_slots!r} is invalid: allowed None or an int >= 1")
        self.num_pairs = num_pairs
        self.max_slots = max_slots
        cap = 256 if max_slots is None else min(256, 2 * max_slots + 1)
        self._cum = np.zeros((cap + 1, num_pairs), dtype=np.int64)
        self._start = 0  # slot of row 0 of the cumulative buffer
        self._len = 0  # number of slots kept
        self.num_slots = 0  # slots appended since construction

    @property
    def nbytes(self) -> int:
        """Bytes of the count buffer."""
        return int(self._cum.nbytes)

    def append(self, pairs: np.ndarray) -> None:
        """Append the next slot's requests."""
        if self._len + 1 >= self._cum.shape[0]:
            self._make_room()
        row = self._cum[self._len + 1]
        row[:] = self._cum[self._len]
        if pairs.size:
            np.add.at(row, pairs, 1)
        self._len += 1
        self.num_slots += 1

    def _make_room(self) -> None:
        limit = self.max_slots
        if limit is not None and 2 * limit + 1 <= self._cum.shape[0] - 1:
            drop = self._len - limit  # keep exactly the last max_slots slots
            self._cum[: limit + 1] = self._cum[drop : self._len + 1] - self._cum[drop]
            self._start += drop
            self._len = limit
        else:
            rows = 2 * self._cum.shape[0]
            if limit is not None:
                rows = min(rows, 2 * limit + 2)
            grown = np.zeros((rows, self.num_pairs), dtype=np.int64)
            grown[: self._len + 1] = self._cum[: self._len + 1]
            self._cum = grown

    def window_sums(self, ends: np.ndarray, length: int) -> np.ndarray:
        """Counts per pair in slots ``(end - length, end]`` for each end; shape ``(len(ends), P)``."""
        ends = np.asarray(ends, dtype=np.int64)
        hi = np.clip(ends - self._start + 1, 0, self._len)
        lo = np.clip(ends - length - self._start + 1, 0, self._len)
        return self._cum[hi] - self._cum[lo]


class HourlyRates:
    """Request rate per pair and hour of day, and the Poisson window probability it implies.

    The rate of pair p in hour h is (requests of p in hour h) / (slots of hour h observed). The
    expected count in a window sums the rates of its slots, so a window crossing an hour boundary
    is handled exactly; ``1 - exp(-expected)`` is the Poisson probability of at least one request.
    This is the frequency estimate of a window probability that LSTM and ARIMA fall back on.
    """

    def __init__(self, num_pairs: int, slots_per_day: int) -> None:
        self.slots_per_day = slots_per_day
        self.counts = np.zeros((24, num_pairs), dtype=np.float64)
        self.slots = np.zeros(24, dtype=np.float64)
        self._hours = np.asarray(hour_of_day(np.arange(slots_per_day), slots_per_day))
        self._occupancy: dict[int, np.ndarray] = {}

    def add(self, slot: int, pairs: np.ndarray) -> None:
        """Count one observed slot and its requests."""
        h = int(hour_of_day(slot, self.slots_per_day))
        self.slots[h] += 1
        if pairs.size:
            np.add.at(self.counts[h], pairs, 1)

    def rates(self) -> np.ndarray:
        """Per-slot rate, shape ``(24, P)``; hours never observed get the overall rate."""
        total_slots = self.slots.sum()
        overall = self.counts.sum(axis=0) / max(total_slots, 1.0)
        seen = self.slots > 0
        out = np.empty_like(self.counts)
        out[seen] = self.counts[seen] / self.slots[seen, None]
        out[~seen] = overall
        return out

    def occupancy(self, length: int) -> np.ndarray:
        """Slots of each hour in the window of ``length`` slots from each slot of the day.

        Returns:
            ``(slots_per_day, 24)`` counts, cached per ``length``.
        """
        occ = self._occupancy.get(length)
        if occ is None:
            occ = np.zeros((self.slots_per_day, 24), dtype=np.float64)
            for s0 in range(self.slots_per_day):
                hours = self._hours[(s0 + np.arange(length)) % self.slots_per_day]
                np.add.at(occ[s0], hours, 1.0)
            self._occupancy[length] = occ
        return occ

    def expected(
        self, starts: np.ndarray, length: int, rates: np.ndarray | None = None
    ) -> np.ndarray:
        """Expected counts per pair in windows of ``length`` slots beginning at ``starts``."""
        r = self.rates() if rates is None else rates
        occ = self.occupancy(length)[np.asarray(starts) % self.slots_per_day]
        return occ @ r

    def window_probability(self, slot: int, window: int) -> np.ndarray:
        """Poisson probability of a request in slots ``slot+1 .. slot+window``, shape ``(P,)``."""
        lam = self.expected(np.array([slot + 1]), window)[0]
        return -np.expm1(-lam)
