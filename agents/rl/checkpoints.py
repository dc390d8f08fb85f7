"""Checkpoints and resume: the latest checkpoint, the observation statistics beside it, callbacks.

SB3 saves VecNormalize as a pickle; here its statistics are plain arrays in an ``.npz`` (read with
``allow_pickle=False``), saved beside each checkpoint and with the final model, and put back into a
fresh VecNormalize on ``--resume`` or used directly by the ``sb3`` agent (:func:`normalize_obs`).
Beside each checkpoint ``rl_model_meta_<N>_steps.json`` holds the settings of the run that saved it
(algorithm, config, policy, hyperparameters), so that ``--resume`` and the ``sb3`` agent refuse a
checkpoint of another run.

Every file is written atomically (:func:`atomic_path`: a temporary file in the same folder, synced,
then renamed over the name), the checkpoint zip last: an interrupted save leaves the checkpoints
before it as they were, and a checkpoint counts once its zip is there. ``--resume`` skips a newest
zip that is not whole (:func:`resumable_checkpoint`), as an interrupted save of an older version
left it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: Checkpoint file names of SB3's CheckpointCallback, with their timesteps.
CHECKPOINT_RE = re.compile(r"rl_model_(\d+)_steps\.zip$")


# ---------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s content to; synced and renamed over ``path`` on exit.

    The temporary file (``.<name>.partial<suffix>``, in the same folder, so that the rename is
    atomic and the suffix that numpy and SB3 add is already there) is removed when the writing
    raises, ``KeyboardInterrupt`` included: ``path`` is then as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # the rename itself, on file systems that allow it
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` then :func:`atomic_path`'s rename of ``tmp`` over ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)


#: Attributes of a model that ``save_model`` leaves out: the last observations of every training
#: env (with 256 networks and the long-run demand keys, 13 MB of the zip's 13.2 MB) and the episode
#: buffers. Learning starts from a reset without them, and nothing here reads them back.
UNSAVED = (
    "_last_obs", "_last_original_obs", "_last_episode_starts", "ep_info_buffer",
    "ep_success_buffer",
)  # fmt: skip


def save_model(model: Any, path: str | Path) -> None:
    """``model.save(path)`` (a stable-baselines3 zip) without :data:`UNSAVED`, written atomically."""
    write_atomic(path, lambda tmp: model.save(tmp, exclude=list(UNSAVED)))


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
    write_atomic(path, lambda tmp: np.savez(tmp, **arrays))  # type: ignore[arg-type]


def load_obs_stats(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a :func:`save_obs_stats` file (read without unpickling).

    Raises:
        ValueError: naming the file, when it is missing or not such a file.
    """
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("one array, not an .npz of them")
        with data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"{path}: not readable as the observation statistics spep train saves ({err}): "
            "allowed the .npz written with the model"
        ) from None


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


def resumable_checkpoint(out: Path) -> tuple[Path, int] | None:
    """The newest checkpoint in ``out/checkpoints`` whose zip is whole, and its timesteps.

    Newer zips that are not whole (empty, truncated, a member missing or failing its CRC: what
    an interrupted save leaves) are skipped, with one line on stderr that names them. Only the
    zip's structure is checked here; what is in it is checked when it loads.
    """
    found = sorted(
        (
            (int(m.group(1)), p)
            for p in (out / "checkpoints").glob("rl_model_*_steps.zip")
            if (m := CHECKPOINT_RE.search(p.name))
        ),
        reverse=True,
    )
    skipped: list[str] = []
    for steps, path in found:
        problem = _not_whole(path)
        if problem is None:
            if skipped:
                print(
                    f"spep train: skipped {'; '.join(skipped)}: not whole checkpoints (an "
                    f"interrupted save); resuming from {path}",
                    file=sys.stderr,
                )
            return path, steps
        skipped.append(f"{path} ({problem})")
    return None


