"""Parallel WaveGAN: the generator and discriminators against the ``parallel_wavegan`` package on the same weights,
its runs imported and exported, the noise (torch's global RNG as the package draws it, or counter-based), exact
streaming, and the recipe."""
from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vocoder import Vocoder
from vocoder.audio.mel import MelConfig
from vocoder.checkpoints import export_parallel_wavegan, import_parallel_wavegan
from vocoder.discriminators import build_discriminator
from vocoder.generators import build_generator, get_preset
from vocoder.generators.parallel_wavegan import ParallelWaveGANConfig, ParallelWaveGANGenerator
from vocoder.nn.counter_noise import counter_noise, counter_normal
from vocoder.streaming.engine import StreamingVocoder, build_streaming_generator, push_together

sys.path.insert(0, str(Path(__file__).resolve().parent / "training"))  # the recipe tests' helpers and fixture
from training_helpers import RECIPES_DIR, make_audio_dir, one_thread, tiny_overrides  # noqa: E402,F401

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

N_MELS = 16
# A small WaveNet of the package (2 dilation cycles of 4 layers, hop 16, context window 1) and the paper's.
SMALL = dict(layers=8, stacks=2, residual_channels=16, gate_channels=32, skip_channels=16, aux_channels=N_MELS,
             aux_context_window=1, upsample_params={"upsample_scales": [4, 2, 2]})
MEL = MelConfig(sample_rate=8000, n_fft=64, hop_length=16, win_length=64, n_mels=N_MELS, fmin=0.0, fmax=4000.0)


def _pwg():
    pytest.importorskip("parallel_wavegan")
    import scipy.signal
    import scipy.signal.windows

    scipy.signal.kaiser = scipy.signal.windows.kaiser  # parallel_wavegan 0.6.1 still imports the old name
    from parallel_wavegan import models

    return models


