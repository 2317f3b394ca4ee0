"""The shipped default model (``vocoder/pretrained/default.pt``): conventions, stored phase setting, model card,
quality gate.

The gate (``vocoder.evaluation.gate``) re-scores the model on ``samples/`` (real speech of voices held out from
training) exactly as ``vocoder eval`` does, as it is shipped (its stored ``phase_iterations``), and fails unless it
beats Griffin-Lim on the same mels by the gate's criteria (DistillMOS + 0.3 capped at the reference clips' own
score, DNSMOS OVRL, M-STFT - 0.05, periodicity, V/UV F1 - 0.02), and unless the numbers in the model card are the
ones measured here. The corpus test subset (voices never trained on) is scored by the release script; its numbers
in ``progress.json`` must pass the same gate.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import vocoder
from vocoder.audio.mel import MelConfig
from vocoder.evaluation.gate import better_floor, gate_failures
from vocoder.inference import Vocoder

PRETRAINED = Path(vocoder.__file__).parent / "pretrained"
DEFAULT = PRETRAINED / "default.pt"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _last_release() -> dict:
    return json.loads((PRETRAINED / "progress.json").read_text())[-1]


def test_the_default_model_is_shipped():
    assert DEFAULT.is_file(), "vocoder/pretrained/default.pt is missing: a fresh clone could not vocode"
    assert DEFAULT.stat().st_size <= 25 * 2**20


def test_default_model_loads_with_the_tts_convention_and_its_phase_setting():
    voc = Vocoder.from_pretrained()
    assert voc.mel_config == MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80,
                                       fmin=0, fmax=8000)
    assert voc.meta.get("name") == "default_22khz" and voc.meta.get("gan_step", 0) > 0
    last = _last_release()
    assert voc.phase_iterations == voc.meta["phase_iterations"] == last["phase_iterations"]
    assert voc.phase == voc.meta["phase_method"] == last["phase_method"]
    plain = Vocoder.from_pretrained(phase="model", phase_iterations=0)  # the settings can be overridden
    assert (plain.phase, plain.phase_iterations) == ("model", 0)
    if (voc.phase, voc.phase_iterations) != ("model", 0):
        assert "offline only" in voc.describe()["streaming"]


def test_model_card_matches_the_shipped_weights():
    card = (PRETRAINED / "MODEL_CARD.md").read_text()
    last = _last_release()
    meta = Vocoder.from_pretrained().meta
    assert last["gan_step"] == meta["gan_step"]
    assert f"{last['gan_step']:,} steps" in card
    assert f"K = {meta['phase_iterations']} fast Griffin-Lim iterations" in card
    assert f"| {meta['phase_method']}+{meta['phase_iterations']} (shipped) |" in card  # the phase table marks it


def test_released_numbers_pass_the_gate_on_both_splits():
    last = _last_release()
    for split in ("samples", "test"):
        means = last[split]
        floor = better_floor([means["pinv_rtpghi"], means["pinv_pghi"]])  # no network: the stronger floor
        assert gate_failures(means["vocoder"], means["griffin_lim"], means["reference"], floor) == [], split
        shipped = f"{last['phase_method']}+{last['phase_iterations']}"
        assert last["k_table"][shipped][split]["distillmos"] == last[split]["vocoder"]["distillmos"]


@pytest.mark.slow
def test_default_model_beats_griffin_lim_on_held_out_samples():
    for module in ("pesq", "pystoi", "auraloss", "torchcrepe", "distillmos", "speechmos"):
        pytest.importorskip(module)
    from vocoder.evaluation.report import evaluate

    report = evaluate(Vocoder.from_pretrained(), SAMPLES, pinv_floors=True)
    mean = report["mean"]
    model, signal_floor = mean["vocoder"], better_floor([mean["pinv_rtpghi"], mean["pinv_pghi"]])
    assert gate_failures(model, mean["griffin_lim"], mean["reference"], signal_floor) == []
    card = _last_release()["samples"]["vocoder"]
    for metric, tol in (("distillmos", 0.05), ("dnsmos_ovrl", 0.05), ("mstft", 0.01), ("pesq", 0.05)):
        assert model[metric] == pytest.approx(card[metric], abs=tol), metric


# ------------------------------------------------------------------ every entry point takes the default model
def _short_clip(tmp_path) -> Path:
    """One second of a shipped sample (the tests below check plumbing, not quality)."""
    import soundfile as sf

    wav, sr = sf.read(sorted(SAMPLES.glob("*.wav"))[0], dtype="float32")
    path = tmp_path / "clip.wav"
    sf.write(path, wav[:sr], sr)
    return path


@pytest.fixture(scope="module")
def default_voc():
    return Vocoder.from_pretrained()


def test_cli_synthesize_and_info_without_model_use_the_default(tmp_path, capsys, default_voc):
    import soundfile as sf

    from vocoder.cli.main import main

    clip = _short_clip(tmp_path)
    assert main(["synthesize", str(clip), "-o", str(tmp_path / "out")]) == 0
    written, sr = sf.read(tmp_path / "out" / "clip.wav", dtype="float32")
    expected = default_voc.synthesize(clip)   # with the stored phase refinement
    assert sr == 22050 and np.abs(written - expected.numpy()).max() < 1e-4
    capsys.readouterr()
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["meta"]["name"] == "default_22khz"
    assert info["phase_iterations"] == default_voc.phase_iterations
    assert main(["info"]) == 0
    if (default_voc.phase, default_voc.phase_iterations) != ("model", 0):  # the phase setting is on screen
        text = capsys.readouterr().out
        assert f"phase:       {default_voc.phase}, then {default_voc.phase_iterations}" in text
        assert f"streaming:   {default_voc.streaming_decode()[:40]}" in text


def _stream_equivalent(voc: Vocoder) -> Vocoder:
    """The offline decode a stream of ``voc`` equals: RTPGHI's phase (for a PGHI / RTPGHI setting) or the
    network's, without the offline-only iterations."""
    from vocoder.streaming import stream_phase

    return Vocoder.from_pretrained(phase=stream_phase(voc), phase_iterations=0)


