"""Generators: presets (shapes, parameter counts), weight-norm folding, and equality with the official code."""
import dataclasses
import math
import os
import warnings

import pytest
import torch

from vocoder.generators import (BigVGANConfig, BigVGANGenerator, HiFiGANConfig, HiFiGANGenerator, MelGANConfig,
                                MelGANGenerator, build_generator, get_preset, preset_names)

# Parameter counts as published (M), with the published precision: HiFi-GAN paper Table 1 (counts without
# weight norm, i.e. the inference model), MelGAN paper, BigVGAN README / model cards (with weight norm).
STATED = {
    "hifigan_v1": ("13.92", "folded"), "hifigan_v2": ("0.92", "folded"), "hifigan_v3": ("1.46", "folded"),
    "melgan": ("4.26", "folded"),
    "bigvgan_base_22khz_80band": ("14.0", "wn"), "bigvgan_base_24khz_100band": ("14", "wn"),
    "bigvgan_22khz_80band": ("112", "wn"), "bigvgan_24khz_100band": ("112", "wn"),
    "bigvgan_v2_22khz_80band_256x": ("112", "wn"), "bigvgan_v2_22khz_80band_fmax8k_256x": ("112", "wn"),
    "bigvgan_v2_24khz_100band_256x": ("112.4", "wn"), "bigvgan_v2_44khz_128band_256x": ("112", "wn"),
    "bigvgan_v2_44khz_128band_512x": ("122.2", "wn"),
}
#: Fourier-head presets (no published count but vocos-mel-24khz's; checked against the vocos package in test_vocos.py)
FOURIER = {"vocos_mel_24khz", "vocos_22khz_80band", "vocos_22khz_80band_small"}
#: WaveNet presets (the paper's 1.44 M is not what its reference code builds; checked against the parallel_wavegan
#: package in test_parallel_wavegan.py)
WAVENET = {"parallel_wavegan"}
#: HiFTNet / iSTFTNet presets (counts checked against docs/seed_systems.md in test_hiftnet.py)
HIFTNET = {"hiftnet_22khz", "istftnet_c8c8i_22khz", "hiftnet_frame_22khz"}
SMALL = ["hifigan_v1", "hifigan_v2", "hifigan_v3", "melgan", "bigvgan_base_22khz_80band", "bigvgan_base_24khz_100band"]
LARGE = sorted(set(STATED) - set(SMALL))


_ENV_KERNELS = os.environ.get("VOCODER_KERNELS")


@pytest.fixture(autouse=True, scope="module")
def _one_thread_reference_kernels():
    # The test machine is shared: intra-op threads fighting over 2 busy cores make tiny convs ~10x slower.
    # Shapes / folding / counts are about the generators, so they run the plain PyTorch activation (no kernel
    # build); test_bigvgan_equals_official[default] runs whatever vocoder.kernels.dispatch picks.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    os.environ["VOCODER_KERNELS"] = "0"
    yield
    torch.set_num_threads(n)
    if _ENV_KERNELS is None:
        os.environ.pop("VOCODER_KERNELS", None)
    else:
        os.environ["VOCODER_KERNELS"] = _ENV_KERNELS


def _count(module):
    return sum(p.numel() for p in module.parameters())


