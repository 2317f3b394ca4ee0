"""Reading and writing audio files with soundfile: mono, float32, at the rate the model wants."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import torch

__all__ = ["load_audio", "save_audio", "resample", "AUDIO_EXTENSIONS"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".opus")

PathLike = Union[str, os.PathLike]


def resample(wav: torch.Tensor, orig_sr: int, target_sr: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (torchaudio's Kaiser-windowed sinc)."""
    if orig_sr == target_sr:
        return wav
    import torchaudio.functional as AF  # deferred: torchaudio takes ~1 s to import, only resampling needs it

    return AF.resample(wav, orig_sr, target_sr, lowpass_filter_width=64, rolloff=0.9475937167399596,
                       resampling_method="sinc_interp_kaiser", beta=14.769656459379492)


def load_audio(path: PathLike, sample_rate: int | None = None) -> torch.Tensor:
    """Read an audio file as mono float32 ``[T]`` in [-1, 1].

    Integer or float samples of any format libsndfile reads; several channels are averaged;
    the result is resampled to ``sample_rate`` when given.
    Raises ``ValueError`` for a missing, unreadable, empty or non-finite file.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"audio file not found: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile's errors are RuntimeError / LibsndfileError with terse text
        raise ValueError(f"cannot read audio file {path}: {e}") from e
    if data.shape[0] == 0:
        raise ValueError(f"audio file {path} is empty (0 samples)")
    if not np.isfinite(data).all():
        raise ValueError(f"audio file {path} contains NaN or inf samples")
    wav = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    if sample_rate is not None and sr != sample_rate:
        wav = resample(wav, sr, sample_rate)
    return wav


def save_audio(path: PathLike, wav: Union[torch.Tensor, np.ndarray], sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write mono ``[T]`` audio (clipped to [-1, 1]); the folder is created if needed. NaN / inf samples are a
    ``ValueError`` (nothing is written): clipping would turn them into a file of -1.0 or silence."""
    if torch.is_tensor(wav):
        wav = wav.detach().float().cpu().numpy()
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if not np.isfinite(wav).all():
        raise ValueError(f"refusing to write {path}: {int((~np.isfinite(wav)).sum())} of {wav.size} samples are "
                         f"NaN / inf")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(wav, -1.0, 1.0), sample_rate, subtype=subtype)
