"""Vocoders without a network, the stronger floor: the mel's pseudo-inverse amplitude with a phase computed from it.

Griffin-Lim from a random phase is a weak floor. Signal processing does better on the same mel: the pseudo-inverse
of the mel filterbank turns the mel back into a linear amplitude (``pinv(filters) @ exp(mel)``, floored at the
front end's ``log_floor``, as the Fourier generators' ``pinv`` prior does), and PGHI / RTPGHI
(:mod:`vocoder.nn.phase_retrieval`) give it a phase, with no iteration. A neural vocoder that does not beat this
on its own mel adds nothing a listener hears; the release gate asks for it (``vocoder.evaluation.gate``).

The synthesis uses the mel front end's own framing (periodic Hann window of ``n_fft``; ``"same"``: reflect-padded
by ``(n_fft - hop) / 2``, uncentred; ``center=True``: torch's centred frames), so the audio lines up with the clip
the mel came from, like a vocoder's output. Only front ends whose window spans ``n_fft`` are supported.
"""
from __future__ import annotations

import torch

from ..audio.mel import MelConfig, check_mel, mel_filterbank
from ..nn.convnext import InverseSTFT
from ..nn.phase_retrieval import retrieve_phase

__all__ = ["PINV_FLOORS", "pinv_amplitude", "pinv_floor", "supports_pinv_floor"]

#: system name in a report -> phase method
PINV_FLOORS = {"pinv_rtpghi": "rtpghi", "pinv_pghi": "pghi"}


def supports_pinv_floor(config: MelConfig) -> bool:
    """Whether the front end's framing can be inverted here (a Hann window of ``n_fft``, overlap-add possible)."""
    return config.win_length == config.n_fft and config.hop_length <= config.n_fft // 2 and \
        (config.n_fft - config.hop_length) % 2 == 0


def pinv_amplitude(mel, config: MelConfig) -> torch.Tensor:
    """Log-mel ``[n_mels, T]`` -> linear amplitude ``[n_fft // 2 + 1, T]`` (float32): ``max(pinv(filters) @
    exp(mel), log_floor)``, computed in float64 (the pseudo-inverse has entries of both signs)."""
    mel = check_mel(mel, config.n_mels, layout="single").detach().to("cpu", torch.float64)
    basis = torch.linalg.pinv(mel_filterbank(config, dtype=torch.float64))
    return torch.clamp(basis @ torch.exp(mel), min=config.log_floor).float()


def pinv_floor(mel, config: MelConfig, method: str = "rtpghi") -> torch.Tensor:
    """Log-mel ``[n_mels, T]`` -> waveform float32 ``[T * hop]``: the pseudo-inverse amplitude with a ``method``
    (``"rtpghi"`` / ``"pghi"``) phase, one inverse STFT in the front end's framing."""
    if not supports_pinv_floor(config):
        raise ValueError(f"the pinv floor needs a Hann window of n_fft samples and hop <= n_fft / 2, got "
                         f"win_length {config.win_length}, n_fft {config.n_fft}, hop {config.hop_length}")
    amp = pinv_amplitude(mel, config)[None]
    istft = InverseSTFT(config.n_fft, config.hop_length, "center" if config.center else "same")
    phase = retrieve_phase(amp, method, config.hop_length, config.n_fft)
    with torch.inference_mode():
        return istft(torch.polar(amp, phase))[0]
