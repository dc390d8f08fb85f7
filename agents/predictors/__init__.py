"""Demand predictors for SPEP (paper section IV-B): frequency, LSTM and ARIMA.

Importing this package loads numpy and the core of ``spep_gym`` only; torch and statsmodels load
when an LSTM or ARIMA predictor is first made (or its class first accessed), so the bare
environment runs without them.

Example:
    >>> from agents.predictors import make_predictor, pair_index
    >>> p = make_predictor("frequency")
    >>> p.reset(num_nodes=4)
    >>> p.observe(0, [pair_index(0, 3, 4), pair_index(0, 3, 4), pair_index(1, 2, 4)])
    >>> p.predict(0).round(3).tolist()
    [0.0, 0.0, 0.667, 0.333, 0.0, 0.0]
"""

from __future__ import annotations

import importlib
from typing import Any

from agents.predictors.base import Predictor
from agents.predictors.frequency import FrequencyPredictor
from agents.predictors.quality import (
    prediction_quality,
    synthetic_bursty_arrivals,
    synthetic_periodic_arrivals,
)

# Node-pair indexing and the hour of day, re-exported for predictor users (defined in spep_gym).
from spep_gym.topology import num_pairs, pair_index
from spep_gym.workload import hour_of_day

__all__ = [
    "PREDICTORS",
    "ARIMAPredictor",
    "FrequencyPredictor",
    "LSTMPredictor",
    "Predictor",
    "hour_of_day",
    "make_predictor",
    "num_pairs",
    "pair_index",
    "prediction_quality",
    "synthetic_bursty_arrivals",
    "synthetic_periodic_arrivals",
]

#: Registered names -> (module, class); modules are imported on first use.
PREDICTORS: dict[str, tuple[str, str]] = {
    "frequency": ("agents.predictors.frequency", "FrequencyPredictor"),
    "lstm": ("agents.predictors.lstm", "LSTMPredictor"),
    "arima": ("agents.predictors.arima", "ARIMAPredictor"),
}

_LAZY = {"LSTMPredictor": "lstm", "ARIMAPredictor": "arima"}


def make_predictor(name: str, **kwargs: Any) -> Predictor:
    """Make a predictor by registered name; ``kwargs`` go to its constructor."""
    try:
        module, cls = PREDICTORS[name]
    except KeyError:
        raise ValueError(f"unknown predictor {name!r}; known: {sorted(PREDICTORS)}") from None
    predictor: Predictor = getattr(importlib.import_module(module), cls)(**kwargs)
    return predictor


def __getattr__(attr: str) -> Any:
    """Load the torch / statsmodels predictor classes only when asked for."""
    if attr in _LAZY:
        module, cls = PREDICTORS[_LAZY[attr]]
        return getattr(importlib.import_module(module), cls)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
