"""One frozen config object: every field of SPEC.md with the paper preset as defaults.

Names follow the spec (``p_gen``, ``rho``, ``F0``, ``F_min``, ``max_lifetime``...). Durations are integer
slots, lengths kilometres. Every field is validated in ``__post_init__``; a bad value raises
``ValueError`` naming the field, the value and what is allowed, and an unknown field name is an error
(with the closest known name suggested).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from spep_gym.physics import DECAY_MODELS, LENGTH_MODELS, SWAP_MODELS

TOPOLOGIES = ("erdos_renyi", "random_regular", "small_world", "scale_free")
ROUTINGS = ("reactive", "shortest", "highest_fidelity")
PREPOSITION_PATHS = ("static", "available")
LINK_POOL_POLICIES = ("block", "replace_oldest")
PRESETS = ("paper", "physical")
INFO_LEVELS = ("full", "counts", "minimal")
#: Largest integer field value: integers up to 2**53 are exact as float64 (the memory estimate, the
#: batched core's float64 counters) and fit int64, so no conversion of a valid value overflows.
MAX_INT = 2**53
#: Largest priority weight. A run holds at most 2**63 requests (int64 counters and ids), and every
#: sum of weights (served_weight, failed_weight, a step's reward, a return, served minus failed)
#: is at most 2 * 2**63 * the largest weight = 1.8e38 at 1e19, below float32's maximum (3.4e38):
#: finite in the float32 observation and a learner's float32 buffers, and so in float64 too.
MAX_PRIORITY_WEIGHT = 1e19
#: Fields that hold a tuple; a list, any other sequence or a 1-D numpy array becomes a tuple.
TUPLE_FIELDS = (
    "business_hours", "fidelity_req_range", "deadline_range", "priority_weights",
    "demand_ema_half_lives",
)  # fmt: skip


@dataclass(frozen=True)
class SpepConfig:
    """Every parameter of the model; the defaults are the paper preset (SPEC.md).

    ``topology`` is a generator name or any connected ``networkx.Graph`` whose edge attributes
    ``p_gen``, ``F0``, ``link_capacity`` and ``length_km`` override the defaults per link.
    """

    # 1. Time
    episode_slots: int = 2000  # T, slots per episode (then truncation)
    slots_per_day: int = 240  # 10 slots per hour; slot 0 is midnight

    # 2. Network
    num_nodes: int = 16  # n (ignored for a user graph, whose size counts)
    topology: Any = "erdos_renyi"  # a name of TOPOLOGIES or a networkx.Graph
    topology_seed: int | None = None  # None: a graph per episode seed; int: one graph kept
    er_p: float = 0.25  # Erdos-Renyi edge probability
    regular_degree: int = 3  # random regular degree
    ws_k: int = 4  # Watts-Strogatz neighbours
    ws_p: float = 0.3  # Watts-Strogatz rewiring probability
    ba_m: int = 2  # Barabasi-Albert edges per new node
    p_gen: float = 0.12  # link generation probability per slot
    F0: float = 0.92  # fidelity of a new link pair
    link_capacity: int = 1  # stored pairs per link
    reference_km: float = (
        10.0  # with length_km, decay per slot is rho ** (length_km / reference_km)
    )

    # 3. Entanglement
    rho: float = 0.96  # decay factor per slot (eq. 1)
    max_lifetime: int = 15  # slots; a pair older than this is discarded
    F_min: float = 0.5  # pairs below this fidelity are discarded
    swap_model: str = "paper"  # "paper" (eq. 2 literally) or "werner"
    swap_success: float = 1.0  # probability that one swap succeeds
    preposition_rho: float | None = None  # decay of pre-positioned pairs; None: equal to rho
    prediction_window: int = 15  # slots a pre-positioned pair stays usable

    # 4. Demand
    arrival_rate: float = 0.1  # Poisson rate of requests per slot
    business_hours_factor: float = 3.0  # rate multiplier in business hours
    business_hours: tuple[int, int] = (9, 17)  # [start, end) hours of day
    num_hot_pairs: int = 4
    num_medium_pairs: int = 12
    hot_traffic_share: float = 0.5
    min_pair_hops: int = 2  # hot/medium pairs are at least this many hops apart when possible
    demand_pairs: tuple[tuple[int, int, float], ...] | None = None  # (source, destination, weight)
    trace: str | None = None  # CSV slot,source,destination,F_req,deadline,priority
    fidelity_req_range: tuple[float, float] = (0.6, 0.9)  # F_req ~ U(low, high)
    deadline_range: tuple[int, int] = (3, 12)  # D ~ U{low..high} slots; t_d = t_a + D
    # w drawn uniformly from these; each in (0, MAX_PRIORITY_WEIGHT = 1e19], so that every sum of
    # weights over a run (at most 2**63 requests) stays below float32's maximum
    priority_weights: tuple[float, ...] = (1.0, 2.0, 3.0)

    # 5. One slot
    max_prepositioned: int = 8  # K, pre-positioned pairs held at most
    max_new_prepositions: int = 2  # placed per slot at most
    preposition_path: str = "static"  # "static" topology path or "available" fewest-hop path
    routing: str = "shortest"  # on-demand routing strategy

    # 9. Link layer and physics options (the defaults keep the paper preset)
    link_pool_policy: str = (
        "block"  # full link: "block" generates nothing, "replace_oldest" replaces
    )
    cutoff_fidelity: float | None = (
        None  # memory cut-off: link pairs below max(F_min, it) discarded
    )
    decay_model: str = "paper"  # "paper": F_c rho**age; "depolarizing": 1/4 + (F_c - 1/4) rho**age
    signalling_latency: float = 0.0  # slots per hop until a swap's outcome reaches the end nodes
    length_model: str = "paper"  # "paper": decay rho**(L/ref); "loss": p_gen scaled by fibre loss
    fiber_loss_db_per_km: float = 0.2  # attenuation of a link's fibre (length_model "loss"), dB/km

    # Environment (not in the paper)
    action_len: int = 8  # length of the agent's preference list of node pairs per slot
    queue_obs_size: int = 32  # queued requests shown in the observation (padded, masked)
    queue_capacity: int = 256  # requests waiting or in flight at most; more arrivals fail at once
    demand_obs_slots: int = 15  # window of the "demand" observation (recent arrivals per pair)
    # observation "demand_ema": per-pair requests per slot, exponential means of these half-lives
    # in slots (one row each); (): no such key
    demand_ema_half_lives: tuple[int, ...] = ()
    demand_hour_obs: bool = False  # observation "demand_by_hour": requests per pair by hour of day
    reward_served: float = 1.0  # reward per priority weight of a served request
    reward_failed: float = 1.0  # penalty per priority weight of a failed request
    # reward per predictive hit: a pre-positioned pair used by a request that arrived after it was
    # placed (0: the reward is served minus failed alone)
    reward_predictive_hit: float = 0.0
    info_level: str = "full"  # what a step's info holds: "full", "counts" or "minimal" (cheaper)

    def __post_init__(self) -> None:
        # numpy scalars and arrays become Python numbers and lists; sequences given as lists (from
        # the command line or JSON), ranges or 1-D arrays become tuples.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "topology":
                object.__setattr__(self, f.name, _plain(value))
        for name in TUPLE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, Sequence) and not isinstance(value, str | bytes):
                object.__setattr__(self, name, tuple(value))
        if self.demand_pairs is not None:
            pairs = self.demand_pairs
            if (
                not isinstance(pairs, Sequence)
                or isinstance(pairs, str | bytes)
                or not all(isinstance(p, list | tuple) for p in pairs)
            ):
                _fail("demand_pairs", pairs, _DEMAND_ALLOWED.format(n=self.n - 1))
            object.__setattr__(self, "demand_pairs", tuple(tuple(p) for p in pairs))
        if isinstance(self.trace, Path):
            object.__setattr__(self, "trace", str(self.trace))
        _validate(self)

    # Derived values
    @property
    def effective_preposition_rho(self) -> float:
        """Decay of pre-positioned pairs: ``preposition_rho`` or, when unset, ``rho``."""
        return self.rho if self.preposition_rho is None else self.preposition_rho

    @property
    def topology_name(self) -> str:
        """The topology's name, ``custom`` for a user graph."""
        return self.topology if isinstance(self.topology, str) else "custom"

    @property
    def n(self) -> int:
        """Number of nodes of the network (a user graph's own size)."""
        if isinstance(self.topology, nx.Graph):
            return int(self.topology.number_of_nodes())
        return self.num_nodes

    # Construction
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of every config field, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], base: SpepConfig | None = None) -> SpepConfig:
        """Build a config from ``values`` over ``base`` (default: the paper preset).

        The key ``preset`` (``"paper"`` or ``"physical"``) names the base instead; the other values
        apply over it. Unknown names raise ``ValueError`` with the closest known name.
        """
        values = dict(values)
        if "preset" in values:
            name = values.pop("preset")
            if name not in PRESETS:
                _fail("preset", name, f"one of {PRESETS}")
            base = getattr(cls, name)()
        known = cls.field_names()
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"unknown config field {key!r}{hint} Known fields: {', '.join(known)}"
                )
        return dataclasses.replace(base or cls(), **values)

    def replace(self, **values: Any) -> SpepConfig:
        """A copy with ``values`` changed (validated like the constructor)."""
        return SpepConfig.from_dict(values, base=self)

    @classmethod
    def paper(cls) -> SpepConfig:
        """The paper preset (SPEC.md defaults)."""
        return cls()

    @classmethod
    def physical(cls, **values: Any) -> SpepConfig:
        """The ``physical`` preset (SPEC section 9): one hardware scenario SeQUeNCe reproduces.

        Werner swaps, depolarizing memories, ``replace_oldest`` link pools with a cut-off at the
        lowest required fidelity, signalling latency, fibre loss, and the time scales of the
        scenario in :data:`PHYSICAL`; docs/physics.md gives every number's source.
        """
        return cls.from_dict({**PHYSICAL, **values})

    @classmethod
    def tiny(cls, **values: Any) -> SpepConfig:
        """A small, fast network for tests and examples."""
        return cls.from_dict({"num_nodes": 6, "episode_slots": 200, "er_p": 0.5, **values})


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ValueError(f"config field {name!r} = {value!r} is invalid: allowed {allowed}")


