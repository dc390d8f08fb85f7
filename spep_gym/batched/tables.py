"""The static arrays of a batch of networks, padded to common sizes, and their episodes' workloads.

Each network's links are built on the CPU exactly as :meth:`spep_gym.topology.Network.build` builds
them (the same numpy expressions per network, the same scalar ``pow`` for the fidelity tables), so
every table holds the same bits. Links of one network that share (F0, rho) share one fidelity *class*
row: a generated topology has a single class, so tables do not grow with the batch. Static paths
come from the batched breadth-first search of :mod:`spep_gym.batched.search`, whose tie rule is
the scalar one (tests hold the two equal).

Padding: ``E`` is the largest link count of the batch; link index ``E`` is the *pad link* (always
usable with factor 1 in the view, it pads the path matrices); a network with fewer links has dead
links ``E_b .. E-1`` that never hold a pair. Node ``n`` pads the neighbour tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, cast

import networkx as nx
import numpy as np
import torch
from torch import Tensor

from spep_gym import physics
from spep_gym.batched import search
from spep_gym.config import SpepConfig
from spep_gym.topology import Network, generate_graph, pair_index_matrix
from spep_gym.workload import Workload, generate


@dataclass(eq=False)
class LinkRows:
    """One network's links, as numpy arrays on the CPU (E_b links, nodes 0..n-1)."""

    graph: nx.Graph
    edges: np.ndarray  # (E_b, 2) int, u < v, sorted
    p_gen: np.ndarray  # (E_b,) float
    capacity: np.ndarray  # (E_b,) int
    link_class: np.ndarray  # (E_b,) int, row of the fidelity class tables
    nbr: np.ndarray  # (n, deg) neighbour ids ascending, padded with n
    nbr_link: np.ndarray  # (n, deg) their links, padded with -1

    @property
    def num_links(self) -> int:
        """Links E_b of the network."""
        return len(self.edges)


@dataclass(eq=False)
class FidelityClasses:
    """Fidelity by age of every (F0, rho) seen so far, and the per-link tables derived from it.

    Row 0 is the dead class (dead and pad links): fidelity 0, lifetime 1. Rows are computed with the
    scalar decay law (:func:`spep_gym.physics.decayed`, Python ``pow``) as ``Network.build`` does.
    """

    cfg: SpepConfig
    keys: dict[tuple[float, float], int] = field(default_factory=dict)
    rows: list[np.ndarray] = field(default_factory=list)
    lifetimes: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        ages = self.cfg.max_lifetime + 2
        self.rows.append(np.zeros(ages))
        self.lifetimes.append(1)

    def index(self, f0: np.ndarray, rho: np.ndarray) -> np.ndarray:
        """Class row of each link of fidelity ``f0`` and decay ``rho`` (new rows added)."""
        out = np.empty(len(f0), dtype=np.int64)
        for i, key in enumerate(zip(f0.tolist(), rho.tolist(), strict=True)):
            row = self.keys.get(key)
            if row is None:
                row = self.keys[key] = len(self.rows)
                self._add(*key)
            out[i] = row
        return out

    def _add(self, f0: float, rho: float) -> None:
        cfg = self.cfg
        ages = cfg.max_lifetime + 2
        fid = np.array([physics.decayed(f0, rho, a, cfg.decay_model) for a in range(ages)])
        floor = cfg.F_min if cfg.cutoff_fidelity is None else max(cfg.F_min, cfg.cutoff_fidelity)
        bad = (np.arange(ages) > cfg.max_lifetime) | (fid < floor)
        bad[0] = False
        lifetime = int(np.argmax(bad))
        self.rows.append(np.where(np.arange(ages) < lifetime, fid, 0.0))
        self.lifetimes.append(lifetime)

    def tables(self, device: torch.device) -> dict[str, Tensor]:
        """(U, L) tables: fidelity, swap factor, and the two Dijkstra costs, plus lifetimes (U,).

        ``cost_full`` is what a full view refresh computes (``numpy.log`` over the links), and
        ``cost_part`` what refreshing one link computes (``math.log``); the two can differ in the
        last bit, so each is kept.
        """
        model = self.cfg.swap_model
        fid = np.stack(self.rows)
        factor = np.asarray(physics.link_factor(fid, model), dtype=np.float64)
        cost_full = -np.log(np.clip(factor, 1e-300, None))
        cost_part = np.array([[-math.log(max(f, 1e-300)) for f in row] for row in factor.tolist()])
        as_t: dict[str, Any] = {"dtype": torch.float64, "device": device}
        return {
            "fid": torch.tensor(fid, **as_t),
            "factor": torch.tensor(factor, **as_t),
            "cost_full": torch.tensor(cost_full, **as_t),
            "cost_part": torch.tensor(cost_part, **as_t),
            "lifetime": torch.tensor(self.lifetimes, dtype=torch.int64, device=device),
        }