def _package_generator(params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.nn.utils.weight_norm is deprecated
        # upsample_params: the package updates its argument in place, so each model gets its own copy
        params = dict(params, upsample_params=dict(params.get("upsample_params", {"upsample_scales": [4, 4, 4, 4]})))
        return _pwg().ParallelWaveGANGenerator(**params)


def _trained_looking(module, seed=0):
    """Weights from torch's RNG that make a non-trivial, unsaturated output: unit-ish norms, small biases."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight_g"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.01 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g))
    return module


def _ours_for(params):
    """Our generator with the config the importer derives from the package's ``params``."""
    up = params["upsample_params"]["upsample_scales"]
    keys = ("layers", "stacks", "residual_channels", "gate_channels", "skip_channels", "aux_context_window")
    return ParallelWaveGANGenerator(ParallelWaveGANConfig(n_mels=params["aux_channels"], upsample_scales=up,
                                                          **{k: params[k] for k in keys}))


def _stats(folder, model, seed=0, kind="h5"):
    """Feature statistics beside a run (and registered on the package's model, as its load_model does)."""
    rng = np.random.default_rng(seed)
    n = model.aux_channels
    mean = rng.normal(-2.0, 0.5, n).astype(np.float32)
    scale = rng.uniform(0.5, 1.5, n).astype(np.float32)
    if kind == "h5":
        h5py = pytest.importorskip("h5py")
        with h5py.File(folder / "stats.h5", "w") as f:
            f["mean"], f["scale"] = mean, scale
        model.register_stats(str(folder / "stats.h5"))
    else:
        np.save(folder / "stats.npy", np.stack([mean, scale]))
        model.register_stats(str(folder / "stats.npy"))


def _write_run(folder, params, seed=0, steps=100, sample_rate=8000, hop=16, stats="h5"):
    """A ParallelWaveGAN training folder with a ParallelWaveGANGenerator, as its train.py leaves it."""
    model = _trained_looking(_package_generator(params), seed)
    folder.mkdir(parents=True, exist_ok=True)
    n_mels = params.get("aux_channels", 80)
    cfg = {"sampling_rate": sample_rate, "fft_size": 4 * hop, "hop_size": hop, "win_length": None, "window": "hann",
           "num_mels": n_mels, "fmin": 0, "fmax": None, "global_gain_scale": 1.0, "format": "hdf5" if stats == "h5"
           else "npy", "generator_type": "ParallelWaveGANGenerator", "generator_params": params}
    (folder / "config.yml").write_text(yaml.safe_dump(cfg))
    torch.save({"model": {"generator": model.state_dict(), "discriminator": {}}, "steps": steps, "epochs": 1},
               folder / f"checkpoint-{steps}steps.pkl")
    _stats(folder, model, seed, stats)
    return model.eval()


def _inference(model, mel, seed):
    """The package's own inference on the features it was trained on (our ln-mel as log10, normalised), with its
    noise drawn after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    with torch.no_grad():
        return model.inference(mel.T / math.log(10.0), normalize_before=True).reshape(-1)


# --- counter-based noise ---------------------------------------------------------------------------------------------
def test_counter_noise_is_gaussian_and_a_function_of_the_sample_index():
    z = counter_noise(7, 20000, batch=3)
    assert z.shape == (3, 1, 20000) and z.dtype == torch.float32
    for row in z[:, 0]:
        assert abs(row.mean().item()) < 0.03 and abs(row.std().item() - 1.0) < 0.03
        assert abs(torch.corrcoef(torch.stack([row[:-1], row[1:]]))[0, 1].item()) < 0.03  # no serial correlation
        # tails of a normal: P(|z| > 2) = 4.55 %, P(|z| > 3) = 0.27 %
        assert abs((row.abs() > 2).float().mean().item() - 0.0455) < 0.006
        assert abs((row.abs() > 3).float().mean().item() - 0.0027) < 0.0015
    assert (z[0] - z[1]).abs().mean() > 0.5 and (z - counter_noise(8, 20000, batch=3)).abs().mean() > 0.5
    # any window of samples: the same values as the whole
    pieces = [counter_noise(7, n, offset=o, batch=3) for o, n in ((0, 5), (5, 1), (6, 9994), (10000, 10000))]
    assert torch.equal(torch.cat(pieces, -1), z)
    # per row key: item 2 alone is row 2 of the batch
    alone = counter_normal(7, torch.tensor([2]), torch.tensor(100), 50)
    assert torch.equal(alone[0], z[2, 0, 100:150])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(counter_normal)
    assert torch.equal(scripted(7, torch.arange(3), torch.tensor([0]), 20000), z[:, 0])
    for bad in (1.5, True, 2 ** 63):
        with pytest.raises(ValueError, match="seed must be an int"):
            counter_noise(bad, 4)
    with pytest.raises(ValueError, match="offset >= 0"):
        counter_noise(0, 4, offset=-1)


# --- the generator ---------------------------------------------------------------------------------------------------
def test_preset_is_the_package_model():
    """The paper's configuration: the package's default ParallelWaveGANGenerator, key for key. The paper states
    1.44 M parameters; the package's model (and ours) has 1,346,042 with weight norm, 1,334,309 folded."""
    ref = _package_generator({})
    ours = build_generator("parallel_wavegan")
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert [v.shape for v in ours.state_dict().values()] == [v.shape for v in ref.state_dict().values()]
    n = sum(p.numel() for p in ours.parameters())
    assert n == sum(p.numel() for p in ref.parameters()) == 1346042
    ours.remove_weight_norm()
    assert sum(p.numel() for p in ours.parameters()) == 1334309
    p = get_preset("parallel_wavegan")
    assert p.mel.hop_length == ours.hop_length == 256 and p.mel.sample_rate == 22050 and p.mel.n_mels == 80
    assert ours.config.wavenet_lookahead_samples == 3069  # (3 - 1) / 2 * 3 * (1 + 2 + ... + 512)


@pytest.mark.parametrize("params", [SMALL, dict(SMALL, aux_context_window=0, kernel_size=5, stacks=1)],
                         ids=["small", "no-context-k5"])
def test_same_weights_same_audio_as_the_package(params):
    params = dict(params)
    kernel = params.pop("kernel_size", 3)
    ref = _trained_looking(_package_generator(dict(params, kernel_size=kernel))).eval()
    up = params["upsample_params"]["upsample_scales"]
    ours = ParallelWaveGANGenerator(ParallelWaveGANConfig(
        n_mels=N_MELS, layers=params["layers"], stacks=params["stacks"], residual_channels=16, gate_channels=32,
        skip_channels=16, kernel_size=kernel, aux_context_window=params["aux_context_window"], upsample_scales=up))
    ours.load_state_dict(ref.state_dict())  # the package's names: a plain, strict load
    ours.eval()
    hop = ours.hop_length
    mel = torch.randn(2, N_MELS, 12)
    noise = torch.randn(2, 1, 12 * hop)
    ctx = params["aux_context_window"]
    with torch.no_grad():
        want = ref(noise, torch.nn.functional.pad(mel, (ctx, ctx), mode="replicate"))
        got = ours(mel, noise=noise)
        assert want.std() > 1e-2 and (got - want).abs().max().item() < 1e-5
        # noise=None: per item torch.randn(1, 1, T * hop) from the global generator, as inference draws it
        torch.manual_seed(3)
        drawn = torch.cat([torch.randn(1, 1, 12 * hop), torch.randn(1, 1, 12 * hop)])
        torch.manual_seed(3)
        assert torch.equal(ours(mel), ours(mel, noise=drawn))
        # seed=: the counter noise
        assert torch.equal(ours(mel, seed=5), ours(mel, noise=counter_noise(5, 12 * hop, batch=2)))
        assert not torch.equal(ours(mel, seed=5), ours(mel, seed=6))
        # weight norm folded: the same audio
        ours.remove_weight_norm()
        assert (ours(mel, noise=noise) - got).abs().max().item() < 1e-5


def test_bad_noise_and_config_are_refused():
    gen = _ours_for(SMALL)
    mel = torch.randn(1, N_MELS, 5)
    with pytest.raises(ValueError, match=r"noise must be a tensor \[B, 1, T \* hop\] = \[1, 1, 80\]"):
        gen(mel, noise=torch.randn(1, 80))
    with pytest.raises(ValueError, match="not both"):
        gen(mel, noise=torch.randn(1, 1, 80), seed=1)
    with pytest.raises(ValueError, match=r"\[B, 16, T\]"):
        gen(torch.randn(1, 80, 5))
    with pytest.raises(ValueError, match="multiple of stacks"):
        ParallelWaveGANConfig(layers=10, stacks=3)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        ParallelWaveGANConfig(kernel_size=4)
    with pytest.raises(ValueError, match="upsample_scales"):
        ParallelWaveGANConfig(upsample_scales=())


# --- import / export of the package's runs ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["small", "hop300", "paper"])
def test_import_equals_parallel_wavegan_inference(tmp_path, case):
    """``Vocoder.from_pretrained(run)`` gives the audio of the package's ``inference(..., normalize_before=True)``
    for the same seed (its noise: torch.randn after torch.manual_seed). ``hop300``: the upsampling of the
    package's 24 kHz configs (4 x 5 x 3 x 5); it streams exactly too."""
    if case == "small":
        params, n_mels, hop, sr = SMALL, N_MELS, 16, 8000
    elif case == "hop300":
        params, n_mels, hop, sr = dict(SMALL, upsample_params={"upsample_scales": [4, 5, 3, 5]}), N_MELS, 300, 24000
    else:
        params, n_mels, hop, sr = {}, 80, 256, 22050
    folder = tmp_path / "run"
    _write_run(folder, params, seed=1, steps=50, sample_rate=sr, hop=hop)  # an older checkpoint: not used
    ref = _write_run(folder, params, seed=0, steps=400, sample_rate=sr, hop=hop)
    voc = Vocoder.from_pretrained(folder)
    assert voc.generator_name == "parallel_wavegan" and voc.hop_length == hop and voc.n_mels == n_mels
    assert voc.generator.config.input_norm == "log10_standardize"
    mel = torch.randn(n_mels, 20) - 4.0
    want = _inference(ref, mel, seed=11)
    torch.manual_seed(11)
    got = voc(mel)
    diff = (got - want).abs().max().item()
    assert want.std() > 1e-2 and got.shape == want.shape and diff < 1e-5, diff
    torch.manual_seed(12)
    assert (voc(mel) - want).abs().max() > 1e-3  # another seed, other noise: the noise matters
    if case == "hop300":
        streamed = torch.cat(list(voc.stream([mel[:, :7], mel[:, 7:8], mel[:, 8:]])), -1)
        with torch.no_grad():
            assert (streamed - voc.generator(mel[None], seed=0)[0, 0]).abs().max().item() < 1e-5

    # our own format keeps the statistics; the same seed, the same audio
    voc.save(tmp_path / "ours.pt")
    again = Vocoder.from_pretrained(tmp_path / "ours.pt")  # (building a generator draws its initial weights)
    torch.manual_seed(11)
    assert (again(mel) - got).abs().max().item() < 1e-6


def test_single_file_npy_stats_and_refusals(tmp_path):
    ref = _write_run(tmp_path, SMALL, stats="npy")
    gen, mel_cfg, meta = import_parallel_wavegan(tmp_path / "checkpoint-100steps.pkl")
    assert meta["generator_type"] == "ParallelWaveGANGenerator" and mel_cfg.hop_length == 16
    mel = torch.randn(N_MELS, 10) - 4.0
    want = _inference(ref, mel, seed=2)
    torch.manual_seed(2)
    with torch.no_grad():
        assert (gen(mel[None]).reshape(-1) - want).abs().max().item() < 1e-5

    cfg = yaml.safe_load((tmp_path / "config.yml").read_text())
    for change, message in [
            ({"use_causal_conv": True}, "use_causal_conv"),
            ({"upsample_net": "UpsampleNetwork"}, "upsample_net"),
            ({"upsample_params": {"upsample_scales": [4, 2, 2], "nonlinear_activation": "LeakyReLU"}},
             "nonlinear_activation"),
            ({"upsample_params": {"upsample_scales": [4, 2, 2], "freq_axis_kernel_size": 3}}, "freq_axis_kernel"),
            ({"out_channels": 4}, "out_channels"),
            ({"residual_channels": 32}, "shape"),
            ({"layers": 6, "stacks": 4}, "multiple of stacks")]:
        bad = dict(cfg, generator_params=dict(cfg["generator_params"], **change))
        with pytest.raises(ValueError, match=message):
            import_parallel_wavegan(tmp_path / "checkpoint-100steps.pkl", config=bad)


def _load_model(path):
    _pwg()
    from parallel_wavegan.utils import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return load_model(str(path)).eval()


def test_export_loads_in_the_package_and_round_trips(tmp_path):
    """``export_parallel_wavegan`` of our model: the package's strict ``load_model`` + ``inference`` give our
    audio for the same seed; a run imported then exported is the same run."""
    voc = Vocoder(_trained_looking(_ours_for(SMALL)), MEL)
    path = export_parallel_wavegan(voc, tmp_path / "pwg", steps=7)
    h = yaml.safe_load((tmp_path / "pwg" / "config.yml").read_text())
    assert h["generator_type"] == "ParallelWaveGANGenerator"
    model = _load_model(path)
    mel = torch.randn(N_MELS, 18) - 4.0
    torch.manual_seed(4)
    want = voc(mel)
    got = _inference(model, mel, seed=4)
    assert want.std() > 1e-2 and (got - want).abs().max().item() < 1e-5

    ref = _write_run(tmp_path / "run", SMALL, stats="npy")
    gen, mel_cfg, _ = import_parallel_wavegan(tmp_path / "run")
    export_parallel_wavegan(gen, tmp_path / "back", mel_config=mel_cfg, steps=100)
    back = _load_model(tmp_path / "back" / "checkpoint-100steps.pkl")
    assert np.array_equal(np.load(tmp_path / "back" / "stats.npy"), np.load(tmp_path / "run" / "stats.npy"))
    assert (_inference(back, mel, 9) - _inference(ref, mel, 9)).abs().max().item() < 1e-5
    orig = yaml.safe_load((tmp_path / "run" / "config.yml").read_text())["generator_params"]
    again = yaml.safe_load((tmp_path / "back" / "config.yml").read_text())["generator_params"]
    assert all(again[k] == v for k, v in orig.items())


def test_cli_export_parallel_wavegan(tmp_path):
    from vocoder.cli.main import main as cli_main

    voc = Vocoder(_trained_looking(_ours_for(SMALL)), MEL)
    voc.save(tmp_path / "model.pt")
    assert cli_main(["export", "--format", "parallel-wavegan", str(tmp_path / "model.pt"), str(tmp_path / "out")]) == 0
    model = _load_model(tmp_path / "out" / "checkpoint-0steps.pkl")
    mel = torch.randn(N_MELS, 9) - 4.0
    want = _inference(model, mel, 1)
    torch.manual_seed(1)
    assert (voc(mel) - want).abs().max().item() < 1e-5


def _graph_case():
    gen = _trained_looking(_ours_for(SMALL)).eval()
    gen.noise_seed = 3
    mel = torch.randn(3, N_MELS, 13) - 4.0
    with torch.no_grad():
        want = gen(mel, seed=3)[:, 0]
    return Vocoder(gen, MEL), mel, want


def test_torchscript_export_draws_the_counter_noise(tmp_path):
    """Graphs have no RNG to replay: they compute ``forward(mel, seed=noise_seed)`` (what a stream gives), for any
    batch size and length (the exporter checks other shapes than the traced one)."""
    from vocoder.checkpoints import export_torchscript

    voc, mel, want = _graph_case()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(str(export_torchscript(voc, tmp_path / "pwg.ts")))
    assert (scripted(mel) - want).abs().max().item() < 1e-5


@pytest.mark.slow
def test_onnx_export_draws_the_counter_noise(tmp_path):
    """The same through ONNX (the hash's int64 ops and Box-Muller included), run by onnxruntime."""
    from vocoder.checkpoints import export_onnx

    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    voc, mel, want = _graph_case()
    session = ort.InferenceSession(str(export_onnx(voc, tmp_path / "pwg.onnx")), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"mel": mel.numpy()})[0] - want.numpy()).max() < 1e-4


