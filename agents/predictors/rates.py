"""A long-run rate estimator with no cold start: Gamma-Poisson shrinkage across hours and pairs.

The workload (SPEC section 4) is Poisson: node pair p in hour h of the day is requested at a rate
``lambda[h, p]`` per slot. After ``S[h]`` observed slots of hour h with ``N[h, p]`` requests of p,
the raw estimate ``N / S`` (what :class:`~agents.predictors.base.HourlyRates` gives) is noisy where
``S[h]`` is small, and undefined for an hour not yet seen: on the first day every hour is new, and a
pair seen once looks as busy as a hot one. So the estimate borrows strength, in three levels:

1. the hour profile: the all-pairs rate of hour h is shrunk towards the all-hours rate;
   ``g[h]`` = that rate / the all-hours rate (the business hours' factor, shared by every pair:
   the workload multiplies all pairs alike);
2. the pair's all-hours rate ``lambda_p`` is shrunk towards the mean rate of all node pairs;
3. the pair-hour rate is shrunk towards ``lambda_p * g[h]``.

Each level is the posterior mean of a Gamma-Poisson model: a unit's rate has the prior
``Gamma(shape = beta * m, rate = beta)`` (mean ``m``, the level above; ``beta`` slots of prior
weight), so after ``N`` requests in ``S`` slots its posterior mean is ``(N + beta m) / (S + beta)``.
``beta`` is estimated from the data by the method of moments (empirical Bayes, one ``beta`` per
level): under the model ``Var N = S m + S^2 m / beta``, so
``1 / beta = sum((N - S m)^2 - S m) / sum(S^2 m)``, clipped at 0 (no spread beyond Poisson noise:
every unit gets its prior mean). Where units differ little the estimate pools them; where a pair's
or an hour's own counts are many and far from the pool it keeps its own. An hour never seen gets the
pair's all-hours rate: predictions start with the first request, with no training period (unlike the
LSTM and ARIMA), and a pair's hour has more than a handful of its own requests only after days.

The window probability is Poisson: ``1 - exp(-sum of the rates of slots t+1 .. t+W)``, summed
over the hours the window covers (as :class:`~agents.predictors.base.HourlyRates` does).
Cost: O(24 P) per predict.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agents.predictors.base import HourlyRates, Predictor

__all__ = ["RatePredictor", "gamma_poisson_mean"]


def gamma_poisson_mean(
    counts: npt.ArrayLike, exposure: npt.ArrayLike, prior_mean: npt.ArrayLike
) -> np.ndarray:
    """Posterior mean rates of Poisson units shrunk towards ``prior_mean`` (empirical Bayes).

    Args:
        counts: ``N``, events per unit.
        exposure: ``S``, slots each unit was observed (broadcast against ``counts``).
        prior_mean: ``m``, the prior mean rate per slot of each unit (broadcast likewise).

    Returns:
        ``(N + beta m) / (S + beta)`` with one ``beta`` for all units, estimated by the method of
        moments; ``m`` itself where the counts show no spread beyond Poisson noise (``beta``
        infinite) or there is no information (every ``S^2 m`` zero).
    """
    n, s, m = np.broadcast_arrays(
        np.asarray(counts, np.float64),
        np.asarray(exposure, np.float64),
        np.asarray(prior_mean, np.float64),
    )
    expected = s * m
    information = float(np.sum(s * s * m))
    if information <= 0.0:
        return m.copy()
    inverse_beta = float(np.sum((n - expected) ** 2 - expected)) / information
    if inverse_beta <= 0.0:
        return m.copy()
    beta = 1.0 / inverse_beta
    out: np.ndarray = (n + beta * m) / (s + beta)
    return out


class RatePredictor(Predictor):
    """Window probabilities from pair-hour Poisson rates shrunk across hours and pairs (see module).

    Keeps counts per hour of day and pair (:class:`~agents.predictors.base.HourlyRates`) over the
    whole history: the workload's rates do not change within a run, so every day counts.
    """

    name = "rates"

    def __init__(self) -> None:
        super().__init__()
        self._hourly = HourlyRates(0, 240)

    def _reset(self) -> None:
        self._hourly = HourlyRates(self.num_pairs, self.slots_per_day)

    def _observe(self, slot: int, pairs: np.ndarray) -> None:
        self._hourly.add(slot, pairs)

    def rates(self) -> np.ndarray:
        """(24, P) shrunk rates per slot by hour of day and pair (0 before any request)."""
        counts, slots = self._hourly.counts, self._hourly.slots
        total_slots = float(slots.sum())
        if total_slots == 0.0:
            return np.zeros_like(counts)
        overall = counts.sum() / total_slots  # requests per slot, all pairs
        hour_rate = gamma_poisson_mean(counts.sum(axis=1), slots, np.full(24, overall))
        profile = hour_rate / overall if overall > 0 else np.ones(24)
        pair_rate = gamma_poisson_mean(
            counts.sum(axis=0), total_slots, np.full(self.num_pairs, overall / self.num_pairs)
        )
        return gamma_poisson_mean(counts, slots[:, None], profile[:, None] * pair_rate[None, :])

    def _predict(self, slot: int) -> np.ndarray:
        expected = self._hourly.expected(np.array([slot + 1]), self.prediction_window, self.rates())
        return -np.expm1(-expected[0])
