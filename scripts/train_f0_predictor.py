#!/usr/bin/env python
"""Train the mel -> F0 / voicing predictor (``vocoder.nn.f0_predictor``) on the corpus, against pYIN targets.

    nice -n 10 env OMP_NUM_THREADS=1 python scripts/train_f0_predictor.py \
        [--corpus data/corpus] [--cache data/f0_targets] [--out recipes/warm_start/f0_predictor_22khz.pt] \
        [--label-minutes 8] [--train-minutes 10] [--channels 192 --layers 6 --kernel-size 5] [--lr 1e-3]

1. Targets (:func:`vocoder.nn.f0_targets.pitch_targets`, pYIN on our mel frame centres) for every clip of
   ``test.txt`` (the held-out voices) and ``val.txt`` (held-out clips of training voices), and for training clips
   taken round-robin over the training speakers in a seeded order until ``--label-minutes`` of wall time is spent.
   Each clip's targets are cached under ``--cache`` (``.npz`` per clip), so a rerun labels only what is new and goes
   on where the last one stopped (``--label-minutes 0``: train on what is cached).
2. Training for ``--train-minutes`` of wall time (one torch thread): random 128-frame segments, batch 16, AdamW
   (lr cosine-decayed over the budget); loss = BCE(voiced logit, pYIN's voiced flag) + L1(log F0) on the frames
   pYIN calls voiced; the log-mel is shifted by a random gain (clamped at the mel floor) so the voicing does not key
   on loudness.
3. Scores on the test (and val) clips against pYIN's own targets, printed and stored in the checkpoint's meta:
   gross pitch error (share of the frames both call voiced where ``|f0 - f0_ref| > 20 % f0_ref``), V/UV error rate
   (share of all frames whose voicing differs), and the median absolute error in cents on the non-gross frames.
"""
from __future__ import annotations

import argparse
import csv
import math
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]

from vocoder.audio.io import load_audio  # noqa: E402
from vocoder.audio.mel import MelConfig, mel_spectrogram  # noqa: E402
from vocoder.nn.f0_predictor import F0Predictor, f0_predictor_checkpoint  # noqa: E402
from vocoder.nn.f0_targets import PYIN_FMAX, PYIN_FMIN, PYIN_RESOLUTION, pitch_targets  # noqa: E402
from vocoder.utils import atomic_torch_save  # noqa: E402

SEGMENT, BATCH = 128, 16
GROSS = 0.2


def cache_dir(root: Path, cfg: MelConfig) -> Path:
    return root / (f"pyin_{PYIN_FMIN:g}-{PYIN_FMAX:g}Hz_res{PYIN_RESOLUTION:g}_sr{cfg.sample_rate}_hop{cfg.hop_length}"
                   f"_nfft{cfg.n_fft}_center{int(cfg.center)}")


def label(corpus: Path, rel: str, cache: Path, cfg: MelConfig) -> dict:
    """``{"mel": [n_mels, T], "f0": [T], "voiced": [T]}`` for one clip, targets cached."""
    wav = load_audio(corpus / rel, cfg.sample_rate)
    path = cache / (rel + ".npz")
    if path.is_file():
        z = np.load(path)
        f0, voiced = z["f0"], z["voiced"]
    else:
        f0, voiced, prob = pitch_targets(wav.numpy(), cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, f0=f0, voiced=voiced, prob=prob)
        tmp.replace(path)
    mel = mel_spectrogram(wav, cfg)
    if mel.shape[1] != len(f0):
        raise ValueError(f"{rel}: {mel.shape[1]} mel frames but {len(f0)} cached targets (stale cache?)")
    return {"mel": mel, "f0": torch.from_numpy(f0), "voiced": torch.from_numpy(voiced)}


