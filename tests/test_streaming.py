"""Streaming decode (vocoder.streaming): exact equality with the offline generator for any chunking, bounded
state, the delay derived from the architecture, the Vocoder / CLI entry points and TorchScript export."""
from __future__ import annotations

import io
import random
import sys
import zlib

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vocoder.generators.registry import build_generator
from vocoder.nn.activations import Snake, SnakeBeta
from vocoder.nn.filters import Activation1d
from vocoder.streaming import StreamingVocoder, build_streaming_generator, push_together
from vocoder.nn.streaming import (StateAllocator, StreamActivation1d, StreamConv1d, StreamConvTranspose1d,
                                  activation_context)

from helpers import random_chunks, stream_all

TOL = 1e-4
N_MELS = 8

# Tiny generators of every family; each covers different streaming layers.
CONFIGS = {
    "hifigan_rb1": ("hifigan", dict(n_mels=N_MELS, upsample_rates=(4, 2), upsample_kernel_sizes=(8, 4),
                                    upsample_initial_channel=16, resblock="1", resblock_kernel_sizes=(3, 5),
                                    resblock_dilation_sizes=((1, 3), (1, 2)))),
    "hifigan_rb2": ("hifigan", dict(n_mels=N_MELS, upsample_rates=(3, 2), upsample_kernel_sizes=(7, 4),
                                    upsample_initial_channel=16, resblock="2", resblock_kernel_sizes=(3, 5),
                                    resblock_dilation_sizes=((1, 2), (2, 3)))),
    "melgan": ("melgan", dict(n_mels=N_MELS, ngf=4, ratios=(4, 3), n_residual_layers=2)),
    "bigvgan_amp1": ("bigvgan", dict(n_mels=N_MELS, upsample_rates=(4, 2), upsample_kernel_sizes=(8, 4),
                                     upsample_initial_channel=16, resblock="1", resblock_kernel_sizes=(3, 5),
                                     resblock_dilation_sizes=((1, 3), (1, 2)), activation="snakebeta")),
    "bigvgan_amp2_v2": ("bigvgan", dict(n_mels=N_MELS, upsample_rates=(2, 2), upsample_kernel_sizes=(4, 4),
                                        upsample_initial_channel=16, resblock="2", resblock_kernel_sizes=(3,),
                                        resblock_dilation_sizes=((1, 3),), activation="snake", snake_logscale=False,
                                        use_tanh_at_final=False, use_bias_at_final=False)),
}
# Fourier-head (Vocos) generators: both iSTFT paddings, with and without the pinv prior / atan2 phase head.
_VOCOS = dict(n_mels=N_MELS, dim=16, intermediate_dim=24, num_layers=2, n_fft=32, hop_length=8, sample_rate=8000,
              fmax=4000.0)
VOCOS_CONFIGS = {
    "vocos_same": ("vocos", dict(_VOCOS, padding="same")),
    "vocos_center": ("vocos", dict(_VOCOS, padding="center")),
    "vocos_same_prior_atan2": ("vocos", dict(_VOCOS, padding="same", prior="pinv", head="atan2")),
    "vocos_center_prior_atan2": ("vocos", dict(_VOCOS, padding="center", prior="pinv", head="atan2")),
    "vocos_same_prior_mel_input": ("vocos", dict(_VOCOS, padding="same", prior="pinv", prior_input=False)),
    "vocos_center_atan2": ("vocos", dict(_VOCOS, padding="center", head="atan2")),
}
CONFIGS.update(VOCOS_CONFIGS)

_CACHE: dict = {}


def make_generator(key: str) -> nn.Module:
    """A tiny generator with random weights large enough that every layer matters (cached per test session)."""
    if key not in _CACHE:
        torch.manual_seed(zlib.crc32(key.encode()) % 1000)  # not hash(): salted per process
        name, cfg = CONFIGS[key]
        g = build_generator(name, cfg).eval()
        with torch.no_grad():
            for n, p in g.named_parameters():
                p.add_(torch.randn_like(p) * (0.3 if ("alpha" in n or "beta" in n) else 0.05))
            if getattr(getattr(g, "head", None), "kind", None) == "atan2":
                # atan2(I, R) turns the float rounding of R and I into a phase error of rounding / |(R, I)|,
                # times the amplitude: random weights can put (R, I) next to the origin (measured: with the
                # amplitude at its clip, the offline decode itself moved by 1e-2 under a 1e-7 relative change
                # of the mel). Keep R away from 0 so that the comparisons measure the streaming.
                nb = g.head.n_bins
                g.head.out.bias[nb:2 * nb] += 1.0  # [log-amplitude, R, I]
        _CACHE[key] = g
    return _CACHE[key]


def random_mel(key: str, *shape: int, generator: torch.Generator = None) -> torch.Tensor:
    """Random log-mels ``shape`` for generator ``key``: ``randn``, except for a generator with the pinv amplitude
    prior, which gets the log-mel of a random nonnegative spectrum, as a vocoder sees. For an arbitrary ``randn``
    mel, ``pinv(mel_basis) @ exp(mel)`` cancels down to the 1e-5 floor in many bins; the prior is computed in
    float64 so that it no longer depends on the chunking (test below), but such bins make the backbone's input
    an arbitrary step function, which these equality tests do not need."""
    cfg = CONFIGS[key][1]
    if cfg.get("prior") is None:
        return torch.randn(*shape, generator=generator)
    from vocoder.audio.mel import mel_filterbank

    basis = mel_filterbank(make_generator(key).config.prior_mel_config())  # [n_mels, n_bins]
    spec = torch.exp(torch.randn(*shape[:-2], basis.shape[1], shape[-1], generator=generator))
    return torch.log(torch.clamp(torch.matmul(basis, spec), min=1e-5))


