# Two commands on a fresh machine: `make run` and `make test`. Each builds the virtual
# environment it needs in .venv (Python 3.11+, from PyPI) the first time.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Every dependency pinned, with hashes: `make lock` writes it from pyproject.toml's ranges.
LOCK   := requirements.lock
# A second venv with the LOWEST versions pyproject.toml declares, to show those ranges true.
LOWEST ?= .venv-lowest
LOWEST_TESTS := tests/unit tests/integration/test_storage.py tests/integration/test_event_sql.py \
	tests/integration/test_sqlite_engine.py tests/integration/test_group_commit.py \
	tests/integration/test_metrics.py tests/integration/test_access.py

.PHONY: run test test-lowest lint lock bench clean

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	@# a dependency added to pyproject.toml but not to the lock fails here: run `make lock`
	$(PY) -m pip check
	# bytecode now, as a non-editable install would have it: a process AGI starts per call,
	# and with PYTHONDONTWRITEBYTECODE set Python would compile the sources at every start
	$(PY) -m compileall -q callcenter agi_scripts
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/callcenter serve --demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

# the declared lower bounds, installed and tested: unit tests and the storage path on SQLite
# (and on PostgreSQL when CALLCENTER_TEST_DATABASE_URL is set)
test-lowest: $(STAMP)
	rm -rf $(LOWEST)
	$(VENV)/bin/uv venv --quiet --python $(PY) $(LOWEST)
	VIRTUAL_ENV=$(LOWEST) $(VENV)/bin/uv pip install --quiet --resolution lowest-direct -e '.[test]'
	VIRTUAL_ENV=$(LOWEST) $(VENV)/bin/uv pip list --quiet 2>/dev/null \
		| grep -iE '^(sqlalchemy|aiosqlite|asyncpg|aiohttp|alembic|holidays|pytest) '
	$(LOWEST)/bin/python -m pytest -q -p no:cacheprovider $(LOWEST_TESTS)

# after a change of pyproject.toml's dependencies: pin the newest versions its ranges allow
# (no dependency on the install step: that fails while the lock lacks a new dependency)
lock:
	test -x $(VENV)/bin/uv || { $(PYTHON) -m venv $(VENV) && $(PY) -m pip install --quiet uv; }
	$(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		--extra test pyproject.toml -o $(LOCK)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# every benchmark in bench/, one after the other, and their figures as one table in
# bench/README.md (between its markers). QUICK=1: small sizes, a smoke run of 2-3 minutes whose
# table goes to var/bench-quick.md. BENCH_PG: a PostgreSQL database of the benchmarks' own
# (its public schema is wiped), e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/bench;
# without it only SQLite is measured. One benchmark alone: $(PY) bench/bench_events.py --help
QUICK    ?=
BENCH_PG ?=
bench: $(STAMP)
	$(PY) bench/run_all.py $(if $(QUICK),--quick) $(if $(BENCH_PG),--pg $(BENCH_PG))

clean:
	rm -rf $(VENV) $(LOWEST) var .pytest_cache .ruff_cache .import_linter_cache
