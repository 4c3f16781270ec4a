# `make test` and `make demo` set up everything they need on a fresh machine;
# the stamps make a second run cost seconds.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: test test-thorough demo lint bench bench-quick bench-load clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-dev: pyproject.toml | $(PY)
	$(PIP) install -e '.[dev,local]'
	touch $@

$(VENV)/.stamp-local: pyproject.toml | $(PY)
	$(PIP) install -e '.[local]'
	touch $@

$(VENV)/.stamp-bench: pyproject.toml | $(PY)
	$(PIP) install -e '.[dev,local,bench]'
	touch $@

# dynalite is the independent DynamoDB implementation the tests start on 127.0.0.1.
node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: $(VENV)/.stamp-dev node_modules/.stamp
	$(PY) -m pytest

test-thorough: $(VENV)/.stamp-dev node_modules/.stamp
	HYPOTHESIS_PROFILE=thorough $(PY) -m pytest --hypothesis-show-statistics

demo: $(VENV)/.stamp-local
	$(VENV)/bin/fanout demo --connect 2 --send 1

lint: $(VENV)/.stamp-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Benchmarks (never part of `make test`): dynalite, a moto server queue, the local Management API.
# Writes benchmarks/results/ (quick runs: benchmarks/results/quick/).
bench: $(VENV)/.stamp-bench node_modules/.stamp
	$(PY) -m benchmarks.run

bench-quick: $(VENV)/.stamp-bench node_modules/.stamp
	$(PY) -m benchmarks.run --quick

# 1,000 WebSocket clients on `fanout serve` for a few minutes (not in CI): benchmarks/results/load.md.
bench-load: $(VENV)/.stamp-bench node_modules/.stamp
	$(PY) -m benchmarks.load
