"""Multi-resolution (STFT magnitude) discriminator, UnivNet's MRD as BigVGAN uses it.

Each sub-discriminator takes a linear magnitude spectrogram at one (n_fft, hop, win) resolution and runs
2-D convs over ``[B, 1, freq, frames]`` (BigVGAN's layout), striding
along frames. The spectrogram is exactly BigVGAN's ``DiscriminatorR.spectrogram``: reflect padding of
``(n_fft - hop) / 2``, no centring, and no window argument, i.e. a rectangular window of ``win`` samples.
State-dict keys equal BigVGAN's (``discriminators.{i}.convs.{j}``, ``discriminators.{i}.conv_post``).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ._layers import MultiDiscriminator, norm_layer, run_convs

__all__ = ["ResolutionDiscriminator", "MultiResolutionDiscriminator", "DEFAULT_RESOLUTIONS"]

DEFAULT_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))


class ResolutionDiscriminator(nn.Module):
    """One resolution: ``[B, 1, T] -> (logits [B, N], 6 feature maps [B, C, F', frames])``.

    Args:
        resolution: ``(n_fft, hop_length, win_length)``.
        channel_mult: scales the 32 channels (BigVGAN's ``mrd_channel_mult``).
        use_spectral_norm: spectral instead of weight norm.
    """

    def __init__(self, resolution: Sequence[int], channel_mult: float = 1.0, use_spectral_norm: bool = False,
                 lrelu_slope: float = 0.1):
        super().__init__()
        if len(resolution) != 3:
            raise ValueError(f"resolution must be (n_fft, hop_length, win_length), got {resolution}")
        n_fft, hop, win = (int(v) for v in resolution)
        if not (0 < hop and 0 < win <= n_fft) or (n_fft - hop) % 2:
            raise ValueError(f"need hop > 0, 0 < win <= n_fft and even n_fft - hop, got {resolution}")
        self.resolution = (n_fft, hop, win)
        self.lrelu_slope = lrelu_slope
        norm_f = norm_layer(use_spectral_norm)
        ch = int(32 * channel_mult)
        self.convs = nn.ModuleList([
            norm_f(nn.Conv2d(1, ch, (3, 9), padding=(1, 4))),
            norm_f(nn.Conv2d(ch, ch, (3, 9), stride=(1, 2), padding=(1, 4))),
            norm_f(nn.Conv2d(ch, ch, (3, 9), stride=(1, 2), padding=(1, 4))),
            norm_f(nn.Conv2d(ch, ch, (3, 9), stride=(1, 2), padding=(1, 4))),
            norm_f(nn.Conv2d(ch, ch, (3, 3), padding=(1, 1))),
        ])
        self.conv_post = norm_f(nn.Conv2d(ch, 1, (3, 3), padding=(1, 1)))
        # BigVGAN passes no window, i.e. a rectangular one; explicit here to skip torch's warning
        self.register_buffer("window", torch.ones(win), persistent=False)

    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, 1, T] -> [B, n_fft // 2 + 1, frames]`` magnitude."""
        n_fft, hop, win = self.resolution
        pad = (n_fft - hop) // 2
        x = F.pad(wav, (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(x, n_fft=n_fft, hop_length=hop, win_length=win, window=self.window, center=False,
                          return_complex=True)
        return spec.abs()

    def forward(self, wav: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        return run_convs(self.spectrogram(wav).unsqueeze(1), self.convs, self.conv_post, self.lrelu_slope)


class MultiResolutionDiscriminator(MultiDiscriminator):
    """``forward(wav [B, 1, T]) -> (logits: one [B, N_i] per resolution, feature_maps: lists of 6)``.

    Args:
        resolutions: ``(n_fft, hop, win)`` triples; default UnivNet / BigVGAN v1's
            (1024, 120, 600), (2048, 240, 1200), (512, 50, 240).
    """

    def __init__(self, resolutions: Sequence[Sequence[int]] = DEFAULT_RESOLUTIONS, channel_mult: float = 1.0,
                 use_spectral_norm: bool = False, lrelu_slope: float = 0.1):
        super().__init__()
        if not resolutions:
            raise ValueError("MultiResolutionDiscriminator needs at least one resolution, got none")
        self.resolutions = [tuple(int(v) for v in r) for r in resolutions]
        self.discriminators = nn.ModuleList(
            ResolutionDiscriminator(r, channel_mult, use_spectral_norm, lrelu_slope) for r in self.resolutions
        )
        # reflect padding needs T > pad
        self.min_length = max((n - h) // 2 for n, h, _ in self.resolutions) + 1
