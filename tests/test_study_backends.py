"""The execution backends of the study: the one process pool behind ``evaluate`` and ``reproduce``.

The pool's functions run in spawned workers, so they are module-level functions of this file (the
workers import it by name from the same ``sys.path``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from agents.study import backends


def worker_facts(_: int) -> dict[str, object]:
    """What a worker sees: its pid, its SIGINT handler and its BLAS / OpenMP thread counts."""
    import numpy  # noqa: F401  (loads the BLAS library, as a run would)
    from threadpoolctl import threadpool_info

    time.sleep(0.5)  # keeps this worker busy, so that the pool starts the other one
    return {
        "pid": os.getpid(),
        "ignores_sigint": signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
        "env": {k: os.environ.get(k) for k in backends.THREAD_VARIABLES},
        "threads": sorted({lib["num_threads"] for lib in threadpool_info()}),
    }


def timed_run(item: tuple[str, int, float]) -> int:
    """Mark ``folder/started_<i>``, sleep, mark ``folder/done_<i>``; return ``i``."""
    folder, i, seconds = item
    Path(folder, f"started_{i}").touch()
    time.sleep(seconds)
    Path(folder, f"done_{i}").touch()
    return i


def fails_on_odd(i: int) -> int:
    """Raise for odd ``i``; return even ``i``."""
    if i % 2:
        raise RuntimeError(f"run {i} failed")
    return i


def test_worker_count() -> None:
    assert backends.worker_count(4, 10) == 4
    assert backends.worker_count(4, 2) == 2  # never more workers than runs
    assert backends.worker_count(None, 1000) == (os.cpu_count() or 1)
    assert backends.worker_count(None, 0) == 1


def test_workers_start_with_one_blas_thread_and_leave_ctrl_c_to_the_parent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in backends.THREAD_VARIABLES:  # as a user who set no count
        monkeypatch.delenv(name, raising=False)
    results: dict[int, dict[str, object]] = {}
    backends.run(worker_facts, range(4), results.__setitem__, jobs=2)
    assert sorted(results) == [0, 1, 2, 3]
    pids = {r["pid"] for r in results.values()}
    assert len(pids) == 2 and os.getpid() not in pids  # two workers, not this process
    for facts in results.values():
        assert facts["ignores_sigint"]
        assert facts["env"] == dict.fromkeys(backends.THREAD_VARIABLES, "1")
        assert facts["threads"] == [1]
    # the parent's environment is as it was
    assert not any(name in os.environ for name in backends.THREAD_VARIABLES)


def test_a_count_the_user_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    with backends.single_threaded_workers():
        assert os.environ["OMP_NUM_THREADS"] == "3"
    assert os.environ["OMP_NUM_THREADS"] == "3"


def test_interrupt_cancels_pending_runs_stops_runs_in_flight_and_keeps_finished_ones(
    tmp_path: Path,
) -> None:
    """Ctrl-C while runs are under way (here raised by ``on_result``, in the parent)."""
    items = [(str(tmp_path), 0, 0.0)] + [(str(tmp_path), i, 3.0) for i in range(1, 12)]
    kept: list[int] = []
    interrupted: list[float] = []

    def on_result(item: tuple[str, int, float], result: int) -> None:
        kept.append(result)
        interrupted.append(time.monotonic())
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backends.run(timed_run, items, on_result, jobs=2)
    stopped = time.monotonic() - interrupted[0]
    assert stopped < 2.5, f"took {stopped:.1f} s: waited for the runs in flight instead of stopping"
    assert kept == [0]  # the finished run reached the caller
    time.sleep(3.5)  # longer than a run: a run left going would have finished by now
    started = {int(p.name.split("_")[1]) for p in tmp_path.glob("started_*")}
    done = {int(p.name.split("_")[1]) for p in tmp_path.glob("done_*")}
    assert done == {0}, "a run in flight was not stopped"
    assert len(started) < len(items), "no pending run was cancelled"


def test_failures_go_to_on_error_or_stop_the_batch() -> None:
    results: dict[int, int] = {}
    errors: dict[int, str] = {}
    for jobs in (1, 2):
        results.clear()
        errors.clear()
        backends.run(fails_on_odd, range(4), results.__setitem__, errors.__setitem__, jobs=jobs)
        assert results == {0: 0, 2: 2}
        assert sorted(errors) == [1, 3] and "run 1 failed" in errors[1]
        with pytest.raises(RuntimeError, match="failed"):
            backends.run(fails_on_odd, range(4), results.__setitem__, jobs=jobs)


def test_serial_run_and_bad_backend() -> None:
    seen: list[tuple[int, int]] = []
    backends.run(abs, [-1, 2, -3], lambda item, result: seen.append((item, result)), jobs=1)
    assert seen == [(-1, 1), (2, 2), (-3, 3)]
    backends.run(abs, [], seen.append, jobs=4)  # nothing to run: nothing starts
    with pytest.raises(ValueError, match="backend = 'dask'"):
        backends.run(abs, [1], seen.append, backend="dask")


def test_an_interrupt_leaves_no_pool_thread_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19, item 8: the pool's manager thread has ended when the interrupt propagates.

    A thread left running closes its wakeup pipe while ``concurrent.futures``' exit hook writes to
    it unlocked (CPython gh-125451, fixed in 3.12.8 and 3.13.1 only): ``OSError: [Errno 9] Bad
    file descriptor`` after ``spep: interrupted``. The thread's clean-up is slowed here, so that
    the race a loaded machine provokes now and then happens every time.
    """
    from concurrent.futures import process

    slow = process._ExecutorManagerThread.join_executor_internals

    def slowed(self: process._ExecutorManagerThread) -> None:
        time.sleep(1.0)
        slow(self)

    monkeypatch.setattr(process._ExecutorManagerThread, "join_executor_internals", slowed)
    items = [(str(tmp_path), 0, 0.0)] + [(str(tmp_path), i, 3.0) for i in range(1, 4)]

    def on_result(item: tuple[str, int, float], result: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backends.run(timed_run, items, on_result, jobs=2)
    left = [t for t in threading.enumerate() if isinstance(t, process._ExecutorManagerThread)]
    assert not left, "the pool's manager thread outlived the interrupt"
    assert not process._threads_wakeups or all(w._closed for w in process._threads_wakeups.values())
