"""Golden metrics: the headline numbers of the paper preset, pinned so that no change moves them unseen.

``tests/data/golden_metrics.json`` holds the section-6 metrics of seed 0 (2000 slots, paper preset) of
every paper agent on every topology. A change that moves one of them must be deliberate: rewrite the
file with ``make golden`` (``python tests/test_golden.py --update``) and say in the commit why the
numbers moved. Metrics added after the file was written are not compared (every stored one is).

The numpy-only agents must repeat bit for bit. The LSTM and ARIMA agents run torch and statsmodels
fits whose last bits may differ between CPUs (kernel choice by instruction set), so their rates are
held to ``LEARNED_TOLERANCE`` and their counts to a few requests.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

GOLDEN = Path(__file__).parent / "data" / "golden_metrics.json"
TOPOLOGIES = ("erdos_renyi", "random_regular", "small_world", "scale_free")
EXACT_AGENTS = (
    "noop", "reactive", "shortest", "highest_fidelity", "random", "spep-frequency", "spep-oracle",
)  # fmt: skip
LEARNED_AGENTS = ("spep-lstm", "spep-arima")
SEED, SLOTS = 0, 2000
LEARNED_TOLERANCE = 0.02  # absolute, on rates
LEARNED_COUNT_TOLERANCE = 8  # requests or pairs, on counts


def golden_row(agent: str, topology: str) -> dict[str, Any]:
    """The metrics of one run as the golden file stores them (no wall time)."""
    from agents import run_episode

    row = run_episode(agent, SEED, {"topology": topology, "episode_slots": SLOTS})
    return {k: v for k, v in row.items() if k not in ("wall_time_s",)}


def _load() -> dict[str, dict[str, Any]]:
    return json.loads(GOLDEN.read_text())["runs"]


def _key(agent: str, topology: str) -> str:
    return f"{topology}/{agent}"


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("agent", EXACT_AGENTS)
def test_golden_metrics_exact(agent: str, topology: str) -> None:
    expected = _load()[_key(agent, topology)]
    got = json.loads(json.dumps(golden_row(agent, topology)))
    # Every stored number must repeat; a metric added later (absent from the file) may join.
    got = {k: got.get(k, "<missing>") for k in expected}
    assert got == expected, _diff(expected, got)


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("agent", LEARNED_AGENTS)
def test_golden_metrics_learned(agent: str, topology: str) -> None:
    expected = _load()[_key(agent, topology)]
    got = json.loads(json.dumps(golden_row(agent, topology)))
    assert set(expected) <= set(got)
    for k, want in expected.items():
        have = got[k]
        if isinstance(want, str) or want is None or have is None:
            assert have == want, k
        elif isinstance(want, int) and not isinstance(want, bool) and k not in ("seed", "slots"):
            assert abs(have - want) <= LEARNED_COUNT_TOLERANCE, (k, have, want)
        elif isinstance(want, float):
            assert math.isclose(have, want, abs_tol=LEARNED_TOLERANCE), (k, have, want)
        else:
            assert have == want, k


def _diff(expected: dict[str, Any], got: dict[str, Any]) -> str:
    keys = sorted(set(expected) | set(got))
    moved = [
        f"{k}: {expected.get(k)!r} -> {got.get(k)!r}" for k in keys if expected.get(k) != got.get(k)
    ]
    return "golden metrics moved (run `make golden` only if deliberate):\n" + "\n".join(moved)


def update() -> None:
    """Recompute every golden run and rewrite the file."""
    runs = {
        _key(agent, topology): golden_row(agent, topology)
        for topology in TOPOLOGIES
        for agent in (*EXACT_AGENTS, *LEARNED_AGENTS)
    }
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "about": "section-6 metrics of seed 0, 2000 slots, paper preset; see tests/test_golden.py",
        "runs": runs,
    }
    GOLDEN.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN} ({len(runs)} runs)")


if __name__ == "__main__":
    if "--update" not in sys.argv[1:]:
        raise SystemExit("usage: python tests/test_golden.py --update")
    update()
