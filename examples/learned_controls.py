"""The stored learned agents as named agents, for ``spep reproduce`` or ``spep evaluate``.

``docs/results/learned-<preset>/`` holds a learned predictive policy and its demand-blind twin per
preset (``docs/scripts/learned_twins.py``). Importing this module registers each as
``learned-predictive-<preset>`` and ``learned-blind-<preset>``, so a study can run them beside the
other controls (each applies its training preset's physics itself):

    spep reproduce --import examples.learned_controls --agents managed,random,learned-blind-paper
    spep evaluate --import examples.learned_controls --agent learned-blind-physical,managed \\
        --set preset=physical

Run as a script it evaluates them against ``managed`` on a few seeds:

    python examples/learned_controls.py --small
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import agents
from agents.learned import SB3Agent

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
MODELS = {
    f"learned-{kind}-{preset}": RESULTS / f"learned-{preset}" / kind
    for preset in ("paper", "physical")
    for kind in ("predictive", "blind")
}


for _name, _path in MODELS.items():
    if (_path / "model.zip").is_file():
        agents.register(_name, functools.partial(SB3Agent, _path, label=_name))


def main(argv: list[str] | None = None) -> None:
    """Each stored model against ``managed`` on the same seeds, under its training preset."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="2 runs of 200 slots")
    args = parser.parse_args(argv)
    runs, slots = (2, 200) if args.small else (20, 2000)
    from agents.study.evaluate import evaluate

    for name, path in MODELS.items():
        if not (path / "model.zip").is_file():
            print(f"{name}: not stored ({path})")
            continue
        preset = name.rsplit("-", 1)[1]
        rates = {
            who: evaluate(
                who, runs=runs, jobs=1, config={"preset": preset}, episode_slots=slots
            ).success_rate.mean()
            for who in (name, "managed")
        }
        print(", ".join(f"{who} {100 * r:.1f} %" for who, r in rates.items()))


if __name__ == "__main__":
    main()
