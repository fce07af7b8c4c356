# Two commands from a fresh clone: `make run` serves the bundled model locally,
# `make test` installs what the tests need and runs all of them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
FUNCTION  := classify
DATA_TGZ  ?= ../shared/datasets/cifar10-jpeg/train.tar.gz
RUN_DIR   ?= runs/latest
MODEL     ?= $(RUN_DIR)/model.onnx
PORT      ?= 9000
CDK_ARGS  ?=
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help check-tools setup setup-test toolchain run test test-arm64 test-infra lint build build-arm64 \
        train train-seed evaluate calibrate bench bench-function bench-memory bench-ceiling bench-load \
        bench-refresh bench-engine bench-time-to-accuracy bench-torch trainer-libtorch trainer-wgpu trainer-cuda test-wgpu bench-shards shard-data trainer-image push-trainer-image train-cloud fuzz bootstrap deploy url publish-model destroy clean package package-size

help:
	@echo "make run           serve the bundled model on http://127.0.0.1:$(PORT)/lambda-url/$(FUNCTION)/"
	@echo "make test          install test tools; fmt, clippy, build, unit, integration, end-to-end and infra tests"
	@echo "make test-arm64    the arm64 Lambda build, run under qemu (CI runs it after make test)"
	@echo "make test-wgpu     the GPU backend on Mesa's software Vulkan, checked against the CPU one (CI runs it)"
	@echo "make train         train the default net on DATA_TGZ=$(DATA_TGZ) into RUN_DIR=$(RUN_DIR)"
	@echo "make evaluate      score models/cifar10.onnx on the validation images it was trained without"
	@echo "make calibrate     refit models/cifar10.onnx's temperature, prediction sets and ood_score (no retraining)"
	@echo "make bootstrap / deploy / url / publish-model / destroy   the AWS stack (docs/deploy.md)"
	@echo "make trainer-image / push-trainer-image / train-cloud   the managed training job (docs/training.md)"
	@echo "make package       the arm64 deployment zip, its sizes held to 10 MB (binary) and 5 MB (zip)"
	@echo "make package-size  the same zip's sizes beside that budget, without failing over it"
	@echo "make bench         training images/s per net (train-bench); make bench-engine: beside PyTorch CPU"
	@echo "make bench-function  latency table of the function; other bench-* targets: docs/benchmarks.md"
	@echo "make fuzz          cargo fuzz (nightly) on every target, FUZZ_SECONDS each"
	@echo "make lint          cargo fmt --check and clippy -D warnings"
	@echo "make clean         cargo clean and remove .venv, runs, node_modules, cdk.out"

# --- set-up (project-local: .venv, rustup targets, node_modules; apt only for system tools) ---
check-tools:
	@$(SHELL) scripts/check-tools.sh test

$(VENV)/.base: scripts/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --no-compile --upgrade pip
	$(PY) -m pip install -q --no-compile -r scripts/requirements.txt
	touch $@

setup: $(VENV)/.base toolchain

# What the Rust build itself needs: the arm64 target, clippy and rustfmt.
toolchain:
	rustup target add aarch64-unknown-linux-gnu >/dev/null
	rustup component add clippy rustfmt >/dev/null 2>&1 || true

SUDO := $(shell [ "$$(id -u 2>/dev/null)" = 0 ] || echo sudo)

# The downloads wait on the network, not the CPU: the .venv, the three npm installs and apt
# run side by side, and any failure fails the target.
setup-test:
	@pids=""; \
	 $(MAKE) --no-print-directory setup & pids="$$pids $$!"; \
	 for d in infra tests/web clients/typescript; do \
	   if [ ! -d $$d/node_modules ]; then (cd $$d && npm ci --no-audit --no-fund) & pids="$$pids $$!"; fi; \
	 done; \
	 if ! command -v qemu-aarch64 >/dev/null || [ ! -d /usr/aarch64-linux-gnu ] || [ ! -x /usr/bin/chromium ]; then \
	   echo "installing qemu-user, the arm64 C library and chromium (apt-get)"; \
	   $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	     qemu-user libc6-arm64-cross chromium >/dev/null || failed=1; \
	 fi; \
	 for p in $$pids; do wait $$p || failed=1; done; \
	 [ -z "$$failed" ]

