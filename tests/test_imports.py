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


def test_bare_imports_load_no_heavy_library() -> None:
    code = (
        "import sys, gymnasium as gym, spep_gym, agents\n"
        "env = gym.make('Spep-v0', episode_slots=50)\n"
        "obs, info = env.reset(seed=0)\n"
        "for _ in range(50): env.step(env.action_space.sample())\n"
        "agents.make('shortest'); agents.make('random')\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported: {out.stdout.strip()}"
