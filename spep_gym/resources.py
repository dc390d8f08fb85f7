"""What a config needs in memory, estimated at validation so that a config that cannot fit is refused.

The estimate adds up the largest arrays the simulator and the environment allocate (the node-pair
tables, the static path matrix, the link pools, the episode's workload, the observation) with the
temporaries numpy makes of them, from the config alone: nothing is allocated to find out. It is an
estimate (graph diameters of the generators are approximated), meant to catch configs off by orders
of magnitude before they end in a ``MemoryError`` or the OOM killer.

:func:`batched_memory_estimate` does the same for the batched engine's B networks (its tensors, the
host objects a reset builds and the largest temporaries of a slot), as an upper bound of what
a batch measures; :func:`check_batched_memory` refuses a batch before its first allocation.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import networkx as nx

#: A :class:`spep_gym.config.SpepConfig`, read by attribute. Not imported, not even for type
#: checking: config imports this module (its validation checks the sizes), and no import goes back.
SpepConfig = Any

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


def _requests_bound(cfg: SpepConfig) -> float:
    """Most requests of one network's episode, as a batch's widest workload meets them.

    The Poisson mean of the episode plus eight standard deviations: the widest of a million
    networks stays below it.
    """
    start, end = cfg.business_hours
    busy = (end - start) / 24
    mean = cfg.arrival_rate * (1 + (cfg.business_hours_factor - 1) * busy) * cfg.episode_slots
    return mean + 8 * math.sqrt(mean) + 16


def _max_degree(cfg: SpepConfig) -> float:
    """A bound of the largest node degree of the config's graphs (the neighbour tables' width)."""
    n, topo = cfg.n, cfg.topology
    if isinstance(topo, nx.Graph):
        return float(max(d for _, d in topo.degree()))
    if topo == "erdos_renyi":
        mean = cfg.er_p * (n - 1)
        bound = mean + 5 * math.sqrt(mean) + 2
    elif topo == "random_regular":
        bound = cfg.regular_degree
    elif topo == "small_world":
        bound = cfg.ws_k + 5 * math.sqrt(cfg.ws_k) + 2
    else:  # scale_free: the oldest nodes' degree grows as m sqrt(n)
        bound = 3 * cfg.ba_m * math.sqrt(n) + cfg.ba_m
    return float(min(n - 1, bound))


def _queued_bound(cfg: SpepConfig) -> float:
    """Most requests one network's queue holds (the Poisson mean plus eight standard deviations).

    A request leaves the queue by its deadline (or its swaps' delay after), so the queue holds at
    most the arrivals of that many slots at the busiest rate.
    """
    start, end = cfg.business_hours
    peak = cfg.arrival_rate * (max(cfg.business_hours_factor, 1.0) if end > start else 1.0)
    delay = cfg.signalling_latency * cfg.n + 1
    mean = peak * (cfg.deadline_range[1] + 1 + delay)
    return mean + 8 * math.sqrt(mean) + 16


#: Host bytes of one network's graph and link rows while a reset builds the batch (networkx
#: dicts), per node and per link: twice what tracemalloc measured (about 300 and 250 bytes at
#: 16 and 64 nodes).
_GRAPH_NODE_BYTES = 600
_GRAPH_LINK_BYTES = 500


def batched_memory_estimate(cfg: SpepConfig, num_envs: int) -> dict[str, float]:
    """Bytes by part of a :class:`spep_gym.batched.BatchedSimulator` of ``num_envs`` networks.

    Each part is named after the config fields (and ``num_envs``) that size it; the sum is an upper
    bound of the batch's peak memory (tests hold it within a factor of four of the measured).
    """
    B = float(num_envs)
    n = cfg.n
    pairs = n * (n - 1) / 2
    links, hops = _links_and_diameter(cfg)
    if not isinstance(cfg.topology, nx.Graph):  # the largest link count of many draws
        links += 6 * math.sqrt(links) + 1
    E1 = links + 1
    capacity = cfg.link_capacity
    if isinstance(cfg.topology, nx.Graph):
        capacity = max(
            [capacity, *(d.get("link_capacity", 1) for _, _, d in cfg.topology.edges(data=True))]
        )
    degree = _max_degree(cfg)
    requests = _requests_bound(cfg)
    flights = E1 * capacity if cfg.signalling_latency > 0 else 1.0
    queued = min(cfg.queue_capacity, _queued_bound(cfg), requests)  # searched together in a slot
    return {
        # link pools (created: E x C) and the per-link state, view and static tables
        "num_envs x link_capacity (link pools)": B * 8.0 * E1 * (capacity + 14),
        # in-flight swaps (signalling_latency > 0): one place per link pair
        "num_envs x link_capacity x signalling_latency (swaps in flight)": B * 9.0 * 8 * flights,
        # held pairs (six columns) and a slot's copies of them (fidelities now, matches)
        "num_envs x max_prepositioned (held pairs)": B * 8.0 * 12 * cfg.max_prepositioned,
        # the queue and the copies a slot makes of it as it merges arrivals and removes requests
        "num_envs x queue_capacity (queues)": B * 8.0 * 3 * cfg.queue_capacity,
        # pair-edge ids, neighbour tables (and their host copies) and the static path search (a
        # search from every node over neighbour tables copied per source: n x n x degree)
        "num_envs x num_nodes (node tables)": B
        * 8.0
        * (10 * n * n + 4 * n * degree + 2 * n * n * degree),
        # static paths (H x P, and a flat copy), the path fidelities and the observation's arrays
        "num_envs x num_nodes (static paths)": B * 8.0 * pairs * (3 * hops + 12),
        # the workload's columns on the device, on the host (as drawn and packed), the records
        # and the observation's request rows
        "num_envs x arrival_rate x episode_slots (requests)": B * 8.0 * requests * 40,
        "num_envs x num_nodes (graphs built at reset)": B
        * (_GRAPH_NODE_BYTES * n + _GRAPH_LINK_BYTES * links),
        # a slot's serving round: each queued request's path mask over the links (five int64
        # copies) and its route search over the nodes
        "num_envs x queue_capacity x num_nodes (serving)": B
        * 8.0
        * queued
        * (6 * E1 + 4 * (n + 1) + (n * n if cfg.routing == "highest_fidelity" else 0)),
        # observations: the core's float32 arrays and a vector env's batched space and buffers
        "num_envs x queue_obs_size (observation)": B * 4.0 * 6 * cfg.queue_obs_size * 6,
        "num_envs x num_nodes (observation)": B * 4.0 * 15 * pairs * 6,
        # tables shared by the batch, built in Python: decay powers by age, time of day by slot
        "prediction_window (decay table)": 48.0 * (cfg.prediction_window + n + 2),
        "slots_per_day (time-of-day table)": 160.0 * cfg.slots_per_day,
    }


def _device_free_bytes(device: Any) -> int:
    """Free memory of a CUDA ``device`` (torch's ``mem_get_info``); the host's for the CPU."""
    if device is not None and getattr(device, "type", str(device)).startswith("cuda"):
        import torch

        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):  # not readable here: the host's bounds it
            pass
    return available_memory()


def check_batched_memory(
    cfg: SpepConfig, num_envs: int, device: Any = None, name: str = "num_envs"
) -> None:
    """Refuse (ValueError, one line) a batch of ``num_envs`` networks that cannot fit.

    The estimate (:func:`batched_memory_estimate`) is compared with the memory available on the
    host and, for a CUDA ``device``, with the device's free memory. ``name`` is what the caller
    calls the batch size (``num_envs``, ``--runs``).
    """
    parts = batched_memory_estimate(cfg, num_envs)
    total = sum(parts.values())
    limit = min(available_memory(), _device_free_bytes(device))
    if total <= limit:
        return
    largest = max(parts, key=lambda k: parts[k])
    fits = int(num_envs * limit / total)
    raise ValueError(
        f"{name} {num_envs:,} is too large: the batched engine's {num_envs:,} networks need about "
        f"{total / GIB:,.1f} GiB of memory, more than the {limit / GIB:,.1f} GiB available (the "
        f"largest part is {largest}: {parts[largest] / GIB:,.1f} GiB; num_nodes={cfg.n}, "
        f"episode_slots={cfg.episode_slots}, arrival_rate={cfg.arrival_rate}, "
        f"link_capacity={cfg.link_capacity}, max_prepositioned={cfg.max_prepositioned}, "
        f"queue_capacity={cfg.queue_capacity}): allowed about {fits:,} networks at once, or "
        "lower those fields"
    )
