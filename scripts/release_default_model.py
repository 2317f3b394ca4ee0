"""Release a training checkpoint as the shipped default model, with its model card.

    python scripts/release_default_model.py runs/default_22khz/checkpoints/last.ckpt --train-hours 4.1 \
        [--corpus data/corpus] [--test-per-source 8] [--samples samples] [--out vocoder/pretrained]

Steps:
1. export the generator (weight norm folded) to our inference format with the training facts in its meta;
2. evaluate it with ``vocoder.evaluation.evaluate`` (Griffin-Lim floor alongside) on ``samples/`` and on a
   fixed subset of the corpus **test split** (whole voices never trained on: ``--test-per-source`` evenly
   spaced clips from each source package, sorted order, so every release is scored on the same clips);
3. append the numbers to ``OUT/progress.json`` (one row per release: the model card's progress table);
4. write ``OUT/default.pt`` and ``OUT/MODEL_CARD.md`` atomically; ``--dry-run`` writes neither, only prints.

``Vocoder.from_pretrained()`` with no argument loads ``OUT/default.pt``; ``tests/test_default_model.py`` is
the quality gate that re-scores it on ``samples/``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vocoder.evaluation.gate import GATE, gate_failures  # noqa: E402
from vocoder.evaluation.report import evaluate, format_table  # noqa: E402
from vocoder.inference import Vocoder  # noqa: E402
from vocoder.training.checkpointing import export_inference_checkpoint  # noqa: E402
from vocoder.utils import atomic_write_bytes  # noqa: E402

log = logging.getLogger("release")
CARD_METRICS = ("distillmos", "dnsmos_ovrl", "mstft", "periodicity", "vuv_f1", "pesq", "stoi", "mel_l1", "mcd")
#: the metrics the MOS predictors also give the original clips (the ceiling)
REFERENCE_METRICS = ("distillmos", "dnsmos_ovrl")
HEADERS = ("DistillMOS ↑", "DNSMOS OVRL ↑", "M-STFT ↓", "periodicity ↓", "V/UV F1 ↑", "PESQ ↑", "STOI ↑",
           "mel L1 ↓", "MCD dB ↓")


def test_subset(corpus: Path, per_source: int) -> List[Path]:
    """``per_source`` evenly spaced clips of each source package in ``corpus/test.txt`` (sorted)."""
    lines = sorted(l.strip() for l in (corpus / "test.txt").read_text().splitlines() if l.strip())
    by_source: Dict[str, List[str]] = {}
    for rel in lines:
        by_source.setdefault(Path(rel).parts[1], []).append(rel)
    picked = []
    for source in sorted(by_source):
        items = by_source[source]
        n = min(per_source, len(items))
        picked += [corpus / items[(2 * i + 1) * len(items) // (2 * n)] for i in range(n)]
    return picked


def means(report: dict) -> Dict[str, Dict[str, float]]:
    """Card metrics per system; the reference clips' MOS scores under ``"reference"``."""
    out = {s: {m: report["mean"][s].get(m) for m in CARD_METRICS} for s in report["systems"]}
    if "reference" in report["mean"]:
        out["reference"] = {m: report["mean"]["reference"].get(m) for m in REFERENCE_METRICS}
    return out


def release_failures(row: dict) -> List[str]:
    """The gate's failures on both splits of a progress row (``[]``: the model may ship)."""
    return [f"{split}: {f}" for split in ("samples", "test")
            for f in gate_failures(row[split]["vocoder"], row[split]["griffin_lim"])]


