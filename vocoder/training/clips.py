"""The training corpus as clips: finding the audio files, splitting off validation files, and the :class:`ClipStore`
that decodes, resamples and checks every file once (broken, silent and short files are skipped with a warning),
optionally keeps the audio as int16 in memory, and cuts segments (with their mels when they are stored)."""
from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import soundfile as sf

from ..audio.io import AUDIO_EXTENSIONS, load_audio
from ..audio.mel import MelConfig

__all__ = ["ClipStore", "list_audio_files", "split_by_file", "validation_count", "SILENCE_PEAK", "LOG_MEL_FLOOR",
           "MIN_FILES_FOR_SPLIT", "MAX_VAL_FRACTION"]

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

SILENCE_PEAK = 1e-4  # -80 dBFS: below this a file is digital silence (or a DC-free blank)
LOG_MEL_FLOOR = math.log(1e-5)  # value of a silent frame in our log-mel (spectral_normalize's clamp)
MIN_FILES_FOR_SPLIT = 4  # fewer usable files than this: no validation split, every file trains
MAX_VAL_FRACTION = 0.1  # a validation split takes at most this fraction of the files (at least one)


def list_audio_files(source: Union[PathLike, Sequence[PathLike]]) -> list[Path]:
    """Audio files named by ``source``: a folder (searched recursively), a text file list, an audio file,
    or a list of any of these (concatenated in order).

    A list file holds one path per line (``#`` starts a comment; blank lines are ignored); relative paths are
    taken relative to the folder holding the list, so a corpus folder can be moved as a whole.
    Returns sorted paths for a folder, the list's order for a list.
    """
    if isinstance(source, (list, tuple)):
        return [p for s in source for p in list_audio_files(s)]
    source = Path(source)
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if source.is_file():
        if source.suffix.lower() in AUDIO_EXTENSIONS:
            return [source]
        paths = []
        for line in source.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                p = Path(line)
                paths.append(p if p.is_absolute() else source.parent / p)
        return paths
    raise ValueError(f"expected a folder of audio files or a file list, got {str(source)!r} (does not exist)")


def validation_count(num_files: int, val_clips: Optional[int]) -> int:
    """How many of ``num_files`` usable files to hold out for validation when no validation set is given.

    ``min(val_clips, 10 % of the files)``, at least 1; none when ``val_clips`` is 0/None or there are fewer than
    :data:`MIN_FILES_FOR_SPLIT` files (a small fine-tuning set keeps every file for training).
    """
    if not val_clips or num_files < MIN_FILES_FOR_SPLIT:
        return 0
    return max(1, min(int(val_clips), int(num_files * MAX_VAL_FRACTION)))


