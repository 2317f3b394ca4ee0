"""WaveNet pieces of Parallel WaveGAN (Yamamoto et al. 2020): the gated residual block with local conditioning and
the conv-in + upsampling network that brings the mel to the sample rate.

Module and parameter names are those of the ``parallel_wavegan`` package (``layers/residual_block.py``
``WaveNetResidualBlock``, ``layers/upsample.py`` ``ConvInUpsampleNetwork``), so its state dicts load as they are;
the generator and the residual discriminator are built from these.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["WaveNetResidualBlock", "Stretch", "ConvInUpsampleNetwork", "UpsampleNetwork"]


class WaveNetResidualBlock(nn.Module):
    """``(x [B, residual, T], c [B, aux, T] or None) -> (x' [B, residual, T], skip [B, skip, T])``.

    Non-causal dilated conv (odd ``kernel_size``, ``padding = (k - 1) // 2 * dilation``) to ``gate`` channels,
    plus a 1x1 conv of the conditioning ``c`` (no bias); ``tanh(first half) * sigmoid(second half)``; 1x1 convs to
    the skip output and to the residual, ``x' = (out + x) * sqrt(0.5)``. ``aux_channels <= 0``: no conditioning
    (the residual discriminator).
    """

    def __init__(self, kernel_size: int = 3, residual_channels: int = 64, gate_channels: int = 128,
                 skip_channels: int = 64, aux_channels: int = 80, dilation: int = 1, bias: bool = True,
                 dropout: float = 0.0):
        super().__init__()
        if kernel_size % 2 == 0 or gate_channels % 2:
            raise ValueError(f"WaveNetResidualBlock needs an odd kernel_size and an even gate_channels, got "
                             f"{kernel_size}, {gate_channels}")
        self.dropout = float(dropout)
        self.dilation = int(dilation)
        self.conv = nn.Conv1d(residual_channels, gate_channels, kernel_size, padding=(kernel_size - 1) // 2 * dilation,
                              dilation=dilation, bias=bias)
        self.conv1x1_aux = nn.Conv1d(aux_channels, gate_channels, 1, bias=False) if aux_channels > 0 else None
        half = gate_channels // 2
        self.conv1x1_out = nn.Conv1d(half, residual_channels, 1, bias=bias)
        self.conv1x1_skip = nn.Conv1d(half, skip_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        residual = x
        if self.dropout > 0:
            x = F.dropout(x, p=self.dropout, training=self.training)
        x = self.conv(x)
        xa, xb = x.split(x.shape[1] // 2, dim=1)
        if c is not None:
            if self.conv1x1_aux is None:
                raise ValueError("this WaveNet block has no conditioning input (aux_channels <= 0)")
            c = self.conv1x1_aux(c)
            ca, cb = c.split(c.shape[1] // 2, dim=1)
            xa, xb = xa + ca, xb + cb
        x = torch.tanh(xa) * torch.sigmoid(xb)
        s = self.conv1x1_skip(x)
        x = (self.conv1x1_out(x) + residual) * math.sqrt(0.5)
        return x, s


class Stretch(nn.Module):
    """Nearest-neighbour upsampling in time by an integer ``scale``: ``[B, 1, C, T] -> [B, 1, C, T * scale]`` (what
    ``F.interpolate(mode="nearest")`` gives for an integer factor; no parameters)."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = int(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(self.scale, dim=-1)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class UpsampleNetwork(nn.Module):
    """``c [B, C, T] -> [B, C, T * prod(scales)]``: per scale ``s``, nearest upsampling by ``s`` then a
    ``(1, 2s + 1)`` Conv2d (one kernel shared by every channel, zero padding ``s``, no bias). ``up_layers`` holds
    them in that order (the package's ``up_layers.{2i}`` / ``.{2i + 1}``)."""

    def __init__(self, upsample_scales: Sequence[int]):
        super().__init__()
        self.up_layers = nn.ModuleList()
        for s in upsample_scales:
            self.up_layers.append(Stretch(s))
            self.up_layers.append(nn.Conv2d(1, 1, kernel_size=(1, 2 * s + 1), padding=(0, s), bias=False))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        c = c.unsqueeze(1)
        for f in self.up_layers:
            c = f(c)
        return c.squeeze(1)


class ConvInUpsampleNetwork(nn.Module):
    """``c [B, aux, T + 2 * aux_context_window] -> [B, aux, T * prod(scales)]``: an unpadded conv over
    ``2 * aux_context_window + 1`` frames (no bias; the caller pads the mel by replication), then
    :class:`UpsampleNetwork`."""

    def __init__(self, upsample_scales: Sequence[int], aux_channels: int = 80, aux_context_window: int = 2):
        super().__init__()
        self.aux_context_window = int(aux_context_window)
        self.conv_in = nn.Conv1d(aux_channels, aux_channels, kernel_size=2 * aux_context_window + 1, bias=False)
        self.upsample = UpsampleNetwork(upsample_scales)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.conv_in(c))
