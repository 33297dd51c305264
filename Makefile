# Codespace Hub. `make run` starts the hub on 127.0.0.1; `make test` runs the tests.
# Every target installs what it needs first and is safe to run again.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
PYTEST_ARGS ?=

.PHONY: install install-system install-run-system install-node install-extension run test bench lint clean

## install: .venv with the project (editable) and its platform/test/dev dependencies, Node tools
install: $(VENV)/.installed install-node install-extension

$(VENV)/.installed: setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[platform,test,dev]'
	@touch $@

## install-node: configurable-http-proxy, code-server and playwright-core under .tools/
install-node:
	@bash scripts/install-node.sh $(TOOLS)

## install-extension: build the JupyterLab extension when its sources changed (skipped if absent)
install-extension: $(VENV)/.installed install-node
	@if [ -x scripts/build-labextension.sh ]; then bash scripts/build-labextension.sh; fi

## install-system: Debian packages the tests use (git, sshd, chromium, ripgrep); only as root
install-system:
	@bash scripts/install-system.sh

## install-run-system: what the hub uses when it runs (git, bubblewrap, sshd, code-server's build
## needs); only as root
install-run-system:
	@bash scripts/install-system.sh --run

## run: install (as root the Debian packages first), then start the hub on 127.0.0.1 and print
## the URL and how to log in
run: install-run-system install
	$(BIN)/codespace-hub $(HUB_ARGS)

## test: install test dependencies (Debian and npm packages when root), then run pytest
test: install-system install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: print speed ratios against baselines measured in the same run
bench: install
	@set -e; for script in benchmarks/bench_*.py; do $(BIN)/python $$script; done

## lint: ruff and the import-linter contracts
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(TOOLS) build *.egg-info
