"""BigVGAN's anti-aliased activation, streamed: the window of left context its filters need is kept as state."""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn as nn

from .base import StateAllocator, StreamLayer

__all__ = ["StreamActivation1d", "activation_context"]


def activation_context(module: nn.Module) -> Tuple[int, int]:
    """Left / right receptive field, in input samples, of a ``[B, C, T] -> [B, C, T]`` anti-aliased activation.

    Output ``j`` reads upsampled samples ``j*r - pad_left_down .. + K_down - 1`` (replicate-padded low-pass,
    stride ``r``); upsampled sample ``q`` reads input frames ``ceil((q + pad_left_up - K_up + 1)/r) - pad ..
    floor((q + pad_left_up)/r) - pad`` (the zero-stuffed transposed conv after ``pad`` replicated samples).
    """
    up, low = module.upsample, module.downsample.lowpass
    r_up, r_down = int(up.ratio), int(low.stride)
    if r_up != r_down:
        raise ValueError(f"streaming Activation1d needs up_ratio == down_ratio, got {r_up} and {r_down}")
    k_up, k_down = int(up.kernel_size), int(low.kernel_size)
    left, right = 0, 0
    for j in range(64, 64 + 2 * r_up):  # every phase, far from the edges
        q_lo = j * r_down - int(low.pad_left)
        q_hi = q_lo + k_down - 1
        lo = -((k_up - 1 - q_lo - int(up.pad_left)) // r_up) - int(up.pad)
        hi = (q_hi + int(up.pad_left)) // r_up - int(up.pad)
        left, right = max(left, j - lo), max(right, hi - j)
    return left, right


class StreamActivation1d(StreamLayer):
    """BigVGAN's anti-aliased activation (upsample -> Snake -> low-pass + downsample), streamed.

    Each call runs the module's own ``forward`` -- so the fused kernel chosen by
    ``vocoder.kernels.dispatch`` when one is available, else the reference -- on ``[left context + new]``
    and keeps the outputs whose receptive field (``left``/``right`` samples, see :func:`activation_context`)
    lies inside that window: outputs next to a window edge the filter had to pad are recomputed on the next
    call, except at the true start and end, where the module's replicate padding is the offline edge.
    State: ``buf [B, C, <= left + right + t]`` and ``lead [1]`` (how many of ``buf``'s samples are already
    emitted context).
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        # The pieces are submodules (TorchScript compiles their forward = the reference path); the whole
        # module is kept out of the module tree because its forward goes through the Python kernel dispatch.
        self.upsample = module.upsample
        self.act = module.act
        self.downsample = module.downsample
        self._whole = [module]
        self.left, self.right = activation_context(module)
        self.channels = int(getattr(module.act, "in_features", 0))
        self.offset = 0

    def allocate(self, alloc: StateAllocator) -> None:
        self.offset = alloc.take(2)

    def fill_states(self, states: List[torch.Tensor], batch: int, ref: torch.Tensor) -> None:
        states[self.offset] = ref.new_zeros(batch, self.channels, 0)
        states[self.offset + 1] = torch.zeros(1, dtype=torch.long)

    @torch.jit.unused
    def _eager(self, x: torch.Tensor) -> torch.Tensor:
        return self._whole[0](x)  # Activation1d.forward goes through the kernel dispatch

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return self.downsample(self.act(self.upsample(x)))  # the reference, in exported graphs
        return self._eager(x)

    def forward(self, x: torch.Tensor, states: List[torch.Tensor], final: bool) -> torch.Tensor:
        buf = states[self.offset]
        lead = int(states[self.offset + 1].item())
        if x.shape[2] > 0:
            buf = torch.cat([buf, x], dim=2)
        n = buf.shape[2]
        avail = n if final else n - self.right
        if avail <= lead:
            states[self.offset] = buf
            return buf[:, :, :0]
        y = self._apply(buf)[:, :, lead:avail]
        keep = max(0, avail - self.left)
        states[self.offset] = buf[:, :, keep:]
        states[self.offset + 1] = torch.full((1,), avail - keep, dtype=torch.long)
        return y

    def out_count(self, n: int) -> int:
        return max(0, n - self.right)

    def in_range(self, a: int, b: int) -> Tuple[int, int]:
        return a - self.left, b + self.right

    def extra_repr(self) -> str:
        return f"channels={self.channels}, context=({self.left}, {self.right})"


