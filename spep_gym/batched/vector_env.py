"""``SpepVectorEnv``: ``Spep-v0`` as a Gymnasium vector environment over the batched simulator.

``gym.make_vec("Spep-v0", num_envs=B, vectorization_mode="vector_entry_point", engine="torch")``
makes one (``Spep-physical-v0`` likewise; without ``engine`` the CPU gets the compiled vector env
when numba is importable, :func:`spep_gym.make_vector_env`). Its sub-environments are ``SpepEnv``'s: the same spaces,
the same observations and rewards, the same episode seeds; with ``draws="scalar"`` it equals
``gym.make_vec("Spep-v0", num_envs=B, vectorization_mode="sync")`` step for step (tests hold the
two equal), and with the default counter-based draws it runs the same model on its own streams.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from torch import Tensor

from spep_gym.batched.draws import Draws
from spep_gym.batched.simulator import EVENTS, BatchedSimulator, BatchEvents, same_config
from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv
from spep_gym.vector_checks import episode_seeds, episode_steps, is_seed, reset_rows

#: The per-step counts of ``info`` (int64 arrays of shape (B,)), named as in ``SpepEnv``'s info.
INFO_COUNTS = {
    "arrived": "arrived",
    "served": "served",
    "failed": "failed",
    "placed": "placed",
    "prepositions_used": "served_prepositioned",
    "prepositions_expired": "prepositions_expired",
    "pairs_generated": "pairs_generated",
    "pairs_consumed": "pairs_consumed",
    "pairs_expired": "pairs_expired",
    "pairs_replaced": "pairs_replaced",
    "swap_failures": "swap_failures",
    "queue_overflow": "queue_overflow",
}
_ECOL = {name: i for i, name in enumerate(EVENTS)}


#: ``num_threads``' default: on the CPU one torch thread measured fastest (docs/batched.md, Speed).
DEFAULT_NUM_THREADS = 1
_Method = TypeVar("_Method", bound=Callable[..., Any])


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run torch on ``num_threads`` intra-op threads in the block, then restore the caller's count.

    None leaves torch's setting as it is.
    """
    before = torch.get_num_threads()
    if num_threads is None or num_threads == before:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _on_own_threads(method: _Method) -> _Method:
    """Run ``method`` of a ``SpepVectorEnv`` on its ``num_threads`` (on the CPU)."""

    @functools.wraps(method)
    def pinned(self: SpepVectorEnv, *args: Any, **kwargs: Any) -> Any:
        with torch_threads(self._threads):
            return method(self, *args, **kwargs)

    return pinned  # type: ignore[return-value]


