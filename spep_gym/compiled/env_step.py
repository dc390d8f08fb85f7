"""One step of :class:`spep_gym.env.SpepEnv` on the compiled engine: a single compiled call.

The env's observation lives in one float32 buffer, the keys side by side in ``ENV_KEYS`` order;
:func:`env_step` checks the action, runs the slot, and writes every key into views of that buffer
(the state's part, the pre-position fidelities, the demand window, the time of day), so that the
env only copies the buffer once and slices it. The state record, the views and the episode's
constants are held in one :class:`EnvBox` (a numba structref) built once per reset: a call then
unboxes one pointer instead of the record's many arrays (about 10 us a call otherwise).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import numba
import numpy as np
from numba import njit, types
from numba.experimental import structref

from spep_gym.compiled import latency, observe, phases
from spep_gym.compiled.jit import inner
from spep_gym.compiled.state import (
    EV_FAILED,
    EV_FAILED_WEIGHT,
    EV_PLACED,
    EV_PREDICTIVE_HITS,
    EV_SERVED,
    EV_SERVED_WEIGHT,
    GEN_CHUNK,
    GEN_ROW,
    HELD_LEN,
    PREPOSITIONS_IN_FLIGHT,
    SWAP_END,
    SWAP_POS,
    T_NOW,
)

#: The observation's keys in buffer order (``spep_gym.env.OBSERVATION_KEYS``; a test checks it).
ENV_KEYS = (
    "adjacency", "link_pairs", "link_fidelity", "link_age", "link_busy", "path_fidelity",
    "prepositioned", "prepositioned_fidelity", "prepositioned_in_flight", "requests_in_flight",
    "demand", "arrivals", "queue", "queue_mask", "time_of_day",
)  # fmt: skip
#: :func:`env_step`'s flags: the action lies outside 0..P (nothing ran); the draws need a refill.
BAD_ACTION, REFILL = 1, 2
#: The action of :func:`env_step`'s reset call (unread; the type of every action).
NO_ACTION = np.zeros(0, np.int64)

#: The fields of :class:`EnvBox`, in constructor order.
FIELDS = (
    "s", "p", "link_pair", "pf", "window", "arrived", "tod_table", "demand_slots",
    "swap_reserve", *ENV_KEYS[1:],
)  # fmt: skip


@structref.register
class EnvBoxType(types.StructRef):
    """The numba type of :class:`EnvBox` (its field types come from the constructor's)."""

    def preprocess_fields(self, fields: Any) -> tuple[tuple[str, Any], ...]:
        """The fields' types without literal values (one type per field, whatever the value)."""
        return tuple((name, types.unliteral(t)) for name, t in fields)


class EnvBox(structref.StructRefProxy):
    """The env's compiled state, passed to compiled code as one pointer.

    Its fields are :data:`FIELDS`: ``s`` the State, ``p`` the Params, the rest arrays and two ints.
    """


structref.define_proxy(EnvBox, EnvBoxType, list(FIELDS))


@njit(cache=True)
def _new_box(
    s, p, link_pair, pf, window, arrived, tod_table, demand_slots, swap_reserve, link_pairs,
    link_fidelity, link_age, link_busy, path_fidelity, prepositioned, prepositioned_fidelity,
    prepositioned_in_flight, requests_in_flight, demand, arrivals, queue, queue_mask,
    time_of_day,
):  # fmt: skip
    return EnvBox(
        s, p, link_pair, pf, window, arrived, tod_table, demand_slots, swap_reserve, link_pairs,
        link_fidelity, link_age, link_busy, path_fidelity, prepositioned, prepositioned_fidelity,
        prepositioned_in_flight, requests_in_flight, demand, arrivals, queue, queue_mask,
        time_of_day,
    )  # fmt: skip


def new_box(**fields: Any) -> Any:
    """An :class:`EnvBox` of ``fields`` (all of :data:`FIELDS`); a plain namespace without jit."""
    args = [fields[name] for name in FIELDS]
    if numba.config.DISABLE_JIT:  # type: ignore[attr-defined]
        return SimpleNamespace(**fields)
    return _new_box(*args)  # pragma: no cover (compiled: the jitted tests run it)


@functools.lru_cache(maxsize=8)
def time_of_day_table(slots_per_day: int) -> np.ndarray:
    """(slots_per_day, 2) float32: the ``time_of_day`` key at each slot of the day.

    Each row is computed as the env computes it for one slot (numpy's sin and cos of one float), so
    that the values are the python engine's to the last bit.
    """
    rows = []
    for t in range(slots_per_day):
        phase = 2.0 * np.pi * t / slots_per_day
        rows.append(np.array([np.sin(phase), np.cos(phase)], np.float32))
    # writeable, as an unpickled copy is: a read-only array is another type, compiled again
    return np.array(rows, np.float32)


def layout(num_pairs: int, queue_obs_size: int) -> tuple[np.ndarray, dict[str, slice]]:
    """A zeroed float32 buffer for the observation and the slice of each key in it."""
    sizes = dict.fromkeys(ENV_KEYS, num_pairs)
    sizes.update(queue=6 * queue_obs_size, queue_mask=queue_obs_size, time_of_day=2)
    slices, start = {}, 0
    for key in ENV_KEYS:
        slices[key] = slice(start, start + sizes[key])
        start += sizes[key]
    return np.zeros(start, np.float32), slices


@inner
def _observe(b: Any) -> None:
    """Every key of the observation now into ``b``'s views; the demand window slid to this slot.

    The box's fields are taken out once: each access of a field costs a reference count up and
    down (the loops below ran 4x slower reading them from ``b``).
    """
    s, p, pf, window, arrived = b.s, b.p, b.pf, b.window, b.arrived
    link_pairs, link_fidelity, link_age = b.link_pairs, b.link_fidelity, b.link_age
    prepositioned, prepositioned_fidelity = b.prepositioned, b.prepositioned_fidelity
    queue, queue_mask, path_fidelity = b.queue, b.queue_mask, b.path_fidelity
    demand, arrivals, time_of_day, tod_table = b.demand, b.arrivals, b.time_of_day, b.tod_table
    link_pairs[:] = 0.0
    link_fidelity[:] = 0.0
    link_age[:] = 0.0
    prepositioned[:] = 0.0
    prepositioned_fidelity[:] = 0.0
    queue[:, :] = 0.0
    queue_mask[:] = 0.0
    observe.observe_all(
        s, p, b.link_pair, link_pairs, link_fidelity, link_age, prepositioned,
        prepositioned_fidelity, queue, queue_mask, pf,
    )  # fmt: skip
    if p.latency:
        link_busy, held_flight, requests_flight = (
            b.link_busy,
            b.prepositioned_in_flight,
            b.requests_in_flight,
        )
        link_busy[:] = 0.0
        held_flight[:] = 0.0
        requests_flight[:] = 0.0
        latency.observe(s, b.link_pair, link_busy, held_flight, requests_flight)
    num_pairs = pf.shape[0]
    for a in range(num_pairs):
        path_fidelity[a] = np.float32(pf[a])
    t = s.counts[T_NOW]
    observe.slide_demand(
        t, p.episode_slots, s.starts, s.pair, b.demand_slots, window, arrived, demand, arrivals
    )
    day = t % tod_table.shape[0]
    time_of_day[0] = tod_table[day, 0]
    time_of_day[1] = tod_table[day, 1]


@inner
def _refill(b: Any) -> int:
    """REFILL if the next step needs new draws (the rows of ``gen_u`` used, ``swap_u`` low)."""
    c = b.s.counts
    if c[GEN_ROW] >= GEN_CHUNK:
        return REFILL
    if b.p.swap_success < 1.0 and c[SWAP_END] - c[SWAP_POS] < b.swap_reserve:
        return REFILL
    return 0


@njit(cache=True)
def env_step(b: Any, action: np.ndarray, reset: bool) -> int:
    """Check ``action`` (int64, node pairs 0..P), run the slot, observe: the flags.

    BAD_ACTION (and nothing else done) if a value lies outside 0..P; else REFILL or 0 (see
    :func:`_refill`). With ``reset``, phases 1-3 of slot 0 instead of a step (``action`` unread):
    one entry point for both, so that the slot's code is compiled once (a second one cost 7 s).
    """
    if reset:
        b.window[:] = 0.0
        phases.reset(b.s, b.p)
    else:
        num_pairs = b.pf.shape[0]
        for k in range(action.shape[0]):
            if action[k] < 0 or action[k] > num_pairs:
                return BAD_ACTION
        phases.step(b.s, b.p, action)
    _observe(b)
    return _refill(b)


class EnvCore:
    """The compiled side of ``SpepEnv(engine="compiled")``: reset and step through one call each.

    ``sim`` (a :class:`spep_gym.compiled.engine.CompiledSimulator`) holds the episode; this class
    holds the observation buffer and the :class:`EnvBox` over ``sim.state``.
    """

    def __init__(self, sim: Any) -> None:
        cfg = sim.cfg
        self.sim = sim
        num_pairs = cfg.n * (cfg.n - 1) // 2
        Q = cfg.queue_obs_size
        self.buffer, slices = layout(num_pairs, Q)
        self.slices = tuple(slices.items())
        self._views()
        self.pf = np.zeros(num_pairs)  # the pre-position fidelities (path_fidelity in float64)
        self.window = np.zeros(num_pairs, np.float32)  # the demand window, not clipped
        self.arrived = np.zeros(num_pairs, np.float32)  # this slot's arrivals, not clipped
        self.tod_table = time_of_day_table(cfg.slots_per_day)
        self.box: Any = None

    def _views(self) -> None:
        """The views of the buffer that compiled code writes (``queue`` as (Q, 6))."""
        self.views = {k: self.buffer[sl] for k, sl in self.slices}
        self.views["queue"] = self.views["queue"].reshape(-1, 6)

    def _box(self) -> None:
        """The :class:`EnvBox` over ``sim.state`` and this core's arrays."""
        sim = self.sim
        views = {k: v for k, v in self.views.items() if k != "adjacency"}
        self.box = new_box(
            s=sim.state, p=sim.params, link_pair=sim._link_pair, pf=self.pf, window=self.window,
            arrived=self.arrived, tod_table=self.tod_table,
            demand_slots=int(sim.cfg.demand_obs_slots), swap_reserve=int(sim._swap_reserve),
            **views,
        )  # fmt: skip

    def reset(self, seed: int) -> None:
        """``sim.reset(seed)`` and the observation of slot 0."""
        sim = self.sim
        sim.new_episode(seed)
        adjacency = self.views["adjacency"]
        adjacency[:] = 0.0
        adjacency[sim._link_pair] = 1.0
        self._box()
        if env_step(self.box, NO_ACTION, True):
            sim._draw_ahead()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the box and the views (they are rebuilt over the copied arrays)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("box", "views")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._views()
        self.box = None
        if hasattr(self.sim, "state"):  # reset before: the box over the copy's state
            self._box()

    def step(self, action: np.ndarray) -> bool:
        """Run one slot with ``action`` (int64, shape checked): False if a value is out of range."""
        flags = env_step(self.box, action, False)
        if flags & BAD_ACTION:
            return False
        if flags:
            self.sim._draw_ahead()
        self.sim.t += 1
        return True

    def held(self) -> int:
        """Pre-positioned pairs held now, those in flight included."""
        c = self.sim.state.counts
        return int(c[HELD_LEN] + c[PREPOSITIONS_IN_FLIGHT])

    def snapshot(self) -> tuple[Any, ...]:
        """What a step's info reads, copied (``SpepEnv._compiled_info`` builds the info from it).

        The slot begun, the requests' slot index, the counters, the event entries, the
        pre-position fidelities, the pre-positions held, the workload and the requests' end slots
        (the last three are not copied: a request's end slot is written once, and reset makes new
        arrays).
        """
        s = self.sim.state
        c = s.counts.copy()
        return (
            self.sim.t, s.starts, c, s.sums.copy(), s.ev_placed[: c[EV_PLACED]].copy(),
            s.ev_served[: c[EV_SERVED]].copy(), s.ev_failed[: c[EV_FAILED]].copy(),
            self.pf.copy(), int(c[HELD_LEN] + c[PREPOSITIONS_IN_FLIGHT]), self.sim.workload,
            s.end_slot,
        )  # fmt: skip

    def totals(self) -> tuple[float, float, int]:
        """The last step's served and failed priority weight and its predictive hits."""
        s = self.sim.state
        sums = s.sums
        return (
            float(sums[EV_SERVED_WEIGHT]),
            float(sums[EV_FAILED_WEIGHT]),
            int(s.counts[EV_PREDICTIVE_HITS]),
        )

    def observation(self) -> dict[str, np.ndarray]:
        """The observation now: one copy of the buffer, a view of it per key."""
        copy = self.buffer.copy()
        return {k: copy[sl] for k, sl in self.slices}
