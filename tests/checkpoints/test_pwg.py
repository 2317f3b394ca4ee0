"""ParallelWaveGAN checkpoints (kan-bayashi): training folder -> our generator, same audio as its own code."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml

from vocoder import Vocoder
from vocoder.checkpoints import checkpoint_kind, import_parallel_wavegan

h5py = pytest.importorskip("h5py")


def _pwg_models():
    pytest.importorskip("parallel_wavegan")
    import scipy.signal
    import scipy.signal.windows

    scipy.signal.kaiser = scipy.signal.windows.kaiser  # parallel_wavegan still imports the old name
    from parallel_wavegan import models

    return models


N_MELS = 16
CASES = {
    "hifigan": ("HiFiGANGenerator", dict(in_channels=N_MELS, channels=32, upsample_scales=[4, 2],
                                         upsample_kernel_sizes=[8, 4], resblock_kernel_sizes=[3, 5],
                                         resblock_dilations=[[1, 3, 5], [1, 3, 5]])),
    "hifigan_no_additional_convs": ("HiFiGANGenerator", dict(
        in_channels=N_MELS, channels=32, upsample_scales=[4, 2], upsample_kernel_sizes=[8, 4],
        resblock_kernel_sizes=[3, 5], resblock_dilations=[[1, 2], [2, 6]], use_additional_convs=False)),
    "melgan": ("MelGANGenerator", dict(in_channels=N_MELS, channels=64, upsample_scales=[4, 2, 2], stacks=2)),
}


def _hop(params):
    return int(np.prod(params["upsample_scales"]))


def trained_looking(gen):
    """Fill ``gen`` with trained-looking weights from torch's RNG: unit-norm layers, small biases, output far
    from constant."""
    with torch.no_grad():
        for name, p in gen.named_parameters():
            if name.endswith("weight_g"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.01 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p))
    return gen


def _write_run(folder, kind, params, seed=0, steps=100, stats="h5"):
    """A ParallelWaveGAN training folder as its train.py leaves it: config.yml, checkpoint, stats."""
    models = _pwg_models()
    torch.manual_seed(seed)
    gen = getattr(models, kind)(**params)
    trained_looking(gen)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"sampling_rate": 8000, "fft_size": 64, "hop_size": _hop(params), "win_length": None, "window": "hann",
           "num_mels": N_MELS, "fmin": 0, "fmax": None, "global_gain_scale": 1.0,
           "generator_type": kind, "generator_params": params}
    (folder / "config.yml").write_text(yaml.safe_dump(cfg))
    torch.save({"model": {"generator": gen.state_dict(), "discriminator": {}}, "steps": steps, "epochs": 1},
               folder / f"checkpoint-{steps}steps.pkl")
    rng = np.random.default_rng(seed)
    mean = rng.normal(-2.0, 0.5, N_MELS).astype(np.float32)
    scale = rng.uniform(0.5, 1.5, N_MELS).astype(np.float32)
    if stats == "h5":
        with h5py.File(folder / "stats.h5", "w") as f:
            f["mean"], f["scale"] = mean, scale
        gen.register_stats(str(folder / "stats.h5"))
    else:
        np.save(folder / "stats.npy", np.stack([mean, scale]))
        gen.register_stats(str(folder / "stats.npy"))
    return gen.eval()


def _reference(gen, mel):
    """ParallelWaveGAN's own inference on the features it was trained on: our ln-mel as log10, normalised by it."""
    with torch.no_grad():
        return gen.inference(mel.T / math.log(10.0), normalize_before=True).reshape(-1)


