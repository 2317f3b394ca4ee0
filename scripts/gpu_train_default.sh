#!/usr/bin/env bash
# The default model's run on the device tool's GPU machine. Here first: `python scripts/gpu_bundle.py`; then
#   run(command="bash scripts/gpu_train_default.sh MINUTES [KEY=VALUE ...]", carry=[".gpu"], timeout_s=600)
# There it installs the carried wheels (when librosa / soundfile are missing), trains recipes/default_22khz.yaml
# from the committed warm start on the carried FLAC subset for MINUTES of wall-clock (SIGTERM then saves
# last.ckpt), and writes to $OUT: gpu.txt (nvidia-smi), train.log, and the generator as a float16 warm start cut
# into parts under 16 MiB (the most a returned file may hold): `cat gpu_generator.pt.part* > x.pt` joins them.
# KEY=VALUE are recipe overrides, e.g. data.batch_size=64, or optim.discriminator_start_step=0 for an
# adversarial phase. ACCELERATOR=cpu runs the same on a machine without a GPU (to check this script).
set -uo pipefail
minutes=${1:?usage: gpu_train_default.sh MINUTES [KEY=VALUE ...]}; shift
out=${OUT:-/tmp/gpu_out}; mkdir -p "$out"
if ! python3 -c "import librosa, soundfile" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .gpu/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
accelerator=${ACCELERATOR:-gpu}
if [ "$accelerator" = gpu ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
else
  echo "$accelerator: $(nproc) cores" | tee "$out/gpu.txt"
fi
warm=recipes/warm_start/default_22khz_fourier_generator.pt
step0=$(python3 -c "import torch; print(torch.load('$warm', weights_only=True)['meta']['gan_step'])") || exit 1
run=$(mktemp -d)
timeout -s TERM "${minutes}m" python3 -m vocoder train --config recipes/default_22khz.yaml --init-generator "$warm" \
  --data .gpu/corpus/train.txt --val .gpu/corpus/val.txt --out "$run" --accelerator "$accelerator" \
  --no-progress-bar data.num_workers=8 trainer.log_every_n_steps=200 trainer.checkpoint_every_n_steps=2000 \
  trainer.export_every_n_steps=1000000 "$@" 2>&1 | tee "$out/train.log"
[ -f "$run/checkpoints/last.ckpt" ] || { echo "no checkpoint was written" >&2; exit 1; }
python3 scripts/warm_start.py "$run/checkpoints/last.ckpt" "$out/gpu_generator.pt" --step-offset "$step0" \
  --no-cpu-hours --train-hours "the step-$step0 warm start, then ${minutes} min on $(head -1 "$out/gpu.txt")" \
  --split-mib 15 | tee -a "$out/train.log" || exit 1
rm -f "$out/gpu_generator.pt"
