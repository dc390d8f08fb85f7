"""Interrupts: SIGTERM raised like Ctrl-C, so that every command stops the same way on either.

``spep`` runs its commands under :func:`sigterm_as_interrupt`: a SIGTERM (``kill PID``, a job
scheduler's stop) raises :class:`Terminated`, a ``KeyboardInterrupt``, in the main thread. Code
that keeps what it finished on Ctrl-C (``spep reproduce``, ``spep evaluate``) therefore does the
same on SIGTERM, and exits with :func:`interrupt_status`: 130 after SIGINT, 143 after SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "Terminated",
    "deferred_interrupts",
    "interrupt_name",
    "interrupt_status",
    "sigterm_as_interrupt",
]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's ``KeyboardInterrupt`` (which it is).

    Code that stops cleanly on Ctrl-C (keeps finished runs, writes what is done) therefore does the
    same on SIGTERM; :func:`interrupt_status` gives the exit status of either.
    """


def interrupt_status(err: BaseException) -> int:
    """The exit status of an interrupt: 143 (128 + SIGTERM) or 130 (128 + SIGINT)."""
    return 128 + (signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT)


def interrupt_name(err: BaseException) -> str:
    """``"SIGTERM"`` or ``"SIGINT"``."""
    return "SIGTERM" if isinstance(err, Terminated) else "SIGINT"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` in the main thread.

    Outside the main thread (where Python cannot set handlers) nothing changes. The previous
    handler is restored afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[Callable[[], None]]:
    """While the block runs, SIGINT and SIGTERM are recorded, and raised only where it asks.

    The block gets a ``check()`` to call at points where an exception is safe: it runs the handler
    that was in place for the first signal recorded (so ``KeyboardInterrupt`` or
    :class:`Terminated` is raised there, as it would have been). A handler raising anywhere else
    can leave a library's locks held: ``concurrent.futures.wait`` interrupted while it takes each
    future's lock left the pool's manager thread blocked on one, and the interrupted command hung
    at exit. A signal that is ignored or left to the system's default is not touched; outside the
    main thread nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    received: list[int] = []

    def record(signum: int, frame: Any) -> None:
        received.append(signum)

    previous: dict[int, Callable[[int, Any], Any]] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if callable(handler):
            previous[signum] = handler
            signal.signal(signum, record)

    def check() -> None:
        if received:
            first = received[0]
            received.clear()
            previous[first](first, None)

    try:
        yield check
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
