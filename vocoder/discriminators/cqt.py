"""Multi-scale sub-band CQT discriminator (Gu et al. 2024, as in BigVGAN v2's ``DiscriminatorCQT``).

Each scale resamples the audio to twice its rate (torchaudio ``Resample``), takes nnAudio's complex
constant-Q transform (``CQT2010v2``; its kernels are computed locally, nothing is downloaded), stacks
real and imaginary parts as 2 channels ``[B, 2, frames, bins]``, and gives each octave (sub-band) its own
input conv before the shared 2-D conv stack (dilations 1, 2, 4 along time, stride 2 along bins).

Attribute names (``cqt_transform``, ``resample``, ``conv_pres``, ``convs``, ``conv_post``) equal
BigVGAN's, so a BigVGAN v2 discriminator state dict loads with a plain ``load_state_dict``. BigVGAN v2's
published configs use ``filters=128``; the class default 32 is the reference code's default.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ._layers import MultiDiscriminator, encodec_convs, get_2d_padding, run_convs

__all__ = ["CQTDiscriminator", "MultiScaleSubbandCQTDiscriminator"]


class CQTDiscriminator(nn.Module):
    """One CQT scale: ``[B, 1, T] -> (logits [B, N], 5 feature maps [B, C, frames, bins'])``.

    Args:
        sample_rate: rate of the input audio (the CQT runs at twice this rate).
        hop_length: CQT hop at the doubled rate.
        n_octaves, bins_per_octave: CQT size; each octave is one sub-band with its own input conv.
        filters, max_filters, filters_scale: channel growth ``min(filters * filters_scale**i, max_filters)``.
        dilations: time dilations of the strided convs.
        normalize_volume: remove DC and peak-normalise to 0.8 first (BigVGAN's ``cqtd_normalize_volume``).
    """

    def __init__(self, sample_rate: int = 22050, hop_length: int = 512, n_octaves: int = 9,
                 bins_per_octave: int = 24, filters: int = 32, max_filters: int = 1024, filters_scale: int = 1,
                 dilations: Sequence[int] = (1, 2, 4), normalize_volume: bool = False, lrelu_slope: float = 0.1):
        super().__init__()
        from nnAudio.features.cqt import CQT2010v2  # imported here: only this module needs nnAudio
        from torchaudio.transforms import Resample

        if sample_rate <= 0 or hop_length <= 0 or n_octaves <= 0 or bins_per_octave <= 0:
            raise ValueError(f"CQTDiscriminator settings must be positive, got sample_rate={sample_rate}, "
                             f"hop_length={hop_length}, n_octaves={n_octaves}, bins_per_octave={bins_per_octave}")
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.n_octaves = int(n_octaves)
        self.bins_per_octave = int(bins_per_octave)
        self.normalize_volume = normalize_volume
        self.lrelu_slope = lrelu_slope
        kernel_size, stride = (3, 9), (1, 2)

        self.cqt_transform = CQT2010v2(
            sr=self.sample_rate * 2, hop_length=self.hop_length, n_bins=self.bins_per_octave * self.n_octaves,
            bins_per_octave=self.bins_per_octave, output_format="Complex", pad_mode="constant", verbose=False,
        )
        self.conv_pres = nn.ModuleList(
            nn.Conv2d(2, 2, kernel_size, padding=get_2d_padding(kernel_size)) for _ in range(self.n_octaves)
        )
        self.convs, self.conv_post = encodec_convs(filters, max_filters, filters_scale, kernel_size, stride,
                                                   dilations)
        self.resample = Resample(orig_freq=self.sample_rate, new_freq=self.sample_rate * 2)

    def _sub_band_convs(self, z: torch.Tensor) -> torch.Tensor:
        """Per-octave input convs as one grouped conv: ``[B, 2, T, O*bpo] -> [B, 2, T, O*bpo]``.

        Same result as running ``conv_pres[i]`` on each octave's slice (the zero padding along bins stays
        inside each slice) but one kernel call instead of ``n_octaves``.
        """
        b, c, t, _ = z.shape
        o, bpo = self.n_octaves, self.bins_per_octave
        x = z.reshape(b, c, t, o, bpo).permute(0, 3, 1, 2, 4).reshape(b, o * c, t, bpo)
        weight = torch.cat([conv.weight for conv in self.conv_pres], dim=0)
        bias = torch.cat([conv.bias for conv in self.conv_pres], dim=0)
        x = F.conv2d(x, weight, bias, padding=self.conv_pres[0].padding, groups=o)
        return x.reshape(b, o, c, t, bpo).permute(0, 2, 3, 1, 4).reshape(b, c, t, o * bpo)

    def forward(self, wav: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        if self.normalize_volume:
            wav = wav - wav.mean(dim=-1, keepdim=True)
            wav = 0.8 * wav / (wav.abs().amax(dim=-1, keepdim=True) + 1e-9)
        z = self.cqt_transform(self.resample(wav))  # [B, bins, frames, 2]
        z = z.permute(0, 3, 2, 1)  # [B, 2 (real, imag), frames, bins]
        return run_convs(self._sub_band_convs(z), self.convs, self.conv_post, self.lrelu_slope, post_in_fmap=False)


class MultiScaleSubbandCQTDiscriminator(MultiDiscriminator):
    """``forward(wav [B, 1, T]) -> (logits: 3 x [B, N_i], feature_maps: 3 lists of 5)``.

    Args:
        sample_rate: input audio rate.
        hop_lengths, n_octaves, bins_per_octaves: one entry per scale (512/256/256, 9, 24/36/48).
        **kwargs: passed to :class:`CQTDiscriminator` (filters, max_filters, dilations, ...).
    """

    min_length = 2

    def __init__(self, sample_rate: int = 22050, hop_lengths: Sequence[int] = (512, 256, 256),
                 n_octaves: Sequence[int] = (9, 9, 9), bins_per_octaves: Sequence[int] = (24, 36, 48), **kwargs):
        super().__init__()
        if not (len(hop_lengths) == len(n_octaves) == len(bins_per_octaves)) or not hop_lengths:
            raise ValueError(f"hop_lengths, n_octaves, bins_per_octaves must be non-empty and equally long, got "
                             f"{list(hop_lengths)}, {list(n_octaves)}, {list(bins_per_octaves)}")
        self.sample_rate = int(sample_rate)
        self.discriminators = nn.ModuleList(
            CQTDiscriminator(sample_rate, h, o, b, **kwargs)
            for h, o, b in zip(hop_lengths, n_octaves, bins_per_octaves)
        )
