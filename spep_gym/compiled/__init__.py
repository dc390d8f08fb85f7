"""The compiled CPU engine (numba): the slot loop of SPEC section 5 as functions over arrays.

Loaded only when asked for (``import spep_gym`` does not import numba); install it with the ``fast``
extra. ``NUMBA_DISABLE_JIT=1`` runs the same functions as plain Python.

The compiled code is cached on disk in ``$NUMBA_CACHE_DIR`` when that is set, else in
``~/.cache/spep-gym/numba/<hash>`` (``$XDG_CACHE_HOME`` for ``~/.cache``), ``<hash>`` naming the
sources of this package: numba checks only the file of each cached function, not the functions it
calls, so an edit anywhere here starts a new directory instead of loading stale code.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir(sources: Path = Path(__file__).parent) -> str:
    """The directory of the compiled cache of the modules in ``sources`` (see the docstring)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    digest = hashlib.sha256()
    for path in sorted(sources.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return str(base / "spep-gym" / "numba" / digest.hexdigest()[:16])


def _use_cache_dir() -> None:
    import numba

    # read by numba when a function is decorated: before the modules below are imported
    numba.config.CACHE_DIR = cache_dir()  # type: ignore[attr-defined]


_use_cache_dir()

from spep_gym.compiled.engine import CompiledSimulator, check_supported  # noqa: E402

__all__ = ["CompiledSimulator", "cache_dir", "check_supported"]
