"""Prediction quality against the true future, and a periodic synthetic workload for tests."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.predictors.base import Predictor
from spep_gym.topology import num_pairs
from spep_gym.workload import hour_of_day

__all__ = [
    "prediction_quality",
    "synthetic_bursty_arrivals",
    "synthetic_periodic_arrivals",
    "window_truth",
]


def synthetic_periodic_arrivals(
    num_nodes: int,
    slots: int,
    seed: int,
    slots_per_day: int = 240,
    num_active_pairs: int = 4,
    active_hours: int = 6,
    peak_rate: float = 0.15,
    background_rate: float = 0.02,
) -> np.ndarray:
    """Strongly periodic Poisson demand: a few pairs, each busy only in its own hours of the day.

    Pair i of ``num_active_pairs`` (drawn at random) receives ``peak_rate`` requests per slot in
    ``active_hours`` consecutive hours starting at hour ``offset + 24 i / num_active_pairs`` (the
    offset drawn at random), and none otherwise; ``background_rate`` requests per slot go to pairs
    drawn uniformly from all pairs. The defaults average 0.17 requests per slot.

    Returns:
        int64 array ``(N, 2)`` of rows ``(slot, pair_index)`` in slot order.
    """
    rng = np.random.default_rng(seed)
    p = num_pairs(num_nodes)
    active = rng.choice(p, size=min(num_active_pairs, p), replace=False)
    offset = int(rng.integers(24))
    t = np.arange(slots)
    hour = hour_of_day(t, slots_per_day)
    rows = []
    for i, pair in enumerate(active):
        start = (offset + i * 24 // len(active)) % 24
        busy = (hour - start) % 24 < active_hours
        n = rng.poisson(peak_rate * busy)
        rows.append(np.stack([np.repeat(t, n), np.full(n.sum(), pair)], axis=1))
    n_bg = rng.poisson(background_rate, size=slots)
    bg_slots = np.repeat(t, n_bg)
    rows.append(np.stack([bg_slots, rng.integers(p, size=bg_slots.size)], axis=1))
    out = np.concatenate(rows).astype(np.int64)
    return out[np.argsort(out[:, 0], kind="stable")]


def synthetic_bursty_arrivals(
    num_nodes: int,
    slots: int,
    seed: int,
    num_active_pairs: int = 4,
    mean_on_slots: float = 40.0,
    mean_off_slots: float = 80.0,
    peak_rate: float = 0.3,
    background_rate: float = 0.02,
) -> np.ndarray:
    """Bursty Poisson demand with no daily cycle: a few pairs switch on and off at random.

    Each of ``num_active_pairs`` pairs (drawn at random) alternates between bursts of
    ``peak_rate`` requests per slot and silences, of geometric lengths with means
    ``mean_on_slots`` and ``mean_off_slots``, whatever the time of day; ``background_rate``
    requests per slot go to pairs drawn uniformly. An hour-of-day profile (:class:`HourlyRates`)
    cannot foresee a burst, while recent counts do: a predictor that learns from them must beat the
    profile here.

    Returns:
        int64 array ``(N, 2)`` of rows ``(slot, pair_index)`` in slot order.
    """
    rng = np.random.default_rng(seed)
    p = num_pairs(num_nodes)
    active = rng.choice(p, size=min(num_active_pairs, p), replace=False)
    t = np.arange(slots)
    rows = []
    for pair in active:
        on = np.zeros(slots, dtype=bool)
        state = bool(rng.random() < mean_on_slots / (mean_on_slots + mean_off_slots))
        i = 0
        while i < slots:
            length = int(rng.geometric(1.0 / (mean_on_slots if state else mean_off_slots)))
            on[i : i + length] = state
            i += length
            state = not state
        n = rng.poisson(peak_rate * on)
        rows.append(np.stack([np.repeat(t, n), np.full(n.sum(), pair)], axis=1))
    n_bg = rng.poisson(background_rate, size=slots)
    bg_slots = np.repeat(t, n_bg)
    rows.append(np.stack([bg_slots, rng.integers(p, size=bg_slots.size)], axis=1))
    out = np.concatenate(rows).astype(np.int64)
    return out[np.argsort(out[:, 0], kind="stable")]


def window_truth(
    arrivals: np.ndarray, num_pairs: int, slots: int, prediction_window: int
) -> np.ndarray:
    """``(slots, P)`` bool: was pair p requested in slots t+1..t+W (arrivals beyond count too)."""
    horizon = slots + prediction_window + 1
    counts = np.zeros((horizon, num_pairs), dtype=np.int64)
    inside = arrivals[arrivals[:, 0] < horizon]
    np.add.at(counts, (inside[:, 0], inside[:, 1]), 1)
    cum = np.concatenate([np.zeros((1, num_pairs), dtype=np.int64), np.cumsum(counts, axis=0)])
    t = np.arange(slots)
    return (cum[t + prediction_window + 1] - cum[t + 1]) > 0


def prediction_quality(
    predictor: Predictor,
    arrivals: Sequence[Sequence[int]] | np.ndarray,
    num_nodes: int,
    slots: int,
    slots_per_day: int = 240,
    prediction_window: int = 15,
    top_k: int = 4,
    seed: int | None = 0,
    warmup_slots: int = 0,
) -> dict[str, Any]:
    """Run ``predictor`` over ``slots`` slots (observe, then predict) and score it.

    Scores are over slots ``warmup_slots <= t`` whose window t+1..t+W ends before ``slots`` (so
    the truth is fully known from the arrivals given), against truth = "pair requested in the
    window". ``base_rate`` is the mean truth, and ``brier_constant`` / ``mae_constant`` score the
    constant predictor that always says ``base_rate`` (a reference a useful predictor must beat).

    Returns:
        dict with mae, brier, precision_at_k (mean over scored slots of the share of the top-K
        pairs that were requested), base_rate, mae_constant, brier_constant, scored_slots,
        wall_s (observe + predict, all slots) and seconds_per_slot.
    """
    arr = np.asarray(arrivals, dtype=np.int64).reshape(-1, 2)
    if arr.size and np.any(np.diff(arr[:, 0]) < 0):
        raise ValueError("arrivals must be in slot order")
    p = num_pairs(num_nodes)
    predictor.reset(num_nodes, slots_per_day, prediction_window, seed)
    bounds = np.searchsorted(arr[:, 0], np.arange(slots + 1))
    preds = np.empty((slots, p), dtype=np.float64)
    start = time.perf_counter()
    for t in range(slots):
        predictor.observe(t, arr[bounds[t] : bounds[t + 1], 1])
        preds[t] = predictor.predict(t)
    wall = time.perf_counter() - start
    truth = window_truth(arr, p, slots, prediction_window)
    scored = slice(warmup_slots, max(warmup_slots, slots - prediction_window))
    pr, tr = preds[scored], truth[scored].astype(np.float64)
    if len(pr) == 0:
        raise ValueError("no slot to score: increase slots or lower warmup_slots")
    k = min(top_k, p)
    top = np.argsort(-pr, axis=1, kind="stable")[:, :k]
    base = float(tr.mean())
    return {
        "mae": float(np.abs(pr - tr).mean()),
        "brier": float(((pr - tr) ** 2).mean()),
        "precision_at_k": float(np.take_along_axis(tr, top, axis=1).mean()),
        "base_rate": base,
        "mae_constant": float(np.abs(base - tr).mean()),
        "brier_constant": float(((base - tr) ** 2).mean()),
        "scored_slots": len(pr),
        "wall_s": wall,
        "seconds_per_slot": wall / slots,
    }
