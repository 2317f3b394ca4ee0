#!/usr/bin/env python
"""Write a run's generator as a warm start: float16 storage, the run's step and CPU-hours in its meta.

    python scripts/warm_start.py runs/default_22khz/checkpoints/step_00020000.pt \
        recipes/warm_start/default_22khz_fourier_generator.pt --train-hours "about 9 CPU-hours in all" \
        [--step-offset 0] [--name default_22khz_warm_start] [--split-mib 15]

SOURCE is our ``.pt`` or a ``vocoder train`` ``.ckpt``. Weights are stored in float16 (half the size; they load as
float32) and the script prints how far that moves the audio of a clip of ``samples/`` (dB RMS of the difference
relative to the float32 output). ``--step-offset`` adds to the recorded step (a run started with
``--init-generator`` counts from 0 again). ``--split-mib`` also cuts the file into ``OUT.part00``, ``OUT.part01``,
... of at most that size (files coming back from the GPU machine must stay under 16 MiB each); ``cat OUT.part*
> OUT`` joins them.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path
from typing import Optional

import torch

ROOT = Path(__file__).resolve().parents[1]

from vocoder.audio.io import load_audio  # noqa: E402
from vocoder.evaluation import list_clips  # noqa: E402
from vocoder.inference import Vocoder  # noqa: E402
from vocoder.training.checkpointing import export_inference_checkpoint  # noqa: E402
from vocoder.utils import atomic_torch_save  # noqa: E402


def half_checkpoint(source: Path, out: Path, name: str, train_hours, step_offset: int = 0,
                    cpu_hours: bool = True, extra_meta: Optional[dict] = None) -> dict:
    """Write the generator of our ``.pt`` ``source`` to ``out`` with float16 weights; return the new meta
    (``extra_meta`` added last)."""
    ckpt = torch.load(source, map_location="cpu", weights_only=True)
    ckpt["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    drop = {"source"} if cpu_hours else {"source", "cpu_hours"}
    meta = {k: v for k, v in dict(ckpt.get("meta") or {}).items() if k not in drop}
    meta.update(name=name, storage="float16 (loads as float32)", train_hours=train_hours)
    meta["gan_step"] = int(meta.get("gan_step", 0)) + int(step_offset)
    meta.update(extra_meta or {})
    ckpt["meta"] = meta
    atomic_torch_save(ckpt, out)
    return meta


def float16_error_db(full: Path, half: Path, clip: Path) -> float:
    """dB RMS of (half-weights audio - float32 audio) relative to the float32 audio's RMS, on ``clip``."""
    a, b = Vocoder.from_pretrained(str(full)).eval(), Vocoder.from_pretrained(str(half)).eval()
    wav = load_audio(clip, a.sample_rate)
    with torch.inference_mode():
        mel = a.mel(wav)
        x, y = a(mel).reshape(-1), b(mel).reshape(-1)
    return 20 * math.log10(float((x - y).pow(2).mean().sqrt()) / float(x.pow(2).mean().sqrt().clamp_min(1e-12)))


def split(path: Path, mib: float) -> list:
    """Cut ``path`` into ``path.partNN`` files of at most ``mib`` MiB; return their paths."""
    data, size = path.read_bytes(), int(mib * 2 ** 20)
    parts = []
    for i in range(0, len(data), size):
        part = path.with_name(f"{path.name}.part{len(parts):02d}")
        part.write_bytes(data[i:i + size])
        parts.append(part)
    return parts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="our .pt or a `vocoder train` .ckpt")
    ap.add_argument("out", type=Path)
    ap.add_argument("--train-hours", required=True, help="what the training cost, in words, for the meta")
    ap.add_argument("--name", default="default_22khz_warm_start")
    ap.add_argument("--step-offset", type=int, default=0)
    ap.add_argument("--split-mib", type=float, default=None)
    ap.add_argument("--no-cpu-hours", action="store_true",
                    help="drop the CPU-hours the run counted (a GPU run's CPU time says nothing of its cost)")
    ap.add_argument("--samples", type=Path, default=ROOT / "samples")
    args = ap.parse_args(argv)
    if not args.source.is_file():
        ap.error(f"{args.source}: no such file")
    with tempfile.TemporaryDirectory() as tmp:
        full = args.source
        if full.suffix == ".ckpt":  # a training checkpoint: export it (weight norm folded) first
            full = export_inference_checkpoint(full, Path(tmp) / "export.pt")
        meta = half_checkpoint(full, args.out, args.name, args.train_hours, args.step_offset,
                               cpu_hours=not args.no_cpu_hours)
        print(f"{args.out}: step {meta['gan_step']:,}, {args.out.stat().st_size / 2 ** 20:.1f} MiB")
        clips = list_clips(args.samples) if args.samples.exists() else []
        if clips:
            print(f"float16 weights move the audio of {clips[0].name} by "
                  f"{float16_error_db(full, args.out, clips[0]):.1f} dB RMS")
    if args.split_mib:
        for part in split(args.out, args.split_mib):
            print(part)
    return 0


if __name__ == "__main__":
    sys.exit(main())
