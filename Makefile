# The two commands of the README: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo up test lint unit clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed node_modules/.installed

demo: install
	$(BIN)/chainwatch demo

up: install
	$(BIN)/chainwatch up

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy monitor rules connectors

unit: install
	$(BIN)/python -m pytest -ra tests/unit

test: lint
	$(BIN)/python -m pytest -ra

clean:
	rm -rf $(VENV) node_modules .chainwatch .pytest_cache .mypy_cache .ruff_cache
