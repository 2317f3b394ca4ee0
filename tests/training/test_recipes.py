"""Recipes: YAML -> resolved dict, dotted overrides, and every shipped recipe trains two GAN steps (tiny sizes)."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from vocoder.training.recipes import (DEFAULTS, apply_override, lightning_max_steps, load_recipe, resolve_recipe,
                                      save_recipe)

from training_helpers import RECIPES_DIR, make_audio_dir, one_thread, tiny_overrides  # noqa: F401

RECIPES = sorted(RECIPES_DIR.glob("*.yaml"))
EXPECTED = {"hifigan_v1", "hifigan_v2", "hifigan_v3", "melgan", "bigvgan_v1_base", "bigvgan_v2_22khz",
            "bigvgan_v2_24khz", "hifigan_v2_cqt"}

@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    return make_audio_dir(tmp_path_factory.mktemp("audio"))


def test_all_recipes_present():
    assert {p.stem for p in RECIPES} >= EXPECTED


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads(path):
    r = load_recipe(path)
    assert r["name"] == path.stem
    assert set(r) == set(DEFAULTS)
    assert r["losses"]["kind"] in ("lsgan", "hinge")
    # the generator exists and fits the mel settings
    from vocoder.training.settings import TrainingRecipe, generator_name_and_config

    name, config, preset = generator_name_and_config(r)
    mel = TrainingRecipe.from_dict(r).mel
    assert preset is not None and preset.mel.hop_length == mel.hop_length and preset.mel.n_mels == mel.n_mels
    # the YAML's own numbers survive: e.g. MelGAN follows the paper
    if path.stem == "melgan":
        assert r["losses"]["mel"] == 0 and r["losses"]["kind"] == "hinge" and r["optim"]["betas"] == [0.5, 0.9]
    if path.stem.startswith("bigvgan_v2"):
        assert r["optim"]["grad_clip"] == 500 and r["losses"]["multiscale_mel"] == 15
        assert [d["name"] for d in r["discriminators"]] == ["mpd", "cqtd"]


def test_overrides_are_yaml_values(tmp_path):
    p = RECIPES[0]
    r = load_recipe(p, ["optim.lr=1e-4", "trainer.max_steps=10", "data.batch_size=4", "optim.betas=[0.5, 0.9]",
                        "discriminators.0.args.periods=[2, 3]", "generator.config.upsample_initial_channel=64",
                        "optim.grad_clip=null"])
    assert r["optim"]["lr"] == pytest.approx(1e-4) and isinstance(r["optim"]["lr"], float)
    assert r["trainer"]["max_steps"] == 10 and r["data"]["batch_size"] == 4
    assert r["optim"]["betas"] == [0.5, 0.9] and r["optim"]["grad_clip"] is None
    assert r["discriminators"][0]["args"]["periods"] == [2, 3]
    assert r["generator"]["config"]["upsample_initial_channel"] == 64
    # round trip through recipe.yaml
    save_recipe(r, tmp_path / "recipe.yaml")
    again = load_recipe(tmp_path / "recipe.yaml")
    assert {k: v for k, v in again.items() if k != "name"} == {k: v for k, v in r.items() if k != "name"}


@pytest.mark.parametrize("bad", ["optim.lrr=1", "nosuch.x=1", "discriminators.7.args.x=1", "optim.lr",
                                 "losses.kind=wgan", "trainer.precision=16-mixed", "trainer.max_steps=0"])
def test_bad_overrides_raise(bad):
    with pytest.raises(ValueError):
        load_recipe(RECIPES[0], [bad])


def test_bad_recipe_raises(tmp_path):
    with pytest.raises(ValueError, match="unknown recipe sections"):
        resolve_recipe({"modle": {}})
    with pytest.raises(ValueError, match="generator"):
        resolve_recipe({"discriminators": [{"name": "mpd"}]})
    with pytest.raises(ValueError, match="discriminators"):
        resolve_recipe({"generator": "hifigan_v1"})
    with pytest.raises(ValueError, match="does not exist"):
        load_recipe(tmp_path / "missing.yaml")


def test_override_into_list_and_new_free_key():
    r = resolve_recipe({"generator": "hifigan_v2", "discriminators": [{"name": "mpd", "args": {}}]})
    apply_override(r, "discriminators.0.args.channel_mult=0.5")
    apply_override(r, "losses.stft_args.fft_sizes=[512]")
    assert r["discriminators"][0]["args"] == {"channel_mult": 0.5}
    assert r["losses"]["stft_args"] == {"fft_sizes": [512]}


def test_lightning_max_steps():
    # one G step per GAN step, plus one D step per GAN step once D trains
    assert lightning_max_steps(10, 0) == 20
    assert lightning_max_steps(10, 4) == 16
    assert lightning_max_steps(10, 50) == 10


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_trains_two_steps(path, tmp_path, audio_dir, one_thread):
    from vocoder.training.runner import train

    r = load_recipe(path, tiny_overrides(path))
    result = train(r, str(audio_dir), run_dir=tmp_path / "run", progress_bar=False)
    assert result.gan_step == 2 and not result.terminated
    ckpt = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)
    assert ckpt["gan_step"] == 2
    assert ckpt["global_step"] == lightning_max_steps(2, r["optim"]["discriminator_start_step"])
    assert (tmp_path / "run" / "recipe.yaml").is_file() and (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


def test_training_recipe_types_the_sections_once():
    from vocoder.generators import HiFiGANConfig
    from vocoder.training.settings import TrainingRecipe

    r = load_recipe(RECIPES_DIR / "hifigan_v2.yaml", ["optim.lr=1e-4", "data.segment_length=4096"])
    t = TrainingRecipe.from_dict(r)
    assert isinstance(t.generator_config, HiFiGANConfig) and t.generator_name == "hifigan"
    assert t.mel.hop_length == 256 and t.optim.lr == 1e-4 and isinstance(t.optim.betas, tuple)
    assert t.data.segment_length == 4096 and t.losses.weights()["mel"] == 45.0 and t.raw["name"] == "hifigan_v2"
    assert [d.name for d in t.discriminators] == [d["name"] for d in r["discriminators"]]
    with pytest.raises(ValueError, match="generator takes 80 mels, mel config says 100"):
        TrainingRecipe.from_dict(load_recipe(RECIPES_DIR / "hifigan_v2.yaml", ["mel.n_mels=100"]))


def test_the_trainer_section_is_typed_like_the_others():
    from vocoder.training.settings import TrainerSettings, TrainingRecipe

    r = load_recipe(RECIPES_DIR / "hifigan_v2.yaml", ["trainer.max_steps=1e3", "trainer.devices=[0, 1]",
                                                        "trainer.find_unused_parameters=false",
                                                        "trainer.checkpoint_every_n_steps=null"])
    t = TrainingRecipe.from_dict(r).trainer
    assert isinstance(t, TrainerSettings) and set(vars(t)) == set(DEFAULTS["trainer"])
    assert t.max_steps == 1000 and isinstance(t.max_steps, int) and t.devices == [0, 1]
    assert t.find_unused_parameters is False and t.checkpoint_every_n_steps is None and t.precision == "auto"
    with pytest.raises(ValueError, match="unknown key 'max_step' in trainer"):
        load_recipe(RECIPES_DIR / "hifigan_v2.yaml", ["trainer.max_step=10"])


def test_the_generator_is_built_for_the_mel_settings():
    """One function builds a generator for a MelConfig (training, inference, the checkpoint readers): what a config
    dict leaves out of n_mels / hop_length comes from the mel, what it sets must agree, the error names the source."""
    from vocoder.audio.mel import MelConfig
    from vocoder.generators.registry import build_generator_for_mel, config_for_mel, get_preset

    mel = MelConfig(n_mels=100, hop_length=128, n_fft=512, win_length=512)
    gen = build_generator_for_mel("hifigan", {"upsample_rates": [8, 4, 4], "upsample_kernel_sizes": [16, 8, 8],
                                              "upsample_initial_channel": 32}, mel)
    assert (gen.n_mels, gen.hop_length) == (100, 128)
    vocos = config_for_mel("vocos", {"dim": 16, "intermediate_dim": 32, "num_layers": 1, "n_fft": 512}, mel)
    assert (vocos.n_mels, vocos.hop_length) == (100, 128)  # a field here, so taken from the mel
    with pytest.raises(ValueError, match="my.pt: generator upsamples by 256, mel hop_length is 128"):
        build_generator_for_mel("hifigan", {"n_mels": 100}, mel, "my.pt")
    with pytest.raises(ValueError, match="generator takes 80 mels, mel config says 100"):
        build_generator_for_mel("hifigan_v2", None, mel)  # a preset name: its config, checked the same way
    preset = get_preset("hifigan_v2")
    assert build_generator_for_mel("hifigan_v2", {"upsample_initial_channel": 32}, preset.mel).config == \
        dataclasses.replace(preset.config, upsample_initial_channel=32)
