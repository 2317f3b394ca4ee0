"""ConvNeXt blocks at frame rate (Vocos's backbone), and the inverse STFT that turns frames into audio.

Module and parameter names follow the official ``vocos`` package (``dwconv``, ``norm``, ``pwconv1``, ``pwconv2``,
``gamma``; ``window`` of the inverse STFT), so its state dicts load with a plain ``load_state_dict``.
"""
from __future__ import annotations

from typing import Optional

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..audio.mel import stft

__all__ = ["ConvNeXtBlock", "InverseSTFT", "STFTFrames", "analysis_frames", "synthesis_dtype",
           "ISTFT_PADDINGS"]

#: ``"same"``: frame t covers samples ``[t*hop - (n_fft-hop)/2, ...)``, T frames -> T*hop samples (HiFi-GAN's mel
#: framing); ``"center"``: frame t is centred on sample ``t*hop`` (torch.stft(center=True)), as ``vocos-mel-24khz``.
ISTFT_PADDINGS = ("same", "center")


class ConvNeXtBlock(nn.Module):
    """``x [B, dim, T] -> [B, dim, T]``: depthwise conv (k=7) -> LayerNorm -> Linear -> GELU -> Linear -> scale, residual."""

    def __init__(self, dim: int, intermediate_dim: int, layer_scale_init_value: Optional[float]):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = (nn.Parameter(layer_scale_init_value * torch.ones(dim))
                      if layer_scale_init_value is not None and layer_scale_init_value > 0 else None)

    def pointwise(self, x: torch.Tensor) -> torch.Tensor:
        """The per-frame part after the depthwise conv: ``[B, dim, T] -> [B, dim, T]`` (no residual)."""
        x = self.pwconv2(self.act(self.pwconv1(self.norm(x.transpose(1, 2)))))
        if self.gamma is not None:
            x = self.gamma * x
        return x.transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pointwise(self.dwconv(x))


