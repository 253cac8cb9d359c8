#!/usr/bin/env bash
# The self-supervised coarse stages in the calm identity world (experiments/identity_budget/README.md).
set -x
BIN=.venv/bin
LOGS=outputs/identity_world/selfsup
ROOT=data/world_s16_std2_calm
# the data: written by the first decalite-train on first use (or make_world.py, the same splits)
W="flame.n_shape=16 data.synthetic.shape_std=2.0 +data.synthetic.yaw=10.0 +data.synthetic.pitch=5.0 +data.synthetic.roll=3.0 +data.synthetic.exp_active=0.05 +data.synthetic.light_variation=0.5 data.synthetic.root=$ROOT"
$BIN/decalite-train experiment=synthetic_cpu_pretrain paths.log_dir=$LOGS $W
$BIN/decalite-train experiment=synthetic_cpu paths.log_dir=$LOGS $W init_from=$LOGS/synthetic_cpu/pretrain/checkpoints/last.ckpt
$BIN/decalite-evaluate model.checkpoint=$LOGS/synthetic_cpu/coarse/checkpoints/last.ckpt output=outputs/identity_world/selfsup_eval detail=false max_identities=16 threads=2
