# leadstream developer commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help run test lint typecheck format bench chaos install compiled clean

help: ## list the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "leadstream needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,preview]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install leadstream with test tools

run: $(STAMP) ## local Kafka + worker + demo traffic + tail of lead.qualified; Ctrl-C stops all
	$(BIN)/leadstream up

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy
	$(BIN)/mypy
	$(BIN)/mypy deploy/compile_scoring.py

test: $(STAMP) lint typecheck ## lint, types, unit and integration tests (starts its own Kafka)
	@$(BIN)/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

format: $(STAMP) ## ruff format + autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) ## throughput/latency/memory/recovery benchmark against the local broker
	$(BIN)/python -m bench.run

chaos: $(STAMP) ## kill -9 a worker under live load + a broker restart; counts what went wrong
	$(BIN)/python -m bench.chaos

compiled: $(STAMP) ## compile scoring/ with mypyc in place (needs a C compiler; `make clean` undoes)
	$(BIN)/python deploy/compile_scoring.py

clean: ## remove the virtualenv, local state and a mypyc build (keeps the Kafka jar cache)
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
	rm -f scoring/*.so
