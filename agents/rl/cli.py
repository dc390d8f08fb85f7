"""The thin parser of ``spep train``: its options to a call of :func:`agents.rl.training.train`.

torch and stable-baselines3 load when the command runs, not when ``spep --help`` builds the parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agents.cli import add_common, parse_literals, parse_names, parse_overrides
from agents.rl.config import (
    ALGOS,
    DEFAULT_N_ENVS,
    DEMAND_INPUTS,
    ENGINES,
    EXTRA_FEATURES,
    POLICIES,
    PREPOSITION_BONUS,
    TRAIN_DEFAULTS,
)
from agents.rl.evaluation import EVAL_SEEDS


def add_cli(subparsers: Any) -> None:
    """Add ``spep train`` to the ``spep`` command."""
    p = subparsers.add_parser(
        "train",
        help="train a stable-baselines3 agent on Spep-v0",
        description="Train PPO, MaskablePPO (with the env's action masks) or DQN on Spep-v0. "
        f"Config defaults for training: {TRAIN_DEFAULTS} over the paper preset.",
    )
    p.add_argument("--algo", choices=ALGOS, default="maskable_ppo", help="default: %(default)s")
    p.add_argument("--topology", default="erdos_renyi")
    p.add_argument("--timesteps", type=int, default=100_000, help="total environment steps")
    p.add_argument("--seed", type=int, default=0, help="environment i starts from seed + i")
    p.add_argument("--out", required=True, help="run folder (model, checkpoints, logs)")
    p.add_argument(
        "--n-envs",
        type=int,
        default=None,
        help="environments stepped together (default: "
        + ", ".join(f"{n} with --engine {e}" for e, n in DEFAULT_N_ENVS.items())
        + "; the batched engine takes hundreds)",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="scalar",
        help="scalar: a DummyVecEnv of SpepEnv (default); batched: the batched core, one process "
        "stepping every network; torchrl: the batched core and the policy on --device, trained "
        "by TorchRL (maskable_ppo, pair policy). Every engine's model evaluates on SpepEnv",
    )
    p.add_argument(
        "--policy",
        choices=POLICIES,
        default="pair",
        help="pair: one small network scores every node pair (default); mlp: SB3's MultiInputPolicy",
    )
    p.add_argument("--subproc", action="store_true", help="SubprocVecEnv instead of DummyVecEnv")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.add_argument(
        "--device",
        choices=("cpu", "cuda", "auto"),
        default="cpu",
        help="where the policy trains (and, with --engine batched or torchrl, the batched core runs)",
    )
    p.add_argument("--checkpoint-freq", type=int, default=10_000, help="timesteps between saves")
    p.add_argument(
        "--keep-checkpoints",
        type=int,
        default=3,
        metavar="N",
        help="keep the N newest checkpoints, delete older ones (default: %(default)s; 0: keep all)",
    )
    p.add_argument(
        "--eval-freq",
        type=int,
        default=0,
        metavar="N",
        help="evaluate the policy every N timesteps and at the end on --eval-seeds, into "
        "DIR/evaluations.csv and DIR/evaluation_curve.png, with the controls (random, the best "
        "baseline, managed) on the same seeds once (default: 0, none)",
    )
    p.add_argument(
        "--eval-seeds",
        default=EVAL_SEEDS,
        metavar="A-B",
        help="evaluation seeds A to B, disjoint from the training seeds (default: %(default)s)",
    )
    p.add_argument(
        "--hyper",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override an algorithm hyperparameter (repeatable), e.g. --hyper n_steps=128",
    )
    p.add_argument(
        "--preposition-bonus",
        type=float,
        default=PREPOSITION_BONUS,
        help="training reward shaping: bonus per pre-positioned pair used (default: %(default)s: "
        "training is shaped; 0: the env's own reward)",
    )
    p.add_argument(
        "--predictive-hit-reward",
        type=float,
        default=None,
        metavar="X",
        help="reward X per predictive hit: a pre-positioned pair used by a request that arrived "
        "after it was placed (the config field reward_predictive_hit; default: the config's, 0)",
    )
    p.add_argument(
        "--pair-features",
        default="",
        metavar="A,B",
        help="extra per-pair inputs of the pair policy, comma-separated, of: "
        + ", ".join(EXTRA_FEATURES)
        + " (demand_ema and demand_by_hour need --set demand_ema_half_lives=[...] and "
        "--set demand_hour_obs=True; default: none)",
    )
    p.add_argument(
        "--blank",
        default="",
        metavar="A,B",
        help="observation keys the pair policy zeroes before reading them, in training and "
        "whenever the model acts (a twin that differs only in what it sees); default: none",
    )
    p.add_argument(
        "--demand-blind",
        action="store_true",
        help="blank every demand input the observation has, of: "
        + ", ".join(DEMAND_INPUTS)
        + " (the policy still sees the queue and the links)",
    )
    p.add_argument(
        "--torch-threads", type=int, default=1, help="torch CPU threads (0: torch's default)"
    )
    p.add_argument("--plot", action="store_true", help="write DIR/training_curve.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--verbose", type=int, default=0)
    add_common(p)
    p.set_defaults(func=cmd_train)


def _blank(args: argparse.Namespace, fields: dict[str, Any]) -> list[str]:
    """``--blank``'s keys, and with ``--demand-blind`` the demand inputs of the run's observation."""
    blank = list(parse_names(args.blank))
    if args.demand_blind:
        from spep_gym.config import SpepConfig
        from spep_gym.env import SpepEnv

        keys = SpepEnv(SpepConfig.from_dict({**TRAIN_DEFAULTS, **fields})).observation_space
        blank += [k for k in DEMAND_INPUTS if k in keys.spaces and k not in blank]
    return blank


def cmd_train(args: argparse.Namespace) -> int:
    """Run ``spep train`` with the options of ``args``; print what was trained."""
    if args.torch_threads < 0:
        raise ValueError(
            f"--torch-threads {args.torch_threads} is invalid: allowed an integer >= 0 "
            "(0: torch's default)"
        )
    import torch

    from agents.rl.curves import plot_training_curve
    from agents.rl.training import train

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)  # small networks: more threads only contend

    fields = {"topology": args.topology, **parse_overrides(args.overrides)}
    if args.predictive_hit_reward is not None:
        fields["reward_predictive_hit"] = args.predictive_hit_reward
    meta = train(
        args.algo,
        args.out,
        args.timesteps,
        config=fields,
        seed=args.seed,
        n_envs=args.n_envs,
        resume=args.resume,
        device=args.device,
        hyperparameters=parse_literals(args.hyper, "--hyper"),
        checkpoint_freq=args.checkpoint_freq,
        subproc=args.subproc,
        verbose=args.verbose,
        policy=args.policy,
        preposition_bonus=args.preposition_bonus,
        engine=args.engine,
        progress=not args.no_progress,
        keep_checkpoints=args.keep_checkpoints,
        eval_freq=args.eval_freq,
        eval_seeds=args.eval_seeds,
        pair_features=list(parse_names(args.pair_features)),
        blank=_blank(args, fields),
    )
    print(
        f"trained {meta['algo']} to {meta['timesteps']} timesteps in {meta['wall_time_s']} s "
        f"({meta['steps_per_s']} steps/s on {meta['device']}); model: {Path(args.out, 'model.zip')}"
    )
    if args.plot:
        plot_training_curve(args.out, Path(args.out, "training_curve.png"))
    return 0
