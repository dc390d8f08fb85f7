"""docs/scripts/learned_twins.py: which runs are twins, and the paired comparisons it stores."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("twins", ROOT / "docs/scripts/learned_twins.py")
assert spec is not None and spec.loader is not None
twins = importlib.util.module_from_spec(spec)
spec.loader.exec_module(twins)


def _meta(**changes: object) -> dict:
    meta = {
        "algo": "maskable_ppo", "config": {"preset": "paper", "p_gen": 0.5}, "seed": 10,
        "n_envs": 4, "timesteps": 1000, "wall_time_s": 5.0, "hyperparameters": {"n_epochs": 10},
        "policy_kwargs": {"features_extractor_kwargs": {"hidden": 16, "extra": ["demand_ema"]}},
    }  # fmt: skip
    return {**meta, **changes}


def _blind(**changes: object) -> dict:
    kwargs = {"hidden": 16, "extra": ["demand_ema"], "blank": ["demand", "demand_ema"]}
    return _meta(policy_kwargs={"features_extractor_kwargs": kwargs}, wall_time_s=6.0, **changes)


def test_twins_differ_only_in_the_blind_ones_blank_list() -> None:
    twins.check_twins(_meta(), _blind())  # wall time may differ
    with pytest.raises(ValueError, match="differ in seed"):
        twins.check_twins(_meta(), _blind(seed=11))
    with pytest.raises(ValueError, match="hyperparameters"):
        twins.check_twins(_meta(), _blind(hyperparameters={"n_epochs": 4}))
    with pytest.raises(ValueError, match="blank list only"):
        twins.check_twins(_meta(), _meta())  # no blank: not a demand-blind twin
    with pytest.raises(ValueError, match="blank list only"):
        twins.check_twins(_meta(), _blind(timesteps=2000))


def test_comparisons_pair_by_seed_per_topology_with_holm_per_family() -> None:
    rates = {
        twins.PREDICTIVE: [0.30, 0.32, 0.34, 0.36, 0.38],
        twins.BLIND: [0.29, 0.31, 0.33, 0.35, 0.37],  # predictive - blind = +0.01 on every seed
        "managed": [0.40] * 5,
        "random": [0.20] * 5,
        "shortest": [0.10, 0.12, 0.14, 0.16, 0.18],
        "highest_fidelity": [0.25] * 5,
    }
    df = pd.DataFrame(
        [
            {"agent": a, "topology": t, "seed": s, "success_rate": r}
            for t in ("erdos_renyi", "scale_free")
            for a, values in rates.items()
            for s, r in enumerate(values)
        ]
    )
    table = twins.comparisons(df)
    prediction = table[table["family"] == "prediction"]
    assert list(prediction["topology"]) == ["erdos_renyi", "scale_free"]
    assert prediction["mean_paired_difference"].to_numpy() == pytest.approx([0.01, 0.01])
    control = table[table["family"] == "control"]
    # each model against managed, random and the best baseline (highest_fidelity), per topology
    assert len(control) == 2 * 2 * 3
    assert set(control["baseline"]) == {"managed", "random", "highest_fidelity"}
    assert (table["wilcoxon_p_holm"] >= table["wilcoxon_p"]).all()


def test_slim_zip_drops_the_last_observations_and_keeps_the_rest(tmp_path: Path) -> None:
    import json
    import zipfile

    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps({"num_timesteps": 7, "_last_obs": [1] * 1000}))
        archive.writestr("policy.pth", b"weights")
    twins.slim_zip(path)
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("data")) == {"num_timesteps": 7}
        assert archive.read("policy.pth") == b"weights"
    before = path.read_bytes()
    twins.slim_zip(path)  # nothing to drop: left as it is
    assert path.read_bytes() == before