# --- streaming -------------------------------------------------------------------------------------------------------
def _streamed(sv, mel, chunks):
    pieces, i = [], 0
    for c in chunks:
        pieces.append(sv.push(mel[..., i:i + c]))
        i += c
    assert i == mel.shape[-1]
    pieces.append(sv.flush())
    return torch.cat(pieces, -1)


@pytest.mark.parametrize("script", [False, True], ids=["eager", "scripted"])
def test_stream_equals_offline_decode_with_the_seed(script):
    gen = _trained_looking(_ours_for(SMALL)).eval()
    gen.noise_seed = 21
    voc = Vocoder(gen, MEL)
    mel = torch.randn(2, N_MELS, 40) - 4.0
    with torch.no_grad():
        want = gen(mel, seed=21)[:, 0]
    sv = StreamingVocoder(voc, script=script)
    for chunks in ([40], [1] * 40, [3, 7, 1, 12, 17], [25, 15]):
        got = _streamed(sv, mel, chunks)
        assert got.shape == want.shape and (got - want).abs().max().item() < 1e-5, chunks
    one = _streamed(sv, mel[1], [6, 34])  # a single item streamed alone: item 0's noise
    with torch.no_grad():
        assert (one - gen(mel[1:], seed=21)[0, 0]).abs().max().item() < 1e-5


