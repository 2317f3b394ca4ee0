"""Training recipes: a YAML file with sections ``mel``, ``generator``, ``discriminators``, ``losses``, ``optim``,
``data``, ``trainer``; dotted command-line overrides; defaults for every setting.

A recipe is a plain dict here (so it can be saved next to each checkpoint and stored in Lightning's
hyper-parameters); :class:`vocoder.training.settings.TrainingRecipe` types it once for the components.
``load_recipe(path, overrides)`` reads the file, merges it over :data:`DEFAULTS`, applies overrides such as
``optim.lr=1e-4`` or ``discriminators.0.args.channel_mult=0.5`` (values are YAML-parsed) and validates it.

Sections with a fixed schema (``losses``, ``optim``, ``data``, ``trainer``) reject unknown keys, so a typo in
an override is an error, not a silently ignored setting. Free-form mappings (``generator.config``,
``discriminators[i].args``, ``losses.*_args``) accept any key; the component that uses them validates. The
``losses`` section is what the loss modules declare (:mod:`vocoder.losses.registry`): its keys, defaults and checks.

``generator.init: PATH`` fine-tunes an existing generator: :func:`vocoder.training.generator_init.resolve_generator_init` reads PATH (our ``.pt``,
an official BigVGAN folder, a HiFi-GAN ``g_*`` file + ``config.json``), checks the recipe against it and fills in
the generator config and mel settings the recipe leaves empty.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional

import yaml

from ..losses.registry import check_loss_settings, loss_defaults
from .discriminator_noise import DiscriminatorNoiseConfig
from ..utils import atomic_write_bytes

__all__ = ["DEFAULTS", "load_recipe", "resolve_recipe", "apply_override", "save_recipe", "lightning_max_steps",
           "plain_data"]

# Every setting with its default. Comments say what the number means; the recipes cite their sources.
DEFAULTS: Dict[str, Any] = {
    "name": None,  # recipe name (defaults to the file stem)
    "mel": {},  # MelConfig fields (or official config.json keys); empty = the generator preset's mel
    # init: a checkpoint to start the generator from (fine-tuning): anything vocoder.checkpoints.load_checkpoint
    # reads. Empty `config` / `mel` are then taken from it; explicit ones must match it.
    "generator": {"name": None, "preset": None, "config": {}, "init": None},
    "discriminators": [],  # list of {name, args}
    # Declared by the loss modules (vocoder/losses/*.py, each loss's weights and arguments, in order; the table in
    # docs/training.md): kind (lsgan | hinge), adv, disc, fm, mel, mel_fmax, multiscale_mel(_args), stft_sc / stft_mag
    # (stft_args), the Fourier-head terms amplitude ... phase_retrieved and their arguments, and any loss added since.
    "losses": loss_defaults(),
    "optim": {
        "name": "adamw",  # adamw | adam
        "lr": 2e-4,
        "betas": [0.8, 0.99],
        "eps": 1e-8,
        "weight_decay": 0.01,  # torch.optim.AdamW's default, which HiFi-GAN and BigVGAN leave in place
        "lr_decay": 0.999,  # ExponentialLR gamma ...
        "lr_decay_every": 1,  # ... applied once every this many GAN steps
        "grad_clip": None,  # max gradient norm for G and D (None = no clipping)
        "grad_clip_d": None,  # separate limit for D (None = use grad_clip)
        "discriminator_start_step": 0,  # GAN steps of generator-only (reconstruction-loss) warm-up
        # GAN step from which the generator's loss has the adversarial and feature-matching terms (None: from
        # discriminator_start_step). Later than that, the discriminators first learn on the warmed-up generator
        # instead of feeding it the judgement of freshly initialised networks.
        "generator_adv_start_step": None,
    },
    "data": {
        "segment_length": 8192,
        "batch_size": 16,
        "num_workers": 4,
        "val_clips": 8,
        "seed": 1234,
        "finetune_mels": None,
    },
    "trainer": {
        "max_steps": 1_000_000,  # GAN steps (one D update + one G update)
        "precision": "auto",  # auto (bf16-mixed on CUDA with bf16, else 32-true) | 32-true | bf16-mixed
        "val_check_interval": 5000,  # GAN steps between validations
        "log_every_n_steps": 100,
        "checkpoint_every_n_steps": 5000,
        "keep_last_checkpoints": 5,  # step_*.ckpt files kept (last.ckpt is always kept)
        "export_every_n_steps": 0,  # also write an inference checkpoint (.pt) every N steps (0 = only at the end)
        "val_log_samples": 3,  # clips whose audio and spectrograms go to TensorBoard
        "num_sanity_val_steps": 1,  # validation batches run before training (catches a broken val set early)
        "accelerator": "auto",
        "devices": 1,
        "strategy": "auto",  # auto (DDP when devices > 1) | ddp | any Lightning strategy name
        # One DDP wrapper around G and D with two backward passes per step: the D backward leaves G's
        # parameters without gradients, which DDP only tolerates with find_unused_parameters=True.
        "find_unused_parameters": True,
        "seed": 1234,
    },
    # Diffusion-GAN / SpecDiff-GAN noise on the discriminators' inputs (vocoder.training.discriminator_noise, which
    # documents each key); off by default. recipes/hifigan_v2_specdiff.yaml turns it on.
    "discriminator_noise": dataclasses.asdict(DiscriminatorNoiseConfig()),
}

_FIXED_SECTIONS = ("losses", "optim", "data", "trainer", "discriminator_noise")


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any], where: str, strict: bool) -> Dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for k, v in update.items():
        if strict and k not in base:
            raise ValueError(f"unknown recipe key {where}{k!r}; expected one of {sorted(base)}")
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and out.get(k):
            out[k] = _deep_merge(out[k], v, f"{where}{k}.", strict=False)
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve_recipe(raw: Mapping[str, Any], name: Optional[str] = None) -> Dict[str, Any]:
    """Merge a raw recipe dict over :data:`DEFAULTS` and validate the fixed sections."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"a recipe must be a mapping of sections, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown recipe sections {unknown}; expected some of {sorted(DEFAULTS)}")
    out = copy.deepcopy(DEFAULTS)
    for section, value in raw.items():
        if section in _FIXED_SECTIONS:
            if not isinstance(value, Mapping):
                raise ValueError(f"recipe section {section!r} must be a mapping, got {value!r}")
            out[section] = _deep_merge(DEFAULTS[section], value, f"{section}.", strict=True)
        elif section == "generator":
            if isinstance(value, str):  # shorthand: `generator: hifigan_v1` (a preset name)
                value = {"preset": value}
            out[section] = _deep_merge(DEFAULTS[section], value or {}, "generator.", strict=True)
        else:
            out[section] = copy.deepcopy(value)
    if name and not out.get("name"):
        out["name"] = name
    _validate(out)
    return out


