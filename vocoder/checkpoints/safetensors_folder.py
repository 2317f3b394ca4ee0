"""Our Hub layout: a folder holding ``config.json`` + ``model.safetensors`` (what ``Vocoder.save_pretrained`` writes)::

    config.json        {"format": "vocoder", "version": 1,
                        "generator": {"name": str, "config": {...}}, "mel": MelConfig.to_dict(), "meta": {...},
                        "weights": {"file": "model.safetensors", "sha256": hex}}
    model.safetensors  the generator's state dict, tensors only: reading it unpickles nothing and runs no code

The same content as our ``.pt`` (:mod:`.native`), split so that the Hub shows the config and the weights can be
read without ``torch.load``. The sha256 in ``config.json`` ties the two files together: a truncated or altered
weights file is a ``ValueError``, never a model that plays noise.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Optional, Tuple

import torch
import torch.nn as nn

from ..audio.mel import MelConfig
from ..utils import atomic_write_bytes
from .native import FORMAT_NAME, native_checkpoint, read_native
from .state import PathLike, read_json

__all__ = ["SAFETENSORS_WEIGHTS", "SAFETENSORS_CONFIG", "save_safetensors_folder", "read_safetensors_folder"]


SAFETENSORS_WEIGHTS = "model.safetensors"


SAFETENSORS_CONFIG = "config.json"


def _json_values(value: Any, where: str) -> Any:
    """``value`` if JSON can hold it exactly (tuples become lists), else ``ValueError`` naming where."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}: config.json holds finite numbers only")
        return value
    if isinstance(value, (list, tuple)):
        return [_json_values(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _json_values(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise ValueError(f"{where} is a {type(value).__name__}: config.json holds str, numbers, lists and dicts only "
                     f"(a .pt checkpoint, Vocoder.save, also holds tensors)")


def save_safetensors_folder(folder: PathLike, generator: nn.Module, mel_config: Optional[MelConfig] = None,
                            meta: Optional[dict] = None) -> Path:
    """Write ``folder/config.json`` + ``folder/model.safetensors`` (each atomically; the folder is created).

    ``generator`` is a registered generator (with ``mel_config``) or a Vocoder; weights are saved as held
    (``[out, in, k]`` convolutions, folded or with ``weight_g`` / ``weight_v``), dtype kept. Returns ``folder``.
    """
    ckpt = native_checkpoint(generator, mel_config, meta)
    ckpt["meta"] = _json_values(ckpt["meta"], "meta")
    from safetensors.torch import save  # deferred: import time of the CLI

    # safetensors refuses shared or strided storage: each tensor gets its own contiguous copy (values unchanged).
    state = {k: v.contiguous().clone() for k, v in ckpt.pop("state_dict").items()}
    data = save(state, metadata={"format": "pt"})  # "pt": the Hub's tag for PyTorch tensors
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"save_pretrained: {folder} is a file; expected a folder for {SAFETENSORS_CONFIG} + "
                         f"{SAFETENSORS_WEIGHTS}")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(data, folder / SAFETENSORS_WEIGHTS)
    ckpt["weights"] = {"file": SAFETENSORS_WEIGHTS, "sha256": hashlib.sha256(data).hexdigest()}
    atomic_write_bytes((json.dumps(ckpt, indent=2) + "\n").encode(), folder / SAFETENSORS_CONFIG)
    return folder


def read_safetensors_folder(path: PathLike) -> Tuple[nn.Module, MelConfig, dict]:
    """``(generator, mel_config, meta)`` from a folder written by :func:`save_safetensors_folder` (or its
    ``.safetensors`` file, ``config.json`` beside it); ``ValueError`` for a foreign config, a weights file that
    does not match its sha256, or one that is not safetensors."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    config_path = folder / SAFETENSORS_CONFIG
    if not config_path.is_file():
        raise ValueError(f"{path}: a safetensors model needs its {SAFETENSORS_CONFIG} beside it (generator, mel, "
                         f"meta, as Vocoder.save_pretrained writes); found none")
    cfg = read_json(config_path)
    if cfg.get("format") != FORMAT_NAME:
        raise ValueError(f"{config_path}: expected our config (\"format\": \"{FORMAT_NAME}\", written by "
                         f"Vocoder.save_pretrained), got keys {sorted(cfg)[:8]}")
    declared = cfg.get("weights") if isinstance(cfg.get("weights"), dict) else {}
    name = str(declared.get("file", SAFETENSORS_WEIGHTS))
    if Path(name).name != name or name.startswith("."):
        raise ValueError(f"{config_path}: weights file {name!r} should be a plain file name beside config.json")
    weights = path if path.is_file() else folder / name
    if not weights.is_file():
        raise ValueError(f"{folder}: weights file {weights.name} not found (config.json names it)")
    data = weights.read_bytes()
    expected = declared.get("sha256")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise ValueError(f"{weights}: sha256 {hashlib.sha256(data).hexdigest()[:16]}... does not match the "
                         f"{expected[:16]}... that {SAFETENSORS_CONFIG} records ({len(data)} bytes): the file was "
                         f"truncated or changed after save_pretrained; download or save it again")
    state = _read_tensors(data, weights)
    generator, mel, meta = read_native({**cfg, "state_dict": state}, weights)
    return generator.eval(), mel, meta


def _read_tensors(data: bytes, where: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        state = load(data)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as e:
        raise ValueError(f"{where}: not a readable safetensors file ({len(data)} bytes: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}); expected the weights "
                         f"Vocoder.save_pretrained writes") from None
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{where}: holds no tensors; expected the generator's state dict")
    return state