def offline(g: nn.Module, mel: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return g(mel)[:, 0]


# ------------------------------------------------------------------------------------------- single layers
def run_layer(layer, x, chunks):
    alloc = StateAllocator()
    layer.allocate(alloc)
    states = [torch.zeros(0)] * alloc.count
    layer.fill_states(states, x.shape[0], x)
    outs, i = [], 0
    for c in chunks:
        outs.append(layer(x[:, :, i:i + c], states, False))
        i += c
    outs.append(layer(x[:, :, i:], states, True))
    return torch.cat(outs, 2)


LAYER_CHUNKINGS = [[1] * 40, [3] * 13, [7, 1, 2, 9, 4, 1, 1, 8, 5]]


@pytest.mark.parametrize("k,d,s,mode", [(3, 1, 1, "zeros"), (7, 1, 1, "reflect"), (11, 5, 1, "zeros"),
                                        (12, 1, 2, "replicate"), (1, 1, 1, "zeros"), (3, 3, 1, "reflect")])
def test_conv_layer_matches_padded_conv(k, d, s, mode):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 40)
    conv = nn.Conv1d(3, 4, k, s, dilation=d)
    pl = d * (k - 1) // 2
    pr = d * (k - 1) - pl
    if mode == "replicate":
        pl, pr = k // 2 - 1, k // 2  # the low-pass layout: asymmetric
    ref = conv(F.pad(x, (pl, pr), mode="constant" if mode == "zeros" else mode))
    layer = StreamConv1d(conv.weight, conv.bias, s, d, 1, pl, pr, mode)
    for chunks in LAYER_CHUNKINGS:
        y = run_layer(layer, x, chunks)
        assert y.shape == ref.shape
        assert (y - ref).abs().max() < 1e-5


@pytest.mark.parametrize("k,s,p,op", [(16, 8, 4, 0), (4, 2, 1, 0), (10, 5, 3, 1), (7, 3, 2, 0), (3, 3, 0, 0),
                                      (5, 2, 1, 1)])
def test_transposed_conv_layer_matches(k, s, p, op):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 40)
    ct = nn.ConvTranspose1d(3, 4, k, s, p, op)
    ref = ct(x)
    layer = StreamConvTranspose1d.from_conv(ct)
    for chunks in LAYER_CHUNKINGS:
        y = run_layer(layer, x, chunks)
        assert y.shape == ref.shape
        assert (y - ref).abs().max() < 1e-5


@pytest.mark.parametrize("act_cls", [Snake, SnakeBeta])
def test_activation_layer_matches_reference(act_cls):
    torch.manual_seed(0)
    act = act_cls(3, alpha_logscale=act_cls is SnakeBeta)
    with torch.no_grad():
        act.alpha.normal_()
    module = Activation1d(act)
    x = torch.randn(2, 3, 40)
    ref = module.reference_forward(x)
    layer = StreamActivation1d(module)
    for chunks in LAYER_CHUNKINGS:
        y = run_layer(layer, x, chunks)
        assert y.shape == ref.shape
        assert (y - ref).abs().max() < 1e-5


def test_activation_context_is_the_true_receptive_field():
    """Perturbing input j changes outputs j-right..j+left exactly (no more, no less)."""
    torch.manual_seed(0)
    module = Activation1d(Snake(1))
    left, right = activation_context(module)
    x = torch.randn(1, 1, 64)
    x2 = x.clone()
    x2[..., 30] += 1.0
    changed = ((module.reference_forward(x2) - module.reference_forward(x)).abs() > 0)[0, 0].nonzero()[:, 0]
    assert changed.min().item() == 30 - right and changed.max().item() == 30 + left


# ------------------------------------------------------------------------------------------- generators
@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_generator_streaming_equals_offline(key):
    g = make_generator(key)
    sv = StreamingVocoder(g)
    T = 29
    mel = random_mel(key, 2, N_MELS, T)
    ref = offline(g, mel)
    rng = random.Random(1)
    for chunks in ([1] * T, [4] * 8, [T], random_chunks(T, rng), random_chunks(T, rng, 3)):
        y = stream_all(sv, mel, chunks)
        assert y.shape == ref.shape, (chunks, y.shape, ref.shape)
        assert (y - ref).abs().max().item() <= TOL, chunks


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(CONFIGS)), T=st.integers(4, 30), seed=st.integers(0, 10_000),
       hi=st.integers(1, 12))
def test_any_chunking_is_exact(key, T, seed, hi):
    g = make_generator(key)
    mel = random_mel(key, 1, N_MELS, T, generator=torch.Generator().manual_seed(seed))
    ref = offline(g, mel)
    y = stream_all(StreamingVocoder(g), mel, random_chunks(T, random.Random(seed), hi))
    assert y.shape == ref.shape
    assert (y - ref).abs().max().item() <= TOL


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("key", sorted(VOCOS_CONFIGS))
def test_fourier_generators_in_other_precisions(key, dtype):
    """A Fourier head cast to half precision synthesises in float32 (CPU FFTs have no float16 / bfloat16;
    before, ``.half()`` raised on CPU): the audio is float32 (float64 for float64), near the float32 decode, and
    streaming it equals decoding it offline in the same precision."""
    import copy

    g32 = make_generator(key)
    mel = random_mel(key, 2, N_MELS, 29)
    ref32 = offline(g32, mel)
    g = copy.deepcopy(g32).to(dtype)
    try:  # the backbone's own layers; some CPU builds lack them in half precision
        nn.Sequential(nn.Conv1d(4, 4, 3), nn.LayerNorm(2)).to(dtype)(torch.zeros(1, 4, 4, dtype=dtype))
    except RuntimeError as e:
        pytest.skip(f"{dtype} convolutions / layer norms not supported here: {e}")
    ref = offline(g, mel.to(dtype))
    assert ref.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    # relative RMS error: the atan2 head turns the rounding of small (R, I) into phase errors (make_generator);
    # the worst over 15 weight seeds was 0.028 (float16) and 0.175 (bfloat16, with the prior), garbage is ~1
    tol = {torch.float16: 0.1, torch.bfloat16: 0.4, torch.float64: 1e-6}[dtype]
    assert torch.linalg.vector_norm(ref.float() - ref32) <= tol * torch.linalg.vector_norm(ref32)
    # chunked convolutions and norms round differently from whole-utterance ones: equal to the dtype's precision
    stream_tol = {torch.float16: 1e-3, torch.bfloat16: 1e-2, torch.float64: TOL}[dtype] * ref.abs().max().item()
    sv = StreamingVocoder(g)
    for chunks in ([1] * 29, [4] * 8, random_chunks(29, random.Random(2))):
        y = stream_all(sv, mel.to(dtype), chunks)  # the streamer's audio is float32 whatever the network's dtype
        assert y.dtype == torch.float32 and y.shape == ref.shape
        assert (y - ref.float()).abs().max().item() <= stream_tol, chunks


