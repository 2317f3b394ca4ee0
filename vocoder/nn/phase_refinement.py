"""Phase refinement for Fourier-head generators: fast Griffin-Lim started from the predicted phase.

A Fourier head predicts amplitude and phase frame by frame, and nothing forces the pair to be the STFT of any
signal: the inverse STFT's overlap-add averages the frames' disagreement away, and the audio it makes has another
spectrum than the one predicted (its voicing and periodicity suffer most). Each Griffin-Lim iteration (inverse STFT,
STFT, keep the new phase, put the predicted amplitude back) makes the spectrum more consistent; the momentum of
Perraudin et al.'s fast variant (2013; librosa's ``griffinlim(momentum=0.99)``) gets there in far fewer iterations.
Started from the network's phase, a few iterations help (measured in ``recipes/warm_start/README.md``), where
Griffin-Lim from random phase needs dozens.

librosa's ``griffinlim(init=None)`` also starts from a given phase, but on NumPy and with its own framing (its
uncentred frames have no reflect padding, so our ``"same"`` spectra are not its fixed points); this is the same
iteration on the generator's own inverse STFT and its inverse, batched, on any device.

Each iteration widens the receptive field by ``n_fft / hop - 1`` frames on each side (3 for 1024 / 256), so this is
an offline step.
"""
from __future__ import annotations

import torch

from .convnext import InverseSTFT

__all__ = ["refine_phase", "DEFAULT_MOMENTUM"]

#: librosa's and Perraudin et al.'s choice.
DEFAULT_MOMENTUM = 0.99


def refine_phase(amplitude: torch.Tensor, phase: torch.Tensor, istft: InverseSTFT, iterations: int,
                 momentum: float = DEFAULT_MOMENTUM) -> torch.Tensor:
    """``iterations`` of fast Griffin-Lim on ``amplitude`` from ``phase``; returns the audio ``[B, T * hop]``.

    Args:
        amplitude: ``[B, n_fft//2+1, T]`` linear amplitude (kept fixed).
        phase: ``[B, n_fft//2+1, T]`` initial phase in radians.
        istft: the inverse STFT the generator synthesises with; the forward STFT uses its framing and window, so
            a consistent spectrum is a fixed point (the audio of ``iterations=0`` comes back unchanged).
        iterations: 0 gives exactly ``istft(amplitude * exp(i phase))``.
        momentum: 0 is plain Griffin-Lim; ``0.99`` the fast variant.
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if amplitude.shape != phase.shape or amplitude.dim() != 3:
        raise ValueError(f"expected amplitude and phase [B, F, T] of one shape, got {tuple(amplitude.shape)} "
                         f"and {tuple(phase.shape)}")
    amplitude, phase = amplitude.float(), phase.float()
    spec = torch.polar(amplitude, phase)
    previous = None
    for _ in range(iterations):
        rebuilt = istft.analyse(istft(spec))
        # Perraudin's extrapolation t + m (t - t_prev); librosa writes it as t - m / (1 + m) t_prev, the same phase.
        target = rebuilt if previous is None else rebuilt + momentum * (rebuilt - previous)
        previous = rebuilt
        spec = torch.polar(amplitude, torch.angle(target))
    return istft(spec)
