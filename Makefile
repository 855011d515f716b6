# Two commands on a fresh machine: `make run` and `make test`. Each builds the virtual
# environment it needs in .venv (Python 3.11+, from PyPI) the first time.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
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

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) bench/bench_calendar.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .import_linter_cache
