"""The ``spep`` command line: ``spep evaluate``, ``spep reproduce``, ``spep train``.

Each subcommand lives in its own module and adds itself with ``add_cli(subparsers)``; heavy imports
happen inside the command, so ``spep --help`` stays fast.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

from spep_gym.config import SpepConfig

SUBCOMMAND_MODULES = ("agents.evaluate", "agents.experiments", "agents.training")


def parse_literals(items: Sequence[str] | None, option: str = "--set") -> dict[str, Any]:
    """``["key=value", ...]`` to a dict; values are Python literals, bare words stay strings."""
    out: dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise ValueError(f"{option} {item!r}: expected key=value, e.g. {option} rho=0.99")
        key, text = (s.strip() for s in item.split("=", 1))
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text  # a bare word: a string such as werner or erdos_renyi
    return out


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``["field=value", ...]`` (from ``--set``) to config fields; values are Python literals.

    ``--set rho=0.99 --set swap_model=werner --set preposition_rho=None --set deadline_range=3,12``.
    Unknown fields raise ``ValueError`` naming the closest known one.
    """
    out = parse_literals(items, "--set")
    known = {f.name for f in dataclasses.fields(SpepConfig)}
    for key in out:
        if key not in known:
            SpepConfig.from_dict({key: None})  # raises with the closest name
    return out


def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every experiment command shares."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a config field (repeatable), e.g. --set link_capacity=2",
    )


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="spep", description="spep-gym: predictive entanglement pre-positioning experiments"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        add = getattr(module, "add_cli", None)
        if add is not None:
            add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as err:
        print(f"spep: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
