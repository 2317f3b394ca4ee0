"""Adapters with the exact call shape each TTS pipeline uses for its vocoder, around a :class:`Vocoder`.

    voc = vocoder.plugins.get("espnet", model="model.pt")        # or "speechbrain", "coqui", "nemo"
    wav = voc(feats)                                  # ESPnet AbsVocoder:  [T, n_mels] -> [T * hop]; voc.fs
    wav = sb.decode_batch(spec, mel_lens, hop_len)    # SpeechBrain HIFIGAN: [B, n_mels, T] -> [B, 1, T * hop]
    wav = sb.decode_spectrogram(spec)                 #                      [n_mels, T] -> [1, T * hop]
    wav = coqui.inference(x)                          # Coqui TTS GAN vocoder: [B, n_mels, T] -> [B, 1, T * hop]
    wav = nemo.convert_spectrogram_to_audio(spec=s)   # NeMo Vocoder model:  [B, n_mels, T] -> [B, T * hop]

Each adapter is an ``nn.Module`` (``.to(device)``, ``.eval()`` work as the pipelines call them), takes the mels of
its pipeline's :class:`~vocoder.plugins.conventions.MelConvention` (``convention=`` overrides it) and converts
them to the model's: ``ln(max(mel, floor))`` of the same filterbank. What cannot be reconciled is a ``ValueError``
before any convolution: another sample rate, hop, band count or STFT/filter setting (``source_mel=``,
``sample_rate=``, ``hop_length=``, SpeechBrain's ``hop_len``), or a convention whose filters are not the model's.
A mel whose values look like another convention than the declared one (log10 values declared as natural log,
decibels, standardised features) gets one :class:`MelConventionWarning` per adapter naming the likely one; the
check is a heuristic on the value statistics (:func:`guess_convention`) and ``check_statistics=False`` turns it off.

Third parties add a pipeline by registering a class under the entry-point group ``vocoder.plugins``
(``[project.entry-points."vocoder.plugins"] mytts = "mypkg.module:MyAdapter"``); :func:`get` finds it by name.
"""
from __future__ import annotations

import math
import warnings
from importlib import metadata
from typing import Dict, Optional, Union

import numpy as np
import torch
import torch.nn as nn

from ..audio.mel import MelConfig, as_tensor
from ..inference import Vocoder
from .conventions import MelConvention, get_convention

