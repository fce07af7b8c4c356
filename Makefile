# Two commands from a fresh clone: `make run` serves the bundled model locally,
# `make test` installs what the tests need and runs all of them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
CARGO_LAMBDA := $(VENV)/bin/cargo-lambda
FUNCTION  := classify
DATA_TGZ  ?= ../shared/datasets/cifar10-jpeg/train.tar.gz
RUN_DIR   ?= runs/latest
PORT      ?= 9000
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup setup-test run test test-rust test-e2e test-infra lint build-arm64 train train-seed \
        evaluate bench bench-memory bench-ceiling fuzz bench-load bench-refresh bench-torch trainer-libtorch bench-function publish-model deploy clean

help:
	@echo "make run      serve the bundled model on http://127.0.0.1:$(PORT) via cargo lambda watch"
	@echo "make test     install test tools, run fmt + clippy, Rust, end-to-end, arm64 and infra tests"
	@echo "make train    train the default net on $(DATA_TGZ) into $(RUN_DIR)"
	@echo "make evaluate score models/cifar10.onnx on the validation images it was trained without"
	@echo "make bench    training images/s per architecture; make bench-function: latency table"
	@echo "make bench-memory  function RSS per 1,000 requests through the runtime loop"
	@echo "make fuzz     cargo fuzz (nightly) on decode, jpeg_dc, handler and parsers, FUZZ_SECONDS each"
	@echo "make bench-ceiling peak RSS of the largest accepted inputs, each in a fresh process"
	@echo "make bench-load    8 concurrent clients on the function under cargo lambda watch"
	@echo "make bench-refresh cost of a pointer check and latency during a model swap (S3 on loopback)"
	@echo "make bench-torch  the same nets in PyTorch CPU and burn's LibTorch backend, side by side"
	@echo "make deploy   cargo lambda build --arm64 + cdk deploy; make publish-model after training"
	@echo "make lint     cargo fmt --check and clippy -D warnings (make test runs it first)"
	@echo "make build-arm64   the Lambda bootstrap (cargo lambda build --release --arm64)"
	@echo "make train-seed    the Keras seed architecture through the same pipeline"
	@echo "make trainer-libtorch  the trainer with burn's LibTorch backend (PyPI torch, ~4.8 GB)"
	@echo "make setup / setup-test  the project-local tools (.venv, rustup target; apt and npm for tests)"
	@echo "make clean    cargo clean and remove .venv, runs, node_modules, cdk.out"

# --- set-up (project-local: .venv, rustup targets, node_modules; apt only for system tools) ---
$(VENV)/.base: scripts/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r scripts/requirements.txt
	touch $@

setup: $(VENV)/.base
	rustup target add aarch64-unknown-linux-gnu >/dev/null
	rustup component add clippy rustfmt >/dev/null 2>&1 || true

setup-test: setup
	@if ! command -v qemu-aarch64 >/dev/null || [ ! -d /usr/aarch64-linux-gnu ] || [ ! -x /usr/bin/chromium ]; then \
	  echo "installing qemu-user, the arm64 C library and chromium (apt-get)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    qemu-user libc6-arm64-cross chromium >/dev/null; \
	fi
	@for d in infra tests/web; do \
	  if [ ! -d $$d/node_modules ]; then (cd $$d && npm ci --no-audit --no-fund); fi; \
	done

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# --- run locally ---
run: setup
	cargo build --release -p $(FUNCTION)
	@echo
	@echo "Serving the bundled model (models/cifar10.onnx) at http://127.0.0.1:$(PORT)/lambda-url/$(FUNCTION)/"
	@echo "Try:"
	@echo "  curl -s http://127.0.0.1:$(PORT)/lambda-url/$(FUNCTION)/health"
	@echo "  curl -s -H 'Content-Type: image/jpeg' --data-binary @tests/fixtures/cat.jpg http://127.0.0.1:$(PORT)/lambda-url/$(FUNCTION)/predict"
	@echo "  open http://127.0.0.1:$(PORT)/lambda-url/$(FUNCTION)/ in a browser"
	@echo
	cargo lambda watch --release --disable-cors --invoke-port $(PORT) -p $(FUNCTION) --bin $(FUNCTION)

