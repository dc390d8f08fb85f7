"""The bare environment stays light: heavy libraries load only when an agent or command needs them."""

import subprocess
import sys

HEAVY = (
    "torch",
    "statsmodels",
    "stable_baselines3",
    "sb3_contrib",
    "ray",
    "matplotlib",
    "pandas",
    "tqdm",
)


def _heavy_modules_after(code: str) -> str:
    """The heavy modules that ``code``, run in a fresh interpreter, leaves imported."""
    code += f"\nimport sys; print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_bare_imports_load_no_heavy_library() -> None:
    code = (
        "import gymnasium as gym, spep_gym, agents\n"
        "env = gym.make('Spep-v0', episode_slots=50)\n"
        "obs, info = env.reset(seed=0)\n"
        "for _ in range(50): env.step(env.action_space.sample())\n"
        "agents.make('shortest'); agents.make('random')\n"
        "agents.run_episode('spep-frequency', seed=0, config={'episode_slots': 20})\n"
    )
    heavy = _heavy_modules_after(code)
    assert heavy == "", f"heavy modules imported: {heavy}"


#: Every module of agents that must stay light (agents.rl.policies and the predictors' lstm and
#: arima modules import torch or statsmodels by design; they load only when used).
LIGHT_MODULES = (
    "agents.cli",
    "agents.learned",
    "agents.predictors",
    "agents.rl",
    "agents.rl.cli",
    "agents.study",
    "agents.study.backends",
    "agents.study.cli",
    "agents.study.figures",
    "agents.study.plan",
    "agents.study.quality",
    "agents.study.report",
    "agents.study.reproduce",
    "agents.study.stats",
    "agents.study.store",
)


def test_subpackages_and_the_spep_parser_load_no_heavy_library() -> None:
    code = f"import importlib\nfor m in {LIGHT_MODULES!r}: importlib.import_module(m)\n"
    code += "import agents.cli; agents.cli.build_parser()\n"
    heavy = _heavy_modules_after(code)
    assert heavy == "", f"importing {LIGHT_MODULES} and building the spep parser imported: {heavy}"
