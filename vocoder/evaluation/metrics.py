"""Objective metrics between a reference waveform and a resynthesised one.

Every metric is a plain function ``metric(ref [T], hyp [T], sample_rate) -> float`` (the mel metrics also take
the :class:`~vocoder.audio.mel.MelConfig` they measure with); :func:`evaluate_pair` runs them all. Both signals
are at the same rate and are trimmed to the shorter length first (a vocoder returns ``frames * hop`` samples,
usually a few fewer than the file it was given).

Definitions (the ones BigVGAN / BigVSAN / CARGAN report, with the deviations said where they are):

- ``pesq``: wide-band PESQ (ITU-T P.862.2) of both signals resampled to 16 kHz; range about -0.5 .. 4.64.
- ``stoi``: short-time objective intelligibility (pystoi, which resamples to 10 kHz itself); 0 .. 1.
- ``mstft``: auraloss ``MultiResolutionSTFTLoss()`` at its defaults (FFT 1024/2048/512, hop 120/240/50,
  win 600/1200/240, spectral convergence + log magnitude), the "M-STFT" column of BigVGAN's tables.
- ``mel_l1``: mean absolute difference of the two log-mel spectrograms (natural log, our front end).
- ``mcd``: mel-cepstral distortion in dB. Mel-cepstrum = DCT-II, scaled by ``1 / n_mels``, of the natural-log
  mel magnitudes of our front end (so ``log-mel_n = c0 + 2 sum_k c_k cos(pi k (n + 1/2) / n_mels)``, the
  real-cepstrum convention), coefficients c1..c24 (c0, the energy term, excluded); per frame
  ``10 / ln 10 * sqrt(2 * sum_d (c_d - c'_d)^2)``, averaged over frames. The frames are aligned, so no DTW.
  (BigVSAN's script uses SPTK mel-generalised cepstra with DTW instead; values are not interchangeable.)
- ``periodicity``: RMSE of CREPE periodicity (torchcrepe "tiny", 16 kHz, 10 ms hop, weighted-argmax decoder,
  frames under -60 dB A-weighted loudness set to 0) over the frames voiced in the reference.
  ``periodicity_all``: the same over all frames, CARGAN's / BigVGAN's definition.
- ``vuv_f1``: F1 of the voiced/unvoiced decision (periodicity >= 0.21) of the resynthesis against the
  reference's. Both signals all-unvoiced count as 1.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import math
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from ..audio.io import resample
from ..audio.mel import MelConfig, mel_spectrogram

__all__ = [
    "align", "as_1d", "pesq_wb", "stoi", "multi_resolution_stft", "mel_l1", "mel_cepstral_distortion",
    "crepe_periodicity", "periodicity_metrics", "evaluate_pair", "METRICS", "HIGHER_IS_BETTER",
    "PESQ_RATE", "CREPE_RATE", "UNVOICED_THRESHOLD", "SILENCE_DB", "MCD_COEFFS",
]

log = logging.getLogger(__name__)

PESQ_RATE = 16000
CREPE_RATE = 16000  # torchcrepe.SAMPLE_RATE; resampling ourselves keeps resampy out of the path
CREPE_HOP = 160  # 10 ms at 16 kHz
CREPE_FMIN, CREPE_FMAX = 50.0, 550.0  # speech range, as CARGAN
UNVOICED_THRESHOLD = 0.21  # CARGAN / BigVGAN evaluation
SILENCE_DB = -60.0
MCD_COEFFS = 24  # c1..c24

# Names in the order the report prints them, and which way is better.
METRICS = ("pesq", "stoi", "mstft", "mel_l1", "mcd", "periodicity", "periodicity_all", "vuv_f1")
HIGHER_IS_BETTER = {"pesq": True, "stoi": True, "mstft": False, "mel_l1": False, "mcd": False,
                    "periodicity": False, "periodicity_all": False, "vuv_f1": True}


def as_1d(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not torch.is_tensor(x):
        raise ValueError(f"expected {name} as a tensor or numpy array, got {type(x).__name__}")
    x = x.detach().to("cpu", torch.float32)
    if x.dim() > 1:
        if x.numel() != x.shape[-1]:
            raise ValueError(f"expected mono {name} [T] (or [1, T], [1, 1, T]), got shape {tuple(x.shape)}")
        x = x.reshape(-1)
    if x.dim() != 1 or x.numel() == 0:
        raise ValueError(f"expected a non-empty mono {name} [T], got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf samples")
    return x


def align(ref, hyp) -> Tuple[torch.Tensor, torch.Tensor]:
    """Both as float32 CPU ``[T]``, trimmed to the shorter length."""
    ref, hyp = as_1d(ref, "reference"), as_1d(hyp, "resynthesis")
    n = min(ref.numel(), hyp.numel())
    return ref[:n], hyp[:n]


def _pesq_16k(r16: torch.Tensor, h16: torch.Tensor) -> float:
    from pesq import pesq as _pesq
    from pesq import PesqError

    try:
        return float(_pesq(PESQ_RATE, r16.numpy().astype(np.float64), h16.numpy().astype(np.float64), "wb"))
    except PesqError as e:  # no utterance detected, too short, ...
        log.warning("PESQ undefined for this clip: %s", e)
        return float("nan")


def pesq_wb(ref, hyp, sample_rate: int) -> float:
    """Wide-band PESQ at 16 kHz; NaN when PESQ finds no speech (e.g. silence)."""
    ref, hyp = align(ref, hyp)
    return _pesq_16k(resample(ref, sample_rate, PESQ_RATE), resample(hyp, sample_rate, PESQ_RATE))


def stoi(ref, hyp, sample_rate: int, extended: bool = False) -> float:
    """STOI (pystoi resamples to its 10 kHz internally)."""
    from pystoi import stoi as _stoi

    ref, hyp = align(ref, hyp)
    return float(_stoi(ref.numpy().astype(np.float64), hyp.numpy().astype(np.float64), sample_rate,
                       extended=extended))


@functools.lru_cache(maxsize=1)
def _mrstft_module():
    import auraloss  # built on first use (windows only, no learnable state), not at import

    return auraloss.freq.MultiResolutionSTFTLoss()


def multi_resolution_stft(ref, hyp, sample_rate: int = 0) -> float:
    """auraloss ``MultiResolutionSTFTLoss()`` at its defaults, ``loss(hyp, ref)`` (rate-independent)."""
    ref, hyp = align(ref, hyp)
    with torch.no_grad():
        return float(_mrstft_module()(hyp.view(1, 1, -1), ref.view(1, 1, -1)))


def mel_l1(ref, hyp, mel_config: MelConfig) -> float:
    """Mean ``|log-mel(ref) - log-mel(hyp)|`` with our front end."""
    ref, hyp = align(ref, hyp)
    with torch.no_grad():
        return float((mel_spectrogram(ref, mel_config) - mel_spectrogram(hyp, mel_config)).abs().mean())


def _cepstrum_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """DCT-II basis scaled by ``1 / n_in``: ``[n_out, n_in]``, rows k = 0..n_out-1.

    With this scale ``x_n = c_0 + 2 * sum_k c_k cos(pi k (n + 1/2) / n_in)``: the real-cepstrum convention
    (log-magnitude = c0 + 2 sum c_k cos(k w)) under which the MCD formula holds.
    """
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    return torch.cos(math.pi / n_in * (n + 0.5) * k) / n_in


def mel_cepstrum(wav: torch.Tensor, mel_config: MelConfig, n_coeffs: int = MCD_COEFFS) -> torch.Tensor:
    """Mel-cepstra ``[frames, n_coeffs]``: c1..c_n of our natural-log mel (see :func:`_cepstrum_matrix`)."""
    if n_coeffs >= mel_config.n_mels:
        raise ValueError(f"n_coeffs must be < n_mels ({mel_config.n_mels}), got {n_coeffs}")
    with torch.no_grad():
        logmel = mel_spectrogram(wav, mel_config).double()  # [n_mels, frames]
    return (_cepstrum_matrix(mel_config.n_mels, n_coeffs + 1) @ logmel)[1:].T


def mel_cepstral_distortion(ref, hyp, mel_config: MelConfig, n_coeffs: int = MCD_COEFFS) -> float:
    """MCD in dB, frame-aligned (see the module docstring for the exact definition)."""
    ref, hyp = align(ref, hyp)
    diff = mel_cepstrum(ref, mel_config, n_coeffs) - mel_cepstrum(hyp, mel_config, n_coeffs)
    per_frame = (10.0 / math.log(10.0)) * torch.sqrt(2.0 * diff.pow(2).sum(-1))
    return float(per_frame.mean())


def _crepe_16k(x16: torch.Tensor, model: str) -> Tuple[torch.Tensor, torch.Tensor]:
    import torchcrepe

    x = x16.reshape(1, -1)
    with torch.no_grad():
        pitch, periodicity = torchcrepe.predict(
            x, CREPE_RATE, CREPE_HOP, CREPE_FMIN, CREPE_FMAX, model=model, return_periodicity=True,
            batch_size=512, device="cpu", decoder=torchcrepe.decode.weighted_argmax, pad=True,
        )
        periodicity = torchcrepe.threshold.Silence(SILENCE_DB)(periodicity, x, CREPE_RATE, CREPE_HOP, pad=True)
    return pitch[0], periodicity[0]


def crepe_periodicity(wav, sample_rate: int, model: str = "tiny") -> Tuple[torch.Tensor, torch.Tensor]:
    """CREPE pitch and periodicity ``([frames], [frames])`` at 16 kHz / 10 ms, silent frames' periodicity 0."""
    return _crepe_16k(resample(as_1d(wav, "audio"), sample_rate, CREPE_RATE), model)