def test_unbatched_input_gives_unbatched_audio():
    g = make_generator("hifigan_rb1")
    sv = StreamingVocoder(g)
    mel = torch.randn(N_MELS, 10)
    y = stream_all(sv, mel, [3, 3, 4])
    assert y.dim() == 1
    assert (y - offline(g, mel[None])[0]).abs().max() <= TOL


def _count_dispatch(monkeypatch):
    import vocoder.nn.filters as filters

    real = filters.anti_aliased_activation
    calls = {"n": 0, "fused": 0}

    def counting(x, module):
        calls["n"] += 1
        out = real(x, module)
        calls["fused"] += out is not None
        return out

    monkeypatch.setattr(filters, "anti_aliased_activation", counting)
    return calls


def test_bigvgan_streaming_uses_the_fused_kernel(monkeypatch):
    """The streaming activation goes through the same dispatch; fused streaming == reference offline."""
    from vocoder.kernels.dispatch import kernels_available

    if not kernels_available()["cpu"]:
        pytest.skip("the fused CPU kernel is not available here")
    g = make_generator("bigvgan_amp1")
    mel = torch.randn(1, N_MELS, 21)
    monkeypatch.setenv("VOCODER_KERNELS", "0")
    ref = offline(g, mel)  # reference path
    monkeypatch.setenv("VOCODER_KERNELS", "1")
    calls = _count_dispatch(monkeypatch)
    y = stream_all(StreamingVocoder(g), mel, [1] * 5 + [3] * 3 + [7])
    assert calls["fused"] > 0 and calls["fused"] == calls["n"]
    assert (y - ref).abs().max().item() <= TOL


def test_bigvgan_streaming_reference_path(monkeypatch):
    monkeypatch.setenv("VOCODER_KERNELS", "0")
    calls = _count_dispatch(monkeypatch)
    g = make_generator("bigvgan_amp1")
    mel = torch.randn(1, N_MELS, 17)
    ref = offline(g, mel)
    y = stream_all(StreamingVocoder(g), mel, [2] * 8)
    assert calls["n"] > 0 and calls["fused"] == 0
    assert (y - ref).abs().max().item() <= TOL


# ------------------------------------------------------------------------------------------- delay and state
@pytest.mark.parametrize("key", ["hifigan_rb1", "hifigan_rb2", "melgan", "bigvgan_amp1", "vocos_same",
                                 "vocos_center_atan2"])
