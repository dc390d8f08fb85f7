"""Training throughput: ``spep train`` on the scalar engine against the batched engines, in one run.

    python benchmarks/bench_train.py                       # MaskablePPO: scalar 4 envs, batched 64, 256
    python benchmarks/bench_train.py --runs scalar:4,batched:256,torchrl:256  # and TorchRL's loop
    python benchmarks/bench_train.py --runs scalar:4,batched:1024 --timesteps 32768
    python benchmarks/bench_train.py --hyper n_epochs=1           # every run with one PPO epoch
    python benchmarks/bench_train.py --algo dqn --policy mlp --device cuda

Each run is :func:`agents.rl.train` (the code of ``spep train``) for ``--timesteps`` environment
steps on the training config (paper preset, Erdős–Rényi, 480-slot episodes, ``action_len=2``) into
a temporary folder, with the engine's default hyperparameters: the same policy network, and PPO's
rollout ``n_steps x n_envs`` = 1024 steps on both engines (the batched engine scales ``n_steps``),
so every run makes the same gradient updates per environment step. Printed per run: env-steps/s by
the process's CPU time (wall time beside; the machine is shared) and the ratio to the first run,
then where the CPU time went, per 1,000 env-steps: collecting rollouts (of which stepping the
environments through VecMonitor and VecNormalize, the action masks, and the rest: the policy's
forward passes, the rollout buffer, callbacks), the gradient updates (``train``) and the rest of
``learn`` (the first reset, logging). For ``torchrl`` runs, collecting is everything of TorchRL's
loop but the update (the reward scaling and GAE included), and "env" the env's steps with their
masks.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from agents import rl


@contextlib.contextmanager
def timed(owner: Any, name: str, into: dict[str, float], key: str) -> Iterator[None]:
    """Add the CPU time of every call of ``owner.name`` to ``into[key]`` while inside."""
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            into[key] += time.process_time() - start

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


def run(
    algo: str,
    policy: str,
    engine: str,
    n_envs: int,
    timesteps: int,
    device: str,
    hyper: dict[str, Any],
) -> dict[str, Any]:
    """Train once; the CPU seconds of learn, collection, env steps, masks and updates."""
    import sb3_contrib.ppo_mask.ppo_mask as ppo_mask
    from stable_baselines3.common.vec_env import VecNormalize

    from agents.rl.config import algorithm_class

    cls = algorithm_class(algo)
    seconds = dict.fromkeys(("learn", "collect", "env", "masks", "update"), 0.0)
    with contextlib.ExitStack() as stack:
        if engine == "torchrl":
            from agents.rl import torchrl_ppo

            # collect: everything of learn but the update (the env's steps and masks in "env")
            stack.enter_context(timed(torchrl_ppo, "learn", seconds, "learn"))
            stack.enter_context(timed(torchrl_ppo, "update", seconds, "update"))
            stack.enter_context(timed(torchrl_ppo.SpepTorchEnv, "_step", seconds, "env"))
        else:
            stack.enter_context(timed(cls, "learn", seconds, "learn"))
            stack.enter_context(timed(cls, "collect_rollouts", seconds, "collect"))
            stack.enter_context(timed(cls, "train", seconds, "update"))
            stack.enter_context(timed(VecNormalize, "step_wait", seconds, "env"))
            stack.enter_context(timed(ppo_mask, "get_action_masks", seconds, "masks"))
        with tempfile.TemporaryDirectory() as out:
            meta = rl.train(
                algo,
                out,
                timesteps,
                n_envs=n_envs,
                device=device,
                policy=policy,
                engine=engine,
                hyperparameters=hyper,
                checkpoint_freq=10**9,
            )
    if engine == "torchrl":
        seconds["collect"] = seconds["learn"] - seconds["update"]
    return {**seconds, "meta": meta}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=rl.ALGOS, default="maskable_ppo")
    parser.add_argument("--policy", choices=rl.POLICIES, default="pair")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    parser.add_argument(
        "--runs",
        default="scalar:4,batched:64,batched:256",
        help="ENGINE:N_ENVS,... (the first is the reference of the ratio)",
    )
    parser.add_argument("--timesteps", type=int, default=16_384, help="env-steps per run")
    parser.add_argument("--torch-threads", type=int, default=1, help="0: torch's default")
    parser.add_argument(
        "--hyper", action="append", default=[], metavar="NAME=VALUE", help="for every run"
    )
    args = parser.parse_args(argv)
    from agents.cli import parse_literals

    hyper = parse_literals(args.hyper, "--hyper")
    runs = []
    for item in args.runs.split(","):
        engine, _, n = item.partition(":")
        if engine not in rl.ENGINES or not n.isdigit() or int(n) < 1:
            parser.error(f"--runs {item!r} is invalid: allowed ENGINE:N_ENVS, e.g. batched:256")
        runs.append((engine, int(n)))

    import numpy
    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, numpy "
        f"{numpy.__version__}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"device {args.device}"
    )
    print(
        f"{args.algo} ({args.policy} policy), training config {rl.TRAIN_DEFAULTS} over the paper "
        f"preset (erdos_renyi), {args.timesteps} env-steps per run, --hyper {hyper or 'none'}; "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    start = time.perf_counter()
    head = f"{'engine':>8} {'n_envs':>6} {'n_steps':>7} {'steps/s cpu':>12} {'(wall)':>9}"
    print(
        f"\n{head} {'x first':>8}   CPU ms per 1k steps: total = collect (env masks rest)"
        " + update + other",
        flush=True,
    )
    base = None
    for (
        engine,
        n,
    ) in runs:  # each line as its run ends: a run cut off by a timeout loses only itself
        res = run(args.algo, args.policy, engine, n, args.timesteps, args.device, hyper)
        meta = res["meta"]
        steps = meta["timesteps"]
        rate = steps / res["learn"]
        base = base or rate
        n_steps = meta["hyperparameters"].get("n_steps", "-")
        per = {k: 1e6 * v / steps for k, v in res.items() if k != "meta"}
        rest = per["collect"] - per["env"] - per["masks"]
        other = per["learn"] - per["collect"] - per["update"]
        wall = f"({steps / meta['wall_time_s']:,.0f})"
        print(
            f"{engine:>8} {n:>6} {n_steps!s:>7} {rate:>12,.0f} {wall:>9} {rate / base:>8.1f}   "
            f"{per['learn']:>29.0f} = {per['collect']:>7.0f} ({per['env']:>3.0f} {per['masks']:>5.0f}"
            f" {rest:>4.0f}) + {per['update']:>6.0f} + {other:>5.0f}",
            flush=True,
        )
    total = time.perf_counter() - start
    print(f"\nratio: env-steps/s by CPU time over the first run's; total {total:.0f} s")


if __name__ == "__main__":
    main()
