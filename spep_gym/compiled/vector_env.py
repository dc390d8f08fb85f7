"""``CompiledVectorEnv``: ``Spep-v0`` as a Gymnasium vector env over the compiled engine (CPU).

``gym.make_vec("Spep-v0", num_envs=B, vectorization_mode="vector_entry_point")`` makes one on the
CPU when numba is importable (:func:`spep_gym.make_vector_env` chooses). Network i runs the
scalar ``SpepEnv`` episode of its seed, to the last bit: the compiled engine draws from the
scalar simulator's own streams. One compiled call steps every network (``prange`` over them) and
writes the observations, masks and counters into arrays the env owns; Python refills a network's
draw buffers only when they run low (every GEN_CHUNK slots), and resets networks one by one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numba
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from numba.typed import List

from spep_gym.compiled.engine import CompiledSimulator, check_supported
from spep_gym.compiled.state import (
    COUNTER_NAMES,
    EV_FAILED_WEIGHT,
    EV_PREDICTIVE_HITS,
    EV_SERVED_WEIGHT,
    FAILED_WEIGHT,
    FIDELITY_SUM,
    LATENCY_SUM,
    NUM_COUNTS,
    NUM_SUMS,
    SERVED_WEIGHT,
    T_NOW,
)
from spep_gym.compiled.vector import after_rows, step_rows
from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv
from spep_gym.resources import check_batched_memory
from spep_gym.vector_checks import episode_seeds, episode_steps, is_seed, reset_rows

#: The per-step counts of ``info`` (int64 (B,)), each the change of one metric counter.
INFO_COUNTS = {
    "arrived": "arrived",
    "served": "served",
    "failed": "failed",
    "placed": "prepositions_placed",
    "prepositions_used": "served_prepositioned",
    "prepositions_expired": "prepositions_expired",
    "pairs_generated": "pairs_generated",
    "pairs_consumed": "pairs_consumed",
    "pairs_expired": "pairs_expired",
    "pairs_replaced": "pairs_replaced",
    "swap_failures": "swap_failures",
    "queue_overflow": "queue_overflow",
}
_COL = {name: i for i, name in enumerate(COUNTER_NAMES)}
#: The observation keys the compiled call writes, in the order of its ``obs`` tuple.
_FILLED = (
    "link_pairs", "link_fidelity", "link_age", "prepositioned", "prepositioned_fidelity", "queue",
    "queue_mask", "path_fidelity", "arrivals", "demand",
)  # fmt: skip
#: Keys that stay zero: nothing is in flight (``signalling_latency`` is 0 here).
_ZERO = ("link_busy", "prepositioned_in_flight", "requests_in_flight")


@contextlib.contextmanager
def numba_threads(num_threads: int | None) -> Iterator[None]:
    """Run numba's parallel loops on ``num_threads`` threads in the block, then restore the count."""
    before = numba.get_num_threads()
    if num_threads is None or num_threads == before:
        yield
        return
    numba.set_num_threads(min(num_threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    try:
        yield
    finally:
        numba.set_num_threads(before)


#: Config fields the compiled vector env does not cover, with the value it needs.
_NOT_COVERED = {"signalling_latency": 0.0, "demand_ema_half_lives": (), "demand_hour_obs": False}


class NotCovered(ValueError):
    """A config option the compiled vector env does not cover (the torch core does)."""


def not_covered(cfg: SpepConfig) -> str | None:
    """Why the compiled vector env cannot run ``cfg`` in one line, or None when it can."""
    try:
        check_supported(cfg)
    except ValueError as err:
        return str(err)
    for name, allowed in _NOT_COVERED.items():
        value = getattr(cfg, name)
        if value != allowed:
            return (
                f"config field {name!r} = {value!r} is not covered by the compiled vector env: "
                f"allowed {allowed!r} (engine='torch' covers it)"
            )
    return None


class CompiledVectorEnv(gym.vector.VectorEnv):
    """B copies of ``Spep-v0`` stepped at once by the compiled engine, on the CPU.

    Args:
        num_envs: the batch size B.
        config: a ``SpepConfig``, a dict of its fields, or a sequence of either, one per network
            (they must all be equal: a batch runs one config).
        preset: ``"paper"`` or ``"physical"`` (as ``SpepEnv``'s argument).
        autoreset_mode: ``AutoresetMode.NEXT_STEP`` (default), ``SAME_STEP`` or ``DISABLED``.
        render_mode: only None.
        max_episode_steps: None or an int N >= 1: episodes end after ``min(N, episode_slots)``
            steps, as ``TimeLimit(N)`` cuts ``SpepEnv``, with ``episode_metrics`` at the cut.
        num_threads: numba's threads for the loop over networks while ``reset`` and ``step`` run
            (default 1, which measured fastest on the loaded 2-core machine: docs/batched.md), the
            caller's count restored after each call; None: numba's own setting, every core.
        draws: only ``"scalar"``: the scalar env's own streams (``SpepVectorEnv``'s name for them).
        copy: return copies of the observation arrays (default, as ``SyncVectorEnv``); False
            returns the env's own arrays, overwritten by the next ``step`` or ``reset``.
        **fields: any field of ``SpepConfig``, over ``config`` or ``preset``.

    ``info`` has the keys of :class:`spep_gym.batched.vector_env.SpepVectorEnv`'s (docs/batched.md).
    Options it does not cover (:func:`not_covered`) are a :class:`NotCovered` error in one line.
    """

    metadata: dict[str, Any] = {  # noqa: RUF012
        "autoreset_mode": AutoresetMode.NEXT_STEP,
        "render_modes": [],
    }

    def __init__(
        self,
        num_envs: int = 1,
        config: SpepConfig | Mapping[str, Any] | Sequence[Any] | None = None,
        preset: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        max_episode_steps: int | None = None,
        num_threads: int | None = 1,
        copy: bool = True,
        draws: str = "scalar",
        **fields: Any,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r} is invalid: allowed an integer >= 1")
        B = self.num_envs = int(num_envs)
        if num_threads is not None and (
            isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
        ):
            raise ValueError(
                f"num_threads={num_threads!r} is invalid: allowed an integer >= 1 or None "
                "(numba's own setting)"
            )
        if render_mode is not None:
            raise ValueError(
                f"render_mode={render_mode!r} is invalid: the vector env renders nothing (None)"
            )
        if isinstance(config, Sequence) and not isinstance(config, str | Mapping):
            from spep_gym.batched.state import same_config

            configs = [SpepEnv(c, preset=preset, **fields).config for c in config]
            if len(configs) != B:
                raise ValueError(f"{len(configs)} configs for num_envs={B}: give one per network")
            cfg = same_config(configs)
        else:
            cfg = SpepEnv(config, preset=preset, **fields).config  # type: ignore[arg-type]
        refused = not_covered(cfg)
        if refused:
            raise NotCovered(refused)
        check_batched_memory(cfg, B)  # a batch that cannot fit: one line, before any allocation
        if draws != "scalar":
            raise ValueError(
                f"draws={draws!r} is invalid for engine='compiled': allowed 'scalar' (the scalar "
                "env's streams; engine='torch' takes the others)"
            )
        mode, self.max_episode_steps = episode_steps(
            autoreset_mode, max_episode_steps, cfg.episode_slots
        )
        self.config = cfg
        self.num_threads = num_threads
        self.copy = bool(copy)
        single = SpepEnv(cfg, engine="compiled")
        self.sims = [CompiledSimulator(cfg) for _ in range(B)]
        self.params = self.sims[0].params
        self.num_pairs = P = single.num_pairs
        self.single_observation_space = single.observation_space
        self.single_action_space = single.action_space
        self.observation_space = batch_space(self.single_observation_space, B)
        self.action_space = batch_space(self.single_action_space, B)
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.autoreset_mode = mode
        self.render_mode = None
        self._keys = single._keys
        # the time_of_day of every slot an episode shows, as SpepEnv computes it
        spd = cfg.slots_per_day
        phases = [2.0 * np.pi * (t % spd) / spd for t in range(min(spd, cfg.episode_slots + 1))]
        self._time_of_day = np.array([[np.sin(x), np.cos(x)] for x in phases], np.float32)
        Q, L = cfg.queue_obs_size, cfg.action_len
        f32 = np.float32
        shapes: dict[str, tuple[int, ...]] = {k: (B, P) for k in _FILLED}
        shapes.update(queue=(B, Q, 6), queue_mask=(B, Q))
        self._out = {k: np.zeros(shape, f32) for k, shape in shapes.items()}
        self._obs_tuple = tuple(self._out[k] for k in _FILLED)
        self._adjacency = np.zeros((B, P), f32)
        self._zero = np.zeros((B, P), f32)
        self._demand = np.zeros((B, P), f32)
        self._pf = np.zeros((B, P))
        self._mask = np.zeros((B, L, P + 1), dtype=np.bool_)
        self._counts = np.zeros((B, NUM_COUNTS), dtype=np.int64)
        self._sums = np.zeros((B, NUM_SUMS))
        self._need = np.zeros(B, dtype=np.bool_)
        self._link_pair = np.zeros((B, P), dtype=np.int64)  # E <= P links
        self._states: Any = None  # a typed List of State, built by the first reset
        self._rngs: list[np.random.Generator | None] = [None] * B
        self._autoreset = np.zeros(B, dtype=bool)
        self.episode_seeds = np.zeros(B, dtype=object)
        self._started = False

    # ------------------------------------------------------------------ Gymnasium API
    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset every network (or those of ``options["reset_mask"]``); Gymnasium's ``reset``.

        ``seed``: None (each network draws its episode seed from its own generator), an int
        (network i gets ``seed + i``) or one seed (or None) per network, as ``SyncVectorEnv``.
        """
        B = self.num_envs
        seeds = episode_seeds(seed, B)
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(
                int(seed) if is_seed(seed) else None
            )
        rows = reset_rows(options, B, self._started)
        with numba_threads(self.num_threads):
            self._reset_rows(rows, [seeds[i] for i in rows])
        self._autoreset[rows] = False
        base = np.zeros_like(self._counts)
        return self._obs(), self._info(base, np.zeros(B), np.zeros(B), np.full(B, -1))

    def step(self, actions: Any) -> tuple[dict[str, Any], Any, Any, Any, dict[str, Any]]:
        """Run one slot in every network; Gymnasium's ``step`` with ``autoreset_mode``."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        given = np.asarray(actions)
        expected = (self.num_envs, self.config.action_len)
        P = self.num_pairs
        valid = bool(np.issubdtype(given.dtype, np.integer)) and given.shape == expected
        if valid:  # any integer dtype, as SpepEnv; as int64, unsigned values >= 2**63 turn negative
            acts = np.ascontiguousarray(given, dtype=np.int64)
            valid = not acts.size or (int(acts.min()) >= 0 and int(acts.max()) <= P)
        if not valid:
            raise ValueError(
                f"actions (shape {given.shape}, dtype {given.dtype}) are invalid: allowed "
                f"integers of shape {expected} with values in 0..{P} (the action space; {P} "
                "means none)"
            )
        mode, B = self.autoreset_mode, self.num_envs
        if mode == AutoresetMode.DISABLED and bool(self._ended().any()):
            raise RuntimeError(
                "an episode is over and autoreset_mode is DISABLED: reset those networks "
                "(reset(options={'reset_mask': truncated}))"
            )
        flagged = self._autoreset.copy()
        zero = np.zeros(B)
        with numba_threads(self.num_threads):
            if flagged.all():
                self._reset_rows(np.arange(B), [None] * B)
                self._autoreset[:] = False
                info = self._info(np.zeros_like(self._counts), zero, zero, np.full(B, -1))
                return self._obs(), zero, np.zeros(B, bool), np.zeros(B, bool), info
            slot = self._counts[:, T_NOW].copy()
            base = self._counts.copy()
            live = np.flatnonzero(~flagged)
            for b in np.flatnonzero(self._need[live]).tolist():
                self.sims[live[b]]._draw_ahead()
            step_rows(
                self._states, self.params, live, acts, self.config.demand_obs_slots,
                self._link_pair, self._counts, self._sums, self._need, self._obs_tuple,
                self._demand, self._pf, self._mask,
            )  # fmt: skip
            cfg = self.config
            served = cfg.reward_served * self._sums[:, EV_SERVED_WEIGHT]
            failed = cfg.reward_failed * self._sums[:, EV_FAILED_WEIGHT]
            rewards = served - failed
            if cfg.reward_predictive_hit:
                rewards = rewards + cfg.reward_predictive_hit * self._counts[:, EV_PREDICTIVE_HITS]
            truncated = self._ended()
            if flagged.any():  # NEXT_STEP: the networks whose episode ended last step start anew
                rows = np.flatnonzero(flagged)
                self._reset_rows(rows, [None] * len(rows))
                for x in (served, failed, rewards):
                    x[rows] = 0.0
                base[rows], slot[rows], truncated[rows] = 0, -1, False
            if mode == AutoresetMode.SAME_STEP and truncated.any():
                final_obs = self._obs(copy=True)
                final_info = self._info(base, served, failed, slot, episode_end=truncated)
                rows = np.flatnonzero(truncated)
                self._reset_rows(rows, [None] * len(rows))
                base[rows], slot[rows], served[rows], failed[rows] = 0, -1, 0.0, 0.0
                info = self._info(base, served, failed, slot)
                info["final_obs"], info["_final_obs"] = final_obs, truncated.copy()
                info["final_info"], info["_final_info"] = final_info, truncated.copy()
                return self._obs(), rewards, np.zeros(B, bool), truncated, info
        info = self._info(base, served, failed, slot, episode_end=truncated)
        if mode == AutoresetMode.NEXT_STEP:
            self._autoreset = truncated.copy()
        return self._obs(), rewards, np.zeros(B, bool), truncated, info

    def action_masks(self) -> np.ndarray:
        """(B, action_len * (P + 1)) bool: per network and action entry, the pairs placeable now."""
        if not self._started:
            raise RuntimeError("call reset() before action_masks(): there is no episode yet")
        return self._mask.reshape(self.num_envs, -1).copy()

    def render(self) -> None:
        """The vector env renders nothing."""
        return None

    # ------------------------------------------------------------------ internals
    def _ended(self) -> np.ndarray:
        """(B,) True where the episode has run ``max_episode_steps`` steps."""
        return self._counts[:, T_NOW] >= self.max_episode_steps

    def _reset_rows(self, rows: np.ndarray, seeds: list[int | None]) -> None:
        """New episodes in networks ``rows``; a None seed is drawn from the network's generator."""
        states = []
        for b, seed in zip(rows.tolist(), seeds, strict=True):
            if seed is not None:
                self._rngs[b] = seeding.np_random(int(seed))[0]
                episode_seed = int(seed)
            else:
                rng = self._rngs[b]
                if rng is None:
                    rng = self._rngs[b] = seeding.np_random()[0]
                episode_seed = int(rng.integers(2**63 - 1))
            self.episode_seeds[b] = episode_seed
            sim = self.sims[b]
            sim.reset(episode_seed)
            states.append(sim.state)
            net = sim.net
            self._link_pair[b, : net.num_links] = net.pair_index[net.edges[:, 0], net.edges[:, 1]]
            self._adjacency[b] = 0.0
            self._adjacency[b, self._link_pair[b, : net.num_links]] = 1.0
        if self._states is None:  # the first reset resets every network
            self._states = List(states)
        else:
            for b, state in zip(rows.tolist(), states, strict=True):
                self._states[b] = state
        after_rows(
            self._states, self.params, np.ascontiguousarray(rows, dtype=np.int64),
            self.config.demand_obs_slots, self._link_pair, self._counts, self._sums, self._need,
            self._obs_tuple, self._demand, self._pf, self._mask,
        )  # fmt: skip
        self._started = True

    def _obs(self, copy: bool | None = None) -> dict[str, np.ndarray]:
        """The observation: the compiled call's arrays and the env's own keys, in key order."""
        copy = self.copy if copy is None else copy
        t = self._counts[:, T_NOW]
        out = self._out
        obs = {
            **{k: out[k] for k in _FILLED},
            "queue": out["queue"].reshape(self.num_envs, -1),
            "adjacency": self._adjacency,
            "time_of_day": self._time_of_day[t % self.config.slots_per_day],
            **{k: self._zero for k in _ZERO},
        }
        return {k: obs[k].copy() if copy else obs[k] for k in self._keys}

    def _info(
        self,
        base: np.ndarray,
        served: np.ndarray,
        failed: np.ndarray,
        slot: np.ndarray,
        episode_end: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Fixed-shape info arrays (the keys of ``SpepVectorEnv``'s)."""
        counts = self._counts
        change = counts[:, : len(COUNTER_NAMES)] - base[:, : len(COUNTER_NAMES)]
        info: dict[str, Any] = {"slot": slot.copy(), "next_slot": counts[:, T_NOW].copy()}
        for key, name in INFO_COUNTS.items():
            info[key] = change[:, _COL[name]]
        info["rewards"] = {"served": served.copy(), "failed": -failed}
        metrics = self.summary()
        info["metrics"] = metrics
        info["action_mask"] = self.action_masks()
        if episode_end is not None and episode_end.any():
            info["episode_metrics"] = metrics
            info["_episode_metrics"] = episode_end.copy()
        return info

    def summary(self) -> dict[str, np.ndarray]:
        """Per network (B,): every key of ``Metrics.summary()``; rates NaN where undefined."""
        c, s = self._counts, self._sums
        out: dict[str, np.ndarray] = {k: c[:, i].copy() for k, i in _COL.items()}
        out.update(
            latency_sum=s[:, LATENCY_SUM].copy(),
            fidelity_sum=s[:, FIDELITY_SUM].copy(),
            served_weight=s[:, SERVED_WEIGHT].copy(),
            failed_weight=s[:, FAILED_WEIGHT].copy(),
            requests_in_flight=np.zeros(self.num_envs, np.int64),
            prepositions_in_flight=np.zeros(self.num_envs, np.int64),
        )
        out["pending"] = out["arrived"] - out["served"] - out["failed"]

        def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(den > 0, num / den, np.nan)

        done = out["served"] + out["failed"]
        out["success_rate"] = ratio(out["served"], done)
        out["avg_latency"] = ratio(out["latency_sum"], out["served"])
        out["avg_fidelity"] = ratio(out["fidelity_sum"], out["served"])
        out["utilization"] = ratio(out["pairs_delivered"], out["pairs_generated"])
        out["preposition_hit_rate"] = ratio(out["served_prepositioned"], out["served"])
        out["preposition_use_rate"] = ratio(out["prepositions_used"], out["prepositions_placed"])
        out["preposition_waste_rate"] = ratio(
            out["prepositions_expired"], out["prepositions_placed"]
        )
        return out


__all__ = ["INFO_COUNTS", "CompiledVectorEnv", "NotCovered", "not_covered"]
