# Two commands set everything up: `make run` (the service on its embedded default) and
# `make test` (the whole suite). Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch goes in first, pinned, so no other dependency can pull a different build.
TORCH := torch==2.13.0

.PHONY: run test lint openapi lock clean bench-deps audit browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -c requirements.lock -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test]'
	touch $@

run: $(VENV)/.runtime
	$(BIN)/trainyard run

# The dashboard's tests drive Debian's Chromium (tests/e2e/test_dashboard.py).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null)

test: $(VENV)/.test browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# What bench/ needs beyond the tests (run each bench with `.venv/bin/python -m bench.<name>`).
bench-deps: $(VENV)/.test
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test,bench]'

# Known vulnerabilities in requirements.lock: a finding fails; no network skips, loudly.
audit: $(VENV)/.test
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test,audit]'
	$(BIN)/python .ci/audit.py requirements.lock

lint: $(VENV)/.test
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

openapi: $(VENV)/.runtime
	$(BIN)/trainyard openapi

# Re-pin after changing dependencies in pyproject.toml (torch stays out: it is pinned above).
lock: $(VENV)/.test
	$(BIN)/pip freeze --exclude-editable | grep -viE '^(torch|nvidia|triton|pip|setuptools|wheel)[=-]' > requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
