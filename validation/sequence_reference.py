"""SeQUeNCe reference data for the slot model's cross-validation (issue 11).

Builds small scenarios in SeQUeNCe 1.3.1 in the modes that carry physics (single-heralded entanglement
generation, the Bell-diagonal-state formalism: memories decohere by a Pauli channel at rate 1/T_c, swaps
use the exact Bell-diagonal formula) and writes what it measures, with every parameter needed to rebuild
each scenario in the slot model, to ``tests/data/sequence_reference.json``.

Scenarios (see ``validation/README.md``):

* ``decay``: F(t) of a stored Bell-diagonal (Werner) pair, exact, against 1/4 + (F0 - 1/4) exp(-8 t / 3 T_c).
* ``swap``: the swapped fidelity of two (and three) Werner pairs, exact, against the Werner formula.
* ``swap_fullstack``: the same through the whole protocol stack, with memories that never decay.
* ``generation``: heralding probability per attempt, attempt cycle, fresh-pair fidelity over fibre length.
* ``chains``: continuous end-to-end demand over 3- and 5-node chains at two coherence times.

This runs only in the ``.venv-sequence`` environment (Python 3.12, ``sequence==1.3.1``), made by
``make sequence-reference``. SeQUeNCe is never a dependency of the package.

Usage::

    python validation/sequence_reference.py [--out PATH] [--seed N] [--quick] [--remap]

Times inside SeQUeNCe are integer picoseconds; this file writes seconds (``_s``), kilometres (``_km``)
and slots (``_slots``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import math
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sequence.app.request_app import RequestApp
from sequence.components.memory import Memory
from sequence.constants import (
    BELL_DIAGONAL_STATE_FORMALISM,
    SECOND,
    SINGLE_HERALDED,
    SPEED_OF_LIGHT,
)
from sequence.entanglement_management.generation import (
    EntanglementGenerationA,
    EntanglementGenerationB,
)
from sequence.entanglement_management.generation.single_heralded import SingleHeraldedA
from sequence.entanglement_management.swapping import EntanglementSwappingA, EntanglementSwappingB
from sequence.entanglement_management.swapping.swapping_bds import (
    EntanglementSwappingA_BDS,
    EntanglementSwappingB_BDS,
)
from sequence.kernel.event import Event
from sequence.kernel.process import Process
from sequence.kernel.timeline import Timeline
from sequence.resource_management.memory_manager import MemoryInfo
from sequence.resource_management.resource_manager import ResourceManager
from sequence.topology.node import QuantumRouter
from sequence.topology.router_net_topo import RouterNetTopo

SCHEMA_VERSION = 1
PS = 1e-12  # seconds per SeQUeNCe time unit (picosecond)
LIGHT_SPEED_M_PER_S = SPEED_OF_LIGHT / PS  # SeQUeNCe's fibre light speed, 2e8 m/s

# The hardware scenario. Sources in validation/README.md.
HARDWARE: dict[str, Any] = {
    "fiber_loss_db_per_km": 0.2,  # SeQUeNCe's generator default (0.0002 dB/m); telecom fibre at 1550 nm
    "detector_efficiency": 0.9,  # SeQUeNCe Detector default
    "detector_dark_count_per_s": 0.0,  # SeQUeNCe Detector default
    "detector_count_rate_hz": 25e6,  # SeQUeNCe Detector default
    "detector_time_resolution_ps": 150,  # SeQUeNCe Detector default
    "bsm_success_rate": 0.5,  # SeQUeNCe SingleHeraldedBSM default (linear-optics Bell measurement)
    "memory_efficiency": 1.0,  # SeQUeNCe MemoryArray default
    "memory_frequency_hz": 80e6,  # SeQUeNCe MemoryArray default
    "raw_fidelity": 0.92,  # the paper preset's F0, as SeQUeNCe's raw EPR fidelity
    # X, Y, Z weights of each memory's Pauli channel: depolarizing (SeQUeNCe's Bell-diagonal default)
    "decoherence_errors": [1 / 3, 1 / 3, 1 / 3],
    "cutoff_ratio": 1.0,  # SeQUeNCe default: a memory expires T_c after its emission
    "swapping_success_prob": 1.0,  # SeQUeNCe default
    "gate_fidelity": 1.0,  # SeQUeNCe QuantumRouter default
    "measurement_fidelity": 1.0,  # SeQUeNCe QuantumRouter default
    "light_speed_m_per_s": LIGHT_SPEED_M_PER_S,
}
REFERENCE_KM = 10.0  # the reference link; its attempt cycle is the slot length tau
COHERENCE_TIMES_S = (0.01, 1.0)  # decay matters a lot / matters little
REQUEST_FIDELITY = 0.1  # below any Werner fidelity (>= 1/4): no purification, no pair refused
START_S = 0.01  # rules load here (the reservation is made at t = 0)
Stats = dict[str, float]


def configure_sequence() -> None:
    """Select the physics-carrying modes (global class settings in SeQUeNCe)."""
    EntanglementGenerationA.set_global_type(SINGLE_HERALDED)
    EntanglementGenerationB.set_global_type(SINGLE_HERALDED)
    EntanglementSwappingA.set_formalism(BELL_DIAGONAL_STATE_FORMALISM)
    EntanglementSwappingB.set_formalism(BELL_DIAGONAL_STATE_FORMALISM)


# ---------------------------------------------------------------------------------------------------
# Formulas of the slot model (what SeQUeNCe is compared with)


def werner_swap(fidelities: Sequence[float]) -> float:
    """Fidelity of Werner pairs swapped into one, perfect operations: (1 + 3 prod w_i) / 4."""
    prod = 1.0
    for f in fidelities:
        prod *= (4.0 * f - 1.0) / 3.0
    return (1.0 + 3.0 * prod) / 4.0


def depolarized(f0: float, t_s: float, coherence_time_s: float, memories: int = 2) -> float:
    """Fidelity of a Werner pair after ``t_s`` with ``memories`` of its qubits decohering (depolarizing).

    Each depolarizing memory multiplies the Werner parameter by exp(-4 t / 3 T_c), so a stored pair
    (two memories) follows 1/4 + (F0 - 1/4) exp(-8 t / 3 T_c).
    """
    return 0.25 + (f0 - 0.25) * math.exp(-4.0 * memories * t_s / (3.0 * coherence_time_s))


def rho_per_slot(tau_s: float, coherence_time_s: float) -> float:
    """The slot model's depolarizing rho for a slot of ``tau_s``: exp(-8 tau / 3 T_c)."""
    return math.exp(-8.0 * tau_s / (3.0 * coherence_time_s))


def p_attempt_analytic(length_km: float, hw: dict[str, Any] = HARDWARE) -> float:
    """Single-heralded success per attempt: both photons survive and are detected, BSM success 1/2."""
    eta_fibre_half = 10 ** (-hw["fiber_loss_db_per_km"] * (length_km / 2) / 10)
    eta_one = hw["memory_efficiency"] * eta_fibre_half * hw["detector_efficiency"]
    return hw["bsm_success_rate"] * eta_one**2


# ---------------------------------------------------------------------------------------------------
# Small statistics helpers


