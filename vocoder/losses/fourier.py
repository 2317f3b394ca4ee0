"""Losses on a predicted STFT (amplitude and phase), for Fourier-head generators (APNet, Ai & Ling 2023).

All compare the generator's spectrum ``(log_amplitude, phase)`` ``[B, F, T]`` with the STFT of the real audio
framed the way the generator's inverse STFT frames it (:class:`STFTFrames`), and the STFT of the generated audio
(its re-analysis) with both:

- amplitude: mean squared error of log-amplitudes, both floored at ``amplitude_floor``; a floor well above the
  silence level stops near-silent bins (whose log varies a lot and matters little) from dominating the loss;
- phase (anti-wrapping, ``f(x) = |x - 2 pi round(x / 2 pi)|``): instantaneous phase, group delay (difference
  along frequency), instantaneous angular frequency (difference along time); optionally weighted per bin by the
  reference amplitude (``phase_weighting="amplitude"``), since the phase of an empty bin is noise, or by its square
  root (``"sqrt_amplitude"``: a harmonic 40 dB below the loudest bin keeps 1/10 of its weight instead of 1/100);
- consistency: mean squared distance between the predicted STFT and the STFT of the audio it makes
  (a spectrogram that no signal has is penalised);
- real/imaginary: L1 between the re-analysed STFT and the real STFT, real and imaginary parts;
- amplitude gradients: L1 between the predicted and the real log-amplitude's differences along time and along
  frequency, weighted by the reference amplitude (relative to the clip's loudest bin, both ends of a difference):
  what PGHI / RTPGHI integrate (:mod:`vocoder.nn.phase_retrieval`: the phase's derivatives are these differences,
  scaled), from the loud bins outwards, so an amplitude trained on them should retrieve a better phase;
- retrieved phase (``retrieval_iterations > 0``): anti-wrapped distance of the predicted phase to the phase that
  fast Griffin-Lim reaches from it on the predicted amplitude (:func:`vocoder.nn.phase_refinement.refine_phase`,
  no gradient through it), weighted like the other phase terms: a target the mel determines (unlike the clip's
  own phase), which moves the phase, and only the phase, towards a spectrum some signal has.

Registered (:mod:`.registry`) as one loss with these eight terms (``losses.amplitude`` ... ``losses.phase_retrieved``)
and its arguments; its inputs are the predicted spectrum, so only a Fourier-head generator trains on it. It frames
its STFT as the generator's inverse STFT does: the generator's ``n_fft`` and ``padding``, the mel's ``hop_length``.
"""
from __future__ import annotations

import math
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.convnext import InverseSTFT, STFTFrames
from ..nn.phase_refinement import refine_phase
from .registry import Argument, LossContext, LossSpec, Weight, as_float, as_int, one_of, register_loss

__all__ = ["anti_wrap", "STFTFrames", "FourierLosses", "PHASE_WEIGHTINGS"]

PHASE_WEIGHTINGS = ("none", "amplitude", "sqrt_amplitude")
TWO_PI = 2 * math.pi


def anti_wrap(x: torch.Tensor) -> torch.Tensor:
    """Distance of an angle difference to the nearest multiple of 2 pi: ``|x - 2 pi round(x / 2 pi)|`` in [0, pi]."""
    return torch.abs(x - TWO_PI * torch.round(x / TWO_PI))


def _weighted_mean(x: torch.Tensor, weight=None) -> torch.Tensor:
    """Mean of ``x``, or its ``weight``-weighted mean (the phase terms' per-bin weighting)."""
    return x.mean() if weight is None else (x * weight).sum() / weight.sum().clamp_min(1e-12)


