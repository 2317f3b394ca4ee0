"""Non-intrusive MOS predictors (DistillMOS, DNSMOS P.835) on a real clip, and their place in the eval report."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("distillmos")
pytest.importorskip("speechmos")
pytest.importorskip("onnxruntime")

from vocoder.evaluation import mos
from vocoder.evaluation.mos import MOS_METRICS, distillmos_score, dnsmos_scores, mos_scores

CLIP = Path(__file__).resolve().parent.parent / "samples" / "speech_nl_klettres_ad-22.wav"


@pytest.fixture(scope="module")
def clip():
    x, sr = sf.read(str(CLIP), dtype="float32")
    assert sr == 22050 and x.ndim == 1
    return x, sr


@pytest.fixture(scope="module")
def ref_scores(clip):
    return mos_scores(*clip)


@pytest.fixture(scope="module")
def noisy_scores(clip):
    x, sr = clip
    n = np.random.default_rng(0).standard_normal(x.size).astype(np.float32)
    n *= np.sqrt(np.mean(x ** 2) / np.mean(n ** 2))  # white noise as loud as the speech: 0 dB SNR
    return mos_scores(x + n, sr)


def test_types_and_ranges(ref_scores, noisy_scores):
    for scores in (ref_scores, noisy_scores):
        assert list(scores) == list(MOS_METRICS)
        for k, v in scores.items():
            assert type(v) is float and 1.0 <= v <= 5.0, (k, v)


def test_clean_clip_beats_the_same_clip_in_noise(ref_scores, noisy_scores):
    assert ref_scores["distillmos"] > noisy_scores["distillmos"] + 0.5, (ref_scores, noisy_scores)
    assert ref_scores["dnsmos_ovrl"] > noisy_scores["dnsmos_ovrl"] + 0.4, (ref_scores, noisy_scores)
    assert ref_scores["dnsmos_bak"] > noisy_scores["dnsmos_bak"] + 1.0, (ref_scores, noisy_scores)


def test_single_predictors_match_the_combined_call(clip, ref_scores):
    x, sr = clip
    assert distillmos_score(x, sr) == ref_scores["distillmos"]
    assert dnsmos_scores(torch.from_numpy(x), sr) == {k: ref_scores[k] for k in MOS_METRICS[1:]}


def test_resampling_from_22k(clip, ref_scores):
    from scipy.signal import resample_poly

    x, sr = clip
    x16 = resample_poly(x.astype(np.float64), 320, 441).astype(np.float32)  # an independent route to 16 kHz
    at16 = mos_scores(x16, 16000)
    for k in MOS_METRICS:
        assert at16[k] == pytest.approx(ref_scores[k], abs=0.05), k
    # Not resampling (22.05 kHz samples taken as 16 kHz) would be caught: it moves both predictors by > 0.2.
    wrong = mos_scores(x, 16000)
    assert abs(wrong["distillmos"] - ref_scores["distillmos"]) > 0.1
    assert abs(wrong["dnsmos_ovrl"] - ref_scores["dnsmos_ovrl"]) > 0.1


def test_models_load_from_the_wheels_without_network(clip, monkeypatch, capsys):
    import speechmos.dnsmos

    def no_network(*args, **kwargs):
        raise AssertionError("a MOS predictor tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    mos._distillmos_model.cache_clear()
    monkeypatch.setattr(speechmos.dnsmos, "dnsmos", None)  # its cached onnxruntime sessions: rebuilt
    x, sr = clip
    scores = mos_scores(x[: sr], sr)
    assert all(1.0 <= v <= 5.0 for v in scores.values())
    assert capsys.readouterr().out == ""  # DistillMOS's "weights loaded from" print is kept off stdout
    assert mos._distillmos_model() is mos._distillmos_model()  # loaded once


def test_missing_package_names_the_install_command(monkeypatch):
    mos._distillmos_model.cache_clear()
    monkeypatch.setitem(__import__("sys").modules, "distillmos", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[eval\]'"):
        distillmos_score(np.zeros(1600, np.float32), 16000)
    with pytest.raises(ImportError, match="distillmos"):
        mos.require()


def test_bad_inputs():
    with pytest.raises(ValueError, match="sample_rate"):
        mos_scores(np.zeros(1600, np.float32), 0)
    with pytest.raises(ValueError, match="mono"):
        mos_scores(np.zeros((2, 1600), np.float32), 16000)
    with pytest.raises(ValueError, match="NaN"):
        mos_scores(np.full(1600, np.nan, np.float32), 16000)
    with pytest.raises(ValueError, match="non-empty"):
        mos_scores(np.zeros(0, np.float32), 16000)


def test_eval_report_has_mos_for_model_griffin_lim_and_reference(tmp_path, ref_scores):
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    pytest.importorskip("auraloss")
    pytest.importorskip("torchcrepe")
    from test_evaluation import CFG, OracleVocoder  # a perfect "model" at 22.05 kHz

    from vocoder.evaluation import format_table, write_json
    from vocoder.evaluation.metrics import METRICS
    from vocoder.evaluation.report import evaluate

    report = evaluate(OracleVocoder(CFG), CLIP)
    assert report["systems"] == ["vocoder", "griffin_lim"]  # unchanged: the reference is not a system
    assert report["metrics"] == list(METRICS) + list(MOS_METRICS)
    assert report["reference_metrics"] == list(MOS_METRICS)
    (c,) = report["clips"]
    for s in ("vocoder", "griffin_lim"):
        assert list(c["metrics"][s]) == list(METRICS) + list(MOS_METRICS)
        assert list(report["mean"][s]) == list(report["std"][s]) == list(METRICS) + list(MOS_METRICS)
    assert list(c["metrics"]["reference"]) == list(report["mean"]["reference"]) == list(MOS_METRICS)
    ref = c["metrics"]["reference"]
    assert ref == pytest.approx(ref_scores)  # the clip as loaded at the model's rate: the file itself here
    assert report["mean"]["reference"] == ref and set(report["std"]["reference"].values()) == {0.0}
    # The oracle returns the clip (trimmed to whole hops): the ceiling; Griffin-Lim's phase is audibly worse.
    voc, gl = c["metrics"]["vocoder"], c["metrics"]["griffin_lim"]
    for k in MOS_METRICS:
        assert voc[k] == pytest.approx(ref[k], abs=0.05), k
    assert gl["distillmos"] < ref["distillmos"] - 0.3 and gl["dnsmos_ovrl"] < ref["dnsmos_ovrl"] - 0.2, (gl, ref)

    table = format_table(report)
    header = table.splitlines()[1]
    assert "distillmos ↑" in header and "dnsmos_ovrl ↑" in header and "dnsmos_sig" not in header
    ref_row = next(line for line in table.splitlines() if line.startswith("reference "))
    assert f"{ref['distillmos']:.3f}±0.000" in ref_row and ref_row.split()[1] == "-"  # no PESQ for the reference
    out = tmp_path / "r.json"
    write_json(report, out)
    assert json.loads(out.read_text()) == report
