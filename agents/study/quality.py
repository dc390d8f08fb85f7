"""How well each demand predictor forecasts the requests the environment draws (``spep quality``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.study.evaluate import progress_bar
from spep_gym.config import SpepConfig

if TYPE_CHECKING:
    import pandas as pd


def workload_arrivals(seed: int, config: SpepConfig) -> np.ndarray:
    """The requests the environment draws for ``seed``: exactly those every agent meets in that run.

    Returns:
        ``(N, 2)`` int64 rows ``(arrival slot, unordered pair index)``.
    """
    from spep_gym.simulator import Simulator

    sim = Simulator(config)
    sim.reset(seed)
    w = sim.workload
    return np.column_stack([w.arrival, w.pair]).astype(np.int64)


def prediction_quality_table(
    seed: int = 0,
    runs: int = 1,
    predictors: Sequence[str] = ("frequency", "lstm", "arima"),
    top_k: int | None = None,
    progress: bool = False,
    config: Mapping[str, Any] | SpepConfig | None = None,
    **fields: Any,
) -> pd.DataFrame:
    """Score each predictor on the environment's own workload of seeds ``seed .. seed+runs-1``.

    Every predictor sees the same requests (those the SPEP agents meet), with its default settings
    (those of the registered ``spep-<name>`` agents), and is scored by
    :func:`agents.predictors.quality.prediction_quality` against the true future: mean absolute
    error, Brier score, precision of its top-``top_k`` pairs (default ``max_prepositioned``), the
    same for a constant predictor, and its wall time.

    Returns:
        One row per (predictor, seed).
    """
    import pandas as pd

    from agents.predictors import PREDICTORS, make_predictor, prediction_quality

    if isinstance(config, SpepConfig):
        cfg = config.replace(**fields)
    else:
        cfg = SpepConfig.from_dict({**dict(config or {}), **fields})
    for name, value, low in (("runs", runs, 1), ("seed", seed, 0), ("top_k", top_k, 1)):
        if value is None and name == "top_k":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} = {value!r} is invalid: allowed an integer >= {low}")
    if not predictors:
        raise ValueError("predictors = () is invalid: allowed one or more predictor names")
    for name in predictors:
        if name not in PREDICTORS:
            raise ValueError(f"predictor {name!r} is unknown: allowed {', '.join(PREDICTORS)}")
    k = cfg.max_prepositioned if top_k is None else top_k
    rows = []
    bar = progress_bar(runs * len(predictors), "quality", progress)
    for s in range(seed, seed + runs):
        arrivals = workload_arrivals(s, cfg)
        for name in predictors:
            q = prediction_quality(
                make_predictor(name),
                arrivals,
                num_nodes=cfg.n,
                slots=cfg.episode_slots,
                slots_per_day=cfg.slots_per_day,
                prediction_window=cfg.prediction_window,
                top_k=k,
                seed=s,
            )
            rows.append({"predictor": name, "topology": cfg.topology_name, "seed": s, **q})
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return pd.DataFrame(rows)
