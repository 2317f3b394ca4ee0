"""The ``vocoder`` command: synthesize (files, .npy mels, folders, spectrogram PNGs) and info."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import vocoder.inference as inference
from vocoder.checkpoints import save_checkpoint
from vocoder.cli.main import main
from vocoder.generators.registry import build_generator

from helpers import TINY_MEL as MEL

pytestmark = pytest.mark.usefixtures("one_thread_per_module")


@pytest.fixture
def model(tmp_path):
    torch.manual_seed(0)
    gen = build_generator("hifigan", {"n_mels": 20, "upsample_rates": [4, 4], "upsample_kernel_sizes": [8, 8],
                                      "upsample_initial_channel": 16, "resblock": "2",
                                      "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]]})
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, gen, MEL, meta={"step": 1234, "recipe": "tiny"})
    return path


def _inputs(folder):
    (folder / "sub").mkdir(parents=True)
    t = np.arange(1600) / 8000
    sf.write(folder / "a.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 8000)
    # 16 kHz file: resampled to the model's 8 kHz -> 0.15 s = 1200 samples = 75 frames.
    t16 = np.arange(2400) / 16000
    sf.write(folder / "sub" / "b.wav", (0.3 * np.sin(2 * np.pi * 330 * t16)).astype(np.float32), 16000)
    np.save(folder / "c.npy", (np.random.default_rng(0).standard_normal((1, 20, 13)) - 4).astype(np.float32))
    (folder / "notes.txt").write_text("ignored")


def test_synthesize_folder(tmp_path, model, capsys):
    _inputs(tmp_path / "in")
    rc = main(["synthesize", "--model", str(model), str(tmp_path / "in"), "--output", str(tmp_path / "out"),
               "--batch-size", "2"])
    assert rc == 0
    expected = {"a.wav": 1600, "sub/b.wav": 1200, "c.wav": 13 * 16}
    for name, n in expected.items():
        data, sr = sf.read(tmp_path / "out" / name)
        assert sr == 8000 and data.shape == (n,), name
        assert np.abs(data).max() > 0
    assert not (tmp_path / "out" / "notes.wav").exists()
    assert "wrote 3 file(s)" in capsys.readouterr().out


def test_synthesize_files_with_spectrogram(tmp_path, model):
    _inputs(tmp_path / "in")
    rc = main(["synthesize", "-m", str(model), str(tmp_path / "in" / "a.wav"), str(tmp_path / "in" / "c.npy"),
               "-o", str(tmp_path / "out"), "--spectrogram"])
    assert rc == 0
    for name in ("a", "c"):
        assert (tmp_path / "out" / f"{name}.wav").is_file()
        png = (tmp_path / "out" / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_synthesize_errors(tmp_path, model, capsys, monkeypatch):
    np.save(tmp_path / "bad.npy", np.zeros((30, 5), dtype=np.float32))
    rc = main(["synthesize", "-m", str(model), str(tmp_path / "bad.npy"), "-o", str(tmp_path / "out")])
    assert rc == 2 and "expected 20 mel bands" in capsys.readouterr().err
    rc = main(["synthesize", "-m", str(model), str(tmp_path / "missing.wav"), "-o", str(tmp_path / "out")])
    assert rc == 2 and "input not found" in capsys.readouterr().err
    monkeypatch.setattr(inference, "DEFAULT_MODEL_PATH", tmp_path / "nope" / "default.pt")
    rc = main(["synthesize", str(tmp_path / "bad.npy"), "-o", str(tmp_path / "out")])
    assert rc == 2 and "default model" in capsys.readouterr().err


def test_info(model, capsys):
    assert main(["info", "--model", str(model)]) == 0
    out = capsys.readouterr().out
    for text in ("generator:   hifigan", "sample rate: 8000 Hz", "hop:         16 samples", "mels:        20",
                 "step: 1234", "upsample_rates: (4, 4)"):
        assert text in out, text
    assert main(["info", "--model", str(model), "--json"]) == 0
    import json

    d = json.loads(capsys.readouterr().out)
    assert d["n_mels"] == 20 and d["meta"]["recipe"] == "tiny" and d["parameters"] > 0


def test_python_m_vocoder_help(capsys):
    r = subprocess.run([sys.executable, "-m", "vocoder", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "synthesize" in r.stdout and "info" in r.stdout
    with pytest.raises(SystemExit) as e:
        main(["synthesize", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--spectrogram" in out and "--batch-size" in out and "--device" in out


def test_synthesize_dtype(tmp_path, capsys):
    """``--dtype bfloat16`` runs the network in bfloat16 (a Fourier head: its inverse STFT stays float32) and
    writes what the API gives for the same cast; a bad name is refused by argparse."""
    from vocoder import Vocoder
    from vocoder.generators.vocos import VocosConfig

    torch.manual_seed(0)
    cfg = VocosConfig(n_mels=MEL.n_mels, dim=16, intermediate_dim=24, num_layers=2, n_fft=MEL.n_fft,
                      hop_length=MEL.hop_length, sample_rate=MEL.sample_rate, fmax=MEL.fmax, prior="pinv",
                      head="atan2")
    voc = Vocoder(build_generator("vocos", cfg), MEL)
    voc.save(tmp_path / "fourier.pt")
    (tmp_path / "in").mkdir()
    t = torch.arange(17 * MEL.hop_length) / MEL.sample_rate
    np.save(tmp_path / "in" / "m.npy", voc.mel(0.3 * torch.sin(2 * torch.pi * 220 * t)).numpy())
    mel = torch.from_numpy(np.load(tmp_path / "in" / "m.npy"))
    for dtype in ("float32", "bfloat16"):
        assert main(["synthesize", "-m", str(tmp_path / "fourier.pt"), str(tmp_path / "in" / "m.npy"), "-o",
                     str(tmp_path / dtype), "--dtype", dtype]) == 0
    written = {d: torch.from_numpy(sf.read(tmp_path / d / "m.wav", dtype="float32")[0]) for d in ("float32",
                                                                                             "bfloat16")}
    cast = Vocoder.from_pretrained(str(tmp_path / "fourier.pt")).to(torch.bfloat16)
    assert cast.describe()["dtype"] == "bfloat16"
    from vocoder.evaluation.report import _model_name
    assert _model_name(cast) == "vocos in bfloat16" and _model_name(voc) == "vocos"  # as `vocoder eval` names it
    # (random weights: the audio goes past [-1, 1], and written files clip)
    assert torch.allclose(written["bfloat16"], cast(mel).clamp(-1, 1), atol=1e-4)
    assert torch.allclose(written["float32"], voc(mel).clamp(-1, 1), atol=1e-4)
    assert not torch.allclose(written["bfloat16"], written["float32"], atol=1e-5)  # the flag did something
    with pytest.raises(SystemExit):
        main(["synthesize", "-m", str(tmp_path / "fourier.pt"), str(tmp_path / "in" / "m.npy"), "-o",
              str(tmp_path / "x"), "--dtype", "int8"])
    assert "invalid choice" in capsys.readouterr().err
