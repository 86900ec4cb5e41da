# customers-mngr — every target sets itself up (a fresh machine needs only Python 3.11+ and MySQL/MariaDB).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The local MySQL/MariaDB of a development machine (root, empty password).
DATABASE_URL ?= mysql://root@127.0.0.1:3306/customers_mngr
PYTEST := $(BIN)/python -m pytest

.PHONY: help venv run test test-fast lint typecheck docs clean fmt bench bench-quick bench-profile binary image-test reliability

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install the package with its dev tools

run: $(STAMP)  ## set up, then run the whole daemon (mode all, development) against the local MySQL
	APP_ENV=development DATABASE_URL='$(DATABASE_URL)' LOG_FORMAT=$${LOG_FORMAT:-console} \
		$(BIN)/customers-mngr run --mode all

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check daemon tests ecs packaging
	$(BIN)/ruff format --check daemon tests ecs packaging

typecheck: $(STAMP)  ## mypy --strict on the package
	$(BIN)/mypy

docs: $(STAMP)  ## regenerate the README sections derived from code
	$(BIN)/python -m daemon.docs README.md

test-fast: $(STAMP)  ## the quick inner loop: unit and DB tests, no subprocess-heavy ones
	$(PYTEST) -q -m "not slow and not image and not binary and not reliability" -x

test: $(STAMP) lint typecheck  ## set up, then the whole suite (what CI runs), image test included
	$(PYTEST) -q
	$(MAKE) --no-print-directory image-test

binary: $(STAMP)  ## build the PyInstaller binary: dist/customers-mngr (one-dir bundle, see packaging/README.md)
	packaging/build.sh $(BIN)/python

image-test: $(STAMP)  ## build docker/Dockerfile and run it for real: containers, flow, compose (needs root)
	$(BIN)/python -m tests.packaging.image_test

# `make test` runs tests/reliability too (they are under tests/); this target runs only them and
# rewrites docs/reliability.md from the figures of the run.
reliability: $(STAMP)  ## fault, load and hostile-input suite (~7 min): figures table, docs/reliability.md rewritten (RELIABILITY_SOAK=1: longer)
	RELIABILITY_REPORT=docs/reliability.md $(PYTEST) -q tests/reliability

clean:  ## remove build and cache folders
	rm -rf build dist .bench .reliability .mypy_cache .ruff_cache .pytest_cache .hypothesis

fmt: $(STAMP)  ## format and autofix
	$(BIN)/ruff format daemon tests ecs packaging
	$(BIN)/ruff check --fix daemon tests ecs packaging

# --- benchmarks (tests/bench; bench-only dependencies in the `bench` extra, wrk from apt) ---
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }; } || \
		echo "wrk is not installed: the bench falls back to its own aiohttp load generator"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)  ## full benchmark (~15 min): table printed, JSON to BENCH_OUT (.bench/results.json), README performance section rewritten
	$(BIN)/python -m tests.bench --readme README.md

bench-quick: $(BENCH_STAMP)  ## reduced benchmark (< 3 min): table printed, JSON to BENCH_OUT (.bench/results.json); README untouched
	$(BIN)/python -m tests.bench --quick

bench-profile: $(BENCH_STAMP)  ## profile the sync hot path (pyinstrument) into .bench/profile-*
	$(BIN)/python -m tests.bench.profiling
