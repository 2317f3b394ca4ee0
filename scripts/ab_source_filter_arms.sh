#!/bin/bash
# Issue #29's A/B (recipes/warm_start/README.md): the current default recipe against the source-filter arms, all
# from scratch on the same corpus, one thread each, side by side, each stopped after CPU_SECONDS (default 3600) of
# its training process; checkpoints every 100 steps for the curve. Score the plain decode (K = 0, no phase
# retrieval) at equal CPU time, e.g.
#   python scripts/training_curve.py --phase model --threads 2 current=runs/ab_source_filter/current/checkpoints/...
# The HiFTNet arms start their F0 network from recipes/warm_start/f0_predictor_22khz.pt, frozen; hiftnet_frame_prior
# is hiftnet_frame with the default model's amplitude prior (the default recipe's generator has it). Results and
# curves: recipes/warm_start/README.md ("HiFTNet's source-filter arms against the default recipe").
# Run from the repository root with the corpus built; runs go to runs/ab_source_filter/ARM.
set -eu
COMMON="--data data/corpus/train.txt --val data/corpus/val.txt data.num_workers=0 trainer.checkpoint_every_n_steps=100
 trainer.keep_last_checkpoints=100"
exec python scripts/run_ab_arms.py --out runs/ab_source_filter --cpu-seconds "${CPU_SECONDS:-3600}" --common "$COMMON" \
  current="--config recipes/default_22khz.yaml" \
  hiftnet_frame="--config recipes/hiftnet_frame_22khz.yaml" \
  hiftnet_frame_prior="generator.config.prior=pinv --config recipes/hiftnet_frame_22khz.yaml" \
  hiftnet="--config recipes/hiftnet_22khz.yaml"
