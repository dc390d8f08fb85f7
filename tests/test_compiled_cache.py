"""Where the compiled engine's cache lives, and several processes filling it at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import spep_gym

SOURCES = Path(spep_gym.__file__).parent / "compiled"
PRINT_DIR = "import numba, spep_gym.compiled as c; print(numba.config.CACHE_DIR, c.cache_dir())"
# a short episode of the compiled env, its observations, rewards and infos digested
EPISODE = """
import hashlib, pickle, numba, numpy as np, gymnasium as gym, spep_gym
env = gym.make("Spep-v0", engine="compiled", episode_slots=30, arrival_rate=0.8)
obs, info = env.reset(seed=3)
env.action_space.seed(0)
digest = hashlib.sha256(pickle.dumps(sorted(obs.items(), key=lambda kv: kv[0])))
for _ in range(30):
    obs, reward, term, trunc, info = env.step(env.action_space.sample())
    digest.update(pickle.dumps((sorted(obs.items(), key=lambda kv: kv[0]), reward, dict(info))))
assert not numba.config.DISABLE_JIT
print(digest.hexdigest())
"""


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**environ, **env}
    )


def test_the_cache_lives_in_a_directory_named_by_the_sources(tmp_path: Path) -> None:
    out = run(PRINT_DIR, XDG_CACHE_HOME=str(tmp_path), NUMBA_DISABLE_JIT="1")
    assert out.returncode == 0, out.stderr
    used, named = out.stdout.split()
    assert used == named
    assert Path(used).parent == tmp_path / "spep-gym" / "numba"
    assert len(Path(used).name) == 16 and int(Path(used).name, 16) >= 0
    mine = run(PRINT_DIR, NUMBA_CACHE_DIR=str(tmp_path / "mine"), NUMBA_DISABLE_JIT="1")
    assert mine.stdout.split() == [str(tmp_path / "mine")] * 2


def test_an_edited_source_gets_a_new_cache_directory(tmp_path: Path, monkeypatch) -> None:
    from spep_gym.compiled import cache_dir

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    copy = tmp_path / "compiled"
    shutil.copytree(SOURCES, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert cache_dir(copy) == cache_dir()
    laws = copy / "laws.py"
    laws.write_text(laws.read_text() + "\n# an edit\n")
    assert cache_dir(copy) != cache_dir()


@pytest.mark.slow
def test_four_processes_filling_an_empty_cache_at_once_agree(tmp_path: Path) -> None:
    """numba writes each cache file under a temporary name and renames it: no process fails."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "NUMBA_DISABLE_JIT": "0"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", EPISODE],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    results = [proc.communicate(timeout=900) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, [err[-2000:] for _, err in results]
    digests = {out.strip() for out, _ in results}
    assert len(digests) == 1
    cached = subprocess.run(
        [sys.executable, "-c", EPISODE], capture_output=True, text=True, env=env, check=True
    )
    assert cached.stdout.strip() in digests
    assert list(tmp_path.rglob("*.nbc"))
