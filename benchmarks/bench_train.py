"""Training throughput: MaskablePPO (or PPO/DQN) steps per second on a device.

    python benchmarks/bench_train.py --device cpu
    python benchmarks/bench_train.py --device cuda --timesteps 40000 --n-envs 8

Trains for ``--timesteps`` environment steps on the training config (paper preset, 480-slot episodes,
``action_len=2``) into a temporary folder and prints the wall time and steps/s of the learning loop
(environment stepping, rollouts and gradient updates; model saving excluded).
"""

from __future__ import annotations

import argparse
import tempfile

from agents import rl


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=rl.ALGOS, default="maskable_ppo")
    parser.add_argument("--policy", choices=rl.POLICIES, default="pair")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--torch-threads", type=int, default=1, help="0: torch's default")
    args = parser.parse_args(argv)

    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    with tempfile.TemporaryDirectory() as out:
        meta = rl.train(
            args.algo,
            out,
            args.timesteps,
            n_envs=args.n_envs,
            device=args.device,
            policy=args.policy,
            checkpoint_freq=10**9,
        )
    print(
        f"{args.algo} ({args.policy} policy) on {meta['device']}: {meta['timesteps']} steps, "
        f"n_envs={args.n_envs}, torch threads={torch.get_num_threads()}: "
        f"{meta['wall_time_s']:.1f} s, {meta['steps_per_s']:.0f} steps/s"
    )


if __name__ == "__main__":
    main()