__all__ = ["PipelineVocoder", "ESPnetVocoder", "SpeechBrainVocoder", "CoquiVocoder", "NeMoVocoder",
           "MelConventionWarning", "guess_convention", "get", "available", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "vocoder.plugins"


class MelConventionWarning(UserWarning):
    """The mel's values suggest another convention than the one the adapter was told."""


# ---------------------------------------------------------------------------------------- convention guess
def _kind(conv: MelConvention) -> str:
    """The value family of a convention, as :func:`guess_convention` names them."""
    if conv.min_level_db is not None:
        return "coqui"
    if conv.scale != 1.0:
        return "db"
    return "ln" if conv.log_base == math.e else "log10"


#: what each guessed family is called in a warning, with a convention that has it
_KIND_NAMES = {
    "ln": "natural-log mels (convention 'hifigan' / 'speechbrain' / 'nemo')",
    "log10": "log10 mels (convention 'espnet' / 'pwg')",
    "db": "decibels, 20*log10 (convention 'db')",
    "coqui": "Coqui's normalised dB in [-4, 4] (convention 'coqui')",
    "standardised": "standardised features (per-band z-scores: undo the TTS model's feature normalisation first, "
                    "e.g. ESPnet's normalize / ParallelWaveGAN's stats)",
}


def guess_convention(mel) -> Optional[str]:
    """The value family a log-mel ``[..., n_mels, T]`` most likely comes in, from its statistics, or ``None``.

    One of ``"ln"``, ``"log10"``, ``"db"``, ``"coqui"`` (normalised to [-4, 4]) or ``"standardised"``. A heuristic
    for speech-like mels: decibels reach below -30 or above 15; standardised features have mean ~0, std ~1 and
    little difference between the bands' means; Coqui's stay in [-4, 4] and either reach above 1 or are clipped at
    -4; values under -10 are below log10's floor (1e-10); a spread (1st to 99th percentile) under 4 with a mean
    above -4 is log10 (natural-log mels of speech span 5-12 nats and sit lower). Stationary loud noise can read
    as log10.
    """
    x = as_tensor(mel, "a mel").detach().float()
    if x.dim() < 2 or x.numel() < 16 or not bool(torch.isfinite(x).all()):
        return None
    flat = x.reshape(-1)
    if flat.numel() > 65536:  # quantiles of a strided sample: enough for a hint, cheap for long batches
        flat = flat[:: flat.numel() // 65536 + 1]
    lo, hi = float(flat.min()), float(flat.max())
    mean, std = float(flat.mean()), float(flat.std())
    q01, q99 = torch.quantile(flat, torch.tensor([0.01, 0.99], dtype=flat.dtype)).tolist()
    if lo < -30.0 or hi > 15.0:
        return "db"
    band_means = x.transpose(-1, -2).reshape(-1, x.shape[-2]).mean(0)  # [n_mels]
    if abs(mean) < 1.0 and 0.4 < std < 2.0 and float(band_means.std()) < 0.5 * std:
        return "standardised"
    if lo >= -4.0001 and hi <= 4.0001 and (hi > 1.0 or float((flat <= -3.999).float().mean()) > 0.01):
        return "coqui"
    if lo < -10.01:
        return "ln"
    spread = q99 - q01
    if spread < 4.0 and mean > -4.0:
        return "log10"
    if spread > 5.0 or mean < -4.5:
        return "ln"
    return None


# ---------------------------------------------------------------------------------------- the adapters
_STFT_FIELDS = ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "fmin", "fmax", "mel_scale",
                "mel_norm")


class PipelineVocoder(nn.Module):
    """The common part of the adapters: a :class:`Vocoder`, the pipeline's mel convention, the checks.

    Args:
        model: a :class:`Vocoder`, or anything :meth:`Vocoder.from_pretrained` reads (a Hub repo id
            ``"org/name[@REVISION]"`` included, cached where huggingface_hub caches; ``None``: the shipped model).
        convention: the convention of the mels the pipeline passes (name or :class:`MelConvention`); each adapter
            defaults to its pipeline's.
        source_mel: the TTS model's STFT / mel settings; each of sample rate, n_fft, hop, window, bands, fmin,
            fmax and filters must equal the vocoder's, else ``ValueError``.
        sample_rate, hop_length: the pipeline's, when it has them but no full ``MelConfig`` (checked likewise).
        check_statistics: warn once when the values look like another convention (:func:`guess_convention`).
        device: where a model loaded here runs.
    """

    #: the pipeline's name (registry key) and its mel convention
    pipeline = ""
    default_convention = "hifigan"

    def __init__(self, model=None, convention: Union[str, MelConvention, None] = None,
                 source_mel: Optional[MelConfig] = None, sample_rate: Optional[int] = None,
                 hop_length: Optional[int] = None, check_statistics: bool = True, device="cpu"):
        super().__init__()
        if not isinstance(model, Vocoder):
            model = Vocoder.from_pretrained(model, device=device)
        self.vocoder = model
        self.convention = get_convention(self.default_convention if convention is None else convention)
        self.check_statistics = check_statistics
        self._warned = False
        mel = model.mel_config
        self._check_filters(self.convention)
        if source_mel is not None:
            if not isinstance(source_mel, MelConfig):
                raise ValueError(f"source_mel must be a MelConfig, got {type(source_mel).__name__}")
            a, b = source_mel.to_dict(), mel.to_dict()
            for d in (a, b):
                d["fmax"] = d["sample_rate"] / 2 if d["fmax"] is None else float(d["fmax"])
            diff = [f"{k}: pipeline {a[k]} vs model {b[k]}" for k in _STFT_FIELDS if a[k] != b[k]]
            if diff:
                raise ValueError(f"{self.pipeline or type(self).__name__}: the pipeline's mels cannot be made into "
                                 f"the model's ({'; '.join(diff)})")
        self._check_rate(sample_rate)
        self._check_hop(hop_length)

    # ------------------------------------------------------------------------------------ properties
    @property
    def sample_rate(self) -> int:
        return self.vocoder.sample_rate

    @property
    def hop_length(self) -> int:
        return self.vocoder.hop_length

    @property
    def n_mels(self) -> int:
        return self.vocoder.n_mels

    # ------------------------------------------------------------------------------------ checks
    def _check_filters(self, conv: MelConvention) -> None:
        mel = self.vocoder.mel_config
        if (conv.mel_scale, conv.mel_norm) != (mel.mel_scale, mel.mel_norm):
            raise ValueError(f"{self.pipeline or type(self).__name__}: convention {conv.name} has {conv.mel_scale} "
                             f"filters (norm={conv.mel_norm}), the model takes {mel.mel_scale} filters "
                             f"(norm={mel.mel_norm}); no conversion between filterbanks")

    def _check_rate(self, sample_rate) -> None:
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            raise ValueError(f"{self.pipeline or type(self).__name__}: the pipeline runs at {sample_rate} Hz, the "
                             f"model at {self.sample_rate} Hz (its mels have other frames and bands: no conversion)")

    def _check_hop(self, hop_length) -> None:
        if hop_length is not None and int(hop_length) != self.hop_length:
            raise ValueError(f"{self.pipeline or type(self).__name__}: the pipeline's hop is {hop_length} samples, "
                             f"the model's {self.hop_length} (one frame makes {self.hop_length} samples)")

    def _warn_if_other_convention(self, x: torch.Tensor, conv: MelConvention) -> None:
        if self._warned or not self.check_statistics:
            return
        guess = guess_convention(x)
        declared = _kind(conv)
        if guess is not None and guess != declared:
            self._warned = True
            warnings.warn(f"{self.pipeline or type(self).__name__}: the mel was declared {conv.name} "
                          f"({_KIND_NAMES[declared]}) but its values look like {_KIND_NAMES[guess]}; pass the right "
                          f"convention= (this warning is shown once)", MelConventionWarning, stacklevel=3)

    def to_model_mel(self, mel, what: str = "a mel [n_mels, T]",
                     convention: Union[str, MelConvention, None] = None) -> torch.Tensor:
        """The pipeline's mel ``[..., n_mels, T]`` (band axis already at -2) -> the model's log-mel, as a float
        tensor on the model's device; every check runs here, before any convolution. ``convention`` overrides the
        adapter's for this call."""
        conv = self.convention if convention is None else get_convention(convention)
        if conv is not self.convention:
            self._check_filters(conv)
        x = as_tensor(mel, what)
        if not x.is_floating_point():
            raise ValueError(f"{self.pipeline}: expected a float mel, got dtype {x.dtype}")
        if x.dim() not in (2, 3) or x.shape[-2] != self.n_mels or x.shape[-1] == 0:
            raise ValueError(f"{self.pipeline}: expected {what} with {self.n_mels} bands, got shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{self.pipeline}: mel contains NaN or inf values")
        self._warn_if_other_convention(x, conv)
        ln = conv.to_ln(x.detach().double())
        floor = math.log(self.vocoder.mel_config.log_floor)
        return torch.clamp(ln, min=floor).to(device=self.vocoder.device, dtype=torch.float32)

    def decode(self, mel: torch.Tensor, lengths=None) -> torch.Tensor:
        """Our mel ``[B, n_mels, T]`` -> ``[B, T * hop]`` (see :meth:`Vocoder.forward`)."""
        return self.vocoder(mel, lengths=lengths)

    def extra_repr(self) -> str:
        return f"pipeline={self.pipeline!r}, convention={self.convention.name!r}"


def _like_input(wav: torch.Tensor, mel) -> Union[torch.Tensor, np.ndarray]:
    """Numpy in -> numpy out; a tensor in -> a float32 tensor on the input's device."""
    if isinstance(mel, np.ndarray):
        return wav.cpu().numpy()
    return wav.to(mel.device)


class ESPnetVocoder(PipelineVocoder):
    """ESPnet2 ``AbsVocoder``: ``vocoder(feats [T, n_mels]) -> wav [T * hop]``, attribute ``fs``.

    ESPnet's ``Text2Speech`` calls ``self.vocoder(feat_gen)`` with the TTS model's denormalised features (log10
    mels, :data:`~vocoder.plugins.conventions.ESPNET`). ``fs`` is the model's sample rate.
    """

    pipeline = "espnet"
    default_convention = "espnet"

    @property
    def fs(self) -> int:
        return self.sample_rate

    @torch.no_grad()
    def forward(self, input):  # ESPnet's AbsVocoder.forward(input: [T, n_mels]) -> [T * hop]
        x = as_tensor(input, "ESPnet features [T, n_mels]")
        if x.dim() != 2 or x.shape[-1] != self.n_mels:
            hint = " (it looks transposed: [n_mels, T])" if x.dim() == 2 and x.shape[0] == self.n_mels else ""
            raise ValueError(f"espnet: expected features [T, n_mels={self.n_mels}], got shape "
                             f"{tuple(x.shape)}{hint}")
        mel = self.to_model_mel(x.transpose(0, 1), "features [T, n_mels]")
        return _like_input(self.decode(mel), input)


class SpeechBrainVocoder(PipelineVocoder):
    """SpeechBrain's ``HIFIGAN`` interface: ``decode_batch(spec [B, n_mels, T], mel_lens=None, hop_len=None) ->
    [B, 1, T * hop]`` and ``decode_spectrogram(spec [n_mels, T]) -> [1, T * hop]`` (SpeechBrain 1.x returns the
    waveform alone; the rate is ``sample_rate``).

    ``mel_lens`` are frames per item (integers; floats <= 1 are SpeechBrain's relative lengths): samples past
    ``mel_lens[i] * hop`` are zero and each item equals its own decode. ``hop_len``, when given, must be the model's.
    """

    pipeline = "speechbrain"
    default_convention = "speechbrain"

    def _lengths(self, mel_lens, batch: int, frames: int):
        if mel_lens is None:
            return None
        n = as_tensor(mel_lens, "mel_lens").detach().cpu().reshape(-1)
        if n.numel() != batch:
            raise ValueError(f"speechbrain: expected {batch} mel_lens (one per item), got {n.numel()}")
        if n.is_floating_point():
            n = n * frames if bool((n <= 1.0).all()) else n  # relative lengths, as SpeechBrain's data loaders give
            n = torch.round(n)
        return [int(v) for v in n.tolist()]

    @torch.no_grad()
    def decode_batch(self, spectrogram, mel_lens=None, hop_len=None):
        self._check_hop(hop_len)
        x = as_tensor(spectrogram, "a mel batch [B, n_mels, T]")
        if x.dim() != 3:
            raise ValueError(f"speechbrain: decode_batch expects [B, n_mels={self.n_mels}, T], got shape "
                             f"{tuple(x.shape)}")
        lengths = self._lengths(mel_lens, x.shape[0], x.shape[-1])
        mel = self.to_model_mel(x, "a mel batch [B, n_mels, T]")
        wav = self.decode(mel, lengths=lengths)
        return _like_input(wav.unsqueeze(1), spectrogram)

    @torch.no_grad()
    def decode_spectrogram(self, spectrogram):
        x = as_tensor(spectrogram, "a mel [n_mels, T]")
        if x.dim() != 2:
            raise ValueError(f"speechbrain: decode_spectrogram expects [n_mels={self.n_mels}, T], got shape "
                             f"{tuple(x.shape)}")
        wav = self.decode(self.to_model_mel(x))
        return _like_input(wav.reshape(1, -1), spectrogram)

    def forward(self, spectrogram):
        return self.decode_batch(spectrogram)


class CoquiVocoder(PipelineVocoder):
    """Coqui TTS GAN vocoder: ``inference(x [B, n_mels, T]) -> [B, 1, T * hop]`` (the synthesizer passes
    ``[1, n_mels, T]`` in its ``AudioProcessor``'s normalised dB, :data:`~vocoder.plugins.conventions.COQUI`)."""

    pipeline = "coqui"
    default_convention = "coqui"

    @torch.no_grad()
    def inference(self, x, **kwargs):
        t = as_tensor(x, "a mel [B, n_mels, T]")
        if t.dim() == 2:
            t = t.unsqueeze(0)
        mel = self.to_model_mel(t, "a mel [B, n_mels, T]")
        return _like_input(self.decode(mel).unsqueeze(1), x)

    def forward(self, x):
        return self.inference(x)


class NeMoVocoder(PipelineVocoder):
    """NeMo ``Vocoder`` model: ``convert_spectrogram_to_audio(spec [B, n_mels, T]) -> [B, T * hop]`` (NeMo's
    TTS models emit natural-log mels, :data:`~vocoder.plugins.conventions.NEMO`)."""

    pipeline = "nemo"
    default_convention = "nemo"

    @torch.no_grad()
    def convert_spectrogram_to_audio(self, spec, **kwargs):
        t = as_tensor(spec, "a mel [B, n_mels, T]")
        if t.dim() != 3:
            raise ValueError(f"nemo: convert_spectrogram_to_audio expects [B, n_mels={self.n_mels}, T], got shape "
                             f"{tuple(t.shape)}")
        return _like_input(self.decode(self.to_model_mel(t, "a mel [B, n_mels, T]")), spec)

    def forward(self, spec):
        return self.convert_spectrogram_to_audio(spec)


# ---------------------------------------------------------------------------------------- registry
_BUILTIN: Dict[str, type] = {"espnet": ESPnetVocoder, "speechbrain": SpeechBrainVocoder, "coqui": CoquiVocoder,
                             "nemo": NeMoVocoder}


def _entry_points() -> Dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list:
    """Adapter names: the built-in ones and those registered under the ``vocoder.plugins`` entry-point group."""
    return sorted(set(_BUILTIN) | set(_entry_points()))


def get(name: str, model=None, **kwargs) -> PipelineVocoder:
    """The adapter for pipeline ``name`` around ``model`` (a :class:`Vocoder` or anything ``from_pretrained``
    reads); ``kwargs`` go to the adapter (``convention``, ``source_mel``, ``sample_rate``, ``hop_length``, ...).

    Names come from the entry-point group ``vocoder.plugins`` (this package registers its four there); the
    built-in classes are used when the package metadata is not installed.
    """
    eps = _entry_points()
    if name in eps:
        cls = eps[name].load()
    elif name in _BUILTIN:
        cls = _BUILTIN[name]
    else:
        raise ValueError(f"unknown TTS pipeline {name!r}; known: {available()}")
    return cls(model, **kwargs)
