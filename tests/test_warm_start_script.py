"""scripts/warm_start.py: float16 storage, meta, the audio check and the split for the GPU machine's 16 MiB limit."""
from __future__ import annotations

import math

import pytest
import torch

from vocoder.audio.io import save_audio
from vocoder.audio.mel import MelConfig
from vocoder.checkpoints.native import save_checkpoint
from vocoder.generators import build_generator
from vocoder.generators.vocos import VocosConfig
from vocoder.inference import Vocoder

from helpers import REPO, load_script


@pytest.fixture(scope="module")
def warm_start():
    return load_script(REPO / "scripts" / "warm_start.py")


def test_half_warm_start_with_meta_audio_check_and_parts(warm_start, tmp_path, capsys):
    torch.manual_seed(0)
    gen = build_generator("vocos", VocosConfig(n_mels=80, dim=64, intermediate_dim=128, num_layers=2,
                                               padding="same", head="atan2", prior="pinv"))
    src = tmp_path / "run.pt"
    save_checkpoint(src, gen, MelConfig(), {"recipe": "default_22khz", "gan_step": 1500, "source": "training"})
    clips = tmp_path / "clips"
    t = torch.arange(11025) / 22050
    save_audio(clips / "a.wav", 0.3 * torch.sin(2 * math.pi * 200 * t), 22050)
    out = tmp_path / "ws.pt"
    assert warm_start.main([str(src), str(out), "--train-hours", "about 1 CPU-hour", "--step-offset", "10000",
                            "--samples", str(clips), "--split-mib", "0.1"]) == 0
    printed = capsys.readouterr().out
    assert "step 11,500" in printed and "dB RMS" in printed
    ckpt = torch.load(out, weights_only=True)
    assert {v.dtype for v in ckpt["state_dict"].values() if v.is_floating_point()} == {torch.float16}
    meta = ckpt["meta"]
    assert meta["gan_step"] == 11500 and meta["name"] == "default_22khz_warm_start"
    assert meta["train_hours"] == "about 1 CPU-hour" and "source" not in meta
    # loads as float32 and sounds like the float32 weights
    a, b = Vocoder.from_pretrained(str(src)).eval(), Vocoder.from_pretrained(str(out)).eval()
    assert next(b.parameters()).dtype == torch.float32
    mel = torch.randn(1, 80, 40) - 4
    with torch.no_grad():
        x, y = a(mel), b(mel)
    assert (x - y).abs().max() < 1e-2 * x.abs().max() and not torch.equal(x, y)
    parts = sorted(tmp_path.glob("ws.pt.part*"))
    assert len(parts) >= 2 and all(p.stat().st_size <= 0.1 * 2 ** 20 for p in parts)
    assert b"".join(p.read_bytes() for p in parts) == out.read_bytes()


def test_missing_source_is_an_error(warm_start, tmp_path):
    with pytest.raises(SystemExit) as e:
        warm_start.main([str(tmp_path / "nope.pt"), str(tmp_path / "o.pt"), "--train-hours", "x"])
    assert e.value.code == 2
    assert not (tmp_path / "o.pt").exists()
