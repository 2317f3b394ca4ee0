"""Streaming versions of the standard pieces a generator family is built from: plain ``nn.Sequential`` stacks
(pads, convs, transposed convs, leaky ReLU, tanh, MelGAN residual layers), the input normalisation, and the
residual blocks of :mod:`vocoder.nn.blocks` (HiFi-GAN's ResBlock1/2, BigVGAN's AMPBlock1/2)."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch.nn as nn

from ..blocks import LRELU_SLOPE, AMPBlock1, AMPBlock2, MelGANResBlock, ResBlock1, ResBlock2
from .activation import StreamActivation1d
from .base import StreamIdentity, StreamLayer, StreamPointwise, StreamSequential, StreamStandardize, StreamSum
from .conv import StreamConv1d, StreamConvTranspose1d

__all__ = ["stream_sequence", "stream_input_norm", "stream_resblock", "stream_amp_block"]


def stream_sequence(modules) -> List[StreamLayer]:
    """An ``nn.Sequential`` of pads, convs, transposed convs, leaky ReLUs, tanh and MelGAN residual layers."""
    out: List[StreamLayer] = []
    pad: Optional[Tuple[int, int, str]] = None
    for m in modules:
        if pad is not None and not isinstance(m, nn.Conv1d):
            raise ValueError(f"a padding layer must be followed by a Conv1d to stream, got {type(m).__name__}")
        if isinstance(m, (nn.ReflectionPad1d, nn.ReplicationPad1d, nn.ZeroPad1d, nn.ConstantPad1d)):
            if isinstance(m, nn.ConstantPad1d) and float(m.value) != 0.0:
                raise ValueError(f"only zero constant padding streams, got value {m.value}")
            mode = "reflect" if isinstance(m, nn.ReflectionPad1d) else (
                "replicate" if isinstance(m, nn.ReplicationPad1d) else "zeros")
            pad = (int(m.padding[0]), int(m.padding[1]), mode)
        elif isinstance(m, nn.Conv1d):
            if pad is not None:
                if int(m.padding[0]) != 0:
                    raise ValueError("a Conv1d after a padding layer must have padding 0 to stream")
                out.append(StreamConv1d.from_conv(m, pad[0], pad[1], pad[2]))
                pad = None
            else:
                out.append(StreamConv1d.from_conv(m))
        elif isinstance(m, nn.ConvTranspose1d):
            out.append(StreamConvTranspose1d.from_conv(m))
        elif isinstance(m, nn.LeakyReLU):
            out.append(StreamPointwise("leaky_relu", m.negative_slope))
        elif isinstance(m, nn.Tanh):
            out.append(StreamPointwise("tanh"))
        elif isinstance(m, nn.Sequential):
            out.extend(stream_sequence(m))
        elif isinstance(m, MelGANResBlock):
            ch = m.shortcut.out_channels
            out.append(StreamSum([StreamSequential(stream_sequence([m.shortcut])), StreamSequential(stream_sequence(m.block))],
                                 ch))  # shortcut(x) + block(x)
        else:
            raise ValueError(f"no streaming version of {type(m).__name__}")
    if pad is not None:
        raise ValueError("a trailing padding layer cannot stream")
    return out


def stream_input_norm(gen: nn.Module) -> List[StreamLayer]:
    """The generator's input normalisation (ParallelWaveGAN weights), if it has one, as a stateless layer."""
    norm = getattr(gen, "input_norm", None)
    return [] if norm is None else [StreamStandardize(norm)]


def stream_resblock(block: nn.Module) -> StreamLayer:
    ch = block.convs1[0].in_channels if isinstance(block, ResBlock1) else block.convs[0].in_channels
    layers: List[StreamLayer] = []
    if isinstance(block, ResBlock1):
        for c1, c2 in zip(block.convs1, block.convs2):
            f = StreamSequential([StreamPointwise("leaky_relu", LRELU_SLOPE), StreamConv1d.from_conv(c1),
                                  StreamPointwise("leaky_relu", LRELU_SLOPE), StreamConv1d.from_conv(c2)])
            layers.append(StreamSum([f, StreamIdentity()], ch))  # x = xt + x
    elif isinstance(block, ResBlock2):
        for c in block.convs:
            f = StreamSequential([StreamPointwise("leaky_relu", LRELU_SLOPE), StreamConv1d.from_conv(c)])
            layers.append(StreamSum([f, StreamIdentity()], ch))
    else:
        raise ValueError(f"expected a HiFi-GAN ResBlock1/ResBlock2, got {type(block).__name__}")
    return StreamSequential(layers)


def stream_amp_block(block: nn.Module) -> StreamLayer:
    layers: List[StreamLayer] = []
    if isinstance(block, AMPBlock1):
        ch = block.convs1[0].in_channels
        acts1, acts2 = block.activations[::2], block.activations[1::2]
        for c1, c2, a1, a2 in zip(block.convs1, block.convs2, acts1, acts2):
            f = StreamSequential([StreamActivation1d(a1), StreamConv1d.from_conv(c1),
                                  StreamActivation1d(a2), StreamConv1d.from_conv(c2)])
            layers.append(StreamSum([f, StreamIdentity()], ch))
    elif isinstance(block, AMPBlock2):
        ch = block.convs[0].in_channels
        for c, a in zip(block.convs, block.activations):
            f = StreamSequential([StreamActivation1d(a), StreamConv1d.from_conv(c)])
            layers.append(StreamSum([f, StreamIdentity()], ch))
    else:
        raise ValueError(f"expected a BigVGAN AMPBlock1/AMPBlock2, got {type(block).__name__}")
    return StreamSequential(layers)