def test_lookahead_is_the_right_receptive_field(key):
    """Changing frame k never changes audio before frame k - lookahead (the delay is enough); for HiFi-GAN and
    MelGAN it does change frame k - lookahead itself (the delay is not more than needed).

    float64 so that small contributions stay visible (Vocos without the prior: the prior computes in float32,
    and it is frame-wise, so it leaves the receptive field as it is); BigVGAN is only checked for sufficiency:
    the outermost taps of a dozen chained Kaiser filters multiply to far below double precision, so the true
    edge of its receptive field cannot be observed numerically (its minimality is checked by the count test
    below).
    """
    import copy

    g = copy.deepcopy(make_generator(key)).double()
    sv = StreamingVocoder(g)
    L, hop = sv.lookahead_frames, g.hop_length
    assert L > 0
    T, k = 3 * L + 8, 2 * L + 4
    for seed in range(3):
        mel = torch.randn(1, N_MELS, T, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        mel2 = mel.clone()
        mel2[..., k] += 3.0
        diff = (offline(g, mel2) - offline(g, mel)).abs()[0]
        first = (diff > 0).nonzero()[0, 0].item()
        assert first // hop >= k - L
        if not key.startswith("bigvgan"):
            assert first // hop == k - L


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_audio_waits_at_most_lookahead_frames(key):
    g = make_generator(key)
    sv = StreamingVocoder(g)
    L, hop = sv.lookahead_frames, g.hop_length
    mel = torch.randn(1, N_MELS, 2 * L + 10)
    emitted = 0
    for t in range(mel.shape[-1]):
        emitted += sv.push(mel[..., t:t + 1]).shape[-1]
        assert emitted >= (t + 1 - L) * hop  # nothing waits longer than the lookahead...
        if t + 1 > L + 4:
            # ...and not a frame longer: the delay in samples is in (L - 1, L] frames.
            assert emitted == sv.network.body.out_count(t + 1) and emitted < (t + 2 - L) * hop


def test_state_is_constant_over_a_60_second_utterance():
    """60 s at 22.05 kHz / hop 256 = 5168 frames, streamed one frame at a time: the state stops growing."""
    torch.manual_seed(0)
    g = build_generator("hifigan", dict(n_mels=N_MELS, upsample_rates=(2, 2), upsample_kernel_sizes=(4, 4),
                                        upsample_initial_channel=4, resblock="2", resblock_kernel_sizes=(3,),
                                        resblock_dilation_sizes=((1, 3),))).eval()
    sv = StreamingVocoder(g)
    frames = 60 * 22050 // 256
    mel = torch.randn(1, N_MELS, frames)
    sizes = {}
    total = 0
    for t in range(frames):
        total += sv.push(mel[..., t:t + 1]).shape[-1]
        if t + 1 in (100, 1000, frames):
            sizes[t + 1] = sv.state_numel()
    assert sizes[100] == sizes[1000] == sizes[frames]
    total += sv.flush().shape[-1]
    assert total == frames * g.hop_length


@pytest.mark.parametrize("key", ["melgan", "bigvgan_amp1", "hifigan_rb1", "vocos_same_prior_atan2", "vocos_center"])
def test_state_size_constant_every_family(key):
    sv = StreamingVocoder(make_generator(key))
    mel = torch.randn(1, N_MELS, 300)
    sizes = []
    for t in range(300):
        sv.push(mel[..., t:t + 1])
        if t + 1 in (100, 300):
            sizes.append(sv.state_numel())
    assert sizes[0] == sizes[1]


# ------------------------------------------------------------------------------------------- many streams
@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_push_together_equals_each_stream_alone(key):
    """Five streams pushed in rounds: three of 25 frames always in 4-frame chunks (same history: they must run as
    one batch every round), two of other lengths mixing 3 and 4 (they batch when they line up); every stream
    equals its offline decode."""
    g = make_generator(key)
    decoders = [StreamingVocoder(g, script=False) for _ in range(5)]
    lengths = [25, 25, 25, 19, 31]
    mels = [random_mel(key, N_MELS, n, generator=torch.Generator().manual_seed(i)) for i, n in enumerate(lengths)]
    refs = [offline(g, m[None])[0] for m in mels]
    rng = random.Random(0)
    pos, outs, steps, calls, rounds_of_three = [0] * 5, [[] for _ in range(5)], 0, 0, 0
    while any(p < n for p, n in zip(pos, lengths)):
        live = [i for i in range(5) if pos[i] < lengths[i]]
        chunks = []
        for i in live:
            n = 4 if i < 3 else rng.choice([3, 4])
            chunks.append(mels[i][:, pos[i]:pos[i] + n])
            pos[i] += chunks[-1].shape[1]
        stats = {}
        for i, y in zip(live, push_together([decoders[i] for i in live], chunks, stats=stats)):
            outs[i].append(y)
        steps, calls = steps + len(live), calls + stats["calls"]
        rounds_of_three += 0 in live
    for d, out, ref in zip(decoders, outs, refs):
        y = torch.cat(out + [d.flush()])
        assert y.shape == ref.shape and (y - ref).abs().max().item() <= TOL
    assert calls <= steps - 2 * rounds_of_three  # the three always ran as one call


def test_push_together_with_scripted_decoders():
    """Scripted decoders (short chunks run the frozen TorchScript copy) batch the same way."""
    g = make_generator("vocos_same_prior_atan2")
    decoders = [StreamingVocoder(g, script=True) for _ in range(3)]
    mels = [random_mel("vocos_same_prior_atan2", N_MELS, 20, generator=torch.Generator().manual_seed(i))
            for i in range(3)]
    outs, calls = [[] for _ in decoders], 0
    for a in range(0, 20, 4):
        stats = {}
        for out, y in zip(outs, push_together(decoders, [m[:, a:a + 4] for m in mels], stats=stats)):
            out.append(y)
        calls += stats["calls"]
    assert calls == 5  # one call a round
    for d, out, m in zip(decoders, outs, mels):
        assert (torch.cat(out + [d.flush()]) - offline(g, m[None])[0]).abs().max().item() <= TOL


def test_push_together_keeps_order_and_refuses_bad_chunks_before_decoding():
    g = make_generator("vocos_same_prior_atan2")
    a, b = StreamingVocoder(g), StreamingVocoder(g)
    mel = random_mel("vocos_same_prior_atan2", N_MELS, 12)
    # One decoder twice in a round: its chunks run in the given order.
    stats = {}
    first = push_together([a, a], [mel[:, :6], mel[:, 6:]], stats=stats)
    assert stats["calls"] == 2
    y = torch.cat(first + [a.flush()])
    assert (y - offline(g, mel[None])[0]).abs().max().item() <= TOL
    # A bad chunk anywhere in the round: ValueError, and no decoder has moved.
    with pytest.raises(ValueError, match="mel"):
        push_together([a, b], [mel[:, :4], torch.randn(N_MELS + 1, 4)])
    assert a.frames_in == 0 and b.frames_in == 0
    other = StreamingVocoder(make_generator("vocos_center"))  # another model never joins a group
    stats = {}
    push_together([a, other], [mel[:, :4], mel[:, :4]], stats=stats)
    assert stats["calls"] == 2
    with pytest.raises(ValueError, match="chunks"):
        push_together([a], [])


# ------------------------------------------------------------------------------------------- interfaces
def test_errors_are_value_errors():
    g = make_generator("melgan")
    sv = StreamingVocoder(g)
    with pytest.raises(ValueError, match="n_mels"):
        sv.push(torch.randn(N_MELS + 1, 3))
    with pytest.raises(ValueError, match="flush"):
        sv.flush()
    sv.push(torch.randn(1, N_MELS, 2))
    with pytest.raises(ValueError, match="first"):
        sv.push(torch.randn(N_MELS, 2))  # unbatched after batched
    with pytest.raises(ValueError, match="at least"):
        sv.flush()  # MelGAN's reflection padding needs 4 frames, as offline
    sv.reset()
    with pytest.raises(ValueError, match="no streaming builder"):
        StreamingVocoder(nn.Conv1d(1, 1, 1))


def test_vocoder_stream_method_and_lookahead():
    from vocoder.inference import Vocoder
    from vocoder.audio.mel import MelConfig

    g = make_generator("hifigan_rb2")
    voc = Vocoder(g, MelConfig(sample_rate=8000, n_fft=64, hop_length=g.hop_length, win_length=64,
                               n_mels=N_MELS, fmin=0.0, fmax=4000.0), fold_weight_norm=False)
    mel = torch.randn(N_MELS, 23)
    pieces = list(voc.stream(mel[:, i:i + 5] for i in range(0, 23, 5)))
    assert all(p.dim() == 1 and p.shape[0] > 0 for p in pieces)
    assert (torch.cat(pieces) - voc(mel)).abs().max() <= TOL
    assert voc.lookahead_frames == StreamingVocoder(g).lookahead_frames > 0
    # Weights loaded in place into the same generator: the cached streaming network follows them.
    other = make_generator("hifigan_rb2")
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.5)
    voc.generator.load_state_dict(other.state_dict())
    pieces = list(voc.stream(mel[:, i:i + 5] for i in range(0, 23, 5)))
    assert (torch.cat(pieces) - voc(mel)).abs().max() <= TOL