def link_rows(graph: nx.Graph, cfg: SpepConfig, classes: FidelityClasses) -> LinkRows:
    """The links of ``graph`` (nodes 0..n-1) under ``cfg``, as ``Network.build`` computes them."""
    n = graph.number_of_nodes()
    edges = np.array(sorted((min(u, v), max(u, v)) for u, v in graph.edges), dtype=np.int64)
    edges = edges.reshape(-1, 2)
    num_links = len(edges)
    attributed = any(data for _, _, data in graph.edges(data=True))

    def attr(name: str, default: float) -> np.ndarray:
        if not attributed:
            return np.full(num_links, default, dtype=np.float64)
        return np.array([graph.edges[u, v].get(name, default) for u, v in edges], dtype=np.float64)

    p_gen = attr("p_gen", cfg.p_gen)
    f0 = attr("F0", cfg.F0)
    capacity = attr("link_capacity", cfg.link_capacity).astype(np.int64)
    length = attr("length_km", np.nan)
    has_length = ~np.isnan(length)
    if cfg.length_model == "paper":
        rho = np.where(has_length, cfg.rho ** (length / cfg.reference_km), cfg.rho)
    else:
        rho = np.full(num_links, cfg.rho)
        lossy = physics.loss_p_gen(p_gen, length, cfg.reference_km, cfg.fiber_loss_db_per_km)
        p_gen = np.where(has_length, lossy, p_gen)
    # Neighbours in ascending id, with the link to each.
    ends = np.concatenate([edges, edges[:, ::-1]])
    links = np.concatenate([np.arange(num_links), np.arange(num_links)])
    order = np.lexsort((ends[:, 1], ends[:, 0]))
    ends, links = ends[order], links[order]
    degree = np.bincount(ends[:, 0], minlength=n)
    width = max(int(degree.max(initial=0)), 1)
    slot = np.arange(len(ends)) - np.repeat(np.cumsum(degree) - degree, degree)
    nbr = np.full((n, width), n, dtype=np.int64)
    nbr_link = np.full((n, width), -1, dtype=np.int64)
    nbr[ends[:, 0], slot] = ends[:, 1]
    nbr_link[ends[:, 0], slot] = links
    return LinkRows(
        graph=graph,
        edges=edges,
        p_gen=p_gen,
        capacity=capacity,
        link_class=classes.index(f0, rho),
        nbr=nbr,
        nbr_link=nbr_link,
    )


@dataclass(eq=False)
class _PairsView:
    """The few ``Network`` attributes :func:`spep_gym.workload.generate` reads."""

    static_hops: np.ndarray
    pair_nodes: np.ndarray
    pair_index: np.ndarray

    @property
    def num_pairs(self) -> int:
        return len(self.pair_nodes)


@dataclass(eq=False)
class NetworkTables:
    """Padded static tensors of B networks of n nodes (see the module docstring for the padding)."""

    n: int
    num_links: Tensor  # (B,) int, E_b
    link_pair: Tensor  # (B, E + 1) node-pair index of each link; P for dead links and the pad
    link_u: Tensor  # (B, E + 1) lower end node of each link; n for dead links and the pad
    link_v: Tensor  # (B, E + 1) upper end node; n for dead links and the pad
    p_gen: Tensor  # (B, E + 1) float; -1 for dead links and the pad (they never generate)
    capacity: Tensor  # (B, E + 1) int; 0 for dead links and the pad
    link_class: Tensor  # (B, E + 1) int, row of the class tables (0: dead)
    lifetime: Tensor  # (B, E + 1) int, slots a pair exists
    nbr: Tensor  # (B, n, D) neighbours in ascending id, padded with n
    nbr_link: Tensor  # (B, n, D) their links, padded with E
    edge_id: Tensor  # (B, n, n) link of each node pair, E where there is none
    static_paths: Tensor  # (B, H, P) links of each pair's static path (from j back to i), pad E
    static_hops: Tensor  # (B, P) int
    adjacency: Tensor  # (B, P) float32, 1 where the pair is a link

    @property
    def E(self) -> int:
        """Links per network after padding (the pad link's index)."""
        return int(self.link_pair.shape[1]) - 1

    @property
    def D(self) -> int:
        """Width of the neighbour tables (the largest degree)."""
        return int(self.nbr.shape[2])

    @property
    def H(self) -> int:
        """Width of the static path matrix (the longest static path)."""
        return int(self.static_paths.shape[1])