def stats(values: Sequence[float] | np.ndarray) -> Stats:
    """Mean, std, extremes and deciles of a sample (empty sample: n = 0 only)."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return {"n": 0}
    return {
        "n": int(a.size),
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "min": float(a.min()),
        "p10": float(np.percentile(a, 10)),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "max": float(a.max()),
    }


def batch_means(
    times_s: np.ndarray, values: np.ndarray, start_s: float, end_s: float, batches: int
) -> tuple[np.ndarray, np.ndarray]:
    """Counts and mean values of the events in equal time batches of [start_s, end_s)."""
    edges = np.linspace(start_s, end_s, batches + 1)
    idx = np.clip(np.searchsorted(edges, times_s, side="right") - 1, 0, batches - 1)
    counts = np.bincount(idx, minlength=batches)
    sums = np.bincount(idx, weights=values, minlength=batches)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return counts, means


# ---------------------------------------------------------------------------------------------------
# Probes: wrappers around SeQUeNCe methods that record what happens (they change no behaviour)


class Recorder:
    """What one simulation run did, recorded by the probes (times in ps)."""

    def __init__(self, timeline: Timeline, names: list[str]) -> None:
        self.tl = timeline
        self.names = names
        self.index = {name: i for i, name in enumerate(names)}
        self.ends = {names[0], names[-1]}
        self.attempts: dict[str, list[tuple[int, bool]]] = defaultdict(list)  # link -> outcomes
        self.fresh: dict[str, list[tuple[int, int, float]]] = defaultdict(list)  # herald, emit, F
        self.entangled_at: dict[str, int] = {}  # memory -> time it last became ENTANGLED
        self.lineage: dict[str, tuple[int, ...]] = {}  # memory -> herald times of its pair's links
        self.pair_state: dict[str, tuple[int, float]] = {}  # memory -> (time, F) last known
        self.swap_errors: list[float] = []  # |F after swap - law + Werner formula|
        self.swaps_per_node: dict[str, int] = defaultdict(int)
        self.final_of_memory: dict[str, dict[str, Any]] = {}
        self.pairs: list[dict[str, Any]] = []
        self.waiting_next: dict[str, dict[str, Any]] = {}  # link -> pair whose restart it awaits
        self.expired = 0
        self.lost_after_swap = 0

    def link(self, a: str, b: str) -> str:
        """Canonical link name, lower chain index first."""
        x, y = sorted((a, b), key=self.index.__getitem__)
        return f"{x}-{y}"

    def path_links(self) -> list[str]:
        """The chain's links in order."""
        return [self.link(a, b) for a, b in zip(self.names, self.names[1:], strict=False)]

    def coherence_time_s(self, memory: Memory) -> float:
        """The memory's coherence time in seconds (inf when it never decays)."""
        return memory.coherence_time if memory.coherence_time > 0 else math.inf


REC: Recorder | None = None


def _decay(f: float, dt_ps: int, coherence_time_s: float) -> float:
    if math.isinf(coherence_time_s):
        return f
    return depolarized(f, dt_ps * PS, coherence_time_s)


def install_probes() -> None:
    """Wrap the SeQUeNCe methods whose calls the recorder needs (once per process)."""
    orig_update = SingleHeraldedA.update_memory
    orig_succeed = SingleHeraldedA._entanglement_succeed
    orig_swap = EntanglementSwappingA_BDS.start
    orig_esb = EntanglementSwappingB_BDS.received_message
    orig_to_entangled = MemoryInfo.to_entangled
    orig_expire = ResourceManager.memory_expire

    def update_memory(self: SingleHeraldedA) -> bool | None:
        before = self.ent_round
        result = orig_update(self)
        rec = REC
        if rec is not None and before == 1 and self.ent_round == 2 and self.primary:
            now = self.owner.timeline.now()
            link = rec.link(self.owner.name, self.remote_node_name)
            rec.attempts[link].append((now, bool(result)))
            pair = rec.waiting_next.pop(link, None)
            if pair is not None:
                pair["next_outcome_ps"][link] = now
        return result

    def entanglement_succeed(self: SingleHeraldedA) -> None:
        rec = REC
        if rec is not None:
            now = self.owner.timeline.now()
            f = float(self.owner.timeline.quantum_manager.states[self.memory.qstate_key].state[0])
            if self.primary:
                link = rec.link(self.owner.name, self.remote_node_name)
                rec.fresh[link].append((now, self.memory.generation_time, f))
            rec.lineage[self.memory.name] = (now,)
            rec.pair_state[self.memory.name] = (now, f)
        orig_succeed(self)

    def swap_start(self: EntanglementSwappingA_BDS) -> None:
        rec = REC
        if rec is None:
            orig_swap(self)
            return
        tl = self.owner.timeline
        now = tl.now()
        left, right = self.left_memo, self.right_memo
        left_remote = tl.get_entity_by_name(self.left_remote_memo)
        right_remote = tl.get_entity_by_name(self.right_remote_memo)
        ready = max(rec.entangled_at[left.name], rec.entangled_at[right.name])
        lineage = rec.lineage[left.name] + rec.lineage[right.name]
        tc = rec.coherence_time_s(left)
        (t_l, f_l), (t_r, f_r) = rec.pair_state[left.name], rec.pair_state[right.name]
        model = werner_swap([_decay(f_l, now - t_l, tc), _decay(f_r, now - t_r, tc)])
        orig_swap(self)
        assert self.is_success, "swapping_success_prob is 1"
        f_after = float(tl.quantum_manager.states[left_remote.qstate_key].state[0])
        rec.swap_errors.append(abs(f_after - model))
        rec.swaps_per_node[self.owner.name] += 1
        for memory in (left_remote, right_remote):
            rec.lineage[memory.name] = lineage
            rec.pair_state[memory.name] = (now, f_after)
        if {self.left_node, self.right_node} == rec.ends:
            pair: dict[str, Any] = {
                "swap_ps": now,
                "swap_node": self.owner.name,
                "ready_at_swap_node_ps": ready,
                "links_heralded_ps": lineage,
                "F_swap": f_after,
                "end_ps": {},
                "F_end": {},
                "next_outcome_ps": {},
            }
            rec.pairs.append(pair)
            rec.final_of_memory[left_remote.name] = pair
            rec.final_of_memory[right_remote.name] = pair
            for link in rec.path_links():
                rec.waiting_next[link] = pair

    def esb_received(self: EntanglementSwappingB_BDS, src: str, msg: Any) -> None:
        rec = REC
        if rec is not None and msg.fidelity > 0 and self.owner.timeline.now() >= msg.expire_time:
            rec.lost_after_swap += 1
        orig_esb(self, src, msg)

    def to_entangled(self: MemoryInfo) -> None:
        orig_to_entangled(self)
        rec = REC
        if rec is not None:
            rec.entangled_at[self.memory.name] = self.memory.timeline.now()

    def memory_expire(self: ResourceManager, memory: Memory) -> None:
        rec = REC
        if rec is not None:
            rec.expired += 1
        orig_expire(self, memory)

    SingleHeraldedA.update_memory = update_memory  # type: ignore[method-assign]
    SingleHeraldedA._entanglement_succeed = entanglement_succeed  # type: ignore[method-assign]
    EntanglementSwappingA_BDS.start = swap_start  # type: ignore[method-assign]
    EntanglementSwappingB_BDS.received_message = esb_received  # type: ignore[method-assign]
    MemoryInfo.to_entangled = to_entangled  # type: ignore[method-assign]
    ResourceManager.memory_expire = memory_expire  # type: ignore[method-assign]


