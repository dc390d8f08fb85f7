"""Where runs execute: in this process, in a pool of local worker processes, or on Ray.

Every backend takes a function and the items to run it on, and calls ``on_result(item, result)``
in this process as each run finishes, in the order they finish. A run that raises is handed to
``on_error(item, traceback_text)`` and the others go on; without ``on_error`` the exception stops
the whole batch. ``spep evaluate`` and ``spep reproduce`` both run through :func:`run`. The modules of
``spep --import`` (:data:`agents.base.IMPORTED`) are imported in every worker before its runs, so
that the agents they register can be made by name there too.

Interrupts (Ctrl-C, SIGTERM under :func:`sigterm_as_interrupt`, or any exception raised in this
process while runs are under way, e.g. by ``on_result``) are handled the same way by every backend:
runs not started are cancelled, runs in flight are stopped and lost, the results already handed to
``on_result`` stay with the caller, and the exception propagates.

No local worker outlives this process: a worker ignores SIGINT and SIGTERM (the parent stops it),
asks Linux to kill it when its parent dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), and checks its
parent every :data:`PARENT_POLL_S` seconds (elsewhere, and should the parent die before the prctl):
even a ``kill -9`` of the driver leaves no worker running.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from agents.interrupts import (
    Terminated,
    deferred_interrupts,
    interrupt_name,
    interrupt_status,
    sigterm_as_interrupt,
)

__all__ = [
    "BACKENDS",
    "RunFailed",
    "Terminated",
    "die_with_parent",
    "interrupt_name",
    "interrupt_status",
    "raise_run_failed",
    "run",
    "run_processes",
    "run_ray",
    "run_serial",
    "sigterm_as_interrupt",
    "single_threaded_workers",
    "worker_count",
]

Item = TypeVar("Item")
OnResult = Callable[[Any, Any], None]
OnError = Callable[[Any, str], None]

#: How local workers start: ``spawn`` on every platform. A spawned worker inherits nothing but the
#: environment variables and the import path (no threads, locks or state of this process), so runs
#: repeat the same in a worker as in this process, and the BLAS thread count set below reaches it.
START_METHOD = "spawn"
#: Thread-count variables of the BLAS / OpenMP libraries, read once when a process loads them.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
BACKENDS = ("local", "ray")


def check_backend(backend: str) -> None:
    """``--backend`` is one of :data:`BACKENDS`, or a ValueError naming it."""
    if backend not in BACKENDS:
        raise ValueError(f"--backend = {backend!r} is invalid: allowed 'local' or 'ray'")


#: Seconds :func:`run_ray` waits for the Ray cluster at an address to answer (``ray.init``).
RAY_CONNECT_TIMEOUT_S = 60.0
#: Seconds between a worker's checks that its parent is alive.
PARENT_POLL_S = 0.5
#: ``prctl`` option that sends a signal to a process when its parent dies (Linux).
PR_SET_PDEATHSIG = 1


class RunFailed(RuntimeError):
    """A run raised: its item and the traceback of the error (from the worker that ran it)."""


def raise_run_failed(item: Any, text: str) -> None:
    """An ``on_error`` that stops the batch with :class:`RunFailed` (the run's traceback kept)."""
    raise RunFailed(f"the run of {item!r} failed:\n{text}")


def worker_count(jobs: int | None, items: int) -> int:
    """Workers for ``items`` runs: ``jobs`` (None: every CPU), never more than the runs."""
    return max(1, min(jobs or os.cpu_count() or 1, items))


def run(
    fn: Callable[[Item], Any],
    items: Sequence[Item],
    on_result: OnResult,
    on_error: OnError | None = None,
    jobs: int | None = 1,
    backend: str = "local",
    address: str | None = None,
) -> None:
    """Run ``fn`` on every item with ``backend``: see the module docstring for the callbacks.

    Args:
        fn: the run; for worker processes a module-level function (or a ``functools.partial`` of
            one) whose arguments pickle.
        items: what to run it on.
        on_result: called in this process with ``(item, fn(item))`` as each run finishes.
        on_error: called with ``(item, traceback text)`` for a run that raised; None: the first
            failure stops the batch and its exception propagates.
        jobs: parallel runs; None: every CPU. ``local`` with one job (or one item) runs in this
            process.
        backend: ``local`` (this process or :func:`run_processes`) or ``ray`` (:func:`run_ray`).
        address: the Ray cluster's address (None: a local Ray instance of ``jobs`` CPUs).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend = {backend!r} is invalid: allowed 'local' or 'ray'")
    if not items:
        return
    from agents.base import IMPORTED

    if IMPORTED:  # the agents of `spep --import` modules, made by name in the workers
        fn = functools.partial(_importing, tuple(IMPORTED), fn)
    if backend == "ray":
        run_ray(
            fn, items, on_result, on_error, jobs=worker_count(jobs, len(items)), address=address
        )
    elif worker_count(jobs, len(items)) == 1:
        run_serial(fn, items, on_result, on_error)
    else:
        run_processes(fn, items, on_result, on_error, jobs=jobs)


def _importing(modules: tuple[str, ...], fn: Callable[[Item], Any], item: Item) -> Any:
    """``fn(item)`` after importing ``modules`` (:func:`agents.base.import_modules`)."""
    from agents.base import import_modules

    import_modules(modules)
    return fn(item)


def _deliver(
    item: Any, outcome: Callable[[], Any], on_result: OnResult, on_error: OnError | None
) -> None:
    """Hand a finished run's result to ``on_result``, or its exception to ``on_error``.

    Without ``on_error`` the exception propagates (and stops the batch).
    """
    try:
        result = outcome()
    except Exception:
        if on_error is None:
            raise
        on_error(item, traceback.format_exc())
        return
    on_result(item, result)


def run_serial(
    fn: Callable[[Item], Any],
    items: Sequence[Item],
    on_result: OnResult,
    on_error: OnError | None = None,
) -> None:
    """Run ``fn`` on the items one after the other in this process."""
    for item in items:
        _deliver(item, functools.partial(fn, item), on_result, on_error)


def run_processes(
    fn: Callable[[Item], Any],
    items: Sequence[Item],
    on_result: OnResult,
    on_error: OnError | None = None,
    jobs: int | None = None,
) -> None:
    """Run ``fn`` on the items in a pool of :func:`worker_count` local worker processes.

    The workers start by :data:`START_METHOD`, with one BLAS / OpenMP thread each (see
    :func:`single_threaded_workers`), and ignore SIGINT and SIGTERM: a Ctrl-C at the terminal (or a
    SIGTERM to the process group) reaches this process, which cancels the runs not started, kills
    the workers (their runs in flight are lost) and re-raises the interrupt. Results already handed
    to ``on_result`` are kept. The workers die with this process (see the module docstring).
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    context = multiprocessing.get_context(START_METHOD)
    workers = worker_count(jobs, len(items))
    with single_threaded_workers(), deferred_interrupts() as check:
        pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_worker_init, initargs=(os.getpid(),)
        )
        try:
            futures: dict[Future[Any], Any] = {pool.submit(fn, item): item for item in items}
            pending = set(futures)
            while pending:
                # an interrupt is raised here, between waits, never inside the pool's code
                check()
                finished, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                for future in finished:
                    _deliver(futures[future], future.result, on_result, on_error)
            pool.shutdown()
            check()
        except BaseException:
            _stop(pool)
            raise


