# webhookd — see README.md. Every target does its own set-up.
GO        ?= go
BIN       := bin/webhookd
PKGS      := ./...
TESTFLAGS ?= -race -count=1 -timeout 30m
# VERSION and COMMIT are stamped into the binary (webhookd version, the
# User-Agent webhookd/<version>): the nearest tag (vX.Y.Z[-N-gHASH]),
# or the short commit when the clone has no tag; -dirty for local edits.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: build run test test-short lint bench soak fuzz deps sdk-deps clean

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/webhookd

# run: start webhookd with an embedded NATS and a managed redis-server.
# ARGS adds serve flags, e.g. make run ARGS='--http-addr 127.0.0.1:8090
# --nats-listen 127.0.0.1:4223' (or the env twins WEBHOOKD_HTTP_ADDR,
# WEBHOOKD_NATS_LISTEN). A default port that is taken is replaced by a
# free one, and the banner says which.
run: build deps
	$(BIN) serve --allow-insecure-endpoints $(ARGS)

# deps: what the tests and `make run` need beyond Go: redis-server (and
# node/npm for the SDK contract test, chromium for the console's browser
# test). Installs with apt-get when root; otherwise says what to install.
deps:
	@bash scripts/ensure-deps.sh

sdk-deps: deps
	cd test/sdk && npm ci --no-audit --no-fund --loglevel=error

# PARTITION_TESTS are the end-to-end tests of partitioned consumption
# itself (owners, retry subjects); the per-webhook pass leaves them out.
# So it does TestConsoleInBrowser, which tests the console, not the
# consumption model, and need not drive chromium twice.
PARTITION_TESTS := ^(TestRegistryChangesWhileEventsFlow|TestDeadNeighbourDoesNotSlowItsPartition|TestPartitionsMoveWithReplicas|TestRetryRunnerStartsWhileOthersDrain|TestRetrySubjectDrainsAfterRecovery|TestDisablePurgesRetrySubject|TestConsoleInBrowser|TestRetryConsumerHealed)$$

# FUZZ lists package:target pairs; each gets a short fuzz run after the
# tests (their seed corpora also run as plain tests above).
FUZZ      := signer:FuzzVerify api:FuzzDecodeWebhook batcher:FuzzAppendEnvelope batcher:FuzzPack batcher/jsonscan:FuzzSkip \
             batcher:FuzzParse dispatcher:FuzzParseSubject dispatcher:FuzzDecodeBundle subscriptions:FuzzValidateEndpoint \
             api:FuzzDecodeFlow batcher/flowtmpl:FuzzTemplate
# A count, not a duration: Go 1.26's fuzz coordinator can report a
# spurious "context deadline exceeded" when a -fuzztime duration expires
# while a worker is busy (go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME  ?= 20000x

test: deps sdk-deps build
	$(GO) vet $(PKGS)
	$(GO) test $(TESTFLAGS) $(PKGS)
	@echo "end-to-end tests again with one consumer per webhook (--partitions 0)"
	WEBHOOKD_TEST_PARTITIONS=0 $(GO) test $(TESTFLAGS) -skip '$(PARTITION_TESTS)' ./test
	@$(MAKE) --no-print-directory fuzz

# fuzz: a short run of every fuzz target (FUZZTIME=1m or 1000000x for longer).
fuzz:
	@for f in $(FUZZ); do \
	  echo "fuzz $$f ($(FUZZTIME))"; \
	  $(GO) test -run='^$$' -fuzz="^$${f#*:}$$" -fuzztime=$(FUZZTIME) ./$${f%%:*} || exit 1; \
	done

test-short:
	$(GO) test -short -count=1 $(PKGS)

lint:
	@command -v golangci-lint >/dev/null || $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@latest
	golangci-lint run

bench: deps build
	$(GO) run ./test/bench $(BENCHARGS)

soak: deps build
	$(GO) test -race -count=1 -timeout 60m -run 'TestFault' ./test -v -soak

clean:
	rm -rf bin data
