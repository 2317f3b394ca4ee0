"""ParallelWaveGAN / ESPnet export: what parallel_wavegan.utils.load_model loads (strictly) and runs to our audio,
and the round trips through our importer."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml

from vocoder import Vocoder
from vocoder.audio.mel import MelConfig
from vocoder.checkpoints import export_parallel_wavegan, import_parallel_wavegan
from vocoder.cli.main import main as cli_main
from vocoder.generators.registry import build_generator

from test_pwg import CASES, N_MELS, _pwg_models, _reference, _write_run, trained_looking

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

MEL = MelConfig(sample_rate=8000, n_fft=64, hop_length=16, win_length=64, n_mels=N_MELS, fmin=0.0, fmax=4000.0)

OURS = {
    "hifigan_resblock1": ("hifigan", {"n_mels": N_MELS, "upsample_rates": [4, 4], "upsample_kernel_sizes": [8, 8],
                                      "upsample_initial_channel": 32, "resblock": "1", "resblock_kernel_sizes": [3, 5],
                                      "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]]}),
    "hifigan_resblock2": ("hifigan", {"n_mels": N_MELS, "upsample_rates": [4, 2, 2], "upsample_kernel_sizes": [8, 4, 4],
                                      "upsample_initial_channel": 32, "resblock": "2", "resblock_kernel_sizes": [3],
                                      "resblock_dilation_sizes": [[1, 3]]}),
    "melgan": ("melgan", {"n_mels": N_MELS, "ngf": 8, "ratios": [4, 2, 2], "n_residual_layers": 2}),
}


def _trained_looking(gen, seed=0):
    torch.manual_seed(seed)
    return trained_looking(gen)


def _ours(case):
    name, cfg = OURS[case]
    return Vocoder(_trained_looking(build_generator(name, cfg)), MEL)


def _load_model(path):
    _pwg_models()  # the scipy.signal.kaiser alias ParallelWaveGAN 0.6.1 still imports
    from parallel_wavegan.utils import load_model

    return load_model(str(path)).eval()


@pytest.mark.parametrize("case", list(OURS))
def test_parallel_wavegan_load_model_runs_our_audio(tmp_path, case, capsys):
    voc = _ours(case)
    path = export_parallel_wavegan(voc, tmp_path / "pwg", steps=1234)
    assert path.name == "checkpoint-1234steps.pkl"
    h = yaml.safe_load((tmp_path / "pwg" / "config.yml").read_text())
    assert h["format"] == "npy" and (tmp_path / "pwg" / "stats.npy").is_file()
    model = _load_model(path)  # strict load_state_dict: every weight arrived
    mel = torch.randn(N_MELS, 30) - 4.0
    want = voc(mel)
    got = _reference(model, mel)  # its inference(log10 features [T, n_mels], normalize_before=True)
    diff = (got - want).abs().max().item()
    with capsys.disabled():
        print(f"\n[parallel-wavegan export {case}] load_model + inference vs ours: max abs diff {diff:.2e}")
    assert want.std() > 1e-2 and got.shape == want.shape and diff < 1e-4
    # ESPnet's ParallelWaveGANPretrainedVocoder does exactly this: normalize_before when the model has stats
    assert hasattr(model, "mean") and hasattr(model, "scale")

    # round trip through our importer
    again = Vocoder.from_pretrained(tmp_path / "pwg")
    assert again.mel_config == MEL and again.generator.config.input_norm == "log10_standardize"
    assert (again(mel) - want).abs().max().item() < 1e-5


@pytest.mark.parametrize("case", ["hifigan", "hifigan_no_additional_convs", "melgan"])
def test_parallel_wavegan_run_round_trip(tmp_path, case):
    kind, params = CASES[case]
    ref = _write_run(tmp_path / "run", kind, params, stats="npy")
    gen, mel_cfg, _ = import_parallel_wavegan(tmp_path / "run")
    export_parallel_wavegan(gen, tmp_path / "back", mel_config=mel_cfg, steps=100)
    model = _load_model(tmp_path / "back" / "checkpoint-100steps.pkl")
    theirs = np.load(tmp_path / "run" / "stats.npy")
    assert np.array_equal(np.load(tmp_path / "back" / "stats.npy"), theirs)  # its statistics, unchanged
    mel = torch.randn(N_MELS, 20) - 4.0
    assert (_reference(model, mel) - _reference(ref, mel)).abs().max().item() < 1e-5
    back = yaml.safe_load((tmp_path / "back" / "config.yml").read_text())
    orig = yaml.safe_load((tmp_path / "run" / "config.yml").read_text())
    for k, v in orig["generator_params"].items():
        assert back["generator_params"][k] == v, k


def test_what_parallel_wavegan_cannot_build_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no generator for our bigvgan"):
        export_parallel_wavegan(Vocoder.from_pretrained("bigvgan_base_22khz_80band", random_init=True), tmp_path)
    odd = build_generator("hifigan", {"n_mels": N_MELS, "upsample_rates": [4, 4], "upsample_kernel_sizes": [4, 4],
                                      "upsample_initial_channel": 16, "resblock": "2", "resblock_kernel_sizes": [3],
                                      "resblock_dilation_sizes": [[1, 3]]})
    with pytest.raises(ValueError, match=r"kernel = 2 x scale.*\(4, 4\)"):
        export_parallel_wavegan(odd, tmp_path, mel_config=MEL)
    name, cfg = OURS["melgan"]
    htk = MelConfig(sample_rate=8000, n_fft=64, hop_length=16, win_length=64, n_mels=N_MELS, fmin=0.0, fmax=None,
                    mel_scale="htk", mel_norm=None)
    with pytest.raises(ValueError, match="mel_scale='htk'"):
        export_parallel_wavegan(build_generator(name, cfg), tmp_path, mel_config=htk)


def test_cli_export_parallel_wavegan(tmp_path):
    voc = _ours("melgan")
    voc.save(tmp_path / "model.pt")
    assert cli_main(["export", "--format", "parallel-wavegan", str(tmp_path / "model.pt"), str(tmp_path / "out")]) == 0
    model = _load_model(tmp_path / "out" / "checkpoint-0steps.pkl")
    mel = torch.randn(N_MELS, 12) - 4.0
    assert (_reference(model, mel) - voc(mel)).abs().max().item() < 1e-4


def test_espnet_loads_the_export(tmp_path, capsys):
    """ESPnet's own vocoder loading (what Text2Speech(vocoder_file=...) calls). ESPnet is not in the test extra
    (`pip install espnet` downgrades torch): skipped unless importable, e.g. installed with --no-deps plus its
    import-time dependencies."""
    _pwg_models()
    tts = pytest.importorskip("espnet2.tasks.tts")
    voc = _ours("hifigan_resblock1")
    pkl = export_parallel_wavegan(voc, tmp_path / "pwg")
    espnet_vocoder = tts.TTSTask.build_vocoder_from_file(vocoder_file=str(pkl))
    assert espnet_vocoder.normalize_before and espnet_vocoder.fs == MEL.sample_rate
    mel = torch.randn(N_MELS, 30) - 4.0
    got = espnet_vocoder(mel.T / math.log(10.0))  # Text2Speech: self.vocoder(feat_gen), [T, n_mels] log10
    diff = (got - voc(mel)).abs().max().item()
    with capsys.disabled():
        print(f"\n[ESPnet TTSTask.build_vocoder_from_file] vs ours: max abs diff {diff:.2e}")
    assert diff < 1e-4