def build_tables(
    rows: list[LinkRows], n: int, classes: FidelityClasses, device: torch.device
) -> NetworkTables:
    """Pad and stack the links of every network; search the static paths (batched)."""
    B = len(rows)
    E = max(max(r.num_links for r in rows), 1)
    D = max(r.nbr.shape[1] for r in rows)
    P = n * (n - 1) // 2
    pair_index = pair_index_matrix(n)
    link_pair = np.full((B, E + 1), P, dtype=np.int64)
    link_u = np.full((B, E + 1), n, dtype=np.int64)
    link_v = np.full((B, E + 1), n, dtype=np.int64)
    p_gen = np.full((B, E + 1), -1.0)
    capacity = np.zeros((B, E + 1), dtype=np.int64)
    link_class = np.zeros((B, E + 1), dtype=np.int64)
    nbr = np.full((B, n, D), n, dtype=np.int64)
    nbr_link = np.full((B, n, D), E, dtype=np.int64)
    edge_id = np.full((B, n, n), E, dtype=np.int64)
    for b, r in enumerate(rows):
        k = r.num_links
        edge_id[b, r.edges[:, 0], r.edges[:, 1]] = np.arange(k)
        edge_id[b, r.edges[:, 1], r.edges[:, 0]] = np.arange(k)
        link_pair[b, :k] = pair_index[r.edges[:, 0], r.edges[:, 1]]
        link_u[b, :k] = r.edges[:, 0]
        link_v[b, :k] = r.edges[:, 1]
        p_gen[b, :k] = r.p_gen
        capacity[b, :k] = r.capacity
        link_class[b, :k] = r.link_class
        w = r.nbr.shape[1]
        nbr[b, :, :w] = r.nbr
        nbr_link[b, :, :w] = np.where(r.nbr_link >= 0, r.nbr_link, E)
    lifetimes = np.asarray(classes.lifetimes, dtype=np.int64)
    as_long: dict[str, Any] = {"dtype": torch.int64, "device": device}
    nbr_t = torch.tensor(nbr, **as_long)
    nbr_link_t = torch.tensor(nbr_link, **as_long)
    paths, hops = static_paths(nbr_t, nbr_link_t, E)
    adjacency = torch.zeros((B, P + 1), dtype=torch.float32, device=device)
    link_pair_t = torch.tensor(link_pair, **as_long)
    adjacency.scatter_(1, link_pair_t, 1.0)
    return NetworkTables(
        n=n,
        num_links=torch.tensor([r.num_links for r in rows], **as_long),
        link_pair=link_pair_t,
        link_u=torch.tensor(link_u, **as_long),
        link_v=torch.tensor(link_v, **as_long),
        p_gen=torch.tensor(p_gen, dtype=torch.float64, device=device),
        capacity=torch.tensor(capacity, **as_long),
        link_class=torch.tensor(link_class, **as_long),
        lifetime=torch.tensor(lifetimes[link_class], **as_long),
        nbr=nbr_t,
        nbr_link=nbr_link_t,
        edge_id=torch.tensor(edge_id, **as_long),
        static_paths=paths,
        static_hops=hops,
        adjacency=adjacency[:, :P].contiguous(),
    )


def static_paths(
    nbr: Tensor, nbr_link: Tensor, pad: int, chunk: int = 2048
) -> tuple[Tensor, Tensor]:
    """Static (hop-count shortest) path of every node pair i < j: links (B, H, P) and hops (B, P).

    A breadth-first search from every node over all links (the tie rule of
    :func:`spep_gym.topology.bfs_predecessors`); the path runs from j back to i, as
    :func:`spep_gym.topology.paths_from_predecessors` lists it. Networks go in chunks of ``chunk``.
    """
    B, n, D = nbr.shape
    device = nbr.device
    iu, ju = np.triu_indices(n, 1)
    src_of_pair = torch.tensor(iu, dtype=torch.int64, device=device)
    dst_of_pair = torch.tensor(ju, dtype=torch.int64, device=device)
    P = len(iu)
    all_paths: list[Tensor] = []
    all_hops: list[Tensor] = []
    for lo in range(0, B, chunk):
        nb = nbr[lo : lo + chunk]
        nl = nbr_link[lo : lo + chunk]
        b = nb.shape[0]
        x_nbr = nb[:, None].expand(b, n, n, D).reshape(b * n, n, D)
        x_link = nl[:, None].expand(b, n, n, D).reshape(b * n, n, D)
        src = torch.arange(n, device=device).repeat(b)
        pred_j, depth = search.bfs(x_nbr, src)
        pred_node, pred_link = predecessors(x_nbr, x_link, pred_j)
        # the search of pair (i, j) is the one from i in its network
        x = (torch.arange(b, device=device)[:, None] * n + src_of_pair).reshape(-1)
        dst = dst_of_pair.repeat(b)
        hops = depth[x, dst]
        width = max(int(hops.max()), 1) if len(hops) else 1
        paths = search.walk_back(pred_node[x], pred_link[x], dst, hops, width, pad)
        all_paths.append(paths.view(b, P, width))
        all_hops.append(hops.view(b, P))
    H = max(p.shape[2] for p in all_paths)
    padded = [torch.nn.functional.pad(p, (0, H - p.shape[2]), value=pad) for p in all_paths]
    return torch.cat(padded).transpose(1, 2).contiguous(), torch.cat(all_hops)


