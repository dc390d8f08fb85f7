"""Train MaskablePPO on ``Spep-v0`` and compare it with the baselines on the same seeds.

    python examples/train_ppo.py                      # ~6 min on a 2-core CPU, 20 evaluation runs
    python examples/train_ppo.py --small              # seconds: a smoke test (CI runs this)
    python examples/train_ppo.py --model runs/ppo     # evaluate a model trained before

Training uses 480-slot episodes on a new random graph each episode; evaluation runs full episodes
(2000 slots, seeds 0..runs-1) for the learned agent, ``noop``, ``random``, ``spep-frequency`` and
``spep-oracle``, and prints the success rate with 95 % intervals and paired Wilcoxon p-values.
"""

from __future__ import annotations

import argparse
import tempfile

import gymnasium as gym

import agents
import spep_gym  # noqa: F401  (registers Spep-v0)
from agents import rl


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny network and budget (seconds)")
    parser.add_argument("--timesteps", type=int, default=120_000)
    parser.add_argument("--runs", type=int, default=20, help="evaluation seeds")
    parser.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    parser.add_argument("--model", default=None, help="skip training: a `spep train` folder")
    args = parser.parse_args(argv)

    # The environment: the paper preset, with shorter episodes and a 2-entry action for training.
    train_config = dict(rl.TRAIN_DEFAULTS)
    eval_config: dict = {}
    timesteps, runs, hyper = args.timesteps, args.runs, {}
    if args.small:
        tiny = {"num_nodes": 6, "er_p": 0.5, "episode_slots": 100}
        train_config.update(tiny)
        eval_config = tiny
        timesteps, runs, hyper = 512, 3, {"n_steps": 64, "batch_size": 64, "n_epochs": 1}
    env = gym.make("Spep-v0", **train_config)
    print("observation keys:", list(env.observation_space.spaces), "action:", env.action_space)

    out = args.model or args.out or tempfile.mkdtemp(prefix="spep-ppo-")
    if args.model is None:
        meta = rl.train(
            "maskable_ppo", out, timesteps, config=train_config, seed=1000, hyperparameters=hyper
        )
        print(
            f"trained {meta['timesteps']} steps in {meta['wall_time_s']} s ({meta['steps_per_s']} steps/s)"
        )

    learned = agents.make("sb3", path=out, label="maskable_ppo")
    _, table = rl.compare(learned, runs=runs, config=eval_config)
    print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