class RecordingRequestApp(RequestApp):
    """SeQUeNCe's RequestApp (each end consumes its half as soon as it learns of it), recorded."""

    def get_memory(self, info: MemoryInfo) -> None:
        """Record an end-to-end pair at this end, then hand over to RequestApp."""
        rec = REC
        if (
            rec is not None
            and info.state == "ENTANGLED"
            and self.node.name in rec.ends
            and info.remote_node in rec.ends
            and info.remote_node != self.node.name
        ):
            pair = rec.final_of_memory.pop(info.memory.name, None)
            if pair is not None:
                pair["end_ps"][self.node.name] = self.node.timeline.now()
                pair["F_end"][self.node.name] = float(info.fidelity)
        super().get_memory(info)


# ---------------------------------------------------------------------------------------------------
# Network construction


def chain_config(
    lengths_km: Sequence[float], coherence_time_s: float, seed: int, hw: dict[str, Any] = HARDWARE
) -> tuple[dict[str, Any], list[str]]:
    """RouterNetTopo config of a chain n0 - n1 - ... with one memory per link end.

    On each link the lower index requests generation and the higher index (the larger name) is
    SeQUeNCe's "primary": this orientation gives the 4 L / c attempt cycle (the other gives 5 L / c).
    Seeds: router n<i> gets ``seed + i``, the BSM node of link i gets ``seed + 100 + i``.
    """
    names = [f"n{i}" for i in range(len(lengths_km) + 1)]
    pos_m = np.concatenate([[0.0], np.cumsum(lengths_km)]) * 1000.0
    last = len(names) - 1
    nodes = [
        {
            "name": name,
            "type": RouterNetTopo.QUANTUM_ROUTER,
            "seed": seed + i,
            "memo_size": 1 if i in (0, last) else 2,
            "template": "router",
        }
        for i, name in enumerate(names)
    ]
    qconnections = [
        {
            "node1": names[i],
            "node2": names[i + 1],
            "attenuation": hw["fiber_loss_db_per_km"] / 1000.0,  # dB/m
            "distance": float(length) * 1000.0,  # m; the BSM sits in the middle
            "type": RouterNetTopo.MEET_IN_THE_MID,
            "seed": seed + 100 + i,
            "template": "bsm",
        }
        for i, length in enumerate(lengths_km)
    ]
    # Classical connections between every two routers, along the fibre (delay = distance / c).
    cconnections = [
        {"node1": names[i], "node2": names[j], "distance": float(pos_m[j] - pos_m[i])}
        for i in range(len(names))
        for j in range(i + 1, len(names))
    ]
    detector = {
        "efficiency": hw["detector_efficiency"],
        "dark_count": hw["detector_dark_count_per_s"],
        "count_rate": hw["detector_count_rate_hz"],
        "time_resolution": hw["detector_time_resolution_ps"],
    }
    templates = {
        "router": {
            "MemoryArray": {
                "fidelity": hw["raw_fidelity"],
                "frequency": hw["memory_frequency_hz"],
                "efficiency": hw["memory_efficiency"],
                "coherence_time": coherence_time_s,
                "decoherence_errors": list(hw["decoherence_errors"]),
                "cutoff_ratio": hw["cutoff_ratio"],
            },
            "EntanglementSwapping": {"swapping_success_prob": hw["swapping_success_prob"]},
        },
        "bsm": {
            "encoding_type": "single_heralded",
            "SingleHeraldedBSM": {
                "success_rate": hw["bsm_success_rate"],
                "detectors": [dict(detector), dict(detector)],
            },
        },
    }
    config = {
        "templates": templates,
        "nodes": nodes,
        "qconnections": qconnections,
        "cconnections": cconnections,
        "formalism": BELL_DIAGONAL_STATE_FORMALISM,
    }
    return config, names


def run_chain(
    lengths_km: Sequence[float], coherence_time_s: float, seed: int, duration_s: float
) -> tuple[Recorder, dict[str, Any], float]:
    """Run continuous demand between the chain's end nodes for ``duration_s`` after START_S.

    Returns the recorder, the request, and the wall time in seconds.
    """
    global REC
    config, names = chain_config(lengths_km, coherence_time_s, seed)
    start_ps = round(START_S * SECOND)
    end_ps = start_ps + round(duration_s * SECOND)
    config["stop_time"] = end_ps
    topo = RouterNetTopo(config)
    tl = topo.get_timeline()
    apps = {
        router.name: RecordingRequestApp(router)
        for router in topo.get_nodes_by_type(RouterNetTopo.QUANTUM_ROUTER)
        if router.name in (names[0], names[-1])
    }
    REC = Recorder(tl, names)
    rec = REC
    tl.init()
    request = {
        "initiator": names[0],
        "responder": names[-1],
        "start_s": START_S,
        "end_s": end_ps * PS,
        "memo_size": 1,
        "fidelity": REQUEST_FIDELITY,
        "app": "RequestApp (sequence.app.request_app), recorded by a subclass",
    }
    apps[names[0]].start(names[-1], start_ps, end_ps, 1, REQUEST_FIDELITY)
    wall = time.perf_counter()
    tl.run()
    wall = time.perf_counter() - wall
    REC = None
    return rec, request, wall


# ---------------------------------------------------------------------------------------------------
# Summaries of a run


def link_summary(
    rec: Recorder, link: str, length_km: float, coherence_time_s: float
) -> dict[str, Any]:
    """Attempts, success probability, cycle and fresh fidelity of one link."""
    outcomes = rec.attempts[link]
    n = len(outcomes)
    k = sum(1 for _, ok in outcomes if ok)
    p = k / n if n else float("nan")
    times = np.array([t for t, _ in outcomes], dtype=float)
    ok = np.array([s for _, s in outcomes], dtype=bool)
    gaps = np.diff(times)[~ok[:-1]] * PS if n > 1 else np.array([])  # after a failed attempt
    fresh = rec.fresh[link]
    herald_delay = np.array([(h - e) * PS for h, e, _ in fresh])
    f_fresh = np.array([f for _, _, f in fresh])
    model = np.array(
        [depolarized(HARDWARE["raw_fidelity"], d, coherence_time_s) for d in herald_delay]
        if not math.isinf(coherence_time_s)
        else [HARDWARE["raw_fidelity"]] * len(fresh)
    )
    return {
        "link": link,
        "length_km": float(length_km),
        "attempts": n,
        "successes": k,
        "p_attempt": p,
        "p_attempt_se": math.sqrt(p * (1 - p) / n) if n else float("nan"),
        "p_attempt_analytic": p_attempt_analytic(length_km),
        "cycle_s": float(np.median(gaps)) if gaps.size else float("nan"),
        "cycle_s_min": float(gaps.min()) if gaps.size else float("nan"),
        "cycle_s_max": float(gaps.max()) if gaps.size else float("nan"),
        "cycle_over_L_per_c": float(np.median(gaps)) / (length_km * 1000.0 / LIGHT_SPEED_M_PER_S)
        if gaps.size
        else float("nan"),
        "herald_delay_s": float(herald_delay.mean()) if fresh else float("nan"),
        "F_fresh_mean": float(f_fresh.mean()) if fresh else float("nan"),
        "F_fresh_std": float(f_fresh.std()) if fresh else float("nan"),
        "F_fresh_model_max_abs_err": float(np.abs(f_fresh - model).max())
        if fresh
        else float("nan"),
    }


