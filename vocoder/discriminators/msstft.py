"""Multi-scale complex STFT discriminator (EnCodec's MS-STFTD).

Each scale takes the complex STFT (Hann window, no centring, normalised by the window's energy as
torchaudio's ``Spectrogram(normalized=True)`` does), stacks real and imaginary parts as 2 channels,
``[B, 2, frames, freq]``, and runs 2-D convs that stride along frequency with dilations 1, 2, 4 along time.
As in EnCodec, the first conv has no weight norm and the activation is LeakyReLU(0.2).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import nn

from ._layers import MultiDiscriminator, encodec_convs, run_convs

__all__ = ["STFTDiscriminator", "MultiScaleSTFTDiscriminator"]


class STFTDiscriminator(nn.Module):
    """One scale: ``[B, 1, T] -> (logits [B, N], 5 feature maps [B, C, frames, F'])``.

    Args:
        filters: channels of the first conv (32 in EnCodec).
        n_fft, hop_length, win_length: STFT settings.
        max_filters, filters_scale: channel growth ``min(filters * filters_scale**i, max_filters)``.
        kernel_size, stride, dilations: of the inner convs (``(3, 9)``, ``(1, 2)``, ``(1, 2, 4)``).
        normalized: divide the STFT by ``sqrt(sum(window**2))``.
    """

    def __init__(self, filters: int = 32, n_fft: int = 1024, hop_length: int = 256, win_length: int = 1024,
                 max_filters: int = 1024, filters_scale: int = 1, kernel_size: Tuple[int, int] = (3, 9),
                 stride: Tuple[int, int] = (1, 2), dilations: Sequence[int] = (1, 2, 4), normalized: bool = True,
                 lrelu_slope: float = 0.2):
        super().__init__()
        if not (0 < hop_length and 0 < win_length <= n_fft):
            raise ValueError(f"need hop_length > 0 and 0 < win_length <= n_fft, got {n_fft}, {hop_length}, {win_length}")
        self.n_fft, self.hop_length, self.win_length = int(n_fft), int(hop_length), int(win_length)
        self.normalized = normalized
        self.lrelu_slope = lrelu_slope
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)
        self.convs, self.conv_post = encodec_convs(filters, max_filters, filters_scale, tuple(kernel_size),
                                                   tuple(stride), dilations)

    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, 1, T] -> [B, 2, frames, n_fft // 2 + 1]`` (real, imaginary)."""
        spec = torch.stft(wav.squeeze(1), self.n_fft, self.hop_length, self.win_length, self.window,
                          center=False, return_complex=True)
        if self.normalized:
            spec = spec / self.window.pow(2).sum().sqrt()
        return torch.view_as_real(spec).permute(0, 3, 2, 1)

    def forward(self, wav: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        return run_convs(self.spectrogram(wav), self.convs, self.conv_post, self.lrelu_slope, post_in_fmap=False)


class MultiScaleSTFTDiscriminator(MultiDiscriminator):
    """EnCodec's MS-STFTD: ``forward(wav [B, 1, T]) -> (logits: 3 x [B, N_i], feature_maps: 3 lists of 5)``.

    Args:
        filters: first-conv channels (32).
        n_ffts, hop_lengths, win_lengths: one entry per scale (1024/2048/512, 256/512/128, = n_ffts).
        **kwargs: passed to :class:`STFTDiscriminator`.
    """

    def __init__(self, filters: int = 32, n_ffts: Sequence[int] = (1024, 2048, 512),
                 hop_lengths: Sequence[int] = (256, 512, 128), win_lengths: Sequence[int] = (1024, 2048, 512),
                 **kwargs):
        super().__init__()
        if not (len(n_ffts) == len(hop_lengths) == len(win_lengths)) or not n_ffts:
            raise ValueError(f"n_ffts, hop_lengths, win_lengths must be non-empty and equally long, got "
                             f"{list(n_ffts)}, {list(hop_lengths)}, {list(win_lengths)}")
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(filters, n, h, w, **kwargs) for n, h, w in zip(n_ffts, hop_lengths, win_lengths)
        )
        self.min_length = max(n_ffts)