# --- tests ---
test: setup-test lint
	cargo build --release --workspace --bins
	# What `cargo lambda watch -p classify` runs: building it alone resolves features for
	# that package only, so build it here rather than inside an e2e test's time limit.
	cargo build --release -p $(FUNCTION) --bin $(FUNCTION)
	$(MAKE) build-arm64
	cargo test --release --workspace --no-fail-fast -- --include-ignored
	@if [ -f infra/package.json ]; then $(MAKE) test-infra; fi

build-arm64: setup
	cargo lambda build --release --arm64 -p $(FUNCTION) --bin $(FUNCTION)

test-infra:
	cd infra && npm test

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --release -- -D warnings

# --- training and evaluation ---
# The shipped model: the default recipe fitted into a training-time budget.
TRAIN_MINUTES ?= 60
train:
	nice cargo run --release -p trainer -- train --data $(DATA_TGZ) --out $(RUN_DIR) \
		--time-budget-minutes $(TRAIN_MINUTES)

train-seed:
	nice cargo run --release -p trainer -- train --preset seed --data $(DATA_TGZ) --out runs/seed

evaluate:
	cargo run --release -p trainer -- evaluate --model models/cifar10.onnx --data $(DATA_TGZ) --held-out

bench:
	cargo run --release -p trainer -- bench --data $(DATA_TGZ)

# Optional PyTorch (CPU use of the PyPI wheel, ~4.8 GB with its CUDA libraries): never
# needed by `make test`. 2.9.0 is the version tch 0.22 (burn's LibTorch backend) links.
TORCH_VENV := .venv-torch
TORCH_PY   := $(TORCH_VENV)/bin/python
TORCH_ENV  := LIBTORCH_USE_PYTORCH=1 PYTHON_SYS_EXECUTABLE=$(CURDIR)/$(TORCH_PY) \
	LD_LIBRARY_PATH=$$($(TORCH_PY) -c 'import torch, os; print(os.path.dirname(torch.__file__))')/lib

$(TORCH_VENV)/.base:
	python3 -m venv $(TORCH_VENV)
	$(TORCH_PY) -m pip install -q torch==2.9.0 numpy==2.4.6
	touch $@

trainer-libtorch: $(TORCH_VENV)/.base
	$(TORCH_ENV) cargo build --release -p trainer --features libtorch

bench-torch: trainer-libtorch
	$(TORCH_ENV) ./target/release/trainer bench --data $(DATA_TGZ) --images 2048 \
		--backends flex,libtorch --torch-python $(TORCH_PY)

# RSS of the function per 1,000 requests through the Lambda runtime loop (loopback).
bench-memory:
	cargo build --release -p $(FUNCTION) --bin $(FUNCTION)
	cargo run --release -p e2e --bin soak -- 10000

bench-load: setup
	cargo build --release --workspace --bins
	cargo build --release -p $(FUNCTION) --bin $(FUNCTION)
	target/release/load 8 250

# Coverage-guided fuzzing (cargo fuzz: nightly + libFuzzer), bounded: FUZZ_SECONDS per target
# from the committed seeds in fuzz/seeds/<target>; findings land in fuzz/artifacts/.
FUZZ_SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@for t in decode jpeg_dc parsers handler; do \
	  mkdir -p fuzz/corpus/$$t; \
	  (cd fuzz && cargo +nightly fuzz run $$t corpus/$$t seeds/$$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=262144) || exit 1; \
	done

bench-ceiling:
	cargo build --release --workspace --bins
	target/release/ceiling

bench-refresh: setup
	cargo build --release --workspace --bins
	target/release/refresh_bench 3000

bench-function: setup
	$(PY) -m pip install -q onnxruntime numpy
	cargo run --release -p $(FUNCTION) --bin bench -- --ort-python $(PY)

# --- AWS ---
deploy: setup
	cargo lambda build --release --arm64 -p $(FUNCTION) --bin $(FUNCTION)
	cd infra && npm ci --no-audit --no-fund && npx cdk deploy --outputs-file cdk-outputs.json

publish-model:
	@bucket=$$(node -e 'const o=require("./infra/cdk-outputs.json");console.log(Object.values(o)[0].ModelBucketName)'); \
	cargo run --release -p trainer -- publish --run $(RUN_DIR) --to s3://$$bucket/
	@echo "Warm instances switch within MODEL_REFRESH_SECONDS (60 s by default) of their next request;"
	@echo "cold starts load it at once. Watch: curl <ApiUrl>/health (model_version, refresh)."

clean:
	cargo clean; rm -rf $(VENV) runs infra/node_modules infra/cdk.out
