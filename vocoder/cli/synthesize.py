"""``vocoder synthesize``: audio files (copy synthesis) or ``.npy`` mels -> ``.wav`` files.

    vocoder synthesize --model MODEL INPUT... --output OUT [--device cuda] [--batch-size 8] [--spectrogram]

INPUT is audio files, ``.npy`` log-mels (``[n_mels, T]`` or ``[1, n_mels, T]``) or folders (searched recursively
for both). Each input becomes ``OUT/<name>.wav`` (files found in a folder keep their path below it).

An input that fails (unreadable, a bad mel, NaN audio) is reported on stderr, one line each, and the others are
still written; the last line counts the failures and the exit status is 2 when any failed (``--fail-fast``:
stop at the first). A bad ``--output`` is refused before the model loads.
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List

import numpy as np
import torch
from tqdm import tqdm

from ..audio.io import AUDIO_EXTENSIONS, load_audio, save_audio
from ..audio.mel import check_mel
from .model_args import add_model_arguments, check_output_dir, load_model

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
    p.add_argument("--fail-fast", action="store_true",
                   help="stop at the first input that fails (default: report it, go on with the rest, exit 2 at "
                        "the end)")
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
        try:  # the layout the batch padding needs; the values are the Vocoder's one check (NaN, range)
            mel = check_mel(arr, vocoder.n_mels, layout="single", finite=False).float()
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


def _decode(vocoder, mels: List[torch.Tensor]) -> List[torch.Tensor]:
    """Decode mels ``[n_mels, T_i]`` together (padded, exact per-item lengths) -> ``[T_i * hop]`` each."""
    frames = [m.shape[-1] for m in mels]
    padded = torch.zeros(len(mels), vocoder.n_mels, max(frames))
    for i, m in enumerate(mels):
        padded[i, :, : m.shape[-1]] = m
    wavs = vocoder(padded, lengths=frames).cpu()
    return [wav[: n * vocoder.hop_length] for wav, n in zip(wavs, frames)]


def run(args) -> int:
    """Every input is decoded and written; one that fails (unreadable, a bad mel, NaN audio, an unwritable
    target) is reported on stderr, one line each, and the rest go on; the summary counts both and the exit
    status is 2 when any failed. ``--fail-fast``: the first failure stops the run (exit 2)."""
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    jobs, from_folder = collect_inputs(args.inputs)
    out_dir = check_output_dir(args.output)
    vocoder = load_model(args)
    failed: List[tuple] = []

    def fail(job: Job, e: Exception) -> None:
        msg = str(e) if str(job.source) in str(e) else f"{job.source}: {e}"
        if args.fail_fast:
            raise ValueError(msg) from e
        tqdm.write(f"vocoder synthesize: failed: {msg}", file=sys.stderr)  # above the progress bar
        failed.append((job, msg))

    def write(job: Job, mel: torch.Tensor, wav: torch.Tensor) -> None:
        target = out_dir / job.relative.with_suffix(".wav")
        try:
            save_audio(target, wav, vocoder.sample_rate)
            if args.spectrogram:
                plot_spectrograms(target.with_suffix(".png"), mel, vocoder.mel(wav)[:, : mel.shape[-1]],
                                  job.source.name)
        except (ValueError, OSError) as e:
            return fail(job, ValueError(f"{job.source} -> {target}: {e}"))
        log.info("wrote %s (%d samples)", target, wav.numel())

    bar = tqdm(total=len(jobs), unit="file", disable=not from_folder, desc="synthesize")
    for start in range(0, len(jobs), args.batch_size):
        batch, mels = [], []
        for job in jobs[start: start + args.batch_size]:
            try:
                mels.append(load_mel(job, vocoder))
                batch.append(job)
            except ValueError as e:
                fail(job, e)
        if batch:
            try:
                wavs = _decode(vocoder, mels)
            except ValueError as e:  # one item's fault (e.g. NaN audio): decode one by one, so only it fails
                wavs = [None] * len(batch)
                if len(batch) == 1:
                    fail(batch[0], e)
                else:
                    for i, (job, mel) in enumerate(zip(batch, mels)):
                        try:
                            wavs[i] = _decode(vocoder, [mel])[0]
                        except ValueError as e1:
                            fail(job, e1)
            for job, mel, wav in zip(batch, mels, wavs):
                if wav is not None:
                    write(job, mel, wav)
        bar.update(len(jobs[start: start + args.batch_size]))
    bar.close()
    written = len(jobs) - len(failed)
    if failed:
        print(f"wrote {written} file(s) to {out_dir}; {len(failed)} of {len(jobs)} input(s) failed (listed above)")
        print(f"vocoder synthesize: {len(failed)} of {len(jobs)} input(s) failed", file=sys.stderr)
        return 2
    print(f"wrote {written} file(s) to {out_dir}")
    return 0