@pytest.mark.parametrize("key", ["hifigan_rb1", "melgan", "bigvgan_amp1", "vocos_same_prior_atan2", "vocos_center"])
def test_torchscript_export_round_trip(key, monkeypatch):
    """``torch.jit.script`` -> save -> load; explicit state; equals the offline decode."""
    import warnings

    g = make_generator(key)
    net = build_streaming_generator(g).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(net)
        buf = io.BytesIO()
        torch.jit.save(scripted, buf)
        buf.seek(0)
        loaded = torch.jit.load(buf)
    assert loaded.lookahead_frames == net.lookahead_frames
    mel = random_mel(key, 2, N_MELS, 19)
    monkeypatch.setenv("VOCODER_KERNELS", "0")  # the exported graph runs the reference activation
    ref = offline(g, mel)
    states = loaded.initial_states(2, torch.zeros(1))
    outs = []
    for i in range(0, 19, 4):
        y, states = loaded(mel[..., i:i + 4], states)
        outs.append(y)
    y, _ = loaded.flush(states)
    outs.append(y)
    assert (torch.cat(outs, -1) - ref).abs().max().item() <= TOL


def _saved_model(tmp_path):
    from vocoder.inference import Vocoder
    from vocoder.generators.registry import get_preset

    g = build_generator("hifigan_v3")
    voc = Vocoder(g, get_preset("hifigan_v3").mel)
    path = tmp_path / "m.pt"
    voc.save(path)
    return path, voc


@pytest.mark.parametrize("fmt", ["float32", "pcm16"])
def test_cli_stream_npy_and_stdin(tmp_path, monkeypatch, capsysbinary, fmt):
    from vocoder.cli.main import main

    path, voc = _saved_model(tmp_path)
    mel = np.random.default_rng(0).standard_normal((80, 6)).astype(np.float32)
    np.save(tmp_path / "mel.npy", mel)
    ref = voc(torch.from_numpy(mel)).numpy()

    def decode(raw: bytes) -> np.ndarray:
        return np.frombuffer(raw, "<f4") if fmt == "float32" else np.frombuffer(raw, "<i2") / 32767.0

    assert main(["stream", "--model", str(path), "--input", str(tmp_path / "mel.npy"), "--format", fmt,
                 "--chunk-frames", "4"]) == 0
    out = decode(capsysbinary.readouterr().out)
    tol = TOL if fmt == "float32" else 1.0 / 32767
    assert out.shape == ref.shape and np.abs(out - ref).max() <= tol

    stdin = io.TextIOWrapper(io.BytesIO(mel.T.astype("<f4").tobytes()))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["stream", "--model", str(path), "--format", fmt]) == 0
    out = decode(capsysbinary.readouterr().out)
    assert out.shape == ref.shape and np.abs(out - ref).max() <= tol


