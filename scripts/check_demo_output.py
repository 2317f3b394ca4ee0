#!/usr/bin/env python
"""Check what ``make demo`` wrote: one wav per sample, at the model's rate and the input's length, finite, not
silent, not clipped (CI runs it after ``make demo`` on a clean clone).

    python scripts/check_demo_output.py samples out [--sample-rate 22050] [--hop 256]

Exits 1 naming every problem found, 0 with one line per file otherwise.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import List

import numpy as np
import soundfile as sf

AUDIO = (".wav", ".flac", ".ogg", ".mp3")


def check(samples: Path, out: Path, sample_rate: int, hop: int, spectrogram: bool = True) -> List[str]:
    """Problems with ``out``'s copy of each audio file in ``samples`` (``[]``: all good)."""
    problems = []
    inputs = sorted(p for p in samples.iterdir() if p.suffix.lower() in AUDIO)
    if not inputs:
        return [f"{samples}: no audio files"]
    for src in inputs:
        wav_path = out / f"{src.stem}.wav"
        if not wav_path.is_file():
            problems.append(f"{wav_path}: missing")
            continue
        x, sr = sf.read(wav_path, dtype="float32", always_2d=True)
        info = sf.info(src)
        in_len = math.floor(info.frames * sample_rate / info.samplerate)  # the input at the model's rate
        expect = (in_len // hop) * hop  # one hop of audio per mel frame (frames = samples // hop)
        if sr != sample_rate:
            problems.append(f"{wav_path}: {sr} Hz, expected {sample_rate}")
        if x.shape[1] != 1:
            problems.append(f"{wav_path}: {x.shape[1]} channels, expected mono")
        if abs(x.shape[0] - expect) > hop:
            problems.append(f"{wav_path}: {x.shape[0]} samples, expected {expect} (+-{hop}) for {src.name}")
        x = x[:, 0]
        if not np.isfinite(x).all():
            problems.append(f"{wav_path}: non-finite samples")
            continue
        rms_db = 20 * math.log10(max(float(np.sqrt(np.mean(x ** 2))), 1e-12))
        clipped = float(np.mean(np.abs(x) >= 0.999))
        if rms_db < -50:
            problems.append(f"{wav_path}: silent (RMS {rms_db:.1f} dBFS)")
        if clipped > 1e-3:
            problems.append(f"{wav_path}: clipped ({100 * clipped:.2f} % of samples at full scale)")
        if spectrogram and not (out / f"{src.stem}.png").is_file():
            problems.append(f"{out / (src.stem + '.png')}: spectrogram missing")
        print(f"{wav_path}: {x.shape[0]} samples at {sr} Hz, RMS {rms_db:.1f} dBFS, peak {np.abs(x).max():.3f}")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("samples", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--sample-rate", type=int, default=22050)
    ap.add_argument("--hop", type=int, default=256)
    ap.add_argument("--no-spectrogram", action="store_true", help="do not require OUT/<name>.png")
    args = ap.parse_args(argv)
    problems = check(args.samples, args.out, args.sample_rate, args.hop, not args.no_spectrogram)
    for p in problems:
        print(f"demo output: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