def _plain(value: Any) -> Any:
    """Numbers as Python numbers: numpy scalars inside lists and tuples too (``np.int64(8)``: 8).

    A numpy array becomes a (nested) list of Python numbers.
    """
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    """A finite number: an int too large for a float (``10**400``) is not one."""
    try:
        return _is_number(value) and math.isfinite(value)
    except OverflowError:
        return False


def _int(cfg: SpepConfig, name: str, low: int, high: float = MAX_INT) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        upper = f" and <= {MAX_INT} (2**53)" if high == MAX_INT else ""
        _fail(name, value, f"an integer >= {low}{upper}")


def _real(cfg: SpepConfig, name: str, low: float, high: float, low_open: bool = False) -> None:
    value = getattr(cfg, name)
    ok = _is_finite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        _fail(name, value, _real_allowed(low, high, low_open))


def _real_allowed(low: float, high: float, low_open: bool = False) -> str:
    """'a finite number in [0, 1]', 'a finite number > 0', 'a finite number' ..."""
    if math.isinf(low) and math.isinf(high):
        return "a finite number"
    if math.isinf(high):
        return f"a finite number {'>' if low_open else '>='} {low:g}"
    if math.isinf(low):
        return f"a finite number <= {high:g}"
    return f"a number in {'(' if low_open else '['}{low:g}, {high:g}]"


