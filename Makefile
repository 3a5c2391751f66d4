# connection-flask: `make help` lists every target.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
LOCALBIN ?= $(CURDIR)/bin

# Podman stores a short name like this one as localhost/connection-flask:dev; kind mode loads it
# into the cluster as connection-flask:dev (docker.io/library/...), the name the manifests ask for.
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
	$(VENV)/bin/mypy bench/*.py

.PHONY: fmt
fmt: venv ## Format the code with ruff.
	$(VENV)/bin/ruff format service tests bench
	$(VENV)/bin/ruff check --fix service tests bench

.PHONY: test
test: lint tools ## Lint, then run unit, integration, deploy-render and local e2e tests, then the integration tests again with every server on Redis.
	$(VPY) -m pytest -q -p no:cacheprovider
	CONNECTION_FLASK_TEST_STORE=redis $(VPY) -m pytest -q -p no:cacheprovider tests/integration

.PHONY: test-unit
test-unit: venv ## Run only the unit tests (fast).
	$(VPY) -m pytest -q tests/unit

##@ Build

DOCKERFILE ?= Dockerfile

.PHONY: image
image: ## Build the container image $(IMG) with $(CONTAINER_TOOL) (docker or podman).
	$(CONTAINER_TOOL) build --file $(DOCKERFILE) --tag $(IMG) .

##@ Deployment

# A tool named on the command line or in the environment wins, then one on PATH, then ./bin.
HELM ?= $(or $(shell command -v helm 2>/dev/null),$(LOCALBIN)/helm)
KUBECTL ?= $(or $(shell command -v kubectl 2>/dev/null),$(LOCALBIN)/kubectl)
HADOLINT ?= $(or $(shell command -v hadolint 2>/dev/null),$(LOCALBIN)/hadolint)
RELEASE ?= connection-flask
CHART ?= charts/connection-flask
KUSTOMIZE_OVERLAY ?= deploy/kustomize/overlays/kind
HELM_VALUES ?=
DIST ?= dist

.PHONY: manifests
manifests: $(HELM) $(KUBECTL) ## Render the Helm chart (every ci/*-values.yaml) and every Kustomize overlay into $(DIST)/ for review.
	rm -rf $(DIST) && mkdir -p $(DIST)/helm $(DIST)/kustomize
	$(HELM) template $(RELEASE) $(CHART) --namespace $(NAMESPACE) > $(DIST)/helm/default.yaml
	for v in $(CHART)/ci/*-values.yaml; do \
	  $(HELM) template $(RELEASE) $(CHART) --namespace $(NAMESPACE) -f $$v > $(DIST)/helm/$$(basename $$v .yaml).yaml; \
	done
	$(KUBECTL) kustomize deploy/kustomize/base > $(DIST)/kustomize/base.yaml
	for o in deploy/kustomize/overlays/*/; do \
	  $(KUBECTL) kustomize $$o > $(DIST)/kustomize/$$(basename $$o).yaml; \
	done
	@ls -1 $(DIST)/helm $(DIST)/kustomize

.PHONY: deploy
deploy: $(KUBECTL) ## Apply the Kustomize overlay $(KUSTOMIZE_OVERLAY) (default: kind) to the current cluster.
	$(KUBECTL) apply -k $(KUSTOMIZE_OVERLAY)
	$(KUBECTL) -n $(NAMESPACE) rollout status deployment/connection-flask --timeout=120s

.PHONY: undeploy
undeploy: $(KUBECTL) ## Delete what `make deploy` applied (ignores objects already gone).
	$(KUBECTL) delete -k $(KUSTOMIZE_OVERLAY) --ignore-not-found=true --wait=true

.PHONY: helm-deploy
helm-deploy: $(HELM) ## helm upgrade --install release $(RELEASE) into $(NAMESPACE) (HELM_VALUES=-f file to add values).
	$(HELM) upgrade --install $(RELEASE) $(CHART) --namespace $(NAMESPACE) --create-namespace \
	  --set fullnameOverride=connection-flask --wait --timeout 3m $(HELM_VALUES)

.PHONY: helm-test
helm-test: $(HELM) ## Run the chart's `helm test` hook pod against the installed release.
	$(HELM) test $(RELEASE) --namespace $(NAMESPACE) --logs

.PHONY: helm-undeploy
helm-undeploy: $(HELM) $(KUBECTL) ## helm uninstall release $(RELEASE) from $(NAMESPACE), and the last `helm test` pod (kept for its logs).
	$(HELM) uninstall $(RELEASE) --namespace $(NAMESPACE) --ignore-not-found --wait
	$(KUBECTL) delete pod --namespace $(NAMESPACE) --ignore-not-found --wait=true \
	  --selector app.kubernetes.io/instance=$(RELEASE),app.kubernetes.io/component=helm-test

.PHONY: helm-docs
helm-docs: ## Regenerate the values table in charts/connection-flask/README.md from values.yaml.
	$(PYTHON) hack/chart-readme.py --write

.PHONY: lint-deploy
lint-deploy: $(HELM) $(HADOLINT) ## helm lint --strict the chart and hadolint the Dockerfile.
	$(HELM) lint --strict $(CHART)
	$(HADOLINT) $(DOCKERFILE)

##@ Tools

.PHONY: tools
tools: ## Install pinned helm, kubectl, hadolint and the CRD validator into ./bin (checksummed; HELM=/KUBECTL=/HADOLINT= set by you wins).
	$(if $(filter command line environment,$(origin HELM)),HELM=$(HELM)) \
	$(if $(filter command line environment,$(origin KUBECTL)),KUBECTL=$(KUBECTL)) \
	$(if $(filter command line environment,$(origin HADOLINT)),HADOLINT=$(HADOLINT)) \
	LOCALBIN=$(LOCALBIN) PYTHON=$(PYTHON) hack/install-tools.sh helm kubectl hadolint crd-validate

