"""Multi-scale discriminator (MelGAN's idea, HiFi-GAN's layers).

Three 1-D conv stacks judge the waveform at its own rate, then after one and two average-poolings
(kernel 4, stride 2, padding 2). The first stack uses spectral norm, the others weight norm, as in the
HiFi-GAN paper. State-dict keys (``discriminators.{i}.convs.{j}``, ``discriminators.{i}.conv_post``,
``meanpools``) equal the official HiFi-GAN ``MultiScaleDiscriminator`` (the pools have no weights).
"""
from __future__ import annotations

from typing import Iterator, List, Tuple

import torch
from torch import nn

from ._layers import MultiDiscriminator, norm_layer, run_convs

__all__ = ["ScaleDiscriminator", "MultiScaleDiscriminator"]

# (in, out, kernel, stride, groups, padding) of HiFi-GAN's DiscriminatorS, before channel_mult
_LAYERS = (
    (1, 128, 15, 1, 1, 7),
    (128, 128, 41, 2, 4, 20),
    (128, 256, 41, 2, 16, 20),
    (256, 512, 41, 4, 16, 20),
    (512, 1024, 41, 4, 16, 20),
    (1024, 1024, 41, 1, 16, 20),
    (1024, 1024, 5, 1, 1, 2),
)


class ScaleDiscriminator(nn.Module):
    """One scale of the MSD: ``[B, 1, T] -> (logits [B, N], 8 feature maps [B, C, T'])``.

    Args:
        use_spectral_norm: spectral instead of weight norm (HiFi-GAN uses it on the first scale).
        channel_mult: scales the channel counts (1 is the published model); each must stay divisible
            by its conv's group count.
        lrelu_slope: leaky-ReLU slope.
    """

    def __init__(self, use_spectral_norm: bool = False, channel_mult: float = 1.0, lrelu_slope: float = 0.1):
        super().__init__()
        self.lrelu_slope = lrelu_slope
        norm_f = norm_layer(use_spectral_norm)
        convs = []
        for cin, cout, k, s, g, p in _LAYERS:
            cin = cin if cin == 1 else int(cin * channel_mult)
            cout = int(cout * channel_mult)
            if cin % g or cout % g:
                raise ValueError(f"channel_mult={channel_mult} gives {cin}->{cout} channels, not divisible by groups={g}")
            convs.append(norm_f(nn.Conv1d(cin, cout, k, s, groups=g, padding=p)))
        self.convs = nn.ModuleList(convs)
        self.conv_post = norm_f(nn.Conv1d(int(1024 * channel_mult), 1, 3, 1, padding=1))

    def forward(self, wav: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        return run_convs(wav, self.convs, self.conv_post, self.lrelu_slope)


class MultiScaleDiscriminator(MultiDiscriminator):
    """HiFi-GAN's MSD: ``forward(wav [B, 1, T]) -> (logits: 3 x [B, N_i], feature_maps: 3 lists of 8)``.

    Args:
        scales: number of scales (3 in the paper); scale ``i > 0`` sees the audio average-pooled ``i`` times.
        channel_mult: see :class:`ScaleDiscriminator`.
        spectral_norm_first: spectral norm on the first scale (as published).
    """

    def __init__(self, scales: int = 3, channel_mult: float = 1.0, spectral_norm_first: bool = True,
                 lrelu_slope: float = 0.1):
        super().__init__()
        if scales < 1:
            raise ValueError(f"scales must be >= 1, got {scales}")
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(use_spectral_norm=(i == 0 and spectral_norm_first), channel_mult=channel_mult,
                               lrelu_slope=lrelu_slope)
            for i in range(scales)
        )
        self.meanpools = nn.ModuleList(nn.AvgPool1d(4, 2, padding=2) for _ in range(scales - 1))

    def inputs(self, wav: torch.Tensor) -> Iterator[torch.Tensor]:
        """``wav``, then ``wav`` average-pooled once, twice, ..."""
        yield wav
        for pool in self.meanpools:
            wav = pool(wav)
            yield wav
