"""Griffin-Lim from our log-mel: the no-training floor a neural vocoder must beat.

The mel is inverted exactly as it was made: ``exp`` undoes the natural log, non-negative least squares against
the same Slaney filterbank (what ``librosa.feature.inverse.mel_to_stft(power=1)`` does) recovers a linear
magnitude, and ``librosa.griffinlim`` estimates the phase with the same FFT size, hop and periodic Hann window.

Alignment: our STFT reflect-pads ``(n_fft - hop) / 2`` samples on each side and does not centre frames, so frame
``t`` covers input samples ``[t*hop - pad, t*hop - pad + n_fft)``. Griffin-Lim therefore runs with
``center=False`` on that padded time axis; its output has ``n_fft + hop*(T-1) = T*hop + 2*pad`` samples and
dropping ``pad`` at each end gives ``T*hop`` samples aligned with the original, like a vocoder's output.

Deterministic: the random initial phase comes from ``random_state`` (0 by default).
"""
from __future__ import annotations

import librosa
import numpy as np
import torch

from ..audio.mel import MelConfig, check_mel, mel_filterbank, mel_spectrogram

__all__ = ["mel_to_magnitude", "griffin_lim", "magnitude_griffin_lim", "GriffinLimVocoder"]


def mel_to_magnitude(mel, config: MelConfig) -> np.ndarray:
    """Log-mel ``[n_mels, T]`` -> non-negative linear magnitude ``[n_fft // 2 + 1, T]`` (float64)."""
    mel = check_mel(mel, config.n_mels, layout="single").detach().to("cpu", torch.float64).numpy()
    basis = mel_filterbank(config, dtype=torch.float64).numpy()
    return librosa.util.nnls(basis, np.exp(mel))


def griffin_lim(mel, config: MelConfig, n_iter: int = 32, random_state: int = 0) -> torch.Tensor:
    """Log-mel ``[n_mels, T]`` (our front end) -> waveform float32 ``[T * hop_length]``."""
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    return magnitude_griffin_lim(mel_to_magnitude(mel, config), config, n_iter, random_state)


def magnitude_griffin_lim(magnitude, config: MelConfig, n_iter: int = 32, random_state: int = 0) -> torch.Tensor:
    """Linear magnitude ``[n_fft // 2 + 1, T]`` in our front end's framing -> waveform float32 ``[T * hop_length]``.

    librosa's fast Griffin-Lim (momentum 0.99) from random phase; frames are placed as the mel front end cuts them
    (``(n_fft - hop) / 2`` samples of padding each side), so the output lines up with the clip the mel came from.
    """
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    mag = magnitude.detach().cpu().numpy() if torch.is_tensor(magnitude) else np.asarray(magnitude)
    if mag.ndim != 2 or mag.shape[0] != config.n_fft // 2 + 1:
        raise ValueError(f"magnitude must be [{config.n_fft // 2 + 1}, T], got {tuple(mag.shape)}")
    frames = mag.shape[1]
    pad = (config.n_fft - config.hop_length) // 2
    wav = librosa.griffinlim(
        mag.astype(np.float32), n_iter=n_iter, hop_length=config.hop_length, win_length=config.win_length,
        n_fft=config.n_fft, window="hann", center=False, init="random", random_state=random_state,
        length=frames * config.hop_length + 2 * pad,
    )
    return torch.from_numpy(np.ascontiguousarray(wav[pad:pad + frames * config.hop_length], dtype=np.float32))


class GriffinLimVocoder:
    """Griffin-Lim behind the :class:`vocoder.Vocoder` call convention: ``voc(mel [n_mels, T]) -> wav [T*hop]``."""

    def __init__(self, mel_config: MelConfig, n_iter: int = 32, random_state: int = 0):
        self.mel_config = mel_config
        self.sample_rate = mel_config.sample_rate
        self.hop_length = mel_config.hop_length
        self.n_iter = n_iter
        self.random_state = random_state

    def mel(self, wav: torch.Tensor) -> torch.Tensor:
        return mel_spectrogram(wav, self.mel_config)

    def __call__(self, mel) -> torch.Tensor:
        return griffin_lim(mel, self.mel_config, self.n_iter, self.random_state)

    def __repr__(self) -> str:
        return f"GriffinLimVocoder(n_iter={self.n_iter}, sample_rate={self.sample_rate})"
