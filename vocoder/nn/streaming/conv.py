"""Cached-state convolution and transposed convolution (the left context / future tail kept as state)."""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..fast_conv import MIN_CHANNELS, MIN_KERNEL, fft_block_size, fft_conv1d, fft_weight
from ..weight_normalization import effective_weight
from .base import (PAD_MODES, PAD_REFLECT, PAD_REPLICATE, PAD_ZEROS, SpectrumCache, StateAllocator, StreamLayer,
                   append_frames, tap_conv)

__all__ = ["StreamConv1d", "StreamConvTranspose1d"]


class StreamConv1d(StreamLayer):
    """A ``Conv1d`` (any kernel, dilation, stride, groups) with zero / reflect / replicate edge padding,
    optionally preceded by a fused ``leaky_relu(pre_slope)``.

    State: ``buf [B, C_in, <= K_eff - 1 + stride]`` (the inputs the next outputs still need, padding included,
    after the fused activation) and ``started [1]`` (0 until the left padding was built, only for reflect /
    replicate). Each call runs one unpadded conv over ``buf + x``: only new outputs are computed. The conv
    itself takes the fastest exact path for the call's size (eager): FFT overlap-save (as offline
    :class:`vocoder.nn.fast_conv.FastConv1d`) for long outputs of wide, long-kernel layers, per-tap GEMMs
    (:func:`tap_conv`) for one signal, else ``F.conv1d``.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1, dilation: int = 1,
                 groups: int = 1, pad_left: int = 0, pad_right: int = 0, pad_mode: str = "zeros",
                 pre_slope: Optional[float] = None):
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {sorted(PAD_MODES)}, got {pad_mode!r}")
        self.register_buffer("weight", weight.detach().clone())
        self.has_bias = bias is not None
        self.register_buffer("bias", bias.detach().clone() if bias is not None else torch.zeros(0))
        self.stride = int(stride)
        self.dilation = int(dilation)
        self.groups = int(groups)
        self.pad_left = int(pad_left)
        self.pad_right = int(pad_right)
        self.pad_mode = PAD_MODES[pad_mode]
        # Booleans rather than the module constants: TorchScript does not capture globals.
        self.zero_pad = self.pad_mode == PAD_ZEROS
        self.reflect_pad = self.pad_mode == PAD_REFLECT
        self.in_channels = int(weight.shape[1]) * self.groups
        self.out_channels = int(weight.shape[0])
        self.kernel_size = int(weight.shape[2])
        self.k_eff = self.dilation * (self.kernel_size - 1) + 1
        self.pre_act = pre_slope is not None
        self.pre_slope = float(pre_slope) if pre_slope is not None else 0.0
        # Per-tap GEMM form (stride 1, one group): taps [k, C_out, C_in].
        self.tap_ok = self.groups == 1 and self.stride == 1
        taps = weight.detach().permute(2, 0, 1).contiguous() if self.tap_ok else torch.zeros(0)
        self.register_buffer("taps", taps.clone())
        # Measured (2 threads; neutral at 1): for narrow layers with long kernels oneDNN's direct conv beats
        # k small GEMMs (M = K = C_in <= 64 splits poorly across threads) by 25-50%.
        self.tap_preferred = not (self.in_channels <= 64 and self.kernel_size >= 7)
        bcol = bias.detach().reshape(-1, 1).clone() if bias is not None else torch.zeros(0)
        self.register_buffer("bias_col", bcol)
        # FFT overlap-save: the layers offline FastConv1d takes it for (wide, long kernel).
        self.fft_ok = self.tap_ok and self.in_channels >= MIN_CHANNELS and self.kernel_size >= MIN_KERNEL
        self._fft_cache = [SpectrumCache()]
        self.offset = 0

    @classmethod
    def from_conv(cls, conv: nn.Conv1d, pad_left: int | None = None, pad_right: int | None = None,
                  pad_mode: str | None = None, pre_slope: Optional[float] = None) -> "StreamConv1d":
        """From an ``nn.Conv1d`` (weight norm folded on the fly); padding defaults to the conv's own."""
        if isinstance(conv.padding, str):
            raise ValueError(f"string padding {conv.padding!r} is not supported, expected an int")
        p = int(conv.padding[0])
        mode = conv.padding_mode if pad_mode is None else pad_mode
        return cls(effective_weight(conv).detach(), conv.bias, conv.stride[0], conv.dilation[0], conv.groups,
                   p if pad_left is None else pad_left, p if pad_right is None else pad_right, mode, pre_slope)

    def allocate(self, alloc: StateAllocator) -> None:
        self.offset = alloc.take(2)

    def fill_states(self, states: List[torch.Tensor], batch: int, ref: torch.Tensor) -> None:
        if self.zero_pad:
            # Zero padding needs no look at the data: the buffer starts as the left padding itself.
            states[self.offset] = ref.new_zeros(batch, self.in_channels, self.pad_left)
            states[self.offset + 1] = torch.ones(1, dtype=torch.long)
        else:
            states[self.offset] = ref.new_zeros(batch, self.in_channels, 0)
            states[self.offset + 1] = torch.zeros(1, dtype=torch.long)

    def _left_pad(self, buf: torch.Tensor) -> torch.Tensor:
        if self.pad_left == 0:
            return buf
        if self.reflect_pad:
            return F.pad(buf[:, :, : self.pad_left + 1], (self.pad_left, 0), mode="reflect")[:, :, : self.pad_left]
        return buf[:, :, :1].expand(-1, -1, self.pad_left)

    def _right_pad(self, buf: torch.Tensor) -> torch.Tensor:
        if self.pad_right == 0:
            return buf.new_zeros(buf.shape[0], buf.shape[1], 0)
        if self.zero_pad:
            return buf.new_zeros(buf.shape[0], buf.shape[1], self.pad_right)
        if self.reflect_pad:
            tail = buf[:, :, buf.shape[2] - self.pad_right - 1:]
            return F.pad(tail, (0, self.pad_right), mode="reflect")[:, :, tail.shape[2]:]
        return buf[:, :, buf.shape[2] - 1:].expand(-1, -1, self.pad_right)

    @torch.jit.unused
    def _fft_wins(self, buf: torch.Tensor, n_out: int) -> bool:
        # Measured (1 thread) against tap_conv: FFT wins for k >= 11 from ~160 outputs (undilated) and for
        # k >= 7 undilated or k >= 11 dilated from ~384; below that its transforms cost more than they save.
        if not (self.fft_ok and buf.dtype == torch.float32 and buf.device.type == "cpu"):
            return False
        if not (n_out >= 384 and (self.kernel_size >= 11 or self.dilation == 1)) and not (
                self.kernel_size >= 11 and self.dilation == 1 and n_out >= 160):
            return False
        return os.environ.get("VOCODER_FFT_CONV", "1") != "0"

    @torch.jit.unused
    def _fft_conv(self, buf: torch.Tensor, n_out: int) -> torch.Tensor:
        used = n_out + self.k_eff - 1
        n_fft = fft_block_size(used, self.kernel_size)
        cache = self._fft_cache[0].spectra
        wf = cache.get(n_fft)
        if wf is None:
            wf = cache[n_fft] = fft_weight(self.weight, n_fft)
        return fft_conv1d(buf[:, :, :used], wf, self.kernel_size, self.bias if self.has_bias else None,
                          self.dilation, 0, n_fft)

    def _conv(self, buf: torch.Tensor, n_out: int) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if self._fft_wins(buf, n_out):
                return self._fft_conv(buf, n_out)
        # Undilated convs on very short inputs: oneDNN's direct conv is as fast and makes one call.
        if self.tap_ok and self.tap_preferred and buf.shape[0] == 1 and (self.dilation > 1 or n_out >= 72):
            return tap_conv(buf, self.taps, self.bias_col, self.has_bias, self.dilation, n_out)
        used = (n_out - 1) * self.stride + self.k_eff
        return F.conv1d(buf[:, :, :used], self.weight, self.bias if self.has_bias else None, self.stride, 0,
                        self.dilation, self.groups)

    def forward(self, x: torch.Tensor, states: List[torch.Tensor], final: bool) -> torch.Tensor:
        buf = states[self.offset]
        started = states[self.offset + 1]
        if x.shape[2] > 0:
            buf = append_frames(buf, x, self.pre_act, self.pre_slope)
        if int(started.item()) == 0:
            # Reflection needs pad_left + 1 samples to mirror; replicate needs one.
            need = self.pad_left + 1 if self.reflect_pad else 1
            if buf.shape[2] >= need or (final and buf.shape[2] > 0):
                buf = torch.cat([self._left_pad(buf), buf], dim=2)
                started = torch.ones(1, dtype=torch.long)
            else:
                states[self.offset] = buf
                return buf.new_zeros(buf.shape[0], self.out_channels, 0)
        if final:
            buf = torch.cat([buf, self._right_pad(buf)], dim=2)
        n = buf.shape[2]
        if n < self.k_eff:
            states[self.offset] = buf
            states[self.offset + 1] = started
            return buf.new_zeros(buf.shape[0], self.out_channels, 0)
        n_out = (n - self.k_eff) // self.stride + 1
        y = self._conv(buf, n_out)
        states[self.offset] = buf[:, :, n_out * self.stride:]
        states[self.offset + 1] = started
        return y

    def out_count(self, n: int) -> int:
        total = n + self.pad_left
        return 0 if total < self.k_eff else (total - self.k_eff) // self.stride + 1

    def in_range(self, a: int, b: int) -> Tuple[int, int]:
        return a * self.stride - self.pad_left, b * self.stride - self.pad_left + self.k_eff - 1

    def extra_repr(self) -> str:
        mode = {PAD_ZEROS: "zeros", PAD_REFLECT: "reflect", PAD_REPLICATE: "replicate"}[self.pad_mode]
        act = f", pre=leaky_relu({self.pre_slope})" if self.pre_act else ""
        return (f"{self.in_channels}, {self.out_channels}, k_eff={self.k_eff}, stride={self.stride}, "
                f"pad=({self.pad_left}, {self.pad_right}, {mode}){act}")