# --- run locally ---
# The function's release binary behind cargo lambda's emulator of the Lambda runtime API
# and function URLs (API Gateway v2 events), as the end-to-end tests serve it.
run:
	@$(SHELL) scripts/check-tools.sh run
	@$(MAKE) --no-print-directory setup
	cargo build --release -p $(FUNCTION) --bin $(FUNCTION)
	@echo
	@echo "Serving the bundled model (models/cifar10.onnx) at http://127.0.0.1:$(PORT)/lambda-url/$(FUNCTION)/"
	@echo "Try:"
	@echo "  curl -s http://127.0.0.1:$(PORT)/lambda-url/$(FUNCTION)/health"
	@echo "  curl -s -H 'Content-Type: image/jpeg' --data-binary @tests/fixtures/cat.jpg http://127.0.0.1:$(PORT)/lambda-url/$(FUNCTION)/predict"
	@echo "  open http://127.0.0.1:$(PORT)/lambda-url/$(FUNCTION)/ in a browser"
	@echo
	scripts/serve.sh target/release/$(FUNCTION) $(PORT)

# --- tests ---
# Clippy runs inside the one release build (clippy-driver as the workspace members'
# compiler, as `cargo clippy` itself sets it up), so dependencies compile once for both
# lints and tests. The test run must see the same environment, or cargo rebuilds.
CLIPPY_DRIVER := $(shell rustup which clippy-driver 2>/dev/null)
LINTED := RUSTC_WORKSPACE_WRAPPER=$(CLIPPY_DRIVER) CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings

test: check-tools
	@rm -rf target/test-stages && mkdir -p target/test-stages && date +%s > target/test-stages/start
	@scripts/stage.sh toolchain $(MAKE) --no-print-directory toolchain
	@scripts/stage.sh fmt cargo fmt --all -- --check
	@# The downloads (.venv, npm, apt) wait on the network and the build on the CPU, so they
	@# run side by side; nothing in the build reads what they fetch.
	@scripts/stage.sh setup $(MAKE) --no-print-directory setup-test > /dev/null 2>&1 & setup=$$!; \
	 scripts/stage.sh build-and-clippy env $(LINTED) cargo build --release --workspace --all-targets --timings; \
	 build=$$?; wait $$setup; setup_status=$$?; cat target/test-stages/setup.log; \
	 [ $$build = 0 ] && [ $$setup_status = 0 ]
	@# The infra tests need no Rust build: they run beside the Rust tests, which spend much
	@# of their time waiting on servers, and their log follows.
	@scripts/stage.sh infra-tests $(MAKE) --no-print-directory test-infra > /dev/null 2>&1 & infra=$$!; \
	 scripts/stage.sh rust-tests env $(LINTED) cargo test --release --workspace --no-fail-fast -- --include-ignored --skip arm64::; \
	 rust=$$?; wait $$infra; infra_status=$$?; cat target/test-stages/infra-tests.log; \
	 [ $$rust = 0 ] && [ $$infra_status = 0 ]
	@scripts/stage.sh ts-client-tests bash -c 'cd clients/typescript && npm test'
	@# The vendored tract-core's hot loops, against their definitions (a crate outside the
	@# workspace: no dependencies, a few seconds).
	@scripts/stage.sh kernel-tests cargo test --release --manifest-path vendor/tract-core/kernels/Cargo.toml --target-dir target/kernels
	@scripts/test-summary.sh

# Heavier than make test's 20-minute budget: every dependency again for aarch64. CI runs it
# after make test.
test-arm64: setup-test build-arm64
	env $(LINTED) cargo test --release --workspace --test e2e -- --ignored arm64::

# The trainer's wgpu backend on Mesa's software Vulkan (lavapipe): no GPU needed, slow, so
# outside make test's budget (CI runs it after make test). wgpu wants a runtime directory.
test-wgpu: setup
	@if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then \
	  echo "installing Mesa's Vulkan drivers (apt-get)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    mesa-vulkan-drivers >/dev/null; \
	fi
	export XDG_RUNTIME_DIR=$${XDG_RUNTIME_DIR:-$$(mktemp -d)}; \
	  env $(LINTED) cargo test --release -p trainer --features wgpu --test wgpu -- --test-threads 1

# No unwind tables: the `lambda` profile aborts on panic, so nothing unwinds (std's own
# tables stay; RUSTFLAGS because a profile cannot set it).
build-arm64: setup
	RUSTFLAGS="-C force-unwind-tables=no" cargo lambda build --profile lambda --arm64 -p $(FUNCTION) --bin $(FUNCTION)

