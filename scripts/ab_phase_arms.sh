#!/bin/bash
# The A/B of recipes/warm_start/README.md ("Training the amplitude for the phase retrieval"): three arms from the
# committed warm start, one thread each, side by side (they share the machine's noise alike), each stopped by
# SIGTERM (which saves last.ckpt) after 3600 CPU-seconds of its training process. Run from the repository root with
# the corpus built (recipes/data/build_corpus.py --out data/corpus); runs go to runs/ab_phase/ARM.
set -u
mkdir -p runs/ab_phase
W=recipes/warm_start/default_22khz_fourier_generator.pt
COMMON="--data data/corpus/train.txt --val data/corpus/val.txt --no-progress-bar --init-generator $W trainer.keep_last_checkpoints=100 trainer.checkpoint_every_n_steps=250"
declare -A OVR
OVR[current]=""
OVR[gradients]="losses.amplitude_gradients=90"
OVR[amplitude_only]="losses.amplitude_gradients=90 losses.mel=0 losses.stft_sc=0 losses.stft_mag=0 losses.phase_gd=0 losses.phase_iaf=0 losses.consistency=0"
for arm in current gradients amplitude_only; do
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nohup vocoder train --config recipes/default_22khz.yaml --out runs/ab_phase/$arm $COMMON ${OVR[$arm]} > runs/ab_phase/$arm.log 2>&1 &
  echo $! > runs/ab_phase/$arm.pid
done
# watcher: SIGTERM each arm at 3600 CPU-seconds of its process (utime + stime, clock ticks)
TCK=$(getconf CLK_TCK)
while true; do
  alive=0
  for arm in current gradients amplitude_only; do
    pid=$(cat runs/ab_phase/$arm.pid)
    [ -d /proc/$pid ] || continue
    alive=1
    read -r ut st <<<"$(awk '{print $14, $15}' /proc/$pid/stat)"
    cpu=$(( (ut + st) / TCK ))
    echo "$cpu" > runs/ab_phase/$arm.cpu
    if [ "$cpu" -ge 3600 ] && [ ! -e runs/ab_phase/$arm.stopped ]; then kill -TERM $pid; touch runs/ab_phase/$arm.stopped; fi
  done
  [ $alive = 1 ] || break
  sleep 10
done
