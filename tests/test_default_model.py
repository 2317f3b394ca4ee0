"""The shipped default model (``vocoder/pretrained/default.pt``): conventions, model card, quality gate.

The gate (``vocoder.evaluation.gate``) re-scores the model on ``samples/`` (real speech of voices held out from
training) exactly as ``vocoder eval`` does and fails unless it beats Griffin-Lim on the same mels by the gate's
margins (DistillMOS + 0.3, DNSMOS OVRL, M-STFT - 0.05, periodicity, V/UV F1), and unless the numbers in the model
card are the ones measured here. The corpus test subset (voices never trained on) is scored by the release
script; its numbers in ``progress.json`` must pass the same gate.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import vocoder
from vocoder.audio.mel import MelConfig
from vocoder.evaluation.gate import gate_failures
from vocoder.inference import Vocoder

PRETRAINED = Path(vocoder.__file__).parent / "pretrained"
DEFAULT = PRETRAINED / "default.pt"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"

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


def test_released_numbers_pass_the_gate_on_both_splits():
    last = json.loads((PRETRAINED / "progress.json").read_text())[-1]
    for split in ("samples", "test"):
        assert gate_failures(last[split]["vocoder"], last[split]["griffin_lim"]) == [], split


@pytest.mark.slow
def test_default_model_beats_griffin_lim_on_held_out_samples():
    for module in ("pesq", "pystoi", "auraloss", "torchcrepe", "distillmos", "speechmos"):
        pytest.importorskip(module)
    from vocoder.evaluation.report import evaluate

    report = evaluate(Vocoder.from_pretrained(), SAMPLES)
    model, floor = report["mean"]["vocoder"], report["mean"]["griffin_lim"]
    assert gate_failures(model, floor) == []
    card = json.loads((PRETRAINED / "progress.json").read_text())[-1]["samples"]["vocoder"]
    for metric, tol in (("distillmos", 0.05), ("dnsmos_ovrl", 0.05), ("mstft", 0.01), ("pesq", 0.05)):
        assert model[metric] == pytest.approx(card[metric], abs=tol), metric
