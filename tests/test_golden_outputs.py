"""Audio from a fixed set of models matches stored references, before and after refactors, on any CPU.

Each case builds a model with a fixed seed (random weights through the public API), decodes a short log-mel of
a fixed speech-like signal and compares the mel, the audio (and the mel loss) with the reference saved in
``tests/data/golden/<case>.pt``. The plain PyTorch activation runs (``use_kernels(False)``). The references were
written on the development machine (x86-64, one intra-op thread, as the suite runs); another CPU takes other
MKL / oneDNN / ATen code paths (vector width, FFT and GEMM kernels, blocking), whose float32 sums round
differently, so the comparison allows float32 rounding, not a change in what a model computes:

- mel (natural-log units): ``|diff| <= MEL_ATOL``;
- audio: ``|diff| <= AUDIO_RTOL * peak |reference|`` (per case, ``AUDIO_RTOL_CASE`` overrides);
- mel loss: ``|diff| <= LOSS_RTOL * |reference|``.

The bounds are 10-15x the worst difference measured on an AMD EPYC (Zen 4, AVX-512) against these references
in 36 settings (``ONEDNN_MAX_CPU_ISA`` default/AVX2/AVX512_CORE/SSE41, ``MKL_ENABLE_INSTRUCTIONS`` default/AVX2/
AVX512, ``MKL_CBWR``, ``ATEN_CPU_CAPABILITY`` default/avx2, oneDNN off, 1 and 2 threads): mel 1.22e-5, audio
3.6e-6 of the peak (melgan 2.85e-5), loss 1 ulp. Real changes exceed them: one layer's weights x1.01 gives
2-25x the audio bound, one conv's bias zeroed or one ConvNeXt block dropped 190-1950x, the mel's fmax 1 Hz lower
24-26x the mel bound and 66x the loss bound. (A single weight x1.001 in the last layer gives 2.6-25x for six of
the eight models; deeper single weights move the audio ~1e-6 of its peak, as much as another CPU does.)
A decode repeated in the same process must still be bit-identical (``torch.equal``): that is a
property of one machine. Regenerate after an intended numerical change with
``VOCODER_WRITE_GOLDEN=1 python -m pytest tests/test_golden_outputs.py``.
"""
import os
from pathlib import Path

import pytest
import torch

from vocoder import Vocoder
from vocoder.generators import build_generator, get_preset
from vocoder.kernels.dispatch import use_kernels
from vocoder.losses import MelL1Loss
from vocoder.streaming import StreamingVocoder

from conftest import speech_like

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
WRITE = os.environ.get("VOCODER_WRITE_GOLDEN") == "1"
FRAMES = 6

# Float32 rounding across CPUs, ~10-15x the worst difference measured (see the module docstring).
MEL_ATOL = 2e-4  # log-mel: worst 1.22e-5 (vocos_mel_24khz), 5.3e-6 for the others
AUDIO_RTOL = 5e-5  # of the reference's peak: worst 3.6e-6 (vocos_mel_24khz), <= 1.6e-6 for the others
# MelGAN's random-init last conv cancels (inputs peak 0.42, output peak 0.003): its rounding, relative to the
# output's peak, is ~10x the others'; worst 2.85e-5
AUDIO_RTOL_CASE = {"melgan": 3e-4}
LOSS_RTOL = 2e-6  # relative: worst 1 ulp (1.2e-7)

# A BigVGAN v2 (SnakeBeta, anti-aliased, no tanh at the end) small enough for the suite.
BIGVGAN_V2_SMALL = {
    "n_mels": 80, "upsample_rates": (4, 4, 2, 2, 2, 2), "upsample_kernel_sizes": (8, 8, 4, 4, 4, 4),
    "upsample_initial_channel": 64, "resblock": "1", "resblock_kernel_sizes": (3, 7, 11),
    "resblock_dilation_sizes": ((1, 3, 5), (1, 3, 5), (1, 3, 5)), "activation": "snakebeta",
    "snake_logscale": True, "use_tanh_at_final": False, "use_bias_at_final": False,
}


