"""The layout of a ``vocoder train`` checkpoint (a Lightning ``.ckpt``): its keys are spelled here and nowhere else,
so the module that writes it and the three that read it cannot drift apart.

Lightning writes the weights, ``hyper_parameters`` and its own loop / optimiser states; ``GANVocoder`` adds the rest
(:func:`training_extras`)::

    {"state_dict": {"generator.<key>": tensor, ..., "discriminator.<key>": tensor, ...},
     "hyper_parameters": {"recipe": {..., "discriminators": [...]}},   # save_hyperparameters: GANVocoder(recipe)
     "gan_step": int,                                                   # GAN steps done
     "cpu_seconds": float,                                              # the run's CPU time (since 2026-12-02)
     "vocoder": {"generator": {"name": str, "config": dict}, "mel": MelConfig.to_dict(), "recipe_name": str},
     ...}                                                               # Lightning's own keys

Readers: :func:`vocoder.checkpoints.native.read_training` (the generator, :func:`read_generator`),
``vocoder.training.checkpointing`` (:func:`discriminators_only`: the file ``--init-discriminator`` takes, the same
layout less the generator and Lightning's states) and ``vocoder.training.runner`` (:func:`discriminator_weights`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from ..audio.mel import MelConfig

__all__ = ["STATE_DICT", "HYPER_PARAMETERS", "RECIPE", "GAN_STEP", "CPU_SECONDS", "DISCRIMINATOR_NOISE", "VOCODER",
           "GENERATOR_PREFIX", "DISCRIMINATOR_PREFIX", "REQUIRED_KEYS", "training_extras", "read_gan_step", "read_cpu_seconds",
           "is_training_checkpoint", "holds_weights", "generator_weights", "discriminator_weights",
           "recipe_discriminators", "discriminators_only", "TrainedGenerator", "read_generator", "training_meta",
           "cpu_hours"]

STATE_DICT = "state_dict"  # Lightning's: the module's weights, keyed by submodule
HYPER_PARAMETERS = "hyper_parameters"  # Lightning's: what save_hyperparameters() recorded
RECIPE = "recipe"  # the one hyper-parameter: GANVocoder's constructor argument, so Lightning can rebuild it
GAN_STEP = "gan_step"
CPU_SECONDS = "cpu_seconds"
DISCRIMINATOR_NOISE = "discriminator_noise"  # its adapted diffusion steps (recipes with discriminator_noise on)
VOCODER = "vocoder"  # the generator's description: enough to rebuild it without the recipe
GENERATOR_PREFIX = "generator."  # GANVocoder.generator's weights in STATE_DICT
DISCRIMINATOR_PREFIX = "discriminator."  # GANVocoder.discriminator's
REQUIRED_KEYS = (STATE_DICT, VOCODER)  # what makes a file a `vocoder train` checkpoint


def training_extras(gan_step: int, cpu_seconds: float, generator_name: str, generator_config: Mapping[str, Any],
                    mel_config: MelConfig, recipe_name: Optional[str]) -> Dict[str, Any]:
    """The keys ``GANVocoder.on_save_checkpoint`` adds to Lightning's (``generator_config``: plain values)."""
    return {GAN_STEP: int(gan_step), CPU_SECONDS: float(cpu_seconds),
            VOCODER: {"generator": {"name": generator_name, "config": generator_config},
                      "mel": mel_config.to_dict(), "recipe_name": recipe_name}}


def read_gan_step(ckpt: Mapping[str, Any]) -> int:
    """GAN steps done (0 for a file without the count)."""
    return int(ckpt.get(GAN_STEP, 0))


def read_cpu_seconds(ckpt: Mapping[str, Any]) -> Optional[float]:
    """The run's CPU seconds, ``None`` for checkpoints written before they were counted."""
    return float(ckpt[CPU_SECONDS]) if CPU_SECONDS in ckpt else None


def is_training_checkpoint(ckpt: Any) -> bool:
    """Whether a loaded file is a Lightning checkpoint written by ``vocoder train``."""
    return isinstance(ckpt, Mapping) and isinstance(ckpt.get(STATE_DICT), Mapping) \
        and isinstance(ckpt.get(VOCODER), Mapping)


