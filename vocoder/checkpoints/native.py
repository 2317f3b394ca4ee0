"""Our checkpoint format: one ``.pt`` file, loadable with ``torch.load(..., weights_only=True)``::

    {"format": "vocoder", "version": 1,
     "generator": {"name": "bigvgan", "config": {...}},   # registry name + config dataclass as a dict
     "mel": MelConfig.to_dict(),
     "state_dict": {...},                                  # weight norm folded or not
     "meta": {...}}                                        # plain values only (str, numbers, lists, dicts)

and the generator inside a Lightning checkpoint that ``vocoder train`` writes (:func:`read_training`; its layout is
:mod:`.training_layout`'s): the same name, config and mel, the generator's weights among the discriminators'.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from ..audio.mel import MelConfig
from ..generators.registry import build_generator_for_mel, check_generator_fits_mel
from ..utils import atomic_torch_save
from .state import PathLike, load_matching_form, registry_name, unwrap_generator
from .training_layout import cpu_hours, is_training_checkpoint, read_generator  # noqa: F401 (re-exported)

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "save_checkpoint", "native_checkpoint", "read_native", "read_training", "is_training_checkpoint",
           "plain_values", "cpu_hours"]


FORMAT_NAME = "vocoder"


FORMAT_VERSION = 1


def plain_values(value: Any, where: str = "meta") -> Any:
    """Check ``value`` holds only what ``torch.load(weights_only=True)`` reads back: plain values and tensors."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain_values(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain_values(v, where) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    raise ValueError(f"{where} must hold plain values (str, numbers, lists, dicts, tensors), got {type(value).__name__}")


def save_checkpoint(path: PathLike, generator: nn.Module, mel_config: MelConfig, meta: Optional[dict] = None) -> None:
    """Write ``generator`` (name, config, weights) with its ``mel_config`` and ``meta`` as one ``.pt`` file, atomically."""
    atomic_torch_save(native_checkpoint(generator, mel_config, meta), path)


def native_checkpoint(generator: nn.Module, mel_config: Optional[MelConfig], meta: Optional[dict] = None) -> dict:
    """The dict our ``.pt`` holds (see the module docstring), weights copied to the CPU; ``ValueError`` for a generator
    without a dataclass config, a mel it does not take, or meta that is not plain values."""
    generator, carried = unwrap_generator(generator)  # a Vocoder carries its MelConfig
    mel_config = mel_config or carried
    if not isinstance(mel_config, MelConfig):
        raise ValueError(f"expected a MelConfig, got {type(mel_config).__name__}")
    config = getattr(generator, "config", None)
    if not dataclasses.is_dataclass(config):
        raise ValueError(f"generator {type(generator).__name__} has no dataclass .config")
    check_generator_fits_mel(generator, mel_config)
    state = {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()}
    ckpt = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "generator": {"name": registry_name(generator), "config": plain_values(dataclasses.asdict(config), "config")},
        "mel": mel_config.to_dict(),
        "state_dict": state,
        "meta": plain_values(dict(meta or {})),
    }
    return ckpt


def read_native(ckpt: Mapping[str, Any], path: PathLike) -> Tuple[nn.Module, MelConfig, dict]:
    version = ckpt.get("version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format version {version!r}, this package reads version {FORMAT_VERSION}")
    for key in ("generator", "mel", "state_dict"):
        if key not in ckpt:
            raise ValueError(f"{path}: checkpoint lacks {key!r}; has {sorted(ckpt)}")
    gen = ckpt["generator"]
    if not isinstance(gen, Mapping) or "name" not in gen:
        raise ValueError(f"{path}: 'generator' should be {{'name': str, 'config': dict}}, got {gen!r}")
    mel_config = MelConfig.from_dict(ckpt["mel"])
    generator = build_generator_for_mel(gen["name"], dict(gen.get("config") or {}), mel_config, str(path))
    load_matching_form(generator, ckpt["state_dict"], str(path))
    return generator, mel_config, dict(ckpt.get("meta") or {})


def read_training(ckpt: Mapping[str, Any], path: PathLike) -> Tuple[nn.Module, MelConfig, dict]:
    """The generator of a ``vocoder train`` checkpoint (weight norm as the class builds it), its mel settings, and
    meta ``{"recipe", "gan_step", "source"}`` (+ ``"cpu_hours"`` when the run counted them); the layout is
    :mod:`.training_layout`'s."""
    trained = read_generator(ckpt, path)
    generator = build_generator_for_mel(trained.name, trained.config, trained.mel, str(path))
    load_matching_form(generator, trained.state_dict, str(path))
    return generator, trained.mel, trained.meta
