# keso — see README.md. `make test` is the one command CI runs.
SHELL := /bin/bash
GO ?= go
export GOFLAGS ?= -mod=mod

.PHONY: all build test deps check vet fmt-check unit e2e clean

all: build

build:
	./build.sh

deps:
	./scripts/deps.sh

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# test: install what the tests need, then vet, gofmt and every test (unit,
# integration against a real kube-apiserver, QEMU boots).
test: deps vet fmt-check
	$(GO) test -timeout 60m ./...

clean:
	rm -rf dist
