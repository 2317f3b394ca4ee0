"""Release a checkpoint as the shipped default model, with its phase setting and its model card.

    python scripts/release_default_model.py recipes/warm_start/default_22khz_fourier_generator.pt \
        --ship rtpghi:0 rtpghi:4 rtpghi:16 model:16 --table model:0,2,4,8,16,32 pghi:0 --train-hours 11.2 \
        [--corpus data/corpus] [--test-per-source 3] [--samples samples] [--out vocoder/pretrained] [--threads 2]

Steps:
1. write the generator (a ``vocoder train`` ``.ckpt`` or our ``.pt``; weight norm folded) in our inference format
   with float16 storage (half the size; it loads as float32) and the training facts and the shipped phase
   setting in its meta (``phase_method``: the model's phase or PGHI / RTPGHI from its amplitude;
   ``phase_iterations`` K), so ``Vocoder.from_pretrained()`` decodes that way: the first of the ``--ship``
   candidates (in order of preference) that passes the gate on both splits;
2. score that very file, as it is shipped, with ``vocoder.evaluation.evaluate`` (Griffin-Lim floor and the
   reference clips' MOS alongside) on ``samples/`` and on a fixed subset of the corpus **test split** (whole
   voices never trained on: ``--test-per-source`` evenly spaced clips from each source package, sorted order, so
   every release is scored on the same clips); each phase setting of ``--table`` (method: K, K, ...) is scored
   the same way and timed (real-time factor on ``--threads`` threads, the CPU's instruction set recorded): the
   card's phase table;
3. append the numbers to ``OUT/progress.json`` (one row per release: the model card's progress table);
4. write ``OUT/default.pt`` and ``OUT/MODEL_CARD.md`` atomically when the shipped K passes the gate
   (``vocoder.evaluation.gate``) on both splits with the shipped setting; ``--dry-run`` writes neither.

``tests/test_default_model.py`` re-scores the shipped model on ``samples/`` and checks the card.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_inference import cpu_isa  # noqa: E402  (the instruction set beside every speed figure)
from warm_start import half_checkpoint  # noqa: E402  (float16 storage)

from vocoder.audio.io import load_audio  # noqa: E402
from vocoder.evaluation.gate import GATE, SIGNAL_FLOOR_GATE, better_floor, clip_wins, gate_failures  # noqa: E402
from vocoder.evaluation.signal_floors import PINV_FLOORS  # noqa: E402
from vocoder.evaluation.report import evaluate, format_table, list_clips  # noqa: E402
from vocoder.inference import Vocoder  # noqa: E402
from vocoder.nn.phase_retrieval import PHASE_METHODS  # noqa: E402
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


GATE_METRICS = tuple(c.metric for c in GATE)
K_COLUMNS = GATE_METRICS + ("pesq",)
K_HEADERS = ("DistillMOS", "DNSMOS", "M-STFT", "periodicity", "V/UV F1", "PESQ")


def means(report: dict) -> Dict[str, Dict[str, float]]:
    """Card metrics per system; the reference clips' MOS scores under ``"reference"``."""
    out = {s: {m: report["mean"][s].get(m) for m in CARD_METRICS} for s in report["systems"]}
    if "reference" in report["mean"]:
        out["reference"] = {m: report["mean"]["reference"].get(m) for m in REFERENCE_METRICS}
    return out


def split_failures(model: dict, split_means: dict) -> List[str]:
    """The gate's failures of ``model`` (means) against one split's floors: Griffin-Lim, the reference clips and,
    when the release scored them, the better pinv + PGHI / RTPGHI floor."""
    floors = [split_means[k] for k in PINV_FLOORS if split_means.get(k)]
    return gate_failures(model, split_means["griffin_lim"], split_means.get("reference"),
                         better_floor(floors) if floors else None)


def release_failures(row: dict) -> List[str]:
    """The gate's failures on both splits of a progress row (``[]``: the model may ship)."""
    return [f"{split}: {f}" for split in ("samples", "test") for f in split_failures(row[split]["vocoder"], row[split])]


