"""Phase 4 of the batched slot: pre-position the chosen node pairs, and the held pairs' state."""

from __future__ import annotations

import torch
from torch import Tensor

from spep_gym import physics
from spep_gym.batched.links import consume, dispatch
from spep_gym.batched.records import count_one, tally
from spep_gym.batched.routing import preposition_path
from spep_gym.batched.state import BatchedState, BatchEvents


def preposition(sim: BatchedState, actions: Tensor, events: BatchEvents) -> None:
    """Phase 4: try each network's chosen node pairs in order, within the limits."""
    cfg = sim.cfg
    P = sim.num_pairs
    valid = (actions >= 0) & (actions < P)
    if not bool(valid.any()):
        return
    placed = torch.zeros(sim.num_envs, dtype=torch.int64, device=sim.device)
    m = sim.metrics
    # the last entry any network still wants: later ones cannot matter
    last = int(torch.nonzero(valid.any(dim=0)).max()) + 1
    for j in range(last):
        held = (sim.held_pair < P).sum(dim=1) + m["prepositions_in_flight"]
        active = (placed < cfg.max_new_prepositions) & (held < cfg.max_prepositioned)
        go = active & valid[:, j]
        b = torch.nonzero(go).flatten()
        if b.numel() == 0:
            if not bool((active[:, None] & valid[:, j:]).any()):
                break
            continue
        a = actions[b, j]
        path, hops = preposition_path(sim, b, a)
        ok = hops > 0
        if not bool(ok.all()):
            b, a, path, hops = b[ok], a[ok], path[ok], hops[ok]
            if b.numel() == 0:
                continue
        fidelity, swapped = consume(sim, b, path, hops, events)
        t = sim.t[b]
        if sim._latency:
            dispatch(sim, b, t + sim._delay[hops], t, a, hops, fidelity, swapped, -1, path)
            tally(sim, b, events, {"prepositions_in_flight": 1.0}, {})
            placed.index_add_(0, b, torch.ones_like(b))
            continue
        stored = settle(sim, b, a, fidelity, swapped, t, hops, events)
        placed.index_add_(0, b, stored)


def settle(
    sim: BatchedState,
    b: Tensor,
    pair: Tensor,
    fidelity: Tensor,
    ok: Tensor,
    placed: Tensor,
    hops: Tensor,
    events: BatchEvents,
) -> Tensor:
    """Store the pre-positions whose swaps succeeded in networks ``b`` (one each); count the rest.

    Returns 1 where a pair was stored, 0 where the swap failed.
    """
    lost = ~ok
    if bool(lost.any()):
        count_one(sim, b[lost], "swap_failures", events)
    if bool(ok.any()):
        bs, f, pl = b[ok], fidelity[ok], placed[ok]
        K = sim.held_pair.shape[1]
        slot = (sim.held_pair.index_select(0, bs) == sim.num_pairs).int().argmax(dim=1)
        pos = bs * K + slot
        sim.held_pair.view(-1)[pos] = pair[ok]
        sim.held_fidelity.view(-1)[pos] = f
        sim.held_placed.view(-1)[pos] = pl
        sim.held_hops.view(-1)[pos] = hops[ok]
        sim.held_expiry.view(-1)[pos] = pl + slots_until_below(sim, f)
        sim.held_seq.view(-1)[pos] = sim.held_next[bs]
        sim.held_next.index_add_(0, bs, torch.ones_like(bs))
        tally(sim, bs, events, {"prepositions_placed": 1.0}, {"placed": 1.0})
    return ok.long()


def slots_until_below(sim: BatchedState, f: Tensor) -> Tensor:
    """``physics.slots_until_below`` of fidelities ``f`` (the first age below F_min, capped)."""
    window = sim.cfg.prediction_window
    k = sim._below_k
    if k.numel() == 0:
        return torch.full_like(f, window, dtype=torch.int64)
    below = (
        physics.decayed_by(f[:, None], sim._pow[k][None, :], sim.cfg.decay_model) < sim.cfg.F_min
    )
    first = below.int().argmax(dim=1) + 1
    return torch.where(below.any(dim=1), first, window)


def held_now_fidelity(sim: BatchedState) -> Tensor:
    """(B, K) fidelity now of every held pre-positioned pair (meaningless in free places)."""
    age = (sim.t[:, None] - sim.held_placed).clamp(0, sim._pow.numel() - 1)
    return physics.decayed_by(sim.held_fidelity, sim._pow[age], sim.cfg.decay_model)
