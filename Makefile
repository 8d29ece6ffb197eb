# Two commands from a fresh clone: `make demo` (images, offline) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: demo test test-all ui clean browser picture stack stack-test stack-down

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

# The README's picture, docs/storyboard.png: the demo's aurora-perfume storyboard made offline in a temporary data
# folder and instance (data/ and .dagster_home/ are left alone), scaled to 560 px wide.
picture: $(VENV)/.installed
	$(BIN)/python scripts/picture.py

# Debian's Chromium for the UI test (Playwright drives it; its own browser download cannot work here).
browser:
	scripts/install-browser.sh

# The fast tier: unit tests and in-process campaigns against the local protocol servers, two workers.
FAST := not subprocess and not server and not browser and not fault and not stack
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 --dist worksteal -m "$(FAST)" --durations=15

# Everything but the production stack's tests (make stack-test): the fast tier, then the adchain command in its
# own processes, dagster dev, the browser and the fault tests, one at a time.
test-all: $(VENV)/.installed-dev browser
	$(BIN)/python -m pytest -n 2 --dist worksteal -m "$(FAST)" --durations=15
	$(BIN)/python -m pytest -m "not ($(FAST)) and not stack" --durations=15

ui: $(VENV)/.installed
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# The production stack on loopback (deploy/README.md): PostgreSQL, Redis, moto's S3 server, dagster-daemon,
# two Celery workers and the webserver. `make stack-test` runs the tests that need it; `make stack-down` stops it.
stack: $(VENV)/.installed-dev
	scripts/stack/up.sh

stack-test: $(VENV)/.installed-dev
	test -s deploy/.stack/env || { echo "make stack first" >&2; exit 1; }
	ADCHAIN_STACK_ENV=$(CURDIR)/deploy/.stack/env $(BIN)/python -m pytest adchain_assets_tests/stack -m stack -v -x

stack-down:
	scripts/stack/down.sh

clean:
	rm -rf data/campaigns data/cache data/features data/ledger data/takes
	find .dagster_home -mindepth 1 ! -name dagster.yaml -exec rm -rf {} +
