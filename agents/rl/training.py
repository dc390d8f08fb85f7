"""``spep train``'s loop: train a stable-baselines3 agent on ``Spep-v0``, with checkpoints and resume.

A run writes into its folder ``DIR``::

    DIR/train.json            algorithm, config fields, seed, hyperparameters (written at the start)
    DIR/model.zip             the final model (stable-baselines3's zip)
    DIR/model.json            train.json plus the timesteps done, wall time and steps/s
    DIR/obs_stats.npz         VecNormalize observation statistics (plain arrays, no pickle)
    DIR/checkpoints/          rl_model_<N>_steps.zip and rl_model_obs_stats_<N>_steps.npz
    DIR/monitor/              Monitor CSVs (return, length, success rate of every training episode)
    DIR/tb/                   TensorBoard logs

A new run needs an empty (or missing) folder; ``resume`` continues the run in ``DIR`` only with the
same algorithm, engine, config, policy, bonus and given hyperparameters as ``DIR/train.json``, and only from a
checkpoint that run saved (``rl_model_meta_<N>_steps.json`` beside it); anything else is refused with
the settings that differ. Every setting is checked before the folder is written.

Nothing here unpickles a file: models are restored into a freshly built algorithm from their torch
state dicts (``torch.load(weights_only=True)``, through stable-baselines3's ``set_parameters``) and the
normalisation statistics from ``.npz`` files read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents.rl.checkpoints import (
    checkpoint_callback,
    latest_checkpoint,
    load_obs_stats,
    load_weights,
    obs_stats_path,
    progress_callback,
    prune_checkpoints,
    restore_obs_stats,
    resumable_checkpoint,
    save_beside,
    save_model,
    save_obs_stats,
    saved_num_timesteps,
    success_callback,
    timing_callback,
)
from agents.rl.config import (
    DEFAULT_N_ENVS,
    ENGINES,
    POLICIES,
    POLICY_KWARGS,
    PREPOSITION_BONUS,
    TRAIN_DEFAULTS,
    algorithm_class,
    check_hyperparameters,
    check_n_envs,
    check_policy_fits,
    check_preposition_bonus,
    check_seed,
    config_from_json,
    config_to_json,
    default_hyperparameters,
    differences,
    read_meta,
    run_identity,
)
from agents.rl.envs import check_engine, make_env, make_vec
from agents.rl.evaluation import (
    EVAL_SEEDS,
    PeriodicEvaluation,
    check_disjoint,
    evaluation_callback,
    parse_seeds,
)
from spep_gym.config import SpepConfig


def train(
    algo: str,
    out: str | Path,
    timesteps: int,
    config: SpepConfig | Mapping[str, Any] | None = None,
    seed: int = 0,
    n_envs: int | None = None,
    resume: bool = False,
    device: str = "cpu",
    hyperparameters: Mapping[str, Any] | None = None,
    checkpoint_freq: int = 10_000,
    subproc: bool = False,
    verbose: int = 0,
    policy: str = "pair",
    preposition_bonus: float = PREPOSITION_BONUS,
    engine: str = "scalar",
    progress: bool = False,
    keep_checkpoints: int = 3,
    eval_freq: int = 0,
    eval_seeds: str = EVAL_SEEDS,
    pair_features: Sequence[str] = (),
    blank: Sequence[str] = (),
) -> dict[str, Any]:
    """Train ``algo`` until ``timesteps`` environment steps in total; return the run's metadata.

    ``config`` is the environment (fields over :data:`TRAIN_DEFAULTS` and the paper preset). A new
    run needs ``out`` empty or missing. With ``resume``, training continues from the latest
    checkpoint in ``out`` (its timesteps counter included) with the settings of
    ``out/train.json`` (its seed and ``n_envs`` too); ``algo``, ``policy``,
    ``preposition_bonus``, ``engine``, ``config`` (unless None) and the given ``hyperparameters``
    must be the run's.

    ``engine`` "scalar" steps a DummyVecEnv (``subproc``: SubprocVecEnv) of ``SpepEnv``; "batched"
    steps the batched core (:class:`agents.rl.batched_vec.BatchedVecEnv`, on the policy's device)
    with the hyperparameters of :func:`agents.rl.config.default_hyperparameters`; "torchrl"
    (MaskablePPO and the pair policy only) keeps the batched core and the policy on ``device`` and
    trains with TorchRL (:mod:`agents.rl.torchrl_ppo`), with the same hyperparameters. ``n_envs``
    defaults to :data:`agents.rl.config.DEFAULT_N_ENVS` of the engine. The model is the same
    either way: it evaluates on ``SpepEnv``. ``progress`` shows a tqdm bar of the steps done.

    After each checkpoint the checkpoints older than the ``keep_checkpoints`` newest whole ones are
    deleted (0: all kept). With ``eval_freq`` (0: none) the model is evaluated every ``eval_freq``
    steps and at the end on ``eval_seeds`` (``"A-B"``, disjoint from the training seeds), and the
    controls once (:mod:`agents.rl.evaluation`). ``model.json`` gets ``timing``: the seconds of
    collecting rollouts and of updating the policy (evaluations apart), and the steps/s of each.
    ``pair_features`` (the pair policy only) are extra per-pair inputs of
    :data:`agents.rl.config.EXTRA_FEATURES`, stored in ``policy_kwargs``; ``blank`` (the pair
    policy only) names observation keys the policy zeroes before reading them, in training and
    whenever the model acts (:data:`agents.rl.config.DEMAND_INPUTS` for a demand-blind twin).

    Raises:
        ValueError: a bad setting or hyperparameter, an ``out`` that cannot be written or holds
            another run, or (``resume``) settings or a checkpoint that differ from the run's,
            each named; raised before anything is written.
    """
    from agents.learned import check_checkpoint
    from agents.study.store import check_output_folder

    algorithm_class(algo)  # refuses an unknown algorithm
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is invalid: allowed one of {ENGINES}")
    if n_envs is None:
        n_envs = DEFAULT_N_ENVS[engine]
    for name, value, low in (
        ("timesteps", timesteps, 1),
        ("checkpoint_freq", checkpoint_freq, 1),
        ("keep_checkpoints", keep_checkpoints, 0),
        ("eval_freq", eval_freq, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}={value!r} is invalid: allowed an integer >= {low}")
    seeds = parse_seeds(eval_seeds)
    if policy not in POLICIES:
        raise ValueError(f"policy={policy!r} is invalid: allowed one of {POLICIES}")
    if device not in ("cpu", "cuda", "auto"):
        raise ValueError(f"device={device!r} is invalid: allowed cpu, cuda or auto")
    torch_device = None
    if engine == "torchrl":
        from agents.rl.torchrl_ppo import check_torchrl
        from spep_gym.batched.simulator import resolve_device

        check_torchrl(algo, policy, hyperparameters or {})
        torch_device = resolve_device(_env_device(device))  # a GPU that is not here: refused now
    out = Path(out)
    check_output_folder(out)
    start_ckpt = None
    weights: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None
    if resume:
        if not out.is_dir() or latest_checkpoint(out) is None or not (out / "train.json").is_file():
            raise ValueError(f"--resume: no checkpoint in {out / 'checkpoints'} to resume from")
        meta = read_meta(out / "train.json")
        cfg = _check_train_json(meta, out / "train.json")
        asked: dict[str, Any] = {
            "algo": algo, "policy": policy, "preposition_bonus": preposition_bonus,
            "hyperparameters": {**meta.get("hyperparameters", {}), **dict(hyperparameters or {})},
            "engine": engine,
        }  # fmt: skip
        if config is not None:
            asked["config"] = config_to_json(_config(config))
        stored = {k: meta.get(k) for k in asked}
        stored["engine"] = meta.get("engine", "scalar")  # runs before --engine were scalar
        asked["pair_features"] = list(pair_features)
        stored["pair_features"] = _extractor_list(meta.get("policy_kwargs", {}), "extra")
        asked["blank"] = list(blank)
        stored["blank"] = _extractor_list(meta.get("policy_kwargs", {}), "blank")
        diff = differences(json.loads(json.dumps(stored)), json.loads(json.dumps(asked)))
        if diff:
            raise ValueError(
                f"--resume: the run in {out} has other settings than this command (run vs "
                f"command): {'; '.join(diff)}; repeat the run's options, or train a new run "
                "into an empty folder"
            )
        seed, n_envs = meta["seed"], meta["n_envs"]
        check_engine(engine, cfg, subproc)
        hp = meta["hyperparameters"]
        check_policy_fits(
            algo,
            meta["policy"],
            meta["policy_kwargs"],
            make_env(cfg, algo),
            str(out / "train.json"),
        )
        start_ckpt = resumable_checkpoint(out)
        if start_ckpt is None:
            raise ValueError(
                f"--resume: no complete checkpoint in {out / 'checkpoints'} to resume from (each "
                "zip there is empty or cut short); train a new run into an empty folder"
            )
        check_checkpoint(start_ckpt[0], meta)
        # read now, so that nothing is written for a checkpoint that cannot be resumed
        weights = load_weights(start_ckpt[0])
        stats = load_obs_stats(obs_stats_path(start_ckpt[0]))
        if eval_freq:
            check_disjoint(seeds, [(seed, n_envs), (seed + start_ckpt[1], n_envs)])
    else:
        if out.is_dir() and any(out.iterdir()):
            held = ", ".join(sorted(p.name for p in out.iterdir())[:5])
            raise ValueError(
                f"--out {str(out)!r} is invalid: it holds another run or other files ({held}): "
                "allowed an empty or new folder, or --resume to continue the run in it"
            )
        cfg = _config(config)
        check_seed(seed)
        check_n_envs(n_envs, cfg)
        check_preposition_bonus(preposition_bonus, cfg)
        check_engine(engine, cfg, subproc)
        hp = {**default_hyperparameters(algo, engine, n_envs), **dict(hyperparameters or {})}
        check_hyperparameters(algo, hp)
        policy_kwargs = _policy_kwargs(policy, pair_features, make_env(cfg, algo), blank)
        check_policy_fits(algo, policy, policy_kwargs, make_env(cfg, algo), "policy")
        if eval_freq:
            check_disjoint(seeds, [(seed, n_envs)])
        meta = {
            "algo": algo,
            "config": config_to_json(cfg),
            "seed": seed,
            "n_envs": n_envs,
            "engine": engine,
            "hyperparameters": hp,
            "policy": policy,
            "preposition_bonus": preposition_bonus,
            "policy_kwargs": policy_kwargs,
        }
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / "train.json", meta)

    # a resumed run writes its own Monitor files (make_vec_env would overwrite the first ones)
    monitor = out / "monitor" / (f"resumed_{start_ckpt[1]}" if start_ckpt else "")
    # a resumed run starts its environments from new seeds rather than replaying the first episodes
    env_seed = seed + (start_ckpt[1] if start_ckpt else 0)
    evaluator = None
    if eval_freq:
        evaluator = PeriodicEvaluation(
            out, meta, cfg, seeds, eval_freq, start_ckpt[1] if start_ckpt else 0
        )
        evaluator.controls()
    bar = _progress_bar(timesteps, start_ckpt[1] if start_ckpt else 0, algo, engine, progress)
    timing: dict[str, float] = {"collect_s": 0.0, "update_s": 0.0, "eval_s": 0.0}
    saving = (checkpoint_freq, keep_checkpoints)
    try:
        if engine == "torchrl":
            model, done, wall = _learn_torchrl(
                meta, cfg, out, timesteps, env_seed, (start_ckpt, weights, stats), monitor,
                torch_device, saving, bar, timing, evaluator,
            )  # fmt: skip
        else:
            model, done, wall = _learn_sb3(
                meta, cfg, out, timesteps, env_seed, (start_ckpt, weights, stats), monitor, device,
                saving, subproc, verbose, resume, bar, timing, evaluator,
            )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    steps = int(model.num_timesteps) - done
    meta = {
        **meta,
        "timesteps": int(model.num_timesteps),
        "resumed_from": done if resume else None,
        "wall_time_s": round(wall, 2),
        "steps_per_s": round(steps / wall, 1) if wall > 0 and steps > 0 else None,
        "device": str(model.device),
        "timing": _timing(timing, steps),
    }
    _write_json(out / "model.json", meta)
    if evaluator is not None:
        from agents.rl.curves import plot_evaluation

        plot_evaluation(out, out / "evaluation_curve.png")
    return meta


def _timing(timing: dict[str, float], steps: int) -> dict[str, float | None]:
    """``model.json``'s ``timing``: seconds of each phase, and steps/s of collecting and updating."""
    out: dict[str, float | None] = {k: round(v, 6) for k, v in timing.items()}
    for phase in ("collect", "update"):
        seconds = timing[f"{phase}_s"]
        out[f"{phase}_steps_per_s"] = round(steps / seconds, 1) if seconds > 0 < steps else None
    return out


def _learn_sb3(
    meta: dict[str, Any],
    cfg: SpepConfig,
    out: Path,
    timesteps: int,
    env_seed: int,
    resume_from: tuple[tuple[Path, int] | None, dict[str, Any] | None, dict[str, Any] | None],
    monitor: Path,
    device: str,
    saving: tuple[int, int],
    subproc: bool,
    verbose: int,
    resume: bool,
    bar: Any,
    timing: dict[str, float],
    evaluator: PeriodicEvaluation | None,
) -> tuple[Any, int, float]:
    """SB3's ``learn`` on the scalar or batched engine; the model, the steps resumed from, the time.

    ``resume_from`` is the checkpoint resumed from, its weights and its statistics (None: a new run);
    ``saving`` the checkpoint frequency and how many checkpoints are kept.
    """
    algo, engine, n_envs, hp = meta["algo"], meta["engine"], meta["n_envs"], meta["hyperparameters"]
    vec = make_vec(
        cfg,
        algo,
        n_envs,
        env_seed,
        str(monitor),
        subproc,
        norm_obs=meta["policy"] == "mlp",
        preposition_bonus=meta.get("preposition_bonus", 0.0),
        engine=engine,
        env_device=_env_device(device),
    )
    from agents.rl.policies import policy_class

    model = algorithm_class(algo)(
        policy_class(algo, meta["policy"]),
        vec,
        seed=meta["seed"],
        device=device,
        tensorboard_log=str(out / "tb"),
        policy_kwargs=dict(meta["policy_kwargs"]),
        verbose=verbose,
        **hp,
    )
    vec.seed(env_seed)  # the algorithm seeded the envs with ``seed`` (SB3's set_random_seed)
    done, stats = _restore(model, *resume_from)
    if stats is not None:
        restore_obs_stats(vec, stats)
    from stable_baselines3.common.callbacks import CallbackList

    callbacks = CallbackList(
        [
            checkpoint_callback(
                max(saving[0] // n_envs, 1), out, run_identity(meta), keep=saving[1]
            ),
            success_callback(),
            *([progress_callback(bar)] if bar is not None else []),
            timing_callback(timing),  # before the evaluation: its last one is not an update
            *([evaluation_callback(evaluator, timing)] if evaluator is not None else []),
        ]
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
    save_model(model, out / "model.zip")
    save_obs_stats(vec, out / "obs_stats.npz")
    return model, done, wall


def _learn_torchrl(
    meta: dict[str, Any],
    cfg: SpepConfig,
    out: Path,
    timesteps: int,
    env_seed: int,
    resume_from: tuple[tuple[Path, int] | None, dict[str, Any] | None, dict[str, Any] | None],
    monitor: Path,
    device: Any,
    saving: tuple[int, int],
    bar: Any,
    timing: dict[str, float],
    evaluator: PeriodicEvaluation | None,
) -> tuple[Any, int, float]:
    """TorchRL's loop (:mod:`agents.rl.torchrl_ppo`) on an SB3 model's policy; as :func:`_learn_sb3`.

    The SB3 model is built over one ``SpepEnv`` for its spaces only; its checkpoints and final
    model are SB3 zips with the observation statistics and run settings beside, as SB3's.
    """
    import warnings

    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.rl import torchrl_ppo
    from agents.rl.policies import policy_class

    algo, hp = meta["algo"], meta["hyperparameters"]
    spaces = DummyVecEnv([lambda: make_env(cfg, algo, meta.get("preposition_bonus", 0.0))])
    with warnings.catch_warnings():  # SB3 warns that 1 env x n_steps is smaller than a minibatch
        warnings.simplefilter("ignore", UserWarning)
        model = algorithm_class(algo)(
            policy_class(algo, meta["policy"]),
            spaces,
            seed=meta["seed"],
            device=str(device),
            policy_kwargs=dict(meta["policy_kwargs"]),
            **hp,
        )
    done, stats = _restore(model, *resume_from)
    identity = run_identity(meta)

    def save(steps: int, scale: Any) -> None:
        ckpt = out / "checkpoints" / f"rl_model_{steps}_steps.zip"
        save_beside(ckpt, scale, identity)
        save_model(model, ckpt)  # last: a checkpoint counts once its zip is there
        prune_checkpoints(out, saving[1])

    def evaluate(steps: int, final: bool = False) -> None:
        # the pair policy scales its own inputs: its reward statistics do not change how it acts
        if evaluator is not None:
            before = evaluator.seconds
            evaluator.maybe(steps, model, None, final)
            timing["eval_s"] += evaluator.seconds - before

    start = time.perf_counter()
    scale = torchrl_ppo.learn(
        model,
        cfg,
        meta["n_envs"],
        env_seed,
        timesteps,
        done,
        device,
        meta.get("preposition_bonus", 0.0),
        save,
        saving[0],
        monitor / "torchrl.monitor.csv",
        stats,
        bar,
        timing,
        evaluate,
    )
    evaluate(int(model.num_timesteps), final=True)
    wall = time.perf_counter() - start
    spaces.close()
    save_model(model, out / "model.zip")
    save_obs_stats(scale, out / "obs_stats.npz")
    return model, done, wall


def _progress_bar(total: int, done: int, algo: str, engine: str, enabled: bool) -> Any:
    """A tqdm bar of the environment steps on stderr (None when not ``enabled``)."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=min(done, total), unit="step", desc=f"{algo} ({engine})")


def _restore(
    model: Any,
    start_ckpt: tuple[Path, int] | None,
    weights: dict[str, Any] | None,
    stats: dict[str, Any] | None,
) -> tuple[int, dict[str, Any] | None]:
    """Put a checkpoint's ``weights`` (:func:`load_weights`'s) into ``model``.

    Returns the steps it had done and its statistics (a new run: 0, None).
    """
    if start_ckpt is None or weights is None:
        return 0, None
    model.set_parameters(weights, device=model.device)
    model.num_timesteps = saved_num_timesteps(start_ckpt[0])
    return model.num_timesteps, stats


def _check_train_json(meta: dict[str, Any], path: Path) -> SpepConfig:
    """The config of a run's ``train.json``, with its other fields checked; for ``--resume``.

    Raises:
        ValueError: naming the file, the field, its value and what is allowed.
    """
    try:
        cfg = config_from_json(meta["config"])
        for field in ("seed", "n_envs", "hyperparameters", "policy_kwargs"):
            if field not in meta:
                raise ValueError(f"no {field!r} in it: allowed spep train's train.json")
        check_seed(meta["seed"])
        check_n_envs(meta["n_envs"], cfg)
        bonus = meta.get("preposition_bonus", 0.0)
        check_preposition_bonus(bonus, cfg, f"preposition_bonus = {bonus!r}")
        if not isinstance(meta["hyperparameters"], dict):
            raise ValueError(
                f"hyperparameters = {meta['hyperparameters']!r} is invalid: allowed a JSON object"
            )
        check_hyperparameters(meta["algo"], meta["hyperparameters"])
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return cfg


def _write_json(path: Path, value: Any) -> None:
    """``value`` as indented JSON in ``path``, written atomically."""
    from agents.study.store import write_text

    write_text(path, json.dumps(value, indent=2), sync=True)


def _env_device(device: str) -> str:
    """Where the batched core runs: on the policy's device (``auto``: CUDA when there is one)."""
    if device == "cpu":
        return "cpu"
    import torch

    return "cuda" if device == "cuda" or torch.cuda.is_available() else "cpu"


def _config(config: SpepConfig | Mapping[str, Any] | None) -> SpepConfig:
    """The training config: a ``SpepConfig`` as it is, fields over :data:`TRAIN_DEFAULTS`."""
    if isinstance(config, SpepConfig):
        return config
    return SpepConfig.from_dict({**TRAIN_DEFAULTS, **dict(config or {})})


def _policy_kwargs(
    policy: str, pair_features: Sequence[str], env: Any, blank: Sequence[str] = ()
) -> dict[str, Any]:
    """``POLICY_KWARGS[policy]``, with the pair extractor's ``extra`` and ``blank`` lists.

    Raises:
        ValueError: features or blanked keys with another policy than ``pair``, a feature the pair
            policy cannot read from ``env``'s observation (:func:`agents.rl.policies.extra_width`)
            or a blanked key that is not in it.
    """
    kwargs = POLICY_KWARGS[policy]
    if not pair_features and not blank:
        return kwargs
    for option, names in (("--pair-features", pair_features), ("--blank", blank)):
        if names and policy != "pair":
            raise ValueError(
                f"{option} {','.join(names)} is invalid with --policy {policy}: "
                "allowed with --policy pair"
            )
    from agents.rl.policies import check_blank, extra_width

    try:
        extra_width(env.observation_space, list(pair_features))
    except ValueError as err:
        raise ValueError(f"--pair-features: {err}") from None
    try:
        check_blank(env.observation_space, list(blank))
    except ValueError as err:
        raise ValueError(f"--blank: {err}") from None
    extractor = dict(kwargs["features_extractor_kwargs"])
    if pair_features:
        extractor["extra"] = list(pair_features)
    if blank:
        extractor["blank"] = list(blank)
    return {**kwargs, "features_extractor_kwargs": extractor}


def _extractor_list(policy_kwargs: Mapping[str, Any], key: str) -> list[str]:
    """The ``extra`` features (or ``blank`` keys) of a run's ``policy_kwargs`` (none before them)."""
    return list(policy_kwargs.get("features_extractor_kwargs", {}).get(key, []))
