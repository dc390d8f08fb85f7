"""The laws are written once, in spep_gym/physics.py, and the batched core calls them on tensors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from spep_gym import physics

torch = pytest.importorskip("torch")

BATCHED = Path(__file__).resolve().parents[1] / "spep_gym" / "batched"
F = [0.0, 0.25, 0.5, 0.6123456789, 0.92, 0.999, 1.0]
AGES = [0, 1, 2, 7, 15, 40]


@pytest.mark.parametrize("model", physics.DECAY_MODELS)
def test_decay_on_tensors_is_the_scalar_law_bit_for_bit(model):
    rho = 0.96
    f = torch.tensor([[x] for x in F], dtype=torch.float64)
    power = torch.tensor([[rho**k for k in AGES]], dtype=torch.float64)  # the core's pow table
    got = physics.decayed_by(f, power, model)
    want = [[physics.decayed(x, rho, k, model) for k in AGES] for x in F]
    assert got.tolist() == want
    ages = np.array(AGES)
    assert physics.decayed_array(np.array(F)[:, None], rho, ages, model).tolist() == [
        [physics.decayed_by(x, rho**ages, model)[i] for i in range(len(AGES))] for x in F
    ]


@pytest.mark.parametrize("model", physics.SWAP_MODELS)
def test_swap_laws_on_tensors_are_the_scalar_laws_bit_for_bit(model):
    x = torch.tensor(F, dtype=torch.float64)
    assert physics.link_factor(x, model).tolist() == [physics.link_factor(v, model) for v in F]
    assert physics.fidelity_from_product(x, model).tolist() == [
        physics.fidelity_from_product(v, model) for v in F
    ]


def test_the_batched_core_holds_no_copy_of_a_law():
    # the laws' arithmetic: depolarizing decay, Werner fidelity from a product, the link factors
    copies = re.compile(r"0\.25 \+ \(|\(1\.0 \+ 3\.0 \*|3\.0 \* \w+ \+ 1\.0\)|4\.0 \* \w+ - 1\.0\)")
    found = [
        f"{p.name}: {line.strip()}"
        for p in sorted(BATCHED.glob("*.py"))
        for line in p.read_text(encoding="utf-8").splitlines()
        if copies.search(line) and not line.lstrip().startswith("#")
    ]
    assert found == []
    uses = "".join(p.read_text(encoding="utf-8") for p in BATCHED.glob("*.py"))
    assert "physics.decayed_by(" in uses and "physics.fidelity_from_product(" in uses