def chain_summary(
    rec: Recorder,
    lengths_km: Sequence[float],
    coherence_time_s: float,
    request: dict[str, Any],
    tau_s: float,
    batches: int = 20,
) -> dict[str, Any]:
    """Throughput, delivered fidelity and the timing facts of one chain run."""
    names = rec.names
    initiator, responder = names[0], names[-1]
    start_s, end_s = request["start_s"], request["end_s"]
    links = rec.path_links()
    complete = [p for p in rec.pairs if len(p["end_ps"]) == 2]
    partial = [p for p in rec.pairs if len(p["end_ps"]) == 1]
    deliver_ps = np.array([max(p["end_ps"].values()) for p in complete], dtype=float)
    in_window = (deliver_ps * PS >= start_s) & (deliver_ps * PS < end_s)
    complete = [p for p, keep in zip(complete, in_window, strict=True) if keep]
    deliver_ps = deliver_ps[in_window]

    def later_end(p: dict[str, Any]) -> str:
        return responder if p["end_ps"][responder] >= p["end_ps"][initiator] else initiator

    f_del = np.array([p["F_end"][later_end(p)] for p in complete])
    f_init = np.array([p["F_end"][initiator] for p in complete])
    f_resp = np.array([p["F_end"][responder] for p in complete])
    duration = end_s - start_s
    counts, f_batch = batch_means(deliver_ps * PS, f_del, start_s, end_s, batches)
    batch_len = duration / batches
    thr = len(complete) / duration
    thr_se = float(counts.std(ddof=1) / math.sqrt(batches) / batch_len)
    f_se = float(np.nanstd(f_batch, ddof=1) / math.sqrt(batches))

    # Delivered fidelity against the law: each end's memory decays until that end learns of the pair.
    delivery_err = []
    tc = coherence_time_s
    for p in complete:
        w = (4 * p["F_swap"] - 1) / 3
        if not math.isinf(tc):
            for node in (initiator, responder):
                w *= math.exp(-4 * (p["end_ps"][node] - p["swap_ps"]) * PS / (3 * tc))
        delivery_err.append(abs(p["F_end"][later_end(p)] - (1 + 3 * w) / 4))

    def ps_to_s(x: np.ndarray) -> np.ndarray:
        return x * PS

    all_ready = np.array([max(p["links_heralded_ps"]) for p in complete], dtype=float)
    first_herald = np.array([min(p["links_heralded_ps"]) for p in complete], dtype=float)
    swap = np.array([p["swap_ps"] for p in complete], dtype=float)
    ready_node = np.array([p["ready_at_swap_node_ps"] for p in complete], dtype=float)
    end_i = np.array([p["end_ps"][initiator] for p in complete], dtype=float)
    end_r = np.array([p["end_ps"][responder] for p in complete], dtype=float)
    next_after_ready = {}
    for link in links:
        vals = [
            p["next_outcome_ps"][link] - max(p["links_heralded_ps"])
            for p in complete
            if link in p["next_outcome_ps"]
        ]
        next_after_ready[link] = stats(np.array(vals) * PS)
    eff_busy = [
        (p["next_outcome_ps"][link] - max(p["links_heralded_ps"])) * PS / tau_s - 1
        for p in complete
        for link in links
        if link in p["next_outcome_ps"]
    ]

    pos_km = np.concatenate([[0.0], np.cumsum(lengths_km)])
    edges = np.round(np.arange(0.25, 1.0 + 1e-9, 0.005), 3)
    hist, _ = np.histogram(f_del, bins=edges)
    quantiles = {
        f"p{q:02d}": float(np.percentile(f_del, q)) for q in (1, 5, 10, 25, 50, 75, 90, 95, 99)
    }
    return {
        "delivered": len(complete),
        "delivered_at_one_end_only": len(partial),
        "throughput_per_s": thr,
        "throughput_se_per_s": thr_se,
        "throughput_se_method": f"batch means over {batches} equal time batches",
        "batch_counts": counts.astype(int).tolist(),
        "fidelity": {
            "definition": "F at the later-informed end node, as SeQUeNCe's RequestApp records it "
            "(memory.fidelity after bds_decohere of both memories; each end's memory stops "
            "decaying when that end learns of the pair and consumes it)",
            **stats(f_del),
            "se_mean": f_se,
            **quantiles,
            "hist_bins": {"start": 0.25, "stop": 1.0, "width": 0.005},
            "hist_counts": hist.astype(int).tolist(),
            "mean_at_initiator": float(f_init.mean()) if f_init.size else float("nan"),
            "mean_at_responder": float(f_resp.mean()) if f_resp.size else float("nan"),
            "delivery_law_max_abs_err": float(max(delivery_err)) if delivery_err else float("nan"),
        },
        "swap_law_max_abs_err": float(max(rec.swap_errors)) if rec.swap_errors else float("nan"),
        "swaps": len(rec.swap_errors),
        "swaps_per_node": dict(sorted(rec.swaps_per_node.items())),
        "memory_expirations": rec.expired,
        "lost_after_swap_expired": rec.lost_after_swap,
        "links": [
            link_summary(rec, link, lengths_km[i], coherence_time_s) for i, link in enumerate(links)
        ],
        "classical_delay_s": {
            "per_link": [float(L * 1000.0 / LIGHT_SPEED_M_PER_S) for L in lengths_km],
            "end_to_end": float(pos_km[-1] * 1000.0 / LIGHT_SPEED_M_PER_S),
            "node_to_bsm": [float(L * 500.0 / LIGHT_SPEED_M_PER_S) for L in lengths_km],
        },
        "timing_s": {
            "all_links_ready_to_final_swap": stats(ps_to_s(swap - all_ready)),
            "both_sides_ready_to_final_swap_at_swap_node": stats(ps_to_s(swap - ready_node)),
            "final_swap_to_initiator": stats(ps_to_s(end_i - swap)),
            "final_swap_to_responder": stats(ps_to_s(end_r - swap)),
            "all_links_ready_to_delivery": stats(ps_to_s(np.maximum(end_i, end_r) - all_ready)),
            "oldest_link_pair_wait": stats(ps_to_s(all_ready - first_herald)),
            "next_attempt_outcome_after_all_ready": next_after_ready,
            "inter_delivery": stats(ps_to_s(np.diff(np.sort(deliver_ps)))),
        },
        "slot_equivalents": {
            "tau_s": tau_s,
            "all_links_ready_to_delivery_slots": stats(
                ps_to_s(np.maximum(end_i, end_r) - all_ready) / tau_s
            ),
            "effective_busy_slots": stats(eff_busy),
            "effective_busy_definition": "(next attempt outcome on a path link - all links ready) / tau - 1; "
            "the slot model gives exactly its delay ceil(signalling_latency * h) here",
        },
    }


# ---------------------------------------------------------------------------------------------------
# Scenario a: decay law of a stored pair


class _Reader:
    """Event target that reads a pair's fidelity (both memories decohered up to now)."""

    def __init__(self, timeline: Timeline) -> None:
        self.tl = timeline
        self.out: dict[int, float] = {}

    def read(self, idx: int, m1: Memory, m2: Memory) -> None:
        m1.bds_decohere()
        m2.bds_decohere()
        self.out[idx] = float(self.tl.quantum_manager.states[m1.qstate_key].state[0])


def _bds_pair(
    tl: Timeline, name: str, f0: float, tc: float, t0_ps: int, errors: list[float]
) -> tuple[Memory, Memory]:
    """Two SeQUeNCe memories sharing a Werner pair of fidelity f0, stored since t0_ps."""
    mems = []
    for side in "ab":
        m = Memory(
            f"{name}.{side}",
            tl,
            fidelity=f0,
            frequency=0,
            efficiency=1,
            coherence_time=tc,
            wavelength=500,
            decoherence_errors=errors,
        )
        m.last_update_time = t0_ps
        mems.append(m)
    rest = (1 - f0) / 3
    tl.quantum_manager.set([mems[0].qstate_key, mems[1].qstate_key], [f0, rest, rest, rest])
    return mems[0], mems[1]


