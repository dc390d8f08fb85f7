"""Basic frequency predictor (paper eq. 3, SPEC 8)."""

from __future__ import annotations

from collections import deque

import numpy as np

from agents.predictors.base import Predictor
from spep_gym.workload import hour_of_day

__all__ = ["FrequencyPredictor"]


class FrequencyPredictor(Predictor):
    """Share of demand per node pair in the current hour of day: ``N(s,d,b) / N_total(b)``.

    For the hour bucket ``b`` of the current slot, ``N(s,d,b)`` counts the requests of pair (s,d)
    that arrived in hour ``b`` of any day so far and ``N_total(b)`` all requests that arrived in
    hour ``b``. With no request in that hour yet, every probability is 0.

    Eq. 3 is a share of demand: its values sum to 1 over the pairs and do not depend on how busy
    the hour is, so it is not the probability of a request within the prediction window. SPEC 8
    fixes the predictor to eq. 3 as written, and Algorithm 2 thresholds it as such; the LSTM and
    ARIMA predictors estimate the window probability proper.

    Cost: O(number of requests) per observe and O(P) per predict (one division), with counts kept
    incrementally; the history window is a queue of the requests still inside it.

    Args:
        history_slots: Count only the requests of the last ``history_slots`` slots (the current
            one included); None counts all history (the SPEC default).
    """

    name = "frequency"

    def __init__(self, history_slots: int | None = None) -> None:
        super().__init__()
        if history_slots is not None and history_slots < 1:
            raise ValueError(f"history_slots must be positive or None, got {history_slots}")
        self.history_slots = history_slots
        self._counts = np.zeros((24, 0), dtype=np.int64)
        self._totals = np.zeros(24, dtype=np.int64)
        self._window: deque[tuple[int, int, np.ndarray]] = deque()

    def _reset(self) -> None:
        self._counts = np.zeros((24, self.num_pairs), dtype=np.int64)
        self._totals = np.zeros(24, dtype=np.int64)
        self._window.clear()

    def _observe(self, slot: int, pairs: np.ndarray) -> None:
        if pairs.size:
            b = int(hour_of_day(slot, self.slots_per_day))
            np.add.at(self._counts[b], pairs, 1)
            self._totals[b] += pairs.size
            if self.history_slots is not None:
                self._window.append((slot, b, pairs))
        if self.history_slots is not None:
            oldest_kept = slot - self.history_slots + 1
            while self._window and self._window[0][0] < oldest_kept:
                _, b_old, old = self._window.popleft()
                np.subtract.at(self._counts[b_old], old, 1)
                self._totals[b_old] -= old.size

    def _predict(self, slot: int) -> np.ndarray:
        b = int(hour_of_day(slot, self.slots_per_day))
        total = self._totals[b]
        if total == 0:
            return np.zeros(self.num_pairs, dtype=np.float64)
        return self._counts[b] / float(total)
