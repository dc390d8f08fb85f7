"""Issue 19, the outputs of the study commands: what they write, where, and what they trust.

Sections as in the issue: 1.1 ``--out`` onto a special file, 1.2 stale outputs of a rerun, 1.5 a
tampered run file, and the items of section 2 on the run store (a full disk, entries of the wrong
kind, the lock's holder, the run files' mode).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import reproduce_options

from agents.cli import main
from agents.study import plan, reproduce, store

EVALUATE = ["evaluate", "--agent", "shortest", "--runs", "1", "--slots", "20", "--jobs", "1"]
QUALITY = ["quality", "--predictors", "frequency", "--runs", "1", "--slots", "50"]
REPRODUCE = ["reproduce", "--agents", "shortest", "--topologies", "erdos_renyi", "--runs", "1",
             "--slots", "30", "--jobs", "1", "--no-sensitivity", "--no-figures", "--no-progress"]  # fmt: skip


def _options(out: Path, **kw: Any) -> reproduce.Options:
    return reproduce_options(out, **{"runs": 1, "slots": 30, **kw})


def _snapshot(root: Path) -> dict[Path, tuple[int, int, bytes | None]]:
    """Every entry under ``root``: its mode, mtime and (for a regular file) its bytes."""
    seen = {}
    for path in [root, *root.rglob("*")]:
        st = os.lstat(path)
        body = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
        seen[path] = (st.st_mode, st.st_mtime_ns, body)
    return seen


def _one_line_error(capsys: pytest.CaptureFixture, *expected: str, started: bool = False) -> str:
    """The one line of error on stderr (after the command's start line where it ``started``)."""
    err = capsys.readouterr().err
    if started:
        start, err = err.split("\n", 1)
        assert start.startswith("spep reproduce: 1 runs ("), start
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


# ---------------------------------------------------------------------- 1.5 a tampered run file


@pytest.fixture(scope="module")
def good_payload() -> tuple[dict[str, Any], plan.Task]:
    """A real run file's content (a run that served and failed requests) and its task."""
    task = plan.Task("erdos_renyi", "spep-frequency", 3, 300, (("arrival_rate", 0.5),))
    payload = reproduce.run_task(task)
    row = payload["row"]
    assert row["served"] > 0 and row["failed"] > 0 and row["prepositions_placed"] > 0
    assert store.check_payload(payload, task) is None
    return payload, task


TAMPERED: dict[str, tuple[dict[str, Any], str]] = {
    "issue": ({"arrived": -7, "success_rate": 0.999}, "row arrived = -7: expected a count >= 0"),
    "negative-count": ({"pairs_generated": -1}, "row pairs_generated = -1: expected a count >= 0"),
    "pending": ({"pending": "+1"}, "row pending = "),
    "served": ({"served": "+1"}, "row pending = "),
    "rate-range": ({"utilization": 1.5}, "row utilization = 1.5: expected a number in [0, 1]"),
    "rate-counts": ({"success_rate": 0.999}, "row success_rate = 0.999: its counts give"),
    "rate-none": ({"preposition_use_rate": None}, "row preposition_use_rate = None: its counts"),
    "mean": ({"avg_latency": "*2"}, "row avg_latency = "),
    "weight": ({"failed_weight": -1.0}, "row failed_weight = -1.0: expected a number >= 0"),
    "fidelity": ({"avg_fidelity": 1.25}, "row avg_fidelity = 1.25: expected a number in [0, 1]"),
}


def _tamper(payload: dict[str, Any], edits: dict[str, Any]) -> dict[str, Any]:
    bad = json.loads(json.dumps(payload))
    row = bad["row"]
    for column, value in edits.items():
        if value == "+1":
            row[column] += 1
        elif value == "*2":
            row[column] *= 2
        else:
            row[column] = value
    return bad


@pytest.mark.parametrize("how", list(TAMPERED))
def test_a_row_that_its_counts_contradict_is_rejected(
    good_payload: tuple[dict[str, Any], plan.Task], how: str
) -> None:
    payload, task = good_payload
    edits, reason = TAMPERED[how]
    assert reason in (store.check_payload(_tamper(payload, edits), task) or ""), how


def test_rates_are_checked_within_float_tolerance(
    good_payload: tuple[dict[str, Any], plan.Task],
) -> None:
    payload, task = good_payload
    row = payload["row"]
    nudged = {"success_rate": row["success_rate"] * (1 + 1e-13)}
    assert store.check_payload(_tamper(payload, nudged), task) is None


def test_a_tampered_run_file_is_named_and_run_again(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    opts = _options(out, slots=200, overrides={"arrival_rate": 0.5})
    assert reproduce.reproduce(opts) == 0
    good = pd.read_csv(out / "results.csv")
    (path,) = (out / "runs").glob("*.json")
    path.write_text(json.dumps(_tamper(json.loads(path.read_text()), TAMPERED["issue"][0])))
    capsys.readouterr()
    assert reproduce.reproduce(opts) == 0
    err = capsys.readouterr().err
    assert f"rerunning {path.name}: row arrived = -7: expected a count >= 0" in err
    assert "(0 already done" in err
    df = pd.read_csv(out / "results.csv")
    pd.testing.assert_frame_equal(df.drop(columns="wall_time_s"), good.drop(columns="wall_time_s"))


# ---------------------------------------------------------------------- 1.2 stale outputs of a rerun


def _outputs(out: Path) -> set[str]:
    """The outputs in ``out`` (run files and the lock left out)."""
    return {
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file() and "runs" not in p.parts and p.name != store.LOCK_NAME
    }


def test_a_rerun_reports_only_what_it_was_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    assert reproduce.reproduce(_options(out, sensitivity=True, figures=True)) == 0
    report = (out / "report.md").read_text()
    assert "## Sensitivity" in report and "## Figures" in report
    assert {"sensitivity.csv", "figures/sensitivity.png", "figures/fig3_success_rate.png"} <= (
        _outputs(out)
    )
    runs = set((out / "runs").iterdir())

    # Another config, without the sensitivity study and the figures: nothing of the first remains.
    assert main([*REPRODUCE, "--out", str(out), "--set", "link_capacity=3"]) == 0
    report = (out / "report.md").read_text()
    assert "| **link_capacity** | **3** (paper: 1) | **--set** |" in report
    assert "Sensitivity" not in report and "## Figures" not in report and "![" not in report
    outputs = {
        "results.csv",
        "summary.csv",
        "tests.csv",
        "prediction.csv",
        "meta.json",
        "report.md",
    }
    assert _outputs(out) == outputs
    assert (pd.read_csv(out / "results.csv")["agent"] == "shortest").all()
    assert runs < set((out / "runs").iterdir())  # the run files of both stay

    # The sensitivity study alone: no main tables from the results.csv of the run before.
    opts = _options(out, main=False, sensitivity=True, overrides={"link_capacity": 2})
    assert reproduce.reproduce(opts) == 0
    report = (out / "report.md").read_text()
    assert "## Sensitivity" in report
    for section in ("Controlled comparison", "beside the paper's", "Results per topology"):
        assert section not in report, section
    assert _outputs(out) == {"sensitivity.csv", "meta.json", "report.md"}


def test_a_regimes_rerun_without_figures_leaves_no_heatmap(tmp_path: Path) -> None:
    from agents.study import regimes

    out = tmp_path / "map"
    only = {"physics": ("paper",), "latency": ("0",), "end_memory": ("equal",)}
    only |= {"link_layer": ("block",), "load": ("paper",)}
    opts = regimes.Options(
        topologies=("erdos_renyi",), runs=2, slots=30, out=out, jobs=1, progress=False, only=only
    )
    assert regimes.run_regimes(opts) == 0
    assert any(name.startswith("figures/heatmap_") for name in _outputs(out))
    assert regimes.run_regimes(dataclasses.replace(opts, figures=False)) == 0
    assert _outputs(out) == {
        "regimes.csv", "cells.csv", "gains.csv", "prediction.csv", "cells.md", "summary.md",
        "meta.json",
    }  # fmt: skip


# ---------------------------------------------------------------------- 2. the run store's errors


@pytest.mark.parametrize(
    ("entry", "make", "expected"),
    [
        ("runs", "file", "/runs' is a file: allowed a folder there"),
        ("figures", "file", "/figures' is a file: allowed a folder there"),
        (store.LOCK_NAME, "folder", f"/{store.LOCK_NAME}' is a folder: allowed a regular file"),
        ("results.csv", "folder", "/results.csv' is a folder: allowed a regular file"),
        ("report.md", "link", "/report.md' is a symbolic link: allowed a regular file"),
    ],
)
def test_an_entry_of_the_wrong_kind_is_one_line_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture, entry: str, make: str, expected: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere").write_text("keep\n")
    if make == "file":
        (out / entry).write_text("x")
    elif make == "folder":
        (out / entry).mkdir()
    else:
        (out / entry).symlink_to(tmp_path / "elsewhere")
    before = _snapshot(tmp_path)
    assert main([*REPRODUCE, "--out", str(out)]) == 2
    _one_line_error(capsys, f"--out {str(out)!r} is invalid: ", expected)
    assert _snapshot(tmp_path) == before


def test_regimes_refuses_an_entry_of_the_wrong_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "map"
    (out / "regimes.csv").mkdir(parents=True)
    before = _snapshot(tmp_path)
    assert main(["regimes", "--runs", "1", "--slots", "20", "--out", str(out)]) == 2
    _one_line_error(capsys, "/regimes.csv' is a folder: allowed a regular file")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["calibration.md", "trials.json"])
def test_calibrate_refuses_an_output_of_the_wrong_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture, name: str
) -> None:
    out = tmp_path / "fit"
    (out / name).mkdir(parents=True)
    before = _snapshot(tmp_path)
    assert main(["calibrate", "--trials", "1", "--out", str(out)]) == 2
    _one_line_error(capsys, f"/{name}' is a folder: allowed a regular file")
    assert _snapshot(tmp_path) == before


