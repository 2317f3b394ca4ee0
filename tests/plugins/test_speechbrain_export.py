"""SpeechBrain export: SpeechBrain's own HIFIGAN.from_hparams loads the folder and decode_batch is our audio; every
weight arrived although SpeechBrain loads with strict=False."""
from __future__ import annotations

import pytest
import torch

from vocoder.cli.main import main as cli_main
from vocoder.plugins.speechbrain import SB_WEIGHTS, export_speechbrain

from export_models import FAMILIES, tiny_mels, tiny_vocoder
from speechbrain_client import HIFIGAN, speechbrain_lazy_modules  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("one_thread_per_module")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_speechbrain_loads_and_decodes_our_audio(tmp_path, family, capsys, HIFIGAN):
    voc = tiny_vocoder(family)
    export_speechbrain(voc, tmp_path / "sb")
    sb = HIFIGAN.from_hparams(source=str(tmp_path / "sb"), savedir=str(tmp_path / "sb_cache"))

    # every weight arrived: the module SpeechBrain built holds exactly the file's tensors, which are the model's
    loaded = sb.hparams.generator.state_dict()
    saved = torch.load(tmp_path / "sb" / SB_WEIGHTS, weights_only=True)
    ours = {f"generator.{k}": v for k, v in voc.generator.state_dict().items()}
    assert set(loaded) == set(saved) == set(ours)
    assert all(torch.equal(loaded[k], saved[k]) and torch.equal(saved[k], ours[k]) for k in saved)
    assert sb.hparams.generator.weights_loaded

    mel = tiny_mels(2)
    want = voc(mel)
    got = sb.decode_batch(mel)
    diff = (got[:, 0] - want).abs().max().item()
    one = sb.decode_spectrogram(mel[1])
    with capsys.disabled():
        print(f"\n[speechbrain export {family}] HIFIGAN.decode_batch vs ours: max abs diff {diff:.2e}")
    assert want.std() > 1e-3 and got.shape == (2, 1, want.shape[-1]) and diff < 1e-4
    assert one.shape == (1, want.shape[-1]) and (one[0] - want[1]).abs().max() < 1e-4
    # its own masking of padded items (mel_lens in frames, hop_len ours)
    masked = sb.decode_batch(mel, mel_lens=torch.tensor([mel.shape[-1], 10]), hop_len=voc.hop_length)
    assert torch.all(masked[1, 0, 10 * voc.hop_length:] == 0)


def test_a_checkpoint_that_does_not_fit_is_refused_not_run_with_random_weights(tmp_path, HIFIGAN):
    voc = tiny_vocoder("hifigan")
    export_speechbrain(voc, tmp_path / "sb")
    state = torch.load(tmp_path / "sb" / SB_WEIGHTS, weights_only=True)
    state["generator.conv_post.weight_renamed"] = state.pop("generator.conv_post.weight")
    torch.save(state, tmp_path / "sb" / SB_WEIGHTS)
    with pytest.raises(ValueError, match=r"1 missing: \['generator.conv_post.weight'\], 1 unexpected"):
        HIFIGAN.from_hparams(source=str(tmp_path / "sb"), savedir=str(tmp_path / "sb_cache"))


def test_cli_export_speechbrain(tmp_path, HIFIGAN):
    voc = tiny_vocoder("melgan")
    voc.save(tmp_path / "model.pt")
    assert cli_main(["export", "--format", "speechbrain", str(tmp_path / "model.pt"), str(tmp_path / "sb")]) == 0
    sb = HIFIGAN.from_hparams(source=str(tmp_path / "sb"), savedir=str(tmp_path / "sb_cache"))
    mel = tiny_mels(1)
    assert (sb.decode_batch(mel)[:, 0] - voc(mel)).abs().max() < 1e-4
