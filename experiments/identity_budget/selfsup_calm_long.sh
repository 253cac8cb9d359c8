#!/usr/bin/env bash
# The self-supervised coarse stage in the calm identity world, 4x longer (512 coarse steps), from selfsup_calm.sh's
# pretrain checkpoint; PHOTOMETRIC=10 repeats it with 5x the photometric weight (experiments/identity_budget/README.md).
set -x
BIN=.venv/bin
ROOT=data/world_s16_std2_calm
PHOTOMETRIC=${PHOTOMETRIC:-2.0}
LOGS=outputs/identity_world/selfsup_long_photometric$PHOTOMETRIC
W="flame.n_shape=16 data.synthetic.shape_std=2.0 +data.synthetic.yaw=10.0 +data.synthetic.pitch=5.0 +data.synthetic.roll=3.0 +data.synthetic.exp_active=0.05 +data.synthetic.light_variation=0.5 data.synthetic.root=$ROOT"
$BIN/decalite-train experiment=synthetic_cpu paths.log_dir=$LOGS $W trainer.max_epochs=32 trainer.check_val_every_n_epoch=8 \
    loss.terms.photometric=$PHOTOMETRIC init_from=outputs/identity_world/selfsup/synthetic_cpu/pretrain/checkpoints/last.ckpt
$BIN/decalite-evaluate model.checkpoint=$LOGS/synthetic_cpu/coarse/checkpoints/last.ckpt output=${LOGS}_eval detail=false \
    max_identities=16 threads=2
