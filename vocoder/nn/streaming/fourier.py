"""The Fourier-head family's streaming pieces: channel norms, ConvNeXt pointwise part, the frame-wise head, the
mel amplitude prior and the inverse STFT's overlap-add (the window envelope accumulated next to the signal)."""
from __future__ import annotations

import copy
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...audio.mel import pinv_log_amplitude
from ..convnext import synthesis_dtype
from .base import StateAllocator, StreamLayer

__all__ = ["StreamChannelNorm", "StreamConvNeXtPointwise", "StreamFourierHead", "StreamMelPrior", "StreamISTFT"]


class StreamChannelNorm(StreamLayer):
    """Frame-wise ``LayerNorm`` over the channels of ``[B, C, t]`` (no state; a copy of the generator's)."""

    def __init__(self, norm: nn.LayerNorm):
        super().__init__()
        self.norm = copy.deepcopy(norm)

    def forward(self, x: torch.Tensor, states: List[torch.Tensor], final: bool) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class StreamConvNeXtPointwise(StreamLayer):
    """The per-frame part of a ConvNeXt block after its depthwise conv (norm, MLP, layer scale; no state):
    a copy of the block, run through its own ``pointwise``."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = copy.deepcopy(block)

    def forward(self, x: torch.Tensor, states: List[torch.Tensor], final: bool) -> torch.Tensor:
        return self.block.pointwise(x)


class StreamFourierHead(StreamLayer):
    """A copy of the generator's ``FourierHead`` projection, frame-wise (no state):
    ``hidden [B, dim, t] -> cat([log_amplitude, phase]) [B, 2 * n_bins, t]``."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = copy.deepcopy(head)

    def forward(self, x: torch.Tensor, states: List[torch.Tensor], final: bool) -> torch.Tensor:
        log_amp, phase = self.head(x)
        return torch.cat([log_amp, phase], dim=1)


class StreamMelPrior(StreamLayer):
    """The pinv amplitude prior, frame-wise (no state): ``mel [B, n_mels, t] -> log clamp(pinv @ exp(mel), floor)``
    ``[B, n_bins, t]``, by :func:`~vocoder.audio.mel.pinv_log_amplitude` as ``VocosGenerator.prior_log_amplitude``
    (checked against it when built)."""

    def __init__(self, basis: torch.Tensor, floor: float):
        super().__init__()
        self.register_buffer("basis", basis.detach().clone())
        self.floor = float(floor)
        self.n_bins = int(basis.shape[0])

    def forward(self, x: torch.Tensor, states: List[torch.Tensor], final: bool) -> torch.Tensor:
        if x.shape[2] == 0:
            return x.new_zeros(x.shape[0], self.n_bins, 0)
        # through float32 first, as the offline generator's prior_log_amplitude(mel).to(mel.dtype) rounds
        return pinv_log_amplitude(self.basis, x, self.floor).to(x.dtype)


