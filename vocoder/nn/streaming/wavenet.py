"""Streaming layers of Parallel WaveGAN's WaveNet (:mod:`vocoder.nn.wavenet`): the nearest upsampler, the noise
input, the gated residual block and the output stack.

Between the noise input and the output the signal is a *carry* ``[B, aux + residual + skip, t]``: the upsampled
conditioning ``c``, the residual stream ``x`` and the running skip sum, one row per sample. A residual block's
dilated conv needs ``dilation`` samples of lookahead; the block queues the carry until the conv's output for the
same samples is there, so every sample's ``c``, ``x`` and skip stay aligned.

The noise is :func:`vocoder.nn.counter_noise.counter_normal` of ``(seed, item, sample index)``: the state holds
one key per batch row and the sample counter, so a stream draws, for every chunking, the noise the offline decode
with that seed draws.
"""
from __future__ import annotations

import math
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..counter_noise import counter_normal
from ..weight_normalization import effective_weight
from .base import StateAllocator, StreamLayer
from .conv import StreamConv1d

__all__ = ["StreamRepeat", "StreamNoiseInput", "StreamWaveNetBlock", "StreamWaveNetOutput"]


def _weight(conv: nn.Module) -> torch.Tensor:
    return effective_weight(conv).detach().clone()


def _bias(conv: nn.Module) -> torch.Tensor:
    return conv.bias.detach().clone() if conv.bias is not None else torch.zeros(0)


