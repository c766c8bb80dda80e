# secure-fota developer commands. `make test` and `make demo` work from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help install lint typecheck test test-python clean

help:
	@echo "make test    - create .venv, install, lint, type-check and run every test"
	@echo "make demo    - create .venv, install, and run the end-to-end demo (fota demo)"
	@echo "make install - create .venv and install secure-fota with its test extras"
	@echo "make lint    - ruff"
	@echo "make clean   - remove build and test leftovers (keeps .venv)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy src

test-python: $(STAMP)
	$(BIN)/pytest

test: lint typecheck test-python

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache

.PHONY: demo
demo: $(STAMP)
	$(BIN)/fota demo
