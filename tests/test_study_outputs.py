"""Issue 19, the outputs of the study commands: what they write, where, and what they trust.

Sections as in the issue: 1.1 ``--out`` onto a special file, 1.2 stale outputs of a rerun, 1.5 a
tampered run file, and the items of section 2 on the run store (a full disk, entries of the wrong
kind, the lock's holder, the run files' mode).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from agents.cli import main
from agents.study import reproduce

EVALUATE = ["evaluate", "--agent", "shortest", "--runs", "1", "--slots", "20", "--jobs", "1"]
QUALITY = ["quality", "--predictors", "frequency", "--runs", "1", "--slots", "50"]
REPRODUCE = ["reproduce", "--agents", "shortest", "--topologies", "erdos_renyi", "--runs", "1",
             "--slots", "30", "--jobs", "1", "--no-sensitivity", "--no-figures", "--no-progress"]  # fmt: skip


def _options(out: Path, **kw: Any) -> reproduce.Options:
    values: dict[str, Any] = {
        "agents": ("shortest",),
        "topologies": ("erdos_renyi",),
        "runs": 1,
        "slots": 30,
        "out": out,
        "jobs": 1,
        "sensitivity": False,
        "figures": False,
        "progress": False,
        **kw,
    }
    return reproduce.Options(**values)


def _snapshot(root: Path) -> dict[Path, tuple[int, int, bytes | None]]:
    """Every entry under ``root``: its mode, mtime and (for a regular file) its bytes."""
    seen = {}
    for path in [root, *root.rglob("*")]:
        st = os.lstat(path)
        body = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
        seen[path] = (st.st_mode, st.st_mtime_ns, body)
    return seen


def _one_line_error(capsys: pytest.CaptureFixture, *expected: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("spep: error: ") and err.count("\n") == 1, err
    for text in expected:
        assert text in err, (text, err)
    return err


# ---------------------------------------------------------------------- 1.1 --out onto a special file


def _special_files(tmp: Path) -> list[tuple[Path, str]]:
    """A FIFO, a symbolic link to a regular file and a character device, with their kinds."""
    fifo = tmp / "fifo.csv"
    os.mkfifo(fifo)
    target = tmp / "target.csv"
    target.write_text("keep\n")
    link = tmp / "link.csv"
    link.symlink_to(target)
    return [(fifo, "a FIFO"), (link, "a symbolic link"), (Path("/dev/null"), "a character device")]


@pytest.mark.parametrize("argv", [EVALUATE, QUALITY], ids=["evaluate", "quality"])
def test_out_onto_a_special_file_is_refused_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str]
) -> None:
    for path, kind in _special_files(tmp_path):
        before = os.lstat(path)
        capsys.readouterr()
        assert main([*argv, "--out", str(path)]) == 2, path
        _one_line_error(capsys, f"--out {str(path)!r} is {kind}: allowed a file name")
        after = os.lstat(path)
        assert (after.st_mode, after.st_ino, after.st_rdev) == (
            before.st_mode,
            before.st_ino,
            before.st_rdev,
        )
    assert (tmp_path / "target.csv").read_text() == "keep\n"
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_evaluate_refuses_a_special_out_in_python_too(tmp_path: Path) -> None:
    import agents

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"out = '.*fifo' is a FIFO: allowed a file name"):
        agents.evaluate("shortest", runs=1, jobs=1, out=str(fifo), episode_slots=20)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_regular_file_is_still_replaced(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "rows.csv"
    out.write_text("old\n")
    assert main([*EVALUATE, "--out", str(out)]) == 0
    assert pd.read_csv(out)["agent"].tolist() == ["shortest"]


def test_out_folder_of_another_kind_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert main([*REPRODUCE, "--out", str(fifo)]) == 2
    _one_line_error(capsys, f"--out {str(fifo)!r} is a FIFO: allowed a folder")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    (tmp_path / "real").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "real")  # a link to a folder is a folder
    assert main([*REPRODUCE, "--out", str(tmp_path / "linked")]) == 0
    assert (tmp_path / "real" / "results.csv").is_file()
