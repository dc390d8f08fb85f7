"""``spep reproduce``: planning, resume after interrupts and crashes, outputs, report, backends."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import reproduce_options

from agents import run_episode
from agents.baselines import BASELINES
from agents.cli import main
from agents.study import plan, reproduce, stats, store
from agents.study.evaluate import COLUMNS
from agents.study.tables import fmt

ROOT = Path(__file__).resolve().parents[1]


def _options(out: Path, **kw) -> reproduce.Options:
    return reproduce_options(out, **{"agents": ("reactive", "shortest"), **kw})


def test_plan_shares_seeds_and_reuses_main_runs_in_the_sensitivity_study():
    tasks = plan.plan(plan.PAPER_AGENTS, ("erdos_renyi", "scale_free"), 3, 100, 5, {"rho": 0.95})
    main_tasks = [t for t in tasks if t.study == plan.MAIN]
    assert len(main_tasks) == 2 * 7 * 3
    for agent in plan.PAPER_AGENTS:  # common random numbers: every agent runs seeds 5, 6, 7
        assert sorted(t.seed for t in main_tasks if t.agent == agent) == [5, 5, 6, 6, 7, 7]
    sens = [t for t in tasks if t.study == plan.SENSITIVITY]
    assert len(sens) == len(plan.SENSITIVITY_VARIANTS) * len(plan.SENSITIVITY_AGENTS) * 3
    assert all(dict(t.overrides)["rho"] == 0.95 for t in tasks)  # --set applies everywhere
    unique = plan.schedule(tasks)
    # The preset variant on Erdős–Rényi is the main study's run: same key, one run (random is
    # not among the paper's agents, so its preset runs are the sensitivity study's own).
    shared = len([a for a in plan.SENSITIVITY_AGENTS if a in plan.PAPER_AGENTS])
    assert len(unique) == len(main_tasks) + len(sens) - shared * 3
    assert len({t.filename for t in unique}) == len(unique)
    slow = [i for i, t in enumerate(unique) if t.agent in plan.SLOW_AGENTS]
    assert slow == list(range(len(slow)))  # slow agents start first
    # Another slot count or override is another run.
    other = plan.Task("erdos_renyi", "shortest", 5, 200, (("rho", 0.95),))
    assert other.filename not in {t.filename for t in unique}


def test_unknown_agent_or_bad_option_fails_before_any_run(tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"unknown agent.*'nope'.*registered"):
        reproduce.reproduce(_options(out, agents=("shortest", "nope")))
    with pytest.raises(ValueError, match="unknown topology 'ring'"):
        reproduce.reproduce(_options(out, topologies=("ring",)))
    with pytest.raises(ValueError, match="--topologies"):
        reproduce.reproduce(_options(out, overrides={"topology": "scale_free"}))
    with pytest.raises(ValueError, match="'rho'"):  # the config's own validation
        reproduce.reproduce(_options(out, overrides={"rho": 2.0}))
    with pytest.raises(ValueError, match="--runs = 0"):
        reproduce.reproduce(_options(out, runs=0))
    assert not out.exists()
    assert main(["reproduce", "--agents", "shortestt", "--out", str(out)]) == 2
    assert "unknown agent(s) 'shortestt'" in capsys.readouterr().err
    assert not out.exists()


def test_run_files_are_atomic_and_unreadable_files_are_rerun(tmp_path):
    task = plan.Task("erdos_renyi", "shortest", 0, 50)
    payload = reproduce.run_task(task)
    store.write_run(tmp_path, task, payload)
    assert [p.name for p in tmp_path.iterdir()] == [task.filename]
    assert store.load_runs(tmp_path, [task]) == {task: json.loads(json.dumps(payload))}
    # A half-written temp file is never read; stale ones are deleted before a run.
    (tmp_path / (task.filename + ".x.tmp")).write_text('{"key": {"topology": "erd')
    assert store.load_runs(tmp_path, [task])[task]["row"] == payload["row"]
    assert store.remove_temp_files(tmp_path) == 1
    # A file of another config (the key does not match) does not count as done.
    other = plan.Task("erdos_renyi", "shortest", 0, 50, (("rho", 0.9),))
    (tmp_path / other.filename).write_text((tmp_path / task.filename).read_text())
    with pytest.warns(UserWarning, match=r"key differs: config_hash .*overrides \{\}"):
        assert store.load_runs(tmp_path, [other]) == {}
    # An unparsable run file: skipped with a warning, its run done again.
    (tmp_path / task.filename).write_text('{"version": 1, "key": ')
    with pytest.warns(UserWarning, match="unreadable run file"):
        assert store.load_runs(tmp_path, [task]) == {}


def test_rows_are_run_episode_rows_and_served_samples_are_kept(tmp_path):
    task = plan.Task("scale_free", "highest_fidelity", 3, 120, (("arrival_rate", 0.3),))
    payload = reproduce.run_task(task)
    row = run_episode("highest_fidelity", 3, task.config())
    row.pop("wall_time_s")
    assert {k: v for k, v in payload["row"].items() if k != "wall_time_s"} == row
    assert len(payload["served_latency"]) == len(payload["served_fidelity"]) == row["served"]
    assert row["served"] == 0 or (
        sum(payload["served_latency"]) == pytest.approx(row["latency_sum"])
        and sum(payload["served_fidelity"]) == pytest.approx(row["fidelity_sum"], abs=1e-3)
    )


def test_small_reproduction_writes_every_file_and_resumes(tmp_path):
    out = tmp_path / "out"
    opts = _options(
        out,
        agents=("reactive", "shortest", "spep-frequency"),
        topologies=("erdos_renyi", "scale_free"),
        runs=2,
        slots=100,
        sensitivity=True,
        figures=True,
    )
    assert reproduce.reproduce(opts) == 0
    for name in ("results.csv", "sensitivity.csv", "summary.csv", "tests.csv", "meta.json"):
        assert (out / name).stat().st_size > 0, name
    figures = {p.name for p in (out / "figures").glob("*.png")}
    assert figures == {
        "fig3_success_rate.png",
        "fig4_latency.png",
        "fig5_fidelity.png",
        "utilization.png",
        "fig6_distributions_erdos_renyi.png",
        "fig8_distributions_scale_free.png",
        "sensitivity.png",
    }
    report = (out / "report.md").read_text()
    for name in figures:
        assert f"(figures/{name})" in report
    df = pd.read_csv(out / "results.csv")
    assert tuple(df.columns[: len(COLUMNS)]) == COLUMNS
    assert len(df) == 2 * 3 * 2 and not df.duplicated(["topology", "agent", "seed"]).any()
    sens = pd.read_csv(out / "sensitivity.csv")
    assert len(sens) == len(plan.SENSITIVITY_VARIANTS) * len(plan.SENSITIVITY_AGENTS) * 2
    assert set(sens["variant"]) == {label for label, _ in plan.SENSITIVITY_VARIANTS}
    # The sensitivity's preset rows are the main study's runs.
    preset = sens[(sens.variant == "paper preset") & (sens.agent == "shortest")]
    main_er = df[(df.topology == "erdos_renyi") & (df.agent == "shortest")]
    assert preset["success_rate"].tolist() == main_er["success_rate"].tolist()
    files = sorted((out / "runs").glob("*.json"))
    assert len(files) == len(plan.schedule(plan.plan(
        opts.agents, opts.topologies, 2, 100, 0, {}, sensitivity=True
    )))  # fmt: skip
    before = {p.name: p.read_bytes() for p in files}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["runs_executed"] == len(files) and meta["slots"] == 100
    assert meta["command"] == (
        "spep reproduce --agents reactive,shortest,spep-frequency --topologies "
        f"erdos_renyi,scale_free --runs 2 --slots 100 --out {out} --jobs 1"
    )
    assert f"by `{meta['command']}`" in (out / "report.md").read_text()
    # The same command again runs nothing and rebuilds the same results.
    assert reproduce.reproduce(opts) == 0
    assert {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")} == before
    assert json.loads((out / "meta.json").read_text())["runs_executed"] == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), df)


def test_report_numbers_come_from_the_results_file(tmp_path):
    from agents.study.report import write_report

    out = tmp_path / "out"
    opts = _options(out, agents=("shortest", "spep-frequency"), runs=3, slots=100)
    assert reproduce.reproduce(opts) == 0
    df = pd.read_csv(out / "results.csv")
    report = (out / "report.md").read_text()
    for agent in ("shortest", "spep-frequency"):
        values = df[df.agent == agent]["success_rate"]
        mean, low, high, _ = stats.mean_ci(values)
        assert fmt(mean, (high - low) / 2) in report
    # Change the file: the report follows it, not the runs.
    df.loc[df.agent == "shortest", "success_rate"] = [0.111, 0.222, 0.333]
    df.to_csv(out / "results.csv", index=False)
    write_report(out)
    report = (out / "report.md").read_text()
    mean, low, high, _ = stats.mean_ci([0.111, 0.222, 0.333])
    assert fmt(mean, (high - low) / 2) == "22.2 ± 27.6"
    assert "| erdos_renyi | shortest | 3 | 22.2 ± 27.6 |" in report
    assert "Wall time of this invocation" in report and "| rho | 0.96 |  |" in report


def test_overrides_are_marked_in_the_report_and_change_the_run_key(tmp_path):
    out = tmp_path / "out"
    assert reproduce.reproduce(_options(out, overrides={"link_capacity": 2}, runs=1)) == 0
    report = (out / "report.md").read_text()
    assert "| **link_capacity** | **2** (paper: 1) | **--set** |" in report
    assert "| episode_slots | 60 | **--slots** |" in report and "| preset | paper |  |" in report
    assert (
        reproduce.reproduce(_options(out, runs=1)) == 0
    )  # the preset: new runs beside the old ones
    assert len(list((out / "runs").glob("*.json"))) == 4
    # --set preset=physical: the report lists the physical preset's values, the runs are new
    physical = _options(out, overrides={"preset": "physical"}, runs=1)
    assert reproduce.reproduce(physical) == 0
    report = (out / "report.md").read_text()
    assert "| preset | physical | **--set** |" in report
    assert "| decay_model | 'depolarizing' |  |" in report
    assert len(list((out / "runs").glob("*.json"))) == 6


def _cmd(out: Path, jobs: int) -> list[str]:
    return [
        sys.executable, "-m", "agents.cli", "reproduce",
        "--agents", ",".join(BASELINES), "--topologies", "erdos_renyi,scale_free",
        "--runs", "8", "--slots", "200", "--set", "num_nodes=10",
        "--out", str(out), "--jobs", str(jobs), "--no-sensitivity", "--no-figures",
        "--no-progress",
    ]  # fmt: skip


def _kill_when_runs_exist(cmd: list[str], runs_dir: Path, sig: int, count: int = 4):
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a test run started as a background job of a shell without job control inherits SIGINT
        # ignored, and Python then keeps it ignored: give the command Ctrl-C's default back
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if runs_dir.exists() and len(list(runs_dir.glob("*.json"))) >= count:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr


@pytest.mark.parametrize(("sig", "jobs"), [(signal.SIGINT, 2), (signal.SIGKILL, 1)])
def test_resume_after_interrupt_or_crash_loses_and_duplicates_nothing(tmp_path, sig, jobs):
    out = tmp_path / "out"
    runs_dir = out / "runs"
    code, stderr = _kill_when_runs_exist(_cmd(out, jobs), runs_dir, sig)
    done = {p.name: p.read_bytes() for p in runs_dir.glob("*.json")}
    total = 2 * 3 * 8
    assert 4 <= len(done) < total
    if sig == signal.SIGINT:
        assert code == 130 and "Run the same command again to resume" in stderr
        partial = pd.read_csv(out / "results.csv")  # what was done, written on the way out
        assert len(partial) == len(done)
    else:
        assert code == -signal.SIGKILL
    # A crash mid-write leaves a temp file; a run file may be cut short too.
    (runs_dir / "scale_free__shortest__7__abc.json.1234.tmp").write_text('{"version": 1, "ke')
    assert not (runs_dir / "scale_free__shortest__7__abc.json").exists()
    resumed = subprocess.run(_cmd(out, jobs), cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"({len(done)} already done" in resumed.stderr
    files = {p.name: p.read_bytes() for p in runs_dir.glob("*.json")}
    assert len(files) == total and not list(runs_dir.glob("*.tmp"))
    assert all(files[name] == content for name, content in done.items())  # not run again
    df = pd.read_csv(out / "results.csv")
    assert len(df) == total and not df.duplicated(["topology", "agent", "seed"]).any()
    assert set(df["seed"]) == set(range(8))


def test_interrupted_serial_run_keeps_finished_runs(tmp_path, monkeypatch, capsys):
    """Ctrl-C in the driver (jobs=1): the finished runs stay, results.csv has them, exit 130."""
    calls = {"n": 0}
    real = reproduce.run_task

    def flaky(task):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(reproduce, "run_task", flaky)
    out = tmp_path / "out"
    assert reproduce.reproduce(_options(out, runs=3)) == 130
    assert "Run the same command again to resume" in capsys.readouterr().err
    assert len(pd.read_csv(out / "results.csv")) == 2
    monkeypatch.setattr(reproduce, "run_task", real)
    assert reproduce.reproduce(_options(out, runs=3)) == 0
    assert len(pd.read_csv(out / "results.csv")) == 6


def test_failed_run_is_reported_and_the_rest_kept(tmp_path, monkeypatch, capsys):
    real = reproduce.run_task

    def broken(task):
        if task.seed == 1 and task.agent == "shortest":
            raise RuntimeError("boom")
        return real(task)

    monkeypatch.setattr(reproduce, "run_task", broken)
    out = tmp_path / "out"
    assert reproduce.reproduce(_options(out)) == 1
    err = capsys.readouterr().err
    assert "boom" in err and "1 run(s) failed" in err
    assert len(pd.read_csv(out / "results.csv")) == 3


def _rows(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "results.csv").drop(columns=["wall_time_s"])


def test_process_pool_gives_the_same_rows_as_serial(tmp_path):
    kw = {"agents": ("reactive", "highest_fidelity"), "runs": 2, "slots": 80}
    assert reproduce.reproduce(_options(tmp_path / "a", jobs=1, **kw)) == 0
    assert reproduce.reproduce(_options(tmp_path / "b", jobs=2, **kw)) == 0
    pd.testing.assert_frame_equal(_rows(tmp_path / "a"), _rows(tmp_path / "b"))


def test_ray_backend_gives_the_same_rows_as_local(tmp_path):
    """A local Ray instance (a few seconds to start) runs the same tasks to the same rows."""
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    opts = _options(out, agents=("reactive", "shortest"), runs=2, slots=80, backend="ray", jobs=1)
    assert reproduce.reproduce(opts) == 0
    tasks = plan.plan(opts.agents, opts.topologies, 2, 80, 0, {}, sensitivity=False)
    store.write_csv(tmp_path / "local.csv", (reproduce.run_task(t)["row"] for t in tasks), COLUMNS)
    local = pd.read_csv(tmp_path / "local.csv").drop(columns=["wall_time_s"])
    pd.testing.assert_frame_equal(_rows(out), local)
    assert (out / "report.md").exists()