def _range(cfg: SpepConfig, name: str, low: float, high: float, integer: bool) -> None:
    value = getattr(cfg, name)
    kind = "integers" if integer else "numbers"
    allowed = f"a pair (low, high) of {kind} with {low} <= low <= high <= {high}"
    if not isinstance(value, tuple) or len(value) != 2:
        _fail(name, value, allowed)
    lo, hi = value
    types = (int,) if integer else (int, float)
    if not all(isinstance(v, types) and not isinstance(v, bool) for v in value):
        _fail(name, value, allowed)
    if not low <= lo <= hi <= high:
        _fail(name, value, allowed)


def _validate(cfg: SpepConfig) -> None:
    _int(cfg, "episode_slots", 1)
    _int(cfg, "slots_per_day", 24)
    _real(cfg, "p_gen", 0.0, 1.0)
    _real(cfg, "F0", 0.25, 1.0, low_open=True)
    _int(cfg, "link_capacity", 1)
    _real(cfg, "reference_km", 0.0, math.inf, low_open=True)
    _real(cfg, "rho", 0.0, 1.0, low_open=True)
    _int(cfg, "max_lifetime", 0)
    _real(cfg, "F_min", 0.0, 1.0)
    if cfg.swap_model not in SWAP_MODELS:
        _fail("swap_model", cfg.swap_model, f"one of {SWAP_MODELS}")
    _real(cfg, "swap_success", 0.0, 1.0)
    if cfg.preposition_rho is not None:
        _real(cfg, "preposition_rho", 0.0, 1.0, low_open=True)
    _int(cfg, "prediction_window", 1)
    _real(cfg, "arrival_rate", 0.0, math.inf)
    _real(cfg, "business_hours_factor", 0.0, math.inf)
    _range(cfg, "business_hours", 0, 24, integer=True)
    _int(cfg, "num_hot_pairs", 0)
    _int(cfg, "num_medium_pairs", 0)
    if cfg.num_hot_pairs + cfg.num_medium_pairs == 0 and cfg.demand_pairs is None:
        _fail("num_hot_pairs", cfg.num_hot_pairs, "num_hot_pairs + num_medium_pairs >= 1")
    _real(cfg, "hot_traffic_share", 0.0, 1.0)
    _int(cfg, "min_pair_hops", 1)
    _range(cfg, "fidelity_req_range", 0.0, 1.0, integer=False)
    _range(cfg, "deadline_range", 0, 10**9, integer=True)
    w = cfg.priority_weights
    if (
        not isinstance(w, tuple)
        or not w
        or not all(_is_finite(v) and 0 < v <= MAX_PRIORITY_WEIGHT for v in w)
    ):
        _fail(
            "priority_weights",
            w,
            f"a non-empty sequence of numbers w with 0 < w <= {MAX_PRIORITY_WEIGHT:g} (every sum "
            "of weights over a run stays finite in float32)",
        )
    _int(cfg, "max_prepositioned", 0)
    _int(cfg, "max_new_prepositions", 0)
    if cfg.preposition_path not in PREPOSITION_PATHS:
        _fail("preposition_path", cfg.preposition_path, f"one of {PREPOSITION_PATHS}")
    if cfg.routing not in ROUTINGS:
        _fail("routing", cfg.routing, f"one of {ROUTINGS}")
    for name, allowed in (
        ("link_pool_policy", LINK_POOL_POLICIES),
        ("decay_model", DECAY_MODELS),
        ("length_model", LENGTH_MODELS),
    ):
        if getattr(cfg, name) not in allowed:
            _fail(name, getattr(cfg, name), f"one of {allowed}")
    if cfg.cutoff_fidelity is not None:
        _real(cfg, "cutoff_fidelity", 0.0, 1.0)
    _real(cfg, "signalling_latency", 0.0, 1e6)
    _real(cfg, "fiber_loss_db_per_km", 0.0, 1e3)
    _int(cfg, "action_len", 1)
    _int(cfg, "queue_obs_size", 1)
    _int(cfg, "queue_capacity", 1)
    _int(cfg, "demand_obs_slots", 1)
    h = cfg.demand_ema_half_lives
    if not isinstance(h, tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_INT for v in h
    ):
        _fail("demand_ema_half_lives", h, f"a sequence of integers h with 1 <= h <= {MAX_INT}")
    if not isinstance(cfg.demand_hour_obs, bool):
        _fail("demand_hour_obs", cfg.demand_hour_obs, "True or False")
    _real(cfg, "reward_served", -math.inf, math.inf)
    _real(cfg, "reward_failed", -math.inf, math.inf)
    _real(cfg, "reward_predictive_hit", -math.inf, math.inf)
    if cfg.topology_seed is not None:
        _int(cfg, "topology_seed", 0, math.inf)  # a seed is never a float
    _validate_topology(cfg)
    if cfg.demand_pairs is not None:
        _validate_demand_pairs(cfg)
    if cfg.trace is not None and (not isinstance(cfg.trace, str) or not Path(cfg.trace).is_file()):
        _fail("trace", cfg.trace, "None or the path of an existing CSV file")
    if cfg.info_level not in INFO_LEVELS:
        _fail("info_level", cfg.info_level, f"one of {INFO_LEVELS}")
    from spep_gym.resources import check_memory

    check_memory(cfg)


