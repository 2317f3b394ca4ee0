"""Fine-tuning: ``generator.init: PATH`` in a recipe.

:func:`resolve_generator_init` reads PATH (anything :func:`vocoder.checkpoints.load_checkpoint` reads: our ``.pt``,
an official BigVGAN folder, a HiFi-GAN ``g_*`` file + ``config.json``, ...), or a Hugging Face repo id
(``org/name[@revision]``, resolved as ``Vocoder.from_pretrained`` resolves it: the Hub's cache, ``HF_HUB_OFFLINE``;
a local path of the same spelling wins), checks the recipe against it and fills in the generator config and mel
settings the recipe leaves empty.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any, Dict, List, Mapping

from ..audio.mel import MelConfig
from ..checkpoints import load_checkpoint
from ..generators.registry import config_from_dict, get_preset
from .recipes import plain_data
from .settings import generator_name_and_config

__all__ = ["GeneratorInit", "resolve_generator_init"]




@dataclasses.dataclass
class GeneratorInit:
    """Generator weights read from ``generator.init``, ready for :func:`vocoder.checkpoints.load_generator_state`."""

    path: str
    name: str  # registry name of the generator in the file
    config: Dict[str, Any]  # its config (plain dict)
    mel: Any  # its MelConfig
    state_dict: Dict[str, Any]  # as the file holds it (weight norm folded or g/v)
    folded: bool  # True when the file held plain (folded) weights
    source: str  # "vocoder" (our .pt), "bigvgan" or "hifigan" (official formats)


def _mel_differences(ckpt_mel, recipe_mel) -> List[str]:
    """Fields where two MelConfigs differ (``fmax=None`` counts as ``sample_rate / 2``), n_mels first."""
    def norm(m):
        d = m.to_dict()
        d["fmax"] = float(m.fmax) if m.fmax is not None else m.sample_rate / 2
        d["fmin"] = float(m.fmin)
        return d

    a, b = norm(ckpt_mel), norm(recipe_mel)
    out = []
    if a["n_mels"] != b["n_mels"]:
        out.append(f"init checkpoint has {a['n_mels']} mels, recipe says {b['n_mels']}")
    for k in a:
        if k != "n_mels" and a[k] != b[k]:
            out.append(f"mel.{k}: init checkpoint has {a[k]}, recipe says {b[k]}")
    return out


def _config_differences(ckpt_config: Mapping[str, Any], recipe_config: Mapping[str, Any]) -> List[str]:
    a, b = plain_data(ckpt_config), plain_data(recipe_config)
    out = []
    if "n_mels" in a and a.get("n_mels") != b.get("n_mels"):
        out.append(f"init checkpoint has {a['n_mels']} mels, recipe says {b.get('n_mels')}")
    for k in sorted(set(a) | set(b)):
        if k != "n_mels" and a.get(k) != b.get(k):
            out.append(f"generator.config.{k}: init checkpoint has {a.get(k)!r}, recipe says {b.get(k)!r}")
    return out


def _local(path: str) -> str:
    """``path`` itself when it exists or is not a repo id, else the local files of Hub repo ``path``."""
    if os.path.exists(path):
        return path
    from ..checkpoints.hub import looks_like_repo_id, resolve_repo  # deferred: huggingface_hub

    return str(resolve_repo(path)) if looks_like_repo_id(path) else path


def resolve_generator_init(recipe: Mapping[str, Any], load: bool = True):
    """Check ``recipe`` against its ``generator.init`` checkpoint and complete it from there.

    Returns ``(recipe, init)``: a copy of the recipe whose ``generator.name`` / ``generator.config`` and ``mel``
    are the checkpoint's (they were empty) or equal to them (they were given), and a :class:`GeneratorInit`
    (``None`` when the recipe has no ``generator.init``). With ``load=False`` the file is read only when the
    recipe leaves the generator config or the mel settings to it, and ``init`` is ``None`` (a resumed run takes
    its weights from the training checkpoint).

    Raises ``ValueError`` naming every mismatch: generator type, config fields, mel fields
    ("init checkpoint has 100 mels, recipe says 80").
    """
    recipe = copy.deepcopy(dict(recipe))
    g = recipe["generator"]
    path = g.get("init")
    if not path:
        return recipe, None
    path = str(path)
    explicit_config, explicit_mel = bool(g.get("config")), bool(recipe.get("mel"))
    if not load and explicit_config and explicit_mel:
        return recipe, None
    try:
        path = _local(path)
        generator, mel, meta = load_checkpoint(path)
    except ValueError as e:
        hint = "" if load else (" (when resuming, --config RUN_DIR/recipe.yaml or no --config reads the generator "
                                "config the run recorded, without the init file)")
        raise ValueError(f"generator.init: {e}{hint}") from e
    name = getattr(type(generator), "registry_name", None) or type(generator).__name__
    config = plain_data(dataclasses.asdict(generator.config))

    problems: List[str] = []
    recipe_name = g.get("name")
    if not recipe_name and g.get("preset"):
        recipe_name = get_preset(g["preset"]).generator
    if recipe_name != name:
        problems.append(f"init checkpoint holds a {name!r} generator, recipe says {recipe_name!r}")
    elif explicit_config:
        want_name, want, _ = generator_name_and_config(recipe)
        try:
            want = plain_data(dataclasses.asdict(config_from_dict(want_name, want)))
        except TypeError as e:
            raise ValueError(f"recipe.generator.config does not describe a {want_name} generator: {e}") from e
        problems += _config_differences(config, want)
    if explicit_mel:
        for p in _mel_differences(mel, MelConfig.from_dict(recipe["mel"])):
            if p not in problems:
                problems.append(p)
    if problems:
        raise ValueError(f"generator.init {path} does not match the recipe: " + "; ".join(problems))

    g["name"] = name
    g["config"] = config
    if not explicit_mel:
        recipe["mel"] = mel.to_dict()
    if not load:
        return recipe, None
    state = {k: v.detach() for k, v in generator.state_dict().items()}
    folded = not any(k.endswith(("weight_g", "weight_v")) or ".parametrizations." in f".{k}" for k in state)
    source = str(meta.get("source") or "vocoder") if meta.get("source") in ("bigvgan", "hifigan") else "vocoder"
    return recipe, GeneratorInit(path=path, name=name, config=config, mel=mel, state_dict=state, folded=folded,
                                 source=source)