class StreamISTFT(StreamLayer):
    """Frames of ``[log_amplitude, phase]`` (or ``[prior, log_amplitude, phase]``, summed in front) -> audio
    ``[B, 1, samples]``: exp (clipped), inverse real FFT, window, overlap-add, division by the summed squared
    window, trimming ``trim`` samples at the start and emitting ``T * hop`` in all (``"same"``:
    ``trim = (n_fft - hop) / 2``; ``"center"``: ``n_fft / 2``, as ``torch.istft(center=True, length=T * hop)``).

    Untrimmed sample ``i`` gets contributions from frames ``(i - n_fft) / hop < t <= i / hop`` only, so after
    ``T`` frames samples ``< T * hop`` are final. State: ``acc [B, n_fft - hop]`` (the partial sums of the
    samples later frames still add to), ``env [B, n_fft - hop]`` (their summed squared window so far: the
    envelope is accumulated exactly as the signal, so the start, where fewer frames overlap, and the end, where
    the flush divides by the frames that exist, match the offline envelope; one row per item, although the rows
    agree, so that streams decoded together can be split again row by row) and ``drop [1]`` (start samples
    the trimming still removes).
    """

    def __init__(self, window: torch.Tensor, n_fft: int, hop_length: int, padding: str, max_amplitude: float,
                 with_prior: bool = False):
        super().__init__()
        if padding not in ("same", "center"):
            raise ValueError(f"istft padding must be 'same' or 'center', got {padding!r}")
        if (n_fft - hop_length) % 2 or not 0 < hop_length <= n_fft // 2:
            raise ValueError(f"need 0 < hop <= n_fft / 2 and n_fft - hop even, got n_fft {n_fft}, hop {hop_length}")
        if window.shape[0] != n_fft:
            raise ValueError(f"window of {window.shape[0]} samples for n_fft {n_fft}")
        self.register_buffer("window", window.detach().clone())
        self.n_fft = int(n_fft)
        self.hop = int(hop_length)
        self.padding = padding
        self.n_bins = self.n_fft // 2 + 1
        self.max_amplitude = float(max_amplitude)
        self.with_prior = bool(with_prior)
        self.overlap = self.n_fft - self.hop
        self.trim = (self.n_fft - self.hop) // 2 if padding == "same" else self.n_fft // 2
        self.offset = 0

    def allocate(self, alloc: StateAllocator) -> None:
        self.offset = alloc.take(3)

    def fill_states(self, states: List[torch.Tensor], batch: int, ref: torch.Tensor) -> None:
        dtype = synthesis_dtype(ref.dtype)
        states[self.offset] = ref.new_zeros(batch, self.overlap, dtype=dtype)
        states[self.offset + 1] = ref.new_zeros(batch, self.overlap, dtype=dtype)
        states[self.offset + 2] = torch.full((1,), self.trim, dtype=torch.long)

    def amplitude(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, t]`` -> the amplitude ``[B, n_bins, t]`` these frames synthesise (exp of the summed
        log-amplitude, clipped), in the synthesis dtype."""
        f = self.n_bins
        # the prior and the head's log-amplitude summed in the network's dtype, as the offline generator does
        log_amp = x[:, :f] + x[:, f:2 * f] if self.with_prior else x[:, :f]
        return torch.exp(log_amp.to(synthesis_dtype(x.dtype))).clamp(max=self.max_amplitude)

    def _frames(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, t]`` -> windowed time frames ``[B, n_fft, t]`` (the phase is the last ``n_bins`` channels)."""
        dtype = synthesis_dtype(x.dtype)
        amp, phase = self.amplitude(x), x[:, -self.n_bins:].to(dtype)
        spec = torch.complex(amp * torch.cos(phase), amp * torch.sin(phase))
        return torch.fft.irfft(spec, self.n_fft, dim=1) * self.window.to(dtype)[None, :, None]

    def _overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """``[b, n_fft, t]`` -> ``[b, (t - 1) * hop + n_fft]``."""
        size = (frames.shape[2] - 1) * self.hop + self.n_fft
        return F.fold(frames, output_size=(1, size), kernel_size=(1, self.n_fft), stride=(1, self.hop))[:, 0, 0]

    def forward(self, x: torch.Tensor, states: List[torch.Tensor], final: bool) -> torch.Tensor:
        acc = states[self.offset]
        env = states[self.offset + 1]
        drop = int(states[self.offset + 2].item())
        t = x.shape[2]
        done = 0
        if t > 0:
            ov = self.overlap
            z = self._overlap_add(self._frames(x))
            window_sq = self.window.to(z.dtype).square()
            e = self._overlap_add(window_sq[None, :, None].expand(1, self.n_fft, t))
            z = torch.cat([z[:, :ov] + acc, z[:, ov:]], dim=1)
            e = torch.cat([e[:, :ov] + env, e[:, ov:].expand(env.shape[0], -1)], dim=1)
            done = t * self.hop
        else:
            z, e = acc, env
        if final:
            # Everything is final; the offline output ends T * hop samples after the trimmed start.
            done = z.shape[1] - (self.overlap - self.trim)
        y, w = z[:, :done], e[:, :done]
        states[self.offset] = z[:, done:]
        states[self.offset + 1] = e[:, done:]
        if drop > 0:
            d = min(drop, done)
            y, w = y[:, d:], w[:, d:]
            states[self.offset + 2] = torch.full((1,), drop - d, dtype=torch.long)
        return (y / w).unsqueeze(1)

    def out_count(self, n: int) -> int:
        return max(0, n * self.hop - self.trim)

    def in_range(self, a: int, b: int) -> Tuple[int, int]:
        lo, hi = a + self.trim, b + self.trim
        return -((self.n_fft - 1 - lo) // self.hop), hi // self.hop

    def extra_repr(self) -> str:
        return (f"n_fft={self.n_fft}, hop={self.hop}, padding={self.padding}, trim={self.trim}, "
                f"prior={self.with_prior}")
