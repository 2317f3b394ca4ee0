"""The log-mel front end that HiFi-GAN and BigVGAN train on.

Exactness matters here: a vocoder only works on mels computed the way it was trained, so this module
reproduces BigVGAN's ``meldataset.mel_spectrogram`` (itself HiFi-GAN's) to float32 rounding:
reflect padding of ``(n_fft - hop) / 2`` on each side, no centring, a periodic Hann window, magnitude
``sqrt(re^2 + im^2 + 1e-9)``, Slaney-normalised mel filters from librosa, natural log clamped at 1e-5.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import librosa
import torch
import torch.nn.functional as F

__all__ = ["MelConfig", "mel_spectrogram", "mel_filterbank", "spectral_normalize", "MelSpectrogram"]


@dataclass(frozen=True)
class MelConfig:
    """How a waveform becomes a log-mel spectrogram. ``fmax=None`` means ``sample_rate / 2``."""

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: Optional[float] = 8000.0

    def __post_init__(self):
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError(f"MelConfig values must be positive, got {self}")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
        if (self.n_fft - self.hop_length) % 2:
            raise ValueError(
                f"n_fft - hop_length must be even for symmetric padding, got {self.n_fft} - {self.hop_length}"
            )
        nyquist = self.sample_rate / 2
        if self.fmax is not None and not (self.fmin < self.fmax <= nyquist):
            raise ValueError(f"need fmin < fmax <= sample_rate/2 ({nyquist}), got fmin={self.fmin}, fmax={self.fmax}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MelConfig":
        """Build from our own dict or from an official HiFi-GAN / BigVGAN ``config.json``."""
        keys = {
            "sample_rate": ("sample_rate", "sampling_rate"),
            "n_fft": ("n_fft",),
            "hop_length": ("hop_length", "hop_size"),
            "win_length": ("win_length", "win_size"),
            "n_mels": ("n_mels", "num_mels"),
            "fmin": ("fmin",),
            "fmax": ("fmax",),
        }
        out = {}
        for field, aliases in keys.items():
            for a in aliases:
                if a in d:
                    out[field] = d[a]
                    break
        missing = [f for f in ("sample_rate", "n_fft", "hop_length", "n_mels") if f not in out]
        if missing:
            raise ValueError(f"mel config is missing {missing}; got keys {sorted(d)}")
        out.setdefault("win_length", out["n_fft"])
        out.setdefault("fmin", 0.0)
        out.setdefault("fmax", None)
        return cls(**out)


@functools.lru_cache(maxsize=32)
def _filterbank_np(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: Optional[float]):
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)


def mel_filterbank(config: MelConfig, device=None, dtype=torch.float32) -> torch.Tensor:
    """Slaney mel filters ``[n_mels, n_fft // 2 + 1]`` (librosa's defaults, as HiFi-GAN uses)."""
    fb = _filterbank_np(config.sample_rate, config.n_fft, config.n_mels, float(config.fmin), config.fmax)
    return torch.from_numpy(fb).to(device=device, dtype=dtype)


def spectral_normalize(x: torch.Tensor, clip_val: float = 1e-5) -> torch.Tensor:
    """Natural log with a floor, HiFi-GAN's ``dynamic_range_compression_torch``."""
    return torch.log(torch.clamp(x, min=clip_val))


_WINDOWS: dict = {}


def _hann(win_length: int, device) -> torch.Tensor:
    key = (win_length, str(device))
    if key not in _WINDOWS:
        _WINDOWS[key] = torch.hann_window(win_length, device=device)
    return _WINDOWS[key]


def linear_spectrogram(wav: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Magnitude spectrogram ``[B, n_fft//2+1, frames]`` with HiFi-GAN's padding (frames = T // hop)."""
    pad = (config.n_fft - config.hop_length) // 2
    if wav.shape[-1] <= pad:
        raise ValueError(f"audio too short for n_fft={config.n_fft}: {wav.shape[-1]} samples (need > {pad})")
    x = F.pad(wav.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    window = _hann(config.win_length, wav.device).to(wav.dtype)
    spec = torch.stft(
        x, config.n_fft, hop_length=config.hop_length, win_length=config.win_length, window=window,
        center=False, normalized=False, onesided=True, return_complex=True,
    )
    return torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)


def mel_spectrogram(wav: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Log-mel spectrogram.

    Args:
        wav: ``[T]`` or ``[B, T]`` (or ``[B, 1, T]``) float audio in [-1, 1].
        config: the mel settings.
    Returns:
        ``[n_mels, frames]`` for 1-D input, else ``[B, n_mels, frames]``; ``frames = T // hop_length``
        when ``T`` is a multiple of ``hop_length``.
    """
    if not torch.is_tensor(wav):
        raise ValueError(f"expected a torch.Tensor waveform, got {type(wav).__name__}")
    if not wav.is_floating_point():
        raise ValueError(f"expected float audio in [-1, 1], got dtype {wav.dtype}")
    squeeze = wav.dim() == 1
    if squeeze:
        wav = wav.unsqueeze(0)
    elif wav.dim() == 3 and wav.shape[1] == 1:
        wav = wav.squeeze(1)
    if wav.dim() != 2:
        raise ValueError(f"expected audio [T], [B, T] or [B, 1, T], got shape {tuple(wav.shape)}")
    orig_dtype = wav.dtype
    if wav.dtype in (torch.float16, torch.bfloat16):
        wav = wav.float()
    spec = linear_spectrogram(wav, config)
    mel = torch.matmul(mel_filterbank(config, wav.device, spec.dtype), spec)
    mel = spectral_normalize(mel).to(orig_dtype)
    return mel.squeeze(0) if squeeze else mel


class MelSpectrogram(torch.nn.Module):
    """``nn.Module`` wrapper of :func:`mel_spectrogram` (filters kept as a buffer): ``[B, T] -> [B, n_mels, T//hop]``."""

    def __init__(self, config: MelConfig):
        super().__init__()
        self.config = config
        self.register_buffer("basis", mel_filterbank(config), persistent=False)
        self.register_buffer("window", torch.hann_window(config.win_length), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        c = self.config
        if wav.dim() == 3:
            wav = wav.squeeze(1)
        pad = (c.n_fft - c.hop_length) // 2
        x = F.pad(wav.unsqueeze(1).float(), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(x, c.n_fft, c.hop_length, c.win_length, self.window, center=False,
                          normalized=False, onesided=True, return_complex=True)
        spec = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
        return spectral_normalize(torch.matmul(self.basis, spec))