def wins(report: dict) -> Dict[str, List[int]]:
    """Per gated metric: [clips the model wins, clips Griffin-Lim wins, ties]."""
    return {c.metric: list(clip_wins(report["clips"], c.metric, c.higher_is_better)) for c in GATE}


def _fmt(v, nd=3) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def setting_key(method: str, k: int) -> str:
    """A phase setting's name in the tables: ``"model+16"``, ``"rtpghi+0"``."""
    return f"{method}+{int(k)}"


def parse_table(items: Sequence[str]) -> List[Tuple[str, int]]:
    """``["model:0,16", "rtpghi:0"]`` -> ``[("model", 0), ("model", 16), ("rtpghi", 0)]``."""
    out = []
    for item in items:
        method, _, ks = item.partition(":")
        if method not in PHASE_METHODS or not ks:
            raise ValueError(f"expected METHOD:K[,K...] with METHOD one of {PHASE_METHODS}, got {item!r}")
        try:
            got = [int(k) for k in ks.split(",")]
        except ValueError:
            got = [-1]
        if min(got) < 0:
            raise ValueError(f"expected METHOD:K[,K...] with K integers >= 0, got {item!r}")
        out += [(method, k) for k in got]
    return out


def speed(voc: Vocoder, clips: Sequence[Path], settings: Sequence[Tuple[str, int]], seconds: float = 10.0,
          repeat: int = 3) -> dict:
    """Times real-time for each phase setting ``(method, K)``: ``seconds`` of the clips' mel (tiled), decoded once
    per setting per round, rounds interleaved; the median round. Restores the vocoder's own setting."""
    shipped = (voc.phase, voc.phase_iterations)
    wav = torch.cat([load_audio(c, voc.sample_rate) for c in clips])
    times: Dict[Tuple[str, int], List[float]] = {s: [] for s in settings}
    with torch.inference_mode():
        mel = voc.mel(wav)
        frames = int(seconds * voc.sample_rate / voc.hop_length)
        mel = mel.repeat(1, -(-frames // mel.shape[-1]))[:, :frames]
        audio_s = frames * voc.hop_length / voc.sample_rate
        for method, k in settings:  # warm-up
            voc.phase, voc.phase_iterations = method, k
            voc(mel[:, :64])
        for _ in range(repeat):
            for method, k in settings:
                voc.phase, voc.phase_iterations = method, k
                t0 = time.perf_counter()
                voc(mel)
                times[(method, k)].append(time.perf_counter() - t0)
    voc.phase, voc.phase_iterations = shipped
    return {setting_key(*s): round(audio_s / statistics.median(t), 1) for s, t in times.items()}


def score_table(voc: Vocoder, splits: Dict[str, list], settings: Sequence[Tuple[str, int]]) -> dict:
    """Each split scored with every phase setting, Griffin-Lim and the reference clips with the first:
    ``{key: {split: report}}``, every report holding the Griffin-Lim and reference rows (the first pass's, per
    clip and mean: the same mels and clips for every setting)."""
    reports: Dict[str, Dict[str, dict]] = {}
    for i, setting in enumerate(settings):
        voc.phase, voc.phase_iterations = setting
        key = setting_key(*setting)
        reports[key] = {}
        for split, data in splits.items():
            report = evaluate(voc, data, griffin_lim_floor=i == 0, pinv_floors=i == 0)
            if i == 0:
                print(f"\n[{split}]\n" + format_table(report), flush=True)
            else:
                first = reports[setting_key(*settings[0])][split]
                for clip, floor in zip(report["clips"], first["clips"]):
                    assert clip["file"] == floor["file"]
                    clip["metrics"].update({k: v for k, v in floor["metrics"].items() if k != "vocoder"})
                for k in ("mean", "std"):
                    report[k].update({s: v for s, v in first[k].items() if s != "vocoder"})
                report["systems"] = list(first["systems"])
            reports[key][split] = report
            m = report["mean"]["vocoder"]
            print(f"{key} {split}: " + ", ".join(f"{c} {_fmt(m.get(c))}" for c in K_COLUMNS), flush=True)
    return reports


def first_passing(reports: Dict[str, Dict[str, dict]], candidates: Sequence[Tuple[str, int]]):
    """The first candidate setting whose reports pass the gate on both splits, else ``None``."""
    for setting in candidates:
        rs = reports[setting_key(*setting)]
        if not any(split_failures(r["mean"]["vocoder"], r["mean"]) for r in rs.values()):
            return setting
    return None


def k_table_lines(row: dict) -> List[str]:
    """The phase table of a progress row: every gated metric (and PESQ) on both splits, the gate's verdict,
    speed; one row per phase setting (method + K), the shipped one marked."""
    table, speeds = row.get("k_table") or {}, row.get("speed_x_realtime") or {}
    head = " | ".join(f"{split} {h}" for split in ("test", "samples") for h in K_HEADERS)
    lines = [f"| phase + K | {head} | gate | x real time |", "|---|" + "---|" * (2 * len(K_HEADERS) + 2)]
    shipped = setting_key(row.get("phase_method", "model"), row.get("phase_iterations", 0))
    for key in table:
        cells, verdict = [], []
        for split in ("test", "samples"):
            m = table[key].get(split, {})
            cells += [_fmt(m.get(c)) for c in K_COLUMNS]
            verdict += split_failures(m, row[split])
        mark = " (shipped)" if key == shipped else ""
        lines.append(f"| {key}{mark} | {' | '.join(cells)} | {'passes' if not verdict else f'fails {len(verdict)}'} "
                     f"| {_fmt(speeds.get(key), 1)} |")
    return lines


def write_card(path: Path, meta: dict, progress: List[dict], test_files: List[Path], corpus_rel: str) -> None:
    last = progress[-1]
    k = int(last.get("phase_iterations", 0))
    method = last.get("phase_method", "model")
    shipped = setting_key(method, k)
    stream_text = ("Streaming (`stream`, `vocoder stream`, `WS /v1/stream`) takes RTPGHI's phase from the streamed "
                   "amplitude (one frame more of lookahead) without the iterations, which are offline only: what a "
                   "stream sounds like is the `rtpghi+0` row of the phase table below (equal to the offline rtpghi+0 "
                   "decode to 1e-4 of the peak)" if method in ("pghi", "rtpghi") else
                   "Streaming (`stream`, `vocoder stream`, `WS /v1/stream`) runs the plain decode: refinement is "
                   "offline only, and what a stream sounds like is the `model+0` row of the phase table below")
    phase_text = {"model": "the network's predicted phase", "pghi": "PGHI (whole utterance) from the predicted amplitude",
                  "rtpghi": "RTPGHI (frame by frame, one frame of lookahead) from the predicted amplitude"}[method]
    rows = []
    for split in ("test", "samples"):
        n = last[f"{split}_clips"]
        for system, label in (("vocoder", f"default model ({shipped})"), ("griffin_lim", "Griffin-Lim, 32 iterations"),
                              ("pinv_rtpghi", "pinv amplitude + RTPGHI (no network)"),
                              ("pinv_pghi", "pinv amplitude + PGHI (no network)"),
                              ("reference", "reference clips (MOS ceiling)")):
            m = last[split].get(system)
            if m is not None:
                rows.append(f"| {split} ({n} clips) | {label} | "
                            + " | ".join(_fmt(m.get(c)) for c in CARD_METRICS) + " |")
    win_rows = [f"| {split} | " + " | ".join("{} / {} / {}".format(*last["clip_wins"][split][c.metric]) for c in GATE)
                + " |" for split in ("test", "samples") if split in last.get("clip_wins", {})]

    def pair(r, split, c):
        return f"{_fmt(r[split]['vocoder'].get(c), 2)} / {_fmt(r[split]['griffin_lim'].get(c), 2)}"

    hist = [f"| {r['date'][:10]} | {r['gan_step']:,} | {setting_key(r.get('phase_method', 'model'), r.get('phase_iterations', 0))} | {r['train_hours']:.1f} | "
            f"{pair(r, 'test', 'distillmos')} | {pair(r, 'test', 'mstft')} | {pair(r, 'samples', 'distillmos')} | "
            f"{pair(r, 'samples', 'mstft')} |" for r in progress]
    failures = release_failures(last)
    gate_text = "\n".join(f"- {c.describe()}" for c in GATE) + "".join(
        f"\n- {c.metric} {'>=' if c.higher_is_better else '<='} the better of pinv + RTPGHI / pinv + PGHI"
        for c in SIGNAL_FLOOR_GATE)
    verdict = ("**passes**" if not failures else "**fails**: " + "; ".join(failures))
    text = f"""# Default model: `{meta['name']}`

`Vocoder.from_pretrained()` (no argument) and every CLI command, plugin and server started without `--model` load
this file (`vocoder/pretrained/default.pt`). Released {last['date'][:10]} by `scripts/release_default_model.py`.

| | |
|---|---|
| input | log-mel (natural log, clamp 1e-5): 22050 Hz, 80 bands, n_fft 1024, hop 256, window 1024, fmin 0, fmax 8000 — the convention most TTS acoustic models output (BigVGAN / HiFi-GAN front end, equal to `bigvgan.meldataset`) |
| generator | {meta['generator']} ({meta['parameters']:,} parameters, weight norm folded, stored in float16, runs in float32) |
| phase | {phase_text}, then K = {k} fast Griffin-Lim iterations (`phase_method` and `phase_iterations` in the file's meta; `from_pretrained(phase="model", phase_iterations=0)` or `--phase model --phase-iterations 0` decode with the network's own phase). {stream_text} |
| recipe | `recipes/default_22khz.yaml` (GAN-free: mel, MR-STFT, log-amplitude, phase and consistency losses) |
| training | {last['gan_step']:,} steps, {last['train_hours']:.1f} CPU-hours (2 cores; {last.get('train_note') or 'counted by the run'}); phase: {last['phase']} |
| data | `recipes/data/build_corpus.py`: about 4.2 hours of speech from 5 Debian packages (fillets-ng-data-cs/-nl GPL-2, klettres-data and ktuberling-data GPL-2+, hedgewars-data GFDL-1.3), Czech / Dutch / English and ~20 other languages; see `recipes/data/README.md` |
| held-out | test split: whole voices never trained on (`fillets_cs_x`, KDE `nl`, `he`, `el`, hedgewars `British`, `Mobster`); `samples/` comes from it |

## Metrics (copy synthesis: audio -> mel -> model -> audio, compared with the original)

`vocoder eval`: DistillMOS and DNSMOS P.835 OVRL (non-intrusive MOS predictors, also run on the original clips:
the ceiling), M-STFT (auraloss MultiResolutionSTFTLoss at its defaults), CREPE periodicity error, V/UV F1, wideband
PESQ, STOI, mel L1, MCD; Griffin-Lim on the same mels is the floor a vocoder must beat, and the stronger one is
signal processing without a network: the mel's pseudo-inverse amplitude with a PGHI / RTPGHI phase
(`vocoder/evaluation/signal_floors.py`).
Test subset: {len(test_files)} clips of the test split, {corpus_rel}/test.txt, {last['test_per_source']} evenly spaced per source.

| split | system | {' | '.join(HEADERS)} |
|---|---|{'---|' * len(HEADERS)}
{chr(10).join(rows)}

The gate (`vocoder/evaluation/gate.py`, on both splits; the module says why each criterion is there):
{gate_text}

This release {verdict}.

Clips won per gated metric (model / Griffin-Lim / ties):

| split | {' | '.join(c.metric for c in GATE)} |
|---|{'---|' * len(GATE)}
{chr(10).join(win_rows)}

## Phase setting (quality against speed)

Where the phase comes from (`model`: the network's prediction; `pghi` / `rtpghi`: computed from its amplitude,
`vocoder/nn/phase_retrieval.py`) and K fast Griffin-Lim iterations after it, each setting scored on the same clips
(the gate's verdict against the same Griffin-Lim and reference rows). The release tried
{', '.join(last.get('candidates') or [shipped])} in that order and ships the first that passes the gate; speed in
times real time on {last.get('speed_threads', 2)} threads, 10 s of speech, median of 3 rounds, on {last.get('isa', 'an unrecorded CPU')}.

{chr(10).join(k_table_lines(last))}

## Progress (every release; model / Griffin-Lim)

| date | steps | phase + K | CPU hours | test DistillMOS | test M-STFT | samples DistillMOS | samples M-STFT |
|---|---|---|---|---|---|---|---|
{chr(10).join(hist)}

## Limits

- Trained on a few CPU-hours, far from the 1-5 M GPU steps of published checkpoints.
- The network's own phase is the weak part: its plain decode (`model+0`) loses clearly to the phase computed from
  its amplitude on the MOS predictors; with the clip's own phase the model's amplitude scores like the reference clips
  (`scripts/phase_oracle.py`). Voicing errors remain (misses and false voicings both; V/UV F1 is below
  Griffin-Lim's on some clips: see the table above).
- The training speech is low-bitrate game dialogue and short amateur recordings (little energy above ~4 kHz in
  much of it), so expect a duller top octave than the input on studio speech.
- For best quality on your voices, fine-tune:
  `vocoder train --config recipes/default_22khz.yaml --init-generator vocoder/pretrained/default.pt ...`.
  The model is made for 22.05 kHz speech, not for 16 kHz or band-limited audio upsampled to 22.05 kHz.
"""
    atomic_write_bytes(text.encode("utf-8"), path)


def card_meta(voc: Vocoder) -> dict:
    """What the card says of the model itself: name, generator, parameter count."""
    return {"name": "default_22khz", "generator": voc.generator_name, "parameters": voc.num_parameters()}


def retime(out: Path, corpus: Path, corpus_rel: str, samples: Path, threads: int) -> int:
    """Time every phase setting of the last release in ``out`` again and rewrite its speeds and the card."""
    progress_path = out / "progress.json"
    progress = json.loads(progress_path.read_text())
    row = progress[-1]
    voc = Vocoder.from_pretrained(str(out / "default.pt"))
    settings = [(key.split("+")[0], int(key.split("+")[1])) for key in row["k_table"]]
    row["speed_x_realtime"] = speed(voc, list_clips(samples), settings)
    row.update(speed_threads=threads, isa=cpu_isa())
    print(f"speed (x real time, {threads} threads, {row['isa']}): {row['speed_x_realtime']}")
    meta = card_meta(voc)
    atomic_write_bytes((json.dumps(progress, indent=2) + "\n").encode("utf-8"), progress_path)
    write_card(out / "MODEL_CARD.md", meta, progress, test_subset(corpus, row["test_per_source"]), corpus_rel)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", help="a default_22khz generator: a Lightning checkpoint (.ckpt) or our .pt")
    ap.add_argument("--retime", action="store_true",
                    help="only time the phase settings of the last release again with the package as it is now "
                         "(e.g. on a quiet machine, or after a faster implementation) and rewrite its speeds in "
                         "progress.json and the card; default.pt is not touched")
    ap.add_argument("--ship", nargs="+", metavar="METHOD:K",
                    help="candidate phase settings in order of preference (e.g. rtpghi:0 rtpghi:4 model:16): the "
                         "first that passes the gate on both splits ships, stored in the model's meta")
    ap.add_argument("--table", nargs="+", default=["model:0,2,4,8,16,32", "rtpghi:0,4,16", "pghi:0,4,16"],
                    metavar="METHOD:K,K", help="the phase settings scored and timed for the card (default: "
                                               "model:0,2,4,8,16,32 rtpghi:0,4,16 pghi:0,4,16)")
    ap.add_argument("--train-hours", type=float, default=None,
                    help="CPU hours of training so far (all phases); default: what the checkpoint counted "
                         "(runs count them since 2026-12-02: pass the total when the run is older)")
    ap.add_argument("--train-note", default=None, help="how the CPU hours were counted, for the card")
    ap.add_argument("--step-offset", type=int, default=0,
                    help="steps the checkpoint's run started from (a run begun with --init-generator counts from 0 "
                         "again: pass the warm start's step so the card records the total)")
    ap.add_argument("--phase", default="GAN-free: amplitude, phase, consistency, mel and MR-STFT losses",
                    help="training phase, for the card")
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--test-per-source", type=int, default=3)
    ap.add_argument("--samples", default=str(ROOT / "samples"))
    ap.add_argument("--out", default=str(ROOT / "vocoder" / "pretrained"))
    ap.add_argument("--threads", type=int, default=2, help="torch threads for scoring and timing (default: 2)")
    ap.add_argument("--dry-run", action="store_true", help="evaluate and print; write nothing")
    ap.add_argument("--force", action="store_true", help="write the release even if it fails the gate")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.retime:
        return retime(out, Path(args.corpus), args.corpus, Path(args.samples), args.threads)
    if not args.checkpoint or not args.ship:
        ap.error("a release needs CHECKPOINT and --ship")

    if args.train_hours is None:
        counted = Vocoder.from_pretrained(args.checkpoint).meta.get("cpu_hours")
        if counted is None:
            ap.error(f"{args.checkpoint} does not record its CPU-hours: pass --train-hours")
        args.train_hours = float(counted)
    corpus = Path(args.corpus)
    test_files = test_subset(corpus, args.test_per_source)
    try:
        candidates, settings = parse_table(args.ship), parse_table(args.table)
    except ValueError as e:
        ap.error(str(e))
    settings = list(dict.fromkeys(candidates + settings))
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(args.checkpoint)
        if full.suffix == ".ckpt":  # a training checkpoint: export it (weight norm folded) first
            full = export_inference_checkpoint(full, Path(tmp) / "export.pt", fold_weight_norm=True)
        pt = Path(tmp) / "default.pt"
        half_checkpoint(full, pt, "default_22khz", args.train_hours, args.step_offset, extra_meta={
            "phase": args.phase, "source": "release"})
        voc = Vocoder.from_pretrained(str(pt))  # the weights as shipped (float16 storage)
        meta = card_meta(voc)
        splits = {"samples": list_clips(args.samples), "test": test_files}
        scored = score_table(voc, splits, settings)
        speeds = speed(voc, splits["samples"], settings)
        print(f"speed (x real time, {args.threads} threads, {cpu_isa()}): {speeds}", flush=True)
        shipped = first_passing(scored, candidates) or candidates[0]
        reports = scored[setting_key(*shipped)]
        # the setting travels in the file: the same weights, the chosen phase in its meta
        half_checkpoint(full, pt, "default_22khz", args.train_hours, args.step_offset, extra_meta={
            "phase": args.phase, "phase_method": shipped[0], "phase_iterations": shipped[1], "source": "release"})
        voc = Vocoder.from_pretrained(str(pt))
        assert (voc.phase, voc.phase_iterations) == shipped
        row = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "gan_step": int(voc.meta.get("gan_step", 0)), "phase": args.phase, "train_hours": args.train_hours,
               "train_note": args.train_note, "phase_method": shipped[0], "phase_iterations": shipped[1],
               "candidates": [setting_key(*c) for c in candidates],
               "test_per_source": args.test_per_source, "test_clips": reports["test"]["n_clips"],
               "samples_clips": reports["samples"]["n_clips"],
               "test": means(reports["test"]), "samples": means(reports["samples"]),
               "clip_wins": {split: wins(r) for split, r in reports.items()},
               "k_table": {k: {split: {c: r["mean"]["vocoder"].get(c) for c in K_COLUMNS} for split, r in rs.items()}
                           for k, rs in scored.items()},
               "speed_x_realtime": speeds, "speed_threads": args.threads,
               "isa": cpu_isa()}
        failures = release_failures(row)
        for f in failures:
            print(f"gate: {f}")
        for line in k_table_lines(row):
            print(line)
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
    print(f"released {out / 'default.pt'} (step {row['gan_step']}, {setting_key(*shipped)}); "
          f"card {out / 'MODEL_CARD.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
