"""The regime map's definition: its factors and levels, default agents, runs and slots, metrics, heatmaps.

:mod:`agents.study.regimes` plans and runs the grid, :mod:`agents.study.regimes_report` computes its
outputs; both read the definition from here (and ``regimes`` re-exports it).
"""

from __future__ import annotations

from typing import Any

from agents.study.tables import ORACLE, TWIN
from spep_gym.config import PHYSICAL

__all__ = [
    "CUTOFF_FIDELITY",
    "DEFAULT_AGENTS",
    "DEFAULT_RUNS",
    "DEFAULT_SLOTS",
    "FACTORS",
    "FACTOR_FIELDS",
    "FACTOR_NAMES",
    "HEATMAPS",
    "HEAVY_ARRIVAL_RATE",
    "METRICS",
    "METRIC_NAMES",
    "ORACLE",
    "PHYSICAL_LAWS",
    "PREDICTION_HEATMAPS",
    "TWIN",
]

#: The heavy load: five times the paper's arrival rate (the sensitivity study's 0.5). On the paper
#: preset's networks the requests then ask, on their static paths, for about half the link pairs
#: the links can generate over a day (0.1: a tenth), and in business hours (three times the rate)
#: for about all of them or more: links are contended without the network being saturated all
#: day (``summary.md`` computes this "offered load" for each topology and physics).
HEAVY_ARRIVAL_RATE = 0.5
#: The cut-off of the managed link layer: the lowest required fidelity (as the physical preset).
CUTOFF_FIDELITY = PHYSICAL["cutoff_fidelity"]
#: The physical preset's laws and time scales (its link layer and latency are factors of their own).
PHYSICAL_LAWS = {
    k: PHYSICAL[k] for k in ("swap_model", "decay_model", "p_gen", "F0", "rho", "max_lifetime")
}

#: factor -> ((level, config fields), ...); the first level of each is the paper preset's.
FACTORS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "link_layer": (
        ("block", {}),
        (
            "replace_oldest",
            {"link_pool_policy": "replace_oldest", "cutoff_fidelity": CUTOFF_FIDELITY},
        ),
    ),
    "physics": (("paper", {}), ("physical", PHYSICAL_LAWS)),
    "end_memory": (("equal", {}), ("better", {"preposition_rho": 1.0})),
    "latency": (("0", {}), ("0.5", {"signalling_latency": PHYSICAL["signalling_latency"]})),
    "load": (("paper", {}), ("heavy", {"arrival_rate": HEAVY_ARRIVAL_RATE})),
}
FACTOR_NAMES = tuple(FACTORS)
#: Config fields the factors set: ``--set`` cannot override them.
FACTOR_FIELDS = frozenset(k for levels in FACTORS.values() for _, f in levels for k in f)

#: The agents of the default map: a non-predictive baseline, the random control, SPEP with its
#: frequency predictor and the oracle reference; the strong demand-blind control ``managed`` and
#: two agents that differ from it only in their demand input, the equal-footing oracle and the
#: frequency predictor (prediction's value per cell: each minus its twin ``managed``).
DEFAULT_AGENTS = (
    "shortest", "random", "managed", "spep-frequency", "spep-oracle", "managed-frequency",
    "managed-oracle",
)  # fmt: skip
#: Runs per cell (paired by seed). 20 keeps the Holm-corrected tests able to find a difference:
#: the smallest two-sided Wilcoxon p of n pairs is 2 / 2**n, and Holm over the default map's 512
#: comparisons of a metric needs it below 0.05 / 512, so n >= 15.
DEFAULT_RUNS = 20
#: Slots per run: the paper's 2000. The map's answer moved with the run length (at 500 slots the
#: first day, with no request history for the predictors, was half of each run), so the default is
#: the full length; it takes about 6.5 minutes on 2 cores with ``--engine compiled`` (the stored
#: map, docs/results/regimes), whose runs cost 4.9-13.7x less CPU than the scalar engine's
#: (docs/compiled.md). ``--slots 500`` gives the shorter map of earlier versions.
DEFAULT_SLOTS = 2000
#: Table metrics: (metric, label, format of a mean, format of a difference).
METRICS = (
    ("success_rate", "success (%)", "pct"),
    ("avg_latency", "latency (slots)", "num"),
    ("avg_fidelity", "fidelity", "fid"),
    ("utilization", "utilization (%)", "pct"),
)
METRIC_NAMES = tuple(m for m, _, _ in METRICS)
#: The gains drawn as heatmaps: (agent, control role, title).
HEATMAPS = (
    ("spep-frequency", "best", "SPEP-frequency − best control"),
    ("spep-frequency", "random", "SPEP-frequency − random"),
    ("spep-oracle", "random", "oracle reference − random"),
)
#: Prediction's value drawn as heatmaps: (agent, title), each against its twin ``managed``.
PREDICTION_HEATMAPS = (
    ("managed-oracle", "equal-footing oracle − its twin managed"),
    ("managed-frequency", "managed-frequency − its twin managed"),
)
