"""Reading weights into a generator: safe file loading, any weight-norm spelling, errors that name the problem.

:func:`load_generator_state` converts whichever of the three spellings a state dict has (``weight_g``/``weight_v``,
``parametrizations.weight.original0/1``, folded ``weight``; see :mod:`vocoder.nn.weight_normalization`) into
whatever the module holds, and reports a state dict that does not fit as a ``ValueError`` naming the missing /
unexpected keys and the config mismatches, never a bare PyTorch traceback.
"""
from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn
import yaml

from ..audio.mel import MelConfig
from ..nn.weight_normalization import fold_weight_norm, norm_dim, weight_key_kind

__all__ = ["PathLike", "torch_load", "read_json", "read_yaml", "strip_prefix", "load_generator_state",
           "load_matching_form", "registry_name", "unwrap_generator"]

PathLike = Union[str, os.PathLike]


def torch_load(path: PathLike, map_location="cpu") -> Any:
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


def read_json(path: PathLike) -> dict:
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


def read_yaml(path: Path) -> dict:
    """A YAML file holding a mapping; unreadable or other content -> ``ValueError``."""
    try:
        h = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    if not isinstance(h, dict):
        raise ValueError(f"{path} should hold a mapping, got {type(h).__name__}")
    return h


def _group(sd: Mapping[str, torch.Tensor]) -> Dict[str, Dict[str, Tuple[str, torch.Tensor]]]:
    """Logical key -> {kind: (real key, tensor)}."""
    out: Dict[str, Dict[str, Tuple[str, torch.Tensor]]] = {}
    for k, v in sd.items():
        lk, kind = weight_key_kind(k)
        out.setdefault(lk, {})[kind] = (k, v)
    return out


def _logical_shape(entry: Dict[str, Tuple[str, torch.Tensor]]) -> Tuple[int, ...]:
    for kind in ("w", "v", "other"):
        if kind in entry:
            return tuple(entry[kind][1].shape)
    return tuple(next(iter(entry.values()))[1].shape)


def strip_prefix(sd: Mapping[str, Any]) -> Dict[str, Any]:
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


def load_generator_state(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load ``state_dict`` into ``module``, whatever weight-norm spelling either side uses.

    Raises ``ValueError`` naming missing / unexpected keys (a few of each, with counts), shape mismatches and
    what they mean for the config ("checkpoint has 100 mels, config says 80").
    """
    if not isinstance(state_dict, Mapping) or not all(isinstance(k, str) for k in state_dict):
        raise ValueError(f"{source}: expected a state dict (str -> tensor), got {type(state_dict).__name__}")
    sd = strip_prefix(state_dict)
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
                w = torch._weight_norm(v, g, norm_dim(g.shape, v.shape))
            new_sd[want["w"][0]] = w
        else:  # module holds g and v
            g_key, g_ref = want["g"]
            v_key, _ = want["v"]
            if "g" in have:
                g, v = have["g"][1], have["v"][1]
                if tuple(g.shape) != tuple(g_ref.shape):
                    # g stored with another dim convention: go through the folded weight.
                    w = torch._weight_norm(v.float(), g.float(), norm_dim(g.shape, v.shape))
                    g, v = None, w
            else:
                g, v = None, have["w"][1]
            if g is None:
                dim = norm_dim(g_ref.shape, v.shape)
                g = torch.norm_except_dim(v.float(), 2, dim) if dim >= 0 else v.float().norm()
                g = g.reshape(g_ref.shape)
            new_sd[g_key], new_sd[v_key] = g, v
    # Every key is now spelled as the module spells it; strict load so nothing is silently skipped.
    module.load_state_dict(new_sd, strict=True)


def load_matching_form(generator: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load into a freshly built generator; a file without weight norm folds it first, so the weights are exact.

    (The official BigVGAN loader does the same for the published v2 files, which hold folded weights.)
    """
    if isinstance(state_dict, Mapping) and not any(weight_key_kind(k)[1] in ("g", "v") for k in state_dict):
        fold_weight_norm(generator)
    load_generator_state(generator, state_dict, source=source)


def registry_name(generator: nn.Module) -> str:
    name = getattr(type(generator), "registry_name", None)
    if not name:
        raise ValueError(f"{type(generator).__name__} is not a registered generator (no registry_name)")
    return name


def unwrap_generator(obj) -> Tuple[nn.Module, Optional[MelConfig]]:
    gen = getattr(obj, "generator", None)
    if isinstance(gen, nn.Module):
        return gen, getattr(obj, "mel_config", None)
    return obj, None
