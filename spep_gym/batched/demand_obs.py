"""The batched core's long-run demand keys: :class:`spep_gym.demand_obs.DemandStats` for B networks.

The same float64 operations in the same order, so the keys equal the scalar env's bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from spep_gym.config import SpepConfig
from spep_gym.demand_obs import DEMAND_MAX, HOURS, decays, enabled


class BatchedDemandStats:
    """Per network: the exponential means and the hourly counts of the requests arrived so far."""

    def __init__(
        self, cfg: SpepConfig, num_envs: int, num_pairs: int, device: torch.device
    ) -> None:
        self.cfg = cfg
        self.num_pairs = P = num_pairs
        f64: dict[str, Any] = {"dtype": torch.float64, "device": device}
        self.decay = torch.tensor(decays(cfg), **f64)[None, :, None]  # (1, H, 1)
        H = len(cfg.demand_ema_half_lives)
        self.ema = torch.zeros((num_envs, H, P), **f64)
        self.weight = torch.zeros((num_envs, H, 1), **f64)
        self.by_hour = torch.zeros((num_envs, HOURS, P), dtype=torch.float32, device=device)
        self._rows = torch.arange(num_envs, device=device)

    def reset(self, rows: Tensor) -> None:
        """Forget the requests of networks ``rows``: new episodes."""
        for x in (self.ema, self.weight, self.by_hour):
            x[rows] = 0.0

    def update(self, arrivals: Tensor, t: Tensor, live: Tensor | None) -> None:
        """Fold in ``arrivals`` ((B, >= P) float32) of each network's slot ``t`` (where ``live``)."""
        a = arrivals[:, None, : self.num_pairs].to(torch.float64)
        d = self.decay
        ema = d * self.ema + (1.0 - d) * a
        weight = d * self.weight + (1.0 - d)
        hour = (t % self.cfg.slots_per_day) * HOURS // self.cfg.slots_per_day
        if live is None:
            self.ema, self.weight = ema, weight
            self.by_hour[self._rows, hour] += arrivals[:, : self.num_pairs]
            return
        self.ema = torch.where(live[:, None, None], ema, self.ema)
        self.weight = torch.where(live[:, None, None], weight, self.weight)
        rows = torch.nonzero(live).flatten()
        self.by_hour[rows, hour[rows]] += arrivals[rows, : self.num_pairs]

    def observe(self, t: Tensor) -> dict[str, Tensor]:
        """The keys at each network's decision point of slot ``t``, (B, H, P) and (B, 24, P)."""
        out = {}
        if self.cfg.demand_ema_half_lives:
            w = self.weight
            mean = torch.where(w > 0, self.ema / torch.where(w > 0, w, 1.0), 0.0)
            out["demand_ema"] = mean.clamp(max=DEMAND_MAX).to(torch.float32)
        if self.cfg.demand_hour_obs:
            hour = (t % self.cfg.slots_per_day) * HOURS // self.cfg.slots_per_day
            order = (hour[:, None] + torch.arange(HOURS, device=t.device)) % HOURS
            rolled = self.by_hour.gather(1, order[:, :, None].expand_as(self.by_hour))
            out["demand_by_hour"] = rolled.clamp(max=DEMAND_MAX)
        return out


def make(
    cfg: SpepConfig, num_envs: int, num_pairs: int, device: torch.device
) -> BatchedDemandStats | None:
    """The stats ``cfg`` asks for, or None (no long-run demand key)."""
    return BatchedDemandStats(cfg, num_envs, num_pairs, device) if enabled(cfg) else None
