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
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from training_curve import COLUMNS, HEADERS, add_split_arguments, fmt, splits_from_arguments  # noqa: E402

from vocoder.audio.io import load_audio  # noqa: E402
from vocoder.evaluation import evaluate_pair, mos_scores  # noqa: E402
from vocoder.evaluation.metrics import align  # noqa: E402
from vocoder.inference import Vocoder  # noqa: E402
from vocoder.nn import phase_retrieval as pr  # noqa: E402

TOLERANCE = pr.DEFAULT_TOLERANCE


def floors(s: np.ndarray, rule: str):
    """``(floors [T], reach [T])``: the significance floor of each frame and the maximum it is relative to."""
    T = s.shape[1]
    if rule == "global":
        reach = np.full(T, float(s.max()))
    else:  # "frame": RTPGHI's rule
        maxima = s.max(axis=0)
        reach = np.maximum(maxima, np.concatenate([[0.0], maxima[:-1]]))
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
LABELS = {("pghi", "global"): "PGHI, utterance tolerance (shipped `pghi`)",
          ("pghi", "frame"): "PGHI, frame tolerance",
          ("rtpghi", "frame"): "RTPGHI, frame tolerance (shipped `rtpghi`)",
          ("rtpghi", "global"): "RTPGHI, utterance tolerance"}


def score_split(voc: Vocoder, files) -> dict:
    gen = voc.generator
    istft = gen.head.istft
    per = {v: [] for v in VARIANTS}
    for path in files:
        ref = load_audio(path, voc.sample_rate)
        with torch.inference_mode():
            mel = voc.mel(ref)
            log_amp, _ = gen.spectrum(mel[None])
            amp = torch.exp(log_amp.float()).clip(max=1e2)
        cache = {}
        for v in VARIANTS:
            ph = torch.from_numpy(phase(amp[0].double().numpy(), *v, istft.hop_length, istft.n_fft)).float()
            with torch.inference_mode():
                wav = istft(torch.polar(amp, ph[None]))[0]
            r, h = align(ref, wav)
            scores = evaluate_pair(r, h, voc.sample_rate, voc.mel_config, cache=cache)
            scores.update(mos_scores(wav, voc.sample_rate))
            per[v].append({"file": str(path), **scores})
        print(f"{Path(path).name}: " + ", ".join(f"{m}/{r} {per[(m, r)][-1]['distillmos']:.2f}"
                                               for m, r in VARIANTS), flush=True)
    return {v: {"clips": rows, "mean": {k: float(np.nanmean([r[k] for r in rows])) for k in COLUMNS}}
            for v, rows in per.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", default=None, help="a Fourier-head model (default: the shipped one)")
    add_split_arguments(ap, "also write every clip's metrics here")
    args = ap.parse_args(argv)
    splits = splits_from_arguments(args)
    voc = Vocoder.from_pretrained(args.checkpoint).eval()
    results, lines = {}, []
    for split, files in splits.items():
        res = score_split(voc, files)
        results[split] = {f"{m}/{r}": x for (m, r), x in res.items()}
        lines += [f"\n{split} ({len(files)} clips):\n", f"| phase (no iterations) | {' | '.join(HEADERS)} |",
                  "|---|" + "---|" * len(HEADERS)]
        lines += [f"| {LABELS[v]} | {fmt(x['mean'])} |" for v, x in res.items()]
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
