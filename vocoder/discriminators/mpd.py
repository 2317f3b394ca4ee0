"""Multi-period discriminator (HiFi-GAN's MPD, also BigVGAN's).

Each sub-discriminator folds the waveform ``[B, 1, T]`` into ``[B, 1, T/p, p]`` (reflect-padding ``T`` up
to a multiple of the period ``p``) and runs 2-D convs whose kernels are ``(k, 1)``, so each of the ``p``
interleaved phases is judged on its own. Layers and state-dict keys (``discriminators.{i}.convs.{j}``,
``discriminators.{i}.conv_post``) equal the official HiFi-GAN / BigVGAN ``DiscriminatorP``.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ._layers import MultiDiscriminator, get_padding, norm_layer, run_convs

__all__ = ["PeriodDiscriminator", "MultiPeriodDiscriminator"]


class PeriodDiscriminator(nn.Module):
    """One period of the MPD.

    Args:
        period: fold length ``p``.
        kernel_size, stride: of the strided ``(k, 1)`` convs (5 and 3 in the papers).
        channel_mult: scales the channel counts 32, 128, 512, 1024, 1024 (BigVGAN's
            ``discriminator_channel_mult``; 1 is the published model).
        use_spectral_norm: spectral instead of weight norm.
        lrelu_slope: leaky-ReLU slope after every conv but the last.
    """

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3, channel_mult: float = 1.0,
                 use_spectral_norm: bool = False, lrelu_slope: float = 0.1):
        super().__init__()
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        self.period = int(period)
        self.lrelu_slope = lrelu_slope
        norm_f = norm_layer(use_spectral_norm)
        chans = [1] + [int(c * channel_mult) for c in (32, 128, 512, 1024, 1024)]
        strides = [stride, stride, stride, stride, 1]
        pad = get_padding(kernel_size)
        self.convs = nn.ModuleList(
            norm_f(nn.Conv2d(chans[i], chans[i + 1], (kernel_size, 1), (strides[i], 1), padding=(pad, 0)))
            for i in range(5)
        )
        self.conv_post = norm_f(nn.Conv2d(chans[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, wav: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """``[B, 1, T] -> (logits [B, N], feature maps: 6 tensors [B, C, T', p])``."""
        b, c, t = wav.shape
        if t % self.period:
            n_pad = self.period - t % self.period
            wav = F.pad(wav, (0, n_pad), mode="reflect")
            t += n_pad
        x = wav.view(b, c, t // self.period, self.period)
        return run_convs(x, self.convs, self.conv_post, self.lrelu_slope)


class MultiPeriodDiscriminator(MultiDiscriminator):
    """HiFi-GAN's MPD: one :class:`PeriodDiscriminator` per period (2, 3, 5, 7, 11 by default).

    ``forward(wav [B, 1, T]) -> (logits: list of [B, N_i], feature_maps: list of lists)``.
    """

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), kernel_size: int = 5, stride: int = 3,
                 channel_mult: float = 1.0, use_spectral_norm: bool = False, lrelu_slope: float = 0.1):
        super().__init__()
        if not periods:
            raise ValueError("MultiPeriodDiscriminator needs at least one period, got none")
        self.periods = [int(p) for p in periods]
        self.discriminators = nn.ModuleList(
            PeriodDiscriminator(p, kernel_size, stride, channel_mult, use_spectral_norm, lrelu_slope)
            for p in self.periods
        )
        # reflect padding needs T > period - 1
        self.min_length = max(self.periods)