class SpepVectorEnv(gym.vector.VectorEnv):
    """B copies of ``Spep-v0`` stepped at once by :class:`~spep_gym.batched.BatchedSimulator`.

    Args:
        num_envs: the batch size B.
        config: a ``SpepConfig``, a dict of its fields, or a sequence of either, one per network
            (they must all be equal: a batch runs one config).
        preset: ``"paper"`` or ``"physical"`` (as ``SpepEnv``'s argument).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        torch_obs: return observations, rewards, flags, masks and info as torch tensors on the
            device (no host copy) instead of numpy arrays.
        autoreset_mode: ``AutoresetMode.NEXT_STEP`` (default), ``SAME_STEP`` or ``DISABLED``.
        draws: ``"counter"`` (on-device counter-based streams), ``"scalar"`` (the scalar
            environment's own streams, drawn on the host: equal to ``SpepEnv`` step for step) or a
            :class:`~spep_gym.batched.draws.Draws`.
        render_mode: only None (the batched core does not render).
        max_episode_steps: None or an int N >= 1 (``make_vec`` passes it): episodes end after
            ``min(N, episode_slots)`` steps, as ``TimeLimit(N)`` cuts ``SpepEnv``, with
            ``episode_metrics`` at the cut.
        num_threads: torch's intra-op CPU threads while ``reset`` and ``step`` run (default 1, which
            measured fastest), the caller's setting restored after each call; None: torch's own
            setting. Ignored on a CUDA device.
        **fields: any field of ``SpepConfig``, over ``config`` or ``preset``.

    ``info`` holds fixed-shape arrays, one entry per network: ``slot`` and ``next_slot`` (the slot
    whose phases 4-6 ran, and the slot now beginning), the step's counts (:data:`INFO_COUNTS`),
    ``rewards`` (``served`` and ``failed`` terms), ``metrics`` (every key of
    ``Metrics.summary()``, NaN where a rate is undefined) and ``action_mask``; at an episode's end
    ``episode_metrics`` with its mask ``_episode_metrics`` (Gymnasium's convention), and with
    ``SAME_STEP`` autoreset ``final_obs`` / ``final_info`` with their masks.
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
        device: str | torch.device = "cpu",
        torch_obs: bool = False,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        draws: str | Draws = "counter",
        render_mode: str | None = None,
        max_episode_steps: int | None = None,
        num_threads: int | None = DEFAULT_NUM_THREADS,
        **fields: Any,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r} is invalid: allowed an integer >= 1")
        num_envs = int(num_envs)
        if num_threads is not None and (
            isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
        ):
            raise ValueError(
                f"num_threads={num_threads!r} is invalid: allowed an integer >= 1 or None "
                "(torch's own setting)"
            )
        if render_mode is not None:
            raise ValueError(
                f"render_mode={render_mode!r} is invalid: the vector env renders nothing (None)"
            )
        if isinstance(config, Sequence) and not isinstance(config, str | Mapping):
            configs = [SpepEnv(c, preset=preset, **fields).config for c in config]
            if len(configs) != num_envs:
                raise ValueError(
                    f"{len(configs)} configs for num_envs={num_envs}: give one per network"
                )
            cfg = same_config(configs)
            single = SpepEnv(cfg)
        else:
            single = SpepEnv(config, preset=preset, **fields)  # type: ignore[arg-type]
            cfg = single.config
        mode, self.max_episode_steps = episode_steps(
            autoreset_mode, max_episode_steps, cfg.episode_slots
        )
        self.config = cfg
        self.sim = BatchedSimulator(cfg, num_envs, device=device, draws=draws)
        self.device = self.sim.device
        self.num_threads = num_threads
        self._threads = num_threads if self.device.type == "cpu" else None
        self.num_envs = num_envs
        self.torch_obs = bool(torch_obs)
        self.num_pairs = self.sim.num_pairs
        self.single_observation_space = single.observation_space
        self.single_action_space = single.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.autoreset_mode = mode
        self.render_mode = None
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self._started = False

    # ------------------------------------------------------------------ Gymnasium API
    @_on_own_threads
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
        events = self._reset_rows(rows, [seeds[i] for i in rows])
        self._autoreset[rows] = False
        info = self._info(events, None)
        return self._obs(), info

    @_on_own_threads
    def step(self, actions: Any) -> tuple[dict[str, Any], Any, Any, Any, dict[str, Any]]:
        """Run one slot in every network; Gymnasium's ``step`` with ``autoreset_mode``."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        given = actions if isinstance(actions, Tensor) else np.asarray(actions)
        expected = (self.num_envs, self.config.action_len)
        P = self.num_pairs
        if isinstance(given, Tensor):
            integer = not (
                given.is_floating_point() or given.is_complex() or given.dtype == torch.bool
            )
        else:
            integer = bool(np.issubdtype(given.dtype, np.integer))
        valid = integer and tuple(given.shape) == expected
        if valid:  # any integer dtype, as SpepEnv; as int64, unsigned values >= 2**63 turn negative
            if isinstance(given, Tensor):
                acts = given.to(device=self.device, dtype=torch.int64)
            else:
                acts = torch.as_tensor(given.astype(np.int64), device=self.device)
            valid = not acts.numel() or (int(acts.min()) >= 0 and int(acts.max()) <= P)
        if not valid:
            raise ValueError(
                f"actions (shape {tuple(given.shape)}, dtype {given.dtype}) are invalid: allowed "
                f"integers of shape {expected} with values in 0..{P} (the action space; {P} "
                "means none)"
            )
        mode = self.autoreset_mode
        flagged = self._autoreset.copy()
        B = self.num_envs
        if mode == AutoresetMode.DISABLED and bool(self._ended().any()):
            raise RuntimeError(
                "an episode is over and autoreset_mode is DISABLED: reset those networks "
                "(reset(options={'reset_mask': truncated}))"
            )
        if flagged.all():
            events = self._reset_rows(np.arange(B), [None] * B)
            rewards = torch.zeros(B, dtype=torch.float64, device=self.device)
            truncated = torch.zeros(B, dtype=torch.bool, device=self.device)
            self._autoreset[:] = False
            info = self._info(events, None)
            return self._obs(), *self._out(rewards, truncated), info
        events = self.sim.step(acts, strict=False)
        cfg = self.config
        served = cfg.reward_served * events.served_weight
        failed = cfg.reward_failed * events.failed_weight
        rewards = served - failed
        if cfg.reward_predictive_hit:
            rewards = rewards + cfg.reward_predictive_hit * events.predictive_hits
        truncated = self._ended()
        if flagged.any():  # NEXT_STEP: the networks whose episode ended last step start anew
            rows = np.flatnonzero(flagged)
            events, (served, failed) = self._merged(events, rows, (served, failed))
            keep = torch.as_tensor(~flagged, device=self.device)
            rewards = torch.where(keep, rewards, 0.0)
            truncated &= keep
        ended = truncated.cpu().numpy()
        if mode == AutoresetMode.SAME_STEP and ended.any():
            # the step's results go to final_obs / final_info, the new episodes' to obs / info
            final_obs = self._obs()
            final_info = self._info(events, (served, failed), episode_end=ended)
            events, (served, failed) = self._merged(events, np.flatnonzero(ended), (served, failed))
            info = self._info(events, (served, failed))
            mask = self._array(torch.as_tensor(ended, device=self.device))
            info["final_obs"], info["_final_obs"] = final_obs, mask
            info["final_info"], info["_final_info"] = final_info, mask
            return self._obs(), *self._out(rewards, truncated), info
        info = self._info(events, (served, failed), episode_end=ended)
        if mode == AutoresetMode.NEXT_STEP:
            self._autoreset = ended
        return self._obs(), *self._out(rewards, truncated), info

    def _ended(self) -> Tensor:
        """(B,) True where the episode has run ``max_episode_steps`` steps."""
        return self.sim.t >= self.max_episode_steps

    def _merged(
        self, events: BatchEvents, rows: np.ndarray, terms: tuple[Tensor, Tensor]
    ) -> tuple[BatchEvents, tuple[Tensor, Tensor]]:
        """Reset networks ``rows``: their events become the reset's, their reward terms 0."""
        reset = self._reset_rows(rows, [None] * len(rows))
        fresh = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        fresh[torch.as_tensor(rows, device=self.device)] = True
        events.table = torch.where(fresh[:, None], reset.table, events.table)
        events.slot = torch.where(fresh, reset.slot, events.slot)
        served, failed = terms
        return events, (torch.where(fresh, 0.0, served), torch.where(fresh, 0.0, failed))

    def action_masks(self) -> Any:
        """(B, action_len * (P + 1)) bool: per network and action entry, the pairs placeable now."""
        if not self._started:
            raise RuntimeError("call reset() before action_masks(): there is no episode yet")
        return self._array(self.sim.action_masks())

    def render(self) -> None:
        """The batched core renders nothing."""
        return None

    # ------------------------------------------------------------------ internals
    def _reset_rows(self, rows: np.ndarray, seeds: list[int | None]) -> BatchEvents:
        """New episodes in networks ``rows``; a None seed is drawn from the network's generator."""
        episode_seeds = []
        for b, seed in zip(rows.tolist(), seeds, strict=True):
            if seed is not None:
                self._rngs[b] = seeding.np_random(int(seed))[0]
                episode_seeds.append(int(seed))
                continue
            rng = self._rngs[b]
            if rng is None:
                rng = self._rngs[b] = seeding.np_random()[0]
            episode_seeds.append(int(rng.integers(2**63 - 1)))
        # Python ints (an object array): a seed may be any integer >= 0, as SpepEnv's
        self.episode_seeds = getattr(self, "episode_seeds", np.zeros(self.num_envs, dtype=object))
        self.episode_seeds[rows] = episode_seeds
        full = len(rows) == self.num_envs
        events = self.sim.reset(episode_seeds, rows=None if full else rows.tolist())
        self._started = True
        return events

    def _obs(self) -> dict[str, Any]:
        obs = self.sim.observation()
        if self.torch_obs:
            return obs
        return {k: v.cpu().numpy() for k, v in obs.items()}

    def _array(self, x: Tensor) -> Any:
        return x if self.torch_obs else x.cpu().numpy()

    def _out(self, rewards: Tensor, truncated: Tensor) -> tuple[Any, Any, Any]:
        terminated = torch.zeros_like(truncated)
        return self._array(rewards), self._array(terminated), self._array(truncated)

    def _info(
        self,
        events: BatchEvents,
        rewards: tuple[Tensor, Tensor] | None,
        episode_end: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Fixed-shape info arrays (see the class docstring)."""
        info: dict[str, Any] = {}
        sim = self.sim
        info["slot"] = self._array(events.slot)
        info["next_slot"] = self._array(sim.t.clone())
        table = events.table.to(torch.int64)
        for key, name in INFO_COUNTS.items():
            info[key] = self._array(table[:, _ECOL[name]])
        if rewards is None:
            zero = torch.zeros(self.num_envs, dtype=torch.float64, device=self.device)
            rewards = (zero, zero)
        info["rewards"] = {"served": self._array(rewards[0]), "failed": self._array(-rewards[1])}
        metrics = {k: self._array(v) for k, v in sim.summary().items()}
        info["metrics"] = metrics
        info["action_mask"] = self.action_masks()
        if episode_end is not None and episode_end.any():
            info["episode_metrics"] = metrics
            info["_episode_metrics"] = self._array(torch.as_tensor(episode_end, device=self.device))
        return info