def _compare_periodicity(p_ref: torch.Tensor, p_hyp: torch.Tensor) -> Dict[str, float]:
    n = min(p_ref.numel(), p_hyp.numel())
    p_ref, p_hyp = p_ref[:n].double(), p_hyp[:n].double()
    v_ref, v_hyp = p_ref >= UNVOICED_THRESHOLD, p_hyp >= UNVOICED_THRESHOLD
    sq = (p_ref - p_hyp).pow(2)
    voiced_rmse = float(sq[v_ref].mean().sqrt()) if v_ref.any() else float("nan")
    tp = int((v_ref & v_hyp).sum())
    fp = int((~v_ref & v_hyp).sum())
    fn = int((v_ref & ~v_hyp).sum())
    if tp + fp + fn == 0:
        f1 = 1.0  # nothing voiced in either: the decisions agree everywhere
    else:
        f1 = 2.0 * tp / (2.0 * tp + fp + fn)
    return {"periodicity": voiced_rmse, "periodicity_all": float(sq.mean().sqrt()), "vuv_f1": f1}


def periodicity_metrics(ref, hyp, sample_rate: int, model: str = "tiny") -> Dict[str, float]:
    """``{"periodicity", "periodicity_all", "vuv_f1"}`` from CREPE on both signals."""
    ref, hyp = align(ref, hyp)
    return _compare_periodicity(crepe_periodicity(ref, sample_rate, model)[1],
                                crepe_periodicity(hyp, sample_rate, model)[1])


