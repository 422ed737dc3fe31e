# Two entry points: `make run` (set everything up and serve the portal) and `make test`.
# Each creates its own virtual environment, so both work on a fresh clone:
#   .venv       storekeeper (with the embedded PostgreSQL fallback) and the example apps
#   .venv-test  the same plus the test tools, Granian (storekeeper start --server granian), the sample apps of tests/apps, and the Tethys
#               compatibility package (compat/tethys) with the Tethys-layout sample apps of tests/tethys_apps
PYTHON   ?= python3
VENV     ?= .venv
TEST_VENV ?= .venv-test
BIN      := $(VENV)/bin
TEST_BIN := $(TEST_VENV)/bin
EXAMPLES := examples/links examples/stream_gages
EXAMPLE_PROJECTS := $(addsuffix /pyproject.toml,$(EXAMPLES))
# tethys_sdk on storekeeper (distribution storekeeper-tethys), and apps installed as Tethys installs them.
TETHYS_COMPAT := compat/tethys
TETHYS_APPS := tests/tethys_apps/tethysapp-dam_inventory tests/tethys_apps/tethysapp-flood_points
TETHYS_PROJECTS := $(TETHYS_COMPAT)/pyproject.toml $(addsuffix /pyproject.toml,$(TETHYS_APPS))

.PHONY: run test docs bench tethys clean

$(VENV)/.installed: pyproject.toml $(EXAMPLE_PROJECTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[local]' $(addprefix -e ,$(EXAMPLES))
	touch $@

$(TEST_VENV)/.installed: pyproject.toml tests/apps/pyproject.toml $(EXAMPLE_PROJECTS) $(TETHYS_PROJECTS)
	$(PYTHON) -m venv $(TEST_VENV)
	$(TEST_BIN)/python -m pip install -q --upgrade pip
	$(TEST_BIN)/python -m pip install -q -e '.[test,local,granian]' -e tests/apps $(addprefix -e ,$(EXAMPLES)) \
		-e $(TETHYS_COMPAT) $(addprefix -e ,$(TETHYS_APPS))
	touch $@

# Tethys apps on storekeeper: tethys_sdk's stand-in into .venv (same as: pip install -e compat/tethys).
# Then install each Tethys app as a plain package: .venv/bin/pip install -e path/to/tethysapp-my_app
tethys: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e $(TETHYS_COMPAT)

# PostgreSQL + PostGIS from apt when possible, then quickstart (resumable; Ctrl-C stops the portal).
run: $(VENV)/.installed
	bash scripts/install-postgres.sh
	$(BIN)/storekeeper quickstart $(QUICKSTART_ARGS)

test: $(TEST_VENV)/.installed
	$(TEST_BIN)/python -m pytest $(PYTEST_ARGS)

# The documentation site, into site/: regenerate the reference pages from the code, then build (strict: a
# broken link or a page missing from the nav fails).
docs: $(TEST_VENV)/.installed
	$(TEST_BIN)/python scripts/gen_docs.py
	NO_MKDOCS_2_WARNING=1 $(TEST_BIN)/mkdocs build --strict --site-dir site

# bench/links_load.py also needs wrk (Debian: apt-get install wrk) and the bench extra.
bench: $(TEST_VENV)/.installed
	$(TEST_BIN)/python -m pip install -q -e '.[bench]'
	$(TEST_BIN)/python bench/run.py --json-out bench/results/core.json
	$(TEST_BIN)/python bench/copies.py --json-out bench/results/copies.json
	$(TEST_BIN)/python bench/links_load.py --json-out bench/results/links.json

clean:
	rm -rf $(VENV) $(TEST_VENV) .pytest_cache site
