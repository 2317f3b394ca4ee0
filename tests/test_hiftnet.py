"""HiFTNet (the ``hiftnet`` and ``hiftnet_frame`` families): preset shapes and parameter counts (the docs' table),
the source's STFT against torch.stft, exact streaming, TorchScript / ONNX graphs equal to eager, the F0 network's
init from a file, freezing and the one-file checkpoint, ``vocoder info``, and both recipes' two-step runs."""
from __future__ import annotations

import random
import re
import sys
import zlib
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from vocoder import Vocoder
from vocoder.audio.mel import MelConfig
from vocoder.generators import build_generator, get_preset
from vocoder.generators.hiftnet import HiFTNetFrameGenerator, HiFTNetGenerator, SourceSTFT
from vocoder.nn.convnext import analysis_frames
from vocoder.nn.f0_predictor import F0Predictor, f0_predictor_checkpoint
from vocoder.streaming import StreamingVocoder

sys.path.insert(0, str(Path(__file__).resolve().parent / "training"))  # the recipe tests' helpers and fixture
from training_helpers import RECIPES_DIR, make_audio_dir, one_thread, tiny_overrides  # noqa: E402,F401
from helpers import random_chunks, stream_all  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

DOCS = Path(__file__).resolve().parents[1] / "docs" / "seed_systems.md"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"
TOL = 1e-4  # tests/test_streaming.py's
N = 8
_SOURCE = dict(n_mels=N, sample_rate=8000, f0_channels=8, f0_layers=2, harmonics=2)
CONFIGS = {
    "hiftnet": ("hiftnet", dict(_SOURCE, upsample_rates=(4, 2), upsample_kernel_sizes=(8, 4),
                                upsample_initial_channel=16, resblock_kernel_sizes=(3, 5),
                                resblock_dilation_sizes=((1, 3), (1, 2)), source_resblock_kernel_sizes=(3, 5),
                                source_resblock_dilations=(1, 2))),
    "istftnet": ("hiftnet", dict(n_mels=N, upsample_rates=(4, 2), upsample_kernel_sizes=(8, 4),
                                 upsample_initial_channel=16, resblock_kernel_sizes=(3, 5),
                                 resblock_dilation_sizes=((1, 3), (1, 2)), resblock_activation="leaky_relu",
                                 source=False)),
    "frame": ("hiftnet_frame", dict(_SOURCE, dim=16, intermediate_dim=24, num_layers=2, n_fft=32, hop_length=8)),
    "frame_no_phase_input": ("hiftnet_frame", dict(_SOURCE, dim=16, intermediate_dim=24, num_layers=2, n_fft=32,
                                                   hop_length=8, source_phase_input=False)),
    "frame_prior": ("hiftnet_frame", dict(_SOURCE, dim=16, intermediate_dim=24, num_layers=2, n_fft=32, hop_length=8,
                                          fmax=4000.0, prior="pinv")),
}
_CACHE: dict = {}


def make(key: str) -> nn.Module:
    """A tiny generator with random weights large enough that every layer matters; the F0 network's output
    logits are biased so that some frames are voiced and some not (the source's two regimes)."""
    if key not in _CACHE:
        torch.manual_seed(zlib.crc32(key.encode()) % 1000)
        name, cfg = CONFIGS[key]
        g = build_generator(name, cfg).eval()
        with torch.no_grad():
            for n, p in g.named_parameters():
                if not n.startswith("f0_predictor."):
                    p.add_(torch.randn_like(p) * (0.3 if "alpha" in n else 0.05))
            f0 = getattr(g, "f0_predictor", None)
            if f0 is not None:  # voiced where the voiced logit is above its median on random mels
                f0.conv_out.weight[1] *= 10.0
                f0.conv_out.bias[1] -= f0.raw(mel_of(4, 40, 99))[:, 1].median()
        _CACHE[key] = g
    return _CACHE[key]


