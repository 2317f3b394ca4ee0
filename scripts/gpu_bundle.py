#!/usr/bin/env python
"""Pack what the default model's GPU run needs into ``.gpu/`` (git-ignored), within what travels to the GPU machine.

    python scripts/gpu_bundle.py [--corpus data/corpus_v2] [--audio-mib 34] [--out .gpu]

The device tool copies the working tree (64 MiB in all, carried paths included) to a bare machine that has
PyTorch and Lightning but not librosa or soundfile, and can reach no package index. This writes:

- ``.gpu/whl/``: the wheels of the packages missing there (Python 3.12, manylinux x86-64), at the versions
  installed here;
- ``.gpu/corpus/``: a random subset of the corpus's training split as FLAC (lossless; every source in proportion,
  up to ``--audio-mib``), the validation clips, and ``train.txt`` / ``val.txt`` for ``vocoder train``.

Then, with the device tool (``scripts/gpu_train_default.sh`` says what it does there)::

    run(command="bash scripts/gpu_train_default.sh 7", carry=[".gpu"], timeout_s=600)
"""
from __future__ import annotations

import argparse
import random
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import soundfile as sf

from vocoder.training.clips import list_audio_files

ROOT = Path(__file__).resolve().parents[1]
#: what ``vocoder train`` imports that the GPU machine's image lacks (librosa's and soundfile's own needs included)
MISSING_THERE = ("librosa", "soundfile", "soxr", "audioread", "pooch", "platformdirs", "decorator", "cffi", "pycparser")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
TRAVEL_LIMIT_MIB = 64


def download_wheels(dest: Path) -> list:
    dest.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={metadata.version(name)}" for name in MISSING_THERE]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", "-d", str(dest)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + pins, check=True)
    return sorted(dest.glob("*.whl"))


def balanced_order(lines: list, seed: int) -> list:
    """Each source's clips shuffled, then interleaved in proportion: any prefix has every source in its share."""
    rng = random.Random(seed)
    by_source = {}
    for rel in lines:
        by_source.setdefault(Path(rel).parts[1], []).append(rel)
    keyed = []
    for items in by_source.values():
        rng.shuffle(items)
        keyed += [((i + rng.random()) / len(items), rel) for i, rel in enumerate(items)]
    return [rel for _, rel in sorted(keyed)]


def to_flac(corpus: Path, rels: list, out: Path, budget_bytes: int) -> list:
    """Encode clips in order until ``budget_bytes`` of FLAC; return the list lines written (relative to ``out``)."""
    written, total = [], 0
    for rel in rels:
        dst = out / Path(rel).with_suffix(".flac")
        dst.parent.mkdir(parents=True, exist_ok=True)
        data, sr = sf.read(corpus / rel, dtype="int16")
        sf.write(dst, data, sr, format="FLAC", subtype="PCM_16")
        size = dst.stat().st_size
        if total + size > budget_bytes:
            dst.unlink()
            break
        total += size
        written.append(str(Path(rel).with_suffix(".flac")))
    return written


def travel_size(root: Path) -> int:
    """Bytes of what the device tool sends: tracked files and untracked files git does not ignore."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         capture_output=True, check=True).stdout
    return sum((root / f).stat().st_size for f in out.decode().split("\0") if f and (root / f).is_file())


def corpus_list(corpus: Path, name: str) -> list:
    """The files a corpus list names (``vocoder train``'s reading: comments, blank lines), relative to ``corpus``."""
    root = corpus.resolve()
    rels = []
    for f in list_audio_files(corpus / name):
        f = f.resolve()
        if not f.is_relative_to(root):
            raise ValueError(f"{corpus / name} names files outside {corpus}, e.g. {f}")
        rels.append(f.relative_to(root).as_posix())
    return rels


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus_v2")
    ap.add_argument("--out", type=Path, default=ROOT / ".gpu")
    ap.add_argument("--audio-mib", type=float, default=34.0, help="FLAC budget of the training subset")
    ap.add_argument("--val-clips", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-wheels", action="store_true", help="audio only (no package index needed)")
    args = ap.parse_args(argv)
    for name in ("train.txt", "val.txt"):
        if not (args.corpus / name).is_file():
            ap.error(f"{args.corpus / name} missing: build the corpus first (recipes/data/build_corpus.py)")
    wheels = [] if args.no_wheels else download_wheels(args.out / "whl")
    corpus_out = args.out / "corpus"
    train = to_flac(args.corpus, balanced_order(corpus_list(args.corpus, "train.txt"), args.seed), corpus_out,
                    int(args.audio_mib * 2 ** 20))
    if not train:
        ap.error(f"--audio-mib {args.audio_mib} holds no clip")
    val = to_flac(args.corpus, sorted(corpus_list(args.corpus, "val.txt"))[: args.val_clips], corpus_out, 2 ** 40)
    (corpus_out / "train.txt").write_text("\n".join(train) + "\n")
    (corpus_out / "val.txt").write_text("\n".join(val) + "\n")
    seconds = sum(sf.info(corpus_out / rel).duration for rel in train)
    bundle = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    tree = travel_size(ROOT)
    print(f"{len(wheels)} wheels; {len(train)} training clips ({seconds / 60:.1f} min) and {len(val)} validation "
          f"clips in {corpus_out}")
    print(f"travels: working tree {tree / 2 ** 20:.1f} MiB + {args.out.name} {bundle / 2 ** 20:.1f} MiB "
          f"(limit {TRAVEL_LIMIT_MIB} MiB)")
    if tree + bundle > TRAVEL_LIMIT_MIB * 2 ** 20:
        print("too large for the device tool: lower --audio-mib", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
