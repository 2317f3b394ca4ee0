#!/usr/bin/env python
"""Streaming speed of the shipped default model with its own phase and with RTPGHI's (``StreamingVocoder(phase=)``).

    python scripts/bench_stream_phase.py [--model PATH] [--chunks 10 50] [--threads 2] [--repeats 3]

Decodes the clips of ``samples/`` joined into one utterance (about 11 s), pushing ``c`` frames at a time, eager
network; prints times real time (audio seconds / compute seconds, the best of ``--repeats`` passes) for each phase
and chunk size. Stop other work first (a paused training run: stop its data-loader processes too,
``pkill -STOP -f "vocoder train"``); say the CPU (``lscpu``) beside the figures.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from vocoder import Vocoder
from vocoder.audio.io import load_audio
from vocoder.streaming import StreamingVocoder

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a Fourier-head model (default: the shipped one)")
    ap.add_argument("--chunks", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    voc = Vocoder.from_pretrained(args.model)
    clips = sorted((ROOT / "samples").glob("*.wav"))
    mel = voc.mel(torch.cat([load_audio(c, voc.sample_rate) for c in clips]))
    seconds = mel.shape[-1] * voc.hop_length / voc.sample_rate
    for phase in ("model", "rtpghi"):
        sv = StreamingVocoder(voc, phase=phase, script=False)
        for chunk in args.chunks:
            best = float("inf")
            for _ in range(args.repeats):
                t = time.perf_counter()
                for piece in mel.split(chunk, dim=-1):
                    sv.push(piece)
                sv.flush()
                best = min(best, time.perf_counter() - t)
            print(f"phase={phase} chunk={chunk}: {seconds / best:.1f}x real time ({seconds:.1f} s of audio, "
                  f"{args.threads} threads)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