$(LOCALBIN)/helm:
	LOCALBIN=$(LOCALBIN) PYTHON=$(PYTHON) hack/install-tools.sh helm

$(LOCALBIN)/kubectl:
	LOCALBIN=$(LOCALBIN) PYTHON=$(PYTHON) hack/install-tools.sh kubectl

$(LOCALBIN)/hadolint:
	LOCALBIN=$(LOCALBIN) PYTHON=$(PYTHON) hack/install-tools.sh hadolint

##@ Benchmark

# wrk is a Debian/Ubuntu package (apt-get install wrk); WRK=/path/to/wrk picks another.
WRK ?= $(or $(shell command -v wrk 2>/dev/null),wrk)
BENCH_QUICK ?=
BENCH_RUNS ?=
BENCH_ONLY ?=
BENCH_HOLD ?=

$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(VPY) -m pip install --quiet -e '.[bench]'
	touch $@

.PHONY: bench
bench: $(VENV)/.bench-installed ## Run every DAQ load benchmark (main under gevent and gthread, sweep, reliability, admin, stores: memory and Redis with 1 and 2 workers; needs wrk, and redis-server for the Redis lanes: apt-get install wrk redis-server; 52 min without the stores group) and rewrite docs/PERFORMANCE.md; BENCH_QUICK=1: smoke test; BENCH_ONLY=reliability,admin: those groups only; both write to TMPDIR only.
	@command -v $(WRK) >/dev/null 2>&1 || { echo "wrk not found: apt-get install wrk (or WRK=/path/to/wrk)" >&2; exit 1; }
	WRK=$(WRK) BENCH_QUICK=$(BENCH_QUICK) BENCH_RUNS=$(BENCH_RUNS) BENCH_ONLY=$(BENCH_ONLY) \
	  BENCH_HOLD=$(BENCH_HOLD) $(VPY) bench/run.py

.PHONY: bench-profile
bench-profile: $(VENV)/.bench-installed ## Profile the worker under load with py-spy; writes docs/bench/profile.json.
	@command -v $(WRK) >/dev/null 2>&1 || { echo "wrk not found: apt-get install wrk (or WRK=/path/to/wrk)" >&2; exit 1; }
	WRK=$(WRK) PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VPY) bench/run.py --profile

.PHONY: bench-instructions
bench-instructions: $(VENV)/.installed ## Count instructions per publish / lookup / trivial-route request with valgrind (apt-get install valgrind; ~4 min): steady on a noisy machine.
	@command -v valgrind >/dev/null 2>&1 || { echo "valgrind not found: apt-get install valgrind" >&2; exit 1; }
	$(VPY) bench/instructions.py

##@ E2E

# kind is not installed by `make tools`: install kind >= v0.24.0 (https://kind.sigs.k8s.io) or
# name it with KIND=/path/to/kind. With CONTAINER_TOOL=podman, kind uses its podman provider.
# Supported versions (Helm v3.13+ or v4, kind, docker, podman): docs/E2E.md. The tests load $(IMG)
# and the pinned Prometheus image into the cluster themselves (tests/e2e/kindplan.py), under the
# names the manifests ask for; the cluster never pulls from a registry.
KIND ?= $(or $(shell command -v kind 2>/dev/null),kind)
KIND_CONFIG ?= tests/e2e/kind-config.yaml
KIND_ENV := $(if $(filter podman,$(notdir $(CONTAINER_TOOL))),KIND_EXPERIMENTAL_PROVIDER=podman)

.PHONY: setup-test-e2e
setup-test-e2e: ## Create the kind cluster $(KIND_CLUSTER) from $(KIND_CONFIG) (pinned node image) unless it exists.
	@command -v $(KIND) >/dev/null 2>&1 || { echo "kind not found: install kind >= v0.24.0 (https://kind.sigs.k8s.io) or set KIND=/path/to/kind" >&2; exit 1; }
	@if $(KIND_ENV) $(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then \
	  echo "kind cluster $(KIND_CLUSTER) already exists"; \
	else \
	  $(KIND_ENV) $(KIND) create cluster --name $(KIND_CLUSTER) --config $(KIND_CONFIG) --wait 180s; \
	fi

.PHONY: test-e2e
test-e2e: venv $(HELM) $(KUBECTL) ## Kind mode: build and load $(IMG), test the Helm and kustomize installs (fails, naming what is missing, without kind >= v0.24.0 or a running docker/podman; docs/E2E.md).
	@if command -v $(KIND) >/dev/null 2>&1 && $(CONTAINER_TOOL) info >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory setup-test-e2e image; \
	else \
	  echo "kind or a running $(CONTAINER_TOOL) is missing: the kind tests fail and name what is missing" >&2; \
	fi
	E2E_KIND=1 $(KIND_ENV) KIND=$(KIND) KIND_CLUSTER=$(KIND_CLUSTER) IMG=$(IMG) \
	  CONTAINER_TOOL=$(CONTAINER_TOOL) HELM=$(HELM) KUBECTL=$(KUBECTL) \
	  $(VPY) -m pytest -p no:cacheprovider -m e2e -rs -v tests/e2e/test_kind.py

.PHONY: cleanup-test-e2e
cleanup-test-e2e: ## Delete the kind cluster $(KIND_CLUSTER).
	@if command -v $(KIND) >/dev/null 2>&1; then \
	  $(KIND_ENV) $(KIND) delete cluster --name $(KIND_CLUSTER); \
	else \
	  echo "kind not found: no kind cluster to delete"; \
	fi
