"""``vocoder info``: what a model is (generator, matching preset, size, audio settings, meta)."""
from __future__ import annotations

import argparse
import json

from .model_args import add_model_arguments, load_model


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("info", help="describe a model: generator, parameters, sample rate, hop, mels, meta")
    add_model_arguments(p, device=False, random_init=False)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def format_summary(d: dict) -> str:
    mel = d["mel"]
    lines = [
        f"generator:   {d['generator']}" + (f" (preset {d['preset']})" if d["preset"] else " (no matching preset)"),
        f"parameters:  {d['parameters']:,} ({d['parameters'] / 1e6:.2f} M)",
        f"sample rate: {d['sample_rate']} Hz",
        f"hop:         {d['hop_length']} samples ({1000 * d['hop_length'] / d['sample_rate']:.2f} ms)",
        f"mels:        {d['n_mels']} (n_fft {mel['n_fft']}, win {mel['win_length']}, fmin {mel['fmin']}, "
        f"fmax {mel['fmax']})",
    ]
    if d.get("phase", "model") != "model" or d.get("phase_iterations"):
        lines.append(f"phase:       {d['phase']}, then {d['phase_iterations']} Griffin-Lim iterations (offline)")
        lines.append(f"streaming:   {d['streaming']}")
    lines.append("config:")
    lines += [f"  {k}: {v}" for k, v in d["config"].items()]
    lines.append("meta:" + ("" if d["meta"] else " (none)"))
    lines += [f"  {k}: {v}" for k, v in d["meta"].items()]
    return "\n".join(lines)


def run(args) -> int:
    vocoder = load_model(args)
    d = vocoder.describe()
    print(json.dumps(d, indent=2, default=str) if args.json else format_summary(d))
    return 0
