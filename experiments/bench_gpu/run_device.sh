#!/usr/bin/env bash
# One device-machine call (see experiments/bench_gpu/README.md): install the carried wheels, build nvdiffrast, run
# the GPU tests, then the training-step, renderer and reconstruction benchmarks on CUDA. Each step has its own time
# limit so that one failure cannot eat the lease; everything lands in $OUT (log.txt and one folder per report).
#   device run, carry [".whl"]:  bash experiments/bench_gpu/run_device.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
RES=$OUT  # at most 8 files come back: log.txt + 3 reports x (json, md); the 256-image row is in the log
exec > >(tee "$OUT/log.txt") 2>&1
t0=$(date +%s); stamp() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheel install failed"; exit 1; }
export PYTHONPATH="$PWD/src:$PWD/benchmarks:/tmp/site" PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, torchvision, lightning; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'lightning', lightning.__version__)"
stamp "nvdiffrast build (through decalite's rasterizer, which imports a built plugin nvdiffrast cannot find)"
export TORCH_EXTENSIONS_DIR=/tmp/torch_ext
if ! timeout 240 python3 -c "
import time, torch; from decalite.render.raster_nvdiffrast import NvdiffrastRasterizer
t = time.time(); NvdiffrastRasterizer().context('cuda'); print(f'nvdiffrast context in {time.time() - t:.1f} s')"; then
  echo "decalite's import fallback failed: putting the plugin's build folder on PYTHONPATH"
  export PYTHONPATH="$PYTHONPATH:$(ls -d /tmp/torch_ext/nvdiffrast_plugin* | head -1)"
fi
stamp "GPU tests"
timeout 120 python3 -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tail -15
stamp "decalite-train through Lightning on the GPU (bf16-mixed, nvdiffrast): synthetic_cpu, 1 epoch, 32 identities"
timeout 150 python3 -m decalite.cli.train experiment=synthetic_cpu trainer=gpu renderer.backend=auto threads=8 \
  data.synthetic.train_identities=32 paths.data_dir=/tmp/data paths.log_dir=/tmp/logs trainer.max_epochs=1 2>&1 \
  | grep -v "━" | tail -8
stamp "bench_train (paper + synthetic_cpu, configured batches)"
timeout 220 python3 benchmarks/bench_train.py --device cuda --threads 8 --out "$RES/train"
stamp "bench_train paper:coarse at 256 images/step"
timeout 75 python3 benchmarks/bench_train.py --device cuda --threads 8 --only paper:coarse --groups 64 --out ""
stamp "bench_render"
timeout 50 python3 benchmarks/bench_render.py --batches 1 8 32 128 --out "$RES/render"
stamp "bench_reconstruct (a synthetic face where dlib is missing)"
timeout 90 python3 benchmarks/bench_reconstruct.py --device cuda --batches 1 16 64 --fit-steps 100 --out "$RES/reconstruct"
stamp "done"
