# keso — see README.md. `make test` is the one command CI runs.
SHELL := /bin/bash
GO ?= go
export GOFLAGS ?= -mod=mod

.PHONY: all build test deps inputs kube-tools vet fmt-check clean

all: build

build:
	./build.sh

deps:
	./scripts/deps.sh

# Debian kernel and bootloader packages the builder and the VM tests unpack
# (cached in /var/cache/keso/debs, downloaded once).
inputs: deps
	./scripts/fetch-inputs.sh

# etcd, kube-apiserver and kubectl for the integration tests (built once
# from Go modules, cached in /var/cache/keso/kube-tools/<version>).
kube-tools: deps
	./scripts/kube-tools.sh >/dev/null

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# test: install what the tests need, then vet, gofmt and every test (unit,
# integration against a real kube-apiserver, QEMU boots), then every fuzz
# target for 5,000 executions (scripts/fuzz.sh; bench/fuzz.sh is the long run).
# A count, not a duration: Go 1.26's fuzz coordinator can fail a target with
# "context deadline exceeded" at the end of a -fuzztime duration, with no
# crasher (golang/go#75804, fixed in Go 1.27); a count has no deadline.
test: deps inputs kube-tools vet fmt-check
	KUBEBUILDER_ASSETS=$$(./scripts/kube-tools.sh --print-dir) $(GO) test -count=1 -timeout 80m ./...
	FUZZTIME=$${FUZZTIME:-5000x} ./scripts/fuzz.sh

clean:
	rm -rf dist
