# The two README commands: `make run` serves (SQLite + built-in policies), `make test` runs the suite.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test install openapi clean bench

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/policy-server run

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

openapi: $(STAMP)
	$(BIN)/policy-server openapi

clean:
	rm -rf $(VENV) data .pytest_cache test-artifacts

bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)
