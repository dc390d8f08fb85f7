# spep-gym: `make demo` and `make test` work on a fresh machine with Python 3.11 and pip.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch, installed before the project so that no CUDA build is pulled in.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo-out

.PHONY: venv test test-slow test-all test-bare lint pytest demo bench bench-gpu docs clean golden sequence-reference

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check spep_gym agents tests examples benchmarks validation
	$(BIN)/ruff format --check spep_gym agents tests examples benchmarks validation
	$(BIN)/mypy

# The fast suite, with the coverage floor of pyproject.toml ([tool.coverage.report] fail_under).
pytest: venv
	$(BIN)/python -m pytest -q -n 2 --cov --cov-report=term

test: lint pytest

test-slow: venv
	$(BIN)/python -m pytest -q -m slow

test-all: lint
	$(BIN)/python -m pytest -q -n 2 -m "slow or not slow"

# A small study with the random control (the slow LSTM and ARIMA agents left out: under a minute).
DEMO_AGENTS ?= shortest,random,spep-frequency,spep-oracle
demo: venv
	$(BIN)/spep reproduce --agents $(DEMO_AGENTS) --runs 3 --slots 500 --out $(DEMO_OUT)

bench: venv
	$(BIN)/python benchmarks/bench_env.py
	$(BIN)/python benchmarks/bench_agents.py
	$(BIN)/python benchmarks/bench_predictors.py

# The GPU check of issue 13 (one GPU, under 5 minutes): batched env-steps/s up to B = 65,536, training steps/s.
bench-gpu: venv
	PY=$(BIN)/python bash benchmarks/gpu_check.sh

# The bare environment installs and runs with its core dependencies only (no torch, sb3, ...).
test-bare:
	rm -rf .venv-bare
	$(PYTHON) -m venv .venv-bare
	.venv-bare/bin/pip install -q .
	.venv-bare/bin/python -c "import gymnasium as gym, spep_gym; env = gym.make('Spep-v0'); env.reset(seed=0); [env.step(env.action_space.sample()) for _ in range(200)]; print('bare environment OK')"
	rm -rf .venv-bare

# Rewrite the golden metrics (tests/data/golden_metrics.json): only for a deliberate change of the model.
golden: venv
	$(BIN)/python tests/test_golden.py --update

# SeQUeNCe reference data for the cross-validation (tests/data/sequence_reference.json, issue 11).
# SeQUeNCe 1.x needs Python 3.12 (under 3.11 pip silently installs 0.8.5); it is never a dependency of
# the package, and this target is not part of `make test`. About 10 minutes on 2 cores.
PY312 ?= /root/.pyenv/versions/3.12.1/bin/python3.12
SEQUENCE_SPEC ?= sequence==1.3.1
SEQ_VENV := .venv-sequence
SEQ_STAMP := $(SEQ_VENV)/.installed

$(SEQ_STAMP):
	$(if $(wildcard $(PY312)),$(PY312),python3.12) -m venv $(SEQ_VENV)
	$(SEQ_VENV)/bin/pip install -q --upgrade pip
	$(SEQ_VENV)/bin/pip install -q "$(SEQUENCE_SPEC)"
	touch $(SEQ_STAMP)

sequence-reference: $(SEQ_STAMP)
	$(SEQ_VENV)/bin/python validation/sequence_reference.py --out tests/data/sequence_reference.json

docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) .venv-bare $(SEQ_VENV) site $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
