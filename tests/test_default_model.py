"""The shipped default model (``vocoder/pretrained/default.pt``): conventions, model card, quality gate.

The gate re-scores the model on ``samples/`` (real speech of voices held out from training) exactly as
``vocoder eval`` does and fails unless it beats Griffin-Lim on the same mels by a clear margin on wideband PESQ
and on M-STFT, and unless the numbers in the model card are the ones measured here.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import vocoder
from vocoder.audio.mel import MelConfig
from vocoder.inference import Vocoder

PRETRAINED = Path(vocoder.__file__).parent / "pretrained"
DEFAULT = PRETRAINED / "default.pt"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"
PESQ_MARGIN = 0.2  # PESQ points above Griffin-Lim
MSTFT_MARGIN = 0.05  # M-STFT below Griffin-Lim

pytestmark = pytest.mark.skipif(not DEFAULT.is_file(), reason="no default model shipped yet")


def test_default_model_loads_with_the_tts_convention():
    voc = Vocoder.from_pretrained()
    assert voc.mel_config == MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80,
                                       fmin=0, fmax=8000)
    assert DEFAULT.stat().st_size <= 25 * 2**20
    assert voc.meta.get("name") == "default_22khz" and voc.meta.get("gan_step", 0) > 0


def test_model_card_matches_the_shipped_weights():
    card = (PRETRAINED / "MODEL_CARD.md").read_text()
    last = json.loads((PRETRAINED / "progress.json").read_text())[-1]
    meta = Vocoder.from_pretrained().meta
    assert last["gan_step"] == meta["gan_step"]
    assert f"{last['gan_step']:,} steps" in card


@pytest.mark.slow
def test_default_model_beats_griffin_lim_on_held_out_samples():
    for module in ("pesq", "pystoi", "auraloss", "torchcrepe"):
        pytest.importorskip(module)
    from vocoder.evaluation.report import evaluate

    report = evaluate(Vocoder.from_pretrained(), SAMPLES)
    model, floor = report["mean"]["vocoder"], report["mean"]["griffin_lim"]
    assert model["pesq"] >= floor["pesq"] + PESQ_MARGIN, (model["pesq"], floor["pesq"])
    assert model["mstft"] <= floor["mstft"] - MSTFT_MARGIN, (model["mstft"], floor["mstft"])
    card = json.loads((PRETRAINED / "progress.json").read_text())[-1]["samples"]["vocoder"]
    assert model["pesq"] == pytest.approx(card["pesq"], abs=0.05)
    assert model["mstft"] == pytest.approx(card["mstft"], abs=0.01)