def _randomize(module, seed=0, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight_g"):  # keep magnitudes sane so deep stacks do not saturate tanh/clamp
                p.copy_(p.abs() * (0.5 + torch.rand(p.shape, generator=g)))
            else:
                p.add_(torch.randn(p.shape, generator=g) * scale)
    return module


def _official_bigvgan(config: BigVGANConfig):
    bigvgan = pytest.importorskip("bigvgan")
    from bigvgan.env import AttrDict

    h = {k: v for k, v in dataclasses.asdict(config).items()}
    h["num_mels"] = h.pop("n_mels")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return bigvgan.BigVGAN(AttrDict(h), use_cuda_kernel=False)


def _pwg():
    pytest.importorskip("parallel_wavegan")
    import scipy.signal
    import scipy.signal.windows

    scipy.signal.kaiser = scipy.signal.windows.kaiser  # parallel_wavegan still imports the old name
    from parallel_wavegan import models

    return models


def _pwg_hifigan(cfg: HiFiGANConfig):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _pwg().HiFiGANGenerator(
            in_channels=cfg.n_mels, channels=cfg.upsample_initial_channel, upsample_scales=cfg.upsample_rates,
            upsample_kernel_sizes=cfg.upsample_kernel_sizes, resblock_kernel_sizes=cfg.resblock_kernel_sizes,
            resblock_dilations=cfg.resblock_dilation_sizes, use_additional_convs=cfg.resblock == "1")


def _pwg_melgan(cfg: MelGANConfig):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _pwg().MelGANGenerator(in_channels=cfg.n_mels, channels=cfg.ngf * 2 ** len(cfg.ratios),
                                      upsample_scales=cfg.ratios, stacks=cfg.n_residual_layers)


def _reference_for(preset):
    """The peer implementation of a preset's architecture (built on the meta device: no memory, no init cost)."""
    p = get_preset(preset)
    if p.generator == "bigvgan":
        return _official_bigvgan(p.config)
    if p.generator == "hifigan":
        return _pwg_hifigan(p.config)
    return _pwg_melgan(p.config)


# --- presets -------------------------------------------------------------------------------------------------------
def test_every_preset_is_listed_and_consistent():
    assert set(preset_names()) == set(STATED) | FOURIER | WAVENET | HIFTNET
    for name in preset_names():
        p = get_preset(name)
        assert p.config.hop_length == p.mel.hop_length, name
        assert p.config.n_mels == p.mel.n_mels, name


# Fast run: every small preset plus one large one against its reference implementation; the other large ones
# (same layout, other sizes) are cross-checked in the slow run and always checked against the published numbers.
_COUNT_REF_FAST = set(SMALL) | {"bigvgan_v2_24khz_100band_256x"}


@pytest.mark.parametrize("name", [
    n if n in _COUNT_REF_FAST else pytest.param(n, marks=pytest.mark.slow) for n in sorted(STATED)])
def test_parameter_counts_equal_reference(name):
    with torch.device("meta"):
        n_wn = _count(build_generator(name))
        ref_count = _count(_reference_for(name))
    assert n_wn == ref_count, f"{name}: {n_wn} parameters, the reference implementation has {ref_count}"


@pytest.mark.parametrize("name", sorted(STATED))
def test_parameter_counts_match_published(name):
    with torch.device("meta"):
        ours = build_generator(name)
        n_wn = _count(ours)
        ours.remove_weight_norm()
        n_folded = _count(ours)
    stated, which = STATED[name]
    decimals = len(stated.split(".")[1]) if "." in stated else 0
    measured = (n_folded if which == "folded" else n_wn) / 1e6
    # Published counts are rounded or truncated: allow one unit of the last published digit.
    assert abs(measured - float(stated)) < 10 ** -decimals, f"{name}: {measured:.4f} M vs published {stated} M"


def _check_forward_and_fold(name, frames):
    torch.manual_seed(0)
    gen = _randomize(build_generator(name)).eval()
    mel = torch.randn(1, gen.n_mels, frames)
    with torch.no_grad():
        wav = gen(mel)
        assert wav.shape == (1, 1, frames * gen.hop_length)
        assert torch.isfinite(wav).all() and wav.abs().max() <= 1.0
        gen.remove_weight_norm()
        assert not any(k.endswith("weight_g") for k in gen.state_dict())
        diff = (gen(mel) - wav).abs().max().item()
    assert diff < 1e-5, f"{name}: remove_weight_norm changed the output by {diff}"


@pytest.mark.parametrize("name", SMALL)
def test_small_presets_forward_and_fold(name):
    _check_forward_and_fold(name, frames=8)


@pytest.mark.slow
@pytest.mark.parametrize("name", LARGE)
def test_large_presets_forward_and_fold(name):
    _check_forward_and_fold(name, frames=4)


def test_build_from_dict_and_errors():
    gen = build_generator("hifigan", {"upsample_initial_channel": 32, "upsample_rates": [4, 2],
                                      "upsample_kernel_sizes": [8, 4], "resblock_dilation_sizes": [[1, 3]] * 3})
    assert gen.hop_length == 8 and gen.config.upsample_rates == (4, 2)
    with pytest.raises(ValueError, match="unknown hifigan config keys"):
        build_generator("hifigan", {"num_mel": 80})
    with pytest.raises(ValueError, match="even difference"):
        HiFiGANConfig(upsample_rates=(8, 8, 2, 2), upsample_kernel_sizes=(15, 16, 4, 4))
    with pytest.raises(ValueError, match="snake"):
        BigVGANConfig(activation="relu")
    with pytest.raises(ValueError, match=r"\[B, 80, T\]"):
        build_generator("hifigan_v2")(torch.randn(1, 100, 5))
    with pytest.raises(ValueError, match=r"\[B, 80, T\]"):
        build_generator("hifigan_v2")(torch.randn(80, 5))
    with pytest.raises(ValueError, match="at least 4"):
        MelGANGenerator()(torch.randn(1, 80, 2))


# --- equality with the peers ---------------------------------------------------------------------------------------
TINY_BIGVGAN = [
    BigVGANConfig(n_mels=12, upsample_rates=(4, 2), upsample_kernel_sizes=(8, 4), upsample_initial_channel=32,
                  resblock="1", resblock_kernel_sizes=(3, 7), resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)),
                  activation="snakebeta", snake_logscale=True, use_tanh_at_final=False, use_bias_at_final=False),
    BigVGANConfig(n_mels=10, upsample_rates=(3, 2), upsample_kernel_sizes=(7, 4), upsample_initial_channel=16,
                  resblock="2", resblock_kernel_sizes=(3, 5), resblock_dilation_sizes=((1, 3), (1, 2)),
                  activation="snake", snake_logscale=False, use_tanh_at_final=True, use_bias_at_final=True),
]


