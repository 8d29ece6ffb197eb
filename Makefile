# Two commands from a fresh clone: `make demo` (images, offline) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: demo test ui clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/adchain demo

# Debian's Chromium for the UI test (Playwright drives it; its own browser download cannot work here).
browser:
	scripts/install-browser.sh

test: $(VENV)/.installed-dev browser
	$(BIN)/python -m pytest

ui: $(VENV)/.installed
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean:
	rm -rf data/campaigns data/cache .dagster_home
