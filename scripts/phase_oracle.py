#!/usr/bin/env python
"""Where a Fourier-head model's gap to the reference is: amplitude or phase.

    python scripts/phase_oracle.py CHECKPOINT [--corpus data/corpus] [--test-per-source 3] [--samples samples] \
        [--json out.json] [--threads 2]

On ``samples/`` and the release script's held-out corpus subset, scores (DistillMOS, DNSMOS OVRL, M-STFT,
periodicity, V/UV F1, PESQ) the model's output, its predicted amplitude with the reference clip's phase, the
reference's amplitude with its predicted phase (:mod:`vocoder.evaluation.oracle`), its predicted amplitude with
Griffin-Lim's phase retrieval, Griffin-Lim (32 iterations) on the same mels, and the reference clips' MOS.
Prints one Markdown table per split.
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
from vocoder.evaluation import evaluate_pair, griffin_lim, mos_scores  # noqa: E402
from vocoder.evaluation.metrics import align  # noqa: E402
from vocoder.evaluation.oracle import AMPLITUDE_GRIFFIN_LIM, SWAPS, spectrum_swaps  # noqa: E402
from vocoder.inference import Vocoder  # noqa: E402

LABELS = {"vocoder": "model", "vocoder_amplitude+reference_phase": "model amplitude + reference phase",
          "reference_amplitude+vocoder_phase": "reference amplitude + model phase",
          AMPLITUDE_GRIFFIN_LIM: "model amplitude + Griffin-Lim's phase (32 iterations)",
          "griffin_lim": "Griffin-Lim, 32 iterations", "reference": "reference clips"}


def score_split(voc: Vocoder, files) -> dict:
    """``{system: {"clips": [metrics...], "mean": {metric: mean}}}`` for the swaps, Griffin-Lim and the reference."""
    per = {name: [] for name in (*SWAPS, AMPLITUDE_GRIFFIN_LIM, "griffin_lim", "reference")}
    for path in files:
        ref = load_audio(path, voc.sample_rate)
        with torch.inference_mode():
            mel = voc.mel(ref)
        # the Griffin-Lim row's phase retrieval on the model's amplitude too
        outputs = spectrum_swaps(voc.generator, mel, ref, griffin_lim_config=voc.mel_config)
        outputs["griffin_lim"] = griffin_lim(mel.reshape(mel.shape[-2:]).cpu(), voc.mel_config)
        score_outputs(voc, path, ref, outputs, per)
        per["reference"].append({"file": str(path), **mos_scores(ref, voc.sample_rate)})
        print(f"{Path(path).name}: " + ", ".join(f"{n} {per[n][-1]['distillmos']:.2f}" for n in per), flush=True)
    return summarise(per)


def score_outputs(voc: Vocoder, path, ref: torch.Tensor, outputs: dict, per: dict) -> None:
    """Appends each output's metrics against ``ref`` (the release's metrics and MOS) to ``per[name]``."""
    cache = {}
    for name, wav in outputs.items():
        r, h = align(ref, wav.detach().cpu().float())
        scores = evaluate_pair(r, h, voc.sample_rate, voc.mel_config, cache=cache)
        scores.update(mos_scores(wav, voc.sample_rate))
        per[name].append({"file": str(path), **scores})


def summarise(per: dict) -> dict:
    """``{system: rows}`` -> ``{system: {"clips": rows, "mean": {metric: mean}}}``."""
    return {name: {"clips": rows, "mean": {k: float(np.nanmean([r[k] for r in rows])) for k in COLUMNS
                                            if k in rows[0]}} for name, rows in per.items()}


def report(results: dict, clips: dict, labels: dict, first_column: str, json_path=None) -> None:
    """Prints one Markdown table per split of ``results`` (``{split: {system: summary}}``; ``clips``: the number
    of clips per split; ``labels``: each system's row name) and writes ``results`` to ``json_path``."""
    lines = []
    for split, res in results.items():
        lines += [f"\n{split} ({clips[split]} clips):\n", f"| {first_column} | {' | '.join(HEADERS)} |",
                  "|---|" + "---|" * len(HEADERS)]
        lines += [f"| {labels[name]} | {fmt(r['mean'])} |" for name, r in res.items()]
    print("\n".join(lines))
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="a Fourier-head model: our .pt or a `vocoder train` .ckpt")
    add_split_arguments(ap, "also write every clip's metrics here")
    args = ap.parse_args(argv)
    splits = splits_from_arguments(args)
    voc = Vocoder.from_pretrained(args.checkpoint).eval()
    results = {split: score_split(voc, files) for split, files in splits.items()}
    report(results, {split: len(files) for split, files in splits.items()}, LABELS, "system", args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
