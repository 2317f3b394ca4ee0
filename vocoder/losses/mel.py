"""Mel-spectrogram reconstruction losses.

* :class:`MelL1Loss`: HiFi-GAN / BigVGAN v1's L1 between log-mels, computed by the same front end the
  generator consumes (:class:`vocoder.audio.mel.MelSpectrogram`). Paper weight 45. HiFi-GAN computes the
  loss mel with ``fmax=None`` (``fmax_for_loss``); pass such a config if you follow it.
* :class:`MultiScaleMelLoss`: BigVGAN v2 / DAC's multi-scale mel loss, equal to BigVGAN's
  ``MultiScaleMelSpectrogramLoss``: for window lengths 32 ... 2048 (hop = window / 4, periodic Hann,
  centred STFT with reflect padding) and 5 ... 320 mels, L1 between ``log10(clamp(mel, 1e-5) ** pow)``,
  summed over scales. Paper weight 15.

Registered (:mod:`.registry`) as ``losses.mel`` (with ``losses.mel_fmax``) and ``losses.multiscale_mel`` (with
``losses.multiscale_mel_args``, its keyword arguments).
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import librosa
import torch
import torch.nn.functional as F
from torch import nn

from ..audio.mel import MelConfig, MelSpectrogram
from .registry import Argument, LossContext, LossSpec, TermsOf, Weight, as_mapping, optional_float, register_loss

__all__ = ["MelL1Loss", "MultiScaleMelLoss"]


def _as_batch(wav: torch.Tensor, who: str) -> torch.Tensor:
    """``[B, 1, T]`` or ``[B, T]`` -> ``[B, T]``."""
    if wav.dim() == 3 and wav.shape[1] == 1:
        return wav.squeeze(1)
    if wav.dim() == 2:
        return wav
    raise ValueError(f"{who}: expected audio [B, 1, T] or [B, T], got {tuple(wav.shape)}")


def _check_pair(fake: torch.Tensor, real: torch.Tensor, who: str) -> None:
    if fake.shape != real.shape:
        raise ValueError(f"{who}: fake and real audio must have the same shape, got {tuple(fake.shape)} "
                         f"and {tuple(real.shape)}")


class MelL1Loss(nn.Module):
    """``MelL1Loss(mel_config)(fake [B, 1, T], real [B, 1, T]) -> scalar`` mean |log-mel difference|."""

    def __init__(self, mel_config: MelConfig):
        super().__init__()
        if not isinstance(mel_config, MelConfig):
            raise ValueError(f"MelL1Loss expects a MelConfig, got {type(mel_config).__name__}")
        self.mel = MelSpectrogram(mel_config)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        _check_pair(fake, real, "MelL1Loss")
        fake, real = _as_batch(fake, "MelL1Loss"), _as_batch(real, "MelL1Loss")
        with torch.no_grad():  # the target needs no graph
            real_mel = self.mel(real)
        return F.l1_loss(self.mel(fake), real_mel)


class MultiScaleMelLoss(nn.Module):
    """BigVGAN v2 / DAC multi-scale log10-mel L1: ``(fake [B, 1, T], real [B, 1, T]) -> scalar``.

    Args:
        sample_rate: audio rate (for the mel filters).
        n_mels, window_lengths: one entry per scale.
        clamp_eps: floor before the log.
        mag_weight: weight of an L1 on the raw mel magnitudes (DAC's term; 0 as in BigVGAN v2, whose code
            would apply it to the log-mels instead).
        log_weight: weight of the log-mel L1.
        pow: power applied to the mel magnitude before the log.
        mel_fmin, mel_fmax: per-scale band limits (``None`` fmax = Nyquist).
    """

    def __init__(self, sample_rate: int, n_mels: Sequence[int] = (5, 10, 20, 40, 80, 160, 320),
                 window_lengths: Sequence[int] = (32, 64, 128, 256, 512, 1024, 2048), clamp_eps: float = 1e-5,
                 mag_weight: float = 0.0, log_weight: float = 1.0, pow: float = 1.0,
                 mel_fmin: Optional[Sequence[float]] = None, mel_fmax: Optional[Sequence[Optional[float]]] = None):
        super().__init__()
        if len(n_mels) != len(window_lengths) or not n_mels:
            raise ValueError(f"n_mels and window_lengths must be non-empty and equally long, got {list(n_mels)} "
                             f"and {list(window_lengths)}")
        mel_fmin = list(mel_fmin) if mel_fmin is not None else [0.0] * len(n_mels)
        mel_fmax = list(mel_fmax) if mel_fmax is not None else [None] * len(n_mels)
        if len(mel_fmin) != len(n_mels) or len(mel_fmax) != len(n_mels):
            raise ValueError(f"mel_fmin / mel_fmax need one entry per scale ({len(n_mels)}), got "
                             f"{len(mel_fmin)} / {len(mel_fmax)}")
        self.sample_rate = int(sample_rate)
        self.window_lengths = [int(w) for w in window_lengths]
        self.n_mels = [int(m) for m in n_mels]
        self.clamp_eps, self.mag_weight, self.log_weight, self.pow = clamp_eps, mag_weight, log_weight, pow
        for i, (w, m, lo, hi) in enumerate(zip(self.window_lengths, self.n_mels, mel_fmin, mel_fmax)):
            fb = librosa.filters.mel(sr=self.sample_rate, n_fft=w, n_mels=m, fmin=lo, fmax=hi)
            self.register_buffer(f"mel_basis_{i}", torch.from_numpy(fb).float(), persistent=False)
            self.register_buffer(f"window_{i}", torch.hann_window(w), persistent=False)

    def _mel(self, wav: torch.Tensor, i: int) -> torch.Tensor:
        """``[B, T] -> [B, n_mels_i, frames]`` linear-magnitude mel."""
        w = self.window_lengths[i]
        spec = torch.stft(wav, n_fft=w, hop_length=w // 4, window=getattr(self, f"window_{i}"), center=True,
                          pad_mode="reflect", return_complex=True)
        return torch.matmul(getattr(self, f"mel_basis_{i}"), spec.abs())

    def _log(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.log10(mel.clamp(min=self.clamp_eps).pow(self.pow))

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        _check_pair(fake, real, "MultiScaleMelLoss")
        fake, real = _as_batch(fake, "MultiScaleMelLoss"), _as_batch(real, "MultiScaleMelLoss")
        if fake.shape[-1] <= max(self.window_lengths) // 2:
            raise ValueError(f"MultiScaleMelLoss: audio needs more than {max(self.window_lengths) // 2} samples "
                             f"for reflect padding, got {fake.shape[-1]}")
        loss = fake.new_zeros(())
        for i in range(len(self.window_lengths)):
            x = self._mel(fake, i)
            with torch.no_grad():
                y = self._mel(real, i)
            if self.log_weight:
                loss = loss + self.log_weight * F.l1_loss(self._log(x), self._log(y))
            if self.mag_weight:
                loss = loss + self.mag_weight * F.l1_loss(x, y)
        return loss


def _mel_loss(ctx: LossContext) -> nn.Module:
    # The loss mel is full band unless the recipe says otherwise (HiFi-GAN's fmax_for_loss = None).
    return TermsOf(MelL1Loss(dataclasses.replace(ctx.mel, fmax=ctx.settings.mel_fmax)), "mel")


register_loss(LossSpec(
    "mel", "audio",
    (Weight("mel", 45.0, "single-scale log-mel L1 weight"),
     Argument("mel_fmax", None, "fmax of the loss mel (HiFi-GAN's fmax_for_loss; null = sample_rate / 2)",
              optional_float)),
    _mel_loss, "L1 between log-mels of the recipe's mel settings (HiFi-GAN, BigVGAN v1 45)"))
register_loss(LossSpec(
    "multiscale_mel", "audio",
    (Weight("multiscale_mel", 0.0, "BigVGAN-v2 multi-scale mel loss weight"),
     Argument("multiscale_mel_args", {}, "MultiScaleMelLoss keyword arguments (n_mels, window_lengths, ...)",
              as_mapping)),
    lambda ctx: TermsOf(MultiScaleMelLoss(ctx.mel.sample_rate, **ctx.settings.multiscale_mel_args),
                        "multiscale_mel"),
    "L1 between log10-mels at 7 window lengths, 32 to 2048 samples (BigVGAN v2, DAC 15)"))
