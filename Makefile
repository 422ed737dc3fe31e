# Two entry points: `make run` (set everything up and serve the portal) and `make test`.
# Each creates .venv itself, so both work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench clean

EXAMPLES := examples/links examples/stream_gages

$(STAMP): pyproject.toml tests/apps/pyproject.toml $(addsuffix /pyproject.toml,$(EXAMPLES))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,local]' -e tests/apps $(addprefix -e ,$(EXAMPLES))
	touch $(STAMP)

# PostgreSQL + PostGIS from apt when possible, then quickstart (resumable; Ctrl-C stops the portal).
run: $(STAMP)
	bash scripts/install-postgres.sh
	$(BIN)/storekeeper quickstart $(QUICKSTART_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# bench/links_load.py also needs wrk (Debian: apt-get install wrk) and the bench extra.
bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/run.py --json-out bench/results/core.json
	$(BIN)/python bench/copies.py --json-out bench/results/copies.json
	$(BIN)/python bench/links_load.py --json-out bench/results/links.json

clean:
	rm -rf $(VENV) .pytest_cache
