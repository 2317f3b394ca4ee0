"""Anti-aliased resampling around a nonlinearity (BigVGAN's alias-free activation), plain PyTorch reference.

``Activation1d`` = 2x upsample (zero-stuffing + Kaiser-windowed sinc low-pass) -> activation -> low-pass +
2x downsample, so the harmonics a periodic activation creates above the original Nyquist are filtered
instead of folding back. This file is the numerical truth: buffer names (``upsample.filter``,
``downsample.lowpass.filter``), padding and operation order follow BigVGAN's ``alias_free_activation/torch``
so official state dicts load and outputs agree to float32 rounding. Fused kernels replace
``Activation1d.forward`` through ``vocoder.kernels.dispatch.anti_aliased_activation`` and are tested against
``Activation1d.reference_forward``.
"""
from __future__ import annotations

import logging
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..kernels.dispatch import anti_aliased_activation

__all__ = ["kaiser_sinc_filter1d", "LowPassFilter1d", "UpSample1d", "DownSample1d", "Activation1d"]

log = logging.getLogger(__name__)


def kaiser_sinc_filter1d(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """Windowed-sinc low-pass, ``[1, 1, kernel_size]``, unit DC gain.

    ``cutoff`` and ``half_width`` are in cycles per sample (0.5 = Nyquist). The Kaiser ``beta`` comes from
    Kaiser's empirical attenuation formula for a transition band of ``2 * half_width``. An even
    ``kernel_size`` samples the sinc at half-integer times (the filter is centred between two taps).
    """
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    even = kernel_size % 2 == 0
    half_size = kernel_size // 2
    delta_f = 4 * half_width
    attenuation = 2.285 * (half_size - 1) * math.pi * delta_f + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, beta=beta, periodic=False)
    if even:
        time = torch.arange(-half_size, half_size) + 0.5
    else:
        time = torch.arange(kernel_size) - half_size
    if cutoff == 0:
        # A zero cutoff passes nothing (no normalisation possible).
        return torch.zeros_like(time, dtype=torch.float32).view(1, 1, kernel_size)
    filt = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    filt /= filt.sum()  # exact unit DC gain, else a constant input leaks a small bias
    return filt.view(1, 1, kernel_size)


class LowPassFilter1d(nn.Module):
    """Depthwise low-pass on ``[B, C, T]`` with optional stride; ``replicate`` padding keeps length ``T/stride``."""

    def __init__(self, cutoff: float = 0.5, half_width: float = 0.6, stride: int = 1, padding: bool = True,
                 padding_mode: str = "replicate", kernel_size: int = 12):
        super().__init__()
        if cutoff < 0.0:
            raise ValueError(f"cutoff must be >= 0, got {cutoff}")
        if cutoff > 0.5:
            raise ValueError(f"cutoff must be <= 0.5 (Nyquist), got {cutoff}")
        self.kernel_size = kernel_size
        self.even = kernel_size % 2 == 0
        self.pad_left = kernel_size // 2 - int(self.even)
        self.pad_right = kernel_size // 2
        self.stride = stride
        self.padding = padding
        self.padding_mode = padding_mode
        self.register_buffer("filter", kaiser_sinc_filter1d(cutoff, half_width, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T] -> [B, C, ceil(T / stride)]`` (with padding)."""
        channels = x.shape[1]
        if self.padding:
            x = F.pad(x, (self.pad_left, self.pad_right), mode=self.padding_mode)
        return F.conv1d(x, self.filter.expand(channels, -1, -1), stride=self.stride, groups=channels)


class UpSample1d(nn.Module):
    """``[B, C, T] -> [B, C, ratio*T]``: zero-stuffing transposed conv with the low-pass, gain ``ratio``."""

    def __init__(self, ratio: int = 2, kernel_size: Optional[int] = None):
        super().__init__()
        self.ratio = ratio
        self.kernel_size = int(6 * ratio // 2) * 2 if kernel_size is None else kernel_size
        self.stride = ratio
        # Replicate-pad `pad` input samples each side, then trim what the transposed conv adds beyond ratio*T.
        self.pad = self.kernel_size // ratio - 1
        self.pad_left = self.pad * self.stride + (self.kernel_size - self.stride) // 2
        self.pad_right = self.pad * self.stride + (self.kernel_size - self.stride + 1) // 2
        self.register_buffer(
            "filter", kaiser_sinc_filter1d(cutoff=0.5 / ratio, half_width=0.6 / ratio, kernel_size=self.kernel_size)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        x = self.ratio * F.conv_transpose1d(x, self.filter.expand(channels, -1, -1), stride=self.stride,
                                            groups=channels)
        return x[..., self.pad_left:-self.pad_right]


class DownSample1d(nn.Module):
    """``[B, C, T] -> [B, C, T/ratio]``: low-pass at ``0.5/ratio`` then keep every ``ratio``-th sample."""

    def __init__(self, ratio: int = 2, kernel_size: Optional[int] = None):
        super().__init__()
        self.ratio = ratio
        self.kernel_size = int(6 * ratio // 2) * 2 if kernel_size is None else kernel_size
        self.lowpass = LowPassFilter1d(cutoff=0.5 / ratio, half_width=0.6 / ratio, stride=ratio,
                                       kernel_size=self.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class Activation1d(nn.Module):
    """Anti-aliased activation on ``[B, C, T] -> [B, C, T * up_ratio / down_ratio]``.

    Attributes read by fused kernels: ``act`` (Snake / SnakeBeta), ``up_ratio``, ``down_ratio``,
    ``upsample`` (``filter [1,1,K]``, ``pad``, ``pad_left``, ``pad_right``, ``ratio``) and
    ``downsample.lowpass`` (``filter``, ``pad_left``, ``pad_right``, ``stride``).
    """

    def __init__(self, activation: nn.Module, up_ratio: int = 2, down_ratio: int = 2, up_kernel_size: int = 12,
                 down_kernel_size: int = 12):
        super().__init__()
        self.up_ratio = up_ratio
        self.down_ratio = down_ratio
        self.act = activation
        self.upsample = UpSample1d(up_ratio, up_kernel_size)
        self.downsample = DownSample1d(down_ratio, down_kernel_size)

    def reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The plain PyTorch path (the truth every fused kernel is compared with)."""
        x = self.upsample(x)
        x = self.act(x)
        return self.downsample(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = anti_aliased_activation(x, self)  # None: no fused kernel fits (or VOCODER_KERNELS=0)
        return self.reference_forward(x) if out is None else out