def scenario_decay(tau_s: float) -> dict[str, Any]:
    """F(t) of stored Werner pairs in SeQUeNCe's Memory.bds_decohere, against the depolarizing law."""
    tl = Timeline(formalism=BELL_DIAGONAL_STATE_FORMALISM)
    reader = _Reader(tl)
    t0_ps = 1_000_000  # SeQUeNCe skips decoherence for a memory last updated at t = 0
    tau_ps = round(tau_s / PS)
    ages_slots = [0, 1, 2, 5, 10, 20, 50, 100, 200, 1000]
    errors = list(HARDWARE["decoherence_errors"])
    points: list[dict[str, Any]] = []
    idx = 0
    for f0 in (0.92, 0.8):
        for tc in COHERENCE_TIMES_S:
            for k in ages_slots:
                m1, m2 = _bds_pair(tl, f"decay{idx}", f0, tc, t0_ps, errors)
                tl.schedule(Event(t0_ps + k * tau_ps, Process(reader, "read", [idx, m1, m2])))
                points.append(
                    {
                        "idx": idx,
                        "F0": f0,
                        "coherence_time_s": tc,
                        "age_slots": k,
                        "t_s": k * tau_ps * PS,
                    }
                )
                idx += 1
    # One pair read again every slot (the decay composes: a chain of reads equals one long read).
    repeated = []
    m1, m2 = _bds_pair(tl, "repeated", 0.92, COHERENCE_TIMES_S[0], t0_ps, errors)
    for k in range(1, 101):
        tl.schedule(Event(t0_ps + k * tau_ps, Process(reader, "read", [10_000 + k, m1, m2])))
        repeated.append(k)
    tl.init()
    tl.run()
    for pt in points:
        rho = rho_per_slot(tau_s, pt["coherence_time_s"])
        pt["F_sequence"] = reader.out.pop(pt["idx"])
        pt["F_model"] = 0.25 + (pt["F0"] - 0.25) * rho ** pt["age_slots"]
        pt["abs_err"] = abs(pt["F_sequence"] - pt["F_model"])
        del pt["idx"]
    rho0 = rho_per_slot(tau_s, COHERENCE_TIMES_S[0])
    rep_err = max(abs(reader.out[10_000 + k] - (0.25 + 0.67 * rho0**k)) for k in repeated)
    return {
        "what": "a Werner pair in two SeQUeNCe Memory objects (Bell-diagonal formalism, decoherence_errors "
        "1/3 each), read with Memory.bds_decohere on both memories at age t",
        "model": "F = 1/4 + (F0 - 1/4) * rho**age_slots, rho = exp(-8 tau / (3 T_c))",
        "tau_s": tau_s,
        "decoherence_errors": errors,
        "rho_per_slot": {str(tc): rho_per_slot(tau_s, tc) for tc in COHERENCE_TIMES_S},
        "points": points,
        "max_abs_err": max(p["abs_err"] for p in points),
        "repeated_reads": {
            "F0": 0.92,
            "coherence_time_s": COHERENCE_TIMES_S[0],
            "reads": len(repeated),
            "max_abs_err": rep_err,
        },
    }


# ---------------------------------------------------------------------------------------------------
# Scenario b: swap fidelity


def scenario_swap() -> dict[str, Any]:
    """Swapped fidelity from SeQUeNCe's EntanglementSwappingA_BDS.swapping_res on Werner inputs."""
    tl = Timeline(formalism=BELL_DIAGONAL_STATE_FORMALISM)
    template = {"MemoryArray": {"coherence_time": -1}}
    a = QuantumRouter("A", tl, 1, component_templates=template)
    b = QuantumRouter("B", tl, 2, component_templates=template)
    c = QuantumRouter("C", tl, 2, component_templates=template)
    d = QuantumRouter("D", tl, 1, component_templates=template)

    def mem(node: QuantumRouter, i: int) -> Memory:
        return node.components[node.memo_arr_name][i]

    def entangle(x: Memory, x_node: str, y: Memory, y_node: str, f: float) -> None:
        rest = (1 - f) / 3
        tl.quantum_manager.set([x.qstate_key, y.qstate_key], [f, rest, rest, rest])
        x.entangled_memory = {"node_id": y_node, "memo_id": y.name}
        y.entangled_memory = {"node_id": x_node, "memo_id": x.name}
        x.fidelity = y.fidelity = f

    def swap_at(node: QuantumRouter, left: Memory, right: Memory) -> list[float]:
        protocol = EntanglementSwappingA_BDS(node, f"ESA.{node.name}", left, right, success_prob=1)
        return [float(v) for v in protocol.swapping_res()]

    grid = [round(0.5 + 0.05 * i, 2) for i in range(11)]
    pairs = []
    for f1 in grid:
        for f2 in grid:
            entangle(mem(a, 0), "A", mem(b, 0), "B", f1)
            entangle(mem(b, 1), "B", mem(c, 0), "C", f2)
            res = swap_at(b, mem(b, 0), mem(b, 1))
            model = werner_swap([f1, f2])
            pairs.append(
                {
                    "F1": f1,
                    "F2": f2,
                    "F_sequence": res[0],
                    "F_werner": model,
                    "abs_err": abs(res[0] - model),
                    "output_werner": max(res[1:]) - min(res[1:]) < 1e-15,
                }
            )
    grid3 = [0.6, 0.7, 0.8, 0.9, 1.0]
    triples = []
    for f1 in grid3:
        for f2 in grid3:
            for f3 in grid3:
                entangle(mem(a, 0), "A", mem(b, 0), "B", f1)
                entangle(mem(b, 1), "B", mem(c, 0), "C", f2)
                entangle(mem(c, 1), "C", mem(d, 0), "D", f3)
                first = swap_at(b, mem(b, 0), mem(b, 1))
                tl.quantum_manager.set([mem(a, 0).qstate_key, mem(c, 0).qstate_key], first)
                mem(c, 0).entangled_memory = {"node_id": "A", "memo_id": mem(a, 0).name}
                res = swap_at(c, mem(c, 0), mem(c, 1))
                model = werner_swap([f1, f2, f3])
                triples.append(
                    {
                        "F1": f1,
                        "F2": f2,
                        "F3": f3,
                        "F_sequence": res[0],
                        "F_werner": model,
                        "abs_err": abs(res[0] - model),
                    }
                )
    return {
        "what": "EntanglementSwappingA_BDS.swapping_res (is_twirled=True, gate_fid = meas_fid = 1) on Werner inputs; "
        "three pairs: swap at B, then at C",
        "model": "w_i = (4 F_i - 1) / 3, F = (1 + 3 prod w_i) / 4 (swap_model='werner')",
        "pairs": pairs,
        "max_abs_err": max(p["abs_err"] for p in pairs),
        "chain3": triples,
        "chain3_max_abs_err": max(t["abs_err"] for t in triples),
    }