def synthesis_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a Fourier head's inverse STFT runs in for a network of ``dtype``: float64 for float64, else
    float32 (CPU FFTs have no float16 / bfloat16, and CUDA's complex half is experimental)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def analysis_frames(wav: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor,
                    padding: str = "same") -> torch.Tensor:
    """Audio ``[B, T * hop]`` -> complex STFT ``[B, n_fft//2+1, T]`` in the framing :class:`InverseSTFT` inverts.

    ``"same"``: the mel front end's framing (:func:`vocoder.audio.mel.stft`, reflect padding of
    ``(n_fft - hop) / 2``); ``"center"``: ``torch.stft(center=True)``, keeping the first ``T`` frames (it has one
    more). ``window``: ``[n_fft]``, cast to the audio's dtype.
    """
    if padding not in ISTFT_PADDINGS:
        raise ValueError(f"padding must be one of {ISTFT_PADDINGS}, got {padding!r}")
    spec = stft(wav, n_fft, hop_length, window.to(wav.dtype), center=padding == "center")
    return spec[..., :wav.shape[-1] // hop_length]


class STFTFrames(nn.Module):
    """Audio ``[B, T * hop]`` (or ``[B, 1, T * hop]``) -> complex STFT ``[B, n_fft // 2 + 1, T]``, Hann window of
    ``n_fft``: :func:`analysis_frames` as a module (the losses' and the oracles' view of real audio)."""

    def __init__(self, n_fft: int, hop_length: int, padding: str = "same"):
        super().__init__()
        if padding not in ISTFT_PADDINGS:
            raise ValueError(f"padding must be one of {ISTFT_PADDINGS}, got {padding!r}")
        self.n_fft, self.hop_length, self.padding = n_fft, hop_length, padding
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.dim() == 3:
            wav = wav.squeeze(1)
        return analysis_frames(wav, self.n_fft, self.hop_length, self.window, self.padding)


class InverseSTFT(nn.Module):
    """Complex spectrogram ``[B, n_fft//2+1, T]`` -> audio ``[B, T * hop]`` (Hann window of ``n_fft`` samples).

    ``"same"``: inverse FFT, window, overlap-add, trim ``(n_fft - hop) / 2`` on each side and divide by the summed
    squared window: exactly ``T * hop`` samples, the inverse of an uncentred STFT on audio reflect-padded by
    ``(n_fft - hop) / 2``. ``"center"``: ``torch.istft(center=True)``, whose first ``(T - 1) * hop`` samples are
    what the official Vocos decodes; the last hop comes from the right half of the last frame.
    """

    def __init__(self, n_fft: int, hop_length: int, padding: str = "same"):
        super().__init__()
        if padding not in ISTFT_PADDINGS:
            raise ValueError(f"istft padding must be one of {ISTFT_PADDINGS}, got {padding!r}")
        if (n_fft - hop_length) % 2 or hop_length > n_fft // 2:
            raise ValueError(f"need n_fft - hop even and hop <= n_fft / 2 (overlap-add), got n_fft {n_fft}, "
                             f"hop {hop_length}")
        self.n_fft, self.hop_length, self.padding = n_fft, hop_length, padding
        self.register_buffer("window", torch.hann_window(n_fft))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        n, hop = self.n_fft, self.hop_length
        frames = spec.shape[-1]
        window = self.window.to(spec.real.dtype)  # the module may have been cast to half; the spectrum decides
        if self.padding == "center":
            return torch.istft(spec, n, hop, n, window, center=True, length=frames * hop)
        pad = (n - hop) // 2
        # frames of n samples, windowed, then overlap-added by fold (one column per frame)
        x = torch.fft.irfft(spec, n, dim=1) * window[None, :, None]
        size = (frames - 1) * hop + n
        y = F.fold(x, output_size=(1, size), kernel_size=(1, n), stride=(1, hop))[:, 0, 0, pad:size - pad]
        env = F.fold(window.square()[None, :, None].expand(1, n, frames), output_size=(1, size),
                     kernel_size=(1, n), stride=(1, hop))[0, 0, 0, pad:size - pad]
        return y / env

    def analyse(self, wav: torch.Tensor) -> torch.Tensor:
        """The forward transform: audio ``[B, T * hop]`` -> ``[B, n_fft//2+1, T]`` in this framing and window
        (a consistent spectrum comes back from ``analyse(self(spec))``)."""
        return analysis_frames(wav, self.n_fft, self.hop_length, self.window, self.padding)

    def synthesis_basis(self) -> torch.Tensor:
        """``[2 * (n_fft//2+1), 1, n_fft]``: the inverse real DFT of the real and the imaginary parts, times the
        window, as the kernel of a transposed convolution with stride ``hop`` (that is the overlap-add)."""
        n = self.n_fft
        k = torch.arange(n // 2 + 1, dtype=torch.float64)[:, None]
        t = torch.arange(n, dtype=torch.float64)[None, :]
        weight = torch.full((n // 2 + 1, 1), 2.0, dtype=torch.float64)
        weight[0] = 1.0
        if n % 2 == 0:
            weight[-1] = 1.0  # irfft: DC and Nyquist once, the other bins twice (conjugate symmetry)
        angle = 2 * math.pi * k * t / n
        win = self.window.detach().to(torch.float64).cpu()[None, :]
        basis = torch.cat([weight * torch.cos(angle), -weight * torch.sin(angle)]) * win / n
        return basis[:, None, :].to(dtype=self.window.dtype, device=self.window.device)

    def forward_real(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        """What :meth:`forward` computes for ``torch.complex(real, imag)`` (``[B, n_fft//2+1, T]`` each), in real
        arithmetic with no FFT, fold or size computed from the input: a transposed convolution and constant
        trims. TorchScript tracing and ONNX export take it with a dynamic frame axis; it equals :meth:`forward`
        to float32 rounding (a direct DFT instead of an FFT)."""
        n, hop = self.n_fft, self.hop_length
        basis = self.synthesis_basis()
        y = F.conv_transpose1d(torch.cat([real, imag], dim=1), basis, stride=hop)  # [B, 1, (T - 1) * hop + n]
        ones = torch.ones_like(real[:1, :1, :])
        env = F.conv_transpose1d(ones, self.window.square()[None, None, :], stride=hop)
        if self.padding == "center":  # torch.istft(center=True, length=T * hop): drop n/2, keep T * hop samples
            start, end = n // 2, n // 2 - hop
        else:
            start = end = (n - hop) // 2
        y, env = y[:, 0, start:], env[:, 0, start:]
        if end > 0:
            y, env = y[:, :-end], env[:, :-end]
        return y / env