def mel_of(batch: int, frames: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, N, frames, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------- presets
PRESET_COUNTS = {"hiftnet_22khz": 18_186_287, "istftnet_c8c8i_22khz": 13_262_244, "hiftnet_frame_22khz": 12_872_717}
F0_NET = 999_938  # F0Predictor(80, 192, 5, 6): the shipped one's size


def _docs_row(preset: str) -> str:
    rows = [line for line in DOCS.read_text().splitlines() if line.startswith(f"| `{preset}`")]
    assert len(rows) == 1, preset
    return rows[0]


@pytest.mark.parametrize("preset", sorted(PRESET_COUNTS))
def test_preset_shapes_and_parameter_counts(preset):
    """Each preset maps ``[B, 80, T]`` to ``[B, 1, T * 256]`` on its 22.05 kHz mel; its parameter count is the
    one docs/seed_systems.md states (to 0.01 M), and the F0 network's the one the row gives. iSTFTNet C8C8I has
    13.26 M parameters in the iSTFTNet paper (Kaneko et al. 2022, Table 1)."""
    p = get_preset(preset)
    assert p.mel.hop_length == 256 and p.mel.n_mels == 80 and p.mel.sample_rate == 22050 and p.mel.n_fft == 1024
    g = build_generator(preset).eval()
    assert (g.hop_length, g.n_mels) == (256, 80)
    with torch.no_grad():
        y = g(torch.randn(2, 80, 3) - 4.0)
    assert y.shape == (2, 1, 3 * 256) and torch.isfinite(y).all()
    total = sum(q.numel() for q in g.parameters())
    assert total == PRESET_COUNTS[preset]
    row = _docs_row(preset)
    stated = float(re.search(r"\| (\d+\.\d+) M", row).group(1))
    assert round(total / 1e6, 2) == stated, (total, row)
    if preset != "istftnet_c8c8i_22khz":
        assert sum(q.numel() for q in g.f0_predictor.parameters()) == F0_NET
        assert f"{F0_NET / 1e6:.2f} M F0 network" in row
    else:
        assert not hasattr(g, "f0_predictor")


def test_hiftnet_preset_is_the_papers_configuration():
    """C8C8I from 512 channels, Snake ResBlock1 (3, 7, 11) x (1, 3, 5), 8 overtones, the source's STFT through a
    16-tap stride-8 conv at stage 1 (256 channels) and a 1x1 conv at stage 2 (128 channels), resblocks 7 and 11,
    conv_post to n_fft + 2 = 18 channels (official config_v1.json and models.py)."""
    g = build_generator("hiftnet_22khz")
    c = g.config
    assert (c.upsample_rates, c.upsample_kernel_sizes, c.upsample_initial_channel) == ((8, 8), (16, 16), 512)
    assert (c.istft_n_fft, c.istft_hop_length, c.harmonics) == (16, 4, 8)
    assert [tuple(m.weight.shape) for m in g.source_convs] == [(256, 18, 16), (128, 18, 1)]
    assert [m.stride[0] for m in g.source_convs] == [8, 1]
    assert [b.convs1[0].kernel_size[0] for b in g.source_resblocks] == [7, 11]
    assert g.conv_post.out_channels == 18 and g.source.n_sines == 9


def test_bad_configs_are_value_errors():
    with pytest.raises(ValueError, match="source_resblock_kernel_sizes"):
        build_generator("hiftnet", dict(source_resblock_kernel_sizes=(7,)))
    with pytest.raises(ValueError, match="resblock_activation"):
        build_generator("hiftnet", dict(resblock_activation="gelu"))
    with pytest.raises(ValueError, match="need the source"):
        build_generator("hiftnet", dict(source=False, freeze_f0=True))
    with pytest.raises(ValueError, match="padding 'same'"):
        build_generator("hiftnet_frame", dict(padding="center"))
    with pytest.raises(ValueError, match="at least 2 mel frames"):
        make("frame")(mel_of(1, 1, 0))
    with pytest.raises(ValueError, match="mel"):
        make("hiftnet")(torch.randn(1, N + 1, 5))


# ------------------------------------------------------------------------------------------- the source
@pytest.mark.parametrize("n_fft,hop", [(16, 4), (32, 8), (1024, 256)])
def test_source_stft_is_the_stft_in_the_same_framing(n_fft, hop):
    """The strided DFT conv equals torch.stft on the "same" framing (what the Fourier losses and the head use)."""
    x = torch.randn(2, 1, 12 * hop, generator=torch.Generator().manual_seed(n_fft))
    ri = SourceSTFT(n_fft, hop)(x)
    want = analysis_frames(x[:, 0], n_fft, hop, torch.hann_window(n_fft), "same")
    f = n_fft // 2 + 1
    assert ri.shape == (2, 2 * f, 12)
    assert torch.allclose(ri[:, :f], want.real, atol=1e-4) and torch.allclose(ri[:, f:], want.imag, atol=1e-4)


@pytest.mark.parametrize("key", ["hiftnet", "frame"])
def test_graph_excitation_is_the_sources(key):
    """The exported graphs' source (the F0 network in float32, the source's arithmetic without its input checks)
    is the source's forward on the same F0, bit for bit, voiced and unvoiced frames both present; and near the
    float64 F0 the models run (F0 to float32 rounding, so the excitations differ by a phase drift that stays small
    over 11 frames)."""
    g = make(key)
    mel = mel_of(2, 11, 4)
    f0, voiced = g.f0(mel, float64=False)
    assert voiced.any() and (~voiced).any()
    graph = g.graph_excitation(mel)
    assert torch.equal(graph, g.source(f0, voiced)[0])
    f0_64, voiced_64 = g.f0(mel)
    assert f0_64.dtype == torch.float64 and torch.equal(voiced_64, voiced)
    assert torch.allclose(f0_64, f0.double(), rtol=1e-5)
    assert (graph - g.excitation(mel)).abs().max().item() < 1e-4


def test_untrained_frame_head_has_the_sources_phase():
    """The phase residual's projection starts at zero: the untrained frame-rate model's phase is the source's."""
    g = build_generator("hiftnet_frame", CONFIGS["frame"][1]).eval()
    mel = mel_of(1, 9, 1)
    with torch.no_grad():
        _, phase = g.spectrum(mel)
        ri = g.source_stft(g.excitation(mel))
    f = g.config.n_bins
    assert torch.allclose(phase, torch.atan2(ri[:, f:], ri[:, :f]))


def test_untrained_frame_prior_has_the_priors_amplitude():
    """``prior="pinv"``: the backbone reads the mel's pinv log-amplitude, and the untrained model's log-amplitude
    is that prior (its projection starts at zero), as the default model's; the phase is still the source's."""
    from vocoder.audio.mel import pinv_basis, pinv_log_amplitude
    from vocoder.generators.vocos import PRIOR_FLOOR

    g = build_generator("hiftnet_frame", CONFIGS["frame_prior"][1]).eval()
    assert g.backbone.embed.in_channels == 4 * g.config.n_bins  # log A0, then the source's 3F features
    mel = mel_of(1, 9, 1)
    with torch.no_grad():
        log_amp, phase = g.spectrum(mel)
        ri = g.source_stft(g.excitation(mel))
    want = pinv_log_amplitude(pinv_basis(g.config.prior_mel_config()), mel, PRIOR_FLOOR)
    assert torch.equal(log_amp, want)
    f = g.config.n_bins
    assert torch.allclose(phase, torch.atan2(ri[:, f:], ri[:, :f]))
    assert not any(k.startswith("prior") for k in g.state_dict())  # from the config, not saved
    with pytest.raises(ValueError, match="prior"):
        build_generator("hiftnet_frame", dict(CONFIGS["frame"][1], prior="linear"))


# ------------------------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_streaming_equals_offline(key):
    """Chunks of 1, 4, all, random sizes, a batch of 2, scripted and eager: the concatenation equals
    ``generator(mel)`` within the tolerance of every family's streaming test. The source's state carries its phase and sample counter; the
    F0 network, the source's STFT (reflect padding at both ends) and the backbone keep their context."""
    g = make(key)
    T = 29
    mel = mel_of(2, T, 7)
    with torch.no_grad():
        ref = g(mel)[:, 0]
    for script in (True, False):  # the frozen TorchScript network (short chunks) and the eager one
        sv = StreamingVocoder(g, script=script)
        assert (sv.scripted is not None) == script
        rng = random.Random(1)
        for chunks in ([1] * T, [4] * 8, [T], random_chunks(T, rng), random_chunks(T, rng, 3)):
            y = stream_all(sv, mel, chunks)
            assert y.shape == ref.shape, chunks
            assert (y - ref).abs().max().item() <= TOL, chunks


@pytest.mark.parametrize("key", ["hiftnet", "frame"])
def test_lookahead_and_short_utterances(key):
    """The delay includes the F0 network's (2 layers of 5 taps: 4 frames); utterances shorter than it come out
    whole at the flush."""
    g = make(key)
    sv = StreamingVocoder(g)
    L = sv.lookahead_frames
    assert L >= g.f0_predictor.lookahead + 1
    for T in (2, 3, L - 1, L, L + 1):
        mel = mel_of(1, T, T)
        with torch.no_grad():
            ref = g(mel)[:, 0]
        pushed = [sv.push(mel[..., i:i + 1]) for i in range(T)]
        if T < L:
            assert all(p.shape[-1] == 0 for p in pushed), T
        y = torch.cat(pushed + [sv.flush()], -1)
        assert y.shape == ref.shape and (y - ref).abs().max().item() <= TOL, T


def test_frame_variant_is_a_fourier_head():
    """``hiftnet_frame`` registers ``fourier=True``: ``refined`` with PGHI / RTPGHI phase and Griffin-Lim runs, and
    ``phase="rtpghi"`` streams it to the offline RTPGHI decode (tests/test_streaming.py's tolerance, 1e-4 of the
    peak) for any chunking."""
    from vocoder.generators.registry import is_fourier

    g = make("frame")
    assert is_fourier(g) and not is_fourier(make("hiftnet"))
    T = 23
    mel = mel_of(2, T, 11)
    with torch.no_grad():
        assert g.refined(mel, 2, phase="pghi").shape == (2, 1, T * g.hop_length)
        ref = g.refined(mel, 0, phase="rtpghi")[:, 0]
    sv = StreamingVocoder(g, phase="rtpghi")
    peak = ref.abs().max().item()
    for chunks in ([1] * T, [4] * 6, random_chunks(T, random.Random(3)), [T]):
        y = stream_all(sv, mel, chunks)
        assert y.shape == ref.shape and (y - ref).abs().max().item() <= 1e-4 * peak, chunks


def test_push_together_equals_each_stream_alone():
    """Streams of one model decoded together (batched where their states line up; the source's state is one row
    per item) give each stream's own audio."""
    from vocoder.streaming import push_together

    g = make("hiftnet")
    mels = [mel_of(1, 12, s)[0] for s in (1, 2)]
    svs = [StreamingVocoder(g) for _ in mels]
    outs, stats = [[], []], {}
    for i in range(0, 12, 3):
        for j, y in enumerate(push_together(svs, [m[:, i:i + 3] for m in mels], stats)):
            outs[j].append(y)
        assert stats["calls"] == 1  # one batched call for both
    for j, sv in enumerate(svs):
        outs[j].append(sv.flush())
    for j, m in enumerate(mels):
        with torch.no_grad():
            ref = g(m[None])[0, 0]  # alone, as item 0: its own noise
        assert (torch.cat(outs[j]) - ref).abs().max().item() <= TOL


def test_preset_lookahead_and_stream_through_the_vocoder():
    """The presets' delays: the F0 network's 12 frames (6 layers of 5 taps) plus the generator's; hiftnet_22khz
    26 frames (302 ms), hiftnet_frame_22khz 43 (12 + 2 for the source's STFT + 3 per 7-tap conv of the backbone,
    9 of them + 2 for the inverse STFT's trim; the default model's vocos_22khz_80band waits 29). The frame-rate
    preset streams through ``Vocoder.stream`` to its offline decode."""
    from vocoder.streaming import build_streaming_generator

    assert build_streaming_generator(build_generator("hiftnet_22khz")).lookahead_frames == 26
    torch.manual_seed(0)
    voc = Vocoder(build_generator("hiftnet_frame_22khz"), get_preset("hiftnet_frame_22khz").mel)
    assert voc.lookahead_frames == 43
    mel = torch.randn(80, 41) - 4.0  # log-mel scale
    y = torch.cat(list(voc.stream(mel[:, i:i + 6] for i in range(0, 41, 6))))
    ref = voc(mel)
    assert y.shape == ref.shape and (y - ref).abs().max().item() <= TOL


@pytest.mark.parametrize("preset", ["hiftnet_22khz", "hiftnet_frame_22khz"])
def test_streamed_excitation_is_bit_exact(preset):
    """The F0 network and the source, streamed in chunks of 6 frames, give the offline excitation bit for bit:
    the F0 network runs in float64 (``f0``), so its chunked rounding (1e-15) never moves the source's 2^-32-cycle
    phase steps. In float32 it differed by 1e-6 in log-F0, the excitation by 8.7e-6 (41 frames, these random
    weights), growing with the utterance as a phase drift; the decoded stream then missed the 1e-4 tolerance."""
    from vocoder.nn.streaming import StateAllocator

    torch.manual_seed(0)
    g = build_generator(preset).eval()
    mel = torch.randn(2, 80, 41) - 4.0
    with torch.no_grad():  # about half the frames voiced
        g.f0_predictor.conv_out.bias[1] -= g.f0_predictor.raw(mel)[:, 1].median()
    net = g.stream_source()
    alloc = StateAllocator()
    net.allocate(alloc)
    states = [torch.zeros(0)] * alloc.count
    net.fill_states(states, 2, torch.zeros(1))
    with torch.no_grad():
        pieces = [net(mel[..., i:i + 6], states, False) for i in range(0, 41, 6)] + [net(mel[..., :0], states, True)]
        want = g.excitation(mel)
    voiced = g.f0(mel)[1]
    assert voiced.any() and (~voiced).any() and torch.equal(torch.cat(pieces, -1), want)


def test_speech_with_the_pretrained_f0_network_streams_exactly():
    """A shipped speech clip (2.9 s, 30% voiced by the shipped F0 network) through hiftnet_frame_22khz with that
    network (random generator weights), in 10-frame chunks: the stream equals the offline decode (measured 3e-7;
    8.5e-6 with the F0 network in float32)."""
    from vocoder.audio.io import load_audio

    torch.manual_seed(0)
    f0_file = RECIPES_DIR / "warm_start" / "f0_predictor_22khz.pt"
    g = build_generator("hiftnet_frame", dict(f0_init=str(f0_file), freeze_f0=True)).eval()
    voc = Vocoder(g, get_preset("hiftnet_frame_22khz").mel)
    mel = voc.mel(load_audio(SAMPLES / "speech_nl_klettres_ad-16.wav", voc.sample_rate))
    assert 0.1 < g.f0(mel[None])[1].float().mean().item() < 0.9
    y = torch.cat(list(voc.stream(mel[:, i:i + 10] for i in range(0, mel.shape[1], 10))))
    ref = voc(mel)
    assert y.shape == ref.shape and (y - ref).abs().max().item() <= TOL


# ------------------------------------------------------------------------------------------- export
def _tiny_vocoder(key: str) -> Vocoder:
    g = make(key)
    mel = MelConfig(sample_rate=8000 if key != "istftnet" else 22050, n_fft=64, hop_length=g.hop_length,
                    win_length=64, n_mels=N, fmin=0.0, fmax=4000.0)
    return Vocoder(g, mel)


@pytest.mark.parametrize("key", ["hiftnet", "istftnet", "frame", "frame_prior"])
def test_torchscript_and_onnx_equal_eager(key, tmp_path):
    """``export_torchscript`` (traced) and ``export_onnx`` (onnxruntime) on other batch sizes and lengths than
    traced: equal to the eager generator (the source's integer phase and counter-based noise included)."""
    from vocoder.checkpoints import export_onnx, export_torchscript

    voc = _tiny_vocoder(key)
    mels = [mel_of(1, 13, 2), mel_of(3, 6, 3)]
    ts = torch.jit.load(str(export_torchscript(voc, tmp_path / "m.ts")))
    for mel in mels:
        want = voc(mel)
        with torch.no_grad():
            got = ts(mel)
        assert got.shape == want.shape and want.std() > 1e-3
        assert (got - want).abs().max().item() < _graph_tol(want)
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    path = export_onnx(voc, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for mel in mels:
        got, want = torch.from_numpy(session.run(None, {"mel": mel.numpy()})[0]), voc(mel)
        assert (got - want).abs().max().item() < _graph_tol(want)


def _graph_tol(want: torch.Tensor) -> float:
    """float32 rounding of another evaluation order: 1e-4, or 1e-5 of the peak for loud random models (the pinv
    prior of a random mel gives peaks of ~40)."""
    return max(1e-4, 1e-5 * want.abs().max().item())


# ------------------------------------------------------------------------------------------- the F0 network
def _f0_file(tmp_path, kind: str = "checkpoint", channels: int = 8, seed: int = 5) -> Path:
    torch.manual_seed(seed)
    net = F0Predictor(N, channels, 5, 2)
    path = tmp_path / f"f0_{kind}_{channels}.pt"
    mel = {"sample_rate": 8000, "hop_length": 8}
    torch.save(f0_predictor_checkpoint(net, mel) if kind == "checkpoint" else net.state_dict(), path)
    return path


@pytest.mark.parametrize("kind", ["checkpoint", "state_dict"])
def test_f0_init_freeze_and_one_file_checkpoint(tmp_path, kind):
    """``f0_init`` loads the file into the F0 network, ``freeze_f0`` leaves it without gradient and in eval mode
    while the generator trains; saved with our checkpoint, the F0 weights are in the one file: it loads (and
    decodes the same) after the init file is gone, and its config no longer names that file."""
    from vocoder.checkpoints import save_checkpoint

    path = _f0_file(tmp_path, kind)
    want = torch.load(path, weights_only=True)
    want = want["state_dict"] if kind == "checkpoint" else want
    cfg = dict(CONFIGS["frame"][1], hop_length=8, f0_init=str(path), freeze_f0=True)
    g = build_generator("hiftnet_frame", cfg)
    assert g.config.f0_init is None and g.config.freeze_f0
    assert all(torch.equal(g.f0_predictor.state_dict()[k], v) for k, v in want.items())
    g.train()
    assert g.training and not g.f0_predictor.training
    assert not any(p.requires_grad for p in g.f0_predictor.parameters())
    g(mel_of(1, 6, 0)).square().mean().backward()
    assert all(p.grad is None for p in g.f0_predictor.parameters())
    assert g.backbone.embed.weight.grad is not None
    g.eval()
    mel_config = MelConfig(sample_rate=8000, n_fft=32, hop_length=8, win_length=32, n_mels=N, fmin=0.0, fmax=4000.0)
    out = tmp_path / "model.pt"
    save_checkpoint(out, g, mel_config)
    path.unlink()
    voc = Vocoder.from_pretrained(str(out))
    loaded = voc.generator
    assert isinstance(loaded, HiFTNetFrameGenerator) and loaded.config.freeze_f0
    assert all(torch.equal(loaded.f0_predictor.state_dict()[k], v) for k, v in want.items())
    mel = mel_of(1, 10, 9)
    with torch.no_grad():
        assert torch.equal(loaded(mel), g(mel))


def test_f0_init_errors_name_the_problem(tmp_path):
    base = dict(CONFIGS["hiftnet"][1])
    with pytest.raises(ValueError, match="f0_init: no file"):
        build_generator("hiftnet", dict(base, f0_init=str(tmp_path / "missing.pt")))
    with pytest.raises(ValueError, match="channels: file 16, generator 8"):
        build_generator("hiftnet", dict(base, f0_init=str(_f0_file(tmp_path, "checkpoint", channels=16))))
    with pytest.raises(ValueError, match="does not fit this F0 network"):
        build_generator("hiftnet", dict(base, f0_init=str(_f0_file(tmp_path, "state_dict", channels=16))))
    with pytest.raises(ValueError, match="mel hop_length: file 8, generator 32"):
        build_generator("hiftnet", dict(base, upsample_rates=(4, 2), istft_hop_length=4,
                                        f0_init=str(_f0_file(tmp_path, "checkpoint"))))


def test_vocoder_info_shows_the_f0_network(tmp_path, capsys):
    from vocoder.cli.main import main

    voc = _tiny_vocoder("hiftnet")
    voc.save(tmp_path / "m.pt")
    assert main(["info", "--model", str(tmp_path / "m.pt")]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("F0 network:"))
    n = sum(p.numel() for p in voc.generator.f0_predictor.parameters())
    assert "F0Predictor" in line and f"{n:,} parameters" in line and "2 convs x 8 channels" in line
    assert "lookahead 4 frames" in line and "50-1100 Hz" in line and "2 overtones" in line
    voc = _tiny_vocoder("istftnet")
    voc.save(tmp_path / "i.pt")
    assert main(["info", "--model", str(tmp_path / "i.pt")]) == 0
    assert "F0 network" not in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("recipe", ["hiftnet_22khz", "hiftnet_frame_22khz"])
def test_recipe_trains_two_steps(recipe, tmp_path, one_thread):
    """``vocoder train --config recipes/X.yaml --max-steps 2`` on generated audio (tiny sizes, the F0 network's
    kept): step 1 GAN-free, step 2 with the discriminators (discriminator_start_step moved to 1). The F0 network
    starts from the shipped pretrained one and is frozen: it comes out of training unchanged, inside the exported
    model, whose config no longer names the file."""
    from vocoder.cli.main import main
    from vocoder.training.recipes import load_recipe

    path = RECIPES_DIR / f"{recipe}.yaml"
    r = load_recipe(path)
    assert [d["name"] for d in r["discriminators"]] == ["mpd", "mrd"] and r["optim"]["discriminator_start_step"] > 0
    assert r["generator"]["preset"] == recipe and r["losses"]["mel"] > 0 and r["losses"]["stft_mag"] > 0
    if recipe == "hiftnet_frame_22khz":
        assert r["losses"]["amplitude"] > 0 and r["losses"]["phase_gd"] > 0
    f0_file = RECIPES_DIR.parent / r["generator"]["config"]["f0_init"]
    assert r["generator"]["config"]["freeze_f0"] and f0_file.is_file()
    audio = make_audio_dir(tmp_path / "audio")
    run = tmp_path / "run"
    args = ["train", "--config", str(path), "--data", str(audio), "--out", str(run), "--max-steps", "2",
            *tiny_overrides(path), "optim.discriminator_start_step=1"]
    assert main(args) == 0
    ck = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ck["gan_step"] == 2
    voc = Vocoder.from_pretrained(str(run / "checkpoints" / "last.pt"))
    g = voc.generator
    assert isinstance(g, HiFTNetGenerator if recipe == "hiftnet_22khz" else HiFTNetFrameGenerator)
    assert g.config.f0_init is None and g.config.freeze_f0
    want = torch.load(f0_file, weights_only=True)["state_dict"]
    got = g.f0_predictor.state_dict()
    assert all(torch.equal(got[k], v.float()) for k, v in want.items())
