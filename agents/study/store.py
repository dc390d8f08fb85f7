"""The run store of a study: one JSON file per finished run, written atomically, and read back.

A run file ``runs/<topology>__<agent>__<seed>__<hash>.json`` holds the format version, the run's key
(:attr:`agents.study.plan.Task.key`: everything that decides its result), its result row and the
latency and fidelity of every served request. It is written to a temp file, synced and renamed in
one step, so that a crash leaves either the whole file or a ``*.tmp`` file that is never read (and
deleted at the next start). The CSV files of a study go through a temp file and a rename too.

A file is used only when it passes :func:`check_payload`: the format version, the whole key, and a
row with every column of a result row, numbers (or None) where numbers belong, an int seed, and
numbers the simulator can give (counts >= 0, rates in [0, 1] and equal to their counts' ratios).
Any other file is reported (:func:`scan_runs`: which file and why) and its run done again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import glob
import json
import math
import os
import secrets
import stat
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.study.plan import MAIN, RUN_FILE_VERSION, SENSITIVITY, Task, json_key
from spep_gym.metrics import Metrics

__all__ = [
    "COLUMNS",
    "LOCK_NAME",
    "RUN_FILE_VERSION",
    "FolderInUse",
    "check_output_file",
    "check_output_folder",
    "check_payload",
    "folder_lock",
    "load_runs",
    "locked_output",
    "remove_outputs",
    "remove_temp_files",
    "result_rows",
    "scan_runs",
    "served_samples",
    "write_csv",
    "write_errors",
    "write_run",
    "write_text",
]

#: Columns every result row has (the CSV of ``spep evaluate`` and ``spep reproduce``), in order.
COLUMNS = (
    "agent", "topology", "seed", "slots", "success_rate", "avg_latency", "avg_fidelity",
    "utilization", "arrived", "served", "failed", "pending", "pairs_generated",
    "prepositions_placed", "prepositions_used",
)  # fmt: skip
#: Row columns that hold text; every other one holds a number (or None: a rate undefined in a run).
TEXT_COLUMNS = ("agent", "topology")
#: The run's counters (:class:`spep_gym.metrics.Metrics`), as a row holds them.
METRIC_FIELDS = tuple(vars(Metrics()))
#: The counts of a row: each an int >= 0.
COUNT_COLUMNS = (*(k for k, v in vars(Metrics()).items() if isinstance(v, int)), "pending")
#: Row columns that hold an integer.
INT_COLUMNS = ("seed", "slots", *COUNT_COLUMNS)
#: The sums of a row (latencies, fidelities, priority weights): each a number >= 0.
SUM_COLUMNS = tuple(k for k, v in vars(Metrics()).items() if isinstance(v, float))
#: Derived columns that are fractions, in [0, 1] (every rate, and the mean fidelity).
FRACTION_COLUMNS = (
    "success_rate", "avg_fidelity", "utilization", "preposition_hit_rate",
    "preposition_use_rate", "preposition_waste_rate",
)  # fmt: skip
#: Relative tolerance of a derived column against the value its counts give.
RATE_RTOL = 1e-9


def write_run(runs_dir: Path, task: Task, payload: dict[str, Any]) -> Path:
    """Write a run file atomically (:func:`write_text`, synced)."""
    path = runs_dir / task.filename
    write_text(path, json.dumps(payload, separators=(",", ":")), sync=True)
    return path


def write_text(path: Path, text: str, sync: bool = False) -> None:
    """Write ``text`` to ``path`` atomically: a temp file beside it, ``fsync`` (``sync``), a rename.

    The temp file (``<name>.<pid>.<random>.tmp``) is made like any other file, with the mode the
    umask gives (0644 under umask 022). A crash leaves the old file or the new one (and at worst a
    temp file); an ``OSError`` removes the temp file and propagates with ``path`` as its filename.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            err.filename, err.filename2 = str(path), None
        raise


@functools.cache
def row_columns() -> frozenset[str]:
    """Every column of a result row: :func:`agents.study.evaluate.run_episode`'s."""
    return frozenset({*COLUMNS, *Metrics().summary(), "wall_time_s"})


