# keyshare: build, test and lint.
#
#   make demo     run the local demo (Vault cluster, 3 holders, coordinator)
#   make test     everything CI runs: lint, unit tests with -race, e2e suite
#   make unit     unit and package tests only, with -race
#   make e2e      the end-to-end suite against a real Vault (builds it once)
#   make lint     gofmt, go vet, staticcheck, generated code up to date
#   make generate regenerate committed protobuf code
#   make fuzz     every fuzz target for FUZZTIME each
#   make bench    benchmarks, printed as a table
#   make bench-vault  restart to active against the floor, real Vault
#   make bench-kms    KMS plugin Encrypt/Decrypt through its socket against the floor, real Vault
#   make bench-kube   Secrets/s through a real kube-apiserver: keyshare KMS v2 vs identity vs aescbc
#   make soak     random restarts for SOAK_TIME, 200 rekey-chaos rounds (not part of make test)
#   make deb      .deb packages of holder, unsealer, kmsplugin in $(BIN)/deb (packaging/)
#   make deb-test install them with dpkg (root), check, purge; Dockerfile binaries static
#   make promtool-test  promtool checks and unit-tests configs/prometheus

GO            ?= go
BIN           ?= bin
FUZZTIME      ?= 10s
BENCHTIME     ?= 1s
STATICCHECK   ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
E2E_TIMEOUT   ?= 60m
COSTS_WINDOW  ?= 30s
COSTS_TIMEOUT ?= 10m
BENCH_VAULT_TIMEOUT ?= 15m
SOAK_TIME     ?= 5m
# Stamped into every binary: `holder --version`, status --json, metrics.
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT        ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS       := -X github.com/keyshare/keyshare/internal/version.Version=$(VERSION) -X github.com/keyshare/keyshare/internal/version.Commit=$(COMMIT)

.PHONY: deb deb-test promtool promtool-test all build test unit e2e lint fmt vet staticcheck generate generate-check fuzz bench demo vault clean bench-vault bench-kms soak

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

test: lint unit deb-test promtool-test e2e

unit:
	$(GO) test -race -count=1 ./...

