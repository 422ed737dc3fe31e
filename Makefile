# Two entry points: `make run` (set up a home and show the CLI) and `make test`.
# Each creates .venv itself, so both work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml tests/apps/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]' -e tests/apps
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/storekeeper db upgrade
	$(BIN)/storekeeper --help

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py --json-out bench/results/core.json
	$(BIN)/python bench/copies.py --json-out bench/results/copies.json

clean:
	rm -rf $(VENV) .pytest_cache
