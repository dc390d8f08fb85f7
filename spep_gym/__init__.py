"""spep-gym: predictive entanglement pre-positioning in quantum networks, as a Gymnasium env.

``import spep_gym; gymnasium.make("Spep-v0")`` makes the paper preset (SPEC.md).
"""

from gymnasium.envs.registration import register, registry

from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv
from spep_gym.simulator import Simulator

__all__ = ["Simulator", "SpepConfig", "SpepEnv", "__version__"]
__version__ = "0.1.0"

# The vector entry point (the batched core, torch) is a string: it loads only when make_vec uses it.
VECTOR_ENTRY_POINT = "spep_gym.batched.vector_env:SpepVectorEnv"
if "Spep-v0" not in registry:
    register(
        id="Spep-v0",
        entry_point="spep_gym.env:SpepEnv",
        vector_entry_point=VECTOR_ENTRY_POINT,
        disable_env_checker=False,
    )
if "Spep-physical-v0" not in registry:
    register(
        id="Spep-physical-v0",
        entry_point="spep_gym.env:SpepEnv",
        vector_entry_point=VECTOR_ENTRY_POINT,
        disable_env_checker=False,
        kwargs={"preset": "physical"},
    )
