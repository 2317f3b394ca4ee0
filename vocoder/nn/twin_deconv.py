"""FA-GAN's anti-aliased twin deconvolution (Shen, Ren & Sun, Interspeech 2024), our reading of it.

A transposed convolution of stride ``u`` is zero-stuffing followed by a filter, so it leaves two kinds of images of
the input spectrum at ``k * fs_in +- f`` (``k = 1 .. u-1``):

- the uneven *overlap* of the kernel's shifted copies (``kernel_size % u != 0``, and always at the edges) makes a
  gain that repeats every ``u`` output samples: a modulation that copies every component to ``k * fs_in +- f``
  (the checkerboard of a constant input);
- the learned kernel is no low-pass, so the zero-stuffing images pass through it.

The module has two transposed-convolution branches with the same geometry: the main one (learned) and its *twin*,
the same transposed convolution with an all-ones kernel run on an all-ones input, which is exactly the overlap
count of every output sample. Dividing the main branch by its twin (times the mean overlap ``kernel_size / u``,
so the gain of the learned kernel is unchanged) cancels the modulation images; a fixed Kaiser-windowed sinc
low-pass at the input's Nyquist (``0.5 / u`` cycles per output sample) then removes the zero-stuffing images::

    y = lowpass( deconv(x; W) * (k / u) / deconv(1; 1) )

The paper's own text was not available to us; where it is silent or we could not read it we chose: the twin has
no parameters (its output depends only on the length), the low-pass is BigVGAN's Kaiser sinc with an odd length
``6 * u + 1`` (no half-sample delay) and replicate padding, and the learned kernel keeps the initialisation the
HiFi-GAN code FA-GAN builds on ends up with: PyTorch's default conv init under weight norm (the official
``init_weights`` draw never reaches ``weight_v``, see :func:`vocoder.nn.blocks.init_weights`). The learned layer is
``self.conv`` (state-dict keys ``conv.weight_g``, ``conv.weight_v``, ``conv.bias``); the low-pass filter is a buffer
(``lowpass.filter``).
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .filters import LowPassFilter1d
from .weight_normalization import remove_weight_norm, weight_norm

__all__ = ["TwinDeconv1d", "overlap_count"]


def overlap_count(length: int, kernel_size: int, stride: int, padding: int, device=None,
                  dtype=torch.float32) -> torch.Tensor:
    """The twin branch: how many kernel taps land on each output sample of a transposed conv of an input of
    ``length`` samples, ``[1, 1, (length - 1) * stride - 2 * padding + kernel_size]``."""
    ones = torch.ones(1, 1, length, device=device, dtype=dtype)
    return F.conv_transpose1d(ones, torch.ones(1, 1, kernel_size, device=device, dtype=dtype), stride=stride,
                              padding=padding)


class TwinDeconv1d(nn.Module):
    """``[B, C_in, T] -> [B, C_out, T * stride]`` (with ``padding = (kernel_size - stride) // 2`` and an even
    ``kernel_size - stride``, as HiFi-GAN's upsamplers): overlap-compensated transposed conv, then a low-pass.

    Args:
        in_channels, out_channels, kernel_size, stride, padding: of the learned transposed convolution.
        lowpass_kernel_size: taps of the low-pass (default ``6 * stride + 1``; odd keeps it centred).
        lowpass: ``False`` drops the low-pass (overlap compensation only).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int = 0,
                 lowpass_kernel_size: int | None = None, lowpass: bool = True):
        super().__init__()
        if stride < 1 or kernel_size < stride:
            raise ValueError(f"TwinDeconv1d needs stride >= 1 and kernel_size >= stride, got kernel_size={kernel_size}, "
                             f"stride={stride}")
        if padding < 0 or 2 * padding >= kernel_size:
            raise ValueError(f"TwinDeconv1d padding must be in [0, kernel_size / 2), got {padding} for "
                             f"kernel_size={kernel_size}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        self.conv = weight_norm(nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride, padding=padding))
        k = lowpass_kernel_size if lowpass_kernel_size is not None else 6 * stride + 1
        # stride 1 has no images: the low-pass would only blur
        self.lowpass = (LowPassFilter1d(cutoff=0.5 / stride, half_width=0.6 / stride, kernel_size=k)
                        if lowpass and stride > 1 else None)
        self._twin_cache: Dict[Tuple[int, torch.device, torch.dtype], torch.Tensor] = {}

    def twin(self, length: int, device, dtype) -> torch.Tensor:
        """``(kernel_size / stride) / overlap_count``: the twin's correction for an input of ``length`` samples."""
        key = (length, device, dtype)
        if key not in self._twin_cache:
            if len(self._twin_cache) > 16:  # training sees one or two lengths; validation a few more
                self._twin_cache.clear()
            count = overlap_count(length, self.kernel_size, self.stride, self.padding, device, torch.float32)
            self._twin_cache[key] = ((self.kernel_size / self.stride) / count).to(dtype)
        return self._twin_cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"TwinDeconv1d expected [B, {self.in_channels}, T], got {tuple(x.shape)}")
        y = self.conv(x) * self.twin(x.shape[-1], x.device, x.dtype)
        return self.lowpass(y) if self.lowpass is not None else y

    def remove_weight_norm(self) -> None:
        remove_weight_norm(self.conv)