def scenario_swap_fullstack(duration_s: float, seed: int) -> dict[str, Any]:
    """End-to-end pairs through the whole stack with memories that never decay (coherence_time = -1)."""
    out = []
    for lengths in ([10.0, 10.0], [10.0, 10.0, 10.0, 10.0]):
        rec, _, wall = run_chain(lengths, -1, seed, duration_s)
        f = [p["F_end"][rec.names[-1]] for p in rec.pairs if len(p["end_ps"]) == 2]
        model = werner_swap([HARDWARE["raw_fidelity"]] * len(lengths))
        out.append(
            {
                "lengths_km": lengths,
                "coherence_time_s": None,
                "seed": seed,
                "sim_time_s": duration_s,
                "delivered": len(f),
                "F_sequence_min": min(f),
                "F_sequence_max": max(f),
                "F_werner": model,
                "max_abs_err": max(abs(x - model) for x in f),
                "wall_s": wall,
            }
        )
    return {
        "what": "RequestApp between the chain ends; coherence_time -1 (no decay); F of every delivered pair",
        "chains": out,
    }


# ---------------------------------------------------------------------------------------------------
# Scenario c: generation probability over fibre length


def scenario_generation(
    lengths_km: Sequence[float], seed: int, rel_se: float, quick: bool
) -> dict[str, Any]:
    """Two-node links: p per attempt, attempt cycle, fresh-pair fidelity, at each length."""
    links = []
    for i, length in enumerate(lengths_km):
        p_guess = p_attempt_analytic(length)
        attempts = math.ceil((1 - p_guess) / (p_guess * rel_se**2))
        if quick:
            attempts = min(attempts, 3000)
        cycle_guess = 4 * length * 1000.0 / LIGHT_SPEED_M_PER_S
        duration = attempts * cycle_guess
        tc = COHERENCE_TIMES_S[0]
        rec, _, wall = run_chain([length], tc, seed + 10 * i, duration)
        summary = link_summary(rec, rec.path_links()[0], length, tc)
        summary.update(
            {"coherence_time_s": tc, "seed": seed + 10 * i, "sim_time_s": duration, "wall_s": wall}
        )
        # Fresh fidelity at the long coherence time: a short run (the heralding process does not depend on T_c).
        tc2 = COHERENCE_TIMES_S[1]
        rec2, _, _ = run_chain([length], tc2, seed + 10 * i + 5, min(duration, 500 * cycle_guess))
        s2 = link_summary(rec2, rec2.path_links()[0], length, tc2)
        summary["F_fresh_by_coherence_time"] = {
            str(tc): {
                "mean": summary["F_fresh_mean"],
                "std": summary["F_fresh_std"],
                "n": summary["successes"],
                "model_max_abs_err": summary["F_fresh_model_max_abs_err"],
            },
            str(tc2): {
                "mean": s2["F_fresh_mean"],
                "std": s2["F_fresh_std"],
                "n": s2["successes"],
                "model_max_abs_err": s2["F_fresh_model_max_abs_err"],
            },
        }
        links.append(summary)
        print(
            f"  generation {length:5.1f} km: p = {summary['p_attempt']:.4f} +- {summary['p_attempt_se']:.4f} "
            f"({summary['attempts']} attempts), cycle {summary['cycle_s'] * 1e6:.4f} us, wall {wall:.1f} s",
            flush=True,
        )
    ref = next(x for x in links if x["length_km"] == REFERENCE_KM)
    tau = ref["cycle_s"]
    for x in links:
        x["p_loss_model"] = min(
            1.0,
            ref["p_attempt"]
            * 10 ** (-HARDWARE["fiber_loss_db_per_km"] * (x["length_km"] - REFERENCE_KM) / 10),
        )
        x["attempts_per_slot"] = tau / x["cycle_s"]
        x["p_per_slot_rate_matched"] = 1 - (1 - x["p_attempt"]) ** (tau / x["cycle_s"])
    return {
        "what": "two routers, one memory each, RequestApp between them (each heralded pair consumed at once); "
        "p = heralded / attempts at the primary end",
        "coherence_time_s": COHERENCE_TIMES_S[0],
        "target_rel_se": rel_se,
        "reference_km": REFERENCE_KM,
        "links": links,
    }


# ---------------------------------------------------------------------------------------------------
# Scenario d: end-to-end continuous demand over chains


CHAINS: list[dict[str, Any]] = [
    {"name": "chain3_10_10", "lengths_km": [10.0, 10.0], "duration_s": 6.0},
    {"name": "chain5_5_10_10_20", "lengths_km": [5.0, 10.0, 10.0, 20.0], "duration_s": 13.0},
    {"name": "chain5_10_10_10_10", "lengths_km": [10.0, 10.0, 10.0, 10.0], "duration_s": 10.0},
]


def scenario_chains(tau_s: float, seed: int, quick: bool) -> list[dict[str, Any]]:
    """Each chain at each coherence time."""
    out = []
    for ci, chain in enumerate(CHAINS):
        for ti, tc in enumerate(COHERENCE_TIMES_S):
            duration = chain["duration_s"] * (0.05 if quick else 1.0)
            run_seed = seed + 1000 * ci + 200 * ti
            rec, request, wall = run_chain(chain["lengths_km"], tc, run_seed, duration)
            summary = chain_summary(rec, chain["lengths_km"], tc, request, tau_s)
            out.append(
                {
                    "name": f"{chain['name']}_tc{tc:g}s",
                    "lengths_km": chain["lengths_km"],
                    "nodes": rec.names,
                    "coherence_time_s": tc,
                    "cutoff_ratio": HARDWARE["cutoff_ratio"],
                    "cutoff_s_after_emission": HARDWARE["cutoff_ratio"] * tc,
                    "seed": run_seed,
                    "seeds_rule": "router n<i>: seed + i; BSM of link i: seed + 100 + i",
                    "request": request,
                    "sim_time_s": duration,
                    "wall_s": wall,
                    **summary,
                }
            )
            f = summary["fidelity"]
            print(
                f"  {out[-1]['name']}: {summary['delivered']} pairs, {summary['throughput_per_s']:.1f} +- "
                f"{summary['throughput_se_per_s']:.1f} /s, F mean {f['mean']:.4f} p10 {f['p10']:.4f}, wall {wall:.1f} s",
                flush=True,
            )
    return out


# ---------------------------------------------------------------------------------------------------
# Slot-model mapping and the slot model's own analytic predictions


def geometric_max2_mean(p: float) -> float:
    """E[max(G1, G2)] for two independent geometric variables on {1, 2, ...}."""
    return 2 / p - 1 / (p * (2 - p))


def slot_prediction_chain3(
    p: float,
    f0: float,
    rho: float,
    delay: int,
    preposition_rho: float | None = None,
    kmax: int = 2000,
) -> dict[str, float]:
    """Slot model (block policy, no expiry, F_min = 0) on a 3-node chain with one request always waiting.

    Both links draw each slot with p; when both hold a pair (the younger one of age 0, the other of age
    k) they are swapped, the pair reaches the ends ``delay`` slots later (decaying by preposition_rho),
    and the links generate nothing in those slots. k = |G1 - G2| has P(0) = p/(2-p),
    P(k) = 2 p (1-p)^k / (2-p).
    """
    prho = rho if preposition_rho is None else preposition_rho
    ks = np.arange(kmax + 1)
    prob = np.where(ks == 0, p / (2 - p), 2 * p * (1 - p) ** ks / (2 - p))
    w0 = (4 * f0 - 1) / 3
    f = 0.25 + 0.75 * w0 * w0 * rho**ks * prho**delay
    mean = float((prob * f).sum())
    std = float(math.sqrt(max(0.0, (prob * f * f).sum() - mean * mean)))
    order = np.argsort(f)
    cdf = np.cumsum(prob[order])

    def quantile(q: float) -> float:
        return float(f[order][np.searchsorted(cdf, q)])

    cycle = geometric_max2_mean(p) + delay
    return {
        "delay_slots": delay,
        "cycle_slots": cycle,
        "throughput_per_slot": 1 / cycle,
        "F_mean": mean,
        "F_std": std,
        "F_p10": quantile(0.10),
        "F_p50": quantile(0.50),
    }


