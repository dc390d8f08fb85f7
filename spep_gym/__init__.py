"""spep-gym: predictive entanglement pre-positioning in quantum networks, as a Gymnasium env.

``import spep_gym; gymnasium.make("Spep-v0")`` makes the paper preset (SPEC.md).
"""

import contextlib
import importlib.util
from typing import Any

from gymnasium.envs.registration import register, registry

from spep_gym.config import SpepConfig
from spep_gym.env import SpepEnv
from spep_gym.simulator import Simulator

__all__ = ["Simulator", "SpepConfig", "SpepEnv", "__version__"]
__version__ = "0.1.0"


def make_vector_env(num_envs: int = 1, *, engine: str | None = None, **kwargs: Any) -> Any:
    """The vector entry point of ``Spep-v0``: the compiled CPU vector env or the torch core.

    ``engine="compiled"`` (:class:`spep_gym.compiled.vector_env.CompiledVectorEnv`, numba, the CPU)
    or ``"torch"`` (:class:`spep_gym.batched.vector_env.SpepVectorEnv`, the CPU or CUDA). None
    (default): the compiled one on the CPU when numba is importable and it covers the config,
    else the torch core (``device="cuda"``, ``torch_obs`` or counter-based ``draws`` ask for it).
    """
    if engine not in (None, "compiled", "torch"):
        raise ValueError(f"engine={engine!r} is invalid: allowed None, 'compiled' or 'torch'")
    cpu = str(kwargs.get("device", "cpu")) == "cpu" and not kwargs.get("torch_obs", False)
    on_cpu = {k: v for k, v in kwargs.items() if k not in ("device", "torch_obs")}
    scalar_draws = kwargs.get("draws", "scalar") == "scalar"
    if engine is None and cpu and scalar_draws and importlib.util.find_spec("numba") is not None:
        from spep_gym.compiled.vector_env import CompiledVectorEnv, NotCovered

        with contextlib.suppress(NotCovered):  # an option it does not cover: the torch core
            return CompiledVectorEnv(num_envs, **on_cpu)
    if engine == "compiled":
        if not cpu:
            raise ValueError(
                f"device={kwargs.get('device')!r}, torch_obs={kwargs.get('torch_obs')!r} are invalid "
                "for engine='compiled': allowed 'cpu' and False (engine='torch' takes the others)"
            )
        from spep_gym.compiled.vector_env import CompiledVectorEnv

        return CompiledVectorEnv(num_envs, **on_cpu)
    from spep_gym.batched.vector_env import SpepVectorEnv

    return SpepVectorEnv(num_envs, **kwargs)


# The vector entry point is a string: the engines load only when make_vec uses it.
VECTOR_ENTRY_POINT = "spep_gym:make_vector_env"
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
