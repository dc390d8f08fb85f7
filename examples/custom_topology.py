"""A user topology: a networkx graph whose links carry their own length_km, p_gen and F0.

Nodes may have any sortable labels: they are relabelled 0 .. n-1 in sorted order. A link with
``length_km`` decays by ``rho ** (length_km / reference_km)`` per slot, so long links lose fidelity
faster; ``p_gen`` and ``F0`` override the config's values on that link.

    python examples/custom_topology.py --small
"""

from __future__ import annotations

import argparse

import networkx as nx

from agents import run_episode
from spep_gym import SpepConfig


def city_network() -> nx.Graph:
    """A ring of six metro nodes with two long-haul links across it."""
    graph = nx.Graph()
    metro = dict(length_km=5.0, p_gen=0.3, F0=0.95)  # short links: fast and good
    for a, b in [("A", "B"), ("B", "C"), ("C", "D"), ("D", "E"), ("E", "F"), ("F", "A")]:
        graph.add_edge(a, b, **metro)
    graph.add_edge("A", "D", length_km=40.0, p_gen=0.08, F0=0.9)  # long haul: slow and lossy
    graph.add_edge("B", "E", length_km=35.0, p_gen=0.1, F0=0.9)
    return graph


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="200 slots instead of 2000")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    graph = city_network()
    config = SpepConfig(
        topology=graph,
        episode_slots=200 if args.small else 2000,
        num_hot_pairs=2,
        num_medium_pairs=4,
        min_pair_hops=2,
    )
    print(f"{config.n} nodes, {graph.number_of_edges()} links; relabelled {sorted(graph)} -> 0..5")
    rows = []
    for name in ("reactive", "shortest", "highest_fidelity"):
        row = run_episode(name, seed=args.seed, config=config)
        rows.append(row)
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        print(
            f"{name:17s} success {fmt(row['success_rate'])}  fidelity {fmt(row['avg_fidelity'])}"
            f"  latency {fmt(row['avg_latency'])}"
        )
    return rows


if __name__ == "__main__":
    main()
