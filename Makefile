# alertdesk — see README.md. `make run` and `make test` are the quick start.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin/alertdesk

.PHONY: run test vet fmt-check build bench lint chaos clean

run: build
	$(BIN) dev

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/alertdesk

test: vet fmt-check
	$(GO) test -race -count=1 -timeout 15m ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files --others --exclude-standard '*.go' 2>/dev/null)); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

lint: vet fmt-check
	@if command -v golangci-lint >/dev/null 2>&1; then golangci-lint run ./...; \
	else echo "golangci-lint not installed; ran go vet and the gofmt check only"; fi

# Go benchmarks of the hot paths, then the load harness against a baseline
# measured in the same run (BENCHFLAGS, e.g. -scenarios new,limit -runs 5 -scale 0.5).
BENCHFLAGS ?= -runs 3
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./mapping ./topdesk ./worker
	$(GO) build -o bin/alertdesk-bench ./cmd/alertdesk-bench
	bin/alertdesk-bench -bin $(BIN) $(BENCHFLAGS)

# Fault-injection suite with real nats-server and alertdesk processes; prints
# one summary line per scenario at the end.
chaos:
	@sum=$$(mktemp); \
	$(GO) test -count=1 -v -timeout 30m ./worker/chaos/ -chaos.full -chaos.summary=$$sum; rc=$$?; \
	echo; echo "chaos summary:"; cat $$sum; rm -f $$sum; exit $$rc

clean:
	rm -rf bin data