def test_vocoder_stream_follows_a_changed_noise_seed():
    """``Vocoder.stream`` keeps its streamer between calls; a new ``noise_seed`` must not reuse the old one's noise."""
    gen = _trained_looking(_ours_for(SMALL)).eval()
    voc = Vocoder(gen, MEL)
    mel = torch.randn(N_MELS, 24) - 4.0
    for seed in (0, 5):
        gen.noise_seed = seed
        got = torch.cat(list(voc.stream([mel[:, :10], mel[:, 10:]])), -1)
        with torch.no_grad():
            want = gen(mel[None], seed=seed)[0, 0]
        assert got.shape == want.shape and (got - want).abs().max().item() < 1e-5, seed


def test_streams_batched_together_keep_their_own_noise():
    gen = _trained_looking(_ours_for(SMALL)).eval()
    voc = Vocoder(gen, MEL)
    mels = [torch.randn(N_MELS, 24) - 4.0 for _ in range(2)]
    alone = [torch.cat(list(StreamingVocoder(voc).stream([m[:, :8], m[:, 8:16], m[:, 16:]])), -1) for m in mels]
    decoders = [StreamingVocoder(voc), StreamingVocoder(voc)]
    stats = {}
    outs = [[], []]
    for i in range(0, 24, 8):
        for j, y in enumerate(push_together(decoders, [m[:, i:i + 8] for m in mels], stats)):
            outs[j].append(y)
    assert stats["calls"] == 1  # one batched network call
    for j, d in enumerate(decoders):
        outs[j].append(d.flush())
        assert (torch.cat(outs[j], -1) - alone[j]).abs().max().item() < 1e-5


