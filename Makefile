# simple-device-plugin: build, test, benchmark.
# `make test` runs every test (race detector on): unit tests of the main
# module, then the e2e module against the kubelet's own device manager.
GO      ?= go
BIN     ?= bin/simple-device-plugin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X simple-device-plugin/cli.version=$(VERSION) -X simple-device-plugin/cli.commit=$(REVISION)

.PHONY: all build test unit e2e lint vet fmt-check fuzz soak soak-short bench bench-go clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

test: lint unit e2e

lint: vet fmt-check

vet:
	$(GO) vet ./...
	cd e2e && $(GO) vet ./...
	cd bench && $(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test -race -count=1 ./...

# The e2e tests re-execute themselves as root in a private mount namespace
# with a tmpfs over /var/lib/kubelet. Without root they skip, saying how to
# run them; SDP_E2E_REQUIRED=1 (set by .ci/run) turns a skip into a failure.
e2e:
	cd e2e && $(GO) test -race -count=1 -timeout 20m ./...

# Soak: the reliability tests at full length, race detector on, bounded in
# time (about 4 minutes): an Allocate storm under hot reloads for
# SOAK_DURATION, SOAK_STREAMS ListAndWatch streams opened and dropped (in
# process and against the binary), the kubelet's device manager restarted
# every 100-300 ms for SOAK_DURATION, one SIGKILL per second of
# SOAK_DURATION, and the hostile-filesystem and bad-input tests. Without
# these settings the same tests run a smoke version of a few seconds in
# `make test`. The e2e part needs root, as `make e2e` does.
SOAK_DURATION ?= 30s
SOAK_STREAMS  ?= 5000
SOAK_TESTS    := Soak|Hostile|BadInput
soak:
	SOAK_DURATION=$(SOAK_DURATION) SOAK_STREAMS=$(SOAK_STREAMS) $(GO) test -race -count=1 -v -timeout 30m -run '$(SOAK_TESTS)' ./host/
	cd e2e && SOAK_DURATION=$(SOAK_DURATION) SOAK_STREAMS=$(SOAK_STREAMS) $(GO) test -race -count=1 -v -timeout 30m -run '$(SOAK_TESTS)' ./...

# The soak with short settings, for CI (about a minute).
soak-short:
	$(MAKE) soak SOAK_DURATION=5s SOAK_STREAMS=1000

# A few minutes of fuzzing of the manifest loader and validator.
FUZZTIME ?= 3m
fuzz:
	$(GO) test ./manifest -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)

# End-to-end benchmarks (docs/performance.md): the built binary in its own
# process against a minimal device plugin in another, through the real gRPC
# API on unix sockets; takes about 15 minutes. Writes the tables and raw
# results to docs/bench/ and the start-up plot. bench is a module of its
# own (sdp-bench is no part of the daemon), and so is bench/plot, which
# keeps the plotting library out of go.mod. sdp-bench reads the allocate
# manifest from testdata/, so it runs from here. Not part of `make test`:
# nothing here is a timed assertion.
# BENCH_FLAGS: e.g. -quick (a smoke run), -only allocate,recovery, -rounds N,
# -versus OLD_BINARY (before/after of a change).
BENCH_FLAGS ?=
bench: build bench-go
	cd bench && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o ../bin/sdp-bench .
	bin/sdp-bench -bin $(BIN) -json docs/bench/results.json -md docs/bench/results.md $(BENCH_FLAGS)
	cd bench/plot && $(GO) run . -in ../../docs/bench/results.json -out ../../docs/bench/startup.svg

# In-process micro-benchmarks of the hot paths (allocations per call).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./host ./manifest | tee docs/bench/go-bench.txt

clean:
	rm -rf bin

# ---------------------------------------------------------------------------
# Container image and the test on a real cluster. deploy/ holds the
# kustomize base and the Helm chart; e2e/cluster/ the cluster tooling.

# The image's name and tag; the tag is the version the binaries report.
IMAGE           ?= simple-device-plugin:$(VERSION)
# The platforms of the image index (OS/ARCH each).
IMAGE_PLATFORMS ?= linux/amd64 linux/arm64
# The OCI image layout holding the index (push it with crane or skopeo:
# deploy/README.md).
IMAGE_DIR       ?= bin/image
# The same image, for this machine's platform only, as a docker-archive
# tarball (docker load, podman load, ctr images import).
IMAGE_TAR       ?= bin/simple-device-plugin-image.tar
# The OCI label org.opencontainers.image.source: the repository the image
# is built from, by default this clone's origin (no label without one).
SOURCE          ?= $(shell git config --get remote.origin.url 2>/dev/null | sed -nE \
                     -e 's#^https://([^@/]*@)?#https://#p' \
                     -e 's#^(ssh://)?git@([^:/]+)[:/]#https://\2/#p')
# Where the binaries of the image go, one directory per platform.
IMAGE_BIN_DIR   ?= bin

IMAGE_BINS = $(foreach p,$(IMAGE_PLATFORMS),$(IMAGE_BIN_DIR)/$(subst /,-,$(p))/simple-device-plugin)

.PHONY: image chart-readme e2e-cluster FORCE

# The image the Dockerfile builds, without Docker and for every platform of
# IMAGE_PLATFORMS at once: a static binary per platform on an empty base
# (plus /etc/passwd and /etc/group), assembled by e2e/cluster/cmd/mkimage
# (go-containerregistry, no registry) into an image index, written as an
# OCI image layout (IMAGE_DIR) and, for this machine, as a docker-archive
# (IMAGE_TAR). Same binaries, same digests: every timestamp is fixed.
image: $(IMAGE_BINS)
	cd e2e/cluster && CGO_ENABLED=0 $(GO) build -trimpath -o _out/bin/mkimage ./cmd/mkimage
	e2e/cluster/_out/bin/mkimage --tag $(IMAGE) --layout $(IMAGE_DIR) --out $(IMAGE_TAR) \
	  $(addprefix --platform ,$(IMAGE_PLATFORMS)) \
	  --add '$(IMAGE_BIN_DIR)/{os}-{arch}/simple-device-plugin=/usr/local/bin/simple-device-plugin' \
	  --entrypoint /usr/local/bin/simple-device-plugin --user 65532:65532 \
	  --label org.opencontainers.image.title=simple-device-plugin \
	  --label org.opencontainers.image.version=$(VERSION) \
	  --label org.opencontainers.image.revision=$(REVISION) \
	  $(if $(SOURCE),--label org.opencontainers.image.source=$(SOURCE))

# A static binary per platform of the image. Always run (FORCE): go build
# knows better than make what is stale, and VERSION may have changed.
$(IMAGE_BIN_DIR)/%/simple-device-plugin: FORCE
	CGO_ENABLED=0 GOOS=$(word 1,$(subst -, ,$*)) GOARCH=$(word 2,$(subst -, ,$*)) \
	  $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ .
FORCE:

# The Helm chart's README.md, from its values.yaml and values.schema.json
# (TestChartREADME fails when it is out of date).
chart-readme:
	cd e2e/cluster && $(GO) run ./cmd/chartreadme ../../deploy/helm/simple-device-plugin

# A single-node cluster on loopback (containerd, etcd and Kubernetes built
# from the Go module proxy), the deploy/ base installed on it and tested;
# torn down afterwards, always. Needs root; see e2e/cluster/README.md.
e2e-cluster:
	e2e/cluster/e2e.sh
