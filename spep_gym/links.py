"""The link pair pools of a network (SPEC sections 2-3): stored pairs and the view routing reads.

A stored pair is known by its link and its creation slot; its fidelity is a lookup in the network's
``fidelity_table`` by age, so nothing per pair is updated as time passes. Routing and path products
read a per-link *view* (usable, swap factor, Dijkstra cost), which :meth:`LinkPool.refresh` rebuilds
after every change to the pools.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from spep_gym import physics
from spep_gym.topology import Network


class LinkPool:
    """Stored link pairs of every link, and the per-link view the routing strategies read.

    State (E links, C = the largest link capacity):

    - ``created``: (E, C) int, creation slot of each stored pair, -1 for a free place;
    - ``count``: (E,) int, pairs stored per link;
    - ``youngest``: (E,) int, creation slot of the link's youngest (highest-fidelity) pair, -1: none;
    - ``busy_until``: (E,) int, last slot in which the link's memories wait for a swap's outcome
      (``signalling_latency``): the link generates nothing up to and including it.

    View (valid after :meth:`refresh`):

    - ``usable`` / ``factor`` / ``cost``: lists (E,): the link holds a pair; the swap model's factor
      of its best pair (0 when none); ``-log(factor)`` (inf when none), for highest-fidelity routing;
    - ``usable_pad`` / ``factor_pad``: the same as arrays of E + 1, padded with the always-usable link
      E of factor 1 that pads the static path matrix.
    """

    def __init__(
        self, net: Network, swap_model: str, costs: bool = True, replace_oldest: bool = False
    ) -> None:
        self.net = net
        self.swap_model = swap_model
        self.costs = costs  # keep ``cost`` for all links (only highest-fidelity routing reads it)
        self.replace_oldest = replace_oldest  # link_pool_policy "replace_oldest" (else "block")
        E = net.num_links
        self.created = np.full((E, int(net.capacity.max(initial=1))), -1, dtype=np.int64)
        self.count = np.zeros(E, dtype=np.int64)
        self.youngest = np.full(E, -1, dtype=np.int64)
        self.busy_until = np.full(E, -1, dtype=np.int64)
        self.busy_max = -1  # the largest busy_until (kept by mark_busy): no busy link before it
        self.usable: list[bool] = [False] * E
        self.factor: list[float] = [0.0] * E
        self.cost: list[float] = [math.inf] * E
        self.usable_pad = np.ones(E + 1, dtype=bool)
        self.factor_pad = np.ones(E + 1)
        self._links = np.arange(E)
        self._fidelity_slot, self._fidelity = -1, np.zeros(E)  # fidelity(t), until a change

    # ------------------------------------------------------------------ changes
    def discard_expired(self, t: int) -> int:
        """Phase 1: drop the pairs whose age reached their link's lifetime; return how many."""
        created = self.created
        expired = (created >= 0) & (t - created >= self.net.lifetime[:, None])
        if not expired.any():
            return 0
        created[expired] = -1
        per_link = expired.sum(axis=1)
        self.count -= per_link
        self.youngest = created.max(axis=1)
        self._fidelity_slot = -1
        return int(per_link.sum())

    def generate(self, t: int, uniforms: np.ndarray) -> tuple[int, int]:
        """Phase 2: a new pair on every link whose uniform is below its p_gen; ``(new, replaced)``.

        A link that waits for a swap's outcome (``busy_until >= t``) generates nothing. A full link
        generates nothing under ``block``; under ``replace_oldest`` the new pair replaces its oldest
        pair (``replaced`` counts those; ``new`` counts every new pair, the replacing ones too).
        """
        draw = uniforms < self.net.p_gen
        if self.busy_max >= t:
            draw &= self.busy_until < t
        room = self.count < self.net.capacity
        links = np.flatnonzero(draw & room)
        if len(links):
            free = np.argmax(self.created[links] < 0, axis=1)
            self.created[links, free] = t
            self.count[links] += 1
            self.youngest[links] = t
            self._fidelity_slot = -1
        replaced = 0
        if self.replace_oldest:
            over = draw & ~room
            if over.any():
                full = np.flatnonzero(over)
                rows = self.created[full]
                oldest = np.argmin(np.where(rows >= 0, rows, np.iinfo(np.int64).max), axis=1)
                self.created[full, oldest] = t
                self.youngest[full] = t
                replaced = len(full)
                self._fidelity_slot = -1
        return len(links) + replaced, replaced

    def mark_busy(self, links: Iterable[int], until: int) -> None:
        """The memories of ``links`` wait for a swap's outcome through slot ``until``."""
        busy = self.busy_until
        for e in links:
            busy[e] = max(busy[e], until)
        self.busy_max = max(self.busy_max, until)

    def take(self, e: int, t: int) -> float:
        """Remove link ``e``'s youngest pair and return its fidelity now (the view is refreshed)."""
        row = self.created[e]
        j = int(np.argmax(row))
        fidelity = float(self.net.fidelity_table[e, t - row[j]])
        row[j] = -1
        self.count[e] -= 1
        self.youngest[e] = row.max()
        self._fidelity_slot = -1
        self.refresh(t, (e,))
        return fidelity

    # ------------------------------------------------------------------ view
    def fidelity(self, t: int) -> np.ndarray:
        """(E,) fidelity of each link's best (youngest) pair at slot ``t``; 0 where it holds none.

        Computed once per slot and state (the env's observation reuses the refresh's); read-only.
        """
        if self._fidelity_slot == t:
            return self._fidelity
        table = self.net.fidelity_table
        age = np.minimum(t - self.youngest, table.shape[1] - 1)
        self._fidelity = np.where(self.count > 0, table[self._links, age], 0.0)
        self._fidelity_slot = t
        return self._fidelity

    def refresh(self, t: int, links: Iterable[int] | None = None) -> None:
        """Rebuild the view at slot ``t``: of every link (None) or of the few ``links`` given."""
        if links is None:
            self._fidelity_slot = -1  # the pools may have been set by hand: recompute
            held = self.count > 0
            factor = np.where(held, physics.link_factor(self.fidelity(t), self.swap_model), 0.0)
            self.usable = held.tolist()
            self.usable_pad[:-1] = held
            self.factor_pad[:-1] = factor
            self.factor = factor.tolist()
            if self.costs:
                cost = -np.log(np.clip(factor, 1e-300, None))
                self.cost = np.where(held, cost, math.inf).tolist()
            return
        table = self.net.fidelity_table
        for e in links:
            usable = bool(self.count[e] > 0)
            self.usable[e] = usable
            self.usable_pad[e] = usable
            if usable:
                f = float(
                    physics.link_factor(float(table[e, t - self.youngest[e]]), self.swap_model)
                )
                self.factor[e] = self.factor_pad[e] = f
                self.cost[e] = -math.log(max(f, 1e-300))
            else:
                self.factor[e] = self.factor_pad[e] = 0.0
                self.cost[e] = math.inf

    def path_product(self, path: Iterable[int]) -> float:
        """Product of the factors of ``path``'s links (0 if one holds no pair)."""
        product = 1.0
        for e in path:
            product *= self.factor[e]
        return product
