"""``SpepEnv``: the Gymnasium environment over :class:`spep_gym.simulator.Simulator`."""

from __future__ import annotations

import dataclasses
import functools
import reprlib
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from spep_gym import demand_obs
from spep_gym.config import SpepConfig
from spep_gym.metrics import HOW_NAMES, PREPOSITIONED
from spep_gym.simulator import Simulator, SlotEvents
from spep_gym.topology import num_pairs

QUEUE_FEATURES = ("source", "destination", "F_req", "slots_left", "waited", "priority")
#: Upper bound of the ``demand`` observation: arrival counts are clipped there (Poisson has none).
DEMAND_OBS_MAX = 1e6
#: The observation's keys in the order of its dict (the table of SpepEnv's docstring).
OBSERVATION_KEYS = (
    "adjacency", "link_pairs", "link_fidelity", "link_age", "link_busy", "path_fidelity",
    "prepositioned", "prepositioned_fidelity", "prepositioned_in_flight", "requests_in_flight",
    "demand", "arrivals", "queue", "queue_mask", "time_of_day",
)  # fmt: skip


class SpepEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """Predictive entanglement pre-positioning in a quantum network (the SPEP paper, SPEC.md).

    ## Description
    A discrete-time network of quantum nodes: links generate entangled pairs that decay, requests
    for end-to-end pairs arrive with a fidelity requirement, a deadline and a priority, and are served
    by swapping link pairs along a path, or at once by an end-to-end pair pre-positioned earlier. The
    agent decides which node pairs to pre-position each slot (paper Algorithm 2's role).

    One step is one slot. The agent acts at the decision point of a slot (after the slot's expiry,
    generation and arrivals); the step then pre-positions, serves, fails overdue requests, and runs the
    next slot up to its decision point.

    ## Action Space
    ``MultiDiscrete([P + 1] * action_len)``, P = n(n-1)/2 node pairs in ``numpy.triu_indices(n, 1)``
    order: the node pairs to pre-position, in order of preference; the value P means "none". The
    simulator tries them in order and skips those whose path lacks a pair, until
    ``max_new_prepositions`` are placed this slot or ``max_prepositioned`` are held (in flight ones
    included, with ``signalling_latency``).
    ``action_masks()`` (for sb3-contrib's MaskablePPO) marks the choices that can succeed now.

    ## Observation Space
    A ``Dict`` of float32 arrays with the same shapes for every topology of one node count:

    | key | shape | meaning |
    |---|---|---|
    | adjacency | (P,) | 1 where the node pair is a link |
    | link_pairs | (P,) | pairs stored on the link |
    | link_fidelity | (P,) | fidelity of the link's best pair now (0: none) |
    | link_age | (P,) | age in slots of the link's best pair (0: none) |
    | link_busy | (P,) | slots the link still waits for a swap's outcome (generates nothing) |
    | path_fidelity | (P,) | fidelity a pre-position of the node pair would get now (0: impossible) |
    | prepositioned | (P,) | pre-positioned pairs held for the node pair |
    | prepositioned_fidelity | (P,) | best fidelity among them now |
    | prepositioned_in_flight | (P,) | pre-positions placed whose outcome has not arrived (count toward K) |
    | requests_in_flight | (P,) | requests of the node pair whose on-demand delivery is on its way |
    | demand | (P,) | requests that arrived in the last ``demand_obs_slots`` slots (clipped at 10^6) |
    | arrivals | (P,) | requests that arrived in this slot, all of them (the queue shows at most Q) |
    | queue | (6 Q,) | queued requests in service order, 6 numbers each (row-major): source, destination, F_req, slots left, slots waited, priority |
    | queue_mask | (Q,) | 1 for a real request, 0 for padding |
    | time_of_day | (2,) | sin and cos of the slot's phase in the day |
    | demand_ema | (H, P) | only with ``demand_ema_half_lives`` (H of them): per pair, mean requests per slot, exponentially weighted (one row per half-life) |
    | demand_by_hour | (24, P) | only with ``demand_hour_obs``: per pair, requests arrived so far in each hour of day, row 0 the current hour, row k the hour k hours later |

    The last two (:mod:`spep_gym.demand_obs`) are off by default: the observation is then the first
    15 keys alone.

    ## Rewards
    ``reward_served * (priority weight served this slot) - reward_failed * (priority weight failed)``,
    the terms in ``info["rewards"]``; with ``reward_predictive_hit`` (default 0) plus that much per
    predictive hit: a pre-positioned pair used by a request that arrived after it was placed.

    ## Starting State
    An empty network (no pairs, requests or history) at slot 0, midnight; the topology and the whole
    workload are drawn from the episode's seed (``topology_seed`` fixes the graph instead).

    ## Episode End
    Never terminates; truncates after ``episode_slots`` slots, with the episode's metrics in
    ``info["episode_metrics"]``. Requests still queued then are pending. ``gym.make(...,
    max_episode_steps=N)`` cuts sooner with a ``TimeLimit`` outside the env, which cannot know: set
    ``episode_slots=N`` instead, or wrap with :class:`spep_gym.wrappers.EpisodeMetricsInfo`, which
    gives ``episode_metrics`` at every end (``make_vec``'s vector entry point cuts at N itself).

    ## Arguments
    ``gym.make("Spep-v0", config=None, render_mode=None, preset=None, **fields)``: any field of
    :class:`spep_gym.config.SpepConfig` as a keyword, over ``config`` (a ``SpepConfig`` or a dict of
    fields; default: the paper preset) or over the named ``preset`` (``"paper"`` or ``"physical"``;
    ``gym.make("Spep-physical-v0")`` is the same as ``preset="physical"``).
    ``engine="compiled"`` runs the slots in the compiled engine (:mod:`spep_gym.compiled`, numba:
    the ``fast`` extra), equal to the default ``"python"`` engine bit for bit; it does not cover
    rendering yet, and refuses it.

    ## Version History
    * v0: first version.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}  # noqa: RUF012
    _spec: EnvSpec | None = None

    def __init__(
        self,
        config: SpepConfig | Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        preset: str | None = None,
        engine: str = "python",
        **fields: Any,
    ) -> None:
        if isinstance(config, Mapping):  # gym.make(..., config={...}): fields as a dict
            fields = {**config, **fields}
            config = None
        elif config is not None and not isinstance(config, SpepConfig):
            raise ValueError(
                f"config = {config!r} is invalid: allowed a SpepConfig, a dict of its fields or None"
            )
        if preset is not None:
            if config is not None:
                raise ValueError("give either config or preset, not both (preset names a config)")
            fields = {"preset": preset, **fields}
        self.config = cfg = SpepConfig.from_dict(fields, base=config)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is invalid: allowed None, 'ansi' or 'rgb_array'"
            )
        self.render_mode = render_mode
        self.engine = engine
        self.sim: Any
        self._core: Any = None  # engine="compiled": the step in one compiled call
        if engine == "compiled":
            if render_mode is not None:
                raise ValueError(
                    f"render_mode={render_mode!r} is not covered by engine='compiled' yet: "
                    "allowed None (engine='python' renders)"
                )
            from spep_gym.compiled import CompiledSimulator
            from spep_gym.compiled.env_step import EnvCore

            self.sim = CompiledSimulator(cfg)
            self._core = EnvCore(self.sim)
        elif engine == "python":
            self.sim = Simulator(cfg)
        else:
            raise ValueError(f"engine = {engine!r} is invalid: allowed 'python' or 'compiled'")
        n = cfg.n
        self.num_pairs = P = num_pairs(n)
        Q = cfg.queue_obs_size
        cap = float(self.sim.max_link_capacity)
        d_max = float(self.sim.max_deadline_slots)
        w_max = float(self.sim.max_priority)
        box = spaces.Box
        f32 = np.float32
        self.observation_space: spaces.Dict = spaces.Dict(  # type: ignore[assignment]
            {
                "adjacency": box(0.0, 1.0, (P,), f32),
                "link_pairs": box(0.0, cap, (P,), f32),
                "link_fidelity": box(0.0, 1.0, (P,), f32),
                "link_age": box(0.0, float(cfg.max_lifetime + 1), (P,), f32),
                "link_busy": box(0.0, float(max(1, *self.sim.delays)), (P,), f32),
                "path_fidelity": box(0.0, 1.0, (P,), f32),
                "prepositioned": box(0.0, float(cfg.max_prepositioned), (P,), f32),
                "prepositioned_fidelity": box(0.0, 1.0, (P,), f32),
                "prepositioned_in_flight": box(0.0, float(cfg.max_prepositioned), (P,), f32),
                # a request in flight holds a memory on each of its links: at most P * capacity
                "requests_in_flight": box(0.0, float(P) * cap, (P,), f32),
                "demand": box(0.0, DEMAND_OBS_MAX, (P,), f32),
                "arrivals": box(0.0, DEMAND_OBS_MAX, (P,), f32),
                "queue": box(
                    np.zeros(Q * 6, f32),
                    np.tile(np.array([n - 1, n - 1, 1.0, d_max, d_max, w_max], f32), Q),
                    dtype=f32,
                ),
                "queue_mask": box(0.0, 1.0, (Q,), f32),
                "time_of_day": box(-1.0, 1.0, (2,), f32),
                **demand_obs.observation_spaces(cfg, P),
            }
        )
        self._keys = (*OBSERVATION_KEYS, *demand_obs.observation_spaces(cfg, P))
        self._demand_stats = demand_obs.DemandStats(cfg, P) if demand_obs.enabled(cfg) else None
        self.action_space = spaces.MultiDiscrete(np.full(cfg.action_len, P + 1, dtype=np.int64))
        self._action_shape = (cfg.action_len,)
        self._demand = np.zeros(P, dtype=np.float32)
        self._events: SlotEvents | None = None
        self._pf: np.ndarray | None = None

    # ------------------------------------------------------------------ Gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode from ``seed`` (drawn from ``np_random`` when None); Gymnasium's ``reset``."""
        super().reset(seed=seed)
        episode_seed = seed if seed is not None else int(self.np_random.integers(2**63 - 1))
        self.episode_seed = episode_seed
        if self._core is not None:
            self._core.reset(episode_seed)
            events = self.sim.events(-1)
        else:
            events = self.sim.reset(episode_seed)
        self._pf = None
        net = self.sim.net
        self._link_pair = net.pair_index[net.edges[:, 0], net.edges[:, 1]]
        self._adjacency = np.zeros(self.num_pairs, dtype=np.float32)
        self._adjacency[self._link_pair] = 1.0
        self._demand[:] = 0.0
        if self._demand_stats is not None:
            self._demand_stats.reset()
        self._events = events
        if self._core is not None:
            return self._compiled_observation(), self._info(events, 0.0, 0.0)
        self._update_demand(events)
        return self._observation(), self._info(events, 0.0, 0.0)

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Run one slot with the preference list ``action``; Gymnasium's ``step``."""
        if self._events is None:
            raise RuntimeError("call reset() before step()")
        if self.sim.done:
            raise RuntimeError("the episode is over (truncated): call reset()")
        if self._core is not None:
            return self._compiled_step(action)
        events = self.sim.step(self._action_list(action))
        self._pf = None
        self._update_demand(events)
        served = self.config.reward_served * events.served_weight
        failed = self.config.reward_failed * events.failed_weight
        reward = served - failed
        if self.config.reward_predictive_hit:
            reward += self.config.reward_predictive_hit * events.predictive_hits
        truncated = self.sim.done
        info = self._info(events, served, failed)
        if truncated:
            info["episode_metrics"] = self.sim.metrics.summary()
        self._events = events
        return self._observation(), float(reward), False, truncated, info

    def _compiled_step(
        self, action: Any
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """``step`` on the compiled engine: the same values as the python path.

        The action is checked, the slot run and observed in one compiled call
        (:mod:`spep_gym.compiled.env_step`).
        """
        sim, cfg = self.sim, self.config
        a = action if type(action) is np.ndarray else np.asarray(action)
        if a.shape != self._action_shape or a.dtype.kind not in "iu":
            raise self._invalid_action(action, a)
        slot = sim.t
        if not self._core.step(a if a.dtype == np.int64 else a.astype(np.int64)):
            raise self._invalid_action(action, a)  # a value outside 0..P: nothing ran
        self._pf = None
        served_weight, failed_weight, hits = self._core.totals()
        served = cfg.reward_served * served_weight
        failed = cfg.reward_failed * failed_weight
        reward = served - failed
        if cfg.reward_predictive_hit:
            reward += cfg.reward_predictive_hit * hits
        truncated = sim.done
        info: dict[str, Any] = {"rewards": {"served": served, "failed": -failed}}
        if cfg.info_level != "minimal":  # the rest is built when it is first read
            info = LazyInfo(
                info, functools.partial(self._compiled_info, slot, self._core.snapshot())
            )
        if truncated:
            info["episode_metrics"] = sim.metrics.summary()
        return self._compiled_observation(), float(reward), False, truncated, info

    def _compiled_info(self, slot: int, snapshot: Any) -> dict[str, Any]:
        """The info of the compiled step that finished ``slot``, from ``EnvCore.snapshot()``."""
        from spep_gym.compiled.engine import events_of, metrics_of

        t, starts, counts, sums, placed, served, failed, pf, held, workload, end = snapshot
        events = events_of(slot, t, starts, counts, sums, placed, served, failed)
        return self._info(
            events, self.config.reward_served * events.served_weight,
            self.config.reward_failed * events.failed_weight, next_slot=t,
            metrics=metrics_of(counts, sums).summary(), workload=workload, end_slot=end,
            mask=lambda: self._mask(held, pf),
        )  # fmt: skip

    def _compiled_observation(self) -> dict[str, np.ndarray]:
        """The compiled engine's observation (a copy), with the long-run demand keys if asked."""
        obs = self._core.observation()
        if self._demand_stats is not None:
            t = self.sim.t
            if not self.sim.done:
                self._demand_stats.update(self._core.arrived, t)
            obs.update(self._demand_stats.observe(t))
        return obs

    def _invalid_action(self, action: Any, a: np.ndarray) -> ValueError:
        """The one-line error of an action outside ``action_space`` (``a``: it as an array)."""
        L, P = self.config.action_len, self.num_pairs
        shown = reprlib.repr(action)
        got = f"shape {a.shape}, dtype {a.dtype}"
        return ValueError(
            f"action = {shown} ({got}) is invalid: allowed an integer array of shape ({L},) "
            f"with values in 0..{P} (the action space MultiDiscrete([{P + 1}] * {L}); {P} "
            "means none)"
        )

    def _action_list(self, action: Any) -> list[int]:
        """``action`` as a list of ints, if it lies in ``action_space``; else a ValueError."""
        a = action if isinstance(action, np.ndarray) else np.asarray(action)
        P = self.num_pairs
        if (
            a.shape != self._action_shape
            or not np.issubdtype(a.dtype, np.integer)
            or int(a.min()) < 0
            or int(a.max()) > P
        ):
            raise self._invalid_action(action, a)
        return a.tolist()

    def render(self) -> str | np.ndarray | None:
        """Draw the current state as text (``ansi``) or an image (``rgb_array``)."""
        self._require_reset("render()")
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi'")
            return None
        from spep_gym import render

        if self.render_mode == "ansi":
            return render.ansi(self)
        return render.rgb_array(self)

    # ------------------------------------------------------------------ masks
    def action_masks(self) -> np.ndarray:
        """(action_len * (P + 1),) bool: per action entry, the node pairs that can be placed now."""
        self._require_reset("action_masks()")
        if self._core is not None:
            held = self._core.held()
        else:
            held = len(self.sim.held) + self.sim.metrics.prepositions_in_flight
        return self._mask(held, self._path_fidelity())

    def _mask(self, held: int, pf: np.ndarray) -> np.ndarray:
        """The action mask with ``held`` pre-positions (in flight ones included) and fidelities."""
        cfg = self.config
        mask = np.empty((cfg.action_len, self.num_pairs + 1), dtype=bool)
        mask[:, -1] = True
        if held >= cfg.max_prepositioned or cfg.max_new_prepositions == 0:
            mask[:, :-1] = False
        else:
            mask[:, :-1] = pf > 0.0
        return mask.reshape(-1)

    # ------------------------------------------------------------------ internals
    def _path_fidelity(self) -> np.ndarray:
        """``sim.preposition_fidelity()``, computed once per decision point (obs and mask share it)."""
        pf = self._pf
        if pf is None:
            pf = self._pf = self.sim.preposition_fidelity() if self._core is None else self._core.pf
        return pf

    def _update_demand(self, events: SlotEvents) -> None:
        """Slide the window of ``demand``: add this slot's arrivals, drop those W slots ago."""
        w = self.sim.workload
        pair = w.pair
        t = self.sim.t
        self._arrivals = np.zeros(self.num_pairs, dtype=np.float32)
        if events.arrived:
            np.add.at(self._arrivals, pair[events.arrived], 1.0)
            self._demand += self._arrivals
        old = t - self.config.demand_obs_slots
        if old >= 0 and not self.sim.done:
            lo, hi = w.starts[old], w.starts[old + 1]
            if hi > lo:
                np.subtract.at(self._demand, pair[lo:hi], 1.0)
        if self._demand_stats is not None and not self.sim.done:
            self._demand_stats.update(self._arrivals, t)

    def _observation(self) -> dict[str, np.ndarray]:
        sim, cfg = self.sim, self.config
        P, lp = self.num_pairs, self._link_pair
        t = sim.t
        Q = cfg.queue_obs_size
        link_pairs = np.zeros(P, np.float32)
        links = sim.links
        link_pairs[lp] = links.count
        link_fid = np.zeros(P, np.float32)
        link_fid[lp] = links.fidelity(t)
        link_age = np.zeros(P, np.float32)
        link_age[lp] = np.where(links.count > 0, t - links.youngest, 0)
        link_busy = np.zeros(P, np.float32)
        held_flight = np.zeros(P, np.float32)
        requests_flight = np.zeros(P, np.float32)
        if sim.in_flight:
            link_busy[lp] = np.maximum(links.busy_until - t, 0)
            for flight in sim.in_flight:
                (held_flight if flight.request < 0 else requests_flight)[flight.pair] += 1.0
        held = np.zeros(P, np.float32)
        held_fid = np.zeros(P, np.float32)
        for pair, f in sim.held_fidelities():
            held[pair] += 1.0
            held_fid[pair] = max(held_fid[pair], f)
        queue = np.zeros((Q, 6), np.float32)
        mask = np.zeros(Q, np.float32)
        if sim.queue_length:
            ids = np.array(sim.queued_requests(Q))
            w = sim.workload
            k = len(ids)
            queue[:k, 0] = w.source[ids]
            queue[:k, 1] = w.destination[ids]
            queue[:k, 2] = w.F_req[ids]
            queue[:k, 3] = w.deadline[ids] - t
            queue[:k, 4] = t - w.arrival[ids]
            queue[:k, 5] = w.priority[ids]
            mask[:k] = 1.0
        obs = {
            "link_pairs": link_pairs,
            "link_fidelity": link_fid,
            "link_age": link_age,
            "link_busy": link_busy,
            "prepositioned": held,
            "prepositioned_fidelity": held_fid,
            "prepositioned_in_flight": held_flight,
            "requests_in_flight": requests_flight,
            "queue": queue.reshape(-1),
            "queue_mask": mask,
        }
        return self._with_common(obs)

    def _with_common(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The observation: the simulator's ``state`` part and the env's own keys, in key order."""
        cfg = self.config
        phase = 2.0 * np.pi * (self.sim.t % cfg.slots_per_day) / cfg.slots_per_day
        common = {
            "adjacency": self._adjacency.copy(),
            "path_fidelity": self._path_fidelity().astype(np.float32),
            "demand": np.minimum(self._demand, DEMAND_OBS_MAX),
            "arrivals": np.minimum(self._arrivals, DEMAND_OBS_MAX),
            "time_of_day": np.array([np.sin(phase), np.cos(phase)], np.float32),
        }
        if self._demand_stats is not None:
            common.update(self._demand_stats.observe(self.sim.t))
        return {k: common[k] if k in common else state[k] for k in self._keys}

    def _require_reset(self, what: str) -> None:
        if self._events is None:
            raise RuntimeError(f"call reset() before {what}: there is no episode yet")

    @property  # type: ignore[override]
    def spec(self) -> EnvSpec | None:
        """The registration spec; ``max_episode_steps`` is the config's ``episode_slots``."""
        return self._spec

    @spec.setter
    def spec(self, value: EnvSpec | None) -> None:
        # gym.make sets a spec without a step limit: the episode's length is episode_slots.
        if value is not None and value.max_episode_steps != self.config.episode_slots:
            value = dataclasses.replace(value, max_episode_steps=self.config.episode_slots)
        self._spec = value

    def _info(
        self,
        events: SlotEvents,
        served: float,
        failed: float,
        *,
        next_slot: int | None = None,
        metrics: dict[str, float] | None = None,
        workload: Any = None,
        end_slot: np.ndarray | None = None,
        mask: Callable[[], np.ndarray] | None = None,
    ) -> dict[str, Any]:
        """The step's info at ``info_level`` (full: events, counts, metrics and the mask).

        The keywords give what the step saw when the info is built later (:class:`LazyInfo`);
        by default the simulator's state now.
        """
        level = self.config.info_level
        rewards = {"served": served, "failed": -failed}
        if level == "minimal":
            return {"rewards": rewards}
        counts = {
            "slot": events.slot,
            "next_slot": self.sim.t if next_slot is None else next_slot,
            "prepositions_used": sum(1 for s in events.served if s[1] == PREPOSITIONED),
            "prepositions_expired": events.prepositions_expired,
            "pairs_generated": events.pairs_generated,
            "pairs_consumed": events.pairs_consumed,
            "pairs_expired": events.pairs_expired,
            "pairs_replaced": events.pairs_replaced,
            "swap_failures": events.swap_failures,
            "rewards": rewards,
            "metrics": self.sim.metrics.summary() if metrics is None else metrics,
        }
        if level == "counts":
            return counts
        w = self.sim.workload if workload is None else workload
        end = self.sim.records["end_slot"] if end_slot is None else end_slot
        arrived = [
            {
                "id": r,
                "source": int(w.source[r]),
                "destination": int(w.destination[r]),
                "pair": int(w.pair[r]),
                "arrival": int(w.arrival[r]),
                "F_req": float(w.F_req[r]),
                "deadline": int(w.deadline[r]),
                "priority": float(w.priority[r]),
            }
            for r in events.arrived
        ]
        return {
            **counts,
            "arrived": arrived,
            "served": [
                {
                    "id": r,
                    "how": HOW_NAMES[how],
                    "fidelity": f,
                    "hops": h,
                    "latency": int(end[r] - w.arrival[r]),
                }
                for r, how, f, h in events.served
            ],
            "failed": list(events.failed),
            "placed": [{"pair": a, "fidelity": f, "hops": h} for a, f, h in events.placed],
            "action_mask": self.action_masks() if mask is None else mask(),
        }


class LazyInfo(dict[str, Any]):
    """A step's info whose costly entries are built when it is first read (``engine="compiled"``).

    It holds the cheap entries (``rewards``) and ``fill``, which returns the whole info; any read
    (a key, ``in``, iteration, ``len``, ``items``, equality, a copy, pickling) builds it first, in
    the order of the eager info, keeping the values set on it before. Writing does not build it.
    ``fill`` reads what the step saw, copied at the step, so a later step does not change it.
    """

    __slots__ = ("_fill",)

    def __init__(self, cheap: dict[str, Any], fill: Callable[[], dict[str, Any]]) -> None:
        super().__init__(cheap)
        self._fill: Callable[[], dict[str, Any]] | None = fill

    def _build(self) -> None:
        fill = self._fill
        if fill is not None:
            self._fill = None
            whole = {**fill(), **dict(dict.items(self))}
            dict.clear(self)
            dict.update(self, whole)

    def __reduce_ex__(self, protocol: Any) -> Any:
        self._build()
        return (dict, (dict(dict.items(self)),))

    def __eq__(self, other: object) -> bool:
        self._build()
        if isinstance(other, LazyInfo):
            other._build()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other


def _building(name: str) -> Any:
    method = getattr(dict, name)

    @functools.wraps(method)
    def read(self: LazyInfo, *args: Any) -> Any:
        self._build()
        return method(self, *args)

    return read


for _name in (
    "__getitem__", "__contains__", "__iter__", "__len__", "__repr__", "__reversed__", "__or__",
    "__ror__", "__delitem__", "get", "keys", "values", "items", "copy", "pop", "popitem",
    "setdefault",
):  # fmt: skip
    setattr(LazyInfo, _name, _building(_name))