def test_lookahead_is_the_receptive_field():
    """The streaming delay is the right receptive field: conv-in's context window, the upsampler's convs and the
    WaveNet's (kernel - 1) / 2 * sum(dilations) samples; perturbing one frame reaches that far back (the final
    ReLUs may hide the very first samples' change, never more than part of a frame)."""
    gen = _trained_looking(_ours_for(SMALL)).eval()
    cfg = gen.config
    assert cfg.wavenet_lookahead_samples == (3 - 1) // 2 * 2 * (1 + 2 + 4 + 8) == 30  # 2 cycles of 4 layers
    assert cfg.lookahead_samples == 1 * 16 + (4 * 4 + 2 * 2 + 2 * 1) + 30 == 68
    assert build_streaming_generator(gen).lookahead_frames == math.ceil(68 / 16) == 5
    hop, frames, f = gen.hop_length, 60, 45
    mel = torch.randn(1, N_MELS, frames)
    bumped = mel.clone()
    bumped[..., f] += 1.0
    with torch.no_grad():
        delta = (gen(bumped, seed=0) - gen(mel, seed=0)).abs()[0, 0]
    measured = f * hop - int(torch.nonzero(delta > 0)[0])  # samples before frame f that frame f changes
    assert cfg.lookahead_samples - hop < measured <= cfg.lookahead_samples
    paper = build_generator("parallel_wavegan")
    assert paper.config.lookahead_samples == 2 * 256 + (4 * 64 + 4 * 16 + 4 * 4 + 4 * 1) + 3069 == 3921
    assert build_streaming_generator(paper).lookahead_frames == 16


