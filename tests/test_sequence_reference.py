"""The simulator held against SeQUeNCe 1.3.1 (tests/data/sequence_reference.json, made by
``make sequence-reference``; validation/README.md says how each scenario was built).

Exact where the physics is a formula (the decay of a stored pair, the swap), statistical where it is
a process (generation over fibre length, continuous demand over chains), with the tolerances of
issue 11: throughput within 5 %, mean fidelity within 0.01, quantiles within 0.015. Two documented
exceptions (docs/physics.md, "Cross-validation"): the 3-node chain's throughput (SeQUeNCe's links
restart 0.625 slots after a swap on average, the slot model waits whole slots: 7 %), and the 10th
percentile of 4-hop chains at T_c = 10 ms (SeQUeNCe swaps as soon as two adjacent pairs are there,
so a swapped pair decays in two memories instead of four; the slot model swaps the whole path at
once: 0.03).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from spep_gym import physics
from spep_gym.config import PHYSICAL, PHYSICAL_SLOT_S, SpepConfig
from spep_gym.simulator import Simulator
from spep_gym.topology import Network

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "validation"))
import compare  # validation/compare.py: the slot model on the SeQUeNCe scenarios

DATA = compare.reference()
TAU = DATA["slot_model_mapping"]["recommended"]["tau_s"]
CHAINS = DATA["scenarios"]["chains"]
SLOTS = 30_000  # per chain run: 6 s of simulated time, about as long as SeQUeNCe's runs


def test_reference_file_is_sequence_1_3_physics():
    assert DATA["versions"]["sequence"] == "1.3.1" and not DATA["quick"]
    assert DATA["determinism"]["identical"]
    # the physical preset is this scenario's 10 km link at T_c = 10 ms
    ten_ms = DATA["slot_model_mapping"]["recommended"]["by_coherence_time_s"]["0.01"]
    assert pytest.approx(TAU, rel=1e-12) == PHYSICAL_SLOT_S
    assert PHYSICAL["p_gen"] == pytest.approx(DATA["slot_model_mapping"]["recommended"]["p_gen"])
    assert PHYSICAL["rho"] == pytest.approx(ten_ms["rho"], rel=1e-12)
    assert PHYSICAL["F0"] == pytest.approx(ten_ms["F0"], abs=1e-8)
    assert PHYSICAL["max_lifetime"] == ten_ms["max_lifetime_slots"]


def test_decay_of_a_stored_pair_is_exact():
    """The simulator's fidelity table (depolarizing decay) against SeQUeNCe's Bell-diagonal memories."""
    decay = DATA["scenarios"]["decay"]
    for point in decay["points"]:
        rho = physics.rho_from_coherence(decay["tau_s"], point["coherence_time_s"])
        cfg = SpepConfig(
            topology=nx.Graph([(0, 1)]), F0=point["F0"], rho=rho, decay_model="depolarizing",
            F_min=0.0, max_lifetime=max(point["age_slots"], 1),
        )  # fmt: skip
        table = Network.build(nx.Graph([(0, 1)]), cfg).fidelity_table
        assert table[0, point["age_slots"]] == pytest.approx(point["F_sequence"], abs=1e-12)
    reads = decay["repeated_reads"]
    assert reads["max_abs_err"] < 1e-12


def test_swap_fidelity_is_exact():
    swap = DATA["scenarios"]["swap"]
    for row in swap["pairs"]:
        got = physics.path_fidelity([row["F1"], row["F2"]], "werner")
        assert got == pytest.approx(row["F_sequence"], abs=1e-12)
    for row in swap["chain3"]:
        got = physics.path_fidelity([row["F1"], row["F2"], row["F3"]], "werner")
        assert got == pytest.approx(row["F_sequence"], abs=1e-12)
    # the whole stack with memories that never decay: every delivered pair at the Werner value
    fullstack = DATA["scenarios"]["swap_fullstack"]["chains"]  # 3 nodes (2 hops), 5 nodes (4)
    for chain, hops in zip(fullstack, (2, 4), strict=True):
        werner = physics.path_fidelity([DATA["hardware"]["raw_fidelity"]] * hops, "werner")
        assert chain["F_sequence_min"] == pytest.approx(werner, abs=1e-12)
        assert chain["F_sequence_max"] == pytest.approx(werner, abs=1e-12)


@pytest.mark.parametrize(
    "link", DATA["scenarios"]["generation"]["links"], ids=lambda l: f"{l['length_km']:g}km"
)
def test_generation_probability_over_fibre_length(link):
    """length_model="loss" gives SeQUeNCe's success per attempt at every length (3 standard errors,
    the simulator's own draws included); the fresh pair has decayed over its herald delay."""
    p_ref = PHYSICAL["p_gen"]
    g = nx.Graph()
    g.add_edge(0, 1, length_km=link["length_km"])
    slots = 20_000
    cfg = SpepConfig(
        topology=g, p_gen=p_ref, length_model="loss", max_lifetime=0, episode_slots=slots,
        arrival_rate=0.0,
    )  # fmt: skip
    sim = Simulator(cfg)
    sim.reset(0)
    p_model = float(sim.net.p_gen[0])
    while not sim.done:
        sim.step(())
    # max_lifetime 0: every pair is discarded the next slot, so each slot is one fresh attempt
    p_sim = (sim.metrics.pairs_generated) / slots
    se = math.hypot(link["p_attempt_se"], math.sqrt(p_model * (1 - p_model) / slots))
    assert abs(p_sim - link["p_attempt"]) <= 3 * se, (p_sim, link["p_attempt"], se)
    assert abs(p_model - link["p_attempt"]) <= 3 * link["p_attempt_se"]
    for tc, fresh in link["F_fresh_by_coherence_time"].items():
        want = compare.fresh_fidelity(
            DATA["hardware"]["raw_fidelity"], link["length_km"], float(tc)
        )
        assert fresh["mean"] == pytest.approx(want, abs=1e-8)


