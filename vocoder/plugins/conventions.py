"""How other toolkits' log-mels differ from ours, and conversion between them when the filterbanks match.

Ours (HiFi-GAN / BigVGAN, :mod:`vocoder.audio.mel`): magnitude STFT, Slaney mel scale with Slaney area
normalisation (librosa's defaults), natural log of ``max(mel, 1e-5)``, reflect padding of ``(n_fft - hop) / 2``
per side without centring, layout ``[n_mels, T]``.

What other toolkits change, and whether a conversion can undo it:

============  =========  ============  =====  ==========  ======  ===========================================
convention    log        floor         power  filters     centre  other
============  =========  ============  =====  ==========  ======  ===========================================
hifigan       ln         1e-5          1      Slaney      no      (also BigVGAN, SpeechBrain's HiFi-GAN recipes)
espnet        log10      1e-10         1      Slaney      yes     ``[T, n_mels]`` (ESPnet2 TTS LogMelFbank)
pwg           log10      1e-10         1      Slaney      yes     ``[T, n_mels]`` (kan-bayashi/ParallelWaveGAN)
coqui         20 log10   1e-5          1      Slaney      yes     minus ref 20 dB, scaled to [-4, 4] and clipped
db            20 log10   1e-5          1      Slaney      yes     decibels, no normalisation (Coqui, signal_norm off)
nemo          ln         1e-5          1      Slaney      yes     (NeMo TTS AudioToMelSpectrogramPreprocessor)
============  =========  ============  =====  ==========  ======  ===========================================

* log base, dB scale, layout and Coqui's normalisation are undone exactly;
* a floor lower than ours is exact once re-clamped at ours; Coqui's clipping below -100 dB loses what it cut;
* power (``|X|^2``) mels are converted approximately (the mel of a power spectrum is not the square of the mel of
  the magnitude), HTK filters or a different ``fmin/fmax/n_fft`` cannot be converted: ``ValueError``;
* centred framing puts frame ``i`` at sample ``i * hop`` instead of ``i * hop + hop / 2``: half a hop of shift,
  which a vocoder tolerates but no conversion removes (the values are kept, the frame count too).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Union

import numpy as np
import torch

from ..audio.mel import MelConfig

__all__ = ["MelConvention", "CONVENTIONS", "get_convention", "convert_mel", "to_vocoder_mel", "check_filterbanks"]


@dataclass(frozen=True)
class MelConvention:
    """How a toolkit turns a linear mel spectrogram into the features its models exchange.

    ``features = normalise(scale * log_base(max(mel ** power, floor)))`` with ``mel`` the filterbank output of the
    magnitude STFT; ``normalise`` is Coqui's ``(x - ref_level_db)`` then min/max scaling when ``min_level_db`` is set.
    """

    name: str
    log_base: float = math.e           # math.e (natural log) or 10.0
    scale: float = 1.0                  # 20.0 for decibels of magnitude
    floor: float = 1e-5                 # clamp on the (power) mel before the log
    power: float = 1.0                  # 1: magnitude, 2: power spectrum
    mel_scale: str = "slaney"           # "slaney" or "htk"
    mel_norm: Optional[str] = "slaney"  # filter area normalisation: "slaney" or None
    center: bool = False                # True: frames centred at i * hop (librosa / torch.stft center=True)
    time_first: bool = False            # layout [T, n_mels] instead of [n_mels, T]
    ref_level_db: float = 0.0           # Coqui: subtracted before normalising
    min_level_db: Optional[float] = None  # Coqui: None disables the min/max normalisation
    max_norm: float = 4.0
    symmetric_norm: bool = True
    clip_norm: bool = True
    description: str = ""

    def __post_init__(self):
        if self.log_base <= 1 or self.scale <= 0 or self.floor <= 0 or self.power not in (1.0, 2.0):
            raise ValueError(f"invalid mel convention {self}")
        if self.mel_scale not in ("slaney", "htk") or self.mel_norm not in ("slaney", None):
            raise ValueError(f"mel_scale must be 'slaney'/'htk' and mel_norm 'slaney'/None, got {self}")

    @property
    def exact_values(self) -> bool:
        """Whether its values convert to ours exactly (framing aside): magnitude mels, Slaney filters."""
        return self.power == 1.0 and self.mel_scale == "slaney" and self.mel_norm == "slaney"

    # ---------------------------------------------------------------------------- to / from ln magnitude
    def to_ln(self, x: torch.Tensor) -> torch.Tensor:
        """Features in this convention (``[..., n_mels, T]``) -> natural log of the magnitude mel."""
        if self.min_level_db is not None:
            span = -self.min_level_db
            if self.symmetric_norm:
                x = (x + self.max_norm) / (2 * self.max_norm) * span + self.min_level_db
            else:
                x = x / self.max_norm * span + self.min_level_db
            x = x + self.ref_level_db
        x = x / self.scale * math.log(self.log_base)
        return x / self.power

    def from_ln(self, x: torch.Tensor) -> torch.Tensor:
        """Natural log of the magnitude mel -> features in this convention (floor and clipping applied)."""
        x = torch.clamp(x * self.power, min=math.log(self.floor))
        x = x / math.log(self.log_base) * self.scale
        if self.min_level_db is not None:
            x = x - self.ref_level_db
            span = -self.min_level_db
            x = (x - self.min_level_db) / span
            x = (2 * self.max_norm * x - self.max_norm) if self.symmetric_norm else self.max_norm * x
            if self.clip_norm:
                lo = -self.max_norm if self.symmetric_norm else 0.0
                x = torch.clamp(x, lo, self.max_norm)
        return x


HIFIGAN = MelConvention("hifigan", description="HiFi-GAN / BigVGAN / this package: ln(max(mel, 1e-5))")
SPEECHBRAIN = MelConvention("speechbrain", description="SpeechBrain HiFi-GAN recipes: mel_spectogram(compression=True, "
                                                       "power=1, norm/mel_scale='slaney'), same values as ours")
ESPNET = MelConvention("espnet", log_base=10.0, floor=1e-10, center=True, time_first=True,
                       description="ESPnet2 TTS LogMelFbank: log10(max(mel, 1e-10)), centred STFT, [T, n_mels]")
PARALLEL_WAVEGAN = MelConvention("pwg", log_base=10.0, floor=1e-10, center=True, time_first=True,
                                 description="ParallelWaveGAN logmelfilterbank: log10(max(mel, 1e-10)), [T, n_mels]")
COQUI = MelConvention("coqui", log_base=10.0, scale=20.0, floor=1e-5, center=True, ref_level_db=20.0,
                      min_level_db=-100.0, max_norm=4.0, symmetric_norm=True, clip_norm=True,
                      description="Coqui TTS AudioProcessor defaults: 20*log10(max(mel, 1e-5)) - 20 dB, "
                                  "symmetric normalisation to [-4, 4], clipped")

DB = MelConvention("db", log_base=10.0, scale=20.0, floor=1e-5, center=True,
                   description="decibels of the magnitude mel, 20*log10(max(mel, 1e-5)), no normalisation (Coqui TTS "
                               "with signal_norm=False and ref_level_db=0)")
NEMO = MelConvention("nemo", center=True,
                     description="NeMo TTS AudioToMelSpectrogramPreprocessor as its HiFi-GAN configs set it: "
                                 "ln(max(mel, 1e-5)) (log_zero_guard_type=clamp), mag_power 1, Slaney filters, centred")

CONVENTIONS: Dict[str, MelConvention] = {c.name: c for c in (HIFIGAN, SPEECHBRAIN, ESPNET, PARALLEL_WAVEGAN, COQUI,
                                                                DB, NEMO)}
CONVENTIONS["bigvgan"] = HIFIGAN
CONVENTIONS["ours"] = HIFIGAN
CONVENTIONS["parallel_wavegan"] = PARALLEL_WAVEGAN


def get_convention(convention: Union[str, MelConvention]) -> MelConvention:
    if isinstance(convention, MelConvention):
        return convention
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown mel convention {convention!r}; known: {sorted(CONVENTIONS)}")
    return CONVENTIONS[convention]


def check_filterbanks(source: MelConvention, source_mel: Optional[MelConfig], target_mel: Optional[MelConfig]) -> None:
    """``ValueError`` unless the source's mel filters are ours (Slaney) and, when both are given, its STFT / mel
    settings equal the vocoder's (sample rate, n_fft, hop, win, n_mels, fmin, fmax)."""
    if source.mel_scale != "slaney" or source.mel_norm != "slaney":
        raise ValueError(f"{source.name} uses {source.mel_scale} filters with norm={source.mel_norm}; the vocoder "
                         f"expects Slaney filters with Slaney normalisation: no conversion between filterbanks")
    if source_mel is not None and target_mel is not None:
        a, b = source_mel.to_dict(), target_mel.to_dict()
        if a["fmax"] is None:
            a["fmax"] = a["sample_rate"] / 2
        if b["fmax"] is None:
            b["fmax"] = b["sample_rate"] / 2
        diff = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
        if diff:
            shown = ", ".join(f"{k}: source {x} vs vocoder {y}" for k, (x, y) in diff.items())
            raise ValueError(f"the {source.name} mels were made with other settings than the vocoder's ({shown})")


