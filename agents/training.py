"""``spep train``: train a stable-baselines3 agent on ``Spep-v0``, with checkpoints and resume.

A run writes into its folder ``DIR``::

    DIR/train.json            algorithm, config fields, seed, hyperparameters (written at the start)
    DIR/model.zip             the final model (stable-baselines3's zip)
    DIR/model.json            train.json plus the timesteps done, wall time and steps/s
    DIR/obs_stats.npz         VecNormalize observation statistics (plain arrays, no pickle)
    DIR/checkpoints/          rl_model_<N>_steps.zip and rl_model_obs_stats_<N>_steps.npz
    DIR/monitor/              Monitor CSVs (return, length, success rate of every training episode)
    DIR/tb/                   TensorBoard logs

Nothing here unpickles a file: models are restored into a freshly built algorithm from their torch
state dicts (``torch.load(weights_only=True)``, through stable-baselines3's ``set_parameters``) and the
normalisation statistics from ``.npz`` files read with ``allow_pickle=False``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spep_gym.config import SpepConfig

ALGOS = ("ppo", "maskable_ppo", "dqn")
# "pair": the pair-equivariant network of agents.sb3_policies; "mlp": SB3's MultiInputPolicy.
POLICIES = ("pair", "mlp")
# Training config over the paper preset: shorter episodes (more of them per minute), and as many
# preference-list entries as pairs can be placed per slot (max_new_prepositions), which halves nothing
# the simulator uses but shrinks the action the policy must learn.
TRAIN_DEFAULTS: dict[str, Any] = {"episode_slots": 480, "action_len": 2}
POLICY_KWARGS: dict[str, dict[str, Any]] = {
    "pair": {"features_extractor_kwargs": {"hidden": 16}},
    "mlp": {"net_arch": [64, 64]},
}
HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    # gamma 0.95: a request's deadline is at most 12 slots and a pre-position lasts 15. A larger
    # learning rate and more epochs than SB3's defaults: with 3e-4 and 4 epochs the policy barely
    # moved in 150k steps (approx_kl ~ 0), the reward signal of one choice being weak.
    "ppo": {
        "n_steps": 256,
        "batch_size": 256,
        "n_epochs": 10,
        "learning_rate": 1e-3,
        "gamma": 0.95,
        "gae_lambda": 0.9,
        "ent_coef": 0.0,
    },
    "dqn": {
        "learning_rate": 1e-4,
        "buffer_size": 50_000,
        "learning_starts": 1_000,
        "batch_size": 64,
        "gamma": 0.95,
        "train_freq": 4,
        "target_update_interval": 1_000,
        "exploration_fraction": 0.3,
        "exploration_final_eps": 0.05,
    },
}
HYPERPARAMETERS["maskable_ppo"] = HYPERPARAMETERS["ppo"]
# Training reward shaping (spep_gym.wrappers.PrepositionBonus): reward per pre-positioned pair used.
PREPOSITION_BONUS = 1.0
CHECKPOINT_RE = re.compile(r"rl_model_(\d+)_steps\.zip$")


def algorithm_class(algo: str) -> Any:
    """The stable-baselines3 (or sb3-contrib) class of ``algo``."""
    if algo == "ppo":
        from stable_baselines3 import PPO

        return PPO
    if algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    if algo == "dqn":
        from stable_baselines3 import DQN

        return DQN
    raise ValueError(f"algo={algo!r} is invalid: allowed one of {ALGOS}")


def policy_class(algo: str, policy: str) -> Any:
    """The SB3 policy of ``algo`` for ``policy`` ("pair" or "mlp")."""
    if policy == "pair":
        from agents.sb3_policies import POLICIES as PAIR

        return PAIR[algo]
    if policy != "mlp":
        raise ValueError(f"policy={policy!r} is invalid: allowed one of {POLICIES}")
    if algo == "maskable_ppo":
        from sb3_contrib.common.maskable.policies import MaskableMultiInputActorCriticPolicy

        return MaskableMultiInputActorCriticPolicy
    if algo == "ppo":
        from stable_baselines3.common.policies import MultiInputActorCriticPolicy

        return MultiInputActorCriticPolicy
    from stable_baselines3.dqn.policies import MultiInputPolicy

    return MultiInputPolicy


def config_to_json(cfg: SpepConfig) -> dict[str, Any]:
    """The config's fields as JSON values (a named topology only: a graph object has no JSON form)."""
    if not isinstance(cfg.topology, str):
        raise ValueError("topology: training takes a topology name, not a networkx graph")
    out = {name: getattr(cfg, name) for name in SpepConfig.field_names()}
    return json.loads(json.dumps(out))