def _validate(r: Mapping[str, Any]) -> None:
    g = r["generator"]
    if not g.get("name") and not g.get("preset"):
        raise ValueError("recipe.generator needs a `name` (generator type) or a `preset`, got neither")
    if not isinstance(g.get("config") or {}, Mapping):
        raise ValueError(f"recipe.generator.config must be a mapping, got {g.get('config')!r}")
    if g.get("init") is not None and not isinstance(g["init"], (str, os.PathLike)):
        raise ValueError(f"recipe.generator.init must be a checkpoint path, got {g['init']!r}")
    if not isinstance(r["discriminators"], list) or not r["discriminators"]:
        raise ValueError(f"recipe.discriminators must be a non-empty list of {{name, args}}, got {r['discriminators']!r}")
    for i, d in enumerate(r["discriminators"]):
        if not isinstance(d, Mapping) or "name" not in d or set(d) - {"name", "args"}:
            raise ValueError(f"recipe.discriminators[{i}] must be {{name: str, args: mapping}}, got {d!r}")
    check_loss_settings(r["losses"])  # each value as its loss declares it
    DiscriminatorNoiseConfig.from_dict(r["discriminator_noise"])  # its own checks, with the key's name
    o = r["optim"]
    if o["name"] not in ("adam", "adamw"):
        raise ValueError(f"optim.name must be 'adam' or 'adamw', got {o['name']!r}")
    if not (isinstance(o["betas"], (list, tuple)) and len(o["betas"]) == 2):
        raise ValueError(f"optim.betas must be two numbers, got {o['betas']!r}")
    if int(o["lr_decay_every"]) < 1 or not (0 < float(o["lr_decay"]) <= 1):
        raise ValueError(f"need optim.lr_decay in (0, 1] and lr_decay_every >= 1, got {o['lr_decay']}, "
                         f"{o['lr_decay_every']}")
    g_adv = o.get("generator_adv_start_step")
    if g_adv is not None and (isinstance(g_adv, bool) or not isinstance(g_adv, int)
                              or g_adv < int(o["discriminator_start_step"])):
        raise ValueError(f"optim.generator_adv_start_step must be null or an int >= discriminator_start_step "
                         f"({o['discriminator_start_step']}), got {g_adv!r}")
    t = r["trainer"]
    if int(t["max_steps"]) < 1:
        raise ValueError(f"trainer.max_steps must be >= 1, got {t['max_steps']}")
    if t["precision"] not in ("auto", "32-true", "32", "bf16-mixed", "bf16-true"):
        raise ValueError(f"trainer.precision must be auto, 32-true or bf16-mixed (fp16 GAN training needs a grad "
                         f"scaler per optimiser, which this module does not run), got {t['precision']!r}")
    if int(r["data"]["segment_length"]) < 1 or int(r["data"]["batch_size"]) < 1:
        raise ValueError(f"data.segment_length and data.batch_size must be positive, got {r['data']}")


