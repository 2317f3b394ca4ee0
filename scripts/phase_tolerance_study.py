#!/usr/bin/env python
"""Why RTPGHI scores above PGHI on the default model's amplitude: the tolerance rule, or the integration order?

    python scripts/phase_tolerance_study.py [CHECKPOINT] [--corpus data/corpus] [--test-per-source 3] \
        [--samples samples] [--json out.json] [--threads 2]

PGHI and RTPGHI differ in two ways (:mod:`vocoder.nn.phase_retrieval`): which bins count (PGHI: amplitude at least
1e-5 of the utterance's maximum; RTPGHI: 1e-5 of the larger of this and the previous frame's maximum, so quiet
frames keep their own significant bins and loud frames drop more of their floor), and the order of integration
(PGHI: one heap over the whole utterance, each bin reached from its loudest neighbour in time or frequency; RTPGHI:
frame by frame, from the previous frame's bins along time or this frame's along frequency). Crossing the two
separates them: each method with each rule, the same model amplitude (its plain ``spectrum``), no iterations,
scored like the release (DistillMOS, DNSMOS, M-STFT, periodicity, V/UV F1, PESQ) on the same clips.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from phase_oracle import report, score_outputs, summarise  # noqa: E402
from training_curve import add_split_arguments, splits_from_arguments  # noqa: E402

from vocoder.audio.io import load_audio  # noqa: E402
from vocoder.inference import Vocoder  # noqa: E402
from vocoder.nn import phase_retrieval as pr  # noqa: E402

TOLERANCE = pr.DEFAULT_TOLERANCE


def floors(s: np.ndarray, rule: str):
    """``(floors [T], reach [T])``: the significance floor of each frame and the maximum it is relative to."""
    if rule == "frame":  # RTPGHI's rule
        return pr.frame_tolerances(s, TOLERANCE)[:2]
    reach = np.full(s.shape[1], float(s.max()))
    return TOLERANCE * reach, reach


def phase(s: np.ndarray, method: str, rule: str, hop: int, n_fft: int) -> np.ndarray:
    """Frame-start phase ``[F, T]`` of amplitude ``s`` by ``method`` ("pghi" / "rtpghi") under tolerance ``rule``."""
    fl, reach = floors(s, rule)
    logs = np.log(np.maximum(s, np.maximum(fl, 1e-300)[None, :]))
    time_step, freq_step = pr.phase_steps(logs, hop, n_fft)
    if method == "pghi":
        if rule == "global":  # the shipped function itself (compiled heap)
            return pr.pghi(s, hop, n_fft, TOLERANCE)
        return pr._to_frame_start(pr._pghi_heap(s, time_step, freq_step, fl[None, :]))
    if rule == "frame":  # the shipped function itself
        return pr.rtpghi(s, hop, n_fft, TOLERANCE)
    return pr._to_frame_start(pr._rtpghi_heap(s, time_step, freq_step, fl, reach))


VARIANTS = [("pghi", "global"), ("pghi", "frame"), ("rtpghi", "frame"), ("rtpghi", "global")]
LABELS = {"pghi/global": "PGHI, utterance tolerance (shipped `pghi`)",
          "pghi/frame": "PGHI, frame tolerance",
          "rtpghi/frame": "RTPGHI, frame tolerance (shipped `rtpghi`)",
          "rtpghi/global": "RTPGHI, utterance tolerance"}


def score_split(voc: Vocoder, files) -> dict:
    gen = voc.generator
    istft = gen.head.istft
    per = {f"{m}/{r}": [] for m, r in VARIANTS}
    for path in files:
        ref = load_audio(path, voc.sample_rate)
        with torch.inference_mode():
            mel = voc.mel(ref)
            log_amp, _ = gen.spectrum(mel[None])
            amp = torch.exp(log_amp.float()).clip(max=1e2)
        outputs = {}
        for v in VARIANTS:
            ph = torch.from_numpy(phase(amp[0].double().numpy(), *v, istft.hop_length, istft.n_fft)).float()
            with torch.inference_mode():
                wav = istft(torch.polar(amp, ph[None]))[0]
            outputs[f"{v[0]}/{v[1]}"] = wav
        score_outputs(voc, path, ref, outputs, per)
        print(f"{Path(path).name}: " + ", ".join(f"{v} {per[v][-1]['distillmos']:.2f}" for v in per), flush=True)
    return summarise(per)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", default=None, help="a Fourier-head model (default: the shipped one)")
    add_split_arguments(ap, "also write every clip's metrics here")
    args = ap.parse_args(argv)
    splits = splits_from_arguments(args)
    voc = Vocoder.from_pretrained(args.checkpoint).eval()
    results = {split: score_split(voc, files) for split, files in splits.items()}
    report(results, {split: len(files) for split, files in splits.items()}, LABELS, "phase (no iterations)",
           args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
