#!/bin/bash
# Issue #30's A/B (recipes/warm_start/README.md, "SpecDiff-GAN's discriminator noise"): the adversarial phase of
# HiFi-GAN V2 with and without SpecDiff-GAN's diffusion noise on the discriminators' inputs, both from the committed
# generator-only warm start, one thread each, side by side, each stopped after CPU_SECONDS (default 1800) of its
# training process. Both arms: recipes/hifigan_v2.yaml's MPD + MSD at a quarter of their width and batch 8 (what a
# CPU step affords; the full width takes ~7.5 s a step), no data-loader workers (all of an arm's work in its process).
# Run from the repository root with the corpus built; runs go to runs/ab_specdiff/ARM.
set -eu
W=recipes/warm_start/default_22khz_generator.pt
COMMON="--data data/corpus/train.txt --val data/corpus/val.txt --init-generator $W data.batch_size=8 data.num_workers=0
 discriminators.0.args.channel_mult=0.25 discriminators.1.args.channel_mult=0.25 trainer.checkpoint_every_n_steps=50
 trainer.keep_last_checkpoints=100 trainer.val_check_interval=100000 trainer.num_sanity_val_steps=0 trainer.log_every_n_steps=10"
exec python scripts/run_ab_arms.py --out runs/ab_specdiff --cpu-seconds "${CPU_SECONDS:-1800}" --common "$COMMON" \
  plain="--config recipes/hifigan_v2.yaml" \
  specdiff="--config recipes/hifigan_v2_specdiff.yaml"