class FourierLosses(nn.Module):
    """``(log_amplitude, phase, fake_wav, real_wav) -> {name: scalar}`` for the names whose weight is used.

    ``log_amplitude``, ``phase``: ``[B, F, T]``, the generator's prediction; ``fake_wav``: ``[B, 1, T * hop]``, the
    audio made from it; ``real_wav``: the reference, same shape. Returns unweighted terms: ``amplitude``,
    ``amplitude_gradients``, ``phase_ip``, ``phase_gd``, ``phase_iaf``, ``consistency``, ``real_imag``, and with
    ``retrieval_iterations`` ``phase_retrieved``.
    """

    def __init__(self, n_fft: int, hop_length: int, padding: str = "same", amplitude_floor: float = 1e-5,
                 phase_weighting: str = "none", retrieval_iterations: int = 0):
        super().__init__()
        if retrieval_iterations < 0:
            raise ValueError(f"retrieval_iterations must be >= 0, got {retrieval_iterations}")
        self.retrieval_iterations = int(retrieval_iterations)
        if phase_weighting not in PHASE_WEIGHTINGS:
            raise ValueError(f"phase_weighting must be one of {PHASE_WEIGHTINGS}, got {phase_weighting!r}")
        if not amplitude_floor > 0:
            raise ValueError(f"amplitude_floor must be > 0, got {amplitude_floor}")
        self.stft = STFTFrames(n_fft, hop_length, padding)
        self.log_floor = math.log(amplitude_floor)
        self.phase_weighting = phase_weighting

    def phase_weight(self, real_amplitude: torch.Tensor):
        """Per-bin weight of the phase terms from the reference amplitude ``[B, F, T]`` (``None``: unweighted):
        the amplitude (or its square root) relative to each clip's loudest bin, in [0, 1]."""
        if self.phase_weighting == "none":
            return None
        weight = real_amplitude / real_amplitude.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
        return weight.sqrt() if self.phase_weighting == "sqrt_amplitude" else weight

    def phase_terms(self, phase: torch.Tensor, real_phase: torch.Tensor, weight: torch.Tensor = None):
        """Instantaneous phase, group delay and instantaneous angular frequency losses (anti-wrapped means)."""
        ip = _weighted_mean(anti_wrap(phase - real_phase), weight)
        gd = _weighted_mean(anti_wrap(torch.diff(phase, dim=1) - torch.diff(real_phase, dim=1)),
                            None if weight is None else weight[:, 1:] * weight[:, :-1])
        iaf = _weighted_mean(anti_wrap(torch.diff(phase, dim=2) - torch.diff(real_phase, dim=2)),
                             None if weight is None else weight[..., 1:] * weight[..., :-1])
        return ip, gd, iaf

    def forward(self, log_amplitude: torch.Tensor, phase: torch.Tensor, fake_wav: torch.Tensor,
                real_wav: torch.Tensor) -> Dict[str, torch.Tensor]:
        frames = log_amplitude.shape[-1]
        with torch.no_grad():
            real = self.stft(real_wav.float())[..., :frames]
            real_amp = real.abs()
            real_log = torch.log(real_amp.clamp_min(1e-12)).clamp_min(self.log_floor)
            real_phase = torch.angle(real)
            weight = self.phase_weight(real_amp)
        if real.shape[-1] != frames:
            raise ValueError(f"predicted spectrum has {frames} frames, the reference audio {real.shape[-1]}")
        predicted_log = log_amplitude.float().clamp_min(self.log_floor)
        out = {"amplitude": F.mse_loss(predicted_log, real_log),
               "amplitude_gradients": self.amplitude_gradient_loss(predicted_log, real_log, real_amp)}
        out["phase_ip"], out["phase_gd"], out["phase_iaf"] = self.phase_terms(phase.float(), real_phase, weight)
        predicted = torch.polar(torch.exp(log_amplitude.float()).clamp(max=1e2), phase.float())
        reanalysed = self.stft(fake_wav.float())[..., :frames]
        out["consistency"] = (reanalysed - predicted).abs().pow(2).mean()
        out["real_imag"] = (F.l1_loss(reanalysed.real, real.real) + F.l1_loss(reanalysed.imag, real.imag))
        if self.retrieval_iterations:
            out["phase_retrieved"] = self.retrieved_phase_loss(log_amplitude, phase, weight)
        return out

    @staticmethod
    def amplitude_gradient_loss(log_amplitude: torch.Tensor, real_log: torch.Tensor,
                                real_amplitude: torch.Tensor) -> torch.Tensor:
        """Amplitude-weighted L1 of the log-amplitude differences along time and frequency (``[B, F, T]`` each,
        both floored alike), the sum of the two means: the derivatives phase-gradient integration reads."""
        weight = real_amplitude / real_amplitude.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
        along_time = _weighted_mean((torch.diff(log_amplitude, dim=2) - torch.diff(real_log, dim=2)).abs(),
                                    weight[..., 1:] * weight[..., :-1])
        along_freq = _weighted_mean((torch.diff(log_amplitude, dim=1) - torch.diff(real_log, dim=1)).abs(),
                                    weight[:, 1:] * weight[:, :-1])
        return along_time + along_freq

    def retrieved_phase_loss(self, log_amplitude: torch.Tensor, phase: torch.Tensor, weight=None) -> torch.Tensor:
        """Weighted anti-wrapped distance of ``phase`` to the phase of the audio that ``retrieval_iterations`` of fast
        Griffin-Lim make from ``(exp(log_amplitude), phase)``; gradients reach ``phase`` only."""
        frames = phase.shape[-1]
        with torch.no_grad():
            amp = torch.exp(log_amplitude.float()).clamp(max=1e2)
            # the generator's synthesis; built here, not kept, so that the loss has no state to checkpoint
            istft = InverseSTFT(self.stft.n_fft, self.stft.hop_length, self.stft.padding).to(amp.device)
            retrieved = refine_phase(amp, phase.float(), istft, self.retrieval_iterations)
            target = torch.angle(self.stft(retrieved)[..., :frames])
        return _weighted_mean(anti_wrap(phase.float() - target), weight)


