"""Link pair pools (SPEC sections 2-3), compiled: expiry, generation, taking a pair, the view.

The same rules as :class:`spep_gym.links.LinkPool` over the arrays of :class:`State`: a stored pair is
its creation slot in ``created``; its fidelity, swap factor and cost are lookups by age in the
network's tables. A loop takes the arrays it reads out of the record before it starts: each access
of a record's field costs a reference count up and down in compiled code (the static pre-position
fidelities ran 3x faster so).
"""

from __future__ import annotations

import numpy as np

from spep_gym.compiled.jit import inner
from spep_gym.compiled.state import State


@inner
def discard_expired(s: State, t: int) -> int:
    """Phase 1: drop the pairs whose age reached their link's lifetime; return how many."""
    created, lifetime, stored = s.created, s.lifetime, s.stored  # once: see the module docstring
    E, C = created.shape
    total = 0
    for e in range(E):
        gone = 0
        youngest = -1
        for j in range(C):
            c = created[e, j]
            if c >= 0 and t - c >= lifetime[e]:
                created[e, j] = -1
                gone += 1
            elif c > youngest:
                youngest = c
        if gone:
            stored[e] -= gone
            s.youngest[e] = youngest
            total += gone
    return total


@inner
def generate(s: State, t: int, replace_oldest: bool, uniforms: np.ndarray) -> tuple[int, int]:
    """Phase 2: one uniform per link, a new pair where it is below p_gen; ``(new, replaced)``.

    A link that waits for a swap's outcome (``busy_until >= t``) generates nothing. A full link
    generates nothing under ``block``; under ``replace_oldest`` the new pair replaces its oldest
    pair.
    """
    created, p_gen, busy_until = s.created, s.p_gen, s.busy_until  # once: see the module docstring
    E, C = created.shape
    new = 0
    replaced = 0
    for e in range(E):
        if not uniforms[e] < p_gen[e] or busy_until[e] >= t:
            continue
        if s.stored[e] < s.capacity[e]:
            j = 0
            while s.created[e, j] >= 0:
                j += 1
            s.created[e, j] = t
            s.stored[e] += 1
            s.youngest[e] = t
            new += 1
        elif replace_oldest:
            oldest = 0
            for j in range(1, C):
                c = s.created[e, j]
                if c >= 0 and (s.created[e, oldest] < 0 or c < s.created[e, oldest]):
                    oldest = j
            s.created[e, oldest] = t
            s.youngest[e] = t
            replaced += 1
    return new + replaced, replaced


@inner
def refresh(s: State, t: int) -> None:
    """The view of every link at slot ``t``: usable, factor and cost of its youngest pair."""
    stored, youngest, usable, factor, cost = s.stored, s.youngest, s.usable, s.factor, s.cost
    factor_table, cost_table = s.factor_table, s.cost_table  # once: see the module docstring
    last = factor_table.shape[1] - 1
    for e in range(stored.shape[0]):
        if stored[e] > 0:
            age = min(t - youngest[e], last)
            usable[e] = True
            factor[e] = factor_table[e, age]
            cost[e] = cost_table[e, age]
        else:
            usable[e] = False
            factor[e] = 0.0
            cost[e] = np.inf


@inner
def take(s: State, e: int, t: int) -> float:
    """Remove link ``e``'s youngest pair and return its fidelity now (the link's view refreshed)."""
    C = s.created.shape[1]
    j = 0
    for k in range(1, C):
        if s.created[e, k] > s.created[e, j]:
            j = k
    fidelity = s.fidelity_table[e, t - s.created[e, j]]
    s.created[e, j] = -1
    s.stored[e] -= 1
    youngest = -1
    for k in range(C):
        youngest = max(youngest, s.created[e, k])
    s.youngest[e] = youngest
    if s.stored[e] > 0:
        age = t - youngest
        s.usable[e] = True
        s.factor[e] = s.factor_table[e, age]
        s.cost[e] = s.cost_table_1[e, age]
    else:
        s.usable[e] = False
        s.factor[e] = 0.0
        s.cost[e] = np.inf
    return fidelity