@pytest.mark.parametrize("kernels", ["default", "reference"])
@pytest.mark.parametrize("config", TINY_BIGVGAN, ids=["v2-amp1-snakebeta", "v1-amp2-snake"])
def test_bigvgan_equals_official(config, kernels, monkeypatch):
    # "default": whatever vocoder.kernels.dispatch picks (a fused CPU kernel when built); "reference": plain torch.
    if kernels == "default":
        if _ENV_KERNELS is None:
            monkeypatch.delenv("VOCODER_KERNELS", raising=False)
        else:
            monkeypatch.setenv("VOCODER_KERNELS", _ENV_KERNELS)
    torch.manual_seed(0)
    ref = _randomize(_official_bigvgan(config), scale=0.1).eval()
    ours = BigVGANGenerator(config).eval()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())  # strict, plain
    mel = torch.randn(2, config.n_mels, 12)
    with torch.no_grad():
        expected, out = ref(mel), ours(mel)
    assert out.shape == (2, 1, 12 * config.hop_length)
    diff = (out - expected).abs().max().item()
    assert diff < 1e-5, diff
    assert expected.abs().max() < 1.0  # not saturated, so the comparison means something


def test_bigvgan_loads_folded_official_state_dict():
    config = TINY_BIGVGAN[0]
    ref = _randomize(_official_bigvgan(config), seed=2, scale=0.1).eval()
    mel = torch.randn(1, config.n_mels, 6)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ref(mel)
        ref.remove_weight_norm()
    ours = BigVGANGenerator(config).eval()
    ours.load_state_dict(ref.state_dict())  # weight-normed model, folded checkpoint
    with torch.no_grad():
        assert (ours(mel) - expected).abs().max().item() < 1e-5


