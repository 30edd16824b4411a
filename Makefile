# Every target bootstraps .venv from pyproject.toml when it is missing or older than pyproject.toml.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SOURCES := services gateway tests scripts

.PHONY: install protos revision check-generated run test test-unit test-contract test-e2e lint fmt bench

$(BIN)/medsettle: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,lint]"
	touch $@

install: $(BIN)/medsettle

protos: install
	$(BIN)/python scripts/gen_protos.py
	cd protos && ../$(BIN)/buf lint

revision: install
	$(BIN)/python scripts/new_revision.py $(SERVICE) "$(MESSAGE)"

check-generated: install
	$(BIN)/python -m pytest -q tests/contract/test_generated_fresh.py

run: install
	$(BIN)/medsettle up --demo

test: install
	$(BIN)/python -m pytest

test-unit: install
	$(BIN)/python -m pytest -m unit

test-contract: install
	$(BIN)/python -m pytest -m contract

test-e2e: install
	$(BIN)/python -m pytest -m e2e

lint: install
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

bench: install
	@ls bench/*.py >/dev/null 2>&1 || { echo "no benchmark scripts yet"; exit 1; }
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done
