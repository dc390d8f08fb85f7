"""Every script in examples/ runs with ``--small`` (a smoke test, so the examples never rot).

Each runs as a user would run it, ``python examples/NAME.py --small``, in a fresh process and a
temporary working directory; a new example is picked up by the glob.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_there_are_examples() -> None:
    names = {p.name for p in EXAMPLES}
    expected = ("random_agent.py", "evaluate_baselines.py", "custom_topology.py", "custom_agent.py")
    assert names >= set(expected)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_has_main_and_docstring(script: Path) -> None:
    tree = ast.parse(script.read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{script.name}: no module docstring"
    assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_small(script: Path, tmp_path: Path) -> None:
    env = dict(os.environ, MPLBACKEND="Agg")
    # The repository first on the path: the examples import spep_gym and agents from this checkout.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    result = subprocess.run(
        [sys.executable, str(script), "--small"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip(), f"{script.name} printed nothing"
