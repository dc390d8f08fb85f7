"""``spep calibrate``: the same seed gives the same fit, reruns reuse the runs, bad options fail."""

from __future__ import annotations

import os

# before numba loads: the compiled engine's runs as plain Python (no compile in the fast suite)
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")

import json

import numpy as np
import pytest

from agents.cli import main
from agents.study import calibrate

pytest.importorskip("optuna")


def _opts(out, **kw) -> calibrate.Options:
    values = {
        "trials": 4, "fit_runs": 1, "check_runs": 2, "slots": 60, "batch": 2,
        "topologies": ("erdos_renyi", "random_regular"), "out": out, "jobs": 1, "progress": False,
        **kw,
    }  # fmt: skip
    return calibrate.Options(**values)


def _trials(out):
    data = json.loads((out / "trials.json").read_text())
    return [(r["number"], r["params"], r["success"], r["loss_pp"]) for r in data["trials"]]


def test_same_seed_same_fit_and_a_rerun_runs_nothing(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert calibrate.calibrate(_opts(a)) == 0
    assert calibrate.calibrate(_opts(b)) == 0
    assert _trials(a) == _trials(b)  # same sampler seed, same seeds: the same trials and fit
    first = _trials(a)
    assert first[0][1] == calibrate.preset_values(calibrate.DEFAULT_PARAMETERS)  # the preset first
    best = json.loads((a / "trials.json").read_text())["best"]
    assert best["loss_pp"] == min(t[3] for t in first)
    # The loss is the RMS miss against the paper's shortest-path rates (29 % and 8 %).
    s = first[0][2]
    expected = (100 * (s["erdos_renyi"] - 0.29)) ** 2 + (100 * (s["random_regular"] - 0.08)) ** 2
    assert first[0][3] == pytest.approx((expected / 2) ** 0.5)
    report = (a / "calibration.md").read_text()
    assert f"{best['loss_pp']:.2f} ± " in report and "Out-of-sample check" in report
    assert "39–41" in report and "spep-frequency" in (a / "check.csv").read_text()
    # Run files make it resumable: the same command again finds every run on disk.
    runs = {p.name: p.read_bytes() for p in (a / "runs").glob("*.json")}
    # trials x topologies, then the check's agents and the preset's shortest on fresh seeds
    assert len(runs) == 4 * 2 + 3 * 2 * 2 + 2 * 2
    assert calibrate.calibrate(_opts(a)) == 0
    assert {p.name: p.read_bytes() for p in (a / "runs").glob("*.json")} == runs
    assert _trials(a) == first
    # Another sampler seed searches elsewhere (its fit seeds move with it).
    assert calibrate.calibrate(_opts(tmp_path / "c", seed=1, check_runs=1)) == 0
    assert [t[1] for t in _trials(tmp_path / "c")][1:] != [t[1] for t in first][1:]


def test_bad_options_fail_before_any_run(tmp_path, capsys):
    out = tmp_path / "out"
    for bad, message in (
        ({"trials": 0}, "--trials = 0"),
        ({"patience": 0}, "--patience = 0"),
        ({"params": ("link_capacity", "rhoo")}, "unknown parameter 'rhoo'; allowed: link_capacity"),
        ({"params": ()}, "unknown parameter"),
        ({"overrides": {"arrival_rate": 0.2}}, "'arrival_rate' is fitted"),
        ({"topologies": ("ring",)}, "the paper's table has erdos_renyi"),
        ({"overrides": {"link_capacity": 0}, "params": ("arrival_rate",)}, "'link_capacity'"),
    ):
        with pytest.raises(ValueError, match=message):
            calibrate.calibrate(_opts(out, **bad))
    assert not out.exists()
    assert main(["calibrate", "--params", "p_genn", "--out", str(out)]) == 2
    assert "unknown parameter 'p_genn'" in capsys.readouterr().err
    assert not out.exists()


def test_rms_miss_and_its_standard_error_match_a_simulation():
    from agents.study import stats

    rates = {"a": [0.30, 0.34, 0.26], "b": [0.10, 0.12, 0.08]}
    targets = {"a": 0.29, "b": 0.08}
    rms, se = stats.rms_miss(rates, targets)
    assert rms == pytest.approx(((0.01**2 + 0.02**2) / 2) ** 0.5)
    # d rms / d mean_g = miss_g / (2 rms); each mean's variance: sample variance / 3 runs
    grad = {"a": 0.01 / (2 * rms), "b": 0.02 / (2 * rms)}
    var = {"a": 0.04**2 / 3, "b": 0.02**2 / 3}
    assert se == pytest.approx((grad["a"] ** 2 * var["a"] + grad["b"] ** 2 * var["b"]) ** 0.5)
    # The delta method's SE is the spread of the RMS over repeated samples (a simulation).
    rng = np.random.default_rng(0)
    means, sds, n = {"a": 0.35, "b": 0.14}, {"a": 0.05, "b": 0.03}, 40
    draws = [{g: rng.normal(means[g], sds[g], n) for g in means} for _ in range(2000)]
    values = np.array([stats.rms_miss(d, targets)[0] for d in draws])
    ses = np.array([stats.rms_miss(d, targets)[1] for d in draws])
    assert np.mean(ses) == pytest.approx(values.std(), rel=0.1)
    assert np.isnan(stats.rms_miss({"a": [0.3]}, targets)[1])  # one run: no SE
    # Paired: noise that both configurations share cancels, so the SE of the difference is small.
    shared = {g: rng.normal(0, 0.05, n) for g in means}
    fit = {g: means[g] + shared[g] for g in means}
    preset = {g: means[g] + 0.01 + shared[g] + rng.normal(0, 0.001, n) for g in means}
    diff, diff_se = stats.rms_miss_difference(fit, preset, targets)
    assert diff == pytest.approx(
        stats.rms_miss(fit, targets)[0] - stats.rms_miss(preset, targets)[0]
    )
    assert diff_se < stats.rms_miss(fit, targets)[1] / 10
    assert np.isnan(stats.rms_miss_difference({"a": [0.1, 0.2]}, {"a": [0.1]}, targets)[1])


def test_the_search_stops_when_the_best_has_not_moved_by_its_noise():
    since = calibrate.trials_since_improvement
    # Trial 1 beats trial 0 by more than trial 0's SE; trial 2 is lower but within trial 1's SE
    # (it becomes the best without counting as a move); trial 4 moves the best again.
    losses = [5.0, 4.0, 3.9, 3.95, 3.0, 2.95]
    assert since(losses, [0.2] * 6) == 1
    assert since(losses[:4], [0.2] * 4) == 2
    assert since(losses, [0.01] * 6) == 0  # a smaller noise: every lower loss is a move
    assert since([3.0], [0.5]) == 0


def test_the_fit_is_scored_on_fresh_seeds_and_the_search_stops_by_its_rule(tmp_path):
    import pandas as pd

    from agents.study import stats

    out = tmp_path / "out"
    opts = _opts(out, trials=40, patience=2, check_runs=3)
    assert calibrate.calibrate(opts) == 0
    data = json.loads((out / "trials.json").read_text())
    losses = [r["loss_pp"] for r in data["trials"]]
    ses = [r["se_pp"] for r in data["trials"]]
    # It stopped at the first batch after which the best had not moved for `patience` trials.
    assert len(losses) < 40 and data["meta"]["trials"] == len(losses)
    assert calibrate.trials_since_improvement(losses, ses) >= 2
    assert calibrate.trials_since_improvement(losses[:-2], ses[:-2]) < 2
    assert "patience 2" in data["meta"]["stop"]
    # The fit and the preset meet the same fresh seeds; the scores come from those runs.
    fresh = data["fresh"]
    assert fresh["seeds"] == [1000, 1001, 1002]
    check = pd.read_csv(out / "check.csv")
    preset = pd.read_csv(out / "check_preset.csv")
    assert sorted(preset.seed.unique()) == sorted(check.seed.unique()) == fresh["seeds"]
    targets = {"erdos_renyi": 0.29, "random_regular": 0.08}
    short = check[check.agent == "shortest"].sort_values("seed")
    fit = {t: g.success_rate.to_numpy() for t, g in short.groupby("topology")}
    value, se = stats.rms_miss(fit, targets)
    assert fresh["fit"]["loss_pp"] == pytest.approx(100 * value)
    assert fresh["fit"]["se_pp"] == pytest.approx(100 * se)
    assert fresh["preset"]["loss_pp"] - fresh["fit"]["loss_pp"] == pytest.approx(
        -fresh["difference_pp"]
    )
    report = (out / "calibration.md").read_text()
    assert f"{fresh['fit']['loss_pp']:.2f} ± {fresh['fit']['se_pp']:.2f} pp" in report
    assert "Stopping rule" in report and data["meta"]["stop"] in report


def test_the_compiled_engine_gives_the_same_fit_and_check(tmp_path):
    """--engine compiled: the same trials, fit and check rows as the scalar engine."""
    scalar, fast = tmp_path / "scalar", tmp_path / "compiled"
    assert calibrate.calibrate(_opts(scalar, trials=2, check_runs=1)) == 0
    assert calibrate.calibrate(_opts(fast, trials=2, check_runs=1, engine="compiled")) == 0
    assert _trials(fast) == _trials(scalar)
    for name in ("check.csv", "check_preset.csv"):
        a, b = ((d / name).read_text().splitlines() for d in (scalar, fast))
        wall = a[0].split(",").index("wall_time_s")
        assert [r.split(",")[:wall] for r in a] == [r.split(",")[:wall] for r in b], name
    assert json.loads((fast / "meta.json").read_text())["engine"] == "compiled"
    with pytest.raises(ValueError, match=r"^--engine 'batched' is invalid for spep calibrate"):
        calibrate.calibrate(_opts(tmp_path / "x", engine="batched"))