def train_order(corpus: Path, seed: int) -> List[str]:
    """Training clips round-robin over speakers (each speaker's clips in a seeded shuffle)."""
    listed = {l.strip() for l in (corpus / "train.txt").read_text().splitlines() if l.strip()}
    by_speaker: Dict[str, List[str]] = defaultdict(list)
    with open(corpus / "manifest.csv") as f:
        for row in csv.DictReader(f):
            if row["path"] in listed:
                by_speaker[row["speaker"]].append(row["path"])
    rng = random.Random(seed)
    queues = []
    for spk in sorted(by_speaker):
        clips = sorted(by_speaker[spk])
        rng.shuffle(clips)
        queues.append(clips)
    rng.shuffle(queues)
    order = []
    while any(queues):
        for q in queues:
            if q:
                order.append(q.pop())
    return order


def scores(model: F0Predictor, clips: List[dict]) -> Dict[str, float]:
    gross = both = vuv_err = frames = 0
    cents = []
    model.eval()
    for c in clips:
        f0, voiced = model.f0(c["mel"][None])
        f0, voiced = f0[0], voiced[0]
        ref_f0, ref_v = c["f0"], c["voiced"]
        vuv_err += int((voiced != ref_v).sum())
        frames += voiced.numel()
        b = voiced & ref_v
        both += int(b.sum())
        rel = (f0[b] - ref_f0[b]).abs() / ref_f0[b]
        gross += int((rel > GROSS).sum())
        ok = rel <= GROSS
        cents.append((1200 * torch.log2(f0[b][ok] / ref_f0[b][ok])).abs())
    cents_all = torch.cat(cents) if cents else torch.zeros(0)
    return {"gross_pitch_error": gross / max(both, 1), "vuv_error": vuv_err / max(frames, 1),
            "median_cents": float(cents_all.median()) if cents_all.numel() else float("nan"),
            "frames": frames, "both_voiced_frames": both}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=ROOT / "data/corpus")
    p.add_argument("--cache", type=Path, default=ROOT / "data/f0_targets")
    p.add_argument("--out", type=Path, default=ROOT / "recipes/warm_start/f0_predictor_22khz.pt")
    p.add_argument("--label-minutes", type=float, default=8.0, help="wall time for labelling new training clips")
    p.add_argument("--train-minutes", type=float, default=10.0)
    p.add_argument("--channels", type=int, default=192)  # the shipped net (1.0 M parameters)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--kernel-size", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--label-only", action="store_true", help="label (and cache) only, no training")
    args = p.parse_args(argv)
    if not (args.corpus / "train.txt").is_file():
        print(f"no corpus at {args.corpus} (build it: python recipes/data/build_corpus.py --out data/corpus)",
              file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = MelConfig()
    cache = cache_dir(args.cache, cfg)
    t0 = time.time()

    def listed(name):
        return [l.strip() for l in (args.corpus / name).read_text().splitlines() if l.strip()]

    test = [label(args.corpus, r, cache, cfg) for r in listed("test.txt")]
    val = [label(args.corpus, r, cache, cfg) for r in listed("val.txt")] if (args.corpus / "val.txt").is_file() else []
    print(f"test: {len(test)} clips, val: {len(val)} clips labelled ({time.time() - t0:.0f} s)", flush=True)
    t1 = time.time()
    train: List[dict] = []
    for rel in train_order(args.corpus, args.seed):
        cached = (cache / (rel + ".npz")).is_file()
        if not cached and time.time() - t1 > 60 * args.label_minutes:
            continue  # out of labelling time: only clips already cached still join
        train.append(label(args.corpus, rel, cache, cfg))
    n_frames = sum(c["mel"].shape[1] for c in train)
    print(f"train: {len(train)} clips, {n_frames * cfg.hop_length / cfg.sample_rate / 60:.1f} min, "
          f"{sum(int(c['voiced'].sum()) for c in train) / max(n_frames, 1):.1%} voiced "
          f"({time.time() - t1:.0f} s)", flush=True)
    if args.label_only:
        return 0

    model = F0Predictor(cfg.n_mels, args.channels, args.kernel_size, args.layers, PYIN_FMIN, PYIN_FMAX)
    # Input statistics of the training mels (log10, per band), as MelStandardize expects.
    allmel = torch.cat([c["mel"] for c in train], dim=1) / math.log(10.0)
    with torch.no_grad():
        model.norm.mean.copy_(allmel.mean(1))
        model.norm.scale.copy_(allmel.std(1).clamp(min=1e-3))
    n_params = sum(p.numel() for p in model.parameters())
    # Clips shorter than a segment are padded with the mel floor (no voicing: masked out of the F0 loss).
    floor = math.log(cfg.log_floor)
    weights = np.array([c["mel"].shape[1] for c in train], dtype=np.float64)
    weights /= weights.sum()
    rng = np.random.default_rng(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    t2, step = time.time(), 0
    budget = 60 * args.train_minutes
    lo, hi = math.log(PYIN_FMIN), math.log(PYIN_FMAX)
    while time.time() - t2 < budget:
        model.train()
        mels, f0s, vs, valid = [], [], [], []
        for i in rng.choice(len(train), BATCH, p=weights):
            c = train[i]
            T = c["mel"].shape[1]
            s = int(rng.integers(0, max(T - SEGMENT, 0) + 1))
            m, f, v = c["mel"][:, s:s + SEGMENT], c["f0"][s:s + SEGMENT], c["voiced"][s:s + SEGMENT]
            n = m.shape[1]
            ok = torch.ones(SEGMENT, dtype=torch.bool)
            if n < SEGMENT:
                m = F.pad(m, (0, SEGMENT - n), value=floor)
                f, v = F.pad(f, (0, SEGMENT - n)), F.pad(v, (0, SEGMENT - n))
                ok[n:] = False
            gain = float(rng.uniform(-2.0, 1.0))  # nats of log-mel: about -17 .. +9 dB
            mels.append((m + gain).clamp(min=floor))
            f0s.append(f)
            vs.append(v)
            valid.append(ok)
        mel, f0, v, ok = torch.stack(mels), torch.stack(f0s), torch.stack(vs), torch.stack(valid)
        log_f0, logit = model(mel)
        bce = F.binary_cross_entropy_with_logits(logit[ok], v[ok].float())
        target = torch.log(f0.clamp(min=PYIN_FMIN)).clamp(lo, hi)
        l1 = (log_f0 - target).abs()[v & ok].mean() if bool((v & ok).any()) else log_f0.sum() * 0
        loss = bce + l1
        opt.zero_grad()
        loss.backward()
        frac = (time.time() - t2) / budget
        for g in opt.param_groups:  # cosine decay over the wall-time budget
            g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        opt.step()
        step += 1
        if step % 200 == 0:
            print(f"step {step} ({time.time() - t2:.0f} s): bce {bce.item():.4f}, log-f0 L1 {l1.item():.4f}",
                  flush=True)
    train_s = time.time() - t2
    result = scores(model, test)
    result_val = scores(model, val) if val else None
    result_train = scores(model, train[:300])
    print(f"trained {step} steps in {train_s / 60:.1f} min, {n_params:,} parameters")
    print(f"test ({len(test)} clips, {result['frames']} frames): gross pitch error {result['gross_pitch_error']:.2%}, "
          f"V/UV error {result['vuv_error']:.2%}, median |error| {result['median_cents']:.1f} cents "
          f"on the other voiced frames")
    if result_val:
        print(f"val ({len(val)} clips of training voices): gross pitch error {result_val['gross_pitch_error']:.2%}, "
              f"V/UV error {result_val['vuv_error']:.2%}, median |error| {result_val['median_cents']:.1f} cents")
    print(f"train (first 300 clips): gross pitch error {result_train['gross_pitch_error']:.2%}, "
          f"V/UV error {result_train['vuv_error']:.2%}")
    meta = {"targets": f"librosa.pyin fmin={PYIN_FMIN:g} fmax={PYIN_FMAX:g} resolution={PYIN_RESOLUTION:g} "
                       f"frame_length=n_fft, centred on the mel frames",
            "train_clips": len(train), "train_frames": n_frames, "steps": step, "train_minutes": train_s / 60,
            "test": {k: float(v) for k, v in result.items()},
            "val": {k: float(v) for k, v in (result_val or {}).items()}}
    model.eval()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(f0_predictor_checkpoint(model, cfg.to_dict(), meta), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 2 ** 20:.1f} MiB); total {(time.time() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