def check_payload(payload: Any, task: Task) -> str | None:
    """Why a run file's content cannot be used for ``task`` (None: it can).

    Checks the format version, the key (naming the parts that differ), the row (every column, text
    where text belongs, finite numbers or None elsewhere, int counts and seed, numbers the
    simulator can give: :func:`_inconsistency`; the task's agent, topology, seed and slots) and
    the served samples (one latency and one fidelity per served request).
    """
    if not isinstance(payload, dict):
        return f"not a run file (a JSON {type(payload).__name__}, not an object)"
    version = payload.get("version")
    if version != RUN_FILE_VERSION:
        return f"run-file version {version!r}, expected {RUN_FILE_VERSION}"
    key = payload.get("key")
    want = json.loads(json_key(task.key))
    if not isinstance(key, dict):
        return "no key"
    differ = [k for k in want if json_key({"v": key.get(k)}) != json_key({"v": want[k]})]
    differ += [k for k in key if k not in want]
    if differ:
        return "key differs: " + ", ".join(
            _key_difference(k, key.get(k), want.get(k)) for k in differ
        )
    row = payload.get("row")
    if not isinstance(row, dict):
        return "no result row"
    missing = sorted(row_columns() - set(row))
    extra = sorted(set(row) - row_columns())
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(extra)}"] if extra else []
        )
        return "row columns differ: " + "; ".join(parts)
    for column, value in row.items():
        problem = _bad_value(column, value)
        if problem:
            return f"row {column} = {value!r}: {problem}"
    problem = _inconsistency(row)
    if problem:
        return problem
    expected = {"agent": task.agent, "topology": task.topology, "seed": task.seed}
    expected["slots"] = task.slots
    for column, value in expected.items():
        if row[column] != value:
            return f"row {column} = {row[column]!r}, expected {value!r}"
    for name in ("served_latency", "served_fidelity"):
        values = payload.get(name)
        if not isinstance(values, list) or len(values) != row["served"]:
            return f"{name}: expected a list of {row['served']} numbers (one per served request)"
        if not all(_is_number(v) for v in values):
            return f"{name}: expected numbers only"
    return None


def _inconsistency(row: dict[str, Any]) -> str | None:
    """Why a row's numbers cannot come from the simulator (None: they can).

    Every count is >= 0, every sum >= 0, every fraction in [0, 1], and every derived column
    (``pending``, the rates, the means) is what :meth:`spep_gym.metrics.Metrics.summary` computes
    from the row's counters (within :data:`RATE_RTOL`; None exactly where it gives None).
    """
    for column in COUNT_COLUMNS:
        if row[column] < 0:
            return f"row {column} = {row[column]!r}: expected a count >= 0"
    for column in SUM_COLUMNS:
        if row[column] < 0:
            return f"row {column} = {row[column]!r}: expected a number >= 0"
    for column in FRACTION_COLUMNS:
        if row[column] is not None and not 0 <= row[column] <= 1:
            return f"row {column} = {row[column]!r}: expected a number in [0, 1]"
    derived = Metrics(**{k: row[k] for k in METRIC_FIELDS}).summary()
    for column, want in derived.items():
        have = row[column]
        if column in METRIC_FIELDS or have == want:
            continue
        if have is None or want is None or not math.isclose(have, want, rel_tol=RATE_RTOL):
            return f"row {column} = {have!r}: its counts give {want!r}"
    return None


def _key_difference(part: str, have: Any, want: Any) -> str:
    if part == "code":
        return f"made by other code (source hash {have!r}, now {want!r})"
    if part == "inputs":
        return f"input file content differs ({have!r}, now {want!r})"
    if part == "agent_params":
        return "the agent's parameters differ"
    return f"{part} {have!r}, expected {want!r}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _bad_value(column: str, value: Any) -> str | None:
    if column in TEXT_COLUMNS:
        return None if isinstance(value, str) else "expected text"
    if column in INT_COLUMNS:
        return None if isinstance(value, int) and not isinstance(value, bool) else "expected an int"
    if value is None or _is_number(value):
        return None
    return "expected a finite number or None"


