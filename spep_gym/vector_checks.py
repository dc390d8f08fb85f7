"""The checks both vector envs (torch core and compiled) make of their arguments, written once.

Neither torch nor numba is imported here, so the compiled vector env does not load torch for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeGuard

import numpy as np
from gymnasium.vector import AutoresetMode

__all__ = ["episode_seeds", "episode_steps", "is_seed", "reset_rows"]


def is_seed(seed: Any) -> TypeGuard[int | np.integer]:
    """An episode seed ``SpepEnv.reset`` takes: an integer >= 0 (numpy integers too)."""
    return isinstance(seed, int | np.integer) and bool(seed >= 0)


def episode_steps(
    autoreset_mode: Any, max_episode_steps: Any, episode_slots: int
) -> tuple[AutoresetMode, int]:
    """The autoreset mode and the steps per episode, or a ValueError naming the bad argument."""
    try:
        mode = AutoresetMode(autoreset_mode)
    except ValueError as err:
        raise ValueError(
            f"autoreset_mode={autoreset_mode!r} is invalid: allowed "
            f"{[m.value for m in AutoresetMode]}"
        ) from err
    if max_episode_steps is not None and (
        isinstance(max_episode_steps, bool)
        or not isinstance(max_episode_steps, int)
        or max_episode_steps < 1
    ):
        raise ValueError(
            f"max_episode_steps={max_episode_steps!r} is invalid: allowed None or an integer "
            f">= 1 (episodes end after min(max_episode_steps, episode_slots) steps)"
        )
    # the config's episode, or a shorter cut (a TimeLimit's)
    return mode, min(max_episode_steps or episode_slots, episode_slots)


def episode_seeds(seed: Any, num_envs: int) -> list[Any]:
    """One episode seed (or None) per network, from ``reset``'s ``seed`` as ``SyncVectorEnv`` reads it.

    None: each network draws its own; an int: network i gets ``seed + i``; a sequence: one each.
    """
    seeds: list[Any] | None = None
    if seed is None:
        seeds = [None] * num_envs
    elif is_seed(seed):
        seeds = [int(seed) + i for i in range(num_envs)]
    elif isinstance(seed, Sequence | np.ndarray) and not isinstance(seed, str):
        seeds = list(seed)
    if seeds is None or not all(s is None or is_seed(s) for s in seeds):
        raise ValueError(
            f"seed={seed!r} is invalid: allowed None, an integer >= 0 (network i gets seed + i) "
            "or one seed per network, each None or an integer >= 0"
        )
    if len(seeds) != num_envs:
        raise ValueError(
            f"{len(seeds)} seeds for num_envs={num_envs}: give one per network (or an int)"
        )
    return seeds


def reset_rows(options: dict[str, Any] | None, num_envs: int, started: bool) -> np.ndarray:
    """The networks ``reset`` restarts: all, or those of ``options["reset_mask"]``."""
    options = dict(options or {})
    mask = options.pop("reset_mask", None)
    if mask is None:
        rows = np.arange(num_envs)
    else:
        mask = np.asarray(mask)
        if mask.shape != (num_envs,) or mask.dtype != np.bool_ or not mask.any():
            raise ValueError(
                f"options['reset_mask'] must be a bool array of shape ({num_envs},) with a True, "
                f"got {mask!r}"
            )
        if not started:
            raise RuntimeError("call reset() without reset_mask first")
        rows = np.flatnonzero(mask)
    if options:
        raise ValueError(f"unknown reset options {sorted(options)}: allowed 'reset_mask'")
    return rows
