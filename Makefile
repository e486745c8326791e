# Developer entry points. Everything runs from the project virtualenv in .venv, created and
# (re)installed on demand: `make run` starts the whole service locally, `make test` tests it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help run test lint bench soak load eval-anomaly clean clean-data distclean check-python

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

run: $(STAMP)  ## run everything locally (embedded Kafka, PostgreSQL, VictoriaMetrics; demo feed)
	$(BIN)/energy-processing run

test: $(STAMP)  ## run the test suite
	$(BIN)/python -m pytest

lint: $(STAMP)  ## ruff check, ruff format --check, mypy --strict
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy

BENCH_STAMP := $(VENV)/.installed-bench

bench: $(BENCH_STAMP)  ## run the benchmark (python -m bench; BENCH_ARGS="--help" for options)
	$(BIN)/python -m bench $(BENCH_ARGS)

# The benchmark's peers (Quix Streams, pandas) and profilers: never needed by `make test`.
$(BENCH_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install --quiet --editable '.[dev,bench]'
	@touch $@

soak: $(STAMP)  ## sustained stream through the worker, memory and lag sampled (SOAK_MINUTES=10)
	$(BIN)/python -m tests.load.soak

load: $(STAMP)  ## API: 200 concurrent clients over 1M stored windows, latency and plans
	$(BIN)/python -m tests.load.api_load

eval-anomaly: $(STAMP)  ## online anomaly scores vs batch IsolationForest on labelled data (~1 min)
	$(BIN)/python -m eval

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "error: Python 3.11 or newer is required, '$(PYTHON)' is: $$($(PYTHON) --version 2>&1)." >&2; \
	  echo "       Install it, or run e.g. 'make PYTHON=python3.12 $(MAKECMDGOALS)'." >&2; \
	  exit 1; }

$(BIN)/python:
	@$(MAKE) --no-print-directory check-python PYTHON=$(PYTHON)
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever pyproject.toml changes (dependencies, entry points).
$(STAMP): pyproject.toml | $(BIN)/python
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "error: $(VENV) uses $$($(BIN)/python --version); Python 3.11+ is required. Run 'make distclean'." >&2; \
	  exit 1; }
	$(BIN)/python -m pip install --quiet --editable '.[dev]'
	@touch $@

clean:  ## remove caches and build output (keeps .venv and the local data in .data)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist bench/results
	find . -path ./$(VENV) -prune -o -name '*.egg-info' -prune -exec rm -rf {} + \
	  -o -name __pycache__ -prune -exec rm -rf {} +

clean-data:  ## remove the local data of `make run` (embedded PostgreSQL, VictoriaMetrics)
	rm -rf .data

distclean: clean clean-data  ## also remove the virtualenv
	rm -rf $(VENV)