def _fmt(v, nd=3) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def write_card(path: Path, meta: dict, progress: List[dict], test_files: List[Path], corpus_rel: str) -> None:
    last = progress[-1]
    rows = []
    for split in ("test", "samples"):
        n = last[f"{split}_clips"]
        for system, label in (("vocoder", "default model"), ("griffin_lim", "Griffin-Lim, 32 iterations"),
                              ("reference", "reference clips (MOS ceiling)")):
            m = last[split].get(system)
            if m is not None:
                rows.append(f"| {split} ({n} clips) | {label} | "
                            + " | ".join(_fmt(m.get(k)) for k in CARD_METRICS) + " |")

    def pair(r, split, k):
        return f"{_fmt(r[split]['vocoder'].get(k), 2)} / {_fmt(r[split]['griffin_lim'].get(k), 2)}"

    hist = [f"| {r['date'][:10]} | {r['gan_step']:,} | {r['phase']} | {r['train_hours']:.1f} | "
            f"{pair(r, 'test', 'distillmos')} | {pair(r, 'test', 'mstft')} | {pair(r, 'samples', 'distillmos')} | "
            f"{pair(r, 'samples', 'mstft')} |" for r in progress]
    failures = release_failures(last)
    gate_text = "\n".join(f"- {c.describe()}" for c in GATE)
    verdict = ("**passes**" if not failures else "**fails**: " + "; ".join(failures))
    text = f"""# Default model: `{meta['name']}`

`Vocoder.from_pretrained()` (no argument) and every CLI command without `--model` load this file
(`vocoder/pretrained/default.pt`). Released {last['date'][:10]} by `scripts/release_default_model.py`.

| | |
|---|---|
| input | log-mel (natural log, clamp 1e-5): 22050 Hz, 80 bands, n_fft 1024, hop 256, window 1024, fmin 0, fmax 8000 — the convention most TTS acoustic models output (BigVGAN / HiFi-GAN front end, equal to `bigvgan.meldataset`) |
| generator | {meta['generator']} ({meta['parameters']:,} parameters, weight norm folded) |
| recipe | `recipes/default_22khz.yaml` |
| training | {last['gan_step']:,} steps, {last['train_hours']:.1f} CPU-hours (2 cores); phase: {last['phase']} |
| data | `recipes/data/build_corpus.py`: 244 min of speech from 4 Debian packages (fillets-ng-data-cs/-nl GPL-2, klettres-data and ktuberling-data GPL-2+), 64 speakers, Czech / Dutch / other languages; see `recipes/data/README.md` |
| held-out | test split: whole voices never trained on (`fillets_cs_x`, KDE `nl`, `he`, `el`); `samples/` comes from it |

## Metrics (copy synthesis: audio -> mel -> model -> audio, compared with the original)

`vocoder eval`: DistillMOS and DNSMOS P.835 OVRL (non-intrusive MOS predictors, also run on the original clips:
the ceiling), M-STFT (auraloss MultiResolutionSTFTLoss at its defaults), CREPE periodicity error, V/UV F1, wideband
PESQ, STOI, mel L1, MCD; Griffin-Lim on the same mels is the floor a vocoder must beat.
Test subset: {len(test_files)} clips of the test split, {corpus_rel}/test.txt, {last['test_per_source']} evenly spaced per source.

| split | system | {' | '.join(HEADERS)} |
|---|---|{'---|' * len(HEADERS)}
{chr(10).join(rows)}

The gate (`vocoder/evaluation/gate.py`, on both splits):
{gate_text}

This release {verdict}.

## Progress (every release; model / Griffin-Lim)

| date | steps | phase | CPU hours | test DistillMOS | test M-STFT | samples DistillMOS | samples M-STFT |
|---|---|---|---|---|---|---|---|
{chr(10).join(hist)}

## Limits

Trained on a few hours of CPU time, far from the 1-5 M GPU steps of published checkpoints. The training speech
is low-bitrate game dialogue and short amateur recordings (little energy above ~4 kHz in much of it), so
expect a duller top octave than the input on studio speech. For best quality on your voices, fine-tune:
`vocoder train --config recipes/default_22khz.yaml --init-generator vocoder/pretrained/default.pt ...`.
The training speech is 22.05 kHz; the model is not meant for 16 kHz or band-limited input upsampled to 22.05 kHz.
"""
    atomic_write_bytes(text.encode("utf-8"), path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="Lightning checkpoint of a default_22khz run (.ckpt)")
    ap.add_argument("--train-hours", type=float, default=None,
                    help="CPU hours of training so far (all phases); default: what the checkpoint counted "
                         "(runs count them since 2026-12-02: pass the total when the run is older)")
    ap.add_argument("--phase", default="GAN-free: amplitude, phase, consistency, mel and MR-STFT losses",
                    help="training phase, for the card")
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--test-per-source", type=int, default=8)
    ap.add_argument("--samples", default=str(ROOT / "samples"))
    ap.add_argument("--out", default=str(ROOT / "vocoder" / "pretrained"))
    ap.add_argument("--dry-run", action="store_true", help="evaluate and print; write nothing")
    ap.add_argument("--force", action="store_true", help="write the release even if it fails the gate")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.train_hours is None:
        counted = Vocoder.from_pretrained(args.checkpoint).meta.get("cpu_hours")
        if counted is None:
            ap.error(f"{args.checkpoint} does not record its CPU-hours: pass --train-hours")
        args.train_hours = float(counted)
    out = Path(args.out)
    corpus = Path(args.corpus)
    test_files = test_subset(corpus, args.test_per_source)
    with tempfile.TemporaryDirectory() as tmp:
        pt = Path(tmp) / "default.pt"
        export_inference_checkpoint(args.checkpoint, pt, fold_weight_norm=True,
                                    extra_meta={"name": "default_22khz", "train_hours": args.train_hours,
                                                "phase": args.phase})
        voc = Vocoder.from_pretrained(str(pt))
        meta = {"name": "default_22khz", "generator": voc.generator_name, "parameters": voc.num_parameters()}
        reports = {}
        for split, data in (("samples", args.samples), ("test", test_files)):
            reports[split] = evaluate(voc, data)
            print(f"\n[{split}]\n" + format_table(reports[split]), flush=True)
        row = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "gan_step": int(voc.meta.get("gan_step", 0)), "phase": args.phase, "train_hours": args.train_hours,
               "test_per_source": args.test_per_source, "test_clips": reports["test"]["n_clips"],
               "samples_clips": reports["samples"]["n_clips"],
               "test": means(reports["test"]), "samples": means(reports["samples"])}
        failures = release_failures(row)
        for f in failures:
            print(f"gate: {f}")
        if args.dry_run:
            print(json.dumps(row, indent=2))
            return 0
        if failures and not args.force:
            print("not released: the model does not pass the gate (--force writes it anyway)", file=sys.stderr)
            return 1
        out.mkdir(parents=True, exist_ok=True)
        progress_path = out / "progress.json"
        progress = json.loads(progress_path.read_text()) if progress_path.is_file() else []
        progress.append(row)
        atomic_write_bytes(pt.read_bytes(), out / "default.pt")
        atomic_write_bytes((json.dumps(progress, indent=2) + "\n").encode("utf-8"), progress_path)
        write_card(out / "MODEL_CARD.md", meta, progress, test_files, args.corpus)
    print(f"released {out / 'default.pt'} (step {row['gan_step']}); card {out / 'MODEL_CARD.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
