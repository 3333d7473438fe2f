# The two commands: `make demo` runs the whole pipeline on embedded defaults (SQLite, Celery in
# process, the sandbox); `make test` runs the test suite (needs PostgreSQL and Redis: .ci/run
# starts them). Both create or reuse .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-all faults bench venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

demo: venv
	$(BIN)/leadgen demo

test: venv
	$(BIN)/pytest -q -m "not slow"

# Everything, including the long fault suite.
test-all: venv
	$(BIN)/pytest -q

faults: venv
	$(BIN)/pytest -q -m slow tests/e2e/test_faults.py

bench: venv
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache
