# xero-elt: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast lint bench bench-smoke clean

# Installs the project and its test tools into .venv, with the exact versions we test with.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,bench,dagster]"
	@touch $(STAMP)

install: $(STAMP)

## The whole story against the local Xero sandbox, into demo-data/xero_elt.duckdb.
demo: $(STAMP)
	$(BIN)/xero-elt demo

# Two workers (pytest-xdist): most tests wait on the sandbox's latency, their subprocesses or
# Dagster, so two at a time on two cores take about half the time. `TEST_WORKERS=0` runs in one
# process (the way to debug with pdb or -x).
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist worksteal)

## Every test: browser, PostgreSQL, kill and fuzz tests included.
test: $(STAMP)
	$(BIN)/python -m pytest $(XDIST)

## The quick subset for development (under 3 minutes).
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) -q \
	  -m "not slow and not browser and not postgres and not hardening"

## ruff, then the house's import rules (import-linter contracts in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m bench

bench-smoke: $(STAMP)
	$(BIN)/python -m bench --smoke

clean:
	rm -rf $(VENV) demo-data .xero-elt .pytest_cache
