"""Issue 10, item 10: SIGTERM stops ``spep reproduce`` and ``spep evaluate`` like Ctrl-C, and no
worker process outlives its driver, even after ``kill -9`` of the driver.

Real subprocesses with tiny runs; the process tree is read from ``/proc`` (Linux).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from agents.study import backends

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (children, grandchildren, ...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return {p for p in found if _alive(p)}


def _wait_gone(pids: set[int], seconds: float = 10.0) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = {p for p in pids if _alive(p)}
        if not left:
            return left
        time.sleep(0.05)
    return {p for p in pids if _alive(p)}


def _start(
    argv: list[str], ready: Path, count: int, workers: int
) -> tuple[subprocess.Popen, set[int]]:
    """Start ``spep argv``; wait for ``count`` files matching ``ready`` and ``workers`` workers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agents.cli", *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 90
    pids: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        pids |= _descendants(proc.pid)
        files = list(ready.parent.glob(ready.name)) if ready.parent.exists() else []
        if len(files) >= count and len(pids) >= workers:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the command finished before it could be interrupted"
    return proc, pids


def _reproduce(out: Path) -> list[str]:
    return [
        "reproduce", "--agents", "reactive,shortest,highest_fidelity", "--topologies",
        "erdos_renyi", "--runs", "60", "--slots", "1000", "--out", str(out), "--jobs", "2",
        "--no-sensitivity", "--no-figures", "--no-progress",
    ]  # fmt: skip


def test_sigterm_stops_reproduce_like_ctrl_c_and_its_workers_with_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc, pids = _start(_reproduce(out), out / "runs" / "*.json", count=4, workers=2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "interrupted (SIGTERM)" in stderr and "Run the same command again to resume" in stderr
    done = list((out / "runs").glob("*.json"))
    assert 4 <= len(done) < 180
    assert len(pd.read_csv(out / "results.csv")) == len(done)  # what was done, written
    assert not _wait_gone(pids), "a worker outlived spep reproduce"


def test_kill_9_of_the_driver_leaves_no_worker(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc, pids = _start(_reproduce(out), out / "runs" / "*.json", count=2, workers=2)
    workers = _descendants(proc.pid)
    assert len(workers) >= 2
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not _wait_gone(pids | workers), "a worker outlived the killed driver"


def test_sigterm_stops_evaluate_and_keeps_the_rows_done(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    argv = ["evaluate", "--agent", "shortest", "--runs", "200", "--slots", "1000", "--jobs", "2",
            "--no-progress", "--out", str(rows)]  # fmt: skip
    proc, pids = _start(argv, rows, count=1, workers=2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "spep: interrupted (SIGTERM)"
    assert 1 <= len(pd.read_csv(rows)) < 200
    assert not _wait_gone(pids), "a worker outlived spep evaluate"


def test_a_worker_dies_when_its_parent_does(tmp_path: Path) -> None:
    """The worker side alone: a grandchild that called die_with_parent ends with its parent."""
    ready = tmp_path / "child_ready"
    code = (
        "import os, pathlib, subprocess, sys, time\n"
        "from agents.study import backends\n"
        "if sys.argv[1] == 'parent':\n"
        "    child = subprocess.Popen([sys.executable, __file__, 'child', str(os.getpid())])\n"
        "    print(child.pid, flush=True)\n"
        "    time.sleep(60)\n"
        "else:\n"
        "    backends.die_with_parent(int(sys.argv[2]))\n"
        f"    pathlib.Path({str(ready)!r}).touch()\n"
        "    time.sleep(60)\n"
    )
    script = tmp_path / "tree.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen(
        [sys.executable, str(script), "parent"], stdout=subprocess.PIPE, env=env, text=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    # the child is past die_with_parent: on a loaded machine its imports alone can take seconds
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists() and _alive(child)
    parent.kill()
    parent.wait()
    assert not _wait_gone({child}, 5.0)
    assert backends.PARENT_POLL_S <= 1.0


def test_deferred_interrupts_raise_only_where_the_block_checks() -> None:
    from agents.interrupts import Terminated, deferred_interrupts, sigterm_as_interrupt

    reached = []
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with sigterm_as_interrupt(), pytest.raises(Terminated), deferred_interrupts() as check:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler has run: it only recorded the signal
            reached.append("after the signal")
            check()
            reached.append("after check")  # pragma: no cover
        assert reached == ["after the signal"]
        # the handler in place before the block is back
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with pytest.raises(KeyboardInterrupt), deferred_interrupts() as check:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            check()
    finally:
        signal.signal(signal.SIGINT, previous)


def test_deferred_interrupts_leave_an_ignored_signal_ignored() -> None:
    from agents.interrupts import deferred_interrupts

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred_interrupts() as check:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            check()  # nothing recorded, nothing raised
    finally:
        signal.signal(signal.SIGINT, previous)