def _reference_features(ref: torch.Tensor, sample_rate: int, model: str, cache: Optional[dict]):
    """The reference's 16 kHz resample and CREPE periodicity, from ``cache`` when it holds this very signal."""
    key = (sample_rate, model, ref.numel(), hashlib.blake2b(ref.numpy().tobytes(), digest_size=16).hexdigest())
    if cache is not None and cache.get("key") == key:
        return cache["ref16"], cache["periodicity"]
    ref16 = resample(ref, sample_rate, PESQ_RATE)
    periodicity = _crepe_16k(ref16, model)[1]
    if cache is not None:  # one entry: the caller scores several systems against one clip at a time
        cache.clear()
        cache.update(key=key, ref16=ref16, periodicity=periodicity)
    return ref16, periodicity


def evaluate_pair(ref, hyp, sample_rate: int, mel_config: Optional[MelConfig] = None,
                  crepe_model: str = "tiny", cache: Optional[dict] = None) -> Dict[str, float]:
    """All metrics of :data:`METRICS` for one clip.

    Args:
        ref, hyp: mono ``[T]`` waveforms (tensor or numpy) at ``sample_rate``; trimmed to the shorter.
        mel_config: front end for ``mel_l1`` / ``mcd``; default HiFi-GAN's 80-band mel at ``sample_rate``
            (fmax = 8 kHz, or Nyquist when lower).
        cache: a dict the caller keeps while scoring several resyntheses of one reference: the reference's
            16 kHz resample and CREPE pass are reused when the (trimmed) reference is the same signal.
    Returns:
        ``{metric: float}``; NaN where a metric is undefined for the clip (no speech for PESQ, nothing voiced
        in the reference for ``periodicity``).
    """
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    ref, hyp = align(ref, hyp)
    if mel_config is None:
        mel_config = MelConfig(sample_rate=int(sample_rate), fmax=min(8000.0, sample_rate / 2))
    elif mel_config.sample_rate != sample_rate:
        raise ValueError(f"mel_config.sample_rate ({mel_config.sample_rate}) != sample_rate ({sample_rate})")
    ref16, ref_periodicity = _reference_features(ref, int(sample_rate), crepe_model, cache)
    hyp16 = resample(hyp, sample_rate, PESQ_RATE)  # PESQ_RATE == CREPE_RATE: one resample serves both
    out = {
        "pesq": _pesq_16k(ref16, hyp16),
        "stoi": stoi(ref, hyp, sample_rate),
        "mstft": multi_resolution_stft(ref, hyp),
        "mel_l1": mel_l1(ref, hyp, mel_config),
        "mcd": mel_cepstral_distortion(ref, hyp, mel_config),
    }
    out.update(_compare_periodicity(ref_periodicity, _crepe_16k(hyp16, crepe_model)[1]))
    return {k: out[k] for k in METRICS}
