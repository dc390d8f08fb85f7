"""Topologies (SPEC section 2) and the static arrays the simulator reads every slot.

Node pairs are unordered and indexed in ``numpy.triu_indices(n, 1)`` order throughout the project.
Static paths are hop-count shortest paths found by breadth-first search that visits neighbours in
ascending node id, a node's predecessor being the first node that reaches it (the tie rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from spep_gym.config import SpepConfig
from spep_gym.physics import decayed, loss_p_gen

MAX_REDRAWS = 1000


def num_pairs(n: int) -> int:
    """Unordered node pairs of ``n`` nodes: P = n(n-1)/2."""
    return n * (n - 1) // 2


def num_nodes(num_pairs: int) -> int:
    """The node count n with n(n-1)/2 = ``num_pairs`` (the inverse of :func:`num_pairs`)."""
    n = (1 + math.isqrt(1 + 8 * num_pairs)) // 2
    if n < 2 or n * (n - 1) // 2 != num_pairs:
        raise ValueError(f"{num_pairs} is not a number of node pairs n(n-1)/2 of n >= 2 nodes")
    return n


def pair_index(i: int, j: int, n: int) -> int:
    """Index of the unordered pair {i, j} of ``n`` nodes (either order), as in ``pair_index_matrix``."""
    if i == j or not (0 <= i < n and 0 <= j < n):
        raise ValueError(f"nodes {i}, {j}: a node pair needs two distinct nodes in 0..{n - 1}")
    a, b = (i, j) if i < j else (j, i)
    return a * (2 * n - a - 1) // 2 + (b - a - 1)


def pair_index_matrix(n: int) -> np.ndarray:
    """(n, n) int matrix: the index of the unordered pair {i, j}; -1 on the diagonal."""
    idx = np.full((n, n), -1, dtype=np.int64)
    iu, ju = np.triu_indices(n, 1)
    idx[iu, ju] = np.arange(len(iu))
    idx[ju, iu] = np.arange(len(iu))
    return idx


def generate_graph(cfg: SpepConfig, rng: np.random.Generator) -> nx.Graph:
    """Draw the topology of ``cfg`` from ``rng``; a disconnected draw is redrawn."""
    topo = cfg.topology
    if isinstance(topo, nx.Graph):
        try:
            order = sorted(topo.nodes)
        except TypeError as err:
            raise ValueError(
                "config field 'topology': node labels must be sortable to be relabelled 0..n-1"
            ) from err
        return nx.relabel_nodes(topo, {old: i for i, old in enumerate(order)}, copy=True)
    n = cfg.num_nodes
    for _ in range(MAX_REDRAWS):
        seed = int(rng.integers(2**32))
        if topo == "erdos_renyi":
            g = nx.gnp_random_graph(n, cfg.er_p, seed=seed)
        elif topo == "random_regular":
            g = nx.random_regular_graph(cfg.regular_degree, n, seed=seed)
        elif topo == "small_world":
            g = nx.watts_strogatz_graph(n, cfg.ws_k, cfg.ws_p, seed=seed)
        else:
            g = nx.barabasi_albert_graph(n, cfg.ba_m, seed=seed)
        if nx.is_connected(g):
            return g
    raise ValueError(
        f"config field 'topology' = {topo!r}: no connected graph in {MAX_REDRAWS} draws "
        f"with num_nodes={n}; raise the edge density (er_p, regular_degree, ws_k or ba_m)"
    )


@dataclass(eq=False)
class Network:
    """A topology and everything about it that stays fixed during an episode.

    Links are the graph's edges, indexed 0..E-1 with ``u < v``. Index ``E`` is a padding link used
    by the padded path matrix (always "available", factor 1).
    """

    graph: nx.Graph
    n: int
    edges: np.ndarray  # (E, 2) int, u < v
    p_gen: np.ndarray  # (E,) generation probability per slot
    F0: np.ndarray  # (E,) fidelity of a new pair
    capacity: np.ndarray  # (E,) int, stored pairs at most
    rho: np.ndarray  # (E,) decay per slot of a pair on the link
    lifetime: np.ndarray  # (E,) int, slots a pair exists: discarded at age >= lifetime
    fidelity_table: np.ndarray  # (E + 1, max_lifetime + 2): fidelity by age; 0 from lifetime on
    edge_id: np.ndarray  # (n, n) int, link index of {u, v} or -1
    neighbours: list[list[tuple[int, int]]]  # per node: (neighbour, link) in ascending order
    pair_index: np.ndarray  # (n, n) int, see pair_index_matrix
    pair_nodes: np.ndarray  # (P, 2) int, i < j
    static_paths: np.ndarray  # (P, H) int links of the static path, padded with E
    static_paths_t: np.ndarray  # (H, P) the same, contiguous: per-slot products run hop by hop
    static_hops: np.ndarray  # (P,) int, hops of the static path

    @property
    def num_links(self) -> int:
        """Number of links E."""
        return len(self.edges)

    @property
    def num_pairs(self) -> int:
        """Number of unordered node pairs P = n(n-1)/2."""
        return len(self.pair_nodes)

    @classmethod
    def build(cls, graph: nx.Graph, cfg: SpepConfig) -> Network:
        """The static arrays of ``graph`` (nodes 0..n-1) under ``cfg``'s link defaults."""
        n = graph.number_of_nodes()
        edges = np.array(sorted((min(u, v), max(u, v)) for u, v in graph.edges), dtype=np.int64)
        edges = edges.reshape(-1, 2)
        num_links = len(edges)

        def attr(name: str, default: float) -> np.ndarray:
            return np.array(
                [graph.edges[u, v].get(name, default) for u, v in edges], dtype=np.float64
            )

        p_gen = attr("p_gen", cfg.p_gen)
        f0 = attr("F0", cfg.F0)
        capacity = attr("link_capacity", cfg.link_capacity).astype(np.int64)
        length = attr("length_km", np.nan)
        has_length = ~np.isnan(length)
        if cfg.length_model == "paper":  # length shortens storage (SPEC 2)
            rho = np.where(has_length, cfg.rho ** (length / cfg.reference_km), cfg.rho)
        else:  # length lowers the generation probability through fibre loss (SPEC 9)
            rho = np.full(num_links, cfg.rho)
            lossy = loss_p_gen(p_gen, length, cfg.reference_km, cfg.fiber_loss_db_per_km)
            p_gen = np.where(has_length, lossy, p_gen)

        # A pair of age a has fidelity decayed(F0, rho, a); it is discarded at the first age a with
        # a > max_lifetime or fidelity below max(F_min, cutoff_fidelity), so it exists for
        # `lifetime` slots (at least 1). Scalar pow (as physics.decayed computes it): numpy's
        # vectorised pow can differ from it in the last bit, and a pair's fidelity should be exactly
        # the decay law's value.
        ages = np.arange(cfg.max_lifetime + 2)
        fid = np.array(
            [
                [decayed(f, r, a, cfg.decay_model) for a in range(len(ages))]
                for f, r in zip(f0.tolist(), rho.tolist(), strict=True)
            ]
        ).reshape(num_links, len(ages))
        floor = cfg.F_min if cfg.cutoff_fidelity is None else max(cfg.F_min, cfg.cutoff_fidelity)
        bad = (ages[None, :] > cfg.max_lifetime) | (fid < floor)
        bad[:, 0] = False
        lifetime = np.argmax(bad, axis=1)
        table = np.zeros((num_links + 1, len(ages)))
        table[:num_links] = np.where(ages[None, :] < lifetime[:, None], fid, 0.0)

        edge_id = np.full((n, n), -1, dtype=np.int64)
        edge_id[edges[:, 0], edges[:, 1]] = np.arange(num_links)
        edge_id[edges[:, 1], edges[:, 0]] = np.arange(num_links)
        neighbours: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        for e, (u, v) in enumerate(edges.tolist()):
            neighbours[u].append((v, e))
            neighbours[v].append((u, e))
        for lst in neighbours:
            lst.sort()

        pair_nodes = np.stack(np.triu_indices(n, 1), axis=1).astype(np.int64)
        paths, hops = static_paths(n, edges, edge_id, pair_nodes)
        return cls(
            graph=graph,
            n=n,
            edges=edges,
            p_gen=p_gen,
            F0=f0,
            capacity=capacity,
            rho=rho,
            lifetime=lifetime.astype(np.int64),
            fidelity_table=table,
            edge_id=edge_id,
            neighbours=neighbours,
            pair_index=pair_index_matrix(n),
            pair_nodes=pair_nodes,
            static_paths=paths,
            static_paths_t=np.ascontiguousarray(paths.T),
            static_hops=hops,
        )


