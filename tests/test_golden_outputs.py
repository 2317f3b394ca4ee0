"""Bit-identical audio from a fixed set of models, before and after refactors.

Each case builds a model with a fixed seed (random weights through the public API), decodes a short log-mel of
a fixed speech-like signal and compares the audio with the reference saved in ``tests/data/golden/<case>.pt``
with ``torch.equal``. The plain PyTorch activation runs (``use_kernels(False)``): a fused kernel's bits depend on
the machine's vector width, the reference's do not. Bits of float convolutions can still differ between CPUs
and library builds; the references were written on the development machine (x86-64, one intra-op thread, as
the suite runs). Regenerate after an intended numerical change with
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
        assert torch.equal(value, ref[key]), f"{name}/{key}: max abs diff {diff:.3g}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_offline_audio_is_bit_identical(name):
    with use_kernels(False):
        voc = MODELS[name]()
        mel = _mel(voc)
        _check(name, {"mel": mel, "audio": voc(mel)})


@pytest.mark.parametrize("name", ["hifigan_v3", "bigvgan_v2_small", "vocos_22khz_80band"])
def test_streamed_audio_is_bit_identical(name):
    with use_kernels(False):
        voc = MODELS[name]()
        mel = _mel(voc, frames=12)
        sv = StreamingVocoder(voc)
        pieces = [sv.push(mel[:, i:i + 5]) for i in range(0, mel.shape[-1], 5)]
        pieces.append(sv.flush())
        _check(f"{name}_streamed", {"mel": mel, "audio": torch.cat(pieces, dim=-1)})


def test_mel_loss_is_bit_identical():
    c = get_preset("hifigan_v1").mel
    real = speech_like(0.1, c.sample_rate, seed=4)[None, None]
    fake = speech_like(0.1, c.sample_rate, seed=5)[None, None]
    _check("mel_l1_loss", {"loss": MelL1Loss(c)(fake, real)})
