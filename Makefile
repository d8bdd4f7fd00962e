# Two targets are the whole set-up: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := dev,notebooks,dask

.PHONY: demo test test-fast bench lint clean

# What `.ci/run` sets, so the README's `make test` behaves the same on a busy machine: Prefect's
# embedded server may take a minute to start (its default wait is 20 s), figures render headless,
# and Prefect's telemetry (server analytics, the SDK's and its notice) stays off. The suite starts one Prefect server per test
# process and shares it (tests/conftest.py, `prefect_harness`).
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export MPLBACKEND ?= Agg

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/uv pip install --python $(BIN)/python --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/surveillance demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check surveillance flows tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
