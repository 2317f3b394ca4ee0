"""The one mel check (``vocoder.audio.mel.check_mel``): defined once, and a mel's values are scanned once on every
path into a model (the API, streaming, the CLI, the server), where the data enters the API."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import vocoder
from vocoder import Vocoder
from vocoder.streaming import StreamingVocoder

PACKAGE = Path(vocoder.__file__).resolve().parent


def test_the_package_defines_one_function_named_check_mel():
    defined = [f"{path.relative_to(PACKAGE)}:{node.lineno}" for path in PACKAGE.rglob("*.py")
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "check_mel"]
    assert defined == ["audio/mel.py:" + defined[0].split(":")[1]], defined


class _Scans:
    """Counts ``torch.isfinite`` / ``np.isfinite`` calls on an array of one shape (the mel's)."""

    def __init__(self, monkeypatch, shape):
        self.shape, self.count = tuple(shape), 0
        real_torch, real_np = torch.isfinite, np.isfinite

        def torch_isfinite(x, *a, **k):
            self.count += tuple(x.shape[-2:]) == self.shape
            return real_torch(x, *a, **k)

        def np_isfinite(x, *a, **k):
            self.count += tuple(np.shape(x)[-2:]) == self.shape
            return real_np(x, *a, **k)

        monkeypatch.setattr(torch, "isfinite", torch_isfinite)
        monkeypatch.setattr(np, "isfinite", np_isfinite)


@pytest.fixture(scope="module")
def voc():
    torch.manual_seed(0)
    return Vocoder.from_pretrained("hifigan_v3", random_init=True)


def _mel(frames=23):
    return (np.random.default_rng(0).standard_normal((80, frames)) - 4.0).astype(np.float32)


def test_api_and_stream_scan_a_mel_once(voc, monkeypatch):
    mel = _mel()
    scans = _Scans(monkeypatch, mel.shape)
    voc(torch.from_numpy(mel))
    assert scans.count == 1
    sv = StreamingVocoder(voc, script=False)
    chunk = _mel(7)
    scans.shape, scans.count = chunk.shape, 0
    sv.push(torch.from_numpy(chunk))
    assert scans.count == 1
    with pytest.raises(ValueError, match="NaN or inf"):  # and it is the check that refuses
        voc(torch.from_numpy(np.where(np.arange(23) == 3, np.nan, mel).astype(np.float32)))


def test_cli_scans_a_mel_file_once(voc, tmp_path, monkeypatch):
    from vocoder.cli.main import main

    mel = _mel()
    np.save(tmp_path / "m.npy", mel)
    voc.save(tmp_path / "model.pt")
    scans = _Scans(monkeypatch, mel.shape)
    assert main(["synthesize", "--model", str(tmp_path / "model.pt"), str(tmp_path / "m.npy"),
                 "-o", str(tmp_path / "out")]) == 0
    assert scans.count == 1
    np.save(tmp_path / "bad.npy", np.where(np.arange(23) == 3, np.inf, mel).astype(np.float32))
    assert main(["synthesize", "--model", str(tmp_path / "model.pt"), str(tmp_path / "bad.npy"),
                 "-o", str(tmp_path / "out")]) == 2  # refused by the model's check, the file named


def test_server_scans_a_request_mel_once(voc, monkeypatch):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from vocoder.serving import ServeConfig, create_app

    mel = _mel()
    with TestClient(create_app(voc, ServeConfig(max_wait_ms=1.0))) as client:
        import io

        buf = io.BytesIO()
        np.save(buf, mel)
        scans = _Scans(monkeypatch, mel.shape)
        r = client.post("/v1/synthesize", content=buf.getvalue(), headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200, r.text
        assert scans.count == 1
        buf = io.BytesIO()
        np.save(buf, np.where(np.arange(23) == 3, np.nan, mel).astype(np.float32))
        r = client.post("/v1/synthesize", content=buf.getvalue(), headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 400 and "NaN" in r.json()["detail"]
