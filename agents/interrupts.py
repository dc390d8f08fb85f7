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
from collections.abc import Iterator
from typing import Any

__all__ = ["Terminated", "interrupt_name", "interrupt_status", "sigterm_as_interrupt"]


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
