"""Generators by name, and named presets (generator + its config + the mel it expects).

The families register themselves when :mod:`vocoder.generators` is imported (which importing this module does
first, as its package); this module imports none of them.

Every generator is an ``nn.Module`` built from a config dataclass, with ``forward(mel [B, n_mels, T]) ->
wav [B, 1, T * hop_length]``, attributes ``config``, ``hop_length``, ``n_mels`` and a ``remove_weight_norm()``.

A generator is built for a :class:`MelConfig`, the one source of ``n_mels`` and ``hop_length``:
:func:`build_generator_for_mel` (training, inference and every checkpoint reader) fills in what a config dict
leaves out from the mel settings and refuses a config that takes other mels, in one place.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Type, Union

import torch.nn as nn

from ..audio.mel import MelConfig

__all__ = ["register_generator", "register_preset", "build_generator", "get_preset", "generator_names",
           "preset_names", "config_from_dict", "resolve_config", "check_generator_fits_mel", "streaming_builder",
           "GeneratorSpec", "Preset", "spec_of", "is_fourier", "get_spec", "config_for_mel", "build_generator_for_mel"]


@dataclass(frozen=True)
class GeneratorSpec:
    """Everything a family registers about itself: its name, class, config dataclass, the builder of its
    streaming network (``generator -> StreamSequential`` of :mod:`vocoder.nn.streaming` layers; ``None``: the
    family does not stream) and what it can do beyond ``forward``:

    - ``fourier``: it predicts an STFT and synthesises it, ``spectrum(mel) -> (log_amplitude, phase)``,
      ``synthesize(log_amplitude, phase)`` and ``refined(mel, iterations, phase=...)`` (the Fourier losses, phase
      retrieval and refinement use them).
    """
    name: str
    cls: Type[nn.Module]
    config_cls: type
    streaming: Optional[Callable[[nn.Module], nn.Module]] = None
    fourier: bool = False

    @property
    def streams(self) -> bool:
        return self.streaming is not None


@dataclass(frozen=True)
class Preset:
    name: str
    generator: str
    config: Any  # the generator's config dataclass instance
    mel: MelConfig
    description: str = ""


_GENERATORS: Dict[str, GeneratorSpec] = {}
_PRESETS: Dict[str, Preset] = {}


def register_generator(name: str, config_cls: type, streaming: Optional[Callable[[nn.Module], nn.Module]] = None,
                       fourier: bool = False) -> Callable[[Type[nn.Module]], Type[nn.Module]]:
    """Class decorator: ``@register_generator("hifigan", HiFiGANConfig, streaming=stream_hifigan)``; ``fourier``:
    see :class:`GeneratorSpec` (checked here: such a class has the methods it promises)."""

    def deco(cls):
        missing = [m for m in ("spectrum", "synthesize", "refined") if fourier and not callable(getattr(cls, m, None))]
        if missing:
            raise TypeError(f"generator {name!r} registers fourier=True but has no {', '.join(missing)}")
        _GENERATORS[name] = GeneratorSpec(name, cls, config_cls, streaming, fourier)
        cls.registry_name = name
        return cls

    return deco


def spec_of(generator: nn.Module) -> Optional[GeneratorSpec]:
    """The registered spec of a generator instance (``None`` for a module no family registered)."""
    spec = _GENERATORS.get(getattr(type(generator), "registry_name", None))
    return spec if spec is not None and isinstance(generator, spec.cls) else None


def is_fourier(generator: nn.Module) -> bool:
    """Whether ``generator`` predicts an STFT (its family registered ``fourier=True``)."""
    spec = spec_of(generator)
    return spec is not None and spec.fourier


def register_preset(name: str, generator: str, config: Any, mel: MelConfig, description: str = "") -> None:
    _PRESETS[name] = Preset(name, generator, config, mel, description)


def generator_names() -> list:
    return sorted(_GENERATORS)


def preset_names() -> list:
    return sorted(_PRESETS)


def get_spec(name: str) -> GeneratorSpec:
    if name not in _GENERATORS:
        raise ValueError(f"unknown generator {name!r}; known: {sorted(_GENERATORS)}")
    return _GENERATORS[name]


def get_preset(name: str) -> Preset:
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(_PRESETS)}")
    return _PRESETS[name]


def config_from_dict(name: str, d: Mapping[str, Any]):
    """Config dataclass of generator ``name`` from a plain dict; unknown keys are an error that names them."""
    spec = get_spec(name)
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = sorted(set(d) - fields)
    if unknown:
        raise ValueError(f"unknown {name} config keys {unknown}; expected some of {sorted(fields)}")
    kwargs = {k: (tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v)
              for k, v in d.items()}
    return spec.config_cls(**kwargs)


def resolve_config(name: str, config: Union[Mapping[str, Any], Any, None]):
    """Generator ``name``'s config dataclass from ``None`` (defaults), a dict (unknown keys -> ValueError) or itself."""
    config_cls = get_spec(name).config_cls
    if config is None:
        return config_cls()
    if isinstance(config, Mapping):
        return config_from_dict(name, config)
    if not isinstance(config, config_cls):
        raise ValueError(f"expected a {config_cls.__name__} or a dict, got {type(config).__name__}")
    return config


