# docker-tls — build, test, demo.
# `make demo` and `make test` are the two commands the README promises.

GO        ?= go
BIN       := bin/docker-tls
# The plugin hands the commands that open a CA's database to its helper,
# the same program with the SQLite and PostgreSQL drivers (internal/dbhelper).
HELPER    := bin/docker-tls.d/docker-tls-db
PKG       := github.com/docker-tls/docker-tls
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
DOCKER_CONFIG ?= $(HOME)/.docker
# An execution count, not a duration: a duration -fuzztime races Go's fuzz
# coordinator at its deadline and fails with "context deadline exceeded" and
# no crasher (golang/go#75804, fixed only in Go 1.27).
FUZZTIME  ?= 50000x

.PHONY: build install deps test unit e2e fuzz bench demo cross clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/docker-tls
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(HELPER) ./cmd/docker-tls-db

# Installs as a Docker CLI plugin: `docker tls ...`.
install: build
	./scripts/install.sh $(BIN) $(DOCKER_CONFIG)

# Everything: unit tests, integration tests against a real Secret Service
# (scripts/with-keyring.sh) and end-to-end tests (which skip with a reason
# when root, dockerd, openssl or a keyring are missing), then a short fuzz
# run of every parser. Prints what was skipped and why, and a closing count.
deps:
	./scripts/deps.sh

test: deps
	./scripts/with-keyring.sh ./scripts/test.sh
	$(MAKE) fuzz

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e:
	$(GO) test -count=1 -v ./e2e/

fuzz:
	$(GO) test ./pki -run '^$$' -fuzz '^FuzzParseSANs$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pki -run '^$$' -fuzz '^FuzzParsePrivateKey$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pki -run '^$$' -fuzz '^FuzzParseCertificates$$' -fuzztime $(FUZZTIME)

bench:
	./scripts/bench.sh

demo: deps build
	./scripts/with-keyring.sh ./scripts/demo.sh $(BIN)

cross:
	@for os in linux darwin windows; do for arch in amd64 arm64; do \
		ext=; [ $$os = windows ] && ext=.exe; \
		echo "build $$os/$$arch"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
			-o bin/$$os-$$arch/docker-tls$$ext ./cmd/docker-tls || exit 1; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
			-o bin/$$os-$$arch/docker-tls.d/docker-tls-db$$ext ./cmd/docker-tls-db || exit 1; \
	done; done

clean:
	rm -rf bin
