"""The slot model on SeQUeNCe's scenarios: configs built from the reference file, runs, the comparison.

``tests/test_sequence_reference.py`` holds the simulator against ``tests/data/sequence_reference.json``
with these functions; run as a script, this module prints the comparison table of docs/physics.md and
draws its figure (``docs/img/sequence_comparison.png``):

    .venv/bin/python validation/compare.py [--slots 40000] [--seeds 3]

It needs the package only (not SeQUeNCe): the reference numbers come from the data file that
``make sequence-reference`` writes.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from spep_gym import physics
from spep_gym.config import SpepConfig
from spep_gym.metrics import SERVED
from spep_gym.simulator import Simulator

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "sequence_reference.json"
LIGHT_M_PER_S = 2e8

#: Per chain, the signalling latency (slots per hop) whose delay ceil(latency * hops) is the whole
#: number of slots nearest SeQUeNCe's measured busy period (``slot_model_mapping.per_chain``):
#: 0.63 slots on 2 hops and 1.96 on 4 equal hops (latency 0.5: delays 1 and 2), 2.97 on the
#: 5/10/10/20 km chain, whose longer links wait longer (latency 0.75: delay 3).
LATENCY = {"chain3_10_10": 0.5, "chain5_10_10_10_10": 0.5, "chain5_5_10_10_20": 0.75}

#: Tolerances where the slot model should match SeQUeNCe (issue 11), and the one documented
#: exception: on the 3-node chain SeQUeNCe's links restart 0.625 slots after the swap on average,
#: and the slot model waits whole slots (1: 5 % slower; 0: 12 % faster).
THROUGHPUT_TOL = 0.05
THROUGHPUT_TOL_3_NODES = 0.07
F_MEAN_TOL = 0.01
F_QUANTILE_TOL = 0.015


def reference() -> dict[str, Any]:
    """The reference file written by ``make sequence-reference``."""
    return json.loads(REFERENCE.read_text())


def fresh_fidelity(raw: float, length_km: float, coherence_s: float) -> float:
    """A pair heralded over ``length_km`` has decayed for its herald delay L/c when the ends learn."""
    herald = length_km * 1e3 / LIGHT_M_PER_S
    return physics.decayed(raw, math.exp(-8 * herald / (3 * coherence_s)), 1, "depolarizing")


def chain_family(name: str) -> str:
    """``chain3_10_10_tc0.01s`` -> ``chain3_10_10``."""
    return name.rsplit("_tc", 1)[0]


def chain_config(data: dict[str, Any], chain: dict[str, Any], slots: int) -> SpepConfig:
    """The slot-model config of one SeQUeNCe chain: its links, physics and continuous demand.

    One slot is the 10 km link's attempt cycle; a link of another length gets the rate-matched
    per-slot probability of the mapping and the fresh fidelity of its own herald delay. SeQUeNCe's
    link layer: capacity 1, ``block``, pairs discarded by age only (T_c after emission). Demand: a
    request between the end nodes always waits (two queue places, a new request every slot, no
    fidelity requirement, no deadline within the run).
    """
    mapping = data["slot_model_mapping"]["per_chain"][chain["name"]]
    tc = chain["coherence_time_s"]
    raw = data["hardware"]["raw_fidelity"]
    graph = nx.path_graph(len(chain["lengths_km"]) + 1)
    for i, (length, p) in enumerate(
        zip(chain["lengths_km"], mapping["p_gen_per_link"], strict=True)
    ):
        graph.edges[i, i + 1]["p_gen"] = p
        graph.edges[i, i + 1]["F0"] = fresh_fidelity(raw, length, tc)
    n = graph.number_of_nodes()
    return SpepConfig(
        topology=graph,
        episode_slots=slots,
        swap_model="werner",
        decay_model="depolarizing",
        rho=mapping["rho"],
        preposition_rho=mapping["preposition_rho"],
        max_lifetime=mapping["max_lifetime_slots"],
        F_min=0.0,
        link_capacity=1,
        link_pool_policy="block",
        signalling_latency=LATENCY[chain_family(chain["name"])],
        demand_pairs=((0, n - 1, 1.0),),
        arrival_rate=1.0,
        business_hours_factor=1.0,
        fidelity_req_range=(0.0, 0.0),
        deadline_range=(10**9, 10**9),
        priority_weights=(1.0,),
        queue_capacity=2,
        max_prepositioned=0,
    )


def run_chain(cfg: SpepConfig, seed: int) -> dict[str, Any]:
    """Throughput per slot and the delivered fidelities of one run."""
    sim = Simulator(cfg)
    sim.reset(seed)
    while not sim.done:
        sim.step(())
    rec = sim.records
    served = rec["status"] == SERVED
    return {
        "served": int(served.sum()),
        "slots": cfg.episode_slots,
        "fidelity": rec["fidelity"][served],
    }


def compare_chain(
    data: dict[str, Any], chain: dict[str, Any], slots: int, seeds: int
) -> dict[str, Any]:
    """The slot model against SeQUeNCe on one chain: throughput, fidelity mean and quantiles."""
    tau = data["slot_model_mapping"]["recommended"]["tau_s"]
    cfg = chain_config(data, chain, slots)
    runs = [run_chain(cfg, seed) for seed in range(seeds)]
    rates = np.array([r["served"] / (r["slots"] * tau) for r in runs])
    fid = np.concatenate([r["fidelity"] for r in runs])
    seq = chain["fidelity"]
    mapping = data["slot_model_mapping"]["per_chain"][chain["name"]]
    delay = physics.signalling_delay(cfg.signalling_latency, len(chain["lengths_km"]))
    analytic = next(p for p in mapping["slot_model_predictions"] if p["delay_slots"] == delay)
    # a renewal process: the served count's relative SE is about CV / sqrt(count); CV <= 1
    se = rates.mean() / math.sqrt(max(sum(r["served"] for r in runs), 1))
    return {
        "name": chain["name"],
        "hops": len(chain["lengths_km"]),
        "coherence_time_s": chain["coherence_time_s"],
        "delay_slots": delay,
        "throughput": float(rates.mean()),
        "throughput_se": float(se),
        "throughput_analytic": analytic["throughput_per_s"],
        "throughput_sequence": chain["throughput_per_s"],
        "throughput_sequence_se": chain["throughput_se_per_s"],
        "F_mean": float(fid.mean()),
        "F_mean_se": float(fid.std(ddof=1) / math.sqrt(len(fid))),
        "F_mean_analytic": analytic["F_mean"],
        "F_p10": float(np.quantile(fid, 0.1)),
        "F_p50": float(np.quantile(fid, 0.5)),
        "F_mean_sequence": seq["mean"],
        "F_p10_sequence": seq["p10"],
        "F_p50_sequence": seq["p50"],
        "throughput_tol": THROUGHPUT_TOL_3_NODES
        if len(chain["lengths_km"]) == 2
        else THROUGHPUT_TOL,
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of docs/physics.md."""
    lines = [
        "| chain (km) | T_c | delay | throughput /s: SeQUeNCe | slot model | diff | F mean: SeQUeNCe | slot | p10: SeQUeNCe | slot | p50: SeQUeNCe | slot |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        km = chain_family(r["name"]).split("_", 1)[1].replace("_", "/")
        tc = (
            f"{r['coherence_time_s'] * 1e3:g} ms"
            if r["coherence_time_s"] < 1
            else f"{r['coherence_time_s']:g} s"
        )
        diff = r["throughput"] / r["throughput_sequence"] - 1
        lines.append(
            f"| {km} | {tc} | {r['delay_slots']} | {r['throughput_sequence']:.1f} ± "
            f"{r['throughput_sequence_se']:.1f} | {r['throughput']:.1f} ± {r['throughput_se']:.1f} | "
            f"{100 * diff:+.1f} % | {r['F_mean_sequence']:.4f} | {r['F_mean']:.4f} | "
            f"{r['F_p10_sequence']:.4f} | {r['F_p10']:.4f} | {r['F_p50_sequence']:.4f} | {r['F_p50']:.4f} |"
        )
    return "\n".join(lines)


def figure(rows: list[dict[str, Any]], path: Path) -> Path:
    """Throughput and mean fidelity per chain: SeQUeNCe beside the slot model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        f"{chain_family(r['name']).split('_', 1)[1].replace('_', '/')}\nT_c {r['coherence_time_s']:g} s"
        for r in rows
    ]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, key, label in zip(
        axes,
        ("throughput", "F_mean"),
        ("end-to-end pairs per second", "mean delivered fidelity"),
        strict=True,
    ):
        seq = [r[f"{key}_sequence"] for r in rows]
        ours = [r[key] for r in rows]
        err_seq = [r.get(f"{key}_sequence_se", 0.0) for r in rows]
        err_ours = [r[f"{key}_se"] for r in rows]
        ax.bar(x - 0.2, seq, 0.4, yerr=err_seq, capsize=2, label="SeQUeNCe 1.3.1")
        ax.bar(x + 0.2, ours, 0.4, yerr=err_ours, capsize=2, label="slot model (spep-gym)")
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("Continuous demand over chains: SeQUeNCe against the slot model")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=40_000, help="slots per run")
    parser.add_argument("--seeds", type=int, default=3, help="runs per chain")
    parser.add_argument("--figure", default=str(ROOT / "docs" / "img" / "sequence_comparison.png"))
    args = parser.parse_args()
    data = reference()
    rows = [compare_chain(data, c, args.slots, args.seeds) for c in data["scenarios"]["chains"]]
    print(table(rows))
    print(
        f"\n{args.seeds} runs x {args.slots} slots per chain; figure: {figure(rows, Path(args.figure))}"
    )


if __name__ == "__main__":
    main()
