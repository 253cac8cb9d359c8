#!/usr/bin/env bash
# One prepared device call (issue 18, part 5): on one GPU, nothing fetched, at most 9 minutes.
#   1. synthetic data at 224 px in the FULL world (all 100 ICT identity modes), written on the device's CPUs;
#   2. pretrain -> coarse -> detail through `decalite-train trainer=gpu` (Lightning, bf16-mixed, nvdiffrast);
#   3. held-out identities scored by `decalite-evaluate` (encoder only: before / after / mean face);
#   4. speed: bench_train's paper coarse step (after the profile changes of 5808e19) and bench_reconstruct at batch 256.
# Every step has its own time limit, so one failure cannot eat the lease; logs and reports land in $OUT.
#
#   device run, carry [".whl"]:   bash experiments/gpu_proof/run_device.sh        (wheels: ../shared/gpu/fetch-wheels.sh)
#   CPU check of the same path:   PROOF_SIZE=tiny bash experiments/gpu_proof/run_device.sh   (about 6 minutes here)
set -uo pipefail
OUT=${OUT:-/tmp/gpu_proof}; mkdir -p "$OUT"
SIZE=${PROOF_SIZE:-full}
WORK=${PROOF_WORK:-/tmp/gpu_proof_work}; rm -rf "$WORK"; mkdir -p "$WORK"
exec > >(tee "$OUT/log.txt") 2>&1
t0=$(date +%s); stamp() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }

if compgen -G ".whl/*.whl" > /dev/null; then  # the device machine: carried wheels beside its torch
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  PY=python3; export PYTHONPATH="$PWD/src:$PWD/benchmarks:/tmp/site" TORCH_CUDA_ARCH_LIST=9.0
  export TORCH_EXTENSIONS_DIR=/tmp/torch_ext
else
  PY=${PY:-.venv/bin/python}; export PYTHONPATH="$PWD/src:$PWD/benchmarks"
fi
export PYTHONUNBUFFERED=1 WANDB_MODE=offline HYDRA_FULL_ERROR=1
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__, 'cuda', torch.cuda.is_available())"

if [ "$SIZE" = tiny ]; then  # the same commands at a size a 2-core CPU runs in minutes
  TRAINER="trainer=cpu renderer.backend=torch threads=2"; MODEL="model=small"
  IMG=64; SYN=80; UV=64; IDS=16; VAL=4; BATCH_GROUPS=2; EPOCH=4; WORKERS=0; THREADS=2
  BENCH_TRAIN="--device cpu --threads 2 --only synthetic_cpu:coarse --steps 2 --warmup 1"
  BENCH_REC="--device cpu --threads 2 --model small --batches 2 --fit-steps 5"
else
  TRAINER="trainer=gpu renderer.backend=auto threads=8"; MODEL="model=deca"
  IMG=224; SYN=256; UV=256; IDS=384; VAL=32; BATCH_GROUPS=8; EPOCH=3200; WORKERS=6; THREADS=8
  BENCH_TRAIN="--device cuda --threads 8 --only paper:coarse --groups 64"
  BENCH_REC="--device cuda --threads 8 --batches 256 --fit-steps 100"
fi
LOGS=$WORK/logs; DATA=$WORK/data
COMMON=(flame=ict flame.n_shape=100 "$MODEL" $TRAINER logger=csv paths.log_dir=$LOGS paths.data_dir=$DATA
        paths.cache_dir=$WORK/cache renderer.image_size=$IMG renderer.uv_size=$UV
        data.synthetic.root=$DATA/full_$SYN data.synthetic.size=$SYN data.synthetic.render_size=$IMG
        data.synthetic.train_identities=$IDS data.synthetic.val_identities=$VAL data.synthetic.identities_per_shard=16
        data.num_workers=$WORKERS data.epoch_length=$EPOCH data.batch_size=$BATCH_GROUPS trainer.max_epochs=1
        ++trainer.check_val_every_n_epoch=1 callbacks.images.every_n_steps=0 trainer.enable_progress_bar=false)
train() {  # train STAGE_DIR LIMIT_S overrides...
  local dir=$1 limit=$2; shift 2
  timeout "$limit" $PY -m decalite.cli.train "${COMMON[@]}" "hydra.run.dir=$LOGS/$dir" "$@" 2>&1 \
    | grep -v "━\|UserWarning\|warnings.warn" | tail -12
  test -f "$LOGS/$dir/checkpoints/last.ckpt" || { echo "!! $dir wrote no checkpoint"; return 1; }
}

stamp "synthetic data: $IDS + $VAL identities x 4 images at $IMG px, full world, on the CPUs"
timeout 200 $PY - "${COMMON[@]}" experiment=deca_pretrain <<'PY' || { echo "!! data generation failed"; exit 1; }
import sys, time, torch
from hydra import compose, initialize_config_dir
from decalite.cli._hydra import CONF_DIR
from decalite.cli.train import ensure_synthetic_data
torch.set_num_threads(torch.get_num_threads())
with initialize_config_dir(CONF_DIR, version_base="1.3"):
    cfg = compose("train", overrides=sys.argv[1:])
t = time.time(); ensure_synthetic_data(cfg); print(f"data written in {time.time() - t:.0f} s")
PY
stamp "pretrain (landmarks, K = 1)"
train pretrain 240 experiment=deca_pretrain data.batch_size=$((BATCH_GROUPS * 4)) data.epoch_length=$((EPOCH * 4)) || exit 1
stamp "coarse (photometric, identity, landmarks, shape consistency)"
train coarse 120 experiment=deca_coarse init_from=$LOGS/pretrain/checkpoints/last.ckpt || exit 1
stamp "detail (photometric, soft symmetry, regulariser, detail consistency; ID-MRF off: no VGG19 weights here)"
train detail 100 experiment=deca_detail init_from=$LOGS/coarse/checkpoints/last.ckpt loss.terms.mrf=0 \
  loss.vgg19_weights=null || exit 1
stamp "held-out identities, encoder only"
timeout 90 $PY -m decalite.cli.evaluate "${COMMON[@]}" experiment=deca_detail init_from=null loss.vgg19_weights=null \
  model.checkpoint=$LOGS/detail/checkpoints/last.ckpt output=$OUT/eval max_identities=$VAL 2>&1 | tail -8
cat "$OUT/eval/train_eval.json" 2>/dev/null
stamp "bench_train: the coarse step"
timeout 90 $PY benchmarks/bench_train.py $BENCH_TRAIN --out "$OUT/train"
stamp "bench_reconstruct"
timeout 60 $PY benchmarks/bench_reconstruct.py $BENCH_REC --out "$OUT/reconstruct"
stamp "done"