def test_a_calibrate_rerun_starts_without_the_outputs_of_the_last(tmp_path: Path) -> None:
    from agents.study import calibrate

    out = tmp_path / "fit"
    out.mkdir()
    for name in calibrate.OUTPUTS:
        (out / name).write_text("stale")
    with store.locked_output(out, "spep calibrate", calibrate.OUTPUTS):
        assert sorted(p.name for p in out.iterdir()) == [store.LOCK_NAME]


def test_a_folder_in_use_names_the_command_that_holds_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with (
        store.folder_lock(out, "spep reproduce"),
        pytest.raises(store.FolderInUse) as caught,
        store.locked_output(out, "spep calibrate"),
    ):
        pass  # pragma: no cover  (the lock is held)
    message = str(caught.value)
    assert f"--out {str(out)!r} is in use by another spep reproduce (pid {os.getpid()})" in message
    assert "spep calibrate" not in message.split(":")[0]


def _no_space(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    monkeypatch.setattr(os, "fsync", _no_space)  # the first run file cannot be written
    assert main([*REPRODUCE, "--out", str(out)]) == 2
    err = _one_line_error(
        capsys, f"cannot write '{out / 'runs'}/erdos_renyi__shortest__0__", started=True
    )
    assert ".json' (No space left on device)" in err
    assert not list((out / "runs").iterdir())  # no run file, no temp file
    monkeypatch.undo()
    assert main([*REPRODUCE, "--out", str(out)]) == 0  # once there is room, it runs


def test_a_full_disk_while_writing_the_outputs_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents.study import report

    out = tmp_path / "out"
    monkeypatch.setattr(report, "write_report", _no_space)
    assert main([*REPRODUCE, "--out", str(out)]) == 2
    _one_line_error(
        capsys, f"cannot write into {str(out)!r} (No space left on device)", started=True
    )
    assert len(list((out / "runs").glob("*.json"))) == 1  # the run done is kept


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_run_files_get_the_mode_of_any_other_output(tmp_path: Path, umask: int) -> None:
    out = tmp_path / "out"
    old = os.umask(umask)
    try:
        assert reproduce.reproduce(_options(out)) == 0
    finally:
        os.umask(old)
    (run,) = (out / "runs").glob("*.json")
    for path in (run, out / "results.csv"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_a_full_disk_while_writing_the_report_names_it_and_leaves_no_part(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    real_open = open

    def no_room_for_the_report(path: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(path).name.startswith("report.md"):
            _no_space()
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(store, "open", no_room_for_the_report, raising=False)
    assert main([*REPRODUCE, "--out", str(out)]) == 2
    _one_line_error(capsys, f"cannot write {str(out / 'report.md')!r} (No space left", started=True)
    assert not list(out.glob("report.md*"))
    assert (out / "results.csv").is_file()


@pytest.mark.parametrize("command", [EVALUATE, QUALITY], ids=["evaluate", "quality"])
def test_a_full_disk_under_evaluate_out_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, command: list
) -> None:
    rows = tmp_path / "rows.csv"
    real_open = open

    def no_room(path: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(path).name.startswith("rows.csv"):
            _no_space()
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(store, "open", no_room, raising=False)
    assert main([*command, "--out", str(rows)]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"spep: error: cannot write {str(rows)!r} (No space left on device)")
    assert list(tmp_path.iterdir()) == []  # no part of it


def test_only_a_refused_write_becomes_one_line(tmp_path: Path) -> None:
    with pytest.raises(OSError) as caught, store.write_errors(tmp_path):
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))  # a bug, not the disk: unchanged
    assert caught.value.errno == errno.EBADF
    refused = r"cannot write into '.*' \(Read-only file system\)"
    with pytest.raises(ValueError, match=refused), store.write_errors(tmp_path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