# The deployment package: the arm64 bootstrap (embedded model included, no executable
# packer) zipped as Lambda takes it; prints both sizes and fails over 10 MB / 5 MB.
package: build-arm64
	$(PY) scripts/package.py target/lambda/$(FUNCTION)/bootstrap target/lambda/$(FUNCTION).zip

package-size: build-arm64
	$(PY) scripts/package.py --report target/lambda/$(FUNCTION)/bootstrap target/lambda/$(FUNCTION).zip

test-infra:
	cd infra && npm test

build:
	cargo build --release --workspace --bins

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

# Refit the shipped model's temperature, prediction sets and out-of-distribution score
# on its validation halves (weights unchanged): models/ gets the file, its golden pair,
# metrics and plots.
calibrate:
	cargo run --release -p trainer -- calibrate --model models/cifar10.onnx --data $(DATA_TGZ) \
		--golden models/golden.json --metrics models/metrics.json --out runs/calibrated
	cp runs/calibrated/model.onnx models/cifar10.onnx
	cp runs/calibrated/golden.json runs/calibrated/metrics.json runs/calibrated/uncertainty.png models/
	cargo run --release -p trainer -- plot --run models

bench: build
	target/release/train-bench --data $(DATA_TGZ)

# Optional PyTorch (CPU use of the PyPI wheel, ~4.8 GB with its CUDA libraries): never
# needed by `make test`. 2.9.0 is the version tch 0.22 (burn's LibTorch backend) links.
TORCH_VENV := .venv-torch
TORCH_PY   := $(TORCH_VENV)/bin/python
TORCH_ENV  := LIBTORCH_USE_PYTORCH=1 PYTHON_SYS_EXECUTABLE=$(CURDIR)/$(TORCH_PY) \
	LD_LIBRARY_PATH=$$($(TORCH_PY) -c 'import torch, os; print(os.path.dirname(torch.__file__))')/lib

$(TORCH_VENV)/.base: scripts/torch-requirements.txt
	python3 -m venv $(TORCH_VENV)
	$(TORCH_PY) -m pip install -q -r scripts/torch-requirements.txt
	touch $@

trainer-libtorch: $(TORCH_VENV)/.base
	$(TORCH_ENV) cargo build --release -p trainer --features libtorch

# The engine beside PyTorch CPU on the shipped net at the recipe's batch, median of
# three alternating rounds (PyTorch in NCHW and channels_last, the faster counting), and
# minutes to accuracy of the same recipe in both (EPOCHS, one run each; the full 22
# reach 90 % with mirror TTA, about 80 minutes for the pair on 2 cores).
EPOCHS ?= 22
bench-engine: build $(TORCH_VENV)/.base
	target/release/train-bench --data $(DATA_TGZ) --images 4096 --batch-size 1024 \
		--torch-python $(TORCH_PY) --rounds 3
bench-time-to-accuracy: build $(TORCH_VENV)/.base
	target/release/train-bench --data $(DATA_TGZ) --torch-python $(TORCH_PY) \
		--time-to-accuracy $(EPOCHS)

bench-torch: trainer-libtorch
	$(TORCH_ENV) cargo build --release -p bench --bin train-bench --features libtorch
	$(TORCH_ENV) ./target/release/train-bench --data $(DATA_TGZ) --images 2048 \
		--backends flex,libtorch --torch-python $(TORCH_PY)

# The GPU backends (docs/training.md): `trainer train --backend wgpu|cuda`. cuda needs
# the CUDA toolkit at build time and a driver at run time.
trainer-wgpu:
	cargo build --release -p trainer --features wgpu --bin trainer

trainer-cuda:
	cargo build --release -p trainer --features cuda --bin trainer

# The function's latency table, tract beside ONNX Runtime.
# ONNX Runtime and numpy come with the .venv (scripts/requirements.txt).
bench-function: setup build
	target/release/function-bench --model models/cifar10.onnx --iterations 200 --ort-python $(PY) \
	  --previous-model tests/fixtures/models/cifar10-f5958a9e.onnx

# RSS of the function per 1,000 requests through the Lambda runtime loop (loopback).
bench-memory: build
	target/release/soak 10000

bench-ceiling: build
	target/release/ceiling

bench-load: setup build
	target/release/load 8 250

# Peak RSS of a streamed epoch against dataset size (sharded data, docs/training.md).
bench-shards: build
	target/release/shard-bench

