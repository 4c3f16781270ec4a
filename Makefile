# `make test` and `make demo` set up everything they need on a fresh machine;
# the stamps make a second run cost seconds.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: test test-ci test-thorough test-browser demo lint bench bench-quick bench-load clean package

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-dev: pyproject.toml | $(PY)
	$(PIP) install -e '.[dev,local]'
	touch $@

$(VENV)/.stamp-local: pyproject.toml | $(PY)
	$(PIP) install -e '.[local]'
	touch $@

$(VENV)/.stamp-browser: pyproject.toml | $(PY)
	$(PIP) install -e '.[dev,local,browser]'
	touch $@

$(VENV)/.stamp-bench: pyproject.toml | $(PY)
	$(PIP) install -e '.[dev,local,bench]'
	touch $@

# dynalite is the independent DynamoDB implementation the tests start on 127.0.0.1.
node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Every property on every strategy, each backend on each path that differs by backend, in
# under 3 minutes on 2 cores (docs/testing.md#tiers); the slowest tests are listed. Three
# workers: a third of a worker's time is spent waiting on servers and sockets.
test: $(VENV)/.stamp-dev node_modules/.stamp
	$(PY) -m pytest -n 3 --dist worksteal --durations=15

# CI: make test, then the tests marked `ci`: the rest of the backend and strategy matrix
# (tests/support/tiers.py), and tests too slow for make test or that fetch from the package
# index.
test-ci: test
	$(PY) -m pytest -n 3 --dist worksteal --durations=15 -m ci

# Everything but the browser, with 10x the examples, random each run.
test-thorough: $(VENV)/.stamp-dev node_modules/.stamp
	HYPOTHESIS_PROFILE=thorough $(PY) -m pytest -n 2 --dist worksteal -m "not browser" --durations=15 \
	  --hypothesis-show-statistics

# The console in a real browser: Debian's chromium (installed with apt-get when missing and
# this runs as root), driven by Playwright's Python package; no browser build is downloaded.
test-browser: $(VENV)/.stamp-browser chromium
	$(PY) -m pytest -m browser

.PHONY: chromium
chromium:
	@[ -n "$$FANOUT_CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; \
	  else \
	    echo "test-browser needs Chromium: run as root on Debian (apt-get install chromium)," \
	      "or put a chromium on PATH (or set FANOUT_CHROMIUM)" >&2; exit 1; \
	  fi; }

demo: $(VENV)/.stamp-local
	$(VENV)/bin/fanout demo --connect 2 --send 1

lint: $(VENV)/.stamp-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# What Lambda runs: build/lambda/function/ (template.yaml's CodeUri), build/lambda/authorizer/
# (the sign-in function's: the same with PyJWT) and build/lambda/layer.zip, without boto3 (the
# runtime's); prints their sizes. EXTRAS="jwt" adds optional extras.
package: $(VENV)/.stamp-dev
	$(PY) -m fanout_core.deploy.package $(foreach extra,$(EXTRAS),--extra $(extra))

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