def _validate_topology(cfg: SpepConfig) -> None:
    topo = cfg.topology
    if isinstance(topo, nx.Graph):
        if topo.is_directed() or topo.is_multigraph():
            _fail("topology", topo, "an undirected simple networkx.Graph")
        if topo.number_of_nodes() < 2 or not nx.is_connected(topo):
            _fail("topology", topo, "a connected networkx.Graph with at least 2 nodes")
        if nx.number_of_selfloops(topo):
            _fail("topology", topo, "a graph without self-loops")
        for u, v, data in topo.edges(data=True):
            for key, check in (
                ("p_gen", lambda x: 0.0 <= x <= 1.0),
                ("F0", lambda x: 0.25 < x <= 1.0),
                ("length_km", lambda x: x >= 0.0),
            ):
                x = _plain(data.get(key))
                if key in data and not (_is_finite(x) and check(x)):
                    _fail(
                        f"topology edge ({u}, {v}) attribute {key}", data[key], _EDGE_ALLOWED[key]
                    )
            if "link_capacity" in data:
                c = _plain(data["link_capacity"])
                if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= MAX_INT:
                    _fail(
                        f"topology edge ({u}, {v}) attribute link_capacity",
                        c,
                        f"an integer >= 1 and <= {MAX_INT} (2**53)",
                    )
        return
    if topo not in TOPOLOGIES:
        _fail("topology", topo, f"one of {TOPOLOGIES} or a connected networkx.Graph")
    _int(cfg, "num_nodes", 2)
    # Every generator's parameters are checked; those that must fit the size, for the chosen one.
    _real(cfg, "er_p", 0.0, 1.0, low_open=True)
    _real(cfg, "ws_p", 0.0, 1.0)
    for name in ("regular_degree", "ws_k", "ba_m"):
        _int(cfg, name, 1)
    n = cfg.num_nodes
    if topo == "random_regular":
        d = cfg.regular_degree
        if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d < n or (n * d) % 2:
            _fail(
                "regular_degree",
                d,
                f"an integer 1 <= degree < num_nodes={n} with num_nodes * degree even"
                + (" (degree >= 2 for a connected graph when num_nodes > 2)" if n > 2 else ""),
            )
        if d == 1 and n > 2:
            _fail(
                "regular_degree", d, f"degree >= 2: a 1-regular graph on {n} nodes is disconnected"
            )
    elif topo == "small_world":
        if isinstance(cfg.ws_k, bool) or not isinstance(cfg.ws_k, int) or not 2 <= cfg.ws_k < n:
            _fail("ws_k", cfg.ws_k, f"an integer 2 <= ws_k < num_nodes={n}")
    elif topo == "scale_free" and (
        isinstance(cfg.ba_m, bool) or not isinstance(cfg.ba_m, int) or not 1 <= cfg.ba_m < n
    ):
        _fail("ba_m", cfg.ba_m, f"an integer 1 <= ba_m < num_nodes={n}")


