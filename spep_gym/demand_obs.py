"""Long-run demand in the observation: the keys ``demand_ema`` and ``demand_by_hour`` (opt-in).

Both are computed from the requests already arrived (no future), folded in at each decision point:

* ``demand_ema`` (H, P), with ``demand_ema_half_lives = (h_1, ..., h_H)``: row i is, per node pair,
  the mean requests per slot with exponential weights of half-life ``h_i`` slots,
  ``m = e / w`` where ``e <- d e + (1 - d) a`` (``a`` the slot's arrivals), ``w <- d w + (1 - d)``
  and ``d = 2 ** (-1 / h_i)``, from slot 0 (``w`` removes the start's bias: the first slot's mean
  is its arrivals, not a fraction of them).
* ``demand_by_hour`` (24, P), with ``demand_hour_obs``: per node pair, the requests that arrived in
  each hour of day so far (hours as the workload defines them,
  :func:`spep_gym.workload.hour_of_day`); row k is the hour k hours after the current one, so row
  0 is the current hour and row 1 the next.

The scalar env uses :class:`DemandStats`; the batched core its torch twin in
:mod:`spep_gym.batched.demand_obs`, equal to it bit for bit (the same float64 operations).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from spep_gym.config import SpepConfig
from spep_gym.workload import hour_of_day

#: Upper bound of both keys (counts are clipped there, as ``demand``'s).
DEMAND_MAX = 1e6
HOURS = 24


def enabled(cfg: SpepConfig) -> bool:
    """True when ``cfg`` asks for any long-run demand key."""
    return bool(cfg.demand_ema_half_lives) or cfg.demand_hour_obs


def decays(cfg: SpepConfig) -> np.ndarray:
    """(H,) float64: the per-slot decay ``2 ** (-1 / h)`` of each half-life ``h``."""
    return np.array([2.0 ** (-1.0 / h) for h in cfg.demand_ema_half_lives], dtype=np.float64)


def observation_spaces(cfg: SpepConfig, num_pairs: int) -> dict[str, spaces.Box]:
    """The Box of each long-run demand key ``cfg`` asks for, in observation order."""
    out: dict[str, spaces.Box] = {}
    if cfg.demand_ema_half_lives:
        shape = (len(cfg.demand_ema_half_lives), num_pairs)
        out["demand_ema"] = spaces.Box(0.0, DEMAND_MAX, shape, np.float32)
    if cfg.demand_hour_obs:
        out["demand_by_hour"] = spaces.Box(0.0, DEMAND_MAX, (HOURS, num_pairs), np.float32)
    return out


class DemandStats:
    """The long-run demand of one episode (the scalar env's): :meth:`update` each slot."""

    def __init__(self, cfg: SpepConfig, num_pairs: int) -> None:
        self.cfg = cfg
        self.decay = decays(cfg)[:, None]  # (H, 1)
        H = len(cfg.demand_ema_half_lives)
        self.ema = np.zeros((H, num_pairs))
        self.weight = np.zeros((H, 1))
        self.by_hour = np.zeros((HOURS, num_pairs), np.float32)

    def reset(self) -> None:
        """Forget every request: a new episode."""
        self.ema[:] = 0.0
        self.weight[:] = 0.0
        self.by_hour[:] = 0.0

    def update(self, arrivals: np.ndarray, t: int) -> None:
        """Fold in ``arrivals`` ((P,) requests per node pair) of slot ``t``."""
        d = self.decay
        self.ema = d * self.ema + (1.0 - d) * arrivals.astype(np.float64)
        self.weight = d * self.weight + (1.0 - d)
        self.by_hour[int(hour_of_day(t, self.cfg.slots_per_day))] += arrivals

    def observe(self, t: int) -> dict[str, np.ndarray]:
        """The keys at the decision point of slot ``t`` (copies)."""
        out = {}
        if self.cfg.demand_ema_half_lives:
            mean = np.divide(
                self.ema, self.weight, out=np.zeros_like(self.ema), where=self.weight > 0
            )
            out["demand_ema"] = np.minimum(mean, DEMAND_MAX).astype(np.float32)
        if self.cfg.demand_hour_obs:
            hour = int(hour_of_day(t, self.cfg.slots_per_day))
            out["demand_by_hour"] = np.minimum(np.roll(self.by_hour, -hour, axis=0), DEMAND_MAX)
        return out