@pytest.fixture(scope="module")
def comparisons() -> dict[str, dict]:
    return {c["name"]: compare.compare_chain(DATA, c, SLOTS, seeds=1) for c in CHAINS}


@pytest.mark.parametrize("name", [c["name"] for c in CHAINS])
def test_continuous_demand_over_chains(comparisons, name):
    r = comparisons[name]
    rel = r["throughput"] / r["throughput_sequence"] - 1
    assert abs(rel) <= r["throughput_tol"], (
        f"throughput {r['throughput']:.1f} vs {r['throughput_sequence']:.1f}"
    )
    assert abs(r["F_mean"] - r["F_mean_sequence"]) <= compare.F_MEAN_TOL
    assert abs(r["F_p50"] - r["F_p50_sequence"]) <= compare.F_QUANTILE_TOL
    nested = r["hops"] == 4 and r["coherence_time_s"] < 0.1
    assert abs(r["F_p10"] - r["F_p10_sequence"]) <= (0.03 if nested else compare.F_QUANTILE_TOL)


@pytest.mark.parametrize("name", [c["name"] for c in CHAINS if c["coherence_time_s"] >= 1.0])
def test_chains_match_the_slot_models_own_analytic_answer(comparisons, name):
    """Where nothing expires (T_c = 1 s) the slot model's throughput and mean fidelity have closed
    forms (validation/README.md); the simulator must give them within 4 standard errors."""
    r = comparisons[name]
    assert abs(r["throughput"] - r["throughput_analytic"]) <= 4 * r["throughput_se"]
    assert abs(r["F_mean"] - r["F_mean_analytic"]) <= 4 * r["F_mean_se"] + 1e-9


def test_comparison_table_renders(comparisons):
    text = compare.table(list(comparisons.values()))
    assert text.count("\n") == len(CHAINS) + 1 and "| 10/10 | 10 ms | 1 |" in text
    assert np.isfinite([r["throughput"] for r in comparisons.values()]).all()
