"""Checkpoints: our own one-file format, importers for official BigVGAN / HiFi-GAN files, and exporters.

Our format (one ``.pt`` file, loadable with ``torch.load(..., weights_only=True)``)::

    {"format": "vocoder", "version": 1,
     "generator": {"name": "bigvgan", "config": {...}},   # registry name + config dataclass as a dict
     "mel": MelConfig.to_dict(),
     "state_dict": {...},                                  # weight norm folded or not
     "meta": {...}}                                        # plain values only (str, numbers, lists, dicts)

Official formats read here:

* BigVGAN folder: ``config.json`` + ``bigvgan_generator.pt`` holding ``{"generator": state_dict}``.
* HiFi-GAN (jik876/hifi-gan) generator file such as ``g_02500000`` holding ``{"generator": state_dict}``,
  with its ``config.json`` next to it (or given).
* ParallelWaveGAN (kan-bayashi) training folder: ``config.yml`` + ``checkpoint-<N>steps.pkl`` (``{"model":
  {"generator": state_dict, ...}, ...}``) + the feature statistics ``stats.h5`` (or ``stats.npy``), for its
  ``HiFiGANGenerator`` and (single-band) ``MelGANGenerator``. Its generators take standardised log10 mels; the
  imported generator gets an ``input_norm`` layer holding the statistics, so it takes our log-mel like any other.
* Vocos (gemelo-ai/vocos) folder as published on the hub: ``config.yaml`` (``feature_extractor`` / ``backbone`` /
  ``head`` as ``class_path`` + ``init_args``, what ``vocos.Vocos.from_hparams`` reads) + ``pytorch_model.bin`` (a
  plain state dict), for ``MelSpectrogramFeatures`` + ``VocosBackbone`` + ``ISTFTHead``. Its mel front end becomes
  the MelConfig (HTK filters, centred or "same" framing, floor 1e-7); the ``feature_extractor.*`` buffers are not
  kept.

A state dict may spell a weight-normed weight three ways: ``weight_g``/``weight_v`` (``torch.nn.utils.weight_norm``,
what the official code trains with), ``parametrizations.weight.original0``/``original1`` (the newer torch API),
or a folded ``weight`` (the published BigVGAN-v2 files). :func:`load_generator_state` converts whichever the file
has into whatever the module holds, and reports a checkpoint that does not fit as a ``ValueError`` naming the
missing / unexpected keys and the config mismatches, never a bare PyTorch traceback.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn

from .audio.mel import MelConfig
from .utils import atomic_torch_save, atomic_write_bytes

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "save_checkpoint", "load_checkpoint", "load_generator_state",
    "fold_weight_norm", "import_bigvgan", "import_hifigan", "import_parallel_wavegan", "import_vocos",
    "export_bigvgan", "export_hifigan", "export_vocos", "checkpoint_kind", "vocos_configs", "vocos_hparams",
]

log = logging.getLogger(__name__)

FORMAT_NAME = "vocoder"
FORMAT_VERSION = 1
PathLike = Union[str, os.PathLike]

BIGVGAN_WEIGHTS = "bigvgan_generator.pt"
CONFIG_JSON = "config.json"
PWG_CONFIG = "config.yml"
VOCOS_CONFIG = "config.yaml"
VOCOS_WEIGHTS = "pytorch_model.bin"

# The three spellings of one weight; all map to the logical key ``<prefix>weight``.
_WN_G = ("weight_g", "parametrizations.weight.original0")
_WN_V = ("weight_v", "parametrizations.weight.original1")


# --------------------------------------------------------------------------------------------- small helpers
def _torch_load(path: PathLike, map_location="cpu") -> Any:
    """``torch.load`` with ``weights_only=True``; file problems become ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint file not found: {path}")
    try:
        return torch.load(str(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"{path} cannot be loaded with torch.load(weights_only=True) (it holds objects other than tensors and "
            f"plain values, or is not a torch file): {str(e).splitlines()[0]}"
        ) from e
    except (RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"cannot read checkpoint {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e


def _read_json(path: PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file not found: {path}")
    try:
        with open(path) as f:
            d = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(d, dict):
        raise ValueError(f"{path} should hold a JSON object, got {type(d).__name__}")
    return d


def _logical_key(key: str) -> Tuple[str, str]:
    """``"a.b.weight_v" -> ("a.b.weight", "v")``; kinds are ``"g"``, ``"v"``, ``"w"`` (plain weight) or ``"other"``."""
    for suffix in _WN_G:
        if key.endswith("." + suffix) or key == suffix:
            return key[: len(key) - len(suffix)] + "weight", "g"
    for suffix in _WN_V:
        if key.endswith("." + suffix) or key == suffix:
            return key[: len(key) - len(suffix)] + "weight", "v"
    if key.endswith(".weight") or key == "weight":
        return key, "w"
    return key, "other"


def _group(sd: Mapping[str, torch.Tensor]) -> Dict[str, Dict[str, Tuple[str, torch.Tensor]]]:
    """Logical key -> {kind: (real key, tensor)}."""
    out: Dict[str, Dict[str, Tuple[str, torch.Tensor]]] = {}
    for k, v in sd.items():
        lk, kind = _logical_key(k)
        out.setdefault(lk, {})[kind] = (k, v)
    return out


def _norm_dim(g_shape, v_shape) -> int:
    """The ``dim`` weight norm was applied with, read from the shapes of ``g`` and ``v``."""
    if len(g_shape) == 0:
        return -1
    for d, (a, b) in enumerate(zip(g_shape, v_shape)):
        if a != 1 and a == b:
            return d
    return 0


def _logical_shape(entry: Dict[str, Tuple[str, torch.Tensor]]) -> Tuple[int, ...]:
    for kind in ("w", "v", "other"):
        if kind in entry:
            return tuple(entry[kind][1].shape)
    return tuple(next(iter(entry.values()))[1].shape)


def _strip_prefix(sd: Mapping[str, Any]) -> Dict[str, Any]:
    # DataParallel / DDP / torch.compile wrappers prefix every key; official files do not.
    for prefix in ("module.", "_orig_mod."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return dict(sd)


def _few(keys, n: int = 5) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:n])
    return f"{shown}{', ...' if len(keys) > n else ''}"


def _count_index(keys, head: str) -> int:
    idx = {int(m.group(1)) for k in keys for m in [re.match(rf"{re.escape(head)}\.(\d+)\.", k)] if m}
    return max(idx) + 1 if idx else 0


def _mismatch_hints(ck: Dict[str, tuple], md: Dict[str, tuple]) -> list:
    """Config-level explanations of a state dict that does not fit (mels, channels, layer counts)."""
    hints = []
    a, b = ck.get("conv_pre.weight"), md.get("conv_pre.weight")
    if a is not None and b is not None and len(a) == len(b) == 3:
        if a[1] != b[1]:
            hints.append(f"checkpoint has {a[1]} mels, config says {b[1]}")
        if a[0] != b[0]:
            hints.append(f"checkpoint has {a[0]} initial channels, config says {b[0]}")
        if a[2] != b[2]:
            hints.append(f"checkpoint's conv_pre kernel is {a[2]}, config says {b[2]}")
    for head, what in (("ups", "upsampling layers"), ("resblocks", "residual blocks")):
        na, nb = _count_index(ck, head), _count_index(md, head)
        if na != nb:
            hints.append(f"checkpoint has {na} {what}, config says {nb}")
    return hints


# ------------------------------------------------------------------------------------------- loading states
def load_generator_state(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load ``state_dict`` into ``module``, whatever weight-norm spelling either side uses.

    Raises ``ValueError`` naming missing / unexpected keys (a few of each, with counts), shape mismatches and
    what they mean for the config ("checkpoint has 100 mels, config says 80").
    """
    if not isinstance(state_dict, Mapping) or not all(isinstance(k, str) for k in state_dict):
        raise ValueError(f"{source}: expected a state dict (str -> tensor), got {type(state_dict).__name__}")
    sd = _strip_prefix(state_dict)
    target = module.state_dict()
    ck_groups, md_groups = _group(sd), _group(target)

    missing = sorted(set(md_groups) - set(ck_groups))
    unexpected = sorted(set(ck_groups) - set(md_groups))
    ck_shapes = {k: _logical_shape(v) for k, v in ck_groups.items()}
    md_shapes = {k: _logical_shape(v) for k, v in md_groups.items()}
    shape_bad = [k for k in sorted(set(ck_groups) & set(md_groups)) if ck_shapes[k] != md_shapes[k]]
    incomplete = [k for k in sorted(set(ck_groups) & set(md_groups))
                  if ("g" in ck_groups[k]) != ("v" in ck_groups[k])]

    if missing or unexpected or shape_bad or incomplete:
        parts = [f"{source} does not fit {type(module).__name__}:"]
        hints = _mismatch_hints(ck_shapes, md_shapes)
        if hints:
            parts.append("; ".join(hints) + ".")
        if missing:
            parts.append(f"{len(missing)} missing keys ({_few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_few(unexpected)})")
        if shape_bad:
            shown = ", ".join(f"{k}: checkpoint {ck_shapes[k]} vs model {md_shapes[k]}" for k in shape_bad[:5])
            parts.append(f"{len(shape_bad)} shape mismatches ({shown}{', ...' if len(shape_bad) > 5 else ''})")
        if incomplete:
            parts.append(f"weight norm halves missing for {_few(incomplete)}")
        raise ValueError(" ".join(parts))

    new_sd: Dict[str, torch.Tensor] = {}
    for lk, want in md_groups.items():
        have = ck_groups[lk]
        if "other" in want:
            new_sd[want["other"][0]] = have["other"][1]
            continue
        if "w" in want:  # module holds a plain weight
            if "w" in have:
                w = have["w"][1]
            else:
                g, v = have["g"][1].float(), have["v"][1].float()
                w = torch._weight_norm(v, g, _norm_dim(g.shape, v.shape))
            new_sd[want["w"][0]] = w
        else:  # module holds g and v
            g_key, g_ref = want["g"]
            v_key, _ = want["v"]
            if "g" in have:
                g, v = have["g"][1], have["v"][1]
                if tuple(g.shape) != tuple(g_ref.shape):
                    # g stored with another dim convention: go through the folded weight.
                    w = torch._weight_norm(v.float(), g.float(), _norm_dim(g.shape, v.shape))
                    g, v = None, w
            else:
                g, v = None, have["w"][1]
            if g is None:
                dim = _norm_dim(g_ref.shape, v.shape)
                g = torch.norm_except_dim(v.float(), 2, dim) if dim >= 0 else v.float().norm()
                g = g.reshape(g_ref.shape)
            new_sd[g_key], new_sd[v_key] = g, v
    # Every key is now spelled as the module spells it; strict load so nothing is silently skipped.
    module.load_state_dict(new_sd, strict=True)


def _load_matching_form(generator: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load into a freshly built generator; a file without weight norm folds it first, so the weights are exact.

    (The official BigVGAN loader does the same for the published v2 files, which hold folded weights.)
    """
    if isinstance(state_dict, Mapping) and not any(_logical_key(k)[1] in ("g", "v") for k in state_dict):
        fold_weight_norm(generator)
    load_generator_state(generator, state_dict, source=source)


def fold_weight_norm(module: nn.Module) -> nn.Module:
    """Fold weight norm (ours, ``torch.nn.utils.weight_norm`` or parametrizations) into plain weights, in place.

    Idempotent: layers without weight norm are left alone. Returns ``module``.
    """
    from torch.nn.utils import parametrize
    from torch.nn.utils.weight_norm import WeightNorm

    import importlib

    # By module path: ``vocoder.nn`` re-exports a *function* named weight_norm that hides the submodule.
    ours = importlib.import_module(f"{__package__}.nn.weight_norm")
    for m in module.modules():
        if ours.has_weight_norm(m):
            ours.remove_weight_norm(m)
        elif any(isinstance(h, WeightNorm) for h in m._forward_pre_hooks.values()):
            torch.nn.utils.remove_weight_norm(m)
        elif parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return module


# ------------------------------------------------------------------------------------------------ our format
def _plain(value: Any, where: str = "meta") -> Any:
    """Check ``value`` holds only what ``torch.load(weights_only=True)`` reads back: plain values and tensors."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, where) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    raise ValueError(f"{where} must hold plain values (str, numbers, lists, dicts, tensors), got {type(value).__name__}")


def _generator_name(generator: nn.Module) -> str:
    name = getattr(type(generator), "registry_name", None)
    if not name:
        raise ValueError(f"{type(generator).__name__} is not a registered generator (no registry_name)")
    return name


def save_checkpoint(path: PathLike, generator: nn.Module, mel_config: MelConfig, meta: Optional[dict] = None) -> None:
    """Write ``generator`` (name, config, weights) with its ``mel_config`` and ``meta`` as one ``.pt`` file, atomically."""
    from .inference import Vocoder

    if isinstance(generator, Vocoder):
        generator, mel_config = generator.generator, mel_config or generator.mel_config
    if not isinstance(mel_config, MelConfig):
        raise ValueError(f"expected a MelConfig, got {type(mel_config).__name__}")
    config = getattr(generator, "config", None)
    if not dataclasses.is_dataclass(config):
        raise ValueError(f"generator {type(generator).__name__} has no dataclass .config")
    if getattr(generator, "n_mels", mel_config.n_mels) != mel_config.n_mels:
        raise ValueError(f"generator takes {generator.n_mels} mels, mel config says {mel_config.n_mels}")
    if getattr(generator, "hop_length", mel_config.hop_length) != mel_config.hop_length:
        raise ValueError(f"generator hop is {generator.hop_length}, mel config hop_length is {mel_config.hop_length}")
    state = {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()}
    ckpt = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "generator": {"name": _generator_name(generator), "config": _plain(dataclasses.asdict(config), "config")},
        "mel": mel_config.to_dict(),
        "state_dict": state,
        "meta": _plain(dict(meta or {})),
    }
    atomic_torch_save(ckpt, path)


def _from_ours(ckpt: Mapping[str, Any], path: PathLike) -> Tuple[nn.Module, MelConfig, dict]:
    from .generators.registry import build_generator

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
    generator = build_generator(gen["name"], dict(gen.get("config") or {}))
    _check_mel_fits(generator, mel_config, str(path))
    _load_matching_form(generator, ckpt["state_dict"], str(path))
    return generator, mel_config, dict(ckpt.get("meta") or {})


def _check_mel_fits(generator: nn.Module, mel: MelConfig, source: str) -> None:
    if getattr(generator, "n_mels", mel.n_mels) != mel.n_mels:
        raise ValueError(f"{source}: generator takes {generator.n_mels} mels, mel config says {mel.n_mels}")
    if getattr(generator, "hop_length", mel.hop_length) != mel.hop_length:
        raise ValueError(f"{source}: generator upsamples by {generator.hop_length}, mel hop_length is {mel.hop_length}")


def checkpoint_kind(path: PathLike) -> str:
    """What ``path`` holds, without loading weights: ``"bigvgan_folder"``, ``"hifigan_folder"``,
    ``"pwg_folder"``, ``"pwg_file"``, ``"vocos_folder"``, ``"vocos_file"`` or ``"file"``."""
    path = Path(path)
    if path.is_dir():
        if (path / BIGVGAN_WEIGHTS).is_file():
            return "bigvgan_folder"
        if (path / VOCOS_WEIGHTS).is_file() and (path / VOCOS_CONFIG).is_file():
            return "vocos_folder"
        if _latest_hifigan_file(path) is not None:
            return "hifigan_folder"
        if _latest_pwg_file(path) is not None:
            return "pwg_folder"
        raise ValueError(
            f"folder {path} holds no generator: expected {BIGVGAN_WEIGHTS} (+ {CONFIG_JSON}) for BigVGAN, a "
            f"g_XXXXXXXX file (+ {CONFIG_JSON}) for HiFi-GAN, checkpoint-<N>steps.pkl (+ {PWG_CONFIG}) for "
            f"ParallelWaveGAN or {VOCOS_WEIGHTS} (+ {VOCOS_CONFIG}) for Vocos; found "
            f"{sorted(p.name for p in path.iterdir())[:10]}"
        )
    if path.is_file():
        if path.suffix == ".pkl" and (path.parent / PWG_CONFIG).is_file():
            return "pwg_file"
        if path.suffix == ".bin" and (path.parent / VOCOS_CONFIG).is_file():
            return "vocos_file"
        return "file"
    raise ValueError(f"model path not found: {path}")


def _latest_pwg_file(folder: Path) -> Optional[Path]:
    """ParallelWaveGAN's newest ``checkpoint-<N>steps.pkl`` in ``folder`` (by N), if its config.yml is there."""
    if not (folder / PWG_CONFIG).is_file():
        return None
    found = []
    for p in folder.glob("checkpoint-*steps.pkl"):
        m = re.fullmatch(r"checkpoint-(\d+)steps\.pkl", p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


def _latest_hifigan_file(folder: Path) -> Optional[Path]:
    files = sorted(p for p in folder.glob("g_*") if p.is_file() and re.fullmatch(r"g_\d+(\.pt|\.pth)?", p.name))
    return files[-1] if files else None


def load_checkpoint(path: PathLike, map_location="cpu", config: Union[PathLike, Mapping, None] = None
                    ) -> Tuple[nn.Module, MelConfig, dict]:
    """Load a generator, its mel settings and meta from any supported checkpoint.

    Args:
        path: our ``.pt`` file; an official BigVGAN folder; a HiFi-GAN ``g_*`` file or folder; or a
            ``{"generator": state_dict}`` file from either (``config.json`` next to it, or ``config``); a
            ParallelWaveGAN run; a Vocos folder (``config.yaml`` + ``pytorch_model.bin``) or its weights file.
        map_location: passed to ``torch.load``.
        config: official ``config.json`` (``config.yml`` for ParallelWaveGAN, ``config.yaml`` for Vocos) path or
            dict, for official files whose config is elsewhere.
    Returns:
        ``(generator, mel_config, meta)``; the generator is in eval mode, weight norm as the class builds it.
    """
    kind = checkpoint_kind(path)
    if kind in ("pwg_folder", "pwg_file"):
        return import_parallel_wavegan(path, config=config, map_location=map_location)
    if kind == "bigvgan_folder":
        return import_bigvgan(path, config=config, map_location=map_location)
    if kind == "hifigan_folder":
        return import_hifigan(path, config=config, map_location=map_location)
    if kind in ("vocos_folder", "vocos_file"):
        return import_vocos(path, config=config, map_location=map_location)
    ckpt = _torch_load(path, map_location)
    if isinstance(ckpt, Mapping) and ckpt.get("format") == FORMAT_NAME:
        generator, mel, meta = _from_ours(ckpt, path)
        return generator.eval(), mel, meta
    if isinstance(ckpt, Mapping) and _looks_like_vocos(ckpt):
        return import_vocos(path, config=config, map_location=map_location, _state=ckpt)
    if isinstance(ckpt, Mapping) and "generator" in ckpt and isinstance(ckpt["generator"], Mapping):
        h = _official_config(path, config)
        if _looks_like_bigvgan(ckpt["generator"], h):
            return import_bigvgan(path, config=h, map_location=map_location, _ckpt=ckpt)
        return import_hifigan(path, config=h, map_location=map_location, _ckpt=ckpt)
    if isinstance(ckpt, Mapping) and {"mpd", "msd"} & set(ckpt):
        raise ValueError(f"{path} is a discriminator / optimizer file (keys {sorted(ckpt)[:6]}); pass the generator "
                         f"file (g_XXXXXXXX or {BIGVGAN_WEIGHTS})")
    keys = sorted(ckpt)[:8] if isinstance(ckpt, Mapping) else type(ckpt).__name__
    raise ValueError(f"{path} is not a known checkpoint: expected our format (format='vocoder') or an official "
                     f"{{'generator': state_dict}} file; got {keys}")


# ------------------------------------------------------------------------------------------ official formats
# Official config.json key -> our config field, when the names differ.
_ALIASES = {"num_mels": ("n_mels", "num_mels", "in_channels")}


def _official_config(path: PathLike, config: Union[PathLike, Mapping, None]) -> dict:
    if isinstance(config, Mapping):
        return dict(config)
    if config is not None:
        return _read_json(config)
    path = Path(path)
    candidate = (path if path.is_dir() else path.parent) / CONFIG_JSON
    if not candidate.is_file():
        raise ValueError(f"no {CONFIG_JSON} next to {path}: official checkpoints need their config (pass config=...)")
    return _read_json(candidate)


def _looks_like_bigvgan(sd: Mapping[str, Any], h: Mapping[str, Any]) -> bool:
    if "activation" in h:
        return True
    return any(k.startswith(("activation_post.", "ups.0.0.")) for k in sd)


def _our_config(name: str, h: Mapping[str, Any]):
    """Our generator config from an official ``config.json`` (training-only keys are ignored)."""
    from .generators.registry import config_from_dict, get_spec

    spec = get_spec(name)
    if hasattr(spec.config_cls, "from_official"):  # the generator knows its official config best
        return spec.config_cls.from_official(h)
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    d = {}
    for key, value in h.items():
        targets = _ALIASES.get(key, (key,))
        for t in targets:
            if t in fields:
                d[t] = value
                break
    if "resblock" in d:
        d["resblock"] = str(d["resblock"])
    try:
        return config_from_dict(name, d)
    except TypeError as e:
        raise ValueError(f"config does not describe a {name} generator: {e}") from e


def _build_official(name: str, h: Mapping, weights: Path, ckpt: Optional[Mapping], map_location,
                    where: str) -> Tuple[nn.Module, MelConfig]:
    """Generator ``name`` (in eval mode) and its MelConfig from an official config ``h`` and the
    ``{"generator": state_dict}`` file ``weights`` (read unless ``ckpt`` is given); ``where`` names the
    source in the mel-mismatch error."""
    from .generators.registry import build_generator

    if ckpt is None:
        ckpt = _torch_load(weights, map_location)
    if not isinstance(ckpt, Mapping) or "generator" not in ckpt:
        raise ValueError(f"{weights}: expected {{'generator': state_dict}}, got "
                         f"{sorted(ckpt)[:8] if isinstance(ckpt, Mapping) else type(ckpt).__name__}")
    mel = MelConfig.from_dict(h)
    generator = build_generator(name, _our_config(name, h))
    _check_mel_fits(generator, mel, where)
    _load_matching_form(generator, ckpt["generator"], str(weights))
    return generator.eval(), mel


def import_bigvgan(path: PathLike, config: Union[PathLike, Mapping, None] = None, map_location="cpu",
                   _ckpt: Optional[Mapping] = None) -> Tuple[nn.Module, MelConfig, dict]:
    """Read an official BigVGAN folder (``config.json`` + ``bigvgan_generator.pt``) or generator file."""
    path = Path(path)
    weights = path / BIGVGAN_WEIGHTS if path.is_dir() else path
    h = _official_config(path, config)
    generator, mel = _build_official("bigvgan", h, weights, _ckpt, map_location, where=str(path))
    meta = {"source": "bigvgan", "path": str(path)}
    return generator, mel, meta


def import_hifigan(path: PathLike, config: Union[PathLike, Mapping, None] = None, map_location="cpu",
                   _ckpt: Optional[Mapping] = None) -> Tuple[nn.Module, MelConfig, dict]:
    """Read an original HiFi-GAN generator file (``{"generator": state_dict}``, e.g. ``g_02500000``) + config.json.

    ``path`` may be the folder of a training run: its latest ``g_*`` file is used.
    """
    path = Path(path)
    weights = path
    if path.is_dir():
        weights = _latest_hifigan_file(path)
        if weights is None:
            raise ValueError(f"no g_XXXXXXXX generator file in {path}")
    h = _official_config(weights, config)
    generator, mel = _build_official("hifigan", h, weights, _ckpt, map_location, where=str(weights))
    meta = {"source": "hifigan", "path": str(weights)}
    return generator, mel, meta


# ------------------------------------------------------------------------------------------- ParallelWaveGAN
# Constructor defaults of ParallelWaveGAN's generators (parallel_wavegan/models/{hifigan,melgan}.py); a config.yml
# lists only what it changes.
_PWG_DEFAULTS = {
    "HiFiGANGenerator": dict(
        in_channels=80, out_channels=1, channels=512, kernel_size=7, upsample_scales=(8, 8, 2, 2),
        upsample_kernel_sizes=(16, 16, 4, 4), resblock_kernel_sizes=(3, 7, 11),
        resblock_dilations=[(1, 3, 5), (1, 3, 5), (1, 3, 5)], use_additional_convs=True, bias=True,
        nonlinear_activation="LeakyReLU", nonlinear_activation_params={"negative_slope": 0.1},
        use_causal_conv=False, use_weight_norm=True, global_channels=-1),  # global_channels: newer releases
    "MelGANGenerator": dict(
        in_channels=80, out_channels=1, kernel_size=7, channels=512, bias=True, upsample_scales=[8, 8, 2, 2],
        stack_kernel_size=3, stacks=3, nonlinear_activation="LeakyReLU",
        nonlinear_activation_params={"negative_slope": 0.2}, pad="ReflectionPad1d", pad_params={},
        use_final_nonlinear_activation=True, use_weight_norm=True, use_causal_conv=False),
}
# Settings our generators have fixed (what the official HiFi-GAN / MelGAN use): anything else cannot be imported.
_PWG_FIXED = {
    "HiFiGANGenerator": dict(out_channels=1, kernel_size=7, bias=True, nonlinear_activation="LeakyReLU",
                             nonlinear_activation_params={"negative_slope": 0.1}, use_causal_conv=False,
                             global_channels=-1),
    "MelGANGenerator": dict(out_channels=1, kernel_size=7, bias=True, stack_kernel_size=3,
                            nonlinear_activation="LeakyReLU", nonlinear_activation_params={"negative_slope": 0.2},
                            pad="ReflectionPad1d", pad_params={}, use_final_nonlinear_activation=True,
                            use_causal_conv=False),
}


def _pwg_generator_config(h: Mapping[str, Any], where: str):
    """(registry name, our config) for a ParallelWaveGAN ``config.yml``; ValueError naming what cannot be mapped."""
    from .generators.hifigan import HiFiGANConfig
    from .generators.melgan import MelGANConfig

    kind = h.get("generator_type", "ParallelWaveGANGenerator")
    if kind not in _PWG_DEFAULTS:
        raise ValueError(f"{where}: generator_type {kind} is not supported (importable: {sorted(_PWG_DEFAULTS)})")
    params = {**_PWG_DEFAULTS[kind], **dict(h.get("generator_params") or {})}
    unknown = sorted(set(params) - set(_PWG_DEFAULTS[kind]))
    if unknown:
        raise ValueError(f"{where}: {kind} parameters {unknown} are not supported")
    off = {k: params[k] for k, v in _PWG_FIXED[kind].items() if params[k] != v}
    if off:
        extra = " (out_channels > 1 is multi-band MelGAN, which needs PQMF synthesis)" if "out_channels" in off else ""
        raise ValueError(f"{where}: {kind} with {off} cannot be imported; supported: {_PWG_FIXED[kind]}{extra}")
    n_mels = int(params["in_channels"])
    if kind == "HiFiGANGenerator":
        rates, kernels = tuple(params["upsample_scales"]), tuple(params["upsample_kernel_sizes"])
        # Its transposed convs pad u//2 + u%2 (output_padding u%2); ours pad (k-u)//2: the same layer when k = 2u
        # with u even (and ParallelWaveGAN needs k = 2u for its output length anyway).
        bad = [(u, k) for u, k in zip(rates, kernels) if u % 2 or k != 2 * u]
        if bad:
            raise ValueError(f"{where}: upsampling (scale, kernel) {bad} differ from the kernel = 2 x scale (even "
                             f"scale) layers our HiFi-GAN builds")
        dil = params["resblock_dilations"]
        cfg = HiFiGANConfig(n_mels=n_mels, upsample_rates=rates, upsample_kernel_sizes=kernels,
                            upsample_initial_channel=int(params["channels"]),
                            resblock="1" if params["use_additional_convs"] else "2",
                            resblock_kernel_sizes=tuple(params["resblock_kernel_sizes"]),
                            resblock_dilation_sizes=tuple(tuple(d) for d in dil), input_norm="log10_standardize")
        return "hifigan", cfg
    ratios = tuple(int(r) for r in params["upsample_scales"])
    channels = int(params["channels"])
    if channels % 2 ** len(ratios):
        raise ValueError(f"{where}: MelGAN channels {channels} must be divisible by 2**{len(ratios)}")
    cfg = MelGANConfig(n_mels=n_mels, ngf=channels // 2 ** len(ratios), ratios=ratios,
                       n_residual_layers=int(params["stacks"]), input_norm="log10_standardize")
    return "melgan", cfg


def _pwg_mel_config(h: Mapping[str, Any], where: str) -> MelConfig:
    if h.get("window", "hann") != "hann":
        raise ValueError(f"{where}: window {h.get('window')!r} is not supported (our front end uses hann)")
    if float(h.get("global_gain_scale", 1.0)) != 1.0:
        raise ValueError(f"{where}: global_gain_scale {h['global_gain_scale']} is not supported (the model was "
                         f"trained on rescaled audio)")
    sr = int(h["sampling_rate"])
    n_fft = int(h["fft_size"])
    return MelConfig(sample_rate=sr, n_fft=n_fft, hop_length=int(h["hop_size"]),
                     win_length=int(h.get("win_length") or n_fft), n_mels=int(h["num_mels"]),
                     fmin=float(h.get("fmin") or 0.0), fmax=float(h.get("fmax") or sr / 2))


def _pwg_stats(folder: Path, stats: Optional[PathLike], n_mels: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(mean, scale) from ParallelWaveGAN's ``stats.h5`` (datasets ``mean``, ``scale``) or ``stats.npy`` ([2, n])."""
    import numpy as np

    if stats is None:
        found = [folder / n for n in ("stats.h5", "stats.npy") if (folder / n).is_file()]
        if not found:
            raise ValueError(f"no stats.h5 or stats.npy in {folder}: ParallelWaveGAN models need the feature "
                             f"statistics they were trained with (pass stats=...)")
        stats = found[0]
    stats = Path(stats)
    try:
        if stats.suffix == ".npy":
            arr = np.load(stats)
            mean, scale = arr[0], arr[1]
        else:
            try:
                import h5py
            except ImportError:
                raise ValueError(f"reading {stats} needs h5py (pip install h5py)") from None
            with h5py.File(stats, "r") as f:
                mean, scale = f["mean"][()], f["scale"][()]
    except ValueError:
        raise
    except Exception as e:  # missing datasets, a corrupt file
        raise ValueError(f"cannot read feature statistics from {stats}: {type(e).__name__}: {e}") from None
    mean = torch.as_tensor(np.asarray(mean, dtype=np.float32).reshape(-1))
    scale = torch.as_tensor(np.asarray(scale, dtype=np.float32).reshape(-1))
    if mean.numel() != n_mels or scale.numel() != n_mels:
        raise ValueError(f"{stats}: statistics for {mean.numel()} / {scale.numel()} bands, the model takes {n_mels}")
    if not bool(torch.isfinite(mean).all() and torch.isfinite(scale).all() and (scale > 0).all()):
        raise ValueError(f"{stats}: mean/scale must be finite with scale > 0")
    return mean, scale


def _rename_by_position(theirs: Mapping[str, torch.Tensor], ours: Mapping[str, torch.Tensor],
                        where: str) -> Dict[str, torch.Tensor]:
    """Give ``theirs`` our key names, layer by layer in order (the architectures are the same; the names are not):
    weight-norm halves, plain weights and biases keep their kind. ValueError if the layers do not line up."""
    def layers(sd):  # module prefix -> {key: tensor}, in state-dict order
        out: Dict[str, Dict[str, torch.Tensor]] = {}
        for k, v in sd.items():
            lk = _logical_key(k)[0]
            out.setdefault(lk.rsplit(".", 1)[0] if "." in lk else "", {})[k] = v
        return out

    t_layers, o_layers = layers(theirs), layers(ours)
    if len(t_layers) != len(o_layers):
        raise ValueError(f"{where}: the checkpoint has {len(t_layers)} layers, the configured generator "
                         f"{len(o_layers)}: config.yml does not describe this checkpoint")
    mapped = {}
    for (t_mod, t_entries), o_mod in zip(t_layers.items(), o_layers):
        for key, value in t_entries.items():
            suffix = key[len(t_mod) + 1:] if t_mod else key
            mapped[f"{o_mod}.{suffix}" if o_mod else suffix] = value
    return mapped


def import_parallel_wavegan(path: PathLike, config: Union[PathLike, Mapping, None] = None, map_location="cpu",
                            stats: Optional[PathLike] = None) -> Tuple[nn.Module, MelConfig, dict]:
    """Read a ParallelWaveGAN (kan-bayashi) ``HiFiGANGenerator`` / ``MelGANGenerator`` checkpoint.

    Args:
        path: its training folder (``config.yml``, ``checkpoint-<N>steps.pkl``: the newest is used, ``stats.h5``)
            or one ``.pkl`` file with ``config.yml`` next to it.
        config: ``config.yml`` path or dict, if not next to the checkpoint.
        stats: ``stats.h5`` / ``stats.npy``, if not next to the checkpoint.
    Returns:
        ``(generator, mel_config, meta)`` like :func:`load_checkpoint`. The generator takes our log-mel: its
        ``input_norm`` computes ParallelWaveGAN's features from it (``log10``, minus ``mean``, over ``scale``).
        ParallelWaveGAN frames its STFT centred (frame ``i`` at sample ``i * hop``), ours half a hop later, so
        copy-synthesis through :meth:`vocoder.Vocoder.mel` shifts by half a hop; mels from a TTS model are used as
        they are.
    """
    import yaml

    path = Path(path)
    weights = _latest_pwg_file(path) if path.is_dir() else path
    if weights is None:
        raise ValueError(f"no checkpoint-<N>steps.pkl (with {PWG_CONFIG}) in {path}")
    if isinstance(config, Mapping):
        h = dict(config)
    else:
        cfg_path = Path(config) if config is not None else weights.parent / PWG_CONFIG
        try:
            h = yaml.safe_load(cfg_path.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"cannot read {cfg_path}: {e}") from None
        if not isinstance(h, dict):
            raise ValueError(f"{cfg_path} should hold a mapping, got {type(h).__name__}")
    where = str(weights)
    name, our_cfg = _pwg_generator_config(h, where)
    mel = _pwg_mel_config(h, where)
    ckpt = _torch_load(weights, map_location)
    model = ckpt.get("model") if isinstance(ckpt, Mapping) else None
    if not isinstance(model, Mapping) or not isinstance(model.get("generator"), Mapping):
        got = sorted(ckpt)[:8] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise ValueError(f"{weights}: expected ParallelWaveGAN's {{'model': {{'generator': state_dict}}}}, got {got}")
    from .generators.registry import build_generator

    generator = build_generator(name, our_cfg)
    _check_mel_fits(generator, mel, where)
    ours = {k: v for k, v in generator.state_dict().items() if not k.startswith("input_norm.")}
    state = _rename_by_position(_strip_prefix(model["generator"]), ours, where)
    mean, scale = _pwg_stats(weights.parent, stats, our_cfg.n_mels)
    state.update({"input_norm.mean": mean, "input_norm.scale": scale})
    _load_matching_form(generator, state, where)
    meta = {"source": "parallel_wavegan", "path": str(weights), "generator_type": h.get("generator_type"),
            "steps": int(ckpt.get("steps", 0) or 0)}
    return generator.eval(), mel, meta


# ----------------------------------------------------------------------------------------------------- Vocos
# The classes of the official package (vocos 0.1.0) a config.yaml may name, and what we map.
_VOCOS_FEATURES = "vocos.feature_extractors.MelSpectrogramFeatures"
_VOCOS_BACKBONE = "vocos.models.VocosBackbone"
_VOCOS_HEAD = "vocos.heads.ISTFTHead"
# Constructor arguments and defaults (None: required).
_VOCOS_ARGS = {
    "feature_extractor": dict(sample_rate=24000, n_fft=1024, hop_length=256, n_mels=100, padding="center"),
    "backbone": dict(input_channels=None, dim=None, intermediate_dim=None, num_layers=None,
                     layer_scale_init_value=None, adanorm_num_embeddings=None),
    "head": dict(dim=None, n_fft=None, hop_length=None, padding="same"),
}
_VOCOS_CLASSES = {"feature_extractor": _VOCOS_FEATURES, "backbone": _VOCOS_BACKBONE, "head": _VOCOS_HEAD}
_VOCOS_WHY = {
    "EncodecFeatures": "EnCodec token embeddings, not a mel",
    "VocosResNetBackbone": "a ResNet backbone",
    "IMDCTSymExpHead": "an inverse-MDCT head",
    "IMDCTCosHead": "an inverse-MDCT head",
}


def _looks_like_vocos(sd: Mapping[str, Any]) -> bool:
    return "head.out.weight" in sd and any(str(k).startswith("backbone.") for k in sd)


def _vocos_yaml(path: Path, config: Union[PathLike, Mapping, None]) -> Tuple[dict, str]:
    import yaml

    if isinstance(config, Mapping):
        return dict(config), "config"
    cfg_path = Path(config) if config is not None else (path if path.is_dir() else path.parent) / VOCOS_CONFIG
    if not cfg_path.is_file():
        raise ValueError(f"no {VOCOS_CONFIG} next to {path}: Vocos weights need their config (pass config=...)")
    try:
        h = yaml.safe_load(cfg_path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"cannot read {cfg_path}: {e}") from None
    if not isinstance(h, dict):
        raise ValueError(f"{cfg_path} should hold a mapping, got {type(h).__name__}")
    return h, str(cfg_path)


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
                         f"{_VOCOS_FEATURES} + {_VOCOS_BACKBONE} + {_VOCOS_HEAD}")
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
    from .generators.vocos import VocosConfig, vocos_mel_config

    fe = _vocos_section(h, "feature_extractor", where)
    bb = _vocos_section(h, "backbone", where)
    hd = _vocos_section(h, "head", where)
    if bb["adanorm_num_embeddings"] is not None:
        raise ValueError(f"{where}: backbone {_VOCOS_BACKBONE} with adanorm_num_embeddings="
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
                 _state: Optional[Mapping] = None) -> Tuple[nn.Module, MelConfig, dict]:
    """Read an official Vocos folder (``config.yaml`` + ``pytorch_model.bin``) or its weights file.

    Returns ``(generator, mel_config, meta)`` like :func:`load_checkpoint`: a ``vocos`` generator holding the
    backbone and head weights (loaded strictly; the file's ``feature_extractor.*`` buffers are dropped) and the
    MelConfig of its ``MelSpectrogramFeatures``. A ``"center"`` head gives ``T * hop`` samples for ``T`` frames,
    of which the first ``(T - 1) * hop`` are what ``vocos.Vocos.decode`` returns.
    """
    from .audio.mel import mel_filterbank
    from .generators.registry import build_generator

    path = Path(path)
    weights = path / VOCOS_WEIGHTS if path.is_dir() else path
    h, where = _vocos_yaml(path, config)
    cfg, mel = vocos_configs(h, where)
    state = _state if _state is not None else _torch_load(weights, map_location)
    if not isinstance(state, Mapping) or not _looks_like_vocos(_strip_prefix(state)):
        got = sorted(state)[:8] if isinstance(state, Mapping) else type(state).__name__
        raise ValueError(f"{weights}: expected Vocos's state dict (backbone.*, head.*), got {got}")
    state = _strip_prefix(state)
    fb = state.get("feature_extractor.mel_spec.mel_scale.fb")
    if torch.is_tensor(fb) and tuple(fb.shape) == (mel.n_fft // 2 + 1, mel.n_mels):
        diff = (fb.float().T - mel_filterbank(mel)).abs().max().item()
        if diff > 1e-5:
            log.warning("%s: the file's mel filters differ from those of %s by up to %.3g; the mel computed here "
                        "may not be the one the model was trained on", weights, where, diff)
    state = {k: v for k, v in state.items() if not k.startswith("feature_extractor.")}
    generator = build_generator("vocos", cfg)
    _check_mel_fits(generator, mel, str(weights))
    _load_matching_form(generator, state, str(weights))
    meta = {"source": "vocos", "path": str(path)}
    return generator.eval(), mel, meta


# ------------------------------------------------------------------------------------------------ exporters
def _unwrap(obj) -> Tuple[nn.Module, Optional[MelConfig]]:
    gen = getattr(obj, "generator", None)
    if isinstance(gen, nn.Module):
        return gen, getattr(obj, "mel_config", None)
    return obj, None


def _official_json(generator: nn.Module, mel: MelConfig, extra: Mapping[str, Any]) -> dict:
    cfg = dataclasses.asdict(generator.config)
    out = {}
    for key, value in cfg.items():
        if key in ("n_mels", "in_channels"):
            key = "num_mels"
        out[key] = list(map(lambda x: list(x) if isinstance(x, tuple) else x, value)) if isinstance(value, tuple) else value
    out.update({"num_mels": mel.n_mels, "sampling_rate": mel.sample_rate, "n_fft": mel.n_fft, "hop_size": mel.hop_length,
                "win_size": mel.win_length, "fmin": mel.fmin, "fmax": mel.fmax})
    out.update(extra)
    return out


def _folded_state(generator: nn.Module) -> Dict[str, torch.Tensor]:
    import copy

    g = fold_weight_norm(copy.deepcopy(generator).cpu().float())
    return {k: v.detach().clone() for k, v in g.state_dict().items()}


def _export_source(obj, mel_config: Optional[MelConfig], name: str, label: str,
                   who: str) -> Tuple[nn.Module, MelConfig]:
    """The generator (which must be registered as ``name``) and MelConfig an exporter ``who`` writes:
    ``mel_config`` if given, else the one ``obj`` (a Vocoder) carries."""
    generator, mel = _unwrap(obj)
    mel = mel_config or mel
    if _generator_name(generator) != name:
        raise ValueError(f"{who} needs a {label} generator, got {_generator_name(generator)}")
    if mel is None:
        raise ValueError(f"{who} needs the MelConfig (pass mel_config= or a Vocoder)")
    if getattr(getattr(generator, "config", None), "input_norm", None) is not None:
        raise ValueError(f"{who}: this generator normalises its input ({generator.config.input_norm}, imported from "
                         f"ParallelWaveGAN), which the official format cannot express; save it in our format")
    return generator, mel


def _hifigan_mel_problems(mel: MelConfig) -> list:
    """Convention fields where ``mel`` is not the mel that HiFi-GAN's / BigVGAN's code computes."""
    default = MelConfig()
    return [f"{k}={getattr(mel, k)!r} (theirs: {getattr(default, k)!r})"
            for k in ("center", "mel_scale", "mel_norm", "magnitude_eps", "log_floor")
            if getattr(mel, k) != getattr(default, k)]


def _check_hifigan_mel(mel: MelConfig, who: str) -> None:
    problems = _hifigan_mel_problems(mel)
    if problems:
        raise ValueError(f"{who}: the official code computes HiFi-GAN's mel, this model takes another: "
                         f"{', '.join(problems)}; save it in our format")


def export_bigvgan(obj, folder: PathLike, mel_config: Optional[MelConfig] = None) -> Path:
    """Write ``config.json`` + ``bigvgan_generator.pt`` (folded weights, as the published v2 files) to ``folder``.

    ``obj`` is a :class:`~vocoder.inference.Vocoder` or a BigVGAN generator (then ``mel_config`` is needed).
    The result loads with the official ``BigVGAN.from_pretrained(folder)``.
    """
    generator, mel = _export_source(obj, mel_config, "bigvgan", "BigVGAN", "export_bigvgan")
    _check_hifigan_mel(mel, "export_bigvgan")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    h = _official_json(generator, mel, {"use_cuda_kernel": False})
    atomic_write_bytes(json.dumps(h, indent=4).encode(), folder / CONFIG_JSON)
    atomic_torch_save({"generator": _folded_state(generator)}, folder / BIGVGAN_WEIGHTS)
    return folder


def export_hifigan(obj, folder: PathLike, mel_config: Optional[MelConfig] = None, name: str = "g_00000000") -> Path:
    """Write a jik876/hifi-gan style ``config.json`` + generator file ``name`` (``{"generator": state_dict}``).

    The weights are written with ``weight_g``/``weight_v`` (HiFi-GAN's ``Generator`` is built with weight norm and
    its ``load_state_dict`` expects those keys); returns the generator file's path.
    """
    generator, mel = _export_source(obj, mel_config, "hifigan", "HiFi-GAN", "export_hifigan")
    _check_hifigan_mel(mel, "export_hifigan")
    folded = _folded_state(generator)
    state = {}
    for k, v in folded.items():
        lk, kind = _logical_key(k)
        if kind == "w" and v.dim() >= 2:  # conv weights get weight norm; HiFi-GAN has no other weights
            g = torch.norm_except_dim(v, 2, 0)
            state[lk[: -len("weight")] + "weight_g"] = g
            state[lk[: -len("weight")] + "weight_v"] = v
        else:
            state[k] = v
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    h = _official_json(generator, mel, {})
    atomic_write_bytes(json.dumps(h, indent=4).encode(), folder / CONFIG_JSON)
    atomic_torch_save({"generator": state}, folder / name)
    return folder / name


def vocos_hparams(generator: nn.Module, mel: MelConfig, who: str = "export_vocos") -> dict:
    """The official ``config.yaml`` (as a dict) of a ``vocos`` generator and its MelConfig; ValueError naming what
    the official ``Vocos`` cannot represent (our ``atan2`` head, the amplitude prior, a mel its
    ``MelSpectrogramFeatures`` does not compute)."""
    from .generators.vocos import vocos_mel_problems

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
        "feature_extractor": {"class_path": _VOCOS_FEATURES, "init_args": dict(
            sample_rate=mel.sample_rate, n_fft=mel.n_fft, hop_length=mel.hop_length, n_mels=mel.n_mels,
            padding="center" if mel.center else "same")},
        "backbone": {"class_path": _VOCOS_BACKBONE, "init_args": backbone},
        "head": {"class_path": _VOCOS_HEAD, "init_args": dict(dim=cfg.dim, n_fft=cfg.n_fft,
                                                              hop_length=cfg.hop_length, padding=cfg.padding)},
    }


def export_vocos(obj, folder: PathLike, mel_config: Optional[MelConfig] = None) -> Path:
    """Write ``config.yaml`` + ``pytorch_model.bin`` in the layout of the published Vocos models to ``folder``.

    ``obj`` is a :class:`~vocoder.inference.Vocoder` or a ``vocos`` generator (then ``mel_config`` is needed). The
    result loads with ``vocos.Vocos.from_hparams(folder / "config.yaml")`` + a strict ``load_state_dict`` of
    ``pytorch_model.bin``: the file also holds the buffers of its feature extractor (Hann window, mel filters), built
    by the torchaudio ``MelSpectrogram`` that ``MelSpectrogramFeatures`` wraps. Models the official code cannot
    represent are a ValueError (see :func:`vocos_hparams`). Returns ``folder``.
    """
    import torchaudio
    import yaml

    generator, mel = _export_source(obj, mel_config, "vocos", "Vocos", "export_vocos")
    h = vocos_hparams(generator, mel)
    fe = h["feature_extractor"]["init_args"]
    # what MelSpectrogramFeatures.__init__ builds, so the keys and values are the ones from_hparams makes
    mel_spec = torchaudio.transforms.MelSpectrogram(sample_rate=fe["sample_rate"], n_fft=fe["n_fft"],
                                                    hop_length=fe["hop_length"], n_mels=fe["n_mels"],
                                                    center=fe["padding"] == "center", power=1)
    state = {f"feature_extractor.mel_spec.{k}": v.detach().clone() for k, v in mel_spec.state_dict().items()}
    state.update(_folded_state(generator))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(yaml.safe_dump(h, sort_keys=False).encode(), folder / VOCOS_CONFIG)
    atomic_torch_save(state, folder / VOCOS_WEIGHTS)
    return folder
