"""Vocos (gemelo-ai/vocos) folders as published on the hub: ``config.yaml`` (``feature_extractor`` / ``backbone`` /
``head`` as ``class_path`` + ``init_args``, what ``vocos.Vocos.from_hparams`` reads) + ``pytorch_model.bin`` (a
plain state dict), for ``MelSpectrogramFeatures`` + ``VocosBackbone`` + ``ISTFTHead``, both ways: the config
mapping for import (:func:`vocos_configs`) and for export (:func:`vocos_hparams`). Its mel front end becomes the
MelConfig (HTK filters, centred or "same" framing, floor 1e-7); the ``feature_extractor.*`` buffers are not kept.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn

from ..audio.mel import MelConfig, mel_filterbank
from ..generators.registry import build_generator_for_mel
from ..generators.vocos import VocosConfig, vocos_mel_config, vocos_mel_problems
from .state import PathLike, load_matching_form, read_yaml, strip_prefix, torch_load

__all__ = ["VOCOS_CONFIG", "VOCOS_WEIGHTS", "import_vocos", "vocos_configs", "vocos_hparams", "looks_like_vocos"]

log = logging.getLogger(__name__)


VOCOS_CONFIG = "config.yaml"


VOCOS_WEIGHTS = "pytorch_model.bin"


# The classes of the official package (vocos 0.1.0) a config.yaml may name, and what we map.
VOCOS_FEATURES = "vocos.feature_extractors.MelSpectrogramFeatures"


VOCOS_BACKBONE = "vocos.models.VocosBackbone"


VOCOS_HEAD = "vocos.heads.ISTFTHead"


_VOCOS_CLASSES = {"feature_extractor": VOCOS_FEATURES, "backbone": VOCOS_BACKBONE, "head": VOCOS_HEAD}

# Constructor arguments and defaults (None: required).
_VOCOS_ARGS = {
    "feature_extractor": dict(sample_rate=24000, n_fft=1024, hop_length=256, n_mels=100, padding="center"),
    "backbone": dict(input_channels=None, dim=None, intermediate_dim=None, num_layers=None,
                     layer_scale_init_value=None, adanorm_num_embeddings=None),
    "head": dict(dim=None, n_fft=None, hop_length=None, padding="same"),
}


_VOCOS_WHY = {
    "EncodecFeatures": "EnCodec token embeddings, not a mel",
    "VocosResNetBackbone": "a ResNet backbone",
    "IMDCTSymExpHead": "an inverse-MDCT head",
    "IMDCTCosHead": "an inverse-MDCT head",
}


def looks_like_vocos(sd: Mapping[str, Any]) -> bool:
    return "head.out.weight" in sd and any(str(k).startswith("backbone.") for k in sd)


def _vocos_yaml(path: Path, config: Union[PathLike, Mapping, None]) -> Tuple[dict, str]:
    if isinstance(config, Mapping):
        return dict(config), "config"
    cfg_path = Path(config) if config is not None else (path if path.is_dir() else path.parent) / VOCOS_CONFIG
    if not cfg_path.is_file():
        raise ValueError(f"no {VOCOS_CONFIG} next to {path}: Vocos weights need their config (pass config=...)")
    return read_yaml(cfg_path), str(cfg_path)


def _vocos_section(h: Mapping[str, Any], part: str, where: str) -> dict:
    """``init_args`` of ``h[part]`` with the constructor's defaults; ValueError naming an unsupported class."""
    sec = h.get(part)
    if not isinstance(sec, Mapping) or not isinstance(sec.get("class_path"), str):
        raise ValueError(f"{where}: expected {part}: {{class_path: ..., init_args: ...}} (the layout "
                         f"vocos.Vocos.from_hparams reads), got {sec!r}")
    cls = sec["class_path"]
    want = _VOCOS_CLASSES[part]
    if cls.rsplit(".", 1)[-1] != want.rsplit(".", 1)[-1]:
        why = _VOCOS_WHY.get(cls.rsplit(".", 1)[-1])
        raise ValueError(f"{where}: {part} {cls} is not supported{f' ({why})' if why else ''}; importable: "
                         f"{VOCOS_FEATURES} + {VOCOS_BACKBONE} + {VOCOS_HEAD}")
    args = dict(sec.get("init_args") or {})
    unknown = sorted(set(args) - set(_VOCOS_ARGS[part]))
    if unknown:
        raise ValueError(f"{where}: {cls} arguments {unknown} are not supported")
    out = {**_VOCOS_ARGS[part], **args}
    missing = sorted(k for k, v in out.items() if v is None and k not in ("layer_scale_init_value",
                                                                           "adanorm_num_embeddings"))
    if missing:
        raise ValueError(f"{where}: {cls} needs {missing}")
    return out