def predecessors(nbr: Tensor, nbr_link: Tensor, pred_j: Tensor) -> tuple[Tensor, Tensor]:
    """The node and link each node was reached from (``pred_j`` of a search; -1: none)."""
    j = pred_j.clamp(min=0)[:, :, None]
    node = nbr.gather(2, j)[:, :, 0]
    link = nbr_link.gather(2, j)[:, :, 0]
    reached = pred_j >= 0
    return torch.where(reached, node, -1), torch.where(reached, link, -1)


def network_graph(cfg: SpepConfig, seed: int) -> nx.Graph:
    """The graph an episode of ``seed`` runs on, drawn as :meth:`Simulator.reset` draws it."""
    topo_ss = np.random.SeedSequence(seed).spawn(4)[0]
    return generate_graph(cfg, np.random.default_rng(topo_ss))


def fixed_graph(cfg: SpepConfig) -> nx.Graph | None:
    """The graph every episode uses (``topology_seed`` set or a user graph), else None."""
    if cfg.topology_seed is None and isinstance(cfg.topology, str):
        return None
    rng = np.random.default_rng(np.random.SeedSequence(cfg.topology_seed or 0))
    return generate_graph(cfg, rng)


def episode_workload(cfg: SpepConfig, seed: int, static_hops: np.ndarray, n: int) -> Workload:
    """The workload an episode of ``seed`` meets (the scalar workload stream and generator)."""
    work_ss = np.random.SeedSequence(seed).spawn(4)[1]
    pairs = _PairsView(
        static_hops=static_hops,
        pair_nodes=np.stack(np.triu_indices(n, 1), axis=1).astype(np.int64),
        pair_index=pair_index_matrix(n),
    )
    return generate(cfg, cast(Network, pairs), np.random.default_rng(work_ss))


#: Per-request columns of the packed workload and their fill value for padding.
WORKLOAD_COLUMNS: dict[str, tuple[torch.dtype, float]] = {
    "arrival": (torch.int64, 1 << 40),  # padding never arrives
    "source": (torch.int64, 0),
    "destination": (torch.int64, 0),
    "pair": (torch.int64, 0),
    "F_req": (torch.float64, 2.0),
    "deadline": (torch.int64, 1 << 40),
    "priority": (torch.float64, 0.0),
    "service_key": (torch.int64, 1 << 40),
}


def service_key(w: Workload) -> np.ndarray:
    """Rank of each request in service order (priority high first, deadline, arrival, id)."""
    ids = np.arange(len(w))
    order = np.lexsort((ids, w.arrival, w.deadline, -w.priority))
    key = np.empty(len(w), dtype=np.int64)
    key[order] = ids
    return key


def pack_workloads(
    workloads: list[Workload], width: int, device: torch.device
) -> dict[str, Tensor]:
    """The requests of each network as (B, width) tensors (see :data:`WORKLOAD_COLUMNS`)."""
    B = len(workloads)
    out: dict[str, np.ndarray] = {}
    for name, (dtype, fill) in WORKLOAD_COLUMNS.items():
        np_dtype = np.float64 if dtype == torch.float64 else np.int64
        out[name] = np.full((B, width), fill, dtype=np_dtype)
    for b, w in enumerate(workloads):
        k = len(w)
        out["arrival"][b, :k] = w.arrival
        out["source"][b, :k] = w.source
        out["destination"][b, :k] = w.destination
        out["pair"][b, :k] = w.pair
        out["F_req"][b, :k] = w.F_req
        out["deadline"][b, :k] = w.deadline
        out["priority"][b, :k] = w.priority
        out["service_key"][b, :k] = service_key(w)
    return {
        name: torch.tensor(out[name], dtype=dtype, device=device)
        for name, (dtype, _) in WORKLOAD_COLUMNS.items()
    }
