"""ARIMA demand predictor (paper section IV-B3, SPEC 8), fitted with statsmodels.

Fitting an order search per node pair at every slot would cost minutes per episode, so the model
is refitted every ``refit_interval`` slots and run between refits by its own recursion in numpy:

* series: per pair, request counts in buckets of ``bucket_slots`` slots, minus the count its
  hour-of-day rate profile expects (:class:`HourlyRates`). A few ARMA lags cannot express a daily
  cycle of many buckets, so the cycle is taken out first and ARIMA models the deviations from it
  (short-term bursts and drifts); the forecast adds the profile back (regression on the daily
  profile with ARIMA errors);
* order: (p, d, q) minimising AIC over the grid, fitted once per refit on the aggregate deviation
  series (the sum over pairs), which has the most signal; a sum of independent series with the
  same ARMA dynamics shares their AR polynomial, so its coefficients are a sound pooled default;
* coefficients: the ``max_pair_fits`` pairs with most requests get their own fit with that order;
  the others use the pooled coefficients with their own mean;
* forecast: at slot t, the last ``state_buckets`` windows of B slots ending at t are run through
  the ARMA recursion (residuals from zero), giving the expected deviation of the next window;
  expected count = profile + deviation (scaled by W/B), probability = ``1 - exp(-count)``.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
from statsmodels.tsa.arima.model import ARIMA

from agents.predictors.base import CountHistory, HourlyRates, Predictor

__all__ = ["ARIMAPredictor"]


def _fit(series: np.ndarray, order: tuple[int, int, int]) -> Any:
    """Fit one ARIMA with warnings silenced locally; None if statsmodels fails.

    The maximum-likelihood fit of statsmodels' defaults (same start, optimizer and estimates),
    without what the predictor does not read: the smoothed states (``low_memory``) and the
    parameters' covariance (``cov_type="none"``); about 13 % less CPU.
    """
    trend = "c" if order[1] == 0 else "n"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ARIMA(series, order=order, trend=trend).fit(low_memory=True, cov_type="none")
        except (ValueError, np.linalg.LinAlgError):
            return None


class ARIMAPredictor(Predictor):
    """ARIMA(p, d, q) on deviations of bucketed pair demand from its daily profile, AIC order.

    Args:
        bucket_slots: B, slots per series step; None uses the prediction window.
        refit_interval: Slots between refits (order search and coefficients).
        max_p: Largest AR order in the AIC grid.
        max_d: Largest differencing order in the grid (0 or 1).
        max_q: Largest MA order in the grid.
        fit_buckets: Series length used in a fit (most recent buckets).
        min_fit_buckets: Completed buckets needed before the first fit.
        max_pair_fits: Pairs (most requested first) fitted individually; the rest pooled.
        state_buckets: Windows run through the recursion to set its state at each prediction.
    """

    name = "arima"

    def __init__(
        self,
        bucket_slots: int | None = None,
        refit_interval: int = 240,
        max_p: int = 2,
        max_d: int = 1,
        max_q: int = 2,
        fit_buckets: int = 96,
        min_fit_buckets: int = 16,
        max_pair_fits: int = 8,
        state_buckets: int = 16,
    ) -> None:
        super().__init__()
        if refit_interval < 1 or min(max_p, max_d, max_q, max_pair_fits) < 0 or max_d > 1:
            raise ValueError("refit_interval >= 1, orders >= 0, max_d in {0, 1}")
        if bucket_slots is not None and bucket_slots < 1:
            raise ValueError("bucket_slots must be positive")
        self._bucket_slots = bucket_slots
        self.refit_interval = refit_interval
        self.grid = list(itertools.product(range(max_p + 1), range(max_d + 1), range(max_q + 1)))
        self.fit_buckets = fit_buckets
        self.min_fit_buckets = max(min_fit_buckets, 2 * (max_p + max_q + max_d) + 4)
        self.max_pair_fits = max_pair_fits
        self.state_buckets = state_buckets
        self.order: tuple[int, int, int] | None = None
        self.refits = 0

    @property
    def bucket_slots(self) -> int:
        """B, slots per series step (the prediction window unless set)."""
        return self._bucket_slots if self._bucket_slots is not None else self.prediction_window

    def history_slots(self) -> int:
        """Slots of count history the predictor reads: the fit series and the forecast state."""
        buckets = max(self.fit_buckets + 1, self.state_buckets + 1)
        return self.bucket_slots * (buckets + 1)

    def _reset(self) -> None:
        self._history = CountHistory(self.num_pairs, max_slots=self.history_slots())
        self._rates = HourlyRates(self.num_pairs, self.slots_per_day)
        self._last_fit: int | None = None
        self.order = None
        self.refits = 0
        self._phi = np.zeros((0, self.num_pairs))
        self._theta = np.zeros((0, self.num_pairs))
        self._mu = np.zeros(self.num_pairs)

    def _observe(self, slot: int, pairs: np.ndarray) -> None:
        self._history.append(pairs)
        self._rates.add(slot, pairs)
        if self._last_fit is not None and slot - self._last_fit < self.refit_interval:
            return
        if (slot + 1) // self.bucket_slots >= self.min_fit_buckets:
            # Tiny series: multithreaded BLAS only adds overhead (about 8x the CPU time measured).
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=1):
                self._refit(slot)
            self._last_fit = slot

    def _deviations(self, ends: np.ndarray, rates: np.ndarray) -> np.ndarray:
        """Counts minus profile-expected counts in windows of B slots ending at ``ends``."""
        b = self.bucket_slots
        return self._history.window_sums(ends, b) - self._rates.expected(ends - b + 1, b, rates)

    def _refit(self, slot: int) -> None:
        """Choose the order by AIC on the aggregate series, then fit pooled and per-pair models."""
        b = self.bucket_slots
        completed = (slot + 1) // b
        ends = np.arange(max(0, completed - self.fit_buckets), completed) * b + b - 1
        z = self._deviations(ends, self._rates.rates())  # (K, P)
        total = z.sum(axis=1)
        best, best_aic = None, np.inf
        if np.ptp(total) > 0:
            for order in self.grid:
                res = _fit(total, order)
                if res is not None and np.isfinite(res.aic) and res.aic < best_aic:
                    best, best_aic = (order, res), res.aic
        self.refits += 1
        if best is None:  # no demand variation yet: profile only
            self.order = (0, 0, 0)
            self._phi = np.zeros((0, self.num_pairs))
            self._theta = np.zeros((0, self.num_pairs))
            self._mu = z.mean(axis=0)
            return
        order, pooled = best
        p, d, q = order
        self.order = order
        self._phi = np.repeat(
            np.asarray(pooled.arparams, dtype=np.float64)[:, None], self.num_pairs, 1
        )
        self._theta = np.repeat(
            np.asarray(pooled.maparams, dtype=np.float64)[:, None], self.num_pairs, 1
        )
        self._mu = z.mean(axis=0) if d == 0 else np.zeros(self.num_pairs)
        counts = self._history.window_sums(ends, b).sum(axis=0)
        if p == q == 0:
            return
        for pair in np.argsort(-counts, kind="stable")[: self.max_pair_fits]:
            if counts[pair] == 0 or np.ptp(z[:, pair]) == 0:
                break
            res = _fit(z[:, pair], order)
            if res is None:
                continue
            self._phi[:, pair] = res.arparams
            self._theta[:, pair] = res.maparams
            if d == 0:
                self._mu[pair] = float(res.params[0])  # trend "c": the process mean

    def _predict(self, slot: int) -> np.ndarray:
        rates = self._rates.rates()
        w = self.prediction_window
        lam = self._rates.expected(np.array([slot + 1]), w, rates)[0]
        if self.order is not None:
            lam = lam + self._forecast_deviation(slot, rates) * (w / self.bucket_slots)
        return -np.expm1(-np.maximum(lam, 0.0))

    def _forecast_deviation(self, slot: int, rates: np.ndarray) -> np.ndarray:
        """One-step ARMA forecast of the next window's deviation at the phase of ``slot``."""
        assert self.order is not None
        p, d, q = self.order
        b = self.bucket_slots
        n_win = min(self.state_buckets + d, (slot + 1) // b)
        if n_win <= d:
            return np.zeros(self.num_pairs)
        ends = slot - b * np.arange(n_win)[::-1]
        z = self._deviations(ends, rates)
        series = np.diff(z, axis=0) if d == 1 else z
        dev = series - self._mu
        eps = np.zeros_like(dev)
        for k in range(len(dev) + 1):
            fc = np.zeros(self.num_pairs)
            for i in range(min(p, k)):
                fc += self._phi[i] * dev[k - 1 - i]
            for j in range(min(q, k)):
                fc += self._theta[j] * eps[k - 1 - j]
            if k < len(dev):
                eps[k] = dev[k] - fc
        forecast = self._mu + fc
        return z[-1] + forecast if d == 1 else forecast
