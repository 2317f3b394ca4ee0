#!/usr/bin/env python
"""Plot the curves of a training A/B from the JSON files of ``scripts/training_curve.py``: one PNG per split and
metric, the metric against training steps and CPU-hours, one line per arm, Griffin-Lim and the reference dashed.

    python scripts/plot_curves.py runs/ab_source_filter/curve.json runs/ab_source_filter/curve_more.json \\
        --out recipes/warm_start/img/ab_source_filter --metrics distillmos mstft vuv_f1 pesq

A row's arm is its label up to a trailing ``_<CPU-hours>h`` (``current_0.5h`` -> ``current``), so label the
checkpoints ``ARM_<hours>h`` when scoring them. Several JSON files may be given (scored in several runs); the
Griffin-Lim and reference levels are the first file's.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from vocoder.evaluation.html_report import CurvePoint, write_curves

_HOURS_SUFFIX = re.compile(r"_[0-9.]+h$")


def arm_of(label: str) -> str:
    """``current_0.5h`` -> ``current``; a label without the suffix is its own arm."""
    return _HOURS_SUFFIX.sub("", label)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("curves", nargs="+", help="JSON files written by scripts/training_curve.py --json")
    ap.add_argument("--out", required=True, help="folder for the PNGs ({split}-curve-{metric}.png)")
    ap.add_argument("--metrics", nargs="+", default=["distillmos", "dnsmos_ovrl", "mstft", "periodicity", "vuv_f1",
                                                     "pesq"])
    args = ap.parse_args(argv)
    docs = [json.loads(Path(p).read_text()) for p in args.curves]
    floors = docs[0]["floors"]
    rows = [r for d in docs for r in d["rows"]]
    out = Path(args.out)
    written = []
    for split in floors:
        points = [CurvePoint(arm_of(r["label"]), r["gan_step"], r["cpu_hours"], r[split]) for r in rows if split in r]
        missing = [m for m in args.metrics if all(p.metrics.get(m) is None for p in points)]
        if missing:
            print(f"plot_curves: error: no row of split {split!r} has {', '.join(missing)}", file=sys.stderr)
            return 2
        levels = {"Griffin-Lim": floors[split]["griffin_lim"], "reference clips": floors[split]["reference"]}
        # write_curves puts them under out/img/: keep that layout's names, one folder per A/B
        for c in write_curves(out, points, args.metrics, levels, prefix=f"{split}-"):
            written.append(out / c["image"])
    for p in written:
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
