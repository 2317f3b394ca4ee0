"""Vocos: official folders (config.yaml + pytorch_model.bin) load and decode as the official ``vocos`` package does,
export writes folders it loads, and what it cannot represent is refused by name.

Weights are random (the ``vocos`` package's own initialisation, then perturbed so every layer matters), written to
tmp_path in the published layout; nothing is downloaded.
"""
from pathlib import Path

import pytest
import torch
import yaml

from vocoder import MelConfig, Vocoder, load_audio
from vocoder.checkpoints import checkpoint_kind, export_bigvgan, export_hifigan, export_vocos, load_checkpoint
from vocoder.generators import build_generator, get_preset
from vocoder.generators.vocos import VOCOS_MEL, VOCOS_MEL_24KHZ, VocosConfig, vocos_mel_config

vocos = pytest.importorskip("vocos")

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CLIP = SAMPLES / "speech_nl_klettres_ad-22.wav"


pytestmark = pytest.mark.usefixtures("one_thread_per_module")


def official_hparams(padding="center", head_padding=None, sample_rate=16000, n_fft=256, hop=64, n_mels=40, dim=64,
                     intermediate_dim=192, num_layers=3, head_n_fft=None, **backbone):
    """A config.yaml in the layout of the published models (``vocos.Vocos.from_hparams`` reads it)."""
    return {
        "feature_extractor": {"class_path": "vocos.feature_extractors.MelSpectrogramFeatures",
                              "init_args": dict(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
                                                padding=padding)},
        "backbone": {"class_path": "vocos.models.VocosBackbone",
                     "init_args": dict(input_channels=n_mels, dim=dim, intermediate_dim=intermediate_dim,
                                       num_layers=num_layers, **backbone)},
        "head": {"class_path": "vocos.heads.ISTFTHead",
                 "init_args": dict(dim=dim, n_fft=head_n_fft or n_fft, hop_length=hop,
                                   padding=head_padding or padding)},
    }