def build_generator(name: str, config: Union[Mapping[str, Any], Any, None] = None) -> nn.Module:
    """Build generator ``name`` (a generator name or a preset name) from a config dataclass or dict."""
    if name in _PRESETS and config is None:
        p = _PRESETS[name]
        return _GENERATORS[p.generator].cls(p.config)
    spec = get_spec(name)
    if config is None:
        config = spec.config_cls()
    elif isinstance(config, Mapping):
        config = config_from_dict(name, config)
    return spec.cls(config)


def config_for_mel(name: str, config: Union[Mapping[str, Any], Any, None], mel: MelConfig, source: str = ""):
    """Generator ``name``'s config dataclass for the mel settings ``mel``.

    From a dict (or ``None``), ``n_mels`` and ``hop_length`` are taken from ``mel`` where the config has such a
    field and the dict does not set it (a family that derives its hop, e.g. from upsampling rates, keeps its own);
    then :func:`check_generator_fits_mel`: ``ValueError`` (prefixed by ``source``) when the config takes other mels.
    """
    if config is None or isinstance(config, Mapping):
        fields = {f.name for f in dataclasses.fields(get_spec(name).config_cls)}
        derived = {k: getattr(mel, k) for k in ("n_mels", "hop_length") if k in fields}
        config = {**derived, **dict(config or {})}
    config = resolve_config(name, config)
    check_generator_fits_mel(config, mel, source)
    return config


def build_generator_for_mel(name: str, config: Union[Mapping[str, Any], Any, None], mel: MelConfig,
                            source: str = "") -> nn.Module:
    """Generator ``name`` built for ``mel`` (see :func:`config_for_mel`); ``name`` may be a preset's name, whose
    config is then the base that ``config`` (a dict) updates."""
    if name in _PRESETS and name not in _GENERATORS:
        preset = _PRESETS[name]
        base = dataclasses.asdict(preset.config)
        if isinstance(config, Mapping):
            base.update(config)
        elif config is not None:
            base = config
        name, config = preset.generator, base
    return get_spec(name).cls(config_for_mel(name, config, mel, source))


def check_generator_fits_mel(generator: nn.Module, mel: MelConfig, source: str = "") -> None:
    """``ValueError`` unless ``generator`` (or its config) takes ``mel.n_mels`` bands and upsamples by
    ``mel.hop_length``. A generator handed in whole (``Vocoder(generator, mel)``, saving a checkpoint) is checked
    here; one built here is built for its mel by :func:`build_generator_for_mel`."""
    prefix = f"{source}: " if source else ""
    if getattr(generator, "n_mels", mel.n_mels) != mel.n_mels:
        raise ValueError(f"{prefix}generator takes {generator.n_mels} mels, mel config says {mel.n_mels}")
    if getattr(generator, "hop_length", mel.hop_length) != mel.hop_length:
        raise ValueError(f"{prefix}generator upsamples by {generator.hop_length}, mel hop_length is {mel.hop_length}")


def streaming_builder(generator: nn.Module) -> Callable[[nn.Module], nn.Module]:
    """The streaming builder the family of ``generator`` registered; ``ValueError`` if it has none."""
    for spec in _GENERATORS.values():
        if type(generator) is spec.cls:
            if spec.streaming is None:
                break
            return spec.streaming
    streamable = sorted(s.name for s in _GENERATORS.values() if s.streaming is not None)
    raise ValueError(f"no streaming builder for {type(generator).__name__}; generators that stream: {streamable}")
