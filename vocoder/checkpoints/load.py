"""The dispatcher above the readers: what a path holds (:func:`checkpoint_kind`) and loading it (:func:`load_checkpoint`)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Tuple, Union

import torch
import torch.nn as nn

from ..audio.mel import MelConfig
from .native import FORMAT_NAME, read_native, read_training
from .official import (BIGVGAN_WEIGHTS, CONFIG_JSON, import_bigvgan, import_hifigan, latest_hifigan_file,
                       looks_like_bigvgan, official_config)
from .pwg import PWG_CONFIG, import_parallel_wavegan, latest_pwg_file
from .safetensors_folder import SAFETENSORS_CONFIG, SAFETENSORS_WEIGHTS, read_safetensors_folder
from .state import PathLike, torch_load
from .training_layout import is_training_checkpoint
from .vocos import VOCOS_CONFIG, VOCOS_WEIGHTS, import_vocos, looks_like_vocos

__all__ = ["checkpoint_kind", "load_checkpoint", "check_finite_weights"]


def checkpoint_kind(path: PathLike) -> str:
    """What ``path`` holds, without loading weights: ``"safetensors_folder"``, ``"safetensors_file"``,
    ``"bigvgan_folder"``, ``"hifigan_folder"``, ``"pwg_folder"``, ``"pwg_file"``, ``"vocos_folder"``,
    ``"vocos_file"`` or ``"file"``."""
    path = Path(path)
    if path.is_dir():
        if (path / SAFETENSORS_WEIGHTS).is_file() and (path / SAFETENSORS_CONFIG).is_file():
            return "safetensors_folder"
        if (path / BIGVGAN_WEIGHTS).is_file():
            return "bigvgan_folder"
        if (path / VOCOS_WEIGHTS).is_file() and (path / VOCOS_CONFIG).is_file():
            return "vocos_folder"
        if latest_hifigan_file(path) is not None:
            return "hifigan_folder"
        if latest_pwg_file(path) is not None:
            return "pwg_folder"
        raise ValueError(
            f"folder {path} holds no generator: expected {SAFETENSORS_WEIGHTS} + {SAFETENSORS_CONFIG} (ours, "
            f"Vocoder.save_pretrained), {BIGVGAN_WEIGHTS} (+ {CONFIG_JSON}) for BigVGAN, a "
            f"g_XXXXXXXX file (+ {CONFIG_JSON}) for HiFi-GAN, checkpoint-<N>steps.pkl (+ {PWG_CONFIG}) for "
            f"ParallelWaveGAN or {VOCOS_WEIGHTS} (+ {VOCOS_CONFIG}) for Vocos; found "
            f"{sorted(p.name for p in path.iterdir())[:10]}"
        )
    if path.is_file():
        if path.suffix == ".safetensors":
            return "safetensors_file"
        if path.suffix == ".pkl" and (path.parent / PWG_CONFIG).is_file():
            return "pwg_file"
        if path.suffix == ".bin" and (path.parent / VOCOS_CONFIG).is_file():
            return "vocos_file"
        return "file"
    raise ValueError(f"model path not found: {path}")


def load_checkpoint(path: PathLike, map_location="cpu", config: Union[PathLike, Mapping, None] = None
                    ) -> Tuple[nn.Module, MelConfig, dict]:
    """Load a generator, its mel settings and meta from any supported checkpoint.

    Args:
        path: our ``.pt`` file; our ``config.json`` + ``model.safetensors`` folder (``Vocoder.save_pretrained``)
            or its ``.safetensors`` file; a Lightning ``.ckpt`` written by ``vocoder train`` (its generator); an
            official BigVGAN folder; a HiFi-GAN ``g_*`` file or folder; or a
            ``{"generator": state_dict}`` file from either (``config.json`` next to it, or ``config``); a
            ParallelWaveGAN run; a Vocos folder (``config.yaml`` + ``pytorch_model.bin``) or its weights file.
        map_location: passed to ``torch.load``.
        config: official ``config.json`` (``config.yml`` for ParallelWaveGAN, ``config.yaml`` for Vocos) path or
            dict, for official files whose config is elsewhere.
    Returns:
        ``(generator, mel_config, meta)``; the generator is in eval mode, weight norm as the class builds it.
    Raises:
        ValueError: an unknown or broken file, or weights holding NaN / inf (naming the tensor): such a model
            can only produce NaN audio.
    """
    generator, mel, meta = _load(path, map_location, config)
    check_finite_weights(generator, str(path))
    return generator, mel, meta


def check_finite_weights(module: nn.Module, source: str) -> None:
    """``ValueError`` naming the first parameter / buffer of ``module`` that holds NaN or inf."""
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if t.is_floating_point() or t.is_complex():
            finite = torch.isfinite(t.detach())
            if not bool(finite.all()):
                raise ValueError(f"{source}: weight {name!r} {tuple(t.shape)} holds {int((~finite).sum())} NaN / inf "
                                 f"values of {t.numel()}; the checkpoint is corrupt (or its training diverged)")


def _load(path: PathLike, map_location, config) -> Tuple[nn.Module, MelConfig, dict]:
    kind = checkpoint_kind(path)
    if kind in ("safetensors_folder", "safetensors_file"):
        return read_safetensors_folder(path)
    if kind in ("pwg_folder", "pwg_file"):
        return import_parallel_wavegan(path, config=config, map_location=map_location)
    if kind == "bigvgan_folder":
        return import_bigvgan(path, config=config, map_location=map_location)
    if kind == "hifigan_folder":
        return import_hifigan(path, config=config, map_location=map_location)
    if kind in ("vocos_folder", "vocos_file"):
        return import_vocos(path, config=config, map_location=map_location)
    ckpt = torch_load(path, map_location)
    if isinstance(ckpt, Mapping) and ckpt.get("format") == FORMAT_NAME:
        generator, mel, meta = read_native(ckpt, path)
        return generator.eval(), mel, meta
    if is_training_checkpoint(ckpt):
        generator, mel, meta = read_training(ckpt, path)
        return generator.eval(), mel, meta
    if isinstance(ckpt, Mapping) and looks_like_vocos(ckpt):
        return import_vocos(path, config=config, map_location=map_location, state=ckpt)
    if isinstance(ckpt, Mapping) and "generator" in ckpt and isinstance(ckpt["generator"], Mapping):
        h = official_config(path, config)
        if looks_like_bigvgan(ckpt["generator"], h):
            return import_bigvgan(path, config=h, map_location=map_location, ckpt=ckpt)
        return import_hifigan(path, config=h, map_location=map_location, ckpt=ckpt)
    if isinstance(ckpt, Mapping) and {"mpd", "msd"} & set(ckpt):
        raise ValueError(f"{path} is a discriminator / optimizer file (keys {sorted(ckpt)[:6]}); pass the generator "
                         f"file (g_XXXXXXXX or {BIGVGAN_WEIGHTS})")
    keys = sorted(ckpt)[:8] if isinstance(ckpt, Mapping) else type(ckpt).__name__
    raise ValueError(f"{path} is not a known checkpoint: expected our format (format='vocoder') or an official "
                     f"{{'generator': state_dict}} file; got {keys}")
