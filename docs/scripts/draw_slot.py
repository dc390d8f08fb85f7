"""Draw docs/img/slot.png: the six phases of one slot (SPEC section 5) and the agent's decision point.

Run ``python docs/scripts/draw_slot.py`` after changing the slot order; the PNG is committed.
"""

from __future__ import annotations

from pathlib import Path

PHASES = (
    ("1  discard expired", "link pairs older than\nmax_lifetime or below\nF_min; pre-positions\npast their expiry", "discard_expired"),
    ("2  generate", "one uniform per link:\na new pair (F0, age 0)\nif it is < p_gen and\na place is free", "generate_links"),
    ("3  admit arrivals", "this slot's requests join\nthe queue (priority,\ndeadline, arrival)", "admit_arrivals"),
    ("4  pre-position", "the agent's node pairs\nin order, within K and\nmax_new_prepositions", "preposition"),
    ("5  serve", "a pre-positioned pair first,\nelse on demand over the\nrouting strategy's path", "serve"),
    ("6  fail overdue", "still queued at the end\nof slot t_d: failed", "fail_overdue"),
)  # fmt: skip


OUT = Path(__file__).resolve().parents[1] / "img" / "slot.png"


def main(out: Path = OUT) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(13.5, 3.9), dpi=110)
    ax.set_xlim(0, 13.5)
    ax.set_ylim(0, 3.9)
    ax.axis("off")
    width, gap, y, h = 2.0, 0.2, 1.0, 1.7
    colours = ["#dbe9f6"] * 3 + ["#fde2c8"] * 3
    for i, ((title, text, func), colour) in enumerate(zip(PHASES, colours, strict=True)):
        x = 0.2 + i * (width + gap) + (0.2 if i >= 3 else 0.0)
        ax.add_patch(
            FancyBboxPatch(
                (x, y), width, h, boxstyle="round,pad=0.03", fc=colour, ec="#333333", lw=1.0
            )
        )
        ax.text(x + width / 2, y + h - 0.22, title, ha="center", va="center", weight="bold")
        ax.text(x + width / 2, y + h / 2 - 0.1, text, ha="center", va="center", fontsize=8)
        ax.text(
            x + width / 2, y - 0.18, f"{func}()", ha="center", va="center", fontsize=8,
            family="monospace", color="#444444",
        )  # fmt: skip
        if i < 5:
            x_next = 0.2 + (i + 1) * (width + gap) + (0.2 if i + 1 >= 3 else 0.0)
            ax.add_patch(
                FancyArrowPatch(
                    (x + width + 0.03, y + h / 2),
                    (x_next - 0.03, y + h / 2),
                    arrowstyle="-|>",
                    mutation_scale=12,
                    color="#333333",
                )
            )
    # The decision point between phases 3 and 4.
    x_dec = 0.2 + 3 * (width + gap) - gap / 2 + 0.1
    ax.plot([x_dec, x_dec], [0.45, 3.05], ls="--", color="#c0392b", lw=1.5)
    ax.text(
        x_dec, 3.25, "decision point: the agent observes and acts (env.step(action))",
        ha="center", color="#c0392b", fontsize=9, weight="bold",
    )  # fmt: skip
    span = 0.2 + 3 * (width + gap) - gap
    ax.text(span / 2 + 0.1, 0.3, "Simulator.begin_slot()", ha="center", family="monospace")
    ax.text(
        x_dec + (13.5 - x_dec) / 2, 0.3, "Simulator.finish_slot(action)", ha="center",
        family="monospace",
    )  # fmt: skip
    ax.text(0.2, 3.65, "One slot t (paper Algorithm 1, SPEC section 5)", fontsize=11, weight="bold")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
