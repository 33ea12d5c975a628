# Two commands set everything up: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help demo test lint typecheck schemas model clean all

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "streamer needs Python >= 3.11; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP) ## Start the embedded broker + Postgres + worker, score 10,000 applications, print a summary
	$(PY) -m streamer demo

test: $(STAMP) lint ## Lint, type-check and run the whole suite against the embedded servers
	$(PY) -m pytest

lint: $(STAMP) ## ruff and mypy (strict)
	$(VENV)/bin/ruff check streamer schemas training tests
	$(VENV)/bin/mypy

schemas: $(STAMP) ## Regenerate schemas/json from the pydantic models
	$(PY) -m schemas

model: $(STAMP) ## Retrain and re-export the shipped default model
	SOURCE_DATE_EPOCH=1795305600 $(PY) -m training train  # the shipped model's training date, so the bytes match

all: lint test

clean: ## Remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
