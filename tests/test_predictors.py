"""Tests of the demand predictors: indexing, eq. 3 by hand, learning, no leakage, persistence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.predictors import (
    FrequencyPredictor,
    Predictor,
    hour_of_day,
    make_predictor,
    num_pairs,
    pair_index,
    prediction_quality,
    synthetic_periodic_arrivals,
)
from agents.predictors.base import CountHistory, HourlyRates
from agents.predictors.quality import window_truth

# Small but real settings: sequences of 8 x 15 slots, first trained after a day of labels (slot 373).
FAST_LSTM: dict[str, Any] = {"seq_len": 8, "retrain_interval": 120}
FAST_ARIMA: dict[str, Any] = {"refit_interval": 120, "max_pair_fits": 4}


def run_stream(predictor: Predictor, arrivals: np.ndarray, n: int, slots: int) -> np.ndarray:
    """Observe then predict every slot; the ``(slots, P)`` predictions."""
    predictor.reset(n, seed=3)
    bounds = np.searchsorted(arrivals[:, 0], np.arange(slots + 1))
    out = np.empty((slots, num_pairs(n)))
    for t in range(slots):
        predictor.observe(t, arrivals[bounds[t] : bounds[t + 1], 1])
        out[t] = predictor.predict(t)
    return out


# --- indexing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 5, 16, 23])
def test_pair_index_is_the_triu_bijection(n: int) -> None:
    rows, cols = np.triu_indices(n, 1)
    assert num_pairs(n) == len(rows)
    for k, (i, j) in enumerate(zip(rows, cols, strict=True)):
        assert pair_index(int(i), int(j), n) == k
        assert pair_index(int(j), int(i), n) == k


def test_pair_index_rejects_bad_pairs() -> None:
    for bad in [(1, 1), (-1, 2), (0, 4)]:
        with pytest.raises(ValueError):
            pair_index(*bad, 4)


def test_hour_of_day_follows_spec() -> None:
    assert [hour_of_day(t, 240) for t in (0, 9, 10, 95, 239, 240)] == [0, 0, 1, 9, 23, 0]


# --- frequency (eq. 3) --------------------------------------------------------------------------


def hand_history(predictor: Predictor) -> None:
    """4 nodes (6 pairs), 48 slots a day (2 slots an hour); requests at slots 0, 1, 2 and 48."""
    predictor.reset(4, slots_per_day=48)
    predictor.observe(0, np.array([0, 0, 2]))  # hour 0
    predictor.observe(1, np.array([2]))  # hour 0
    predictor.observe(2, np.array([5]))  # hour 1
    predictor.observe(48, np.array([0]))  # hour 0 of day 2


def test_frequency_matches_eq3_by_hand() -> None:
    p = FrequencyPredictor()
    hand_history(p)
    # Hour 0 so far: pair 0 three times, pair 2 twice, 5 requests in all.
    np.testing.assert_allclose(p.predict(48), [3 / 5, 0, 2 / 5, 0, 0, 0])
    p.observe(50, np.zeros(0, dtype=np.int64))  # hour 1: only pair 5 was ever requested
    np.testing.assert_allclose(p.predict(50), [0, 0, 0, 0, 0, 1])
    p.observe(52, np.zeros(0, dtype=np.int64))  # hour 2: no history -> zeros
    np.testing.assert_array_equal(p.predict(52), np.zeros(6))


def test_frequency_history_window() -> None:
    p = FrequencyPredictor(history_slots=2)
    hand_history(p)
    np.testing.assert_allclose(p.predict(48), [1, 0, 0, 0, 0, 0])  # only slots 47..48 count
    p = FrequencyPredictor(history_slots=48)
    hand_history(p)
    np.testing.assert_allclose(p.predict(48), [1 / 2, 0, 1 / 2, 0, 0, 0])  # slots 1..48


def test_frequency_zero_history_is_zero() -> None:
    p = make_predictor("frequency")
    p.reset(5)
    p.observe(0, np.zeros(0, dtype=np.int64))
    out = p.predict(0)
    assert out.dtype == np.float64 and out.shape == (10,) and not out.any()


# --- interface ----------------------------------------------------------------------------------


def test_call_order_is_enforced() -> None:
    p = FrequencyPredictor()
    with pytest.raises(RuntimeError):
        p.observe(0, np.zeros(0, dtype=np.int64))
    p.reset(4)
    p.observe(0, np.array([1]))
    with pytest.raises(ValueError):
        p.predict(1)  # slot 1 not observed yet
    with pytest.raises(ValueError):
        p.observe(0, np.array([1]))  # not increasing
    with pytest.raises(ValueError):
        p.observe(1, np.array([6]))  # no such pair


def test_registry_and_lazy_imports() -> None:
    with pytest.raises(ValueError, match="unknown predictor"):
        make_predictor("prophet")
    code = (
        "import sys, agents.predictors as ap; p = ap.make_predictor('frequency');"
        "assert 'torch' not in sys.modules and 'statsmodels' not in sys.modules"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_count_history_windows_and_trimming() -> None:
    h = CountHistory(3, max_slots=8)
    for t in range(40):
        h.append(np.array([t % 3, 0]))
    # slots 37..39 requested pairs 1, 2, 0 once each, plus pair 0 in every slot
    np.testing.assert_array_equal(h.window_sums(np.array([39]), 3), [[4, 1, 1]])
    np.testing.assert_array_equal(h.window_sums(np.array([39]), 1), [[2, 0, 0]])


def test_hourly_rates_window_crosses_hours() -> None:
    r = HourlyRates(1, slots_per_day=48)  # 2 slots an hour
    for t in range(48):
        r.add(t, np.array([0]) if hour_of_day(t, 48) == 1 else np.zeros(0, dtype=np.int64))
    # window of 3 slots from slot 1: one slot of hour 0, two of hour 1 (rate 1)
    np.testing.assert_allclose(r.expected(np.array([1]), 3), [[2.0]])
    np.testing.assert_allclose(r.window_probability(0, 3), [1 - np.exp(-2.0)])


def test_window_truth() -> None:
    arrivals = np.array([[2, 0], [5, 1]])
    truth = window_truth(arrivals, 2, 6, 2)
    assert truth[:, 0].tolist() == [True, True, False, False, False, False]
    assert truth[:, 1].tolist() == [False, False, False, True, True, False]


def test_synthetic_arrivals_are_seeded_and_periodic() -> None:
    a = synthetic_periodic_arrivals(8, 960, seed=5)
    np.testing.assert_array_equal(a, synthetic_periodic_arrivals(8, 960, seed=5))
    assert np.all(np.diff(a[:, 0]) >= 0) and 0.1 < len(a) / 960 < 0.25
    pairs, counts = np.unique(a[:, 1], return_counts=True)
    busy = pairs[np.argmax(counts)]
    hours = hour_of_day(a[a[:, 1] == busy, 0], 240)
    assert len(np.unique(hours)) <= 6 + 4  # its own 6 hours, plus a few background requests


# --- learning and leakage -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs"), [("lstm", FAST_LSTM), ("arima", FAST_ARIMA), ("frequency", {})]
)
def test_learns_periodic_demand_better_than_constant(name: str, kwargs: dict[str, Any]) -> None:
    n, slots = 8, 720  # three days
    arrivals = synthetic_periodic_arrivals(n, slots, seed=11)
    q = prediction_quality(make_predictor(name, **kwargs), arrivals, n, slots, warmup_slots=400)
    if name != "frequency":  # eq. 3 is a share, not a window probability: no Brier claim
        assert q["brier"] < 0.9 * q["brier_constant"]
    assert q["mae"] < q["mae_constant"]
    assert q["precision_at_k"] > 2 * q["base_rate"]


def test_lstm_actually_trains() -> None:
    from agents.predictors.lstm import LSTMPredictor

    n, slots = 8, 400
    p = LSTMPredictor(**FAST_LSTM)
    arrivals = synthetic_periodic_arrivals(n, slots, seed=2)
    preds = run_stream(p, arrivals, n, slots)
    assert p.trained and p.trainings >= 1
    assert preds.min() >= 0.0 and preds.max() <= 1.0


@pytest.mark.parametrize("idle_share", [0.0, 0.9, 1.0])
def test_unique_rows_is_numpys_unique(idle_share: float) -> None:
    """The LSTM's merge of identical inputs: np.unique's rows, order, inverse and counts."""
    from agents.predictors.lstm import unique_rows

    rng = np.random.default_rng(5)
    anchor = rng.integers(4, size=300)
    counts = rng.integers(3, size=(300, 6)) * (rng.random(300) >= idle_share)[:, None]
    rows = np.concatenate([anchor[:, None], counts], axis=1)
    same = np.where(counts.any(axis=1), -1, anchor)
    want = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    got = unique_rows(rows, same)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1].reshape(-1))
    np.testing.assert_array_equal(got[2], want[2])


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("frequency", {}),
        ("frequency", {"history_slots": 50}),
        ("lstm", FAST_LSTM),
        ("arima", FAST_ARIMA),
    ],
)
def test_no_predictor_sees_the_future(name: str, kwargs: dict[str, Any]) -> None:
    n, slots, t_split = 8, 500, 400
    a = synthetic_periodic_arrivals(n, slots, seed=4)
    b = synthetic_periodic_arrivals(n, slots, seed=9)
    mixed = np.concatenate([a[a[:, 0] <= t_split], b[b[:, 0] > t_split]])
    pa = run_stream(make_predictor(name, **kwargs), a, n, slots)
    pm = run_stream(make_predictor(name, **kwargs), mixed, n, slots)
    np.testing.assert_array_equal(pa[: t_split + 1], pm[: t_split + 1])
    assert not np.array_equal(pa[t_split + 1 :], pm[t_split + 1 :])  # the streams do differ


def test_same_seed_same_predictions() -> None:
    n, slots = 8, 420
    arrivals = synthetic_periodic_arrivals(n, slots, seed=6)
    first = run_stream(make_predictor("lstm", **FAST_LSTM), arrivals, n, slots)
    second = run_stream(make_predictor("lstm", **FAST_LSTM), arrivals, n, slots)
    np.testing.assert_array_equal(first, second)


def test_saved_lstm_loads_weights_only_and_predicts_the_same(tmp_path: Path) -> None:
    import torch

    from agents.predictors.lstm import LSTMPredictor

    n, slots = 8, 460
    arrivals = synthetic_periodic_arrivals(n, slots, seed=8)
    trained = LSTMPredictor(**FAST_LSTM)
    before = run_stream(trained, arrivals, n, slots)
    assert trained.trained
    path = tmp_path / "lstm.pt"
    trained.save(path)
    data = torch.load(path, weights_only=True)
    assert set(data) == {"config", "state_dict"}
    loaded = LSTMPredictor.load(path, retrain_interval=0)  # frozen: keep the saved weights
    after = run_stream(loaded, arrivals, n, slots)
    np.testing.assert_array_equal(after[-1], before[-1])
    # a loaded model also serves another network size: it is shared over pairs
    other = run_stream(LSTMPredictor.load(path, retrain_interval=0), arrivals, 10, 60)
    assert other.shape == (60, 45)


def test_lstm_cuda_request_fails_clearly_without_cuda() -> None:
    import torch

    from agents.predictors.lstm import LSTMPredictor

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        LSTMPredictor(device="cuda")


def test_lstm_restores_global_torch_threads() -> None:
    import torch

    before = torch.get_num_threads()
    run_stream(make_predictor("lstm", **FAST_LSTM), synthetic_periodic_arrivals(6, 380, 1), 6, 380)
    assert torch.get_num_threads() == before


def test_arima_chooses_an_order_in_the_grid() -> None:
    from agents.predictors.arima import ARIMAPredictor

    n, slots = 8, 480
    p = ARIMAPredictor(**FAST_ARIMA)
    run_stream(p, synthetic_periodic_arrivals(n, slots, seed=1), n, slots)
    assert p.refits >= 2 and p.order in p.grid


@pytest.mark.parametrize("order", [(0, 0, 0), (1, 0, 1), (2, 1, 2)])
def test_arima_fit_is_statsmodels_default_fit(order: tuple[int, int, int]) -> None:
    """The lean fit (no smoother, no covariance) keeps the default fit's estimates and AIC."""
    import warnings

    from statsmodels.tsa.arima.model import ARIMA

    from agents.predictors.arima import _fit

    rng = np.random.default_rng(7)
    series = np.convolve(rng.normal(size=100), [1.0, 0.6, 0.3])[:96]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trend = "c" if order[1] == 0 else "n"
        want = ARIMA(series, order=order, trend=trend).fit()
    got = _fit(series, order)
    np.testing.assert_array_equal(got.params, want.params)
    assert got.aic == pytest.approx(want.aic, rel=1e-12)
