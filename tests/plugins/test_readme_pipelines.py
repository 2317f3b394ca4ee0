"""The "Use it in your TTS pipeline" examples of docs/pipelines.md (moved there from the README), run as written (in a
folder holding model.pt) on a small 22.05 kHz HiFi-GAN, and every result compared with our own decode."""
from __future__ import annotations

import math
import re
import shlex
from pathlib import Path

import pytest
import torch

from vocoder.audio.mel import MelConfig, mel_spectrogram
from vocoder.cli.main import main as cli_main
from vocoder.generators.registry import build_generator
from vocoder.inference import Vocoder
from vocoder.plugins import convert_mel, to_vocoder_mel

from conftest import speech_like
from speechbrain_client import HIFIGAN, speechbrain_lazy_modules  # noqa: F401  (fixtures)

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")
pytest.importorskip("parallel_wavegan")

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

PAGE = Path(__file__).resolve().parents[2] / "docs" / "pipelines.md"


def _section_blocks():
    text = PAGE.read_text()
    start = text.index("## Use it in your TTS pipeline")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end > 0 else None]
    return re.findall(r"```(python|bash)\n(.*?)```", section, flags=re.S)


def _model() -> Vocoder:
    torch.manual_seed(0)
    gen = build_generator("hifigan", {"n_mels": 80, "upsample_rates": [8, 8, 2, 2],
                                      "upsample_kernel_sizes": [16, 16, 4, 4], "upsample_initial_channel": 32,
                                      "resblock": "2", "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]]})
    with torch.no_grad():
        for name, p in gen.named_parameters():
            if name.endswith("weight_g"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith("weight_v"):
                p.copy_(torch.randn_like(p))
    return Vocoder(gen, MelConfig())


def test_readme_pipeline_examples_run_and_give_our_audio(tmp_path, monkeypatch, capsys, HIFIGAN):
    # HIFIGAN: skipped without SpeechBrain; the page's own import of it runs in the example
    blocks = _section_blocks()
    assert [kind for kind, _ in blocks] == ["python", "bash", "python"]
    voc = _model()
    voc.save(tmp_path / "model.pt")
    monkeypatch.chdir(tmp_path)
    a = mel_spectrogram(speech_like(0.5, 22050, seed=0), voc.mel_config)
    b = mel_spectrogram(speech_like(0.3, 22050, seed=1), voc.mel_config)
    mels = torch.full((2, 80, a.shape[1]), math.log(1e-5))
    mels[0], mels[1, :, : b.shape[1]] = a, b
    ns = {"mels": mels, "lengths": torch.tensor([a.shape[1], b.shape[1]]),
          "espnet_feats": (a / math.log(10)).T.contiguous(), "coqui_mel": convert_mel(a[None], "hifigan", "coqui"),
          "tts_mel_config": MelConfig()}
    for kind, code in blocks:
        if kind == "python":
            exec(compile(code, str(PAGE), "exec"), ns)
        else:
            for line in code.splitlines():
                args = shlex.split(line.split("#")[0])
                assert args[0] == "vocoder"
                assert cli_main(args[1:]) == 0, line

    want, want_b = voc(a), voc(b)
    hop = voc.hop_length
    results = {
        "adapter espnet": (ns["wav_espnet"], want),
        "adapter speechbrain": (ns["wavs_sb"][0, 0], want),
        "adapter speechbrain (shorter item)": (ns["wavs_sb"][1, 0, : b.shape[1] * hop], want_b),
        "adapter coqui": (ns["wav_coqui"][0, 0], voc(to_vocoder_mel(ns["coqui_mel"][0], "coqui"))),
        "adapter nemo": (ns["wavs_nemo"][0], want),
        "SpeechBrain HIFIGAN": (ns["wavs_speechbrain"][0, 0], want),
        "ParallelWaveGAN load_model": (ns["wav_pwg"].reshape(-1), want),
        "TorchScript": (ns["wavs_ts"][0], want),
        "onnxruntime": (torch.from_numpy(ns["wavs_onnx"][0]), want),
    }
    assert torch.all(ns["wavs_sb"][1, 0, b.shape[1] * hop:] == 0)
    with capsys.disabled():
        print()
        for name, (got, ref) in results.items():
            diff = (got.detach() - ref).abs().max().item()
            print(f"[docs/pipelines.md {name}] max abs diff {diff:.2e}")
            assert got.shape == ref.shape and diff < 1e-4, name
    assert want.std() > 1e-3