# --- discriminators --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, kwargs, theirs", [
    ("pwgd", {}, {}),
    ("pwgd", dict(layers=5, conv_channels=8, kernel_size=5, dilation_factor=2, lrelu_slope=0.1),
     dict(layers=5, conv_channels=8, kernel_size=5, dilation_factor=2,
          nonlinear_activation_params={"negative_slope": 0.1})),
    ("pwgd_residual", {}, {}),
    ("pwgd_residual", dict(layers=4, stacks=2, residual_channels=8, gate_channels=16, skip_channels=8),
     dict(layers=4, stacks=2, residual_channels=8, gate_channels=16, skip_channels=8)),
], ids=["pwgd", "pwgd-small-dilated", "residual", "residual-small"])
def test_discriminators_equal_the_package(name, kwargs, theirs):
    models = _pwg()
    cls = models.ParallelWaveGANDiscriminator if name == "pwgd" else models.ResidualParallelWaveGANDiscriminator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref = _trained_looking(cls(**theirs)).eval()
    ours = build_discriminator(name, **kwargs)
    ours.load_state_dict(ref.state_dict())  # the package's names: a plain, strict load
    wav = 0.1 * torch.randn(2, 1, 700)
    with torch.no_grad():
        want = ref(wav)
        logits, fmaps = ours(wav)
    assert len(logits) == len(fmaps) == 1 and logits[0].shape == (2, 700)
    assert want.std() > 1e-3 and (logits[0] - want.flatten(1)).abs().max().item() < 1e-5
    n_maps = (kwargs.get("layers", 10) - 1) if name == "pwgd" else kwargs.get("layers", 30) + 1
    assert len(fmaps[0]) == n_maps and all(m.shape[0] == 2 and m.shape[-1] == 700 for m in fmaps[0])
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        ours(torch.randn(2, 700))


