"""Checkpoints: our format, official BigVGAN / HiFi-GAN files (compared with the official code), errors, exporters."""
import json

import pytest
import torch
import torch.nn.functional as F

from vocoder.audio.mel import MelConfig
from vocoder.checkpoints import (export_bigvgan, export_hifigan, load_checkpoint, load_generator_state,
                                 save_checkpoint)
from vocoder.generators.registry import build_generator
from vocoder.inference import Vocoder


# The official BigVGAN code builds its layers with the deprecated torch.nn.utils.weight_norm.
pytestmark = [pytest.mark.usefixtures("one_thread_per_module"),
              pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning")]

MEL = dict(sampling_rate=8000, n_fft=64, hop_size=16, win_size=64, fmin=0, fmax=4000)


# ------------------------------------------------------------------------------------------- official BigVGAN
def _bigvgan_h(variant):
    h = dict(resblock="1", num_mels=20, upsample_rates=[4, 2, 2], upsample_kernel_sizes=[8, 4, 4],
             upsample_initial_channel=16, resblock_kernel_sizes=[3, 7], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
             **MEL)
    if variant == "v1":  # BigVGAN v1: Snake, tanh output, conv_post bias (keys absent -> official defaults)
        h.update(activation="snake", snake_logscale=True)
    elif variant == "v1_linear_alpha":
        h.update(activation="snake", snake_logscale=False, resblock="2")
    else:  # v2: SnakeBeta, log-scale alpha, no final tanh (clamp), no conv_post bias
        h.update(activation="snakebeta", snake_logscale=True, use_tanh_at_final=False, use_bias_at_final=False)
    return h


def _randomize(model, logscale):
    # Official init gives near-silent output; spread every parameter so the comparison means something.
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight_g"):
                p.copy_(torch.rand(p.shape, generator=g) * 0.4 + 0.2)
            elif name.endswith(("alpha", "beta")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3 if logscale else torch.rand(p.shape, generator=g) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def _official_bigvgan(h):
    import bigvgan
    from bigvgan.env import AttrDict

    model = bigvgan.BigVGAN(AttrDict(dict(h)), use_cuda_kernel=False).eval()
    _randomize(model, h["snake_logscale"])
    return model


def _to_parametrization_keys(sd):
    out = {}
    for k, v in sd.items():
        k = k.replace("weight_g", "parametrizations.weight.original0").replace("weight_v",
                                                                               "parametrizations.weight.original1")
        out[k] = v
    return out


def _write_bigvgan_folder(folder, h, state_dict):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(h))
    torch.save({"generator": state_dict}, folder / "bigvgan_generator.pt")
    return folder


@pytest.mark.parametrize("variant", ["v1", "v1_linear_alpha", "v2"])
def test_official_bigvgan_folder_matches_official_forward(tmp_path, variant, capsys):
    h = _bigvgan_h(variant)
    official = _official_bigvgan(h)
    mel = torch.randn(1, 20, 12, generator=torch.Generator().manual_seed(1)) - 2
    with torch.no_grad():
        ref = official(mel)[0, 0]
    assert ref.abs().max() > 0.02  # the model says something: the comparison is not between two silences
    states = {"weight_norm": official.state_dict(), "parametrizations": _to_parametrization_keys(official.state_dict())}
    official.remove_weight_norm()  # the published v2 files hold folded weights
    states["folded"] = official.state_dict()
    for form, sd in states.items():
        folder = _write_bigvgan_folder(tmp_path / form, h, sd)
        voc = Vocoder.from_pretrained(str(folder))
        out = voc(mel[0])
        assert out.dtype == torch.float32 and out.shape == ref.shape == (12 * 16,)
        diff = (out - ref).abs().max().item()
        with capsys.disabled():
            print(f"\n[bigvgan {variant} {form}] max abs diff vs official: {diff:.3e} (peak {ref.abs().max():.3f})")
        assert diff < 1e-4
        assert not any(k.endswith(("weight_g", "weight_v")) for k in voc.state_dict())  # folded at load
    assert voc.sample_rate == 8000 and voc.hop_length == 16 and voc.n_mels == 20
    assert voc.meta["source"] == "bigvgan"


def test_bigvgan_generator_file_with_config_elsewhere(tmp_path):
    h = _bigvgan_h("v2")
    official = _official_bigvgan(h)
    torch.save({"generator": official.state_dict()}, tmp_path / "weights.pt")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "my_config.json").write_text(json.dumps(h))
    with pytest.raises(ValueError, match="config.json"):
        Vocoder.from_pretrained(str(tmp_path / "weights.pt"))
    voc = Vocoder.from_pretrained(str(tmp_path / "weights.pt"), config=str(tmp_path / "cfg" / "my_config.json"))
    mel = torch.randn(2, 20, 5) - 4
    with torch.no_grad():
        ref = official(mel)[:, 0]
    assert (voc(mel) - ref).abs().max() < 1e-4