def test_streaming_the_default_model_equals_its_offline_decode_without_iterations(tmp_path, default_voc):
    import subprocess
    import sys

    mel = default_voc.mel(default_voc.synthesize(_short_clip(tmp_path)))[:, :40]
    plain = _stream_equivalent(default_voc)(mel).numpy()
    streamed = torch.cat(list(default_voc.stream([mel[:, :13], mel[:, 13:]]))).numpy()
    assert np.abs(streamed - plain).max() < 1e-4
    np.save(tmp_path / "mel.npy", mel.numpy())
    proc = subprocess.run([sys.executable, "-m", "vocoder", "stream", "--input", str(tmp_path / "mel.npy"),
                           "--format", "float32", "--chunk-frames", "7"], capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    assert np.abs(np.frombuffer(proc.stdout, "<f4") - plain).max() < 1e-4
    if (default_voc.phase, default_voc.phase_iterations) != ("model", 0):
        assert b"offline only" in proc.stderr  # said once that streaming decodes without refinement


def test_plugins_without_model_use_the_default(default_voc):
    import vocoder.plugins

    adapter = vocoder.plugins.get("espnet")
    assert adapter.vocoder.meta["name"] == "default_22khz"
    assert (adapter.vocoder.phase, adapter.vocoder.phase_iterations) == (default_voc.phase,
                                                                         default_voc.phase_iterations)


def test_server_without_model_serves_the_default(default_voc):
    pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from vocoder.serving import Client

    from helpers import cli_server

    mel = default_voc.mel(torch.sin(torch.arange(22050) * 0.05) * 0.3)[:, :30]
    with cli_server(["--threads", "1", "--stream-prewarm", "0"]) as (url, _), Client(url) as c:
        info = c.info()
        assert info["phase_iterations"] == default_voc.phase_iterations
        assert info["phase"] == default_voc.phase
        assert info["streaming"] == default_voc.streaming_decode()
        assert np.abs(c.synthesize(mel.numpy()) - default_voc(mel).numpy()).max() < 1e-4
        streamed = np.concatenate(list(c.stream([mel[:, :11].numpy(), mel[:, 11:].numpy()])))
    plain = _stream_equivalent(default_voc)(mel).numpy()
    assert np.abs(streamed - plain).max() < 1e-4