# The e2e suite needs the real Vault server; e2e/tools/vault/build.sh builds
# it once and caches it outside the clone, keyed by version.
e2e: vault
	@ls e2e/*_test.go >/dev/null 2>&1 || { echo "e2e: no test files in e2e/: the end-to-end suite is missing"; exit 1; }
	KEYSHARE_VAULT_BIN=$$(e2e/tools/vault/build.sh) $(GO) test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) ./e2e/...

vault:
	@e2e/tools/vault/build.sh >/dev/null

# kube-apiserver and etcd for the Kubernetes story (e2e/kube_story_test.go),
# built once like Vault (e2e/tools/kube/build.sh); the suite fails, never
# skips, without them.
.PHONY: kube bench-kube
e2e: kube
kube:
	@e2e/tools/kube/build.sh >/dev/null

lint: fmt vet staticcheck generate-check

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	cd packaging && $(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/...
	$(GO) vet -tags costs ./bench/...

staticcheck:
	$(GO) run $(STATICCHECK) ./...
	cd packaging && $(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags e2e ./e2e/...
	$(GO) run $(STATICCHECK) -tags costs ./bench/...

generate:
	bash scripts/generate.sh

# The committed protobuf code must be exactly what `make generate` makes.
generate-check: generate
	@git diff --exit-code --stat -- pkg/transport/sharerpc/sharepb || \
		{ echo "generated code is stale: run 'make generate' and commit"; exit 1; }

fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

# Then the costs (bench/, build tag costs): holder and coordinator CPU and
# RSS at idle, release and unseal latency percentiles; about 2.5 minutes
# with the default COSTS_WINDOW, bounded by COSTS_TIMEOUT.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...
	@mkdir -p $(BIN)
	@KEYSHARE_COSTS_WINDOW=$(COSTS_WINDOW) $(GO) test -tags costs -count=1 -v -timeout $(COSTS_TIMEOUT) ./bench/ > $(BIN)/costs.log 2>&1; \
	rc=$$?; grep -E '^\||^(---|ok|FAIL)' $(BIN)/costs.log; \
	if [ $$rc -ne 0 ]; then echo "costs failed; see $(BIN)/costs.log"; fi; exit $$rc

# e2e-bench NAME,BENCHMARK,TIMEOUT runs one e2e benchmark against the real
# Vault with its log in $(BIN)/NAME.log, and prints the figures (and where
# the log is if it failed).
define e2e-bench
	@mkdir -p $(BIN)
	@KEYSHARE_VAULT_BIN=$$(e2e/tools/vault/build.sh) $(GO) test -tags e2e -count=1 -run '^$$' \
		-bench '^$(2)$$' -benchtime 1x -timeout $(3) ./e2e/ > $(BIN)/$(1).log 2>&1; \
	rc=$$?; grep -E '^\||^(Benchmark|ok|FAIL)' $(BIN)/$(1).log; \
	if [ $$rc -ne 0 ]; then echo "$(1) failed; see $(BIN)/$(1).log"; fi; exit $$rc
endef

# Restart to active on the real Vault, keyshare against the floor
# (e2e/bench_test.go); KEYSHARE_BENCH_ROUNDS (10) and KEYSHARE_BENCH_ROUNDS3
# (3) set the rounds. The log is in $(BIN)/bench-vault.log.
bench-vault: vault
	$(call e2e-bench,bench-vault,BenchmarkRestartToActive,$(BENCH_VAULT_TIMEOUT))

# KMS plugin Encrypt and Decrypt through its unix socket against the same
# transit call made directly over kept-alive HTTPS (e2e/kms_bench_test.go).
bench-kms: vault
	$(call e2e-bench,bench-kms,BenchmarkKMSPlugin,$(BENCH_VAULT_TIMEOUT))

# Secrets created per second through a real kube-apiserver with the
# keyshare KMS v2 provider, identity and aescbc, and a cold start with
# 1,000 Secrets (e2e/kube_bench_test.go); log in $(BIN)/bench-kube.log.
bench-kube: vault kube
	$(call e2e-bench,bench-kube,BenchmarkKubeSecrets,40m)

# Random restarts of Vault nodes and holders for SOAK_TIME
# (e2e/soak_test.go, build tags e2e and soak), and the rekey and init
# chaos at 200 and 40 rounds (e2e/chaos_test.go).
soak: vault
	@KEYSHARE_VAULT_BIN=$$(e2e/tools/vault/build.sh) SOAK_TIME=$(SOAK_TIME) $(GO) test -tags 'e2e soak' -count=1 -v \
		-run '^(TestSoak|TestRekeyChaos|TestInitChaos)$$' -timeout 60m ./e2e/

demo:
	bash scripts/demo.sh

# Debian packages from static binaries; packaging/ is a module of its own
# (nfpm and its dependencies stay out of go.mod).
deb:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $(BIN)/static/ ./cmd/...
	cd packaging && $(GO) run . -root .. -bin ../$(BIN)/static -out ../$(BIN)/deb -version $(VERSION)

# Needs root and dpkg (KEYSHARE_DEB_TEST=require: no silent skip); also
# checks the Dockerfile (no docker daemon needed).
deb-test: deb
	cd packaging && KEYSHARE_DEB_TEST=require KEYSHARE_STATIC_BIN=$(abspath $(BIN))/static $(GO) test -count=1 -timeout 20m ./...

# promtool is built once from the Go module proxy and cached, like Vault.
promtool:
	@tools/promtool/build.sh >/dev/null

promtool-test: promtool
	@p=$$(tools/promtool/build.sh) && $$p check config configs/prometheus/prometheus.yml && \
		$$p test rules configs/prometheus/keyshare-alerts_test.yml

clean:
	rm -rf $(BIN)
