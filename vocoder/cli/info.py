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
    f0 = d.get("f0_network")
    if f0:  # source-filter generators (hiftnet): the F0 network inside the model
        lines.append(f"F0 network:  {f0['network']}, {f0['parameters']:,} parameters, {f0['layers']} convs x "
                     f"{f0['channels']} channels (kernel {f0['kernel_size']}), {f0['range_hz'][0]:g}-"
                     f"{f0['range_hz'][1]:g} Hz, lookahead {f0['lookahead_frames']} frames{', frozen' if f0['frozen'] else ''}; "
                     f"source: F0 + "
                     f"{f0['source_harmonics']} overtones + noise")
    lines.append("config:")
    lines += [f"  {k}: {v}" for k, v in d["config"].items()]
    lines.append("meta:" + ("" if d["meta"] else " (none)"))
    lines += [f"  {k}: {v}" for k, v in d["meta"].items()]
    return "\n".join(lines)


def run(args) -> int:
    vocoder = load_model(args)
    d = vocoder.describe()
    f0_summary = getattr(vocoder.generator, "f0_summary", None)
    if callable(f0_summary) and f0_summary() is not None:
        d["f0_network"] = f0_summary()
    print(json.dumps(d, indent=2, default=str) if args.json else format_summary(d))
    return 0
