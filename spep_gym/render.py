"""Text and picture views of the environment (matplotlib is imported only for pictures)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import networkx as nx
import numpy as np

if TYPE_CHECKING:
    from spep_gym.config import SpepConfig
    from spep_gym.simulator import Simulator


class Viewed(Protocol):
    """What the views read of an environment (a ``SpepEnv``; the env imports this module)."""

    sim: Simulator
    config: SpepConfig


def ansi(env: Viewed) -> str:
    """The slot, every link's pairs, the pre-positioned pairs and the queue, as text."""
    sim = env.sim
    net = sim.net
    fid = sim.link_fidelity()
    lines = [f"slot {sim.t}  topology {env.config.topology_name}  n={net.n}  links={net.num_links}"]
    links = [
        f"{u}-{v}:{int(c)}@{f:.2f}"
        for (u, v), c, f in zip(
            net.edges.tolist(), sim.links.count.tolist(), fid.tolist(), strict=True
        )
        if c
    ]
    lines.append(f"links with pairs ({len(links)}): " + " ".join(links))
    held = [
        f"{net.pair_nodes[a][0]}-{net.pair_nodes[a][1]}@{f:.2f}" for a, f in sim.held_fidelities()
    ]
    lines.append(f"pre-positioned ({len(held)}): " + " ".join(held))
    w = sim.workload
    queue = [
        f"#{r} {w.source[r]}->{w.destination[r]} F>={w.F_req[r]:.2f} t_d={w.deadline[r]} "
        f"w={w.priority[r]:g}"
        for r in sim.queued_requests()
    ]
    lines.append(f"queue ({len(queue)}): " + "; ".join(queue))
    s = sim.metrics.summary()
    lines.append(
        f"served {s['served']}  failed {s['failed']}  pending {s['pending']}  "
        f"success {s['success_rate'] or 0:.3f}"
    )
    return "\n".join(lines) + "\n"


def rgb_array(env: Viewed) -> np.ndarray:
    """The network drawn with link states, pre-positioned pairs and the queue: (H, W, 3) uint8."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "render_mode='rgb_array' needs matplotlib: pip install 'spep-gym[plot]'"
        ) from err
    sim = env.sim
    net = sim.net
    if getattr(env, "_layout_graph", None) is not net.graph:
        env._layout = nx.spring_layout(net.graph, seed=0)  # type: ignore[attr-defined]
        env._layout_graph = net.graph  # type: ignore[attr-defined]
    pos = env._layout  # type: ignore[attr-defined]
    fig, (ax, side) = plt.subplots(1, 2, figsize=(8, 4.5), dpi=80, width_ratios=(3, 2))
    fid = sim.link_fidelity()
    colors = [
        plt.cm.viridis(f) if c else (0.8, 0.8, 0.8, 1.0)
        for f, c in zip(fid, sim.links.count, strict=True)
    ]
    widths = [1.0 + 2.0 * c for c in sim.links.count.tolist()]
    nx.draw_networkx_nodes(net.graph, pos, ax=ax, node_size=180, node_color="#4a7ab0")
    nx.draw_networkx_labels(net.graph, pos, ax=ax, font_size=7, font_color="white")
    nx.draw_networkx_edges(
        net.graph,
        pos,
        ax=ax,
        edgelist=[tuple(e) for e in net.edges.tolist()],
        edge_color=colors,
        width=widths,
    )
    held = [tuple(net.pair_nodes[a].tolist()) for a, _ in sim.held_fidelities()]
    if held:
        nx.draw_networkx_edges(
            nx.Graph(held),
            pos,
            ax=ax,
            edgelist=held,
            style="dashed",
            edge_color="#d62728",
            width=2.0,
            connectionstyle="arc3,rad=0.25",
            arrows=True,
            arrowstyle="-",
        )
    ax.set_title(
        f"slot {sim.t}: links (colour = fidelity), pre-positioned (red dashed)", fontsize=8
    )
    ax.axis("off")
    w = sim.workload
    rows = [
        f"{w.source[r]}->{w.destination[r]} F>={w.F_req[r]:.2f} t_d={w.deadline[r]} w={w.priority[r]:g}"
        for r in sim.queued_requests(18)
    ]
    side.text(0, 1, "queue\n" + "\n".join(rows), va="top", family="monospace", fontsize=7)
    side.axis("off")
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()  # type: ignore[attr-defined]
    plt.close(fig)
    return image
