"""FA-GAN's fine-grained multi-resolution real/imaginary STFT loss (Shen, Ren and Sun, "FA-GAN: Artifacts-free and
Phase-aware High-fidelity GAN-based Vocoder", Interspeech 2024), for any generator.

For each (fft, hop, win) resolution: the STFT of the generated and of the real audio (centred, reflect padding,
Hann window of ``win`` samples, as :class:`~vocoder.losses.stft.MultiResolutionSTFTLoss` frames it), and
``mean |Re X - Re Y| + mean |Im X - Im Y|``; the loss is the mean over resolutions. Unlike a magnitude loss it sees
the phase: the paper adds it to let a waveform generator model the phase and to reduce blurring artifacts.

What was followed: the paper's definition as available here (its abstract: an L1 loss on the real and imaginary
parts of the STFT at several resolutions). Its exact resolutions could not be read from the sources at hand, so the
defaults are Parallel WaveGAN's three (fft 1024 / 2048 / 512, hop 120 / 240 / 50, window 600 / 1200 / 240), the
finest hops in this package's losses; ``losses.mr_real_imag_args`` sets others.

Not the ``real_imag`` term of :mod:`.fourier`: that one compares a Fourier head's re-analysed STFT at the
generator's own framing; this one compares audio at several framings, whatever the generator.

Registered (:mod:`.registry`) as ``losses.mr_real_imag`` (weight, default 0) with ``losses.mr_real_imag_args``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Argument, LossSpec, TermsOf, Weight, as_mapping, register_loss
from .stft import register_stft_resolutions, waveform_pair

__all__ = ["MultiResolutionRealImagLoss"]


class MultiResolutionRealImagLoss(nn.Module):
    """``(fake [B, 1, T] or [B, T], real) -> scalar``: mean over resolutions of the L1 distances between the real
    parts and between the imaginary parts of the two STFTs."""

    def __init__(self, fft_sizes: Sequence[int] = (1024, 2048, 512), hop_sizes: Sequence[int] = (120, 240, 50),
                 win_lengths: Sequence[int] = (600, 1200, 240), window: str = "hann_window"):
        super().__init__()
        self.resolutions = register_stft_resolutions(self, fft_sizes, hop_sizes, win_lengths, window)

    def _stft(self, wav: torch.Tensor, i: int) -> torch.Tensor:
        """``[B, T] -> [B, fft // 2 + 1, frames]`` complex."""
        n, h, w = self.resolutions[i]
        return torch.stft(wav, n, h, w, getattr(self, f"window_{i}"), center=True, pad_mode="reflect",
                          return_complex=True)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        fake, real = waveform_pair(fake, real, "MultiResolutionRealImagLoss")
        longest = max(n for n, _, _ in self.resolutions)
        if fake.shape[-1] <= longest // 2:
            raise ValueError(f"MultiResolutionRealImagLoss: audio needs more than {longest // 2} samples for reflect "
                             f"padding, got {fake.shape[-1]}")
        loss = fake.new_zeros(())
        for i in range(len(self.resolutions)):
            x = self._stft(fake, i)
            with torch.no_grad():  # the target needs no graph
                y = self._stft(real, i)
            loss = loss + F.l1_loss(x.real, y.real) + F.l1_loss(x.imag, y.imag)
        return loss / len(self.resolutions)


register_loss(LossSpec(
    "mr_real_imag", "audio",
    (Weight("mr_real_imag", 0.0, "multi-resolution real/imaginary STFT L1 weight"),
     Argument("mr_real_imag_args", {}, "MultiResolutionRealImagLoss keyword arguments (fft_sizes, hop_sizes, "
              "win_lengths, window)", as_mapping)),
    lambda ctx: TermsOf(MultiResolutionRealImagLoss(**ctx.settings.mr_real_imag_args), "mr_real_imag"),
    "L1 on the real and imaginary parts of the STFT at 3 resolutions, for any generator (FA-GAN)"))
