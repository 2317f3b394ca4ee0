#!/bin/bash
# The A/B of recipes/warm_start/README.md ("Training the amplitude for the phase retrieval"): three arms from the
# committed warm start, one thread each, side by side (they share the machine's noise alike), each stopped by
# SIGTERM (which saves last.ckpt) after 3600 CPU-seconds of its training process. Run from the repository root with
# the corpus built (recipes/data/build_corpus.py --out data/corpus); runs go to runs/ab_phase/ARM.
set -eu
W=recipes/warm_start/default_22khz_fourier_generator.pt
exec python scripts/run_ab_arms.py --out runs/ab_phase --cpu-seconds 3600 \
  --common "--config recipes/default_22khz.yaml --data data/corpus/train.txt --val data/corpus/val.txt --init-generator $W trainer.keep_last_checkpoints=100 trainer.checkpoint_every_n_steps=250" \
  current="" \
  gradients="losses.amplitude_gradients=90" \
  amplitude_only="losses.amplitude_gradients=90 losses.mel=0 losses.stft_sc=0 losses.stft_mag=0 losses.phase_gd=0 losses.phase_iaf=0 losses.consistency=0"
