# Quick start:  make run   (set up, then the default experiment)
#               make test  (set up, then lint, type-check and the whole test suite)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup run test lint bench clean

setup: $(VENV)/.installed

# CPU PyTorch is pinned explicitly: an unpinned torch pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "poisonlab needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,flower,mnist,ray,kg,rules,scale]'
	touch $@

run: setup
	$(BIN)/poisonlab run

lint: setup
	$(BIN)/ruff check poisonlab tests benchmarks
	$(BIN)/ruff format --check poisonlab tests benchmarks
	$(BIN)/mypy poisonlab

test: lint
	$(BIN)/python -m pytest

# Each script prints its table and exits 1 on a missed bar; make goes on to the next (-).
bench: setup
	-$(BIN)/python benchmarks/bench_default_run.py
	-$(BIN)/python benchmarks/bench_attack_bars.py
	-$(BIN)/python benchmarks/bench_detection.py
	-$(BIN)/python benchmarks/bench_clean_quiet.py
	-$(BIN)/python benchmarks/bench_regression.py
	-$(BIN)/python benchmarks/bench_regression_grid.py
	-$(BIN)/python benchmarks/bench_aggregators.py
	-$(BIN)/python benchmarks/bench_federated.py
	-$(BIN)/python benchmarks/bench_report.py
	-$(BIN)/python benchmarks/bench_ray.py
	-$(BIN)/python benchmarks/bench_scale.py --grid
	-$(BIN)/python benchmarks/bench_stream.py
	-$(BIN)/python benchmarks/bench_ledger.py
	-$(BIN)/python benchmarks/bench_kg.py
	-$(BIN)/python benchmarks/bench_rules.py
	-$(BIN)/python benchmarks/bench_privacy.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
