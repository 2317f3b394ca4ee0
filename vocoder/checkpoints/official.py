"""Official BigVGAN (NVIDIA) and HiFi-GAN (jik876) files.

* BigVGAN folder: ``config.json`` + ``bigvgan_generator.pt`` holding ``{"generator": state_dict}``.
* HiFi-GAN generator file such as ``g_02500000`` holding ``{"generator": state_dict}``, with its ``config.json``
  next to it (or given).

Each generator config class maps the official ``config.json`` keys itself (``from_official``).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple, Union

import torch.nn as nn

from ..audio.mel import MelConfig
from ..generators.registry import build_generator_for_mel, get_spec
from .state import PathLike, load_matching_form, read_json, torch_load

__all__ = ["BIGVGAN_WEIGHTS", "CONFIG_JSON", "import_bigvgan", "import_hifigan", "official_config",
           "looks_like_bigvgan", "latest_hifigan_file", "hifigan_mel_problems"]


BIGVGAN_WEIGHTS = "bigvgan_generator.pt"


CONFIG_JSON = "config.json"


def official_config(path: PathLike, config: Union[PathLike, Mapping, None]) -> dict:
    if isinstance(config, Mapping):
        return dict(config)
    if config is not None:
        return read_json(config)
    path = Path(path)
    candidate = (path if path.is_dir() else path.parent) / CONFIG_JSON
    if not candidate.is_file():
        raise ValueError(f"no {CONFIG_JSON} next to {path}: official checkpoints need their config (pass config=...)")
    return read_json(candidate)


def looks_like_bigvgan(sd: Mapping[str, Any], h: Mapping[str, Any]) -> bool:
    if "activation" in h:
        return True
    return any(k.startswith(("activation_post.", "ups.0.0.")) for k in sd)


def latest_hifigan_file(folder: Path) -> Optional[Path]:
    files = sorted(p for p in folder.glob("g_*") if p.is_file() and re.fullmatch(r"g_\d+(\.pt|\.pth)?", p.name))
    return files[-1] if files else None


def _build_official(name: str, h: Mapping, weights: Path, ckpt: Optional[Mapping], map_location,
                    where: str) -> Tuple[nn.Module, MelConfig]:
    """Generator ``name`` (in eval mode) and its MelConfig from an official config ``h`` and the
    ``{"generator": state_dict}`` file ``weights`` (read unless ``ckpt`` is given); ``where`` names the
    source in the mel-mismatch error."""
    if ckpt is None:
        ckpt = torch_load(weights, map_location)
    if not isinstance(ckpt, Mapping) or "generator" not in ckpt:
        raise ValueError(f"{weights}: expected {{'generator': state_dict}}, got "
                         f"{sorted(ckpt)[:8] if isinstance(ckpt, Mapping) else type(ckpt).__name__}")
    mel = MelConfig.from_dict(h)
    generator = build_generator_for_mel(name, _our_config(name, h), mel, where)
    load_matching_form(generator, ckpt["generator"], str(weights))
    return generator.eval(), mel


def import_bigvgan(path: PathLike, config: Union[PathLike, Mapping, None] = None, map_location="cpu",
                   ckpt: Optional[Mapping] = None) -> Tuple[nn.Module, MelConfig, dict]:
    """Read an official BigVGAN folder (``config.json`` + ``bigvgan_generator.pt``) or generator file."""
    path = Path(path)
    weights = path / BIGVGAN_WEIGHTS if path.is_dir() else path
    h = official_config(path, config)
    generator, mel = _build_official("bigvgan", h, weights, ckpt, map_location, where=str(path))
    meta = {"source": "bigvgan", "path": str(path)}
    return generator, mel, meta


def import_hifigan(path: PathLike, config: Union[PathLike, Mapping, None] = None, map_location="cpu",
                   ckpt: Optional[Mapping] = None) -> Tuple[nn.Module, MelConfig, dict]:
    """Read an original HiFi-GAN generator file (``{"generator": state_dict}``, e.g. ``g_02500000``) + config.json.

    ``path`` may be the folder of a training run: its latest ``g_*`` file is used.
    """
    path = Path(path)
    weights = path
    if path.is_dir():
        weights = latest_hifigan_file(path)
        if weights is None:
            raise ValueError(f"no g_XXXXXXXX generator file in {path}")
    h = official_config(weights, config)
    generator, mel = _build_official("hifigan", h, weights, ckpt, map_location, where=str(weights))
    meta = {"source": "hifigan", "path": str(weights)}
    return generator, mel, meta


def hifigan_mel_problems(mel: MelConfig) -> list:
    """Convention fields where ``mel`` is not the mel that HiFi-GAN's / BigVGAN's code computes."""
    default = MelConfig()
    return [f"{k}={getattr(mel, k)!r} (theirs: {getattr(default, k)!r})"
            for k in ("center", "mel_scale", "mel_norm", "magnitude_eps", "log_floor")
            if getattr(mel, k) != getattr(default, k)]


def _our_config(name: str, h: Mapping[str, Any]):
    """Our generator config from an official ``config.json`` (training-only keys are ignored)."""
    try:
        return get_spec(name).config_cls.from_official(h)  # each family maps its own official config keys
    except TypeError as e:
        raise ValueError(f"config does not describe a {name} generator: {e}") from e
