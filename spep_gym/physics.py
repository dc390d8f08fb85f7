"""Entanglement formulas (SPEC sections 3 and 9), as pure functions.

Swap models map the fidelity F of one link pair to a per-link *factor*; the path fidelity is a
function of the product of the factors, so that paths can be compared (and highest-fidelity routing
run as a shortest-path search) on ``-log(factor)``:

- ``paper`` (eq. 2, applied literally for every h): factor = (3F + 1) / 4, F_path = prod(factors).
- ``werner``: factor w = (4F - 1) / 3 (the Werner parameter), F_path = (1 + 3 prod(w)) / 4.

Decay models give a stored pair's fidelity after ``age`` slots:

- ``paper`` (eq. 1): F = F_create * rho ** age (towards 0).
- ``depolarizing``: F = 1/4 + (F_create - 1/4) * rho ** age (towards the maximally mixed state);
  a memory of coherence time T_c over slots of length tau has rho = exp(-8 tau / (3 T_c)).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

#: A fidelity, or an array of them (numpy or torch): the laws are plain arithmetic on either.
Value = TypeVar("Value", float, np.ndarray, "Tensor")

SWAP_MODELS = ("paper", "werner")
DECAY_MODELS = ("paper", "depolarizing")
LENGTH_MODELS = ("paper", "loss")


def link_factor(fidelity: Value, swap_model: str) -> Value:
    """The per-link factor of ``swap_model`` for a pair of fidelity ``fidelity``."""
    if swap_model == "paper":
        return (3.0 * fidelity + 1.0) / 4.0
    return (4.0 * fidelity - 1.0) / 3.0


def fidelity_from_product(product: Value, swap_model: str) -> Value:
    """Path fidelity from the product of the links' factors."""
    if swap_model == "paper":
        return product
    return (1.0 + 3.0 * product) / 4.0


def path_fidelity(fidelities: Iterable[float], swap_model: str = "paper") -> float:
    """End-to-end fidelity of swapping link pairs of the given fidelities into one pair."""
    product = math.prod(float(link_factor(f, swap_model)) for f in fidelities)
    return float(fidelity_from_product(product, swap_model))


def decayed(f_create: float, rho: float, age: int, decay_model: str = "paper") -> float:
    """Fidelity of a pair made with ``f_create`` after ``age`` slots of decay ``rho`` per slot."""
    return decayed_by(f_create, rho**age, decay_model)


def decayed_array(
    f_create: np.ndarray, rho: float, age: np.ndarray, decay_model: str
) -> np.ndarray:
    """:func:`decayed` elementwise over arrays of fidelities and ages."""
    return decayed_by(f_create, rho**age, decay_model)


def decayed_by(f_create: Value, power: Value, decay_model: str) -> Value:
    """The decay law itself, given ``power = rho ** age`` (a float, or numpy or torch arrays).

    :func:`decayed` and :func:`decayed_array` compute the power and call it; the batched core
    looks the power up in a table of Python pows and calls it on tensors.
    """
    if decay_model == "paper":
        return f_create * power
    return 0.25 + (f_create - 0.25) * power


def slots_until_below(
    f_create: float, rho: float, f_min: float, limit: int, decay_model: str = "paper"
) -> int:
    """First age k >= 1 at which the decayed fidelity is below ``f_min``, capped at ``limit``."""
    for k in range(1, limit):
        if decayed(f_create, rho, k, decay_model) < f_min:
            return k
    return limit


def rho_from_coherence(slot_s: float, coherence_s: float) -> float:
    """Depolarizing decay per slot of a memory of coherence time ``coherence_s``: exp(-8 tau / 3 T_c).

    SeQUeNCe's convention: a Pauli channel of total rate 1 / T_c, split evenly over X, Y and Z,
    takes the Werner parameter w to w exp(-4 t / (3 T_c)) per qubit, so a pair held in two memories
    decays by exp(-8 t / (3 T_c)).
    """
    return math.exp(-8.0 * slot_s / (3.0 * coherence_s))


def loss_p_gen(
    p_gen: np.ndarray, length_km: np.ndarray, reference_km: float, loss_db_per_km: float
) -> np.ndarray:
    """Generation probability of links of ``length_km`` (``length_model="loss"``).

    ``p_gen`` holds at ``reference_km``; each extra km costs ``loss_db_per_km`` of transmission:
    ``min(1, p_gen * 10 ** (-loss (L - L_ref) / 10))``.
    """
    return np.minimum(1.0, p_gen * 10.0 ** (-loss_db_per_km * (length_km - reference_km) / 10.0))


def signalling_delay(signalling_latency: float, hops: int) -> int:
    """Slots until an ``hops``-link swap's outcome reaches the end nodes: ceil(latency * hops).

    The product is rounded to 9 decimals first, so that e.g. 0.28 * 25 counts as 7 slots, not
    ceil(7.000000000000001) = 8.
    """
    return math.ceil(round(signalling_latency * hops, 9))