def _fourier_loss(ctx: LossContext) -> FourierLosses:
    s, config = ctx.settings, ctx.generator.config
    return FourierLosses(config.n_fft, ctx.mel.hop_length, config.padding, s.amplitude_floor, s.phase_weighting,
                         retrieval_iterations=s.phase_retrieval_iterations if s.phase_retrieved > 0 else 0)


register_loss(LossSpec(
    "fourier", "spectrum",
    (Weight("amplitude", 0.0, "log-amplitude MSE of the predicted STFT"),
     Argument("amplitude_floor", 1e-5, "both log-amplitudes floored here (near-silent bins stop counting)",
              as_float, lambda v: None if v > 0 else "must be > 0"),
     Weight("amplitude_gradients", 0.0, "log-amplitude differences along time and frequency (what PGHI integrates)"),
     Weight("phase_ip", 0.0, "anti-wrapped instantaneous phase"),
     Weight("phase_gd", 0.0, "anti-wrapped group delay"),
     Weight("phase_iaf", 0.0, "anti-wrapped instantaneous angular frequency"),
     Argument("phase_weighting", "none", "phase errors weighted by the reference: none | amplitude | sqrt_amplitude",
              one_of(*PHASE_WEIGHTINGS)),
     Weight("consistency", 0.0, "predicted STFT vs the STFT of the audio it makes"),
     Weight("real_imag", 0.0, "re-analysed STFT vs real STFT, L1 on real and imaginary parts"),
     Weight("phase_retrieved", 0.0, "predicted phase vs fast Griffin-Lim's from it (no gradient through the target)"),
     Argument("phase_retrieval_iterations", 8, "... with this many iterations", as_int,
              lambda v: None if v >= 1 else "must be >= 1")),
    _fourier_loss,
    "APNet's amplitude, phase (IP / GD / IAF), consistency and real/imaginary terms on a Fourier head's predicted "
    "STFT (APNet 45, 100 each, 20, 45), plus amplitude gradients and the retrieved phase"))
