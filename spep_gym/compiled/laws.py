"""The laws of :mod:`spep_gym.physics` the slot loop calls, compiled (tested equal to physics.py).

Models are integers here (``state.SWAP_MODEL``, ``state.DECAY_MODEL``). A power is ``math.pow`` on
floats, as Python's ``float ** int`` computes it (numba's own integer power multiplies, which can
differ in the last bit).
"""

from __future__ import annotations

import math

from numba import njit


@njit(cache=True)
def link_factor(fidelity: float, swap_model: int) -> float:
    """physics.link_factor: paper (3F + 1) / 4, werner (4F - 1) / 3."""
    if swap_model == 0:
        return (3.0 * fidelity + 1.0) / 4.0
    return (4.0 * fidelity - 1.0) / 3.0


@njit(cache=True)
def fidelity_from_product(product: float, swap_model: int) -> float:
    """physics.fidelity_from_product."""
    if swap_model == 0:
        return product
    return (1.0 + 3.0 * product) / 4.0


@njit(cache=True)
def decayed(f_create: float, rho: float, age: int, decay_model: int) -> float:
    """physics.decayed: paper F rho^age; depolarizing 1/4 + (F - 1/4) rho^age."""
    if decay_model == 0:
        return f_create * math.pow(rho, float(age))
    return 0.25 + (f_create - 0.25) * math.pow(rho, float(age))


@njit(cache=True)
def slots_until_below(
    f_create: float, rho: float, f_min: float, limit: int, decay_model: int
) -> int:
    """physics.slots_until_below: first age k >= 1 below ``f_min``, capped at ``limit``."""
    for k in range(1, limit):
        if decayed(f_create, rho, k, decay_model) < f_min:
            return k
    return limit
