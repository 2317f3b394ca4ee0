"""Residual blocks of HiFi-GAN (ResBlock1/2, leaky ReLU), BigVGAN (AMPBlock1/2, anti-aliased Snake), MelGAN.

All convolutions are weight-normed with :mod:`vocoder.nn.weight_normalization`, whose state-dict keys are the official
ones: ``convs1.{i}.weight_g``, ``convs1.{i}.weight_v``, ``convs1.{i}.bias`` (``weight`` after
``remove_weight_norm()``); AMP blocks add ``activations.{i}.act.alpha`` (``.beta`` for SnakeBeta),
``activations.{i}.upsample.filter`` and ``activations.{i}.downsample.lowpass.filter``. Every block maps
``[B, C, T] -> [B, C, T]``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .activations import Snake, SnakeBeta
from .fast_conv import FastConv1d
from .filters import Activation1d
from .weight_normalization import remove_weight_norm, weight_norm

__all__ = ["get_padding", "init_weights", "make_activation", "ResBlock1", "ResBlock2", "AMPBlock1", "AMPBlock2",
           "MelGANResBlock", "LRELU_SLOPE"]

LRELU_SLOPE = 0.1


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """'Same' padding of a stride-1 conv with an odd ``kernel_size``."""
    return (kernel_size * dilation - dilation) // 2


def init_weights(module: nn.Module, mean: float = 0.0, std: float = 0.01) -> None:
    """Draw conv weights from N(mean, std) (the direction ``weight_v`` when weight-normed).

    Not called by the blocks or generators here, on purpose: the official HiFi-GAN / BigVGAN code calls its
    ``init_weights`` *after* ``weight_norm``, where ``m.weight`` is a derived tensor that the next forward
    recomputes from ``weight_g``/``weight_v`` -- so the official draw never reaches the parameters and the
    effective initialisation is PyTorch's default conv init, which is what these modules keep.
    """
    if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d, nn.Conv2d)):
        w = module._parameters.get("weight_v", module._parameters.get("weight"))
        with torch.no_grad():
            w.normal_(mean, std)


def _wn_conv(channels: int, kernel_size: int, dilation: int) -> nn.Conv1d:
    # FastConv1d is an nn.Conv1d (same keys, same training forward) with an FFT path for CPU inference.
    conv = FastConv1d(channels, channels, kernel_size, 1, dilation=dilation, padding=get_padding(kernel_size, dilation))
    return weight_norm(conv)


def make_activation(kind: str, channels: int, logscale: bool) -> nn.Module:
    """``"snake"`` or ``"snakebeta"`` with ``channels`` parameters per set."""
    if kind == "snake":
        return Snake(channels, alpha_logscale=logscale)
    if kind == "snakebeta":
        return SnakeBeta(channels, alpha_logscale=logscale)
    raise ValueError(f"activation must be 'snake' or 'snakebeta', got {kind!r}")


class _WNBlock(nn.Module):
    def remove_weight_norm(self) -> None:
        """Fold every conv's ``g * v / ||v||`` into a plain weight (idempotent)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                remove_weight_norm(m)


class ResBlock1(_WNBlock):
    """HiFi-GAN V1/V2 block: per dilation d, ``x += conv1(lrelu(conv_d(lrelu(x))))`` (``convs1``, ``convs2``)."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3, 5)):
        super().__init__()
        self.convs1 = nn.ModuleList([_wn_conv(channels, kernel_size, d) for d in dilation])
        self.convs2 = nn.ModuleList([_wn_conv(channels, kernel_size, 1) for _ in dilation])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = F.leaky_relu(x, LRELU_SLOPE)
            xt = c1(xt)
            xt = F.leaky_relu(xt, LRELU_SLOPE)
            xt = c2(xt)
            x = xt + x
        return x


class ResBlock2(_WNBlock):
    """HiFi-GAN V3 block: per dilation d, ``x += conv_d(lrelu(x))`` (``convs``)."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3)):
        super().__init__()
        self.convs = nn.ModuleList([_wn_conv(channels, kernel_size, d) for d in dilation])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            xt = F.leaky_relu(x, LRELU_SLOPE)
            xt = c(xt)
            x = xt + x
        return x


class AMPBlock1(_WNBlock):
    """BigVGAN AMP block: per dilation d, ``x += conv1(act(conv_d(act(x))))`` with anti-aliased Snake(Beta).

    ``activations`` interleaves the two activations of each pair: ``[a1_0, a2_0, a1_1, a2_1, ...]``.
    """

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3, 5),
                 activation: str = "snakebeta", snake_logscale: bool = True):
        super().__init__()
        self.convs1 = nn.ModuleList([_wn_conv(channels, kernel_size, d) for d in dilation])
        self.convs2 = nn.ModuleList([_wn_conv(channels, kernel_size, 1) for _ in dilation])
        self.num_layers = len(self.convs1) + len(self.convs2)
        self.activations = nn.ModuleList(
            [Activation1d(make_activation(activation, channels, snake_logscale)) for _ in range(self.num_layers)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acts1, acts2 = self.activations[::2], self.activations[1::2]
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, acts1, acts2):
            xt = a1(x)
            xt = c1(xt)
            xt = a2(xt)
            xt = c2(xt)
            x = xt + x
        return x


class AMPBlock2(_WNBlock):
    """BigVGAN AMP block without the dilation-1 convs: per dilation d, ``x += conv_d(act(x))``."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3, 5),
                 activation: str = "snakebeta", snake_logscale: bool = True):
        super().__init__()
        self.convs = nn.ModuleList([_wn_conv(channels, kernel_size, d) for d in dilation])
        self.num_layers = len(self.convs)
        self.activations = nn.ModuleList(
            [Activation1d(make_activation(activation, channels, snake_logscale)) for _ in range(self.num_layers)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c, a in zip(self.convs, self.activations):
            xt = a(x)
            xt = c(xt)
            x = xt + x
        return x


class MelGANResBlock(_WNBlock):
    """MelGAN residual stack layer: ``x -> shortcut(x) + conv1x1(lrelu(conv3_d(reflect_pad(lrelu(x)))))``.

    Layout as the official ``descriptinc/melgan-neurips`` ``ResnetBlock`` (``block.{2,4}``, ``shortcut``).
    """

    def __init__(self, channels: int, dilation: int = 1, slope: float = 0.2):
        super().__init__()
        self.block = nn.Sequential(
            nn.LeakyReLU(slope),
            nn.ReflectionPad1d(dilation),
            weight_norm(nn.Conv1d(channels, channels, 3, dilation=dilation)),
            nn.LeakyReLU(slope),
            weight_norm(nn.Conv1d(channels, channels, 1)),
        )
        self.shortcut = weight_norm(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)
