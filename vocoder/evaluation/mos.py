"""Non-intrusive MOS predictors: a quality score for one waveform, no reference needed.

- ``distillmos``: DistillMOS (pip ``distillmos``, ``ConvTransformerSQAModel``), a small CNN + transformer
  distilled from an XLS-R based speech-quality model; predicts overall MOS in 1..5. It pads a clip shorter than
  7.68 s with zeros (a longer one is scored over overlapping 7.68 s windows, averaged) and peak-normalises it,
  so the level of the input does not matter.
- ``dnsmos_ovrl`` / ``dnsmos_sig`` / ``dnsmos_bak``: DNSMOS P.835 (pip ``speechmos``, Microsoft's DNS
  challenge models run by onnxruntime): overall quality, speech signal quality and background-noise
  quality, each about 1..5. A clip shorter than 9.01 s is repeated (tiled) to that length; a longer one is
  scored over 9.01 s windows 1 s apart, averaged.

Both run at 16 kHz: input at another rate is resampled first with torchaudio's default resampler
(``torchaudio.functional.resample``: Hann-windowed sinc, 6 zero crossings, cutoff 0.99 x 8 kHz), the one
DistillMOS's own command line uses, so a file scores as ``distillmos FILE`` scores it. The choice matters for
DistillMOS, which weighs the top of the band: on ``samples/speech_nl_klettres_ad-22.wav`` it gives 3.29 after
this resampler (3.29 after scipy's ``resample_poly``) but 2.98 after :func:`vocoder.audio.io.resample`, whose
cutoff is 7.58 kHz; DNSMOS moves by < 0.01. Compare systems only within one setup. DNSMOS refuses samples
outside [-1, 1], so its input is clipped there (what writing a 16-bit file would do). The weights ship inside the two wheels (``distillmos/weights/distill_mos_v7.pt``,
``speechmos/dnsmos_models/*.onnx``): nothing is downloaded. Each model is loaded once, on first use.

Needs the ``eval`` extra (``pip install -e '.[eval]'``: distillmos, speechmos, onnxruntime).
"""
from __future__ import annotations

import contextlib
import functools
import io
import logging
from typing import Dict

import numpy as np
import torch

from .metrics import as_1d

__all__ = ["MOS_RATE", "MOS_METRICS", "HIGHER_IS_BETTER", "distillmos_score", "dnsmos_scores", "mos_scores",
           "require"]

log = logging.getLogger(__name__)

MOS_RATE = 16000
# Names in the order the report prints them (all higher = better).
MOS_METRICS = ("distillmos", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak")
HIGHER_IS_BETTER = {m: True for m in MOS_METRICS}
_INSTALL = "pip install -e '.[eval]'"


def _import(module: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{what} needs the eval extra ({e}): {_INSTALL}") from e


def require() -> None:
    """Import both predictors' packages (not their models); ImportError naming the install command if missing."""
    _import("distillmos", "DistillMOS (pip package distillmos)")
    _import("speechmos.dnsmos", "DNSMOS (pip packages speechmos and onnxruntime)")


@functools.lru_cache(maxsize=1)
def _distillmos_model() -> torch.nn.Module:
    distillmos = _import("distillmos", "DistillMOS (pip package distillmos)")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # it prints where it loaded its weights from: keep stdout clean
        model = distillmos.ConvTransformerSQAModel()  # weights from the wheel (torch.load, weights_only)
    log.debug("%s", printed.getvalue().strip())
    return model.eval()


@functools.lru_cache(maxsize=1)
def _dnsmos_module():
    # speechmos.dnsmos builds its onnxruntime sessions (from the wheel's .onnx files) on the first run() and
    # keeps them in a module global, so importing it once here is all the caching needed.
    return _import("speechmos.dnsmos", "DNSMOS (pip packages speechmos and onnxruntime)")


def _to_16k(wav, sample_rate: int) -> torch.Tensor:
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    x = as_1d(wav, "audio")
    if sample_rate == MOS_RATE:
        return x
    import torchaudio.functional as AF  # deferred: import time, only resampling needs it

    return AF.resample(x, int(sample_rate), MOS_RATE)  # torchaudio's defaults, as distillmos's CLI (see above)


def _distillmos_16k(x16: torch.Tensor) -> float:
    with torch.inference_mode():
        return float(_distillmos_model()(x16.reshape(1, -1)).reshape(()))


def _dnsmos_16k(x16: torch.Tensor) -> Dict[str, float]:
    audio = np.clip(x16.numpy(), -1.0, 1.0).astype(np.float32)
    out = _dnsmos_module().run(audio, sr=MOS_RATE)
    return {"dnsmos_ovrl": float(out["ovrl_mos"]), "dnsmos_sig": float(out["sig_mos"]),
            "dnsmos_bak": float(out["bak_mos"])}


def distillmos_score(wav, sample_rate: int) -> float:
    """DistillMOS of a mono ``[T]`` waveform (tensor or numpy) at ``sample_rate``: overall MOS, 1..5."""
    return _distillmos_16k(_to_16k(wav, sample_rate))


def dnsmos_scores(wav, sample_rate: int) -> Dict[str, float]:
    """DNSMOS P.835 of a mono ``[T]`` waveform: ``{"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"}``, each ~1..5."""
    return _dnsmos_16k(_to_16k(wav, sample_rate))


def mos_scores(wav, sample_rate: int) -> Dict[str, float]:
    """All of :data:`MOS_METRICS` for one waveform (one resample to 16 kHz serves both predictors)."""
    x16 = _to_16k(wav, sample_rate)
    out = {"distillmos": _distillmos_16k(x16), **_dnsmos_16k(x16)}
    return {k: out[k] for k in MOS_METRICS}
