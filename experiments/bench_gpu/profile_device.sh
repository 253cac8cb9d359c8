#!/usr/bin/env bash
# The second device call (see README.md): where the paper's coarse step spends its time at 256 images per step,
# with and without cuDNN autotuning, the detail step autotuned, and torch.compile last (it may not finish).
#   device run, carry [".whl"]:  bash experiments/bench_gpu/profile_device.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
t0=$(date +%s); stamp() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheel install failed"; exit 1; }
export PYTHONPATH="$PWD/src:$PWD/benchmarks:/tmp/site" PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0
export TORCH_EXTENSIONS_DIR=/tmp/torch_ext
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
B="python3 benchmarks/bench_train.py --device cuda --threads 8 --steps 10 --warmup 5"
stamp "nvdiffrast build"
timeout 120 python3 -c "from decalite.render.raster_nvdiffrast import NvdiffrastRasterizer as R; R().context('cuda')"
stamp "paper coarse, 256 images, cuDNN autotuned, profiled"
timeout 70 $B --only paper:coarse --groups 64 --out "$OUT/coarse_bench" --profile "$OUT"
stamp "paper coarse, 256 images, no cuDNN autotuning"
timeout 45 $B --only paper:coarse --groups 64 --no-cudnn-benchmark --out ""
stamp "paper detail, 32 images, cuDNN autotuned"
timeout 60 $B --only paper:detail --out ""
stamp "paper coarse, 256 images, torch.compile"
timeout 100 $B --only paper:coarse --groups 64 --compile --out ""
stamp "done"
