"""A ``Conv1d`` whose CPU inference runs wide, long-kernel 'same' convolutions by FFT (overlap-save).

Why: in BigVGAN on CPU the dense convs already run near the core's float32 peak in oneDNN, so the only way to
make them cheaper is fewer multiplications. Overlap-save with short blocks turns a ``k``-tap conv into one
complex ``[C_out, C_in]`` product per frequency bin: for ``C >= 128`` and ``k >= 7`` that is 2-4x fewer flops
and measured ~1.3-2x faster per layer (1 thread). Dilation ``d`` is handled exactly by splitting time into its
``d`` phases (each phase is an undilated conv). Results equal ``F.conv1d`` up to float32 rounding (relative
error ~3e-7 per layer).

The module is an ``nn.Conv1d`` (same parameters, state-dict keys, ``isinstance`` checks, training forward);
the FFT path is taken only when no gradient is recorded, weight norm is folded (a plain ``weight``
parameter), the input is a float32 CPU tensor and the layer is one this path wins on. The transformed
weight is cached per module and recomputed when the weight changes (in-place updates bump its version).
``VOCODER_FFT_CONV=0`` turns the path off.
"""
from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["FastConv1d", "fft_block_size", "fft_conv1d", "fft_weight"]

MIN_CHANNELS = 128  # below this the FFTs and copies cost more than the saved multiplications
MIN_KERNEL = 7


def fft_block_size(length: int, kernel_size: int) -> int:
    """The FFT size for an input of ``length`` samples: short inputs (few blocks) favour short FFTs, longer ones
    amortise a longer FFT with fewer wasted taps; at least ``2 * kernel_size`` so most of a block is output."""
    n_fft = 32 if length < 2048 else 64
    return 2 * n_fft if n_fft < 2 * kernel_size else n_fft


def fft_weight(weight: torch.Tensor, n_fft: int) -> torch.Tensor:
    """``[C_out, C_in, k] -> [n_fft//2 + 1, C_out, C_in]`` complex: the conjugate spectrum (cross-correlation)."""
    return torch.fft.rfft(weight, n=n_fft).conj().permute(2, 0, 1).contiguous()


def fft_conv1d(x: torch.Tensor, wf: torch.Tensor, kernel_size: int, bias, dilation: int, padding: int,
               n_fft: int) -> torch.Tensor:
    """``F.conv1d(x, w, bias, padding=padding, dilation=dilation)`` for ``x [B, C_in, T]``, stride 1.

    ``wf = fft_weight(w, n_fft)``; ``n_fft >= kernel_size``. Output ``[B, C_out, T + 2*padding - d*(k-1)]``.
    """
    B, C, T = x.shape
    O = wf.shape[1]
    k, d = kernel_size, dilation
    t_out = T + 2 * padding - d * (k - 1)
    valid = n_fft - k + 1  # outputs per block that see no circular wrap
    m_out = -(-t_out // d)  # outputs per dilation phase
    nb = -(-m_out // valid)
    m_in = nb * valid + k - 1  # inputs per phase the blocks read
    xp = F.pad(x, (padding, m_in * d - T - padding))
    if d > 1:  # phase r holds samples r, r+d, r+2d, ...: an undilated conv per phase
        xp = xp.view(B, C, m_in, d).permute(0, 3, 1, 2).reshape(B * d, C, m_in)
    bp = xp.shape[0]
    blocks = xp.unfold(2, n_fft, valid).contiguous()  # [bp, C, nb, n_fft]
    xf = torch.fft.rfft(blocks, n=n_fft)  # [bp, C, nb, F]
    nf = xf.shape[-1]
    yf = torch.matmul(wf, xf.permute(3, 1, 0, 2).reshape(nf, C, bp * nb))  # [F, O, bp*nb]
    yf = yf.view(nf, O, bp, nb).permute(2, 1, 3, 0).contiguous()
    y = torch.fft.irfft(yf, n=n_fft)[..., :valid].reshape(bp, O, nb * valid)[..., :m_out]
    if d > 1:
        y = y.reshape(B, d, O, m_out).permute(0, 2, 3, 1).reshape(B, O, m_out * d)
    y = y[..., :t_out]
    if bias is not None:
        y = y + bias.view(1, O, 1)
    return y.contiguous()


class FastConv1d(nn.Conv1d):
    """``nn.Conv1d`` with an exact-up-to-rounding FFT path for CPU inference (see the module docstring)."""

    def _fft_eligible(self, x: torch.Tensor) -> bool:
        return (not torch.is_grad_enabled() and "weight" in self._parameters and x.device.type == "cpu"
                and x.dtype == torch.float32 and x.dim() == 3 and self.groups == 1 and self.stride[0] == 1
                and self.padding_mode == "zeros" and not isinstance(self.padding, str)
                and self.in_channels >= MIN_CHANNELS and self.kernel_size[0] >= MIN_KERNEL
                and x.shape[-1] >= 64 and os.environ.get("VOCODER_FFT_CONV", "1") != "0")

    def _spectrum(self, n_fft: int) -> torch.Tensor:
        w = self.weight
        if w.is_inference():  # made under torch.inference_mode (e.g. weight norm folded there): no version
            return fft_weight(w.detach(), n_fft)  # counter to tell an in-place write, so nothing is cached
        key = (w.data_ptr(), w._version, n_fft, w.dtype)
        cache = self.__dict__.get("_fft_cache")
        if cache is None or cache[0] != key:
            with torch.no_grad():
                cache = (key, fft_weight(w.detach(), n_fft))
            self.__dict__["_fft_cache"] = cache
        return cache[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fft_eligible(x):
            n_fft = fft_block_size(x.shape[-1], self.kernel_size[0])
            return fft_conv1d(x, self._spectrum(n_fft), self.kernel_size[0], self.bias, self.dilation[0],
                              self.padding[0], n_fft)
        return super().forward(x)

    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        state.pop("_fft_cache", None)  # a derived tensor: never pickled / deep-copied
        return state
