"""Reinforcement learning on ``Spep-v0`` with stable-baselines3: train, checkpoint, resume, compare.

``agents.rl.train(algo, out, timesteps)`` trains PPO, MaskablePPO or DQN (``spep train``);
``agents.make("sb3", path=out)`` (:class:`agents.learned.SB3Agent`) acts with the result, and
``agents.rl.compare`` scores it against other agents on the same seeds. Modules:

- :mod:`agents.rl.config`: the algorithms, their SB3 classes, default hyperparameters and config;
- :mod:`agents.rl.envs`: the training environments (the wrappers are in :mod:`spep_gym.wrappers`);
- :mod:`agents.rl.batched_vec`: the batched core as an SB3 ``VecEnv`` (``--engine batched``; imports
  torch and stable-baselines3);
- :mod:`agents.rl.torchrl_ppo`: the batched core as a TorchRL env and TorchRL's PPO on one device
  (``--engine torchrl``; imports torch, TorchRL and stable-baselines3);
- :mod:`agents.rl.policies`: the pair-equivariant policy networks (imports torch);
- :mod:`agents.rl.training`: the training loop; :mod:`agents.rl.checkpoints`: checkpoints, resume
  and observation statistics; :mod:`agents.rl.curves`: training curves;
- :mod:`agents.rl.comparison`: a learned agent against others; :mod:`agents.rl.cli`: ``spep train``.

Importing this package loads neither torch nor stable-baselines3; they load when training starts.
"""

from agents.rl.checkpoints import latest_checkpoint, load_obs_stats, normalize_obs, save_obs_stats
from agents.rl.comparison import compare
from agents.rl.config import ALGOS, ENGINES, HYPERPARAMETERS, POLICIES, TRAIN_DEFAULTS
from agents.rl.curves import plot_training_curve
from agents.rl.envs import make_env, make_vec
from agents.rl.training import train

__all__ = [
    "ALGOS",
    "ENGINES",
    "HYPERPARAMETERS",
    "POLICIES",
    "TRAIN_DEFAULTS",
    "compare",
    "latest_checkpoint",
    "load_obs_stats",
    "make_env",
    "make_vec",
    "normalize_obs",
    "plot_training_curve",
    "save_obs_stats",
    "train",
]
