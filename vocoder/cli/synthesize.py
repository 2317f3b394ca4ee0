"""``vocoder synthesize``: audio files (copy synthesis) or ``.npy`` mels -> ``.wav`` files.

    vocoder synthesize --model MODEL INPUT... --output OUT [--device cuda] [--batch-size 8] [--spectrogram]

INPUT is audio files, ``.npy`` log-mels (``[n_mels, T]`` or ``[1, n_mels, T]``) or folders (searched recursively
for both). Each input becomes ``OUT/<name>.wav`` (files found in a folder keep their path below it).
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List

import numpy as np
import torch
from tqdm import tqdm

from ..audio.io import AUDIO_EXTENSIONS, load_audio, save_audio
from ..audio.mel import check_mel
from .model_args import add_model_arguments, load_model

log = logging.getLogger(__name__)

MEL_EXTENSIONS = (".npy",)


@dataclass
class Job:
    source: Path
    relative: Path  # output name below OUT, without extension


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("synthesize", help="vocode audio files (copy synthesis) or .npy mels to wav",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, .npy mels [n_mels, T], or folders")
    add_model_arguments(p, random_init=False, phase_iterations=True)
    p.add_argument("--output", "-o", required=True, help="output folder")
    p.add_argument("--batch-size", type=int, default=1, help="inputs decoded together (default: 1)")
    p.add_argument("--spectrogram", action="store_true",
                   help="also write OUT/<name>.png comparing input and output spectrograms")
    return p


def collect_inputs(inputs: List[str]) -> tuple:
    """Input jobs (sorted within each folder) and whether any came from a folder."""
    jobs: List[Job] = []
    from_folder = False
    exts = AUDIO_EXTENSIONS + MEL_EXTENSIONS
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            from_folder = True
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in exts)
            if not found:
                raise ValueError(f"folder {path} holds no audio ({', '.join(AUDIO_EXTENSIONS)}) or .npy files")
            jobs.extend(Job(p, p.relative_to(path).with_suffix("")) for p in found)
        elif path.is_file():
            if path.suffix.lower() not in exts:
                raise ValueError(f"{path}: expected an audio file ({', '.join(AUDIO_EXTENSIONS)}) or a .npy mel")
            jobs.append(Job(path, Path(path.stem)))
        else:
            raise ValueError(f"input not found: {path}")
    names = [j.relative for j in jobs]
    dup = sorted({str(n) for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"several inputs would write the same output: {dup[:5]}")
    return jobs, from_folder


def load_mel(job: Job, vocoder) -> torch.Tensor:
    """The input's log-mel ``[n_mels, T]``: read from ``.npy`` or computed from audio at the model rate."""
    if job.source.suffix.lower() in MEL_EXTENSIONS:
        try:
            arr = np.load(job.source, allow_pickle=False)
        except Exception as e:
            raise ValueError(f"cannot read {job.source} as a .npy array: {e}") from e
        try:
            mel = check_mel(arr, vocoder.n_mels, layout="single").float()
        except ValueError as e:
            raise ValueError(f"{job.source}: {e}") from None
        return mel
    return vocoder.mel(load_audio(job.source, vocoder.sample_rate))


def plot_spectrograms(path: Path, mel_in: torch.Tensor, mel_out: torch.Tensor, title: str) -> None:
    """Two log-mels ``[n_mels, T]`` (input above, resynthesised below) as one PNG."""
    # deferred: start-up time of the CLI (model code, Lightning, matplotlib load only when run)
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    a, b = mel_in.float().cpu().numpy(), mel_out.float().cpu().numpy()
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for ax, m, name in zip(axes, (a, b), ("input", "vocoded")):
        im = ax.imshow(m, origin="lower", aspect="auto", interpolation="nearest", vmin=lo, vmax=hi)
        ax.set_ylabel(f"{name}\nmel bin")
    axes[-1].set_xlabel("frame")
    fig.suptitle(title)
    fig.colorbar(im, ax=axes, label="log magnitude")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run(args) -> int:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    jobs, from_folder = collect_inputs(args.inputs)
    vocoder = load_model(args)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)

    bar = tqdm(total=len(jobs), unit="file", disable=not from_folder, desc="synthesize")
    for start in range(0, len(jobs), args.batch_size):
        batch = jobs[start: start + args.batch_size]
        mels = [load_mel(j, vocoder) for j in batch]
        frames = [m.shape[-1] for m in mels]
        padded = torch.zeros(len(mels), vocoder.n_mels, max(frames))
        for i, m in enumerate(mels):
            padded[i, :, : m.shape[-1]] = m
        wavs = vocoder(padded, lengths=frames).cpu()
        for job, mel, n, wav in zip(batch, mels, frames, wavs):
            wav = wav[: n * vocoder.hop_length]
            target = out_dir / job.relative.with_suffix(".wav")
            save_audio(target, wav, vocoder.sample_rate)
            log.info("wrote %s (%d samples)", target, wav.numel())
            if args.spectrogram:
                plot_spectrograms(target.with_suffix(".png"), mel, vocoder.mel(wav)[:, :n], job.source.name)
        bar.update(len(batch))
    bar.close()
    print(f"wrote {len(jobs)} file(s) to {out_dir}")
    return 0