def slot_prediction_chain(
    p_links: Sequence[float], f0: float, rho: float, delay: int, mmax: int = 20000
) -> dict[str, float]:
    """Slot model (block policy, no expiry, F_min = 0) on a chain with one request always waiting.

    Link i first holds a pair in slot G_i ~ Geometric(p_i); all are swapped in slot M = max G_i, the
    pair reaches the ends ``delay`` slots later (decaying by rho, preposition_rho = rho) and the links
    draw again from slot M + delay + 1. So the cycle is E[M] + delay and
    F - 1/4 = 3/4 w0^h rho^delay prod_i rho^(M - G_i). Conditioning on M = m:
    E[prod_i rho^(M - G_i) 1{M = m}] = prod_i A_i(m) - prod_i B_i(m), with
    A_i(m) = sum_{g <= m} P(G_i = g) rho^(m - g) and B_i(m) the same sum over g <= m - 1.
    """
    m = np.arange(1, mmax + 1)
    w0 = (4 * f0 - 1) / 3

    def moment(r: float) -> float:
        # A_i(m) = sum_{g=1..m} p (1-p)^(g-1) r^(m-g), by recursion A(m) = r A(m-1) + p (1-p)^(m-1).
        a_prod = np.ones_like(m, dtype=float)
        b_prod = np.ones_like(m, dtype=float)
        for p in p_links:
            a = np.empty(m.size)
            acc = 0.0
            for j, mm in enumerate(m):
                acc = r * acc + p * (1 - p) ** (mm - 1)
                a[j] = acc
            b = np.concatenate([[0.0], a[:-1]]) * r  # B(m) = r A(m - 1)
            a_prod *= a
            b_prod *= b
        return float((a_prod - b_prod).sum())

    cdf = np.ones_like(m, dtype=float)
    for p in p_links:
        cdf *= 1 - (1 - p) ** m
    e_max = float((1 - np.concatenate([[0.0], cdf[:-1]])).sum())  # E[M] = sum_{m>=1} P(M >= m)
    h = len(p_links)
    c1 = 0.75 * w0**h * rho**delay
    e1, e2 = moment(rho), moment(rho * rho)
    mean = 0.25 + c1 * e1
    std = c1 * math.sqrt(max(0.0, e2 - e1 * e1))
    cycle = e_max + delay
    return {
        "delay_slots": delay,
        "cycle_slots": cycle,
        "throughput_per_slot": 1 / cycle,
        "F_mean": mean,
        "F_std": std,
    }


RECOMMENDED_SIGNALLING_LATENCY = 0.5  # slots per hop: delay 1 on 2 hops, 2 on 4 hops (see README)


def mapping(generation: dict[str, Any], chains: list[dict[str, Any]]) -> dict[str, Any]:
    """Recommended slot-model parameters from the measurements, and analytic slot-model predictions.

    p per attempt is SeQUeNCe's exact value for its parameters (``p_attempt_analytic``; the runs
    agree within their standard errors); a link whose attempt cycle differs from tau gets the
    rate-matched per-slot probability 1 - (1 - p)^(tau / cycle).
    """
    ref = next(x for x in generation["links"] if x["length_km"] == REFERENCE_KM)
    tau = ref["cycle_s"]
    p_ref = p_attempt_analytic(REFERENCE_KM)
    loss_db = HARDWARE["fiber_loss_db_per_km"]

    def rate_matched(p: float, cycle_s: float) -> float:
        return 1 - (1 - p) ** (tau / cycle_s)

    def loss_model(length_km: float) -> float:
        return min(1.0, p_ref * 10 ** (-loss_db * (length_km - REFERENCE_KM) / 10))

    per_tc = {}
    for tc in COHERENCE_TIMES_S:
        rho = rho_per_slot(tau, tc)
        per_tc[str(tc)] = {
            "F0": ref["F_fresh_by_coherence_time"][str(tc)]["mean"],
            "rho": rho,
            "preposition_rho": rho,
            "max_lifetime_slots": math.floor(
                (HARDWARE["cutoff_ratio"] * tc - ref["herald_delay_s"]) / tau
            ),
        }
    per_length = {}
    for x in generation["links"]:
        p = p_attempt_analytic(x["length_km"])
        per_length[f"{x['length_km']:g}"] = {
            "p_attempt_analytic": p,
            "p_attempt_measured": x["p_attempt"],
            "p_attempt_measured_se": x["p_attempt_se"],
            "cycle_s": x["cycle_s"],
            "attempts_per_slot": tau / x["cycle_s"],
            "p_gen_rate_matched": rate_matched(p, x["cycle_s"]),
            "p_gen_length_model_loss": loss_model(x["length_km"]),
            "loss_model_over_rate_matched": loss_model(x["length_km"])
            / rate_matched(p, x["cycle_s"]),
        }
    per_chain = {}
    for ch in chains:
        h = len(ch["lengths_km"])
        m = per_tc[str(ch["coherence_time_s"])]
        cycles = [x["cycle_s"] for x in ch["links"]]
        p_gen = [
            rate_matched(p_attempt_analytic(x["length_km"]), x["cycle_s"]) for x in ch["links"]
        ]
        busy = ch["slot_equivalents"]["effective_busy_slots"]["mean"]
        ready_to_delivery = ch["slot_equivalents"]["all_links_ready_to_delivery_slots"]["mean"]
        d_best = round(busy)
        preds = [
            {**pred, "throughput_per_s": pred["throughput_per_slot"] / tau}
            for pred in (slot_prediction_chain(p_gen, m["F0"], m["rho"], d) for d in range(4))
        ]
        seq = {
            "throughput_per_s": ch["throughput_per_s"],
            "throughput_se_per_s": ch["throughput_se_per_s"],
            "F_mean": ch["fidelity"]["mean"],
            "F_mean_se": ch["fidelity"]["se_mean"],
            "F_std": ch["fidelity"]["std"],
        }
        best = preds[d_best]
        entry: dict[str, Any] = {
            "hops": h,
            "lengths_km": ch["lengths_km"],
            "coherence_time_s": ch["coherence_time_s"],
            "p_gen_per_link": p_gen,
            "p_gen_per_link_measured_rate_matched": [
                rate_matched(x["p_attempt"], c) for x, c in zip(ch["links"], cycles, strict=True)
            ],
            "p_gen_per_link_length_model_loss": [loss_model(x["length_km"]) for x in ch["links"]],
            "attempts_per_slot_per_link": [tau / c for c in cycles],
            "F0": m["F0"],
            "rho": m["rho"],
            "preposition_rho": m["preposition_rho"],
            "max_lifetime_slots": m["max_lifetime_slots"],
            "effective_busy_slots_mean": busy,
            "all_links_ready_to_delivery_slots_mean": ready_to_delivery,
            "delay_slots_nearest": d_best,
            "signalling_latency_range_for_nearest_delay": [(d_best - 1) / h, d_best / h],
            "delay_slots_at_recommended_latency": math.ceil(RECOMMENDED_SIGNALLING_LATENCY * h),
            "slot_model_predictions": preds,
            "slot_model_predictions_note": "analytic, for p_gen_per_link, F0, rho = preposition_rho, "
            "block policy, one request always waiting, delay_slots = ceil(signalling_latency * hops); "
            "ignores max_lifetime and F_min",
            "sequence": seq,
            "nearest_delay_rel_diff": {
                "throughput": best["throughput_per_s"] / seq["throughput_per_s"] - 1,
                "F_mean": best["F_mean"] / seq["F_mean"] - 1,
            },
        }
        if h == 2:
            # SeQUeNCe in continuous time: after all links are ready at T, link a's next outcome
            # comes at T + t_a, link b's at T + t_b (t_a < t_b < t_a + tau), then every tau. Both
            # are ready again at t_a + tau (E[max] - 1) + (t_b - t_a) P(X_b >= X_a), P = 1 / (2 - p).
            nxt = sorted(
                v["mean"] for v in ch["timing_s"]["next_attempt_outcome_after_all_ready"].values()
            )
            p = p_attempt_analytic(ch["lengths_km"][0])
            cycle = nxt[0] + tau * (geometric_max2_mean(p) - 1) + (nxt[1] - nxt[0]) / (2 - p)
            entry["sequence_continuous_time_check"] = {
                "restart_offsets_s": nxt,
                "predicted_mean_inter_delivery_s": cycle,
                "measured_mean_inter_delivery_s": ch["timing_s"]["inter_delivery"]["mean"],
                "predicted_throughput_per_s": 1 / cycle,
            }
            f0, rho = m["F0"], m["rho"]
            entry["slot_model_quantiles"] = [
                {
                    k: v
                    for k, v in slot_prediction_chain3(p, f0, rho, d).items()
                    if k.startswith("F_")
                }
                | {"delay_slots": d}
                for d in range(2)
            ]
        per_chain[ch["name"]] = entry
    return {
        "recommended": {
            "tau_s": tau,
            "tau_source": f"attempt cycle of the {REFERENCE_KM:g} km link (4 L / c + one 12.5 ns time bin)",
            "p_gen": p_ref,
            "p_gen_source": f"SeQUeNCe's exact p per attempt at {REFERENCE_KM:g} km: "
            "bsm_success_rate * (detector_efficiency * memory_efficiency * 10**(-0.2 * L / 20))**2; "
            f"measured {ref['p_attempt']:.5f} +- {ref['p_attempt_se']:.5f}",
            "decay_model": "depolarizing",
            "swap_model": "werner",
            "swap_success": 1.0,
            "link_capacity": 1,
            "link_pool_policy": "block",
            "cutoff_fidelity": None,
            "F_min": 0.0,
            "signalling_latency": RECOMMENDED_SIGNALLING_LATENCY,
            "length_model": "per-edge p_gen (rate-matched, per_length / per_chain); "
            "length_model='loss' ignores the attempt cycle",
            "by_coherence_time_s": per_tc,
        },
        "per_length": per_length,
        "per_chain": per_chain,
    }


