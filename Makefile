# kommons — run many application modules on Kubernetes over one shared data layer.
# `make help` lists the targets. The two set-up commands on a fresh Debian 12
# machine are `make demo` and `make test` (see README.md).

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
BIN       := $(CURDIR)/bin
CACHE     ?= $(or $(KOMMONS_CACHE),$(HOME)/.cache/kommons)
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/kommons/kommons/internal/version.Version=$(VERSION)
include test/cluster/versions.env
HELM3     := $(CACHE)/helm3-$(HELM3_VERSION)/helm
CYCLONEDX := $(CACHE)/cyclonedx-gomod-$(CYCLONEDX_GOMOD_VERSION)/cyclonedx-gomod
COSIGN    := $(CACHE)/cosign-$(COSIGN_VERSION)/cosign
ACTIONLINT := $(CACHE)/actionlint-$(ACTIONLINT_VERSION)/actionlint
# Where a release goes: image $(REGISTRY)/kommons-tools, charts oci://$(REGISTRY)/<chart>.
REGISTRY  ?= ghcr.io/kommons
export GOFLAGS := -buildvcs=false
export GOTOOLCHAIN := local
export KOMMONS_CACHE := $(CACHE)

CHARTS := $(wildcard charts/*/Chart.yaml test/charts/*/Chart.yaml examples/charts/*/Chart.yaml)

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build every binary (static) into bin/
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...
	@ls -1 $(BIN)

.PHONY: deps
deps: ## install the Debian packages the tests need, when missing (test/cluster/deps.sh; root or sudo)
	test/cluster/deps.sh

.PHONY: tools
tools: ## build the harness tools once (PostgreSQL 16-18, Kubernetes, Helm 3/4, kwok, ct, kubeconform, kube-score, MinIO, CoreDNS, kube-router, cyclonedx-gomod, cosign, distribution, actionlint, CloudNativePG), cached in ~/.cache/kommons
	test/cluster/build.sh

.PHONY: lint
lint: $(HELM3) $(ACTIONLINT) ## gofmt, go vet, helm lint --strict on every chart, actionlint on .github/workflows
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@for c in $(dir $(CHARTS)); do \
	  if grep -q 'dependencies:' $$c/Chart.yaml; then $(HELM3) dependency build $$c >/dev/null; fi; \
	  $(HELM3) lint --strict $$c; done
	$(ACTIONLINT) -color=false .github/workflows/*.yaml

$(HELM3):
	test/cluster/build.sh helm3
$(CYCLONEDX):
	test/cluster/build.sh cyclonedx-gomod
$(COSIGN):
	test/cluster/build.sh cosign
$(ACTIONLINT):
	test/cluster/build.sh actionlint

.PHONY: test-unit
test-unit: ## fast tests: Go unit tests and real-PostgreSQL tests, no Kubernetes cluster
	$(GO) test -short -count=1 ./...

# The packages whose whole suites also run on every other PostgreSQL major
# (the default server is Debian's 15; test/isolation runs all four itself).
PG_SUITES  := ./internal/pgprovision/ ./internal/pgready/ ./cmd/pg-init/ ./cmd/wait-for-pg/
PG_MAJORS  := 16 17 18

.PHONY: test
test: deps tools lint ## everything: unit, PostgreSQL (15-18), chart checks, cluster tests and the real-node e2e (the README's test command)
	KOMMONS_E2E=1 KOMMONS_REQUIRE_PG=1 KOMMONS_REQUIRE_MINIO=1 $(GO) test -count=1 -timeout 45m ./...
	@for v in $(PG_MAJORS); do echo "== provisioning suites on PostgreSQL $$v"; \
	  KOMMONS_PG_DEFAULT_MAJOR=$$v KOMMONS_REQUIRE_PG=1 $(GO) test -count=1 -timeout 15m $(PG_SUITES) || exit 1; done

.PHONY: e2e
e2e: deps tools ## the real-node e2e alone: control plane + one node where pods run; commons, modules, Orthanc; NetworkPolicies enforced; CloudNativePG; a release installed by OCI reference (root)
	KOMMONS_E2E=1 $(GO) test -count=1 -p 1 -timeout 40m -v ./test/e2e/realnode/ ./test/e2e/netpol/ ./test/e2e/cnpg/ ./test/e2e/ociinstall/

.PHONY: bench
bench: ## benchmarks (see docs/benchmarks.md for the figures and their commands)
	$(GO) test -run '^$$' -bench . -benchmem ./...
	@for s in test/bench/*/run.sh; do [[ -x $$s ]] && { echo "== $$s"; $$s; }; done; true

.PHONY: cluster-up
cluster-up: tools ## start the local Kubernetes control plane (kwok nodes); prints the env to source
	$(GO) build -o $(BIN)/kcluster ./test/tools/kcluster
	$(BIN)/kcluster up

.PHONY: cluster-down
cluster-down: ## stop the local control plane (by PID) and remove its state
	$(GO) build -o $(BIN)/kcluster ./test/tools/kcluster
	$(BIN)/kcluster down

.PHONY: demo
demo: build ## the whole system end to end, locally (see README.md); KEEP=1 leaves it running
	KEEP=$(KEEP) test/demo/run.sh

.PHONY: release
release: $(HELM3) $(CYCLONEDX) $(if $(filter 1 true yes,$(DRY_RUN)),,$(COSIGN)) ## build a release into dist/ and publish it: make release VERSION=x.y.z [REGISTRY=host/path] [COSIGN_KEY=...] [HELM_SIGNING_KEY=... HELM_SIGNING_KEYRING=...] [DRY_RUN=1] (docs/releasing.md)
	@if [[ "$(origin VERSION)" != command\ line && "$(origin VERSION)" != environment ]]; then \
	  echo "make release: no VERSION: give the version to release, e.g. make release VERSION=0.2.0 DRY_RUN=1 (docs/releasing.md)" >&2; exit 2; fi
	$(GO) run ./tools/release --release-version '$(VERSION)' --out $(CURDIR)/dist --helm $(HELM3) \
	  --cyclonedx-gomod $(CYCLONEDX) --cosign $(COSIGN) --registry '$(REGISTRY)' $(PUBLISH_FLAGS) \
	  $(if $(filter 1 true yes,$(DRY_RUN)),--dry-run)

# Publishing options: COSIGN_KEY=<file or KMS URI> (password in COSIGN_PASSWORD; none: keyless,
# OIDC), PLAIN_HTTP=1 (a loopback registry), NO_TLOG=1 (key-based, no transparency log upload).
PUBLISH_FLAGS = $(if $(COSIGN_KEY),--key '$(COSIGN_KEY)') $(if $(filter 1 true yes,$(PLAIN_HTTP)),--plain-http) \
  $(if $(filter 1 true yes,$(NO_TLOG)),--no-tlog)

.PHONY: publish
publish: $(HELM3) $(COSIGN) ## push dist/ (built by make release for the same REGISTRY): image, cosign signature, SBOM attestations, charts
	$(GO) run ./tools/release --publish-only --out $(CURDIR)/dist --helm $(HELM3) --cosign $(COSIGN) \
	  --registry '$(REGISTRY)' $(PUBLISH_FLAGS)

.PHONY: clean
clean: ## remove build output and stop a cluster started by cluster-up (the tool cache is kept)
	-[[ -x $(BIN)/kcluster ]] && $(BIN)/kcluster down
	rm -rf $(BIN) dist