def bfs_predecessors(n: int, edges: np.ndarray, usable: np.ndarray | None = None) -> np.ndarray:
    """(n, n) predecessor matrix of breadth-first search from every node (-9999: unreached).

    Neighbours are visited in ascending id (sorted CSR), so ties follow the module's rule.
    """
    e = edges if usable is None else edges[usable]
    data = np.ones(2 * len(e))
    rows = np.concatenate([e[:, 0], e[:, 1]])
    cols = np.concatenate([e[:, 1], e[:, 0]])
    csr = scipy.sparse.csr_array((data, (rows, cols)), shape=(n, n))
    csr.sort_indices()
    pred = np.empty((n, n), dtype=np.int64)
    for s in range(n):
        _, p = scipy.sparse.csgraph.breadth_first_order(csr, s, directed=False)
        pred[s] = p
    return pred


def paths_from_predecessors(
    pred: np.ndarray, edge_id: np.ndarray, pair_nodes: np.ndarray, pad: int
) -> tuple[np.ndarray, np.ndarray]:
    """Links of the path from i to j (i < j) for every pair, padded with ``pad``; hops (0: none)."""
    src, cur = pair_nodes[:, 0].copy(), pair_nodes[:, 1].copy()
    columns: list[np.ndarray] = []
    hops = np.zeros(len(src), dtype=np.int64)
    reached = pred[src, cur] >= 0
    active = reached.copy()
    while active.any():
        prev = np.where(active, pred[src, cur], cur)
        columns.append(np.where(active, edge_id[prev, cur], pad))
        hops += active
        cur = prev
        active = active & (cur != src)
    if not columns:
        return np.full((len(src), 1), pad, dtype=np.int64), hops
    return np.stack(columns, axis=1).astype(np.int64), hops


def static_paths(
    n: int, edges: np.ndarray, edge_id: np.ndarray, pair_nodes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The static path of every node pair (padded with E) and its hops."""
    pred = bfs_predecessors(n, edges)
    return paths_from_predecessors(pred, edge_id, pair_nodes, pad=len(edges))
