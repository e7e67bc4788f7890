# Hookshelf: every entry point a developer or CI needs. `make demo` and `make test` work
# on a fresh Debian machine as root: both start with `setup`, which installs what's missing.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf
RUFF := $(VENV)/bin/ruff
# The released contract as a buf image: `make lint` fails on any change buf's FILE rules
# call breaking (a field or RPC removed, renumbered, retyped); `make baseline` moves it.
BUF_BASELINE := protos/baseline/hookshelf-v1.binpb
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="tests/unit -x"`.
PYTEST_ARGS ?=

.PHONY: help setup generate check-generated lint baseline test test-stress postgres test-tools demo bench

help:
	@echo "make setup            .venv (Python deps) and node_modules (buf); idempotent"
	@echo "make demo             both services on SQLite + a real Borg backup wrapped in hooks"
	@echo "make test             setup, make sure PostgreSQL runs, run the whole test suite"
	@echo "make test-stress      the test suite three times in a row beside two CPU burners"
	@echo "make lint             buf lint, buf format --diff, buf breaking (vs the baseline), ruff check, ruff format --check, layer contracts (import-linter), mypy"
	@echo "make baseline         at a release: record protos/ as the contract buf breaking checks against"
	@echo "make generate         regenerate shared/stubs from protos/"
	@echo "make check-generated  fail if shared/stubs drifted from protos/"
	@echo "make bench            library and executor benchmarks (needs PostgreSQL)"

setup:
	@bash scripts/setup.sh

generate: setup
	$(PY) scripts/generate_stubs.py

check-generated: setup
	@bash scripts/check_generated.sh

lint: setup
	$(BUF) lint
	$(BUF) format --diff --exit-code
	$(BUF) breaking --against $(BUF_BASELINE)
	$(RUFF) check .
	$(RUFF) format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# Release step: after tagging, record the contract as released (fails if it breaks the old
# one). Source info is left out: comments are not contract, and the image stays small.
baseline: setup
	$(BUF) breaking --against $(BUF_BASELINE)
	$(BUF) build --exclude-source-info -o $(BUF_BASELINE)

postgres:
	@bash scripts/ensure_postgres.sh

# borg, MariaDB, database clients, shellcheck: what the tests drive for real.
test-tools:
	@bash scripts/ensure_test_tools.sh

# pytest exits 5 when it collected nothing: that is a failure here, never a pass.
test: setup postgres test-tools
	@status=0; $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

# Timing assumptions show up on a busy machine: run the suite (PYTEST_ARGS honoured) three
# times with two CPU burners; the first failing run fails the target.
test-stress: setup postgres test-tools
	@PY=$(PY) PYTEST_ARGS="$(PYTEST_ARGS)" bash scripts/test_stress.sh

demo: setup
	@bash scripts/demo_borg.sh

bench: setup postgres
	$(PY) bench/library/bench_library.py
	$(PY) bench/library/bench_request_memory.py
	$(PY) bench/executor/bench_executor.py