_EDGE_ALLOWED = {
    "p_gen": "a number in [0, 1]",
    "F0": "a number in (0.25, 1]",
    "length_km": "a finite number >= 0",
}


_DEMAND_ALLOWED = (
    "a non-empty list of (source, destination, weight), nodes in 0..{n}, source != destination, "
    "weight a finite number > 0"
)


def _validate_demand_pairs(cfg: SpepConfig) -> None:
    n = cfg.n
    pairs = cfg.demand_pairs or ()
    allowed = _DEMAND_ALLOWED.format(n=n - 1)
    if not pairs:
        _fail("demand_pairs", pairs, allowed)
    for p in pairs:
        if len(p) != 3:
            _fail("demand_pairs", p, allowed)
        s, d, w = p
        if not (
            isinstance(s, int)
            and isinstance(d, int)
            and not isinstance(s, bool)
            and not isinstance(d, bool)
            and 0 <= s < n
            and 0 <= d < n
            and s != d
        ):
            _fail("demand_pairs", p, allowed)
        if not (_is_finite(w) and w > 0):
            _fail("demand_pairs", p, allowed)
    if not math.isfinite(sum(p[2] for p in pairs)):  # the workload divides by the sum
        _fail("demand_pairs", pairs, allowed + ", the weights' sum finite")


