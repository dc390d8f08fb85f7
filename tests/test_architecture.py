"""The architecture page matches the tree, and the import rules it states hold (read from the source)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
MODULES = sorted(
    p.relative_to(ROOT).as_posix()
    for package in ("spep_gym", "agents")
    for p in (ROOT / package).rglob("*.py")
)
CORE = {
    f"spep_gym/{m}.py"
    for m in (
        "config", "resources", "physics", "topology", "workload", "links", "routing", "metrics",
        "simulator",
    )
}  # fmt: skip
HEAVY = (
    "torch", "stable_baselines3", "sb3_contrib", "statsmodels", "matplotlib", "ray", "torchrl",
    "tensordict",
)  # fmt: skip


def imports(path: str, top_level_only: bool = False) -> set[str]:
    """Every module ``path`` imports (anywhere in the file, or at its top level only)."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _under(names: set[str], prefix: str) -> set[str]:
    return {n for n in names if n == prefix or n.startswith(prefix + ".")}


def test_the_page_names_every_module_and_no_other():
    named = set(re.findall(r"`((?:spep_gym|agents)/[\w/]+\.py)`", PAGE))
    assert set(MODULES) - named == set(), "modules missing from docs/architecture.md"
    assert named - set(MODULES) == set(), "docs/architecture.md names modules that do not exist"


def test_every_module_opens_with_a_one_sentence_docstring():
    for path in MODULES:
        doc = ast.get_docstring(ast.parse((ROOT / path).read_text(encoding="utf-8")))
        assert doc, f"{path} has no module docstring"
        first = doc.split("\n\n")[0].replace("\n", " ")
        assert first.rstrip().endswith((".", ":")), f"{path}: {first!r}"


@pytest.mark.parametrize("path", MODULES)
def test_import_rules(path: str):
    found = imports(path)
    if path.startswith("spep_gym/"):
        assert not _under(found, "agents"), f"{path} imports agents"
    if path in CORE:
        assert not _under(found, "gymnasium"), f"core module {path} imports gymnasium"
    policies = path.startswith("agents/predictors/") or path.count("/") == 1
    if path.startswith("agents/") and policies:
        assert not _under(found, "agents.study") or path == "agents/__init__.py", path
        if path != "agents/learned.py":
            assert not _under(found, "agents.rl"), f"{path} imports agents.rl"
    if path.startswith("agents/study/"):
        assert not _under(found, "agents.rl"), f"{path} imports agents.rl"


@pytest.mark.parametrize("path", MODULES)
def test_heavy_libraries_are_not_imported_at_module_level(path: str):
    # loaded only when an agent or a command that needs them is made (tests/test_imports.py)
    lazy_modules = {
        "agents/predictors/lstm.py",
        "agents/predictors/arima.py",
        "agents/rl/policies.py",
        "agents/rl/batched_vec.py",
        "agents/rl/torchrl_ppo.py",  # loaded by spep train --engine torchrl only
        "agents/batched.py",  # the batched agents: imported only by the batched engine
    }
    # the batched core is torch through and through; nothing imports it but make_vec's entry point
    if path in lazy_modules or path.startswith("spep_gym/batched/"):
        return
    top = imports(path, top_level_only=True)
    heavy = {n for n in top for lib in HEAVY if n == lib or n.startswith(lib + ".")}
    assert not heavy, f"{path} imports {sorted(heavy)} at module level"


def _dotted(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_graph() -> nx.DiGraph:
    """Which module of the packages imports which, counting every import in the file.

    Imports inside functions and under ``TYPE_CHECKING`` count: a lazy import that closes a circle
    still makes the import order matter. ``from package import name`` is an edge to the module
    ``package.name`` where there is one, else to the package's ``__init__``.
    """
    names = {_dotted(p): p for p in MODULES}
    graph = nx.DiGraph()
    graph.add_nodes_from(names)
    for name, path in names.items():
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        for node in ast.walk(ast.parse((ROOT / path).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: the package, up level - 1
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([base] if base else [])])
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in names else base for a in node.names
                ]
            else:
                continue
            for target in targets:
                while target and target not in names:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph.add_edge(name, target)
    return graph


#: Circles not removed yet, each with who removes it. Remove an entry with its circle.
KNOWN_CIRCLES: set[frozenset[str]] = set()


def test_no_import_circles():
    graph = module_graph()
    assert graph.has_edge("spep_gym.env", "spep_gym.render")  # the graph sees lazy imports
    circles = sorted(
        " -> ".join([*c, c[0]])
        for c in nx.simple_cycles(graph)
        if frozenset(c) not in KNOWN_CIRCLES
    )
    assert circles == [], "import circles:\n" + "\n".join(circles)


def test_the_circle_finder_finds_a_lazy_and_a_type_checking_circle(tmp_path, monkeypatch):
    pkg = tmp_path / "spep_gym"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""P."""\n')
    (pkg / "a.py").write_text('"""A."""\n\n\ndef f():\n    from spep_gym import b\n')
    (pkg / "b.py").write_text(
        '"""B."""\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from .a import f\n'
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(
        sys.modules[__name__], "MODULES", ["spep_gym/__init__.py", "spep_gym/a.py", "spep_gym/b.py"]
    )
    assert [sorted(c) for c in nx.simple_cycles(module_graph())] == [["spep_gym.a", "spep_gym.b"]]
