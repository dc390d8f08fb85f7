"""What a config needs in memory, estimated at validation so that a config that cannot fit is refused.

The estimate adds up the largest arrays the simulator and the environment allocate (the node-pair
tables, the static path matrix, the link pools, the episode's workload, the observation) with the
temporaries numpy makes of them, from the config alone: nothing is allocated to find out. It is an
estimate (graph diameters of the generators are approximated), meant to catch configs off by orders
of magnitude before they end in a ``MemoryError`` or the OOM killer.
"""

from __future__ import annotations

import functools
import math
import os
from typing import TYPE_CHECKING

import networkx as nx

if TYPE_CHECKING:
    from spep_gym.config import SpepConfig

GIB = 2**30


@functools.cache
def available_memory() -> int:
    """Bytes this process may allocate: MemAvailable of /proc/meminfo, else the physical memory."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 2**62  # unknown: refuse nothing


def _links_and_diameter(cfg: SpepConfig) -> tuple[float, float]:
    """Expected links E and an estimate of the longest static path (the path matrix's width)."""
    n = cfg.n
    topo = cfg.topology
    if isinstance(topo, nx.Graph):
        ecc = max(nx.eccentricity(topo, v=next(iter(topo.nodes))), 1)
        return float(topo.number_of_edges()), float(min(n - 1, 2 * ecc))
    log_n = math.log(max(n, 2))
    if topo == "erdos_renyi":
        links, degree = cfg.er_p * n * (n - 1) / 2, cfg.er_p * (n - 1)
    elif topo == "random_regular":
        links, degree = n * cfg.regular_degree / 2, cfg.regular_degree - 1
    elif topo == "small_world":
        links, degree = n * cfg.ws_k / 2, cfg.ws_k
        if cfg.ws_p * links < 1:  # hardly a shortcut: a ring lattice, diameter ~ n / k
            return links, float(min(n - 1, n / cfg.ws_k + 1))
    else:  # scale_free
        links, degree = cfg.ba_m * (n - cfg.ba_m), max(math.log(log_n + 1), 1.5)
    if degree <= 1.0:
        return links, float(n - 1)
    return links, float(min(n - 1, 2 * log_n / math.log(degree) + 3))


def memory_estimate(cfg: SpepConfig) -> dict[str, float]:
    """Bytes by part, each named after the config fields that size it."""
    n = cfg.n
    pairs = n * (n - 1) / 2
    links, hops = _links_and_diameter(cfg)
    capacity = cfg.link_capacity
    if isinstance(cfg.topology, nx.Graph):
        capacity = max(
            [capacity, *(d.get("link_capacity", 1) for _, _, d in cfg.topology.edges(data=True))]
        )
    slots = cfg.episode_slots
    start, end = cfg.business_hours
    busy = (end - start) / 24
    rate = cfg.arrival_rate * (1 + (cfg.business_hours_factor - 1) * busy)
    requests = rate * slots
    return {
        # pair index, edge ids and breadth-first predecessors (n x n int64), node pairs
        "num_nodes (node-pair tables)": 8.0 * (3 * n * n + 2 * pairs),
        # static paths (P x H int64, twice) and the per-slot products over them (float64, twice)
        "num_nodes (static path matrix)": 8.0 * pairs * hops * 4,
        # created slots (E x C int64) and the masks and copies phase 1 makes of them
        "link_capacity (link pools)": 8.0 * links * capacity * 4,
        "max_lifetime (fidelity tables)": 8.0 * links * (cfg.max_lifetime + 2) * 3,
        # per-slot arrays of the workload (rates, counts, starts) and 13 columns per request
        "episode_slots (workload slots)": 8.0 * slots * 5,
        "arrival_rate x episode_slots (requests)": 8.0 * requests * 13 * 2,
        # the observation space's bounds, one observation and the copies the env checker and a
        # wrapper make (measured: queue_obs_size = 10**8 peaks at 3.7 x its queue array)
        "queue_obs_size (observation)": 4.0 * 6 * cfg.queue_obs_size * 5,
        "num_nodes (observation)": 4.0 * 14 * pairs * 5 + cfg.action_len * (pairs + 1),
    }


def check_memory(cfg: SpepConfig) -> None:
    """Refuse ``cfg`` (ValueError) when the estimate exceeds the memory available."""
    parts = memory_estimate(cfg)
    total = sum(parts.values())
    limit = available_memory()
    if total <= limit:
        return
    largest = max(parts, key=lambda k: parts[k])
    raise ValueError(
        f"config needs about {total / GIB:,.1f} GiB of memory, more than the "
        f"{limit / GIB:,.1f} GiB available; the largest part is {largest}: "
        f"{parts[largest] / GIB:,.1f} GiB (num_nodes={cfg.n}, episode_slots={cfg.episode_slots}, "
        f"arrival_rate={cfg.arrival_rate}, link_capacity={cfg.link_capacity}, "
        f"queue_obs_size={cfg.queue_obs_size}): lower it"
    )