#: The hardware scenario of the ``physical`` preset (SPEC section 9; docs/physics.md gives every
#: source): 10 km links with the Bell-state measurement in the middle, single-heralded generation,
#: depolarizing memories, as SeQUeNCe 1.3.1 simulates them (validation/README.md).
PHYSICAL_LINK_KM = 10.0
PHYSICAL_FIBER_C_M_PER_S = 2e8  # light in fibre
PHYSICAL_DETECTOR_EFFICIENCY = 0.9
PHYSICAL_MEMORY_EFFICIENCY = 1.0
PHYSICAL_RAW_FIDELITY = 0.92
PHYSICAL_COHERENCE_S = 10e-3  # memory coherence time T_c
_L_OVER_C = PHYSICAL_LINK_KM * 1e3 / PHYSICAL_FIBER_C_M_PER_S  # 50 us: one-way fibre delay
#: Slot length tau: one attempt cycle of the single-heralded protocol (request, negotiation,
#: emission, herald back: 4 L/c, plus one 12.5 ns time bin of an 80 MHz memory).
PHYSICAL_SLOT_S = 4 * _L_OVER_C + 12.5e-9
PHYSICAL: dict[str, Any] = {
    "swap_model": "werner",
    "decay_model": "depolarizing",
    "link_pool_policy": "replace_oldest",
    "cutoff_fidelity": 0.6,  # the lowest required fidelity (fidelity_req_range[0])
    # one fibre delay L/c = 0.25 slot per hop plus the swap handshake (one RTT): 2 hops wait 1 slot
    "signalling_latency": 0.5,
    "length_model": "loss",
    # success per attempt: 1/2 (linear-optics BSM) x (eta_det eta_mem 10^(-0.2 (L/2) / 10))^2
    "p_gen": 0.5
    * (PHYSICAL_DETECTOR_EFFICIENCY * PHYSICAL_MEMORY_EFFICIENCY * 10 ** (-0.2 * 5.0 / 10)) ** 2,
    # the raw pair has decayed over the herald delay L/c when the end nodes learn of it
    "F0": 0.25
    + (PHYSICAL_RAW_FIDELITY - 0.25) * math.exp(-8 * _L_OVER_C / (3 * PHYSICAL_COHERENCE_S)),
    "rho": math.exp(-8 * PHYSICAL_SLOT_S / (3 * PHYSICAL_COHERENCE_S)),
    # SeQUeNCe's memories expire T_c after emission: (T_c - herald delay) / tau whole slots
    "max_lifetime": int((PHYSICAL_COHERENCE_S - _L_OVER_C) // PHYSICAL_SLOT_S),
}

# The fields with their defaults, for docs and the command line.
DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(SpepConfig)}
