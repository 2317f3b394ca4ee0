"""Multi-resolution STFT loss (Parallel WaveGAN), equal to ``parallel_wavegan``'s MultiResolutionSTFTLoss.

For each (fft, hop, win) resolution: magnitude ``sqrt(clamp(re^2 + im^2, 1e-7))`` of a centred STFT
(reflect padding, Hann window of ``win`` samples); spectral convergence ``||Y - X||_F / ||Y||_F`` and log
STFT magnitude ``mean |log Y - log X|``; each averaged over resolutions. Parallel WaveGAN adds the two
(weight 1 each; its adversarial weight is 4).

Registered (:mod:`.registry`) as ``losses.stft_sc`` and ``losses.stft_mag`` (with ``losses.stft_args``, its
keyword arguments).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Argument, LossSpec, TermsOf, Weight, as_mapping, register_loss

__all__ = ["MultiResolutionSTFTLoss", "waveform_pair", "register_stft_resolutions"]


def waveform_pair(fake: torch.Tensor, real: torch.Tensor, who: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """``fake`` and ``real`` (``[B, C, T]`` or ``[B, T]``, the same shape) as ``[B * C, T]``; ``ValueError`` naming
    ``who`` otherwise."""
    if fake.shape != real.shape:
        raise ValueError(f"{who}: fake and real must have the same shape, got {tuple(fake.shape)} and "
                         f"{tuple(real.shape)}")
    if fake.dim() == 3:  # [B, C, T] -> [B*C, T]
        return fake.reshape(-1, fake.shape[-1]), real.reshape(-1, real.shape[-1])
    if fake.dim() != 2:
        raise ValueError(f"{who}: expected [B, 1, T] or [B, T], got {tuple(fake.shape)}")
    return fake, real


def register_stft_resolutions(module: nn.Module, fft_sizes: Sequence[int], hop_sizes: Sequence[int],
                              win_lengths: Sequence[int], window: str) -> List[Tuple[int, int, int]]:
    """Check the STFT resolutions of a multi-resolution loss and register each one's window on ``module`` as the
    non-persistent buffer ``window_<i>``; returns ``[(fft_size, hop_size, win_length), ...]``."""
    if not (len(fft_sizes) == len(hop_sizes) == len(win_lengths)) or not fft_sizes:
        raise ValueError(f"fft_sizes, hop_sizes, win_lengths must be non-empty and equally long, got "
                         f"{list(fft_sizes)}, {list(hop_sizes)}, {list(win_lengths)}")
    window_fn = getattr(torch, window, None) if isinstance(window, str) else None
    if window_fn is None or not window.endswith("_window"):
        raise ValueError(f"window must name a torch window function like 'hann_window', got {window!r}")
    resolutions = [(int(n), int(h), int(w)) for n, h, w in zip(fft_sizes, hop_sizes, win_lengths)]
    for i, (n, h, w) in enumerate(resolutions):
        if not 0 < w <= n or h < 1:
            raise ValueError(f"resolution {i}: need 0 < win_length <= fft_size and hop_size >= 1, got fft "
                             f"{n}, hop {h}, win {w}")
        module.register_buffer(f"window_{i}", window_fn(w), persistent=False)
    return resolutions


class MultiResolutionSTFTLoss(nn.Module):
    """``(fake [B, 1, T] or [B, T], real) -> (spectral_convergence, log_magnitude)`` scalars."""

    def __init__(self, fft_sizes: Sequence[int] = (1024, 2048, 512), hop_sizes: Sequence[int] = (120, 240, 50),
                 win_lengths: Sequence[int] = (600, 1200, 240), window: str = "hann_window"):
        super().__init__()
        self.resolutions = register_stft_resolutions(self, fft_sizes, hop_sizes, win_lengths, window)

    def _magnitude(self, wav: torch.Tensor, i: int) -> torch.Tensor:
        n, h, w = self.resolutions[i]
        spec = torch.view_as_real(torch.stft(wav, n, h, w, getattr(self, f"window_{i}"), return_complex=True))
        return torch.sqrt(torch.clamp(spec.pow(2).sum(-1), min=1e-7))

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        fake, real = waveform_pair(fake, real, "MultiResolutionSTFTLoss")
        sc, mag = fake.new_zeros(()), fake.new_zeros(())
        for i in range(len(self.resolutions)):
            x = self._magnitude(fake, i)
            with torch.no_grad():
                y = self._magnitude(real, i)
            sc = sc + torch.linalg.vector_norm(y - x) / torch.linalg.vector_norm(y)
            mag = mag + F.l1_loss(torch.log(x), torch.log(y))
        n = len(self.resolutions)
        return sc / n, mag / n


register_loss(LossSpec(
    "stft", "audio",
    (Weight("stft_sc", 0.0, "multi-resolution STFT: spectral-convergence weight"),
     Weight("stft_mag", 0.0, "multi-resolution STFT: log-magnitude weight"),
     Argument("stft_args", {}, "MultiResolutionSTFTLoss keyword arguments (fft_sizes, hop_sizes, win_lengths, window)",
              as_mapping)),
    lambda ctx: TermsOf(MultiResolutionSTFTLoss(**ctx.settings.stft_args), "stft_sc", "stft_mag"),
    "spectral convergence and log-magnitude L1 at 3 STFT resolutions (Parallel WaveGAN 1 + 1)"))
