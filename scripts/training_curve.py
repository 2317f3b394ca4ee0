#!/usr/bin/env python
"""Score training checkpoints on held-out speech: one row per checkpoint, Griffin-Lim and the reference once.

    python scripts/training_curve.py LABEL=runs/x/snap_15min.ckpt LABEL2=runs/x/checkpoints/last.ckpt ... \
        [--corpus data/corpus] [--test-per-source 3] [--samples samples] [--json curve.json] [--threads 2] \
        [--phase model|pghi|rtpghi] [--phase-iterations 0 16] [--html DIR]

Each checkpoint (a Lightning ``.ckpt`` or our ``.pt``) is scored with ``vocoder.evaluation.evaluate`` on
``samples/`` and on the release script's fixed subset of the corpus test split (voices never trained on), with
the listener-facing metrics first: DistillMOS, DNSMOS OVRL, M-STFT, periodicity error, V/UV F1, then PESQ.
Griffin-Lim (32 iterations) on the same mels and the reference clips' MOS are scored with the first checkpoint.
``--phase`` decodes every checkpoint with that phase (Fourier heads: the network's own, default; or PGHI / RTPGHI
from its amplitude), ``--phase-iterations`` scores each checkpoint once per count of phase-refinement iterations.
Prints a Markdown table (the one in ``recipes/warm_start/README.md``) and the gate's verdict for each row.
``--html DIR`` also writes the listening page of ``vocoder eval --html`` for the checkpoints (DIR/index.html), one
section per split: curve plots of every metric against training steps and CPU-hours, the means, and per clip every
checkpoint's audio, mel spectrograms and metrics beside the reference and Griffin-Lim.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from release_default_model import test_subset  # noqa: E402  (the release's fixed held-out subset)

from vocoder.evaluation.gate import gate_failures  # noqa: E402
from vocoder.evaluation.html_report import ClipAudio, CurvePoint, Entry, Section, write_curves, write_html  # noqa: E402
from vocoder.evaluation.report import evaluate, list_clips  # noqa: E402
from vocoder.inference import Vocoder  # noqa: E402

COLUMNS = ("distillmos", "dnsmos_ovrl", "mstft", "periodicity", "vuv_f1", "pesq")
HEADERS = ("DistillMOS ↑", "DNSMOS ↑", "M-STFT ↓", "periodicity ↓", "V/UV F1 ↑", "PESQ ↑")


def fmt(row: dict) -> str:
    return " | ".join("-" if row.get(k) is None else f"{row[k]:.3f}" for k in COLUMNS)


def add_split_arguments(ap: argparse.ArgumentParser, json_help: str) -> None:
    """The clips to score (``samples/`` and the corpus test subset), ``--json`` and ``--threads``."""
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--test-per-source", type=int, default=3)
    ap.add_argument("--samples", default=str(ROOT / "samples"))
    ap.add_argument("--json", default=None, help=json_help)
    ap.add_argument("--threads", type=int, default=None)


def splits_from_arguments(args: argparse.Namespace) -> dict:
    """Sets the thread count; ``{"samples": clips, "test": clips}`` (no ``"test"`` when the corpus has no test
    split), each a list of audio files."""
    if args.threads:
        torch.set_num_threads(args.threads)
    splits = {"samples": list_clips(args.samples)}
    if (Path(args.corpus) / "test.txt").is_file():
        splits["test"] = test_subset(Path(args.corpus), args.test_per_source)
    return splits


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", metavar="LABEL=PATH")
    ap.add_argument("--phase-iterations", type=int, nargs="+", default=[0], metavar="K",
                    help="score each checkpoint with each K fast Griffin-Lim iterations from its phase (default: 0)")
    ap.add_argument("--phase", choices=("model", "pghi", "rtpghi"), default="model",
                    help="decode every checkpoint with this phase (default: the network's own)")
    add_split_arguments(ap, "also write every report's means (and per-clip metrics) here")
    ap.add_argument("--html", default=None, metavar="DIR",
                    help="also write the listening page here (DIR/index.html): curves, means, every clip's audio")
    args = ap.parse_args(argv)
    splits = splits_from_arguments(args)
    rows, floors = [], {}
    pages = {split: [] for split in splits}  # --html: (row, report, its audio) per split
    for item in args.checkpoints:
        label, _, path = item.rpartition("=")
        label = label or Path(path).stem
        # a Lightning .ckpt of `vocoder train` or our .pt, decoded with --phase (not the phase its meta names)
        voc = Vocoder.from_pretrained(path, phase=args.phase)
        for iterations in args.phase_iterations:
            voc.phase_iterations = iterations
            setting = ("" if args.phase == "model" else f" ({args.phase})") + (
                f" + {iterations} phase it." if iterations else "")
            row = {"label": label + setting, "path": path, "phase": args.phase,
                   "phase_iterations": iterations, "gan_step": int(voc.meta.get("gan_step", 0)),
                   "cpu_hours": voc.meta.get("cpu_hours")}
            for split, data in splits.items():
                first = split not in floors
                audio = ClipAudio() if args.html else None
                report = evaluate(voc, data, griffin_lim_floor=first, mos=True, audio_sink=audio)
                if args.html:
                    pages[split].append(Entry(report, audio, label=row["label"]))
                if first:
                    floors[split] = {"griffin_lim": report["mean"]["griffin_lim"],
                                     "reference": report["mean"]["reference"]}
                row[split] = report["mean"]["vocoder"]
                row[f"{split}_clips"] = report["clips"]  # per clip, every system: where a model wins and loses
            rows.append(row)
            print(f"{row['label']}: " + "; ".join(f"{s} {fmt(row[s])}" for s in splits), flush=True)
    lines = []
    for split in splits:
        lines += [f"\n{split}:\n", f"| checkpoint | steps | CPU-hours | {' | '.join(HEADERS)} | gate |",
                  "|---|---|---|" + "---|" * (len(HEADERS) + 1)]
        for r in rows:
            failures = gate_failures(r[split], floors[split]["griffin_lim"], floors[split]["reference"])
            verdict = "passes" if not failures else f"fails {len(failures)}/5"
            hours = "-" if r["cpu_hours"] is None else f"{r['cpu_hours']:.2f}"
            lines.append(f"| {r['label']} | {r['gan_step']:,} | {hours} | {fmt(r[split])} | {verdict} |")
        lines.append(f"| Griffin-Lim, 32 iterations | | | {fmt(floors[split]['griffin_lim'])} | |")
        lines.append(f"| reference clips | | | {fmt(floors[split]['reference'])} | |")
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "floors": floors}, indent=2) + "\n")
    if args.html:
        print(f"listening page: {write_page(args.html, rows, floors, pages)}")
    return 0


def write_page(out_dir, rows: list, floors: dict, pages: dict) -> Path:
    """The listening page of the rows: per split, a curve per metric (a line per phase-iteration count; Griffin-Lim
    and the reference dashed), then the checkpoints compared clip by clip."""
    sections = []
    for split, entries in pages.items():
        points = [CurvePoint(f"{r['phase_iterations']} phase iterations", r["gan_step"], r["cpu_hours"], r[split])
                  for r in rows]
        levels = {"Griffin-Lim": floors[split]["griffin_lim"], "reference clips": floors[split]["reference"]}
        curves = write_curves(out_dir, points, entries[0].report["metrics"], levels, prefix=f"{split}-")
        sections.append(Section(entries, title=f"{split} ({entries[0].report['n_clips']} clips)", curves=curves,
                                key=split))
    return write_html(out_dir, sections, title="training curve: " + ", ".join(r["label"] for r in rows))


if __name__ == "__main__":
    raise SystemExit(main())