def scan_runs(
    runs_dir: Path, tasks: Iterable[Task]
) -> tuple[dict[Task, dict[str, Any]], list[tuple[Path, str]]]:
    """The finished runs among ``tasks``, and the run files rejected, each with the reason.

    Temp files (``*.tmp``, left by a crash mid-write) are never read. A file that does not parse,
    or fails :func:`check_payload`, is rejected (its run is to be done again); nothing raises on a
    bad file.
    """
    done: dict[Task, dict[str, Any]] = {}
    rejected: list[tuple[Path, str]] = []
    for task in tasks:
        path = runs_dir / task.filename
        if not path.exists():
            continue
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            rejected.append((path, f"unreadable run file ({err})"))
            continue
        reason = check_payload(payload, task)
        if reason is None:
            done[task] = payload
        else:
            rejected.append((path, reason))
    return done, rejected


def load_runs(runs_dir: Path, tasks: Iterable[Task]) -> dict[Task, dict[str, Any]]:
    """The finished runs among ``tasks`` (:func:`scan_runs`); each rejected file is warned about.

    The warning (``UserWarning``) names the file and why it is not used; its run is done again.
    """
    done, rejected = scan_runs(runs_dir, tasks)
    for path, reason in rejected:
        warnings.warn(f"skipping run file {path}: {reason}; it will be rerun", stacklevel=2)
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
    """Write rows to CSV atomically (:func:`write_text`), ``first`` columns first; return the count."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    if len(frame):
        frame = frame[[c for c in first if c in frame] + [c for c in frame if c not in first]]
    write_text(path, frame.to_csv(index=False))
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


# ---------------------------------------------------------------------- output paths and the lock

#: The lock file of an output folder (``fcntl.flock``: released when its process ends, however).
LOCK_NAME = ".spep.lock"


class FolderInUse(ValueError):
    """The output folder is locked by another running command (``spep reproduce``)."""


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_folder(path: Path, option: str = "--out") -> None:
    """Refuse an output folder that is a file, or sits in a folder this process cannot write.

    A missing folder is fine (it is made, parents too); nothing is written here.

    Raises:
        ValueError: ``{option} PATH: why: allowed ...``.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"{option} {str(path)!r} is {_kind(path)}: allowed a folder (made if missing)"
        )
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise ValueError(
            f"{option} {str(path)!r} is invalid: {str(existing)!r} is a file: allowed a folder "
            "(made if missing)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"{option} {str(path)!r} is invalid: {str(existing)!r} is not writable: allowed a "
            "folder you can write to"
        )


