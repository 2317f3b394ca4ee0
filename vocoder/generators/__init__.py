"""Generators (mel -> waveform) by name, with presets that pair a config with the mel front end it expects.

``build_generator("hifigan_v1")`` builds a preset; ``build_generator("bigvgan", {...})`` a generator from a
config dict; ``get_preset(name).mel`` is the :class:`~vocoder.audio.mel.MelConfig` a preset was trained on.

Every module of this package is imported here (each family registers itself when imported), so a new family is its
module (and its test); the ones below are also re-exported by name.
"""
import importlib as _importlib
import pkgutil as _pkgutil

from .bigvgan import BigVGANConfig, BigVGANGenerator
from .hifigan import HiFiGANConfig, HiFiGANGenerator
from .hiftnet import HiFTNetConfig, HiFTNetFrameConfig, HiFTNetFrameGenerator, HiFTNetGenerator
from .melgan import MelGANConfig, MelGANGenerator
from .parallel_wavegan import ParallelWaveGANConfig, ParallelWaveGANGenerator
from .vocos import VocosConfig, VocosGenerator
from .registry import (build_generator, config_from_dict, generator_names, get_preset, get_spec, preset_names,
                       register_generator, register_preset)

for _module in sorted(m.name for m in _pkgutil.iter_modules(__path__)):
    _importlib.import_module(f"{__name__}.{_module}")  # already imported: a no-op

__all__ = ["HiFiGANConfig", "HiFiGANGenerator", "MelGANConfig", "MelGANGenerator", "BigVGANConfig",
           "BigVGANGenerator", "VocosConfig", "VocosGenerator", "ParallelWaveGANConfig", "ParallelWaveGANGenerator",
           "HiFTNetConfig", "HiFTNetGenerator", "HiFTNetFrameConfig", "HiFTNetFrameGenerator", "build_generator",
           "get_preset", "get_spec", "preset_names", "generator_names", "config_from_dict", "register_generator",
           "register_preset"]