@pytest.mark.parametrize("config", [
    HiFiGANConfig(n_mels=16, upsample_rates=(4, 4), upsample_kernel_sizes=(8, 8), upsample_initial_channel=32),
    HiFiGANConfig(n_mels=16, upsample_rates=(4, 2), upsample_kernel_sizes=(8, 4), upsample_initial_channel=32,
                  resblock="2", resblock_kernel_sizes=(3, 5), resblock_dilation_sizes=((1, 2), (2, 6))),
], ids=["resblock1", "resblock2"])
def test_hifigan_equals_parallel_wavegan(config):
    torch.manual_seed(0)
    ref = _randomize(_pwg_hifigan(config), scale=0.1).eval()
    ours = HiFiGANGenerator(config).eval()
    # Same layers in the same order (input_conv/upsamples/blocks/output_conv vs conv_pre/ups/resblocks/conv_post).
    ref_sd, our_keys = ref.state_dict(), list(ours.state_dict())
    assert len(ref_sd) == len(our_keys)
    mapped = {}
    for k, (rk, v) in zip(our_keys, ref_sd.items()):
        assert ours.state_dict()[k].shape == v.shape, (k, rk)
        mapped[k] = v
    ours.load_state_dict(mapped)
    mel = torch.randn(2, config.n_mels, 10)
    with torch.no_grad():
        diff = (ours(mel) - ref(mel)).abs().max().item()
        assert ref(mel).abs().max() < 1.0
    assert diff < 1e-5, diff


def test_melgan_equals_parallel_wavegan():
    config = MelGANConfig(n_mels=16, ngf=8, ratios=(4, 2, 2), n_residual_layers=3)
    torch.manual_seed(0)
    ref = _randomize(_pwg_melgan(config), scale=0.1).eval()
    ours = MelGANGenerator(config).eval()
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert len(ref_sd) == len(our_sd)
    mapped = {}
    for (k, ov), (rk, v) in zip(our_sd.items(), ref_sd.items()):
        assert ov.shape == v.shape, (k, rk)
        mapped[k] = v
    ours.load_state_dict(mapped)
    mel = torch.randn(2, 16, 10)
    with torch.no_grad():
        expected = ref(mel)
        diff = (ours(mel) - expected).abs().max().item()
    assert expected.abs().max() < 1.0
    assert diff < 1e-5, diff


def test_generators_deepcopy_after_training_step():
    import copy

    gen = build_generator("hifigan", {"n_mels": 8, "upsample_initial_channel": 16, "upsample_rates": [2, 2],
                                      "upsample_kernel_sizes": [4, 4], "resblock_dilation_sizes": [[1, 3]] * 3})
    gen(torch.randn(1, 8, 5)).pow(2).mean().backward()
    twin = copy.deepcopy(gen)  # EMA copies / export copies must work after a backward
    mel = torch.randn(1, 8, 5)
    assert torch.equal(twin(mel), gen(mel))
    with torch.no_grad():
        assert math.isfinite(float(twin(mel).sum()))


def test_every_family_registers_its_streaming_builder():
    from vocoder.generators.registry import generator_names, get_spec, streaming_builder

    assert set(generator_names()) == {"hifigan", "melgan", "bigvgan", "vocos", "parallel_wavegan", "hiftnet",
                                     "hiftnet_frame"}
    for name in generator_names():
        assert get_spec(name).streaming is not None, name
    assert streaming_builder(build_generator("hifigan_v2")) is get_spec("hifigan").streaming
    with pytest.raises(ValueError, match="no streaming builder for Linear"):
        streaming_builder(torch.nn.Linear(2, 2))


def test_capabilities_are_declared_on_the_spec():
    """What a family can do is registered with it (``GeneratorSpec.fourier``, ``.streams``), not probed with
    ``hasattr``; a family that declares a Fourier head without its methods is refused at registration."""
    from vocoder.generators.registry import get_spec, is_fourier, register_generator

    assert get_spec("vocos").fourier and get_spec("vocos").streams
    assert not get_spec("hifigan").fourier and get_spec("hifigan").streams
    assert is_fourier(build_generator("vocos_22khz_80band_small")) and not is_fourier(build_generator("hifigan_v3"))

    class Duck(torch.nn.Module):  # has the methods but no family registered it
        def spectrum(self, mel): ...

    assert not is_fourier(Duck())
    with pytest.raises(TypeError, match="fourier=True but has no synthesize, refined"):
        register_generator("broken", dict, fourier=True)(Duck)
