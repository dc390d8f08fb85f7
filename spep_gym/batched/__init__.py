"""The batched core: many networks of one config stepped at once with torch (CPU or CUDA).

Importing this package imports torch; ``import spep_gym`` never does. See docs/batched.md.
"""

try:
    import torch  # noqa: F401
except ImportError as err:  # the bare install has no torch
    raise ImportError(
        "spep_gym.batched (the vector entry point of Spep-v0) needs torch: pip install "
        "'spep-gym[batched]', or use gym.make_vec(..., vectorization_mode='sync')"
    ) from err

from spep_gym.batched.simulator import BatchedSimulator, BatchEvents

__all__ = ["BatchEvents", "BatchedSimulator"]