def convert_mel(mel, source: Union[str, MelConvention], target: Union[str, MelConvention] = "hifigan",
                source_mel: Optional[MelConfig] = None, target_mel: Optional[MelConfig] = None):
    """Convert log-mel features between conventions (same filterbank).

    Args:
        mel: ``[n_mels, T]`` / ``[B, n_mels, T]``, or ``[T, n_mels]`` / ``[B, T, n_mels]`` for time-first conventions;
            a torch tensor or numpy array (the result has the same type).
        source, target: convention names (:data:`CONVENTIONS`) or :class:`MelConvention` objects.
        source_mel, target_mel: optional STFT / mel settings, checked for equality.
    Returns:
        the features in ``target``'s layout and scale.
    """
    src, dst = get_convention(source), get_convention(target)
    check_filterbanks(src, source_mel, target_mel)
    check_filterbanks(dst, None, None)
    is_numpy = isinstance(mel, np.ndarray)
    x = torch.from_numpy(np.ascontiguousarray(mel)) if is_numpy else mel
    if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() not in (2, 3):
        raise ValueError(f"expected a float mel [n_mels, T] or [B, n_mels, T], got "
                         f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    if src.time_first:
        x = x.transpose(-1, -2)
    y = dst.from_ln(src.to_ln(x.double())).to(x.dtype)
    if dst.time_first:
        y = y.transpose(-1, -2)
    y = y.contiguous()
    return y.numpy() if is_numpy else y


def to_vocoder_mel(mel, source: Union[str, MelConvention], source_mel: Optional[MelConfig] = None,
                   target_mel: Optional[MelConfig] = None):
    """Features of ``source`` -> this package's log-mel ``[n_mels, T]`` (or ``[B, n_mels, T]``)."""
    return convert_mel(mel, source, HIFIGAN, source_mel, target_mel)