def check_output_file(path: Path, option: str = "--out") -> None:
    """Refuse an output file whose folder is missing or not writable, or that is not a regular file.

    An existing ``path`` must be a regular file (it is replaced): a folder, a symbolic link, a FIFO
    or a device is refused, never renamed over. Probes the folder with a temp file (removed at
    once), so that a run never finds out after the fact that its results cannot be written.

    Raises:
        ValueError: ``{option} PATH: why: allowed ...``.
    """
    path = Path(path)
    kind = _kind(path)
    if kind not in (None, "a file"):
        raise ValueError(
            f"{option} {str(path)!r} is {kind}: allowed a file name (a CSV file: a new file or a "
            "regular file, which is replaced)"
        )
    folder = path.absolute().parent
    if not folder.is_dir():
        what = "a file" if folder.exists() else "missing"
        raise ValueError(
            f"{option} {str(path)!r} is invalid: its folder {str(folder)!r} is {what}: allowed a "
            "file in an existing folder"
        )
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".spep-probe-")
        os.close(fd)
        os.unlink(probe)
        if kind is not None and not os.access(path, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as err:
        raise ValueError(
            f"{option} {str(path)!r} is invalid: cannot write there ({err.strerror}): allowed a "
            "file you can write"
        ) from None


def _kind(path: Path) -> str | None:
    """What ``path`` is, not following a symbolic link (``"a file"``: a regular file); None: absent."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    kinds = (
        (stat.S_ISREG, "a file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


@contextlib.contextmanager
def locked_output(
    out: Path, what: str, outputs: Sequence[str] = (), folders: Sequence[str] = ("runs",)
) -> Iterator[Path]:
    """Check ``out`` (``--out``), make it, hold its :func:`folder_lock` while the block runs.

    Before anything is made, every entry the command uses in ``out`` must be absent or of its kind:
    the lock file and each of ``outputs`` without a wildcard a regular file, each of ``folders``
    a folder. Once the lock is held, the ``outputs`` (glob patterns relative to ``out``) that an
    earlier command left are deleted, so that what the block writes is all the outputs there
    (:func:`remove_outputs`; the run files stay). A write the system refuses in the block (a full
    disk) ends it with one line (:func:`write_errors`).

    Raises:
        ValueError: a folder that cannot be written or made, an entry of another kind, a folder
            in use (:class:`FolderInUse`), or a write refused while the block runs.
    """
    out = Path(out)
    check_output_folder(out)
    for name in (LOCK_NAME, *(n for n in outputs if not glob.has_magic(n))):
        kind = _kind(out / name)
        if kind not in (None, "a file"):
            raise ValueError(
                f"--out {str(out)!r} is invalid: {str(out / name)!r} is {kind}: allowed a "
                "regular file there, or nothing"
            )
    for name in folders:
        if (out / name).exists() and not (out / name).is_dir():
            raise ValueError(
                f"--out {str(out)!r} is invalid: {str(out / name)!r} is {_kind(out / name)}: "
                "allowed a folder there, or nothing"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(
            f"--out {str(out)!r} is invalid: cannot make it ({err.strerror}): allowed a folder "
            "you can write to"
        ) from None
    resumes = "; the finished runs are kept, and the same command resumes from them"
    with folder_lock(out, what), write_errors(out, note=resumes):
        remove_outputs(out, outputs)
        yield out


def remove_outputs(out: Path, outputs: Iterable[str]) -> int:
    """Delete the files in ``out`` that match ``outputs`` (glob patterns); return how many."""
    stale = [p for pattern in outputs for p in Path(out).glob(pattern) if not p.is_dir()]
    for path in stale:
        path.unlink()
    return len(stale)


#: ``errno`` of a write the file system refused (a full disk or quota, a file too large, a
#: read-only file system): a condition to fix outside spep, said in one line, not a bug.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


@contextlib.contextmanager
def write_errors(folder: Path, option: str = "--out", note: str = "") -> Iterator[None]:
    """Turn a write refused in the block (:data:`WRITE_ERRNOS`) into one line (``ValueError``).

    The line names the file (the error's filename: :func:`write_text` sets it), or else
    ``folder``, and ends with ``note``. Other errors propagate unchanged.
    """
    try:
        yield
    except OSError as err:
        if err.errno not in WRITE_ERRNOS:
            raise
        where = repr(str(err.filename)) if err.filename else f"into {str(folder)!r}"
        raise ValueError(
            f"cannot write {where} ({err.strerror}): allowed an {option} with room that you can "
            f"write to{note}"
        ) from None


@contextlib.contextmanager
def folder_lock(folder: Path, what: str, option: str = "--out") -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (its :data:`LOCK_NAME` file) while the block runs.

    The lock is ``fcntl.flock`` on the lock file, which the system releases when the process ends,
    whatever ends it; the file holds the pid of the holder and its command (``what``), which the
    refusal of another command names. Without ``fcntl`` (Windows) nothing is locked.

    Raises:
        FolderInUse: another process holds the lock; nothing in the folder is changed.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover  (not on Linux or macOS)
        yield
        return
    path = Path(folder) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid, _, holder = os.read(fd, 256).decode(errors="replace").strip().partition(" ")
        os.close(fd)
        raise FolderInUse(
            f"{option} {str(folder)!r} is in use by another {holder or 'spep command'} (pid "
            f"{pid or 'unknown'}): allowed a folder no other spep command is writing; wait for it "
            f"to end or choose another {option}"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {what}\n".encode())
        yield
    finally:
        os.close(fd)