def test_export_bigvgan_loads_in_official_code(tmp_path):
    h = _bigvgan_h("v2")
    official = _official_bigvgan(h)
    voc = Vocoder.from_pretrained(str(_write_bigvgan_folder(tmp_path / "in", h, official.state_dict())))
    export_bigvgan(voc, tmp_path / "out")
    h2 = json.loads((tmp_path / "out" / "config.json").read_text())
    for key in ("num_mels", "upsample_rates", "activation", "snake_logscale", "use_tanh_at_final", "sampling_rate",
                "hop_size", "n_fft", "win_size", "fmin", "fmax"):
        assert h2[key] == h[key], key
    import bigvgan
    from bigvgan.env import AttrDict

    again = bigvgan.BigVGAN(AttrDict(h2), use_cuda_kernel=False).eval()
    again.remove_weight_norm()  # the exported weights are folded, as in the published v2 files
    again.load_state_dict(torch.load(tmp_path / "out" / "bigvgan_generator.pt", weights_only=True)["generator"])
    mel = torch.randn(1, 20, 7) - 4
    with torch.no_grad():
        assert (again(mel)[0, 0] - voc(mel[0])).abs().max() < 1e-4


# ------------------------------------------------------------------------------------------- original HiFi-GAN
def _hifigan_h(resblock):
    h = dict(resblock=resblock, num_gpus=0, batch_size=16, learning_rate=0.0002, adam_b1=0.8, adam_b2=0.99,
             lr_decay=0.999, seed=1234, upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8],
             upsample_initial_channel=32, segment_size=8192, num_mels=20, num_freq=129, fmax_for_loss=None,
             num_workers=4, dist_config={"dist_backend": "nccl"}, **MEL)
    if resblock == "1":
        h.update(resblock_kernel_sizes=[3, 7], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]])
    else:
        h.update(resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 2], [2, 6]])
    return h


