"""The compiled CPU engine (numba): the slot loop of SPEC section 5 as functions over arrays.

Loaded only when asked for (``import spep_gym`` does not import numba); install it with the ``fast``
extra. ``NUMBA_DISABLE_JIT=1`` runs the same functions as plain Python.
"""

from spep_gym.compiled.engine import CompiledSimulator, check_supported

__all__ = ["CompiledSimulator", "check_supported"]
