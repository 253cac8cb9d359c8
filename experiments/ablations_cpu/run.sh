#!/usr/bin/env bash
# The paper's ablations at CPU scale, each against its baseline, over several seeds, scored on held-out synthetic
# identities (encoder only). Run after `make train` (it starts from that run's pretrain and coarse checkpoints):
#   bash experiments/ablations_cpu/run.sh [SEEDS] [OUT]      # defaults: "0 1 2", outputs/ablations_cpu
# Writes OUT/<experiment>/seed<N>/ (the run) and OUT/<experiment>/seed<N>/eval/train_eval.json, then OUT/results.md.
set -euo pipefail
SEEDS=${1:-"0 1 2"}
OUT=${2:-outputs/ablations_cpu}
LOGS=${LOGS:-outputs/train}
BIN=${BIN:-.venv/bin}
PRETRAIN=$LOGS/synthetic_cpu/pretrain/checkpoints/last.ckpt
COARSE=$LOGS/synthetic_cpu/coarse/checkpoints/last.ckpt
for f in "$PRETRAIN" "$COARSE"; do
  [[ -f $f ]] || { echo "missing $f: run 'make train' first (it writes the checkpoints the ablations start from)" >&2; exit 1; }
done
# coarse stage: from the pretrain checkpoint, as make train's synthetic_cpu; detail stage: from make train's coarse one
COARSE_RUNS="synthetic_cpu ablation_no_shape_consistency"
DETAIL_RUNS="synthetic_cpu_detail ablation_no_detail_consistency ablation_no_symmetry"
for seed in $SEEDS; do
  for exp in $COARSE_RUNS $DETAIL_RUNS; do
    dir=$OUT/$exp/seed$seed
    case " $COARSE_RUNS " in *" $exp "*) init=$PRETRAIN; detail=false;; *) init=$COARSE; detail=true;; esac
    if [[ ! -f $dir/eval/train_eval.json ]]; then
      echo "== $exp seed $seed"
      mkdir -p "$dir"
      "$BIN/decalite-train" experiment="$exp" seed="$seed" init_from="$init" paths.log_dir="$LOGS" \
        hydra.run.dir="$dir" threads=2 > "$dir/train.log" 2>&1
      # the same held-out identities and scan samples for every run (evaluation seed 0)
      "$BIN/decalite-evaluate" experiment=synthetic_cpu model.checkpoint="$dir/checkpoints/last.ckpt" output="$dir/eval" \
        paths.log_dir="$LOGS" max_identities=16 detail="$detail" threads=2 > "$dir/eval.log" 2>&1
    fi
  done
done
"$BIN/python" experiments/ablations_cpu/summarise.py "$OUT"