def holds_weights(ckpt: Any) -> bool:
    """Whether a loaded file has a state dict (a discriminator cut has no generator description)."""
    return isinstance(ckpt, Mapping) and isinstance(ckpt.get(STATE_DICT), Mapping)


def _weights(ckpt: Mapping[str, Any], prefix: str, strip: bool) -> Dict[str, Any]:
    n = len(prefix) if strip else 0
    return {k[n:]: v for k, v in ckpt[STATE_DICT].items() if k.startswith(prefix)}


def generator_weights(ckpt: Mapping[str, Any]) -> Dict[str, Any]:
    """The generator's state dict (keys without the prefix); empty when the file has none."""
    return _weights(ckpt, GENERATOR_PREFIX, strip=True)


def discriminator_weights(ckpt: Mapping[str, Any], strip: bool = True) -> Dict[str, Any]:
    """The discriminators' state dict, keys without the prefix (``strip=False``: as the checkpoint has them)."""
    return _weights(ckpt, DISCRIMINATOR_PREFIX, strip)


def recipe_discriminators(ckpt: Mapping[str, Any]) -> Optional[list]:
    """The ``discriminators`` section of the recipe the checkpoint records, ``None`` where it records none."""
    return (ckpt.get(HYPER_PARAMETERS) or {}).get(RECIPE, {}).get("discriminators")


def discriminators_only(ckpt: Mapping[str, Any], source: Any) -> Dict[str, Any]:
    """The cut of a training checkpoint ``--init-discriminator`` reads: discriminator weights (keys as saved), the
    recipe's discriminators, the GAN step and the generator description. ``ValueError`` when it has no
    discriminator weights."""
    state = discriminator_weights(ckpt, strip=False)
    if not state:
        raise ValueError(f"{source}: no '{DISCRIMINATOR_PREFIX}*' weights in the checkpoint's {STATE_DICT}")
    return {STATE_DICT: state, HYPER_PARAMETERS: {RECIPE: {"discriminators": recipe_discriminators(ckpt)}},
            GAN_STEP: read_gan_step(ckpt), VOCODER: ckpt[VOCODER]}


@dataclass(frozen=True)
class TrainedGenerator:
    """The generator part of a training checkpoint, ready to build: registry ``name``, ``config`` (plain dict),
    ``mel``, ``state_dict`` (weight norm as trained) and the ``meta`` an export of it records."""

    name: str
    config: Dict[str, Any]
    mel: MelConfig
    state_dict: Dict[str, Any]
    meta: Dict[str, Any]


def read_generator(ckpt: Mapping[str, Any], path) -> TrainedGenerator:
    """The generator of a checkpoint for which :func:`is_training_checkpoint` holds; ``ValueError`` naming what is
    missing."""
    info = ckpt[VOCODER]
    gen = info.get("generator")
    if not isinstance(gen, Mapping) or "name" not in gen or "mel" not in info:
        raise ValueError(f"{path}: training checkpoint without its generator description ('{VOCODER}': "
                         f"{{'generator': {{'name', 'config'}}, 'mel'}}); got {sorted(info)}")
    state = generator_weights(ckpt)
    if not state:
        raise ValueError(f"{path}: no '{GENERATOR_PREFIX}*' weights in the checkpoint's {STATE_DICT}")
    meta = training_meta(info.get("recipe_name"), read_gan_step(ckpt), str(Path(path).resolve()),
                         read_cpu_seconds(ckpt))
    return TrainedGenerator(gen["name"], dict(gen.get("config") or {}), MelConfig.from_dict(info["mel"]), state, meta)


def cpu_hours(cpu_seconds: float) -> float:
    """A training run's CPU seconds as the ``cpu_hours`` its exports record (3 decimals)."""
    return round(float(cpu_seconds) / 3600.0, 3)


def training_meta(recipe_name: Optional[str], gan_step: int, source: str,
                  cpu_seconds: Optional[float] = None) -> Dict[str, Any]:
    """The meta of an inference export of a training run: ``{"recipe", "gan_step", "source"}``, + ``"cpu_hours"``
    when the run counted its CPU time."""
    meta = {"recipe": recipe_name, "gan_step": int(gan_step), "source": source}
    if cpu_seconds is not None:
        meta["cpu_hours"] = cpu_hours(cpu_seconds)
    return meta
