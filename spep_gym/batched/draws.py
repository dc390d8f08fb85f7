"""Random draws of the batched simulator: generation uniforms and swap uniforms, per network.

Two sources share one interface (:class:`Draws`):

- :class:`CounterDraws` (the default): counter-based streams computed on the device. A network's
  draws are SplitMix64 outputs at counters that depend on its seed, the slot and the link alone, so
  they do not depend on the batch size, the other networks or the device, and the generation stream
  draws one uniform per link per slot whatever happens (common random numbers).
- :class:`StreamDraws`: the scalar simulator's own numpy streams (``SeedSequence(seed).spawn(4)``,
  the generation and swap streams of :meth:`spep_gym.simulator.Simulator.reset`), drawn network by
  network on the CPU. With it a batched run meets exactly the numbers a scalar run of the same seed
  meets; it is meant for tests and checks (a Python loop over the networks each slot).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

_MASK64 = (1 << 64) - 1


def _signed(x: int) -> int:
    """A 64-bit constant as torch's int64 holds it."""
    x &= _MASK64
    return x - (1 << 64) if x >= 1 << 63 else x


GAMMA = _signed(0x9E3779B97F4A7C15)
_M1 = _signed(0xBF58476D1CE4E5B9)
_M2 = _signed(0x94D049BB133111EB)
#: Stream ids mixed into a network's key.
GENERATION, SWAP = 1, 2


def _srl(x: Tensor, k: int) -> Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def mix(z: Tensor) -> Tensor:
    """SplitMix64's output function (int64 arithmetic wraps modulo 2**64)."""
    z = (z ^ _srl(z, 30)) * _M1
    z = (z ^ _srl(z, 27)) * _M2
    return z ^ _srl(z, 31)


def to_uniform(z: Tensor) -> Tensor:
    """The top 53 bits of ``z`` as a float64 in [0, 1)."""
    return _srl(z, 11).to(torch.float64) * (2.0**-53)


def stream_keys(seeds: Tensor, stream: int) -> Tensor:
    """Key of stream ``stream`` of each network seed (int64 tensor)."""
    return mix(mix(seeds * GAMMA + stream) + GAMMA)


class Draws(Protocol):
    """Where the batched simulator's random numbers come from."""

    def reset(self, seeds: Sequence[int], rows: Tensor, num_links: Tensor) -> None:
        """New episodes in networks ``rows`` with these seeds and link counts."""

    def generation(self, t: Tensor, live: Tensor, width: int) -> Tensor:
        """(B, width) uniforms of slot ``t`` (per network), one per link; rows not ``live`` unused."""

    def swap(self, counts: Tensor) -> Tensor:
        """(B, max(counts)) uniforms: the next ``counts[b]`` swap draws of network b."""


class CounterDraws:
    """Counter-based streams on the device (see the module docstring)."""

    def __init__(self, num_envs: int, device: torch.device) -> None:
        self.gen_key = torch.zeros(num_envs, dtype=torch.int64, device=device)
        self.swap_key = torch.zeros(num_envs, dtype=torch.int64, device=device)
        self.swap_count = torch.zeros(num_envs, dtype=torch.int64, device=device)
        self._links: Tensor | None = None

    def reset(self, seeds: Sequence[int], rows: Tensor, num_links: Tensor) -> None:
        """Derive the keys of the networks ``rows`` from their seeds; swap counters restart."""
        device = self.gen_key.device
        s = torch.tensor([int(x) & ((1 << 63) - 1) for x in seeds], dtype=torch.int64)
        s = s.to(device)
        self.gen_key[rows] = stream_keys(s, GENERATION)
        self.swap_key[rows] = stream_keys(s, SWAP)
        self.swap_count[rows] = 0

    def generation(self, t: Tensor, live: Tensor, width: int) -> Tensor:
        """Uniform of (network, slot, link): SplitMix64 at counter ``t * 2**32 + link``."""
        links = self._links
        if links is None or links.shape[0] != width:
            links = self._links = torch.arange(width, device=t.device)
        counter = (t[:, None] << 32) + links
        return to_uniform(mix(self.gen_key[:, None] + counter * GAMMA))

    def swap(self, counts: Tensor) -> Tensor:
        """The next swap draws of every network, from its running swap counter."""
        width = int(counts.max()) if counts.numel() else 0
        k = torch.arange(width, device=counts.device)
        counter = self.swap_count[:, None] + k
        out = to_uniform(mix(self.swap_key[:, None] + counter * GAMMA))
        self.swap_count += counts
        return out


#: Makes the (generation, swap) generators of an episode from its seed.
StreamFactory = Callable[[int], tuple[Any, Any]]


def scalar_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The generation and swap streams :meth:`spep_gym.simulator.Simulator.reset` makes."""
    _, _, gen_ss, swap_ss = np.random.SeedSequence(seed).spawn(4)
    return np.random.default_rng(gen_ss), np.random.default_rng(swap_ss)


class StreamDraws:
    """Per-network generators with the scalar simulator's draw order (see the module docstring).

    ``streams(seed)`` makes a network's (generation, swap) generators; any objects with a numpy-like
    ``random(size)`` do, so a test can feed the same numbers to both simulators.
    """

    def __init__(self, num_envs: int, device: torch.device, streams: StreamFactory | None = None):
        self.device = device
        self.streams = streams or scalar_streams
        self.gen: list[Any] = [None] * num_envs
        self.swaps: list[Any] = [None] * num_envs
        self.num_links = [0] * num_envs

    def reset(self, seeds: Sequence[int], rows: Tensor, num_links: Tensor) -> None:
        """New generators for the networks ``rows``."""
        for b, seed, links in zip(rows.tolist(), seeds, num_links.tolist(), strict=True):
            self.gen[b], self.swaps[b] = self.streams(int(seed))
            self.num_links[b] = int(links)

    def generation(self, t: Tensor, live: Tensor, width: int) -> Tensor:
        """Each live network draws ``random(E_b)`` from its generation stream."""
        out = np.zeros((len(self.gen), width))
        for b in np.flatnonzero(live.cpu().numpy()).tolist():
            k = self.num_links[b]
            out[b, :k] = self.gen[b].random(k)
        return torch.tensor(out, dtype=torch.float64, device=self.device)

    def swap(self, counts: Tensor) -> Tensor:
        """Each network with ``counts[b] > 0`` draws ``random(counts[b])`` from its swap stream."""
        c = counts.cpu().numpy()
        out = np.zeros((len(self.gen), int(c.max(initial=0))))
        for b in np.flatnonzero(c).tolist():
            out[b, : c[b]] = self.swaps[b].random(int(c[b]))
        return torch.tensor(out, dtype=torch.float64, device=self.device)