def _stop(pool: Any) -> None:
    """Cancel the runs not started, kill the workers, wait for the pool's manager thread to end.

    The runs in flight are lost. The manager thread closes its wakeup pipe when it sees the workers
    gone, while the exit hook of ``concurrent.futures`` writes to the pipe without a lock (CPython
    gh-125451, fixed in 3.12.8 and 3.13.1): a thread still running at exit can end the interrupted
    command in ``OSError: [Errno 9] Bad file descriptor``. Joined here, it is gone before the
    interrupt propagates.
    """
    # concurrent.futures has no public way to stop running workers before Python 3.14
    # (terminate_workers); the pool's process table is a way that works on every version we support.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()  # SIGKILL: the workers ignore SIGTERM
    for process in processes:
        process.join(timeout=5)
    if manager is not None:
        manager.join(timeout=10)


def _worker_init(parent: int) -> None:
    """Worker initializer: leave Ctrl-C and SIGTERM to the parent; die with the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with_parent(parent)


def die_with_parent(parent: int) -> None:
    """End this process (SIGKILL, or ``os._exit``) as soon as process ``parent`` is gone.

    On Linux the kernel sends SIGKILL at the parent's death (``PR_SET_PDEATHSIG``); everywhere a
    daemon thread checks every :data:`PARENT_POLL_S` seconds that the parent is still this
    process's parent (an orphan is re-parented), which also covers a parent that died before the
    prctl took effect.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover  (no libc prctl: the thread remains)
            pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


@contextlib.contextmanager
def single_threaded_workers() -> Iterator[None]:
    """Start worker processes with one BLAS / OpenMP thread each (where the user set no count).

    The variables are set in this process's environment while the block runs (workers copy it when
    they start) and removed afterwards. The workers already use every core; a multithreaded BLAS
    in each of them only fights for the cores, and the small matrices of the ARIMA fits run about
    8x slower on two threads than on one.
    """
    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    for k, v in saved.items():
        if v is None:
            os.environ[k] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)


def run_ray(
    fn: Callable[[Item], Any],
    items: Sequence[Item],
    on_result: OnResult,
    on_error: OnError | None = None,
    jobs: int = 1,
    address: str | None = None,
) -> None:
    """Run ``fn`` on the items as Ray tasks of one CPU each (Ray started here unless running).

    An interrupt cancels the tasks not finished (``ray.cancel(force=True)``). A cluster at
    ``address`` that has not answered in :data:`RAY_CONNECT_TIMEOUT_S` seconds is a
    ``ValueError`` (``ray.init`` would wait for it for ever).
    """
    import ray

    started = not ray.is_initialized()
    if started and address:
        _connect_ray(ray, address)
    elif started:
        ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(fn)
    refs = {remote.remote(item): item for item in items}
    try:
        while refs:
            finished, _ = ray.wait(list(refs), num_returns=1)
            for ref in finished:
                _deliver(refs.pop(ref), functools.partial(ray.get, ref), on_result, on_error)
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


def _connect_ray(ray: Any, address: str) -> None:
    """``ray.init(address=...)``, given up after :data:`RAY_CONNECT_TIMEOUT_S` seconds.

    ``ray.init`` runs in a daemon thread, which is left waiting when it times out (it ends with
    this process).
    """
    failed: list[BaseException] = []

    def connect() -> None:
        try:
            ray.init(address=address, log_to_driver=False)
        except BaseException as err:  # handed to the caller's thread
            failed.append(err)

    thread = threading.Thread(target=connect, name="ray-init", daemon=True)
    thread.start()
    thread.join(RAY_CONNECT_TIMEOUT_S)
    if thread.is_alive():
        raise ValueError(
            f"--ray-address {address!r}: no Ray cluster answered within "
            f"{RAY_CONNECT_TIMEOUT_S:g} s (agents.study.backends.RAY_CONNECT_TIMEOUT_S)"
        )
    if failed:
        raise failed[0]
