# connection-flask: `make help` lists every target.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
LOCALBIN ?= $(CURDIR)/bin

IMG ?= connection-flask:dev
CONTAINER_TOOL ?= docker
KIND_CLUSTER ?= connection-flask-e2e
NAMESPACE ?= connections

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[test,dev]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv and install the project with its test and dev tools.

.PHONY: run
run: venv ## Serve on 0.0.0.0:5000 under Gunicorn (CONNECTION_FLASK_BIND/_WORKERS/_THREADS override).
	exec $(VENV)/bin/connection-flask

.PHONY: lint
lint: venv ## Run ruff and mypy.
	$(VENV)/bin/ruff check service tests bench
	$(VENV)/bin/ruff format --check service tests bench
	$(VENV)/bin/mypy

.PHONY: fmt
fmt: venv ## Format the code with ruff.
	$(VENV)/bin/ruff format service tests bench
	$(VENV)/bin/ruff check --fix service tests bench

.PHONY: test
test: lint ## Lint, then run unit, integration, deploy-render and local e2e tests.
	$(VPY) -m pytest -q -p no:cacheprovider

.PHONY: test-unit
test-unit: venv ## Run only the unit tests (fast).
	$(VPY) -m pytest -q tests/unit
