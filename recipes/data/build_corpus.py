#!/usr/bin/env python3
"""Build the project's real-speech training corpus from Debian packages, offline-reproducible.

Sources (Debian main, fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x``; nothing is
installed system-wide):

- ``fillets-ng-data-cs`` / ``fillets-ng-data-nl``: Czech / Dutch game dialogue (GPL-2), 22.05 kHz Vorbis.
- ``klettres-data``: letters and syllables, one speaker per language (GPL-2+), mostly 44.1 kHz.
- ``ktuberling-data``: single words, one speaker per language (GPL-2+), 44.1 / 22.05 / 8 kHz.
- ``hedgewars-data``: voice packs of short character exclamations, one speaker per pack (``Data/Sounds``:
  GFDL-1.3), 44.1 kHz Vorbis at ~150 kb/s: the one wideband source. The ``Robot`` pack (an electronically
  processed voice) is left out.

Every clip becomes a mono 16-bit PCM wav at ``--sample-rate`` (sox, very-high-quality resampler).
Sources whose rate is below the target are skipped (never upsample: an upsampled clip has an empty top
band that a vocoder would learn to reproduce). Byte-identical sources (the Serbian ktuberling variants,
the fillets cabin1/cabin2 copies) are kept once, so no clip sits in two splits. Clips shorter than
``--min-seconds`` and digitally silent clips are dropped, and so is the fillets ``misc`` group (files
without a speaker code: sound effects, shouts and mixed voices), and so is the hedgewars ``Robot`` pack.

The split is by speaker for the test set (whole voices are held out: see ``TEST_SPEAKERS``) and by file
for validation (a few clips of training speakers), never by segment. The four original packages share one
validation draw (``--val-clips``); a package added later draws its own fixed number of files from its own
generator (``Package.val_clips``), so adding a source leaves every other file in its split.

Output (under ``--out``)::

    wav/<source>/<speaker>/<name>.wav
    manifest.csv        path, package, licence, language, speaker, sample_rate, seconds, split, source
    train.txt val.txt test.txt   one wav path per line, relative to the folder holding the list

Needs ``apt-get`` (after ``apt-get update``), ``dpkg-deb``, and sox with Vorbis support
(``apt-get install -y sox libsox-fmt-all``).

Usage::

    python recipes/data/build_corpus.py --out data/corpus [--sample-rate 22050] [--jobs 2]
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import csv
import dataclasses
import hashlib
import logging
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

log = logging.getLogger("build_corpus")


@dataclasses.dataclass(frozen=True)
class Package:
    """One Debian package and where its speech lives after ``dpkg-deb -x``."""

    name: str
    licence: str
    globs: tuple  # patterns relative to the unpacked root
    # None: part of the shared ``--val-clips`` draw (the four original packages, whose splits must not
    # move); a number: this many validation files drawn on their own (see ``split``).
    val_clips: int | None = None
    left_out: str = ""  # why ``describe`` returns None for some of its files (counted under this name)


FILLETS_MISC = "fillets misc (no speaker code)"
HEDGEWARS_VOICES = "usr/share/games/hedgewars/Data/Sounds/voices"
# Voice packs that are not a recording of a human voice. Robot: a monotone (F0 s.d. 2.5 semitones, median
# 232 Hz, against 3.9-7.4 semitones and 260-425 Hz for the others) with decorrelated stereo channels (L/R
# correlation 0.69; the other packs are mono or near-identical channels) and synthetic glides. Singer was
# checked and kept: sung notes with natural vibrato and glides, no pitch quantisation.
HEDGEWARS_PROCESSED = ("Robot",)

PACKAGES = (
    Package("fillets-ng-data-cs", "GPL-2", ("usr/share/games/fillets-ng/sound/**/cs/*.ogg",), left_out=FILLETS_MISC),
    Package("fillets-ng-data-nl", "GPL-2", ("usr/share/games/fillets-ng/sound/**/nl/*.ogg",), left_out=FILLETS_MISC),
    Package("klettres-data", "GPL-2+", ("usr/share/klettres/*/alpha/*.ogg", "usr/share/klettres/*/syllab/*.ogg")),
    # ktuberling also ships Opus files (nn); sox cannot decode Opus, so they are left out.
    Package("ktuberling-data", "GPL-2+", ("usr/share/ktuberling/sounds/*/*.ogg", "usr/share/ktuberling/sounds/*/*.wav")),
    # Listed last: the duplicate check keeps the first copy, so the files of the sources above stay put.
    Package("hedgewars-data", "GFDL-1.3", (f"{HEDGEWARS_VOICES}/*/*.ogg",), val_clips=10,
            left_out="hedgewars processed voice (" + ", ".join(HEDGEWARS_PROCESSED) + ")"),
)

# Whole voices kept out of training. Chosen so the held-out set has one minor fillets voice (clean
# dialogue, several levels) and three KDE languages; a language is held out in both KDE packages at once
# because the same volunteer may have recorded both. Hedgewars: two English packs that share no file with
# any other pack (Classic/Default/Default_uk, Default_pl/Russian_pl and Default/HillBilly share recordings,
# so these stay together in training): Mobster (a low voice, no clipping) and British.
TEST_SPEAKERS = (
    "fillets_cs_x",
    "klettres_nl", "ktuberling_nl",
    "klettres_he", "ktuberling_he",
    "klettres_el", "ktuberling_el",
    "hedgewars_mobster", "hedgewars_british",
)

SILENCE_PEAK = 1e-3  # a clip whose peak stays under -60 dBFS carries no speech worth learning


@dataclasses.dataclass
class Clip:
    """One source file and where its converted wav goes."""

    source: Path
    package: Package
    language: str
    speaker: str
    dest: Path  # relative to the output folder
    source_rate: int = 0
    seconds: float = 0.0
    split: str = ""


def describe(pkg: Package, root: Path, src: Path) -> tuple[str, str, str] | None:
    """(language, speaker, output stem) of a source file, or None for a file left out."""
    parts = src.relative_to(root).parts
    stem = src.stem.replace(" ", "_")
    if pkg.name.startswith("fillets"):
        # .../sound/<level...>/<lang>/<prefix>-<speaker>-<text>.ogg; fewer than three dash fields is "misc"
        lang = parts[-2]
        fields = stem.split("-")
        if len(fields) < 3:
            return None
        level = "_".join(parts[parts.index("sound") + 1:-2])
        return lang, f"fillets_{lang}_{fields[1]}", f"{level}__{stem}"
    if pkg.name == "klettres-data":  # klettres/<lang>/<alpha|syllab>/<x>.ogg
        lang = parts[-3]
        return lang, f"klettres_{lang}", f"{parts[-2]}_{stem}"
    if pkg.name == "ktuberling-data":  # sounds/<lang>/<word>.ogg; sr@latin etc. are variants of sr
        lang = parts[-2].split("@")[0]
        return lang, f"ktuberling_{lang}", stem
    if pkg.name == "hedgewars-data":  # voices/<Pack>/<Line>.ogg, one speaker per pack
        pack = parts[-2]
        if pack in HEDGEWARS_PROCESSED:
            return None
        return hedgewars_language(pack), f"hedgewars_{pack.lower()}", stem
    raise ValueError(f"unknown package {pkg.name}")


def hedgewars_language(pack: str) -> str:
    """Language of a voice pack from its name: the translated packs end in a Hedgewars locale code
    (Default_es, Default_pl, Default_ru, Default_uk = Ukrainian, Russian_pl); the others are English
    character voices (taken from the names, not checked by ear)."""
    base, _, suffix = pack.rpartition("_")
    return suffix if base and suffix.islower() and len(suffix) == 2 else "en"


def fetch(packages, deb_dir: Path) -> dict:
    """Download the .debs (kept for reruns) and return {package name: path}."""
    deb_dir.mkdir(parents=True, exist_ok=True)
    have = {p.name: sorted(deb_dir.glob(f"{p.name}_*.deb")) for p in packages}
    missing = [name for name, debs in have.items() if not debs]
    if missing:
        log.info("apt-get download %s", " ".join(missing))
        r = subprocess.run(["apt-get", "download", *missing], cwd=deb_dir, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"apt-get download failed (run `apt-get update` first?):\n{r.stderr.strip()}")
        have = {p.name: sorted(deb_dir.glob(f"{p.name}_*.deb")) for p in packages}
    return {name: debs[-1] for name, debs in have.items()}


def unpack(deb: Path, root: Path) -> None:
    if (root / ".unpacked").exists():
        return
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    (root / ".unpacked").touch()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def collect(packages, debs: dict, work: Path) -> tuple[list, collections.Counter]:
    """List the clips to convert; duplicates (by content) and misc files are counted, not kept."""
    clips, dropped, seen = [], collections.Counter(), set()
    for pkg in packages:
        root = work / pkg.name
        unpack(debs[pkg.name], root)
        files = sorted({f for g in pkg.globs for f in root.glob(g)})
        if not files:
            sys.exit(f"no audio found in {pkg.name} (patterns {pkg.globs}); has the package layout changed?")
        for src in files:
            info = describe(pkg, root, src)
            if info is None:
                dropped[pkg.left_out or f"{pkg.name}: left out"] += 1
                continue
            digest = md5(src)
            if digest in seen:
                dropped["duplicate content"] += 1
                continue
            seen.add(digest)
            lang, speaker, stem = info
            source_tag = pkg.name.replace("-data", "").replace("-ng", "")
            clips.append(Clip(src, pkg, lang, speaker, Path("wav") / source_tag / speaker / f"{stem}.wav"))
    return clips, dropped


def source_rate(path: Path) -> int:
    try:
        return int(sf.info(str(path)).samplerate)
    except Exception:  # libsndfile may not know a container that sox reads
        r = subprocess.run(["soxi", "-r", str(path)], capture_output=True, text=True)
        return int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip() else 0


def convert(clip: Clip, out: Path, rate: int, force: bool) -> str:
    """Convert one clip; returns "" when kept, else the reason it was dropped."""
    clip.source_rate = source_rate(clip.source)
    if clip.source_rate == 0:
        return "unreadable source"
    if clip.source_rate < rate:
        return f"source rate below {rate} Hz"
    dst = out / clip.dest
    if force or not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".tmp.wav")
        # -R: dither from a fixed seed (sox seeds it from the clock otherwise), so the same sources give the same wavs.
        cmd = ["sox", "-V1", "-R", str(clip.source), "-c", "1", "-b", "16", "-e", "signed-integer", str(tmp)]
        if clip.source_rate != rate:
            cmd += ["rate", "-v", str(rate)]  # very high quality linear-phase band-limited resampler
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            tmp.unlink(missing_ok=True)
            return "sox failed"
        os.replace(tmp, dst)
    data, sr = sf.read(str(dst), dtype="int16")
    assert sr == rate, (dst, sr)
    clip.seconds = len(data) / sr
    if len(data) == 0 or np.abs(data.astype(np.int32)).max() < SILENCE_PEAK * 32768:
        dst.unlink()
        return "silent"
    return ""


def split(clips: list, test_speakers, val_clips: int, seed: int) -> None:
    """Test: whole held-out speakers. Validation: ``val_clips`` files of training speakers (>= 1 s),
    spread over the sources so each kind of speech is watched.

    Only packages without their own ``Package.val_clips`` share the ``val_clips`` draw (one generator
    seeded with ``seed``, packages in name order), exactly as when they were the only sources. A package
    with its own count draws that many from a generator seeded with ``seed`` and its name, so neither
    draw depends on which other sources are present."""
    for c in clips:
        c.split = "test" if c.speaker in test_speakers else "train"
    by_pkg, own = collections.defaultdict(list), {}
    for c in clips:
        if c.split == "train" and c.seconds >= 1.0:
            by_pkg[c.package.name].append(c)
            if c.package.val_clips is not None:
                own[c.package.name] = c.package.val_clips

    def draw(rng, name, quota):
        pool = sorted(by_pkg[name], key=lambda c: str(c.dest))
        for c in rng.sample(pool, min(quota, len(pool))):
            c.split = "val"

    rng = random.Random(seed)
    pkgs = sorted(name for name in by_pkg if name not in own)
    for i, name in enumerate(pkgs):
        draw(rng, name, val_clips // len(pkgs) + (1 if i < val_clips % len(pkgs) else 0))
    for name in sorted(own):
        draw(random.Random(f"{seed}:{name}"), name, own[name])


def write_outputs(clips: list, out: Path, rate: int) -> None:
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "package", "licence", "language", "speaker", "sample_rate", "seconds", "split", "source"])
        for c in clips:
            src = "/".join(c.source.parts[c.source.parts.index("usr"):])
            w.writerow([c.dest.as_posix(), c.package.name, c.package.licence, c.language, c.speaker, rate,
                        f"{c.seconds:.3f}", c.split, src])
    for name in ("train", "val", "test"):
        lines = sorted(c.dest.as_posix() for c in clips if c.split == name)
        (out / f"{name}.txt").write_text("".join(line + "\n" for line in lines))


def report(clips: list) -> str:
    lines = ["split  clips  minutes  speakers"]
    for name in ("train", "val", "test"):
        sel = [c for c in clips if c.split == name]
        lines.append(f"{name:6s} {len(sel):6d} {sum(c.seconds for c in sel) / 60:8.1f} {len({c.speaker for c in sel}):9d}")
    lines.append("package              split  clips  minutes")
    for pkg in PACKAGES:
        for name in ("train", "val", "test"):
            sel = [c for c in clips if c.package.name == pkg.name and c.split == name]
            if sel:
                lines.append(f"{pkg.name:20s} {name:5s} {len(sel):6d} {sum(c.seconds for c in sel) / 60:8.1f}")
    test = sorted({c.speaker for c in clips if c.split == "test"})
    lines.append("test speakers: " + ", ".join(test))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="output folder (created)")
    ap.add_argument("--sample-rate", type=int, default=22050, help="target rate; lower-rate sources are skipped")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="parallel sox processes")
    ap.add_argument("--min-seconds", type=float, default=0.5, help="drop clips shorter than this")
    ap.add_argument("--val-clips", type=int, default=40,
                    help="validation files taken from training speakers of the four original packages "
                         "(hedgewars-data adds its own 10)")
    ap.add_argument("--seed", type=int, default=1234, help="seed of the validation draw")
    ap.add_argument("--test-speakers", default=",".join(TEST_SPEAKERS),
                    help="comma-separated speaker ids held out for test (default: %(default)s)")
    ap.add_argument("--debs", type=Path, default=None, help="folder for the .deb files (default OUT/_debs)")
    ap.add_argument("--keep-unpacked", action="store_true", help="keep OUT/_unpacked after the build")
    ap.add_argument("--force", action="store_true", help="reconvert wavs that already exist")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    for tool in ("apt-get", "dpkg-deb", "sox"):
        if shutil.which(tool) is None:
            sys.exit(f"`{tool}` not found; needs a Debian-like system with: apt-get install -y sox libsox-fmt-all")
    sox_formats = subprocess.run(["sox", "-h"], capture_output=True, text=True).stdout
    if "vorbis" not in sox_formats and "ogg" not in sox_formats:
        sys.exit("sox cannot read Ogg Vorbis; run: apt-get install -y libsox-fmt-all")

    t0 = time.time()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    debs = fetch(PACKAGES, (args.debs or out / "_debs").resolve())
    work = out / "_unpacked"
    clips, dropped = collect(PACKAGES, debs, work)
    log.info("%d source clips; converting to %d Hz mono 16-bit with %d jobs", len(clips), args.sample_rate, args.jobs)

    with cf.ThreadPoolExecutor(max(1, args.jobs)) as ex:
        reasons = list(ex.map(lambda c: convert(c, out, args.sample_rate, args.force), clips))
    kept = []
    for c, why in zip(clips, reasons):
        if not why and c.seconds < args.min_seconds:
            (out / c.dest).unlink()
            why = f"shorter than {args.min_seconds} s"
        if why:
            dropped[why] += 1
        else:
            kept.append(c)

    test_speakers = {s.strip() for s in args.test_speakers.split(",") if s.strip()}
    split(kept, test_speakers, args.val_clips, args.seed)
    # the held-out voices must be absent from training, whatever the draw
    assert not {c.speaker for c in kept if c.split != "test"} & test_speakers
    write_outputs(kept, out, args.sample_rate)
    if not args.keep_unpacked:
        shutil.rmtree(work, ignore_errors=True)

    for why, n in sorted(dropped.items()):
        log.info("dropped %5d: %s", n, why)
    log.info("%s", report(kept))
    log.info("wrote %s (%.0f s)", out / "manifest.csv", time.time() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
