# The two commands of the README: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo up test lint unit clean chromium deploy-tools audit audit-ci

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

unit: install deploy-tools
	$(BIN)/python -m pytest -ra tests/unit

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
chromium:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

# Debian's docker-compose 1.29 for tests/unit/test_deploy_compose.py (`config` needs no engine);
# --no-install-recommends keeps the Docker engine off the machine.
deploy-tools:
	@command -v docker-compose >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose; }

# Known vulnerabilities in the installed dependencies. --strict: a package that could not be
# checked fails the audit, so "could not reach the vulnerability service" is never a pass.
audit: install
	$(BIN)/pip-audit --strict --progress-spinner off --skip-editable

# The audit as CI runs it: a known vulnerability fails the build; packages the audit could not
# check (no vulnerability service reachable from the machine) are counted and said loudly.
audit-ci: install
	@$(BIN)/pip-audit --progress-spinner off --skip-editable > .audit.log 2>&1; status=$$?; \
	  unchecked=$$(grep -c "could not be audited" .audit.log); tail -n 3 .audit.log; \
	  [ "$$unchecked" -eq 0 ] || echo "pip-audit: $$unchecked packages could NOT be checked (vulnerability service unreachable): the audit is incomplete"; \
	  exit $$status

test: lint audit-ci chromium deploy-tools
	$(BIN)/python -m pytest -ra

clean:
	rm -rf $(VENV) node_modules .chainwatch .pytest_cache .mypy_cache .ruff_cache
