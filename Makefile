# lab — make targets. `make help` lists them.
#
# Every go command here, and every go build the tests run (the lab binary, the
# stand-in images' programs, labnode, the shop binary), builds static and with
# -trimpath: the flags the test-assets script builds the control plane with.
# The packages they share (client-go, the Kubernetes API types, ...) then
# compile once; each other set of flags compiles them again, minutes on a cold
# cache. The race detector needs cgo: its run is the one exception.

SHELL        := bash
.SHELLFLAGS  := -euo pipefail -c
GO           ?= go
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT       ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS      := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN          ?= bin
GOLANGCI     := github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0

export CGO_ENABLED := 0
export GOFLAGS := $(strip $(shell $(GO) env GOFLAGS) -trimpath)

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/lab with its version stamped in
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/lab ./cmd/lab

.PHONY: up
up: ## Build the shop image, create the cluster, install the stack (needs Docker and internet)
	$(GO) run ./hack/image -out dist -platforms linux/$$($(GO) env GOARCH) -version $(VERSION) -commit $(COMMIT)
	$(GO) run -ldflags '$(LDFLAGS)' ./cmd/lab up

.PHONY: down
down: ## Remove the lab
	$(GO) run -ldflags '$(LDFLAGS)' ./cmd/lab down

.PHONY: test-assets
test-assets: ## Build the test control plane once into the cache (no-op when built)
	hack/test-assets.sh

.PHONY: test
# k3d's Docker client races on docker/cli's package globals whenever k3d runs two
# operations at once, as every cluster creation does: the tests that create a k3d
# cluster in-process are built without the race detector (//go:build !race) and run
# by the second command. The real-node tier's lab validate run (e2e/realnode) is
# built without it too, so that the relay of every user request is not slowed by
# it, and runs last. Most packages' tests wait on Docker, PostgreSQL, Patroni or
# a control plane for most of their time: three test binaries at once (-p 3, on
# two cores) use the cores those waits leave idle.
test: test-assets ## Run every test (CI=true turns missing services into failures)
	CGO_ENABLED=1 $(GO) test -race -p 3 -timeout 15m ./...
	$(GO) test -timeout 15m -run '^TestK3d' ./internal/testnode/
	$(GO) test -timeout 30m -run '^TestValidateOnRealNodes$$' ./e2e/realnode/

.PHONY: validate-local
OUT ?= lab-reports/local
validate-local: test-assets ## lab validate --profile quick on real local nodes, report in OUT (root; no Docker, no internet)
	$(GO) test -count=1 -timeout 30m -v -run '^TestValidateOnRealNodes$$' ./e2e/realnode/ -args -profile quick -out $(abspath $(OUT))

.PHONY: e2e
e2e: ## up, status, validate quick, down on a real k3d cluster (needs Docker and internet)
	LAB_E2E=1 $(GO) test -tags e2e -count=1 -timeout 30m -v ./e2e/...

.PHONY: e2e-offline
e2e-offline: OUT = lab-reports/offline
e2e-offline: test-assets ## make e2e without internet: the test-only node image, the offline stack, quick with a node failure; report in OUT (root, Docker)
	LAB_E2E=1 LAB_E2E_OFFLINE=1 E2E_OUT=$(abspath $(OUT)) $(GO) test -tags e2e -count=1 -timeout 30m -v -run '^TestE2EUpStatusDown$$' ./e2e/

.PHONY: image
image: ## Build dist/shop-image-linux-{amd64,arm64}.tar (no Docker, no registry)
	$(GO) run ./hack/image -out dist -version $(VERSION) -commit $(COMMIT)

.PHONY: bench
bench: ## Go benchmarks of the shop and the load generator (figures, not assertions)
	$(GO) test -run '^$$' -bench . -benchtime 3s ./shop/ ./load/

.PHONY: bench-load
bench-load: ## Side-by-side: lab load vs vegeta vs wrk, pinned cores (prints RESULT lines)
	hack/bench-load.sh

.PHONY: bench-failover
bench-failover: test-assets ## Real Patroni failover, each fault 5 times (RUNS=n; prints RESULT lines)
	hack/bench-failover.sh

.PHONY: report-preview
report-preview: ## Render the Mermaid charts of REPORT=path/report.md to PNG (OUT=dir; needs npm, chromium)
	hack/report-preview.sh "$(REPORT)" $(OUT)

.PHONY: fmt
fmt: ## Format the code
	gofmt -w $$(git ls-files '*.go')

.PHONY: lint
lint: ## gofmt, go vet and golangci-lint (.golangci.yml), also of the e2e-tagged tests
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: run make fmt"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/...
	$(GO) run $(GOLANGCI) run ./...
	$(GO) run $(GOLANGCI) run --build-tags e2e ./e2e/...

.PHONY: verify
verify: ## go.mod tidy and generated files up to date (clean diff)
	$(GO) mod tidy
	$(GO) test ./cmd/lab/app -run 'TestHelp|TestConfigFiles' -update >/dev/null
	git diff --exit-code -- go.mod go.sum '*.golden'
