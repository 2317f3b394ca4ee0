"""The discriminator-side training options in a real training step: SpecDiff-GAN's diffusion noise
(``discriminator_noise:``) and GAN-TTS's mel-conditional random-window discriminators (``rwd``)."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from training_helpers import RECIPES_DIR, make_audio_dir, one_thread, tiny_overrides  # noqa: F401
from vocoder.training.recipes import load_recipe

SPECDIFF = RECIPES_DIR / "hifigan_v2_specdiff.yaml"


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    return make_audio_dir(tmp_path_factory.mktemp("audio"))


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def run_train(recipe, audio_dir, run_dir, resume=None, callbacks=()):
    from vocoder.training.runner import train

    return train(recipe, str(audio_dir), run_dir=run_dir, resume=resume, progress_bar=False,
                 extra_callbacks=callbacks)


class DiscriminatorInputs(pl.Callback):
    """Records, per GAN step, the noise's T before the step and what the discriminator was called with."""

    def __init__(self):
        self.levels, self.calls = [], []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.levels.append(module.discriminator_noise.level)
        if not getattr(module.discriminator, "_probed", False):
            forward = module.discriminator.forward

            def probe(wav, mel=None):
                self.calls.append((wav.detach().clone(), None if mel is None else mel.detach().clone()))
                return forward(wav, mel=mel)

            module.discriminator.forward = probe
            module.discriminator._probed = True
        self.batch = {k: v.detach().clone() for k, v in batch.items()}


def _first_items(judged: torch.Tensor, batch_wav: torch.Tensor):
    """(the first B items the discriminator judged, the batch's real audio), both [B, n]."""
    b = batch_wav.shape[0]
    real = batch_wav.reshape(b, -1)
    n = min(real.shape[-1], judged.shape[-1])
    return judged[:b].reshape(b, -1)[:, :n], real[:, :n]


NOISE = ["discriminator_noise.steps_init=50", "discriminator_noise.adjust_every=1",
         "discriminator_noise.adjust_step=1", "discriminator_noise.t_distribution=uniform"]


def test_noise_adapts_its_steps_and_resumes_with_them(audio_dir, tmp_path):
    from vocoder.training.callbacks import load_training_checkpoint

    probe = DiscriminatorInputs()
    recipe = load_recipe(SPECDIFF, tiny_overrides(SPECDIFF) + NOISE + ["trainer.max_steps=3"])
    run = run_train(recipe, audio_dir, tmp_path / "run", callbacks=[probe])
    state = load_training_checkpoint(run.last_checkpoint)["discriminator_noise"]
    # one update per discriminator step; T moved by exactly adjust_step each time (r_d never equals the target)
    assert state["updates"] == 3
    assert probe.levels[0] == 50.0
    assert [abs(b - a) for a, b in zip(probe.levels, probe.levels[1:] + [state["level"]])] == [1.0, 1.0, 1.0]
    # the discriminator saw noisy audio, never the clean batch
    for wav, _ in probe.calls[-3:]:
        assert not torch.equal(*_first_items(wav, probe.batch["wav"]))

    resumed_probe = DiscriminatorInputs()
    more = load_recipe(SPECDIFF, tiny_overrides(SPECDIFF) + NOISE + ["trainer.max_steps=4"])
    run_train(more, audio_dir, tmp_path / "run", resume="auto", callbacks=[resumed_probe])
    assert resumed_probe.levels[0] == state["level"]  # T carried across the resume, not restarted at steps_init


def test_noise_off_leaves_the_discriminator_inputs_clean(audio_dir, tmp_path):
    probe = DiscriminatorInputs()
    recipe = load_recipe(SPECDIFF, tiny_overrides(SPECDIFF) + ["discriminator_noise.enabled=false",
                                                                "trainer.max_steps=1"])
    run_train(recipe, audio_dir, tmp_path / "run", callbacks=[probe])
    assert torch.equal(*_first_items(probe.calls[0][0], probe.batch["wav"]))


def test_random_window_discriminators_get_the_batchs_mel(audio_dir, tmp_path):
    """rwd in a recipe: hop_length / n_mels filled from the recipe's mel, the step passes each item's mel."""
    recipe_path = RECIPES_DIR / "hifigan_v2.yaml"
    overrides = tiny_overrides(recipe_path) + ["discriminators.1.name=rwd", "discriminators.1.args={}",
                                               "trainer.max_steps=2"]
    overrides += [f"discriminators.1.args.{k}={v}" for k, v in
                  {"channel_mult": 0.0625, "window_frames": [1, 2, 4]}.items()]
    probe = DiscriminatorInputs()
    run_train(load_recipe(recipe_path, overrides), audio_dir, tmp_path / "run", callbacks=[probe])
    mel = probe.batch["mel"]
    d_wav, d_mel = probe.calls[-3]  # the last step's discriminator call on [real; fake]
    assert torch.equal(d_mel, torch.cat([mel, mel]))
    g_wav, g_mel = probe.calls[-1]  # the generator's judgement of fake
    assert torch.equal(g_mel, mel)
