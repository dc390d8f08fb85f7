"""Checkpoints and resume: the latest checkpoint, the observation statistics beside it, callbacks.

SB3 saves VecNormalize as a pickle; here its statistics are plain arrays in an ``.npz`` (read with
``allow_pickle=False``), saved beside each checkpoint and with the final model, and put back into a
fresh VecNormalize on ``--resume`` or used directly by the ``sb3`` agent (:func:`normalize_obs`).
Beside each checkpoint ``rl_model_meta_<N>_steps.json`` holds the settings of the run that saved it
(algorithm, config, policy, hyperparameters), so that ``--resume`` and the ``sb3`` agent refuse a
checkpoint of another run.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: Checkpoint file names of SB3's CheckpointCallback, with their timesteps.
CHECKPOINT_RE = re.compile(r"rl_model_(\d+)_steps\.zip$")


# ---------------------------------------------------------------------- observation statistics
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
    """The arrays of a :func:`save_obs_stats` file (read without unpickling)."""
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


def obs_stats_path(checkpoint: Path) -> Path:
    """The statistics saved beside a checkpoint: ``rl_model_obs_stats_<N>_steps.npz``."""
    name = checkpoint.name.replace("rl_model_", "rl_model_obs_stats_")
    return checkpoint.with_name(name).with_suffix(".npz")


def checkpoint_meta_path(checkpoint: Path) -> Path:
    """The run settings saved beside a checkpoint: ``rl_model_meta_<N>_steps.json``."""
    name = checkpoint.name.replace("rl_model_", "rl_model_meta_")
    return checkpoint.with_name(name).with_suffix(".json")


def save_beside(checkpoint: Path, stats: Any | None, identity: Mapping[str, Any] | None) -> None:
    """Write what goes beside a checkpoint zip: its statistics and the run's settings.

    ``stats`` is a VecNormalize, or an object with its attributes (None: no statistics);
    ``identity`` the run's settings (None: none).
    """
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    if stats is not None:
        save_obs_stats(stats, obs_stats_path(checkpoint))
    if identity is not None:
        checkpoint_meta_path(checkpoint).write_text(json.dumps(dict(identity), indent=1))


def checkpoint_callback(
    save_freq: int, out: Path, identity: Mapping[str, Any] | None = None
) -> Any:
    """SB3's CheckpointCallback into ``out/checkpoints``, with more beside each zip.

    Beside each zip: the observation statistics, and ``rl_model_meta_<N>_steps.json`` holding
    ``identity`` (the run's settings, :data:`agents.rl.config.RUN_IDENTITY`).
    """
    from stable_baselines3.common.callbacks import CheckpointCallback

    class Checkpoint(CheckpointCallback):
        """SB3's checkpoints plus the observation statistics as ``.npz`` (instead of a pickle)."""

        def _on_step(self) -> bool:
            if self.n_calls % self.save_freq == 0:
                zip_path = Path(self._checkpoint_path(extension="zip"))
                save_beside(zip_path, self.model.get_vec_normalize_env(), identity)
            return super()._on_step()

    return Checkpoint(save_freq=save_freq, save_path=str(out / "checkpoints"))


def success_callback() -> Any:
    """A callback that logs each finished episode's success rate (``rollout/success_rate``)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class SuccessRate(BaseCallback):
        """Logs each finished episode's success rate to TensorBoard (``rollout/success_rate``)."""

        def _on_step(self) -> bool:
            rates = [i["success_rate"] for i in self.locals.get("infos", ()) if "success_rate" in i]
            for rate in rates:
                self.logger.record_mean("rollout/success_rate", rate)
            return True

    return SuccessRate()


def advance(bar: Any, steps: int) -> None:
    """Move the tqdm ``bar`` on by ``steps``; its total grows where training runs past it.

    (PPO trains whole rollouts, so the last one may end past ``--timesteps``.)
    """
    if bar.total is not None and bar.n + steps > bar.total:
        bar.total = bar.n + steps
    bar.update(steps)


def progress_callback(bar: Any) -> Any:
    """A callback that moves the tqdm ``bar`` on by the environment steps of each vector step."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Progress(BaseCallback):
        """Moves a progress bar on by ``n_envs`` steps a vector step."""

        def _on_step(self) -> bool:
            advance(bar, self.training_env.num_envs)
            return True

    return Progress()