def _parse_path(key: str) -> List[Any]:
    return [int(p) if p.lstrip("-").isdigit() else p for p in key.split(".")]


def _parse_value(text: str) -> Any:
    """YAML value, with YAML 1.1's blind spot fixed: ``1e-4`` (no dot) is a float, not a string."""
    if not text.strip():
        return None
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") or value.lower() in ("inf", "-inf", "nan") else value
        except ValueError:
            return value
    return value


def apply_override(recipe: Dict[str, Any], override: str) -> None:
    """Apply one ``dotted.key=value`` override in place (value parsed as YAML; list items by index)."""
    if "=" not in override:
        raise ValueError(f"an override must look like section.key=value, got {override!r}")
    key, text = override.split("=", 1)
    path = _parse_path(key.strip())
    value = _parse_value(text)
    if not path or path[0] not in DEFAULTS:
        raise ValueError(f"override {override!r}: unknown section {path[0]!r}; expected one of {sorted(DEFAULTS)}")
    node: Any = recipe
    for depth, part in enumerate(path[:-1]):
        if isinstance(node, list):
            if not isinstance(part, int) or not -len(node) <= part < len(node):
                raise ValueError(f"override {override!r}: index {part!r} out of range for a list of {len(node)}")
            node = node[part]
        elif isinstance(node, dict):
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
        else:
            raise ValueError(f"override {override!r}: {'.'.join(map(str, path[:depth + 1]))} is not a mapping")
    last = path[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or not -len(node) <= last < len(node):
            raise ValueError(f"override {override!r}: index {last!r} out of range for a list of {len(node)}")
        node[last] = value
        return
    if not isinstance(node, dict):
        raise ValueError(f"override {override!r}: parent of {last!r} is not a mapping")
    if len(path) == 2 and path[0] in _FIXED_SECTIONS and last not in DEFAULTS[path[0]]:
        raise ValueError(f"override {override!r}: unknown key {last!r} in {path[0]}; "
                         f"expected one of {sorted(DEFAULTS[path[0]])}")
    node[last] = value


def load_recipe(path: "os.PathLike | str", overrides: Iterable[str] = ()) -> Dict[str, Any]:
    """Read a recipe YAML, merge it over the defaults, apply dotted overrides, validate. Returns a plain dict."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"recipe file {str(path)!r} does not exist")
    with open(path, "r", encoding="utf-8") as f:
        raw = yaml.safe_load(f) or {}
    recipe = resolve_recipe(raw, name=path.stem)
    for o in overrides:
        apply_override(recipe, o)
    _validate(recipe)
    return recipe


def save_recipe(recipe: Mapping[str, Any], path: "os.PathLike | str") -> None:
    """Write the resolved recipe as YAML (atomically: a reader never sees half a file)."""
    text = yaml.safe_dump(plain_data(recipe), sort_keys=False, default_flow_style=None)
    atomic_write_bytes(text.encode("utf-8"), path)


def plain_data(x: Any) -> Any:
    """Mappings -> dicts with str keys, tuples -> lists, recursively: what YAML and ``torch.load(weights_only=True)``
    both read back as written."""
    if isinstance(x, Mapping):
        return {str(k): plain_data(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain_data(v) for v in x]
    return x


def lightning_max_steps(gan_steps: int, discriminator_start_step: int) -> int:
    """Lightning's ``max_steps`` for ``gan_steps`` GAN steps.

    Under manual optimisation Lightning's ``global_step`` counts optimiser steps: one generator step per GAN step,
    plus one discriminator step per GAN step from ``discriminator_start_step`` on.
    """
    gan_steps = int(gan_steps)
    return gan_steps + max(0, gan_steps - max(0, int(discriminator_start_step)))
