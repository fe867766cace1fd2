# The two README commands: `make run` serves (SQLite + built-in policies), `make test` runs the suite.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml uv.lock | cksum | cut -d' ' -f1)
# uv installs exactly the versions in uv.lock (what CI tested); pip only bootstraps this pinned uv.
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/uv-$(UV_VERSION)/bin/uv

.PHONY: run test install lock openapi examples clean bench

$(UV):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)/uv-$(UV_VERSION)
	$(TOOLS)/uv-$(UV_VERSION)/bin/pip install --quiet uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --locked --extra test --python $(PYTHON) --quiet
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/policy-server run

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# After changing dependencies in pyproject.toml: resolve again and commit uv.lock.
lock: | $(UV)
	$(UV) lock

openapi: $(STAMP)
	$(BIN)/policy-server openapi

# After an API change: capture every operation's answer on the demo project for the docs, then the spec.
examples: $(STAMP)
	$(BIN)/python -m tests.support.capture_examples
	$(BIN)/policy-server openapi

clean:
	rm -rf $(VENV) $(TOOLS) data .pytest_cache test-artifacts

bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)
