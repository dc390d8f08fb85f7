"""The run store of a study: one JSON file per finished run, written atomically, and read back.

A run file ``runs/<topology>__<agent>__<seed>__<hash>.json`` holds the run's key, its result row and
the latency and fidelity of every served request. It is written to a temp file, synced and renamed
in one step, so that a crash leaves either the whole file or a ``*.tmp`` file that is never read
(and deleted at the next start). The CSV files of a study go through a temp file and a rename too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.study.plan import MAIN, SENSITIVITY, Task, json_key

#: Version of the run-file format (``version`` in each file).
RUN_FILE_VERSION = 1


def write_run(runs_dir: Path, task: Task, payload: dict[str, Any]) -> Path:
    """Write a run file atomically: a temp file in the same folder, fsync, ``os.replace``."""
    path = runs_dir / task.filename
    fd, tmp = tempfile.mkstemp(dir=runs_dir, prefix=task.filename + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_runs(runs_dir: Path, tasks: Iterable[Task]) -> dict[Task, dict[str, Any]]:
    """The finished runs among ``tasks``: run files that parse and carry the task's key.

    Temp files (``*.tmp``, left by a crash mid-write) are never read. A file that does not parse
    is skipped with a warning, and its run is done again.
    """
    done: dict[Task, dict[str, Any]] = {}
    for task in tasks:
        path = runs_dir / task.filename
        if not path.exists():
            continue
        try:
            payload = json.loads(path.read_text())
            ok = json_key(payload["key"]) == json_key(json.loads(json_key(task.key)))
            ok = ok and isinstance(payload["row"], dict)
        except (OSError, ValueError, KeyError, TypeError) as err:
            warnings.warn(
                f"skipping unreadable run file {path} ({err}); it will be rerun", stacklevel=2
            )
            continue
        if ok:
            done[task] = payload
    return done


def remove_temp_files(runs_dir: Path) -> int:
    """Delete temp files left by a crash mid-write (never read as results)."""
    stale = list(runs_dir.glob("*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def result_rows(tasks: Iterable[Task], payloads: dict[Task, dict[str, Any]]) -> Iterator[dict]:
    """Result rows of ``tasks`` (in order) whose runs are finished."""
    for task in tasks:
        payload = payloads.get(dataclasses.replace(task, study=MAIN, variant=""))
        if payload is not None:
            row = dict(payload["row"])
            if task.study == SENSITIVITY:
                row = {"variant": task.variant, **row}
            yield row


def write_csv(path: Path, rows: Iterable[dict[str, Any]], first: Sequence[str]) -> int:
    """Write rows to CSV atomically, ``first`` columns first; return the row count."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    if len(frame):
        frame = frame[[c for c in first if c in frame] + [c for c in frame if c not in first]]
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return len(frame)


def served_samples(
    tasks: Iterable[Task], payloads: dict[Task, dict[str, Any]]
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Latencies and fidelities of every served request, pooled per (topology, agent)."""
    pooled: dict[tuple[str, str], dict[str, list]] = {}
    for task in tasks:
        payload = payloads.get(task)
        if payload is None:
            continue
        entry = pooled.setdefault((task.topology, task.agent), {"latency": [], "fidelity": []})
        entry["latency"] += payload["served_latency"]
        entry["fidelity"] += payload["served_fidelity"]
    return {k: {m: np.asarray(v) for m, v in d.items()} for k, d in pooled.items()}
