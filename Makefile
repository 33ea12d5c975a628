# Two commands set everything up: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHECKOV := $(VENV)/checkov/bin/checkov
QUIX := $(VENV)/quix/.installed
MLFLOW := $(VENV)/mlflow/bin/mlflow
# actionlint (tests/deploy lints .github/workflows): its PyPI wrapper downloads the binary from GitHub's
# releases when installed, which this machine cannot reach; Go's module proxy serves the source, so it is
# built. Without Go the workflow tests skip and say so.
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := .cache/go-tools/actionlint-$(ACTIONLINT_VERSION)/actionlint

# The broker `make soak` and `make bench` run on: kafka (Apache Kafka, what production runs) or tansu.
BROKER ?= kafka

.DEFAULT_GOAL := help
.PHONY: help lock demo test test-servers test-offline test-overload soak bench lint typecheck schemas model clean all

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

# Every venv is installed from a lock with hashes (requirements/*.txt, `make lock` re-resolves them): pip
# refuses any package, version or file the lock does not name. The project itself is then installed without
# dependencies and without build isolation, from the locked build backend (requirements/build.txt).
PIP_LOCKED := -m pip install --quiet --disable-pip-version-check --require-hashes
$(STAMP): pyproject.toml requirements/build.txt requirements/dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "streamer needs Python >= 3.11; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) $(PIP_LOCKED) -r requirements/build.txt
	$(PY) $(PIP_LOCKED) -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# checkov (tests/deploy scans the rendered k8s manifests and the Terraform module) lives in its own venv: it
# pins an old `packaging` and pulls ~90 packages that the project's environment should not carry. It does
# not need the project's venv, so `make test` installs both at once.
$(CHECKOV): requirements/checkov.txt
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python $(PIP_LOCKED) -r requirements/checkov.txt
	@touch $@

# The MLflow tracking server (tests/integration/test_mlflow_*.py start one) lives in its own venv as well:
# the full `mlflow` package brings Flask, SQLAlchemy, alembic, gunicorn and more, and caps pyarrow below the
# training extra's pin. The project's venv holds only the client, mlflow-skinny (the `mlflow` extra).
$(MLFLOW): requirements/mlflow.txt
	$(PYTHON) -m venv $(VENV)/mlflow
	$(VENV)/mlflow/bin/python $(PIP_LOCKED) -r requirements/mlflow.txt
	@touch $@
	@touch $@

$(ACTIONLINT):
	@if command -v go >/dev/null; then \
		GOBIN=$(CURDIR)/$(dir $@) GOPATH=$(CURDIR)/.cache/go-tools/gopath GOFLAGS=-modcacherw \
			go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION); \
	else echo "go not found: actionlint is not built, and tests/deploy/test_workflows.py skips it"; fi

# Quix Streams (the bench's quix_streams and quix_passthrough systems) lives in its own venv too: quixstreams
# 3.28.1 needs confluent-kafka < 2.13, pydantic < 2.14 and pydantic-settings < 2.16, older than the project
# pins. Only `make bench` needs it; bench/run.py starts the Quix systems with .venv/quix/bin/python.
$(QUIX): requirements/quix.txt
	$(PYTHON) -m venv $(VENV)/quix
	$(VENV)/quix/bin/python $(PIP_LOCKED) -r requirements/quix.txt
	@touch $@

# Re-resolve every lock after a change to pyproject.toml or requirements/*.in. Universal (any OS, Python
# >= 3.11), with the hashes of every published file of each pinned version; uv prints each lock's command
# in its header. Needs PyPI. tests/deploy/test_locks.py fails when a lock and its inputs disagree.
LOCK = $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes
lock: ## Re-resolve requirements/*.txt (the locks with hashes) from pyproject.toml and requirements/*.in
	$(LOCK) pyproject.toml --extra otel --extra mlflow -o requirements/runtime.txt
	$(LOCK) pyproject.toml --extra dev -o requirements/dev.txt
	for name in build checkov mlflow quix sbom; do $(LOCK) requirements/$$name.in -o requirements/$$name.txt; done

demo: $(STAMP) ## Start the embedded broker + Postgres + worker, score 10,000 applications, print a summary
	$(PY) -m streamer demo

test: ## Lint, type-check and run the whole suite against the embedded servers
	@$(MAKE) --no-print-directory -j2 $(STAMP) $(CHECKOV) $(MLFLOW) $(ACTIONLINT)
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-servers test-offline
	@$(MAKE) --no-print-directory test-overload

# Two lanes at once, each printing when it ends, then the overload tests alone. Together: the whole suite.
# - servers: the tests that start servers (marked integration) on Apache Kafka, integration tests first,
#   then the fault tests;
# - offline: lint, every test that needs no server, the three CLI tests that start their own embedded stack
#   (embedded_stack), then the integration and fault tests on Tansu, but for the MLflow ones, which run in
#   the servers lane to keep the two lanes near the same length (~16 min each here). The tests of one lane
#   mostly wait on sockets while the other's use the CPU.
# - overload: the overload fault tests (both brokers) measure capacity, so they get the cores to themselves.
# Each pytest run has its own --basetemp: two sessions sharing /tmp/pytest-of-$USER may prune each other's.
PYTEST_TMP := $(CURDIR)/.pytest-tmp
SERVER_TESTS := -m 'integration and not embedded_stack and not soak' tests/integration tests/faults
test-servers: $(STAMP) $(MLFLOW)
	@mkdir -p $(PYTEST_TMP)
	$(PY) -m pytest --basetemp=$(PYTEST_TMP)/servers $(SERVER_TESTS) -k '(not tansu or mlflow) and not overload'

test-offline: $(STAMP) $(CHECKOV) $(ACTIONLINT)
	@$(MAKE) --no-print-directory lint
	@mkdir -p $(PYTEST_TMP)
	$(PY) -m pytest --basetemp=$(PYTEST_TMP)/offline -m '(not integration or embedded_stack) and not soak'
	$(PY) -m pytest --basetemp=$(PYTEST_TMP)/tansu $(SERVER_TESTS) -k 'tansu and not overload and not mlflow'

test-overload: $(STAMP)
	@mkdir -p $(PYTEST_TMP)
	$(PY) -m pytest --basetemp=$(PYTEST_TMP)/overload $(SERVER_TESTS) -k overload

soak: $(STAMP) ## The fault suite at full size on BROKER=kafka|tansu (default kafka); counts go to bench/results/
	$(PY) -m pytest -m soak tests/faults -s -k $(BROKER)

lint: $(STAMP) ## ruff, mypy (strict), import contracts (lint-imports), bandit, pip-audit (says SKIPPED when its service is unreachable)
	$(VENV)/bin/ruff check streamer schemas training tests deploy bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/bandit -q -c pyproject.toml -ll -r streamer schemas training
	$(PY) deploy/pip_audit_gate.py

schemas: $(STAMP) ## Regenerate schemas/json from the pydantic models
	$(PY) -m schemas

model: $(STAMP) ## Retrain and re-export the shipped default model
	SOURCE_DATE_EPOCH=1795305600 $(PY) -m training train  # the shipped model's training date, so the bytes match

all: test  # test runs lint first

clean: ## Remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

bench: $(STAMP) $(QUIX) ## streamer beside the baselines on BROKER=kafka|tansu (default kafka); writes bench/results/
	$(PY) -m bench.run --broker $(BROKER)