class StreamRepeat(StreamLayer):
    """Nearest upsampling in time by ``scale`` (no state): ``[B, C, t] -> [B, C, t * scale]``."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = int(scale)

    def forward(self, x: torch.Tensor, states: List[torch.Tensor], final: bool) -> torch.Tensor:
        return x.repeat_interleave(self.scale, dim=2)

    def out_count(self, n: int) -> int:
        return n * self.scale

    def in_range(self, a: int, b: int) -> Tuple[int, int]:
        return a // self.scale, b // self.scale


class StreamNoiseInput(StreamLayer):
    """``c [B, aux, t] -> carry [c; first_conv(z); 0]`` with ``z`` the counter noise of the next ``t`` samples.

    State: ``items [B]`` (int64, one noise key per batch row: a row keeps its key when streams are batched
    together) and ``position [1]`` (int64, samples drawn so far, shared by the batch)."""

    def __init__(self, first_conv: nn.Conv1d, skip_channels: int, seed: int):
        super().__init__()
        self.register_buffer("weight", _weight(first_conv))
        self.register_buffer("bias", _bias(first_conv))
        self.has_bias = first_conv.bias is not None
        self.skip_channels = int(skip_channels)
        self.seed = int(seed)
        self.offset = 0

    def allocate(self, alloc: StateAllocator) -> None:
        self.offset = alloc.take(2)

    def fill_states(self, states: List[torch.Tensor], batch: int, ref: torch.Tensor) -> None:
        states[self.offset] = torch.arange(batch, dtype=torch.long, device=ref.device)
        states[self.offset + 1] = torch.zeros(1, dtype=torch.long)

    def forward(self, x: torch.Tensor, states: List[torch.Tensor], final: bool) -> torch.Tensor:
        position = states[self.offset + 1]
        n = x.shape[2]
        if n == 0:
            return x.new_zeros(x.shape[0], x.shape[1] + self.weight.shape[0] + self.skip_channels, 0)
        z = counter_normal(self.seed, states[self.offset], position, n).to(device=x.device, dtype=x.dtype)
        states[self.offset + 1] = position + n
        h = F.conv1d(z.unsqueeze(1), self.weight, self.bias if self.has_bias else None)
        skip = x.new_zeros(x.shape[0], self.skip_channels, n)
        return torch.cat([x, h, skip], dim=1)

    def extra_repr(self) -> str:
        return f"seed={self.seed}"


class StreamWaveNetBlock(StreamLayer):
    """One :class:`vocoder.nn.wavenet.WaveNetResidualBlock` on the carry: the dilated conv streams on ``x``; the
    carry waits in a queue (state ``[B, aux + residual + skip, lag]``) until the conv's outputs for its samples
    are out; then the gate, the skip (added to the running sum) and the residual, per sample."""

    def __init__(self, block: nn.Module, aux_channels: int):
        super().__init__()
        self.conv = StreamConv1d.from_conv(block.conv)
        self.aux = int(aux_channels)
        self.residual = int(block.conv.in_channels)
        self.skip = int(block.conv1x1_skip.out_channels)
        self.register_buffer("aux_weight", _weight(block.conv1x1_aux))
        self.register_buffer("out_weight", _weight(block.conv1x1_out))
        self.register_buffer("out_bias", _bias(block.conv1x1_out))
        self.register_buffer("skip_weight", _weight(block.conv1x1_skip))
        self.register_buffer("skip_bias", _bias(block.conv1x1_skip))
        self.has_bias = block.conv1x1_out.bias is not None
        self.offset = 0

    def allocate(self, alloc: StateAllocator) -> None:
        self.offset = alloc.take(1)
        self.conv.allocate(alloc)

    def fill_states(self, states: List[torch.Tensor], batch: int, ref: torch.Tensor) -> None:
        states[self.offset] = ref.new_zeros(batch, self.aux + self.residual + self.skip, 0)
        self.conv.fill_states(states, batch, ref)

    def forward(self, carry: torch.Tensor, states: List[torch.Tensor], final: bool) -> torch.Tensor:
        a, r = self.aux, self.aux + self.residual
        h = self.conv(carry[:, a:r], states, final)
        queue = states[self.offset]
        queue = torch.cat([queue, carry], dim=2) if queue.shape[2] > 0 else carry
        n = h.shape[2]
        states[self.offset] = queue[:, :, n:]
        if n == 0:
            return queue[:, :, :0]
        now = queue[:, :, :n]
        c, x, skips = now[:, :a], now[:, a:r], now[:, r:]
        ca, cb = F.conv1d(c, self.aux_weight).chunk(2, dim=1)
        ha, hb = h.chunk(2, dim=1)
        g = torch.tanh(ha + ca) * torch.sigmoid(hb + cb)
        s = F.conv1d(g, self.skip_weight, self.skip_bias if self.has_bias else None)
        x = (F.conv1d(g, self.out_weight, self.out_bias if self.has_bias else None) + x) * math.sqrt(0.5)
        return torch.cat([c, x, skips + s], dim=1)

    def out_count(self, n: int) -> int:
        return self.conv.out_count(n)

    def in_range(self, a: int, b: int) -> Tuple[int, int]:
        return self.conv.in_range(a, b)


class StreamWaveNetOutput(StreamLayer):
    """The carry's skip sum ``* sqrt(1 / layers)``, ReLU, 1x1 conv, ReLU, 1x1 conv: ``[B, out, t]`` (no state)."""

    def __init__(self, conv1: nn.Conv1d, conv2: nn.Conv1d, skip_channels: int, layers: int):
        super().__init__()
        self.skip = int(skip_channels)
        self.scale = math.sqrt(1.0 / layers)
        self.register_buffer("w1", _weight(conv1))
        self.register_buffer("b1", _bias(conv1))
        self.register_buffer("w2", _weight(conv2))
        self.register_buffer("b2", _bias(conv2))

    def forward(self, carry: torch.Tensor, states: List[torch.Tensor], final: bool) -> torch.Tensor:
        if carry.shape[2] == 0:
            return carry.new_zeros(carry.shape[0], self.w2.shape[0], 0)
        x = carry[:, carry.shape[1] - self.skip:] * self.scale
        x = F.conv1d(torch.relu(x), self.w1, self.b1)
        return F.conv1d(torch.relu(x), self.w2, self.b2)