# --- the recipe ------------------------------------------------------------------------------------------------------
def test_recipe_is_the_papers():
    from vocoder.training.recipes import load_recipe
    from vocoder.training.settings import TrainingRecipe

    r = TrainingRecipe.from_dict(load_recipe(RECIPES_DIR / "parallel_wavegan.yaml"))
    assert r.generator_name == "parallel_wavegan" and r.generator_config == get_preset("parallel_wavegan").config
    assert [d.name for d in r.discriminators] == ["pwgd"]
    L, o = r.losses, r.optim
    assert (L.kind, L.adv, L.fm, L.mel, L.stft_sc, L.stft_mag) == ("lsgan", 4.0, 0.0, 0.0, 1.0, 1.0)
    assert dict(L.stft_args) == {"fft_sizes": [1024, 2048, 512], "hop_sizes": [120, 240, 50],
                                 "win_lengths": [600, 1200, 240], "window": "hann_window"}
    assert o.discriminator_start_step == 100000 and o.lr == 1e-4 and o.eps == 1e-6 and o.weight_decay == 0.0
    assert (o.lr_decay, o.lr_decay_every) == (0.5, 200000) and r.raw["trainer"]["max_steps"] == 400000


@pytest.mark.parametrize("disc", ["pwgd", "pwgd_residual"])
def test_recipe_trains_through_the_adversarial_phase(tmp_path, disc, one_thread):
    """Two GAN steps with the generator-only warm-up cut to one step, so the second is adversarial."""
    from vocoder.training.recipes import load_recipe
    from vocoder.training.runner import train

    path = RECIPES_DIR / "parallel_wavegan.yaml"
    overrides = tiny_overrides(path) + ["optim.discriminator_start_step=1"]
    if disc == "pwgd_residual":  # the residual variant in place of the recipe's
        overrides.append("discriminators.0={name: pwgd_residual, args: {layers: 4, stacks: 2, residual_channels: 8, "
                         "gate_channels: 16, skip_channels: 8}}")
    r = load_recipe(path, overrides)
    result = train(r, str(make_audio_dir(tmp_path / "audio")), run_dir=tmp_path / "run", progress_bar=False)
    assert result.gan_step == 2 and not result.terminated
    ckpt = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 3  # 2 generator steps + 1 discriminator step
    voc = Vocoder.from_pretrained(tmp_path / "run" / "checkpoints" / "last.pt")
    assert voc.generator_name == "parallel_wavegan" and voc(torch.randn(80, 4) - 5).shape == (4 * 256,)
