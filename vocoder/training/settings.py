"""A recipe resolved once into typed objects: what the LightningModule, the data module and the trainer receive.

``TrainingRecipe.from_dict(recipe)`` is the one place that reads a resolved recipe dict (see
:mod:`vocoder.training.recipes`): it lays the recipe's generator config over its preset's, takes the mel settings
from the recipe or the preset, makes the generator config for them (:func:`~vocoder.generators.registry.config_for_mel`:
the mel settings define the generator's input), and types every setting: ``losses`` as the loss modules declare
it (:class:`~vocoder.losses.registry.LossSettings`), the other sections as the dataclasses here. The dict itself is
kept (``raw``): it is what ``recipe.yaml`` and Lightning's hyper-parameters store.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch.nn as nn

from ..audio.mel import MelConfig
from ..discriminators import CombinedDiscriminator, build_discriminator, discriminator_class
from ..generators.registry import Preset, config_for_mel, get_preset, get_spec
from ..losses.registry import LossSettings
from .discriminator_noise import DiscriminatorNoiseConfig

__all__ = ["LossSettings", "OptimSettings", "DataSettings", "TrainerSettings", "DiscriminatorSpec", "TrainingRecipe",
           "generator_name_and_config", "as_training_recipe"]


@dataclass(frozen=True)
class OptimSettings:
    """The recipe's ``optim`` section."""
    name: str
    lr: float
    betas: Tuple[float, float]
    eps: float
    weight_decay: float
    lr_decay: float
    lr_decay_every: int
    grad_clip: Optional[float]
    grad_clip_d: Optional[float]
    discriminator_start_step: int
    generator_adv_start_step: Optional[int]

    @property
    def generator_adv_start(self) -> int:
        """GAN step from which the generator's loss has its adversarial terms (never before D trains)."""
        g = self.generator_adv_start_step
        return self.discriminator_start_step if g is None else max(g, self.discriminator_start_step)

    @property
    def discriminator_grad_clip(self) -> Optional[float]:
        return self.grad_clip_d if self.grad_clip_d is not None else self.grad_clip


@dataclass(frozen=True)
class DataSettings:
    """The recipe's ``data`` section."""
    segment_length: int
    batch_size: int
    num_workers: int
    val_clips: int
    seed: int
    finetune_mels: Union[bool, str, None]


@dataclass(frozen=True)
class TrainerSettings:
    """The recipe's ``trainer`` section (what :func:`vocoder.training.runner.build_trainer` gives Lightning)."""
    max_steps: int
    precision: str
    val_check_interval: int
    log_every_n_steps: int
    checkpoint_every_n_steps: Optional[int]
    keep_last_checkpoints: Optional[int]
    export_every_n_steps: Optional[int]
    val_log_samples: int
    num_sanity_val_steps: int
    accelerator: str
    devices: Union[int, str, List[int]]
    strategy: str
    find_unused_parameters: bool
    seed: int


@dataclass(frozen=True)
class DiscriminatorSpec:
    name: str
    args: Mapping[str, Any]


def _typed(cls, section: Mapping[str, Any]):
    """``cls`` from a recipe section: ints, floats and bools converted (YAML reads ``1e-4`` as a string), None kept."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        v = section[f.name]
        t = f.type.replace("Optional[", "").rstrip("]") if isinstance(f.type, str) else f.type
        if v is not None and t in ("float", "int", "bool"):
            v = {"float": float, "int": int, "bool": bool}[t](v)
        elif v is not None and t.startswith("Tuple[float"):
            v = tuple(float(x) for x in v)
        elif v is not None and t.startswith("Mapping"):
            v = dict(v)
        kwargs[f.name] = v
    return cls(**kwargs)


def generator_name_and_config(recipe: Mapping[str, Any]) -> Tuple[str, Dict[str, Any], Optional[Preset]]:
    """(generator type name, config dict, preset or None) with the recipe's config keys laid over the preset's."""
    g = recipe["generator"]
    preset = get_preset(g["preset"]) if g.get("preset") else None
    name = g.get("name") or (preset.generator if preset else None)
    if preset is not None and preset.generator != name:
        raise ValueError(f"generator.name {name!r} does not match preset {preset.name!r} (a {preset.generator})")
    config = dataclasses.asdict(preset.config) if preset is not None else {}
    config.update(g.get("config") or {})
    return name, config, preset


@dataclass(frozen=True)
class TrainingRecipe:
    """A resolved recipe, typed. Build with :meth:`from_dict`."""
    name: Optional[str]
    mel: MelConfig
    generator_name: str
    generator_config: Any  # the generator's config dataclass
    discriminators: Tuple[DiscriminatorSpec, ...]
    losses: LossSettings
    optim: OptimSettings
    data: DataSettings
    trainer: TrainerSettings
    discriminator_noise: DiscriminatorNoiseConfig
    raw: Mapping[str, Any]  # the resolved dict (recipe.yaml, Lightning's hyper-parameters)

    @classmethod
    def from_dict(cls, recipe: Mapping[str, Any]) -> "TrainingRecipe":
        """Type a resolved recipe dict (:func:`vocoder.training.recipes.resolve_recipe`); ``ValueError`` when the
        generator config does not fit the mel settings or a section cannot be typed."""
        name, config, preset = generator_name_and_config(recipe)
        if recipe.get("mel"):
            mel = MelConfig.from_dict(recipe["mel"])
        elif preset is not None:
            mel = preset.mel
        else:
            raise ValueError("recipe has no `mel` section and no generator preset to take the mel settings from")
        generator_config = config_for_mel(name, config, mel, f"recipe generator {name}")
        return cls(name=recipe.get("name"), mel=mel, generator_name=name, generator_config=generator_config,
                   discriminators=tuple(DiscriminatorSpec(d["name"], dict(d.get("args") or {}))
                                        for d in recipe["discriminators"]),
                   losses=LossSettings(recipe["losses"]), optim=_typed(OptimSettings, recipe["optim"]),
                   data=_typed(DataSettings, recipe["data"]), trainer=_typed(TrainerSettings, recipe["trainer"]),
                   discriminator_noise=DiscriminatorNoiseConfig.from_dict(recipe.get("discriminator_noise")),
                   raw=dict(recipe))

    def build_generator(self) -> nn.Module:
        """The generator, from its config made for :attr:`mel` in :meth:`from_dict`."""
        return get_spec(self.generator_name).cls(self.generator_config)

    def build_discriminator(self) -> CombinedDiscriminator:
        """The recipe's discriminators; one that lines its windows up with mel frames (its class lists
        ``mel_arguments``, e.g. ``rwd``'s ``hop_length`` and ``n_mels``) gets them from :attr:`mel` unless its args
        set them."""
        built = []
        for d in self.discriminators:
            args = dict(d.args)
            for key in getattr(discriminator_class(d.name), "mel_arguments", ()):
                args.setdefault(key, getattr(self.mel, key))
            built.append(build_discriminator(d.name, **args))
        return CombinedDiscriminator(built)


def as_training_recipe(recipe: Union[Mapping[str, Any], TrainingRecipe]) -> TrainingRecipe:
    """``recipe`` itself, or typed from a resolved recipe dict."""
    return recipe if isinstance(recipe, TrainingRecipe) else TrainingRecipe.from_dict(recipe)
