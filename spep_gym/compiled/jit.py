"""The compile options of the engine's functions: ``inner`` for those only compiled code calls.

numba compiles a CPython wrapper (and a C one) for every function, so that Python can call it;
for a function that takes the state record the wrapper unboxes its ~70 arrays, and those wrappers
took about half of a cold compile (57 s of CPU without ``inner``, 30 s with it, measured under
load). A function decorated ``@inner`` cannot be called from Python once compiled; with
``NUMBA_DISABLE_JIT=1`` it is plain Python as any other.
"""

from __future__ import annotations

from numba import njit

#: ``@njit(cache=True)`` without the wrappers that let Python call the compiled function.
inner = njit(cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)  # type: ignore[call-overload]
