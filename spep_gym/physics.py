"""Entanglement formulas (SPEC section 3), as pure functions.

A swap model maps the fidelity F of one link pair to a per-link *factor*; the path fidelity is a
function of the product of the factors, so that paths can be compared (and highest-fidelity routing
run as a shortest-path search) on ``-log(factor)``.

- ``paper`` (eq. 2, applied literally for every h): factor = (3F + 1) / 4, F_path = prod(factors).
- ``werner``: factor w = (4F - 1) / 3 (the Werner parameter), F_path = (1 + 3 prod(w)) / 4.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def link_factor(fidelity: np.ndarray | float, swap_model: str) -> np.ndarray | float:
    """The per-link factor of ``swap_model`` for a pair of fidelity ``fidelity``."""
    if swap_model == "paper":
        return (3.0 * fidelity + 1.0) / 4.0
    return (4.0 * fidelity - 1.0) / 3.0


def fidelity_from_product(product: np.ndarray | float, swap_model: str) -> np.ndarray | float:
    """Path fidelity from the product of the links' factors."""
    if swap_model == "paper":
        return product
    return (1.0 + 3.0 * product) / 4.0


def path_fidelity(fidelities: Iterable[float], swap_model: str = "paper") -> float:
    """End-to-end fidelity of swapping link pairs of the given fidelities into one pair."""
    product = math.prod(float(link_factor(f, swap_model)) for f in fidelities)
    return float(fidelity_from_product(product, swap_model))


def decayed(f_create: float, rho: float, age: int) -> float:
    """Paper eq. 1: F(t) = F_create * rho ** (t - t_create)."""
    return f_create * rho**age


def slots_until_below(f_create: float, rho: float, f_min: float, limit: int) -> int:
    """First age k >= 1 at which ``f_create * rho**k < f_min``, capped at ``limit``."""
    for k in range(1, limit):
        if f_create * rho**k < f_min:
            return k
    return limit