def config_from_json(values: Mapping[str, Any]) -> SpepConfig:
    return SpepConfig.from_dict(dict(values))


def make_env(cfg: SpepConfig, algo: str, preposition_bonus: float = 0.0) -> Any:
    """One training environment: ``SpepEnv`` (+ reward shaping, + ``SinglePairAction`` for DQN)."""
    from spep_gym.env import SpepEnv
    from spep_gym.wrappers import EpisodeMetricsInfo, PrepositionBonus, SinglePairAction

    env: Any = EpisodeMetricsInfo(SpepEnv(cfg))
    if preposition_bonus:
        env = PrepositionBonus(env, preposition_bonus)
    return SinglePairAction(env) if algo == "dqn" else env


def make_vec(
    cfg: SpepConfig,
    algo: str,
    n_envs: int,
    seed: int,
    monitor_dir: str | None = None,
    subproc: bool = False,
    norm_obs: bool = True,
    preposition_bonus: float = 0.0,
) -> Any:
    """``n_envs`` monitored environments (env i seeded ``seed + i``), rewards (and observations)
    normalised by VecNormalize."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    vec = make_vec_env(
        lambda: make_env(cfg, algo, preposition_bonus),
        n_envs=n_envs,
        seed=seed,
        monitor_dir=monitor_dir,
        monitor_kwargs={"info_keywords": ("success_rate",)},
        vec_env_cls=SubprocVecEnv if subproc else DummyVecEnv,
    )
    return VecNormalize(vec, norm_obs=norm_obs, norm_reward=True, gamma=_gamma(algo))


def _gamma(algo: str) -> float:
    return float(HYPERPARAMETERS[algo]["gamma"])


# ---------------------------------------------------------------------- normalisation statistics
def save_obs_stats(vec_normalize: Any, path: str | Path) -> None:
    """VecNormalize's observation (and return) statistics as plain arrays in an ``.npz``."""
    arrays: dict[str, Any] = {
        "clip_obs": np.float64(vec_normalize.clip_obs),
        "epsilon": np.float64(vec_normalize.epsilon),
        "ret_mean": np.asarray(vec_normalize.ret_rms.mean),
        "ret_var": np.asarray(vec_normalize.ret_rms.var),
        "ret_count": np.float64(vec_normalize.ret_rms.count),
    }
    for key, rms in vec_normalize.obs_rms.items() if vec_normalize.norm_obs else ():
        arrays[f"mean/{key}"] = rms.mean
        arrays[f"var/{key}"] = rms.var
        arrays[f"count/{key}"] = np.float64(rms.count)
    np.savez(path, **arrays)  # type: ignore[arg-type]