# ---------------------------------------------------------------------------------------------------


def determinism_check(seed: int) -> dict[str, Any]:
    """The same seed twice gives the same deliveries (times and fidelities)."""
    digests = []
    for _ in range(2):
        rec, _, _ = run_chain([10.0, 10.0], COHERENCE_TIMES_S[0], seed, 0.2)
        blob = json.dumps([[p["end_ps"], p["F_end"]] for p in rec.pairs], sort_keys=True)
        digests.append(hashlib.sha256(blob.encode()).hexdigest())
    return {
        "runs": 2,
        "sim_time_s": 0.2,
        "identical": digests[0] == digests[1],
        "sha256": digests[0],
    }


def _finite(obj: Any) -> Any:
    """The same data with NaN and infinities as null (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    """Run every scenario and write the JSON file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default="tests/data/sequence_reference.json", help="output JSON path"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short runs, for a smoke test only (not reference data)",
    )
    parser.add_argument("--seed", type=int, default=20250111, help="base seed")
    parser.add_argument(
        "--remap",
        action="store_true",
        help="recompute only slot_model_mapping of an existing --out file (no SeQUeNCe run)",
    )
    args = parser.parse_args(argv)
    if args.remap:
        out = Path(args.out)
        result = json.loads(out.read_text())
        sc = result["scenarios"]
        result["slot_model_mapping"] = mapping(sc["generation"], sc["chains"])
        out.write_text(json.dumps(_finite(result), indent=1, allow_nan=False) + "\n")
        print(f"remapped {out}")
        return 0

    configure_sequence()
    install_probes()
    wall0 = time.perf_counter()
    seed = args.seed

    print("generation over fibre length", flush=True)
    generation = scenario_generation(
        [1.0, 5.0, 10.0, 25.0, 50.0], seed, rel_se=0.012, quick=args.quick
    )
    tau = next(x for x in generation["links"] if x["length_km"] == REFERENCE_KM)["cycle_s"]
    print("decay law", flush=True)
    decay = scenario_decay(tau)
    print(f"  max |F - law| = {decay['max_abs_err']:.3g}", flush=True)
    print("swap", flush=True)
    swap = scenario_swap()
    print(
        f"  max |F - Werner| = {swap['max_abs_err']:.3g} (3 pairs: {swap['chain3_max_abs_err']:.3g})",
        flush=True,
    )
    fullstack = scenario_swap_fullstack(0.05 if args.quick else 0.2, seed + 7)
    print("determinism", flush=True)
    determinism = determinism_check(seed + 9)
    print("chains", flush=True)
    chains = scenario_chains(tau, seed + 50_000, args.quick)

    result = {
        "schema_version": SCHEMA_VERSION,
        "generated_by": "validation/sequence_reference.py (make sequence-reference)",
        "quick": args.quick,
        "versions": {
            "sequence": importlib.metadata.version("sequence"),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": importlib.metadata.version("scipy"),
        },
        "base_seed": seed,
        "modes": {
            "generation": "SINGLE_HERALDED (EntanglementGenerationA/B.set_global_type)",
            "formalism": "bell_diagonal (RouterNetTopo config 'formalism'; EntanglementSwappingA/B.set_formalism)",
            "swapping": "EntanglementSwappingA_BDS, is_twirled=True (Werner in, Werner out)",
            "swapping_order": "SeQUeNCe's default reservation rules: nested (doubling) swapping; odd path indices "
            "first, then the reduced path; each node swaps as soon as it holds its two designated pairs",
            "memory_decoherence": "Memory.bds_decohere: Pauli channel at rate 1/coherence_time per memory, "
            "weights decoherence_errors",
            "app": "RequestApp at both end nodes: one reservation from START_S to end_s, memo_size 1, "
            f"target fidelity {REQUEST_FIDELITY}",
        },
        "hardware": HARDWARE,
        "reference_km": REFERENCE_KM,
        "coherence_times_s": list(COHERENCE_TIMES_S),
        "scenarios": {
            "decay": decay,
            "swap": swap,
            "swap_fullstack": fullstack,
            "generation": generation,
            "chains": chains,
        },
        "determinism": determinism,
        "slot_model_mapping": mapping(generation, chains),
    }
    result["wall_time_s"] = time.perf_counter() - wall0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_finite(result), indent=1, allow_nan=False) + "\n")
    print(
        f"wrote {out} ({out.stat().st_size / 1024:.1f} KiB) in {result['wall_time_s']:.0f} s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
