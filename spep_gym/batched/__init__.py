"""The batched core: many networks of one config stepped at once with torch (CPU or CUDA).

Importing this package imports torch; ``import spep_gym`` never does. See docs/batched.md.
"""

from spep_gym.batched.simulator import BatchedSimulator, BatchEvents

__all__ = ["BatchEvents", "BatchedSimulator"]
