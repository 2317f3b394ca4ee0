"""Amplitude/phase oracle swaps for Fourier-head generators: which half of the predicted spectrum limits the audio.

A Fourier-head generator (the ``vocos`` family) predicts a log-amplitude and a phase per STFT bin and frame. Giving
its inverse STFT the reference clip's phase with the predicted amplitude (and the other way round) says how good
each half is on its own: if "predicted amplitude + reference phase" scores like the reference, the phase is what
is left to learn. Optionally, the predicted amplitude also goes through the Griffin-Lim baseline's phase retrieval
(the bar a learned phase has to beat). ``scripts/phase_oracle.py`` scores the swaps with
:func:`vocoder.evaluation.evaluate_pair` and the MOS predictors.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F

from ..audio.mel import MelConfig
from ..generators.vocos import MAX_AMPLITUDE
from ..losses.fourier import STFTFrames
from .griffin_lim import magnitude_griffin_lim

VOCODER = "vocoder"
AMPLITUDE_ORACLE = "vocoder_amplitude+reference_phase"
PHASE_ORACLE = "reference_amplitude+vocoder_phase"
SWAPS = (VOCODER, AMPLITUDE_ORACLE, PHASE_ORACLE)
#: with ``griffin_lim_config``: the predicted amplitude, phase from :func:`magnitude_griffin_lim`
AMPLITUDE_GRIFFIN_LIM = "vocoder_amplitude+griffin_lim"

#: log of the reference's amplitude is taken above this (an exact zero would give -inf)
_AMPLITUDE_FLOOR = 1e-10


def reference_spectrum(generator, wav: torch.Tensor, n_frames: int) -> torch.Tensor:
    """The clip's complex STFT ``[1, n_fft//2+1, n_frames]`` in the framing the generator's inverse STFT undoes.

    ``wav``: ``[T]``; cut or zero-padded to ``n_frames * hop`` samples first, the length the generator makes.
    """
    cfg = generator.config
    length = n_frames * cfg.hop_length
    wav = wav.reshape(-1)[:length]
    wav = F.pad(wav, (0, length - wav.numel()))
    return STFTFrames(cfg.n_fft, cfg.hop_length, cfg.padding).to(wav.device)(wav[None])[..., :n_frames]


@torch.no_grad()
def spectrum_swaps(generator, mel: torch.Tensor, wav: torch.Tensor, griffin_lim_config: Optional[MelConfig] = None,
                   griffin_lim_iters: int = 32) -> Dict[str, torch.Tensor]:
    """The generator's output and the two oracle swaps, each ``[n_frames * hop]``.

    Args:
        generator: a Fourier-head generator: ``spectrum(mel [1, n_mels, T]) -> (log_amplitude, phase)`` each
            ``[1, F, T]``, ``synthesize(log_amplitude, phase) -> [1, 1, T * hop]``, and ``config`` with ``n_fft``,
            ``hop_length``, ``padding``.
        mel: ``[n_mels, T]`` or ``[1, n_mels, T]``, the mel of ``wav``.
        wav: ``[T_samples]``, the reference clip.
        griffin_lim_config: the mel front end's framing; when given, also ``AMPLITUDE_GRIFFIN_LIM``: the predicted
            amplitude through :func:`magnitude_griffin_lim` (``griffin_lim_iters`` iterations from random phase).
    Returns:
        ``{SWAPS[i]: wav}``: the generator's own output; its amplitude with the reference's phase; the reference's
        amplitude with its phase; (+ ``AMPLITUDE_GRIFFIN_LIM``).
    """
    for attr in ("spectrum", "synthesize", "config"):
        if not hasattr(generator, attr):
            raise ValueError(f"amplitude/phase swaps need a Fourier-head generator (the vocos family); "
                             f"{type(generator).__name__} has no .{attr}")
    if mel.dim() == 2:
        mel = mel[None]
    if mel.dim() != 3 or mel.shape[0] != 1:
        raise ValueError(f"mel must be [n_mels, T] or [1, n_mels, T], got {tuple(mel.shape)}")
    log_amp, phase = generator.spectrum(mel)
    ref = reference_spectrum(generator, wav.to(log_amp.device, log_amp.dtype), log_amp.shape[-1])
    ref_log_amp, ref_phase = torch.log(ref.abs().clamp(min=_AMPLITUDE_FLOOR)), torch.angle(ref)
    pairs = {VOCODER: (log_amp, phase), AMPLITUDE_ORACLE: (log_amp, ref_phase), PHASE_ORACLE: (ref_log_amp, phase)}
    out = {name: generator.synthesize(a, p).reshape(-1) for name, (a, p) in pairs.items()}
    if griffin_lim_config is not None:
        out[AMPLITUDE_GRIFFIN_LIM] = magnitude_griffin_lim(torch.exp(log_amp[0]).clip(max=MAX_AMPLITUDE),
                                                           griffin_lim_config, griffin_lim_iters)
    return out
