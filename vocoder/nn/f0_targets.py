"""Pitch targets for :class:`vocoder.nn.f0_predictor.F0Predictor`: F0 and voicing per mel frame, from
``librosa.pyin`` with its frames centred exactly on the mel's.

Why pYIN and not torchcrepe (which ``vocoder eval`` uses for periodicity): on this project's CPU at one thread
pYIN at 0.2 semitone resolution labels 5.4x faster than real time against 2.7x for CREPE "tiny" (1.9x for pYIN
at its default 0.1 semitone, 0.12x for CREPE "full"; 5 test clips, 24 s, measured while the machine was loaded),
it runs at our rate (CREPE needs 16 kHz audio and its own 1024-sample frames) and its HMM decodes voicing and
pitch jointly (CREPE "tiny"'s frame-wise argmax makes octave jumps). 0.2 semitone bins are 1.2 % apart, far
finer than the 20 % of a gross pitch error.

Alignment: mel frame ``t`` is centred on sample ``t * hop + offset`` (``offset = n_fft / 2 - padding``: ``hop / 2``
with HiFi-GAN's ``center=False`` framing, 0 centred, see :class:`vocoder.audio.mel.MelConfig`); pYIN with
``center=True`` centres its frame ``i`` on sample ``i * hop`` of what it is given, so it is given the audio from
sample ``offset`` on, with ``frame_length = n_fft``. Its frames past the mel's last are dropped.
"""
from __future__ import annotations

from typing import Tuple

import librosa
import numpy as np
import torch

from ..audio.mel import MelConfig

__all__ = ["pitch_targets", "frame_centres", "PYIN_FMIN", "PYIN_FMAX", "PYIN_RESOLUTION"]

PYIN_FMIN, PYIN_FMAX = 50.0, 1100.0  # the predictor's range (speech, children's and cartoon voices included)
PYIN_RESOLUTION = 0.2  # semitones per pitch bin


def frame_centres(config: MelConfig, n_frames: int) -> np.ndarray:
    """Sample index of each mel frame's centre: ``t * hop + n_fft / 2 - padding``, ``[n_frames]``."""
    return np.arange(n_frames) * config.hop_length + (config.n_fft // 2 - config.padding)


def pitch_targets(wav, config: MelConfig, fmin: float = PYIN_FMIN, fmax: float = PYIN_FMAX,
                  resolution: float = PYIN_RESOLUTION) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pYIN on ``wav [N]`` (mono, at ``config.sample_rate``), one value per frame of ``mel_spectrogram(wav, config)``.

    Returns:
        ``(f0_hz [T] float32, 0 where unvoiced; voiced [T] bool; voiced_prob [T] float32)`` with
        ``T = config.num_frames(N)``.
    """
    if torch.is_tensor(wav):
        wav = wav.detach().cpu().numpy()
    wav = np.asarray(wav)
    if wav.ndim != 1 or not np.issubdtype(wav.dtype, np.floating):
        raise ValueError(f"expected mono float audio [N], got shape {wav.shape} dtype {wav.dtype}")
    if not np.isfinite(wav).all():
        raise ValueError("audio contains NaN or inf samples")
    if not 0 < fmin < fmax < config.sample_rate / 2:
        raise ValueError(f"need 0 < fmin < fmax < sample_rate / 2, got fmin={fmin}, fmax={fmax}")
    frame_length = config.n_fft
    # pYIN's difference function compares frame_length // 2 samples over lags up to sr / fmin.
    if config.sample_rate / fmin > frame_length - frame_length // 2:
        raise ValueError(f"fmin={fmin} Hz needs periods of {config.sample_rate / fmin:.0f} samples, more than the "
                         f"{frame_length // 2} lags a {frame_length}-sample frame (n_fft) allows; raise fmin")
    n_frames = config.num_frames(len(wav))
    f0 = np.zeros(n_frames, np.float32)
    voiced = np.zeros(n_frames, bool)
    prob = np.zeros(n_frames, np.float32)
    if n_frames <= 0:
        return f0, voiced, prob
    offset = int(frame_centres(config, 1)[0])
    x = wav[offset:].astype(np.float32)
    f, v, p = librosa.pyin(x, fmin=fmin, fmax=fmax, sr=config.sample_rate, frame_length=frame_length,
                           hop_length=config.hop_length, center=True, resolution=resolution)
    n = min(n_frames, len(f))
    v = v[:n] & np.isfinite(f[:n])
    f0[:n] = np.where(v, np.nan_to_num(f[:n]), 0.0)
    voiced[:n] = v
    prob[:n] = np.nan_to_num(p[:n])
    return f0, voiced, prob
