"""Parallel WaveGAN's discriminators (Yamamoto et al. 2020): one stack of dilated 1-D convs judging every sample,
and the WaveNet-style residual variant.

Layouts and state-dict keys equal the ``parallel_wavegan`` package's ``ParallelWaveGANDiscriminator``
(``conv_layers.{2i}`` convs with a leaky ReLU after each, the last conv at ``conv_layers.{2(L-1)}``) and
``ResidualParallelWaveGANDiscriminator`` (``first_conv.0``, ``conv_layers.{i}.*`` gated residual blocks without
conditioning, ``last_conv_layers.{1,3}``), every conv weight-normed, so its discriminator weights load with a plain
``load_state_dict``. Each is one sub-discriminator: ``forward(wav [B, 1, T]) -> ([logits [B, T]], [feature
maps])``, a logit per sample.
"""
from __future__ import annotations

import math
from typing import List, Tuple

import torch
from torch import nn

from ..nn.wavenet import WaveNetResidualBlock
from ._layers import check_wav, weight_norm

__all__ = ["ParallelWaveGANDiscriminator", "ResidualParallelWaveGANDiscriminator"]


def _weight_norm_all(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv1d):
            weight_norm(m)


class ParallelWaveGANDiscriminator(nn.Module):
    """``layers - 1`` dilated convs (``kernel_size``, ``conv_channels``; dilation 1, then ``i`` for layer ``i``, or
    ``dilation_factor ** i`` when ``dilation_factor > 1``), each followed by a leaky ReLU (feature maps), then a
    conv to one channel: ``wav [B, 1, T] -> ([logits [B, T]], [[layers - 1 maps [B, conv_channels, T]]])``.
    Defaults are the paper's (10 layers, 64 channels, kernel 3, slope 0.2)."""

    def __init__(self, layers: int = 10, conv_channels: int = 64, kernel_size: int = 3, dilation_factor: int = 1,
                 lrelu_slope: float = 0.2, bias: bool = True):
        super().__init__()
        if kernel_size % 2 == 0 or layers < 2 or conv_channels < 1 or dilation_factor < 1:
            raise ValueError(f"ParallelWaveGANDiscriminator needs an odd kernel_size, layers >= 2, conv_channels >= 1 "
                             f"and dilation_factor >= 1, got {kernel_size}, {layers}, {conv_channels}, "
                             f"{dilation_factor}")
        self.conv_layers = nn.ModuleList()
        for i in range(layers - 1):
            dilation = 1 if i == 0 else (i if dilation_factor == 1 else dilation_factor ** i)
            self.conv_layers.append(nn.Conv1d(1 if i == 0 else conv_channels, conv_channels, kernel_size,
                                              padding=(kernel_size - 1) // 2 * dilation, dilation=dilation, bias=bias))
            self.conv_layers.append(nn.LeakyReLU(lrelu_slope))
        self.conv_layers.append(nn.Conv1d(conv_channels, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=bias))
        _weight_norm_all(self)

    def forward(self, wav: torch.Tensor) -> Tuple[List[torch.Tensor], List[List[torch.Tensor]]]:
        check_wav(wav, type(self).__name__)
        fmaps: List[torch.Tensor] = []
        x = wav
        for f in self.conv_layers:
            x = f(x)
            if isinstance(f, nn.LeakyReLU):
                fmaps.append(x)
        return [x.flatten(1)], [fmaps]


class ResidualParallelWaveGANDiscriminator(nn.Module):
    """The WaveNet variant: 1x1 conv + leaky ReLU, ``layers`` gated residual blocks (dilations ``2 ** (i %
    (layers / stacks))``, no conditioning), the skip sum ``* sqrt(1 / layers)``, leaky ReLU, 1x1 conv, leaky ReLU,
    1x1 conv to one channel. Feature maps: the first conv's output and each block's residual output."""

    def __init__(self, layers: int = 30, stacks: int = 3, residual_channels: int = 64, gate_channels: int = 128,
                 skip_channels: int = 64, kernel_size: int = 3, lrelu_slope: float = 0.2, bias: bool = True,
                 dropout: float = 0.0):
        super().__init__()
        if layers < 1 or stacks < 1 or layers % stacks:
            raise ValueError(f"layers ({layers}) must be a positive multiple of stacks ({stacks})")
        per_stack = layers // stacks
        self.first_conv = nn.Sequential(nn.Conv1d(1, residual_channels, 1), nn.LeakyReLU(lrelu_slope))
        self.conv_layers = nn.ModuleList(
            WaveNetResidualBlock(kernel_size, residual_channels, gate_channels, skip_channels, -1,
                                 2 ** (i % per_stack), bias, dropout) for i in range(layers))
        self.last_conv_layers = nn.ModuleList([nn.LeakyReLU(lrelu_slope), nn.Conv1d(skip_channels, skip_channels, 1),
                                               nn.LeakyReLU(lrelu_slope), nn.Conv1d(skip_channels, 1, 1)])
        _weight_norm_all(self)

    def forward(self, wav: torch.Tensor) -> Tuple[List[torch.Tensor], List[List[torch.Tensor]]]:
        check_wav(wav, type(self).__name__)
        x = self.first_conv(wav)
        fmaps: List[torch.Tensor] = [x]
        skips = 0
        for f in self.conv_layers:
            x, h = f(x, None)
            skips = skips + h
            fmaps.append(x)
        x = skips * math.sqrt(1.0 / len(self.conv_layers))
        for f in self.last_conv_layers:
            x = f(x)
        return [x.flatten(1)], [fmaps]
