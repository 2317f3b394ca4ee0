"""A recipe resolved once into typed objects: what the LightningModule, the data module and the trainer receive.

``TrainingRecipe.from_dict(recipe)`` is the one place that reads a resolved recipe dict (see
:mod:`vocoder.training.recipes`): it lays the recipe's generator config over its preset's, takes the mel settings
from the recipe or the preset, checks that the generator fits them, and types every setting. The dict itself is
kept (``raw``): it is what ``recipe.yaml`` and Lightning's hyper-parameters store.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch.nn as nn

from ..audio.mel import MelConfig
from ..discriminators import CombinedDiscriminator, build_discriminator
from ..generators.registry import Preset, build_generator, check_generator_fits_mel, get_preset, resolve_config

__all__ = ["LossSettings", "OptimSettings", "DataSettings", "DiscriminatorSpec", "TrainingRecipe",
           "FOURIER_TERMS", "RECONSTRUCTION_TERMS", "generator_name_and_config", "as_training_recipe"]

#: loss weights that need the generator's predicted STFT (vocoder.losses.fourier)
FOURIER_TERMS = ("amplitude", "amplitude_gradients", "phase_ip", "phase_gd", "phase_iaf", "consistency", "real_imag", "phase_retrieved")
#: loss weights of the generator's reconstruction terms (what a generator-only warm-up trains on)
RECONSTRUCTION_TERMS = ("mel", "multiscale_mel", "stft_sc", "stft_mag") + FOURIER_TERMS
_WEIGHTS = ("adv", "disc", "fm") + RECONSTRUCTION_TERMS


@dataclass(frozen=True)
class LossSettings:
    """The recipe's ``losses`` section (weights, the adversarial objective, the losses' arguments)."""
    kind: str
    adv: float
    disc: float
    fm: float
    mel: float
    mel_fmax: Optional[float]
    multiscale_mel: float
    multiscale_mel_args: Mapping[str, Any]
    stft_sc: float
    stft_mag: float
    stft_args: Mapping[str, Any]
    amplitude: float
    amplitude_floor: float
    amplitude_gradients: float
    phase_ip: float
    phase_gd: float
    phase_iaf: float
    phase_weighting: str
    consistency: float
    real_imag: float
    phase_retrieved: float
    phase_retrieval_iterations: int

    def weights(self) -> Dict[str, float]:
        """Every loss weight by name (``adv``, ``disc``, ``fm`` and the reconstruction terms)."""
        return {k: getattr(self, k) for k in _WEIGHTS}


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
class DiscriminatorSpec:
    name: str
    args: Mapping[str, Any]


def _typed(cls, section: Mapping[str, Any]):
    """``cls`` from a recipe section: ints and floats converted (YAML reads ``1e-4`` as a string), None kept."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        v = section[f.name]
        t = f.type.replace("Optional[", "").rstrip("]") if isinstance(f.type, str) else f.type
        if v is not None and t in ("float", "int"):
            v = float(v) if t == "float" else int(v)
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
    trainer: Mapping[str, Any]
    raw: Mapping[str, Any]  # the resolved dict (recipe.yaml, Lightning's hyper-parameters)

    @classmethod
    def from_dict(cls, recipe: Mapping[str, Any]) -> "TrainingRecipe":
        """Type a resolved recipe dict (:func:`vocoder.training.recipes.resolve_recipe`); ``ValueError`` when the
        generator does not fit the mel settings or a section cannot be typed."""
        name, config, preset = generator_name_and_config(recipe)
        if recipe.get("mel"):
            mel = MelConfig.from_dict(recipe["mel"])
        elif preset is not None:
            mel = preset.mel
        else:
            raise ValueError("recipe has no `mel` section and no generator preset to take the mel settings from")
        generator_config = resolve_config(name, config)
        check_generator_fits_mel(generator_config, mel, f"recipe generator {name}")
        return cls(name=recipe.get("name"), mel=mel, generator_name=name, generator_config=generator_config,
                   discriminators=tuple(DiscriminatorSpec(d["name"], dict(d.get("args") or {}))
                                        for d in recipe["discriminators"]),
                   losses=_typed(LossSettings, recipe["losses"]), optim=_typed(OptimSettings, recipe["optim"]),
                   data=_typed(DataSettings, recipe["data"]), trainer=dict(recipe["trainer"]), raw=dict(recipe))

    def build_generator(self) -> nn.Module:
        return build_generator(self.generator_name, self.generator_config)

    def build_discriminator(self) -> CombinedDiscriminator:
        return CombinedDiscriminator([build_discriminator(d.name, **d.args) for d in self.discriminators])


def as_training_recipe(recipe: Union[Mapping[str, Any], TrainingRecipe]) -> TrainingRecipe:
    """``recipe`` itself, or typed from a resolved recipe dict."""
    return recipe if isinstance(recipe, TrainingRecipe) else TrainingRecipe.from_dict(recipe)