def split_by_file(paths: Sequence[Path], count: int, seed: int) -> tuple[list[Path], list[Path]]:
    """Split whole files into ``(train, val)`` with ``count`` validation files drawn with ``seed``."""
    if count <= 0:
        raise ValueError(f"val_clips must be positive to split validation off the training files, got {count}")
    if len(paths) < 2:
        raise ValueError(f"need at least 2 training files to split off validation, got {len(paths)}")
    count = min(count, len(paths) // 2)  # never leave training with less than half the files
    chosen = set(np.random.default_rng(seed).permutation(len(paths))[:count].tolist())
    train = [p for i, p in enumerate(paths) if i not in chosen]
    val = [p for i, p in enumerate(paths) if i in chosen]
    return train, val


@dataclasses.dataclass
class _Clip:
    path: Path
    num_samples: int  # at the target rate (after resampling)
    native: bool  # file already at the target rate: segments can be read without decoding it all
    mel_path: Optional[Path] = None
    mel_frames: int = 0  # usable aligned frames (fine-tuning)


class ClipStore:
    """The usable clips of a file list, checked once, with optional in-memory int16 audio.

    Every file is decoded once when the store is built (at the target rate, via
    :func:`vocoder.audio.load_audio`); unreadable, silent or too-short files, and fine-tuning files whose
    ``.npy`` mel is missing or does not match, are skipped with one ``logging`` warning each.
    With ``cache=True`` the audio stays in memory as int16 (half of float32: ~2.6 MB per minute at
    22.05 kHz); otherwise each item reads its segment from disk (a seek for files already at the rate).
    """

    def __init__(self, paths: Sequence[PathLike], mel_config: MelConfig, min_samples: int,
                 cache: bool = True, finetune_mels: Union[bool, PathLike, None] = False):
        self.mel_config = mel_config
        self.cache = cache
        # True: <name>.npy next to <name>.wav; a folder: <folder>/<name>.npy
        self.mel_dir = None if isinstance(finetune_mels, bool) or finetune_mels is None else Path(finetune_mels)
        self.finetune_mels = bool(finetune_mels)
        self.clips: list[_Clip] = []
        self._audio: list[np.ndarray] = []
        self.skipped: list[tuple[Path, str]] = []
        self._failed: set[str] = set()  # files that failed after the scan (per process)
        sr = mel_config.sample_rate
        for p in map(Path, paths):
            try:
                wav = load_audio(p, sr)
            except ValueError as e:
                self._skip(p, str(e))
                continue
            audio = wav.numpy()
            n = int(audio.shape[-1])
            # numpy, not torch: tiny torch ops stall for milliseconds when the cores are oversubscribed
            peak = float(np.abs(audio).max())
            if peak < SILENCE_PEAK:
                self._skip(p, f"silent (peak {peak:.2e} < {SILENCE_PEAK:g})")
                continue
            if n < min_samples:
                self._skip(p, f"too short ({n} samples at {sr} Hz < {min_samples})")
                continue
            clip = _Clip(p, n, native=self._native_rate(p) == sr)
            if finetune_mels and not self._attach_mel(clip):
                continue
            self.clips.append(clip)
            if cache:
                self._audio.append(_to_int16(audio))

    def subset(self, indices: Sequence[int]) -> "ClipStore":
        """A store holding the clips at ``indices`` (sharing the cached audio, no rescan)."""
        out = ClipStore.__new__(ClipStore)
        out.mel_config, out.cache, out.finetune_mels = self.mel_config, self.cache, self.finetune_mels
        out.mel_dir = self.mel_dir
        out.clips = [self.clips[i] for i in indices]
        out._audio = [self._audio[i] for i in indices] if self.cache else []
        out.skipped, out._failed = [], set()
        return out

    def _skip(self, path: Path, why: str) -> None:
        log.warning("skipping %s: %s", path, why)
        self.skipped.append((path, why))

    @staticmethod
    def _native_rate(path: Path) -> int:
        try:
            return int(sf.info(str(path)).samplerate)
        except Exception:
            return 0

    def _attach_mel(self, clip: _Clip) -> bool:
        """Check ``<name>.npy`` next to the audio: ``[n_mels, frames]`` with ``frames ~ samples // hop``."""
        mel_path = clip.path.with_suffix(".npy") if self.mel_dir is None else self.mel_dir / f"{clip.path.stem}.npy"
        if not mel_path.is_file():
            self._skip(clip.path, f"fine-tuning mel {mel_path.name} not found")
            return False
        try:
            mel = np.load(mel_path, mmap_mode="r")
        except Exception as e:
            self._skip(clip.path, f"cannot read fine-tuning mel {mel_path}: {e}")
            return False
        c = self.mel_config
        hop_frames = clip.num_samples // c.hop_length
        if mel.ndim != 2 or mel.shape[0] != c.n_mels:
            self._skip(clip.path, f"fine-tuning mel must be [n_mels={c.n_mels}, frames], got {tuple(mel.shape)}")
            return False
        # acoustic models round the frame count differently; more than a couple of frames means misalignment
        if abs(mel.shape[1] - hop_frames) > 2:
            self._skip(clip.path, f"fine-tuning mel has {mel.shape[1]} frames but the audio has {hop_frames} "
                                  f"(samples // hop_length)")
            return False
        clip.mel_path = mel_path
        clip.mel_frames = min(mel.shape[1], hop_frames)
        return True

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def seconds(self) -> float:
        return sum(c.num_samples for c in self.clips) / self.mel_config.sample_rate

    def read(self, index: int, start: int, length: int) -> np.ndarray:
        """Samples ``[start, start + length)`` of clip ``index`` as float32 ``[length]`` (zero-padded past the end).

        Raises ``ValueError`` when the file can no longer be read (uncached store).
        """
        clip = self.clips[index]
        stop = min(start + length, clip.num_samples)
        if self.cache:
            seg = self._audio[index][start:stop].astype(np.float32) / 32768.0
        elif clip.native:
            try:
                data, _ = sf.read(str(clip.path), start=start, stop=stop, dtype="float32", always_2d=True)
            except Exception as e:
                raise ValueError(f"cannot read audio file {clip.path}: {e}") from e
            seg = data.mean(axis=1)
        else:
            seg = load_audio(clip.path, self.mel_config.sample_rate).numpy()[start:stop]
        if seg.shape[0] < length:
            seg = np.pad(seg, (0, length - seg.shape[0]))
        return np.ascontiguousarray(seg, dtype=np.float32)

    def read_mel(self, index: int, start_frame: int, frames: int) -> np.ndarray:
        """Frames ``[start, start + frames)`` of the fine-tuning mel, float32 ``[n_mels, frames]``
        (padded with the log-mel floor past the usable end)."""
        clip = self.clips[index]
        mel = np.load(clip.mel_path, mmap_mode="r")
        stop = min(start_frame + frames, clip.mel_frames)
        out = np.asarray(mel[:, start_frame:stop], dtype=np.float32)
        if out.shape[1] < frames:
            out = np.pad(out, ((0, 0), (0, frames - out.shape[1])), constant_values=LOG_MEL_FLOOR)
        return np.ascontiguousarray(out)

    def warn_failed_once(self, index: int, error: Exception) -> None:
        key = str(self.clips[index].path)
        if key not in self._failed:
            self._failed.add(key)
            log.warning("skipping %s: %s", key, error)


def _to_int16(wav: np.ndarray) -> np.ndarray:
    # x 32768 undoes soundfile's int16 -> float scaling exactly, so 16-bit files round-trip bit for bit
    return np.clip(np.round(wav * 32768.0), -32768, 32767).astype(np.int16)
