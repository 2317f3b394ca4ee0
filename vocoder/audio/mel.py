"""The log-mel front end vocoders train on: HiFi-GAN's / BigVGAN's by default, Vocos's as an option.

Exactness matters here: a vocoder only works on mels computed the way it was trained. With its defaults
:class:`MelConfig` reproduces BigVGAN's ``meldataset.mel_spectrogram`` (itself HiFi-GAN's) to float32 rounding:
reflect padding of ``(n_fft - hop) / 2`` on each side, no centring, a periodic Hann window, magnitude
``sqrt(re^2 + im^2 + 1e-9)``, Slaney-normalised mel filters from librosa, natural log clamped at 1e-5.

The fields ``center``, ``mel_scale``, ``mel_norm``, ``magnitude_eps`` and ``log_floor`` describe other front ends;
``MelConfig(..., center=True, mel_scale="htk", mel_norm=None, magnitude_eps=0.0, log_floor=1e-7, fmax=None)`` is
Vocos's ``MelSpectrogramFeatures(padding="center")`` (torchaudio's ``MelSpectrogram(power=1)``, then
``log(clip(x, 1e-7))``), and the same with ``center=False`` its ``padding="same"``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import librosa
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["MelConfig", "mel_spectrogram", "mel_filterbank", "spectral_normalize", "MelSpectrogram", "log_mel", "stft",
           "linear_spectrogram", "as_tensor", "check_mel", "max_log_mel", "mel_limit", "MEL_HEADROOM",
           "check_mel_range", "NonFiniteAudio", "check_audio"]


MEL_SCALES = ("slaney", "htk")
MEL_NORMS = ("slaney", None)


@dataclass(frozen=True)
class MelConfig:
    """How a waveform becomes a log-mel spectrogram. ``fmax=None`` means ``sample_rate / 2``.

    ``log(max(mel_filters @ magnitude, log_floor))`` with ``magnitude = sqrt(re^2 + im^2 + magnitude_eps)`` of an STFT
    with a periodic Hann window of ``win_length`` samples. The defaults are HiFi-GAN's / BigVGAN's mel; checkpoints
    written before the last five fields existed hold none of them and load as those defaults.

    Framing, for ``T`` samples (a multiple of ``hop_length``):

    - ``center=False``: reflect padding of ``(n_fft - hop) / 2`` on each side, no centring: ``T // hop`` frames, frame
      ``t`` covers samples ``[t * hop - (n_fft - hop) / 2, t * hop + (n_fft + hop) / 2)``, centred on
      ``t * hop + hop / 2`` (HiFi-GAN, BigVGAN, Vocos ``padding="same"``).
    - ``center=True``: ``torch.stft(center=True, pad_mode="reflect")``: ``T // hop + 1`` frames, frame ``t`` centred
      on sample ``t * hop`` (torchaudio's default, Vocos ``padding="center"``).
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: Optional[float] = 8000.0
    #: frame ``t`` centred on sample ``t * hop`` (``T // hop + 1`` frames) instead of HiFi-GAN's padding (``T // hop``)
    center: bool = False
    #: mel scale of the filters: ``"slaney"`` (librosa's default) or ``"htk"`` (torchaudio's default)
    mel_scale: str = "slaney"
    #: filter normalisation: ``"slaney"`` (unit area, librosa's default) or ``None`` (peak 1, torchaudio's default)
    mel_norm: Optional[str] = "slaney"
    #: added to ``re^2 + im^2`` under the square root: HiFi-GAN's 1e-9; 0 is the plain ``|X|`` (torchaudio, power=1)
    magnitude_eps: float = 1e-9
    #: the mel is clamped at this before the natural log: HiFi-GAN's 1e-5, Vocos's 1e-7
    log_floor: float = 1e-5

    def __post_init__(self):
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError(f"MelConfig values must be positive, got {self}")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
        if not self.center and (self.n_fft - self.hop_length) % 2:
            raise ValueError(
                f"n_fft - hop_length must be even for symmetric padding, got {self.n_fft} - {self.hop_length}"
            )
        nyquist = self.sample_rate / 2
        if self.fmax is not None and not (self.fmin < self.fmax <= nyquist):
            raise ValueError(f"need fmin < fmax <= sample_rate/2 ({nyquist}), got fmin={self.fmin}, fmax={self.fmax}")
        if not isinstance(self.center, bool):
            raise ValueError(f"center must be a bool, got {self.center!r}")
        if self.mel_scale not in MEL_SCALES:
            raise ValueError(f"mel_scale must be one of {MEL_SCALES}, got {self.mel_scale!r}")
        if self.mel_norm not in MEL_NORMS:
            raise ValueError(f"mel_norm must be one of {MEL_NORMS}, got {self.mel_norm!r}")
        if not self.magnitude_eps >= 0:
            raise ValueError(f"magnitude_eps must be >= 0, got {self.magnitude_eps}")
        if not self.log_floor > 0:
            raise ValueError(f"log_floor must be > 0, got {self.log_floor}")

    def num_frames(self, num_samples: int) -> int:
        """Frames of the mel of ``num_samples`` samples: ``T // hop`` (``center=False``), ``T // hop + 1`` (centred)."""
        if self.center:
            return num_samples // self.hop_length + 1
        return (num_samples + 2 * self.padding - self.n_fft) // self.hop_length + 1

    @property
    def padding(self) -> int:
        """Reflect padding on each side: ``(n_fft - hop) / 2``, or ``n_fft // 2`` when centred."""
        return self.n_fft // 2 if self.center else (self.n_fft - self.hop_length) // 2

    @property
    def min_samples(self) -> int:
        """The shortest audio the front end takes (reflect padding needs more samples than it pads)."""
        return self.padding + 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MelConfig":
        """Build from our own dict or from an official HiFi-GAN / BigVGAN ``config.json``."""
        keys = {
            "sample_rate": ("sample_rate", "sampling_rate"),
            "n_fft": ("n_fft",),
            "hop_length": ("hop_length", "hop_size"),
            "win_length": ("win_length", "win_size"),
            "n_mels": ("n_mels", "num_mels"),
            "fmin": ("fmin",),
            "fmax": ("fmax",),
            # Absent from official configs and from our checkpoints written before they existed: defaults then.
            "center": ("center",),
            "mel_scale": ("mel_scale",),
            "mel_norm": ("mel_norm",),
            "magnitude_eps": ("magnitude_eps",),
            "log_floor": ("log_floor",),
        }
        out = {}
        for field, aliases in keys.items():
            for a in aliases:
                if a in d:
                    out[field] = d[a]
                    break
        missing = [f for f in ("sample_rate", "n_fft", "hop_length", "n_mels") if f not in out]
        if missing:
            raise ValueError(f"mel config is missing {missing}; got keys {sorted(d)}")
        out.setdefault("win_length", out["n_fft"])
        out.setdefault("fmin", 0.0)
        out.setdefault("fmax", None)
        return cls(**out)


@functools.lru_cache(maxsize=32)
def _filterbank_np(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: Optional[float],
                   mel_scale: str = "slaney", mel_norm: Optional[str] = "slaney"):
    if mel_scale == "slaney":
        return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, norm=mel_norm)
    # HTK filters are torchaudio's (what its MelSpectrogram, and so Vocos, trains on), computed its way: in float32,
    # on bins linspace(0, sample_rate // 2). librosa's float64 HTK filters differ by up to 7e-6, which the narrow
    # low filters turn into 4e-5 in the log-mel.
    from torchaudio.functional import melscale_fbanks  # deferred: ~1 s to import, only HTK filters need it

    f_max = float(sample_rate // 2) if fmax is None else float(fmax)
    fb = melscale_fbanks(n_fft // 2 + 1, float(fmin), f_max, n_mels, sample_rate, norm=mel_norm, mel_scale="htk")
    return fb.T.contiguous().numpy()


def mel_filterbank(config: MelConfig, device=None, dtype=torch.float32) -> torch.Tensor:
    """Mel filters ``[n_mels, n_fft // 2 + 1]``. Slaney scale (the default, with Slaney area normalisation as
    HiFi-GAN uses): librosa's ``filters.mel``; HTK scale: torchaudio's ``melscale_fbanks`` (its float32 arithmetic,
    as torchaudio's ``MelSpectrogram`` and Vocos use it); ``mel_norm`` chooses ``"slaney"`` or no normalisation."""
    fb = _filterbank_np(config.sample_rate, config.n_fft, config.n_mels, float(config.fmin), config.fmax,
                        config.mel_scale, config.mel_norm)
    return torch.from_numpy(fb).to(device=device, dtype=dtype)


def pinv_basis(config: MelConfig) -> torch.Tensor:
    """``pinv(mel_filterbank)`` ``[n_fft // 2 + 1, n_mels]`` (float32, computed in float64): the amplitude prior of
    the Fourier-head generators inverts the mel with it."""
    return torch.linalg.pinv(mel_filterbank(config).double()).float()


def pinv_log_amplitude(basis: torch.Tensor, mel: torch.Tensor, floor: float) -> torch.Tensor:
    """``log clamp(basis @ exp(mel), floor)``: ``[B, n_mels, T] -> [B, n_fft // 2 + 1, T]`` (float32).

    Computed in float64: the pseudo-inverse has entries of both signs, and for mels no spectrum has (a TTS
    model's, random ones) its products cancel down to the floor; in float32 the rounding of that sum depends on
    how the matmul is blocked, i.e. on the number of frames, so a chunk and the whole utterance (streaming vs
    offline) got log-amplitudes apart by up to 5e-4. In float64 both round to the same float32.
    """
    amp = torch.matmul(basis.double(), torch.exp(mel.double()))
    return torch.log(torch.clamp(amp, min=floor)).float()


def spectral_normalize(x: torch.Tensor, clip_val: float = 1e-5) -> torch.Tensor:
    """Natural log with a floor, HiFi-GAN's ``dynamic_range_compression_torch``."""
    return torch.log(torch.clamp(x, min=clip_val))


_WINDOWS: dict = {}


def _hann(win_length: int, device) -> torch.Tensor:
    key = (win_length, str(device))
    if key not in _WINDOWS:
        _WINDOWS[key] = torch.hann_window(win_length, device=device)
    return _WINDOWS[key]


def stft(wav: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor, center: bool = False) -> torch.Tensor:
    """Complex STFT ``[B, n_fft//2+1, frames]`` of ``wav [B, T]`` with this package's two framings.

    ``center=False``: reflect padding of ``(n_fft - hop) / 2`` on each side and no centring (HiFi-GAN's framing:
    ``T // hop`` frames when ``T`` is a multiple of the hop); ``center=True``: ``torch.stft(center=True)`` (reflect,
    ``T // hop + 1`` frames). ``window`` has the window length (zero-padded to ``n_fft`` by ``torch.stft``).
    """
    if center:
        x = wav
    else:
        pad = (n_fft - hop_length) // 2
        x = F.pad(wav.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    return torch.stft(x, n_fft, hop_length=hop_length, win_length=window.shape[0], window=window, center=center,
                      pad_mode="reflect", normalized=False, onesided=True, return_complex=True)


def linear_spectrogram(wav: torch.Tensor, config: MelConfig, window: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Magnitude spectrogram ``[B, n_fft//2+1, frames]`` of ``wav [B, T]`` with the config's framing
    (``frames = config.num_frames(T)``); ``window`` defaults to a periodic Hann window of ``win_length``."""
    if wav.shape[-1] < config.min_samples:
        raise ValueError(f"audio too short for n_fft={config.n_fft}: {wav.shape[-1]} samples "
                         f"(need > {config.padding})")
    if window is None:
        window = _hann(config.win_length, wav.device)
    window = window.to(device=wav.device, dtype=wav.dtype)
    spec = stft(wav, config.n_fft, config.hop_length, window, config.center)
    if config.magnitude_eps == 0:
        return spec.abs()
    return torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + config.magnitude_eps)


def log_mel(wav: torch.Tensor, config: MelConfig, basis: Optional[torch.Tensor] = None,
            window: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The arithmetic of :func:`mel_spectrogram` on ``wav [B, T]`` (float32/float64, no checks): ``[B, n_mels, frames]``.

    ``basis`` (``[n_mels, n_fft//2+1]``) and ``window`` default to the config's; :class:`MelSpectrogram` passes its
    buffers.
    """
    spec = linear_spectrogram(wav, config, window)
    if basis is None:
        basis = mel_filterbank(config, wav.device, spec.dtype)
    mel = torch.matmul(basis.to(device=spec.device, dtype=spec.dtype), spec)
    return spectral_normalize(mel, config.log_floor)


def mel_spectrogram(wav: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Log-mel spectrogram.

    Args:
        wav: ``[T]`` or ``[B, T]`` (or ``[B, 1, T]``) float audio in [-1, 1].
        config: the mel settings.
    Returns:
        ``[n_mels, frames]`` for 1-D input, else ``[B, n_mels, frames]``; ``frames = config.num_frames(T)``:
        ``T // hop_length`` (``center=False``, the default) or ``T // hop_length + 1`` (``center=True``).
    """
    if not torch.is_tensor(wav):
        raise ValueError(f"expected a torch.Tensor waveform, got {type(wav).__name__}")
    if not wav.is_floating_point():
        raise ValueError(f"expected float audio in [-1, 1], got dtype {wav.dtype}")
    squeeze = wav.dim() == 1
    if squeeze:
        wav = wav.unsqueeze(0)
    elif wav.dim() == 3 and wav.shape[1] == 1:
        wav = wav.squeeze(1)
    if wav.dim() != 2:
        raise ValueError(f"expected audio [T], [B, T] or [B, 1, T], got shape {tuple(wav.shape)}")
    orig_dtype = wav.dtype
    if wav.dtype in (torch.float16, torch.bfloat16):
        wav = wav.float()
    mel = log_mel(wav, config).to(orig_dtype)
    return mel.squeeze(0) if squeeze else mel


class MelSpectrogram(torch.nn.Module):
    """``nn.Module`` form of :func:`mel_spectrogram` (filters and window kept as buffers, float32):
    ``[B, T]`` or ``[B, 1, T]`` -> ``[B, n_mels, config.num_frames(T)]``."""

    def __init__(self, config: MelConfig):
        super().__init__()
        self.config = config
        self.register_buffer("basis", mel_filterbank(config), persistent=False)
        self.register_buffer("window", torch.hann_window(config.win_length), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.dim() == 3:
            wav = wav.squeeze(1)
        return log_mel(wav.float(), self.config, self.basis, self.window)


# ------------------------------------------------------------------------------------------- the mel-input contract
def as_tensor(x, what: str) -> torch.Tensor:
    """``x`` as a tensor (a numpy array is wrapped, not copied); anything else -> ``ValueError`` naming ``what``."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not torch.is_tensor(x):
        raise ValueError(f"expected {what} as a torch.Tensor or numpy array, got {type(x).__name__}")
    return x


def check_mel(mel, n_mels: int, layout: str = "any", finite: bool = True,
              config: Optional[MelConfig] = None) -> torch.Tensor:
    """The one check of a log-mel input, before anything reaches a convolution; ``ValueError`` saying what was
    expected and what came (non-float dtype, wrong rank, bands on the wrong axis, no frames, NaN / inf, and with
    ``config`` values above what that front end can produce: :func:`check_mel_range`).

    Args:
        mel: a tensor or numpy array.
        n_mels: the bands expected on dim -2.
        layout: ``"any"``: ``[n_mels, T]`` or ``[B, n_mels, T]``, returned as given; ``"batch"``: ``[B, n_mels, T]``
            only; ``"single"``: ``[n_mels, T]`` or ``[1, n_mels, T]``, returned as ``[n_mels, T]``.
        finite: also refuse NaN / inf (a device sync; generators' forwards skip it).
        config: the model's mel settings: also refuse values over :func:`mel_limit` (a dB or power mel).
    Returns:
        the mel as a tensor, same dtype and device.
    """
    mel = as_tensor(mel, "a mel spectrogram")
    if not mel.is_floating_point():
        raise ValueError(f"expected a float mel spectrogram (log-mel values), got dtype {mel.dtype}")
    ranks = {"any": (2, 3), "batch": (3,), "single": (2, 3)}[layout]
    shapes = {"any": f"[n_mels={n_mels}, T] or [B, {n_mels}, T]", "batch": f"[B, {n_mels}, T]",
              "single": f"[n_mels={n_mels}, T] or [1, {n_mels}, T]"}[layout]
    if mel.dim() not in ranks or (layout == "single" and mel.dim() == 3 and mel.shape[0] != 1):
        raise ValueError(f"expected a mel {shapes}, got shape {tuple(mel.shape)}")
    if mel.shape[-2] != n_mels:
        hint = " (it looks transposed: [T, n_mels])" if mel.shape[-1] == n_mels else ""
        raise ValueError(f"expected {n_mels} mel bands on dim -2 (a mel {shapes}), got shape {tuple(mel.shape)}{hint}")
    if mel.shape[-1] == 0:
        raise ValueError(f"expected at least one mel frame, got shape {tuple(mel.shape)}")
    if mel.dim() == 3 and mel.shape[0] == 0:
        raise ValueError(f"expected a non-empty batch, got shape {tuple(mel.shape)}")
    if finite and not torch.isfinite(mel).all():
        raise ValueError("mel spectrogram contains NaN or inf values")
    if config is not None:
        check_mel_range(mel, config)
    return mel[0] if layout == "single" and mel.dim() == 3 else mel


#: Headroom over :func:`max_log_mel` before a value is refused: ``log(1000)`` nats, i.e. 60 dB over the loudest
#: full-scale signal (TTS models overshoot, mels converted from other front ends are approximate; a dB mel, which
#: reaches tens, and values no audio makes, are still refused).
MEL_HEADROOM = math.log(1000.0)


@functools.lru_cache(maxsize=64)
def max_log_mel(config: MelConfig) -> float:
    """The largest log-mel value any signal in [-1, 1] can give with ``config`` (natural log of magnitude).

    Derivation, for one frame with window ``w`` (periodic Hann of ``win_length``, ``w >= 0``), ``N = n_fft`` and a
    band ``m`` with filter weights ``f_m[k] >= 0``:

    - ``|X[k]| = |sum_n w[n] x[n] e^(-2 pi i k n / N)| <= sum_n w[n]`` for ``|x[n]| <= 1``, so
      ``mel_m = sum_k f_m[k] sqrt(|X[k]|^2 + eps) <= (sum_k f_m[k]) (sum_n w[n] + sqrt(eps))``;
    - Parseval: ``sum_k |X[k]|^2 <= N sum_n w[n]^2`` (one-sided bins are a subset), so by Cauchy-Schwarz
      ``sum_k f_m[k] |X[k]| <= ||f_m||_2 sqrt(N sum_n w[n]^2)``, plus ``(sum_k f_m[k]) sqrt(eps)`` for the eps.

    The bound is ``log(max(max_m min(both), log_floor))``. It is tight within about one nat: a full-scale
    square wave reaches 2.35 against 2.97 for HiFi-GAN's 22 kHz mel (Vocos's 24 kHz HTK mel: 6.8 for a sine
    against 7.6). Inputs are refused above ``max_log_mel(config) + MEL_HEADROOM`` (:func:`mel_limit`).
    """
    fb = mel_filterbank(config, dtype=torch.float64)
    w = torch.hann_window(config.win_length, periodic=True, dtype=torch.float64)
    eps = math.sqrt(config.magnitude_eps)
    area = fb.sum(dim=1)
    peak = area * (float(w.sum()) + eps)
    energy = fb.norm(dim=1) * math.sqrt(config.n_fft * float((w * w).sum())) + area * eps
    top = float(torch.minimum(peak, energy).max())
    return math.log(max(top, config.log_floor))


def mel_limit(config: MelConfig) -> float:
    """The largest log-mel value an input may hold: :func:`max_log_mel` + :data:`MEL_HEADROOM`."""
    return max_log_mel(config) + MEL_HEADROOM


def check_mel_range(mel, config: MelConfig, what: str = "mel spectrogram") -> None:
    """``ValueError`` when a (finite) log-mel holds values no audio in [-1, 1] can give with ``config``.

    Only the top is bounded: values under ``log(log_floor)`` are quieter than silence, which a generator
    renders as (near) silence, and TTS models and other front ends go there.
    """
    top = float(mel.max())
    limit, reach = mel_limit(config), max_log_mel(config)
    if top > limit:
        raise ValueError(
            f"{what} values reach {top:.4g}, above {limit:.2f}, the largest log-mel any audio in [-1, 1] gives with "
            f"this model's mel settings ({reach:.2f}) plus {MEL_HEADROOM:.2f} of headroom; expected natural-log "
            f"magnitudes, log(max(mel_filters @ |STFT|, {config.log_floor:g})), in "
            f"[{math.log(config.log_floor):.1f}, {reach:.1f}]. "
            f"Is it a dB mel (10*log10 power / 20*log10 magnitude), a power mel (|STFT|^2), or another toolkit's "
            f"normalised mel? Convert it (vocoder.plugins.convert_mel) or compute it with vocoder.Vocoder.mel")


class NonFiniteAudio(ValueError):
    """A decode produced NaN / inf samples: refused instead of returned or written (the last guard)."""


def check_audio(wav: torch.Tensor, what) -> torch.Tensor:
    """``wav`` unchanged if every sample is finite, else :class:`NonFiniteAudio` naming the input that produced
    it: ``what``, a string or a callable returning one (built only on failure)."""
    finite = torch.isfinite(wav)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        what = what() if callable(what) else what
        raise NonFiniteAudio(f"the model produced {bad} NaN / inf samples of {wav.numel()} for {what}; "
                             f"refused (check the input's scale and the model's weights)")
    return wav