def _hifigan_official_state(h, seed=0):
    """A state dict with exactly jik876/hifi-gan ``models.Generator``'s keys and shapes (weight_g / weight_v)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def conv(name, c_out, c_in, k, transposed=False, bias=True):
        shape = (c_in, c_out, k) if transposed else (c_out, c_in, k)
        sd[f"{name}.weight_g"] = torch.rand(shape[0], 1, 1, generator=g) + 0.5
        sd[f"{name}.weight_v"] = torch.randn(shape, generator=g)
        if bias:
            sd[f"{name}.bias"] = torch.randn(c_out, generator=g) * 0.1

    ch = h["upsample_initial_channel"]
    conv("conv_pre", ch, h["num_mels"], 7)
    nk = len(h["resblock_kernel_sizes"])
    for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"])):
        conv(f"ups.{i}", ch // 2 ** (i + 1), ch // 2 ** i, k, transposed=True)
        c = ch // 2 ** (i + 1)
        for j, (rk, ds) in enumerate(zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"])):
            for m, _ in enumerate(ds):
                if h["resblock"] == "1":
                    conv(f"resblocks.{i * nk + j}.convs1.{m}", c, c, rk)
                    conv(f"resblocks.{i * nk + j}.convs2.{m}", c, c, rk)
                else:
                    conv(f"resblocks.{i * nk + j}.convs.{m}", c, c, rk)
    conv("conv_post", 1, ch // 2 ** len(h["upsample_rates"]), 7)
    return sd


def _hifigan_reference(sd, h, mel):
    """jik876/hifi-gan ``Generator.forward`` written out with functional ops on the raw state dict."""

    def w(name):
        return torch._weight_norm(sd[name + ".weight_v"], sd[name + ".weight_g"], 0)

    x = F.conv1d(mel, w("conv_pre"), sd["conv_pre.bias"], padding=3)
    nk = len(h["resblock_kernel_sizes"])
    for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"])):
        x = F.leaky_relu(x, 0.1)
        x = F.conv_transpose1d(x, w(f"ups.{i}"), sd[f"ups.{i}.bias"], stride=u, padding=(k - u) // 2)
        xs = 0
        for j, (rk, ds) in enumerate(zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"])):
            b, y = f"resblocks.{i * nk + j}", x
            for m, d in enumerate(ds):
                if h["resblock"] == "1":
                    t = F.conv1d(F.leaky_relu(y, 0.1), w(f"{b}.convs1.{m}"), sd[f"{b}.convs1.{m}.bias"],
                                 dilation=d, padding=(rk * d - d) // 2)
                    t = F.conv1d(F.leaky_relu(t, 0.1), w(f"{b}.convs2.{m}"), sd[f"{b}.convs2.{m}.bias"],
                                 padding=(rk - 1) // 2)
                else:
                    t = F.conv1d(F.leaky_relu(y, 0.1), w(f"{b}.convs.{m}"), sd[f"{b}.convs.{m}.bias"],
                                 dilation=d, padding=(rk * d - d) // 2)
                y = y + t
            xs = xs + y
        x = xs / nk
    x = F.conv1d(F.leaky_relu(x), w("conv_post"), sd["conv_post.bias"], padding=3)
    return torch.tanh(x)


@pytest.mark.parametrize("resblock", ["1", "2"])
def test_original_hifigan_generator_file(tmp_path, resblock, capsys):
    h = _hifigan_h(resblock)
    sd = _hifigan_official_state(h)
    torch.save({"generator": sd}, tmp_path / "g_02500000")
    (tmp_path / "config.json").write_text(json.dumps(h))
    mel = torch.randn(2, 20, 9, generator=torch.Generator().manual_seed(3)) - 4

    # Our generator with those weights, loaded the plain way (official key names).
    ours = build_generator("hifigan", {"n_mels": 20, "upsample_rates": [4, 4], "upsample_kernel_sizes": [8, 8],
                                       "upsample_initial_channel": 32, "resblock": resblock,
                                       "resblock_kernel_sizes": h["resblock_kernel_sizes"],
                                       "resblock_dilation_sizes": h["resblock_dilation_sizes"]}).eval()
    assert set(ours.state_dict()) == set(sd)  # the official key names, no more, no less
    ours.load_state_dict(sd)
    with torch.no_grad():
        direct = ours(mel)[:, 0]
        ref = _hifigan_reference(sd, h, mel)[:, 0]

    for source in (tmp_path / "g_02500000", tmp_path):  # the file, or the run folder (latest g_ file)
        voc = Vocoder.from_pretrained(str(source))
        out = voc(mel)
        d_direct = (out - direct).abs().max().item()
        d_ref = (out - ref).abs().max().item()
        with capsys.disabled():
            print(f"\n[hifigan resblock {resblock}] max abs diff vs our generator {d_direct:.3e}, "
                  f"vs functional reference {d_ref:.3e}")
        assert d_direct < 1e-5 and d_ref < 1e-5
        assert ref.abs().max() > 0.05
    assert voc.sample_rate == 8000 and voc.hop_length == 16 and voc.meta["source"] == "hifigan"


def test_export_hifigan_round_trip(tmp_path):
    h = _hifigan_h("1")
    torch.save({"generator": _hifigan_official_state(h)}, tmp_path / "g_00000010")
    (tmp_path / "config.json").write_text(json.dumps(h))
    voc = Vocoder.from_pretrained(str(tmp_path / "g_00000010"))
    path = export_hifigan(voc, tmp_path / "export")
    sd = torch.load(path, weights_only=True)["generator"]
    assert "conv_pre.weight_g" in sd and "ups.1.weight_v" in sd and "conv_pre.weight" not in sd
    again = Vocoder.from_pretrained(str(path))
    mel = torch.randn(20, 6) - 4
    assert (again(mel) - voc(mel)).abs().max() < 1e-5


# ------------------------------------------------------------------------------------------- our format
def _tiny_hifigan():
    torch.manual_seed(0)
    gen = build_generator("hifigan", {"n_mels": 20, "upsample_rates": [4, 4], "upsample_kernel_sizes": [8, 8],
                                      "upsample_initial_channel": 16, "resblock": "2",
                                      "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]]})
    mel = MelConfig(sample_rate=8000, n_fft=64, hop_length=16, win_length=64, n_mels=20, fmin=0.0, fmax=4000.0)
    return gen.eval(), mel


@pytest.mark.parametrize("folded", [False, True])
def test_our_format_round_trip(tmp_path, folded):
    gen, mel = _tiny_hifigan()
    if folded:
        gen.remove_weight_norm()
    save_checkpoint(tmp_path / "m.pt", gen, mel, meta={"step": 10, "recipe": "tiny", "tags": ("a", "b")})
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["format"] == "vocoder" and raw["version"] == 1 and raw["generator"]["name"] == "hifigan"
    assert raw["mel"] == mel.to_dict()
    gen2, mel2, meta = load_checkpoint(tmp_path / "m.pt")
    assert mel2 == mel and meta == {"step": 10, "recipe": "tiny", "tags": ["a", "b"]}
    assert gen2.config == gen.config
    x = torch.randn(1, 20, 8) - 4
    with torch.no_grad():
        assert torch.equal(gen2(x), gen(x))
    voc = Vocoder.from_pretrained(tmp_path / "m.pt")
    assert (voc(x[0]) - gen(x)[0, 0]).abs().max() < 1e-5
    voc.save(tmp_path / "again.pt")
    # Re-normalising the folded weights on load rounds once more: equal to float32 precision.
    assert (Vocoder.from_pretrained(str(tmp_path / "again.pt"))(x) - voc(x)).abs().max() < 1e-6


def test_meta_must_be_plain(tmp_path):
    gen, mel = _tiny_hifigan()
    with pytest.raises(ValueError, match="plain values"):
        save_checkpoint(tmp_path / "m.pt", gen, mel, meta={"obj": object()})


def test_mismatching_checkpoint_names_keys_and_mels(tmp_path):
    gen, mel = _tiny_hifigan()
    save_checkpoint(tmp_path / "m.pt", gen, mel)
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)

    # Config says 20 mels, weights have 24.
    bad = dict(ckpt, state_dict=dict(ckpt["state_dict"]))
    v = bad["state_dict"]["conv_pre.weight_v"]
    bad["state_dict"]["conv_pre.weight_v"] = torch.randn(v.shape[0], 24, v.shape[2])
    torch.save(bad, tmp_path / "bad_mels.pt")
    with pytest.raises(ValueError, match="checkpoint has 24 mels, config says 20"):
        load_checkpoint(tmp_path / "bad_mels.pt")

    # Missing and unexpected keys.
    bad = dict(ckpt, state_dict=dict(ckpt["state_dict"]))
    del bad["state_dict"]["conv_post.bias"]
    bad["state_dict"]["extra.layer.weight"] = torch.zeros(3)
    torch.save(bad, tmp_path / "bad_keys.pt")
    with pytest.raises(ValueError) as e:
        Vocoder.from_pretrained(str(tmp_path / "bad_keys.pt"))
    msg = str(e.value)
    assert "1 missing keys (conv_post.bias)" in msg and "1 unexpected keys (extra.layer.weight)" in msg


def test_official_folder_with_wrong_config(tmp_path):
    h = _bigvgan_h("v2")
    official = _official_bigvgan(h)
    wrong = dict(h, num_mels=24, upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8])
    _write_bigvgan_folder(tmp_path / "b", wrong, official.state_dict())
    with pytest.raises(ValueError) as e:
        Vocoder.from_pretrained(str(tmp_path / "b"))
    msg = str(e.value)
    assert "checkpoint has 20 mels, config says 24" in msg
    assert "checkpoint has 3 upsampling layers, config says 2" in msg
    assert "unexpected keys" in msg and "shape mismatches" in msg


def test_load_generator_state_accepts_any_weight_spelling():
    gen, _ = _tiny_hifigan()
    x = torch.randn(1, 20, 5)
    with torch.no_grad():
        ref = gen(x)
    folded = build_generator("hifigan", gen.config).eval()
    folded.remove_weight_norm()
    load_generator_state(folded, gen.state_dict())  # g/v -> plain weight
    normed = build_generator("hifigan", gen.config).eval()
    load_generator_state(normed, folded.state_dict())  # plain weight -> g/v
    load_generator_state(build_generator("hifigan", gen.config), _to_parametrization_keys(gen.state_dict()))
    with torch.no_grad():
        assert (folded(x) - ref).abs().max() < 1e-6 and (normed(x) - ref).abs().max() < 1e-6


def test_unreadable_files_are_value_errors(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot read|weights_only"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"mpd": {}, "msd": {}, "optim_g": {}}, tmp_path / "do_00001000")
    with pytest.raises(ValueError, match="discriminator"):
        load_checkpoint(tmp_path / "do_00001000")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no generator"):
        load_checkpoint(tmp_path / "empty")


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"generator": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="weights_only"):
        load_checkpoint(tmp_path / "evil.pt")