def load_obs_stats(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def restore_obs_stats(vec_normalize: Any, stats: Mapping[str, np.ndarray]) -> None:
    """Put statistics from :func:`save_obs_stats` back into a VecNormalize (for ``--resume``)."""
    for key, rms in vec_normalize.obs_rms.items() if vec_normalize.norm_obs else ():
        rms.mean = stats[f"mean/{key}"].copy()
        rms.var = stats[f"var/{key}"].copy()
        rms.count = float(stats[f"count/{key}"])
    vec_normalize.ret_rms.mean = stats["ret_mean"].copy()
    vec_normalize.ret_rms.var = stats["ret_var"].copy()
    vec_normalize.ret_rms.count = float(stats["ret_count"])


def normalize_obs(
    observation: Mapping[str, np.ndarray], stats: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """VecNormalize's ``normalize_obs`` from saved statistics (same formula, float32).

    Statistics without observation means (a ``pair`` policy, which scales its inputs itself) leave
    the observation as it is.
    """
    if not any(k.startswith("mean/") for k in stats):
        return {k: np.asarray(v, dtype=np.float32) for k, v in observation.items()}
    eps, clip = float(stats["epsilon"]), float(stats["clip_obs"])
    return {
        k: np.clip(
            (np.asarray(v) - stats[f"mean/{k}"]) / np.sqrt(stats[f"var/{k}"] + eps), -clip, clip
        ).astype(np.float32)
        for k, v in observation.items()
    }


# ---------------------------------------------------------------------- checkpoints
def latest_checkpoint(out: Path) -> tuple[Path, int] | None:
    """The checkpoint zip with the most timesteps in ``out/checkpoints`` (and its timesteps)."""
    found = [
        (int(m.group(1)), p)
        for p in (out / "checkpoints").glob("rl_model_*_steps.zip")
        if (m := CHECKPOINT_RE.search(p.name))
    ]
    if not found:
        return None
    steps, path = max(found)
    return path, steps


def saved_num_timesteps(zip_path: str | Path) -> int:
    """``num_timesteps`` from a stable-baselines3 zip, read as JSON (no unpickling)."""
    with zipfile.ZipFile(zip_path) as archive:
        data = json.loads(archive.read("data").decode())
    return int(data["num_timesteps"])


def _checkpoint_callback(save_freq: int, out: Path) -> Any:
    from stable_baselines3.common.callbacks import CheckpointCallback

    class Checkpoint(CheckpointCallback):
        """SB3's checkpoints plus the observation statistics as ``.npz`` (instead of a pickle)."""

        def _on_step(self) -> bool:
            if self.n_calls % self.save_freq == 0:
                vec = self.model.get_vec_normalize_env()
                if vec is not None:
                    save_obs_stats(vec, self._checkpoint_path("obs_stats_", extension="npz"))
            return super()._on_step()

    return Checkpoint(save_freq=save_freq, save_path=str(out / "checkpoints"))


def _success_callback() -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class SuccessRate(BaseCallback):
        """Logs each finished episode's success rate to TensorBoard (``rollout/success_rate``)."""

        def _on_step(self) -> bool:
            rates = [i["success_rate"] for i in self.locals.get("infos", ()) if "success_rate" in i]
            for rate in rates:
                self.logger.record_mean("rollout/success_rate", rate)
            return True

    return SuccessRate()


# ---------------------------------------------------------------------- training
def train(
    algo: str,
    out: str | Path,
    timesteps: int,
    config: SpepConfig | Mapping[str, Any] | None = None,
    seed: int = 0,
    n_envs: int = 4,
    resume: bool = False,
    device: str = "cpu",
    hyperparameters: Mapping[str, Any] | None = None,
    checkpoint_freq: int = 10_000,
    subproc: bool = False,
    verbose: int = 0,
    policy: str = "pair",
    preposition_bonus: float = PREPOSITION_BONUS,
) -> dict[str, Any]:
    """Train ``algo`` until ``timesteps`` environment steps in total; return the run's metadata.

    ``config`` is the environment (fields over :data:`TRAIN_DEFAULTS` and the paper preset). With
    ``resume``, training continues from the latest checkpoint in ``out`` (its timesteps counter
    included) with the settings of ``out/train.json``.
    """
    cls = algorithm_class(algo)
    for name, value, low in (("timesteps", timesteps, 1), ("n_envs", n_envs, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}={value!r} is invalid: allowed an integer >= {low}")
    if policy not in POLICIES:
        raise ValueError(f"policy={policy!r} is invalid: allowed one of {POLICIES}")
    if device not in ("cpu", "cuda", "auto"):
        raise ValueError(f"device={device!r} is invalid: allowed cpu, cuda or auto")
    out = Path(out)
    start_ckpt = latest_checkpoint(out) if resume else None
    if resume:
        if start_ckpt is None or not (out / "train.json").is_file():
            raise ValueError(f"--resume: no checkpoint in {out / 'checkpoints'} to resume from")
        meta = json.loads((out / "train.json").read_text())
        if meta["algo"] != algo:
            raise ValueError(f"algo={algo!r} differs from the run in {out}: {meta['algo']!r}")
        cfg = config_from_json(meta["config"])
        seed, n_envs = meta["seed"], meta["n_envs"]
        hp = meta["hyperparameters"]
    else:
        if isinstance(config, SpepConfig):
            cfg = config
        else:
            cfg = SpepConfig.from_dict({**TRAIN_DEFAULTS, **dict(config or {})})
        hp = {**HYPERPARAMETERS[algo], **dict(hyperparameters or {})}
        meta = {
            "algo": algo,
            "config": config_to_json(cfg),
            "seed": seed,
            "n_envs": n_envs,
            "hyperparameters": hp,
            "policy": policy,
            "preposition_bonus": preposition_bonus,
            "policy_kwargs": POLICY_KWARGS[policy],
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / "train.json").write_text(json.dumps(meta, indent=2))

    # a resumed run writes its own Monitor files (make_vec_env would overwrite the first ones)
    monitor = out / "monitor" / (f"resumed_{start_ckpt[1]}" if start_ckpt else "")
    # a resumed run starts its environments from new seeds rather than replaying the first episodes
    env_seed = seed + (start_ckpt[1] if start_ckpt else 0)
    vec = make_vec(
        cfg,
        algo,
        n_envs,
        env_seed,
        str(monitor),
        subproc,
        norm_obs=meta["policy"] == "mlp",
        preposition_bonus=meta.get("preposition_bonus", 0.0),
    )
    model = cls(
        policy_class(algo, meta["policy"]),
        vec,
        seed=seed,
        device=device,
        tensorboard_log=str(out / "tb"),
        policy_kwargs=dict(meta["policy_kwargs"]),
        verbose=verbose,
        **hp,
    )
    done = 0
    if start_ckpt is not None:
        path, _ = start_ckpt
        model.set_parameters(str(path), device=device)  # torch.load(weights_only=True) inside
        done = model.num_timesteps = saved_num_timesteps(path)
        stats = path.with_name(path.name.replace("rl_model_", "rl_model_obs_stats_"))
        restore_obs_stats(vec, load_obs_stats(stats.with_suffix(".npz")))
    from stable_baselines3.common.callbacks import CallbackList

    callbacks = CallbackList(
        [_checkpoint_callback(max(checkpoint_freq // n_envs, 1), out), _success_callback()]
    )
    start = time.perf_counter()
    if timesteps > done:
        model.learn(
            total_timesteps=timesteps - done,
            callback=callbacks,
            reset_num_timesteps=not resume,
            tb_log_name=algo,
        )
    wall = time.perf_counter() - start
    vec.close()
    model.save(out / "model.zip")
    save_obs_stats(vec, out / "obs_stats.npz")
    steps = int(model.num_timesteps) - done
    meta = {
        **meta,
        "timesteps": int(model.num_timesteps),
        "resumed_from": done if resume else None,
        "wall_time_s": round(wall, 2),
        "steps_per_s": round(steps / wall, 1) if wall > 0 and steps > 0 else None,
        "device": str(model.device),
    }
    (out / "model.json").write_text(json.dumps(meta, indent=2))
    return meta


def plot_training_curve(
    out: str | Path | list[str | Path], png: str | Path, window: int = 20
) -> None:
    """Training curve(s) from the Monitor CSVs: episode success rate and return against timesteps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    runs = out if isinstance(out, list) else [out]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for run in runs:
        files = sorted(Path(run, "monitor").rglob("*.monitor.csv"))
        if not files:
            raise ValueError(f"no Monitor CSVs in {Path(run, 'monitor')}")
        parts = []
        for f in files:  # absolute end time of each episode orders runs and their resumptions
            with open(f) as fh:
                t_start = json.loads(fh.readline().lstrip("#"))["t_start"]
            part = pd.read_csv(f, skiprows=1)
            part["end"] = part["t"] + t_start
            parts.append(part)
        df = pd.concat(parts).sort_values("end")
        df["timesteps"] = df["l"].cumsum()
        label = json.loads(Path(run, "train.json").read_text())["algo"]
        for ax, col in zip(axes, ("success_rate", "r"), strict=True):
            ax.plot(
                df["timesteps"],
                df[col].rolling(window, min_periods=min(window, len(df))).mean(),
                label=label,
            )
    axes[0].set_ylabel(f"success rate (mean of {window} episodes)")
    axes[1].set_ylabel("training return (with shaping)")
    for ax in axes:
        ax.set_xlabel("training timesteps (slots)")
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:.0f}k")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def compare(
    learned: Any,
    others: tuple[str, ...] = ("noop", "random", "spep-frequency", "spep-oracle"),
    runs: int = 20,
    seed: int = 0,
    jobs: int | None = 1,
    config: Mapping[str, Any] | None = None,
) -> tuple[Any, Any]:
    """Evaluate ``learned`` (an agent) and ``others`` on the same seeds; ``(rows, table)``.

    The table has, per agent, the mean success rate with its 95 % Student-t interval, and the
    learned agent's paired difference from it with the Wilcoxon signed-rank p-value (runs paired by
    seed: every agent meets the same requests and link draws for a seed).
    """
    import pandas as pd

    from agents.evaluate import evaluate
    from agents.stats import mean_ci, wilcoxon_paired

    frames = [evaluate(learned, runs=runs, seed=seed, jobs=jobs, config=config)]
    frames += [evaluate(name, runs=runs, seed=seed, jobs=jobs, config=config) for name in others]
    rows = pd.concat(frames, ignore_index=True)
    mine = frames[0].set_index("seed")["success_rate"]
    table = []
    for df in frames:
        rate = df.set_index("seed")["success_rate"]
        mean, low, high, n = mean_ci(rate)
        diff = (mine - rate).mean()
        _, p, _ = wilcoxon_paired(mine, rate.reindex(mine.index))
        table.append(
            {
                "agent": df["agent"].iloc[0],
                "runs": n,
                "success_rate": mean,
                "ci_low": low,
                "ci_high": high,
                "learned_minus_agent": diff,
                "wilcoxon_p": p,
            }
        )
    return rows, pd.DataFrame(table)


# ---------------------------------------------------------------------- command line
def _run(args: argparse.Namespace) -> int:
    import torch

    from agents.cli import parse_literals, parse_overrides

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)  # small networks: more threads only contend

    fields = {"topology": args.topology, **parse_overrides(args.overrides)}
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
    )
    print(
        f"trained {meta['algo']} to {meta['timesteps']} timesteps in {meta['wall_time_s']} s "
        f"({meta['steps_per_s']} steps/s on {meta['device']}); model: {Path(args.out, 'model.zip')}"
    )
    if args.plot:
        plot_training_curve(args.out, Path(args.out, "training_curve.png"))
    return 0


def add_cli(subparsers: Any) -> None:
    """``spep train``."""
    from agents.cli import add_common

    p = subparsers.add_parser(
        "train",
        help="train a stable-baselines3 agent on Spep-v0",
        description="Train PPO, MaskablePPO (with the env's action masks) or DQN on Spep-v0. "
        f"Config defaults for training: {TRAIN_DEFAULTS} over the paper preset.",
    )
    p.add_argument("--algo", choices=ALGOS, default="maskable_ppo")
    p.add_argument("--topology", default="erdos_renyi")
    p.add_argument("--timesteps", type=int, default=100_000, help="total environment steps")
    p.add_argument("--seed", type=int, default=0, help="environment i starts from seed + i")
    p.add_argument("--out", required=True, help="run folder (model, checkpoints, logs)")
    p.add_argument("--n-envs", type=int, default=4)
    p.add_argument(
        "--policy",
        choices=POLICIES,
        default="pair",
        help="pair: one small network scores every node pair (default); mlp: SB3's MultiInputPolicy",
    )
    p.add_argument("--subproc", action="store_true", help="SubprocVecEnv instead of DummyVecEnv")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    p.add_argument("--checkpoint-freq", type=int, default=10_000, help="timesteps between saves")
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
        help="training reward shaping: bonus per pre-positioned pair used (0: the env's reward)",
    )
    p.add_argument(
        "--torch-threads", type=int, default=1, help="torch CPU threads (0: torch's default)"
    )
    p.add_argument("--plot", action="store_true", help="write DIR/training_curve.png")
    p.add_argument("--verbose", type=int, default=0)
    add_common(p)
    p.set_defaults(func=_run)