def test_cli_stdin_partial_frame_is_an_error(tmp_path, monkeypatch, capsysbinary):
    from vocoder.cli.main import main

    path, _ = _saved_model(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\0" * (4 * 80 * 3 + 6))))
    assert main(["stream", "--model", str(path)]) == 2


# ------------------------------------------------------------------------------------------- fast paths
@pytest.mark.parametrize("k,d,bias", [(3, 1, True), (7, 5, True), (11, 1, False), (1, 1, True)])
def test_tap_conv_equals_conv1d(k, d, bias):
    """The per-tap GEMM conv (used for one signal) equals F.conv1d on a strided buffer view."""
    from vocoder.nn.streaming.base import tap_conv

    torch.manual_seed(0)
    w, b = torch.randn(6, 5, k), torch.randn(6)
    n_out = 90
    buf = torch.randn(1, 5, n_out + d * (k - 1) + 3)[:, :, 2:-1]  # a non-contiguous view, as the state is
    ref = F.conv1d(buf, w, b if bias else None, dilation=d)
    y = tap_conv(buf, w.permute(2, 0, 1).contiguous(), b.view(-1, 1) if bias else torch.zeros(0), bias, d, n_out)
    assert y.shape == ref.shape and (y - ref).abs().max() < 1e-5


@pytest.mark.parametrize("fft", ["1", "0"])
def test_conv_layer_fft_and_tap_paths_match(fft, monkeypatch):
    """A wide long-kernel layer streamed in long chunks (FFT path), one-signal chunks (tap GEMMs) and a
    batch (F.conv1d) equals the padded conv; the fused leaky ReLU equals activating first."""
    monkeypatch.setenv("VOCODER_FFT_CONV", fft)
    torch.manual_seed(0)
    conv = nn.Conv1d(128, 128, 11, dilation=1, padding=5)
    layer = StreamConv1d.from_conv(conv, pre_slope=0.1)
    assert layer.fft_ok and layer.pre_act
    calls = {"fft": 0}
    real = StreamConv1d._fft_conv

    def counting(self, buf, n_out):
        calls["fft"] += 1
        return real(self, buf, n_out)

    monkeypatch.setattr(StreamConv1d, "_fft_conv", counting)
    for B in (1, 2):
        x = torch.randn(B, 128, 700)
        with torch.no_grad():
            ref = conv(F.leaky_relu(x, 0.1))
            for chunks in ([400, 1, 250], [90] * 7):
                y = run_layer(layer, x, chunks)
                assert y.shape == ref.shape
                assert (y - ref).abs().max() < 1e-4
    assert (calls["fft"] > 0) == (fft == "1")


def test_fused_leaky_relu_same_as_unfused():
    """fuse_activations folds each leaky ReLU into the next conv: same audio, fewer layers."""
    from vocoder.streaming.engine import fuse_activations
    from vocoder.nn.streaming import StreamPointwise

    for key in ("hifigan_rb1", "melgan"):
        g = make_generator(key)
        fused, plain = build_streaming_generator(g), build_streaming_generator(g, fuse=False)
        n_lrelu = lambda net: sum(isinstance(m, StreamPointwise) and m.kind == "leaky_relu" for m in net.modules())
        assert n_lrelu(fused) < n_lrelu(plain)
        assert fuse_activations(fused.body) == 0  # idempotent
        mel = torch.randn(1, N_MELS, 17)
        outs = []
        for net in (fused, plain):
            states, ys = net.initial_states(1, mel), []
            with torch.no_grad():
                for i in range(0, 17, 5):
                    y, states = net(mel[..., i:i + 5], states)
                    ys.append(y)
                ys.append(net.flush(states)[0])
            outs.append(torch.cat(ys, -1))
        assert (outs[0] - outs[1]).abs().max() <= 1e-5
        assert (outs[0] - offline(g, mel)).abs().max() <= TOL


def test_caller_states_are_not_modified():
    """A push returns new state tensors and never writes into the ones it was given (explicit state)."""
    g = make_generator("hifigan_rb1")
    net = build_streaming_generator(g).eval()
    mel = torch.randn(1, N_MELS, 12)
    with torch.no_grad():
        s0 = net.initial_states(1, mel)
        s1 = net(mel[..., :6], s0)[1]
        snapshot = [s.clone() for s in s1]
        y_a, _ = net(mel[..., 6:], s1)
        y_b, _ = net(mel[..., 6:], s1)  # the same state again: the same audio
    assert torch.equal(y_a, y_b)
    assert all(torch.equal(a, b) for a, b in zip(snapshot, s1))


# ------------------------------------------------------------------------------------------- scripted mode
@pytest.mark.parametrize("key", ["hifigan_rb1", "hifigan_rb2", "melgan"])
def test_scripted_mode_equals_offline(key):
    """``script=True``: the frozen TorchScript network (and the eager one for long chunks, taking turns within
    one utterance) equals the offline decode under random chunkings."""
    from vocoder.streaming.engine import SCRIPT_MAX_FRAMES

    g = make_generator(key)
    sv = StreamingVocoder(g, script=True)
    assert sv.scripted is not None
    T = 29 + SCRIPT_MAX_FRAMES
    mel = torch.randn(2, N_MELS, T)
    ref = offline(g, mel)
    rng = random.Random(7)
    mixed = [3, SCRIPT_MAX_FRAMES, 1, 2] + random_chunks(T - SCRIPT_MAX_FRAMES - 6, rng)
    for chunks in ([1] * T, random_chunks(T, rng), random_chunks(T, rng, 3), mixed, [T]):
        y = stream_all(sv, mel, chunks)
        assert y.shape == ref.shape, chunks
        assert (y - ref).abs().max().item() <= TOL, chunks


def test_scripted_mode_routes_short_chunks_to_the_scripted_module():
    """Short chunks and flush go through the frozen TorchScript module, long ones through the eager network."""
    from vocoder.streaming.engine import SCRIPT_MAX_FRAMES

    sv = StreamingVocoder(make_generator("hifigan_rb1"), script=True)
    assert isinstance(sv.scripted, torch.jit.ScriptModule)
    assert sv._pick(1) is sv.scripted and sv._pick(0) is sv.scripted
    assert sv._pick(SCRIPT_MAX_FRAMES - 1) is sv.scripted and sv._pick(SCRIPT_MAX_FRAMES) is sv.network


def test_scripted_calls_run_unoptimised_and_restore_the_executor_flag():
    """The scripted network runs with the graph executor's optimisation off (no re-specialisation per chunk
    shape), the eager one with it untouched, and the caller's setting is the same afterwards."""
    from vocoder.streaming.engine import SCRIPT_MAX_FRAMES

    sv = StreamingVocoder(make_generator("hifigan_rb1"), script=True)
    seen = []

    class Spy:
        def __init__(self, module):
            self.module = module

        def __call__(self, *args):
            seen.append(("push", torch._C._get_graph_executor_optimize()))
            return self.module(*args)

        def flush(self, *args):
            seen.append(("flush", torch._C._get_graph_executor_optimize()))
            return self.module.flush(*args)

    sv.scripted = Spy(sv.scripted)
    before = torch._C._get_graph_executor_optimize()
    mel = torch.randn(N_MELS, SCRIPT_MAX_FRAMES + 5)
    sv.push(mel[:, :3])
    sv.push(mel[:, 3:3 + SCRIPT_MAX_FRAMES])  # eager: the spy sees nothing
    sv.push(mel[:, 3 + SCRIPT_MAX_FRAMES:])
    sv.flush()
    assert seen == [("push", False), ("push", False), ("flush", False)]
    assert torch._C._get_graph_executor_optimize() == before


def test_script_auto_picks_by_family():
    """``"auto"`` scripts HiFi-GAN, MelGAN and Vocos, keeps BigVGAN (anti-aliased activations, fused kernel) eager."""
    for key in ("hifigan_rb1", "hifigan_rb2", "melgan", "vocos_same_prior_atan2"):
        assert StreamingVocoder(make_generator(key)).scripted is not None, key
    for key in ("bigvgan_amp1", "bigvgan_amp2_v2"):
        assert StreamingVocoder(make_generator(key)).scripted is None, key
    assert StreamingVocoder(make_generator("hifigan_rb1"), script=False).scripted is None
    with pytest.raises(ValueError, match="script"):
        StreamingVocoder(make_generator("melgan"), script="yes")


def test_vocos_prior_is_independent_of_chunking():
    """The pinv prior of a mel no spectrum has (randn) is the same for a chunk as for the whole utterance (in
    float32 the matmul's rounding depended on the number of frames: up to 2e-4 apart here), offline and in the
    streaming layer."""
    from vocoder.nn.streaming.fourier import StreamMelPrior
    from vocoder.generators.vocos import PRIOR_FLOOR

    g = make_generator("vocos_same_prior_atan2")
    layer = StreamMelPrior(g.prior_basis, PRIOR_FLOOR)
    worst = 0.0
    for seed in range(20):
        mel = torch.randn(1, N_MELS, 40, generator=torch.Generator().manual_seed(seed))
        whole = g.prior_log_amplitude(mel)
        for c in (1, 3, 7):
            for a in range(0, 40, c):
                piece = mel[..., a:a + c]
                for got in (g.prior_log_amplitude(piece), layer(piece, [], False)):
                    worst = max(worst, (got - whole[..., a:a + c]).abs().max().item())
    assert worst <= 1e-6


# ------------------------------------------------------------------------------------------- Fourier head (Vocos)
def _vocos_istft(sv: StreamingVocoder):
    from vocoder.nn.streaming import StreamISTFT

    return next(m for m in sv.network.modules() if isinstance(m, StreamISTFT))


@pytest.mark.parametrize("script", [True, False])
@pytest.mark.parametrize("key", sorted(VOCOS_CONFIGS))
def test_vocos_streaming_equals_offline(key, script):
    """Chunks of 1, 3, 7 and random sizes, a batch of 3, the scripted and the eager network: the concatenation
    equals ``generator(mel)``, the first samples (the iSTFT's trimmed start) and the last ones (the flush: the
    zero-padded convs' end and the overlap-add's envelope of the last frames) included."""
    g = make_generator(key)
    sv = StreamingVocoder(g, script=script)
    assert (sv.scripted is not None) == script
    T = 37
    mel = random_mel(key, 3, N_MELS, T, generator=torch.Generator().manual_seed(3))
    ref = offline(g, mel)
    rng = random.Random(5)
    for chunks in ([1] * T, [3] * 13, [7] * 6, random_chunks(T, rng), random_chunks(T, rng, 3), [T]):
        y = stream_all(sv, mel, chunks)
        assert y.shape == ref.shape, chunks
        assert (y - ref).abs().max().item() <= TOL, chunks


@pytest.mark.parametrize("key", ["vocos_same_prior_atan2", "vocos_center", "vocos_same_prior_mel_input"])
def test_vocos_flush_before_the_lookahead(key):
    """Utterances shorter than the lookahead (nothing comes out before the flush) and around it."""
    g = make_generator(key)
    sv = StreamingVocoder(g)
    L = sv.lookahead_frames
    for T in (1, 2, 3, L - 1, L, L + 1):
        mel = random_mel(key, 2, N_MELS, T, generator=torch.Generator().manual_seed(T))
        ref = offline(g, mel)
        pushed = [sv.push(mel[..., i:i + 1]) for i in range(T)]
        if T < L:
            assert all(p.shape[-1] == 0 for p in pushed), T
        y = torch.cat(pushed + [sv.flush()], -1)
        assert y.shape == ref.shape, T
        assert (y - ref).abs().max().item() <= TOL, T


def test_vocos_lookahead_values():
    """3 frames per 7-tap conv (embed + one per ConvNeXt block) + ceil(iSTFT trim / hop) frames; the default
    preset ``vocos_22khz_80band`` (8 blocks, n_fft 1024, hop 256, "same": trim 384) waits 29 frames."""
    for key, (_, cfg) in VOCOS_CONFIGS.items():
        trim = (cfg["n_fft"] - cfg["hop_length"]) // 2 if cfg["padding"] == "same" else cfg["n_fft"] // 2
        expected = 3 * (cfg["num_layers"] + 1) + -(-trim // cfg["hop_length"])
        assert StreamingVocoder(make_generator(key), script=False).lookahead_frames == expected, key
    assert build_streaming_generator(build_generator("vocos_22khz_80band")).lookahead_frames == 29
    assert build_streaming_generator(build_generator("vocos_22khz_80band_small")).lookahead_frames == 23


def test_vocos_preset_stream_through_the_vocoder():
    """A preset-sized network (n_fft 1024, hop 256) through ``Vocoder.stream``."""
    from vocoder.generators.registry import get_preset
    from vocoder.inference import Vocoder

    torch.manual_seed(0)
    voc = Vocoder(build_generator("vocos_22khz_80band_small"), get_preset("vocos_22khz_80band_small").mel)
    assert voc.lookahead_frames == 23
    mel = torch.randn(80, 41) - 4.0  # log-mel scale
    y = torch.cat(list(voc.stream(mel[:, i:i + 6] for i in range(0, 41, 6))))
    ref = voc(mel)
    assert y.shape == ref.shape and (y - ref).abs().max().item() <= TOL


def _stream_tampered(sv: StreamingVocoder, mel: torch.Tensor, chunks, after_push=None):
    outs, i = [], 0
    for c in chunks:
        outs.append(sv.push(mel[..., i:i + c]))
        i += c
        if after_push is not None:
            after_push(sv._states)
    outs.append(sv.flush())
    return torch.cat(outs, dim=-1)


@pytest.mark.parametrize("key", ["vocos_same_prior_atan2", "vocos_center"])
def test_vocos_equality_check_catches_a_wrong_overlap_add(key, monkeypatch):
    """The comparisons above fail for a wrong iSTFT state: (a) the overlap-add tail dropped between pushes,
    (b) the end of the utterance divided by the middle-of-utterance window envelope instead of the summed
    squared window of the frames that exist: only the last ``trim`` samples change, by far more than the
    tolerance."""
    g = make_generator(key)
    sv = StreamingVocoder(g, script=False)
    ist = _vocos_istft(sv)
    T = 23
    mel = random_mel(key, 2, N_MELS, T, generator=torch.Generator().manual_seed(11))
    ref = offline(g, mel)
    chunks = [3, 1, 7, 2, 5, 5]
    assert (_stream_tampered(sv, mel, chunks) - ref).abs().max().item() <= TOL

    def drop_ola(states):
        states[ist.offset] = torch.zeros_like(states[ist.offset])

    y = _stream_tampered(sv, mel, chunks, after_push=drop_ola)
    assert y.shape == ref.shape and (y - ref).abs().max().item() > 100 * TOL

    n, hop = ist.n_fft, ist.hop
    many = ist._overlap_add(ist.window.square()[None, :, None].expand(1, n, 8 * (n // hop)))
    middle = many[:, 4 * n:4 * n + n - hop]  # at a frame boundary with every overlapping frame present
    real_forward = ist.forward

    def steady_envelope_at_the_end(x, states, final):
        if not final:
            return real_forward(x, states, final)
        head = real_forward(x, states, False)  # the last frames in, their final samples out...
        states[ist.offset + 1] = middle.clone()  # ...then the wrong envelope for the rest
        return torch.cat([head, real_forward(x[:, :, :0], states, True)], dim=-1)

    monkeypatch.setattr(ist, "forward", steady_envelope_at_the_end)
    y = _stream_tampered(sv, mel, chunks)
    tail = ist.trim  # the samples only the end of the utterance makes final
    assert y.shape == ref.shape
    assert (y[..., :-tail] - ref[..., :-tail]).abs().max().item() <= TOL
    assert (y[..., -tail:] - ref[..., -tail:]).abs().max().item() > 100 * TOL


# ------------------------------------------------------------------------------------------- RTPGHI phase in streams
def _offline_rtpghi(g: nn.Module, mel: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return g.refined(mel, 0, phase="rtpghi")[:, 0]


# The streamed network's amplitude equals the whole utterance's to float rounding, not bit for bit (the convs and
# matmuls are blocked by the number of frames), and RTPGHI's heap can order two bins whose amplitudes tie to
# rounding the other way, which moves the phase of the bins integrated from them. Measured with these tiny random
# networks: at most 5.3e-7 of the peak (5 mels per network, every chunking below); with the shipped model on a clip
# of samples/, 1.6e-5 (7-frame chunks).
RTPGHI_TOL = 1e-4


@pytest.mark.parametrize("key", ["vocos_same_prior_atan2", "vocos_center", "vocos_same_prior_mel_input"])
def test_rtpghi_stream_equals_the_offline_rtpghi_decode(key):
    """``phase="rtpghi"``: every chunking (a batch of 2) gives the offline ``refined(mel, 0, phase="rtpghi")`` to
    :data:`RTPGHI_TOL` of its peak, and differs from the plain decode (the phase is RTPGHI's, not the network's);
    the lookahead is one frame more than the plain stream's, and the audio waits no longer than that."""
    g = make_generator(key)
    plain, sv = StreamingVocoder(g, script=False), StreamingVocoder(g, phase="rtpghi")
    assert sv.lookahead_frames == plain.lookahead_frames + 1 and sv.scripted is None
    T = 41
    mel = random_mel(key, 2, N_MELS, T, generator=torch.Generator().manual_seed(11))
    ref = _offline_rtpghi(g, mel)
    peak = ref.abs().max().item()
    assert (offline(g, mel) - ref).abs().max().item() > 0.05 * peak  # a different phase, audibly
    rng = random.Random(7)
    for chunks in ([1] * T, [4] * 11, random_chunks(T, rng), [T]):
        y = stream_all(sv, mel, chunks)
        assert y.shape == ref.shape, chunks
        assert (y - ref).abs().max().item() <= RTPGHI_TOL * peak, chunks
    L, hop = sv.lookahead_frames, g.hop_length
    out = 0
    for t in range(T):
        out += sv.push(mel[..., t:t + 1]).shape[-1]
        assert out >= max(0, t + 1 - L) * hop, t
    sv.flush()


def test_rtpghi_push_together_equals_each_stream_alone():
    """Decoders with the RTPGHI phase batch their network calls and keep one phase integration per item."""
    key = "vocos_same_prior_atan2"
    g = make_generator(key)
    mels = [random_mel(key, N_MELS, 23, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    alone = [stream_all(StreamingVocoder(g, phase="rtpghi"), m, [5] * 5) for m in mels]
    decoders = [StreamingVocoder(g, phase="rtpghi") for _ in mels]
    outs, stats = [[] for _ in mels], {}
    for a in range(0, 23, 5):
        for o, y in zip(outs, push_together(decoders, [m[:, a:a + 5] for m in mels], stats=stats)):
            o.append(y)
        assert stats["calls"] == 1
    together = [torch.cat(o + [d.flush()]) for o, d in zip(outs, decoders)]
    for x, y in zip(together, alone):
        assert x.shape == y.shape and (x - y).abs().max().item() <= 1e-6
    # a plain decoder of the same model never joins an RTPGHI group
    mixed = [StreamingVocoder(g, phase="rtpghi"), StreamingVocoder(g, script=False)]
    push_together(mixed, [mels[0][:, :5], mels[1][:, :5]], stats=stats)
    assert stats["calls"] == 2


def test_rtpghi_phase_choice_follows_the_vocoder_and_needs_a_fourier_head():
    from vocoder.generators.registry import get_preset
    from vocoder.inference import Vocoder
    from vocoder.streaming import stream_phase

    torch.manual_seed(0)
    voc = Vocoder(build_generator("vocos_22khz_80band_small"), get_preset("vocos_22khz_80band_small").mel)
    assert stream_phase(voc) == "model" and voc.lookahead_frames == 23
    mel = torch.randn(80, 30) - 4.0
    for phase, iterations in (("rtpghi", 0), ("pghi", 3)):
        voc.phase, voc.phase_iterations = phase, iterations
        assert stream_phase(voc) == "rtpghi" and voc.lookahead_frames == 24
        assert "RTPGHI" in voc.streaming_decode()
        y = torch.cat(list(voc.stream(mel[:, i:i + 6] for i in range(0, 30, 6))))
        ref = Vocoder(voc.generator, voc.mel_config, phase="rtpghi", phase_iterations=0)(mel)
        assert y.shape == ref.shape and (y - ref).abs().max().item() <= RTPGHI_TOL * ref.abs().max().item()
    voc.phase, voc.phase_iterations = "model", 0
    y = torch.cat(list(voc.stream(mel[:, i:i + 6] for i in range(0, 30, 6))))
    assert (y - voc(mel)).abs().max().item() <= TOL  # the streamer was rebuilt for the plain phase
    assert StreamingVocoder(voc, phase="rtpghi").phase == "rtpghi"
    with pytest.raises(ValueError, match="Fourier-head"):
        StreamingVocoder(make_generator("hifigan_rb1"), phase="rtpghi")
    with pytest.raises(ValueError, match="phase must be one of"):
        StreamingVocoder(make_generator("hifigan_rb1"), phase="pghi")