def _preset_vocoder(name: str) -> Vocoder:
    torch.manual_seed(1234)
    return Vocoder.from_pretrained(name, random_init=True)


def _bigvgan_v2_small() -> Vocoder:
    torch.manual_seed(1234)
    gen = build_generator("bigvgan", BIGVGAN_V2_SMALL)
    return Vocoder(gen, get_preset("bigvgan_v2_22khz_80band_256x").mel)


def _mel(voc: Vocoder, frames: int = FRAMES) -> torch.Tensor:
    c = voc.mel_config
    wav = speech_like(0.5, c.sample_rate, seed=3)
    return voc.mel(wav)[:, 10:10 + frames].contiguous()


MODELS = {
    "hifigan_v1": lambda: _preset_vocoder("hifigan_v1"),
    "hifigan_v2": lambda: _preset_vocoder("hifigan_v2"),
    "hifigan_v3": lambda: _preset_vocoder("hifigan_v3"),
    "melgan": lambda: _preset_vocoder("melgan"),
    "bigvgan_base_22khz_80band": lambda: _preset_vocoder("bigvgan_base_22khz_80band"),
    "bigvgan_v2_small": _bigvgan_v2_small,
    "vocos_22khz_80band": lambda: _preset_vocoder("vocos_22khz_80band"),
    "vocos_mel_24khz": lambda: _preset_vocoder("vocos_mel_24khz"),
}


def _tolerance(name: str, key: str, ref: torch.Tensor) -> float:
    """The largest max-abs difference from ``ref`` that float32 rounding on another CPU explains."""
    if key == "mel":
        return MEL_ATOL
    if key == "audio":
        return AUDIO_RTOL_CASE.get(name.removesuffix("_streamed"), AUDIO_RTOL) * ref.abs().max().item()
    if key == "loss":
        return LOSS_RTOL * ref.abs().max().item()
    raise KeyError(key)


def _check(name: str, outputs: dict) -> None:
    path = GOLDEN / f"{name}.pt"
    outputs = {k: v.detach().cpu().contiguous() for k, v in outputs.items()}
    if WRITE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        torch.save(outputs, path)
    ref = torch.load(path, weights_only=True)
    assert sorted(ref) == sorted(outputs)
    for key, value in outputs.items():
        assert value.dtype == ref[key].dtype and value.shape == ref[key].shape, key
        diff = (value.double() - ref[key].double()).abs().max().item()
        tol = _tolerance(name, key, ref[key].double())
        assert diff <= tol, f"{name}/{key}: max abs diff {diff:.3g} > tolerance {tol:.3g}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_offline_audio_matches_golden(name):
    with use_kernels(False):
        voc = MODELS[name]()
        mel = _mel(voc)
        audio = voc(mel)
        assert torch.equal(voc(mel), audio)  # the same process, the same bits
        _check(name, {"mel": mel, "audio": audio})


@pytest.mark.parametrize("name", ["hifigan_v3", "bigvgan_v2_small", "vocos_22khz_80band"])
def test_streamed_audio_matches_golden(name):
    with use_kernels(False):
        voc = MODELS[name]()
        mel = _mel(voc, frames=12)
        sv = StreamingVocoder(voc)
        pieces = [sv.push(mel[:, i:i + 5]) for i in range(0, mel.shape[-1], 5)]
        pieces.append(sv.flush())
        _check(f"{name}_streamed", {"mel": mel, "audio": torch.cat(pieces, dim=-1)})


def test_mel_loss_matches_golden():
    c = get_preset("hifigan_v1").mel
    real = speech_like(0.1, c.sample_rate, seed=4)[None, None]
    fake = speech_like(0.1, c.sample_rate, seed=5)[None, None]
    _check("mel_l1_loss", {"loss": MelL1Loss(c)(fake, real)})