@pytest.mark.parametrize("case", list(CASES))
def test_import_equals_parallel_wavegan(tmp_path, case):
    kind, params = CASES[case]
    folder = tmp_path / "run"
    _write_run(folder, kind, params, seed=1, steps=50)  # an older checkpoint: the newest must be used
    ref = _write_run(folder, kind, params, seed=0, steps=400)
    assert checkpoint_kind(folder) == "pwg_folder"

    voc = Vocoder.from_pretrained(folder)
    assert voc.sample_rate == 8000 and voc.hop_length == _hop(params) and voc.n_mels == N_MELS
    mel = torch.randn(N_MELS, 24) - 4.0
    want = _reference(ref, mel)
    got = voc(mel)
    assert want.std() > 1e-2 and want.abs().max() < 0.99  # output that depends on the input, not saturated
    assert got.shape == want.shape
    assert (got - want).abs().max().item() < 1e-5

    # streaming equals offline, and our own format keeps the statistics
    streamed = torch.cat(list(voc.stream([mel[:, i:i + 5] for i in range(0, 24, 5)])), -1)
    assert (streamed - got).abs().max().item() < 1e-5
    voc.save(tmp_path / "ours.pt")
    again = Vocoder.from_pretrained(tmp_path / "ours.pt")
    assert (again(mel) - got).abs().max().item() < 1e-6
    if case.startswith("hifigan"):  # the official HiFi-GAN format has no place for the statistics
        from vocoder.checkpoints import export_hifigan

        with pytest.raises(ValueError, match="normalises its input"):
            export_hifigan(voc, tmp_path / "official")


def test_single_file_and_npy_stats(tmp_path):
    kind, params = CASES["hifigan"]
    ref = _write_run(tmp_path, kind, params, stats="npy")
    pkl = tmp_path / "checkpoint-100steps.pkl"
    assert checkpoint_kind(pkl) == "pwg_file"
    gen, mel_cfg, meta = import_parallel_wavegan(pkl)
    assert meta["source"] == "parallel_wavegan" and meta["steps"] == 100
    mel = torch.randn(N_MELS, 10) - 4.0
    with torch.no_grad():
        got = gen(mel[None]).reshape(-1)
    assert (got - _reference(ref, mel)).abs().max().item() < 1e-5


def _edit_config(folder, **changes):
    cfg = yaml.safe_load((folder / "config.yml").read_text())
    for k, v in changes.items():
        if k == "generator_params":
            cfg[k].update(v)
        else:
            cfg[k] = v
    (folder / "config.yml").write_text(yaml.safe_dump(cfg))


@pytest.mark.parametrize("change, message", [
    (dict(generator_type="StyleMelGANGenerator"), "generator_type StyleMelGANGenerator is not supported"),
    (dict(generator_params={"out_channels": 4}), "PQMF"),
    (dict(generator_params={"use_causal_conv": True}), "use_causal_conv"),
    (dict(generator_params={"global_channels": 64}), "global_channels"),
    (dict(generator_params={"channels": 64}), "shape"),
    (dict(generator_params={"resblock_kernel_sizes": [3], "resblock_dilations": [[1, 3, 5]]}), "layers"),
    (dict(window="hamming"), "window"),
    (dict(global_gain_scale=0.5), "global_gain_scale"),
], ids=["style-melgan", "multiband", "causal", "speaker-conditioned", "wrong-width", "wrong-depth", "window", "gain"])
def test_checkpoint_that_does_not_fit(tmp_path, change, message):
    kind, params = CASES["hifigan"]
    _write_run(tmp_path, kind, params)
    _edit_config(tmp_path, **change)
    with pytest.raises(ValueError, match=message):
        Vocoder.from_pretrained(tmp_path)


def test_missing_or_bad_stats(tmp_path):
    kind, params = CASES["melgan"]
    _write_run(tmp_path, kind, params)
    (tmp_path / "stats.h5").unlink()
    with pytest.raises(ValueError, match="stats.h5 or stats.npy"):
        Vocoder.from_pretrained(tmp_path)
    np.save(tmp_path / "stats.npy", np.stack([np.zeros(N_MELS + 1), np.ones(N_MELS + 1)]))
    with pytest.raises(ValueError, match="17 / 17 bands, the model takes 16"):
        Vocoder.from_pretrained(tmp_path)
    np.save(tmp_path / "stats.npy", np.stack([np.zeros(N_MELS), np.zeros(N_MELS)]))
    with pytest.raises(ValueError, match="scale > 0"):
        Vocoder.from_pretrained(tmp_path)


def test_newer_releases_default_global_channels_is_accepted(tmp_path):
    kind, params = CASES["hifigan"]
    ref = _write_run(tmp_path, kind, params)
    _edit_config(tmp_path, generator_params={"global_channels": -1})  # what newer releases write: no conditioning
    mel = torch.randn(N_MELS, 10) - 4.0
    assert (Vocoder.from_pretrained(tmp_path)(mel) - _reference(ref, mel)).abs().max().item() < 1e-5
