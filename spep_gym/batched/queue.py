"""The request queues of the batched simulator: sorted inserts and compaction, per network."""

from __future__ import annotations

import torch
from torch import Tensor

from spep_gym.batched.state import BIG, BatchedState, row_take


def rows_of(sim: BatchedState, b: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
    """Per network the values ``r`` of its entries ``b``, as (B, k) ids and a validity mask."""
    order = torch.argsort(b, stable=True)
    b, r = b[order], r[order]
    k = torch.bincount(b, minlength=sim.num_envs)
    width = int(k.max())
    col = torch.arange(b.numel(), device=sim.device) - (torch.cumsum(k, 0) - k)[b]
    ids = torch.zeros((sim.num_envs, width), dtype=torch.int64, device=sim.device)
    valid = torch.zeros((sim.num_envs, width), dtype=torch.bool, device=sim.device)
    ids[b, col] = r
    valid[b, col] = True
    return ids, valid


def merge_into_queue(sim: BatchedState, ids: Tensor, valid: Tensor) -> None:
    """Insert ``ids`` (B, k) where ``valid`` into the sorted queues (by service key)."""
    if not bool(valid.any()):
        return
    dev = sim.device
    W = int(sim.queue_len.max())
    k = ids.shape[1]
    skey = sim.work["service_key"]
    queue = sim.queue[:, :W]
    ar = torch.arange(W, device=dev)
    ek = torch.where(ar < sim.queue_len[:, None], row_take(skey, queue), BIG)
    nk = torch.where(valid, row_take(skey, ids), BIG + 1)
    pos_old = ar + (nk[:, None, :] < ek[:, :, None]).sum(dim=2)
    pos_new = (ek[:, None, :] < nk[:, :, None]).sum(dim=2) + (nk[:, None, :] < nk[:, :, None]).sum(
        dim=2
    )
    out = torch.zeros((sim.num_envs, W + k), dtype=torch.int64, device=dev)
    out.scatter_(1, pos_old, queue)
    out.scatter_(1, pos_new, ids)
    width = min(W + k, sim.queue.shape[1])
    sim.queue[:, :width] = out[:, :width]
    sim.queue_len += valid.sum(dim=1)


def compact_queue(sim: BatchedState, keep: Tensor, W: int) -> None:
    """Keep the entries ``keep`` (B, W) of the queues, in order."""
    pos = torch.where(keep, torch.cumsum(keep, dim=1) - 1, W)
    out = torch.zeros((sim.num_envs, W + 1), dtype=torch.int64, device=sim.device)
    out.scatter_(1, pos, sim.queue[:, :W])
    sim.queue[:, :W] = out[:, :W]
    sim.queue_len = keep.sum(dim=1)
