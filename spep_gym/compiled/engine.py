"""``CompiledSimulator``: the compiled engine behind the interface of the scalar simulator.

Reset builds the episode as :class:`spep_gym.simulator.Simulator` does (the network, the requests
and the four named streams of the seed), in Python; every slot then runs in compiled code
(:mod:`spep_gym.compiled.phases`) and draws from the same streams, so both engines give the same
episode, to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from spep_gym.compiled import observe, phases
from spep_gym.compiled.state import (
    COUNTER_NAMES,
    EV,
    EV_FAILED,
    EV_FAILED_WEIGHT,
    EV_PLACED,
    EV_PREDICTIVE_HITS,
    EV_SERVED,
    EV_SERVED_WEIGHT,
    FAILED_WEIGHT,
    FIDELITY_SUM,
    GEN_CHUNK,
    GEN_ROW,
    HELD_LEN,
    LATENCY_SUM,
    PAIRS_CONSUMED,
    PAIRS_EXPIRED,
    PAIRS_GENERATED,
    PAIRS_REPLACED,
    PREPOSITIONS_EXPIRED,
    PREPOSITIONS_IN_FLIGHT,
    QUEUE_LEN,
    REQUESTS_IN_FLIGHT,
    SERVED_WEIGHT,
    SWAP_END,
    SWAP_FAILURES,
    SWAP_POS,
    T_NOW,
    State,
    new_state,
    params,
)
from spep_gym.config import SpepConfig
from spep_gym.metrics import Metrics
from spep_gym.simulator import InFlight, Simulator, SlotEvents
from spep_gym.topology import Network, generate_graph
from spep_gym.workload import Workload, generate

#: Config fields the compiled engine does not cover yet, with the value it needs (none now).
UNSUPPORTED: dict[str, object] = {}


def check_supported(cfg: SpepConfig) -> None:
    """A ValueError naming the first field of ``cfg`` that the compiled engine does not cover."""
    for name, allowed in UNSUPPORTED.items():
        value = getattr(cfg, name)
        if value != allowed:
            raise ValueError(
                f"config field {name!r} = {value!r} is not covered by the compiled engine yet: "
                f"allowed {allowed!r} (the python engine covers every value)"
            )


class CompiledSimulator:
    """The scalar simulator's episode, slot loop compiled: ``reset(seed)``, ``step(action)``.

    The env observes it through :class:`spep_gym.compiled.env_step.EnvCore`.
    """

    def __init__(self, cfg: SpepConfig | None = None) -> None:
        self.cfg = cfg = cfg or SpepConfig()
        check_supported(cfg)
        # the fixed network and the trace, loaded once, as the scalar simulator loads them
        self._setup = Simulator(cfg)
        self.params = params(cfg)
        #: Bounds of the observation, as the scalar simulator gives them.
        self.max_link_capacity = self._setup.max_link_capacity
        self.max_deadline_slots = self._setup.max_deadline_slots
        self.max_priority = self._setup.max_priority
        self.delays = self._setup.delays
        self.t = 0
        self.net: Network
        self.workload: Workload
        self.state: State

    def reset(self, seed: int) -> SlotEvents:
        """Start an episode from ``seed`` and run phases 1-3 of slot 0."""
        self.new_episode(seed)
        phases.reset(self.state, self.params)
        return self.events(-1)

    def new_episode(self, seed: int) -> None:
        """The episode of ``seed`` at slot 0, before its phases run (``reset`` runs them)."""
        cfg, setup = self.cfg, self._setup
        topo_ss, work_ss, gen_ss, swap_ss = np.random.SeedSequence(seed).spawn(4)
        if setup.fixed_net is not None:
            self.net = setup.fixed_net
        else:
            self.net = Network.build(generate_graph(cfg, np.random.default_rng(topo_ss)), cfg)
        trace = setup._trace
        if trace is not None:
            self.workload = trace.workload(cfg, self.net)
        else:
            self.workload = generate(cfg, self.net, np.random.default_rng(work_ss))
        self._gen_rng = np.random.default_rng(gen_ss)
        self._swap_rng = np.random.default_rng(swap_ss)
        self.state = s = new_state(cfg, self.net, self.workload)
        self._swap_reserve = (len(s.swap_u) - 1) // 2  # the most swap draws one step reads
        self._draw_ahead()
        self.t = 0
        net = self.net
        self._link_pair = net.pair_index[net.edges[:, 0], net.edges[:, 1]]

    @property
    def done(self) -> bool:
        """True once every slot of the episode has run."""
        return self.t >= self.cfg.episode_slots

    def step(self, action: Iterable[int] | np.ndarray = ()) -> SlotEvents:
        """Finish the current slot with the pre-positioning ``action`` and begin the next."""
        if self.done:
            raise RuntimeError("the episode is over (all episode_slots have run): call reset()")
        slot = self.t
        self._draw_ahead()
        phases.step(self.state, self.params, np.asarray(action, dtype=np.int64).reshape(-1))
        self.t = int(self.state.counts[T_NOW])
        return self.events(slot)

    def _draw_ahead(self) -> None:
        """Fill the state's draw buffers from the streams, in their order, before a slot needs them.

        ``gen_u`` gets the next GEN_CHUNK slots' rows once its rows are used; ``swap_u`` keeps at
        least as many unread uniforms as one step can read (a swap of h links reads h - 1).
        """
        s, c = self.state, self.state.counts
        if c[GEN_ROW] in (0, GEN_CHUNK):
            s.gen_u[:] = self._gen_rng.random(s.gen_u.shape)
            c[GEN_ROW] = 0
        if self.cfg.swap_success < 1.0 and c[SWAP_END] - c[SWAP_POS] < self._swap_reserve:
            left = s.swap_u[c[SWAP_POS] : c[SWAP_END]].copy()
            s.swap_u[: len(left)] = left
            s.swap_u[len(left) :] = self._swap_rng.random(len(s.swap_u) - len(left))
            c[SWAP_POS], c[SWAP_END] = 0, len(s.swap_u)

    # ------------------------------------------------------------------ views
    def events(self, slot: int) -> SlotEvents:
        """The last step's events as the scalar simulator's :class:`SlotEvents`."""
        s = self.state
        return events_of(
            slot, self.t, s.starts, s.counts, s.sums, s.ev_placed, s.ev_served, s.ev_failed
        )

    @property
    def metrics(self) -> Metrics:
        """The run's counters as the scalar simulator's :class:`Metrics` (a copy)."""
        return metrics_of(self.state.counts, self.state.sums)

    @property
    def records(self) -> dict[str, np.ndarray]:
        """The per-request outcome columns (views of the state)."""
        s = self.state
        return {
            "status": s.status,
            "dispatch_slot": s.dispatch_slot,
            "end_slot": s.end_slot,
            "fidelity": s.fidelity,
            "how": s.how,
            "hops": s.hops,
        }

    def queued_requests(self, limit: int | None = None) -> list[int]:
        """Request ids in service order (the first ``limit`` of them)."""
        n = int(self.state.counts[QUEUE_LEN])
        return self.state.queue[: n if limit is None else min(n, limit)].tolist()

    @property
    def held(self) -> list[tuple[int, float, int, int, int]]:
        """(pair, fidelity, placed, hops, expiry) of every pre-positioned pair held, in order."""
        s = self.state
        k = int(s.counts[HELD_LEN])
        return list(
            zip(
                s.held_pair[:k].tolist(),
                s.held_fidelity[:k].tolist(),
                s.held_placed[:k].tolist(),
                s.held_hops[:k].tolist(),
                s.held_expiry[:k].tolist(),
                strict=True,
            )
        )

    @property
    def in_flight(self) -> list[InFlight]:
        """Swaps whose outcome has not reached the end nodes, in dispatch order (the scalar's)."""
        s = self.state
        k = int(s.counts[REQUESTS_IN_FLIGHT] + s.counts[PREPOSITIONS_IN_FLIGHT])
        columns = (
            s.flight_due, s.flight_placed, s.flight_pair, s.flight_hops, s.flight_fidelity,
            s.flight_request,
        )  # fmt: skip
        return [
            InFlight(due, placed, pair, hops, None if math.isnan(f) else f, r)
            for due, placed, pair, hops, f, r in zip(
                *(c[:k].tolist() for c in columns), strict=True
            )
        ]

    def preposition_fidelity(self) -> np.ndarray:
        """(P,) fidelity a pre-position of each node pair would get now; 0 where it cannot."""
        out = np.empty(self.net.num_pairs)
        observe.preposition_fidelity(self.state, self.params, out)
        return out


def events_of(
    slot: int,
    t: int,
    starts: np.ndarray,
    counts: np.ndarray,
    sums: np.ndarray,
    placed: np.ndarray,
    served: np.ndarray,
    failed: np.ndarray,
) -> SlotEvents:
    """The :class:`SlotEvents` of a step from the state's arrays (or copies of them).

    ``slot`` is the slot the step finished, ``t`` the slot it began (the next one), ``starts`` the
    requests' slot index (``State.starts``); the event entries used are read from ``counts``.
    """
    c = counts.tolist()
    arrived = range(int(starts[t]), int(starts[t + 1])) if t + 1 < len(starts) else range(0)
    return SlotEvents(
        slot=slot,
        placed=[(int(a), f, int(h)) for a, f, h in placed[: c[EV_PLACED]].tolist()],
        served=[(int(r), int(how), f, int(h)) for r, how, f, h in served[: c[EV_SERVED]].tolist()],
        failed=failed[: c[EV_FAILED]].tolist(),
        swap_failures=c[EV + SWAP_FAILURES],
        pairs_consumed=c[EV + PAIRS_CONSUMED],
        served_weight=float(sums[EV_SERVED_WEIGHT]),
        failed_weight=float(sums[EV_FAILED_WEIGHT]),
        arrived=list(arrived),
        pairs_generated=c[EV + PAIRS_GENERATED],
        pairs_expired=c[EV + PAIRS_EXPIRED],
        pairs_replaced=c[EV + PAIRS_REPLACED],
        prepositions_expired=c[EV + PREPOSITIONS_EXPIRED],
        predictive_hits=c[EV_PREDICTIVE_HITS],
    )


def metrics_of(counts: np.ndarray, sums: np.ndarray) -> Metrics:
    """The run's :class:`Metrics` from the state's ``counts`` and ``sums`` (or copies of them)."""
    c, f = counts.tolist(), sums.tolist()
    return Metrics(
        **dict(zip(COUNTER_NAMES, c[: len(COUNTER_NAMES)], strict=True)),
        requests_in_flight=c[REQUESTS_IN_FLIGHT],
        prepositions_in_flight=c[PREPOSITIONS_IN_FLIGHT],
        latency_sum=f[LATENCY_SUM],
        fidelity_sum=f[FIDELITY_SUM],
        served_weight=f[SERVED_WEIGHT],
        failed_weight=f[FAILED_WEIGHT],
    )