class StreamConvTranspose1d(StreamLayer):
    """A ``ConvTranspose1d`` (stride ``s``, kernel ``k``, ``padding``, ``output_padding``, groups).

    Offline, ``y[n] = z[n + padding]`` where ``z`` is the untrimmed transposed conv. After ``T`` input frames
    ``z[: T*s]`` is final (later frames only reach ``z[T*s:]``), and it depends on the last ``ceil(k/s) - 1``
    frames at most: the state keeps those frames (``ctx [B, C_in, ceil(k/s) - 1]``, zeros at the start, which
    add nothing) and ``drop [1]``, how many of the first outputs the trimming still removes.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int = 0,
                 output_padding: int = 0, groups: int = 1, dilation: int = 1, pre_slope: Optional[float] = None):
        super().__init__()
        if dilation != 1:
            raise ValueError(f"streaming ConvTranspose1d supports dilation 1 only, got {dilation}")
        self.register_buffer("weight", weight.detach().clone())
        self.has_bias = bias is not None
        self.register_buffer("bias", bias.detach().clone() if bias is not None else torch.zeros(0))
        self.stride = int(stride)
        self.padding = int(padding)
        self.output_padding = int(output_padding)
        self.groups = int(groups)
        self.kernel_size = int(weight.shape[2])
        self.in_channels = int(weight.shape[0])
        self.out_channels = int(weight.shape[1]) * self.groups
        self.context = max(0, -(-self.kernel_size // self.stride) - 1)
        # Outputs past z[T*s] that the offline layer still emits at the end (from the kept frames only).
        self.tail = self.kernel_size - self.stride - self.padding + self.output_padding
        if self.tail < 0:
            raise ValueError(
                f"ConvTranspose1d with kernel {self.kernel_size}, stride {self.stride}, padding {self.padding}, "
                f"output_padding {self.output_padding} trims more than it spreads; cannot stream it")
        # Polyphase form: output phase r of frame t is a plain conv over frames t-context..t with taps
        # w[..., j*s + r] (flipped). One Conv1d with C_out*s channels computes exactly the new samples and runs
        # on the fast conv path (PyTorch's CPU transposed conv often takes a slow one).
        self.polyphase = self.groups == 1
        m = self.context + 1
        if self.polyphase:
            w = F.pad(weight.detach(), (0, m * self.stride - self.kernel_size))  # [C_in, C_out, m*s]
            w = w.view(self.in_channels, self.out_channels, m, self.stride).flip(2)  # [C_in, C_out, j', r]
            w = w.permute(1, 3, 0, 2).reshape(self.out_channels * self.stride, self.in_channels, m)
            b = bias.detach().repeat_interleave(self.stride) if bias is not None else torch.zeros(0)
        else:
            w, b = torch.zeros(0), torch.zeros(0)
        self.register_buffer("poly_weight", w.contiguous().clone())
        self.register_buffer("poly_bias", b.clone())
        # The same conv as per-tap GEMMs (see tap_conv): taps [m, C_out*s, C_in], bias [C_out*s, 1].
        self.register_buffer("poly_taps", w.permute(2, 0, 1).contiguous().clone() if self.polyphase
                             else torch.zeros(0))
        self.register_buffer("poly_bias_col", b.reshape(-1, 1).clone() if self.has_bias else torch.zeros(0))
        # Optional leaky ReLU fused in front (applied as frames enter the context; lrelu(0) = 0 keeps the
        # zero start and the zero tail frames exact).
        self.pre_act = pre_slope is not None
        self.pre_slope = float(pre_slope) if pre_slope is not None else 0.0
        self.offset = 0

    @classmethod
    def from_conv(cls, conv: nn.ConvTranspose1d, pre_slope: Optional[float] = None) -> "StreamConvTranspose1d":
        return cls(effective_weight(conv).detach(), conv.bias, conv.stride[0], conv.padding[0], conv.output_padding[0],
                   conv.groups, conv.dilation[0], pre_slope)

    def allocate(self, alloc: StateAllocator) -> None:
        self.offset = alloc.take(2)

    def fill_states(self, states: List[torch.Tensor], batch: int, ref: torch.Tensor) -> None:
        states[self.offset] = ref.new_zeros(batch, self.in_channels, self.context)
        states[self.offset + 1] = torch.full((1,), self.padding, dtype=torch.long)

    def _spread(self, win: torch.Tensor, start: int, count: int) -> torch.Tensor:
        """``z`` positions ``start .. start+count`` (relative to ``win``'s first frame) of the untrimmed output."""
        if self.polyphase and start == self.context * self.stride:
            # One output frame (s samples) per window frame after the context.
            n_out = win.shape[2] - self.context
            if win.shape[0] == 1 and n_out >= 72:
                y = tap_conv(win, self.poly_taps, self.poly_bias_col, self.has_bias, 1, n_out)
            else:
                y = F.conv1d(win, self.poly_weight, self.poly_bias if self.has_bias else None)  # [B, C_out*s, t]
            b, t = y.shape[0], y.shape[2]
            y = y.view(b, self.out_channels, self.stride, t).transpose(2, 3).reshape(b, self.out_channels, t * self.stride)
            return y[:, :, :count]
        z = F.conv_transpose1d(win, self.weight, self.bias if self.has_bias else None, self.stride, 0, 0,
                               self.groups)
        if z.shape[2] < start + count:  # past the kernel's reach only the bias remains
            fill = z.new_zeros(z.shape[0], z.shape[1], start + count - z.shape[2])
            if self.has_bias:
                fill = fill + self.bias.view(1, -1, 1)
            z = torch.cat([z, fill], dim=2)
        return z[:, :, start:start + count]

    def forward(self, x: torch.Tensor, states: List[torch.Tensor], final: bool) -> torch.Tensor:
        ctx = states[self.offset]
        drop = int(states[self.offset + 1].item())
        t = x.shape[2]
        pieces: List[torch.Tensor] = []
        if t > 0:
            win = append_frames(ctx, x, self.pre_act, self.pre_slope)
            pieces.append(self._spread(win, self.context * self.stride, t * self.stride))
            ctx = win[:, :, win.shape[2] - self.context:]
        if final and self.tail > 0:
            # The last frames' spread past the end, as offline: feed zero frames that add nothing.
            n_zero = -(-self.tail // self.stride)
            win = torch.cat([ctx, ctx.new_zeros(ctx.shape[0], ctx.shape[1], n_zero)], dim=2)
            pieces.append(self._spread(win, self.context * self.stride, self.tail))
        if len(pieces) == 0:
            states[self.offset] = ctx
            return ctx.new_zeros(ctx.shape[0], self.out_channels, 0)
        y = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2)
        if drop > 0:
            d = min(drop, y.shape[2])
            y = y[:, :, d:]
            drop -= d
        states[self.offset] = ctx
        states[self.offset + 1] = torch.full((1,), drop, dtype=torch.long)
        return y

    def out_count(self, n: int) -> int:
        return max(0, n * self.stride - self.padding)

    def in_range(self, a: int, b: int) -> Tuple[int, int]:
        lo, hi = a + self.padding, b + self.padding
        return -((self.kernel_size - 1 - lo) // self.stride), hi // self.stride

    def extra_repr(self) -> str:
        act = f", pre=leaky_relu({self.pre_slope})" if self.pre_act else ""
        return (f"{self.in_channels}, {self.out_channels}, kernel={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, output_padding={self.output_padding}{act}")