def vocos_configs(h: Mapping[str, Any], where: str = "config.yaml"):
    """``(VocosConfig, MelConfig)`` for an official Vocos ``config.yaml`` (as a dict); ValueError naming what
    cannot be mapped (EnCodec features, AdaLayerNorm conditioning, a ResNet backbone, an IMDCT head, sizes that
    do not fit together)."""
    fe = _vocos_section(h, "feature_extractor", where)
    bb = _vocos_section(h, "backbone", where)
    hd = _vocos_section(h, "head", where)
    if bb["adanorm_num_embeddings"] is not None:
        raise ValueError(f"{where}: backbone {VOCOS_BACKBONE} with adanorm_num_embeddings="
                         f"{bb['adanorm_num_embeddings']} (AdaLayerNorm, bandwidth conditioning for EnCodec "
                         f"features) is not supported")
    problems = []
    if int(bb["input_channels"]) != int(fe["n_mels"]):
        problems.append(f"backbone input_channels {bb['input_channels']} != feature_extractor n_mels {fe['n_mels']}")
    if int(hd["dim"]) != int(bb["dim"]):
        problems.append(f"head dim {hd['dim']} != backbone dim {bb['dim']}")
    if int(hd["hop_length"]) != int(fe["hop_length"]):
        problems.append(f"head hop_length {hd['hop_length']} != feature_extractor hop_length {fe['hop_length']}")
    if problems:
        raise ValueError(f"{where}: " + "; ".join(problems))
    try:
        mel = vocos_mel_config(int(fe["sample_rate"]), int(fe["n_fft"]), int(fe["hop_length"]), int(fe["n_mels"]),
                               fe["padding"])
        scale = bb["layer_scale_init_value"]
        cfg = VocosConfig(n_mels=int(bb["input_channels"]), dim=int(bb["dim"]),
                          intermediate_dim=int(bb["intermediate_dim"]), num_layers=int(bb["num_layers"]),
                          # the official backbone reads a falsy value (None, 0) as 1 / num_layers, as ours reads None
                          layer_scale_init_value=float(scale) if scale else None,
                          n_fft=int(hd["n_fft"]), hop_length=int(hd["hop_length"]), padding=hd["padding"])
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return cfg, mel


def import_vocos(path: PathLike, config: Union[PathLike, Mapping, None] = None, map_location="cpu",
                 state: Optional[Mapping] = None) -> Tuple[nn.Module, MelConfig, dict]:
    """Read an official Vocos folder (``config.yaml`` + ``pytorch_model.bin``) or its weights file.

    Returns ``(generator, mel_config, meta)`` like :func:`load_checkpoint`: a ``vocos`` generator holding the
    backbone and head weights (loaded strictly; the file's ``feature_extractor.*`` buffers are dropped) and the
    MelConfig of its ``MelSpectrogramFeatures``. A ``"center"`` head gives ``T * hop`` samples for ``T`` frames,
    of which the first ``(T - 1) * hop`` are what ``vocos.Vocos.decode`` returns.
    """
    path = Path(path)
    weights = path / VOCOS_WEIGHTS if path.is_dir() else path
    h, where = _vocos_yaml(path, config)
    cfg, mel = vocos_configs(h, where)
    state = state if state is not None else torch_load(weights, map_location)
    if not isinstance(state, Mapping) or not looks_like_vocos(strip_prefix(state)):
        got = sorted(state)[:8] if isinstance(state, Mapping) else type(state).__name__
        raise ValueError(f"{weights}: expected Vocos's state dict (backbone.*, head.*), got {got}")
    state = strip_prefix(state)
    fb = state.get("feature_extractor.mel_spec.mel_scale.fb")
    if torch.is_tensor(fb) and tuple(fb.shape) == (mel.n_fft // 2 + 1, mel.n_mels):
        diff = (fb.float().T - mel_filterbank(mel)).abs().max().item()
        if diff > 1e-5:
            log.warning("%s: the file's mel filters differ from those of %s by up to %.3g; the mel computed here "
                        "may not be the one the model was trained on", weights, where, diff)
    state = {k: v for k, v in state.items() if not k.startswith("feature_extractor.")}
    generator = build_generator_for_mel("vocos", cfg, mel, str(weights))
    load_matching_form(generator, state, str(weights))
    meta = {"source": "vocos", "path": str(path)}
    return generator.eval(), mel, meta


def vocos_hparams(generator: nn.Module, mel: MelConfig, who: str = "export_vocos") -> dict:
    """The official ``config.yaml`` (as a dict) of a ``vocos`` generator and its MelConfig; ValueError naming what
    the official ``Vocos`` cannot represent (our ``atan2`` head, the amplitude prior, a mel its
    ``MelSpectrogramFeatures`` does not compute)."""
    cfg = generator.config
    problems = []
    if cfg.head != "vocos":
        problems.append(f"head={cfg.head!r} (the official ISTFTHead predicts log-amplitude and a raw phase: "
                        f"head='vocos')")
    if cfg.prior is not None:
        problems.append(f"prior={cfg.prior!r} (the official backbone reads the mel, its head adds no prior)")
    if cfg.layer_scale_init_value is not None and cfg.layer_scale_init_value <= 0:
        problems.append(f"layer_scale_init_value={cfg.layer_scale_init_value} (no layer scale; the official "
                        f"backbone always has one)")
    problems += [f"mel {p}" for p in vocos_mel_problems(mel)]
    if problems:
        raise ValueError(f"{who}: the official Vocos cannot represent this model: {'; '.join(problems)}")
    backbone = dict(input_channels=cfg.n_mels, dim=cfg.dim, intermediate_dim=cfg.intermediate_dim,
                    num_layers=cfg.num_layers)
    if cfg.layer_scale_init_value is not None:
        backbone["layer_scale_init_value"] = float(cfg.layer_scale_init_value)
    return {
        "feature_extractor": {"class_path": VOCOS_FEATURES, "init_args": dict(
            sample_rate=mel.sample_rate, n_fft=mel.n_fft, hop_length=mel.hop_length, n_mels=mel.n_mels,
            padding="center" if mel.center else "same")},
        "backbone": {"class_path": VOCOS_BACKBONE, "init_args": backbone},
        "head": {"class_path": VOCOS_HEAD, "init_args": dict(dim=cfg.dim, n_fft=cfg.n_fft,
                                                              hop_length=cfg.hop_length, padding=cfg.padding)},
    }
