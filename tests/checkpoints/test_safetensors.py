"""Our safetensors layout (``Vocoder.save_pretrained``: config.json + model.safetensors): exact round trips, meta and
phase settings kept, ``vocoder export --format safetensors``, and damaged files refused with a ValueError."""
import json

import pytest
import torch

from vocoder.audio.mel import MelConfig
from vocoder.checkpoints import checkpoint_kind, load_checkpoint
from vocoder.cli.main import main
from vocoder.generators.registry import build_generator
from vocoder.inference import Vocoder

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

MEL = dict(sample_rate=8000, n_fft=64, hop_length=16, win_length=64, n_mels=20, fmin=0.0, fmax=4000.0)


def tiny_vocos(**kwargs) -> Vocoder:
    """A small Fourier-head model (random weights), so the phase settings apply."""
    torch.manual_seed(0)
    gen = build_generator("vocos", dict(n_mels=20, dim=16, intermediate_dim=32, num_layers=2, n_fft=64, hop_length=16,
                                        sample_rate=8000, fmax=4000.0))
    return Vocoder(gen, MelConfig(center=True, **MEL), **kwargs)


def tiny_hifigan(fold: bool) -> Vocoder:
    torch.manual_seed(0)
    gen = build_generator("hifigan", {"n_mels": 20, "upsample_rates": [4, 4], "upsample_kernel_sizes": [8, 8],
                                      "upsample_initial_channel": 16, "resblock": "2", "resblock_kernel_sizes": [3],
                                      "resblock_dilation_sizes": [[1, 3]]})
    return Vocoder(gen, MelConfig(**MEL), meta={"recipe": "tiny"}, fold_weight_norm=fold)


def same_weights(a: Vocoder, b: Vocoder) -> None:
    sa, sb = a.generator.state_dict(), b.generator.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


MEL_IN = torch.randn(20, 24, generator=torch.Generator().manual_seed(1)) - 4


def test_round_trip_is_exact_and_keeps_meta_and_phase(tmp_path):
    voc = tiny_vocos(meta={"step": 3, "recipe": "tiny", "tags": ("a", "b")}, phase="rtpghi", phase_iterations=2)
    assert voc.save_pretrained(tmp_path / "m", meta={"note": "saved"}) == tmp_path / "m"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["format"] == "vocoder" and cfg["generator"]["name"] == "vocos" and cfg["mel"] == voc.mel_config.to_dict()
    assert cfg["meta"] == {"step": 3, "recipe": "tiny", "tags": ["a", "b"], "note": "saved",
                           "phase_iterations": 2, "phase_method": "rtpghi"}
    assert checkpoint_kind(tmp_path / "m") == "safetensors_folder"
    back = Vocoder.from_pretrained(tmp_path / "m")
    same_weights(voc, back)
    assert back.mel_config == voc.mel_config and back.generator.config == voc.generator.config
    assert back.phase == "rtpghi" and back.phase_iterations == 2 and back.meta == cfg["meta"]
    assert torch.equal(back(MEL_IN), voc(MEL_IN))
    # the .safetensors file itself also loads (config.json beside it), and our .pt stays readable
    assert torch.equal(Vocoder.from_pretrained(str(tmp_path / "m" / "model.safetensors"))(MEL_IN), voc(MEL_IN))
    voc.save(tmp_path / "m.pt")
    assert torch.equal(Vocoder.from_pretrained(tmp_path / "m.pt")(MEL_IN), back(MEL_IN))


@pytest.mark.parametrize("fold", [True, False])
def test_round_trip_any_weight_form(tmp_path, fold):
    voc = tiny_hifigan(fold)  # unfolded: weight_g / weight_v saved as held
    voc.save_pretrained(tmp_path / "m")
    gen, mel, meta = load_checkpoint(tmp_path / "m")
    assert meta == {"recipe": "tiny"} and mel == voc.mel_config
    back = Vocoder(gen, mel, meta, fold_weight_norm=fold)
    same_weights(voc, back)
    assert torch.equal(back(MEL_IN), voc(MEL_IN))


def test_half_precision_weights_stay_half(tmp_path):
    voc = tiny_hifigan(True).to(torch.float16)
    voc.save_pretrained(tmp_path / "m")
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(tmp_path / "m" / "model.safetensors").values()} == {torch.float16}
    back = Vocoder.from_pretrained(tmp_path / "m")  # builds float32, as a float16 .pt does
    assert torch.equal(back.generator.state_dict()["conv_pre.weight"],
                       voc.generator.state_dict()["conv_pre.weight"].float())


def test_export_cli_writes_the_folder(tmp_path, capsys):
    voc = tiny_vocos(phase_iterations=1)
    voc.save(tmp_path / "m.pt")
    assert main(["export", "--format", "safetensors", str(tmp_path / "m.pt"), str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out")
    back = Vocoder.from_pretrained(str(tmp_path / "out"))
    same_weights(voc, back)
    assert back.phase_iterations == 1 and torch.equal(back(MEL_IN), voc(MEL_IN))


def test_meta_must_be_json(tmp_path):
    voc = tiny_hifigan(True)
    with pytest.raises(ValueError, match=r"meta\['t'\] is a Tensor"):
        voc.save_pretrained(tmp_path / "m", meta={"t": torch.zeros(2)})
    with pytest.raises(ValueError, match="finite"):
        voc.save_pretrained(tmp_path / "m", meta={"score": float("nan")})
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        voc.save_pretrained(tmp_path / "file")


@pytest.fixture
def saved(tmp_path):
    tiny_hifigan(True).save_pretrained(tmp_path / "m")
    return tmp_path / "m"


def _forget_sha256(saved):
    """Drop the recorded weights hash, so that the safetensors reader itself meets the damaged file."""
    cfg = json.loads((saved / "config.json").read_text())
    del cfg["weights"]["sha256"]
    (saved / "config.json").write_text(json.dumps(cfg))


def test_truncated_file_is_a_value_error(saved):
    weights = saved / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or changed"):
        Vocoder.from_pretrained(saved)
    # without the recorded sha256 the safetensors reader itself refuses the short file
    _forget_sha256(saved)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        Vocoder.from_pretrained(saved)


def test_tampered_file_is_a_value_error(saved):
    weights = saved / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF  # one weight byte: a readable file that would decode differently
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"sha256 .* does not match"):
        Vocoder.from_pretrained(saved)
    weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + bytes(data[24:]))
    _forget_sha256(saved)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        Vocoder.from_pretrained(saved)


def test_foreign_config_is_named(saved):
    (saved / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "hidden_size": 8}))
    with pytest.raises(ValueError, match="expected our config"):
        Vocoder.from_pretrained(saved)
