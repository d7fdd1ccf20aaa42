# deltaboard: `make run` starts everything locally, `make test` runs the whole suite.
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
HOST ?= 127.0.0.1
WORKERS ?= 1

.PHONY: run test lint bench install install-dev frontend chromium clean lock

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# Pin what pyproject.toml allows to today's releases: resolve in a throwaway venv, freeze.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e '.[dev]'
	head -2 constraints.txt > constraints.new
	.lock-venv/bin/pip freeze --exclude-editable | grep -iv '^deltaboard' >> constraints.new
	mv constraints.new constraints.txt && rm -rf .lock-venv

install: $(VENV)/.installed frontend
install-dev: $(VENV)/.installed-dev frontend chromium

frontend: frontend/node_modules/.package-lock.json

frontend/node_modules/.package-lock.json: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Browser tests drive Debian's Chromium; install it when it is missing (CI runs as root).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: install
	$(VENV)/bin/deltaboard up --host $(HOST) --port $(PORT) --workers $(WORKERS)

test: install-dev
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -p no:cacheprovider

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint Dockerfile

# Benchmarks print figures (ratios against a peer measured in the same run); they assert nothing.
# PyTorch is the core's peer: installed here from local disk, never a runtime dependency.
FRONTEND_MINUTES ?= 10
bench: install-dev chromium
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) bench/core.py
	$(PY) bench/telemetry.py
	$(PY) bench/stream.py
	$(PY) bench/frontend.py --minutes $(FRONTEND_MINUTES)

clean:
	rm -rf $(VENV) frontend/node_modules .deltaboard
