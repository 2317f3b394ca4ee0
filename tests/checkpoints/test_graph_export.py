"""TorchScript and ONNX export of every generator family: dynamic batch and time, the same audio as ours from
torch.jit.load and from onnxruntime (which runs without this package), the reference activation in the graph."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vocoder.checkpoints import export_onnx, export_torchscript
from vocoder.cli.main import main as cli_main
from vocoder.kernels.dispatch import use_kernels
from vocoder.nn.convnext import InverseSTFT

from export_models import FAMILIES, tiny_mels, tiny_vocoder

pytestmark = pytest.mark.usefixtures("one_thread_per_module")


def _mels():
    """Other batch sizes and lengths than the exporters trace with (2 x 32 frames)."""
    return [tiny_mels(1, 0.2), tiny_mels(3, 0.35)]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_torchscript_equals_ours(tmp_path, family, capsys):
    voc = tiny_vocoder(family)
    path = export_torchscript(voc, tmp_path / "model.ts")
    extra = {"vocoder.json": ""}
    ts = torch.jit.load(str(path), _extra_files=extra)
    meta = json.loads(extra["vocoder.json"])
    assert int(meta["sample_rate"]) == voc.sample_rate and int(meta["hop_length"]) == voc.hop_length
    assert "PythonOp" not in str(ts.inlined_graph)  # no Python autograd Function (the fused kernel) in the graph
    diff = 0.0
    for mel in _mels():
        want = voc(mel)
        with torch.no_grad():
            got = ts(mel)
        assert got.shape == want.shape and want.std() > 1e-3
        diff = max(diff, (got - want).abs().max().item())
    with capsys.disabled():
        print(f"\n[torchscript {family}] torch.jit.load vs ours: max abs diff {diff:.2e}")
    assert diff < 1e-4


@pytest.mark.parametrize("family", list(FAMILIES))
def test_onnxruntime_equals_ours(tmp_path, family, capsys):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    voc = tiny_vocoder(family)
    path = export_onnx(voc, tmp_path / "model.onnx")
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    assert int(props["sample_rate"]) == voc.sample_rate and props["generator"] == FAMILIES[family][0]
    assert not list(model.graph.initializer) or all(i.data_location == 0 for i in model.graph.initializer)  # one file
    ops = {(n.domain or "ai.onnx", n.op_type) for n in model.graph.node}
    for f in model.functions:
        ops |= {(n.domain or "ai.onnx", n.op_type) for n in f.node}
    assert all(domain in ("ai.onnx", "") or domain.startswith("pkg.onnxscript") for domain, _ in ops), ops
    if family == "bigvgan":  # the reference activation: transposed-conv upsampling, Snake's sin, low-pass conv
        assert {"ConvTranspose", "Sin", "Conv"} <= {op for _, op in ops}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.name == "mel" and out.name == "audio" and isinstance(inp.shape[0], str) and isinstance(inp.shape[2], str)
    diff = ref_diff = 0.0
    for mel in _mels():
        want = voc(mel)
        got = torch.from_numpy(session.run(None, {"mel": mel.numpy()})[0])
        assert got.shape == want.shape
        diff = max(diff, (got - want).abs().max().item())
        with use_kernels(False):
            ref_diff = max(ref_diff, (got - voc(mel)).abs().max().item())
    with capsys.disabled():
        print(f"\n[onnx {family}] onnxruntime vs ours: max abs diff {diff:.2e} (vs our reference activation "
              f"{ref_diff:.2e})")
    assert diff < 1e-4


def test_real_inverse_stft_equals_the_complex_one():
    for padding in ("same", "center"):
        for n_fft, hop in ((64, 16), (1024, 256), (32, 16)):
            istft = InverseSTFT(n_fft, hop, padding)
            re, im = 3 * torch.randn(2, n_fft // 2 + 1, 13), 3 * torch.randn(2, n_fft // 2 + 1, 13)
            want = istft(torch.complex(re, im))
            assert (istft.forward_real(re, im) - want).abs().max() < 1e-5 * max(1.0, want.abs().max().item())


def test_vocos_graph_forward_equals_forward():
    for family in ("vocos", "vocos_prior"):
        gen = tiny_vocoder(family).generator
        mel = tiny_mels(2)
        with torch.no_grad():
            assert (gen.graph_forward(mel) - gen(mel)).abs().max() < 1e-5


def test_cli_export_torchscript_and_onnx(tmp_path):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    voc = tiny_vocoder("hifigan")
    voc.save(tmp_path / "model.pt")
    assert cli_main(["export", "--format", "torchscript", str(tmp_path / "model.pt"), str(tmp_path / "m.ts")]) == 0
    assert cli_main(["export", "--format", "onnx", str(tmp_path / "model.pt"), str(tmp_path / "m.onnx")]) == 0
    mel = tiny_mels(2)
    want = voc(mel).numpy()
    assert np.abs(torch.jit.load(str(tmp_path / "m.ts"))(mel).detach().numpy() - want).max() < 1e-4
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"mel": mel.numpy()})[0] - want).max() < 1e-4