def write_official(folder: Path, h: dict, seed: int = 0):
    """Build ``vocos.Vocos`` from ``h`` as the package does, perturb its weights, save it as published."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(h, sort_keys=False))
    torch.manual_seed(seed)
    model = vocos.Vocos.from_hparams(str(folder / "config.yaml")).eval()
    with torch.no_grad():  # the init is nearly an identity per layer (std 0.02, layer scale 1/L): make every layer count
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.05 if p.dim() > 1 else 0.2))
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return model


def clip(sample_rate: int, seconds: float = 1.0) -> torch.Tensor:
    return load_audio(CLIP, sample_rate=sample_rate)[: int(seconds * sample_rate)]


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


def check_equals_official(voc: Vocoder, model, sample_rate: int, center_head: bool, label: str) -> dict:
    """Decode, front end and copy synthesis against the official model; returns the max abs diffs.

    Copy synthesis gives ``T // hop * hop`` samples; the official model as many when the feature extractor and the
    head frame alike, a hop fewer with "same" features into a "center" head (then the common part is compared)."""
    wav = torch.cat([clip(sample_rate)[None], 0.3 * torch.randn(1, sample_rate)])  # speech and noise
    hop = voc.hop_length
    feats = model.feature_extractor(wav)
    ours_mel = voc.mel(wav)
    diffs = {"mel": max_diff(ours_mel, feats)}
    assert ours_mel.shape == feats.shape and diffs["mel"] < 1e-5, (label, diffs)

    theirs = model.decode(feats)
    ours = voc(feats)
    frames = feats.shape[-1]
    assert ours.shape == (2, frames * hop)
    n = (frames - 1) * hop if center_head else frames * hop  # torch.istft(center=True) stops a hop earlier
    assert theirs.shape[-1] == n
    diffs["decode"] = max_diff(ours[:, :n], theirs)
    diffs["peak"] = theirs.abs().max().item()
    assert diffs["decode"] < 1e-4, (label, diffs)

    copy_theirs = model(wav)
    copy_ours = torch.stack([voc.synthesize(w, sample_rate=sample_rate) for w in wav])
    mixed = center_head != voc.mel_config.center
    assert copy_ours.shape[-1] == copy_theirs.shape[-1] + (hop if mixed else 0), (copy_ours.shape, copy_theirs.shape)
    diffs["copy"] = max_diff(copy_ours[:, : copy_theirs.shape[-1]], copy_theirs)
    assert diffs["copy"] < 1e-4, (label, diffs)
    print(f"\n[vocos {label}] max abs diff: mel {diffs['mel']:.3e}, decode {diffs['decode']:.3e}, "
          f"copy synthesis {diffs['copy']:.3e} (peak {diffs['peak']:.3g})")
    return diffs


# --- import --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("padding", ["center", "same"])
def test_import_equals_official(tmp_path, padding):
    h = official_hparams(padding)
    model = write_official(tmp_path / "vocos", h)
    assert checkpoint_kind(tmp_path / "vocos") == "vocos_folder"
    voc = Vocoder.from_pretrained(tmp_path / "vocos")
    assert voc.generator_name == "vocos" and voc.meta["source"] == "vocos"
    assert voc.mel_config == vocos_mel_config(16000, 256, 64, 40, padding)
    assert voc.generator.config.padding == padding
    check_equals_official(voc, model, 16000, padding == "center", padding)


def test_import_mixed_paddings_and_head_n_fft(tmp_path):
    """Feature extractor and head may frame differently, and the head's n_fft need not be the mel's."""
    h = official_hparams("same", head_padding="center", head_n_fft=192)
    model = write_official(tmp_path / "v", h)
    voc = Vocoder.from_pretrained(tmp_path / "v")
    assert not voc.mel_config.center and voc.generator.config.padding == "center"
    assert voc.mel_config.n_fft == 256 and voc.generator.config.n_fft == 192
    check_equals_official(voc, model, 16000, True, "same features, center head, head n_fft 192")


def test_import_official_sizes(tmp_path):
    """The published vocos-mel-24khz layout (512 x 8, 100 mels, centred), with random weights: it is the preset."""
    h = official_hparams("center", sample_rate=24000, n_fft=1024, hop=256, n_mels=100, dim=512,
                         intermediate_dim=1536, num_layers=8)
    model = write_official(tmp_path / "vocos-mel-24khz", h)
    voc = Vocoder.from_pretrained(str(tmp_path / "vocos-mel-24khz"))
    assert voc.generator.config == VOCOS_MEL_24KHZ and voc.mel_config == VOCOS_MEL
    assert voc.describe()["preset"] == "vocos_mel_24khz"
    assert voc.num_parameters() == sum(p.numel() for p in model.backbone.parameters()) + \
        sum(p.numel() for p in model.head.parameters()) == 13_531_650
    check_equals_official(voc, model, 24000, True, "512x8 24 kHz")


def test_weights_file_and_config_elsewhere(tmp_path):
    h = official_hparams("center")
    model = write_official(tmp_path / "v", h)
    wav = clip(16000)
    ref = model.decode(model.feature_extractor(wav[None]))
    # the weights file with config.yaml next to it
    assert checkpoint_kind(tmp_path / "v" / "pytorch_model.bin") == "vocos_file"
    g, mel, meta = load_checkpoint(tmp_path / "v" / "pytorch_model.bin")
    assert meta["source"] == "vocos"
    # renamed, config given as a path or as a dict
    (tmp_path / "w").mkdir()
    (tmp_path / "v" / "pytorch_model.bin").rename(tmp_path / "w" / "vocos.pt")
    for config in (tmp_path / "v" / "config.yaml", h):
        voc = Vocoder.from_pretrained(tmp_path / "w" / "vocos.pt", config=config)
        out = voc(voc.mel(wav))
        assert max_diff(out[: ref.shape[-1]], ref[0]) < 1e-4
    with pytest.raises(ValueError, match="config.yaml"):
        Vocoder.from_pretrained(tmp_path / "w" / "vocos.pt")


def test_our_checkpoint_keeps_the_vocos_mel(tmp_path):
    model = write_official(tmp_path / "v", official_hparams("center"))
    voc = Vocoder.from_pretrained(tmp_path / "v")
    voc.save(tmp_path / "ours.pt", meta={"note": "re-saved"})
    back = Vocoder.from_pretrained(tmp_path / "ours.pt")
    assert back.mel_config == voc.mel_config and back.mel_config.center and back.mel_config.mel_scale == "htk"
    feats = model.feature_extractor(clip(16000)[None])
    assert torch.equal(back(feats), voc(feats))


@pytest.mark.parametrize("part, class_path, extra, match", [
    ("feature_extractor", "vocos.feature_extractors.EncodecFeatures", {}, "EncodecFeatures"),
    ("backbone", "vocos.models.VocosResNetBackbone", {}, "VocosResNetBackbone"),
    ("backbone", "vocos.models.VocosBackbone", {"adanorm_num_embeddings": 4}, "adanorm"),
    ("head", "vocos.heads.IMDCTSymExpHead", {}, "IMDCTSymExpHead"),
    ("head", "vocos.heads.IMDCTCosHead", {}, "IMDCTCosHead"),
    ("head", "vocos.heads.ISTFTHead", {"win_length": 256}, "win_length"),
])
def test_unsupported_configs_are_named(tmp_path, part, class_path, extra, match):
    h = official_hparams("center")
    h[part]["class_path"] = class_path
    h[part]["init_args"].update(extra)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(h))
    (tmp_path / "pytorch_model.bin").write_bytes(b"")  # refused before the weights are read
    with pytest.raises(ValueError, match=match):
        Vocoder.from_pretrained(tmp_path)


def test_inconsistent_config_and_weights(tmp_path):
    h = official_hparams("center")
    bad = {**h, "head": {**h["head"], "init_args": {**h["head"]["init_args"], "hop_length": 32}}}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.yaml").write_text(yaml.safe_dump(bad))
    (tmp_path / "a" / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="hop_length"):
        Vocoder.from_pretrained(tmp_path / "a")
    # weights of another size: a strict load that names the keys
    write_official(tmp_path / "b", official_hparams("center", num_layers=2))
    (tmp_path / "b" / "config.yaml").write_text(yaml.safe_dump(h))
    with pytest.raises(ValueError, match=r"missing keys \(backbone\.convnext\.2"):
        Vocoder.from_pretrained(tmp_path / "b")


def test_filters_in_the_file_are_checked(tmp_path, caplog):
    """The file's feature-extractor filters are compared with the MelConfig's: a mismatch is logged, not silent."""
    write_official(tmp_path / "v", official_hparams("center"))
    with caplog.at_level("WARNING", logger="vocoder.checkpoints"):
        Vocoder.from_pretrained(tmp_path / "v")
    assert not caplog.records
    state = torch.load(tmp_path / "v" / "pytorch_model.bin", weights_only=True)
    state["feature_extractor.mel_spec.mel_scale.fb"] *= 1.01
    torch.save(state, tmp_path / "v" / "pytorch_model.bin")
    with caplog.at_level("WARNING", logger="vocoder.checkpoints"):
        Vocoder.from_pretrained(tmp_path / "v")
    assert "mel filters differ" in caplog.text


# --- export --------------------------------------------------------------------------------------------------------
def load_exported(folder: Path):
    model = vocos.Vocos.from_hparams(str(folder / "config.yaml"))
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    model.load_state_dict(state, strict=True)  # every key, feature extractor buffers included
    return model.eval(), state


@pytest.mark.parametrize("padding", ["center", "same"])
def test_export_roundtrip(tmp_path, padding):
    model = write_official(tmp_path / "official", official_hparams(padding, layer_scale_init_value=0.25))
    voc = Vocoder.from_pretrained(tmp_path / "official")
    assert voc.generator.config.layer_scale_init_value == 0.25
    export_vocos(voc, tmp_path / "exported")
    h = yaml.safe_load((tmp_path / "exported" / "config.yaml").read_text())
    assert h == official_hparams(padding, layer_scale_init_value=0.25)
    again, state = load_exported(tmp_path / "exported")
    original = torch.load(tmp_path / "official" / "pytorch_model.bin", weights_only=True)
    assert sorted(state) == sorted(original)
    assert all(torch.equal(state[k], original[k]) for k in original), "weights and buffers written back exactly"
    check_equals_official(voc, again, 16000, padding == "center", f"exported {padding}")
    back = Vocoder.from_pretrained(tmp_path / "exported")
    assert back.mel_config == voc.mel_config and back.generator.config == voc.generator.config


def test_export_preset_and_generator_with_mel(tmp_path):
    voc = Vocoder.from_pretrained("vocos_mel_24khz", random_init=True)
    export_vocos(voc, tmp_path / "a")
    model, _ = load_exported(tmp_path / "a")
    feats = model.feature_extractor(clip(24000, 0.5)[None])
    assert max_diff(voc(feats)[:, : (feats.shape[-1] - 1) * 256], model.decode(feats)) < 1e-4
    export_vocos(voc.generator, tmp_path / "b", mel_config=VOCOS_MEL)
    assert (tmp_path / "b" / "config.yaml").read_text() == (tmp_path / "a" / "config.yaml").read_text()
    with pytest.raises(ValueError, match="mel_config"):
        export_vocos(voc.generator, tmp_path / "c")


def test_export_refuses_what_vocos_cannot_represent(tmp_path):
    ours = Vocoder.from_pretrained("vocos_22khz_80band_small", random_init=True)  # atan2 head, pinv prior, Slaney mel
    with pytest.raises(ValueError) as e:
        export_vocos(ours, tmp_path / "x")
    for what in ("head='atan2'", "prior='pinv'", "mel_scale='slaney'", "mel_norm='slaney'", "log_floor",
                 "fmax=8000.0"):
        assert what in str(e.value), (what, str(e.value))
    plain_net = build_generator("vocos", VocosConfig(n_mels=80, dim=32, intermediate_dim=64, num_layers=1,
                                                     padding="same"))
    with pytest.raises(ValueError, match="mel_scale='slaney'"):
        export_vocos(Vocoder(plain_net, get_preset("vocos_22khz_80band").mel), tmp_path / "y")
    no_scale = build_generator("vocos", VocosConfig(n_mels=100, dim=32, intermediate_dim=64, num_layers=1,
                                                    layer_scale_init_value=0.0))
    with pytest.raises(ValueError, match="layer_scale_init_value"):
        export_vocos(Vocoder(no_scale, VOCOS_MEL), tmp_path / "z")
    with pytest.raises(ValueError, match="needs a Vocos generator"):
        export_vocos(Vocoder.from_pretrained("hifigan_v2", random_init=True), tmp_path / "h")
    assert not any((tmp_path / d).exists() for d in ("x", "y", "z", "h"))


def test_hifigan_and_bigvgan_export_refuse_other_mels(tmp_path):
    """The official HiFi-GAN / BigVGAN code computes its own mel: a model on another convention cannot go there."""
    hifi = build_generator("hifigan_v2")
    mel = get_preset("hifigan_v2").mel
    centred = MelConfig(**{**mel.to_dict(), "center": True, "log_floor": 1e-7})
    with pytest.raises(ValueError, match="center=True.*log_floor=1e-07"):
        export_hifigan(Vocoder(hifi, centred), tmp_path / "h")
    big = build_generator("bigvgan_base_22khz_80band")
    with pytest.raises(ValueError, match="mel_scale='htk'"):
        export_bigvgan(big, tmp_path / "b", mel_config=MelConfig(**{**mel.to_dict(), "mel_scale": "htk"}))
