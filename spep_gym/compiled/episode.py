"""Compiled episodes: the observation arrays a compiled agent reads, and the draws of a slot.

:mod:`agents.compiled_policies` runs whole episodes of the non-learning agents in compiled code
(the studies' ``--engine compiled``): at each decision point it fills an :class:`Observation` with
the values ``SpepEnv`` shows the agent (:func:`fill_observation`), lets the agent's compiled
policy choose, draws the slot's uniforms ahead from the simulator's streams (:func:`draw_ahead`,
the draws of :class:`spep_gym.compiled.CompiledSimulator`) and runs the slot
(:func:`spep_gym.compiled.phases.step`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from spep_gym.compiled import latency, observe
from spep_gym.compiled.state import GEN_CHUNK, GEN_ROW, SWAP_END, SWAP_POS, Params, State
from spep_gym.topology import pair_index_matrix

__all__ = ["Observation", "draw_ahead", "fill_observation", "new_observation"]


class Observation(NamedTuple):
    """The arrays of ``SpepEnv``'s observation a compiled policy reads, filled every slot.

    The float32 arrays hold the env's values exactly (the keys of swaps in flight stay zero
    without signalling latency).
    """

    link_pair: np.ndarray  # (E,) int, node pair of each link
    pair_index: np.ndarray  # (n, n) int, node pair of (i, j) (spep_gym.topology.pair_index_matrix)
    link_pairs: np.ndarray  # (P,) float32
    link_fidelity: np.ndarray  # (P,) float32
    link_age: np.ndarray  # (P,) float32
    prepositioned: np.ndarray  # (P,) float32, pre-positioned pairs held per node pair
    prepositioned_fidelity: np.ndarray  # (P,) float32
    queue: np.ndarray  # (Q, 6) float32: source, destination, F_req, slots left, waited, priority
    queue_mask: np.ndarray  # (Q,) float32
    link_busy: np.ndarray  # (P,) float32, slots a link still waits for a swap's outcome
    prepositioned_in_flight: np.ndarray  # (P,) float32, pre-positions on their way
    requests_in_flight: np.ndarray  # (P,) float32, on-demand deliveries on their way
    pf: np.ndarray  # (P,) float64, the simulator's pre-position fidelities
    path_fidelity: np.ndarray  # (P,) float32, the observation's (pf in float32)


def new_observation(link_pair: np.ndarray, n: int, queue_obs_size: int) -> Observation:
    """Observation arrays for a network of ``n`` nodes whose links join the pairs ``link_pair``."""
    f32 = np.float32
    num_pairs = n * (n - 1) // 2
    return Observation(
        link_pair=np.ascontiguousarray(link_pair, dtype=np.int64),
        pair_index=np.ascontiguousarray(pair_index_matrix(n), dtype=np.int64),
        link_pairs=np.zeros(num_pairs, f32),
        link_fidelity=np.zeros(num_pairs, f32),
        link_age=np.zeros(num_pairs, f32),
        prepositioned=np.zeros(num_pairs, f32),
        prepositioned_fidelity=np.zeros(num_pairs, f32),
        queue=np.zeros((queue_obs_size, 6), f32),
        queue_mask=np.zeros(queue_obs_size, f32),
        link_busy=np.zeros(num_pairs, f32),
        prepositioned_in_flight=np.zeros(num_pairs, f32),
        requests_in_flight=np.zeros(num_pairs, f32),
        pf=np.zeros(num_pairs),
        path_fidelity=np.zeros(num_pairs, f32),
    )


@njit(cache=True)
def draw_ahead(
    s: State, p: Params, gen_rng: np.random.Generator, swap_rng: np.random.Generator
) -> None:
    """``CompiledSimulator._draw_ahead`` in compiled code: the same draws from the same streams."""
    c = s.counts
    if c[GEN_ROW] == 0 or c[GEN_ROW] == GEN_CHUNK:
        s.gen_u[:, :] = gen_rng.random(s.gen_u.shape)
        c[GEN_ROW] = 0
    reserve = (s.swap_u.shape[0] - 1) // 2  # the most swap draws one step reads
    if p.swap_success < 1.0 and c[SWAP_END] - c[SWAP_POS] < reserve:
        left = c[SWAP_END] - c[SWAP_POS]
        s.swap_u[:left] = s.swap_u[c[SWAP_POS] : c[SWAP_END]].copy()
        s.swap_u[left:] = swap_rng.random(s.swap_u.shape[0] - left)
        c[SWAP_POS] = 0
        c[SWAP_END] = s.swap_u.shape[0]


@njit(cache=True)
def fill_observation(s: State, p: Params, obs: Observation) -> None:
    """The observation of the current decision point into ``obs`` (as ``SpepEnv`` builds it)."""
    obs.link_pairs[:] = 0.0
    obs.link_fidelity[:] = 0.0
    obs.link_age[:] = 0.0
    obs.prepositioned[:] = 0.0
    obs.prepositioned_fidelity[:] = 0.0
    obs.queue[:, :] = 0.0
    obs.queue_mask[:] = 0.0
    observe.observe(
        s, p, obs.link_pair, obs.link_pairs, obs.link_fidelity, obs.link_age, obs.prepositioned,
        obs.prepositioned_fidelity, obs.queue, obs.queue_mask,
    )  # fmt: skip
    if p.latency:
        obs.link_busy[:] = 0.0
        obs.prepositioned_in_flight[:] = 0.0
        obs.requests_in_flight[:] = 0.0
        latency.observe(
            s, obs.link_pair, obs.link_busy, obs.prepositioned_in_flight, obs.requests_in_flight
        )
    observe.preposition_fidelity(s, p, obs.pf)
    for a in range(obs.pf.shape[0]):
        obs.path_fidelity[a] = obs.pf[a]