# DATA_TGZ as WebDataset shards for `trainer train --shards` (SHARDS_OUT may be s3://...).
SHARDS_OUT ?= .data/shards
shard-data:
	cargo run --release -p trainer -- data shard $(DATA_TGZ) --out $(SHARDS_OUT)

bench-refresh: setup build
	target/release/refresh_bench 3000

# Coverage-guided fuzzing (cargo fuzz: nightly + libFuzzer), bounded: FUZZ_SECONDS per target
# from the committed seeds; findings land in <fuzz dir>/artifacts/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := fuzz:decode fuzz:parsers fuzz:handler crates/jpeg-dc/fuzz:jpeg_dc
fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do \
	  dir=$${t%%:*}; name=$${t##*:}; seeds=seeds/$$name; [ -d $$dir/$$seeds ] || seeds=seeds; \
	  mkdir -p $$dir/corpus/$$name; \
	  (cd $$dir && cargo +nightly fuzz run $$name corpus/$$name $$seeds -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=262144) || exit 1; \
	done

# --- AWS (docs/deploy.md): account and region from the usual AWS variables ---
OUTPUTS := infra/cdk-outputs.json
CDK     := cd infra && npx cdk
# One output of the classifier stack (an edge deploy adds a us-east-1 stack beside it).
OUTPUT  := node -e 'const s = Object.values(require("./$(OUTPUTS)")).find((s) => s.ApiUrl); console.log(s[process.argv[1]])'

infra/node_modules: infra/package-lock.json
	cd infra && npm ci --no-audit --no-fund
	touch $@

bootstrap: infra/node_modules
	$(CDK) bootstrap $(CDK_ARGS)

deploy: setup infra/node_modules build-arm64
	$(CDK) deploy --all --require-approval never --outputs-file cdk-outputs.json -c trainingImageTag=$(TRAINER_TAG) $(CDK_ARGS)

url:
	@test -f $(OUTPUTS) || { echo "no $(OUTPUTS): run make deploy first" >&2; exit 1; }
	@$(OUTPUT) ApiUrl

publish-model:
	@test -f $(OUTPUTS) || { echo "no $(OUTPUTS): run make deploy first" >&2; exit 1; }
	@bucket=$$($(OUTPUT) ModelBucketName); \
	cargo run --release -p trainer -- publish --model $(MODEL) --to s3://$$bucket/
	@echo "Warm instances switch within MODEL_REFRESH_SECONDS (60 s by default) of their next request;"
	@echo "cold starts load it at once. Watch: curl \$$(make -s url)/health (model_version, refresh)."

# The managed training job (-c training=true, docs/training.md): the trainer image, built
# without a Docker engine by buildah where there is one, pushed to the stack's repository
# under this commit's tag (deploy names the same tag), then a job submitted and followed.
TRAINER_TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo dev)
IMAGE_TOOL  ?= $(shell command -v docker 2>/dev/null || command -v buildah 2>/dev/null)
trainer-image:
	@test -n "$(IMAGE_TOOL)" || { echo "needs docker or buildah" >&2; exit 1; }
	$(IMAGE_TOOL) build -f trainer/Dockerfile -t trainer:$(TRAINER_TAG) .

push-trainer-image: trainer-image
	@test -f $(OUTPUTS) || { echo "no $(OUTPUTS): make deploy CDK_ARGS='-c training=true' first" >&2; exit 1; }
	@repo=$$($(OUTPUT) TrainingRepository); test "$$repo" != undefined || { echo "deploy with -c training=true first" >&2; exit 1; }; \
	aws ecr get-login-password | $(IMAGE_TOOL) login --username AWS --password-stdin $${repo%%/*} && \
	$(IMAGE_TOOL) tag trainer:$(TRAINER_TAG) $$repo:$(TRAINER_TAG) && $(IMAGE_TOOL) push $$repo:$(TRAINER_TAG)

# DATA: s3://<bucket>/datasets/<file>.tar.gz; PRESET and BUDGET as for make train.
PRESET ?= default
BUDGET ?= 60m
train-cloud: setup
	$(PY) scripts/train_cloud.py --outputs $(OUTPUTS) --preset $(PRESET) --budget $(BUDGET) $(if $(DATA),--data $(DATA))

destroy: infra/node_modules
	$(CDK) destroy --all --force $(CDK_ARGS)

clean:
	cargo clean; rm -rf $(VENV) runs infra/node_modules infra/cdk.out tests/web/node_modules \
		clients/typescript/node_modules clients/typescript/dist
