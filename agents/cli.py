"""The ``spep`` command line: composes the sub-commands and holds what they share.

Each sub-command is a thin parser in the ``cli`` module of the sub-package whose code it drives:
``spep evaluate``, ``spep quality`` and ``spep reproduce`` in :mod:`agents.study.cli`, ``spep train``
in :mod:`agents.rl.cli`; each module adds its commands with ``add_cli(subparsers)``. This module
holds the helpers they share (key=value literals, ``--set`` config overrides, comma lists) and
:func:`main`. Heavy imports happen inside the commands, so ``spep --help`` stays fast.

Errors: every check of a user's input in ``spep_gym`` and ``agents`` (config fields, options, files,
agent parameters, trained models) raises ``ValueError`` with one line that names the option, field
or file, the bad value and what is allowed, before anything runs or is written; :func:`main` prints
it as ``spep: error: ...`` and exits 2 (argparse's own errors exit 2 too). Ctrl-C exits 130 and
SIGTERM 143, after the command has kept what it finished. Any other exception is a bug, and its
traceback is shown as it is: a run that fails inside ``spep evaluate`` raises
``agents.study.backends.RunFailed`` with the run's traceback.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from agents.interrupts import interrupt_name, interrupt_status, sigterm_as_interrupt
from spep_gym.config import SpepConfig

#: The modules whose ``add_cli(subparsers)`` adds the sub-commands, in ``--help`` order.
SUBCOMMAND_MODULES = ("agents.study.cli", "agents.rl.cli")


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

    ``--set rho=0.99 --set swap_model=werner --set preposition_rho=None --set deadline_range=3,12``;
    ``--set preset=physical`` names the base the other fields apply over (wherever it stands).
    Unknown fields raise ``ValueError`` naming the closest known one.
    """
    out = parse_literals(items, "--set")
    known = {f.name for f in dataclasses.fields(SpepConfig)}
    for key in out:
        if key not in known and key != "preset":
            SpepConfig.from_dict({key: None})  # raises with the closest name
    if "preset" in out:
        SpepConfig.from_dict({"preset": out["preset"]})  # a bad preset name fails here
    return out


def parse_names(text: str, option: str | None = None) -> tuple[str, ...]:
    """A comma list (``"shortest, spep-lstm"``) to its names, blanks dropped.

    With ``option``, a list with no name (``""``, ``",,"``) is a ``ValueError`` naming it.
    """
    out = tuple(s.strip() for s in text.split(",") if s.strip())
    if option is not None and not out:
        raise ValueError(f"{option} {text!r} is invalid: allowed a comma list of one or more names")
    return out


def non_negative(option: str, value: int | None) -> None:
    """``ValueError`` unless ``value`` is None or an int >= 0."""
    if value is not None and value < 0:
        raise ValueError(f"{option} {value} is invalid: allowed an integer >= 0")


def positive(option: str, value: int | None) -> None:
    """``ValueError`` unless ``value`` is None or an int >= 1."""
    if value is not None and value < 1:
        raise ValueError(f"{option} {value} is invalid: allowed an integer >= 1")


def add_common(parser: argparse.ArgumentParser) -> None:
    """Add the options every command shares (``--set FIELD=VALUE``)."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a config field (repeatable), e.g. --set link_capacity=2",
    )


def add_import(parser: argparse.ArgumentParser) -> None:
    """Add ``--import MODULE`` (repeatable): modules that register agents, imported first."""
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE (repeatable; the current folder is searched first) before the agents "
        "are made: a module that calls agents.register(...) makes its agents known here and in "
        "the worker processes",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``spep`` parser with every sub-command whose module imports."""
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
        module.add_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``spep`` with ``argv`` (default: the command line); return the exit code.

    A ``ValueError`` (a bad option, field, value or file: see the module docstring) prints
    ``spep: error: ...`` on one line and returns 2. An interrupt (Ctrl-C, or SIGTERM, which
    raises like Ctrl-C while the command runs) returns 130 or 143; other exceptions propagate.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "imports", None):
            from agents.base import import_modules

            import_modules(args.imports)
        with sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except ValueError as err:
        print(f"spep: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"spep: interrupted ({interrupt_name(err)})", file=sys.stderr)
        return interrupt_status(err)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


if __name__ == "__main__":
    raise SystemExit(main())