def _not_whole(path: Path) -> str | None:
    """Why the checkpoint zip at ``path`` is not whole, or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = archive.namelist()
            if bad is not None:
                return f"{bad} fails its CRC check"
            missing = [n for n in ("data", "policy.pth") if n not in names]
            if missing:
                return f"no {', '.join(missing)} in it"
            int(json.loads(archive.read("data").decode())["num_timesteps"])
    except (OSError, EOFError, zipfile.BadZipFile, ValueError, KeyError, TypeError) as err:
        return str(err) or type(err).__name__
    return None


def prune_checkpoints(out: Path, keep: int) -> list[Path]:
    """Delete the checkpoints older than the ``keep`` newest whole ones (0: keep all); the deleted.

    A checkpoint's zip goes first, then its statistics and settings beside it, so that an
    interrupted pruning leaves no zip without them. Zips newer than the oldest one kept (whole or
    not) are left: the newest whole checkpoint is never deleted, and ``--resume`` finds it.
    """
    if keep == 0:
        return []
    found = sorted(
        (
            (int(m.group(1)), p)
            for p in (out / "checkpoints").glob("rl_model_*_steps.zip")
            if (m := CHECKPOINT_RE.search(p.name))
        ),
        reverse=True,
    )
    whole = 0
    for i, (_, path) in enumerate(found):
        whole += _not_whole(path) is None
        if whole == keep:
            old = [p for _, p in found[i + 1 :]]
            break
    else:
        return []
    for path in old:
        for member in (path, obs_stats_path(path), checkpoint_meta_path(path)):
            member.unlink(missing_ok=True)
    return old


def saved_num_timesteps(zip_path: str | Path) -> int:
    """``num_timesteps`` from a stable-baselines3 zip, read as JSON (no unpickling)."""
    with zipfile.ZipFile(zip_path) as archive:
        data = json.loads(archive.read("data").decode())
    return int(data["num_timesteps"])


def load_weights(zip_path: str | Path, device: str = "cpu") -> dict[str, Any]:
    """The state dicts of a stable-baselines3 zip's ``.pth`` members, read as plain tensors.

    stable-baselines3's ``load_from_zip_file(load_data=False)`` reads them with
    ``torch.load(weights_only=True)``: a pickled object in them runs no code and is refused here.

    Raises:
        ValueError: naming the file, when it is not a zip or a ``.pth`` in it holds anything else.
    """
    import pickle

    from stable_baselines3.common.save_util import load_from_zip_file

    members: list[str] = []
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = [n for n in archive.namelist() if n.endswith(".pth")]
        _, params, _ = load_from_zip_file(zip_path, load_data=False, device=device)
    except (OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, RuntimeError) as err:
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", x).strip() for x in str(err).splitlines()]
        why = [x for x in lines if "Unsupported global" in x] or lines or [type(err).__name__]
        first = why[0].split(". ")[0][:200]
        raise ValueError(
            f"{zip_path}: its weights ({', '.join(members) or 'none'}) "
            f"do not load as plain tensors ({first}): allowed a model saved by spep train"
        ) from None
    return dict(params)


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
        from agents.study.store import write_text

        write_text(
            checkpoint_meta_path(checkpoint), json.dumps(dict(identity), indent=1), sync=True
        )


def checkpoint_callback(
    save_freq: int, out: Path, identity: Mapping[str, Any] | None = None, keep: int = 0
) -> Any:
    """SB3's CheckpointCallback into ``out/checkpoints``, with more beside each zip.

    Beside each zip: the observation statistics, and ``rl_model_meta_<N>_steps.json`` holding
    ``identity`` (the run's settings, :data:`agents.rl.config.RUN_IDENTITY`). After each save the
    checkpoints older than the ``keep`` newest are deleted (:func:`prune_checkpoints`; 0: none).
    """
    from stable_baselines3.common.callbacks import CheckpointCallback

    class Checkpoint(CheckpointCallback):
        """SB3's checkpoints, written atomically, with the statistics as ``.npz`` beside them."""

        def _on_step(self) -> bool:
            if self.n_calls % self.save_freq == 0:
                zip_path = Path(self._checkpoint_path(extension="zip"))
                save_beside(zip_path, self.model.get_vec_normalize_env(), identity)
                save_model(self.model, zip_path)  # last: a checkpoint counts once its zip is there
                prune_checkpoints(out, keep)
            return True

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


def timing_callback(timing: dict[str, float]) -> Any:
    """A callback that adds the seconds of collecting rollouts and of updating the policy.

    ``timing["collect_s"]`` grows by each rollout (``_on_rollout_start`` to ``_on_rollout_end``,
    less ``timing["eval_s"]`` spent inside it by :func:`evaluation_callback`), and
    ``timing["update_s"]`` by what follows it, to the next rollout or the end of training.
    """
    import time

    from stable_baselines3.common.callbacks import BaseCallback

    for key in ("collect_s", "update_s", "eval_s"):
        timing.setdefault(key, 0.0)

    class Timing(BaseCallback):
        """Times the rollouts and the updates between them."""

        started: tuple[float, float] | None = None
        ended: float | None = None

        def _on_rollout_start(self) -> None:
            now = time.perf_counter()
            if self.ended is not None:
                timing["update_s"] += now - self.ended
            self.started, self.ended = (now, timing["eval_s"]), None

        def _on_rollout_end(self) -> None:
            now = time.perf_counter()
            if self.started is not None:
                start, eval_before = self.started
                timing["collect_s"] += now - start - (timing["eval_s"] - eval_before)
            self.ended = now

        def _on_training_end(self) -> None:
            if self.ended is not None:
                timing["update_s"] += time.perf_counter() - self.ended
                self.ended = None

        def _on_step(self) -> bool:
            return True

    return Timing()


def advance(bar: Any, steps: int) -> None:
    """Move the tqdm ``bar`` on by ``steps``, up to its total, where it stops.

    PPO trains whole rollouts, so the last one may end past ``--timesteps``: the steps past the
    total are not shown. The step that reaches the total is counted without drawing, so that the
    finished bar is drawn once, by ``bar.close()``.
    """
    left = bar.total - bar.n
    if steps < left:
        bar.update(steps)
    elif left > 0:
        bar.n = bar.total


def progress_callback(bar: Any) -> Any:
    """A callback that moves the tqdm ``bar`` on by the environment steps of each vector step."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Progress(BaseCallback):
        """Moves a progress bar on by ``n_envs`` steps a vector step."""

        def _on_step(self) -> bool:
            advance(bar, self.training_env.num_envs)
            return True

    return Progress()
